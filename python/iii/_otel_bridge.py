"""The bridge between Python's ``opentelemetry`` and the Rust exporter (``iii._iii.Telemetry``).

Imported only when OpenTelemetry is on, or (for :func:`outgoing_headers`) once the application
installed a tracer provider of its own (``_app_tracing``), so ``import iii`` never imports
``opentelemetry``.

- :class:`EngineSpanProcessor` hands every span the application's ``opentelemetry-sdk``
  finishes to Rust as one compact tuple; Rust batches, encodes and sends it.
- :class:`InvocationOtelContext` is the OpenTelemetry context a handler runs in: the invocation
  span (started in Rust) as the current span, plus the incoming baggage.
- :func:`outgoing_headers` gives ``traceparent`` / ``baggage`` for a call made now.
- :func:`log_sink` is what :class:`iii.Logger` calls when OpenTelemetry is on.
- :class:`EngineMetricExporter` hands each collection of the application's instruments
  (``iii.telemetry.get_meter()``) to Rust, which encodes and sends it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from ._iii import InvocationSpan, Telemetry

log = logging.getLogger("iii")

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


class EngineSpanProcessor(SpanProcessor):
    """Sends finished spans to the engine through the current :class:`iii._iii.Telemetry`.

    One instance per process: OpenTelemetry allows one global TracerProvider, so after
    ``shutdown_otel()`` and a new ``init_otel()`` the same processor sends to the new exporter.
    """

    def __init__(self) -> None:
        self.telemetry: Telemetry | None = None

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        telemetry = self.telemetry
        ctx = span.context
        if telemetry is None or ctx is None or not ctx.trace_flags.sampled:
            return
        parent = span.parent
        status = span.status
        scope = span.instrumentation_scope
        events = [(e.name, e.timestamp, e.attributes) for e in span.events] if span.events else None
        telemetry.record_span(
            (
                ctx.trace_id,
                ctx.span_id,
                parent.span_id if parent is not None else None,
                span.name,
                span.kind.value,
                span.start_time or 0,
                span.end_time or 0,
                status.status_code.value,
                status.description,
                span.attributes,
                events,
                scope.name if scope is not None else "unknown",
                scope.version if scope is not None else None,
            )
        )

    def shutdown(self) -> None:
        telemetry = self.telemetry
        if telemetry is not None:
            telemetry.flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        telemetry = self.telemetry
        return True if telemetry is None else telemetry.flush(timeout_millis)


_processor = EngineSpanProcessor()
_provider_lock = threading.Lock()
_provider_hooked: Any = None


def install_span_processor(telemetry: Telemetry) -> None:
    """Points the processor at ``telemetry`` and adds it to the global TracerProvider.

    An application that installed its own SDK TracerProvider first keeps it: the processor is
    added to it. Without one, an SDK TracerProvider with the worker's resource is installed.
    """
    global _provider_hooked
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    with _provider_lock:
        _processor.telemetry = telemetry
        provider = trace.get_tracer_provider()
        if provider is _provider_hooked:
            return
        if not hasattr(provider, "add_span_processor"):
            provider = TracerProvider(resource=Resource(telemetry.resource()))
            trace.set_tracer_provider(provider)
            provider = trace.get_tracer_provider()
        add = getattr(provider, "add_span_processor", None)
        if add is not None:
            add(_processor)
            _provider_hooked = provider


def detach_span_processor(telemetry: Telemetry) -> None:
    """Stops sending spans to ``telemetry`` (the processor stays on the provider, inert)."""
    with _provider_lock:
        if _processor.telemetry is telemetry:
            _processor.telemetry = None


class EngineMetricExporter(MetricExporter):
    """Sends what the process's MeterProvider collects to the current :class:`Telemetry`.

    One instance per process, like :class:`EngineSpanProcessor`: after ``shutdown_otel()``
    and a new ``init_otel()`` the same reader and exporter send to the new exporter.
    """

    def __init__(self) -> None:
        super().__init__()
        self.telemetry: Telemetry | None = None

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        telemetry = self.telemetry
        if telemetry is None:
            return MetricExportResult.SUCCESS  # OpenTelemetry is off: nowhere to send
        out = []
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                scope = scope_metrics.scope
                for metric in scope_metrics.metrics:
                    row = _metric_row(metric)
                    if row is not None:
                        out.append((*row, scope.name, scope.version))
        try:
            telemetry.record_metrics(out)
        except (TypeError, ValueError, OverflowError):
            log.exception("metrics could not be exported")
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _metric_row(metric: Metric) -> tuple[Any, ...] | None:
    """``(name, description, unit, kind, monotonic, temporality, points)`` for Rust, or None
    for kinds the engine does not read (exponential histograms)."""
    data = metric.data
    head = (metric.name, metric.description or "", metric.unit or "")
    if isinstance(data, Histogram):
        points = [
            (
                p.attributes or {},
                p.start_time_unix_nano or 0,
                p.time_unix_nano,
                p.count,
                float(p.sum),
                list(p.bucket_counts),
                [float(b) for b in p.explicit_bounds],
                p.min,
                p.max,
            )
            for p in data.data_points
        ]
        return (*head, "histogram", False, int(data.aggregation_temporality), points)
    if isinstance(data, (Sum, Gauge)):
        numbers = [
            (p.attributes or {}, p.start_time_unix_nano or 0, p.time_unix_nano, p.value)
            for p in data.data_points
        ]
        if isinstance(data, Sum):
            return (*head, "sum", data.is_monotonic, int(data.aggregation_temporality), numbers)
        return (*head, "gauge", False, 0, numbers)
    return None


_metric_exporter = EngineMetricExporter()
_COLLECT_MS = 1000
_meter_provider: Any = None


def meter(name: str) -> Any:
    """A meter of the MeterProvider whose instruments go to the engine (None before
    :func:`install_metric_exporter`)."""
    provider = _meter_provider
    return None if provider is None else provider.get_meter(name)


def install_metric_exporter(telemetry: Telemetry, interval_ms: int) -> None:
    """Points the process's metric exporter at ``telemetry``. Its MeterProvider is created on
    first use and made the global one unless the application installed its own first (that
    one keeps exporting wherever it was set up to)."""
    global _meter_provider
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    with _provider_lock:
        _metric_exporter.telemetry = telemetry
        if _meter_provider is None:
            reader = PeriodicExportingMetricReader(_metric_exporter, export_interval_millis=interval_ms)
            _meter_provider = MeterProvider(resource=Resource(telemetry.resource()), metric_readers=[reader])
            if not isinstance(metrics.get_meter_provider(), MeterProvider):
                metrics.set_meter_provider(_meter_provider)


def collect_metrics(timeout_ms: int) -> None:
    """Hands what the application's instruments hold now to the exporter (``flush_otel``)."""
    provider = _meter_provider
    if provider is not None and _metric_exporter.telemetry is not None:
        try:
            provider.force_flush(max(timeout_ms, _COLLECT_MS))
        except Exception as exc:  # noqa: BLE001 - the flush goes on without them
            log.warning("the application's metrics were not collected: %s", exc)


