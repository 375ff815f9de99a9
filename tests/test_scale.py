"""Many calls in flight, large payloads, and the message size limit."""

from __future__ import annotations

import asyncio
import threading

import pytest

import iii._client
from iii import InvocationError, PayloadTooLargeError, TriggerAction

from conftest import unique, wait_registered, wait_until

MIB = 1024 * 1024


def test_2000_concurrent_trigger_async_from_inside_an_async_handler(make_worker):
    server, client = make_worker(), make_worker()
    echo, fan = unique("echo"), unique("fan")

    async def echo_handler(d):
        return d["i"]

    async def fan_out(d):
        calls = [server.trigger_async({"function_id": echo, "payload": {"i": i}}) for i in range(d["n"])]
        return sum(await asyncio.gather(*calls))

    server.register_function(echo, echo_handler)
    server.register_function(fan, fan_out)
    wait_registered(client, fan)
    assert client.trigger({"function_id": fan, "payload": {"n": 2000}, "timeout_ms": 60000}) == sum(
        range(2000)
    )


def test_fan_out_of_1000_in_flight_16k_calls_between_two_workers(make_worker):
    """The reader must not wait for the writer: both directions are full of large frames."""
    server, client = make_worker(), make_worker()
    fid = unique("big")
    blob = "x" * (16 * 1024)

    async def echo(d):
        return d

    server.register_function(fid, echo)
    wait_registered(client, fid)

    async def run():
        calls = [
            client.trigger_async({"function_id": fid, "payload": {"i": i, "blob": blob}}) for i in range(1000)
        ]
        return await asyncio.gather(*calls)

    results = asyncio.run(run())
    assert [r["i"] for r in results] == list(range(1000))
    assert all(r["blob"] == blob for r in results)


def test_sync_handlers_fan_out(make_worker):
    server, client = make_worker(), make_worker()
    fid = unique("sync")
    server.register_function(fid, lambda d: d * 2)
    wait_registered(client, fid)

    async def run():
        return await asyncio.gather(
            *(client.trigger_async({"function_id": fid, "payload": i}) for i in range(1000))
        )

    assert asyncio.run(run()) == [i * 2 for i in range(1000)]


