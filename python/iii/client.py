"""The worker client: :class:`III` and :func:`register_worker`.

Threads: the Rust core owns the socket on its own runtime threads. This module adds one
non-daemon thread running the SDK's asyncio loop (async handlers, trigger-type handlers,
callbacks) and a pool of daemon threads for synchronous handlers. Calls made with
``trigger_async`` complete on the caller's own loop; ``trigger`` blocks with the GIL released.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import platform
import socket
import threading
import traceback
import types
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from . import _iii
from .channels import Channel, ChannelReader, ChannelWriter, resolve_refs
from .errors import ClientShutdownError, InvocationError, NotConnectedError
from .format import extract_request_format, extract_response_format, handler_input_model
from .options import FunctionRef, IIIConnectionState, InitOptions
from .stream import (
    IStream,
    StreamDeleteInput,
    StreamGetInput,
    StreamListGroupsInput,
    StreamListInput,
    StreamSetInput,
)
from .triggers import Trigger, TriggerConfig, TriggerHandler, TriggerTypeRef
from .types import (
    EnqueueResult,
    FunctionInfo,
    HttpInvocationConfig,
    RegisterFunctionInput,
    RegisterServiceInput,
    RegisterTriggerInput,
    RegisterTriggerTypeInput,
    StreamChannelRef,
    TriggerActionEnqueue,
    TriggerActionVoid,
    TriggerInfo,
    TriggerRequest,
    TriggerTypeInfo,
    WorkerInfo,
)

log = logging.getLogger("iii")

#: How long :func:`register_worker` waits for the first connection.
REGISTER_TIMEOUT_S = 30.0
#: Most threads running synchronous handlers at once (``III_SYNC_HANDLER_THREADS``).
SYNC_HANDLER_THREADS = int(os.environ.get("III_SYNC_HANDLER_THREADS", "64"))
SDK_VERSION = _iii.__version__
_CALLER_KEY = "_caller_worker_id"
_VOID = object()
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


class _Handler:
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


def _format_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, type) and issubclass(value, BaseModel):
        return value.model_json_schema()
    return value


M = TypeVar("M", bound=BaseModel)


def _as(model: type[M], value: M | dict[str, Any]) -> M:
    """Accepts the model itself or a dict of its fields."""
    return value if isinstance(value, model) else model.model_validate(value)


def _message(kind: str, **fields: Any) -> dict[str, Any]:
    message = {"type": kind}
    message.update((k, v) for k, v in fields.items() if v is not None)
    return message


def _error_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class III:
    """A worker connected to an iii engine. Create it with :func:`register_worker`."""

    def __init__(self, address: str, options: InitOptions | None = None) -> None:
        self._address = address
        self._options = options or InitOptions()
        self._timeout_ms = int(self._options.invocation_timeout_ms)
        self._functions: dict[str, _Handler] = {}
        self._trigger_types: dict[str, TriggerHandler[Any]] = {}
        self._bindings: dict[str, TriggerConfig[Any]] = {}
        self._state_listeners: list[Callable[[IIIConnectionState], Any]] = []
        self._functions_available: list[Callable[[list[FunctionInfo]], Any]] = []
        self._functions_available_ids: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._closed = False

        self._loop = asyncio.new_event_loop()
        self._loop_queue = _iii.LoopQueue()
        self._loop.add_reader(self._loop_queue.fd, self._on_wake)
        self._loop_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_queues[self._loop] = self._loop_queue
        self._sync_queue = _iii.SyncQueue(SYNC_HANDLER_THREADS)
        self._sync_threads = 0
        self._link_reader: Any = None
        # Non-daemon, like the official SDK: a connected worker keeps the process alive.
        self._thread = threading.Thread(target=self._run_loop, name="iii-loop", daemon=False)
        self._thread.start()
        self._worker = _iii.Worker(address, self._connection_options(), self._loop_queue, self._sync_queue)

    # -- connection --------------------------------------------------------------------------

    def _connection_options(self) -> dict[str, Any]:
        o = self._options
        r = o.reconnection_config
        opts: dict[str, Any] = {
            "headers": dict(o.headers) if o.headers else None,
            "max_message_size": o.max_message_size,
            "connect_timeout_ms": o.connect_timeout_ms,
            "ping_interval_ms": o.ping_interval_ms,
            "idle_timeout_ms": o.idle_timeout_ms,
            "offline_queue_limit": o.offline_queue_limit,
            "worker_metadata": self._worker_metadata(),
        }
        if r is not None:
            opts.update(
                initial_delay_ms=r.initial_delay_ms,
                max_delay_ms=r.max_delay_ms,
                backoff_multiplier=r.backoff_multiplier,
                jitter_factor=r.jitter_factor,
                max_retries=r.max_retries,
            )
        return opts

    def _worker_metadata(self) -> dict[str, Any]:
        t = self._options.telemetry
        lang = os.environ.get("LANG", "").split(".")[0] or None
        return {
            "runtime": "python",
            "version": SDK_VERSION,
            "name": self._options.worker_name or f"{socket.gethostname()}:{os.getpid()}",
            "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
            "pid": os.getpid(),
            "telemetry": {
                "language": (t.language if t and t.language else lang),
                "project_name": t.project_name if t else None,
                "framework": (t.framework if t and t.framework else "iii-py"),
                "amplitude_api_key": t.amplitude_api_key if t else None,
            },
        }

    def get_connection_state(self) -> IIIConnectionState:
        """Current state: connecting, connected, reconnecting, failed or disconnected."""
        return self._worker.state()  # type: ignore[return-value]

    def on_connection_state_change(self, callback: Callable[[IIIConnectionState], Any]) -> Callable[[], None]:
        """Calls ``callback(state)`` on the SDK loop at every state change; returns an unsubscribe."""
        self._state_listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._state_listeners:
                self._state_listeners.remove(callback)

        return unsubscribe

    @property
    def worker_id(self) -> str | None:
        """The id the engine gave the current connection."""
        return self._worker.worker_id()

    def _wait_connected(self, timeout: float) -> None:
        state = self._worker.wait_connected(timeout)
        if state != "connected":
            reason = self._worker.last_error() or f"still {state} after {timeout:g} s"
            raise NotConnectedError(f"could not connect to the iii engine at {self._address}: {reason}")

    async def connect_async(self) -> None:
        """Waits until the connection is up (it is made automatically at construction)."""
        if self._closed:
            raise ClientShutdownError("the iii client is shut down")
        if self._worker.state() != "connected":
            await asyncio.get_running_loop().run_in_executor(None, self._wait_connected, REGISTER_TIMEOUT_S)

    # -- the SDK loop ------------------------------------------------------------------------

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

    # -- synchronous handlers ----------------------------------------------------------------

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
                result = asyncio.run_coroutine_threadsafe(_awaited(result), self._loop).result()
        except BaseException as exc:  # noqa: BLE001
            self._reply_exception(invocation_id, function_id, exc)
            return
        self._reply(invocation_id, function_id, result)

    # -- calls ---------------------------------------------------------------------------------

    def _parse_request(self, request: dict[str, Any] | TriggerRequest) -> tuple[str, Any, Any, int]:
        if isinstance(request, dict):
            try:
                function_id = request["function_id"]
            except KeyError:
                raise ValueError("trigger request needs a 'function_id'") from None
            payload = request.get("payload")
            action = request.get("action")
            timeout_ms = request.get("timeout_ms")
        elif isinstance(request, TriggerRequest):
            function_id, payload = request.function_id, request.payload
            action, timeout_ms = request.action, request.timeout_ms
        else:
            raise TypeError(f"trigger request must be a dict or TriggerRequest, not {type(request).__name__}")
        if not isinstance(function_id, str) or not function_id:
            raise ValueError(f"function_id must be a non-empty string, not {function_id!r}")
        if action is not None:
            action = _parse_action(action)
        if timeout_ms is None:
            timeout_ms = self._timeout_ms
        elif not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be a positive integer, not {timeout_ms!r}")
        return function_id, payload, action, timeout_ms

    def trigger(self, request: dict[str, Any] | TriggerRequest) -> Any:
        """Calls a function and returns its result (see :meth:`trigger_async` for actions).

        Blocks the calling thread (not the event loop of other threads) with the GIL released.
        """
        function_id, payload, action, timeout_ms = self._parse_request(request)
        if action is _VOID:
            self._worker.call_void(function_id, payload)
            return None
        result = self._worker.call(function_id, payload, timeout_ms, action)
        return result if action is None else EnqueueResult.model_validate(result)

    async def trigger_async(self, request: dict[str, Any] | TriggerRequest) -> Any:
        """Calls a function from any running event loop.

        No action: waits for and returns the function's result. ``TriggerAction.Enqueue``:
        returns the :class:`EnqueueResult` receipt once the engine stored the message.
        ``TriggerAction.Void``: sends and returns ``None`` at once.
        """
        function_id, payload, action, timeout_ms = self._parse_request(request)
        if action is _VOID:
            self._worker.call_void(function_id, payload)
            return None
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._worker.call_async(function_id, payload, timeout_ms, action, future, self._queue_for(loop))
        result = await future
        return result if action is None else EnqueueResult.model_validate(result)

    def _queue_for(self, loop: asyncio.AbstractEventLoop) -> Any:
        queue = self._loop_queues.get(loop)
        if queue is None:
            queue = _iii.LoopQueue()
            loop.add_reader(queue.fd, queue.drain)
            self._loop_queues[loop] = queue
        return queue

    # -- registrations -------------------------------------------------------------------------

    def register_function(
        self,
        func_or_id: RegisterFunctionInput | dict[str, Any] | str,
        handler_or_invocation: Callable[..., Any] | HttpInvocationConfig,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        request_format: Any = None,
        response_format: Any = None,
    ) -> FunctionRef:
        """Registers a function served by ``handler`` (sync or async), or an HTTP-invoked one.

        ``func_or_id`` is a :class:`RegisterFunctionInput`, a dict with its fields, or the
        function id (then the keyword arguments apply and formats default to the handler's
        type hints).
        """
        self._check_open()
        if isinstance(func_or_id, str):
            callable_handler = callable(handler_or_invocation)
            spec = RegisterFunctionInput(
                id=func_or_id,
                description=description,
                metadata=metadata,
                request_format=request_format
                if request_format is not None or not callable_handler
                else extract_request_format(handler_or_invocation),
                response_format=response_format
                if response_format is not None or not callable_handler
                else extract_response_format(handler_or_invocation),
            )
        elif isinstance(func_or_id, RegisterFunctionInput):
            spec = func_or_id
        elif isinstance(func_or_id, dict):
            spec = RegisterFunctionInput.model_validate(func_or_id)
        else:
            raise TypeError(
                f"expected a function id, dict or RegisterFunctionInput, not {type(func_or_id).__name__}"
            )
        if not spec.id:
            raise ValueError("a function needs a non-empty id")
        invocation = (
            handler_or_invocation if isinstance(handler_or_invocation, HttpInvocationConfig) else None
        )
        if invocation is None and spec.invocation is not None and not callable(handler_or_invocation):
            invocation = spec.invocation
        message = _message(
            "registerfunction",
            id=spec.id,
            description=spec.description,
            request_format=_format_json(spec.request_format),
            response_format=_format_json(spec.response_format),
            metadata=spec.metadata,
            invocation=invocation.model_dump(mode="json", exclude_none=True) if invocation else None,
        )
        if invocation is not None:
            kind = "http"
            self._functions.pop(spec.id, None)
        elif callable(handler_or_invocation):
            handler = _Handler(handler_or_invocation)
            kind = "async" if handler.is_async else "sync"
            self._functions[spec.id] = handler
            if kind == "sync" and self._sync_threads == 0:
                self._start_sync_thread()
        else:
            raise TypeError("handler_or_invocation must be a callable or an HttpInvocationConfig")
        self._worker.register_function(spec.id, kind, message)
        function_id = spec.id
        return FunctionRef(id=function_id, unregister=lambda: self._unregister_function(function_id))

    def _unregister_function(self, function_id: str) -> None:
        self._functions.pop(function_id, None)
        self._worker.unregister_function(function_id)

    def register_service(self, service: RegisterServiceInput | dict[str, Any]) -> None:
        """Registers an organisational service (shown in the engine's dashboard)."""
        self._check_open()
        spec = _as(RegisterServiceInput, service)
        message = _message(
            "registerservice",
            id=spec.id,
            name=spec.name or spec.id,
            description=spec.description,
            parent_service_id=spec.parent_service_id,
        )
        self._worker.register("service", spec.id, message)

    def register_trigger(self, trigger: RegisterTriggerInput | dict[str, Any]) -> Trigger:
        """Binds a trigger (``type``, ``function_id``, ``config``) to a function."""
        self._check_open()
        spec = _as(RegisterTriggerInput, trigger)
        trigger_id = str(uuid.uuid4())
        message = _message(
            "registertrigger", id=trigger_id, trigger_type=spec.type, function_id=spec.function_id
        )
        # Always present, null when unset: the engine drops a registertrigger without it.
        message["config"] = _format_json(spec.config)
        if spec.metadata is not None:
            message["metadata"] = spec.metadata
        self._worker.register("trigger", trigger_id, message)
        unregister = _message("unregistertrigger", id=trigger_id, trigger_type=spec.type)
        return Trigger(lambda: self._worker.unregister("trigger", trigger_id, unregister))

    def register_trigger_type(
        self, trigger_type: RegisterTriggerTypeInput | dict[str, Any], handler: TriggerHandler[Any]
    ) -> TriggerTypeRef[Any, Any]:
        """Makes this worker the provider of a custom trigger type.

        The engine then sends each binding of the type to ``handler.register_trigger`` and each
        removal to ``handler.unregister_trigger``.
        """
        self._check_open()
        spec = _as(RegisterTriggerTypeInput, trigger_type)
        message = _message(
            "registertriggertype",
            id=spec.id,
            description=spec.description or "",
            trigger_request_format=_format_json(spec.trigger_request_format),
            call_request_format=_format_json(spec.call_request_format),
        )
        self._trigger_types[spec.id] = handler
        self._worker.register("trigger_type", spec.id, message)
        config_cls = spec.trigger_request_format if isinstance(spec.trigger_request_format, type) else None
        request_cls = spec.call_request_format if isinstance(spec.call_request_format, type) else None
        return TriggerTypeRef(self, spec.id, config_cls, request_cls)

    def unregister_trigger_type(self, trigger_type: RegisterTriggerTypeInput | dict[str, Any]) -> None:
        """Stops providing a trigger type.

        The handler is dropped locally at once. The ``unregistertriggertype`` message is sent,
        but engine v0.11.0 ignores it: the engine forgets the type when this worker disconnects.
        """
        type_id = (
            trigger_type.id if isinstance(trigger_type, RegisterTriggerTypeInput) else trigger_type["id"]
        )
        self._trigger_types.pop(type_id, None)
        self._worker.unregister("trigger_type", type_id, _message("unregistertriggertype", id=type_id))

    # -- messages from the engine ----------------------------------------------------------------

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
        reply = _message(
            "triggerregistrationresult",
            id=trigger_id,
            trigger_type=type_id,
            function_id=message["function_id"],
        )
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
                await _awaited(handler.register_trigger(config))
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
            await _awaited(handler.unregister_trigger(config))
        except Exception:
            log.exception("unregister_trigger of %r raised", message.get("trigger_type"))

    # -- discovery ---------------------------------------------------------------------------

    def list_functions(self) -> list[FunctionInfo]:
        """Every function registered with the engine, across all workers."""
        return _functions(self.trigger({"function_id": "engine::functions::list", "payload": {}}))

    async def list_functions_async(self) -> list[FunctionInfo]:
        return _functions(await self.trigger_async({"function_id": "engine::functions::list", "payload": {}}))

    def list_workers(self) -> list[WorkerInfo]:
        """Every worker connected to the engine."""
        return _workers(self.trigger({"function_id": "engine::workers::list", "payload": {}}))

    async def list_workers_async(self) -> list[WorkerInfo]:
        return _workers(await self.trigger_async({"function_id": "engine::workers::list", "payload": {}}))

    def list_triggers(self, include_internal: bool = False) -> list[TriggerInfo]:
        """Every trigger binding (``include_internal`` adds the engine's own)."""
        return _triggers(self.trigger(_listing("engine::triggers::list", include_internal)))

    async def list_triggers_async(self, include_internal: bool = False) -> list[TriggerInfo]:
        return _triggers(await self.trigger_async(_listing("engine::triggers::list", include_internal)))

    def list_trigger_types(self, include_internal: bool = False) -> list[TriggerTypeInfo]:
        """Every trigger type (``include_internal`` adds ``engine::*`` ones)."""
        try:
            return _trigger_types(self.trigger(_listing(_TRIGGER_TYPES_V011, include_internal)))
        except InvocationError as exc:
            if exc.code != "function_not_found":
                raise
        # Newer engines list trigger types through engine::triggers::list (protocol.md B.4).
        return _trigger_types(self.trigger(_listing("engine::triggers::list", include_internal)), "triggers")

    async def list_trigger_types_async(self, include_internal: bool = False) -> list[TriggerTypeInfo]:
        try:
            return _trigger_types(await self.trigger_async(_listing(_TRIGGER_TYPES_V011, include_internal)))
        except InvocationError as exc:
            if exc.code != "function_not_found":
                raise
        result = await self.trigger_async(_listing("engine::triggers::list", include_internal))
        return _trigger_types(result, "triggers")

    def on_functions_available(self, callback: Callable[[list[FunctionInfo]], Any]) -> Callable[[], None]:
        """Calls ``callback(functions)`` whenever the engine's set of functions changes.

        Returns a function that unsubscribes ``callback``.
        """
        with self._lock:
            self._functions_available.append(callback)
            if self._functions_available_ids is None:
                function_id = f"iii.on_functions_available.{uuid.uuid4()}"
                self.register_function({"id": function_id}, self._functions_changed)
                trigger = self.register_trigger(
                    {"type": "engine::functions-available", "function_id": function_id, "config": {}}
                )
                self._functions_available_ids = (function_id, trigger)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._functions_available:
                    self._functions_available.remove(callback)
                if not self._functions_available and self._functions_available_ids is not None:
                    _, trigger = self._functions_available_ids
                    self._functions_available_ids = None
                    trigger.unregister()

        return unsubscribe

    async def _functions_changed(self, data: Any) -> None:
        functions = _functions(data)
        for callback in list(self._functions_available):
            try:
                await _awaited(callback(functions))
            except Exception:
                log.exception("on_functions_available callback raised")

    # -- channels and streams ---------------------------------------------------------------

    def create_channel(self, buffer_size: int | None = None) -> Channel:
        """Creates a channel; pass ``writer_ref`` / ``reader_ref`` to other functions in payloads."""
        return self._channel(self.trigger(_channel_request(buffer_size)))

    async def create_channel_async(self, buffer_size: int | None = None) -> Channel:
        return self._channel(await self.trigger_async(_channel_request(buffer_size)))

    def _channel(self, refs: dict[str, Any]) -> Channel:
        writer_ref = StreamChannelRef.model_validate(refs["writer"])
        reader_ref = StreamChannelRef.model_validate(refs["reader"])
        return Channel(
            writer=ChannelWriter(self._address, writer_ref),
            reader=ChannelReader(self._address, reader_ref),
            writer_ref=writer_ref,
            reader_ref=reader_ref,
        )

    def create_stream(self, stream_name: str, stream: IStream[Any]) -> None:
        """Serves the stream ``stream_name`` from ``stream`` instead of the engine's store.

        Registers ``stream::get(<name>)``, ``set``, ``delete``, ``list`` and ``list_groups``;
        the engine routes its built-in ``stream::*`` calls for that stream to them. ``update``
        is applied by the engine's own store, as with the official SDK.
        """
        for op, model in _STREAM_OPS.items():
            self.register_function(
                {"id": f"stream::{op}({stream_name})"}, _stream_handler(getattr(stream, op), model)
            )

    # -- shutdown ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClientShutdownError("the iii client is shut down; create a new one with register_worker()")

    def shutdown(self) -> None:
        """Fails calls in flight, closes the connection and stops the SDK's threads.

        The client cannot be used afterwards. Safe to call more than once, from any thread.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._worker.shutdown()
        self._sync_queue.close()
        if not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._loop.stop)
            except RuntimeError:
                pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    async def shutdown_async(self) -> None:
        """:meth:`shutdown` for async code."""
        if threading.current_thread() is self._thread:
            self.shutdown()
        else:
            await asyncio.get_running_loop().run_in_executor(None, self.shutdown)

    def __enter__(self) -> III:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"III({self._address!r}, state={self.get_connection_state()!r})"


async def _awaited(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _logged(awaitable: Awaitable[Any], what: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("%s raised", what)


_STREAM_OPS = {
    "get": StreamGetInput,
    "set": StreamSetInput,
    "delete": StreamDeleteInput,
    "list": StreamListInput,
    "list_groups": StreamListGroupsInput,
}


def _stream_handler(method: Callable[[Any], Any], model: type[BaseModel]) -> Callable[[Any], Awaitable[Any]]:
    async def handler(data: Any) -> Any:
        return await _awaited(method(model.model_validate(data)))

    return handler


def _channel_request(buffer_size: int | None) -> dict[str, Any]:
    payload = {} if buffer_size is None else {"buffer_size": buffer_size}
    return {"function_id": "engine::channels::create", "payload": payload}


def _parse_action(action: Any) -> Any:
    if isinstance(action, TriggerActionVoid):
        return _VOID
    if isinstance(action, TriggerActionEnqueue):
        return action.queue
    if isinstance(action, dict):
        kind = action.get("type")
        if kind == "void":
            return _VOID
        if kind == "enqueue" and isinstance(action.get("queue"), str) and action["queue"]:
            return action["queue"]
    raise ValueError(
        f"invalid action {action!r}: use TriggerAction.Void(), TriggerAction.Enqueue(queue=...), "
        "{'type': 'void'} or {'type': 'enqueue', 'queue': ...}"
    )


_TRIGGER_TYPES_V011 = "engine::trigger-types::list"


def _listing(function_id: str, include_internal: bool) -> dict[str, Any]:
    return {"function_id": function_id, "payload": {"include_internal": include_internal}}


def _entries(result: Any, key: str) -> list[Any]:
    if isinstance(result, dict):
        entries = result.get(key)
    else:
        entries = result
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _functions(result: Any) -> list[FunctionInfo]:
    return [FunctionInfo.model_validate(e) for e in _entries(result, "functions")]


def _workers(result: Any) -> list[WorkerInfo]:
    return [WorkerInfo.model_validate(e) for e in _entries(result, "workers")]


def _triggers(result: Any) -> list[TriggerInfo]:
    return [TriggerInfo.model_validate(e) for e in _entries(result, "triggers")]


def _trigger_types(result: Any, key: str = "trigger_types") -> list[TriggerTypeInfo]:
    return [TriggerTypeInfo.model_validate(e) for e in _entries(result, key)]


def register_worker(address: str, options: InitOptions | None = None) -> III:
    """Connects a worker to the engine at ``address`` (e.g. ``ws://localhost:49134``).

    Blocks until the connection is up. If it is not up within 30 seconds (or the reconnection
    policy gives up first), the client is shut down and :class:`NotConnectedError` is raised,
    so no thread is left behind.
    """
    client = III(address, options)
    try:
        client._wait_connected(REGISTER_TIMEOUT_S)
    except BaseException:
        client.shutdown()
        raise
    return client
