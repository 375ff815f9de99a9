"""How the SDK runs handlers: its event-loop thread, its sync-handler threads, and the reading
of the engine link on that loop: :class:`Dispatcher`, held by :class:`iii.III`, whose public API
lives in ``_client.py``.

Threads: the SDK's event loop (uvloop, or asyncio's own, see :func:`new_loop`) runs on one
non-daemon thread (async handlers, trigger-type handlers, callbacks) and reads the live link
itself (see ``crates/core/src/connection/link.rs``); sync handlers run on SDK-owned threads
fed by the job queue of the ``_iii`` extension (``crates/python/src/queues.rs``).
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import inspect
import logging
import os
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

from . import _iii
from ._app_tracing import AppSpan
from ._app_tracing import start as start_app_span
from ._channels import resolve_refs
from ._format import handler_input_model
from ._observe import CURRENT as _CURRENT
from ._options import IIIConnectionState
from ._triggers import TriggerConfig, TriggerHandler

if TYPE_CHECKING:
    from ._observe import ObserverHandle
    from ._owner import OwnedFunction

log = logging.getLogger("iii")

#: A handler's ``execute`` span: the core's (the SDK's telemetry on), one made with the
#: application's own tracer (``_app_tracing``), or none.
HandlerSpan: TypeAlias = "_iii.InvocationSpan | AppSpan | None"

# The observe events of the core (docs/protocol.md C.10); absent from a core built without them.
_OBSERVER_EVENT: Any = getattr(_iii, "ObserverEvent", None)
_OWNER_HOOK: Any = getattr(_iii, "OwnerHook", None)

_CALLER_KEY = "_caller_worker_id"

T = TypeVar("T")


if sys.version_info >= (3, 12):

    def start_task(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], ctx: contextvars.Context
    ) -> asyncio.Future[T]:
        """``coro`` as a Task of its own in ``ctx``, its first step run at once: a handler that
        does not suspend is done on return. It runs inside its Task from its first line, as
        asyncio.timeout, TaskGroup and current_task() require."""
        return asyncio.Task(coro, loop=loop, context=ctx, eager_start=True)

elif sys.version_info >= (3, 11):
    from asyncio.tasks import _enter_task, _leave_task

    class _Rest(collections.abc.Coroutine):  # type: ignore[type-arg]
        """The rest of a coroutine whose first step ran already: the Task ``start_task`` makes
        re-yields what that step yielded, then forwards to it (a cancel before its first step
        included)."""

        __slots__ = ("coro", "yielded", "done", "resumed")

        def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
            self.coro, self.yielded, self.done, self.resumed = coro, None, False, False

        def send(self, value: Any) -> Any:
            if self.done:
                raise StopIteration
            if not self.resumed:
                self.resumed = True
                return self.yielded
            return self.coro.send(value)

        def throw(self, exc: Any, *rest: Any) -> Any:
            if self.done:
                raise exc
            self.resumed = True
            return self.coro.throw(exc, *rest)

        def close(self) -> None:
            if not self.done:
                self.coro.close()

        def __await__(self) -> Any:
            return self

    def start_task(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], ctx: contextvars.Context
    ) -> asyncio.Future[T]:
        """3.12's eager start, by hand: the Task for the rest of ``coro`` is made first and is
        the current task while the first step runs here, so asyncio.timeout, TaskGroup and
        current_task() see the handler's own Task from its first line. A coroutine that ends in
        that step returns a finished future (its Task then ends at once, with nothing to do).
        NOTE(perf): a local call to an async handler that does not suspend costs no loop
        iteration (benches/RESULTS.md, "An async handler runs in a Task of its own")."""
        rest = _Rest(coro)
        task = loop.create_task(rest, context=ctx)
        caller = asyncio.current_task(loop)
        if caller is not None:
            _leave_task(loop, caller)
        _enter_task(loop, task)
        try:
            rest.yielded = ctx.run(coro.send, None)
            return task
        except BaseException as exc:  # noqa: BLE001 - the step's outcome, whatever it is
            rest.done = True
            outcome: asyncio.Future[T] = loop.create_future()
            if isinstance(exc, StopIteration):
                outcome.set_result(exc.value)
            else:
                outcome.set_exception(exc)
            return outcome
        finally:
            _leave_task(loop, task)
            if caller is not None:
                _enter_task(loop, caller)

else:

    def start_task(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], ctx: contextvars.Context
    ) -> asyncio.Future[T]:
        """``coro`` as a Task of its own, in a copy of ``ctx`` (no ``create_task(context=)``
        before 3.11): the whole coroutine runs in that copy, so tokens a handler sets and resets
        stay in one context all the same."""
        return ctx.run(loop.create_task, coro)


async def _whole(handler: Handler, data: Any, metadata: Any) -> Any:
    return await handler.call(data, metadata)


def new_loop() -> asyncio.AbstractEventLoop:
    """The SDK's event loop: uvloop where it is installed (a dependency on Linux and macOS),
    asyncio's own with ``III_EVENT_LOOP=asyncio`` or in asyncio debug mode (which uvloop
    does not implement).

    NOTE(perf): a fan-out driven from a handler spends most of its process's CPU in asyncio's
    own Python code (Task steps, ``call_soon``, ``_run_once``), not in the SDK, and uvloop runs
    the loop's part of it in compiled code (benches/RESULTS.md, "The SDK loop runs on uvloop").
    """
    wanted = os.environ.get("III_EVENT_LOOP", "").strip().lower()
    if wanted not in ("", "uvloop", "asyncio"):
        raise ValueError(f"III_EVENT_LOOP must be 'uvloop' or 'asyncio', not {wanted!r}")
    debug = sys.flags.dev_mode or bool(os.environ.get("PYTHONASYNCIODEBUG"))
    if wanted != "asyncio" and not debug:
        try:
            import uvloop
        except ImportError:
            if wanted == "uvloop":
                raise ImportError("III_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _is_async(fn: Callable[..., Any]) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with an async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


#: How a handler gets the invocation's metadata (``Handler.metadata``).
_NO_METADATA, _POSITIONAL_METADATA, _KEYWORD_METADATA = 0, 1, 2


def _metadata_mode(fn: Callable[..., Any]) -> int:
    """How the handler asks for the invocation metadata, as iii-sdk 0.25.0 decides it: a
    keyword-only parameter named ``metadata`` gets it by keyword; a second positional parameter
    named ``metadata`` gets it positionally. This SDK also passes it positionally to a handler
    with two required positional parameters (which 0.25 would call with one, a TypeError).
    Anything else (``*args``, ``**kwargs``, uninspectable callables) is called with the data
    only."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return _NO_METADATA
    named = params.get("metadata")
    if named is not None and named.kind is named.KEYWORD_ONLY:
        return _KEYWORD_METADATA
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 and positional[1].name == "metadata":
        return _POSITIONAL_METADATA
    required = [p for p in positional if p.default is p.empty]
    return _POSITIONAL_METADATA if len(required) >= 2 else _NO_METADATA


