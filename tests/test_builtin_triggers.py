"""The engine's built-in trigger types end to end. These need a real engine (III_URL), with
the modules of docs/protocol.md 12.4 (http on III_HTTP_URL, cron, queue, pubsub): the built-in
test engine only lists these types, it does not fire them."""

from __future__ import annotations

import json
import os
import threading
import urllib.request

import pytest

from iii import InvocationError

from conftest import REAL_ENGINE_URL, unique, wait_registered, wait_until

pytestmark = pytest.mark.skipif(not REAL_ENGINE_URL, reason="fires only on a real engine (set III_URL)")
HTTP_URL = os.environ.get("III_HTTP_URL", "http://127.0.0.1:3111")


def _needs_type(worker, trigger_type: str, publisher: str | None = None) -> None:
    """Newer engines provide some of these through standalone workers (docs/protocol.md B.5)."""
    if not any(t.id == trigger_type for t in worker.list_trigger_types()):
        pytest.skip(f"the engine has no {trigger_type!r} trigger type (its worker is not running)")
    if publisher is not None:
        info = {"function_id": "engine::functions::info", "payload": {"function_id": publisher}}
        if worker.engine_generation == "head":
            try:
                worker.trigger(info)
            except InvocationError:
                pytest.skip(f"the engine has no {publisher} (its worker is not running)")


def test_http_trigger(make_worker):
    worker = make_worker()
    _needs_type(worker, "http")
    fid = unique("api")
    path = f"probe/{fid.replace('::', '-')}/:id"

    def handler(request):
        return {"status_code": 201, "body": {"id": request["path_params"]["id"], "got": request["body"]}}

    worker.register_function(fid, handler)
    trigger = worker.register_trigger(
        {"type": "http", "function_id": fid, "config": {"api_path": path, "http_method": "POST"}}
    )
    wait_registered(worker, fid)
    url = f"{HTTP_URL}/{path.replace(':id', '42')}"
    request = urllib.request.Request(
        url, data=json.dumps({"x": 1}).encode(), headers={"content-type": "application/json"}
    )

    def call():
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())

    wait_until(lambda: _ok(call), timeout=5)
    assert call() == (201, {"id": "42", "got": {"x": 1}})
    trigger.unregister()


def test_cron_trigger(make_worker):
    worker = make_worker()
    _needs_type(worker, "cron")
    fired = threading.Event()
    fid = unique("tick")
    worker.register_function(fid, lambda event: fired.set() if event.get("trigger") == "cron" else None)
    trigger = worker.register_trigger(
        {"type": "cron", "function_id": fid, "config": {"expression": "* * * * * *"}}
    )
    assert fired.wait(5), "a every-second cron binding fired"
    trigger.unregister()


@pytest.mark.parametrize(
    ("trigger_type", "publisher"), [("subscribe", "publish"), ("durable:subscriber", "iii::durable::publish")]
)
def test_topic_triggers(make_worker, trigger_type, publisher):
    worker = make_worker()
    _needs_type(worker, trigger_type, publisher)
    got: list[object] = []
    fid, topic = unique("sub"), unique("topic")
    worker.register_function(fid, got.append)
    worker.register_trigger({"type": trigger_type, "function_id": fid, "config": {"topic": topic}})
    wait_registered(worker, fid)

    def published():
        worker.trigger({"function_id": publisher, "payload": {"topic": topic, "data": {"n": 1}}})
        return got

    wait_until(published, timeout=5, interval=0.3)
    assert got[0] == {"n": 1}


def _ok(call) -> bool:
    try:
        return call()[0] == 201
    except Exception:
        return False
