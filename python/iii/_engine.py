"""Engine identifiers and protocol feature names (official ``iii.iii_constants`` /
``iii.iii_types`` of iii-sdk 0.25.0, re-exported by ``iii.engine`` and ``iii.protocol``).

``EngineFunctions`` / ``EngineTriggers`` name the engine's built-in functions and trigger
types, for ``iii.trigger({"function_id": EngineFunctions.LIST_FUNCTIONS, ...})`` (0.25 removed
the ``list_*`` helpers; this package keeps them for 0.11 code).

Feature names: an iii-sdk 0.25 worker lists the protocol features it implements in
``engine::workers::register``, in 0.25's order: ``observe.v1`` (observers and observable
functions), ``local-dispatch.v1`` (its own functions run in-process), ``large-messages.v1`` (it
receives messages up to 64 MiB).
"""

from __future__ import annotations

import os
from typing import Final

__all__ = [
    "DEFAULT_ENGINE_URL",
    "FEATURE_LARGE_MESSAGES_V1",
    "FEATURE_LOCAL_DISPATCH_V1",
    "FEATURE_OBSERVE_V1",
    "SDK_FEATURES",
    "EngineFunctions",
    "EngineTriggers",
    "resolve_engine_url",
]

#: The engine address iii-sdk 0.25.0 uses when no address is given (``register_worker()``).
DEFAULT_ENGINE_URL: Final[str] = "ws://127.0.0.1:49134"

#: Observers (``iii.observe``, ``ObserveHooks``).
FEATURE_OBSERVE_V1: Final[str] = "observe.v1"
#: In-process dispatch of calls to this worker's own functions.
FEATURE_LOCAL_DISPATCH_V1: Final[str] = "local-dispatch.v1"
#: "I accept inbound JSON up to 64 MiB" (negotiated by 0.25 workers): declared here.
FEATURE_LARGE_MESSAGES_V1: Final[str] = "large-messages.v1"

#: The features this SDK declares to the engine (``features`` of ``engine::workers::register``).
SDK_FEATURES: Final[tuple[str, ...]] = (
    FEATURE_OBSERVE_V1,
    FEATURE_LOCAL_DISPATCH_V1,
    FEATURE_LARGE_MESSAGES_V1,
)


class EngineFunctions:
    """Ids of the engine's built-in functions (call them with ``iii.trigger``)."""

    LIST_FUNCTIONS: Final[str] = "engine::functions::list"
    INFO_FUNCTIONS: Final[str] = "engine::functions::info"
    LIST_WORKERS: Final[str] = "engine::workers::list"
    INFO_WORKERS: Final[str] = "engine::workers::info"
    LIST_TRIGGERS: Final[str] = "engine::triggers::list"
    INFO_TRIGGERS: Final[str] = "engine::triggers::info"
    LIST_REGISTERED_TRIGGERS: Final[str] = "engine::registered-triggers::list"
    INFO_REGISTERED_TRIGGERS: Final[str] = "engine::registered-triggers::info"
    REGISTER_WORKER: Final[str] = "engine::workers::register"


class EngineTriggers:
    """Ids of the engine's built-in trigger types."""

    FUNCTIONS_AVAILABLE: Final[str] = "engine::functions-available"
    LOG: Final[str] = "log"


def resolve_engine_url(address: str | None = None) -> str:
    """The engine address to use: ``address`` if given (not empty), else ``III_URL`` (not
    empty), else :data:`DEFAULT_ENGINE_URL`."""
    if address:
        return address
    return os.environ.get("III_URL") or DEFAULT_ENGINE_URL
