"""The public API on both engine generations: v0.11.0 and the newer engines (docs/protocol.md
Part B). Against the built-in test engine every test runs once per generation; with
``III_URL`` they run against that engine and expect what its generation provides."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from iii import (
    III,
    FunctionInfo,
    InitOptions,
    InvocationError,
    NotConnectedError,
    QueueUnavailableError,
    ReconnectionConfig,
    TriggerAction,
    register_worker,
)
from iii.testing import Engine

from conftest import REAL_ENGINE_URL, WorkerFactory, has_queue_worker, unique, wait_registered, wait_until

REQUEST = {"type": "object", "properties": {"n": {"type": "integer"}}}
RESPONSE = {"type": "string"}


@pytest.fixture(params=["v0.11", "head"])
def generation(request: pytest.FixtureRequest) -> str:
    if REAL_ENGINE_URL and request.param != "v0.11":
        pytest.skip("III_URL: the engine's own generation runs once")
    return str(request.param)


@pytest.fixture
def url(generation: str) -> Iterator[str]:
    """The engine under test: the real one at ``III_URL``, else the test engine in each
    generation."""
    if REAL_ENGINE_URL:
        yield REAL_ENGINE_URL
        return
    with Engine(functions_poll_interval_ms=100, generation=generation) as engine:
        yield engine.url


@pytest.fixture
def worker(url: str, make_worker: WorkerFactory) -> III:
    return make_worker(url)


def test_generation_is_detected_from_the_engine(generation: str, worker: III) -> None:
    if REAL_ENGINE_URL:
        assert worker.engine_generation in ("v0.11", "head")
    else:
        assert worker.engine_generation == generation


def test_listed_functions_have_their_formats(worker: III) -> None:
    fid = unique("fmt")
    worker.register_function(
        fid,
        lambda d: "x",
        description="d",
        metadata={"k": 1},
        request_format=REQUEST,
        response_format=RESPONSE,
    )
    wait_registered(worker, fid)
    info = next(f for f in worker.list_functions() if f.function_id == fid)
    assert (info.description, info.metadata) == ("d", {"k": 1})
    assert info.request_format == REQUEST
    assert info.response_format == RESPONSE
    assert not any(f.function_id.startswith("engine::") for f in worker.list_functions())
    again = asyncio.run(worker.list_functions_async())
    assert next(f for f in again if f.function_id == fid).request_format == REQUEST


def test_formats_of_more_functions_than_one_info_batch(worker: III) -> None:
    prefix = f"many{uuid.uuid4().hex[:6]}"
    ids = [f"{prefix}::f{i:02}" for i in range(40)]
    for i, fid in enumerate(ids):
        worker.register_function(fid, lambda d: d, request_format={"const": i})
    wait_until(lambda: {f.function_id for f in worker.list_functions()} >= set(ids))
    listed = {f.function_id: f for f in worker.list_functions()}
    assert [listed[fid].request_format for fid in ids] == [{"const": i} for i in range(40)]
    assert all(listed[fid].response_format is None for fid in ids)


def test_workers_list_their_functions(worker: III) -> None:
    fid = unique("wk")
    worker.register_function(fid, lambda d: d)
    wait_registered(worker, fid)
    me = next(w for w in worker.list_workers() if w.id == worker.worker_id)
    assert fid in me.functions
    assert me.runtime == "python"
    assert me.function_count >= 1
    mine = [w for w in asyncio.run(worker.list_workers_async()) if w.id == worker.worker_id]
    assert len(mine) == 1


def test_bindings_and_trigger_types_are_listed(worker: III) -> None:
    type_id = unique("tt")
    fid = unique("bound")
    seen = threading.Event()

    class Provider:
        async def register_trigger(self, config: Any) -> None:
            seen.set()

        async def unregister_trigger(self, config: Any) -> None:
            pass

    worker.register_trigger_type(
        {
            "id": type_id,
            "description": "hooks",
            "trigger_request_format": REQUEST,
            "call_request_format": RESPONSE,
        },
        Provider(),
    )
    worker.register_function(fid, lambda d: d)
    worker.register_trigger({"type": type_id, "function_id": fid, "config": {"n": 1}})
    assert seen.wait(5)
    binding = next(t for t in worker.list_triggers() if t.function_id == fid)
    assert (binding.trigger_type, binding.config) == (type_id, {"n": 1})
    tt = next(t for t in worker.list_trigger_types() if t.id == type_id)
    assert (tt.description, tt.trigger_request_format, tt.call_request_format) == ("hooks", REQUEST, RESPONSE)
    assert not any(t.id.startswith("engine::") for t in worker.list_trigger_types())
    internal = asyncio.run(worker.list_trigger_types_async(include_internal=True))
    assert any(t.id == "engine::functions-available" for t in internal)
    assert any(t.function_id == fid for t in asyncio.run(worker.list_triggers_async()))


def test_functions_available_sees_new_functions_with_formats(
    url: str, worker: III, make_worker: WorkerFactory
) -> None:
    got: list[list[FunctionInfo]] = []
    fid = unique("avail")
    unsubscribe = worker.on_functions_available(got.append)
    binding_fn = worker._functions_available_sub[0].id if worker._functions_available_sub else ""
    wait_until(lambda: any(t.function_id == binding_fn for t in worker.list_triggers()))
    other = make_worker(url)
    other.register_function(fid, lambda d: d, request_format=REQUEST)
    wait_until(lambda: any(f.function_id == fid for batch in got for f in batch), timeout=15)
    info = next(f for batch in got for f in batch if f.function_id == fid)
    assert info.request_format == REQUEST
    unsubscribe()


def test_enqueue_without_a_queue_worker_says_so(worker: III) -> None:
    if worker.engine_generation != "head" or has_queue_worker(worker):
        pytest.skip("needs an engine after v0.11.0 without a queue worker")
    request = {"function_id": unique("job"), "payload": {}, "action": TriggerAction.Enqueue(queue="default")}
    with pytest.raises(QueueUnavailableError, match="no queue worker is installed") as caught:
        worker.trigger(request)
    assert isinstance(caught.value, InvocationError) and caught.value.code == "enqueue_error"
    with pytest.raises(QueueUnavailableError):
        asyncio.run(worker.trigger_async(request))


def test_enqueue_on_head_goes_through_the_queue_provider() -> None:
    if REAL_ENGINE_URL:
        pytest.skip("registers engine::queue::enqueue itself")
    with Engine(generation="head") as engine:
        queued: list[Any] = []
        provider = register_worker(engine.url, InitOptions(worker_name="queue"))
        caller = register_worker(engine.url, InitOptions(worker_name="caller"))
        try:
            provider.register_function("engine::queue::enqueue", queued.append)
            wait_until(lambda: has_queue_worker(caller))
            receipt = caller.trigger(
                {"function_id": "jobs::run", "payload": {"n": 1}, "action": TriggerAction.Enqueue(queue="q")}
            )
            assert receipt.messageReceiptId == queued[0]["messageReceiptId"]
            assert (queued[0]["function_id"], queued[0]["queue"], queued[0]["data"]) == (
                "jobs::run",
                "q",
                {"n": 1},
            )
        finally:
            caller.shutdown()
            provider.shutdown()


def _head_url(generation: str, url: str) -> str:
    """Namespaces exist only after v0.11.0: the test engine's HEAD mode, or a real HEAD engine."""
    if generation != "head" and not REAL_ENGINE_URL:
        pytest.skip("namespaces need an engine after v0.11.0")
    return url


