"""Official import path ``iii.protocol`` (iii-sdk 0.25.0): protocol message types, register
inputs and feature names. Re-export shim (see :mod:`iii._models` and :mod:`iii._engine`;
``SDK_FEATURES`` is empty here: this SDK declares no 0.25 protocol feature)."""

from ._engine import FEATURE_LARGE_MESSAGES_V1, FEATURE_LOCAL_DISPATCH_V1, FEATURE_OBSERVE_V1, SDK_FEATURES
from ._models import (
    MessageType,
    RegisterFunctionFormat,
    RegisterFunctionInput,
    RegisterFunctionMessage,
    RegisterTriggerInput,
    RegisterTriggerMessage,
    RegisterTriggerTypeInput,
    RegisterTriggerTypeMessage,
    TriggerRequest,
)

__all__ = [
    "FEATURE_LARGE_MESSAGES_V1",
    "FEATURE_LOCAL_DISPATCH_V1",
    "FEATURE_OBSERVE_V1",
    "SDK_FEATURES",
    "MessageType",
    "RegisterFunctionFormat",
    "RegisterFunctionInput",
    "RegisterFunctionMessage",
    "RegisterTriggerInput",
    "RegisterTriggerMessage",
    "RegisterTriggerTypeInput",
    "RegisterTriggerTypeMessage",
    "TriggerRequest",
]