def test_5_mib_payload_both_ways(make_worker):
    server, client = make_worker(), make_worker()
    fid = unique("mirror")
    server.register_function(fid, lambda d: {"back": d["data"][::-1], "len": len(d["data"])})
    wait_registered(client, fid)
    data = "ab" * (5 * MIB // 2)
    out = client.trigger({"function_id": fid, "payload": {"data": data}, "timeout_ms": 30000})
    assert out["len"] == len(data) == 5 * MIB
    assert out["back"] == data[::-1]


def test_payload_over_the_limit_fails_at_once_and_the_connection_stays_up(make_worker):
    server = make_worker()
    client = make_worker(max_message_size=1 * MIB)
    fid = unique()
    seen: list[object] = []
    server.register_function(fid, lambda d: seen.append(d) or "ok")
    wait_registered(client, fid)
    with pytest.raises(PayloadTooLargeError) as err:
        client.trigger({"function_id": fid, "payload": "y" * (2 * MIB)})
    assert client._connection.pending_calls() == 0, "refused before it became a call"
    assert "1048576" in str(err.value) and "max_message_size" in str(err.value)
    assert err.value.limit == MIB and err.value.size > 2 * MIB
    # iii-sdk 0.25.0's form of the same error
    assert isinstance(err.value, InvocationError) and err.value.code == "payload_too_large"
    assert err.value.function_id == fid
    with pytest.raises(PayloadTooLargeError):
        client.trigger({"function_id": fid, "payload": "y" * (2 * MIB), "action": TriggerAction.Void()})
    assert client.get_connection_state() == "connected"
    assert client.trigger({"function_id": fid, "payload": "small"}) == "ok"
    assert seen == ["small"], "nothing oversized reached the server"


def test_result_over_the_callee_limit_becomes_an_error(make_worker):
    server = make_worker(max_message_size=1 * MIB)
    client = make_worker()
    fid = unique()
    server.register_function(fid, lambda d: "z" * (2 * MIB))
    wait_registered(client, fid)
    from iii import InvocationError

    with pytest.raises(InvocationError) as err:
        client.trigger({"function_id": fid, "payload": {}})
    assert err.value.code == "invocation_failed"
    assert "maximum message size" in err.value.message


def test_payload_above_the_engine_frame_limit_is_fragmented(make_worker):
    """The engine resets a connection on a single frame over 16 MiB; larger messages must be
    sent in fragments (both the call and the result here are 20 MiB)."""
    server, client = make_worker(), make_worker()
    fid = unique("huge")
    server.register_function(fid, lambda d: {"size": len(d["data"]), "back": d["data"]})
    wait_registered(client, fid)
    data = "z" * (20 * MIB)
    out = client.trigger({"function_id": fid, "payload": {"data": data}, "timeout_ms": 60000})
    assert out["size"] == 20 * MIB and out["back"] == data
    assert client.get_connection_state() == "connected"


def test_a_slow_sync_handler_does_not_hold_up_the_others(make_worker):
    server, client = make_worker(), make_worker()
    slow, quick = unique("slow"), unique("quick")
    release = threading.Event()
    started = threading.Event()

    def blocking(_data):
        started.set()
        assert release.wait(30)
        return "slow done"

    server.register_function(slow, blocking)
    server.register_function(quick, lambda d: d + 1)
    wait_registered(client, quick)
    slow_result: list[object] = []
    caller = threading.Thread(
        target=lambda: slow_result.append(client.trigger({"function_id": slow, "payload": 0}))
    )
    caller.start()
    assert started.wait(10)
    # While the slow handler holds its thread, other sync invocations still run.
    assert [client.trigger({"function_id": quick, "payload": i}) for i in range(50)] == list(range(1, 51))
    release.set()
    caller.join(10)
    assert slow_result == ["slow done"]


def test_an_answer_held_behind_queued_jobs_goes_out_while_a_slow_one_runs(make_worker, monkeypatch):
    # One handler thread: `first` answers while `slow` and `after` wait for it, so its answer
    # is held back to go out with theirs; then `slow` runs with `after` still queued. The answer
    # must not wait for `slow`: `slow` returns whether first's caller got it meanwhile. (The
    # server's keepalive, a frame that would carry it out too, is put off past the test.)
    monkeypatch.setattr(iii._client, "SYNC_HANDLER_THREADS", 1)
    server = make_worker(ping_interval_ms=120_000)
    monkeypatch.undo()
    client = make_worker()
    first, slow, after = unique("first"), unique("slow"), unique("after")
    first_started, let_first_answer, first_answered = threading.Event(), threading.Event(), threading.Event()

    def first_handler(_data):
        first_started.set()
        assert let_first_answer.wait(10)
        return "first"

    server.register_function(first, first_handler)
    server.register_function(slow, lambda _data: first_answered.wait(10))
    server.register_function(after, lambda _data: "after")
    wait_registered(client, after)

    async def run():
        loop = asyncio.get_running_loop()
        call_first = asyncio.ensure_future(client.trigger_async({"function_id": first, "payload": 0}))
        assert await loop.run_in_executor(None, first_started.wait, 10)
        rest = [
            asyncio.ensure_future(client.trigger_async({"function_id": f, "payload": 0}))
            for f in (slow, after)
        ]
        await loop.run_in_executor(None, wait_until, lambda: server._connection.jobs_waiting() == 2)
        let_first_answer.set()
        answer = await call_first
        first_answered.set()
        return [answer, *(await asyncio.gather(*rest))]

    assert asyncio.run(run()) == ["first", True, "after"]


def test_blocking_sync_handlers_run_concurrently(make_worker):
    server, client = make_worker(), make_worker()
    fid = unique("barrier")
    parties = 8
    barrier = threading.Barrier(parties, timeout=20)
    server.register_function(fid, lambda d: barrier.wait() >= 0)
    wait_registered(client, fid)

    async def run():
        return await asyncio.gather(
            *(client.trigger_async({"function_id": fid, "payload": i}) for i in range(parties))
        )

    # Each handler blocks until all eight run at once: they need eight threads.
    assert asyncio.run(run()) == [True] * parties


def _refuse_new_threads(monkeypatch, prefix: str, keep: int) -> None:
    """Threads named ``prefix``-N past the first ``keep`` fail to start, as CPython 3.12.0-3.12.x
    fail every new thread once the main thread has returned."""
    start = threading.Thread.start

    def refusing(self: threading.Thread) -> None:
        if self.name.startswith(prefix) and int(self.name.rsplit("-", 1)[1]) > keep:
            raise RuntimeError("can't create new thread at interpreter shutdown")
        start(self)

    monkeypatch.setattr(threading.Thread, "start", refusing)


def test_a_pool_that_cannot_grow_serves_with_the_threads_it_has(make_worker, monkeypatch, caplog):
    _refuse_new_threads(monkeypatch, "iii-sync-", keep=1)
    server, client = make_worker(), make_worker()
    slow, fast, lone = unique("slow"), unique("fast"), unique("lone")
    started, release = threading.Event(), threading.Event()

    def slow_handler(_data):
        started.set()
        return release.wait(10)

    async def lone_handler(data):
        return data

    server.register_function(slow, slow_handler)
    server.register_function(fast, lambda n: n)
    server.register_function(lone, lone_handler)
    wait_registered(client, lone)

    async def run():
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(client.trigger_async({"function_id": slow, "payload": 0}))
        assert await loop.run_in_executor(None, started.wait, 10)
        queued = [
            asyncio.ensure_future(client.trigger_async({"function_id": fast, "payload": n})) for n in range(3)
        ]
        # The queue stalls behind `slow`; the pool asks for a thread that cannot start.
        await loop.run_in_executor(None, wait_until, lambda: "no more sync-handler threads" in caplog.text)
        # The SDK loop goes on meanwhile: an async handler answers while the queue waits.
        assert await client.trigger_async({"function_id": lone, "payload": "on"}) == "on"
        release.set()
        return [await first, *(await asyncio.gather(*queued))]

    with caplog.at_level("WARNING", logger="iii"):
        assert asyncio.run(run()) == [True, 0, 1, 2]
    assert caplog.text.count("no more sync-handler threads") == 1


def test_a_sync_function_no_thread_can_run_is_refused_at_registration(make_worker, monkeypatch):
    _refuse_new_threads(monkeypatch, "iii-sync-", keep=0)
    worker = make_worker()
    refused, served = unique("sync"), unique("async")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="no thread can run sync handlers"):
            worker.register_function(refused, lambda d: d)
    worker.register_function(served, _echo)
    wait_registered(make_worker(), served)
    assert refused not in {f.function_id for f in worker.list_functions()}


async def _echo(data):
    return data
