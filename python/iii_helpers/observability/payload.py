"""Official path ``iii_helpers.observability.payload`` (iii-helpers 0.25.0): payload
redaction and truncation. Re-exports of ``iii._observability``."""

from iii._observability import REDACTED_PLACEHOLDER, redact, redact_and_truncate, resolve_max_bytes_from_env

__all__ = ["REDACTED_PLACEHOLDER", "redact", "redact_and_truncate", "resolve_max_bytes_from_env"]
