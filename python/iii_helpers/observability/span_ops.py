"""Official path ``iii_helpers.observability.span_ops`` (iii-helpers 0.25.0): operations on
the current span. Re-exports of ``iii._observability``."""

from iii._observability import (
    current_span_is_recording,
    record_span_event,
    set_current_span_attribute,
    set_current_span_error,
)

__all__ = [
    "current_span_is_recording",
    "record_span_event",
    "set_current_span_attribute",
    "set_current_span_error",
]
