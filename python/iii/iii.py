"""Official import path ``iii.iii`` (iii-sdk 0.11.0): the client module. Re-export shim.

Code written for the official package imports from here (``from iii.iii import III``); the
objects are the package's own (``iii.iii.III is iii.III``), defined in :mod:`iii.client`,
:mod:`iii.types` and the other modules of this package. Only the module's logger and a type
variable are defined here, as in the official module.
"""

import logging
from typing import TypeVar

from ._channels import Channel, ChannelReader, ChannelWriter, is_channel_ref
from ._client import III, register_worker
from ._format import extract_request_format, extract_response_format
from ._messages import (
    InvocationResultMessage,
    InvokeFunctionMessage,
    RegisterServiceMessage,
    UnregisterFunctionMessage,
    UnregisterTriggerMessage,
    UnregisterTriggerTypeMessage,
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
from ._options import (
    DEFAULT_RECONNECTION_CONFIG,
    MAX_QUEUE_SIZE,
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

log = logging.getLogger("iii.iii")
TResult = TypeVar("TResult")

__all__ = [
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
