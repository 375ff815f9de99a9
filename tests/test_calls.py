"""Calls in every mode: results, errors, timeouts, payload handling, registration forms."""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time

import pytest
from pydantic import BaseModel

from iii import (
    III,
    EnqueueResult,
    IIIError,
    InitOptions,
    InvocationError,
    InvocationTimeoutError,
    PayloadNotSerializableError,
    RegisterFunctionInput,
    TriggerAction,
    TriggerRequest,
)

from conftest import REAL_ENGINE_URL, needs_queue, unique, wait_registered, wait_until


class Greeting(BaseModel):
    name: str


class Reply(BaseModel):
    message: str


def strip(data):
    """The engine adds the caller's worker id to object payloads (docs/protocol.md 2.11)."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k != "_caller_worker_id"}
    return data


def test_sync_and_async_handlers_return_results(make_worker):
    server, client = make_worker(), make_worker()
    fs, fa = unique("sync"), unique("async")
    server.register_function(fs, lambda d: {"got": strip(d)})

    async def handler(d):
        await asyncio.sleep(0)
        return [strip(d), "async"]

    server.register_function(fa, handler)
    wait_registered(client, fa)
    wait_registered(client, fs)
    assert client.trigger({"function_id": fs, "payload": {"x": 1}}) == {"got": {"x": 1}}
    assert client.trigger({"function_id": fa, "payload": {"y": [1, 2.5, None]}}) == [
        {"y": [1, 2.5, None]},
        "async",
    ]
    assert client.trigger(TriggerRequest(function_id=fa, payload="text")) == ["text", "async"]


def test_caller_worker_id_is_injected_into_object_payloads(make_worker):
    server, client = make_worker(), make_worker()
    fid = unique()
    server.register_function(fid, lambda d: d)
    wait_registered(client, fid)
    got = client.trigger({"function_id": fid, "payload": {"a": 1}})
    assert got["_caller_worker_id"] == client.worker_id
    assert client.trigger({"function_id": fid, "payload": [1]}) == [1]


def test_missing_or_none_payload_is_sent_as_null(make_worker):
    server, client = make_worker(), make_worker()
    seen = []
    fid = unique()

    def handler(d):
        seen.append(d)
        return "ok"

    server.register_function(fid, handler)
    wait_registered(client, fid)
    assert client.trigger({"function_id": fid}) == "ok"
    assert client.trigger({"function_id": fid, "payload": None}) == "ok"
    assert seen == [None, None]


def test_handler_returning_none_gives_none(make_worker):
    server, client = make_worker(), make_worker()
    fid = unique()
    server.register_function(fid, lambda d: None)
    wait_registered(client, fid)
    assert client.trigger({"function_id": fid, "payload": 1}) is None


def test_pydantic_models_in_and_out(make_worker):
    server, client = make_worker(), make_worker()
    received = []

    async def greet(data: Greeting) -> Reply:
        received.append(data)
        return Reply(message=f"Hello, {data.name}!")

    fid = unique("greet")
    ref = server.register_function(fid, greet, description="Greets")
    assert ref.id == fid
    wait_registered(client, fid)
    assert client.trigger({"function_id": fid, "payload": Greeting(name="Ada")}) == {"message": "Hello, Ada!"}
    assert isinstance(received[0], Greeting) and received[0].name == "Ada"
    info = next(f for f in client.list_functions() if f.function_id == fid)
    assert info.description == "Greets"
    assert info.request_format["properties"]["name"]["type"] == "string"
    assert info.response_format["properties"]["message"]["type"] == "string"


def test_three_registration_forms_and_unregister(make_worker):
    server, client = make_worker(), make_worker()
    a, b, c = unique("dict"), unique("model"), unique("str")
    ra = server.register_function({"id": a, "description": "from dict"}, lambda d: "a")
    server.register_function(RegisterFunctionInput(id=b, metadata={"k": 1}), lambda d: "b")
    server.register_function(c, lambda d: "c", description="from str", metadata={"m": True})
    wait_registered(client, c)
    infos = {f.function_id: f for f in client.list_functions()}
    assert infos[a].description == "from dict"
    assert infos[b].metadata == {"k": 1}
    assert infos[c].metadata == {"m": True}
    assert [client.trigger({"function_id": f, "payload": {}}) for f in (a, b, c)] == ["a", "b", "c"]
    ra.unregister()
    wait_until(lambda: all(f.function_id != a for f in client.list_functions()))
    with pytest.raises(InvocationError) as err:
        client.trigger({"function_id": a, "payload": {}})
    assert err.value.code == "function_not_found"


def test_enqueue_returns_receipt_and_delivers(make_worker):
    server, client = make_worker(), make_worker()
    needs_queue(client)
    got = []
    fid = unique("job")
    server.register_function(fid, lambda d: got.append(d))
    wait_registered(client, fid)
    receipt = client.trigger(
        {"function_id": fid, "payload": {"n": 1}, "action": TriggerAction.Enqueue(queue="default")}
    )
    assert isinstance(receipt, EnqueueResult)
    assert len(receipt.messageReceiptId) == 36
    receipt2 = client.trigger(
        {"function_id": fid, "payload": {"n": 2}, "action": {"type": "enqueue", "queue": "default"}}
    )
    assert receipt2.messageReceiptId != receipt.messageReceiptId
    wait_until(lambda: len(got) == 2)
    assert sorted(d["n"] for d in got) == [1, 2]
    # Queue deliveries come from the engine, not from a worker: no caller id is added.
    assert all("_caller_worker_id" not in d for d in got)


def test_enqueue_to_unknown_queue_is_an_error(make_worker):
    client = make_worker()
    needs_queue(client)
    with pytest.raises(InvocationError) as err:
        client.trigger(
            {"function_id": "x", "payload": 1, "action": TriggerAction.Enqueue(queue="no-such-queue")}
        )
    assert err.value.code == "enqueue_error"
    assert "no-such-queue" in err.value.message


def test_void_returns_none_at_once_and_is_delivered(make_worker):
    server, client = make_worker(), make_worker()
    got = []
    release = threading.Event()
    fid = unique("void")

    def slow(d):
        release.wait(5)
        got.append(d)

    server.register_function(fid, slow)
    wait_registered(client, fid)
    assert client.trigger({"function_id": fid, "payload": {"v": 1}, "action": TriggerAction.Void()}) is None
    assert client.trigger({"function_id": fid, "payload": {"v": 2}, "action": {"type": "void"}}) is None
    # The handler cannot finish before the release: the calls returned without waiting for it.
    assert got == []
    release.set()
    wait_until(lambda: len(got) == 2)
    assert sorted(d["v"] for d in got) == [1, 2]


def test_invalid_actions_and_requests_are_rejected(make_worker):
    client = make_worker()
    with pytest.raises(ValueError, match="invalid action"):
        client.trigger({"function_id": "f", "action": {"type": "later"}})
    with pytest.raises(ValueError, match="function_id"):
        client.trigger({"payload": 1})
    with pytest.raises(ValueError, match="timeout_ms"):
        client.trigger({"function_id": "f", "timeout_ms": -5})


def test_handler_exception_reaches_caller(make_worker):
    server, client = make_worker(), make_worker()
    fid, afid = unique("boom"), unique("aboom")

    def boom(d):
        raise ValueError("card declined")

    async def aboom(d):
        await asyncio.sleep(0.001)
        raise KeyError("missing")

    server.register_function(fid, boom)
    server.register_function(afid, aboom)
    wait_registered(client, afid)
    with pytest.raises(InvocationError) as err:
        client.trigger({"function_id": fid, "payload": {}})
    e = err.value
    assert isinstance(e, IIIError)
    assert e.code == "invocation_failed"
    assert e.message == "card declined"
    assert "ValueError: card declined" in e.stacktrace
    assert "boom" in e.stacktrace
    assert str(e) == "invocation_failed: card declined"
    with pytest.raises(InvocationError) as err:
        client.trigger({"function_id": afid, "payload": {}})
    assert err.value.code == "invocation_failed" and "missing" in err.value.message
    # The worker keeps serving after its handlers raised.
    server.register_function(unique(), lambda d: 1)
    assert client.trigger({"function_id": "engine::workers::list", "payload": {}})["workers"]


def test_a_handler_raising_system_exit_is_an_error_and_the_worker_goes_on(make_worker):
    server, client = make_worker(), make_worker()
    fid, afid, alive = unique("exit"), unique("aexit"), unique("alive")

    def exits(d):
        raise SystemExit("handler exited")

    async def aexits(d):
        await asyncio.sleep(0.001)  # a suspended handler: it ends inside a Task of the SDK loop
        raise SystemExit("async handler exited")

    server.register_function(fid, exits)
    server.register_function(afid, aexits)
    server.register_function(alive, lambda d: "alive")
    wait_registered(client, alive)
    for function_id in (fid, afid, fid, afid):
        with pytest.raises(InvocationError) as err:
            client.trigger({"function_id": function_id, "payload": {}})
        assert err.value.code == "invocation_failed" and err.value.message.startswith("SystemExit: ")
    assert client.trigger({"function_id": alive, "payload": {}}) == "alive"


def test_unknown_function_error(make_worker):
    client = make_worker()
    with pytest.raises(InvocationError) as err:
        client.trigger({"function_id": unique("missing"), "payload": {}})
    assert err.value.code == "function_not_found"


def test_timeout_is_a_builtin_timeout_error(make_worker):
    server = make_worker()
    client = make_worker(invocation_timeout_ms=300)
    fid = unique("slow")

    async def never_answers(d):
        await asyncio.Event().wait()  # cancelled when the server shuts down

    server.register_function(fid, never_answers)
    wait_registered(client, fid)
    with pytest.raises(TimeoutError) as err:
        client.trigger({"function_id": fid, "payload": {}, "timeout_ms": 200})
    assert isinstance(err.value, InvocationTimeoutError)
    assert str(err.value) == f"Invocation of '{fid}' timed out after 200ms"
    # iii-sdk 0.25.0 code catches it as an InvocationError with code TIMEOUT.
    with pytest.raises(InvocationError) as caught:
        client.trigger({"function_id": fid, "payload": {}, "timeout_ms": 50})
    assert (caught.value.code, caught.value.function_id) == ("TIMEOUT", fid)
    assert caught.value.invocation_id
    with pytest.raises(InvocationTimeoutError) as err:
        client.trigger({"function_id": fid, "payload": {}})  # InitOptions.invocation_timeout_ms
    assert str(err.value) == f"Invocation of '{fid}' timed out after 300ms"

    async def run():
        with pytest.raises(InvocationTimeoutError) as err:
            await client.trigger_async({"function_id": fid, "payload": {}, "timeout_ms": 100})
        assert str(err.value) == f"Invocation of '{fid}' timed out after 100ms"

    asyncio.run(run())
    assert client._connection.pending_calls() == 0, "timed-out calls are forgotten"


def test_unserialisable_payload_raises_before_sending(make_worker):
    server, client = make_worker(), make_worker()
    calls = []
    fid = unique()
    server.register_function(fid, lambda d: calls.append(d))
    wait_registered(client, fid)
    with pytest.raises(PayloadNotSerializableError, match=r"payload\[\"bad\"\]\[1\].*object"):
        client.trigger({"function_id": fid, "payload": {"bad": [1, object()]}})
    with pytest.raises(PayloadNotSerializableError, match="NaN"):
        client.trigger({"function_id": fid, "payload": float("nan"), "action": TriggerAction.Void()})
    with pytest.raises(TypeError):  # also a TypeError, like json.dumps
        asyncio.run(client.trigger_async({"function_id": fid, "payload": {1j}}))
    assert client.trigger({"function_id": fid, "payload": 1}) is None
    assert calls == [1]


def test_unserialisable_result_becomes_an_error_for_the_caller(make_worker):
    server, client = make_worker(), make_worker()
    fid = unique()
    server.register_function(fid, lambda d: {"x": object()})
    wait_registered(client, fid)
    with pytest.raises(InvocationError) as err:
        client.trigger({"function_id": fid, "payload": {}})
    assert err.value.code == "invocation_failed"
    assert "cannot be sent" in err.value.message


def test_trigger_from_many_threads(make_worker):
    server, client = make_worker(), make_worker()
    fid = unique()
    server.register_function(fid, lambda d: d["i"] * 2)
    wait_registered(client, fid)
    results: dict[int, int] = {}

    def run(base):
        for i in range(base, base + 50):
            results[i] = client.trigger({"function_id": fid, "payload": {"i": i}})

    threads = [threading.Thread(target=run, args=(n * 50,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {i: i * 2 for i in range(400)}


@pytest.mark.parametrize("choice", ["", "asyncio", "uvloop"])
def test_handlers_run_on_the_chosen_event_loop(make_worker, monkeypatch, choice):
    """uvloop by default (a dependency), asyncio's own loop with III_EVENT_LOOP=asyncio; calls
    made from a handler on either loop, awaited and sync, get their results."""
    pytest.importorskip("uvloop")
    monkeypatch.setenv("III_EVENT_LOOP", choice)
    worker = make_worker()
    echo, probe = unique(), unique()

    async def echo_handler(d):
        return d

    async def probe_handler(d):
        loop = type(asyncio.get_running_loop())
        got = await asyncio.gather(
            *(worker.trigger_async({"function_id": echo, "payload": i}) for i in range(50))
        )
        return {"loop": f"{loop.__module__}.{loop.__name__}", "got": got}

    worker.register_function(echo, echo_handler)
    worker.register_function(probe, probe_handler)
    wait_registered(worker, probe)
    out = worker.trigger({"function_id": probe, "payload": {}})
    assert out["got"] == list(range(50))
    assert out["loop"].startswith("asyncio.") == (choice == "asyncio"), out["loop"]
    assert out["loop"].startswith("uvloop") == (choice != "asyncio"), out["loop"]


def test_an_unknown_event_loop_choice_is_a_clear_error(engine_url, monkeypatch):
    monkeypatch.setenv("III_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="III_EVENT_LOOP must be 'uvloop' or 'asyncio', not 'trio'"):
        III(engine_url, InitOptions(worker_name=unique()))


def _echo_pair(make_worker):
    """A client, and the id of an async echo another worker serves."""
    server, client = make_worker(), make_worker()
    fid = unique()

    async def echo(d):
        return d

    server.register_function(fid, echo)
    wait_registered(client, fid)
    return client, fid


def test_trigger_async_from_foreign_loops(make_worker):
    client, fid = _echo_pair(make_worker)

    async def burst(tag):
        return await asyncio.gather(
            *(client.trigger_async({"function_id": fid, "payload": [tag, i]}) for i in range(100))
        )

    assert asyncio.run(burst("main")) == [["main", i] for i in range(100)]
    out = {}

    def in_thread(tag):
        out[tag] = asyncio.run(burst(tag))

    threads = [threading.Thread(target=in_thread, args=(f"t{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert out == {f"t{n}": [[f"t{n}", i] for i in range(100)] for n in range(3)}


def test_handlers_call_other_functions(make_worker):
    server, client = make_worker(), make_worker()
    leaf, via_async, via_sync = unique("leaf"), unique("via_async"), unique("via_sync")
    server.register_function(leaf, lambda d: d["n"] + 1)

    async def outer_async(d):
        return await server.trigger_async({"function_id": leaf, "payload": {"n": d["n"]}}) * 10

    def outer_sync(d):
        return server.trigger({"function_id": leaf, "payload": {"n": d["n"]}}) * 100

    server.register_function(via_async, outer_async)
    server.register_function(via_sync, outer_sync)
    wait_registered(client, via_sync)
    assert client.trigger({"function_id": via_async, "payload": {"n": 1}}) == 20
    assert client.trigger({"function_id": via_sync, "payload": {"n": 1}}) == 200


def test_handler_receives_metadata_when_it_asks(engine, make_worker):
    """Engine v0.11.0 sends no invocation metadata, so the test engine injects a raw
    ``invokefunction`` carrying some; the result goes to the engine, which drops it."""
    server, client = make_worker(engine.url), make_worker(engine.url)
    asks, ignores = unique("asks"), unique("ignores")
    seen: list[tuple[str, object, object]] = []
    server.register_function(asks, lambda data, metadata: seen.append(("asks", data, metadata)))
    server.register_function(ignores, lambda data: seen.append(("ignores", data, None)))
    wait_registered(client, ignores)

    def invoke(fid: str, n: int, metadata: str | None) -> None:
        extra = f',"metadata":{metadata}' if metadata is not None else ""
        frame = (
            f'{{"type":"invokefunction","invocation_id":"8a3b2e55-0000-4000-8000-00000000000{n}",'
            f'"function_id":"{fid}","data":{{"n":{n}}}{extra}}}'
        )
        assert engine.send_raw(server.worker_id, frame)

    invoke(asks, 1, '{"tenant":"acme","tags":[1,2]}')
    invoke(ignores, 2, '{"tenant":"acme"}')
    invoke(asks, 3, None)
    wait_until(lambda: len(seen) == 3)
    assert sorted(seen, key=lambda s: s[1]["n"]) == [
        ("asks", {"n": 1}, {"tenant": "acme", "tags": [1, 2]}),
        ("ignores", {"n": 2}, None),
        ("asks", {"n": 3}, None),
    ]
    # Through the engine (no metadata on v0.11.0) the handler still gets its second argument.
    assert client.trigger({"function_id": asks, "payload": {"n": 4}}) is None
    wait_until(lambda: len(seen) == 4)
    assert seen[-1] == ("asks", {"n": 4, "_caller_worker_id": client.worker_id}, None)


def test_results_reach_blocking_callers_while_the_sdk_loop_is_busy(make_worker):
    """The SDK loop normally reads the link; when a handler hogs it, the runtime reads instead."""
    server, client = make_worker(), make_worker()
    fid, hog = unique("quick"), unique("hog")
    server.register_function(fid, lambda d: "quick")
    hogging, release, hog_done = threading.Event(), threading.Event(), threading.Event()

    async def hog_loop(d):
        hogging.set()
        release.wait(30)  # blocks the client's SDK loop on purpose, until the test is done
        hog_done.set()

    client.register_function(hog, hog_loop)
    wait_registered(client, fid)
    wait_registered(client, hog)
    client.trigger({"function_id": hog, "payload": {}, "action": TriggerAction.Void()})
    try:
        assert hogging.wait(5)
        # Without the runtime reading the link this call would time out: the loop stays blocked.
        assert client.trigger({"function_id": fid, "payload": {}, "timeout_ms": 10_000}) == "quick"
        assert not hog_done.is_set()
    finally:
        release.set()
    assert hog_done.wait(5)


def _random_value(rng, depth=0):
    chars = 'ab "\\\n\t\x00\x1f/é漢🎉\x7f'
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(
            [0, -1, 2**31, -(2**63), 2**63 - 1, 2**63, 2**64 - 1, rng.randrange(-(2**63), 2**64)]
        )
    if kind == 3:
        # A real engine re-encodes payloads with serde_json's default number parser, which can
        # move a long float by one unit in the last place (engine v0.11.0 did, 2026-12-07); a
        # float of few digits is read exactly by every parser.
        x = rng.uniform(-1e6, 1e6)
        return rng.choice([0.5, -0.0, 1e300, 5e-324, -2.5e-8, round(x, 3) if REAL_ENGINE_URL else x])
    if kind in (4, 5):
        return "".join(rng.choice(chars) for _ in range(rng.randrange(0, 80)))
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return {
        _random_value(rng, 9) if rng.random() < 0.3 else f"k{i}": _random_value(rng, depth + 1)
        for i in range(rng.randrange(0, 5))
    }


def _canon(value):
    """``value`` with its types and float signs visible and object keys sorted (engines may
    reorder keys: engine v0.11.0 sorts them)."""
    if isinstance(value, dict):
        return ("dict", sorted((k, _canon(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", [_canon(v) for v in value])
    return (type(value).__name__, repr(value))


def _strict_loads(text: str):
    """How the SDK reads a payload's JSON text: as ``json.loads`` does, except that integers
    are read as serde_json reads them (a float outside the 64-bit range, -0 as the float -0.0)."""

    def integer(s: str):
        if s == "-0":
            return -0.0
        n = int(s)
        return n if -(2**63) <= n < 2**64 else float(s)

    return json.loads(text, parse_int=integer)


def test_payloads_read_back_as_the_strict_decoder_reads_them(make_worker):
    # Payloads from the engine are read without a second check of their bytes; the result must
    # be what a strict decoder makes of the same text, types and signs included.
    # (Integers beyond 64 bits are left out: engines carry them as floats.)
    import random

    server, client = make_worker(), make_worker()
    fid = unique("echo")
    server.register_function(fid, lambda d: {"v": d["v"], "seen": repr(_canon(d["v"]))})
    wait_registered(client, fid)
    tricky = [
        "",
        "plain",
        'a"b\\c',
        "\n\t\r\b\f",
        "\x00\x1f",
        "é ü 漢字 🎉",
        "x" * 20_000,
        "y" * 40 + '"' + "z" * 40 + "\\" + "\n" * 3,
        2**63,
        2**64 - 1,
        -(2**63),
        0.1,
        -0.0,
        1e300,
        5e-324,
        {},
        [],
        {'k"e\ny': 1, "é": [None, True, False]},
        [[[[[[[[[[1]]]]]]]]]],
    ]
    rng = random.Random(7)
    for value in tricky + [_random_value(rng) for _ in range(300)]:
        want = repr(_canon(_strict_loads(json.dumps(value))))
        out = client.trigger({"function_id": fid, "payload": {"v": value}})
        assert out["seen"] == want, value  # as the serving worker read the invocation
        assert repr(_canon(out["v"])) == want, value  # as the calling worker read the result


def test_an_invocation_whose_data_cannot_be_read_is_answered_and_the_worker_goes_on(
    engine, make_worker, caplog
):
    """A number beyond float range is valid JSON but no Python value: the caller gets an error
    at once instead of waiting for its timeout, and the loop and the sync threads go on."""
    server = make_worker(engine.url)
    sync_fn, async_fn = unique("sync"), unique("async")
    seen: list[object] = []

    async def in_async(data):
        seen.append(data["n"])

    server.register_function(sync_fn, lambda data: seen.append(data["n"]))
    server.register_function(async_fn, in_async)
    wait_registered(make_worker(engine.url), async_fn)
    before = len(engine.received_kinds())

    def invoke(fid: str, n: int, value: str) -> None:
        frame = (
            f'{{"type":"invokefunction","invocation_id":"9c4d3f66-0000-4000-8000-00000000000{n}",'
            f'"function_id":"{fid}","data":{{"n":{value}}}}}'
        )
        assert engine.send_raw(server.worker_id, frame)

    with caplog.at_level("ERROR", logger="iii"):
        invoke(sync_fn, 1, "1e400")
        invoke(async_fn, 2, "1e400")
        invoke(sync_fn, 3, "3")
        invoke(async_fn, 4, "4")
        wait_until(lambda: sorted(seen) == [3, 4])
        wait_until(lambda: engine.received_kinds()[before:].count("invocationresult") == 4)
    refused = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(refused) == 2, refused


def test_numbers_in_raw_frames_read_as_the_strict_decoder_reads_them(engine, make_worker):
    server = make_worker(engine.url)
    fid = unique("numbers")
    seen: list[str] = []
    server.register_function(fid, lambda data: seen.append(repr(data)))
    wait_registered(make_worker(engine.url), fid)
    text = "[-0,0,-1,123456789012345678,-123456789012345678,9223372036854775808,-9223372036854775809,1e2,-0.0,1.5e-7]"
    frame = f'{{"type":"invokefunction","function_id":"{fid}","data":{text}}}'
    assert engine.send_raw(server.worker_id, frame)
    wait_until(lambda: len(seen) == 1)
    assert seen == [repr(_strict_loads(text))]


def test_a_backlog_of_answers_is_resolved_a_few_dozen_at_a_time(make_worker):
    """Answers that piled up while a loop was busy resolve over several iterations: the tasks
    of one batch all run in the next one, and each release of an asyncio.Semaphore among them
    scans the waiters woken before it (quadratic in the batch on CPython 3.11)."""
    client, fid = _echo_pair(make_worker)

    async def main():
        loop = asyncio.get_running_loop()
        queue = client._queue_for(loop)
        iteration = 0

        def tick():
            nonlocal iteration
            iteration += 1
            loop.call_soon(tick)

        loop.call_soon(tick)
        resolved_in = []
        calls = [
            asyncio.ensure_future(client.trigger_async({"function_id": fid, "payload": i}))
            for i in range(200)
        ]
        for call in calls:
            call.add_done_callback(lambda _: resolved_in.append(iteration))
        await asyncio.sleep(0)  # every call has been sent
        deadline = time.monotonic() + 10
        while queue.pending() < 200:  # this loop stays busy until every answer waits for it
            assert time.monotonic() < deadline, f"{queue.pending()} answers arrived"
            time.sleep(0.001)
        results = await asyncio.gather(*calls)
        return results, collections.Counter(resolved_in)

    results, per_iteration = asyncio.run(main())
    assert results == list(range(200))
    assert max(per_iteration.values()) <= 32 and len(per_iteration) >= 7
