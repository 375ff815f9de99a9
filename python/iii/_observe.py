"""The observe family of iii-sdk 0.25.0: its public types, and honest placeholders for what
needs observer support in the client.

Defined faithfully here (plain data): :data:`Capture`, :data:`ObserverState`, :data:`Filter`,
:data:`Delivery`, :data:`Target` and the TypedDicts (:class:`Caller`, :class:`Observed`,
:class:`ObserveSource`, :class:`ObserverOptions`, ...), :class:`ObserveHooks` (the value of
``register_function(observe=...)``), :class:`InvocationContext` and the two errors
:class:`ObserveRejection` and :class:`RegistrationRejectedError`.

Implemented: :func:`current_invocation` (the running invocation's context, ``None`` outside a
handler).

Not implemented yet (they need the engine's ``observe.v1`` protocol in the client): building an
:class:`Observer` or :class:`ObserverHandle` raises ``NotImplementedError``; nothing pretends to
observe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Union, cast

if TYPE_CHECKING:
    from . import _iii

__all__ = [
    "Caller",
    "CallerParent",
    "Capture",
    "Delivery",
    "Filter",
    "InvocationContext",
    "ObserveHook",
    "ObserveHooks",
    "ObserveReason",
    "ObserveRejection",
    "ObserveSource",
    "Observed",
    "Observer",
    "ObserverHandle",
    "ObserverOptions",
    "ObserverState",
    "RegistrationRejectedError",
    "Target",
    "TargetRef",
    "current_invocation",
]

_NOT_YET = (
    "arrives with observers support (the engine's observe.v1 protocol); this SDK does not implement it yet"
)

#: What an observer ships to its target.
Capture = Literal["input", "output", "error", "caller", "metadata"]

#: An observer's lifecycle state.
ObserverState = Literal["pending", "active", "suspended", "error", "disposed"]

#: A declarative filter over ``input``, ``output``, ``error``, ``caller`` and ``metadata``.
Filter = dict[str, Any]

#: How a function's observers are delivered: by the engine (``auto``) or its handler (``owner``).
Delivery = Literal["auto", "owner"]


class TargetRef(TypedDict, total=False):
    """A target function, with its namespace."""

    function_id: str
    namespace: str


#: The target of an observer: a function id, or ``{function_id, namespace?}``.
Target = Union[str, TargetRef]


class ObserveReason(TypedDict):
    """Why an observer is in its state: a machine-readable code and a message."""

    code: str
    message: str


class CallerParent(TypedDict, total=False):
    """The caller of a caller (one level)."""

    worker_id: str
    worker_name: str
    function_id: str
    invocation_id: str


class Caller(CallerParent, total=False):
    """Who started an invocation (worker, and the function / invocation calling from)."""

    parent: CallerParent


class Observed(TypedDict, total=False):
    """The envelope an observer's target receives (fields outside ``capture`` absent)."""

    observer_id: str
    activation_id: str
    function_id: str
    namespace: str
    invocation_id: str
    status: Literal["success", "error"]
    input: Any
    output: Any
    error: dict[str, Any]
    caller: Caller
    metadata: dict[str, Any]
    started_at_ms: int
    duration_ms: float


class _ObserveSourceRequired(TypedDict):
    function_id: str


class ObserveSource(_ObserveSourceRequired, total=False):
    """What an observer observes: a function, with optional filters and delivery settings."""

    namespace: str
    args: dict[str, Any]
    filters: Filter
    on: Literal["success", "error", "complete"]
    capture: list[Capture]
    deliver: Literal["envelope", "input", "output"]


class ObserverOptions(TypedDict, total=False):
    """An observer's id, limits and metadata."""

    id: str
    max_fires: int
    expires_in_ms: int
    max_in_flight: int
    metadata: dict[str, Any]


#: ``on_observer_added`` / ``on_observer_removed`` callbacks (sync or async).
ObserveHook = Callable[["Observer"], Union[None, Awaitable[None]]]

