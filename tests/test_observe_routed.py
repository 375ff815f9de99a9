"""Observers end to end, routed by the test engine (its 0.25 generation with observer routing):
activations and their envelope, local calls reported and activating targets, owner delivery
(hooks, ``emit``, ``call``), disposal and policies (docs/protocol.md C.10-C.17).

An engine that does not route observers (the test engine before observer routing) is detected
once (it never confirms a function with ``functionregistered``), and these tests are skipped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import iii
from iii import III, InitOptions, Observer, ObserveRejection, ReconnectionConfig, register_worker
from iii.testing import Engine

from conftest import REAL_ENGINE_URL, unique, wait_registered, wait_until

_routes: list[bool] = []


def _engine_routes(engine: Engine) -> bool:
    """Whether this test engine sends ``functionregistered`` (probed once, 3 s at most)."""
    if not _routes:
        probe = register_worker(engine.url, InitOptions(worker_name=unique("probe"), otel={"enabled": False}))
        try:
            fid = unique("probe")
            probe.register_function(fid, lambda d: d)
            state = probe._locals[fid].state
            deadline = time.monotonic() + 3
            while not state.local(None) and time.monotonic() < deadline:
                time.sleep(0.02)
            _routes.append(state.local(None))
        finally:
            probe.shutdown()
    return _routes[0]


@pytest.fixture
def routing() -> Iterator[tuple[Engine, list[III]]]:
    if REAL_ENGINE_URL:
        pytest.skip("uses the test engine")
    with Engine(functions_poll_interval_ms=100, generation="0.25") as engine:
        if not _engine_routes(engine):
            pytest.skip("this test engine does not route observers yet")
        created: list[III] = []
        yield engine, created
        for worker in created:
            worker.shutdown()


def _worker(routing: tuple[Engine, list[III]], name: str) -> III:
    engine, created = routing
    worker = register_worker(
        engine.url,
        InitOptions(worker_name=unique(name), otel={"enabled": False},
                    reconnection_config=ReconnectionConfig(initial_delay_ms=50, max_delay_ms=200)),
    )  # fmt: skip
    created.append(worker)
    return worker


def test_a_routed_call_activates_the_target_with_its_envelope(routing: tuple[Engine, list[III]]) -> None:
    owner, watcher, caller = (
        _worker(routing, "owner"),
        _worker(routing, "watcher"),
        _worker(routing, "caller"),
    )
    source, target = unique("charge"), unique("alert")
    owner.register_function(source, lambda data: {"charged": data["amount"]})
    received: list[tuple[Any, Any]] = []
    watcher.register_function(target, lambda data: received.append((data, iii.current_invocation())))
    wait_registered(caller, source)
    handle = watcher.observe({"function_id": source, "filters": {"input.amount": {"$gte": 500}}}, target)
    handle.ready(timeout=10)
    assert handle.state == "active"
    assert caller.trigger({"function_id": source, "payload": {"amount": 5}}) == {"charged": 5}
    assert caller.trigger({"function_id": source, "payload": {"amount": 900}}) == {"charged": 900}
    wait_until(lambda: len(received) == 1)
    ((envelope, ctx),) = received
    assert envelope["observer_id"] == handle.id and envelope["function_id"] == source
    assert (envelope["status"], envelope["input"], envelope["output"]) == (
        "success",
        {"amount": 900},
        {"charged": 900},
    )
    assert envelope["caller"]["worker_id"] == caller.worker_id
    assert ctx.activation == {"observer_id": handle.id, "activation_id": envelope["activation_id"]}
    assert ctx.observe_depth == 1
    handle.dispose()
    assert handle.state == "disposed" and handle.reason is not None
    assert handle.reason["code"] == "UNOBSERVED"


def test_an_owners_local_calls_are_local_and_reported(routing: tuple[Engine, list[III]]) -> None:
    owner, watcher = _worker(routing, "owner"), _worker(routing, "watcher")
    source, target = unique("local"), unique("seen")
    threads: list[threading.Thread] = []
    owner.register_function(source, lambda data: threads.append(threading.current_thread()) or data["n"])
    received: list[Any] = []
    watcher.register_function(target, lambda data: received.append(data))
    wait_registered(watcher, source)
    handle = watcher.observe({"function_id": source, "capture": ["input", "output", "caller"]}, target)
    handle.ready(timeout=10)
    wait_until(lambda: owner._locals[source].state.local(None) and owner._locals[source].state.observed())
    assert owner.trigger({"function_id": source, "payload": {"n": 7}}) == 7
    assert [t.name[:10] for t in threads] == ["iii-local-"]  # ran in-process, on a local thread
    wait_until(lambda: len(received) == 1)
    (envelope,) = received
    assert (envelope["input"], envelope["output"]) == ({"n": 7}, 7)
    assert envelope["caller"] == {"worker_id": owner.worker_id, "worker_name": owner._name}


def test_owner_delivery_hooks_emit_and_call(routing: tuple[Engine, list[III]]) -> None:
    owner, watcher = _worker(routing, "owner"), _worker(routing, "watcher")
    source, target = unique("topic"), unique("sink")
    index: dict[str, Observer] = {}
    removed: list[str] = []

    def added(obs: Observer) -> None:
        if obs.args.get("topic") == "forbidden":
            raise ObserveRejection("TOPIC_FORBIDDEN", "not this one")
        index[obs.id] = obs

    owner.register_function(
        source,
        lambda data: data,
        observe={"delivery": "owner", "args_format": {"type": "object", "properties": {"topic": {"type": "string"}}},
                 "on_observer_added": added, "on_observer_removed": lambda obs: removed.append(obs.id)},
    )  # fmt: skip
    received: list[tuple[Any, Any]] = []
    watcher.register_function(target, lambda data: received.append((data, iii.current_invocation())) or "ack")
    wait_registered(watcher, source)
    refused = watcher.observe({"function_id": source, "args": {"topic": "forbidden"}}, target)
    with pytest.raises(ObserveRejection) as err:
        refused.ready(timeout=10)
    assert err.value.code == "TOPIC_FORBIDDEN"
    handle = watcher.observe(
        {"function_id": source, "args": {"topic": "news"}}, target, {"metadata": {"team": "a"}}
    )
    handle.ready(timeout=10)
    obs = index[handle.id]
    assert obs.args == {"topic": "news"} and obs.target == target
    assert obs.emit({"headline": "hi"}) is True
    wait_until(lambda: len(received) == 1)
    assert received[0][0]["input"] == {"headline": "hi"}
    assert obs.call({"direct": True}) == "ack"
    assert received[1][1].activation["observer_id"] == handle.id
    handle.dispose()
    wait_until(lambda: removed == [handle.id])


def test_max_fires_disposes_the_observer(routing: tuple[Engine, list[III]]) -> None:
    owner, watcher = _worker(routing, "owner"), _worker(routing, "watcher")
    source, target = unique("fires"), unique("once")
    owner.register_function(source, lambda data: data)
    received: list[Any] = []
    watcher.register_function(target, lambda data: received.append(data))
    wait_registered(watcher, source)
    handle = watcher.observe({"function_id": source}, target, {"max_fires": 1})
    handle.ready(timeout=10)
    for n in range(3):
        watcher.trigger({"function_id": source, "payload": {"n": n}})
    wait_until(lambda: handle.state == "disposed")
    assert handle.reason is not None and handle.reason["code"] == "MAX_FIRES"
    assert len(received) == 1


@pytest.mark.parametrize("dispatch", ["remote", "auto"])
def test_filters_on_output_error_and_caller_select_what_is_delivered(
    routing: tuple[Engine, list[III]], dispatch: str
) -> None:
    """The same observers match a call routed through the engine and a call the owner ran
    in-process (its core evaluates them): on the output, on the error of a failed call
    (``on: error``), and on the caller's worker name."""
    owner, watcher = _worker(routing, "owner"), _worker(routing, "watcher")
    source, target = unique("pay"), unique("seen")

    def pay(data: dict[str, Any]) -> dict[str, Any]:
        if data["amount"] < 0:
            raise iii.InvocationError("CARD_DECLINED", "declined")
        return {"total": data["amount"] * 2}

    owner.register_function(source, pay)
    received: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def seen(data: dict[str, Any]) -> None:
        with lock:
            received.append((data["observer_id"], data))

    watcher.register_function(target, seen)
    wait_registered(watcher, source)
    big = watcher.observe({"function_id": source, "filters": {"output.total": {"$gt": 100}}}, target)
    declined = watcher.observe(
        {
            "function_id": source,
            "on": "error",
            "capture": ["input", "error"],
            "filters": {"error.message": {"$prefix": "CARD_DECLINED"}},
        },
        target,
    )
    mine = watcher.observe(
        {"function_id": source, "filters": {"caller.worker_name": {"$prefix": "nobody-"}}}, target
    )
    for handle in (big, declined, mine):
        handle.ready(timeout=10)
    state = owner._locals[source].state
    wait_until(lambda: state.local(None) and state.observed())

    def call(amount: int) -> None:
        request = {"function_id": source, "payload": {"amount": amount}, "dispatch": dispatch}
        try:
            owner.trigger(request)
        except iii.InvocationError:
            pass

    for amount in (10, 70, -1, 100):  # the last one is a sentinel: it comes after the others
        call(amount)
    wait_until(lambda: sorted(o for o, _ in received) == sorted([big.id, big.id, declined.id]))
    # Every activation of the first three calls was decided before the sentinel's.
    fires = watcher.trigger({"function_id": "engine::observers::get", "payload": {"id": mine.id}})
    assert fires.get("observer", fires)["fires"] == 0
    deliveries = {(o, d["input"]["amount"]): d for o, d in received}
    assert sorted(deliveries) == sorted([(big.id, 70), (big.id, 100), (declined.id, -1)]), received
    assert deliveries[(big.id, 70)]["output"] == {"total": 140}
    failure = deliveries[(declined.id, -1)]
    assert (failure["status"], failure["error"]["code"]) == ("error", "invocation_failed")
    assert failure["error"]["message"] == "CARD_DECLINED: declined"
    assert "output" not in failure
