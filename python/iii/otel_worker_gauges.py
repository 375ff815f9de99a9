"""Publish this worker's resource figures (:mod:`iii.worker_metrics`) as OpenTelemetry gauges.

``register_worker_gauges(meter, worker_id)`` adds observable gauges named
``iii.worker.cpu.percent``, ``iii.worker.cpu.user_micros``, ``iii.worker.cpu.system_micros``,
``iii.worker.memory.rss``, ``iii.worker.memory.vms``, ``iii.worker.memory.heap_used``,
``iii.worker.memory.heap_total``, ``iii.worker.memory.external`` and
``iii.worker.uptime_seconds`` to an ``opentelemetry.metrics.Meter``, each labelled with
``worker.id`` (and ``worker.name``). Names, units, descriptions and figures are those of the
gauges the SDK's exporter sends (``iii._iii.Telemetry.worker_gauges``); a figure the OS does not
give is left out, as there. The gauges of one export cycle share one reading.
Needs ``opentelemetry-api``; nothing here is imported by the SDK itself.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Any

from ._iii import Telemetry
from .worker_metrics import WorkerMetricsCollector

__all__ = ["WorkerMetricsCollector", "register_worker_gauges", "stop_worker_gauges"]

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
                value = collector._cached_reading()[1][field]
                if value is not None:
                    yield observation(value, attributes)

        return callback

    for name, field, unit, description in Telemetry.worker_gauges():
        meter.create_observable_gauge(name, callbacks=[observe(field)], unit=unit, description=description)


def stop_worker_gauges() -> None:
    """Stops reporting; a later :func:`register_worker_gauges` may register them again."""
    global _collector
    with _lock:
        _collector = None
