"""iii SDK for Python: workers for the iii engine, with a Rust core.

from iii import register_worker, InitOptions
iii = register_worker("ws://localhost:49134", InitOptions(worker_name="my-worker"))

Layout: every module without a leading underscore is an official import path (or, for
``iii.testing``, our own public API) and only re-exports; the implementation lives in the
private ``iii._*`` modules, named for their job, which may change freely.
"""

# The official package's module layout (iii.iii, iii.iii_types, ...): re-export shims, loaded
# here so that, as with the official package, they are attributes of ``iii`` after import
# (0.11.0: channels, format_utils, iii, iii_constants, iii_types, logger, stream,
# telemetry_types, triggers, types, utils; 0.25.0 adds errors, invocation_context, observable,
# observe_types, observer_handle, process_marker).
from . import (  # noqa: F401
    channels,
    errors,
    filter,
    format_utils,
    iii,
    iii_constants,
    iii_types,
    invocation_context,
    logger,
    observable,
    observe_types,
    observer_handle,
    process_marker,
    stream,
    telemetry_types,
    triggers,
    types,
    utils,
)
from ._channels import Channel, ChannelReader, ChannelWriter
from ._client import III, register_worker
from ._engine import DEFAULT_ENGINE_URL
from ._format import extract_request_format, extract_response_format, python_type_to_format
from ._http_trigger import HttpRequest, HttpResponse, InternalHttpRequest, http
from ._http_trigger import HttpRequest as StreamRequest
from ._http_trigger import HttpResponse as StreamResponse
from ._iii import TriggerOutcome  # our addition: what III.trigger_many returns per call
from ._logger import Logger
from ._models import (
    ApiRequest,
    ApiResponse,
    EnqueueResult,
    FunctionInfo,
    HttpAuthConfig,
    HttpInvocationConfig,
    IIIClient,
    MessageType,
    RegisterFunctionFormat,
    RegisterFunctionInput,
    RegisterFunctionMessage,
    RegisterServiceInput,
    RegisterTriggerInput,
    RegisterTriggerMessage,
    RegisterTriggerTypeInput,
    RegisterTriggerTypeMessage,
    RemoteFunctionHandler,
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
    Caller,
    Capture,
    Filter,
    InvocationContext,
    Observed,
    ObserveHooks,
    Observer,
    ObserveRejection,
    ObserverHandle,
    ObserverOptions,
    ObserverState,
    ObserveSource,
    RegistrationRejectedError,
    Target,
    current_invocation,
)
from ._options import (
    ConnectionStateCallback,
    FunctionRef,
    IIIConnectionState,
    InitOptions,
    OtelConfig,
    ReconnectionConfig,
    TelemetryOptions,
)
from ._rbac import (
    AuthInput,
    AuthResult,
    MiddlewareFunctionInput,
    OnFunctionRegistrationInput,
    OnFunctionRegistrationResult,
    OnTriggerRegistrationInput,
    OnTriggerRegistrationResult,
    OnTriggerTypeRegistrationInput,
    OnTriggerTypeRegistrationResult,
)
from ._streams import (
    IStream,
    StreamChangeEvent,
    StreamChangeEventDetail,
    StreamContext,
    StreamJoinLeaveEvent,
    StreamJoinLeaveTriggerConfig,
    StreamTriggerConfig,
)
from ._triggers import Trigger, TriggerConfig, TriggerHandler, TriggerTypeRef
from .errors import (
    ChannelError,
    ClientShutdownError,
    ConnectionLostError,
    IIIConnectionError,
    IIIError,
    InvocationError,
    InvocationTimeoutError,
    NotConnectedError,
    OfflineQueueFullError,
    PayloadError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
    ProtocolError,
    QueueUnavailableError,
)

__version__ = "0.11.0"

__all__ = [
    # client
    "III",
    "register_worker",
    "InitOptions",
    "ReconnectionConfig",
    "TelemetryOptions",
    "OtelConfig",
    "FunctionRef",
    "IIIConnectionState",
    "TriggerAction",
    # channels and http
    "Channel",
    "ChannelReader",
    "ChannelWriter",
    "HttpRequest",
    "HttpResponse",
    "InternalHttpRequest",
    "http",
    # errors
    "ChannelError",
    "IIIError",
    "IIIConnectionError",
    "ConnectionLostError",
    "NotConnectedError",
    "OfflineQueueFullError",
    "ClientShutdownError",
    "InvocationError",
    "InvocationTimeoutError",
    "QueueUnavailableError",
    "ProtocolError",
    "PayloadError",
    "PayloadNotSerializableError",
    "PayloadTooLargeError",
    # RBAC
    "AuthInput",
    "AuthResult",
    "MiddlewareFunctionInput",
    "OnFunctionRegistrationInput",
    "OnFunctionRegistrationResult",
    "OnTriggerRegistrationInput",
    "OnTriggerRegistrationResult",
    "OnTriggerTypeRegistrationInput",
    "OnTriggerTypeRegistrationResult",
    # messages and types
    "ApiRequest",
    "ApiResponse",
    "EnqueueResult",
    "FunctionInfo",
    "HttpAuthConfig",
    "HttpInvocationConfig",
    "IIIClient",
    "MessageType",
    "RegisterFunctionFormat",
    "RegisterFunctionInput",
    "RegisterFunctionMessage",
    "RegisterServiceInput",
    "RegisterTriggerInput",
    "RegisterTriggerMessage",
    "RegisterTriggerTypeInput",
    "RegisterTriggerTypeMessage",
    "RemoteFunctionHandler",
    "StreamChannelRef",
    "TriggerActionEnqueue",
    "TriggerActionVoid",
    "TriggerInfo",
    "TriggerOutcome",
    "TriggerRequest",
    "TriggerTypeInfo",
    "WorkerInfo",
    # logger
    "Logger",
    # triggers
    "Trigger",
    "TriggerConfig",
    "TriggerHandler",
    "TriggerTypeRef",
    # streams
    "IStream",
    "StreamChangeEvent",
    "StreamChangeEventDetail",
    "StreamContext",
    "StreamJoinLeaveEvent",
    "StreamJoinLeaveTriggerConfig",
    "StreamTriggerConfig",
    # format extraction
    "extract_request_format",
    "extract_response_format",
    "python_type_to_format",
    # iii-sdk 0.25.0 root names (the observe family among them)
    "Caller",
    "Capture",
    "ConnectionStateCallback",
    "DEFAULT_ENGINE_URL",
    "Filter",
    "InvocationContext",
    "ObserveHooks",
    "ObserveRejection",
    "ObserveSource",
    "Observed",
    "Observer",
    "ObserverHandle",
    "ObserverOptions",
    "ObserverState",
    "RegistrationRejectedError",
    "StreamRequest",
    "StreamResponse",
    "Target",
    "current_invocation",
]