def detach_metric_exporter(telemetry: Telemetry, timeout_ms: int) -> None:
    """Collects and hands over what the application's instruments hold now, then stops
    sending to ``telemetry``."""
    provider = _meter_provider
    if provider is not None and _metric_exporter.telemetry is telemetry:
        # Collecting only hands the figures to Rust (no network), so even a shutdown that
        # waits for nothing gets a moment for it.
        try:
            provider.force_flush(max(timeout_ms, _COLLECT_MS))
        except Exception as exc:  # noqa: BLE001 - shutdown goes on without the last figures
            log.warning("the application's metrics were not collected at shutdown: %s", exc)
    with _provider_lock:
        if _metric_exporter.telemetry is telemetry:
            _metric_exporter.telemetry = None


class InvocationOtelContext(otel_context.Context):
    """The OpenTelemetry context a handler starts in: ``span`` current, its incoming baggage
    readable. Its entries are built by the first read, so a handler that never looks at the
    context never pays for them.

    NOTE(perf): building them (an OpenTelemetry ``NonRecordingSpan``, the baggage) costs the SDK
    loop about 2 us per invocation, 6 us with two baggage entries, and most handlers never read
    them (``benches/python/otel_context.py``). It is attached with OpenTelemetry's public
    ``attach``, so it works with whichever runtime context ``OTEL_PYTHON_CONTEXT`` selects.
    """

    __slots__ = ("span", "_unbuilt")

    def __init__(self, span: InvocationSpan) -> None:
        self.span = span
        self._unbuilt = True

    def _build(self) -> None:
        # Filled once through dict's own update (Context's raises); then the flag, so a thread
        # reading meanwhile builds it again rather than seeing it empty.
        dict.update(self, _entries(self.span))
        self._unbuilt = False


def _reads_built(name: str) -> Any:
    read = getattr(dict, name)

    def method(self: InvocationOtelContext, *args: Any) -> Any:
        if self._unbuilt:
            self._build()
        return read(self, *args)

    method.__name__ = method.__qualname__ = name
    return method


# Every way of reading a dict (OpenTelemetry itself uses get and copy) builds it first.
for _name in (
    "__contains__",
    "__eq__",
    "__getitem__",
    "__iter__",
    "__len__",
    "__ne__",
    "__or__",
    "__repr__",
    "__reversed__",
    "__ror__",
    "copy",
    "get",
    "items",
    "keys",
    "values",
):
    setattr(InvocationOtelContext, _name, _reads_built(_name))


def _entries(span: InvocationSpan) -> otel_context.Context:
    flags = _SAMPLED if span.sampled else _UNSAMPLED
    parent = NonRecordingSpan(SpanContext(span.trace_id, span.span_id, is_remote=False, trace_flags=flags))
    ctx = otel_context.Context()
    if span.baggage is not None:
        for key, value in span.baggage_entries().items():
            ctx = otel_baggage.set_baggage(key, value, context=ctx)
    return trace.set_span_in_context(parent, ctx)


