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

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Generic, Literal, Protocol, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._streams import IStream
from ._triggers import Trigger, TriggerHandler

__all__ = [
    "ApiRequest",
    "ApiResponse",
    "EnqueueResult",
    "FunctionInfo",
    "FunctionsAvailableCallback",
    "HttpAuthApiKey",
    "HttpAuthBearer",
    "HttpAuthConfig",
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
    "TConfig",
    "TInput",
    "TOutput",
    "Trigger",
    "TriggerAction",
    "TriggerActionEnqueue",
    "TriggerActionType",
    "TriggerActionVoid",
    "TriggerHandler",
    "TriggerInfo",
    "TriggerRequest",
    "TriggerTypeInfo",
    "WorkerInfo",
    "WorkerStatus",
]

TBody = TypeVar("TBody")
TInput = TypeVar("TInput")
TOutput = TypeVar("TOutput")
TConfig = TypeVar("TConfig")

#: A function handler: receives the payload, returns a value or an awaitable of one.
RemoteFunctionHandler = Callable[[Any], Awaitable[Any]]


# --------------------------------------------------------------------------- messages


class MessageType(str, Enum):
    """Values of the ``type`` field of protocol messages."""

    REGISTER_FUNCTION = "registerfunction"
    UNREGISTER_FUNCTION = "unregisterfunction"
    REGISTER_SERVICE = "registerservice"
    INVOKE_FUNCTION = "invokefunction"
    INVOCATION_RESULT = "invocationresult"
    REGISTER_TRIGGER_TYPE = "registertriggertype"
    REGISTER_TRIGGER = "registertrigger"
    UNREGISTER_TRIGGER = "unregistertrigger"
    UNREGISTER_TRIGGER_TYPE = "unregistertriggertype"
    TRIGGER_REGISTRATION_RESULT = "triggerregistrationresult"
    WORKER_REGISTERED = "workerregistered"
    # Protocol-level keepalive.
    PING = "ping"
    PONG = "pong"
    # Sent once by RBAC listeners when authentication fails, right before closing.
    ERROR = "error"
    # Newer engines only (ignored by 0.11.0).
    REATTACH = "reattach"
    REGISTRATION_REJECTED = "registrationrejected"
    # iii-sdk 0.25.0 observe protocol (observe.v1): named here; this SDK does not speak it yet.
    OBSERVE = "observe"
    UNOBSERVE = "unobserve"
    OBSERVE_RESULT = "observeresult"
    OBSERVER_STATE_CHANGED = "observerstatechanged"
    FUNCTION_REGISTERED = "functionregistered"
    OBSERVER_ADDED = "observeradded"
    OBSERVER_REMOVED = "observerremoved"
    OBSERVER_ACK = "observerack"
    INVOCATIONS_OBSERVED = "invocationsobserved"
    LOCAL_INVOCATION_STATS = "localinvocationstats"


# --------------------------------------------------------------------------- HTTP functions


class HttpAuthHmac(BaseModel):
    """Sign requests with HMAC-SHA256; ``secret_key`` names an engine environment variable."""

    type: Literal["hmac"] = "hmac"
    secret_key: str


class HttpAuthBearer(BaseModel):
    """Send ``Authorization: Bearer``; ``token_key`` names an engine environment variable."""

    type: Literal["bearer"] = "bearer"
    token_key: str


class HttpAuthApiKey(BaseModel):
    """Send the value of the engine environment variable ``value_key`` in header ``header``."""

    type: Literal["api_key"] = "api_key"
    header: str
    value_key: str


HttpAuthConfig = Union[HttpAuthHmac, HttpAuthBearer, HttpAuthApiKey]


class HttpInvocationConfig(BaseModel):
    """Makes the engine execute a function by calling ``url`` instead of a worker handler."""

    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    timeout_ms: int | None = None
    headers: dict[str, str] | None = None
    auth: HttpAuthConfig | None = None


# --------------------------------------------------------------------------- registration


class RegisterFunctionFormat(BaseModel):
    """A simple field-by-field description of a function's input or output."""

    name: str
    type: str
    description: str | None = None
    body: list[RegisterFunctionFormat] | None = None
    items: RegisterFunctionFormat | None = None
    required: bool = False


class RegisterFunctionInput(BaseModel):
    """What ``register_function`` accepts as its first argument."""

    id: str
    description: str | None = None
    request_format: RegisterFunctionFormat | dict[str, Any] | None = None
    response_format: RegisterFunctionFormat | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    invocation: HttpInvocationConfig | None = None


class RegisterServiceInput(BaseModel):
    """A service: an organisational group of functions, optionally nested."""

    id: str
    name: str | None = None
    description: str | None = None
    parent_service_id: str | None = None


