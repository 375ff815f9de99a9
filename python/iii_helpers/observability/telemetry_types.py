"""Official path ``iii_helpers.observability.telemetry_types`` (iii-helpers 0.25.0).
Re-exports ``iii.OtelConfig``."""

from iii._options import OtelConfig

__all__ = ["OtelConfig"]
