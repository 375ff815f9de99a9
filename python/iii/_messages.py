"""Pydantic models of the protocol messages that :mod:`iii.types` does not already define.

The official SDK builds and parses its messages with these models, and they are public there
(``iii.iii_types``). This SDK encodes and decodes messages in its Rust core (docs/protocol.md), so
these models are for user code that builds or inspects messages itself; as on the wire,
``type`` is exposed as ``message_type``.
"""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field

from ._models import (
    MessageType,
    RegisterFunctionMessage,
    RegisterTriggerMessage,
    RegisterTriggerTypeMessage,
    TriggerActionEnqueue,
    TriggerActionVoid,
)

__all__ = [
    "IIIMessage",
    "InvocationResultMessage",
    "InvokeFunctionMessage",
    "OtelLogEvent",
    "RegisterServiceMessage",
    "TriggerRegistrationResultMessage",
    "UnregisterFunctionMessage",
    "UnregisterTriggerMessage",
    "UnregisterTriggerTypeMessage",
    "WorkerRegisteredMessage",
]


class _Message(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class UnregisterFunctionMessage(_Message):
    """``unregisterfunction``: removes one of this worker's functions."""

    id: str
    message_type: MessageType = Field(default=MessageType.UNREGISTER_FUNCTION, alias="type")


class RegisterServiceMessage(_Message):
    """``registerservice``: declares a service (a group of functions)."""

    id: str
    name: str | None = None
    description: str | None = None
    parent_service_id: str | None = None
    message_type: MessageType = Field(default=MessageType.REGISTER_SERVICE, alias="type")


class UnregisterTriggerMessage(_Message):
    """``unregistertrigger``: removes a trigger binding."""

    id: str
    message_type: MessageType = Field(default=MessageType.UNREGISTER_TRIGGER, alias="type")
    trigger_type: str | None = None


class UnregisterTriggerTypeMessage(_Message):
    """``unregistertriggertype``: removes a trigger type this worker provides."""

    id: str
    message_type: MessageType = Field(default=MessageType.UNREGISTER_TRIGGER_TYPE, alias="type")


class TriggerRegistrationResultMessage(_Message):
    """``triggerregistrationresult``: a trigger type provider's answer to a binding."""

    id: str
    trigger_type: str
    function_id: str
    result: Any = None
    error: Any = None
    message_type: MessageType = Field(default=MessageType.TRIGGER_REGISTRATION_RESULT, alias="type")


class InvokeFunctionMessage(_Message):
    """``invokefunction``: a call, in either direction; no ``invocation_id`` means no reply."""

    function_id: str
    data: Any
    invocation_id: str | None = None
    traceparent: str | None = None
    baggage: str | None = None
    action: TriggerActionEnqueue | TriggerActionVoid | None = None
    message_type: MessageType = Field(default=MessageType.INVOKE_FUNCTION, alias="type")


class InvocationResultMessage(_Message):
    """``invocationresult``: the outcome of a call, ``result`` or ``error``."""

    invocation_id: str
    function_id: str
    result: Any = None
    error: Any = None
    traceparent: str | None = None
    baggage: str | None = None
    message_type: MessageType = Field(default=MessageType.INVOCATION_RESULT, alias="type")


class WorkerRegisteredMessage(_Message):
    """``workerregistered``: the engine's greeting, with the id it gave this worker."""

    worker_id: str
    message_type: MessageType = Field(default=MessageType.WORKER_REGISTERED, alias="type")


class OtelLogEvent(BaseModel):
    """One OpenTelemetry log record as the engine reports it to log subscribers."""

    timestamp_unix_nano: int
    observed_timestamp_unix_nano: int
    severity_number: int
    severity_text: str
    body: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    trace_id: str | None = None
    span_id: str | None = None
    resource: dict[str, str] = Field(default_factory=dict)
    service_name: str = ""
    instrumentation_scope_name: str | None = None
    instrumentation_scope_version: str | None = None


#: Any message of the core protocol.
IIIMessage = Union[
    RegisterFunctionMessage,
    UnregisterFunctionMessage,
    InvokeFunctionMessage,
    InvocationResultMessage,
    RegisterServiceMessage,
    RegisterTriggerMessage,
    RegisterTriggerTypeMessage,
    UnregisterTriggerMessage,
    UnregisterTriggerTypeMessage,
    TriggerRegistrationResultMessage,
    WorkerRegisteredMessage,
]
