"""The worker client: :class:`III` and :func:`register_worker`.

Calls made with ``trigger_async`` complete on the caller's own loop; ``trigger`` blocks with
the GIL released. How handlers run is in ``_dispatch.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import platform
import sys
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from . import _deprecations, _iii, _listings, _namespaces, telemetry
from ._app_tracing import outgoing_headers as app_outgoing_headers
from ._channels import Channel, ChannelReader, ChannelWriter
from ._dispatch import Dispatcher, Handler, awaited, new_loop
from ._engine import SDK_FEATURES, resolve_engine_url
from ._format import extract_request_format, extract_response_format, python_type_to_format
from ._local import MAX_LOCAL_DEPTH, REMOTE, LocalDispatch, LocalFunction
from ._messages import InvocationResultMessage
from ._models import (
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
from ._observe import CURRENT as _CURRENT_INVOCATION
from ._observe import (
    InvocationContext,
    LocalInvocation,
    ObserveHooks,
    Observer,
    ObserverHandle,
    ObserverOptions,
    ObserveSource,
    Target,
    caller_from,
    current_invocation,
    new_uuid4,
)
from ._options import FunctionRef, IIIConnectionState, InitOptions
from ._owner import OwnedFunction
from ._process_marker import ProcessMarker
from ._streams import (
    IStream,
    StreamDeleteInput,
    StreamGetInput,
    StreamListGroupsInput,
    StreamListInput,
    StreamSetInput,
)
from ._triggers import Trigger, TriggerHandler, TriggerTypeRef
from .errors import (
    ClientShutdownError,
    InvocationError,
    NotConnectedError,
    RegistrationRejectedError,
    enqueue_error,
)

log = logging.getLogger("iii")

#: How long :func:`register_worker` waits for the first connection.
REGISTER_TIMEOUT_S = 30.0
#: Most threads running synchronous handlers at once (``III_SYNC_HANDLER_THREADS``).
SYNC_HANDLER_THREADS = int(os.environ.get("III_SYNC_HANDLER_THREADS", "64"))
SDK_VERSION = _iii.__version__
_VOID = object()
_MISSING = object()  # a request without the key


def _wire(parent: Any) -> _iii.Invocation | None:
    """An invocation (the current one, made from a handler) as the core reads the caller of a
    call from it."""
    return parent.wire() if isinstance(parent, LocalInvocation) else parent


def _receipt(result: Any) -> Any:
    """An enqueue's answer as an :class:`EnqueueResult`; an answer of another shape as it came,
    as the official SDKs return it (they never validate it)."""
    try:
        return EnqueueResult.model_validate(result)
    except ValidationError:
        return result


def _format_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, type):
        return python_type_to_format(value)
    return value


M = TypeVar("M", bound=BaseModel)


def _as(model: type[M], value: M | dict[str, Any]) -> M:
    """Accepts the model itself or a dict of its fields."""
    return value if isinstance(value, model) else model.model_validate(value)


class III:
    """A worker connected to an iii engine. Create it with :func:`register_worker`."""

    def __init__(self, address: str, options: InitOptions | None = None) -> None:
        """Builds the client and starts connecting in the background, like the official SDK.

        :func:`register_worker` is this plus :meth:`_wait_until_connected`. Options are checked
        before any thread starts, so a bad option raises and leaves nothing running.
        """
        self._address = address
        self._options = options or InitOptions()
        if not isinstance(self._options, InitOptions):
            raise TypeError(f"options must be an InitOptions, not {type(self._options).__name__}")
        self._namespace = _namespaces.worker_namespace(self._options.namespace)
        self._timeout_ms = int(self._options.invocation_timeout_ms)
        self._functions_available: list[Callable[[list[FunctionInfo]], Any]] = []
        self._functions_available_sub: tuple[FunctionRef, Trigger] | None = None
        self._lock = threading.Lock()
        self._closed = False
        #: This worker's functions with a handler that may run in-process (local dispatch).
        self._locals: dict[str, LocalFunction] = {}
        #: The thread that calls ObserverHandle state listeners (made when first needed).
        self._callbacks: concurrent.futures.ThreadPoolExecutor | None = None
        self._name = self._worker_name()

        self._loop_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _iii.LoopQueue] = (
            weakref.WeakKeyDictionary()
        )
        self._loop = new_loop()  # before the connection: a bad III_EVENT_LOOP leaves nothing running
        try:
            self._connection = _iii.Connection(
                address,
                self._options,
                handler_threads=SYNC_HANDLER_THREADS,
                worker_metadata=self._worker_metadata(),
            )
        except BaseException:
            self._loop.close()  # a refused URL or option leaves no loop behind either
            raise
        # OpenTelemetry (on by default, as in the official SDK): exported on this connection.
        self._telemetry = telemetry.start(
            self._options.otel,
            worker_url=address,
            metrics=self._options.enable_metrics_reporting,
            headers=self._connection.upgrade_headers(),
        )
        enter_invocation = None
        if self._telemetry is not None:
            self._connection.bind_telemetry(self._telemetry)
            _telemetry_users.append(self)
            # Looked up once (the bridge imports opentelemetry, so only with it on). NOTE(perf):
            # not a `from . import` per call and per invocation, which shows in a sequential
            # round trip (benches/RESULTS.md, "The OpenTelemetry bridge is looked up once").
            from . import _otel_bridge

            self._call_span = _otel_bridge.call_span
            enter_invocation = _otel_bridge.enter_invocation
        self._dispatch = Dispatcher(address, self._connection, self._loop, self._telemetry, enter_invocation)
        self._local = LocalDispatch(
            address, self._loop, self._telemetry, enter_invocation, self._identity, SYNC_HANDLER_THREADS,
            lambda loop: self._queue_for(loop) or self._connection.loop_queue,
        )  # fmt: skip
        self._loop.add_reader(self._connection.wake_fd, self._dispatch.poll)
        if self._telemetry is not None:
            telemetry.attach_event_loop(self._loop)
        # Non-daemon, like the official SDK: a connected worker keeps the process alive.
        self._thread = threading.Thread(target=self._dispatch.run_loop, name="iii-loop", daemon=False)
        self._local.sdk_thread = self._thread
        self._thread.start()
        # --- iii-sdk 0.25.0: the marker `iii ps` reads, written off this thread ---
        self._process_marker = ProcessMarker(address, self._worker_name())
        _live_clients.add(self)
        _hook_uncaught_exceptions()

    # -- connection --------------------------------------------------------------------------

    # --- iii-sdk 0.25.0 identity: worker name, namespace, engine::workers::register metadata ---

    def _worker_name(self) -> str:
        """``III_WORKER_NAME`` (the orchestrator's name wins over the code's), else
        ``InitOptions.worker_name``, else ``host:pid``; as iii-sdk 0.25.0."""
        return (
            os.environ.get("III_WORKER_NAME")
            or self._options.worker_name
            or f"{platform.node()}:{os.getpid()}"
        )

    def _worker_namespace(self) -> str | None:
        """``InitOptions.namespace``, else ``III_NAMESPACE``, else ``None`` (see ``_namespaces``)."""
        return _namespaces.worker_namespace(self._options.namespace)

    def _worker_metadata(self) -> dict[str, Any]:
        """The input of ``engine::workers::register``, sent after every connect, key for key as
        iii-sdk 0.25.0 sends it (``isolation`` and ``namespace`` always present, ``null`` when
        unset; ``description`` only when set). ``version`` is this package's version."""
        t = self._options.telemetry
        language = (t.language if t else None) or os.environ.get("LANG", "").split(".")[0] or None
        metadata: dict[str, Any] = {
            "runtime": "python",
            "version": SDK_VERSION,
            "name": self._worker_name(),
            "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
            "pid": os.getpid(),
            "isolation": os.environ.get("III_ISOLATION") or None,
            "namespace": self._namespace,
            "telemetry": {
                "language": language,
                "project_name": (t.project_name if t else None) or _detect_project_name(),
                "framework": (t.framework if t else None) or "iii-py",
            },
            "features": list(SDK_FEATURES),
        }
        if self._options.worker_description:
            metadata["description"] = self._options.worker_description
        return metadata

    #: iii-sdk 0.25.0's name for :meth:`_worker_metadata`.
    _get_worker_metadata = _worker_metadata

    def _registration_rejected(self) -> RegistrationRejectedError | None:
        """The engine's fatal ``registrationrejected``, once the client has failed because of it."""
        rejection = self._connection.rejection()
        return None if rejection is None else RegistrationRejectedError(*rejection)

    # --- end of iii-sdk 0.25.0 identity ---

    def get_connection_state(self) -> IIIConnectionState:
        """Current state: connecting, connected, reconnecting, failed or disconnected."""
        return self._connection.state()  # type: ignore[return-value]

    def on_connection_state_change(self, callback: Callable[[IIIConnectionState], Any]) -> Callable[[], None]:
        """Calls ``callback(state)`` on the SDK loop at every state change; returns an unsubscribe."""
        self._dispatch.state_listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._dispatch.state_listeners:
                self._dispatch.state_listeners.remove(callback)

        return unsubscribe

    # --- iii-sdk 0.25.0 additions: get_address, add_connection_state_listener ---

    def get_address(self) -> str:
        """The engine address this client connects to (as resolved by ``register_worker``)."""
        return self._address

    def add_connection_state_listener(
        self, handler: Callable[[IIIConnectionState], Any]
    ) -> Callable[[], None]:
        """Calls ``handler(state)`` at once with the current state (on this thread), then on
        the SDK loop at every change of state, ``disconnected`` after :meth:`shutdown`
        included. Returns an idempotent unsubscribe function that removes this registration
        only (as in iii-sdk 0.25.0)."""
        listeners = self._dispatch.state_listeners
        state = self.get_connection_state()
        listener = _StateListener(handler, state)
        listeners.append(listener)
        try:
            handler(state)
        except Exception:
            log.exception("connection state listener raised on its first call")
        done = False

        def unsubscribe() -> None:
            nonlocal done
            if not done:
                done = True
                if listener in listeners:
                    listeners.remove(listener)

        return unsubscribe

    def _deliver_final_state(self) -> None:
        """On the SDK loop as :meth:`shutdown` stops it: delivers the events the shutdown
        queued, then tells each ``add_connection_state_listener`` handler the final state if
        it has not heard it yet (the core may queue it just after the loop stops)."""
        try:
            self._dispatch.poll()
        except Exception:
            log.debug("poll at shutdown failed", exc_info=True)
        state = self.get_connection_state()
        for listener in list(self._dispatch.state_listeners):
            if isinstance(listener, _StateListener):
                try:
                    result = listener(state)
                except Exception:
                    log.exception("connection state listener raised")
                    continue
                if asyncio.iscoroutine(result):
                    result.close()  # the loop stops now: an async listener cannot run any more

    # --- end of iii-sdk 0.25.0 additions ---

    # --- compatibility members: the official client's `_queue` and `_ws` (Motia reads them) ---

    @property
    def _queue(self) -> list[dict[str, Any]]:
        """Compatibility member: the official SDK's list of frames waiting for a connection.
        Always empty here (a new list each time): outgoing frames wait in the Rust core's
        offline queue instead (``InitOptions.offline_queue_limit``)."""
        return []

    @property
    def _ws(self) -> _OpenLink | None:
        """Compatibility member: the official SDK's WebSocket, which frameworks test against
        ``None`` to know whether the worker is connected. Here a stand-in while connected
        (``_ws.state.name == "OPEN"``, as on a ``websockets`` connection), ``None`` otherwise;
        the socket itself lives in the Rust core."""
        return _OPEN_LINK if self._connection.state() == "connected" else None

    @property
    def engine_generation(self) -> str:
        """``"v0.11"`` or ``"head"`` (an engine after v0.11.0), judged once per connection from
        the engine's ``workerregistered``; ``"unknown"`` before the first connection."""
        return str(self._connection.generation())

    @property
    def worker_id(self) -> str | None:
        """The id the engine gave the current connection."""
        return self._connection.worker_id()

    def _wait_until_connected(self) -> None:
        """Blocks until the connection is up, as the official SDK does (frameworks call it).

        Waits up to 30 s. If the reconnection policy gives up first (a finite ``max_retries``),
        raises :class:`NotConnectedError` (a ``ConnectionError``); if the engine refused this
        worker (``registrationrejected``), its subclass :class:`RegistrationRejectedError`, as
        iii-sdk 0.25.0 does. If the engine is still unreachable after 30 s and the policy
        retries forever, logs a warning and returns: the client keeps reconnecting, replays its
        registrations once the engine is up, and calls made meanwhile wait in the offline queue.
        """
        self._check_open()
        state = self._connection.wait_connected(REGISTER_TIMEOUT_S)
        if state == "connected":
            return
        rejected = self._registration_rejected()
        if rejected is not None:
            raise rejected  # iii-sdk 0.25.0: a fatal rejection is raised as such
        reason = self._connection.last_error() or f"still {state} after {REGISTER_TIMEOUT_S:g} s"
        if state in ("connecting", "reconnecting"):
            log.warning(
                "the iii engine at %s is not reachable yet (%s); still trying in the background",
                self._address,
                reason,
            )
            return
        raise NotConnectedError(f"could not connect to the iii engine at {self._address}: {reason}")

    async def connect_async(self) -> None:
        """Waits until the connection is up (it is made automatically at construction)."""
        self._check_open()
        if self._connection.state() != "connected":
            await asyncio.get_running_loop().run_in_executor(None, self._wait_until_connected)

    # -- hooks some frameworks wrap ------------------------------------------------------------

    def _to_dict(self, msg: Any) -> dict[str, Any]:
        """A message as the dict sent to the engine (kept for frameworks that wrap it).

        NOTE: the official SDK passes every outgoing message through this method; here messages
        are encoded in the Rust core, so wrapping it changes nothing on the wire (trace context
        is added by the core itself).
        """
        if isinstance(msg, dict):
            return msg
        if isinstance(msg, BaseModel):
            data: dict[str, Any] = msg.model_dump(by_alias=True, exclude_none=True)
            kind = data.get("type")
            if kind is not None and hasattr(kind, "value"):
                data["type"] = kind.value
            if isinstance(msg, InvocationResultMessage) and "result" in msg.model_fields_set:
                # A handler's None is answered as "result": null on the wire (docs/protocol.md
                # C.7), and iii-sdk 0.25.0's _to_dict shows it so.
                data.setdefault("result", None)
            return data
        return {"data": msg}

    async def _handle_message(self, raw: str | bytes) -> None:
        """Handles one message as if the engine had sent it (kept for frameworks that wrap it).

        NOTE: inbound frames are decoded and routed in the Rust core without calling this
        method, so a wrapper around it sees nothing; called directly, it feeds ``raw`` to the
        same routing as a frame read from the link.
        """
        self._connection.inject(raw if isinstance(raw, bytes) else raw.encode())

    # -- calls ---------------------------------------------------------------------------------

    def _parse_request(
        self, request: dict[str, Any] | TriggerRequest
    ) -> tuple[str, Any, Any, int, Any, str | None, str | None]:
        """A call's fields, checked: ``(function_id, payload, action, timeout_ms, metadata,
        dispatch, namespace)``, ``namespace`` being the one the call resolves in."""
        if isinstance(request, dict):
            get = request.get
            function_id = get("function_id", _MISSING)
            if function_id is _MISSING:
                raise ValueError("trigger request needs a 'function_id'")
            payload, action, timeout_ms = get("payload"), get("action"), get("timeout_ms")
            metadata, dispatch, named = get("metadata"), get("dispatch"), get("namespace")
        elif isinstance(request, TriggerRequest):
            function_id, payload = request.function_id, request.payload
            action, timeout_ms = request.action, request.timeout_ms
            # Dumped, as 0.25.0 dumps the request: a model in ``metadata`` goes out as its dict.
            extra = request.model_dump(include={"metadata", "dispatch"})
            metadata, dispatch, named = extra.get("metadata"), extra.get("dispatch"), request.namespace
        else:
            raise TypeError(f"trigger request must be a dict or TriggerRequest, not {type(request).__name__}")
        if not isinstance(function_id, str) or not function_id:
            raise ValueError(f"function_id must be a non-empty string, not {function_id!r}")
        # --- iii-sdk 0.25.0 per-call fields (see TriggerRequest) ---
        if dispatch not in (None, "auto", "remote"):
            raise ValueError(f"dispatch must be 'auto' or 'remote', got {dispatch!r}")
        if action is not None:
            action = _parse_action(action)
        if timeout_ms is None:
            timeout_ms = self._timeout_ms
        elif not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be a positive integer, not {timeout_ms!r}")
        namespace = _namespaces.for_call(named, function_id, self._namespace)
        return function_id, payload, action, timeout_ms, metadata, dispatch, namespace

    def _route(
        self, request: dict[str, Any] | TriggerRequest
    ) -> tuple[str, Any, Any, int, Any, str | None, Any, LocalFunction | None]:
        """A call's checked fields (as :meth:`_parse_request`, less ``dispatch``), the
        invocation it is made from (a handler's; its caller goes with the call) and the function
        it runs in-process, if any (docs/protocol.md C.16): not an enqueue, not
        ``dispatch="remote"``, a handler here that the engine confirmed in that namespace, and
        fewer than ``MAX_LOCAL_DEPTH`` local calls nested."""
        function_id, payload, action, timeout_ms, metadata, dispatch, namespace = self._parse_request(request)
        parent = _CURRENT_INVOCATION.get()
        fn = self._locals.get(function_id)
        if fn is not None and (
            dispatch == "remote"
            or not (action is None or action is _VOID)
            or not fn.state.local(namespace)
            or (type(parent) is LocalInvocation and parent.local_depth >= MAX_LOCAL_DEPTH)
            or self._closed
        ):
            fn = None
        return function_id, payload, action, timeout_ms, metadata, namespace, parent, fn

    def trigger(self, request: dict[str, Any] | TriggerRequest) -> Any:
        """Calls a function and returns its result (see :meth:`trigger_async` for actions).

        Blocks the calling thread (not the event loop of other threads) with the GIL released.
        A function of this worker that the engine confirmed for local dispatch runs in-process
        (see ``_local.py``), unless the request says ``dispatch="remote"``.
        """
        function_id, payload, action, timeout_ms, metadata, namespace, parent, fn = self._route(request)
        if fn is not None:
            result = self._local.call(fn, payload, metadata, timeout_ms, parent, action is _VOID)
            if result is not REMOTE:
                return result
        parent = _wire(parent)
        traceparent, baggage, span = self._trace(function_id)
        try:
            if action is _VOID:
                self._connection.call_void(
                    function_id, payload, namespace, False, traceparent, baggage,
                    metadata=metadata, parent=parent,
                )  # fmt: skip
                result = None
            else:
                result = self._connection.call(
                    function_id, payload, timeout_ms, action, namespace, traceparent, baggage,
                    metadata=metadata, parent=parent,
                )  # fmt: skip
        except BaseException as exc:
            raise self._call_failed(exc, function_id, action, span) from None
        if span is not None:
            span.end()
        return result if action is None or action is _VOID else _receipt(result)

    async def trigger_async(self, request: dict[str, Any] | TriggerRequest) -> Any:
        """Calls a function from any running event loop.

        No action: waits for and returns the function's result. ``TriggerAction.Enqueue``:
        returns the :class:`EnqueueResult` receipt once the engine stored the message.
        ``TriggerAction.Void``: sends and returns ``None`` at once.

        A function of this worker that the engine confirmed for local dispatch runs in-process
        (see ``_local.py``), unless the request says ``dispatch="remote"``.
        """
        function_id, payload, action, timeout_ms, metadata, namespace, parent, fn = self._route(request)
        if fn is not None:
            return await self._local.call_async(fn, payload, metadata, timeout_ms, parent, action is _VOID)
        parent = _wire(parent)
        traceparent, baggage, span = self._trace(function_id)
        loop = asyncio.get_running_loop()
        # On the SDK loop the frame may be held back until the end of the loop's iteration, so
        # a burst of calls goes out in one write (see ``crate::connection::deferring``).
        on_sdk_loop = loop is self._loop
        try:
            if action is _VOID:
                if self._connection.call_void(
                    function_id, payload, namespace, on_sdk_loop, traceparent, baggage,
                    metadata=metadata, parent=parent,
                ):  # fmt: skip
                    self._dispatch.flush_soon()
                result = None
            else:
                future = loop.create_future()
                queue = None if on_sdk_loop else self._queue_for(loop)
                if self._connection.call_async(
                    function_id, payload, timeout_ms, action, future, queue, namespace, on_sdk_loop,
                    traceparent, baggage, metadata=metadata, parent=parent,
                ):  # fmt: skip
                    self._dispatch.flush_soon()
                result = await future
        except BaseException as exc:
            raise self._call_failed(exc, function_id, action, span) from None
        if span is not None:
            span.end()
        return result if action is None or action is _VOID else _receipt(result)

    def _trace(self, function_id: str) -> tuple[str | None, str | None, _iii.InvocationSpan | None]:
        """``traceparent`` and ``baggage`` for a call made now, and the CLIENT span that starts
        a trace for it when it is made outside any span. While OpenTelemetry is off: the
        application's current span, if it installed a tracer provider of its own."""
        if self._telemetry is None:
            traceparent, baggage = app_outgoing_headers()
            return traceparent, baggage, None
        return self._call_span(self._telemetry, function_id)

    def _call_failed(
        self, exc: BaseException, function_id: str, action: Any, span: _iii.InvocationSpan | None
    ) -> BaseException:
        """The exception a failed call raises (an enqueue's in its own terms); ends its span.
        An :class:`InvocationError` names the called function (``function_id``), as in
        iii-sdk 0.25.0."""
        if isinstance(exc, InvocationError) and exc.function_id is None:
            exc.function_id = function_id
        if type(exc) is NotConnectedError:
            exc = self._registration_rejected() or exc  # iii-sdk 0.25.0: RegistrationRejectedError
        if span is not None:
            span.end_error(type(exc).__name__, str(exc) or type(exc).__name__)
        if action is not None and action is not _VOID and isinstance(exc, InvocationError):
            return enqueue_error(exc)
        return exc

    # --- iii-sdk 0.25.0: the invocation context and the engine's features ---

    def current_invocation(self) -> InvocationContext | None:
        """The invocation the calling code runs in (see :func:`iii.current_invocation`): its
        context inside a function's handler, ``None`` anywhere else."""
        return current_invocation()

    @property
    def _engine_features(self) -> frozenset[str]:
        """The protocol features the engine listed in its last ``workerregistered`` (empty for
        engines before 0.25), as iii-sdk 0.25.0 keeps them (a private attribute there too)."""
        return frozenset(self._connection.engine_features())

    # --- end of the iii-sdk 0.25.0 invocation context ---

    # --- iii-sdk 0.25.0: observers (docs/protocol.md C.9-C.15) ---

    def observe(
        self,
        source: ObserveSource | dict[str, Any],
        target: Target,
        options: ObserverOptions | dict[str, Any] | None = None,
    ) -> ObserverHandle:
        """Observes a function: each event of ``source`` (an invocation of an auto function, or
        what its owner delivers) that passes ``source["filters"]`` activates ``target``.

        ``source``: ``function_id``, and optionally ``namespace``, ``args`` (owner-delivered
        functions), ``filters``, ``on``, ``capture``, ``deliver``. ``target``: a function id or
        ``{"function_id", "namespace"?}``. ``options``: ``id``, ``max_fires``,
        ``expires_in_ms``, ``max_in_flight``, ``metadata`` (each activation's metadata).
        Namespaces default as for calls.

        Returns at once, in state ``pending``, also before the connection is up; the core
        sends the observer to every engine that observes (``observe.v1``), with the same id
        after each reconnect, until it is disposed. Refusals show as state ``error``
        (``INVALID_FILTER``, ``INVALID_ARGS``, ``FORBIDDEN``, an owner's code, ``UNSUPPORTED``
        on an engine without observe) and make ``ready()`` raise :class:`ObserveRejection`.
        Raises ``ValueError`` / ``TypeError`` for a missing function id or target, an id in
        use, or values that are not JSON.
        """
        self._check_open()
        if not isinstance(source, dict):
            raise TypeError(f"observe: source must be a dict, not {type(source).__name__}")
        function_id = source.get("function_id")
        if not isinstance(function_id, str) or not function_id.strip():
            raise ValueError("observe: source.function_id is required")
        target_ref = {"function_id": target} if isinstance(target, str) else target
        target_id = target_ref.get("function_id") if isinstance(target_ref, dict) else None
        if not isinstance(target_id, str) or not target_id.strip():
            raise ValueError("observe: target is required (a function id, or {'function_id', 'namespace'?})")
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"observe: options must be a dict, not {type(options).__name__}")
        opts: dict[str, Any] = dict(options or {})
        observer_id = opts.get("id") or str(uuid.uuid4())
        if not isinstance(observer_id, str):
            raise TypeError("observe: options.id must be a string")
        handles = self._dispatch.observer_handles
        if observer_id in handles:
            raise ValueError(f"observe: observer id already in use: {observer_id}")
        handle = ObserverHandle(observer_id, self)
        src = {k: v for k, v in source.items() if v is not None}
        tgt = {k: v for k, v in target_ref.items() if v is not None}
        # A blank namespace raises ValueError before anything is sent, as in iii-sdk 0.25.0.
        for ref, fid in ((src, function_id), (tgt, target_id)):
            namespace = self._observe_namespace(ref.get("namespace"), fid)
            ref.pop("namespace", None)
            if namespace is not None:
                ref["namespace"] = namespace
        handles[observer_id] = handle  # before the core can report on it
        try:
            refused = self._connection.observe(
                observer_id, src, tgt,
                metadata=opts.get("metadata"), max_fires=opts.get("max_fires"),
                expires_in_ms=opts.get("expires_in_ms"), max_in_flight=opts.get("max_in_flight"),
            )  # fmt: skip
        except BaseException:
            handles.pop(observer_id, None)
            raise
        if refused is not None:
            handles.pop(observer_id, None)
            handle._update("error", {"code": refused[0], "message": refused[1]})
        return handle

    def _observe_namespace(self, named: Any, function_id: str) -> str | None:
        """An observer's source or target namespace, resolved as a call's, except that
        ``engine::*`` ids name ``default`` (as iii-sdk 0.25.0 sends them)."""
        if named is None:
            return "default" if function_id.startswith(_namespaces.ENGINE_PREFIXES) else self._namespace
        if not isinstance(named, str) or not named.strip():
            raise ValueError(f"namespace of {function_id!r} must be a non-blank string, not {named!r}")
        return named

    # What an ObserverHandle asks of its client (see _observe._HandleHost).

    def _observer_unobserve(self, handle: ObserverHandle) -> bool:
        if self._closed:
            return False
        try:
            self._connection.unobserve(handle.id)
        except Exception:
            log.debug("unobserve %s failed", handle.id, exc_info=True)
            return False
        # Only an engine that observes, reached now, answers with `disposed`.
        return (
            handle.state != "error"
            and self._connection.state() == "connected"
            and "observe.v1" in self._connection.engine_features()
        )

    def _observer_forget(self, handle: ObserverHandle) -> None:
        handles = self._dispatch.observer_handles
        if handles.get(handle.id) is handle:
            del handles[handle.id]

    def _on_sdk_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _run_callback(self, callback: Callable[[], None]) -> None:
        pool = self._callbacks
        if pool is None:
            with self._lock:
                pool = self._callbacks
                if pool is None:
                    pool = self._callbacks = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix="iii-observe"
                    )
        try:
            pool.submit(callback)
        except RuntimeError:  # shut down (or the interpreter is exiting): call it here
            callback()

    # What an Observer asks of its client (see _observe._OwnerHost).

    def _identity(self) -> dict[str, Any]:
        """This worker as the engine knows it: ``{worker_id, worker_name}``."""
        worker_id = self._connection.worker_id()
        if worker_id is None:
            return {"worker_name": self._name}
        return {"worker_id": worker_id, "worker_name": self._name}

    def _event_caller(self, function_id: str, cur: Any) -> tuple[dict[str, Any] | None, str]:
        """The caller and invocation id of an event emitted now (docs/protocol.md C.14)."""
        if cur is not None and cur.function_id == function_id:
            return cur.caller, cur.context_id
        return caller_from(self._identity(), cur), new_uuid4()

    def _trace_headers(self, cur: Any) -> tuple[str | None, str | None]:
        if self._telemetry is not None:
            from ._otel_bridge import outgoing_headers

            traceparent, baggage = outgoing_headers()
            if traceparent is not None:
                return traceparent, baggage
        if cur is not None:
            return cur.traceparent, cur.baggage
        return None, None

    def _observer_call(self, observer: Observer, payload: Any, timeout_ms: int | None) -> Any:
        """``Observer.call``: a call of the observer's target marked as its activation."""
        function_id = observer.target
        parent = _wire(_CURRENT_INVOCATION.get())
        traceparent, baggage, span = self._trace(function_id)
        try:
            result = self._connection.call(
                function_id, payload, timeout_ms or self._timeout_ms, None, None, traceparent, baggage,
                parent=parent, activation=observer.id,
            )  # fmt: skip
        except BaseException as exc:
            raise self._call_failed(exc, function_id, None, span) from None
        if span is not None:
            span.end()
        return result

    async def _observer_call_async(self, observer: Observer, payload: Any, timeout_ms: int | None) -> Any:
        function_id = observer.target
        parent = _wire(_CURRENT_INVOCATION.get())
        traceparent, baggage, span = self._trace(function_id)
        loop = asyncio.get_running_loop()
        on_sdk_loop = loop is self._loop
        try:
            future = loop.create_future()
            queue = None if on_sdk_loop else self._queue_for(loop)
            if self._connection.call_async(
                function_id, payload, timeout_ms or self._timeout_ms, None, future, queue, None,
                on_sdk_loop, traceparent, baggage, parent=parent, activation=observer.id,
            ):  # fmt: skip
                self._dispatch.flush_soon()
            result = await future
        except BaseException as exc:
            raise self._call_failed(exc, function_id, None, span) from None
        if span is not None:
            span.end()
        return result

    # --- end of iii-sdk 0.25.0 observers ---

    def _queue_for(self, loop: asyncio.AbstractEventLoop) -> _iii.LoopQueue | None:
        """The batch queue for results on ``loop`` (None: the SDK loop's own)."""
        if loop is self._loop:
            return None
        queue = self._loop_queues.get(loop)
        if queue is None:
            queue = _iii.LoopQueue()
            loop.add_reader(queue.fd, queue.drain)
            self._loop_queues[loop] = queue
        return queue

    def register_function(
        self,
        func_or_id: RegisterFunctionInput | dict[str, Any] | str,
        handler_or_invocation: Callable[..., Any] | HttpInvocationConfig,
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        request_format: Any = None,
        response_format: Any = None,
        observe: Any = None,
        local_dispatch: bool = True,
    ) -> FunctionRef:
        """Registers a function served by ``handler`` (sync or async), or an HTTP-invoked one.

        ``func_or_id`` is a :class:`RegisterFunctionInput`, a dict with its fields, or the
        function id (then the keyword arguments apply and formats default to the handler's
        type hints).

        iii-sdk 0.25.0: ``observe`` (an :class:`ObserveHooks` or a dict of its fields) makes the
        function observable its way: ``delivery`` (``"auto"``, the default, or ``"owner"``),
        ``args_format`` (owner delivery only: a JSON Schema or a pydantic class),
        ``legacy_trigger_type``, ``allow``, and the hooks ``on_observer_added`` /
        ``on_observer_removed``; ``args_format`` without owner delivery, or an unknown delivery,
        raises ``InvocationError("INVALID_OBSERVE_DESCRIPTOR")``. ``local_dispatch=False``
        keeps this worker's own calls of the function going through the engine.
        """
        hooks = ObserveHooks.from_value(observe)
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
        descriptor = _observe_descriptor(spec.id, hooks)
        invocation = (
            handler_or_invocation if isinstance(handler_or_invocation, HttpInvocationConfig) else None
        )
        if invocation is None and spec.invocation is not None and not callable(handler_or_invocation):
            invocation = spec.invocation
        handler: Handler | None = None
        if invocation is None:
            if not callable(handler_or_invocation):
                raise TypeError("handler_or_invocation must be a callable or an HttpInvocationConfig")
            handler = Handler(handler_or_invocation)
        function_id = spec.id
        has_hooks = hooks is not None and bool(hooks.on_observer_added or hooks.on_observer_removed)
        if handler is not None and not handler.is_async and self._dispatch.sync_threads == 0:
            # Before the engine hears of it: a sync function nothing could run is not registered.
            self._dispatch.start_sync_thread()
        state = self._connection.register_function(
            function_id,
            handler,
            is_async=handler is not None and handler.is_async,
            description=spec.description,
            request_format=_format_json(spec.request_format),
            response_format=_format_json(spec.response_format),
            metadata=spec.metadata,
            invocation=invocation.model_dump(mode="json", exclude_none=True) if invocation else None,
            observe=descriptor,
            hooks=has_hooks,
            local_dispatch=bool(local_dispatch),
        )
        # An HTTP-invoked function (no handler) has observers and hooks, never local calls.
        owned = OwnedFunction(function_id, state, hooks if has_hooks else None, self)
        self._dispatch.owned[function_id] = owned
        if handler is not None:
            self._locals[function_id] = LocalFunction(function_id, handler, state)

        def unregister() -> None:
            # `owned` stays in Dispatcher.owned (until the id is registered again): the core
            # hands it the removal hooks of the function's observers after this returns.
            local = self._locals.get(function_id)
            if local is not None and local.state is state:
                del self._locals[function_id]
            self._connection.unregister_function(function_id)

        return FunctionRef(
            id=function_id, unregister=unregister, _is_observed=owned.is_observed, _observers=owned.observers
        )

    def register_service(self, service: RegisterServiceInput | dict[str, Any]) -> None:
        """Registers an organisational service (shown in the engine's dashboard)."""
        self._check_open()
        spec = _as(RegisterServiceInput, service)
        self._connection.register_service(
            spec.id, name=spec.name, description=spec.description, parent_service_id=spec.parent_service_id
        )

    def register_trigger(self, trigger: RegisterTriggerInput | dict[str, Any]) -> Trigger:
        """Binds a trigger (``type``, ``function_id``, ``config``) to a function.

        .. deprecated:: 0.25.0
            As in iii-sdk 0.25.0 (``iii.observe`` replaces it there): every call warns
            (``DeprecationWarning``) and the first one also logs on ``iii.iii``. Still works.
        """
        # --- iii-sdk 0.25.0 deprecation (see _deprecations) ---
        _deprecations.warn(_deprecations.REGISTER_TRIGGER, stacklevel=2, log_key="register_trigger")
        return self._register_trigger(trigger)

    def _register_trigger(self, trigger: RegisterTriggerInput | dict[str, Any]) -> Trigger:
        """:meth:`register_trigger` without the deprecation warning (the SDK's own use)."""
        self._check_open()
        spec = _as(RegisterTriggerInput, trigger)
        namespace = _namespaces.explicit(spec.namespace, "RegisterTriggerInput.namespace") or self._namespace
        trigger_namespace = _namespaces.explicit(
            spec.trigger_namespace, "RegisterTriggerInput.trigger_namespace"
        )
        trigger_id = self._connection.register_trigger(
            spec.type,
            spec.function_id,
            _format_json(spec.config),
            spec.metadata,
            namespace,
            trigger_namespace,
        )
        return Trigger(lambda: self._connection.unregister_trigger(trigger_id, spec.type))

    def register_trigger_type(
        self, trigger_type: RegisterTriggerTypeInput | dict[str, Any], handler: TriggerHandler[Any]
    ) -> TriggerTypeRef[Any, Any]:
        """Makes this worker the provider of a custom trigger type.

        The engine then sends each binding of the type to ``handler.register_trigger`` and each
        removal to ``handler.unregister_trigger``.

        .. deprecated:: 0.25.0
            As in iii-sdk 0.25.0: every call warns (``DeprecationWarning``) and the first one
            also logs on ``iii.iii``. Still works.
        """
        # --- iii-sdk 0.25.0 deprecation (see _deprecations) ---
        _deprecations.warn(_deprecations.REGISTER_TRIGGER_TYPE, stacklevel=2, log_key="register_trigger_type")
        self._check_open()
        spec = _as(RegisterTriggerTypeInput, trigger_type)
        self._connection.register_trigger_type(
            spec.id,
            spec.description or "",
            _format_json(spec.trigger_request_format),
            _format_json(spec.call_request_format),
        )
        self._dispatch.trigger_types[spec.id] = handler
        config_cls = spec.trigger_request_format if isinstance(spec.trigger_request_format, type) else None
        request_cls = spec.call_request_format if isinstance(spec.call_request_format, type) else None
        return TriggerTypeRef(self, spec.id, config_cls, request_cls)

    def unregister_trigger_type(self, trigger_type: RegisterTriggerTypeInput | dict[str, Any]) -> None:
        """Stops providing a trigger type.

        The handler is dropped locally at once. The ``unregistertriggertype`` message is sent,
        but engine v0.11.0 ignores it: the engine forgets the type when this worker disconnects.

        .. deprecated:: 0.25.0
            As in iii-sdk 0.25.0: every call warns (``DeprecationWarning``). Still works.
        """
        # --- iii-sdk 0.25.0 deprecation (see _deprecations) ---
        _deprecations.warn(_deprecations.UNREGISTER_TRIGGER_TYPE, stacklevel=2)
        type_id = (
            trigger_type.id if isinstance(trigger_type, RegisterTriggerTypeInput) else trigger_type["id"]
        )
        self._dispatch.trigger_types.pop(type_id, None)
        self._connection.unregister_trigger_type(type_id)

    # -- discovery ---------------------------------------------------------------------------

    def list_functions(self) -> list[FunctionInfo]:
        """Every function registered with the engine, across all workers, with its formats."""
        return _listings.run(_listings.functions(self.engine_generation), self.trigger)

    async def list_functions_async(self) -> list[FunctionInfo]:
        return await _listings.run_async(_listings.functions(self.engine_generation), self.trigger_async)

    def list_workers(self) -> list[WorkerInfo]:
        """Every worker connected to the engine."""
        return _listings.run(_listings.workers(self.engine_generation), self.trigger)

    async def list_workers_async(self) -> list[WorkerInfo]:
        return await _listings.run_async(_listings.workers(self.engine_generation), self.trigger_async)

    def list_triggers(self, include_internal: bool = False) -> list[TriggerInfo]:
        """Every trigger binding (``include_internal`` adds the engine's own)."""
        return _listings.run(_listings.triggers(self.engine_generation, include_internal), self.trigger)

    async def list_triggers_async(self, include_internal: bool = False) -> list[TriggerInfo]:
        plan = _listings.triggers(self.engine_generation, include_internal)
        return await _listings.run_async(plan, self.trigger_async)

    def list_trigger_types(self, include_internal: bool = False) -> list[TriggerTypeInfo]:
        """Every trigger type (``include_internal`` adds ``engine::*`` ones)."""
        return _listings.run(_listings.trigger_types(self.engine_generation, include_internal), self.trigger)

    async def list_trigger_types_async(self, include_internal: bool = False) -> list[TriggerTypeInfo]:
        plan = _listings.trigger_types(self.engine_generation, include_internal)
        return await _listings.run_async(plan, self.trigger_async)

    def on_functions_available(self, callback: Callable[[list[FunctionInfo]], Any]) -> Callable[[], None]:
        """Calls ``callback(functions)`` whenever the engine's set of functions changes.

        Returns a function that unsubscribes ``callback``.
        """
        with self._lock:
            self._functions_available.append(callback)
            if self._functions_available_sub is None:
                function_id = f"iii.on_functions_available.{uuid.uuid4()}"
                function = self.register_function({"id": function_id}, self._functions_changed)
                trigger = self._register_trigger(
                    {"type": "engine::functions-available", "function_id": function_id, "config": {}}
                )
                self._functions_available_sub = (function, trigger)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._functions_available:
                    self._functions_available.remove(callback)
                if not self._functions_available and self._functions_available_sub is not None:
                    function, trigger = self._functions_available_sub
                    self._functions_available_sub = None
                    trigger.unregister()
                    function.unregister()

        return unsubscribe

    async def _functions_changed(self, data: Any) -> None:
        plan = _listings.functions(self.engine_generation, _listings.entries(data, "functions"))
        functions = await _listings.run_async(plan, self.trigger_async)
        for callback in list(self._functions_available):
            try:
                await awaited(callback(functions))
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

    def _helpers_create_stream(self, stream_name: str, stream: IStream[Any]) -> None:
        """What :func:`iii.helpers.create_stream` calls, under iii-sdk 0.25.0's name for it."""
        self.create_stream(stream_name, stream)

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
        self._process_marker.remove()  # first, as iii-sdk 0.25.0 does
        _live_clients.discard(self)
        self._locals.clear()
        if self._callbacks is not None:
            self._callbacks.shutdown(wait=False)
        if self._telemetry is not None:
            self._release_telemetry()
        self._connection.shutdown()
        if not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._deliver_final_state)
                self._loop.call_soon_threadsafe(self._loop.stop)
            except RuntimeError:
                pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _release_telemetry(self) -> None:
        """One process has one exporter, sent on the link of the newest client using it: hand
        it to the next client, or, for the last one, send what is buffered and switch it off."""
        exporter = self._telemetry
        with _telemetry_lock:
            if self in _telemetry_users:
                _telemetry_users.remove(self)
            if exporter is None or telemetry.current() is not exporter:
                return  # shut down (or replaced) by shutdown_otel() meanwhile
            if _telemetry_users:
                _telemetry_users[-1]._connection.bind_telemetry(exporter)
                return
        # At most 5 s on a live link; with no link there is nothing to wait for.
        telemetry.stop(5000 if self._connection.state() == "connected" else 0)

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

    # --- trigger_many: many calls in one crossing (our addition, not in the official SDK) ---

    def trigger_many(
        self, requests: Iterable[dict[str, Any] | TriggerRequest], *, max_in_flight: int = 1024
    ) -> list[_iii.TriggerOutcome]:
        """Calls many functions and waits for all of them; one :class:`~iii.TriggerOutcome` per
        request, in request order.

        Each request is what :meth:`trigger` takes (a dict or :class:`TriggerRequest`:
        ``function_id``, ``payload``, ``timeout_ms``, ``metadata``, ``namespace``, ``action``).
        At most ``max_in_flight`` calls wait for their results at a time; the rest are sent as
        earlier ones end, and each call's ``timeout_ms`` runs from when it is sent. A failed
        call does not fail the batch: its outcome has ``ok`` False and ``error``, the exception
        :meth:`trigger` would have raised for it (``InvocationError`` with ``function_id`` and
        ``invocation_id``, ``InvocationTimeoutError``, ``ConnectionLostError``...). A void call's
        outcome is ``None`` once sent; an enqueue's is its :class:`EnqueueResult`. Every call
        goes through the engine, also one to a function this worker runs locally.

        A malformed request (not a dict or ``TriggerRequest``, no ``function_id``, a bad
        ``timeout_ms``, a payload with no JSON form) raises ``TypeError`` / ``ValueError`` /
        ``PayloadNotSerializableError`` naming its index, before anything is sent.

        Blocks the calling thread with the GIL released; Ctrl-C stops sending the rest, forgets
        the calls still pending and raises. From an event loop, use :meth:`trigger_many_async`.
        """
        items, normalized, normalize, enqueued = self._batch_plan(requests, max_in_flight)
        outcomes = self._connection.call_many(
            items, max_in_flight, normalize, normalized=normalized, timeout_ms=self._timeout_ms,
            namespace=self._namespace, engine_prefixes=_namespaces.ENGINE_PREFIXES,
            parent=_wire(_CURRENT_INVOCATION.get()),
        )  # fmt: skip
        return self._batch_outcomes(outcomes, enqueued)

    async def trigger_many_async(
        self, requests: Iterable[dict[str, Any] | TriggerRequest], *, max_in_flight: int = 1024
    ) -> list[_iii.TriggerOutcome]:
        """:meth:`trigger_many` from any running event loop: the batch is sent and its results
        collected in the Rust core, and the awaiting task wakes once, with the whole list.
        Cancelling the task stops sending the rest and forgets the calls still pending (their
        late results are dropped)."""
        items, normalized, normalize, enqueued = self._batch_plan(requests, max_in_flight)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        queue = None if loop is self._loop else self._queue_for(loop)
        handle = self._connection.call_many_async(
            items, max_in_flight, normalize, future, queue, normalized=normalized,
            timeout_ms=self._timeout_ms, namespace=self._namespace,
            engine_prefixes=_namespaces.ENGINE_PREFIXES, parent=_wire(_CURRENT_INVOCATION.get()),
        )  # fmt: skip
        try:
            outcomes = await future
        except BaseException:
            handle.cancel()
            raise
        return self._batch_outcomes(outcomes, enqueued)

    def _batch_plan(
        self, requests: Iterable[dict[str, Any] | TriggerRequest], max_in_flight: int
    ) -> tuple[Iterable[Any], bool, Callable[[int, Any], _iii._BatchItem], list[int]]:
        """What the core reads a batch from: the requests (or, with OpenTelemetry on, their
        tuples with a span each; with the application's own tracer, with its current span's
        headers), whether they are tuples already, the function that turns one
        request into its tuple (checked as :meth:`trigger` checks it; the core reads plain
        dicts itself), and the list that collects the indexes of enqueues."""
        if not isinstance(max_in_flight, int) or isinstance(max_in_flight, bool) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be a positive integer, not {max_in_flight!r}")
        if isinstance(requests, (dict, TriggerRequest, str, bytes)):
            raise TypeError("trigger_many takes an iterable of requests, not a single request")
        enqueued: list[int] = []

        def normalize(index: int, request: Any) -> _iii._BatchItem:
            try:
                function_id, payload, action, timeout_ms, metadata, _, namespace = self._parse_request(
                    request
                )
            except (TypeError, ValueError) as exc:
                kind = TypeError if isinstance(exc, TypeError) else ValueError
                raise kind(f"trigger_many request {index}: {exc}") from None
            void = action is _VOID
            queue = None if action is None or void else action
            if queue is not None:
                enqueued.append(index)
            return (function_id, payload, timeout_ms, queue, void, namespace, None, None, metadata, None)

        telemetry = self._telemetry
        span = None
        if telemetry is None:
            traceparent, baggage = app_outgoing_headers()
            if traceparent is None and baggage is None:
                return requests, False, normalize, enqueued
        items = [normalize(index, request) for index, request in enumerate(requests)]
        # Spans only once every request is known good: none is left open by a bad one.
        for index, item in enumerate(items):
            if telemetry is not None:
                traceparent, baggage, span = self._call_span(telemetry, item[0])
            items[index] = (*item[:6], traceparent, baggage, item[8], span)
        return items, True, normalize, enqueued

    def _batch_outcomes(
        self, outcomes: list[_iii.TriggerOutcome], enqueued: list[int]
    ) -> list[_iii.TriggerOutcome]:
        """The outcomes as :meth:`trigger` would have returned or raised them: an enqueue's
        receipt or error in its own terms, ``RegistrationRejectedError`` for a refused worker."""
        for index in enqueued:
            outcome = outcomes[index]
            if outcome.ok:
                outcomes[index] = _iii.TriggerOutcome(_receipt(outcome.result))
            elif isinstance(outcome.error, InvocationError):
                outcomes[index] = _iii.TriggerOutcome(error=enqueue_error(outcome.error))
        rejected = self._registration_rejected()
        if rejected is not None:
            for index, outcome in enumerate(outcomes):
                if type(outcome.error) is NotConnectedError:
                    outcomes[index] = _iii.TriggerOutcome(error=self._registration_rejected())
        return outcomes

    # --- end of trigger_many ---


