"""iii-sdk 0.25.0's per-invocation features: the invocation context (``current_invocation()``),
the ``caller`` / ``observe_depth`` a call made from a handler carries, per-call ``metadata``,
and the feature negotiation (``workerregistered.features``, ``large-messages.v1``).

The test engine's 0.25 generation stamps the caller's worker id and name on forwarded calls
and forwards ``metadata`` and ``observe_depth`` (``crates/engine-double/src/v025.rs``)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import iii
from iii import (
    III,
    InitOptions,
    InvocationContext,
    ReconnectionConfig,
    TriggerAction,
    TriggerRequest,
    register_worker,
)
from iii._engine import FEATURE_LARGE_MESSAGES_V1, SDK_FEATURES
from iii.testing import Engine

from conftest import unique, wait_registered, wait_until

Workers = Callable[..., III]


@pytest.fixture
def engine025() -> Iterator[Engine]:
    with Engine(functions_poll_interval_ms=100, generation="0.25") as e:
        yield e


def _workers(url: str, created: list[III]) -> Workers:
    def make(**options: Any) -> III:
        options.setdefault("worker_name", f"ctx-{uuid.uuid4().hex[:8]}")
        options.setdefault("reconnection_config", ReconnectionConfig(initial_delay_ms=50, max_delay_ms=200))
        worker = register_worker(url, InitOptions(**options))
        created.append(worker)
        return worker

    return make


@pytest.fixture
def workers025(engine025: Engine) -> Iterator[Workers]:
    created: list[III] = []
    yield _workers(engine025.url, created)
    for worker in created:
        worker.shutdown()


def test_current_invocation_is_none_outside_handlers(workers025: Workers) -> None:
    assert iii.current_invocation() is None
    assert workers025().current_invocation() is None


def test_a_handler_sees_its_invocation_and_the_callee_sees_the_caller(workers025: Workers) -> None:
    """A calls B (async and sync handlers): B's caller is A's invocation, stamped by the engine
    with A's worker; A's own caller is the top-level caller's worker."""
    server, client = workers025(worker_name="server-w"), workers025(worker_name="client-w")
    outer_async, outer_sync, inner = unique("outer_a"), unique("outer_s"), unique("inner")
    seen: dict[str, InvocationContext | None] = {}

    async def inner_handler(data: Any) -> Any:
        seen[f"inner-{data['via']}"] = iii.current_invocation()
        return "ok"

    async def outer_a(data: Any) -> Any:
        seen["outer_async"] = iii.current_invocation()
        return await server.trigger_async({"function_id": inner, "payload": {"via": "async"}})

    def outer_s(data: Any) -> Any:
        seen["outer_sync"] = server.current_invocation()
        return server.trigger({"function_id": inner, "payload": {"via": "sync"}})

    server.register_function(inner, inner_handler)
    server.register_function(outer_async, outer_a)
    server.register_function(outer_sync, outer_s)
    wait_registered(client, outer_sync)
    assert client.trigger({"function_id": outer_async, "payload": {}}) == "ok"
    assert client.trigger({"function_id": outer_sync, "payload": {}}) == "ok"

    for via, outer in (("async", outer_async), ("sync", outer_sync)):
        outer_ctx, inner_ctx = seen[f"outer_{via}"], seen[f"inner-{via}"]
        assert isinstance(outer_ctx, InvocationContext) and isinstance(inner_ctx, InvocationContext)
        assert outer_ctx.function_id == outer
        uuid.UUID(outer_ctx.invocation_id)
        # A top-level call: the engine names the calling worker, the SDK asserts nothing.
        assert outer_ctx.caller == {"worker_id": client.worker_id, "worker_name": "client-w"}
        assert (outer_ctx.observe_depth, outer_ctx.activation) == (0, None)
        assert inner_ctx.function_id == inner
        assert inner_ctx.invocation_id != outer_ctx.invocation_id
        assert inner_ctx.caller == {
            "function_id": outer,
            "invocation_id": outer_ctx.invocation_id,
            "worker_id": server.worker_id,
            "worker_name": "server-w",
            "parent": {"worker_id": client.worker_id, "worker_name": "client-w"},
        }
    # Nothing leaks out of the handlers.
    assert iii.current_invocation() is None


