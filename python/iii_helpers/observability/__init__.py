"""Official path ``iii_helpers.observability`` (iii-helpers 0.25.0): OpenTelemetry and Logger
helpers. Re-exports of this SDK's objects: ``Logger`` is ``iii.Logger``, ``OtelConfig`` /
``ReconnectionConfig`` are ``iii.OtelConfig`` / ``iii.ReconnectionConfig``, the telemetry
functions are those of ``iii.telemetry``, and the 0.25 additions come from
``iii._observability``.
"""

from iii._logger import Logger
from iii._observability import (
    REDACTED_PLACEHOLDER,
    BaggageSpanProcessor,
    current_span_is_recording,
    execute_traced_request,
    flush_otel,
    record_span_event,
    redact,
    redact_and_truncate,
    resolve_max_bytes_from_env,
    set_current_span_attribute,
    set_current_span_error,
)
from iii._options import OtelConfig, ReconnectionConfig
from iii.telemetry import (
    current_span_id,
    current_trace_id,
    extract_baggage,
    extract_traceparent,
    init_otel,
    inject_baggage,
    inject_traceparent,
    shutdown_otel,
    with_span,
)

__all__ = [
    "BaggageSpanProcessor",
    "Logger",
    "OtelConfig",
    "REDACTED_PLACEHOLDER",
    "ReconnectionConfig",
    "current_span_id",
    "current_span_is_recording",
    "current_trace_id",
    "execute_traced_request",
    "extract_baggage",
    "extract_traceparent",
    "flush_otel",
    "init_otel",
    "inject_baggage",
    "inject_traceparent",
    "record_span_event",
    "redact",
    "redact_and_truncate",
    "resolve_max_bytes_from_env",
    "set_current_span_attribute",
    "set_current_span_error",
    "shutdown_otel",
    "with_span",
]