class _StateListener:
    """A handler given to :meth:`III.add_connection_state_listener`: called with each state
    once, in order. It was already told the state of the moment it was added, which the
    SDK loop may still deliver after that (iii-sdk 0.25.0 reports changes only)."""

    __slots__ = ("handler", "last")

    def __init__(self, handler: Callable[[IIIConnectionState], Any], state: IIIConnectionState) -> None:
        self.handler = handler
        self.last = state

    def __call__(self, state: IIIConnectionState) -> Any:
        if state == self.last:
            return None
        self.last = state
        return self.handler(state)


class _OpenLink:
    """What :attr:`III._ws` returns while connected: not a socket, only ``.state.name``."""

    __slots__ = ()

    class state:  # noqa: N801 (read as `_ws.state.name`, like websockets' State member)
        name = "OPEN"

    def __repr__(self) -> str:
        return "<iii connection: open (the socket is in the Rust core)>"


_OPEN_LINK = _OpenLink()

#: Clients not shut down yet (see ``_hook_uncaught_exceptions``).
_live_clients: weakref.WeakSet[III] = weakref.WeakSet()
_hooked = False


def _hook_uncaught_exceptions() -> None:
    """When the main thread dies of an uncaught exception, shut the clients down so the process
    exits with the traceback (the SDK's non-daemon threads would otherwise keep it alive, as
    the official SDK's do). A main thread that returns normally leaves a worker serving."""
    global _hooked
    if _hooked:
        return
    _hooked = True
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        previous(kind, value, tb)
        for client in list(_live_clients):
            client.shutdown()

    sys.excepthook = hook