def _answers(worker: III, request: dict[str, Any]) -> bool:
    try:
        worker.trigger(request)
    except InvocationError:
        return False
    return True


def test_calls_follow_the_worker_namespace(generation: str, url: str, make_worker: WorkerFactory) -> None:
    url = _head_url(generation, url)
    plain = make_worker(url)
    if plain.engine_generation != "head":
        pytest.skip("namespaces need an engine after v0.11.0")
    ns = f"team{uuid.uuid4().hex[:6]}"
    team = make_worker(url, namespace=ns)
    fid = unique("ns")
    team.register_function(fid, lambda d: f"team:{d}")
    wait_until(lambda: _answers(team, {"function_id": fid, "payload": 0}))
    assert team.trigger({"function_id": fid, "payload": 1}) == "team:1"
    with pytest.raises(InvocationError) as caught:
        plain.trigger({"function_id": fid, "payload": 1})
    assert caught.value.code == "function_not_found"
    assert plain.trigger({"function_id": fid, "payload": 2, "namespace": ns}) == "team:2"
    assert asyncio.run(plain.trigger_async({"function_id": fid, "payload": 3, "namespace": ns})) == "team:3"
    me = next(w for w in plain.list_workers() if w.id == team.worker_id)
    assert me.namespace == ns  # type: ignore[attr-defined]
    assert fid in me.functions
    assert next(f for f in plain.list_functions() if f.function_id == fid).namespace == ns  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="namespace"):
        plain.trigger({"function_id": fid, "namespace": " "})


