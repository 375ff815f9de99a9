"""Official import path ``iii.iii_constants`` (iii-sdk 0.11.0 and 0.25.0): configuration and
engine constants. Re-export shim.

The objects are defined in :mod:`iii.options` (``iii.iii_constants.InitOptions is
iii.InitOptions``); nothing is defined here.
"""

from ._engine import DEFAULT_ENGINE_URL, EngineFunctions, EngineTriggers
from ._options import (
    DEFAULT_INVOCATION_TIMEOUT_MS,
    DEFAULT_RECONNECTION_CONFIG,
    MAX_QUEUE_SIZE,
    ConnectionStateCallback,
    FunctionRef,
    IIIConnectionState,
    InitOptions,
    OtelConfig,
    ReconnectionConfig,
    TelemetryOptions,
)

__all__ = [
    "DEFAULT_ENGINE_URL",
    "EngineFunctions",
    "EngineTriggers",
    "DEFAULT_INVOCATION_TIMEOUT_MS",
    "DEFAULT_RECONNECTION_CONFIG",
    "MAX_QUEUE_SIZE",
    "ConnectionStateCallback",
    "FunctionRef",
    "IIIConnectionState",
    "InitOptions",
    "OtelConfig",
    "ReconnectionConfig",
    "TelemetryOptions",
]
