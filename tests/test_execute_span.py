"""The invocation span of iii-sdk 0.25.0 (issue 19 item 6; docs/protocol.md C.20): INTERNAL
``execute <function_id>``, baggage entries as its attributes, payload events with 0.25's
redaction and truncation, the 0.25 ``OtelConfig`` fields (``spans_flush_interval_ms``,
``engine_ws_headers``), the telemetry-only socket on ``<url>/otel`` and ``flush_otel``."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context

from iii import InitOptions, InvocationError, OtelConfig, register_worker, telemetry
from iii._iii import Telemetry
from iii._observability import redact_and_truncate
from iii.testing import Engine
from iii_helpers.observability import flush_otel
from test_telemetry import eventually, tree

from conftest import REAL_ENGINE_URL, WorkerFactory, unique, wait_registered

pytestmark = pytest.mark.usefixtures("needs_observability")


def _span_for(worker: Any, trace_id: str, function_id: str) -> dict[str, Any]:
    """The SDK's ``execute`` span for ``function_id`` in ``trace_id``, once the engine has it."""

    def fetch() -> list[dict[str, Any]]:
        found = []
        stack = list(tree(worker, trace_id, 1))
        while stack:
            node = stack.pop()
            if node["name"] == f"execute {function_id}":
                found.append(node)
            stack.extend(node["children"])
        return found

    found = eventually(fetch, bool)
    assert found, f"no execute span for {function_id} in {trace_id}"
    return found[0]


def _event(span: dict[str, Any], name: str) -> dict[str, str]:
    (event,) = [e for e in span["events"] if e["name"] == name]
    return {k: v for k, v in event["attributes"]}


#: What the last handler run by ``_run`` received (the engine adds ``_caller_worker_id``).
_received: list[Any] = []


def _run(make_worker: WorkerFactory, handler: Any, payload: Any) -> tuple[Any, dict[str, Any]]:
    """Calls ``handler`` on one worker from another; returns the result (or the error) and
    the handler's span as the engine lists it."""
    worker, driver = make_worker(), make_worker()
    fid = unique("exec")
    seen: list[str | None] = []
    _received.clear()

    def wrapped(data: Any) -> Any:
        seen.append(telemetry.current_trace_id())
        _received.append(data)
        return handler(data)

    worker.register_function(fid, wrapped)
    wait_registered(driver, fid)
    try:
        result: Any = driver.trigger({"function_id": fid, "payload": payload})
    except InvocationError as exc:
        result = exc
    (trace_id,) = seen
    assert trace_id is not None
    return result, _span_for(driver, trace_id, fid)


def test_an_invocation_runs_in_an_internal_execute_span(otel_on: Telemetry) -> None:
    span = otel_on.start_invocation("orders::create", None, "tenant=acme")
    assert span.name == "execute orders::create"
    assert span.kind == 1  # OTLP INTERNAL (the SERVER `call` span was 2)
    call_span = otel_on.start_call("orders::create")
    assert (call_span.name, call_span.kind) == ("trigger orders::create", 3)
    span.end()
    call_span.end()


@pytest.fixture
def otel_on(engine_url: str) -> Iterator[Telemetry]:
    telemetry.init_otel(OtelConfig(engine_ws_url=engine_url, service_name="exec-test", metrics_enabled=False))
    live = telemetry.current()
    assert live is not None
    yield live
    telemetry.shutdown_otel()


def test_the_span_carries_the_baggage_as_attributes_and_no_function_id(make_worker: WorkerFactory) -> None:
    worker, driver = make_worker(), make_worker()
    fid = unique("bag")
    seen: list[str | None] = []
    worker.register_function(fid, lambda _d: seen.append(telemetry.current_trace_id()))
    wait_registered(driver, fid)
    token = otel_context.attach(telemetry.set_baggage_entry("tenant", "acme"))
    try:
        driver.trigger({"function_id": fid, "payload": {}})
    finally:
        otel_context.detach(token)
    (trace_id,) = seen
    assert trace_id is not None
    span = _span_for(driver, trace_id, fid)
    assert ["tenant", "acme"] in span["attributes"]
    assert not [a for a in span["attributes"] if a[0] == "function_id"]
    assert span["status"] == "ok"


def test_the_input_event_is_redacted(make_worker: WorkerFactory) -> None:
    payload = {"user": "ann", "password": "hunter2", "nested": [{"api_key": "k", "x-token": "t"}], "n": 1.5}
    _, span = _run(make_worker, lambda _d: None, payload)
    event = _event(span, "iii.invocation.input")
    seen = json.loads(event["iii.payload.json"])
    seen.pop("_caller_worker_id", None)  # the engine adds it to the data
    # A real engine may reorder keys (engine v0.11.0 sorts them): compared as a value.
    assert seen == {
        "user": "ann",
        "password": "[REDACTED]",
        "nested": [{"api_key": "[REDACTED]", "x-token": "[REDACTED]"}],
        "n": 1.5,
    }
    assert event["iii.payload.json"] == redact_and_truncate(_received[0])[0]
    assert event["iii.payload.truncated"] == "false"


