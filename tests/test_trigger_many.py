"""III.trigger_many / trigger_many_async: many calls in one crossing, outcomes in order, per-item
errors, a bound on calls in flight, cancellation; and the wire id on a failed call's error."""

from __future__ import annotations

import _thread
import asyncio
import gc
import threading
import uuid
import weakref
from typing import Any

import pytest

from iii import (
    ClientShutdownError,
    ConnectionLostError,
    EnqueueResult,
    InvocationError,
    InvocationTimeoutError,
    PayloadNotSerializableError,
    ReconnectionConfig,
    TriggerAction,
    TriggerOutcome,
    TriggerRequest,
    current_invocation,
)
from iii.testing import Engine

from conftest import REAL_ENGINE_URL, needs_queue, unique, wait_registered, wait_until

FAST = ReconnectionConfig(initial_delay_ms=20, max_delay_ms=50, jitter_factor=0.0)


class Gate:
    """A sync handler that blocks until opened, counting how many run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.active = 0
        self.peak = 0
        self.started = 0
        self.ids: list[str] = []
        self.reached: dict[int, threading.Event] = {}

    def when_started(self, n: int) -> threading.Event:
        with self.lock:
            return self.reached.setdefault(n, threading.Event())

    def __call__(self, data: Any) -> Any:
        ctx = current_invocation()
        with self.lock:
            self.active += 1
            self.started += 1
            self.peak = max(self.peak, self.active)
            if ctx is not None:
                self.ids.append(ctx.invocation_id)
            event = self.reached.setdefault(self.started, threading.Event())
        event.set()
        self.open.wait(10)
        with self.lock:
            self.active -= 1
        return data


def served(make_worker, handler, url: str | None = None) -> tuple[Any, Any, str]:
    server, client = make_worker(url), make_worker(url, reconnection_config=FAST)
    fid = unique("many")
    server.register_function(fid, handler)
    wait_registered(client, fid)
    return server, client, fid


def invokes_received(engine) -> int:
    return engine.received_kinds().count("invokefunction")


def invokes_settled(engine, *workers) -> int:
    """``invokes_received`` once every call these workers sent so far has reached the engine
    (their own ``engine::workers::register`` included): a call each, answered, comes after them."""
    for worker in workers:
        worker.trigger({"function_id": "engine::functions::list", "payload": {}})
    return invokes_received(engine)


# --- the wire id on a single call's error (iii-sdk 0.25.0) -----------------------------------


def test_remote_error_names_the_call_sync_and_async(make_worker):
    seen: list[str] = []

    def fail(_data):
        seen.append(current_invocation().invocation_id)
        raise RuntimeError("boom")

    _, client, fid = served(make_worker, fail)
    with pytest.raises(InvocationError) as err:
        client.trigger({"function_id": fid, "payload": {}})
    assert err.value.invocation_id == seen[-1]
    assert err.value.function_id == fid
    uuid.UUID(err.value.invocation_id)

    async def call() -> InvocationError:
        with pytest.raises(InvocationError) as err:
            await client.trigger_async({"function_id": fid, "payload": {}})
        return err.value

    exc = asyncio.run(call())
    assert exc.invocation_id == seen[-1] and exc.function_id == fid
    assert len(set(seen)) == 2


def test_timeout_names_the_call_sync_and_async(make_worker):
    gate = Gate()
    _, client, fid = served(make_worker, gate)
    try:
        with pytest.raises(InvocationTimeoutError) as err:
            client.trigger({"function_id": fid, "payload": {}, "timeout_ms": 200})
        gate.when_started(1).wait(5)
        assert err.value.invocation_id == gate.ids[0]

        async def call() -> InvocationTimeoutError:
            with pytest.raises(InvocationTimeoutError) as err:
                await client.trigger_async({"function_id": fid, "payload": {}, "timeout_ms": 200})
            return err.value

        exc = asyncio.run(call())
        gate.when_started(2).wait(5)
        assert exc.invocation_id == gate.ids[1]
    finally:
        gate.open.set()


def test_not_found_names_the_call(make_worker):
    client = make_worker()
    with pytest.raises(InvocationError) as err:
        client.trigger({"function_id": unique("missing"), "payload": {}})
    assert err.value.code == "function_not_found"
    uuid.UUID(err.value.invocation_id)


# --- trigger_many --------------------------------------------------------------------------------


def test_outcomes_come_back_in_request_order(make_worker):
    _, client, fid = served(make_worker, lambda d: d["i"] * 2)
    requests: list[Any] = [{"function_id": fid, "payload": {"i": i}} for i in range(300)]
    requests[7] = TriggerRequest(function_id=fid, payload={"i": 7})
    outcomes = client.trigger_many(requests, max_in_flight=16)
    assert [o.result for o in outcomes] == [i * 2 for i in range(300)]
    assert all(isinstance(o, TriggerOutcome) and o.ok and o.error is None for o in outcomes)
    assert outcomes[3].value() == 6


def test_async_form_on_a_foreign_loop_and_in_a_handler(make_worker):
    server, client, fid = served(make_worker, lambda d: {"echo": d})

    async def fan(n: int) -> list[Any]:
        outcomes = await client.trigger_many_async(
            ({"function_id": fid, "payload": i} for i in range(n)), max_in_flight=8
        )
        return [o.result["echo"] for o in outcomes]

    assert asyncio.run(fan(100)) == list(range(100))

    # From an async handler: on the SDK loop itself.
    outer = unique("outer")

    async def handler(data: Any) -> Any:
        return await fan(data["n"])

    client.register_function(outer, handler)
    wait_registered(server, outer)
    assert server.trigger({"function_id": outer, "payload": {"n": 50}}) == list(range(50))


def test_one_failure_does_not_fail_the_batch(make_worker):
    gate = Gate()

    def handler(data: Any) -> Any:
        if data == "raise":
            raise ValueError("no good")
        if data == "block":
            return gate(data)
        return data

    _, client, fid = served(make_worker, handler)
    missing = unique("missing")
    try:
        outcomes = client.trigger_many(
            [
                {"function_id": fid, "payload": 1},
                {"function_id": fid, "payload": "raise"},
                {"function_id": missing, "payload": 2},
                {"function_id": fid, "payload": "block", "timeout_ms": 200},
                {"function_id": fid, "payload": 3},
            ]
        )
    finally:
        gate.open.set()
    assert [o.ok for o in outcomes] == [True, False, False, False, True]
    assert outcomes[0].result == 1 and outcomes[4].result == 3
    raised, not_found, timed_out = outcomes[1].error, outcomes[2].error, outcomes[3].error
    assert isinstance(raised, InvocationError) and "no good" in raised.message
    assert raised.function_id == fid
    assert isinstance(not_found, InvocationError) and not_found.code == "function_not_found"
    assert not_found.function_id == missing
    assert isinstance(timed_out, InvocationTimeoutError) and timed_out.timeout_ms == 200
    assert timed_out.invocation_id == gate.ids[0]
    ids = {raised.invocation_id, not_found.invocation_id, timed_out.invocation_id}
    assert len(ids) == 3 and all(uuid.UUID(i) for i in ids)
    with pytest.raises(InvocationError):
        outcomes[1].value()
    assert outcomes[1].result is None


def test_max_in_flight_is_respected(make_worker):
    gate = Gate()
    _, client, fid = served(make_worker, gate)
    done: list[list[TriggerOutcome]] = []
    caller = threading.Thread(
        target=lambda: done.append(
            client.trigger_many([{"function_id": fid, "payload": i} for i in range(40)], max_in_flight=4)
        )
    )
    caller.start()
    try:
        assert gate.when_started(4).wait(10), (gate.started, client._connection.pending_calls())
        # Four handlers hold their calls: the window is full, nothing else may be pending.
        assert client._connection.pending_calls() == 4
        with gate.lock:
            assert gate.active == 4
    finally:
        gate.open.set()
    caller.join(20)
    assert [o.result for o in done[0]] == list(range(40))
    assert gate.peak == 4 and gate.started == 40


def test_void_and_enqueue_items(make_worker):
    got: list[Any] = []
    server, client, fid = served(make_worker, got.append)
    needs_queue(client)
    outcomes = client.trigger_many(
        [
            {"function_id": fid, "payload": "v", "action": TriggerAction.Void()},
            {"function_id": fid, "payload": "q", "action": TriggerAction.Enqueue(queue="default")},
            {"function_id": fid, "payload": "q2", "action": {"type": "enqueue", "queue": "no-such-queue"}},
        ]
    )
    assert outcomes[0].ok and outcomes[0].result is None
    assert outcomes[1].ok and isinstance(outcomes[1].result, EnqueueResult)
    assert not outcomes[2].ok and outcomes[2].error.code == "enqueue_error"
    wait_until(lambda: sorted(got) == ["q", "v"])


def test_empty_batch(engine, make_worker):
    client = make_worker(engine.url)
    before = invokes_settled(engine, client)
    assert client.trigger_many([]) == []
    assert asyncio.run(client.trigger_many_async(iter(()))) == []
    assert invokes_received(engine) == before


def test_bad_requests_raise_before_anything_is_sent(engine, make_worker):
    client = make_worker(engine.url)
    fid = unique("never")
    good = {"function_id": fid, "payload": 1}
    before = invokes_settled(engine, client)
    with pytest.raises(TypeError, match="request 1"):
        client.trigger_many([good, 42])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="request 0.*function_id"):
        client.trigger_many([{"payload": 1}, good])
    with pytest.raises(ValueError, match="request 1.*timeout_ms"):
        client.trigger_many([good, {"function_id": fid, "timeout_ms": -1}])
    with pytest.raises(PayloadNotSerializableError):
        client.trigger_many([good, {"function_id": fid, "payload": object()}])
    with pytest.raises(TypeError, match="iterable of requests"):
        client.trigger_many(good)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_in_flight"):
        client.trigger_many([good], max_in_flight=0)
    with pytest.raises(TypeError, match="request 1"):
        asyncio.run(client.trigger_many_async([good, "nope"]))  # type: ignore[list-item]
    # A call made now reaches the engine after anything sent before it: none was.
    client.trigger_many([{"function_id": "engine::functions::list", "payload": {}}])
    assert invokes_received(engine) == before + 1


def test_cancelling_the_awaiting_task_stops_the_batch(engine, make_worker):
    gate = Gate()
    server, client, fid = served(make_worker, gate, engine.url)
    before = invokes_settled(engine, server, client)

    async def scenario() -> None:
        task = asyncio.ensure_future(
            client.trigger_many_async(
                [{"function_id": fid, "payload": i} for i in range(10)], max_in_flight=2
            )
        )
        started = gate.when_started(2)
        assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The two calls in flight are forgotten at once, the other eight never sent.
        assert client._connection.pending_calls() == 0

    try:
        asyncio.run(scenario())
    finally:
        gate.open.set()
    # Frames on one link arrive in order: once this call's result is back, the engine has read
    # every call sent before it.
    assert client.trigger({"function_id": "engine::functions::list", "payload": {}}) is not None
    assert invokes_received(engine) == before + 2 + 1
    assert gate.started == 2


def test_ctrl_c_stops_a_blocking_batch(engine, make_worker):
    gate = Gate()
    server, client, fid = served(make_worker, gate, engine.url)
    before = invokes_settled(engine, server, client)

    def interrupt() -> None:
        if gate.when_started(2).wait(10):
            _thread.interrupt_main()  # what Ctrl-C does to the main thread

    threading.Thread(target=interrupt).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            client.trigger_many([{"function_id": fid, "payload": i} for i in range(10)], max_in_flight=2)
        assert client._connection.pending_calls() == 0
    finally:
        gate.open.set()
    assert client.trigger({"function_id": "engine::functions::list", "payload": {}}) is not None
    assert invokes_received(engine) == before + 2 + 1


def _interrupted_batch(
    client, gate: Gate, requests: list[dict], max_in_flight: int, interrupt
) -> list[TriggerOutcome]:
    """Runs ``trigger_many`` on a thread; once ``max_in_flight`` calls reached the handler,
    calls ``interrupt()``; the batch must then end (the handlers are still held by ``gate``)."""
    done: list[list[TriggerOutcome]] = []
    caller = threading.Thread(
        target=lambda: done.append(client.trigger_many(requests, max_in_flight=max_in_flight))
    )
    caller.start()
    try:
        assert gate.when_started(max_in_flight).wait(10)
        interrupt()
        caller.join(20)
        assert not caller.is_alive()
    finally:
        gate.open.set()
    return done[0]


def test_engine_going_away_mid_batch_fails_every_item(engine, make_worker):
    gate = Gate()
    _, client, fid = served(make_worker, gate, engine.url)
    requests = [{"function_id": fid, "payload": i, "timeout_ms": 300} for i in range(6)]
    outcomes = _interrupted_batch(client, gate, requests, 2, engine.stop)
    assert not any(o.ok for o in outcomes)
    assert all(isinstance(o.error, ConnectionLostError) for o in outcomes[:2])
    # The rest waited in the offline queue for an engine that did not come back.
    assert all(isinstance(o.error, (ConnectionLostError, InvocationTimeoutError)) for o in outcomes[2:])


def test_a_batch_made_while_reconnecting_is_sent_after_the_replay(engine, make_worker):
    worker = make_worker(engine.url, reconnection_config=FAST)
    fid = unique("many")
    worker.register_function(fid, lambda d: d + 1)
    wait_registered(worker, fid)
    engine.stop()
    wait_until(lambda: worker.get_connection_state() == "reconnecting")
    done: list[list[TriggerOutcome]] = []
    requests = [{"function_id": fid, "payload": i} for i in range(5)]
    caller = threading.Thread(target=lambda: done.append(worker.trigger_many(requests)))
    caller.start()
    wait_until(lambda: worker._connection.pending_calls() == 5)  # in the offline queue
    engine.restart()
    caller.join(10)
    assert [o.result for o in done[0]] == [1, 2, 3, 4, 5]


def test_shutdown_with_a_batch_in_flight(make_worker):
    gate = Gate()
    _, client, fid = served(make_worker, gate)
    requests = [{"function_id": fid, "payload": i} for i in range(10)]
    outcomes = _interrupted_batch(client, gate, requests, 3, client.shutdown)
    assert all(isinstance(o.error, ClientShutdownError) for o in outcomes)


@pytest.mark.usefixtures("needs_observability")
def test_each_call_carries_the_trace_context_a_single_call_would(make_worker):
    """With OpenTelemetry on, as for ``trigger``: a call made outside any span starts a trace of
    its own; inside the application's span, with baggage attached, each call carries both."""
    from opentelemetry import context as otel_context

    from iii import telemetry

    worker, caller = make_worker(), make_worker()
    fid = unique("seen")
    worker.register_function(
        fid, lambda _d: [telemetry.current_trace_id(), telemetry.get_baggage_entry("tenant")]
    )
    wait_registered(caller, fid)
    bare = caller.trigger_many([{"function_id": fid, "payload": i} for i in range(3)])
    traces = [o.result[0] for o in bare]
    assert all(traces) and len(set(traces)) == 3, "each bare call is a trace of its own"
    assert all(o.result[1] is None for o in bare)

    tracer = telemetry.get_tracer()
    assert tracer is not None
    with tracer.start_as_current_span("app span") as mine:
        token = otel_context.attach(telemetry.set_baggage_entry("tenant", "acme"))
        try:
            inside = asyncio.run(
                caller.trigger_many_async([{"function_id": fid, "payload": i} for i in range(2)])
            )
        finally:
            otel_context.detach(token)
    expected = [f"{mine.get_span_context().trace_id:032x}", "acme"]
    assert [o.result for o in inside] == [expected, expected]


