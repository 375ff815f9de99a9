"""Local dispatch (docs/protocol.md C.16, C.17): once the engine confirmed a function for
in-process calls (``functionregistered{local_dispatch:true}``, sent here by the test), this
worker's own calls of it run in-process: each kind of handler where ``_local.py`` says, with the
remote path's results, errors and timeouts, copies of payload and result, a fresh invocation
context, the ``execute`` span, and reports of observed calls. Nothing goes on the wire for an
unobserved local call."""

from __future__ import annotations

import _thread
import asyncio
import contextvars
import logging
import re
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

import iii
from iii import III, InitOptions, InvocationError, InvocationTimeoutError, TriggerAction, register_worker
from iii._observe import CURRENT, LocalInvocation
from iii.testing import Engine
from observe_support import confirm, kinds, local_function, send, view

from conftest import WorkerFactory as Workers
from conftest import unique, wait_registered, wait_until

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def until(predicate: Any, timeout: float = 5.0) -> None:
    """``wait_until`` for code on an event loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _where() -> dict[str, Any]:
    """Where a handler runs, and in which invocation."""
    try:
        loop: Any = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    return {"thread": threading.current_thread(), "loop": loop, "ctx": iii.current_invocation(),
            "local": isinstance(CURRENT.get(), LocalInvocation)}  # fmt: skip


_CALLER_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("caller_var", default="unset")


def test_a_sync_trigger_runs_a_sync_handler_on_a_local_thread_in_the_callers_context(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers(worker_name="local-owner")
    seen: list[dict[str, Any]] = []

    def handler(data: Any) -> Any:
        seen.append({**_where(), "var": _CALLER_VAR.get()})
        return {"n": data["n"] + 1}

    fid = local_function(obs_engine, worker, handler)
    calls = kinds(obs_engine, "invokefunction")
    token = _CALLER_VAR.set("from the caller")
    try:
        assert worker.trigger({"function_id": fid, "payload": {"n": 1}}) == {"n": 2}
    finally:
        _CALLER_VAR.reset(token)
    (where,) = seen
    assert where["thread"] is not threading.current_thread() and where["thread"].name.startswith("iii-local")
    assert where["local"] and where["var"] == "from the caller"
    ctx = where["ctx"]
    assert ctx.function_id == fid and UUID4.match(ctx.invocation_id)
    assert ctx.caller == {"worker_id": worker.worker_id, "worker_name": "local-owner"}
    assert (ctx.observe_depth, ctx.activation) == (0, None)
    assert kinds(obs_engine, "invokefunction") == calls  # nothing on the wire
    assert iii.current_invocation() is None  # the caller's context is untouched


def test_payload_and_result_are_copies(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    kept: list[Any] = []

    def handler(data: Any) -> Any:
        data["items"].append("handler")
        kept.append(data)
        return data

    fid = local_function(obs_engine, worker, handler)
    payload = {"items": ["caller"], "nested": {"k": (1, 2)}}
    result = worker.trigger({"function_id": fid, "payload": payload})
    assert payload == {"items": ["caller"], "nested": {"k": (1, 2)}}  # untouched
    assert result == {"items": ["caller", "handler"], "nested": {"k": (1, 2)}}  # a deep copy
    result["items"].append("caller again")
    assert kept[0]["items"] == ["caller", "handler"]  # the handler's own copy

    class Point(BaseModel):
        x: list[int]

    point = Point(x=[1])
    copied = worker.trigger({"function_id": fid, "payload": {"items": [], "p": point}})["p"]
    assert copied == point and copied is not point and copied.x is not point.x


def test_values_deepcopy_refuses_go_over_in_their_json_form(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    seen: list[Any] = []
    fid = local_function(obs_engine, worker, lambda data: seen.append(data) or data)

    class Label(BaseModel):
        text: str

    class NoCopies:
        def __deepcopy__(self, memo: Any) -> Any:
            raise TypeError("not copyable")

    lock = threading.Lock()  # deepcopy refuses it, and JSON cannot hold it
    assert worker.trigger({"function_id": fid, "payload": {"lock": lock, "n": [1, lock]}}) == {"n": [1, None]}
    worker.trigger(
        {"function_id": fid, "payload": {"label": Label(text="a"), "odd": NoCopies(), "when": (1, 2)}}
    )
    assert seen[-1] == {"label": {"text": "a"}, "when": [1, 2]}  # the whole payload in JSON form
    assert worker.trigger({"function_id": fid, "payload": NoCopies()}) is None


def test_a_sync_trigger_runs_an_async_handler_on_the_sdk_loop(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    seen: list[dict[str, Any]] = []

    async def handler(data: Any) -> Any:
        await asyncio.sleep(0)
        seen.append(_where())
        return data["n"] * 2

    fid = local_function(obs_engine, worker, handler)
    calls = kinds(obs_engine, "invokefunction")
    assert worker.trigger({"function_id": fid, "payload": {"n": 21}}) == 42
    (where,) = seen
    assert where["thread"].name == "iii-loop" and where["local"] and where["ctx"].function_id == fid
    assert kinds(obs_engine, "invokefunction") == calls


def test_trigger_async_runs_an_async_handler_on_the_calling_loop(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    seen: list[dict[str, Any]] = []

    async def handler(data: Any) -> Any:
        if data["suspend"]:
            await asyncio.sleep(0)
        seen.append(_where())
        return data["suspend"]

    fid = local_function(obs_engine, worker, handler)

    async def main() -> asyncio.AbstractEventLoop:
        assert await worker.trigger_async({"function_id": fid, "payload": {"suspend": False}}) is False
        assert await worker.trigger_async({"function_id": fid, "payload": {"suspend": True}}) is True
        assert iii.current_invocation() is None
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert [w["loop"] for w in seen] == [loop, loop] and all(w["local"] for w in seen)
    assert seen[0]["ctx"].invocation_id != seen[1]["ctx"].invocation_id


async def _in_a_task_of_its_own(data: Any) -> Any:
    """What asyncio offers only inside a handler's own Task: current_task(), and from 3.11 a
    timeout that cancels the handler (not its caller) and a TaskGroup."""
    me = asyncio.current_task()
    assert me is not None
    if sys.version_info < (3, 11):
        return {"n": data["n"], "timed_out": True}
    try:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)
        timed_out = False
    except TimeoutError:
        timed_out = asyncio.current_task() is me
    async with asyncio.TaskGroup() as group:
        child = group.create_task(asyncio.sleep(0, result=data["n"]))
    return {"n": child.result(), "timed_out": timed_out}


def test_an_async_handler_runs_in_a_task_of_its_own(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    fid = local_function(obs_engine, worker, _in_a_task_of_its_own)

    async def main() -> Any:
        caller = asyncio.current_task()
        out = await worker.trigger_async({"function_id": fid, "payload": {"n": 1}})
        assert asyncio.current_task() is caller
        assert not getattr(caller, "cancelling", lambda: 0)(), "the caller's task was not cancelled"
        return out

    assert asyncio.run(main()) == {"n": 1, "timed_out": True}
    assert worker.trigger({"function_id": fid, "payload": {"n": 2}}) == {"n": 2, "timed_out": True}
    remote = {"function_id": fid, "payload": {"n": 3}, "dispatch": "remote"}
    assert worker.trigger(remote) == {"n": 3, "timed_out": True}


async def _cancels_itself(_data: Any) -> str:
    asyncio.current_task().cancel()  # type: ignore[union-attr]
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        return "cancelled at its first await"
    return "not cancelled"


def test_an_async_handler_cancelling_its_own_task_at_once_sees_it(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    fid = local_function(obs_engine, worker, _cancels_itself)
    expected = "cancelled at its first await"
    assert asyncio.run(worker.trigger_async({"function_id": fid, "payload": None})) == expected
    assert worker.trigger({"function_id": fid, "payload": None, "dispatch": "remote"}) == expected


def test_trigger_async_runs_a_sync_handler_on_a_local_thread(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    seen: list[dict[str, Any]] = []
    fid = local_function(obs_engine, worker, lambda data: seen.append(_where()) or "done")
    assert asyncio.run(worker.trigger_async({"function_id": fid, "payload": {}})) == "done"
    (where,) = seen
    assert where["thread"].name.startswith("iii-local") and where["local"]


def test_nested_local_calls_carry_their_caller(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers(worker_name="nester")
    contexts: dict[str, Any] = {}
    inner = local_function(
        obs_engine, worker, lambda data: contexts.setdefault("inner", iii.current_invocation())
    )

    async def outer_handler(data: Any) -> Any:
        contexts["outer"] = iii.current_invocation()
        await worker.trigger_async({"function_id": inner, "payload": {}})
        return worker.trigger({"function_id": inner, "payload": {}}) is not None

    outer = local_function(obs_engine, worker, outer_handler)
    assert worker.trigger({"function_id": outer, "payload": {}}) is True
    me = {"worker_id": worker.worker_id, "worker_name": "nester"}
    assert contexts["outer"].caller == me
    assert contexts["inner"].caller == {
        **me, "function_id": outer, "invocation_id": contexts["outer"].invocation_id, "parent": me,
    }  # fmt: skip


def test_errors_are_the_remote_paths(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()

    def plain(data: Any) -> Any:
        raise ValueError("out of stock")

    def coded(data: Any) -> Any:
        raise InvocationError("CARD_DECLINED", "declined", "remote trace")

    async def plain_async(data: Any) -> Any:
        raise KeyError("nope")

    for handler, message in [
        (plain, "out of stock"),
        (coded, "CARD_DECLINED: declined"),
        (plain_async, "'nope'"),
    ]:
        fid = local_function(obs_engine, worker, handler)
        for dispatch in ("remote", "auto"):  # the same error either way
            with pytest.raises(InvocationError) as err:
                worker.trigger({"function_id": fid, "payload": {}, "dispatch": dispatch})
            assert (err.value.code, err.value.message, err.value.function_id) == (
                "invocation_failed",
                message,
                fid,
            )
            assert err.value.stacktrace
        assert isinstance(err.value.__cause__, (ValueError, InvocationError, KeyError)), "local: the original"
        with pytest.raises(InvocationError) as err:
            asyncio.run(worker.trigger_async({"function_id": fid, "payload": {}}))
        assert (err.value.code, err.value.message) == ("invocation_failed", message)
    assert "ValueError: out of stock" in _stack(worker, obs_engine, plain)


def test_a_handler_raising_system_exit_fails_the_call_and_the_worker_goes_on(
    obs_engine: Engine, obs_workers: Workers, caplog: pytest.LogCaptureFixture
) -> None:
    worker = obs_workers()

    def exits(data: Any) -> Any:
        raise SystemExit("handler exited")

    async def exits_async(data: Any) -> Any:
        await asyncio.sleep(0)  # suspended: it ends inside a Task of the loop it runs on
        raise SystemExit("async handler exited")

    async def interrupted(data: Any) -> Any:
        raise KeyboardInterrupt("void interrupted")

    sync_fid, async_fid = (
        local_function(obs_engine, worker, exits),
        local_function(obs_engine, worker, exits_async),
    )
    for fid in (sync_fid, async_fid):
        with pytest.raises(InvocationError) as err:
            worker.trigger({"function_id": fid, "payload": {}})
        assert err.value.code == "invocation_failed" and err.value.message.startswith("SystemExit: ")
        assert isinstance(err.value.__cause__, SystemExit)
        with pytest.raises(InvocationError) as err:
            asyncio.run(worker.trigger_async({"function_id": fid, "payload": {}}))
        assert isinstance(err.value.__cause__, SystemExit)
    # Fire and forget: logged, and the SDK loop that ran it goes on.
    void_fid = local_function(obs_engine, worker, interrupted)
    with caplog.at_level(logging.ERROR, logger="iii"):
        worker.trigger({"function_id": void_fid, "payload": {}, "action": TriggerAction.Void()})
        wait_until(lambda: any("void interrupted" in r.getMessage() for r in caplog.records))

    async def alive(data: Any) -> str:
        await asyncio.sleep(0)
        return "alive"

    assert (
        worker.trigger({"function_id": local_function(obs_engine, worker, alive), "payload": {}}) == "alive"
    )


def _stack(worker: III, engine: Engine, handler: Any) -> str:
    fid = local_function(engine, worker, handler)
    with pytest.raises(InvocationError) as err:
        worker.trigger({"function_id": fid, "payload": {}})
    return err.value.stacktrace or ""


def test_timeouts_leave_the_handler_running(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    finished: list[str] = []

    release = threading.Event()

    def slow_sync(data: Any) -> Any:
        release.wait(10)  # the handler's work, longer than the call's timeout
        finished.append("sync")
        return "late"

    async def slow_async(data: Any) -> Any:
        await asyncio.sleep(0.3)
        finished.append("async")
        return "late"

    sync_fid, async_fid = (
        local_function(obs_engine, worker, slow_sync),
        local_function(obs_engine, worker, slow_async),
    )
    # Sync trigger, sync handler: it runs on a thread of its own, so the caller stops waiting.
    with pytest.raises(InvocationTimeoutError) as err:
        worker.trigger({"function_id": sync_fid, "payload": {}, "timeout_ms": 100})
    assert err.value.code == "TIMEOUT" and UUID4.match(err.value.invocation_id or "")

    async def sync_from_a_loop() -> None:
        with pytest.raises(InvocationTimeoutError):
            await worker.trigger_async({"function_id": sync_fid, "payload": {}, "timeout_ms": 100})

    asyncio.run(sync_from_a_loop())
    assert finished == []
    release.set()
    wait_until(lambda: finished == ["sync", "sync"])

    async def race() -> float:
        started = time.monotonic()
        with pytest.raises(InvocationTimeoutError) as err:
            await worker.trigger_async({"function_id": async_fid, "payload": {}, "timeout_ms": 100})
        assert err.value.function_id == async_fid
        elapsed = time.monotonic() - started
        await until(lambda: "async" in finished)  # the handler runs on to its end on this loop
        return elapsed

    assert asyncio.run(race()) < 0.3
    assert finished == ["sync", "sync", "async"]
    with pytest.raises(InvocationTimeoutError):
        worker.trigger({"function_id": async_fid, "payload": {}, "timeout_ms": 100})
    wait_until(lambda: finished == ["sync", "sync", "async", "async"])

    # Every run that ended is counted, but for the sync one started with trigger_async() from a
    # loop that asyncio.run closed before it ended: as in 0.25.0, that run went with its loop.
    def counted(fid: str) -> tuple[int, int] | None:
        worker._connection.flush_observe_reports()
        return obs_engine.local_stats().get(fid)

    wait_until(lambda: counted(async_fid) == (2, 0))  # the last to end, by 0.3 s
    assert counted(sync_fid) == (1, 0)


def test_a_handler_cancelled_with_its_loop_is_not_counted(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    started: list[str] = []

    async def forever(data: Any) -> None:
        started.append(data)
        if data != "quick":
            await asyncio.Event().wait()

    fid = local_function(obs_engine, worker, forever)

    async def leave_it_running() -> None:
        await worker.trigger_async({"function_id": fid, "payload": "left", "action": TriggerAction.Void()})
        await until(lambda: started == ["left"])

    asyncio.run(leave_it_running())  # cancels the handler's Task on its way out
    with pytest.raises(InvocationTimeoutError):
        worker.trigger({"function_id": fid, "payload": "waited", "timeout_ms": 50})
    worker.trigger({"function_id": fid, "payload": "quick"})
    worker.shutdown()  # cancels the one left on the SDK loop, then sends the counts
    # As in 0.25.0, a run that never ended is neither a call nor a failure of the function.
    wait_until(lambda: fid in obs_engine.local_stats())
    assert obs_engine.local_stats()[fid] == (1, 0) and started == ["left", "waited", "quick"]


def test_ctrl_c_reaches_a_caller_waiting_for_a_sync_handler(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    release = threading.Event()
    finished: list[str] = []

    def interrupts(data: Any) -> str:
        _thread.interrupt_main()  # Ctrl-C while the main thread waits for this handler
        release.wait(10)
        finished.append("handler")
        return "done"

    fid = local_function(obs_engine, worker, interrupts)
    with pytest.raises(KeyboardInterrupt):
        worker.trigger({"function_id": fid, "payload": {}})
    assert finished == []  # the caller stopped waiting; the handler goes on
    release.set()
    wait_until(lambda: finished == ["handler"])


def test_sync_local_calls_from_many_threads_and_nested(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    inner = local_function(obs_engine, worker, lambda data: data["n"] * 2)
    outer = local_function(
        obs_engine, worker, lambda data: worker.trigger({"function_id": inner, "payload": data}) + 1
    )
    results: dict[int, list[int]] = {}

    def caller(k: int) -> None:
        results[k] = [
            worker.trigger({"function_id": outer, "payload": {"n": k * 1000 + i}}) for i in range(200)
        ]

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {k: [(k * 1000 + i) * 2 + 1 for i in range(200)] for k in range(6)}


def test_handler_threads_run_a_job_here_when_no_thread_starts_and_stop_at_exit() -> None:
    from iii import _iii

    def refuse(fn: Any, args: Any) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    pool = _iii.HandlerThreads(4, refuse)
    assert pool.run(threading.current_thread, 5.0) == (0, threading.current_thread())
    outcome, error = pool.run(lambda: 1 / 0, 5.0)
    assert outcome == 1 and isinstance(error, ZeroDivisionError) and pool.threads == 0
    ran: list[str] = []
    pool.submit(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.current_thread().name]

    pool = _iii.HandlerThreads(4)
    outcome, thread = pool.run(threading.current_thread, 5.0)
    assert outcome == 0 and thread.name == "iii-local-1" and pool.threads == 1  # kept, idle
    # At interpreter exit a job still runs, and a thread out of work then stops for good
    # without taking the GIL again (it would not stop for another 30 s otherwise).
    pool.at_exit()
    assert pool.run(lambda: "after", 5.0) == (0, "after")
    wait_until(lambda: pool.threads == 0)


_EXIT_SCRIPT = """
import sys, time
from iii import InitOptions, register_worker
w = register_worker(sys.argv[1], InitOptions(otel={"enabled": False}))
w.register_function("exit::inner", lambda n: n + 1)
w.register_function("exit::outer", lambda n: w.trigger({"function_id": "exit::inner", "payload": n}))
deadline = time.monotonic() + 10
while not all(w._locals[f].state.local(None) for f in ("exit::inner", "exit::outer")):
    assert time.monotonic() < deadline, "never confirmed for local dispatch"
    time.sleep(0.01)