class RegisterTriggerInput(BaseModel):
    """Binds ``function_id`` to a trigger of type ``type`` with a type-specific ``config``."""

    type: str
    function_id: str
    config: Any = None
    metadata: dict[str, Any] | None = None
    #: Newer engines: namespace of ``function_id`` (default: this worker's) and where to find
    #: the trigger type's provider (default: the engine decides). Engine v0.11.0 ignores both.
    namespace: str | None = None
    trigger_namespace: str | None = None


class RegisterTriggerTypeInput(BaseModel):
    """A custom trigger type; the formats may be JSON Schemas or pydantic model classes."""

    id: str
    description: str
    trigger_request_format: Any | None = None
    call_request_format: Any | None = None


class RegisterFunctionMessage(RegisterFunctionInput):
    """The ``registerfunction`` message (``type`` is exposed as ``message_type``)."""

    model_config = ConfigDict(populate_by_name=True)

    message_type: MessageType = Field(default=MessageType.REGISTER_FUNCTION, alias="type")


class RegisterTriggerMessage(BaseModel):
    """The ``registertrigger`` message; ``config`` is required by the engine (may be null)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    trigger_type: str
    function_id: str
    config: Any
    metadata: dict[str, Any] | None = None
    message_type: MessageType = Field(default=MessageType.REGISTER_TRIGGER, alias="type")
    #: Newer engines (as in iii-sdk 0.25.0): see RegisterTriggerInput.
    namespace: str | None = None
    trigger_namespace: str | None = None


class RegisterTriggerTypeMessage(RegisterTriggerTypeInput):
    """The ``registertriggertype`` message."""

    model_config = ConfigDict(populate_by_name=True)

    message_type: MessageType = Field(default=MessageType.REGISTER_TRIGGER_TYPE, alias="type")
    #: Newer engines (as in iii-sdk 0.25.0): the namespace the type is provided in.
    namespace: str | None = None


# --------------------------------------------------------------------------- invocations


class TriggerActionEnqueue(BaseModel):
    """Route the call through the named queue; the caller gets an :class:`EnqueueResult`."""

    type: Literal["enqueue"] = "enqueue"
    queue: str


class TriggerActionVoid(BaseModel):
    """Fire and forget: the caller gets no result."""

    type: Literal["void"] = "void"


TriggerActionType = Union[TriggerActionEnqueue, TriggerActionVoid]


class TriggerAction:
    """Constructors for the ``action`` of a :class:`TriggerRequest`."""

    @staticmethod
    def Enqueue(*, queue: str) -> TriggerActionEnqueue:  # noqa: N802 - public API name
        return TriggerActionEnqueue(queue=queue)

    @staticmethod
    def Void() -> TriggerActionVoid:  # noqa: N802 - public API name
        return TriggerActionVoid()


class TriggerRequest(BaseModel):
    """Argument of ``trigger()``; no ``action`` means a call that waits for the result."""

    function_id: str
    payload: Any = None
    action: TriggerActionEnqueue | TriggerActionVoid | None = None
    timeout_ms: int | None = None
    #: Newer engines: the namespace ``function_id`` resolves in (default: this worker's).
    namespace: str | None = None
    #: iii-sdk 0.25.0: a per-call metadata sidecar, sent with the call (docs/protocol.md B, C.8.4).
    metadata: Any = None
    #: iii-sdk 0.25.0: ``"auto"`` (run in-process when the engine allows, docs/protocol.md
    #: C.16) or ``"remote"`` (always through the engine).
    dispatch: Literal["auto", "remote"] | None = None


class EnqueueResult(BaseModel):
    """Receipt returned when a call was accepted by a queue.

    Also readable like the dict the official SDK returns (``receipt["messageReceiptId"]``),
    so code written for it keeps working.
    """

    model_config = ConfigDict(extra="allow")

    messageReceiptId: str  # noqa: N815 - wire name

    def _as_dict(self) -> dict[str, Any]:
        return {**dict(self), **(self.model_extra or {})}

    def __getitem__(self, key: str) -> Any:
        return self._as_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._as_dict()

    def get(self, key: str, default: Any = None) -> Any:
        return self._as_dict().get(key, default)


class StreamChannelRef(BaseModel):
    """A serialisable reference to one end of a channel."""

    channel_id: str
    access_key: str
    direction: Literal["read", "write"]


# --------------------------------------------------------------------------- HTTP triggers


class ApiRequest(BaseModel, Generic[TBody]):
    """An HTTP request as delivered to a function bound to an ``http`` trigger."""

    path_params: dict[str, str] = Field(default_factory=dict)
    query_params: dict[str, str | list[str]] = Field(default_factory=dict)
    body: TBody | None = None
    headers: dict[str, str | list[str]] = Field(default_factory=dict)
    method: str = "GET"


class ApiResponse(BaseModel, Generic[TBody]):
    """An HTTP response returned by a function bound to an ``http`` trigger."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    status_code: int = Field(alias="statusCode")
    body: TBody | None = None
    headers: dict[str, str] = Field(default_factory=dict)


# --------------------------------------------------------------------------- listings

