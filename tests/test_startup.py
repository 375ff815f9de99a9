"""Construction and start-up as the official SDK does them: ``III(...)`` connects in the
background, ``register_worker`` waits, a worker started before its engine connects later;
option and registration checks."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest
from pydantic import BaseModel

import iii._client
from iii import (
    III,
    InitOptions,
    NotConnectedError,
    ReconnectionConfig,
    TriggerConfig,
    TriggerHandler,
    register_worker,
)
from iii.testing import Engine

from conftest import unique, wait_registered, wait_until

FAST = ReconnectionConfig(initial_delay_ms=20, max_delay_ms=100)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_worker_started_before_its_engine_connects_when_the_engine_comes_up():
    port = free_port()
    worker = III(f"ws://127.0.0.1:{port}", InitOptions(worker_name="early", reconnection_config=FAST))
    try:
        fid = unique("early")
        worker.register_function(fid, lambda data: {"echo": data})
        wait_until(lambda: worker.get_connection_state() == "reconnecting")
        with Engine(port) as engine:
            worker._wait_until_connected()
            assert worker.get_connection_state() == "connected"
            caller = register_worker(engine.url, InitOptions(worker_name="caller"))
            try:
                wait_registered(caller, fid)
                assert caller.trigger({"function_id": fid, "payload": 7}) == {"echo": 7}
            finally:
                caller.shutdown()
    finally:
        worker.shutdown()


def test_calls_made_before_the_engine_is_up_wait_and_complete():
    port = free_port()
    worker = III(f"ws://127.0.0.1:{port}", InitOptions(reconnection_config=FAST))
    try:
        fid = unique("offline")
        worker.register_function(fid, lambda data: data * 2)
        wait_until(lambda: worker.get_connection_state() == "reconnecting")
        results: list[object] = []
        caller = threading.Thread(
            target=lambda: results.append(worker.trigger({"function_id": fid, "payload": 21}))
        )
        caller.start()
        wait_until(lambda: worker._connection.pending_calls() == 1)
        with Engine(port):
            caller.join(timeout=10)
        assert results == [42]
    finally:
        worker.shutdown()


def test_register_worker_returns_a_reconnecting_client_when_the_engine_stays_away(monkeypatch, caplog):
    monkeypatch.setattr(iii._client, "REGISTER_TIMEOUT_S", 0.3)
    port = free_port()
    with caplog.at_level(logging.WARNING, logger="iii"):
        worker = register_worker(f"ws://127.0.0.1:{port}", InitOptions(reconnection_config=FAST))
    try:
        assert worker.get_connection_state() == "reconnecting"
        assert any("not reachable yet" in r.getMessage() for r in caplog.records)
        with Engine(port):
            worker._wait_until_connected()
            assert worker.get_connection_state() == "connected"
    finally:
        worker.shutdown()


def test_a_finite_retry_policy_raises_a_connection_error():
    port = free_port()
    with pytest.raises(ConnectionError) as err:
        register_worker(
            f"ws://127.0.0.1:{port}",
            InitOptions(reconnection_config=ReconnectionConfig(initial_delay_ms=10, max_retries=1)),
        )
    assert isinstance(err.value, NotConnectedError)
    assert str(port) in str(err.value)


def test_the_constructor_connects_in_the_background(engine):
    worker = III(engine.url, InitOptions(worker_name="bg"))
    try:
        worker._wait_until_connected()
        assert worker.get_connection_state() == "connected"
        assert worker.worker_id in engine.worker_ids()
    finally:
        worker.shutdown()


@pytest.mark.parametrize(
    "options, message",
    [
        (InitOptions(max_message_size=-1), "max_message_size"),
        (InitOptions(invocation_timeout_ms=0), "invocation_timeout_ms"),
        (InitOptions(reconnection_config=ReconnectionConfig(max_retries=-5)), "max_retries"),
        (InitOptions(reconnection_config=ReconnectionConfig(jitter_factor=2.0)), "jitter_factor"),
    ],
)
def test_invalid_options_raise_before_anything_starts(options, message):
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(ValueError, match=message):
        III("ws://127.0.0.1:9", options)
    assert {t.ident for t in threading.enumerate()} == before


def test_a_process_whose_client_had_a_bad_option_still_exits():
    code = (
        "from iii import III, InitOptions\n"
        "try:\n"
        "    III('ws://127.0.0.1:9', InitOptions(max_message_size=-1))\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert "refused: InitOptions.max_message_size" in done.stdout


def test_registering_a_function_id_twice_is_refused(make_worker):
    worker = make_worker()
    fid = unique()
    ref = worker.register_function(fid, lambda d: 1)
    with pytest.raises(ValueError, match=f"{fid}.*already registered"):
        worker.register_function(fid, lambda d: 2)
    with pytest.raises(ValueError, match="already registered"):
        worker.register_function({"id": fid}, lambda d: 2)
    ref.unregister()
    worker.register_function(fid, lambda d: 3)  # free again once unregistered
    # The three messages reach the engine in order, so this call meets the new handler.
    assert worker.trigger({"function_id": fid, "payload": {}}) == 3


@pytest.mark.parametrize("bad", ["", "   "])
def test_an_empty_function_id_is_refused(make_worker, bad):
    worker = make_worker()
    with pytest.raises(ValueError, match="non-empty id"):
        worker.register_function(bad, lambda d: 1)


def test_a_handler_that_is_not_callable_is_refused(make_worker):
    worker = make_worker()
    fid = unique()
    with pytest.raises(TypeError, match="callable"):
        worker.register_function(fid, "not a function")  # type: ignore[arg-type]
    worker.register_function(fid, lambda d: 1)  # the failed attempt left nothing behind
    assert worker.trigger({"function_id": fid, "payload": {}}) == 1


class Order(BaseModel):
    sku: str
    quantity: int


DIALECT = "https://json-schema.org/draft/2020-12/schema"


class NoopTriggers(TriggerHandler[Any]):
    def register_trigger(self, config: TriggerConfig[Any]) -> None:
        pass

    def unregister_trigger(self, config: TriggerConfig[Any]) -> None:
        pass


def test_formats_from_pydantic_models_carry_the_schema_dialect(make_worker):
    worker = make_worker()
    fid, type_id = unique("typed"), unique("type")

    def handler(order: Order) -> Order:
        return order

    worker.register_function(fid, handler)
    worker.register_trigger_type(
        {"id": type_id, "description": "d", "trigger_request_format": Order, "call_request_format": Order},
        NoopTriggers(),
    )
    wait_registered(worker, fid)
    listed = next(f for f in worker.list_functions() if f.function_id == fid)
    formats = [listed.request_format, listed.response_format]
    wait_until(lambda: any(t.id == type_id for t in worker.list_trigger_types()))
    trigger_type = next(t for t in worker.list_trigger_types() if t.id == type_id)
    formats += [trigger_type.trigger_request_format, trigger_type.call_request_format]
    for fmt in formats:
        assert fmt is not None
        assert fmt["$schema"] == DIALECT
        assert set(fmt["properties"]) == {"sku", "quantity"}


def test_handle_message_routes_a_message_like_one_from_the_engine(make_worker):
    worker = make_worker()
    fid = unique()
    seen = threading.Event()
    worker.register_function(fid, lambda data: seen.set())
    frame = f'{{"type":"invokefunction","function_id":"{fid}","data":{{"x":1}}}}'
    asyncio.run(worker._handle_message(frame))
    assert seen.wait(5)


def test_to_dict_gives_the_message_as_a_dict(make_worker):
    from iii.types import RegisterFunctionMessage

    worker = make_worker()
    message = RegisterFunctionMessage(id="f", description="d")
    as_dict = worker._to_dict(message)
    assert as_dict["id"] == "f" and as_dict["description"] == "d" and as_dict["type"] == "registerfunction"
    assert "metadata" not in as_dict
    assert worker._to_dict({"type": "x"}) == {"type": "x"}


def test_to_dict_keeps_a_null_result_that_was_given(make_worker):
    # As on the wire: a handler's None is answered as "result": null (docs/protocol.md C.7).
    from iii.iii_types import InvocationResultMessage

    worker = make_worker()
    answer = worker._to_dict(InvocationResultMessage(invocation_id="i", function_id="f", result=None))
    assert answer == {"type": "invocationresult", "invocation_id": "i", "function_id": "f", "result": None}
    failed = worker._to_dict(InvocationResultMessage(invocation_id="i", function_id="f", error={"code": "x"}))
    assert "result" not in failed and failed["error"] == {"code": "x"}


def test_an_option_given_a_bool_is_refused_as_a_type_error():
    # Python's bool is an int: True must not pass as a one-millisecond timeout.
    with pytest.raises(TypeError, match="connect_timeout_ms"):
        III("ws://127.0.0.1:9", InitOptions(connect_timeout_ms=True))
