"""Official path ``iii_helpers.observability.reconnection`` (iii-helpers 0.25.0).
Re-exports ``iii.ReconnectionConfig``."""

from iii._options import ReconnectionConfig

__all__ = ["ReconnectionConfig"]
