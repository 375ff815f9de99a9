"""Official path ``iii_helpers.worker_connection_manager`` (iii-helpers 0.25.0): the RBAC
models of the worker connection manager. Re-exports of ``iii._rbac``."""

from iii._rbac import (
    AuthInput,
    AuthResult,
    OnFunctionRegistrationInput,
    OnFunctionRegistrationResult,
    OnTriggerRegistrationInput,
    OnTriggerRegistrationResult,
    OnTriggerTypeRegistrationInput,
    OnTriggerTypeRegistrationResult,
)

__all__ = [
    "AuthInput",
    "AuthResult",
    "OnFunctionRegistrationInput",
    "OnFunctionRegistrationResult",
    "OnTriggerRegistrationInput",
    "OnTriggerRegistrationResult",
    "OnTriggerTypeRegistrationInput",
    "OnTriggerTypeRegistrationResult",
]
