"""Custom streams (create_stream) and HTTP-invoked functions, end to end."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from iii import HttpInvocationConfig, InvocationError, IStream
from iii.types import HttpAuthBearer

from conftest import REAL_ENGINE_URL, unique, wait_registered


class MemoryStream(IStream):
    def __init__(self):
        self.items: dict[tuple[str, str], object] = {}
        self.calls: list[str] = []

    async def get(self, input):
        self.calls.append("get")
        return self.items.get((input.group_id, input.item_id))

    async def set(self, input):
        self.calls.append("set")
        old = self.items.get((input.group_id, input.item_id))
        self.items[(input.group_id, input.item_id)] = input.data
        return {"old_value": old, "new_value": input.data}

    async def delete(self, input):
        self.calls.append("delete")
        return {"old_value": self.items.pop((input.group_id, input.item_id), None)}

    async def list(self, input):
        self.calls.append("list")
        return [v for (g, _), v in self.items.items() if g == input.group_id]

    async def list_groups(self, input):
        self.calls.append("list_groups")
        return sorted({g for g, _ in self.items})

    async def update(self, input):
        raise NotImplementedError("the engine applies updates itself")


def test_custom_stream_serves_the_engine_stream_functions(make_worker):
    owner, client = make_worker(), make_worker()
    name = unique("orders").replace("::", "-")
    backend = MemoryStream()
    owner.create_stream(name, backend)
    wait_registered(client, f"stream::list_groups({name})")
    key = {"stream_name": name, "group_id": "g1", "item_id": "i1"}
    assert client.trigger({"function_id": "stream::set", "payload": {**key, "data": {"qty": 2}}}) == {
        "old_value": None,
        "new_value": {"qty": 2},
    }
    assert backend.items == {("g1", "i1"): {"qty": 2}}
    assert client.trigger({"function_id": "stream::get", "payload": key}) == {"qty": 2}
    assert client.trigger(
        {"function_id": "stream::list", "payload": {"stream_name": name, "group_id": "g1"}}
    ) == [{"qty": 2}]
    assert client.trigger({"function_id": "stream::list_groups", "payload": {"stream_name": name}}) == ["g1"]
    assert client.trigger({"function_id": "stream::delete", "payload": key}) == {"old_value": {"qty": 2}}
    assert backend.calls == ["set", "get", "list", "list_groups", "delete"]


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers["content-length"] or 0))
        _Receiver.received.append(
            {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": json.loads(body),
            }
        )
        if self.path == "/fail":
            self.send_response(402)
            out = json.dumps({"error": {"code": "payment_required", "message": "pay first"}}).encode()
        else:
            self.send_response(200)
            out = json.dumps({"echo": json.loads(body)}).encode()
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def test_http_invoked_function_is_called_by_the_engine(make_worker, monkeypatch):
    """Against a real engine this needs iii-http-functions with loopback http:// URLs allowed
    (docs/protocol.md 12.4); auth secrets come from the engine's environment, so auth is only
    checked on the built-in test engine (same process)."""
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("IIIT_TOKEN", "s3cret")
    _Receiver.received.clear()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        worker, caller = make_worker(), make_worker()
        ok, fail = unique("ext"), unique("extfail")
        worker.register_function(
            ok,
            HttpInvocationConfig(
                url=f"{base}/fn",
                headers={"x-extra": "1"},
                auth=None if REAL_ENGINE_URL else HttpAuthBearer(token_key="IIIT_TOKEN"),
            ),
        )
        worker.register_function(fail, HttpInvocationConfig(url=f"{base}/fail"))
        wait_registered(caller, fail)
        out = caller.trigger({"function_id": ok, "payload": {"p": 2}})
        assert out["echo"]["p"] == 2
        request = _Receiver.received[-1]
        assert request["headers"]["x-extra"] == "1"
        if not REAL_ENGINE_URL:
            assert request["headers"]["authorization"] == "Bearer s3cret"
        assert request["headers"]["x-iii-function-path"] == ok
        with pytest.raises(InvocationError) as err:
            caller.trigger({"function_id": fail, "payload": {}})
        assert (err.value.code, err.value.message) == ("payment_required", "pay first")
        assert [r["path"] for r in _Receiver.received] == ["/fn", "/fail"]
    finally:
        server.shutdown()
        os.environ.pop("IIIT_TOKEN", None)
