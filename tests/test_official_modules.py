"""What the official package's extra modules and helpers do here: the shims hand out the same
objects, and the small pieces that had no counterpart (state models, worker metrics, message
models, helpers) behave as documented."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import sys
import types as pytypes
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

import iii
from iii import logger, types
from iii._iii import Telemetry
from iii.channels import build_channel_url
from iii.iii_types import IIIMessage, InvokeFunctionMessage, OtelLogEvent, UnregisterTriggerMessage
from iii.state import IState, StateEventData, StateEventType, StateSetResult, StateUpdateInput
from iii.utils import safe_stringify
from iii.worker_metrics import WorkerMetrics, WorkerMetricsCollector

# iii.telemetry_types is left out: the telemetry work owns it and may define OtelConfig there.
SHIMS = ["iii.iii", "iii.iii_constants", "iii.iii_types", "iii.utils", "iii.format_utils"]


def test_shims_hand_out_the_package_objects():
    import iii.iii
    import iii.iii_constants
    import iii.iii_types
    import iii.utils

    assert iii.iii.III is iii.III and iii.iii.register_worker is iii.register_worker
    assert iii.iii.TriggerAction is iii.TriggerAction
    assert iii.iii_constants.InitOptions is iii.InitOptions
    assert iii.iii_types.HttpAuthBearer is types.HttpAuthBearer
    assert iii.utils.http is iii.http
    assert iii.StreamContext is iii.stream.StreamContext


@pytest.mark.parametrize("name", SHIMS)
def test_shims_define_nothing_of_their_own(name):
    module = importlib.import_module(name)
    own = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_") and getattr(value, "__module__", None) == name
    }
    assert own <= {"TResult"}, f"{name} defines {own}; it should only re-export"


def test_iii_types_trigger_action_is_the_action_union():
    import iii.iii_types

    assert set(iii.iii_types.TriggerAction.__args__) == {iii.TriggerActionEnqueue, iii.TriggerActionVoid}


def test_types_resolves_the_names_that_live_in_modules_importing_it():
    assert types.Channel is iii.Channel
    assert types.HttpResponse is iii.HttpResponse and types.is_channel_ref is iii.channels.is_channel_ref
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        types.Nope  # noqa: B018


def test_invocation_settles_once():
    async def run():
        first = types.Invocation(asyncio.get_running_loop().create_future())
        first.resolve(1)
        first.reject(RuntimeError("late"))
        second = types.Invocation(asyncio.get_running_loop().create_future())
        second.reject(ValueError("bad"))
        second.resolve(2)
        with pytest.raises(ValueError, match="bad"):
            await second._future
        return await first._future

    assert asyncio.run(run()) == 1


def test_message_models_use_the_wire_type_names():
    msg = InvokeFunctionMessage(function_id="f", data={"a": 1}, invocation_id="i")
    assert msg.model_dump(by_alias=True, mode="json", exclude_none=True) == {
        "function_id": "f",
        "data": {"a": 1},
        "invocation_id": "i",
        "type": "invokefunction",
    }
    parsed = UnregisterTriggerMessage.model_validate({"type": "unregistertrigger", "id": "t"})
    assert parsed.message_type.value == "unregistertrigger"
    assert UnregisterTriggerMessage in IIIMessage.__args__
    log = OtelLogEvent(
        timestamp_unix_nano=1,
        observed_timestamp_unix_nano=2,
        severity_number=9,
        severity_text="INFO",
        body="x",
    )
    assert (log.attributes, log.service_name) == ({}, "")


def test_state_models_and_interface():
    update = StateUpdateInput(scope="s", key="k", ops=[{"type": "increment", "path": "n", "by": 2}])
    assert update.ops[0].type == "increment"
    assert StateSetResult[int](new_value=3).old_value is None
    event = StateEventData.model_validate(
        {"event_type": "state:updated", "scope": "s", "key": "k", "old_value": 1, "new_value": 2}
    )
    assert event.event_type is StateEventType.UPDATED and event.type == "state"
    with pytest.raises(TypeError):
        IState()  # type: ignore[abstract]


T = TypeVar("T")
MEMORY = ("memory_rss", "memory_vms", "memory_heap_used", "memory_heap_total", "memory_external")
COUNTERS = ("cpu_user_micros", "cpu_system_micros", "uptime_seconds")


def between_rust_samples(read: Callable[[], T]) -> tuple[dict[str, Any], T, dict[str, Any]]:
    """``read()`` between two samples of the Rust sampler, taken again (no sleeping) until the
    process's memory figures did not move in between: ``(before, value, after)``."""
    for _ in range(200):
        before = Telemetry.sample_process()
        value = read()
        after = Telemetry.sample_process()
        if all(before[f] == after[f] for f in MEMORY):
            return before, value, after
    raise AssertionError("the process's memory kept moving")


