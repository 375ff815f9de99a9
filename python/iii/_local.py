"""Local dispatch (docs/protocol.md C.16, C.17): a call to a function this worker serves runs
in-process, once the engine confirmed it (``functionregistered{local_dispatch:true}``, kept by
the core in the function's ``FunctionState``). The result, the errors and the timeout are the
remote path's; the payload and the result are copied, so caller and handler never share a
mutable container; the handler gets a fresh invocation context (:class:`LocalInvocation`) and
its ``execute <function>`` span (the core's with OpenTelemetry on, else the application's
tracer's, if it installed one).

Where each kind of handler runs:

* ``trigger()`` and a sync handler: on a thread of the core's ``HandlerThreads`` pool while the
  caller waits with the timeout; a handler that overruns it is not interrupted and runs to its
  end (docs C.16).
* ``trigger()`` and an async handler: on the SDK loop; the caller waits with the timeout.
* ``trigger_async()`` and an async handler: on the caller's loop, in a Task of its own whose
  first step runs at once (``start_task``), raced against the timeout and, like a remote
  handler, never cancelled.
* ``trigger_async()`` and a sync handler: on a thread of that pool, awaited.
* ``void``: fire and forget on the SDK loop (async handlers) or a thread of that pool (sync).

After the call the core is told: ``FunctionState.finished`` when nobody observed the function at
the start (one counter update, nothing on the wire), else ``FunctionState.report`` with the
input and metadata as they were at the start, which evaluates the observers' filters in Rust.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import copy
import dataclasses
import datetime
import decimal
import enum
import functools
import logging
import pathlib
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from . import _iii
from ._app_tracing import AppSpan
from ._app_tracing import start as start_app_span
from ._channels import resolve_refs
from ._dispatch import Handler, error_body, start_task
from ._observe import CURRENT, LocalInvocation
from .errors import InvocationError, InvocationTimeoutError

log = logging.getLogger("iii")

#: Local calls nested deeper than this go through the engine (``MAX_LOCAL_DEPTH`` of 0.25).
MAX_LOCAL_DEPTH = 64

#: What :meth:`LocalDispatch.call` returns when the call must go through the engine after all.
REMOTE: Any = object()

#: What an async handler raising fails the call with (as on the remote path, where the callee's
#: SystemExit is an error): everything but a Ctrl-C, which reaches the caller as itself.
_HANDLER_FAILURES = (Exception, SystemExit, GeneratorExit)

#: ``HandlerThreads.run``'s outcomes.
_DONE, _RAISED = 0, 1

#: What a ``trigger_async`` caller's future gets when the call times out first.
_TIMED_OUT: Any = object()

_SCALARS = frozenset({str, int, float, bool, type(None)})
_STR_LIKE = (uuid.UUID, decimal.Decimal, pathlib.PurePath)
_ISO = (datetime.datetime, datetime.date, datetime.time)


#: Every client's ``HandlerThreads``, told when the interpreter exits (see ``at_exit``).
_POOLS: weakref.WeakSet[_iii.HandlerThreads] = weakref.WeakSet()


@atexit.register
def _at_exit() -> None:
    for pool in list(_POOLS):
        pool.at_exit()


class _Escaped(Exception):
    """Carries an async handler's SystemExit / KeyboardInterrupt (its ``__cause__``) out of
    its Task to the caller, which fails the call with it."""


def _original(exc: BaseException) -> BaseException:
    return exc.__cause__ or exc if isinstance(exc, _Escaped) else exc


class _NotPlain(Exception):
    """A value :func:`_plain_copy` leaves to ``copy.deepcopy``."""


#: What :func:`_json_form` gives for a value JSON cannot hold.
_ABSENT: Any = object()


def copy_value(value: Any, refs: list[bool] | None = None) -> Any:
    """0.25.0's value semantics for a local call's payload and result: a deep copy, or, when
    ``copy.deepcopy`` refuses the value, its JSON form with the members JSON cannot hold left
    out (``None`` for a value with no JSON form at all). A dict that may be a channel reference
    is noted in ``refs``."""
    if type(value) in _SCALARS:
        return value
    try:
        return _plain_copy(value, refs)
    except _NotPlain:
        pass
    if refs is not None:
        refs.append(True)  # rare: let resolve_refs look through the copy
    try:
        return copy.deepcopy(value)
    except Exception:
        form = _json_form(value)
        return None if form is _ABSENT else form


def _plain_copy(value: Any, refs: list[bool] | None) -> Any:
    """What ``copy.deepcopy`` makes of dicts, lists and scalars, without its memo: most
    payloads are only these."""
    kind = type(value)
    if kind is dict:
        if refs is not None and "access_key" in value:
            refs.append(True)
        return {k: (v if type(v) in _SCALARS else _plain_copy(v, refs)) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _SCALARS else _plain_copy(v, refs) for v in value]
    if kind in _SCALARS:
        return value
    raise _NotPlain


def _json_form(value: Any) -> Any:
    """``value`` as the core's encoder writes it, leaving out what it cannot encode (a dict's
    member is dropped, a list's item becomes ``None``); :data:`_ABSENT` for the value itself."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if value is None:
        return None
    if isinstance(value, (dict, Mapping)):
        out = {}
        for k, v in value.items():
            form = _json_form(v)
            if form is not _ABSENT:
                out[_key(k)] = form
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [None if (form := _json_form(v)) is _ABSENT else form for v in value]
    dump = getattr(value, "model_dump", None)
    if dump is not None and not isinstance(value, type):
        try:
            return _json_form(dump(mode="json"))
        except Exception:
            return _ABSENT
    if isinstance(value, enum.Enum):
        return _json_form(value.value)
    if isinstance(value, _ISO):
        return value.isoformat()
    if isinstance(value, _STR_LIKE):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return _json_form(dataclasses.asdict(value))
        except Exception:
            return _ABSENT
    return _ABSENT