def test_namespace_option_falls_back_to_the_environment(
    generation: str, url: str, monkeypatch: pytest.MonkeyPatch, make_worker: WorkerFactory
) -> None:
    url = _head_url(generation, url)
    ns = f"env{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("III_NAMESPACE", ns)
    w = make_worker(url)
    if w.engine_generation != "head":
        pytest.skip("namespaces need an engine after v0.11.0")
    wait_until(lambda: any(x.id == w.worker_id for x in w.list_workers()))
    assert next(x for x in w.list_workers() if x.id == w.worker_id).namespace == ns  # type: ignore[attr-defined]
    monkeypatch.setenv("III_NAMESPACE", " ")
    blank_env = make_worker(url)
    wait_until(lambda: any(x.id == blank_env.worker_id for x in w.list_workers()))
    listed = next(x for x in w.list_workers() if x.id == blank_env.worker_id)
    assert listed.namespace == "default"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="namespace is empty"):  # iii-sdk 0.25.0's message
        register_worker(url, InitOptions(namespace=""))


def test_registrations_apply_at_once_on_head() -> None:
    if REAL_ENGINE_URL:
        pytest.skip("needs the test engine's grace period setting")
    # A grace period far beyond the test timeout: only the worker's announcement applies them.
    with Engine(generation="head", registration_grace_ms=600_000) as engine:
        w = register_worker(engine.url, InitOptions(worker_name="prompt"))
        try:
            fid = unique("now")
            w.register_function(fid, lambda d: "ok")
            wait_registered(w, fid)
            assert w.trigger({"function_id": fid, "payload": None}) == "ok"
        finally:
            w.shutdown()


def test_bindings_carry_their_namespace_to_the_provider(make_worker: WorkerFactory) -> None:
    if REAL_ENGINE_URL:
        pytest.skip("uses the test engine's HEAD mode")
    with Engine(generation="head") as engine:
        got: list[dict[str, Any]] = []

        class Provider:
            async def register_trigger(self, config: Any) -> None:
                got.append(config)

            async def unregister_trigger(self, config: Any) -> None:
                pass

        provider = make_worker(engine.url)
        provider.register_trigger_type({"id": "nstype", "description": ""}, Provider())
        team = make_worker(engine.url, namespace="team")
        team.register_function("team::f", lambda d: d)
        team.register_trigger({"type": "nstype", "function_id": "team::f", "config": {}})
        team.register_trigger(
            {
                "type": "nstype",
                "function_id": "team::f",
                "config": {},
                "namespace": "other",
                "trigger_namespace": "x",
            }
        )
        wait_until(lambda: len(got) == 2)
        assert sorted(c.namespace for c in got) == ["other", "team"]
        assert [r.function_id for r in team.list_triggers() if r.trigger_type == "nstype"] == ["team::f"] * 2
        with pytest.raises(ValueError, match="namespace"):
            team.register_trigger({"type": "nstype", "function_id": "team::f", "namespace": ""})


