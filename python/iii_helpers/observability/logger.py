"""Official path ``iii_helpers.observability.logger`` (iii-helpers 0.25.0). Re-exports
``iii.Logger`` and its Python logger (``iii.logger``)."""

from iii._logger import Logger, log

__all__ = ["Logger", "log"]
