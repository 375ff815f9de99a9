"""Helpers of the observe tests (test_observe_*.py, test_local_dispatch.py; their fixtures
``obs_engine`` and ``obs_workers`` are in conftest.py): frames of the observe family sent to a
worker as the engine would (``Engine.send_raw``), so that the SDK's side is tested whether or
not the test engine routes observers itself."""

from __future__ import annotations

import json
from typing import Any

from iii import III
from iii.testing import Engine

from conftest import unique, wait_registered, wait_until


def send(engine: Engine, worker: III, **frame: Any) -> None:
    """Sends ``frame`` (a JSON object) to ``worker`` as the engine would."""
    assert worker.worker_id is not None
    assert engine.send_raw(worker.worker_id, json.dumps(frame)), "the worker is not connected"


def kinds(engine: Engine, kind: str) -> int:
    """How many messages of type ``kind`` the engine received so far."""
    return engine.received_kinds().count(kind)


def view(observer_id: str, target: str = "t::target", **fields: Any) -> dict[str, Any]:
    """An ObserverView as the engine announces it."""
    return {"id": observer_id, "args": {}, "filters": {}, "target": target,
            "capture": ["input", "output", "caller"], "on": "success", **fields}  # fmt: skip


def confirm(
    engine: Engine,
    worker: III,
    function_id: str,
    *,
    revision: int = 1,
    local_dispatch: bool = True,
    observers: list[dict[str, Any]] | None = None,
    namespace: str = "default",
) -> None:
    """The engine's ``functionregistered`` for ``function_id``; waits until the core took it
    when it grants local dispatch. Sent once the engine lists the function (asked on the
    worker's own connection), so it comes after the engine's own ``functionregistered``."""
    wait_registered(worker, function_id)
    send(
        engine, worker, type="functionregistered", id=function_id, namespace=namespace, revision=revision,
        local_dispatch=local_dispatch, observers=observers or [],
    )  # fmt: skip
    if local_dispatch:
        state = worker._locals[function_id].state
        wait_until(lambda: state.local(namespace))


def local_function(engine: Engine, worker: III, handler: Any, **register: Any) -> str:
    """A new function of ``worker`` running ``handler``, confirmed for local dispatch."""
    function_id = unique("loc")
    worker.register_function(function_id, handler, **register)
    confirm(engine, worker, function_id)
    return function_id
