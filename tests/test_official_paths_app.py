"""An application written only with the official iii-sdk 0.11.0 import paths and the engine
documentation's Python examples (``from iii.iii import III``, ``from iii.iii_types import
HttpAuthBearer``, ``from iii.utils import http``, ...). It runs end to end against the built-in
test engine, or against the engine at ``III_URL``.

Nothing here imports from ``iii`` directly or from this package's own module names.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from iii.channels import ChannelReader, ChannelWriter
from iii.errors import QueueUnavailableError
from iii.iii import III, TriggerAction, register_worker
from iii.iii_constants import InitOptions, ReconnectionConfig
from iii.iii_types import HttpAuthBearer, HttpInvocationConfig, RegisterFunctionInput, TriggerRequest
from iii.logger import Logger
from iii.telemetry_types import OtelConfig
from iii.triggers import TriggerConfig, TriggerHandler
from iii.types import HttpRequest, HttpResponse
from iii.utils import http

from conftest import REAL_ENGINE_URL, has_queue_worker, unique, wait_registered, wait_until


def _options(name: str) -> InitOptions:
    return InitOptions(
        worker_name=f"{name}-{uuid.uuid4().hex[:6]}",
        otel=OtelConfig(enabled=False),
        reconnection_config=ReconnectionConfig(initial_delay_ms=50, max_delay_ms=200),
    )


@pytest.fixture
def app(engine_url: str) -> Iterator[tuple[III, III]]:
    """The application's worker and a second worker that calls it, both built via iii.iii."""
    worker = register_worker(engine_url, _options("official-paths-app"))
    caller = register_worker(engine_url, _options("official-paths-caller"))
    yield worker, caller
    caller.shutdown()
    worker.shutdown()


# --------------------------------------------------------------------------- the application

logger = Logger()


def greet(data: dict[str, Any]) -> dict[str, Any]:
    logger.info("greeting", {"name": data["name"]})
    return {"message": f"Hello, {data['name']}!"}


@http
async def echo_http(req: HttpRequest, res: HttpResponse) -> None:
    """The documentation's streaming HTTP handler: read the body, answer with a status,
    headers and a streamed body."""
    body = await req.request_body.read_all()
    await res.status(201)
    await res.headers({"content-type": "text/plain"})
    res.stream.write(b"echo:" + body)
    res.close()


class Ticker(TriggerHandler[dict[str, Any]]):
    """A custom trigger type whose bindings fire once, when they are registered."""

    def __init__(self, worker: III) -> None:
        self.worker = worker
        self.bound: list[str] = []

    async def register_trigger(self, config: TriggerConfig[dict[str, Any]]) -> None:
        self.bound.append(config.function_id)
        await self.worker.trigger_async(
            TriggerRequest(function_id=config.function_id, payload=config.config, action=TriggerAction.Void())
        )

    async def unregister_trigger(self, config: TriggerConfig[dict[str, Any]]) -> None:
        self.bound.remove(config.function_id)


# --------------------------------------------------------------------------- the tests


def test_functions_calls_and_actions(app):
    worker, caller = app
    fid = unique("greet")
    ref = worker.register_function(RegisterFunctionInput(id=fid, description="Greets someone"), greet)
    assert ref.id == fid
    wait_registered(caller, fid)
    listed = {f.function_id: f for f in caller.list_functions()}
    assert listed[fid].description == "Greets someone"

    assert caller.trigger(TriggerRequest(function_id=fid, payload={"name": "World"})) == {
        "message": "Hello, World!"
    }
    assert (
        caller.trigger({"function_id": fid, "payload": {"name": "x"}, "action": TriggerAction.Void()}) is None
    )
    enqueue = {"function_id": fid, "payload": {"name": "q"}, "action": TriggerAction.Enqueue(queue="default")}
    if caller.engine_generation == "head" and not has_queue_worker(caller):
        with pytest.raises(QueueUnavailableError):  # engines after v0.11.0 need a queue worker
            caller.trigger(enqueue)
    else:
        receipt = caller.trigger(enqueue)
        # The official SDK hands back a dict here: read it the way code written for it does.
        assert isinstance(receipt["messageReceiptId"], str) and receipt["messageReceiptId"]
    ref.unregister()
    wait_until(lambda: fid not in {f.function_id for f in caller.list_functions()})