def test_the_output_event_holds_the_redacted_result(make_worker: WorkerFactory) -> None:
    _, span = _run(make_worker, lambda _d: {"ok": True, "refresh_token": "r"}, {})
    event = _event(span, "iii.invocation.output")
    assert event["iii.payload.json"] == '{"ok": true, "refresh_token": "[REDACTED]"}'
    assert event["iii.payload.ok"] == "true"
    assert [e["name"] for e in span["events"]] == ["iii.invocation.input", "iii.invocation.output"]


def test_end_with_output_records_the_output_event(make_worker: WorkerFactory, otel_on: Telemetry) -> None:
    worker = make_worker()
    span = otel_on.start_invocation("orders::ok", None, None, {"client_secret": "s", "id": 7})
    span.end_with_output({"ok": True, "Authorization": "Bearer x"})
    span.end()  # a second end is ignored
    otel_on.flush()
    (node,) = tree(worker, f"{span.trace_id:032x}", 1)
    assert [e["name"] for e in node["events"]] == ["iii.invocation.input", "iii.invocation.output"]
    assert (
        _event(node, "iii.invocation.input")["iii.payload.json"] == '{"client_secret": "[REDACTED]", "id": 7}'
    )
    output = _event(node, "iii.invocation.output")
    assert output["iii.payload.json"] == '{"ok": true, "Authorization": "[REDACTED]"}'
    assert (output["iii.payload.ok"], output["iii.payload.truncated"]) == ("true", "false")
    assert node["status"] == "ok"


def test_a_failed_invocation_has_an_error_output_event_before_the_exception(
    make_worker: WorkerFactory,
) -> None:
    def fail(_data: Any) -> None:
        raise RuntimeError("out of stock")

    result, span = _run(make_worker, fail, {"sku": 1})
    assert isinstance(result, InvocationError)
    assert [e["name"] for e in span["events"]] == [
        "iii.invocation.input",
        "iii.invocation.output",
        "exception",
    ]
    output = _event(span, "iii.invocation.output")
    assert output["iii.payload.json"] == '{"error": "out of stock"}'
    assert output["iii.payload.ok"] == "false"
    assert span["status"] == "error"


