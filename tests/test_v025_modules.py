"""iii-sdk 0.25.0 module paths and names: thin re-exports of this package's objects, the new
constants and helpers, and the observe types."""

from __future__ import annotations

import asyncio
import pickle
import warnings

import pytest
from pydantic import ValidationError

import iii
import iii.channel
import iii.engine
import iii.errors
import iii.helpers
import iii.iii
import iii.iii_constants
import iii.iii_types
import iii.internal
import iii.observe_types
import iii.protocol
import iii.runtime
import iii.trigger
import iii.types
import iii.utils
from iii import (
    Channel,
    InitOptions,
    ObserveHooks,
    ObserveRejection,
    RegistrationRejectedError,
    TriggerRequest,
    register_worker,
)
from iii.helpers import ChannelDirection, ChannelItem, extract_channel_refs

from conftest import unique, wait_registered


def test_new_paths_are_the_packages_own_objects():
    assert (iii.channel.Channel, iii.channel.ChannelReader, iii.channel.ChannelWriter) == (
        iii.Channel,
        iii.ChannelReader,
        iii.ChannelWriter,
    )
    assert iii.channel.StreamChannelRef is iii.StreamChannelRef
    assert iii.runtime.FunctionRef is iii.FunctionRef and iii.runtime.TriggerTypeRef is iii.TriggerTypeRef
    assert iii.trigger.Trigger is iii.Trigger and iii.trigger.TriggerHandler is iii.TriggerHandler
    assert (
        iii.trigger.TriggerConfig is iii.TriggerConfig
        and iii.trigger.TriggerActionVoid is iii.TriggerActionVoid
    )
    assert iii.internal.InternalHttpRequest is iii.InternalHttpRequest
    assert iii.engine.RemoteFunctionHandler is iii.RemoteFunctionHandler
    assert iii.protocol.TriggerRequest is iii.TriggerRequest
    assert iii.protocol.RegisterTriggerInput is iii.RegisterTriggerInput
    assert iii.protocol.MessageType is iii.MessageType
    # 0.25 renamed the streaming request / response of http handlers; same objects here.
    assert iii.types.StreamRequest is iii.StreamRequest is iii.HttpRequest
    assert iii.types.StreamResponse is iii.StreamResponse is iii.HttpResponse
    assert iii.utils.python_type_to_format is iii.python_type_to_format
    assert iii.errors.ObserveRejection is iii.ObserveRejection
    assert iii.iii.RegistrationRejectedError is iii.errors.RegistrationRejectedError
    # 0.25 makes these submodules attributes of ``iii`` at import.
    for name in ("channels", "errors", "observe_types", "stream", "triggers", "types"):
        assert hasattr(iii, name), name


def test_engine_constants():
    assert iii.engine.EngineFunctions is iii.iii_constants.EngineFunctions
    functions = iii.engine.EngineFunctions
    assert functions.LIST_FUNCTIONS == "engine::functions::list"
    assert functions.INFO_FUNCTIONS == "engine::functions::info"
    assert functions.LIST_WORKERS == "engine::workers::list"
    assert functions.INFO_WORKERS == "engine::workers::info"
    assert functions.LIST_TRIGGERS == "engine::triggers::list"
    assert functions.INFO_TRIGGERS == "engine::triggers::info"
    assert functions.LIST_REGISTERED_TRIGGERS == "engine::registered-triggers::list"
    assert functions.INFO_REGISTERED_TRIGGERS == "engine::registered-triggers::info"
    assert functions.REGISTER_WORKER == "engine::workers::register"
    assert iii.engine.EngineTriggers.FUNCTIONS_AVAILABLE == "engine::functions-available"
    assert iii.engine.EngineTriggers.LOG == "log"
    assert iii.DEFAULT_ENGINE_URL == iii.iii_constants.DEFAULT_ENGINE_URL == "ws://127.0.0.1:49134"


def test_feature_names_and_declared_features():
    assert iii.protocol.FEATURE_OBSERVE_V1 == "observe.v1"
    assert iii.protocol.FEATURE_LOCAL_DISPATCH_V1 == "local-dispatch.v1"
    assert iii.protocol.FEATURE_LARGE_MESSAGES_V1 == "large-messages.v1"
    # Declared in 0.25's order: observers, local dispatch, messages up to 64 MiB.
    assert iii.protocol.SDK_FEATURES == ("observe.v1", "local-dispatch.v1", "large-messages.v1")
    assert iii.iii_types.SDK_FEATURES is iii.protocol.SDK_FEATURES


