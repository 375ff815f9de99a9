"""Models of the RBAC hooks an engine listener can call on a worker.

An RBAC-enabled listener may call worker functions to authenticate a connection
(:class:`AuthInput` -> :class:`AuthResult`), to intercept calls (middleware) and to vet
registrations (``On*RegistrationInput`` -> ``On*RegistrationResult``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ._models import TriggerActionEnqueue, TriggerActionVoid

__all__ = [
    "AuthInput",
    "AuthResult",
    "MiddlewareFunctionInput",
    "OnFunctionRegistrationInput",
    "OnFunctionRegistrationResult",
    "OnTriggerRegistrationInput",
    "OnTriggerRegistrationResult",
    "OnTriggerTypeRegistrationInput",
    "OnTriggerTypeRegistrationResult",
]


class AuthInput(BaseModel):
    """Input of an RBAC authentication function (the WebSocket upgrade request)."""

    headers: dict[str, str]
    query_params: dict[str, list[str]]
    ip_address: str


class AuthResult(BaseModel):
    """Output of an RBAC authentication function: what the session may do.

    As in iii-helpers 0.25.0 every field has a default, and ``namespaces`` (newer engines)
    grants function patterns per namespace, e.g. ``{"orders": ["svc::*"]}``.
    """

    namespaces: dict[str, list[str]] = Field(default_factory=dict)
    allowed_functions: list[str] = Field(default_factory=list)
    forbidden_functions: list[str] = Field(default_factory=list)
    allowed_trigger_types: list[str] | None = None
    allow_trigger_type_registration: bool = False
    allow_function_registration: bool = True
    function_registration_prefix: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)


class MiddlewareFunctionInput(BaseModel):
    """Input of an RBAC middleware function, called instead of the target."""

    function_id: str
    payload: dict[str, Any]
    action: TriggerActionEnqueue | TriggerActionVoid | None = None
    context: dict[str, Any]
    #: Newer engines: the namespace the call addressed (forward it to stay there).
    namespace: str | None = None


class OnTriggerTypeRegistrationInput(BaseModel):
    trigger_type_id: str
    description: str
    context: dict[str, Any]


class OnTriggerTypeRegistrationResult(BaseModel):
    trigger_type_id: str | None = None
    description: str | None = None


class OnTriggerRegistrationInput(BaseModel):
    trigger_id: str
    trigger_type: str
    function_id: str
    config: Any = None
    metadata: dict[str, Any] | None = None
    context: dict[str, Any]
    #: Newer engines: the namespace of the binding.
    namespace: str = "default"


class OnTriggerRegistrationResult(BaseModel):
    trigger_id: str | None = None
    trigger_type: str | None = None
    function_id: str | None = None
    config: Any = None


class OnFunctionRegistrationInput(BaseModel):
    function_id: str
    description: str | None = None
    metadata: dict[str, Any] | None = None
    context: dict[str, Any]
    #: Newer engines: the namespace the function registers in.
    namespace: str = "default"


class OnFunctionRegistrationResult(BaseModel):
    function_id: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