def invocation_context(span: InvocationSpan) -> otel_context.Context:
    """The context a handler runs in: ``span`` current, incoming baggage readable."""
    return InvocationOtelContext(span)


def enter_invocation(span: InvocationSpan) -> None:
    """Makes ``span`` (and the incoming baggage) the current OpenTelemetry context. Called
    inside the invocation's own ``contextvars`` context, which is dropped afterwards."""
    otel_context.attach(InvocationOtelContext(span))


def outgoing_headers() -> tuple[str | None, str | None]:
    """``(traceparent, baggage)`` of the current context, for an outgoing call (no
    ``traceparent`` outside any span)."""
    ctx = otel_context.get_current()
    if type(ctx) is InvocationOtelContext:
        # NOTE(perf): reading the span and the baggage back out of the context cost a call
        # made from a handler about 2.5 us; in the invocation's own context (the handler has
        # attached nothing of its own) they are the invocation's headers.
        return ctx.span.traceparent, ctx.span.baggage
    if not ctx:
        # Nothing attached (a call outside any handler or span): no span, no baggage.
        # NOTE(perf): asking OpenTelemetry for both cost such a call 0.8 of its 2.4 us.
        return None, None
    span_ctx = trace.get_current_span(ctx).get_span_context()
    traceparent = None
    if span_ctx.is_valid:
        # Only the sampled flag: opentelemetry-sdk marks the root spans it starts with the W3C
        # "random" flag too (03), and engine v0.11.0 rejects a version-00 traceparent whose
        # flags are above 02 and starts a new trace, so the call left the application's trace.
        flags = int(span_ctx.trace_flags) & 1
        traceparent = f"00-{span_ctx.trace_id:032x}-{span_ctx.span_id:016x}-{flags:02x}"
    entries = otel_baggage.get_all(ctx)
    header = Telemetry.format_baggage({k: str(v) for k, v in entries.items()}) if entries else None
    return traceparent, header or None


def call_span(telemetry: Telemetry, function_id: str) -> tuple[str, str | None, InvocationSpan | None]:
    """``(traceparent, baggage, span)`` for a call made now: the current context, or, outside
    any span, a new CLIENT span that starts a trace of its own (end it when the call ends)."""
    traceparent, header = outgoing_headers()
    if traceparent is not None:
        return traceparent, header, None
    span = telemetry.start_call(function_id, header)
    return span.traceparent, header, span


_SEVERITY_TEXT = {5: "DEBUG", 9: "INFO", 13: "WARN", 17: "ERROR"}


def _application_log_provider() -> Any:
    """The LoggerProvider the application installed (``opentelemetry._logs``), or None while
    the API still has its placeholder."""
    from opentelemetry import _logs

    provider = _logs.get_logger_provider()
    if isinstance(provider, _logs.NoOpLoggerProvider) or type(provider).__name__ == "ProxyLoggerProvider":
        return None
    return provider


def log_sink(telemetry: Telemetry, to_engine: bool) -> Any:
    """``fn(severity, message, data, trace_id_hex, span_id_hex, service_name)`` for Logger:
    records go to the engine (``to_engine``: ``logs_enabled``) and, as iii-sdk 0.25.0's Logger
    does, to the application's own OpenTelemetry LoggerProvider when it installed one."""

    def emit(
        severity: int,
        message: str,
        data: Any,
        trace_id: str | None,
        span_id: str | None,
        service_name: str | None,
    ) -> bool:
        provider = _application_log_provider()
        if not to_engine and provider is None:
            return False  # nowhere to send it: Logger falls back to Python logging
        tid: int | None = None
        sid: int | None = None
        if trace_id is not None or span_id is not None:
            tid = int(trace_id, 16) if trace_id else None
            sid = int(span_id, 16) if span_id else None
        elif type(ctx := otel_context.get_current()) is InvocationOtelContext:
            tid, sid = ctx.span.trace_id, ctx.span.span_id
        else:
            span_ctx = trace.get_current_span(ctx).get_span_context()
            if span_ctx.is_valid:
                tid, sid = span_ctx.trace_id, span_ctx.span_id
        if to_engine:
            telemetry.emit_log(severity, message, data, tid, sid, service_name)
        if provider is not None:
            from opentelemetry._logs import LogRecord, SeverityNumber

            attributes: dict[str, Any] = {"service.name": service_name}
            if data is not None:
                attributes["log.data"] = data
            now = time.time_ns()
            provider.get_logger("iii.logger").emit(
                LogRecord(
                    timestamp=now,
                    observed_timestamp=now,
                    severity_text=_SEVERITY_TEXT.get(severity),
                    severity_number=SeverityNumber(severity),
                    body=message,
                    attributes=attributes,
                    trace_id=tid or 0,
                    span_id=sid or 0,
                    trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED if tid else 0),
                )
            )
        return True

    return emit