#: Worker status values known to engine 0.11.0 (WorkerInfo.status accepts any string).
WorkerStatus = Literal["connected", "available", "busy", "disconnected"]


class _Listing(BaseModel):
    """Base of the listing models: keeps unknown fields and tolerates missing or null ones."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {
            key: value
            for key, value in data.items()
            if not (value is None and key in fields and fields[key].default is not None)
        }


class FunctionInfo(_Listing):
    """One entry of ``list_functions()`` / ``on_functions_available`` callbacks.

    Newer engines omit the formats and add ``namespace`` and ``worker_name`` (kept as extras).
    """

    function_id: str = ""
    description: str | None = None
    request_format: Any = None
    response_format: Any = None
    metadata: Any = None


class TriggerInfo(_Listing):
    """One entry of ``list_triggers()``.

    Engine 0.11.0 lists bindings (``id``, ``trigger_type``, ``function_id``, ``config``); newer
    engines list trigger types here (``id``, ``namespace``, ``worker_name``, ``description``).
    """

    id: str = ""
    trigger_type: str = ""
    function_id: str = ""
    config: Any = None
    metadata: Any = None


class TriggerTypeInfo(_Listing):
    """One entry of ``list_trigger_types()``."""

    id: str = ""
    description: str = ""
    trigger_request_format: Any = None
    call_request_format: Any = None


class WorkerInfo(_Listing):
    """One entry of ``list_workers()``.

    Engine 0.11.0 also reports ``pid`` and ``latest_metrics``; newer engines drop
    ``functions`` and add ``namespace``, ``description`` and ``isolation``. Unlisted fields are
    kept as extras.
    """

    id: str = ""
    name: str | None = None
    runtime: str | None = None
    version: str | None = None
    os: str | None = None
    ip_address: str | None = None
    status: str = "connected"
    connected_at_ms: int = 0
    function_count: int = 0
    functions: list[str] = Field(default_factory=list)
    active_invocations: int = 0


#: Callback of ``on_functions_available``: receives the complete function list.
FunctionsAvailableCallback = Callable[[list[FunctionInfo]], None]


# --------------------------------------------------------------------------- client protocol


class IIIClient(Protocol):
    """The client surface that helpers and user code can type against (``III`` provides it)."""

    def register_function(
        self,
        func: RegisterFunctionInput | dict[str, Any] | str,
        handler_or_invocation: RemoteFunctionHandler | HttpInvocationConfig,
        *args: Any,
        **kwargs: Any,
    ) -> Any: ...

    def register_trigger(self, trigger: RegisterTriggerInput | dict[str, Any]) -> Trigger: ...

    def register_service(self, service: RegisterServiceInput | dict[str, Any]) -> None: ...

    def register_trigger_type(
        self, trigger_type: RegisterTriggerTypeInput | dict[str, Any], handler: TriggerHandler[Any]
    ) -> Any: ...

    def unregister_trigger_type(self, trigger_type: RegisterTriggerTypeInput | dict[str, Any]) -> None: ...

    def trigger(self, request: dict[str, Any] | TriggerRequest) -> Any: ...

    def current_invocation(self) -> Any: ...

    def list_functions(self) -> list[FunctionInfo]: ...

    def list_triggers(self, include_internal: bool = False) -> list[TriggerInfo]: ...

    def list_trigger_types(self, include_internal: bool = False) -> list[TriggerTypeInfo]: ...

    def create_channel(self, buffer_size: int | None = None) -> Any: ...

    def create_stream(self, stream_name: str, stream: IStream[Any]) -> None: ...

    def on_functions_available(self, callback: FunctionsAvailableCallback) -> Callable[[], None]: ...

    def shutdown(self) -> None: ...


# --------------------------------------------------------------------------- registry entries
# The official SDK keeps its registrations in these shapes; they are public there, so they
# are here too. This SDK keeps its own registry in the Rust core and does not use them.


class RemoteFunctionData(BaseModel):
    """A registered function: its registration message and, for local functions, its handler."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    message: RegisterFunctionMessage
    handler: RemoteFunctionHandler | None = None


class RemoteServiceFunctionData(BaseModel):
    """A function registered as part of a service; always has a local handler."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    message: RegisterFunctionMessage
    handler: RemoteFunctionHandler


class RemoteTriggerTypeData(BaseModel):
    """A registered trigger type and the handler that serves its bindings."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    message: RegisterTriggerTypeMessage
    handler: TriggerHandler[Any]


class Invocation(Generic[TOutput]):
    """The pending outcome of one call, settled once by :meth:`resolve` or :meth:`reject`."""

    def __init__(self, future: asyncio.Future[TOutput]) -> None:
        self._future = future

    def resolve(self, value: TOutput) -> None:
        """Settles the call with ``value``; ignored when it is already settled."""
        if not self._future.done():
            self._future.set_result(value)

    def reject(self, error: Exception) -> None:
        """Settles the call with ``error``; ignored when it is already settled."""
        if not self._future.done():
            self._future.set_exception(error)
