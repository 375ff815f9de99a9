"""Official import path ``iii.telemetry_types`` (iii-sdk 0.11.0): re-exports :class:`OtelConfig`.

PLACEHOLDER (issue 8): the telemetry branch owns this module and replaces this file.
"""

from .options import OtelConfig

__all__ = ["OtelConfig"]
