"""Pydantic models for the data the SDK exchanges with the engine and with user code.

Field names and defaults follow the public API of the official ``iii-sdk`` 0.11.0. The
listing models (:class:`FunctionInfo`, :class:`TriggerInfo`, :class:`TriggerTypeInfo`,
:class:`WorkerInfo`) are deliberately lenient: every field has a default, ``null`` values for
non-nullable fields fall back to that default, and unknown fields are kept, so the entry shapes
of both engine 0.11.0 and newer engines parse.

This module also offers every name of the official ``iii.types`` (channels, HTTP request and
response, stream and trigger interfaces, registry records): those defined elsewhere are the
same objects, imported or, for the modules that import this one, looked up on first use.
"""

from ._channel_types import StreamChannelRefDict, extract_channel_refs
from ._channels import Channel, is_channel_ref
from ._http_trigger import HttpRequest, HttpResponse, InternalHttpRequest
from ._http_trigger import HttpRequest as StreamRequest
from ._http_trigger import HttpResponse as StreamResponse
from ._models import (
    ApiRequest,
    ApiResponse,
    EnqueueResult,
    FunctionInfo,
    FunctionsAvailableCallback,
    HttpAuthApiKey,
    HttpAuthBearer,
    HttpAuthHmac,
    HttpInvocationConfig,
    IIIClient,
    Invocation,
    IStream,
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
    RemoteServiceFunctionData,
    RemoteTriggerTypeData,
    StreamChannelRef,
    TBody,
    TConfig,
    TInput,
    TOutput,
    Trigger,
    TriggerAction,
    TriggerActionEnqueue,
    TriggerActionVoid,
    TriggerHandler,
    TriggerInfo,
    TriggerRequest,
    TriggerTypeInfo,
    WorkerInfo,
)
from ._options import ConnectionStateCallback

# iii-sdk 0.25.0 renamed the streaming request / response of ``http`` handlers to
# StreamRequest / StreamResponse (HttpRequest / HttpResponse became buffered pydantic models
# in iii_helpers.http); here the 0.25 names are the same objects as the 0.11 ones.
__all__ = [
    "ConnectionStateCallback",
    "StreamChannelRefDict",
    "StreamRequest",
    "StreamResponse",
    "extract_channel_refs",
    "InternalHttpRequest",
    "HttpResponse",
    "HttpRequest",
    "is_channel_ref",
    "Channel",
    "ApiRequest",
    "ApiResponse",
    "EnqueueResult",
    "FunctionInfo",
    "FunctionsAvailableCallback",
    "HttpAuthApiKey",
    "HttpAuthBearer",
    "HttpAuthHmac",
    "HttpInvocationConfig",
    "IIIClient",
    "IStream",
    "Invocation",
    "MessageType",
    "RegisterFunctionFormat",
    "RegisterFunctionInput",
    "RegisterFunctionMessage",
    "RegisterServiceInput",
    "RegisterTriggerInput",
    "RegisterTriggerMessage",
    "RegisterTriggerTypeInput",
    "RegisterTriggerTypeMessage",
    "RemoteFunctionData",
    "RemoteFunctionHandler",
    "RemoteServiceFunctionData",
    "RemoteTriggerTypeData",
    "StreamChannelRef",
    "TBody",
    "TConfig",
    "TInput",
    "TOutput",
    "Trigger",
    "TriggerAction",
    "TriggerActionEnqueue",
    "TriggerActionVoid",
    "TriggerHandler",
    "TriggerInfo",
    "TriggerRequest",
    "TriggerTypeInfo",
    "WorkerInfo",
]
