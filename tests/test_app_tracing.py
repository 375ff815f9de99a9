"""The ``execute <function>`` span through the application's own OpenTelemetry tracer provider
while the SDK's telemetry is off (``iii._app_tracing``): remote and local handlers, the context
they run in, the calls they make, errors, payload events, and no span without a provider."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import iii
from iii import III, _app_tracing
from iii._observe import CURRENT, LocalInvocation
from iii.testing import Engine
from observe_support import local_function

from conftest import WorkerFactory as Workers
from conftest import unique, wait_registered, wait_until


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """An application tracer provider (what ``trace.set_tracer_provider`` installs, which a
    process can do only once) recording into memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    yield exporter
    provider.shutdown()


@pytest.fixture
def no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """No global tracer provider, whatever tests before this one installed (a worker with the
    SDK's telemetry on installs one when the application has none)."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)


def _execute(spans: InMemorySpanExporter, fid: str) -> ReadableSpan:
    wait_until(lambda: any(s.name == f"execute {fid}" for s in spans.get_finished_spans()))
    (span,) = [s for s in spans.get_finished_spans() if s.name == f"execute {fid}"]
    return span


def _routed(worker: III, handler: Any) -> str:
    """A new function of ``worker`` that its own calls reach through the engine."""
    function_id = unique("app")
    worker.register_function(function_id, handler, local_dispatch=False)
    wait_registered(worker, function_id)
    return function_id


def _events(span: ReadableSpan) -> dict[str, dict[str, Any]]:
    return {event.name: dict(event.attributes or {}) for event in span.events}


def _handler(kind: str, seen: list[Any], fail: bool = False) -> Any:
    def record() -> None:
        seen.append((trace.get_current_span().get_span_context(), CURRENT.get()))
        if fail:
            raise ValueError("no such order")

    if kind == "sync":

        def handler(data: Any) -> Any:
            record()
            return {"ok": True}

        return handler

    async def async_handler(data: Any) -> Any:
        await asyncio.sleep(0)
        record()
        return {"ok": True}

    return async_handler


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_remote_invocation_runs_in_an_execute_span_child_of_the_callers_span(
    obs_workers: Workers, spans: InMemorySpanExporter, kind: str
) -> None:
    worker = obs_workers()
    seen: list[Any] = []
    fid = _routed(worker, _handler(kind, seen))
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        result = worker.trigger({"function_id": fid, "payload": {"order": 7, "password": "hunter2"}})
    assert result == {"ok": True}
    execute = _execute(spans, fid)
    # The call carried the caller's span to the engine and the handler's span continues it.
    assert execute.context.trace_id == caller.get_span_context().trace_id
    assert execute.kind == trace.SpanKind.INTERNAL
    assert execute.status.status_code == trace.StatusCode.OK
    (span_ctx, invocation) = seen[0]
    assert span_ctx.span_id == execute.context.span_id  # the handler runs inside it
    assert invocation is not None and invocation.function_id == fid
    events = _events(execute)
    assert list(events) == ["iii.invocation.input", "iii.invocation.output"]
    assert '"password": "[REDACTED]"' in events["iii.invocation.input"]["iii.payload.json"]
    assert events["iii.invocation.output"]["iii.payload.ok"] is True


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_handler_that_raises_ends_its_span_in_error(
    obs_workers: Workers, spans: InMemorySpanExporter, kind: str
) -> None:
    worker = obs_workers()
    fid = _routed(worker, _handler(kind, [], fail=True))
    with pytest.raises(iii.InvocationError, match="no such order"):
        worker.trigger({"function_id": fid, "payload": {}})
    execute = _execute(spans, fid)
    assert execute.status.status_code == trace.StatusCode.ERROR
    events = _events(execute)
    assert "exception" in events
    assert events["iii.invocation.output"]["iii.payload.ok"] is False
    assert "no such order" in events["iii.invocation.output"]["iii.payload.json"]


@pytest.mark.parametrize("call", ["trigger", "trigger_async"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_local_call_gets_the_execute_span_under_the_callers_span(
    obs_engine: Engine, obs_workers: Workers, spans: InMemorySpanExporter, kind: str, call: str
) -> None:
    worker = obs_workers()
    seen: list[Any] = []
    fid = local_function(obs_engine, worker, _handler(kind, seen))
    request = {"function_id": fid, "payload": {"n": 1}}

    async def from_a_loop() -> Any:
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            assert await worker.trigger_async(request) == {"ok": True}
            assert trace.get_current_span() is caller  # the handler's span stayed in its context
        return caller

    if call == "trigger":
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            assert worker.trigger(request) == {"ok": True}
            assert trace.get_current_span() is caller
    else:
        caller = asyncio.run(from_a_loop())
    execute = _execute(spans, fid)
    assert execute.parent is not None and execute.parent.span_id == caller.get_span_context().span_id
    assert seen[0][0].span_id == execute.context.span_id
    assert list(_events(execute)) == ["iii.invocation.input", "iii.invocation.output"]
    assert isinstance(seen[0][1], LocalInvocation)  # it did run locally


def test_a_call_made_by_a_handler_continues_the_handlers_span(
    obs_workers: Workers, spans: InMemorySpanExporter
) -> None:
    worker = obs_workers()
    inner, outer = unique("inner"), unique("outer")
    worker.register_function(inner, lambda data: "done", local_dispatch=False)
    worker.register_function(
        outer, lambda data: worker.trigger({"function_id": inner, "payload": {}}), local_dispatch=False
    )
    wait_registered(worker, inner)
    wait_registered(worker, outer)
    assert worker.trigger({"function_id": outer, "payload": {}}) == "done"
    outer_span, inner_span = _execute(spans, outer), _execute(spans, inner)
    assert inner_span.context.trace_id == outer_span.context.trace_id


def test_payload_events_follow_III_DISABLE_TRACE_PAYLOADS(
    obs_workers: Workers, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("III_DISABLE_TRACE_PAYLOADS", "true")
    worker = obs_workers()
    fid = _routed(worker, lambda data: 2)
    assert worker.trigger({"function_id": fid, "payload": {"n": 1}}) == 2
    assert _events(_execute(spans, fid)) == {}


@pytest.mark.usefixtures("no_provider")
def test_no_application_provider_means_no_span(obs_workers: Workers, monkeypatch: pytest.MonkeyPatch) -> None:
    # The API's placeholder provider: its tracer records nothing, so none is made.
    assert _app_tracing.app_tracer() is None
    seen: list[Any] = []
    worker = obs_workers()
    fid = _routed(worker, _handler("sync", seen))
    worker.trigger({"function_id": fid, "payload": {}})
    assert not seen[0][0].is_valid
    # Nor while opentelemetry is not imported at all (``import iii`` does not import it).
    monkeypatch.delitem(sys.modules, "opentelemetry.trace")
    assert _app_tracing.app_tracer() is None
    assert _app_tracing.outgoing_headers() == (None, None)


@pytest.mark.usefixtures("no_provider")
def test_a_provider_installed_later_is_picked_up(
    obs_workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _app_tracing.app_tracer() is None
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    worker = obs_workers()
    fid = _routed(worker, lambda data: 1)
    assert worker.trigger({"function_id": fid, "payload": {}}) == 1
    assert _execute(exporter, fid).name == f"execute {fid}"
    provider.shutdown()


def test_a_failing_application_tracer_does_not_fail_the_invocation(
    obs_workers: Workers, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
            tracer = super().get_tracer(*args, **kwargs)

            def start_span(*a: Any, **k: Any) -> Any:
                raise RuntimeError("exporter misconfigured")

            tracer.start_span = start_span  # type: ignore[method-assign]
            return tracer

    provider = Broken()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    worker = obs_workers()
    fid = _routed(worker, lambda data: "still answered")
    assert worker.trigger({"function_id": fid, "payload": {}}) == "still answered"
    assert any("failed to start the span" in r.getMessage() for r in caplog.records)


def test_a_batch_made_inside_the_applications_span_continues_it(
    obs_workers: Workers, spans: InMemorySpanExporter
) -> None:
    worker = obs_workers()
    fid = _routed(worker, lambda data: data["n"])
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        outcomes = worker.trigger_many([{"function_id": fid, "payload": {"n": n}} for n in range(3)])
    assert [o.value() for o in outcomes] == [0, 1, 2]
    wait_until(lambda: len([s for s in spans.get_finished_spans() if s.name == f"execute {fid}"]) == 3)
    executes = [s for s in spans.get_finished_spans() if s.name == f"execute {fid}"]
    assert {s.context.trace_id for s in executes} == {caller.get_span_context().trace_id}
