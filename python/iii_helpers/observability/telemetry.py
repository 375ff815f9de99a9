"""Official path ``iii_helpers.observability.telemetry`` (iii-helpers 0.25.0). Re-exports of
``iii.telemetry`` (``flush_otel`` from ``iii._observability``)."""

from iii._observability import flush_otel
from iii._options import OtelConfig
from iii.telemetry import (
    attach_event_loop,
    current_span_id,
    current_trace_id,
    extract_baggage,
    extract_context,
    extract_traceparent,
    get_all_baggage,
    get_baggage_entry,
    get_logger,
    init_otel,
    inject_baggage,
    inject_traceparent,
    remove_baggage_entry,
    set_baggage_entry,
    shutdown_otel,
    shutdown_otel_async,
    with_span,
)

__all__ = [
    "OtelConfig",
    "attach_event_loop",
    "current_span_id",
    "current_trace_id",
    "extract_baggage",
    "extract_context",
    "extract_traceparent",
    "flush_otel",
    "get_all_baggage",
    "get_baggage_entry",
    "get_logger",
    "init_otel",
    "inject_baggage",
    "inject_traceparent",
    "remove_baggage_entry",
    "set_baggage_entry",
    "shutdown_otel",
    "shutdown_otel_async",
    "with_span",
]
