"""OpenTelemetry: the ``iii.telemetry`` helpers, the Rust exporter and the test engine's
observability listings fed by the frames it sends."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pydantic
import pytest
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

from iii import III, Logger, OtelConfig, telemetry
from iii import _otel_bridge as bridge
from iii._iii import Telemetry

from conftest import WorkerFactory, unique

T = TypeVar("T")

pytestmark = pytest.mark.usefixtures("needs_observability")


def eventually(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0) -> T:
    """Fetches until ``done`` holds: the test engine stores frames from another connection."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@pytest.fixture
def otel(engine_url: str) -> Iterator[Telemetry]:
    telemetry.init_otel(OtelConfig(engine_ws_url=engine_url, service_name="otel-test", metrics_enabled=False))
    live = telemetry._telemetry
    assert live is not None
    yield live
    telemetry.shutdown_otel()


def call(worker: III, function_id: str, payload: Any = None) -> Any:
    return worker.trigger({"function_id": function_id, "payload": payload if payload is not None else {}})


def tree(worker: III, trace_id: str, count: int) -> list[dict[str, Any]]:
    def fetch() -> list[dict[str, Any]]:
        roots = call(worker, "engine::traces::tree", {"trace_id": trace_id})["roots"]
        return list(roots)

    def size(nodes: list[dict[str, Any]]) -> int:
        return sum(1 + size(n["children"]) for n in nodes)

    return eventually(fetch, lambda roots: size(roots) >= count)


def test_an_invocation_span_is_the_parent_of_the_users_own_spans(
    make_worker: WorkerFactory, otel: Telemetry
) -> None:
    worker = make_worker()
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    remote = otel.start_invocation("orders::create", caller)
    assert remote.traceparent.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert remote.span_id != 0xB7AD6B7169203331
    # The engine lists a trace from its root, so this one starts the trace.
    span = otel.start_invocation("orders::create", None, "user=alice,tenant=a%20b")
    trace_id = f"{span.trace_id:032x}"
    token = otel_context.attach(bridge.invocation_context(span))
    try:
        assert telemetry.current_trace_id() == trace_id
        assert telemetry.current_span_id() == f"{span.span_id:016x}"
        assert telemetry.get_baggage_entry("tenant") == "a b"
        assert telemetry.get_all_baggage() == {"user": "alice", "tenant": "a b"}
        assert bridge.outgoing_headers() == (span.traceparent, "user=alice,tenant=a%20b")
        with trace.get_tracer("my.lib").start_as_current_span("db query") as mine:
            mine.set_attribute("rows", 3)
            assert (
                telemetry.inject_traceparent() == f"00-{trace_id}-{mine.get_span_context().span_id:016x}-01"
            )
    finally:
        otel_context.detach(token)
    span.end()
    assert telemetry.current_trace_id() is None
    otel.flush()
    roots = tree(worker, trace_id, 2)
    assert len(roots) == 1
    root = roots[0]
    assert root["name"] == "execute orders::create"
    assert root["span_id"] == f"{span.span_id:016x}"
    assert root["service_name"] == "otel-test"
    child = root["children"][0]
    assert child["name"] == "db query"
    assert child["instrumentation_scope_name"] == "my.lib"
    assert ["rows", "3"] in child["attributes"]


def test_a_failed_invocation_has_status_error_and_one_exception_event(
    make_worker: WorkerFactory, otel: Telemetry
) -> None:
    worker = make_worker()
    span = otel.start_invocation("orders::fail")
    span.end_error("ValueError", "bad order", "Traceback ...")
    span.end()  # a second end is ignored
    otel.flush()
    roots = tree(worker, f"{span.trace_id:032x}", 1)
    assert len(roots) == 1
    node = roots[0]
    assert node["status"] == "error"
    assert node["status_description"] == "bad order"
    assert [e["name"] for e in node["events"]] == ["iii.invocation.output", "exception"]
    assert ["iii.payload.json", '{"error": "bad order"}'] in node["events"][0]["attributes"]
    assert ["exception.type", "ValueError"] in node["events"][1]["attributes"]


def test_malformed_traceparent_starts_a_new_trace(otel: Telemetry) -> None:
    span = otel.start_invocation("f", "00-zz-bad-01", "")
    assert span.trace_id != 0 and span.baggage is None
    assert span.traceparent.endswith("-01")
    with pytest.raises(ValueError):
        otel.record_span((1, 2))