def test_registration_conflicts_on_head(generation: str, url: str, make_worker: WorkerFactory) -> None:
    """``registrationrejected`` (docs/protocol.md B.2), also on a real HEAD engine via ``III_URL``."""
    owner = make_worker(url)
    if owner.engine_generation != "head":
        pytest.skip("registrationrejected exists only on engines after v0.11.0")
    fid = unique("owned")
    owner.register_function(fid, lambda d: "owner")
    wait_registered(owner, fid)
    rival = make_worker(url)
    rival.register_function(fid, lambda d: "rival")
    assert rival.trigger({"function_id": "engine::functions::list", "payload": {}}) is not None
    assert rival.trigger({"function_id": fid, "payload": None}) == "owner", "the rival's copy was refused"
    assert rival.get_connection_state() == "connected", "a function conflict keeps the connection"

    name = f"only-{uuid.uuid4().hex[:8]}"
    make_worker(url, worker_name=name)
    fast = ReconnectionConfig(initial_delay_ms=50, max_delay_ms=200)
    # The rejection may come before or after `connected`: construct without waiting for it.
    second = III(url, InitOptions(worker_name=name, reconnection_config=fast))
    try:
        wait_until(lambda: second.get_connection_state() == "failed")
        with pytest.raises(NotConnectedError, match="WORKER_NAMESPACE_CONFLICT"):
            second.trigger({"function_id": fid, "payload": 1})
    finally:
        second.shutdown()


def test_updates_follow_the_engines_rules(worker: III) -> None:
    """``state::update`` / ``stream::update``: after v0.11.0, ``append`` and ops reported one by
    one in ``errors`` (docs/protocol.md B.4); v0.11.0 refuses the whole call."""
    scope, stream = unique("scope"), unique("stream")
    start = {"log": [], "text": "a", "n": "x"}
    ops = [
        {"type": "append", "path": "log", "value": {"k": 1}},
        {"type": "append", "path": "text", "value": "b"},
        {"type": "increment", "path": "n", "by": 1},
        {"type": "append", "path": ["deep", "er"], "value": "c"},
    ]
    state = {"scope": scope, "key": "k"}
    item = {"stream_name": stream, "group_id": "g", "item_id": "i"}
    worker.trigger({"function_id": "state::set", "payload": {**state, "value": start}})
    worker.trigger({"function_id": "stream::set", "payload": {**item, "data": start}})
    for fid, where in [("state::update", state), ("stream::update", item)]:
        request = {"function_id": fid, "payload": {**where, "ops": ops}}
        if worker.engine_generation == "v0.11":
            with pytest.raises(InvocationError) as refused:
                worker.trigger(request)
            assert refused.value.code == "deserialization_error"
            continue
        out = worker.trigger(request)
        assert out["old_value"] == start
        assert out["new_value"] == {"log": [{"k": 1}], "text": "ab", "n": "x", "deep": {"er": ["c"]}}
        assert [(e["op_index"], e["code"]) for e in out["errors"]] == [(2, "increment.not_number")]
    after = worker.trigger({"function_id": "state::get", "payload": state})
    assert after == (start if worker.engine_generation == "v0.11" else out["new_value"])


def test_publish_calls_the_subscribers_of_its_topic(worker: III) -> None:
    got: list[object] = []
    fid, topic = unique("sub"), unique("topic")
    worker.register_function(fid, lambda data: got.append(data["n"]))
    for config in [{"topic": topic}, {"topic": f"{topic}-other"}, {}]:
        worker.register_trigger({"type": "subscribe", "function_id": fid, "config": config})
    wait_registered(worker, fid)
    try:
        worker.trigger({"function_id": "publish", "payload": {"topic": topic, "data": {"n": 1}}})
    except InvocationError as e:
        if REAL_ENGINE_URL and e.code == "function_not_found":
            pytest.skip("the engine has no publish (its pubsub worker is not running)")
        raise
    worker.trigger({"function_id": "publish", "payload": {"topic": f"{topic}-other", "data": {"n": 2}}})
    wait_until(lambda: sorted(got) == [1, 2])
    # The binding without a topic fired for neither.
    worker.trigger({"function_id": "publish", "payload": {"topic": topic, "data": {"n": 3}}})
    wait_until(lambda: 3 in got)
    assert sorted(got) == [1, 2, 3]
    with pytest.raises(InvocationError) as refused:
        worker.trigger({"function_id": "publish", "payload": {"topic": "", "data": 1}})
    assert refused.value.code == "topic_not_set"
