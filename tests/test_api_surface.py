"""The whole public API of the reference (python-sdk-api.txt of iii-sdk 0.11.0): every method
with its parameter names and defaults, every type with its fields and defaults. A missing or
renamed piece fails here."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from pydantic import BaseModel

import iii

REQUIRED = object()

# name -> (parameters after self as (name, default), is_async)
III_METHODS = {
    "connect_async": ([], True),
    "create_channel": ([("buffer_size", None)], False),
    "create_channel_async": ([("buffer_size", None)], True),
    "create_stream": ([("stream_name", REQUIRED), ("stream", REQUIRED)], False),
    "get_connection_state": ([], False),
    "list_functions": ([], False),
    "list_functions_async": ([], True),
    "list_trigger_types": ([("include_internal", False)], False),
    "list_trigger_types_async": ([("include_internal", False)], True),
    "list_triggers": ([("include_internal", False)], False),
    "list_triggers_async": ([("include_internal", False)], True),
    "list_workers": ([], False),
    "list_workers_async": ([], True),
    "on_functions_available": ([("callback", REQUIRED)], False),
    "register_function": (
        [
            ("func_or_id", REQUIRED),
            ("handler_or_invocation", REQUIRED),
            ("description", None),
            ("metadata", None),
            ("request_format", None),
            ("response_format", None),
            ("observe", None),
            ("local_dispatch", True),
        ],
        False,
    ),
    "register_service": ([("service", REQUIRED)], False),
    "register_trigger": ([("trigger", REQUIRED)], False),
    "register_trigger_type": ([("trigger_type", REQUIRED), ("handler", REQUIRED)], False),
    "shutdown": ([], False),
    "shutdown_async": ([], True),
    "trigger": ([("request", REQUIRED)], False),
    "trigger_async": ([("request", REQUIRED)], True),
    "unregister_trigger_type": ([("trigger_type", REQUIRED)], False),
}

TYPES = {
    "InitOptions": {
        "enable_metrics_reporting": True,
        "headers": None,
        "invocation_timeout_ms": 30000,
        "otel": None,
        "reconnection_config": None,
        "telemetry": None,
        "worker_name": None,
    },
    "ReconnectionConfig": {
        "backoff_multiplier": 2.0,
        "initial_delay_ms": 1000,
        "jitter_factor": 0.3,
        "max_delay_ms": 30000,
        "max_retries": -1,
    },
    "TelemetryOptions": {
        "amplitude_api_key": None,
        "framework": None,
        "language": None,
        "project_name": None,
    },
    "HttpInvocationConfig": {
        "auth": None,
        "headers": None,
        "method": "POST",
        "timeout_ms": None,
        "url": REQUIRED,
    },
    "RegisterFunctionFormat": {
        "body": None,
        "description": None,
        "items": None,
        "name": REQUIRED,
        "required": False,
        "type": REQUIRED,
    },
    "RegisterFunctionInput": {
        "description": None,
        "id": REQUIRED,
        "invocation": None,
        "metadata": None,
        "request_format": None,
        "response_format": None,
    },
    "RegisterServiceInput": {"description": None, "id": REQUIRED, "name": None, "parent_service_id": None},
    "RegisterTriggerInput": {"config": None, "function_id": REQUIRED, "metadata": None, "type": REQUIRED},
    "RegisterTriggerTypeInput": {
        "call_request_format": None,
        "description": REQUIRED,
        "id": REQUIRED,
        "trigger_request_format": None,
    },
    "TriggerActionEnqueue": {"queue": REQUIRED, "type": "enqueue"},
    "TriggerActionVoid": {"type": "void"},
    "TriggerRequest": {"action": None, "function_id": REQUIRED, "payload": None, "timeout_ms": None},
    "OtelConfig": {
        "enabled": None,
        "engine_ws_url": None,
        "fetch_instrumentation_enabled": True,
        "logs_batch_size": None,
        "logs_enabled": None,
        "logs_flush_interval_ms": None,
        "metrics_enabled": True,
        "metrics_export_interval_ms": 60000,
        "service_instance_id": None,
        "service_name": None,
        "service_namespace": None,
        "service_version": None,
    },
}


def _fields(cls: type) -> dict[str, object]:
    if dataclasses.is_dataclass(cls):
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                out[f.name] = REQUIRED
        return out
    assert issubclass(cls, BaseModel), cls
    return {name: REQUIRED if f.is_required() else f.default for name, f in cls.model_fields.items()}


@pytest.mark.parametrize("name", sorted(III_METHODS))
def test_client_method(name):
    params, is_async = III_METHODS[name]
    method = getattr(iii.III, name)
    assert inspect.iscoroutinefunction(method) is is_async
    sig = list(inspect.signature(method).parameters.values())[1:]
    got = [(p.name, REQUIRED if p.default is p.empty else p.default) for p in sig]
    assert got == params


@pytest.mark.parametrize("name", sorted(TYPES))
def test_type_fields_and_defaults(name):
    cls = getattr(iii, name)
    fields = _fields(cls)
    for field, default in TYPES[name].items():
        assert field in fields, f"{name}.{field} missing"
        assert fields[field] == default or (fields[field] is default), f"{name}.{field} default"


def test_logger_methods():
    for level in ("debug", "info", "warn", "error"):
        params = list(inspect.signature(getattr(iii.Logger, level)).parameters.values())[1:]
        assert [(p.name, p.default) for p in params] == [("message", inspect.Parameter.empty), ("data", None)]


def test_abstract_interfaces_and_entry_points():
    assert inspect.isabstract(iii.IStream) and inspect.isabstract(iii.TriggerHandler)
    for method in ("get", "set", "delete", "list", "list_groups", "update"):
        assert inspect.iscoroutinefunction(getattr(iii.IStream, method))
    assert list(inspect.signature(iii.register_worker).parameters) == ["address", "options"]
    assert isinstance(iii.TriggerAction.Enqueue(queue="q"), iii.TriggerActionEnqueue)
    assert isinstance(iii.TriggerAction.Void(), iii.TriggerActionVoid)
    assert set(iii.__all__) <= set(dir(iii))