#: First reads of an invocation's context, each true when it saw the span and the baggage.
FIRST_READS: dict[str, Callable[[otel_context.Context], bool]] = {
    "get_value": lambda c: trace.get_current_span(c).get_span_context().is_valid,
    "baggage": lambda c: otel_baggage.get_all(c) == {"user": "alice"},
    "len": lambda c: len(c) == 2,
    "bool": bool,
    "dict": lambda c: len(dict(c)) == 2,
    "unpack": lambda c: len({**c}) == 2,
    "iter": lambda c: len(list(c)) == 2,
    "reversed": lambda c: len(list(reversed(c))) == 2,
    "keys": lambda c: len(c.keys()) == 2,
    "values": lambda c: len(list(c.values())) == 2,
    "items": lambda c: len(c.items()) == 2,
    "copy": lambda c: len(c.copy()) == 2,
    "or": lambda c: len(c | {}) == 2,
    "ror": lambda c: len({} | c) == 2,
    "eq": lambda c: not (otel_context.Context() == c),
    "ne": lambda c: c != otel_context.Context(),
    "repr": lambda c: "NonRecordingSpan" in repr(c),
    "set_value": lambda c: len(otel_context.set_value("k", 1, c)) == 3,
}


@pytest.mark.parametrize("read", FIRST_READS)
def test_an_invocations_context_is_whole_however_it_is_first_read(otel: Telemetry, read: str) -> None:
    span = otel.start_invocation("orders::create", None, "user=alice")
    assert FIRST_READS[read](bridge.invocation_context(span))
    keys = list(bridge.invocation_context(span))
    assert all(key in bridge.invocation_context(span) for key in keys)
    assert all(bridge.invocation_context(span)[key] is not None for key in keys)
    # Built inside the context, not by replacing OpenTelemetry's runtime context.
    assert type(otel_context._RUNTIME_CONTEXT) is ContextVarsRuntimeContext


class Order(pydantic.BaseModel):
    id: str
    total: float


def logs_of(worker: III, body_prefix: str, count: int) -> list[dict[str, Any]]:
    def fetch() -> list[dict[str, Any]]:
        logs = call(worker, "engine::logs::list", {})["logs"]
        return [log for log in logs if str(log["body"]).startswith(body_prefix)]

    return eventually(fetch, lambda logs: len(logs) >= count)