#: Clients exporting through the process's telemetry exporter, newest last.
_telemetry_users: list[III] = []
_telemetry_lock = threading.Lock()

_STREAM_OPS: dict[str, type[BaseModel]] = {
    "get": StreamGetInput,
    "set": StreamSetInput,
    "delete": StreamDeleteInput,
    "list": StreamListInput,
    "list_groups": StreamListGroupsInput,
}


def _stream_handler(method: Callable[[Any], Any], model: type[BaseModel]) -> Callable[[Any], Awaitable[Any]]:
    async def handler(data: Any) -> Any:
        return await awaited(method(model.model_validate(data)))

    return handler


def _detect_project_name(cwd: str | None = None) -> str | None:
    """``[project].name`` of ``pyproject.toml`` in ``cwd`` (Python 3.11+), else the basename of
    ``cwd``, else ``None``; never looks above ``cwd``. As iii-sdk 0.25.0 reports it."""
    try:
        cwd = cwd or os.getcwd()
        manifest = os.path.join(cwd, "pyproject.toml")
        if sys.version_info >= (3, 11) and os.path.isfile(manifest):
            import tomllib

            with open(manifest, "rb") as fh:
                name = tomllib.load(fh).get("project", {}).get("name")
            if isinstance(name, str) and name.strip():
                return name.strip()
    except Exception:
        pass
    if not cwd:
        return None
    return os.path.basename(cwd).strip() or None


