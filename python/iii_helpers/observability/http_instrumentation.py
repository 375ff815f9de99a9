"""Official path ``iii_helpers.observability.http_instrumentation`` (iii-helpers 0.25.0).
Re-exports ``iii._observability.execute_traced_request`` (for ``httpx`` requests)."""

from iii._observability import execute_traced_request

__all__ = ["execute_traced_request"]
