"""The owner side of observe (docs/protocol.md C.9, C.13, C.14): ``register_function(observe=)``
and its checks, the owner's hooks (order, time limit, rejections, context), the
:class:`iii.Observer` objects, ``FunctionRef.is_observed()`` / ``observers()``, and owner
delivery (``emit``, ``call``, ``reject``).

The engine's announcements (``functionregistered``, ``observeradded``, ``observerremoved``) are
sent to the worker by the test; what the worker answers is seen in the kinds of messages the
test engine received (``observerack``, ``invocationsobserved``) and in the core's state."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pydantic import BaseModel

import iii
from iii import III, InvocationError, ObserveHooks, Observer, ObserveRejection, _owner
from iii.testing import Engine
from observe_support import confirm, kinds, send, view

from conftest import WorkerFactory as Workers
from conftest import unique, wait_until


class CronArgs(BaseModel):
    expression: str


def _hooked(
    worker: III, *, delivery: str = "owner", **hooks: Any
) -> tuple[str, iii.FunctionRef, list[tuple[str, Observer]]]:
    """A function with hooks that record what they were called with."""
    fid = unique("owned")
    calls: list[tuple[str, Observer]] = []

    def added(obs: Observer) -> None:
        calls.append(("added", obs))

    def removed(obs: Observer) -> None:
        calls.append(("removed", obs))

    options: dict[str, Any] = {
        "delivery": delivery,
        "on_observer_added": added,
        "on_observer_removed": removed,
    }
    options.update(hooks)
    ref = worker.register_function(fid, lambda data: data, observe=options)
    return fid, ref, calls


def test_register_function_checks_the_observe_descriptor(obs_workers: Workers) -> None:
    worker = obs_workers()
    with pytest.raises(InvocationError) as err:
        worker.register_function(
            "bad::auto", lambda d: d, observe=ObserveHooks(args_format={"type": "object"})
        )
    assert err.value.code == "INVALID_OBSERVE_DESCRIPTOR" and err.value.function_id == "bad::auto"
    with pytest.raises(InvocationError) as err:
        worker.register_function("bad::delivery", lambda d: d, observe={"delivery": "sometimes"})
    assert err.value.code == "INVALID_OBSERVE_DESCRIPTOR"
    with pytest.raises(TypeError):
        worker.register_function("bad::value", lambda d: d, observe=3)
    # Accepted: a pydantic class as args_format (sent as its JSON Schema), a subclass, a dict.
    worker.register_function(
        "ok::cron", lambda d: d, observe=ObserveHooks(delivery="owner", args_format=CronArgs)
    )

    class Hooks(ObserveHooks):
        delivery = "owner"
        legacy_trigger_type = "cron"

    worker.register_function("ok::legacy", lambda d: d, observe=Hooks(allow=True))
    worker.register_function("ok::dict", lambda d: d, observe={"allow": False})
    ref = worker.register_function("ok::plain", lambda d: d)
    assert (ref.is_observed(), ref.observers()) == (False, [])


def test_descriptor_building(monkeypatch: pytest.MonkeyPatch) -> None:
    from iii._client import _observe_descriptor

    assert _observe_descriptor("f", None) is None
    assert _observe_descriptor("f", ObserveHooks()) is None  # nothing to send
    assert _observe_descriptor("f", ObserveHooks(on_observer_added=lambda o: None)) is None
    built = _observe_descriptor("f", ObserveHooks(delivery="owner", args_format=CronArgs, allow=False))
    assert built is not None
    assert built["delivery"] == "owner" and built["allow"] is False
    assert built["args_format"]["properties"]["expression"]["type"] == "string"
    assert _observe_descriptor("f", ObserveHooks(legacy_trigger_type="http")) == {
        "legacy_trigger_type": "http"
    }


def test_added_hook_gets_the_observer_and_it_becomes_active(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    fid, ref, calls = _hooked(worker)
    acks = kinds(obs_engine, "observerack")
    legacy = {"trigger_type": "cron", "config": {"expression": "* * * * *"}}
    confirm(obs_engine, worker, fid, observers=[view("o-1", args={"topic": "a"}, legacy=legacy)])
    wait_until(lambda: kinds(obs_engine, "observerack") == acks + 1)
    ((what, obs),) = calls
    assert what == "added" and isinstance(obs, iii.observable.Observer)
    assert (obs.id, obs.function_id, obs.args, obs.target, obs.on, obs.legacy) == (
        "o-1", fid, {"topic": "a"}, "t::target", "success", legacy,
    )  # fmt: skip
    assert obs.to_dict() == {
        "id": "o-1", "function_id": fid, "args": {"topic": "a"}, "filters": {}, "target": "t::target",
        "capture": ["input", "output", "caller"], "on": "success", "legacy": legacy,
    }  # fmt: skip
    wait_until(ref.is_observed)
    assert ref.observers() == [obs] and ref.observers()[0] is obs  # the same object
    # Removed: the hook gets the same object, and it is no longer active.
    send(obs_engine, worker, type="observerremoved", function_id=fid, revision=2, id="o-1")
    wait_until(lambda: len(calls) == 2)
    assert calls[1] == ("removed", obs) and calls[1][1] is obs
    wait_until(lambda: not ref.is_observed())
    assert ref.observers() == []


def test_unregistering_runs_the_removal_hook_of_every_observer(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    fid, ref, calls = _hooked(worker)
    acks = kinds(obs_engine, "observerack")
    confirm(obs_engine, worker, fid, observers=[view("o-1"), view("o-2")])
    wait_until(lambda: kinds(obs_engine, "observerack") == acks + 2)
    ref.unregister()
    wait_until(lambda: len(calls) == 4)
    assert sorted((what, obs.id) for what, obs in calls[2:]) == [("removed", "o-1"), ("removed", "o-2")]
    assert not ref.is_observed()


def test_hooks_run_one_at_a_time_in_order_without_an_invocation(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    order: list[str] = []
    contexts: list[Any] = []

    async def added(obs: Observer) -> None:
        contexts.append(iii.current_invocation())
        order.append(f"start {obs.id}")
        await asyncio.sleep(0.05)  # a slow hook: the next one must wait for it
        order.append(f"end {obs.id}")

    def removed(obs: Observer) -> None:
        contexts.append(iii.current_invocation())
        order.append(f"removed {obs.id}")

    fid = unique("ordered")
    ref = worker.register_function(
        fid, lambda d: d, observe={"on_observer_added": added, "on_observer_removed": removed}
    )
    acks = kinds(obs_engine, "observerack")
    confirm(obs_engine, worker, fid, observers=[view("a")])
    send(
        obs_engine,
        worker,
        type="observeradded",
        function_id=fid,
        namespace="default",
        revision=2,
        observer=view("b"),
    )
    send(obs_engine, worker, type="observerremoved", function_id=fid, revision=3, id="a")
    wait_until(lambda: len(order) == 5)
    assert order == ["start a", "end a", "start b", "end b", "removed a"]
    assert contexts == [None, None, None]
    wait_until(lambda: [o.id for o in ref.observers()] == ["b"])
    # `a`, removed while its hook ran, was acked all the same (as iii-sdk 0.25.0): two acks.
    wait_until(lambda: kinds(obs_engine, "observerack") == acks + 2)


def _conflict(engine: Engine, worker: III, fid: str) -> None:
    """Another worker owns ``fid`` in this namespace: the engine releases ours."""
    send(engine, worker, type="registrationrejected", code="FUNCTION_NAMESPACE_CONFLICT",
         namespace="default", function_id=fid, owner_worker_id="other")  # fmt: skip
    wait_until(lambda: not worker._locals[fid].state.local())


def test_a_function_released_while_a_hook_runs_undoes_it_and_skips_the_queued_ones(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    entered, release = threading.Event(), threading.Event()
    log: list[str] = []

    def added(obs: Observer) -> None:
        log.append(f"added {obs.id}")
        if obs.id == "slow":
            entered.set()
            release.wait(10)
            log.append("slow returned")

    fid = unique("released")
    ref = worker.register_function(
        fid,
        lambda d: d,
        observe={
            "on_observer_added": added,
            "on_observer_removed": lambda obs: log.append(f"removed {obs.id}"),
        },
    )
    acks = kinds(obs_engine, "observerack")
    confirm(obs_engine, worker, fid, observers=[view("fast")])
    wait_until(lambda: kinds(obs_engine, "observerack") == acks + 1)
    added_frame = {"type": "observeradded", "function_id": fid, "namespace": "default"}
    send(obs_engine, worker, **added_frame, revision=2, observer=view("slow"))
    assert entered.wait(10)
    send(obs_engine, worker, **added_frame, revision=3, observer=view("queued"))  # waits behind slow
    _conflict(obs_engine, worker, fid)
    release.set()
    wait_until(lambda: len(log) == 5)
    # slow's success came after the release: undone at once, before the release's own removals;
    # queued never ran; nothing acked after the first.
    assert log == ["added fast", "added slow", "slow returned", "removed slow", "removed fast"]
    assert not ref.is_observed()
    worker.list_functions()  # a round trip on the same connection: every earlier frame arrived
    assert kinds(obs_engine, "observerack") == acks + 1


def test_observers_are_listed_in_the_order_the_engine_announced_them(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    fid = unique("order")
    ref = worker.register_function(fid, lambda d: d)
    confirm(obs_engine, worker, fid, observers=[view("zeta"), view("alpha"), view("mid")])
    wait_until(lambda: len(ref.observers()) == 3)
    assert [o.id for o in ref.observers()] == ["zeta", "alpha", "mid"]


def test_one_event_emitted_to_two_observers_is_reported_once(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    fid = unique("ticker")
    observers: list[Observer] = []

    def tick(event: Any) -> list[bool]:
        # A cron-like owner's tick: its one event to each of its observers.
        return [obs.emit(event) for obs in observers]

    ref = worker.register_function(
        fid, tick, observe={"delivery": "owner", "on_observer_added": observers.append}
    )
    confirm(obs_engine, worker, fid, observers=[view("a", capture=["input"]), view("b", capture=["caller"])])
    wait_until(lambda: len(ref.observers()) == 2)
    reports = kinds(obs_engine, "invocationsobserved")
    assert worker.trigger({"function_id": fid, "payload": {"tick": 1}}) == [True, True]
    wait_until(lambda: kinds(obs_engine, "invocationsobserved") > reports)
    items = [i for i in obs_engine.observed_items() if i["function_id"] == fid]
    assert [i["matched"] for i in items] == [["a", "b"]]
    assert items[0]["input"] == {"tick": 1} and "caller" in items[0]  # the union of the captures


def test_a_rejecting_hook_refuses_the_observer(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()

    def added(obs: Observer) -> None:
        if obs.args.get("expression") == "bad":
            raise ObserveRejection("INVALID_CRON_EXPRESSION", "bad day")
        if obs.args.get("expression") == "boom":
            raise RuntimeError("hook crashed")

    fid = unique("picky")
    ref = worker.register_function(
        fid, lambda d: d, observe=ObserveHooks(delivery="owner", on_observer_added=added)
    )
    acks = kinds(obs_engine, "observerack")
    confirm(obs_engine, worker, fid, observers=[view("bad", args={"expression": "bad"}),
                                               view("boom", args={"expression": "boom"}),
                                               view("good", args={"expression": "0 * * * *"})])  # fmt: skip
    wait_until(lambda: kinds(obs_engine, "observerack") == acks + 3)
    wait_until(ref.is_observed)
    assert [o.id for o in ref.observers()] == ["good"]


def test_a_hook_past_its_time_limit_is_refused_and_undone(
    obs_engine: Engine, obs_workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_owner, "HOOK_TIMEOUT_S", 0.2)
    worker = obs_workers()
    release = threading.Event()
    events: list[str] = []

    def added(obs: Observer) -> None:
        events.append("added")
        release.wait(10)
        events.append("added returned")

    def removed(obs: Observer) -> None:
        events.append("removed")

    fid = unique("slow")
    ref = worker.register_function(
        fid, lambda d: d, observe={"on_observer_added": added, "on_observer_removed": removed}
    )
    acks = kinds(obs_engine, "observerack")
    confirm(obs_engine, worker, fid, observers=[view("late")])
    wait_until(lambda: kinds(obs_engine, "observerack") == acks + 1)  # refused: OWNER_TIMEOUT
    assert not ref.is_observed()
    release.set()
    wait_until(lambda: events == ["added", "added returned", "removed"])


def test_emit_and_reject_on_an_owner_delivered_function(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    fid, ref, calls = _hooked(worker)
    filtered = view("vip", filters={"$and": [{"input.tier": {"$eq": "vip"}}]})
    confirm(obs_engine, worker, fid, observers=[view("all"), filtered])
    wait_until(lambda: len(ref.observers()) == 2)
    everyone, vip = (dict((o.id, o) for o in ref.observers())[k] for k in ("all", "vip"))
    assert vip.matches({"input": {"tier": "vip"}}) and not vip.matches({"input": {"tier": "free"}})
    before = kinds(obs_engine, "invocationsobserved")
    assert everyone.emit({"tier": "free"}) is True
    assert vip.emit({"tier": "free"}) is False  # the filter rejects it: nothing sent
    wait_until(lambda: kinds(obs_engine, "invocationsobserved") > before)
    # Emitted from inside a handler: the caller is that handler's (and no error).
    emitter = unique("emitter")
    worker.register_function(emitter, lambda data: vip.emit(data))
    assert worker.trigger({"function_id": emitter, "payload": {"tier": "vip"}}) is True
    # Late rejection: inactive at once, emit returns False, call refuses.
    acks = kinds(obs_engine, "observerack")
    vip.reject("TOPIC_FORBIDDEN", "no longer allowed")
    assert vip.emit({"tier": "vip"}) is False
    with pytest.raises(InvocationError) as err:
        vip.call({"tier": "vip"})
    assert err.value.code == "OBSERVER_NOT_ACTIVE"
    wait_until(lambda: kinds(obs_engine, "observerack") == acks + 1)
    assert [o.id for o in ref.observers()] == ["all"]


def test_call_is_refused_locally_when_it_cannot_be_delivered(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    fid, ref, _ = _hooked(worker)
    confirm(
        obs_engine, worker, fid, observers=[view("vip", filters={"$and": [{"input.tier": {"$eq": "vip"}}]})]
    )
    wait_until(ref.is_observed)
    (vip,) = ref.observers()
    before = kinds(obs_engine, "invokefunction")
    with pytest.raises(InvocationError) as err:
        vip.call({"tier": "free"})
    assert err.value.code == "FILTERS_NOT_MATCHED"
    with pytest.raises(InvocationError) as err:
        asyncio.run(vip.call_async({"tier": "free"}))
    assert err.value.code == "FILTERS_NOT_MATCHED"
    assert kinds(obs_engine, "invokefunction") == before


def test_emit_and_call_need_owner_delivery(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    fid, ref, _ = _hooked(worker, delivery="auto")
    confirm(obs_engine, worker, fid, observers=[view("o")])
    wait_until(ref.is_observed)
    (obs,) = ref.observers()
    with pytest.raises(InvocationError) as err:
        obs.emit({"x": 1})
    assert err.value.code == "NOT_OWNER_DELIVERED"
    with pytest.raises(InvocationError) as err:
        obs.call({"x": 1})
    assert err.value.code == "NOT_OWNER_DELIVERED"


def test_an_auto_function_without_hooks_lists_its_observers(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    fid = unique("plain")
    ref = worker.register_function(fid, lambda d: d)
    acks = kinds(obs_engine, "observerack")
    confirm(obs_engine, worker, fid, observers=[view("x", capture=["input"], on="complete")])
    wait_until(lambda: kinds(obs_engine, "observerack") == acks + 1)  # acked by the core alone
    wait_until(ref.is_observed)
    (obs,) = ref.observers()
    assert (obs.capture, obs.on) == (["input"], "complete")
    ref.unregister()
    assert fid not in worker._locals  # its owner record stays for the removal hooks


def test_an_http_invoked_function_has_observers_hooks_and_owner_delivery(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    fid = unique("webhook")
    calls: list[tuple[str, Observer]] = []
    ref = worker.register_function(
        fid,
        iii.HttpInvocationConfig(url="http://127.0.0.1:9/hook"),
        observe=ObserveHooks(
            delivery="owner",
            on_observer_added=lambda obs: calls.append(("added", obs)),
            on_observer_removed=lambda obs: calls.append(("removed", obs)),
        ),
    )
    acks = kinds(obs_engine, "observerack")
    confirm(obs_engine, worker, fid, local_dispatch=False, observers=[view("o-1")])
    wait_until(lambda: kinds(obs_engine, "observerack") == acks + 1)
    ((what, obs),) = calls
    assert what == "added" and obs.function_id == fid
    wait_until(ref.is_observed)
    assert ref.observers() == [obs]
    assert fid not in worker._locals  # nothing to run here: calls to it go through the engine
    reports = kinds(obs_engine, "invocationsobserved")
    assert obs.emit({"event": "delivered"}) is True
    wait_until(lambda: kinds(obs_engine, "invocationsobserved") == reports + 1)
    send(obs_engine, worker, type="observerremoved", function_id=fid, revision=2, id="o-1")
    wait_until(lambda: len(calls) == 2)
    assert calls[1] == ("removed", obs)
    wait_until(lambda: not ref.is_observed())
