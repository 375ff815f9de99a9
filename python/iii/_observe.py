"""The observe family of iii-sdk 0.25.0 (docs/protocol.md C.8-C.17), the Python side.

Plain data: :data:`Capture`, :data:`ObserverState`, :data:`Filter`, :data:`Delivery`,
:data:`Target` and the TypedDicts (:class:`Caller`, :class:`Observed`, :class:`ObserveSource`,
:class:`ObserverOptions`, ...), :class:`ObserveHooks` (the value of
``register_function(observe=...)``), :class:`InvocationContext` and the two errors
:class:`ObserveRejection` and :class:`RegistrationRejectedError`.

Thin objects over the Rust core (``crates/core/src/observe``), which holds the observers, their
filters, replays and reports: :class:`ObserverHandle` (the observing side, what
``III.observe`` returns, fed by the core's ``ObserverEvent`` items) and :class:`Observer` (an
observer as the observed function's owner sees it, over the core's ``FunctionState``).
:class:`LocalInvocation` is the invocation context of a call run in-process (``_local.py``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from random import getrandbits
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict, Union, cast

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

log = logging.getLogger("iii.observe")

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
    callbacks as methods (keyword arguments override class attributes). Only ``delivery``,
    ``args_format``, ``legacy_trigger_type`` and ``allow`` travel to the engine; the callbacks
    run in this process (one at a time per function, in the engine's order, 30 s each).
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


def caller_from(identity: dict[str, Any], current: Any) -> dict[str, Any]:
    """The caller of something this worker does now: ``identity`` (its ``worker_id`` and
    ``worker_name``) and, inside a handler (``current``), that handler's function and invocation
    and its own caller without that caller's ``parent`` (docs/protocol.md C.8.1, C.14)."""
    if current is not None:
        identity["function_id"] = current.function_id
        identity["invocation_id"] = current.context_id
        grand = strip_caller(current.caller)
        if grand:
            identity["parent"] = grand
    return identity


class LocalInvocation:
    """The context of a call run in-process (local dispatch, docs/protocol.md C.16): the
    attributes of an ``_iii.Invocation`` that are read through :data:`CURRENT`.

    NOTE(perf): the id, the caller and the core's ``Invocation`` (:meth:`wire`, what a call
    made from the handler names as its parent) are made when first needed
    (``current_invocation()``, a nested call, a report, a timeout), not for every local call."""

    __slots__ = ("function_id", "_id", "observe_depth", "_caller", "_parent", "_identity", "metadata",
                 "traceparent", "baggage", "local_depth", "_wire")  # fmt: skip

    activation = None

    def __init__(
        self,
        function_id: str,
        parent: _iii.Invocation | LocalInvocation | None,
        identity: Callable[[], dict[str, Any]],
        metadata: Any,
        traceparent: str | None,
        baggage: str | None,
    ) -> None:
        self.function_id = function_id
        self._id: str | None = None
        self._caller: dict[str, Any] | None = None
        self._parent = parent
        self._identity = identity
        self.metadata = metadata
        self.traceparent = traceparent
        self.baggage = baggage
        self._wire: _iii.Invocation | None = None
        if parent is None:
            self.observe_depth = 0
            self.local_depth = 1
        else:
            self.observe_depth = parent.observe_depth
            self.local_depth = parent.local_depth + 1 if type(parent) is LocalInvocation else 1

    def wire(self) -> _iii.Invocation:
        """This invocation as the core's ``Invocation`` (made once)."""
        if self._wire is None:
            from . import _iii

            self._wire = _iii.Invocation.local(
                self.function_id,
                self.context_id,
                self.caller,
                self.observe_depth,
                self.metadata,
                self.local_depth,
            )
        return self._wire

    @property
    def context_id(self) -> str:
        """A fresh UUID v4, made once."""
        if self._id is None:
            self._id = new_uuid4()
        return self._id

    invocation_id = context_id

    @property
    def caller(self) -> dict[str, Any]:
        """This worker (``worker_id``, ``worker_name``), and, when a handler made the call,
        its function, invocation and caller (without that caller's own ``parent``)."""
        if self._caller is None:
            self._caller = caller_from(self._identity(), self._parent)
        return self._caller


