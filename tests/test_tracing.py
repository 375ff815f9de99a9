"""Trace context across workers: every invocation runs in its own ``execute`` span, calls carry the
current context, results carry the span's, and the engine sees one trace (issue 9 item 2)."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest
from opentelemetry import context as otel_context

from iii import InitOptions, InvocationError, Logger, telemetry
from iii.testing import Engine
from test_telemetry import call, eventually, tree

from conftest import WorkerFactory, unique, wait_registered

pytestmark = pytest.mark.usefixtures("needs_observability")


def _ours(node: dict[str, Any], function_id: str) -> bool:
    """The SDK's invocation span (INTERNAL ``execute``) for ``function_id`` (a real engine adds
    spans of its own)."""
    exporter = telemetry.current()
    service = exporter.service_name if exporter is not None else "iii-python-sdk"
    return node["name"] == f"execute {function_id}" and node.get("service_name") == service


def _spans(roots: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every node of a trace tree with its ancestors, root first."""
    out = []
    stack = [(node, [node]) for node in roots]
    while stack:
        node, path = stack.pop()
        out.append((node, path))
        stack.extend((child, [*path, child]) for child in node["children"])
    return out


def _find(worker: Any, trace_id: str, function_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Our span for ``function_id`` and its ancestors, once the engine has all of them."""

    def fetch() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        return [(n, p) for n, p in _spans(tree(worker, trace_id, 1)) if _ours(n, function_id)]

    found = eventually(fetch, lambda hits: bool(hits))
    assert found, f"no span for {function_id} in trace {trace_id}"
    return found[0]


def test_a_trace_follows_a_call_across_three_workers(make_worker: WorkerFactory) -> None:
    a, b, c, driver = make_worker(), make_worker(), make_worker(), make_worker()
    fa, fb, fc = unique("a"), unique("b"), unique("c")
    seen: dict[str, tuple[str | None, str | None, str | None]] = {}

    def note(name: str) -> None:
        seen[name] = (
            telemetry.current_trace_id(),
            telemetry.current_span_id(),
            telemetry.get_baggage_entry("tenant"),
        )

    async def handler_a(data: Any) -> Any:
        note("a")
        token = otel_context.attach(telemetry.set_baggage_entry("tenant", "acme"))
        try:
            return await a.trigger_async({"function_id": fb, "payload": data})
        finally:
            otel_context.detach(token)

    def handler_b(data: Any) -> Any:  # a sync handler, on the SDK's threads
        note("b")
        return b.trigger({"function_id": fc, "payload": data})

    async def handler_c(data: Any) -> Any:
        note("c")
        return {"done": data}

    a.register_function(fa, handler_a)
    b.register_function(fb, handler_b)
    c.register_function(fc, handler_c)
    for fid in (fa, fb, fc):
        wait_registered(driver, fid)
    assert driver.trigger({"function_id": fa, "payload": 1}) == {"done": 1}

    trace_ids = {seen[n][0] for n in "abc"}
    assert len(trace_ids) == 1 and None not in trace_ids, seen
    assert len({seen[n][1] for n in "abc"}) == 3, "each invocation has a span of its own"
    assert seen["c"][2] == "acme", "baggage set in A reaches C through B"
    assert seen["a"][2] is None
    (trace_id,) = trace_ids
    assert trace_id is not None
    _find(driver, trace_id, fa)  # A's span is the last one exported
    _, path = _find(driver, trace_id, fc)
    ours = [node["name"] for node in path if any(_ours(node, f) for f in (fa, fb, fc))]
    assert ours == [f"execute {fa}", f"execute {fb}", f"execute {fc}"], path


def test_calls_from_outside_any_handler_carry_what_the_caller_attached(make_worker: WorkerFactory) -> None:
    """A call made where nothing is attached starts a trace of its own with no baggage; one made
    inside the application's own root span, with baggage attached, carries both (opentelemetry-sdk
    flags such a span 03, sampled and random, and the engine drops a traceparent with flags
    above 02: the call must send 01)."""
    worker, caller = make_worker(), make_worker()
    fid = unique("seen")

    def seen(_data: Any) -> Any:
        return [telemetry.current_trace_id(), telemetry.get_baggage_entry("tenant")]

    worker.register_function(fid, seen)
    wait_registered(caller, fid)
    first, second = call(caller, fid), call(caller, fid)
    assert first[0] and second[0] and first[0] != second[0], "each bare call is a trace of its own"
    assert first[1] is None and second[1] is None

    tracer = telemetry.get_tracer()
    assert tracer is not None
    with tracer.start_as_current_span("app span") as mine:
        token = otel_context.attach(telemetry.set_baggage_entry("tenant", "acme"))
        try:
            inside = call(caller, fid)
        finally:
            otel_context.detach(token)
    assert inside == [f"{mine.get_span_context().trace_id:032x}", "acme"]
    assert call(caller, fid)[1] is None, "nothing stays attached after the span"


def test_a_failing_handler_gives_an_error_span_with_one_exception_event(make_worker: WorkerFactory) -> None:
    worker, driver = make_worker(), make_worker()
    fid = unique("fails")
    trace_ids: list[str | None] = []

    def fail(_data: Any) -> None:
        trace_ids.append(telemetry.current_trace_id())
        raise ValueError("no stock")

    worker.register_function(fid, fail)
    wait_registered(driver, fid)
    with pytest.raises(InvocationError, match="no stock"):
        driver.trigger({"function_id": fid, "payload": {}})
    (trace_id,) = trace_ids
    assert trace_id is not None

    span, _ = _find(driver, trace_id, fid)
    assert span["status"] == "error"
    names = [e["name"] for e in span["events"]]
    assert names == ["iii.invocation.input", "iii.invocation.output", "exception"]
    assert ["exception.type", "ValueError"] in span["events"][2]["attributes"]


def test_logger_records_carry_the_trace_in_async_and_sync_handlers(make_worker: WorkerFactory) -> None:
    worker, driver = make_worker(), make_worker()
    fa, fs = unique("logasync"), unique("logsync")
    marker = unique("mark")
    traces: dict[str, str | None] = {}

    async def in_async(_data: Any) -> None:  # logs before anything read the context
        Logger().info(f"{marker} async", {"n": 1})
        traces["async"] = telemetry.current_trace_id()

    def in_sync(_data: Any) -> None:
        traces["sync"] = telemetry.current_trace_id()
        Logger().info(f"{marker} sync", {"n": 2})

    worker.register_function(fa, in_async)
    worker.register_function(fs, in_sync)
    for fid in (fa, fs):
        wait_registered(driver, fid)
        driver.trigger({"function_id": fid, "payload": {}})

    def fetch() -> list[dict[str, Any]]:
        logs = call(driver, "engine::logs::list", {})["logs"]
        return [log for log in logs if str(log["body"]).startswith(marker)]

    logs = eventually(fetch, lambda found: len(found) >= 2)
    by_kind = {str(log["body"]).split()[-1]: log for log in logs}
    assert by_kind["async"]["trace_id"] == traces["async"]
    assert by_kind["sync"]["trace_id"] == traces["sync"]
    assert traces["async"] != traces["sync"]


def test_a_handler_that_never_touches_opentelemetry_passes_its_span_on(make_worker: WorkerFactory) -> None:
    quiet_worker, noted_worker, driver = make_worker(), make_worker(), make_worker()
    fq, fn = unique("quiet"), unique("noted")
    seen: list[str | None] = []

    async def quiet(data: Any) -> Any:  # calls on without reading the context first
        return await quiet_worker.trigger_async({"function_id": fn, "payload": data})

    def noted(_data: Any) -> None:
        seen.append(telemetry.current_trace_id())

    quiet_worker.register_function(fq, quiet)
    noted_worker.register_function(fn, noted)
    for fid in (fq, fn):
        wait_registered(driver, fid)
    driver.trigger({"function_id": fq, "payload": {}})
    (trace_id,) = seen
    assert trace_id is not None
    _, path = _find(driver, trace_id, fn)
    ours = [node["name"] for node in path if any(_ours(node, f) for f in (fq, fn))]
    assert ours == [f"execute {fq}", f"execute {fn}"], path


def test_a_context_attached_before_any_read_gives_way_to_the_invocations_on_detach(
    make_worker: WorkerFactory,
) -> None:
    worker, driver = make_worker(), make_worker()
    fid = unique("swap")

    def swap(_data: Any) -> dict[str, str | None]:
        token = otel_context.attach(otel_context.Context())
        inside = telemetry.current_trace_id()
        otel_context.detach(token)
        return {"inside": inside, "after": telemetry.current_trace_id()}

    worker.register_function(fid, swap)
    wait_registered(driver, fid)
    out = driver.trigger({"function_id": fid, "payload": {}})
    assert out["inside"] is None
    assert out["after"] is not None
    _find(driver, out["after"], fid)  # the invocation's own span is in that trace


def test_each_invocation_runs_in_its_own_context(make_worker: WorkerFactory) -> None:
    worker, driver = make_worker(), make_worker()
    fid = unique("ctx")
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=0)

    async def bump(_data: Any) -> int:
        before = var.get()
        var.set(before + 1)
        return before

    worker.register_function(fid, bump)
    wait_registered(driver, fid)
    assert [driver.trigger({"function_id": fid, "payload": {}}) for _ in range(3)] == [0, 0, 0]


def test_with_opentelemetry_off_no_telemetry_reaches_the_engine() -> None:
    with Engine() as engine:
        from iii import register_worker

        off = InitOptions(worker_name="quiet", otel={"enabled": False})
        worker = register_worker(engine.url, off)
        try:
            fid = unique("quiet")
            done = threading.Event()
            worker.register_function(fid, lambda _d: done.set())
            worker.trigger({"function_id": fid, "payload": {}})
            assert done.is_set()
            assert telemetry.current() is None
            traces = worker.trigger({"function_id": "engine::traces::list", "payload": {}})
            assert traces["spans"] == [] if "spans" in traces else not traces.get("traces")
        finally:
            worker.shutdown()