def _observe_descriptor(function_id: str | None, hooks: ObserveHooks | None) -> dict[str, Any] | None:
    """``registerfunction.observe``: the fields of ``hooks`` that travel (``None`` when none is
    set), checked as iii-sdk 0.25.0 checks them; a pydantic class as ``args_format`` becomes its
    JSON Schema."""
    if hooks is None:
        return None
    delivery = hooks.delivery
    if delivery is not None and delivery not in ("auto", "owner"):
        raise InvocationError(
            "INVALID_OBSERVE_DESCRIPTOR",
            f"observe.delivery must be 'auto' or 'owner', got {delivery!r}",
            function_id=function_id,
        )
    if hooks.args_format is not None and delivery != "owner":
        raise InvocationError(
            "INVALID_OBSERVE_DESCRIPTOR",
            "observe.args_format needs delivery='owner' (an auto function takes no args)",
            function_id=function_id,
        )
    descriptor: dict[str, Any] = {}
    if delivery is not None:
        descriptor["delivery"] = delivery
    if hooks.args_format is not None:
        descriptor["args_format"] = _format_json(hooks.args_format)
    if hooks.legacy_trigger_type is not None:
        descriptor["legacy_trigger_type"] = hooks.legacy_trigger_type
    if hooks.allow is not None:
        descriptor["allow"] = hooks.allow
    return descriptor or None


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


def register_worker(address: str | None = None, options: InitOptions | None = None) -> III:
    """Connects a worker to the engine at ``address`` (e.g. ``ws://localhost:49134``).

    Without ``address`` (iii-sdk 0.25.0): ``III_URL``, else ``ws://127.0.0.1:49134``
    (see ``iii.iii.resolve_engine_url``).

    Blocks until the connection is up, for up to 30 s (see :meth:`III._wait_until_connected`):
    with the default policy (retry forever) a worker started before its engine is returned
    still reconnecting and connects when the engine comes up. When the policy gives up first,
    the client is shut down and :class:`NotConnectedError` is raised, so no thread is left
    (:class:`RegistrationRejectedError` when the engine refused the worker).
    """
    client = III(resolve_engine_url(address), options)
    try:
        client._wait_until_connected()
    except BaseException:
        client.shutdown()
        raise
    return client