def _error_text(exc: BaseException) -> str:
    if not isinstance(exc, Exception):  # SystemExit and the like: say which, as 0.25.0 does
        return f"{type(exc).__name__}: {exc}"
    return str(exc) or type(exc).__name__


def error_body(exc: BaseException) -> dict[str, Any]:
    """The ErrorBody a handler's failure becomes, on the remote path and the local one (as
    iii-sdk 0.25.0 on both): ``invocation_failed``, the exception's text, its traceback."""
    return {
        "code": "invocation_failed",
        "message": _error_text(exc),
        "stacktrace": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


async def awaited(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _logged(awaitable: Awaitable[Any], what: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("%s raised", what)


class Handler:
    __slots__ = ("fn", "model", "metadata", "is_async")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.model = handler_input_model(fn)
        self.metadata = _metadata_mode(fn)
        self.is_async = _is_async(fn)

    def call(self, data: Any, metadata: Any) -> Any:
        if self.model is not None and not isinstance(data, self.model):
            if isinstance(data, dict) and _CALLER_KEY in data:
                data = {k: v for k, v in data.items() if k != _CALLER_KEY}
            data = self.model.model_validate(data)
        if not self.metadata:
            return self.fn(data)
        if self.metadata == _POSITIONAL_METADATA:
            return self.fn(data, metadata)
        return self.fn(data, metadata=metadata)


class Dispatcher:
    """Reacts to what the engine sends one :class:`iii.III`: reads the link on the SDK loop,
    runs handlers (async ones on that loop, sync ones on SDK-owned threads) and answers their
    invocations, binds triggers to this worker's trigger types and reports state changes.
    The client holds one and hands it the pieces it shares."""

    def __init__(
        self,
        address: str,
        connection: _iii.Connection,
        loop: asyncio.AbstractEventLoop,
        telemetry: _iii.Telemetry | None,
        enter_invocation: Callable[[_iii.InvocationSpan], None] | None,
    ) -> None:
        self._address = address
        self._connection = connection
        self._loop = loop
        self._telemetry = telemetry
        self._enter_invocation = enter_invocation  # set while OpenTelemetry is on
        self.trigger_types: dict[str, TriggerHandler[Any]] = {}
        self.state_listeners: list[Callable[[IIIConnectionState], Any]] = []
        self._bindings: dict[str, TriggerConfig[Any]] = {}
        #: The live observers this client made, by id (``III.observe``).
        self.observer_handles: dict[str, ObserverHandle] = {}
        #: This client's functions that the core keeps observe state for, by id.
        self.owned: dict[str, OwnedFunction] = {}
        self.sync_threads = 0
        #: Why a sync-handler thread could not start, once one could not.
        self.thread_refused: str | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._link_fd: int | None = None
        self._polling = False
        self._flush_due = False

    def run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            try:
                if tasks:
                    self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            except RuntimeError:
                pass  # a second stop() (shutdown after a failure) ended the clean-up early
            self._detach_link()  # lets the link's socket close with the connection
            self._loop.close()

    def poll(self) -> None:
        """Runs on the SDK loop when the link or the wake-up descriptor is readable: one call
        into the core reads the link and returns every event that is waiting."""
        events = self._connection.poll()
        if events is None:
            return
        # Frames held back while handling this batch go out in one write at its end, not one
        # loop iteration later: a sequential caller gets its answer sooner (benches/RESULTS.md,
        # "A polled batch's answers go out at the end of the batch").
        self._polling = True
        try:
            self._handle_events(events)
        finally:
            self._polling = False
            if self._flush_due:
                self._flush_due = False
                self._connection.flush()

    def flush_soon(self) -> None:
        """Writes the frames the core held back (``defer``): at the end of the batch being
        handled, or at the end of this loop iteration."""
        if self._polling:
            self._flush_due = True
        else:
            self._loop.call_soon(self._connection.flush)

    def _handle_events(self, events: list[Any]) -> None:
        for event in events:
            if type(event) is _iii.Invocation:
                self._dispatch_async(event)
            elif type(event) is _iii.StateChange:
                self._on_state(cast(IIIConnectionState, event.state))
            elif type(event) is _iii.TriggerBinding:
                self._loop.create_task(self._bind(event) if event.register else self._unbind(event))
            elif type(event) is _iii.CoreLog:
                log.log(event.level, event.text)
            elif type(event) is _iii.HandlerThreadWanted:
                self.start_sync_thread(reserved=True)
            elif type(event) is _iii.LinkClosed:
                self._detach_link()
            elif type(event) is _OBSERVER_EVENT:
                self._observer_event(event)
            elif type(event) is _OWNER_HOOK:
                owned = self.owned.get(event.function_id)
                if owned is not None:
                    owned.on_hook(event)

    def _observer_event(self, event: Any) -> None:
        """A state change of one of this client's observers: to its handle."""
        handle = self.observer_handles.get(event.id)
        if handle is None:
            return
        if event.warnings:
            log.warning("observer %s: %s", event.id, "; ".join(event.warnings))
        if event.state == "disposed":
            del self.observer_handles[event.id]
        handle._update(event.state, event.reason, event.warnings)

    def _context(self, inv: _iii.Invocation) -> tuple[contextvars.Context, HandlerSpan]:
        """A fresh context for one invocation (nothing a handler sets leaks into the next), in
        which ``inv`` is the current invocation (``iii.current_invocation()``, the caller of the
        calls its handler makes) and its ``execute`` span is current: the core's with
        OpenTelemetry on, else one made with the application's own tracer, if it has one."""
        ctx = contextvars.Context()
        ctx.run(_CURRENT.set, inv)
        if self._telemetry is None:
            app = start_app_span(inv.function_id, inv.data, inv.traceparent, inv.baggage)
            if app is not None:
                ctx.run(app.enter)
            return ctx, app
        span = self._telemetry.start_for(inv)
        assert self._enter_invocation is not None
        ctx.run(self._enter_invocation, span)
        return ctx, span

    def _dispatch_async(self, inv: _iii.Invocation) -> None:
        ctx, span = self._context(inv)
        data = resolve_refs(self._address, inv.data) if inv.has_channel_refs else inv.data
        task = start_task(self._loop, self._finish(_whole(inv.handler, data, inv.metadata), inv, span), ctx)
        if not task.done():
            self._hold(task)

    def _hold(self, task: asyncio.Future[None]) -> None:
        """Keeps a handler's Task alive until it ends: the loop holds Tasks weakly, so a handler
        waiting on something only it references would be collected, and answered with the
        ``GeneratorExit`` of its collection."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, handler_run: Awaitable[Any], inv: _iii.Invocation, span: HandlerSpan) -> None:
        try:
            result = await handler_run
        except BaseException as exc:  # noqa: BLE001 - a handler's SystemExit must not end the SDK loop
            self._reply_exception(inv, exc, True, span)
            return
        self._reply(inv, result, True, span)

    def _reply(self, inv: _iii.Invocation, value: Any, on_loop: bool, span: HandlerSpan) -> None:
        """Answers ``inv`` and ends its span. On the SDK loop the frame is held back until the
        end of the loop's iteration, so a burst of answers goes out in one write."""
        if isinstance(span, AppSpan):
            span.ok(value)
            span = None
        if self._connection.answer(inv, value, on_loop, span):
            self.flush_soon()

    def _reply_exception(
        self, inv: _iii.Invocation, exc: BaseException, on_loop: bool, span: HandlerSpan
    ) -> None:
        log.debug("function %r raised", inv.function_id, exc_info=exc)
        body = error_body(exc)
        if isinstance(span, AppSpan):
            span.failed(exc)
            span = None
        elif span is not None:
            span.end_error(type(exc).__name__, body["message"], body["stacktrace"])
        error = (body["code"], body["message"], body["stacktrace"])
        if self._connection.answer(inv, None, on_loop, span, error):
            self.flush_soon()

    def start_sync_thread(self, reserved: bool = False) -> None:
        """One more thread for sync handlers. The core asks for it (``reserved``) when its queue
        stalls behind busy threads. Raises RuntimeError when there is none and none can start."""
        if not reserved and not self._connection.reserve_handler_thread():
            if self.sync_threads == 0 and self.thread_refused is not None:
                raise RuntimeError(f"no thread can run sync handlers: {self.thread_refused}")
            return
        name = f"iii-sync-{self.sync_threads + 1}"
        # Threads owned by the SDK (not concurrent.futures, which refuses work once the
        # interpreter starts exiting): handlers keep running after the main thread returns.
        # Not daemons: they wait inside Rust with the GIL released, and a daemon thread that
        # is still there when the interpreter finalises is killed in a way that aborts the
        # process. shutdown() (or a failed connection) ends them, so they never block exit.
        try:
            threading.Thread(target=self._sync_worker, name=name, daemon=False).start()
        except RuntimeError as exc:
            # CPython 3.12.0-3.12.x refuse new threads once the main thread has returned.
            self._connection.handler_thread_not_started()
            if self.thread_refused is None:
                log.warning(
                    "no more sync-handler threads can start (%s): the %d running serve every sync "
                    "handler from now on; keep the main thread alive to let the pool grow",
                    exc,
                    self.sync_threads,
                )
            self.thread_refused = str(exc)
            if self.sync_threads == 0:
                raise RuntimeError(f"no thread can run sync handlers: {exc}") from exc
            return
        self.sync_threads += 1

    def _sync_worker(self) -> None:
        connection = self._connection
        while True:
            inv = connection.next_job()
            if inv is None:
                return
            self._run_sync(inv)

    def _run_sync(self, inv: _iii.Invocation) -> None:
        ctx, span = self._context(inv)
        try:
            data = resolve_refs(self._address, inv.data) if inv.has_channel_refs else inv.data
            result = ctx.run(inv.handler.call, data, inv.metadata)
            if inspect.isawaitable(result):
                future = ctx.run(asyncio.run_coroutine_threadsafe, awaited(result), self._loop)
                result = future.result()
        except BaseException as exc:  # noqa: BLE001
            self._reply_exception(inv, exc, False, span)
            return
        self._reply(inv, result, False, span)

    def _attach_link(self) -> None:
        """Reads the live link on this loop: one wake-up per inbound message instead of two."""
        self._detach_link()
        fd = self._connection.attach_link()
        if fd is not None:
            self._link_fd = fd
            self._loop.add_reader(fd, self.poll)

    def _detach_link(self) -> None:
        fd, self._link_fd = self._link_fd, None
        if fd is not None:
            # Before the socket can close: its descriptor number may be reused.
            self._loop.remove_reader(fd)
            self._connection.detach_link()

    def _on_state(self, state: IIIConnectionState) -> None:
        if state == "connected":
            self._attach_link()
            if self._telemetry is not None:
                self._telemetry.set_worker_id(self._connection.worker_id())
        else:
            self._detach_link()
        if state == "failed":
            # The core gave up for good: calls already fail at once. Let the process exit by
            # stopping the SDK's own threads, as shutdown() would.
            self._connection.close_jobs()
            self._loop.call_soon(self._loop.stop)
        for listener in list(self.state_listeners):
            try:
                result = listener(state)
                if inspect.isawaitable(result):
                    self._loop.create_task(_logged(result, "connection state listener"))
            except Exception:
                log.exception("connection state listener raised")

    async def _bind(self, binding: _iii.TriggerBinding) -> None:
        handler = self.trigger_types.get(binding.trigger_type)
        if handler is None:
            self._connection.answer_binding(
                binding, "trigger_type_not_found", f"Trigger type '{binding.trigger_type}' not found"
            )
            return
        config = TriggerConfig(
            id=binding.id,
            function_id=binding.function_id,
            config=binding.config,
            metadata=binding.metadata,
            namespace=binding.namespace,
        )
        try:
            await awaited(handler.register_trigger(config))
        except Exception as exc:
            log.warning(
                "trigger handler for %r refused binding %s: %s", binding.trigger_type, binding.id, exc
            )
            self._connection.answer_binding(binding, "trigger_registration_failed", _error_text(exc))
            return
        self._bindings[binding.id] = config
        self._connection.answer_binding(binding)

    async def _unbind(self, binding: _iii.TriggerBinding) -> None:
        config = self._bindings.pop(binding.id, None)
        handler = self.trigger_types.get(binding.trigger_type)
        if handler is None or config is None:
            return
        try:
            await awaited(handler.unregister_trigger(config))
        except Exception:
            log.exception("unregister_trigger of %r raised", binding.trigger_type)
