"""Options, pydantic types, trigger helpers and stream models (no compiled extension needed)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from iii._options import FunctionRef, InitOptions, OtelConfig, ReconnectionConfig, TelemetryOptions
from iii._rbac import AuthResult
from iii.stream import (
    IStream,
    StreamChangeEvent,
    StreamSetResult,
    StreamUpdateInput,
    UpdateIncrement,
    UpdateMerge,
    UpdateSet,
)
from iii.triggers import Trigger, TriggerConfig, TriggerHandler, TriggerTypeRef
from iii.types import (
    ApiResponse,
    EnqueueResult,
    FunctionInfo,
    HttpAuthApiKey,
    HttpInvocationConfig,
    MessageType,
    RegisterFunctionMessage,
    RegisterTriggerMessage,
    TriggerAction,
    TriggerActionEnqueue,
    TriggerActionVoid,
    TriggerInfo,
    TriggerRequest,
    TriggerTypeInfo,
    WorkerInfo,
)

# --------------------------------------------------------------------------- options


def test_option_defaults() -> None:
    opts = InitOptions()
    assert opts.worker_name is None
    assert opts.enable_metrics_reporting is True
    assert opts.invocation_timeout_ms == 30000
    assert opts.reconnection_config is None and opts.otel is None
    assert opts.headers is None and opts.telemetry is None
    assert opts.max_message_size == 64 * 1024 * 1024
    assert ReconnectionConfig() == ReconnectionConfig(1000, 30000, 2.0, 0.3, -1)
    assert TelemetryOptions() == TelemetryOptions(None, None, None, None)


def test_otel_config_defaults() -> None:
    otel = OtelConfig()
    assert dataclasses.asdict(otel) == {
        "enabled": None,
        "service_name": None,
        "service_version": None,
        "service_namespace": None,
        "service_instance_id": None,
        "engine_ws_url": None,
        "fetch_instrumentation_enabled": True,
        "logs_enabled": None,
        "logs_flush_interval_ms": None,
        "logs_batch_size": None,
        "metrics_enabled": True,
        "metrics_export_interval_ms": 60000,
        "spans_flush_interval_ms": None,
        "engine_ws_headers": None,
    }


def test_function_ref_holds_unregister() -> None:
    calls: list[str] = []
    ref = FunctionRef(id="f", unregister=lambda: calls.append("x"))
    ref.unregister()
    assert ref.id == "f" and calls == ["x"]


# --------------------------------------------------------------------------- registration / calls


def test_trigger_action_constructors() -> None:
    assert TriggerAction.Enqueue(queue="jobs") == TriggerActionEnqueue(queue="jobs")
    assert TriggerAction.Enqueue(queue="jobs").model_dump() == {"type": "enqueue", "queue": "jobs"}
    assert TriggerAction.Void().model_dump() == {"type": "void"}
    with pytest.raises(TypeError):
        TriggerAction.Enqueue("jobs")  # type: ignore[misc]  # keyword-only


def test_trigger_request_parses_actions_from_dicts() -> None:
    req = TriggerRequest.model_validate({"function_id": "f", "action": {"type": "void"}})
    assert isinstance(req.action, TriggerActionVoid)
    req = TriggerRequest.model_validate({"function_id": "f", "action": {"type": "enqueue", "queue": "q"}})
    assert isinstance(req.action, TriggerActionEnqueue) and req.action.queue == "q"
    assert TriggerRequest(function_id="f").payload is None


def test_http_invocation_config() -> None:
    cfg = HttpInvocationConfig.model_validate(
        {"url": "https://x", "auth": {"type": "api_key", "header": "X-Key", "value_key": "ENV"}}
    )
    assert cfg.method == "POST" and isinstance(cfg.auth, HttpAuthApiKey)
    with pytest.raises(ValidationError):
        HttpInvocationConfig(url="https://x", method="get")  # type: ignore[arg-type]


def test_message_models_dump_type_under_its_wire_name() -> None:
    msg = RegisterFunctionMessage(id="a::b")
    assert msg.model_dump(mode="json", by_alias=True)["type"] == "registerfunction"
    trig = RegisterTriggerMessage(id="t", trigger_type="http", function_id="f", config=None)
    assert trig.model_dump(mode="json", by_alias=True)["config"] is None
    assert MessageType("registrationrejected") is MessageType.REGISTRATION_REJECTED
    assert MessageType.INVOKE_FUNCTION == "invokefunction"


def test_enqueue_result_and_api_response() -> None:
    assert EnqueueResult.model_validate({"messageReceiptId": "r"}).messageReceiptId == "r"
    from iii._client import _receipt

    assert isinstance(_receipt({"messageReceiptId": "r"}), EnqueueResult)
    assert _receipt(0) == 0 and _receipt({"id": 1}) == {"id": 1}  # as the engine answered
    resp = ApiResponse(statusCode=201, body={"ok": True})
    assert resp.status_code == 201
    assert ApiResponse(status_code=200).model_dump(by_alias=True) == {
        "statusCode": 200,
        "body": None,
        "headers": {},
    }


# --------------------------------------------------------------------------- listings

V011_WORKER = {
    "id": "e4d8b0af",
    "name": "probe-worker",
    "runtime": "python",
    "version": "0.0.1",
    "os": "linux",
    "ip_address": "127.0.0.1",
    "status": "connected",
    "connected_at_ms": 1795596033933,
    "function_count": 1,
    "functions": ["probe::f1"],
    "active_invocations": 1,
    "latest_metrics": None,
    "pid": 42,
}

# A newer engine's worker summary: no functions/pid/latest_metrics, new status and fields.
HEAD_WORKER = {
    "name": "iii-http",
    "description": None,
    "version": "0.23.0",
    "id": "w2",
    "namespace": "default",
    "runtime": "engine",
    "os": None,
    "status": "available",
    "function_count": 3,
    "connected_at_ms": 1,
    "active_invocations": 0,
    "isolation": None,
    "ip_address": None,
}


def test_workers_listing_parses_both_engine_shapes() -> None:
    old = WorkerInfo.model_validate(V011_WORKER)
    assert old.functions == ["probe::f1"] and old.pid == 42  # type: ignore[attr-defined]
    new = WorkerInfo.model_validate(HEAD_WORKER)
    assert new.functions == [] and new.status == "available"
    assert new.namespace == "default"  # type: ignore[attr-defined]


def test_listing_null_for_non_nullable_field_falls_back_to_default() -> None:
    w = WorkerInfo.model_validate({"id": "x", "functions": None, "function_count": None})
    assert w.functions == [] and w.function_count == 0
    assert WorkerInfo.model_validate({}).id == ""


def test_triggers_listing_parses_bindings_and_newer_trigger_types() -> None:
    binding = TriggerInfo.model_validate(
        {"id": "t1", "trigger_type": "http", "function_id": "f", "config": {"api_path": "/x"}}
    )
    assert binding.config == {"api_path": "/x"} and binding.metadata is None
    # Newer engines list trigger types under engine::triggers::list.
    ttype = TriggerInfo.model_validate(
        {"id": "http", "namespace": "default", "worker_name": "iii-http", "description": "HTTP"}
    )
    assert ttype.id == "http" and ttype.function_id == ""
    assert ttype.description == "HTTP"  # type: ignore[attr-defined]
    assert TriggerTypeInfo.model_validate({"id": "cron"}).description == ""


def test_functions_listing_parses_both_engine_shapes() -> None:
    old = FunctionInfo.model_validate(
        {
            "function_id": "probe::f1",
            "description": "d",
            "request_format": {"type": "object"},
            "response_format": None,
            "metadata": {"k": 1},
        }
    )
    assert old.request_format == {"type": "object"} and old.metadata == {"k": 1}
    new = FunctionInfo.model_validate({"function_id": "a::b", "namespace": "default", "worker_name": "w"})
    assert new.request_format is None and new.description is None
    assert new.model_dump()["worker_name"] == "w"


# --------------------------------------------------------------------------- triggers


class WebhookConfig(BaseModel):
    url: str
    retries: int = 2


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def register_trigger(self, trigger: Any) -> Trigger:
        self.calls.append(("register_trigger", (trigger,), {}))
        return Trigger(lambda: None)

    def register_function(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("register_function", args, kwargs))
        return "ref"


def test_trigger_type_ref_dumps_model_configs_as_json() -> None:
    client = FakeClient()
    ref: TriggerTypeRef[WebhookConfig, Any] = TriggerTypeRef(client, "webhook", WebhookConfig)  # type: ignore[arg-type]
    trigger = ref.register_trigger("handler", WebhookConfig(url="/hook"), metadata={"m": 1})
    assert isinstance(trigger, Trigger)
    ref.register_trigger("handler", {"url": "/raw"})
    assert [c[1][0] for c in client.calls] == [
        {
            "type": "webhook",
            "function_id": "handler",
            "config": {"url": "/hook", "retries": 2},
            "metadata": {"m": 1},
        },
        {"type": "webhook", "function_id": "handler", "config": {"url": "/raw"}, "metadata": None},
    ]


def test_trigger_type_ref_register_function_delegates() -> None:
    client = FakeClient()
    ref: TriggerTypeRef[Any, Any] = TriggerTypeRef(client, "webhook")  # type: ignore[arg-type]

    def handler(data: Any) -> None:
        return None

    assert ref.register_function("fn", handler, description="d") == "ref"
    assert client.calls == [("register_function", ("fn", handler), {"description": "d"})]


def test_trigger_unregister_runs_once() -> None:
    calls: list[int] = []
    t = Trigger(lambda: calls.append(1))
    t.unregister()
    t.unregister()
    assert calls == [1]


def test_trigger_handler_is_abstract_and_config_requires_config() -> None:
    with pytest.raises(TypeError):
        TriggerHandler()  # type: ignore[abstract]
    with pytest.raises(ValidationError):
        TriggerConfig.model_validate({"id": "t", "function_id": "f"})
    cfg = TriggerConfig.model_validate({"id": "t", "function_id": "f", "config": None})
    assert cfg.metadata is None and cfg.namespace is None


# --------------------------------------------------------------------------- streams


def test_stream_update_ops_parse_by_type() -> None:
    inp = StreamUpdateInput.model_validate(
        {
            "stream_name": "s",
            "group_id": "g",
            "item_id": "i",
            "ops": [
                {"type": "set", "path": "a", "value": 1},
                {"type": "increment", "path": "n", "by": 2},
                {"type": "merge", "value": {"k": 1}},
            ],
        }
    )
    assert [type(op) for op in inp.ops] == [UpdateSet, UpdateIncrement, UpdateMerge]
    # A root merge has no ``path`` key (``path?`` in docs/protocol.md), as in iii-sdk 0.25.0.
    assert UpdateMerge(value={}).model_dump() == {"type": "merge", "value": {}}


def test_stream_change_event_parses_engine_payload() -> None:
    ev = StreamChangeEvent.model_validate(
        {
            "type": "stream",
            "timestamp": 1795596105188,
            "streamName": "s2",
            "groupId": "g",
            "id": "i",
            "event": {"type": "create", "data": {"t": 1}},
        }
    )
    assert ev.event.type == "create" and ev.event.data == {"t": 1}


def test_istream_requires_all_methods() -> None:
    class Partial(IStream[Any]):
        async def get(self, input: Any) -> Any:
            return None

    with pytest.raises(TypeError):
        Partial()  # type: ignore[abstract]
    assert StreamSetResult[int](new_value=3).old_value is None


def test_rbac_auth_result_defaults() -> None:
    res = AuthResult.model_validate(
        {
            "allowed_functions": ["a::*"],
            "forbidden_functions": [],
            "allow_trigger_type_registration": False,
            "context": {"user": "u"},
        }
    )
    assert res.allow_function_registration is True
    assert res.allowed_trigger_types is None and res.function_registration_prefix is None
