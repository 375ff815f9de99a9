"""Official import path ``iii.iii_constants`` (iii-sdk 0.11.0): configuration. Re-export shim.

The objects are defined in :mod:`iii.options` (``iii.iii_constants.InitOptions is
iii.InitOptions``); nothing is defined here.
"""

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
