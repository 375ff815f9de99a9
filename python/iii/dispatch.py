"""How the SDK runs handlers: its event-loop thread, its sync-handler threads, and the reading
of the engine link on that loop. :class:`Dispatcher` is the part of :class:`iii.III` that
reacts to what the engine sends; the public API lives in ``client.py``.

Threads: the SDK's asyncio loop runs on one non-daemon thread (async handlers, trigger-type
handlers, callbacks) and reads the live link itself (see ``src/connection/link.rs``); sync
handlers run on SDK-owned threads fed by the Rust core's job queue.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import traceback
import types
from collections.abc import Awaitable, Callable
from typing import Any

from .channels import resolve_refs
from .format import handler_input_model
from .triggers import TriggerConfig, TriggerHandler

log = logging.getLogger("iii")

_CALLER_KEY = "_caller_worker_id"
_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@types.coroutine
def _resume(coro: Any, yielded: Any) -> Any:
    """Drives a coroutine that already ran to its first suspension, inside a Task."""
    while True:
        try:
            yield yielded
        except BaseException as exc:  # noqa: BLE001 - forwarded into the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(None)
            except StopIteration as stop:
                return stop.value


def _is_async(fn: Callable[..., Any]) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with an async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def _wants_metadata(fn: Callable[..., Any]) -> bool:
    """True when the handler asks for the invocation metadata: a parameter named ``metadata``
    or a second required positional parameter (one with a default is left alone)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.name == "metadata" for p in params[1:]):
        return True
    required = [
        p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(required) >= 2


def _error_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


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
        self.metadata = _wants_metadata(fn)
        self.is_async = _is_async(fn)

    def call(self, data: Any, metadata: Any) -> Any:
        if self.model is not None and not isinstance(data, self.model):
            if isinstance(data, dict) and _CALLER_KEY in data:
                data = {k: v for k, v in data.items() if k != _CALLER_KEY}
            data = self.model.model_validate(data)
        if self.metadata:
            return self.fn(data, metadata)
        return self.fn(data)


class Dispatcher:
    """Handler dispatch and link reading; mixed into :class:`iii.III`, which sets these."""

    _address: str
    _worker: Any
    _loop: asyncio.AbstractEventLoop
    _loop_queue: Any
    _sync_queue: Any
    _sync_threads: int
    _link_reader: Any
    _functions: dict[str, Handler]
    _trigger_types: dict[str, TriggerHandler[Any]]
    _bindings: dict[str, TriggerConfig[Any]]
    _state_listeners: list[Callable[[str], Any]]

    def _run_loop(self) -> None:
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
            self._detach_reader()  # lets the link's socket close with the connection
            self._loop.close()

    def _on_wake(self) -> None:
        items = self._loop_queue.drain()
        if items is None:
            return
        for item in items:
            tag = item[0]
            if tag == "i":
                data = resolve_refs(self._address, item[3]) if item[5] else item[3]
                self._dispatch_async(item[1], item[2], data, item[4])
            elif tag == "m":
                self._on_message(item[1], item[2])
            elif tag == "s":
                self._on_state(item[1])
            elif tag == "l":
                log.log(_LOG_LEVELS.get(item[1], logging.INFO), item[2])

    def _dispatch_async(self, invocation_id: str | None, function_id: str, data: Any, metadata: Any) -> None:
        handler = self._functions.get(function_id)
        if handler is None:
            self._reply_missing(invocation_id, function_id)
            return
        try:
            coro = handler.call(data, metadata)
            yielded = coro.send(None)
        except StopIteration as stop:
            self._reply(invocation_id, function_id, stop.value)
            return
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            self._reply_exception(invocation_id, function_id, exc)
            return
        # The handler really suspended: only now does it become a Task.
        self._loop.create_task(self._finish(coro, yielded, invocation_id, function_id))

    async def _finish(self, coro: Any, yielded: Any, invocation_id: str | None, function_id: str) -> None:
        try:
            result = await _resume(coro, yielded)
        except BaseException as exc:  # noqa: BLE001
            self._reply_exception(invocation_id, function_id, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return
        self._reply(invocation_id, function_id, result)

    def _reply(self, invocation_id: str | None, function_id: str, value: Any) -> None:
        if invocation_id is None:
            return
        problem = self._worker.reply(invocation_id, function_id, value)
        if problem is not None:
            log.error("function %r: %s", function_id, problem)

    def _reply_exception(self, invocation_id: str | None, function_id: str, exc: BaseException) -> None:
        log.debug("function %r raised", function_id, exc_info=exc)
        if invocation_id is None:
            return
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self._worker.reply_error(invocation_id, function_id, "invocation_failed", _error_text(exc), stack)

    def _reply_missing(self, invocation_id: str | None, function_id: str) -> None:
        if invocation_id is not None:
            self._worker.reply_error(
                invocation_id, function_id, "function_not_found", f"Function '{function_id}' not found"
            )

    def _start_sync_thread(self, reserved: bool = False) -> None:
        if not reserved and not self._sync_queue.reserve_thread():
            return
        self._sync_threads += 1
        name = f"iii-sync-{self._sync_threads}"
        # Threads owned by the SDK (not concurrent.futures, which refuses work once the
        # interpreter starts exiting): handlers keep running after the main thread returns.
        # Not daemons: they wait inside Rust with the GIL released, and a daemon thread that
        # is still there when the interpreter finalises is killed in a way that aborts the
        # process. shutdown() (or a failed connection) ends them, so they never block exit.
        threading.Thread(target=self._sync_worker, name=name, daemon=False).start()

    def _sync_worker(self) -> None:
        queue = self._sync_queue
        while True:
            job = queue.next()
            if job is None:
                return
            invocation_id, function_id, data, metadata, has_refs, grow = job
            if grow:
                self._start_sync_thread(reserved=True)
            if has_refs:
                data = resolve_refs(self._address, data)
            self._run_sync(invocation_id, function_id, data, metadata)

    def _run_sync(self, invocation_id: str | None, function_id: str, data: Any, metadata: Any) -> None:
        handler = self._functions.get(function_id)
        if handler is None:
            self._reply_missing(invocation_id, function_id)
            return
        try:
            result = handler.call(data, metadata)
            if inspect.isawaitable(result):
                result = asyncio.run_coroutine_threadsafe(awaited(result), self._loop).result()
        except BaseException as exc:  # noqa: BLE001
            self._reply_exception(invocation_id, function_id, exc)
            return
        self._reply(invocation_id, function_id, result)

    def _attach_reader(self) -> None:
        """Reads the live link on this loop: one wake-up per inbound message instead of two."""
        self._detach_reader()
        reader = self._worker.attach_reader()
        if reader is not None:
            self._link_reader = reader
            self._loop.add_reader(reader.fd, self._pump)

    def _detach_reader(self) -> None:
        reader, self._link_reader = self._link_reader, None
        if reader is not None:
            # Before the socket can close: its descriptor number may be reused.
            self._loop.remove_reader(reader.fd)

    def _pump(self) -> None:
        reader = self._link_reader
        if reader is None:
            return
        alive = reader.pump()
        self._on_wake()
        if not alive:
            self._detach_reader()

    def _on_state(self, state: str) -> None:
        if state == "connected":
            self._attach_reader()
        else:
            self._detach_reader()
        if state == "failed":
            # The core gave up for good: calls already fail at once. Let the process exit by
            # stopping the SDK's own threads, as shutdown() would.
            self._sync_queue.close()
            self._loop.call_soon(self._loop.stop)
        for listener in list(self._state_listeners):
            try:
                result = listener(state)
                if inspect.isawaitable(result):
                    self._loop.create_task(_logged(result, "connection state listener"))
            except Exception:
                log.exception("connection state listener raised")

    def _on_message(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "registertrigger":
            self._loop.create_task(self._bind(message))
        elif kind == "unregistertrigger":
            self._loop.create_task(self._unbind(message))
        elif kind == "triggerregistrationresult":
            if message.get("error"):
                error = message["error"]
                log.warning(
                    "the engine refused trigger %s (%s): %s: %s",
                    message.get("id"),
                    message.get("trigger_type"),
                    error.get("code"),
                    error.get("message"),
                )
        elif kind == "registrationrejected":
            log.error("the engine rejected a registration: %s", message)
        else:
            log.debug("ignored %s message from the engine", kind)

    async def _bind(self, message: dict[str, Any]) -> None:
        trigger_id, type_id = message["id"], message["trigger_type"]
        reply = {
            "type": "triggerregistrationresult",
            "id": trigger_id,
            "trigger_type": type_id,
            "function_id": message["function_id"],
        }
        handler = self._trigger_types.get(type_id)
        if handler is None:
            reply["error"] = {
                "code": "trigger_type_not_found",
                "message": f"Trigger type '{type_id}' not found",
            }
        else:
            config = TriggerConfig(
                id=trigger_id,
                function_id=message["function_id"],
                config=message.get("config"),
                metadata=message.get("metadata"),
                namespace=message.get("namespace"),
            )
            try:
                await awaited(handler.register_trigger(config))
                self._bindings[trigger_id] = config
            except Exception as exc:
                log.warning("trigger handler for %r refused binding %s: %s", type_id, trigger_id, exc)
                reply["error"] = {"code": "trigger_registration_failed", "message": _error_text(exc)}
        self._worker.send(reply)

    async def _unbind(self, message: dict[str, Any]) -> None:
        trigger_id = message["id"]
        config = self._bindings.pop(trigger_id, None)
        handler = self._trigger_types.get(message.get("trigger_type") or "")
        if handler is None or config is None:
            return
        try:
            await awaited(handler.unregister_trigger(config))
        except Exception:
            log.exception("unregister_trigger of %r raised", message.get("trigger_type"))
