"""Publish this worker's resource figures (:mod:`iii.worker_metrics`) as OpenTelemetry gauges.

``register_worker_gauges(meter, worker_id)`` adds observable gauges named
``iii.worker.cpu.percent``, ``iii.worker.cpu.user_micros``, ``iii.worker.cpu.system_micros``,
``iii.worker.memory.rss``, ``iii.worker.memory.vms``, ``iii.worker.memory.heap_used``,
``iii.worker.memory.heap_total``, ``iii.worker.memory.external`` and
``iii.worker.uptime_seconds`` to an ``opentelemetry.metrics.Meter``, each labelled with
``worker.id`` (and ``worker.name``). The gauges of one export cycle share one reading.
Needs ``opentelemetry-api``; nothing here is imported by the SDK itself.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Any

from .worker_metrics import WorkerMetricsCollector

__all__ = ["WorkerMetricsCollector", "register_worker_gauges", "stop_worker_gauges"]

# (gauge name, WorkerMetrics attribute, unit, description)
_GAUGES = [
    ("iii.worker.cpu.percent", "cpu_percent", "%", "Worker CPU usage percentage"),
    ("iii.worker.cpu.user_micros", "cpu_user_micros", "us", "Worker CPU user time in microseconds"),
    ("iii.worker.cpu.system_micros", "cpu_system_micros", "us", "Worker CPU system time in microseconds"),
    ("iii.worker.memory.rss", "memory_rss", "bytes", "Worker resident set size in bytes"),
    ("iii.worker.memory.vms", "memory_vms", "bytes", "Worker virtual memory in bytes"),
    ("iii.worker.memory.heap_used", "memory_heap_used", "bytes", "Worker heap memory used in bytes"),
    ("iii.worker.memory.heap_total", "memory_heap_total", "bytes", "Worker total heap memory in bytes"),
    ("iii.worker.memory.external", "memory_external", "bytes", "Worker external memory in bytes"),
    ("iii.worker.uptime_seconds", "uptime_seconds", "s", "Worker uptime in seconds"),
]

_lock = threading.Lock()
# The collector of the registered gauges; None when there are none (or they were stopped).
_collector: WorkerMetricsCollector | None = None


def register_worker_gauges(meter: Any, worker_id: str, worker_name: str | None = None) -> None:
    """Adds the worker gauges to ``meter`` (once per process; later calls do nothing)."""
    global _collector
    # Imported here: the SDK does not depend on opentelemetry; whoever has a meter has it.
    observation = importlib.import_module("opentelemetry.metrics").Observation

    with _lock:
        if _collector is not None:
            return
        collector = _collector = WorkerMetricsCollector()
    attributes = {"worker.id": worker_id}
    if worker_name:
        attributes["worker.name"] = worker_name

    def observe(field: str) -> Any:
        def callback(_options: Any) -> Iterator[Any]:
            # Gauges outlive stop_worker_gauges() (OpenTelemetry cannot remove them); they
            # report nothing once their collector is no longer the registered one.
            if _collector is collector:
                yield observation(getattr(collector.collect_cached(), field), attributes)

        return callback

    for name, field, unit, description in _GAUGES:
        meter.create_observable_gauge(name, callbacks=[observe(field)], unit=unit, description=description)


def stop_worker_gauges() -> None:
    """Stops reporting; a later :func:`register_worker_gauges` may register them again."""
    global _collector
    with _lock:
        _collector = None