def _key(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


class LocalFunction:
    """A function this worker serves with a handler, and the core's state of it."""

    __slots__ = ("function_id", "handler", "state")

    def __init__(self, function_id: str, handler: Handler, state: _iii.FunctionState) -> None:
        self.function_id = function_id
        self.handler = handler
        self.state = state


class _Run:
    """One local call on its way: the function, its context and copies, and what a report
    needs (taken at the start, only when an observer is active)."""

    __slots__ = ("fn", "inv", "data", "metadata", "span", "app_span", "t0", "report", "timeout_ms", "loop")

    def __init__(
        self, fn: LocalFunction, inv: LocalInvocation, data: Any, metadata: Any, timeout_ms: int
    ) -> None:
        self.fn = fn
        self.inv = inv
        self.data = data
        self.metadata = metadata
        self.timeout_ms = timeout_ms
        self.span: _iii.InvocationSpan | None = None
        self.app_span: AppSpan | None = None
        self.report: tuple[Any, Any, int] | None = None
        self.t0 = 0.0
        #: The caller's loop, for a sync handler called with ``trigger_async()``.
        self.loop: asyncio.AbstractEventLoop | None = None


class LocalDispatch:
    """Runs this worker's own functions in-process for one client (see the module's doc)."""

    def __init__(
        self,
        address: str,
        loop: asyncio.AbstractEventLoop,
        telemetry: _iii.Telemetry | None,
        enter_invocation: Callable[[_iii.InvocationSpan], None] | None,
        identity: Callable[[], dict[str, Any]],
        max_threads: int,
        queue_for: Callable[[asyncio.AbstractEventLoop], _iii.LoopQueue],
    ) -> None:
        self._address = address
        self._loop = loop
        self._telemetry = telemetry
        self._enter = enter_invocation
        self._identity = identity
        self._threads = _iii.HandlerThreads(max(1, max_threads))
        self._queue_for = queue_for
        _POOLS.add(self._threads)
        self._background: set[Any] = set()
        self.sdk_thread: threading.Thread | None = None
        if telemetry is not None:
            from ._otel_bridge import outgoing_headers

            self._headers: Callable[[], tuple[str | None, str | None]] | None = outgoing_headers
        else:
            self._headers = None

    # -- the start and the end of a call ---------------------------------------------------

    def _start(
        self, fn: LocalFunction, payload: Any, metadata: Any, parent: Any, timeout_ms: int, void: bool
    ) -> _Run:
        """The copies, the context and (with OpenTelemetry on) the span of a new local call.
        Copying never raises: what ``copy.deepcopy`` refuses goes over in its JSON form."""
        if type(payload) in _SCALARS:
            data = payload
        else:
            refs: list[bool] = []
            data = copy_value(payload, refs)
            if refs:
                data = resolve_refs(self._address, data)
        meta = copy_value(metadata)
        headers = self._headers
        if headers is not None:
            traceparent, baggage = headers()
        elif parent is not None:
            traceparent, baggage = parent.traceparent, parent.baggage
        else:
            traceparent = baggage = None
        inv = LocalInvocation(fn.function_id, parent, self._identity, meta, traceparent, baggage)
        run = _Run(fn, inv, data, meta, timeout_ms)
        if self._telemetry is not None:
            run.span = span = self._telemetry.start_invocation(fn.function_id, traceparent, baggage, payload)
            inv.traceparent, inv.baggage = span.traceparent, span.baggage
        else:
            # A child of the caller's current context, as 0.25.0 makes it.
            run.app_span = start_app_span(fn.function_id, data, None, None)
        if fn.state.observed():
            # What observers see is what the caller passed, as it was at the start: the handler
            # works on a copy and the caller waits for the end, so the caller's own objects are
            # read then; a void call's caller does not wait, so its input is copied now.
            if void:
                payload, metadata = copy_value(payload), copy_value(metadata)
            run.report = (payload, metadata, int(time.time() * 1000))
        run.t0 = time.perf_counter()
        return run

    def _enter_context(self, run: _Run) -> None:
        """Inside the handler's own ``contextvars`` context: makes it the current invocation
        (and its span the current OpenTelemetry span)."""
        CURRENT.set(run.inv)
        if run.span is not None and self._enter is not None:
            self._enter(run.span)
        elif run.app_span is not None:
            run.app_span.enter()

    def _finish(self, run: _Run, ok: bool, result: Any, exc: BaseException | None) -> None:
        """Ends the span and tells the core how the call went. Never raises."""
        try:
            duration_ms = (time.perf_counter() - run.t0) * 1000.0
            body = None if exc is None else error_body(exc)
            span = run.span
            if span is not None:
                if body is None:
                    span.end_with_output(result)
                else:
                    span.end_error(type(exc).__name__, body["message"], body.get("stacktrace"))
            elif run.app_span is not None:
                if exc is None:
                    run.app_span.ok(result)
                else:
                    run.app_span.failed(exc)
            if isinstance(exc, asyncio.CancelledError) or (run.loop is not None and run.loop.is_closed()):
                # Abandoned with its caller's loop (an async handler cancelled, a sync one that
                # ended after the loop closed): not counted nor reported, as in 0.25.0, whose
                # bookkeeping for such a run is a callback on that loop (docs C.16).
                return
            report = run.report
            if report is None:
                run.fn.state.finished(ok, duration_ms)
                return
            observed_input, observed_metadata, started_at_ms = report
            run.fn.state.report(
                run.inv,
                ok,
                observed_input,
                result if ok else None,
                body,
                observed_metadata,
                started_at_ms,
                duration_ms,
            )
        except Exception:
            log.exception("could not count the local call of %r", run.fn.function_id)

    def _failure(self, run: _Run, exc: BaseException) -> BaseException:
        """What the caller of a failed local call gets: the remote path's error."""
        body = error_body(_original(exc))
        return InvocationError(
            body["code"], body["message"], body.get("stacktrace"), function_id=run.fn.function_id
        )

    def _timeout(self, run: _Run) -> InvocationTimeoutError:
        """The remote path's timeout error, naming the local invocation."""
        function_id, timeout_ms = run.fn.function_id, run.timeout_ms
        error = InvocationTimeoutError(
            f"Invocation of '{function_id}' timed out after {timeout_ms}ms", function_id, timeout_ms
        )
        error.invocation_id = run.inv.context_id
        return error

    # -- sync handlers ---------------------------------------------------------------------

    def _run_sync(self, run: _Run) -> Any:
        """A sync handler's whole run, in its own context: the result, or the handler's own
        exception once the call is counted."""
        self._enter_context(run)
        try:
            result = run.fn.handler.call(run.data, run.metadata)
        except BaseException as exc:
            self._finish(run, False, None, exc)
            raise
        self._finish(run, True, result, None)
        return result

    def _run_void_sync(self, run: _Run) -> None:
        try:
            self._run_sync(run)
        except BaseException as exc:  # noqa: BLE001 - nobody waits for a void call
            log.error("Error invoking function %s: %s", run.fn.function_id, exc, exc_info=exc)

    # -- async handlers --------------------------------------------------------------------

    async def _run_async(self, run: _Run) -> Any:
        """An async handler's whole run (in a context of its own)."""
        self._enter_context(run)
        try:
            result = await run.fn.handler.call(run.data, run.metadata)
        except BaseException as exc:
            self._finish(run, False, None, exc)
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                # Out of a Task these would stop the loop it runs on (the SDK's, or the caller's).
                raise _Escaped(exc) from exc
            raise
        self._finish(run, True, result, None)
        return result

    def _keep(self, task: Any, function_id: str) -> None:
        """Keeps a task nobody awaits any more alive until it ends, and logs its failure."""
        self._background.add(task)

        def done(t: Any) -> None:
            self._background.discard(t)
            exc = None if t.cancelled() else t.exception()
            if exc is not None:
                exc = _original(exc)
                log.error("Error invoking function %s: %s", function_id, exc, exc_info=exc)

        task.add_done_callback(done)

    # -- the entry points ------------------------------------------------------------------

    def call(
        self, fn: LocalFunction, payload: Any, metadata: Any, timeout_ms: int, parent: Any, void: bool
    ) -> Any:
        """``trigger()`` on the local path (blocking). :data:`REMOTE` when it cannot run here
        (an async handler called from the SDK loop's own thread)."""
        if fn.handler.is_async:
            if threading.current_thread() is self.sdk_thread:
                return REMOTE
            run = self._start(fn, payload, metadata, parent, timeout_ms, void)
            future = asyncio.run_coroutine_threadsafe(self._run_async(run), self._loop)
            if void:
                self._keep(future, fn.function_id)
                return None
            try:
                result = future.result(timeout_ms / 1000.0)
            except concurrent.futures.TimeoutError:
                if future.done():  # the handler's own TimeoutError
                    cause = future.exception() or TimeoutError()
                    raise self._failure(run, cause) from cause
                self._keep(future, fn.function_id)
                raise self._timeout(run) from None
            except concurrent.futures.CancelledError as exc:
                raise self._failure(run, exc) from _original(exc)
            except _HANDLER_FAILURES as exc:
                raise self._failure(run, exc) from _original(exc)
            return copy_value(result)
        run = self._start(fn, payload, metadata, parent, timeout_ms, void)
        ctx = contextvars.copy_context()
        if void:
            self._threads.submit(functools.partial(ctx.run, self._run_void_sync, run))
            return None
        outcome, value = self._threads.run(
            functools.partial(ctx.run, self._run_sync, run), timeout_ms / 1000.0
        )
        if outcome == _DONE:
            return copy_value(value)
        if outcome == _RAISED:
            raise self._failure(run, value) from _original(value)
        raise self._timeout(run)

    async def call_async(
        self, fn: LocalFunction, payload: Any, metadata: Any, timeout_ms: int, parent: Any, void: bool
    ) -> Any:
        """``trigger_async()`` on the local path, on the caller's loop."""
        run = self._start(fn, payload, metadata, parent, timeout_ms, void)
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        if not fn.handler.is_async:
            run.loop = loop
            if void:
                self._threads.submit(functools.partial(ctx.run, self._run_void_sync, run))
                return None
            # The outcome, or the timeout, reaches the loop batched with its other completions.
            future = loop.create_future()
            job = functools.partial(ctx.run, self._run_sync, run)
            self._threads.submit(job, future, self._queue_for(loop), timeout_ms / 1000.0, _TIMED_OUT)
            try:
                result = await future
            except BaseException as error:
                if future.cancelled():
                    raise  # the caller's own cancellation; the handler runs on
                raise self._failure(run, error) from _original(error)
            if result is _TIMED_OUT:
                raise self._timeout(run)  # the handler runs on to its end
            return copy_value(result)
        if void:
            task = ctx.run(loop.create_task, self._run_async(run))
            self._keep(task, fn.function_id)
            return None
        # The handler's own Task (its first step at once), not the caller's.
        outcome = start_task(loop, self._run_async(run), ctx)
        if not outcome.done():
            done, _ = await asyncio.wait({outcome}, timeout=timeout_ms / 1000.0)
            if not done:
                self._keep(outcome, fn.function_id)  # raced, not cancelled: it runs to its end
                raise self._timeout(run)
        if outcome.cancelled():
            cancelled = asyncio.CancelledError()
            raise self._failure(run, cancelled) from cancelled
        exc = outcome.exception()
        if exc is not None:
            raise self._failure(run, exc) from _original(exc)
        return copy_value(outcome.result())