_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))


def new_uuid4() -> str:
    """A random UUID v4 as text, from the ``random`` module's generator (seeded from the OS,
    reseeded in forked children): an invocation id, not a secret.

    NOTE(perf): ``str(uuid.uuid4())`` cost an observed local call 2.6 of its 11 us."""
    text = "%032x" % (getrandbits(128) & _VERSION_MASK | _VERSION_4)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def strip_caller(caller: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A caller one level up: without its own ``parent``."""
    if not caller:
        return None
    return {k: v for k, v in caller.items() if k != "parent"} or None


#: The invocation whose handler runs in this context (an ``_iii.Invocation``, or a
#: :class:`LocalInvocation` for a call run in-process), set by the dispatcher in the fresh
#: context each invocation gets (``_dispatch.Dispatcher._context``): async handlers and the
#: tasks they start inherit it, sync handlers run in that context on their thread, and
#: nothing else (trigger-type handlers, observe hooks, callbacks, other invocations) sees it.
#: One per process, shared by every client, as in iii-sdk 0.25.0.
CURRENT: ContextVar[_iii.Invocation | LocalInvocation | None] = ContextVar(
    "iii_current_invocation", default=None
)


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


#: A listener of :meth:`ObserverHandle.on_state_change`: ``(state, reason)``.
StateListener = Callable[[ObserverState, "ObserveReason | None"], None]

#: How long :meth:`ObserverHandle.dispose` waits for the engine's ``disposed``.
DISPOSE_WAIT_S = 5.0
_SETTLED = ("active", "error", "disposed")


class _HandleHost(Protocol):
    """What an :class:`ObserverHandle` needs from its client."""

    def _observer_unobserve(self, handle: ObserverHandle) -> bool:
        """Sends ``unobserve`` (or queues it); True when the engine will answer it."""

    def _observer_forget(self, handle: ObserverHandle) -> None:
        """Drops the handle from the client's registry."""

    def _on_sdk_thread(self) -> bool: ...

    def _run_callback(self, callback: Callable[[], None]) -> None:
        """Runs ``callback`` on the SDK's callback thread (in order, off the SDK loop)."""


class ObserverHandle:
    """An observer this worker created (``III.observe``): its id, state and reason.

    The Rust core keeps the observer and sends it again, with the same id, on every connection
    to an engine that observes, until it is disposed; its state changes arrive here.
    ``on_state_change`` listeners are called in order on an SDK thread that is not the SDK's
    event loop, so they may use the blocking API.
    """

    def __init__(self, observer_id: str, host: _HandleHost) -> None:
        self.id = observer_id
        self._host = host
        self._state: str = "pending"
        self._reason: ObserveReason | None = None
        self._warnings: list[str] = []
        self._changed = threading.Condition()
        self._listeners: list[StateListener] = []
        self._waiters: list[tuple[tuple[str, ...], asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._undelivered: deque[tuple[str, ObserveReason | None]] = deque()
        self._delivering = False

    @property
    def state(self) -> ObserverState:
        """``pending``, ``active``, ``suspended``, ``error`` or ``disposed`` (a state a newer
        engine sends is kept as it is, and waited through like ``pending``)."""
        return cast(ObserverState, self._state)

    @property
    def reason(self) -> ObserveReason | None:
        """Why the observer is in its state (``{code, message}``), when it was told."""
        return self._reason

    def _rejection(self) -> ObserveRejection | None:
        if self._state == "active":
            return None
        reason = self._reason or {
            "code": "UNOBSERVED" if self._state == "disposed" else "OBSERVER_ERROR",
            "message": f"observer {self.id} is {self._state}",
        }
        return ObserveRejection(reason["code"], reason["message"])

    def ready(self, timeout: float | None = None) -> None:
        """Blocks until the observer is ``active`` (waiting through ``pending`` and
        ``suspended``). Any thread but the SDK's event loop; in async code use
        :meth:`ready_async`.

        Raises :class:`ObserveRejection` (the reason's ``code``) when it is ``error`` or
        ``disposed``; ``TimeoutError`` after ``timeout`` seconds."""
        if self._host._on_sdk_thread():
            raise RuntimeError(
                "ObserverHandle.ready() blocks: it cannot run on the SDK's event loop; "
                "use await handle.ready_async()"
            )
        with self._changed:
            if not self._changed.wait_for(lambda: self._state in _SETTLED, timeout):
                raise TimeoutError(f"observer {self.id} is still {self._state} after {timeout} s")
            rejection = self._rejection()
        if rejection is not None:
            raise rejection

    async def ready_async(self) -> None:
        """:meth:`ready` for any event loop (the SDK's included)."""
        await self._until(_SETTLED)
        rejection = self._rejection()
        if rejection is not None:
            raise rejection

    async def _until(self, states: tuple[str, ...], timeout: float | None = None) -> None:
        """Waits on the running loop until the state is one of ``states``."""
        loop = asyncio.get_running_loop()
        with self._changed:
            if self._state in states:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            entry = (states, loop, waiter)
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(waiter, timeout)
        finally:
            with self._changed:
                if entry in self._waiters:
                    self._waiters.remove(entry)

    def on_state_change(self, listener: StateListener) -> Callable[[], None]:
        """Calls ``listener(state, reason)`` at every change of state or reason, in order;
        returns a function that removes it (idempotent)."""
        self._listeners.append(listener)

        def off() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return off

    def dispose(self) -> None:
        """Removes the observer: sends ``unobserve`` (queued while offline; the observer is
        not sent again) and waits up to 5 s for the engine's ``disposed``, after which it is
        disposed here with reason ``UNOBSERVED``. On the SDK's event loop it does not wait."""
        if self._state == "disposed":
            return
        if self._host._observer_unobserve(self) and not self._host._on_sdk_thread():
            with self._changed:
                self._changed.wait_for(lambda: self._state == "disposed", DISPOSE_WAIT_S)
        self._dispose_here()

    async def dispose_async(self) -> None:
        """:meth:`dispose` for async code (any loop): waits without blocking the loop."""
        if self._state == "disposed":
            return
        if self._host._observer_unobserve(self):
            try:
                await self._until(("disposed",), DISPOSE_WAIT_S)
            except asyncio.TimeoutError:
                pass
        self._dispose_here()

    def _dispose_here(self) -> None:
        self._update("disposed", {"code": "UNOBSERVED", "message": "disposed by the observing worker"})
        self._host._observer_forget(self)

    def _update(self, state: str, reason: ObserveReason | None, warnings: list[str] | None = None) -> None:
        """A state from the core (``observeresult``, ``observerstatechanged``, ``UNSUPPORTED``)
        or from this SDK. Nothing changes once disposed."""
        with self._changed:
            if self._state == "disposed":
                return
            changed = state != self._state or reason != self._reason
            self._state, self._reason = state, reason
            if warnings:
                self._warnings = list(warnings)
            self._changed.notify_all()
            woken = [w for w in self._waiters if state in w[0]]
            for w in woken:
                self._waiters.remove(w)
            start = False
            if changed:
                self._undelivered.append((state, reason))
                start, self._delivering = not self._delivering, True
        for _, loop, waiter in woken:
            try:
                loop.call_soon_threadsafe(_wake, waiter)
            except RuntimeError:
                pass  # that loop is closed: nobody waits any more
        if start:
            self._host._run_callback(self._deliver)

    def _deliver(self) -> None:
        while True:
            with self._changed:
                if not self._undelivered:
                    self._delivering = False
                    return
                state, reason = self._undelivered.popleft()
            for listener in list(self._listeners):
                try:
                    listener(cast(ObserverState, state), reason)
                except Exception:
                    log.exception("state listener of observer %s raised", self.id)

    def __repr__(self) -> str:
        return f"ObserverHandle(id={self.id!r}, state={self._state!r})"


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _OwnerHost(Protocol):
    """What an :class:`Observer` needs from its client."""

    def _event_caller(self, function_id: str, cur: Any) -> tuple[dict[str, Any] | None, str]: ...

    def _trace_headers(self, cur: Any) -> tuple[str | None, str | None]: ...

    def _observer_call(self, observer: Observer, payload: Any, timeout_ms: int | None) -> Any: ...

    async def _observer_call_async(self, observer: Observer, payload: Any, timeout_ms: int | None) -> Any: ...


class Observer:
    """An observer of one of this worker's functions, as its owner sees it (the argument of
    ``on_observer_added`` / ``on_observer_removed``, the items of ``FunctionRef.observers()``):
    ``id``, ``function_id``, ``args``, ``filters`` (normal form), ``target`` (the target's
    function id), ``capture``, ``on`` and ``legacy``. Never its metadata, policy or worker.
    The same object for the observer's whole life, so owners may keep it in their own index.
    """

    def __init__(
        self, function_id: str, view: Mapping[str, Any], state: _iii.FunctionState, host: _OwnerHost
    ):
        self.id: str = view["id"]
        self.function_id = function_id
        self._state = state
        self._host = host
        self._removing = False  # its on_observer_removed is queued (see _owner)
        self._accepted = False  # its on_observer_added accepted it (see _owner)
        self._update(view)

    def _update(self, view: Mapping[str, Any]) -> None:
        """Takes the engine's current view."""
        args = view.get("args")
        self.args: dict[str, Any] = args if args is not None else {}
        self.filters: dict[str, Any] = view.get("filters") or {}
        self.target: str = view.get("target") or ""
        capture = view.get("capture")
        self.capture: list[str] = list(capture) if capture is not None else ["input", "output", "caller"]
        self.on: str = view.get("on") or "success"
        self.legacy: dict[str, Any] | None = view.get("legacy")

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """Whether the observer's filters accept ``doc`` (``{input?, output?, error?, caller?,
        metadata?}``), evaluated by the core's compiled filter."""
        return self._state.matches(self.id, dict(doc))

    def _context(self) -> tuple[Any, dict[str, Any] | None, str, Any]:
        cur = CURRENT.get()
        caller, invocation_id = self._host._event_caller(self.function_id, cur)
        return cur, caller, invocation_id, cur.metadata if cur is not None else None

    def emit(self, event: Any) -> bool:
        """Owner delivery, fire and forget: hands ``event`` to this observer's target.

        False (nothing sent) when the observer is not active or its filters reject
        ``{input: event, caller, metadata}``. Raises :class:`iii.InvocationError`
        ``NOT_OWNER_DELIVERED`` on an auto function."""
        cur, caller, invocation_id, metadata = self._context()
        traceparent, baggage = self._host._trace_headers(cur)
        depth = cur.observe_depth if cur is not None else 0
        return self._state.emit(self.id, event, caller, metadata, invocation_id, depth, traceparent, baggage)

    def call(self, payload: Any, *, timeout_ms: int | None = None) -> Any:
        """Owner delivery, request / response: calls the target with ``payload`` (marked as
        this observer's activation) and returns its result. Blocks; see :meth:`call_async`.

        Raises :class:`iii.InvocationError`: ``FILTERS_NOT_MATCHED``, ``OBSERVER_NOT_ACTIVE``
        or ``NOT_OWNER_DELIVERED`` (nothing sent), or the engine's / target's error."""
        _, caller, _, metadata = self._context()
        self._state.check_call(self.id, payload, caller, metadata)
        return self._host._observer_call(self, payload, timeout_ms)

    async def call_async(self, payload: Any, *, timeout_ms: int | None = None) -> Any:
        """:meth:`call` for async code."""
        _, caller, _, metadata = self._context()
        self._state.check_call(self.id, payload, caller, metadata)
        return await self._host._observer_call_async(self, payload, timeout_ms)

    def reject(self, code: str, message: str) -> None:
        """Rejects a live observer late (e.g. after a configuration change): it stops
        receiving at once and the engine is told; ``on_observer_removed`` runs when the engine
        removes it."""
        self._state.reject(self.id, code, message)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "function_id": self.function_id,
            "args": self.args,
            "filters": self.filters,
            "target": self.target,
            "capture": self.capture,
            "on": self.on,
        }
        if self.legacy is not None:
            out["legacy"] = self.legacy
        return out

    def __repr__(self) -> str:
        return (
            f"Observer(id={self.id!r}, function_id={self.function_id!r}, target={self.target!r}, "
            f"args={self.args!r})"
        )


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