def test_resolve_engine_url(monkeypatch):
    monkeypatch.delenv("III_URL", raising=False)
    assert iii.iii.resolve_engine_url() == "ws://127.0.0.1:49134"
    assert iii.iii.resolve_engine_url("ws://a:1") == "ws://a:1"
    monkeypatch.setenv("III_URL", "ws://from-env:2")
    assert iii.iii.resolve_engine_url() == "ws://from-env:2"
    assert iii.iii.resolve_engine_url("") == "ws://from-env:2"
    assert iii.iii.resolve_engine_url("ws://a:1") == "ws://a:1"


def test_register_worker_without_address_uses_III_URL(engine, monkeypatch):
    monkeypatch.setenv("III_URL", engine.url)
    worker = register_worker(options=InitOptions(worker_name=unique("w")))
    try:
        assert worker.get_address() == engine.url
        assert worker.get_connection_state() == "connected"
    finally:
        worker.shutdown()


def test_add_connection_state_listener_fires_at_once_and_unsubscribes(make_worker):
    worker = make_worker()
    seen: list[str] = []
    off = worker.add_connection_state_listener(seen.append)
    assert seen == ["connected"]
    off()
    off()  # idempotent
    assert seen.append not in worker._dispatch.state_listeners


def test_helpers_create_channel_calls_the_client(make_worker):
    worker = make_worker()
    channel = iii.helpers.create_channel(worker, buffer_size=4)
    assert isinstance(channel, Channel)
    assert (channel.writer_ref.direction, channel.reader_ref.direction) == ("write", "read")
    channel2 = asyncio.run(iii.helpers.create_channel_async(worker))
    assert channel2.reader_ref.channel_id != channel.reader_ref.channel_id


def test_helpers_create_stream_warns_and_registers(make_worker):
    from iii.stream import IStream

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)

        class Memory(IStream):
            async def get(self, input):
                return {"id": input.item_id}

            async def set(self, input):
                return None

            async def delete(self, input):
                return None

            async def list(self, input):
                return []

            async def list_groups(self, input):
                return []

            async def update(self, input):
                return None

    worker = make_worker()
    name = unique("s")
    with pytest.warns(FutureWarning) as record:
        iii.helpers.create_stream(worker, name, Memory())
    assert [str(w.message) for w in record] == [
        "create_stream is deprecated (iii-stream) and will be removed in an upcoming release. "
        "Behavior is unchanged for now. Migration guide: https://iii.dev/docs/upgrading/migrate-from-streams"
    ]
    assert record[0].filename == __file__
    wait_registered(worker, f"stream::get({name})")


def test_channel_item_and_direction():
    assert ChannelDirection("read") is ChannelDirection.READ and ChannelDirection.WRITE == "write"
    text = ChannelItem.text_item("hi")
    assert text.is_text and not text.is_binary and text.text == "hi"
    data = ChannelItem.binary_item(b"\x00")
    assert data.is_binary and data.binary == b"\x00"
    with pytest.raises(ValueError):
        ChannelItem()
    with pytest.raises(ValueError):
        ChannelItem(text="a", binary=b"b")


def test_extract_channel_refs_paths():
    ref = {"channel_id": "c", "access_key": "k", "direction": "read"}
    data = {"a": ref, "items": [{"w": {**ref, "direction": "write"}}, 3], "bad": {**ref, "direction": "x"}}
    found = extract_channel_refs(data)
    assert [(path, r.direction) for path, r in found] == [("a", "read"), ("items[0].w", "write")]
    assert [p for p, _ in extract_channel_refs(ref)] == [""]
    assert extract_channel_refs([1, "x"]) == []
    assert iii.types.extract_channel_refs is extract_channel_refs


def test_resolve_headers(monkeypatch):
    resolve = iii.iii.resolve_headers
    monkeypatch.delenv("III_TOKEN", raising=False)
    assert resolve(None) is None and resolve({"x": "1"}) == {"x": "1"}
    monkeypatch.setenv("III_TOKEN", "  tok ")
    assert resolve(None) == {"Authorization": "Bearer tok"}
    assert resolve({"x": "1"}) == {"x": "1", "Authorization": "Bearer tok"}
    assert resolve({"authorization": "mine"}) == {"authorization": "mine"}
    monkeypatch.setenv("III_TOKEN", "   ")
    assert resolve({"x": "1"}) == {"x": "1"}