_UNSET: Any = object()


class ObserveHooks:
    """How a function's observers are delivered, and callbacks for observers added / removed.

    Build it with keyword arguments, or subclass it and set the attributes / define the
    callbacks as methods (keyword arguments override class attributes). This SDK's
    ``register_function`` does not take ``observe=`` yet: the value can be built and inspected
    but has no effect until observers support arrives.
    """

    delivery: Delivery | None = None
    args_format: Any = None
    legacy_trigger_type: str | None = None
    allow: bool | None = None
    on_observer_added: ObserveHook | None = None
    on_observer_removed: ObserveHook | None = None

    def __init__(
        self,
        *,
        delivery: Delivery | None = _UNSET,
        args_format: Any = _UNSET,
        legacy_trigger_type: str | None = _UNSET,
        allow: bool | None = _UNSET,
        on_observer_added: ObserveHook | None = _UNSET,
        on_observer_removed: ObserveHook | None = _UNSET,
    ) -> None:
        given = {
            "delivery": delivery,
            "args_format": args_format,
            "legacy_trigger_type": legacy_trigger_type,
            "allow": allow,
            "on_observer_added": on_observer_added,
            "on_observer_removed": on_observer_removed,
        }
        for name, value in given.items():
            if value is not _UNSET:
                setattr(self, name, value)

    @classmethod
    def from_value(cls, value: ObserveHooks | dict[str, Any] | None) -> ObserveHooks | None:
        """``value`` as an ``ObserveHooks`` (``None`` stays ``None``, a dict gives keywords)."""
        if value is None or isinstance(value, ObserveHooks):
            return value
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(f"observe must be an ObserveHooks or a dict, got {type(value).__name__}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(delivery={self.delivery!r}, "
            f"legacy_trigger_type={self.legacy_trigger_type!r}, allow={self.allow!r})"
        )


@dataclass(frozen=True)
class InvocationContext:
    """The invocation the current code runs in (what ``current_invocation()`` returns)."""

    function_id: str
    invocation_id: str
    observe_depth: int = 0
    caller: Caller | None = None
    activation: dict[str, Any] | None = None


#: The invocation whose handler runs in this context (``_iii.Invocation``), set by the
#: dispatcher in the fresh context each invocation gets (``_dispatch.Dispatcher._context``):
#: async handlers and the tasks they start inherit it, sync handlers run in that context on
#: their thread, and nothing else (trigger-type handlers, callbacks, other invocations) sees
#: it. One per process, shared by every client, as in iii-sdk 0.25.0.
CURRENT: ContextVar[_iii.Invocation | None] = ContextVar("iii_current_invocation", default=None)


def current_invocation() -> InvocationContext | None:
    """The invocation the calling code runs in: inside a function's handler (async or sync,
    stream handlers included), its :class:`InvocationContext`; ``None`` anywhere else,
    trigger-type handlers included (as in iii-sdk 0.25.0)."""
    inv = CURRENT.get()
    if inv is None:
        return None
    return InvocationContext(
        function_id=inv.function_id,
        invocation_id=inv.context_id,
        observe_depth=inv.observe_depth,
        caller=cast("Caller | None", inv.caller),
        activation=inv.activation,
    )


class Observer:
    """An observer of one of this worker's functions (owner side). Not implemented yet."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"Observer {_NOT_YET}")


class ObserverHandle:
    """The handle ``iii.observe()`` returns. Not implemented yet."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"ObserverHandle {_NOT_YET}")


class ObserveRejection(Exception):
    """Rejects an observer with a code of its own (raised from an ``on_observer_added``
    hook), and what a failed observer reports (``code``, ``message``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)  # both in args: the error pickles whole
        self.code = code
        self.message = message


# Defined with the other exceptions (it is a NotConnectedError); imported last, after
# ObserveRejection, because iii.errors imports that from here.
from .errors import RegistrationRejectedError  # noqa: E402