@pytest.mark.parametrize("value", ["1", "TRUE", "true"])
def test_payload_events_can_be_switched_off(
    make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    def fail(_data: Any) -> None:
        raise ValueError("nope")

    monkeypatch.setenv("III_DISABLE_TRACE_PAYLOADS", "0")  # any other value leaves them on
    _, recorded = _run(make_worker, fail, {"a": 1})
    assert [e["name"] for e in recorded["events"]] == [
        "iii.invocation.input",
        "iii.invocation.output",
        "exception",
    ]
    monkeypatch.setenv("III_DISABLE_TRACE_PAYLOADS", value)  # read when each span starts
    _, span = _run(make_worker, lambda _d: {"ok": 1}, {"a": 1})
    assert not [e for e in span["events"] if e["name"].startswith("iii.invocation")]
    _, failed = _run(make_worker, fail, {"a": 1})
    assert [e["name"] for e in failed["events"]] == ["exception"]


def test_payloads_are_cut_to_the_configured_size(
    make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("III_TRACE_PAYLOAD_MAX_BYTES", "24")
    payload = {"note": "é" * 40}
    _, span = _run(make_worker, lambda _d: None, payload)
    event = _event(span, "iii.invocation.input")
    assert len(event["iii.payload.json"].encode()) == 24
    assert event["iii.payload.json"].endswith('..."[TRUNCATED]"')
    assert event["iii.payload.json"] == redact_and_truncate(_received[0], 24)[0]
    assert event["iii.payload.truncated"] == "true"


class _Color(enum.IntEnum):
    RED = 3


class _Thing:
    def __str__(self) -> str:
        return "a thing"


PAYLOADS: list[Any] = [
    None,
    0,
    -12,
    2**70,
    1.5,
    1e16,
    1e-7,
    1e15,
    0.0001,
    0.00001,
    -0.0,
    5e-324,
    1.7976931348623157e308,
    123456789.123,
    float("nan"),
    float("-inf"),
    True,
    "plain",
    'q"u\\o\nte\x01\u2028é',
    [1, (2, [3])],
    {"Password": "p", "apiKey": 1, "api-key": 2, "my_token": 3, "token": 4, "tokens": 5, "tokenizer": 6},
    {"deep": {"deeper": [{"bearer": "b", "fine": {"client_secret": None}}]}},
    {"credentials": {"a": 1}, "AUTH_TOKEN": [1], "x": _Thing()},
    _Thing(),
    _Color.RED,
    {},
    [],
    "x" * 300,
]


@pytest.mark.parametrize("max_bytes", [None, 1, 16, 17, 40, 100])
def test_the_rust_payload_text_matches_the_python_helper(max_bytes: int | None) -> None:
    for value in PAYLOADS:
        assert Telemetry.payload_json(value, max_bytes) == redact_and_truncate(value, max_bytes), value
    cycle: list[Any] = []
    cycle.append(cycle)
    assert Telemetry.payload_json(cycle) == ("null", False)


def test_otel_config_has_the_025_fields_after_the_011_ones() -> None:
    names = [f.name for f in dataclasses.fields(OtelConfig)]
    assert names[-2:] == ["spans_flush_interval_ms", "engine_ws_headers"]
    assert names.index("metrics_export_interval_ms") == len(names) - 3
    cfg = OtelConfig()
    assert cfg.spans_flush_interval_ms is None and cfg.engine_ws_headers is None


def _spans_sent(exporter: Telemetry) -> bool:
    stats = exporter.stats()
    return stats["spans_buffered"] == 0 and stats["frames_sent"] > 0


def test_spans_flush_interval_ms_sets_the_span_batch_delay(engine_url: str) -> None:
    slow = Telemetry(OtelConfig(spans_flush_interval_ms=60_000), metrics=False)
    fast = Telemetry(OtelConfig(spans_flush_interval_ms=20), metrics=False)
    try:
        for exporter in (slow, fast):
            exporter.connect(engine_url)
            exporter.start_invocation("f").end()
        assert eventually(lambda: _spans_sent(fast), bool, timeout=3.0)
        time.sleep(0.7)  # beyond the old fixed 500 ms
        assert slow.stats()["spans_buffered"] == 1 and slow.stats()["frames_sent"] == 0
        assert slow.flush(5000)
        assert _spans_sent(slow)
    finally:
        slow.shutdown(0)
        fast.shutdown(0)


def test_flush_otel_sends_what_the_exporter_holds(engine_url: str) -> None:
    telemetry.init_otel(
        OtelConfig(engine_ws_url=engine_url, spans_flush_interval_ms=60_000, metrics_enabled=False)
    )
    try:
        exporter = telemetry.current()
        assert exporter is not None
        exporter.start_invocation("flushed").end()
        assert exporter.stats()["spans_buffered"] == 1
        asyncio.run(flush_otel())
        assert _spans_sent(exporter)
    finally:
        telemetry.shutdown_otel()
    asyncio.run(flush_otel())  # off: nothing to do


@pytest.mark.skipif(bool(REAL_ENGINE_URL), reason="needs control over the engine")
@pytest.mark.parametrize(("generation", "path"), [("0.25", "/otel"), ("v0.11", "/")])
def test_a_separate_telemetry_connection_uses_otel_where_the_engine_has_it(
    generation: str, path: str
) -> None:
    with Engine(generation=generation) as engine:
        headers = {"x-telemetry": "yes"}
        telemetry.init_otel(
            OtelConfig(engine_ws_url=engine.url, engine_ws_headers=headers, metrics_enabled=False)
        )
        try:
            exporter = telemetry.current()
            assert exporter is not None
            span = exporter.start_invocation("linked")
            span.end()
            assert exporter.flush(5000)
            assert exporter.link_url == engine.url.rstrip("/") + (path if path != "/" else "")
            upgrades = [(r, h) for r, h in engine.upgrade_requests() if h.get("x-telemetry") == "yes"]
            assert upgrades and upgrades[-1][0] == path
            worker = register_worker(engine.url, InitOptions(worker_name="reader", otel={"enabled": False}))
            try:
                (node,) = tree(worker, f"{span.trace_id:032x}", 1)
                assert node["name"] == "execute linked"
            finally:
                worker.shutdown()
        finally:
            telemetry.shutdown_otel()


@pytest.mark.skipif(bool(REAL_ENGINE_URL), reason="needs control over the engine")
def test_engine_ws_headers_authorise_the_telemetry_connection() -> None:
    with Engine(generation="0.25", token="s3cret") as engine:
        for headers, delivered in ((None, False), ({"Authorization": "Bearer s3cret"}, True)):
            telemetry.init_otel(
                OtelConfig(engine_ws_url=engine.url, engine_ws_headers=headers, metrics_enabled=False)
            )
            try:
                exporter = telemetry.current()
                assert exporter is not None
                exporter.start_invocation("auth").end()
                assert exporter.flush(1500) is delivered
            finally:
                telemetry.shutdown_otel()


@pytest.mark.skipif(bool(REAL_ENGINE_URL), reason="needs control over the engine")
def test_a_worker_with_its_own_telemetry_engine_sends_there_with_its_headers() -> None:
    with Engine(generation="0.25") as work, Engine(generation="0.25") as other:
        cfg = OtelConfig(engine_ws_url=other.url, engine_ws_headers={"x-otel": "1"}, metrics_enabled=False)
        worker = register_worker(work.url, InitOptions(worker_name="w", otel=cfg))
        try:
            fid = unique("elsewhere")
            seen: list[str | None] = []
            worker.register_function(fid, lambda _d: seen.append(telemetry.current_trace_id()))
            worker.trigger({"function_id": fid, "payload": {}})
            (trace_id,) = seen
            assert trace_id is not None
            reader = register_worker(other.url, InitOptions(worker_name="r", otel={"enabled": False}))
            try:
                assert _span_for(reader, trace_id, fid)["name"] == f"execute {fid}"
            finally:
                reader.shutdown()
            assert [r for r, h in other.upgrade_requests() if h.get("x-otel") == "1"] == ["/otel"]
        finally:
            worker.shutdown()