assert [w.trigger({"function_id": "exit::outer", "payload": i}) for i in range(200)] == list(range(1, 201))
w.shutdown()
"""


def test_a_worker_whose_handlers_ran_on_local_threads_exits_cleanly(obs_engine: Engine) -> None:
    # Local threads that took the GIL again while the interpreter finalised ended with
    # pthread_exit unwinding through Rust frames: the process aborted.
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", _EXIT_SCRIPT, obs_engine.url], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr[-2000:]


def test_local_counts_are_sent_on_demand_and_at_shutdown(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    fid = local_function(obs_engine, worker, lambda data: data)
    sent = kinds(obs_engine, "localinvocationstats")
    assert worker._connection.flush_observe_reports() is False  # nothing counted yet
    worker.trigger({"function_id": fid, "payload": 1})
    assert worker._connection.flush_observe_reports() is True
    assert worker._connection.flush_observe_reports() is False  # the counters start again
    wait_until(lambda: kinds(obs_engine, "localinvocationstats") == sent + 1)
    worker.trigger({"function_id": fid, "payload": 2})
    worker.shutdown()  # long before the next periodic send: the last counts go with it
    wait_until(lambda: kinds(obs_engine, "localinvocationstats") == sent + 2)


def test_a_slow_sync_handler_does_not_hold_up_the_calls_queued_behind_it(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def handler(data: str) -> str:
        if data == "slow":
            started.set()
            release.wait(10)
        done.append(data)
        return data

    fid = local_function(obs_engine, worker, handler)
    worker.trigger({"function_id": fid, "payload": "slow", "action": TriggerAction.Void()})
    assert started.wait(10)
    # Queued behind a busy thread; another thread takes them once the queue stalls.
    worker.trigger({"function_id": fid, "payload": "void", "action": TriggerAction.Void()})
    assert asyncio.run(worker.trigger_async({"function_id": fid, "payload": "async"})) == "async"
    wait_until(lambda: sorted(done) == ["async", "void"])
    release.set()
    wait_until(lambda: len(done) == 3 and done[-1] == "slow")


def test_void_calls_run_locally_in_the_background(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    ran: list[str] = []

    async def async_handler(data: Any) -> None:
        ran.append("async")

    sync_fid = local_function(obs_engine, worker, lambda data: ran.append("sync"))
    async_fid = local_function(obs_engine, worker, async_handler)
    calls = kinds(obs_engine, "invokefunction")
    void = TriggerAction.Void()
    assert worker.trigger({"function_id": sync_fid, "payload": {}, "action": void}) is None
    assert worker.trigger({"function_id": async_fid, "payload": {}, "action": void}) is None

    async def from_a_loop() -> None:
        await worker.trigger_async({"function_id": sync_fid, "payload": {}, "action": void})
        await worker.trigger_async({"function_id": async_fid, "payload": {}, "action": void})
        await until(lambda: ran.count("async") == 2)  # it runs on this loop: keep it open

    asyncio.run(from_a_loop())
    wait_until(lambda: sorted(ran) == ["async", "async", "sync", "sync"])
    assert kinds(obs_engine, "invokefunction") == calls


def test_what_goes_through_the_engine(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    threads: list[str] = []
    off = unique("off")
    worker.register_function(
        off, lambda data: threads.append(threading.current_thread().name), local_dispatch=False
    )
    wait_registered(worker, off)
    # The engine allows it, but the registration said no (the frame is handled before the next).
    send(obs_engine, worker, type="functionregistered", id=off, namespace="default", revision=1,
         local_dispatch=True, observers=[])  # fmt: skip
    fid = local_function(obs_engine, worker, lambda data: threads.append(threading.current_thread().name))
    assert not worker._locals[off].state.local(None)
    assert worker._locals[off].state.confirmed()  # confirmed all the same
    calls = kinds(obs_engine, "invokefunction")
    worker.trigger({"function_id": fid, "payload": {}, "dispatch": "remote"})
    worker.trigger({"function_id": off, "payload": {}})
    with pytest.raises(InvocationError):  # another namespace: the engine's business
        worker.trigger({"function_id": fid, "payload": {}, "namespace": "elsewhere"})
    assert kinds(obs_engine, "invokefunction") == calls + 3
    assert len(threads) == 2 and all(name.startswith("iii-sync") for name in threads)
    with pytest.raises(ValueError, match="dispatch"):
        worker.trigger({"function_id": fid, "payload": {}, "dispatch": "local"})


def test_deep_local_nesting_goes_through_the_engine(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    depths: list[int] = []

    def recurse(data: Any) -> Any:
        inv = CURRENT.get()
        depths.append(inv.local_depth if isinstance(inv, LocalInvocation) else 0)
        if data["n"] == 0:
            return 0
        return 1 + worker.trigger({"function_id": fid, "payload": {"n": data["n"] - 1}})

    fid = local_function(obs_engine, worker, recurse)
    calls = kinds(obs_engine, "invokefunction")
    assert worker.trigger({"function_id": fid, "payload": {"n": 70}}) == 70
    # 64 local levels, then one hop through the engine, after which local calls start again.
    assert depths[:64] == list(range(1, 65)) and depths[64] == 0 and depths[65:] == list(range(1, 7))
    assert kinds(obs_engine, "invokefunction") == calls + 1


def test_an_observed_local_call_is_reported(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    fid = unique("watched")
    worker.register_function(fid, lambda data: {"ok": data["amount"] < 100})
    wait_registered(worker, fid)
    confirm(
        obs_engine, worker, fid, observers=[view("big", filters={"$and": [{"input.amount": {"$gte": 500}}]})]
    )
    wait_until(lambda: worker._locals[fid].state.observed())
    reports = kinds(obs_engine, "invocationsobserved")
    assert worker.trigger({"function_id": fid, "payload": {"amount": 5}}) == {"ok": True}  # no match
    assert worker.trigger({"function_id": fid, "payload": {"amount": 900}}) == {"ok": False}
    wait_until(lambda: kinds(obs_engine, "invocationsobserved") == reports + 1)


def test_local_calls_have_an_execute_span(obs_engine: Engine) -> None:
    from test_execute_span import _span_for

    worker = register_worker(obs_engine.url, InitOptions(worker_name=unique("spans")))
    try:
        ids: list[str | None] = []
        fid = local_function(
            obs_engine, worker, lambda data: ids.append(iii.telemetry.current_trace_id()) or "traced"
        )
        assert worker.trigger({"function_id": fid, "payload": {"secret": "x"}}) == "traced"
        (trace_id,) = ids
        assert trace_id is not None
        span = _span_for(worker, trace_id, fid)
        assert span["name"] == f"execute {fid}"
    finally:
        worker.shutdown()


@pytest.mark.parametrize("generation", ["v0.11", "head"])
def test_engines_without_local_dispatch_route_every_call(generation: str) -> None:
    with Engine(generation=generation) as engine:
        worker = register_worker(engine.url, InitOptions(worker_name=unique("old"), otel={"enabled": False}))
        try:
            threads: list[str] = []
            fid = unique("routed")
            worker.register_function(fid, lambda data: threads.append(threading.current_thread().name) or 1)
            wait_registered(worker, fid)
            assert worker.trigger({"function_id": fid, "payload": {}}) == 1
            assert threads[0].startswith("iii-sync")
            assert not worker._locals[fid].state.local(None)
            assert engine.received_kinds().count("invokefunction") >= 1
        finally:
            worker.shutdown()


def test_channel_refs_in_a_local_payload_are_resolved(obs_engine: Engine, obs_workers: Workers) -> None:
    worker = obs_workers()
    blob = bytes(range(256)) * 64
    got: list[Any] = []

    async def produce(data: Any) -> None:
        got.append(type(data["out"]).__name__)
        await data["out"].write(blob)
        await data["out"].close_async()

    fid = local_function(obs_engine, worker, produce)
    calls = kinds(obs_engine, "invokefunction")
    channel = worker.create_channel()

    async def run() -> bytes:
        call = asyncio.ensure_future(
            worker.trigger_async({"function_id": fid, "payload": {"out": channel.writer_ref}})
        )
        received = await channel.reader.read_all()
        await call
        return received

    assert asyncio.run(run()) == blob
    assert got == ["ChannelWriter"]  # a writer, not the reference's dict
    assert kinds(obs_engine, "invokefunction") == calls + 1  # engine::channels::create only


def test_reports_made_while_the_engine_is_gone_wait_for_the_next_confirmation(
    obs_engine: Engine, obs_workers: Workers
) -> None:
    worker = obs_workers()
    fid = unique("held")
    worker.register_function(fid, lambda data: data["n"] * 2)
    wait_registered(worker, fid)
    confirm(obs_engine, worker, fid, observers=[view("all")])
    wait_until(lambda: worker._locals[fid].state.observed())
    obs_engine.stop()
    wait_until(lambda: worker.get_connection_state() != "connected")
    # Still local with the engine gone; the reports wait, nothing is lost.
    assert [worker.trigger({"function_id": fid, "payload": {"n": n}}) for n in range(3)] == [0, 2, 4]
    items, size = worker._connection.observe_reports_waiting()
    assert items == 3 and size > 0
    obs_engine.restart()
    wait_until(lambda: worker.get_connection_state() == "connected")
    confirm(obs_engine, worker, fid, revision=2, observers=[view("all")])
    wait_until(lambda: worker._connection.observe_reports_waiting() == (0, 0))
    wait_until(
        lambda: (
            sorted(i["input"]["n"] for i in obs_engine.observed_items() if i["function_id"] == fid)
            == [0, 1, 2]
        )
    )