def test_the_caller_chain_and_observe_depth_travel(engine025: Engine, workers025: Workers) -> None:
    """An invocation that arrives with a caller and an observe depth hands both on: its calls
    carry it as their caller (its own caller one level up, as the parent) and its depth."""
    server = workers025(worker_name="chain-w")
    outer, inner = unique("outer"), unique("inner")
    seen: list[InvocationContext | None] = []
    done = threading.Event()

    def outer_handler(data: Any) -> Any:
        seen.append(iii.current_invocation())
        server.trigger({"function_id": inner, "payload": {}})
        done.set()

    server.register_function(outer, outer_handler)
    server.register_function(inner, lambda data: seen.append(iii.current_invocation()))
    wait_registered(server, inner)
    frame = json.dumps(
        {
            "type": "invokefunction",
            "function_id": outer,
            "data": {},
            "observe_depth": 2,
            "caller": {
                "worker_name": "up",
                "function_id": "up::f",
                "invocation_id": "up-1",
                "parent": {"worker_name": "far"},
            },
            "activation": {"observer_id": "o-1", "activation_id": "a-1"},
        }
    )
    assert engine025.send_raw(server.worker_id or "", frame)
    assert done.wait(10)
    wait_until(lambda: len(seen) == 2)
    outer_ctx, inner_ctx = seen
    assert outer_ctx is not None and inner_ctx is not None
    # A fire-and-forget call has no id on the wire: the context makes one up.
    uuid.UUID(outer_ctx.invocation_id)
    assert outer_ctx.observe_depth == 2
    assert outer_ctx.activation == {"observer_id": "o-1", "activation_id": "a-1"}
    assert outer_ctx.caller == {
        "worker_name": "up",
        "function_id": "up::f",
        "invocation_id": "up-1",
        "parent": {"worker_name": "far"},
    }
    assert inner_ctx.observe_depth == 2
    assert inner_ctx.activation is None
    assert inner_ctx.caller == {
        "function_id": outer,
        "invocation_id": outer_ctx.invocation_id,
        "worker_id": server.worker_id,
        "worker_name": "chain-w",
        "parent": {"worker_name": "up", "function_id": "up::f", "invocation_id": "up-1"},
    }


@pytest.mark.filterwarnings("ignore:register_trigger:DeprecationWarning")
def test_nothing_leaks_between_invocations_or_into_trigger_type_handlers(workers025: Workers) -> None:
    server, client = workers025(), workers025()
    fid, fid_sync = unique("f"), unique("fs")
    contexts: list[tuple[str, InvocationContext | None, object]] = []
    marker: Any = None

    async def handler(data: Any) -> Any:
        import contextvars

        nonlocal marker
        if marker is None:
            marker = contextvars.ContextVar("marker", default=None)
        ctx = iii.current_invocation()
        contexts.append(("async", ctx, marker.get()))
        marker.set(data["n"])
        await asyncio.sleep(0)
        assert iii.current_invocation() == ctx

    def sync_handler(data: Any) -> Any:
        contexts.append(("sync", iii.current_invocation(), None))

    server.register_function(fid, handler)
    server.register_function(fid_sync, sync_handler)
    wait_registered(client, fid_sync)
    for n in range(3):
        client.trigger({"function_id": fid, "payload": {"n": n}})
        client.trigger({"function_id": fid_sync, "payload": {"n": n}})
    ids = [c.invocation_id for _, c, _ in contexts if c is not None]
    assert len(ids) == 6 == len(set(ids))
    assert all(m is None for _, _, m in contexts), "a value one handler set reached the next"

    class Provider:
        def __init__(self) -> None:
            self.seen: list[object] = []

        async def register_trigger(self, config: Any) -> None:
            self.seen.append(iii.current_invocation())

        async def unregister_trigger(self, config: Any) -> None:
            self.seen.append(iii.current_invocation())

    provider = Provider()
    type_id = unique("ctx-type")
    server.register_trigger_type({"id": type_id, "description": "d"}, provider)
    client.register_trigger({"type": type_id, "function_id": fid, "config": {}})
    wait_until(lambda: len(provider.seen) == 1)
    assert provider.seen == [None]


