"""Official import path ``iii.iii`` (iii-sdk 0.11.0 and 0.25.0): the client module. Re-export shim.

Code written for the official package imports from here (``from iii.iii import III``); the
objects are the package's own (``iii.iii.III is iii.III``), defined in :mod:`iii.client`,
:mod:`iii.types` and the other modules of this package. Only the module's logger and a type
variable are defined here, as in the official module, plus (0.25.0) the record of logged
deprecations, ``_deprecations_warned``, that the official tests reset.
"""

import logging
from typing import TypeVar

from ._channel_types import resolve_headers
from ._channels import Channel, ChannelReader, ChannelWriter, is_channel_ref
from ._client import III, register_worker
from ._deprecations import _fallback_warned
from ._engine import DEFAULT_ENGINE_URL, FEATURE_OBSERVE_V1, SDK_FEATURES, resolve_engine_url
from ._format import extract_request_format, extract_response_format
from ._messages import (
    InvocationResultMessage,
    InvokeFunctionMessage,
    RegisterServiceMessage,
    UnregisterFunctionMessage,
    UnregisterTriggerMessage,
    UnregisterTriggerTypeMessage,
    WorkerRegisteredMessage,
)
from ._models import (
    FunctionInfo,
    HttpInvocationConfig,
    MessageType,
    RegisterFunctionFormat,
    RegisterFunctionInput,
    RegisterFunctionMessage,
    RegisterServiceInput,
    RegisterTriggerInput,
    RegisterTriggerMessage,
    RegisterTriggerTypeInput,
    RegisterTriggerTypeMessage,
    RemoteFunctionData,
    RemoteFunctionHandler,
    RemoteTriggerTypeData,
    StreamChannelRef,
    TriggerAction,
    TriggerActionEnqueue,
    TriggerActionVoid,
    TriggerInfo,
    TriggerRequest,
    TriggerTypeInfo,
    WorkerInfo,
)
from ._observe import (
    InvocationContext,
    ObserveHook,
    ObserveHooks,
    Observer,
    ObserveReason,
    ObserverHandle,
    ObserverOptions,
    ObserveSource,
    RegistrationRejectedError,
    Target,
)
from ._options import (
    DEFAULT_RECONNECTION_CONFIG,
    MAX_QUEUE_SIZE,
    ConnectionStateCallback,
    FunctionRef,
    IIIConnectionState,
    InitOptions,
    OtelConfig,
)
from ._streams import (
    IStream,
    StreamDeleteInput,
    StreamGetInput,
    StreamListGroupsInput,
    StreamListInput,
    StreamSetInput,
)
from ._triggers import Trigger, TriggerConfig, TriggerHandler, TriggerTypeRef
from .errors import InvocationError

log = logging.getLogger("iii.iii")
TResult = TypeVar("TResult")

#: APIs whose 0.25 deprecation was already logged in this process (see iii._deprecations);
#: tests written for iii-sdk 0.25.0 replace it with ``monkeypatch.setattr``.
_deprecations_warned: set[str] = _fallback_warned

__all__ = [
    # iii-sdk 0.25.0 names of this module
    "ConnectionStateCallback",
    "DEFAULT_ENGINE_URL",
    "FEATURE_OBSERVE_V1",
    "InvocationContext",
    "InvocationError",
    "ObserveHook",
    "ObserveHooks",
    "ObserveReason",
    "ObserveSource",
    "Observer",
    "ObserverHandle",
    "ObserverOptions",
    "RegistrationRejectedError",
    "SDK_FEATURES",
    "Target",
    "WorkerRegisteredMessage",
    "resolve_engine_url",
    "resolve_headers",
    # iii-sdk 0.11.0 names
    "DEFAULT_RECONNECTION_CONFIG",
    "MAX_QUEUE_SIZE",
    "Channel",
    "ChannelReader",
    "ChannelWriter",
    "FunctionInfo",
    "FunctionRef",
    "HttpInvocationConfig",
    "III",
    "IIIConnectionState",
    "IStream",
    "InitOptions",
    "InvocationResultMessage",
    "InvokeFunctionMessage",
    "MessageType",
    "OtelConfig",
    "RegisterFunctionFormat",
    "RegisterFunctionInput",
    "RegisterFunctionMessage",
    "RegisterServiceInput",
    "RegisterServiceMessage",
    "RegisterTriggerInput",
    "RegisterTriggerMessage",
    "RegisterTriggerTypeInput",
    "RegisterTriggerTypeMessage",
    "RemoteFunctionData",
    "RemoteFunctionHandler",
    "RemoteTriggerTypeData",
    "StreamChannelRef",
    "StreamDeleteInput",
    "StreamGetInput",
    "StreamListGroupsInput",
    "StreamListInput",
    "StreamSetInput",
    "TResult",
    "Trigger",
    "TriggerAction",
    "TriggerActionEnqueue",
    "TriggerActionVoid",
    "TriggerConfig",
    "TriggerHandler",
    "TriggerInfo",
    "TriggerRequest",
    "TriggerTypeInfo",
    "TriggerTypeRef",
    "UnregisterFunctionMessage",
    "UnregisterTriggerMessage",
    "UnregisterTriggerTypeMessage",
    "WorkerInfo",
    "extract_request_format",
    "extract_response_format",
    "is_channel_ref",
    "log",
    "register_worker",
]
