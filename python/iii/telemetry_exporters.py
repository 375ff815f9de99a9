"""The official SDK's exporter names (``iii.telemetry_exporters``), backed by the Rust exporter.

In this SDK telemetry is sent by ``iii._iii.Telemetry`` on the worker's own connection; these
classes exist so code written against the official module keeps working:
``SharedEngineConnection(url, headers)`` opens a telemetry connection of its own to ``url``, the
three exporters hand OpenTelemetry SDK data to it, and ``send_threadsafe`` sends frames built by
the caller. Imported only on use (it needs ``opentelemetry-sdk``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs.export import LogExportResult
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from ._iii import Telemetry
from ._otel_bridge import EngineMetricExporter, EngineSpanProcessor

__all__ = [
    "PREFIX_METRICS",
    "EngineLogExporter",
    "EngineMetricsExporter",
    "EngineSpanExporter",
    "SharedEngineConnection",
    "log",
]

log = logging.getLogger("iii.telemetry_exporters")

#: Binary frame prefix of metrics (``OTLP`` spans, ``LOGS`` log records).
PREFIX_METRICS = b"MTRC"


class SharedEngineConnection:
    """A telemetry-only connection to the engine at ``url`` (it appears in the engine's
    worker list as an anonymous worker, as the official one does)."""

    MAX_QUEUE: int = 1000

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self._url = url
        self._headers = headers
        self.telemetry = Telemetry()
        # The official 0.25 caller passes `<engine>/otel`: dial that, and the engine's URL on
        # engines without the /otel socket (v0.11.0 answers 404). Any other URL as given.
        if url.endswith("/otel"):
            self.telemetry.connect(url[: -len("/otel")], headers, telemetry_path=True)
        else:
            self.telemetry.connect(url, headers, telemetry_path=False)
        self._started = True

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Kept for compatibility: the connection runs in the Rust core from the start."""

    def send_threadsafe(self, prefix: bytes, payload: bytes) -> None:
        """Queues one frame from any thread: ``prefix`` (``OTLP``, ``LOGS`` or ``MTRC``), then
        ``payload``, its OTLP/JSON. Frames go out whole and in order; while the connection is
        down at most ``MAX_QUEUE`` wait, the oldest dropped first."""
        self.telemetry.send_frame(bytes(prefix), bytes(payload))

    async def shutdown(self) -> None:
        """Flushes (at most 5 s) and closes the connection."""
        await asyncio.get_running_loop().run_in_executor(None, self.telemetry.shutdown, 5000)


class EngineSpanExporter:
    """An OpenTelemetry ``SpanExporter`` that sends spans as ``OTLP`` frames."""

    def __init__(self, connection: SharedEngineConnection) -> None:
        self._processor = EngineSpanProcessor()
        self._processor.telemetry = connection.telemetry
        self._connection = connection

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._processor.on_end(span)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._connection.telemetry.flush()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._connection.telemetry.flush(timeout_millis)


class EngineLogExporter:
    """An OpenTelemetry ``LogExporter`` that sends records as ``LOGS`` frames."""

    def __init__(self, connection: SharedEngineConnection) -> None:
        self._connection = connection

    def export(self, batch: Sequence[Any]) -> LogExportResult:
        telemetry = self._connection.telemetry
        for data in batch:
            record = getattr(data, "log_record", data)
            attrs = dict(record.attributes or {})
            service = attrs.pop("service.name", None)
            payload = attrs.pop("log.data", attrs or None)
            severity = record.severity_number.value if record.severity_number is not None else 9
            telemetry.emit_log(
                severity,
                str(record.body) if record.body is not None else "",
                payload,
                record.trace_id or None,
                record.span_id or None,
                str(service) if service is not None else None,
            )
        return LogExportResult.SUCCESS

    def shutdown(self) -> None:
        self._connection.telemetry.flush()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._connection.telemetry.flush(timeout_millis)


class EngineMetricsExporter:
    """An OpenTelemetry push metric exporter (for a ``PeriodicExportingMetricReader``) that sends
    each collection as ``MTRC`` frames."""

    def __init__(self, connection: SharedEngineConnection) -> None:
        self._connection = connection
        # What PeriodicExportingMetricReader reads from its exporter: empty keeps the defaults.
        self._preferred_temporality: dict[Any, Any] = {}
        self._preferred_aggregation: dict[Any, Any] = {}
        self._exporter = EngineMetricExporter()
        self._exporter.telemetry = connection.telemetry

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        return self._exporter.export(metrics_data, timeout_millis, **kwargs)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._connection.telemetry.flush(int(timeout_millis))

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._connection.telemetry.flush(int(timeout_millis))