def test_logger_records_keep_structured_data_and_the_active_span(
    make_worker: WorkerFactory, otel: Telemetry
) -> None:
    worker = make_worker()
    tag = unique("log")
    logger = Logger(service_name="orders")
    data = {
        "n": 1,
        "f": 2.5,
        "ok": True,
        "none": None,
        "list": [1, "a", [False]],
        "nested": {"k": {"deep": 2}},
    }
    logger.info(f"{tag} outside", data)
    span = otel.start_invocation("orders::log")
    token = otel_context.attach(bridge.invocation_context(span))
    try:
        logger.warn(f"{tag} inside", Order(id="o1", total=9.5))
    finally:
        otel_context.detach(token)
    logger.error(f"{tag} explicit ids")
    Logger(trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331").debug(f"{tag} given")
    otel.flush()
    logs = {log["body"].split(" ", 1)[1]: log for log in logs_of(worker, tag, 4)}
    outside = logs["outside"]
    assert outside["severity_number"] == 9 and outside["severity_text"] == "INFO"
    assert outside["attributes"]["log.data"] == data
    assert outside["attributes"]["service.name"] == "orders"
    assert outside["trace_id"] is None and outside["span_id"] is None
    inside = logs["inside"]
    assert inside["severity_number"] == 13
    assert inside["attributes"]["log.data"] == {"id": "o1", "total": 9.5}
    assert inside["trace_id"] == f"{span.trace_id:032x}"
    assert inside["span_id"] == f"{span.span_id:016x}"
    assert logs["explicit ids"]["severity_number"] == 17
    assert logs["given"]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert logs["given"]["span_id"] == "b7ad6b7169203331"


def test_a_log_trigger_fires_for_matching_records(make_worker: WorkerFactory, otel: Telemetry) -> None:
    worker = make_worker()
    seen: list[dict[str, Any]] = []
    fid = unique("on_log")
    worker.register_function(fid, lambda data: seen.append(data))
    worker.register_trigger({"type": "log", "function_id": fid, "config": {"level": "error"}})
    tag = unique("trig")
    eventually(worker.list_triggers, lambda r: any(t.function_id == fid for t in r))
    Logger().info(f"{tag} not me")
    Logger().error(f"{tag} me", {"code": 7})
    otel.flush()
    eventually(lambda: list(seen), lambda s: len(s) >= 1)
    assert [s["body"] for s in seen] == [f"{tag} me"]
    assert seen[0]["attributes"]["log.data"] == {"code": 7}


def test_shutdown_flushes_what_is_buffered(make_worker: WorkerFactory, engine_url: str) -> None:
    worker = make_worker()
    tag = unique("flush")
    telemetry.init_otel(
        OtelConfig(engine_ws_url=engine_url, logs_flush_interval_ms=3_600_000, metrics_enabled=False)
    )
    assert telemetry.is_initialized()
    for i in range(20):
        Logger().info(f"{tag} {i}")
    telemetry.shutdown_otel()
    assert not telemetry.is_initialized()
    assert len(logs_of(worker, tag, 20)) == 20
    # On again after shutdown: exported again.
    telemetry.init_otel(OtelConfig(engine_ws_url=engine_url, metrics_enabled=False))
    try:
        Logger().info(f"{tag} again")
        assert telemetry._telemetry is not None and telemetry._telemetry.flush(10_000)
        assert len(logs_of(worker, f"{tag} again", 1)) == 1
    finally:
        telemetry.shutdown_otel()


def test_worker_gauges_fill_latest_metrics(make_worker: WorkerFactory, engine_url: str) -> None:
    worker = make_worker()
    if worker.engine_generation == "head":
        pytest.skip("engines after v0.11.0 report metrics through engine::workers::info (not emulated)")
    own = Telemetry(OtelConfig(metrics_export_interval_ms=50))
    try:
        own.connect(engine_url)
        worker_id = worker.worker_id
        own.set_worker_id(worker_id)
        own.set_event_loop_lag(1.5)

        def fetch() -> Any:
            return call(worker, "engine::workers::list", {"worker_id": worker_id})["workers"][0][
                "latest_metrics"
            ]

        metrics = eventually(fetch, lambda m: m is not None)
        assert isinstance(metrics["memory_rss"], int) and metrics["memory_rss"] > 0
        assert isinstance(metrics["cpu_user_micros"], int)
        assert metrics["event_loop_lag_ms"] == 1.5
        assert "uptime_seconds" in metrics and "timestamp_ms" in metrics
    finally:
        own.shutdown()


def test_the_applications_instruments_reach_the_engine(make_worker: WorkerFactory, engine_url: str) -> None:
    worker = make_worker()
    name = unique("orders").replace("::", "_")
    telemetry.init_otel(
        OtelConfig(engine_ws_url=engine_url, service_name="shop", metrics_export_interval_ms=3_600_000)
    )
    try:
        meter = telemetry.get_meter()
        assert meter is not None
        orders = meter.create_counter(f"{name}.taken", unit="1", description="orders taken")
        latency = meter.create_histogram(f"{name}.latency", unit="ms")
        orders.add(3, {"route": "/buy"})
        orders.add(2, {"route": "/buy"})
        latency.record(4.0)
        latency.record(40.0)
    finally:
        telemetry.shutdown_otel()  # collects and sends before switching off (interval: 1 h)

    def listed(metric: str) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            return list(call(worker, "engine::metrics::list", {"metric_name": metric})["sdk_metrics"])

        return eventually(fetch, lambda found: len(found) > 0)

    (counter,) = listed(f"{name}.taken")
    assert counter["metric_type"] == "counter"
    assert counter["data_points"][0]["value"] == 5
    assert dict(counter["data_points"][0]["attributes"]) == {
        "route": "/buy"
    }  # the engine: [key, value] pairs
    (histogram,) = listed(f"{name}.latency")
    assert histogram["metric_type"] == "histogram"
    assert histogram["data_points"][0]["count"] == 2
    assert histogram["data_points"][0]["sum"] == 44.0
    assert telemetry.get_meter() is None  # off again


def test_with_span_and_context_helpers(otel: Telemetry) -> None:
    import asyncio

    async def body(span: Any) -> str:
        return telemetry.current_trace_id() or ""

    trace_id = asyncio.run(
        telemetry.with_span(
            "work", body, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        )
    )
    assert trace_id == "0af7651916cd43dd8448eb211c80319c"

    async def boom(span: Any) -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        asyncio.run(telemetry.with_span("fails", boom))
    ctx = telemetry.extract_context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "a=1")
    token = otel_context.attach(ctx)
    try:
        assert telemetry.current_trace_id() == "0af7651916cd43dd8448eb211c80319c"
        assert telemetry.inject_baggage() == "a=1"
        otel_context.attach(telemetry.set_baggage_entry("b", "2"))
        assert telemetry.get_all_baggage() == {"a": "1", "b": "2"}
        assert telemetry.get_baggage_entry("a") == "1"
        from opentelemetry import baggage

        assert baggage.get_all(telemetry.remove_baggage_entry("a")) == {"b": "2"}
    finally:
        otel_context.detach(token)
    assert telemetry.get_tracer() is not None
    assert telemetry.get_logger() is not None
    assert telemetry.extract_baggage("k=v") is not None


def test_otel_config_is_defined_once_and_validated() -> None:
    from iii import _options as options
    from iii import telemetry_types

    assert telemetry_types.OtelConfig is options.OtelConfig
    assert telemetry.coerce_config({"enabled": False}).enabled is False
    with pytest.raises(TypeError, match="unknown OtelConfig fields: nope"):
        telemetry.coerce_config({"nope": 1})
    with pytest.raises(TypeError, match="logs_batch_size"):
        Telemetry(OtelConfig(logs_batch_size="many"))  # type: ignore[arg-type]
    assert telemetry.start({"enabled": False}) is None