def test_trigger_request_025_fields(make_worker):
    request = TriggerRequest(function_id="f", dispatch="remote", metadata={"k": 1})
    assert (request.dispatch, request.metadata) == ("remote", {"k": 1})
    with pytest.raises(ValidationError):
        TriggerRequest(function_id="f", dispatch="local")
    worker = make_worker()
    fid = unique("echo")
    worker.register_function(fid, lambda data: data)
    wait_registered(worker, fid)
    # Both dispatch modes go through the engine here (no in-process dispatch).
    assert worker.trigger(TriggerRequest(function_id=fid, payload=1, dispatch="auto")) == 1
    assert worker.trigger({"function_id": fid, "payload": 2, "dispatch": "remote"}) == 2
    with pytest.raises(ValueError, match="dispatch must be 'auto' or 'remote'"):
        worker.trigger({"function_id": fid, "payload": 2, "dispatch": "local"})
    # Metadata travels with the call (tests/test_invocation_context.py checks it arrives).
    assert worker.trigger({"function_id": fid, "payload": 2, "metadata": {"k": 1}}) == 2
    assert (
        asyncio.run(worker.trigger_async(TriggerRequest(function_id=fid, payload=3, metadata={"k": 1}))) == 3
    )


def test_worker_description_is_an_option_and_is_sent(make_worker):
    options = InitOptions(worker_description="does things")
    assert options.worker_description == "does things"
    assert InitOptions().worker_description is None
    worker = make_worker(worker_description="summary of the worker")
    assert worker._worker_metadata()["description"] == "summary of the worker"
    assert "description" not in make_worker()._worker_metadata()


def test_new_message_types_and_model_fields():
    assert iii.MessageType("observe") is iii.MessageType.OBSERVE
    assert iii.MessageType.LOCAL_INVOCATION_STATS.value == "localinvocationstats"
    message = iii.RegisterTriggerMessage(
        id="t", trigger_type="x", function_id="f", config=None, namespace="n", trigger_namespace="m"
    )
    assert (message.namespace, message.trigger_namespace) == ("n", "m")


def test_observe_types_are_plain_types():
    class Hooks(ObserveHooks):
        delivery = "owner"
        allow = False

    hooks = Hooks(allow=True)
    assert (hooks.delivery, hooks.allow, hooks.args_format) == ("owner", True, None)
    assert ObserveHooks.from_value(None) is None
    assert ObserveHooks.from_value(hooks) is hooks
    assert ObserveHooks.from_value({"delivery": "auto"}).delivery == "auto"
    with pytest.raises(TypeError):
        ObserveHooks.from_value(3)  # type: ignore[arg-type]
    context = iii.InvocationContext(function_id="f", invocation_id="i")
    assert (context.observe_depth, context.caller, context.activation) == (0, None, None)
    source: iii.ObserveSource = {"function_id": "f", "on": "success"}
    assert source["function_id"] == "f"


def test_the_observe_classes_are_exported_where_0_25_exports_them():
    import iii.observable
    import iii.observer_handle

    assert iii.observer_handle.ObserverHandle is iii.ObserverHandle is iii.iii.ObserverHandle
    assert iii.observable.Observer is iii.Observer is iii.iii.Observer
    assert iii.observable.ObserveHooks is iii.ObserveHooks
    assert iii.observable.OBSERVE_HOOK_TIMEOUT_S == 30.0


def test_observe_and_registration_errors():
    error = ObserveRejection("INVALID_CRON_EXPRESSION", "bad day")
    assert (error.code, error.message) == ("INVALID_CRON_EXPRESSION", "bad day")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message) == (error.code, error.message)
    rejected = RegistrationRejectedError("WORKER_NAMESPACE_CONFLICT", "default", "w1", "wid-9")
    assert str(rejected) == (
        "WORKER_NAMESPACE_CONFLICT: worker 'w1' rejected in namespace 'default' (owned by 'wid-9')"
    )
    assert (rejected.namespace, rejected.worker_name, rejected.owner_worker_id) == ("default", "w1", "wid-9")


NEW_SHIMS = [
    "iii.helpers",
    "iii.channel",
    "iii.runtime",
    "iii.trigger",
    "iii.engine",
    "iii.internal",
    "iii.protocol",
    "iii.observe_types",
    "iii_helpers.http",
    "iii_helpers.queue",
    "iii_helpers.stream",
    "iii_helpers.worker_connection_manager",
    "iii_helpers.observability",
    "iii_helpers.observability.logger",
    "iii_helpers.observability.telemetry",
    "iii_helpers.observability.telemetry_types",
    "iii_helpers.observability.reconnection",
    "iii_helpers.observability.payload",
    "iii_helpers.observability.span_ops",
    "iii_helpers.observability.baggage_span_processor",
    "iii_helpers.observability.http_instrumentation",
    "iii_helpers.observability.telemetry_exporters",
]


@pytest.mark.parametrize("name", NEW_SHIMS)
def test_new_public_modules_only_reexport(name):
    import importlib

    module = importlib.import_module(name)
    own = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_") and getattr(value, "__module__", None) == name
    }
    assert not own, f"{name} defines {own}; it should only re-export"
    assert set(module.__all__) <= set(vars(module))
