"""Resource figures of this worker process: memory, CPU and uptime.

The figures come from the Rust sampler that also feeds the worker gauges the exporter sends
(``iii._iii.Telemetry.sample_process``), so a field here and the gauge of the same name mean
the same thing. Used by :mod:`iii.otel_worker_gauges` to publish them as OpenTelemetry gauges.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, fields
from typing import Any

from ._iii import Telemetry

__all__ = ["WorkerMetrics", "WorkerMetricsCollector"]


@dataclass
class WorkerMetrics:
    """One reading. Memory in bytes, CPU times in microseconds since the process started.

    Memory figures the OS does not give (on macOS: vms and the three heap fields) are 0.
    """

    memory_rss: int
    memory_vms: int
    cpu_percent: float
    """Percent of one core since the previous reading of the same collector, 0-100."""
    uptime_seconds: float
    """Since the process started."""
    timestamp_ms: int
    memory_heap_used: int = 0
    """Resident anonymous memory (``RssAnon``): Python's objects, arenas and buffers."""
    memory_heap_total: int = 0
    """The data segment's size (``VmData``): what the allocator has reserved."""
    memory_external: int = 0
    """Resident file-backed memory (``RssFile``): the interpreter, extensions, mapped files."""
    cpu_user_micros: int = 0
    cpu_system_micros: int = 0
    runtime: str = "python"


#: The fields read straight from a sample (the sampler's field names are these).
_SAMPLED = [f.name for f in fields(WorkerMetrics) if f.name not in ("timestamp_ms", "runtime")]


def _reading(sample: dict[str, Any]) -> WorkerMetrics:
    """The official fields from a sample: its missing figures are ``None`` (the exporter leaves
    those gauges out), the official fields are ints that hold 0 then; its time is in
    nanoseconds, ``timestamp_ms`` in milliseconds."""
    figures: dict[str, Any] = {name: 0 if sample[name] is None else sample[name] for name in _SAMPLED}
    return WorkerMetrics(timestamp_ms=sample["time_unix_nano"] // 1_000_000, **figures)


class WorkerMetricsCollector:
    """Takes :class:`WorkerMetrics` readings; ``cpu_percent`` covers the time since the last one.

    :meth:`collect_cached` reuses a reading younger than ``CACHE_TTL_SECONDS``, so several
    gauges read in one export cycle cost one measurement.
    """

    CACHE_TTL_SECONDS: float = 0.5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._previous = Telemetry.sample_process()  # the first reading's CPU interval starts here
        self._cached: tuple[float, dict[str, Any], WorkerMetrics] | None = None

    def _sample(self) -> dict[str, Any]:
        with self._lock:
            sample = self._previous = Telemetry.sample_process(self._previous)
        return sample

    def collect(self) -> WorkerMetrics:
        """A fresh reading."""
        return _reading(self._sample())

    def collect_cached(self) -> WorkerMetrics:
        """The last reading if it is younger than ``CACHE_TTL_SECONDS``, else a fresh one."""
        return self._cached_reading()[2]

    def _cached_reading(self) -> tuple[float, dict[str, Any], WorkerMetrics]:
        """(when, sample, reading) of the cached reading, renewed when it is too old."""
        cached = self._cached
        if cached is None or time.monotonic() - cached[0] >= self.CACHE_TTL_SECONDS:
            sample = self._sample()
            cached = self._cached = (time.monotonic(), sample, _reading(sample))
        return cached
