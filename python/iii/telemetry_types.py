"""OpenTelemetry configuration type (official module path ``iii.telemetry_types``).

:class:`OtelConfig` is defined once, in :mod:`iii.options`; this module re-exports it.
"""

from ._options import OtelConfig

__all__ = ["OtelConfig"]