def test_plain_requests_follow_the_worker_namespace(make_worker):
    """Plain dict requests are read in Rust: the namespace rule is ``trigger()``'s (the worker's
    namespace, ``engine::*`` in ``default``, a request's own ``namespace`` first)."""
    if REAL_ENGINE_URL:
        pytest.skip("uses the test engine's HEAD mode")
    with Engine(generation="head") as engine:
        team = make_worker(engine.url, namespace="team")
        team.register_function("team::f", lambda d: d + 1)
        caller = make_worker(engine.url, namespace="team")
        wait_until(lambda: caller.trigger_many([{"function_id": "team::f", "payload": 0}])[0].ok)
        plain, engine_call, elsewhere = caller.trigger_many(
            [
                {"function_id": "team::f", "payload": 1},
                {"function_id": "engine::functions::list", "payload": {}},
                {"function_id": "team::f", "payload": 2, "namespace": "default"},
            ]
        )
        assert plain.result == 2
        assert engine_call.ok
        assert not elsewhere.ok and elsewhere.error.code == "function_not_found"


def test_a_raised_error_does_not_keep_its_batch_alive(make_worker):
    """``value()`` raises the stored error, whose traceback then leads back to the outcome: the
    garbage collector must see through outcomes to break that cycle."""
    client = make_worker()

    class Marker:
        pass

    def scope() -> weakref.ref[Marker]:
        marker = Marker()
        outcomes = client.trigger_many([{"function_id": unique("missing"), "payload": 1}])
        try:
            outcomes[0].value()
        except InvocationError:
            pass
        return weakref.ref(marker)

    ref = scope()
    gc.collect()
    assert ref() is None
