"""Reconnection, replay, calls across disconnects, connection states, faults."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from iii import (
    III,
    ConnectionLostError,
    IIIConnectionError,
    InitOptions,
    InvocationTimeoutError,
    NotConnectedError,
    OfflineQueueFullError,
    ReconnectionConfig,
    TriggerHandler,
)

from conftest import unique, wait_registered, wait_until
from proxy import Proxy

FAST = ReconnectionConfig(initial_delay_ms=20, max_delay_ms=100, jitter_factor=0.0)


class Provider(TriggerHandler):
    def __init__(self):
        self.bound = []

    def register_trigger(self, config):
        self.bound.append(config.id)

    def unregister_trigger(self, config):
        pass


@pytest.fixture
def proxy(engine):
    p = Proxy(engine.port)
    yield p
    p.close()


def test_replay_after_engine_restart(engine, make_worker):
    worker = make_worker(engine.url, reconnection_config=FAST)
    provider = Provider()
    type_id, fid = unique("tt"), unique("f")
    worker.register_trigger_type({"id": type_id, "description": "d"}, provider)
    worker.register_service({"id": "svc"})
    worker.register_function(fid, lambda d: "back")
    trigger = worker.register_trigger({"type": type_id, "function_id": fid, "config": {"k": 1}})
    wait_until(lambda: len(provider.bound) == 1)
    first_trigger_id = provider.bound[0]
    old_worker = worker.worker_id

    engine.stop()
    engine.restart()
    wait_until(lambda: worker.get_connection_state() == "connected" and worker.worker_id != old_worker)
    # The provider answers the replayed binding with a triggerregistrationresult.
    wait_until(lambda: "triggerregistrationresult" in engine.received_kinds())
    kinds = engine.received_kinds()
    replay = [
        "registertriggertype",
        "registerservice",
        "registerfunction",
        "registertrigger",
        "invokefunction",
    ]
    # A newer engine first hears which connection this replaces (docs/protocol.md B.2).
    reattach = ["reattach"] if engine.generation != "v0.11" else []
    expected = reattach + replay + ["triggerregistrationresult"]
    assert kinds == expected, "each registration exactly once, in order"
    assert fid in engine.function_ids()
    wait_until(lambda: len(provider.bound) == 2)
    assert provider.bound[1] == first_trigger_id, "the same trigger id is replayed"
    assert worker.trigger({"function_id": fid, "payload": {}}) == "back"
    trigger.unregister()
    wait_until(lambda: engine.trigger_ids() == [])


def test_clean_close_by_the_engine_reconnects(engine, make_worker):
    worker = make_worker(engine.url, reconnection_config=FAST)
    fid = unique()
    worker.register_function(fid, lambda d: 1)
    wait_registered(worker, fid)
    old = worker.worker_id
    engine.close_all_gracefully()
    wait_until(lambda: worker.worker_id not in (None, old) and worker.get_connection_state() == "connected")
    assert worker.trigger({"function_id": fid, "payload": {}}) == 1


def test_calls_in_flight_fail_at_once_when_the_link_drops(engine, proxy, make_worker):
    server = make_worker(engine.url)
    client = make_worker(proxy.url, reconnection_config=FAST)
    fid = unique("slow")

    async def never_answers(d):
        await asyncio.Event().wait()  # cancelled when the server shuts down

    server.register_function(fid, never_answers)
    wait_registered(client, fid)
    errors = []
    request = {"function_id": fid, "payload": {}, "timeout_ms": 60_000}
    t = threading.Thread(target=lambda: _capture(errors, client.trigger, request))
    t.start()
    wait_until(lambda: client._connection.pending_calls() == 1)
    proxy.cut()
    t.join(10)  # far below the call's own 60 s timeout: only the cut can end it
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ConnectionLostError)
    wait_until(lambda: client.get_connection_state() == "connected")


def test_calls_made_while_disconnected_are_sent_after_the_replay(engine, make_worker):
    worker = make_worker(engine.url, reconnection_config=FAST)
    fid = unique()
    worker.register_function(fid, lambda d: d["n"] + 1)
    wait_registered(worker, fid)
    engine.stop()
    wait_until(lambda: worker.get_connection_state() == "reconnecting")
    results = []
    # dispatch="remote": an engine 0.25 lets the worker call its own function in-process, also
    # while offline (docs/protocol.md C.16); this is about the offline queue.
    request = {"function_id": fid, "payload": {"n": 41}, "dispatch": "remote"}
    t = threading.Thread(target=lambda: results.append(worker.trigger(request)))
    t.start()
    wait_until(lambda: worker._connection.pending_calls() == 1)
    assert results == [] and worker.get_connection_state() == "reconnecting"
    engine.restart()
    t.join(10)
    assert results == [42]


def test_offline_queue_bound_and_timeouts_while_disconnected(engine, make_worker):
    worker = make_worker(engine.url, reconnection_config=FAST, offline_queue_limit=3)
    engine.stop()
    wait_until(lambda: worker.get_connection_state() == "reconnecting")

    async def scenario():
        queued = [
            asyncio.ensure_future(worker.trigger_async({"function_id": "f", "payload": i, "timeout_ms": 300}))
            for i in range(3)
        ]
        # Not a wait for time: one turn of this loop runs each task up to its `await`, so the
        # three calls are handed to the core (in order) before the fourth.
        await asyncio.sleep(0)
        assert worker._connection.pending_calls() == 3
        with pytest.raises(OfflineQueueFullError):
            worker.trigger({"function_id": "f", "payload": 9})
        with pytest.raises(OfflineQueueFullError):
            await worker.trigger_async({"function_id": "f", "payload": 10})
        return await asyncio.gather(*queued, return_exceptions=True)

    errors = asyncio.run(scenario())
    assert len(errors) == 3 and all(isinstance(e, InvocationTimeoutError) for e in errors), errors


def test_state_listener_sees_transitions_and_may_raise(engine, make_worker):
    worker = make_worker(engine.url, reconnection_config=FAST)
    states: list[str] = []

    def bad_listener(state):
        raise RuntimeError("listener bug")

    witness: list[str] = []
    worker.on_connection_state_change(bad_listener)
    unsubscribe = worker.on_connection_state_change(states.append)
    worker.on_connection_state_change(witness.append)
    engine.disconnect_all()
    wait_until(lambda: states[-1:] == ["connected"] and "reconnecting" in states)
    assert worker.get_connection_state() == "connected"
    unsubscribe()
    seen, witnessed = len(states), len(witness)
    engine.disconnect_all()
    # Listeners are called in order for each change: once the one added after the removed one
    # has seen the whole reconnection, the removed one would have seen it too.
    wait_until(lambda: "reconnecting" in witness[witnessed:] and witness[-1:] == ["connected"])
    assert len(states) == seen


def test_half_open_link_is_detected_by_the_idle_deadline(engine, proxy, make_worker):
    worker = make_worker(
        proxy.url, reconnection_config=FAST, ping_interval_ms=100, idle_timeout_ms=400, connect_timeout_ms=300
    )
    fid = unique()
    worker.register_function(fid, lambda d: "ok")
    wait_registered(worker, fid)
    proxy.stall()
    wait_until(lambda: worker.get_connection_state() != "connected", timeout=3)
    proxy.resume()
    wait_until(lambda: worker.get_connection_state() == "connected", timeout=5)
    wait_registered(worker, fid)
    assert worker.trigger({"function_id": fid, "payload": {}}) == "ok"


def test_reset_in_the_middle_of_a_frame(engine, proxy, make_worker):
    server = make_worker(engine.url)
    client = make_worker(proxy.url, reconnection_config=FAST)
    fid = unique()
    server.register_function(fid, lambda d: "x" * 50000)
    wait_registered(client, fid)
    proxy.reset_after_bytes = 1000
    with pytest.raises(ConnectionLostError):
        client.trigger({"function_id": fid, "payload": {}})
    wait_until(lambda: client.get_connection_state() == "connected")
    assert len(client.trigger({"function_id": fid, "payload": {}})) == 50000


def test_oversized_frame_from_the_engine_is_survived(engine, make_worker):
    worker = make_worker(engine.url, reconnection_config=FAST, max_message_size=64 * 1024)
    fid = unique()
    worker.register_function(fid, lambda d: "fine")
    wait_registered(worker, fid)
    old = worker.worker_id
    assert engine.send_raw(old, '{"type":"pong","pad":"' + "p" * 200_000 + '"}')
    wait_until(lambda: worker.worker_id not in (None, old) and worker.get_connection_state() == "connected")
    wait_registered(worker, fid)
    assert worker.trigger({"function_id": fid, "payload": {}}) == "fine"


def test_reattach_is_sent_first_to_a_newer_engine(make_worker):
    from iii.testing import Engine

    with Engine(head_protocol=True) as engine:
        worker = make_worker(engine.url, reconnection_config=FAST)
        fid = unique()
        worker.register_function(fid, lambda d: 1)
        wait_until(lambda: fid in engine.function_ids())
        old = worker.worker_id
        before = len(engine.received_kinds())
        engine.disconnect_all()
        wait_until(
            lambda: worker.worker_id not in (None, old) and worker.get_connection_state() == "connected"
        )
        wait_until(lambda: len(engine.received_kinds()) >= before + 3)
        assert engine.received_kinds()[before] == "reattach"
        assert worker.trigger({"function_id": fid, "payload": {}}) == 1


def test_worker_name_conflict_is_fatal(make_worker):
    from iii.testing import Engine

    with Engine(head_protocol=True) as engine:
        make_worker(engine.url, worker_name="only-one")
        second = III(engine.url, InitOptions(worker_name="only-one", reconnection_config=FAST))
        try:
            # The rejection can come before or after register_worker would have returned.
            with pytest.raises(NotConnectedError, match="WORKER_NAMESPACE_CONFLICT"):
                second._wait_until_connected()
                wait_until(lambda: second.get_connection_state() == "failed")
                second._wait_until_connected()
            wait_until(lambda: second.get_connection_state() == "failed")
            with pytest.raises(NotConnectedError, match="WORKER_NAMESPACE_CONFLICT"):
                second.trigger({"function_id": "x", "payload": 1})
            # A negative check needs a bounded wait: FAST would have retried several times
            # (20-100 ms apart) in 0.5 s, and a retry would show as a new worker on the engine.
            workers = engine.worker_ids()
            time.sleep(0.5)
            assert second.get_connection_state() == "failed", "no reconnection after a fatal rejection"
            assert engine.worker_ids() == workers
        finally:
            second.shutdown()


def test_two_clients_and_shutdown_racing_with_calls(make_worker):
    server, a, b = make_worker(), make_worker(), make_worker()
    fid = unique()

    async def echo(d):
        await asyncio.sleep(0.001)
        return d

    server.register_function(fid, echo)
    wait_registered(a, fid)
    outcomes: dict[str, list[object]] = {"a": [], "b": []}
    flowing = threading.Event()

    def hammer(client, name):
        for i in range(200):
            try:
                outcomes[name].append(client.trigger({"function_id": fid, "payload": i}))
            except IIIConnectionError as exc:
                outcomes[name].append(exc)
            if len(outcomes["a"]) >= 20:
                flowing.set()

    pairs = [(a, "a"), (a, "a"), (b, "b"), (b, "b")]
    threads = [threading.Thread(target=hammer, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    assert flowing.wait(10)  # shut down while a's calls are flowing
    a.shutdown()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    assert len(outcomes["a"]) == len(outcomes["b"]) == 400
    assert sorted(outcomes["b"]) == sorted(list(range(200)) * 2), "b's calls all succeed"
    a_errors = [o for o in outcomes["a"] if not isinstance(o, int)]
    assert a_errors and all(isinstance(e, IIIConnectionError) for e in a_errors)
    assert b.get_connection_state() == "connected"


GIVE_UP = textwrap.dedent(
    """
    import sys
    from iii import register_worker, InitOptions, ReconnectionConfig
    iii = register_worker(sys.argv[1], InitOptions(
        reconnection_config=ReconnectionConfig(initial_delay_ms=20, max_retries=2, jitter_factor=0)))
    print("ready", flush=True)
    """
)


def test_process_exits_once_retries_are_exhausted(engine):
    child = subprocess.Popen(
        [sys.executable, "-c", GIVE_UP, engine.url], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        engine.stop()
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()


def _capture(errors: list, fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)