def run_python(code: str, **env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_iii_does_not_import_opentelemetry_and_off_stays_off() -> None:
    out = run_python(
        """
        import sys, iii
        from iii import telemetry
        telemetry.init_otel()
        print("opentelemetry" in sys.modules, telemetry.is_initialized())
        """,
        OTEL_ENABLED="off",
    )
    assert out == "False False"


def test_the_applications_own_tracer_provider_is_kept_and_fed(engine_url: str) -> None:
    out = run_python(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        mine = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(mine))
        trace.set_tracer_provider(provider)
        from iii import telemetry
        telemetry.init_otel(telemetry.OtelConfig(engine_ws_url={engine_url!r}, metrics_enabled=False))
        assert trace.get_tracer_provider() is provider
        with trace.get_tracer("app").start_as_current_span("app span"):
            pass
        stats = telemetry._telemetry.stats()
        print(len(mine.get_finished_spans()), stats["spans_buffered"])
        telemetry.shutdown_otel()
        """
    )
    assert out == "1 1"


def test_logger_records_reach_the_applications_own_log_provider() -> None:
    """As iii-sdk 0.25.0's Logger: with OpenTelemetry on, records also go to a LoggerProvider
    the application installed, even with the engine's log export off; without one (and logs
    off) they fall back to Python logging."""
    out = run_python(
        """
        import logging
        from opentelemetry import _logs
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
        from iii import Logger, OtelConfig, telemetry

        seen = []
        handler = logging.Handler()
        handler.emit = lambda r: seen.append(r.getMessage())
        logging.getLogger("iii.logger").addHandler(handler)
        logging.getLogger("iii.logger").setLevel(logging.INFO)
        telemetry.start(OtelConfig(enabled=True, logs_enabled=False, metrics_enabled=False))
        Logger(service_name="fn1").info("before the provider")
        exporter = InMemoryLogRecordExporter()
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        _logs.set_logger_provider(provider)
        Logger(service_name="fn1").warn("hello", {"k": 1})
        records = exporter.get_finished_logs()
        r = records[0].log_record
        print(len(records), r.body, r.severity_text, r.attributes["service.name"], seen)
        telemetry.stop(1000)
        """
    )
    assert out == "1 hello WARN fn1 ['[fn1] before the provider']"


def test_the_official_exporter_classes_send_through_a_connection_of_their_own(
    make_worker: WorkerFactory, engine_url: str
) -> None:
    """``iii.telemetry_exporters`` as the official SDK's users wire it: OpenTelemetry SDK
    providers of their own, exporting through ``SharedEngineConnection``; and a frame the caller
    built (``send_threadsafe``)."""
    import asyncio
    import json

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from iii.telemetry_exporters import EngineMetricsExporter, EngineSpanExporter, SharedEngineConnection

    worker = make_worker()
    name = unique("exporters").replace("::", ".")  # an instrument name may not hold ':'
    connection = SharedEngineConnection(f"{engine_url}/otel")
    try:
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(EngineSpanExporter(connection)))
        with tracer_provider.get_tracer("mine").start_as_current_span(f"{name}.span") as span:
            trace_id = f"{span.get_span_context().trace_id:032x}"
        reader = PeriodicExportingMetricReader(
            EngineMetricsExporter(connection), export_interval_millis=3_600_000
        )
        meter_provider = MeterProvider(metric_readers=[reader])
        meter_provider.get_meter("mine").create_counter(f"{name}.count").add(3)
        assert meter_provider.force_flush()
        record = {
            "timeUnixNano": str(time.time_ns()),
            "severityNumber": 9,
            "body": {"stringValue": f"{name} raw"},
        }
        body = {
            "resourceLogs": [
                {
                    "resource": {"attributes": []},
                    "scopeLogs": [{"scope": {"name": "mine"}, "logRecords": [record]}],
                }
            ]
        }
        connection.send_threadsafe(b"LOGS", json.dumps(body).encode())
        assert connection.telemetry.flush(5000)
    finally:
        asyncio.run(connection.shutdown())
    assert [root["name"] for root in tree(worker, trace_id, 1)] == [f"{name}.span"]
    metrics = eventually(
        lambda: list(call(worker, "engine::metrics::list", {"metric_name": f"{name}.count"})["sdk_metrics"]),
        lambda found: len(found) > 0,
    )
    assert metrics[0]["data_points"][0]["value"] == 3
    assert [log["body"] for log in logs_of(worker, f"{name} raw", 1)] == [f"{name} raw"]
