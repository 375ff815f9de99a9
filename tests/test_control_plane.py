"""Services, triggers, custom trigger types, discovery, HTTP-invoked functions, Logger."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

import pytest
from pydantic import BaseModel

from iii import (
    FunctionInfo,
    HttpInvocationConfig,
    Logger,
    RegisterServiceInput,
    RegisterTriggerInput,
    RegisterTriggerTypeInput,
    TriggerConfig,
    TriggerHandler,
    TriggerInfo,
    TriggerTypeInfo,
    WorkerInfo,
)

from conftest import REAL_ENGINE_URL, unique, wait_registered, wait_until


class WebhookConfig(BaseModel):
    path: str


class WebhookCall(BaseModel):
    body: dict


class RecordingHandler(TriggerHandler[WebhookConfig]):
    def __init__(self, fail: bool = False) -> None:
        self.registered: list[TriggerConfig] = []
        self.unregistered: list[TriggerConfig] = []
        self.fail = fail

    def register_trigger(self, config: TriggerConfig) -> None:
        if self.fail:
            raise RuntimeError("no such path")
        self.registered.append(config)

    async def unregister_trigger(self, config: TriggerConfig) -> None:
        await asyncio.sleep(0)
        self.unregistered.append(config)


def _provided_type(make_worker, handler, prefix, description, url=None):
    """A provider worker with a trigger type of its own, and a second worker that sees it."""
    provider, binder = make_worker(url), make_worker(url)
    type_id = unique(prefix)
    provider.register_trigger_type({"id": type_id, "description": description}, handler)
    wait_until(lambda: any(t.id == type_id for t in binder.list_trigger_types()))
    return provider, binder, type_id


def test_services_are_sent(engine, make_worker):
    worker = make_worker(engine.url)
    worker.register_service({"id": "payments", "description": "Payment processing"})
    worker.register_service(
        RegisterServiceInput(id="payments::refunds", description="Refunds", parent_service_id="payments")
    )
    wait_until(lambda: engine.received_kinds().count("registerservice") >= 2)


def test_builtin_trigger_binding_is_listed_and_unregistered(make_worker):
    worker = make_worker()
    fid = unique("cron")
    worker.register_function(fid, lambda d: None)
    # Newer engines run cron in a standalone worker; http is built in on both generations.
    kind, config = "cron", {"expression": "0 0 0 1 1 * 2099"}
    if not any(t.id == kind for t in worker.list_trigger_types()):
        kind, config = "http", {"api_path": f"probe/{fid.replace('::', '-')}", "http_method": "GET"}
    trigger = worker.register_trigger({"type": kind, "function_id": fid, "config": config})
    wait_until(lambda: any(t.function_id == fid for t in worker.list_triggers()))
    listed = next(t for t in worker.list_triggers() if t.function_id == fid)
    assert isinstance(listed, TriggerInfo)
    assert listed.trigger_type == kind
    assert listed.config == config
    trigger.unregister()
    wait_until(lambda: all(t.function_id != fid for t in worker.list_triggers()))


def test_trigger_without_config_is_sent_with_null_config(make_worker):
    handler = RecordingHandler()
    _, binder, type_id = _provided_type(make_worker, handler, "nocfg", "no config")
    fid = unique()
    binder.register_function(fid, lambda d: d)
    binder.register_trigger(RegisterTriggerInput(type=type_id, function_id=fid))
    wait_until(lambda: len(handler.registered) == 1)
    assert handler.registered[0].config is None


def test_custom_trigger_type_end_to_end(make_worker):
    provider, binder = make_worker(), make_worker()
    handler = RecordingHandler()
    type_id = unique("webhook")
    ref = provider.register_trigger_type(
        RegisterTriggerTypeInput(
            id=type_id,
            description="Webhook trigger",
            trigger_request_format=WebhookConfig,
            call_request_format=WebhookCall,
        ),
        handler,
    )
    wait_until(lambda: any(t.id == type_id for t in binder.list_trigger_types()))
    info = next(t for t in binder.list_trigger_types() if t.id == type_id)
    assert isinstance(info, TriggerTypeInfo)
    assert info.description == "Webhook trigger"
    assert info.trigger_request_format["properties"]["path"]["type"] == "string"
    assert info.call_request_format["properties"]["body"]["type"] == "object"

    got = []
    fid = unique("hook")
    binder.register_function(fid, lambda d: got.append(d) or "handled")
    wait_registered(provider, fid)
    trigger = binder.register_trigger(
        {"type": type_id, "function_id": fid, "config": WebhookConfig(path="/hook"), "metadata": {"m": 1}}
    )
    wait_until(lambda: len(handler.registered) == 1)
    binding = handler.registered[0]
    assert binding.function_id == fid
    assert binding.config == {"path": "/hook"}
    assert binding.metadata == {"m": 1}

    # The provider fires the binding by calling the bound function.
    assert provider.trigger({"function_id": binding.function_id, "payload": {"body": {"a": 1}}}) == "handled"
    assert got[0]["body"] == {"a": 1}

    trigger.unregister()
    wait_until(lambda: len(handler.unregistered) == 1)
    assert handler.unregistered[0].id == binding.id
    assert handler.unregistered[0].config == {"path": "/hook"}

    # The TriggerTypeRef registers functions and binds them to its type.
    other = unique("via-ref")
    provider_side = ref.register_function(other, lambda d: "ref")
    assert provider_side.id == other
    ref.register_trigger(other, WebhookConfig(path="/ref"))
    wait_until(lambda: len(handler.registered) == 2)
    assert handler.registered[1].config == {"path": "/ref"}


def test_trigger_handler_failure_is_reported_to_the_engine(engine, make_worker):
    _, binder, type_id = _provided_type(
        make_worker, RecordingHandler(fail=True), "failing", "fails", engine.url
    )
    binder.register_trigger({"type": type_id, "function_id": "f", "config": {}})
    wait_until(lambda: "triggerregistrationresult" in engine.received_kinds())
    wait_until(lambda: any("trigger_registration_failed" in line for line in engine.logs()))
    assert any("no such path" in line for line in engine.logs())


def test_unregister_trigger_type_stops_the_handler_locally(engine, make_worker):
    handler = RecordingHandler()
    provider, binder, type_id = _provided_type(make_worker, handler, "gone", "d", engine.url)
    provider.unregister_trigger_type({"id": type_id, "description": "d"})
    wait_until(lambda: "unregistertriggertype" in engine.received_kinds())
    # Engine v0.11.0 ignores the message and keeps forwarding bindings: the SDK answers
    # trigger_type_not_found instead of calling the dropped handler.
    binder.register_trigger({"type": type_id, "function_id": "f", "config": {}})
    wait_until(lambda: any("trigger_type_not_found" in line for line in engine.logs()))
    assert handler.registered == []


def test_discovery_returns_typed_objects(make_worker):
    worker = make_worker(worker_name=f"disco-{uuid.uuid4().hex[:6]}")
    fid = unique("listed")
    worker.register_function(fid, lambda d: d, description="a listed function")
    wait_registered(worker, fid)
    functions = worker.list_functions()
    assert all(isinstance(f, FunctionInfo) for f in functions)
    assert not any(f.function_id.startswith("engine::") for f in functions)
    assert any(f.function_id == fid and f.description == "a listed function" for f in functions)
    wait_until(lambda: any(w.name == worker._options.worker_name for w in worker.list_workers()))
    me = next(w for w in worker.list_workers() if w.name == worker._options.worker_name)
    assert isinstance(me, WorkerInfo)
    assert me.runtime == "python" and me.os and me.version
    assert fid in (me.functions or [])
    internal = {t.id for t in worker.list_trigger_types(include_internal=True)}
    public = {t.id for t in worker.list_trigger_types()}
    assert "engine::functions-available" in internal and "engine::functions-available" not in public

    async def both():
        return await worker.list_functions_async(), await worker.list_workers_async()

    fs, ws = asyncio.run(both())
    assert any(f.function_id == fid for f in fs) and any(w.id == worker.worker_id for w in ws)


def test_on_functions_available(make_worker):
    watcher, other = make_worker(), make_worker()
    seen: list[list[FunctionInfo]] = []
    unsubscribe = watcher.on_functions_available(seen.append)
    fid = unique("appears")
    other.register_function(fid, lambda d: d)
    timeout = 20 if REAL_ENGINE_URL else 5
    wait_until(lambda: any(f.function_id == fid for batch in seen for f in batch), timeout=timeout)
    assert all(isinstance(f, FunctionInfo) for f in seen[-1])
    assert watcher._functions_available_sub is not None
    callback_function = watcher._functions_available_sub[0].id
    assert callback_function.startswith("iii.on_functions_available.")
    bound = lambda: [t for t in watcher.list_triggers() if t.function_id == callback_function]  # noqa: E731
    assert [t.trigger_type for t in bound()] == ["engine::functions-available"]
    unsubscribe()
    wait_until(lambda: not bound())
    count = len(seen)
    witness = make_worker()
    witnessed: list[list[FunctionInfo]] = []
    witness.on_functions_available(witnessed.append)
    witness_fn = witness._functions_available_sub[0].id
    wait_until(lambda: any(t.function_id == witness_fn for t in witness.list_triggers()))
    later = unique("later")
    other.register_function(later, lambda d: d)
    # The engine announces a change to every subscriber at once: once the witness (still
    # subscribed) has heard of `later`, the unsubscribed watcher would have too.
    wait_until(lambda: any(f.function_id == later for batch in witnessed for f in batch), timeout=timeout)
    assert not any(f.function_id == later for batch in seen[count:] for f in batch)


def test_http_invoked_function_is_registered(engine, make_worker):
    worker = make_worker(engine.url)
    fid = unique("ext")
    ref = worker.register_function(
        fid,
        HttpInvocationConfig(url="http://127.0.0.1:9/fn", method="PUT", timeout_ms=500, headers={"x-a": "1"}),
        description="external",
    )
    wait_until(lambda: fid in engine.function_ids())
    assert ref.id == fid
    ref.unregister()
    wait_until(lambda: fid not in engine.function_ids())


def test_worker_metadata_after_every_connect(engine, make_worker):
    worker = make_worker(engine.url, worker_name="meta-again")
    wait_until(lambda: any(w.name == "meta-again" for w in worker.list_workers()))
    old_id = worker.worker_id
    engine.disconnect_all()
    wait_until(
        lambda: worker.get_connection_state() == "connected" and worker.worker_id not in (None, old_id)
    )
    wait_until(
        lambda: any(w.name == "meta-again" and w.id == worker.worker_id for w in worker.list_workers())
    )


def test_logger_writes_through_python_logging(caplog):
    logger = Logger()
    with caplog.at_level(logging.DEBUG, logger="iii"):
        logger.info("Order processed", {"order_id": "ord_123"})
        logger.warn("Retry", {"attempt": 3})
        logger.error("Payment failed")
        logger.debug("Cache", {"hit": False})
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.INFO, logging.WARNING, logging.ERROR, logging.DEBUG]
    assert caplog.records[0].data == {"order_id": "ord_123"}
    assert "ord_123" in caplog.records[0].getMessage()


def test_registration_from_many_threads(make_worker):
    server, client = make_worker(), make_worker()
    ids = [unique(f"thread{i}") for i in range(40)]

    def register(chunk):
        for fid in chunk:
            server.register_function(fid, lambda d, fid=fid: fid)

    threads = [threading.Thread(target=register, args=(ids[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    wait_registered(client, ids[-1])
    wait_until(lambda: set(ids) <= {f.function_id for f in client.list_functions()})
    assert [client.trigger({"function_id": fid, "payload": {}}) for fid in ids] == ids


@pytest.mark.parametrize("bad", [{"description": "no id"}, {"id": ""}])
def test_bad_registrations_raise(make_worker, bad):
    worker = make_worker()
    with pytest.raises((ValueError, TypeError)):
        worker.register_function(bad, lambda d: d)


def test_a_binding_whose_config_cannot_be_read_is_refused_and_the_worker_goes_on(engine, make_worker):
    handler = RecordingHandler()
    provider, binder, type_id = _provided_type(make_worker, handler, "unreadable", "d", engine.url)
    # A number beyond float range is valid JSON but no Python value.
    frame = (
        f'{{"type":"registertrigger","id":"t-unreadable","trigger_type":"{type_id}",'
        f'"function_id":"f","config":{{"path":1e400}}}}'
    )
    assert engine.send_raw(provider.worker_id, frame)
    wait_until(lambda: any("config could not be read" in line for line in engine.logs()))
    binder.register_trigger({"type": type_id, "function_id": "f", "config": {"path": "/ok"}})
    wait_until(lambda: len(handler.registered) == 1)
    assert handler.registered[0].config == {"path": "/ok"}
