"""Official path ``iii_helpers.observability.baggage_span_processor`` (iii-helpers 0.25.0).
Re-exports ``iii._observability.BaggageSpanProcessor``."""

from iii._observability import BaggageSpanProcessor

__all__ = ["BaggageSpanProcessor"]