def test_http_helper_streams_a_response_through_channels(app):
    worker, caller = app
    fid = unique("echo-http")
    worker.register_function(fid, echo_http)
    wait_registered(caller, fid)
    response = caller.create_channel()
    request_body = caller.create_channel()
    control: list[dict[str, Any]] = []
    response.reader.on_message(lambda text: control.append(json.loads(text)))

    results: list[Any] = []
    payload = {
        "path_params": {"id": "1"},
        "query_params": {},
        "body": None,
        "headers": {},
        "method": "POST",
        "response": response.writer_ref,
        "request_body": request_body.reader_ref,
    }
    # The blocking call runs on its own thread while this one streams the channels (the
    # official SDK's trigger_async only works on its own event loop).
    call = threading.Thread(
        target=lambda: results.append(caller.trigger({"function_id": fid, "payload": payload}))
    )

    async def run() -> bytes:
        await request_body.writer.write(b"ping")
        await request_body.writer.close_async()
        call.start()
        return await response.reader.read_all()

    assert asyncio.run(run()) == b"echo:ping"
    call.join(10)
    assert results == [None]
    assert control == [
        {"type": "set_status", "status_code": 201},
        {"type": "set_headers", "headers": {"content-type": "text/plain"}},
    ]
    assert isinstance(response.reader, ChannelReader) and isinstance(response.writer, ChannelWriter)


def test_custom_trigger_type_fires_the_bound_function(app):
    worker, caller = app
    type_id, fid = unique("ticker"), unique("on-tick")
    fired = threading.Event()
    got: list[Any] = []

    def on_tick(data: Any) -> None:
        got.append(data)
        fired.set()

    handler = Ticker(worker)
    worker.register_trigger_type({"id": type_id, "description": "fires once per binding"}, handler)
    worker.register_function(fid, on_tick)
    # Registrations are not acknowledged: bind only once the engine knows the type.
    wait_until(lambda: type_id in {t.id for t in caller.list_trigger_types()})
    trigger = caller.register_trigger({"type": type_id, "function_id": fid, "config": {"n": 7}})
    assert fired.wait(5), "the binding reached the trigger type's handler and fired"
    # The engine adds its own keys (e.g. the binder's worker id) to the config it forwards.
    assert len(got) == 1 and got[0]["n"] == 7 and handler.bound == [fid]
    trigger.unregister()
    wait_until(lambda: handler.bound == [])  # (the official SDK never calls unregister_trigger)


class _Receiver(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["content-length"] or 0)))
        _Receiver.seen.append({"auth": self.headers.get("authorization"), "body": body})
        out = json.dumps({"doubled": body["n"] * 2}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


def test_http_invoked_function_with_bearer_auth(app, monkeypatch):
    """Auth secrets are read from the engine's environment, so the bearer token is only
    checked with the built-in test engine (same process); a real engine must allow loopback
    http:// URLs (docs/protocol.md 12.4)."""
    worker, caller = app
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OFFICIAL_APP_TOKEN", "t0ken")
    try:
        fid = unique("doubler")
        worker.register_function(
            fid,
            HttpInvocationConfig(
                url=f"http://127.0.0.1:{server.server_port}/double",
                auth=None if REAL_ENGINE_URL else HttpAuthBearer(token_key="OFFICIAL_APP_TOKEN"),
            ),
        )
        wait_registered(caller, fid)
        assert caller.trigger({"function_id": fid, "payload": {"n": 21}}) == {"doubled": 42}
        if not REAL_ENGINE_URL:
            assert _Receiver.seen[-1]["auth"] == "Bearer t0ken"
    finally:
        server.shutdown()
        os.environ.pop("OFFICIAL_APP_TOKEN", None)


def test_constructor_then_wait_and_wrapped_private_members(engine_url):
    """What frameworks built on the official SDK do: ``III(address, options)`` starts
    connecting, ``_wait_until_connected()`` waits for it, and tracing wraps ``_to_dict``
    (outgoing) and ``_handle_message`` (incoming). Wrapping them must not break anything."""
    client = III(engine_url, _options("framework"))
    try:
        client._wait_until_connected()
        assert client.get_connection_state() == "connected"
        original_to_dict, original_handle = client._to_dict, client._handle_message
        assert asyncio.iscoroutinefunction(original_handle)

        def traced_to_dict(msg: Any) -> dict[str, Any]:
            return original_to_dict(msg)

        async def traced_handle(raw: str | bytes) -> None:
            await original_handle(raw)

        client._to_dict = traced_to_dict  # type: ignore[method-assign]
        client._handle_message = traced_handle  # type: ignore[method-assign]

        fid = unique("framework")
        client.register_function(fid, greet)
        wait_registered(client, fid)
        assert client.trigger({"function_id": fid, "payload": {"name": "F"}}) == {"message": "Hello, F!"}
        assert traced_to_dict({"type": "ping"}) == {"type": "ping"}
    finally:
        client.shutdown()


def test_documented_with_span_runs_the_function():
    from iii.telemetry import with_span

    async def work(span: Any) -> str:
        return "done"

    assert asyncio.run(with_span("checkout", work)) == "done"
