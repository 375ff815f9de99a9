"""Connection state, shutdown, engine loss, hostile frames, and process lifetime."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from iii import (
    ClientShutdownError,
    ConnectionLostError,
    IIIConnectionError,
    InitOptions,
    NotConnectedError,
    ReconnectionConfig,
    TriggerAction,
    register_worker,
)

from conftest import unique, wait_registered, wait_until


def test_connection_state_and_worker_metadata(make_worker):
    worker = make_worker(worker_name="metadata-probe")
    assert worker.get_connection_state() == "connected"
    wait_until(lambda: any(w.name == "metadata-probe" for w in worker.list_workers()))
    me = next(w for w in worker.list_workers() if w.name == "metadata-probe")
    assert me.runtime == "python"
    assert me.id == worker.worker_id
    worker.shutdown()
    assert worker.get_connection_state() == "disconnected"
    with pytest.raises(ClientShutdownError):
        worker.trigger({"function_id": "x", "payload": 1})
    with pytest.raises(ClientShutdownError):
        worker.register_function(unique(), lambda d: d)


def test_shutdown_fails_calls_in_flight_promptly(make_worker):
    server, client = make_worker(), make_worker()
    fid = unique("slow")

    async def never_answers(d):
        await asyncio.Event().wait()  # cancelled when the server shuts down

    server.register_function(fid, never_answers)
    wait_registered(client, fid)
    errors = []

    def call():
        try:
            client.trigger({"function_id": fid, "payload": {}, "timeout_ms": 60_000})
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    wait_until(lambda: client._connection.pending_calls() == 5)
    client.shutdown()
    for t in threads:
        t.join(10)  # far below the calls' own 60 s timeout: only the shutdown can end them
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 5 and all(isinstance(e, ClientShutdownError) for e in errors)


def test_engine_disappearing_mid_call_fails_the_call_within_a_second(engine, make_worker):
    server, client = make_worker(engine.url), make_worker(engine.url)
    fid = unique("slow")

    async def never_answers(d):
        await asyncio.Event().wait()  # cancelled when the server shuts down

    server.register_function(fid, never_answers)
    wait_registered(client, fid)
    errors = []

    async def call():
        try:
            await client.trigger_async({"function_id": fid, "payload": {}, "timeout_ms": 60_000})
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=lambda: asyncio.run(call()))
    thread.start()
    wait_until(lambda: client._connection.pending_calls() == 1)
    engine.stop()
    thread.join(10)  # far below the call's own 60 s timeout: only the lost link can end it
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ConnectionLostError) and isinstance(errors[0], IIIConnectionError)
    assert fid in str(errors[0])


def test_unreachable_engine_fails_register_worker_clearly():
    with pytest.raises(NotConnectedError) as err:
        register_worker(
            "ws://127.0.0.1:9",
            InitOptions(reconnection_config=ReconnectionConfig(initial_delay_ms=10, max_retries=2)),
        )
    assert "127.0.0.1:9" in str(err.value)
    assert not [t for t in threading.enumerate() if t.name == "iii-loop" and t.is_alive()]


def test_malformed_frames_from_the_engine_are_survived(engine, make_worker):
    server, client = make_worker(engine.url), make_worker(engine.url)
    fid = unique()
    marks: list[object] = []
    server.register_function(fid, lambda d: "alive")
    server.register_function(fid + "::mark", marks.append)
    wait_registered(client, fid + "::mark")
    wid = server.worker_id
    for frame in [
        "not json",
        "[1,2,3]",
        '{"type":"no-such-type"}',
        '{"type":"invocationresult"}',
        '{"type":"invocationresult","invocation_id":"not-a-uuid","function_id":"f","result":1}',
        '{"type":"invokefunction","function_id":5,"data":null}',
        '{"type":"registertrigger","id":"t"}',
        "",
        '{"type":"Ping"}',
    ]:
        assert engine.send_raw(wid, frame)
    assert engine.send_raw(wid, b"\xff\xfe binary garbage")
    assert engine.send_raw(
        wid,
        '{"type":"invokefunction","invocation_id":"8a3b2e55-0000-4000-8000-000000000000",'
        '"function_id":"nope","data":null}',
    )
    # Frames are handled in order: once this one ran, every frame above has been handled.
    assert engine.send_raw(
        wid,
        '{"type":"invokefunction","invocation_id":"8a3b2e55-0000-4000-8000-000000000001",'
        f'"function_id":"{fid}::mark","data":"after the garbage"}}',
    )
    wait_until(lambda: marks == ["after the garbage"])
    assert server.get_connection_state() == "connected"
    assert wid == server.worker_id, "the same connection survived"
    assert client.trigger({"function_id": fid, "payload": {}}) == "alive"


CHILD = textwrap.dedent(
    """
    import sys, threading
    from iii import register_worker, InitOptions

    iii = register_worker(sys.argv[1], InitOptions(worker_name="child"))
    stopping = threading.Event()

    def stopper():
        stopping.wait()
        iii.shutdown()

    # Started now: some CPython 3.12 releases start no thread once the main thread returned.
    # A daemon, so that only the SDK keeps the process alive.
    threading.Thread(target=stopper, daemon=True).start()

    def work(d):
        return {"main_alive": threading.main_thread().is_alive(), "n": d["n"]}

    def stop(d):
        stopping.set()

    iii.register_function(sys.argv[2], work)
    iii.register_function(sys.argv[2] + "::stop", stop)
    print("ready", flush=True)
    """
)


def test_process_stays_alive_after_main_returns_and_exits_after_shutdown(engine_url, make_worker):
    client = make_worker()
    fid = unique("child")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, engine_url, fid],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        wait_registered(client, fid)
        wait_until(lambda: client.trigger({"function_id": fid, "payload": {"n": 0}})["main_alive"] is False)
        # The main thread has returned; the process and its sync handlers keep working.
        assert client.trigger({"function_id": fid, "payload": {"n": 7}}) == {"main_alive": False, "n": 7}
        assert child.poll() is None
        client.trigger({"function_id": fid + "::stop", "payload": {}, "action": TriggerAction.Void()})
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()


def test_shutdown_releases_sockets_and_threads(engine_url):
    import gc

    def open_fds() -> int:
        # /proc/self/fd on Linux, /dev/fd on macOS
        return len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))

    def sdk_threads() -> int:
        return sum(t.name.startswith("iii-") for t in threading.enumerate())

    warm = register_worker(engine_url, InitOptions(worker_name="warm-up"))
    warm.register_function(unique(), lambda d: d)
    warm.shutdown()
    del warm
    gc.collect()
    fds, threads = open_fds(), sdk_threads()
    for n in range(5):
        worker = register_worker(engine_url, InitOptions(worker_name=f"cycle-{n}"))
        worker.register_function(unique(), lambda d: d)
        assert worker.trigger({"function_id": "engine::workers::list", "payload": {}})
        worker.shutdown()
        del worker
    gc.collect()
    wait_until(lambda: sdk_threads() <= threads)
    assert open_fds() <= fds + 2


def test_an_uncaught_exception_in_the_main_thread_ends_the_process(engine_url):
    """The SDK's threads are not daemons (a worker whose main thread returns keeps serving),
    but a main thread that dies of an exception must not leave the process hanging."""
    code = (
        "import sys\n"
        "from iii import register_worker, InitOptions\n"
        "iii = register_worker(sys.argv[1], InitOptions(worker_name='crashing'))\n"
        "iii.register_function('crash::f', lambda d: d)\n"
        "raise RuntimeError('boom in main')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, engine_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "boom in main" in done.stderr
