"""Resource figures of this worker process: memory, CPU and uptime.

Read from the standard library only (``/proc/self/statm`` on Linux, ``resource`` elsewhere,
``os.times``, ``tracemalloc``), so no extra dependency is needed. Used by
:mod:`iii.otel_worker_gauges` to publish them as OpenTelemetry gauges.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass

__all__ = ["WorkerMetrics", "WorkerMetricsCollector"]


@dataclass
class WorkerMetrics:
    """One reading. Memory in bytes, CPU times in microseconds since the process started."""

    memory_rss: int
    memory_vms: int
    cpu_percent: float
    uptime_seconds: float
    timestamp_ms: int
    memory_heap_used: int = 0
    """Bytes traced by :mod:`tracemalloc`; 0 unless it is tracing."""
    memory_heap_total: int = 0
    """Not measurable in CPython; always 0."""
    memory_external: int = 0
    """A Node.js figure; always 0 in Python."""
    cpu_user_micros: int = 0
    cpu_system_micros: int = 0
    runtime: str = "python"


def _memory() -> tuple[int, int]:
    """(resident, virtual) bytes; virtual is 0 where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            vms_pages, rss_pages = (int(v) for v in f.read().split()[:2])
        page = os.sysconf("SC_PAGE_SIZE")
        return rss_pages * page, vms_pages * page
    except (OSError, ValueError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0, 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in bytes on macOS and in KiB elsewhere; it is the peak, the best available.
    return (peak if sys.platform == "darwin" else peak * 1024), 0


class WorkerMetricsCollector:
    """Takes :class:`WorkerMetrics` readings; ``cpu_percent`` covers the time since the last one.

    :meth:`collect_cached` reuses a reading younger than ``CACHE_TTL_SECONDS``, so several
    gauges read in one export cycle cost one measurement.
    """

    CACHE_TTL_SECONDS: float = 0.5

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._last_wall = self._started
        self._last_cpu = self._cpu_seconds()
        self._cached: tuple[float, WorkerMetrics] | None = None

    @staticmethod
    def _cpu_seconds() -> tuple[float, float]:
        t = os.times()
        return t.user, t.system

    def collect(self) -> WorkerMetrics:
        """A fresh reading."""
        with self._lock:
            now = time.monotonic()
            user, system = self._cpu_seconds()
            elapsed = now - self._last_wall
            used = (user - self._last_cpu[0]) + (system - self._last_cpu[1])
            cpu_percent = min(100.0, max(0.0, used / elapsed * 100.0)) if elapsed > 0 else 0.0
            self._last_wall, self._last_cpu = now, (user, system)
        rss, vms = _memory()
        return WorkerMetrics(
            memory_rss=rss,
            memory_vms=vms,
            cpu_percent=cpu_percent,
            uptime_seconds=now - self._started,
            timestamp_ms=int(time.time() * 1000),
            memory_heap_used=tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0,
            cpu_user_micros=int(user * 1_000_000),
            cpu_system_micros=int(system * 1_000_000),
        )

    def collect_cached(self) -> WorkerMetrics:
        """The last reading if it is younger than ``CACHE_TTL_SECONDS``, else a fresh one."""
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self.CACHE_TTL_SECONDS:
            return cached[1]
        metrics = self.collect()
        self._cached = (time.monotonic(), metrics)
        return metrics
