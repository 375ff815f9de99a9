"""The observing side of observe (docs/protocol.md C.10.1-C.10.4, C.11): ``III.observe`` and
the :class:`iii.ObserverHandle` it returns: states, reasons, ``ready`` / ``ready_async``,
listeners, ``dispose``, replays, and engines without observe.

Most states are sent to the worker by the test (``observe_support.send``), for an observer the
engine refused first (``_quiet``: it never speaks of it again), so every state a handle can
meet is reached in order; ``test_observe_routed.py`` has the end-to-end ones."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import iii
from iii import (
    III,
    InitOptions,
    ObserveRejection,
    ObserverHandle,
    ReconnectionConfig,
    register_worker,
)
from iii import _observe as observe_module
from iii.testing import Engine
from observe_support import kinds, send

from conftest import WorkerFactory as Workers
from conftest import unique, wait_registered, wait_until


def _new(worker: III, **options: Any) -> ObserverHandle:
    return worker.observe({"function_id": unique("src")}, unique("dst"), options or None)


def _quiet(engine: Engine, worker: III) -> ObserverHandle:
    """An observer the engine refused (``SELF_TARGET``), then told ``pending`` by the test: the
    engine sends nothing more about it, so the test alone moves it from here."""
    fid = unique("self")
    handle = worker.observe({"function_id": fid}, fid)
    wait_until(lambda: handle.state == "error")
    assert handle.reason is not None and handle.reason["code"] == "SELF_TARGET"
    send(engine, worker, type="observeresult", id=handle.id, state="pending")
    wait_until(lambda: handle.state == "pending" and handle.reason is None)
    return handle


def _state(engine: Engine, worker: III, handle: ObserverHandle, state: str, **extra: Any) -> None:
    """The engine says ``handle`` is in ``state``; returns once the handle shows it."""
    send(engine, worker, type="observerstatechanged", id=handle.id, state=state, fires=0, **extra)
    wait_until(lambda: handle.state == state and (handle.reason == extra.get("reason")))


def test_observe_returns_a_pending_handle_and_sends_the_observer(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    before = kinds(obs_engine, "observe")
    handle = worker.observe(
        {"function_id": "p::charge", "filters": {"input.amount": {"$gte": 500}}, "on": "error"},
        {"function_id": "alerts::failed"},
        {"id": "obs-1", "max_in_flight": 4, "metadata": {"team": "a"}},
    )
    assert isinstance(handle, iii.observer_handle.ObserverHandle)
    assert (handle.id, handle.state, handle.reason) == ("obs-1", "pending", None)
    wait_until(lambda: kinds(obs_engine, "observe") == before + 1)
    generated = worker.observe({"function_id": "p::charge"}, "alerts::failed")
    assert len(generated.id) == 36 and generated.id != handle.id  # a UUID v4


def test_observe_refuses_what_is_not_an_observer(obs_workers: Workers) -> None:
    worker = obs_workers()
    with pytest.raises(TypeError):
        worker.observe(["p::charge"], "t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="function_id"):
        worker.observe({"filters": {}}, "t")  # type: ignore[typeddict-item]
    with pytest.raises(ValueError, match="function_id"):
        worker.observe({"function_id": "  "}, "t")
    with pytest.raises(ValueError, match="target"):
        worker.observe({"function_id": "s"}, {"namespace": "x"})  # type: ignore[typeddict-item]
    with pytest.raises(ValueError, match="target"):
        worker.observe({"function_id": "s"}, "")
    worker.observe({"function_id": "s"}, "t", {"id": "same"})
    with pytest.raises(ValueError, match="already in use"):
        worker.observe({"function_id": "s"}, "t", {"id": "same"})


def test_a_blank_namespace_raises_and_nothing_is_sent(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    before = kinds(obs_engine, "observe")
    with pytest.raises(ValueError, match="namespace"):
        worker.observe({"function_id": "s", "namespace": " "}, "t")
    with pytest.raises(ValueError, match="namespace"):
        worker.observe({"function_id": "s"}, {"function_id": "t", "namespace": ""})
    worker.observe({"function_id": "s"}, "t")  # a valid one goes out after them
    wait_until(lambda: kinds(obs_engine, "observe") == before + 1)


def test_ready_waits_through_pending_and_suspended_until_active(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    handle = _quiet(obs_engine, worker)
    send(obs_engine, worker, type="observeresult", id=handle.id, state="pending",
         warnings=["output.total: response_format is open; path not verified"])  # fmt: skip
    _state(obs_engine, worker, handle, "suspended", reason={"code": "TARGET_UNAVAILABLE", "message": "gone"})
    with pytest.raises(TimeoutError):
        handle.ready(timeout=0.05)
    assert handle._warnings == ["output.total: response_format is open; path not verified"]
    waiter = threading.Thread(target=handle.ready, kwargs={"timeout": 10})
    waiter.start()
    _state(obs_engine, worker, handle, "active")
    waiter.join(10)
    assert not waiter.is_alive()
    handle.ready(timeout=0)  # settled: returns at once


def test_ready_raises_the_reason_of_error_and_disposed(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    fid = unique("self")
    refused = worker.observe({"function_id": fid}, fid)  # refused by the engine itself
    with pytest.raises(ObserveRejection) as err:
        refused.ready(timeout=10)
    assert err.value.code == "SELF_TARGET"
    with pytest.raises(ObserveRejection):
        asyncio.run(refused.ready_async())

    bare = _quiet(obs_engine, worker)
    _state(obs_engine, worker, bare, "error")
    with pytest.raises(ObserveRejection) as err:
        bare.ready()
    assert err.value.code == "OBSERVER_ERROR"

    gone = _quiet(obs_engine, worker)
    _state(obs_engine, worker, gone, "disposed", reason={"code": "MAX_FIRES", "message": "fired 3 times"})
    with pytest.raises(ObserveRejection) as err:
        gone.ready()
    assert err.value.code == "MAX_FIRES"
    # Disposed is final: later frames change nothing.
    send(obs_engine, worker, type="observerstatechanged", id=gone.id, state="active", fires=0)
    _state(obs_engine, worker, bare, "active")  # a frame sent after it, to the same worker
    assert gone.state == "disposed"


def test_ready_async_on_any_loop_and_on_the_sdk_loop(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    handle = _quiet(obs_engine, worker)

    async def wait() -> None:
        task = asyncio.ensure_future(handle.ready_async())
        done, _ = await asyncio.wait({task}, timeout=0.05)
        assert not done  # still pending
        await asyncio.get_running_loop().run_in_executor(None, _state, obs_engine, worker, handle, "active")
        await asyncio.wait_for(task, 10)

    asyncio.run(wait())

    # On the SDK loop (an async handler): ready() refuses to block it, ready_async() works.
    fid = unique("waits")

    async def handler(data: Any) -> Any:
        await handle.ready_async()
        try:
            handle.ready()
        except RuntimeError as exc:
            return str(exc)
        return "blocked"

    worker.register_function(fid, handler)
    wait_registered(worker, fid)
    assert "ready_async" in worker.trigger({"function_id": fid, "payload": {}, "dispatch": "remote"})


def test_listeners_see_every_change_in_order_off_the_sdk_loop(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    handle = _quiet(obs_engine, worker)
    seen: list[tuple[str, Any, str]] = []
    off_seen: list[str] = []
    handle.on_state_change(
        lambda state, reason: seen.append((state, reason, threading.current_thread().name))
    )
    off = handle.on_state_change(lambda state, reason: off_seen.append(state))
    reason = {"code": "OWNER_UNAVAILABLE", "message": "owner gone"}
    send(obs_engine, worker, type="observeresult", id=handle.id, state="pending")  # no change
    _state(obs_engine, worker, handle, "active")
    off()
    off()  # idempotent
    _state(obs_engine, worker, handle, "suspended", reason=reason)
    _state(obs_engine, worker, handle, "active")
    expected = [("active", None), ("suspended", reason), ("active", None)]
    wait_until(lambda: [(s, r) for s, r, _ in seen][-3:] == expected)
    # The change to `pending` made by _quiet may still be on its way to the listeners.
    assert [(s, r) for s, r, _ in seen] in (expected, [("pending", None), *expected])
    assert off_seen in (["active"], ["pending", "active"])
    assert all(name != "iii-loop" for _, _, name in seen)


def test_dispose_waits_for_the_engine_then_stops_for_good(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    handle = _quiet(obs_engine, worker)
    _state(obs_engine, worker, handle, "active")
    before = kinds(obs_engine, "unobserve")
    disposer = threading.Thread(target=handle.dispose)
    disposer.start()
    wait_until(lambda: kinds(obs_engine, "unobserve") == before + 1)
    engine_reason = {"code": "UNOBSERVED", "message": "unobserved"}
    send(
        obs_engine, worker, type="observerstatechanged", id=handle.id, state="disposed", reason=engine_reason
    )
    disposer.join(10)
    assert not disposer.is_alive()
    assert (handle.state, handle.reason) == ("disposed", engine_reason)  # the engine's, not ours
    handle.dispose()  # again: nothing more is sent
    assert kinds(obs_engine, "unobserve") == before + 1
    assert handle.id not in worker._dispatch.observer_handles


def test_dispose_without_an_answer_disposes_locally(
    obs_engine: Engine, obs_workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(observe_module, "DISPOSE_WAIT_S", 0.2)
    worker = obs_workers()
    handle = _quiet(obs_engine, worker)
    _state(obs_engine, worker, handle, "active")
    obs_engine.pause_reading()  # the engine hears nothing, so it answers nothing
    handle.dispose()
    assert (handle.state, handle.reason) == (
        "disposed",
        {"code": "UNOBSERVED", "message": "disposed by the observing worker"},
    )
    with pytest.raises(ObserveRejection) as err:
        handle.ready()
    assert err.value.code == "UNOBSERVED"

    other = _new(worker)
    asyncio.run(other.dispose_async())
    assert other.state == "disposed"
    obs_engine.pause_reading(False)

    # An observer in error is not held by the engine: no wait at all.
    monkeypatch.setattr(observe_module, "DISPOSE_WAIT_S", 30)
    refused = worker.observe({"function_id": "s", "filters": {"input.x": 1}}, "t")  # INVALID_FILTER
    started = time.monotonic()
    refused.dispose()
    assert refused.state == "disposed" and time.monotonic() - started < 5


def test_live_observers_are_sent_again_after_a_reconnect(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    kept, dropped = _new(worker), _new(worker)
    wait_until(lambda: kinds(obs_engine, "observe") == 2)
    refused = worker.observe({"function_id": "s", "filters": {"input.x": 1}}, "t")  # INVALID_FILTER
    _state(obs_engine, worker, dropped, "disposed", reason={"code": "EXPIRED", "message": "expired"})
    obs_engine.disconnect_all()
    wait_until(lambda: kinds(obs_engine, "observe") >= 3 and worker.get_connection_state() == "connected")
    # Only the live one is replayed (under the same id; disposed and refused ones are not).
    wait_until(lambda: kinds(obs_engine, "observe") == 3)
    assert kept.state == "pending" and refused.state == "error"


@contextlib.contextmanager
def _worker_of_an_engine(generation: str) -> Iterator[tuple[Engine, iii.III]]:
    """A test engine of ``generation`` and a worker connected to it, shut down afterwards."""
    with Engine(generation=generation) as engine:
        worker = register_worker(
            engine.url,
            InitOptions(worker_name=unique("old"), otel={"enabled": False},
                        reconnection_config=ReconnectionConfig(initial_delay_ms=50, max_delay_ms=200)),
        )  # fmt: skip
        try:
            yield engine, worker
        finally:
            worker.shutdown()


@pytest.mark.parametrize("generation", ["v0.11", "head"])
def test_an_engine_without_observe_makes_observers_unsupported(generation: str) -> None:
    with _worker_of_an_engine(generation) as (engine, worker):
        handle = worker.observe({"function_id": "s"}, "t")
        with pytest.raises(ObserveRejection) as err:
            handle.ready(timeout=10)
        assert err.value.code == "UNSUPPORTED"
        assert "observe" not in engine.received_kinds()
        handle.dispose()
        assert handle.state == "disposed"


def test_hooks_against_an_engine_without_observe_are_reported_inactive_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _worker_of_an_engine("v0.11") as (engine, worker):
        with caplog.at_level(logging.WARNING, logger="iii"):
            worker.register_function("owner::fn", lambda d: d, observe={"delivery": "owner"})
            worker.register_function("plain::fn", lambda d: d)
            first = worker.worker_id
            engine.disconnect_all()
            wait_until(lambda: worker.worker_id not in (None, first))  # registered again
            wait_registered(worker, "owner::fn")
        inactive = [r.getMessage() for r in caplog.records if "are inactive" in r.getMessage()]
        assert len(inactive) == 1 and "owner::fn" in inactive[0]


def test_observe_after_shutdown_raises(obs_workers: Workers) -> None:
    worker = obs_workers()
    worker.shutdown()
    with pytest.raises(iii.ClientShutdownError):
        worker.observe({"function_id": "s"}, "t")