def test_metadata_reaches_the_handler_that_asks(workers025: Workers) -> None:
    server, client = workers025(), workers025()
    positional, keyword, ignores = unique("pos"), unique("kw"), unique("none")
    got: dict[str, Any] = {}

    def by_position(data: Any, metadata: Any = None) -> Any:
        got["positional"] = metadata
        return data

    async def by_keyword(data: Any, *, metadata: Any = None) -> Any:
        got["keyword"] = metadata
        return data

    def without(data: Any, other: Any = "default") -> Any:
        got["none"] = other
        return data

    server.register_function(positional, by_position)
    server.register_function(keyword, by_keyword)
    server.register_function(ignores, without)
    wait_registered(client, ignores)
    meta = {"tenant": "acme", "tags": [1, None]}
    assert client.trigger({"function_id": positional, "payload": 1, "metadata": meta}) == 1
    assert (
        asyncio.run(client.trigger_async(TriggerRequest(function_id=keyword, payload=2, metadata=meta))) == 2
    )
    assert client.trigger({"function_id": ignores, "payload": 3, "metadata": meta}) == 3
    assert got == {"positional": meta, "keyword": meta, "none": "default"}
    # A fire-and-forget call carries it too; a call without metadata gives the handler None.
    got.clear()
    client.trigger(
        {"function_id": keyword, "payload": 4, "action": TriggerAction.Void(), "metadata": {"v": 1}}
    )
    wait_until(lambda: "keyword" in got)
    assert got["keyword"] == {"v": 1}
    assert client.trigger({"function_id": positional, "payload": 5}) == 5
    assert got["positional"] is None


def test_metadata_goes_with_namespace_and_dispatch(workers025: Workers) -> None:
    """The other 0.25 per-call fields are accepted with it (both dispatch modes go through the
    engine: no in-process dispatch yet)."""
    worker = workers025()
    fid = unique("meta")
    worker.register_function(fid, lambda data, metadata: [data, metadata])
    wait_registered(worker, fid)
    for dispatch in ("auto", "remote", None):
        request = {"function_id": fid, "payload": 1, "metadata": {"d": dispatch}, "dispatch": dispatch}
        assert worker.trigger(request | {"namespace": "default"}) == [1, {"d": dispatch}]


def test_no_caller_is_asserted_without_observe_v1(workers025: Workers) -> None:
    """As 0.25: the SDK asserts a caller only when the last workerregistered listed
    observe.v1; the engine still names the calling worker."""
    server = workers025(worker_name="plain-w")
    outer, inner = unique("outer"), unique("inner")
    seen: list[InvocationContext | None] = []
    server.register_function(inner, lambda data: seen.append(iii.current_invocation()))
    # Through the engine (a local call's caller is made by this SDK, whatever the engine lists).
    server.register_function(
        outer, lambda data: server.trigger({"function_id": inner, "payload": {}, "dispatch": "remote"})
    )
    wait_registered(server, outer)
    hello = {"type": "workerregistered", "worker_id": server.worker_id, "features": ["local-dispatch.v1"]}
    server._connection.inject(json.dumps(hello).encode())  # the next workerregistered
    assert server._engine_features == frozenset({"local-dispatch.v1"})
    server.trigger({"function_id": outer, "payload": {}, "dispatch": "remote"})
    (ctx,) = seen
    assert ctx is not None
    assert ctx.caller == {"worker_id": server.worker_id, "worker_name": "plain-w"}


def test_features_are_negotiated(engine025: Engine, workers025: Workers) -> None:
    """0.25 sends workerregistered (with its features) after engine::workers::register; the
    worker declares large-messages.v1 there."""
    assert FEATURE_LARGE_MESSAGES_V1 in SDK_FEATURES
    worker = workers025()
    assert worker._engine_features == frozenset({"observe.v1", "local-dispatch.v1"})
    assert engine025.worker_features()[worker.worker_id or ""] == list(SDK_FEATURES)


@pytest.mark.parametrize("generation", ["v0.11", "head"])
def test_engines_without_features(generation: str) -> None:
    """Older engines list no features: the SDK records none and asserts no caller, so the
    callee's context has none either (these engines forward none)."""
    with Engine(functions_poll_interval_ms=100, generation=generation) as engine:
        created: list[III] = []
        make = _workers(engine.url, created)
        try:
            server, client = make(), make()
            assert server._engine_features == frozenset()
            outer, inner = unique("outer"), unique("inner")
            seen: list[InvocationContext | None] = []
            server.register_function(inner, lambda data: seen.append(iii.current_invocation()))
            server.register_function(
                outer, lambda data: server.trigger({"function_id": inner, "payload": {}})
            )
            wait_registered(client, outer)
            client.trigger({"function_id": outer, "payload": {}})
            (ctx,) = seen
            assert ctx is not None and ctx.function_id == inner
            assert (ctx.caller, ctx.observe_depth) == (None, 0)
        finally:
            for worker in created:
                worker.shutdown()