def assert_rust_figures(figures: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> None:
    for field in MEMORY:
        assert figures[field] == before[field], field
    for field in COUNTERS:
        assert before[field] <= figures[field] <= after[field], field


def test_worker_metrics_reading():
    collector = WorkerMetricsCollector()
    sum(range(200_000))  # some CPU time for the reading to cover
    reading = collector.collect()
    assert isinstance(reading, WorkerMetrics) and reading.runtime == "python"
    assert reading.memory_rss > 0 and 0.0 <= reading.cpu_percent <= 100.0
    assert reading.uptime_seconds >= 0 and reading.cpu_user_micros > 0
    if sys.platform == "linux":
        assert reading.memory_vms >= reading.memory_rss
    assert collector.collect_cached() is collector.collect_cached()


def test_worker_metrics_are_the_rust_samplers_figures():
    collector = WorkerMetricsCollector()
    before, reading, after = between_rust_samples(collector.collect)
    figures = dataclasses.asdict(reading)
    # The official fields hold 0 where the sampler has no figure (macOS: vms and the heap).
    assert_rust_figures(figures, {k: 0 if v is None else v for k, v in before.items()}, after)
    ms = before["time_unix_nano"] // 1_000_000, after["time_unix_nano"] // 1_000_000
    assert ms[0] <= reading.timestamp_ms <= ms[1]
    # The process's uptime, not the collector's: the same clock as the exporter's gauge.
    assert reading.uptime_seconds >= before["uptime_seconds"] > 0


def test_cpu_percent_is_the_rust_samplers_over_the_collectors_interval():
    def cpu(sample: dict[str, Any]) -> int:
        return int(sample["cpu_user_micros"] + sample["cpu_system_micros"])

    p0 = Telemetry.sample_process()
    collector = WorkerMetricsCollector()
    p1 = Telemetry.sample_process()
    sum(range(300_000))  # CPU time for the interval
    q0 = Telemetry.sample_process()
    reading = collector.collect()
    q1 = Telemetry.sample_process()
    # The collector's interval starts between p0 and p1 and ends between q0 and q1.
    low = (cpu(q0) - cpu(p1)) / (q1["uptime_seconds"] - p0["uptime_seconds"]) / 1e4
    high = (cpu(q1) - cpu(p0)) / (q0["uptime_seconds"] - p1["uptime_seconds"]) / 1e4
    assert min(low, 100.0) - 1e-6 <= reading.cpu_percent <= min(high, 100.0) + 1e-6


def test_worker_gauges_report_through_a_meter(monkeypatch):
    from iii import otel_worker_gauges

    fake = pytypes.ModuleType("opentelemetry.metrics")
    fake.Observation = lambda value, attributes: (value, attributes)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opentelemetry.metrics", fake)

    class Meter:
        def __init__(self):
            self.gauges = {}
            self.specs = []

        def create_observable_gauge(self, name, callbacks, unit="", description=""):
            self.gauges[name] = callbacks[0]
            self.specs.append((name, unit, description))

    meter = Meter()
    otel_worker_gauges.register_worker_gauges(meter, "w-1", "worker-one")
    try:
        otel_worker_gauges.register_worker_gauges(Meter(), "w-2")  # once per process
        assert "iii.worker.memory.rss" in meter.gauges and len(meter.gauges) == 9
        # One name, one unit and description: those the exporter sends with its gauges.
        assert meter.specs == [(name, unit, text) for name, _, unit, text in Telemetry.worker_gauges()]
        [(rss, attributes)] = meter.gauges["iii.worker.memory.rss"](None)
        assert attributes == {"worker.id": "w-1", "worker.name": "worker-one"} and rss > 0

        collector = otel_worker_gauges._collector
        assert collector is not None
        collector.CACHE_TTL_SECONDS = 0.0  # every read samples (one cycle's gauges share one)
        fields = {name: field for name, field, _, _ in Telemetry.worker_gauges()}

        def observe_all() -> dict[str, Any]:
            return {fields[name]: value for name, gauge in meter.gauges.items() for value, _ in gauge(None)}

        before, figures, after = between_rust_samples(observe_all)
        # A figure the OS does not give is left out, as the exporter leaves it out.
        given = {field for field in fields.values() if before[field] is not None}
        assert set(figures) == given
        assert_rust_figures({**dict.fromkeys(MEMORY), **figures}, before, after)
    finally:
        otel_worker_gauges.stop_worker_gauges()
    assert list(meter.gauges["iii.worker.cpu.percent"](None)) == []


def test_channel_url_encodes_the_id_and_key():
    url = build_channel_url("ws://host:1/", "a/b?c", "k&dir=write", "read")
    assert url == "ws://host:1/ws/channels/a%2Fb%3Fc?key=k%26dir%3Dwrite&dir=read"


def test_channel_url_puts_the_engine_urls_query_first():
    # iii-sdk 0.25.0's order: the base's own parameters, then the channel's.
    url = build_channel_url("wss://host/mount/?auth=t1&region=eu", "ch", "k", "write")
    assert url == "wss://host/mount/ws/channels/ch?auth=t1&region=eu&key=k&dir=write"


def test_safe_stringify_never_raises():
    loop: list[object] = []
    loop.append(loop)
    assert json.loads(safe_stringify({"a": 1})) == {"a": 1}
    assert safe_stringify({"when": object}) == json.dumps({"when": str(object)})
    assert safe_stringify(loop) == "[unserializable]"


def test_logger_is_initialized_follows_the_exporter():
    previous = logger.set_log_exporter(None)
    try:
        assert logger.is_initialized() is False
        logger.set_log_exporter(lambda *record: None)
        assert logger.is_initialized() is True
    finally:
        logger.set_log_exporter(previous)


def test_telemetry_placeholders_fail_clearly():
    from iii import telemetry, telemetry_exporters

    if "PLACEHOLDER" not in (telemetry.__doc__ or ""):
        pytest.skip("the real telemetry modules are in place")
    assert telemetry.is_initialized() is False
    with pytest.raises(NotImplementedError, match="iii.telemetry.init_otel"):
        telemetry.init_otel()
    with pytest.raises(NotImplementedError, match="EngineSpanExporter"):
        telemetry_exporters.EngineSpanExporter(None)  # type: ignore[arg-type]


def test_enqueue_receipt_reads_like_the_official_dict():
    receipt = iii.EnqueueResult.model_validate({"messageReceiptId": "r-1", "queue": "q"})
    assert receipt.messageReceiptId == receipt["messageReceiptId"] == "r-1"
    assert receipt.get("queue") == "q" and receipt.get("nope", 0) == 0
    assert "messageReceiptId" in receipt and "nope" not in receipt
    with pytest.raises(KeyError):
        receipt["nope"]
