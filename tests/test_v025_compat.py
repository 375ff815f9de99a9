"""Behaviours of iii-sdk 0.25.0 found missing by running its own offline tests against this
package: each test here pins one of them, in our words."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any, Optional

import pytest

from iii.errors import InvocationError, QueueUnavailableError, enqueue_error
from iii.format_utils import extract_request_format, extract_response_format, python_type_to_format
from iii.helpers import create_stream
from iii.stream import IStream, UpdateAppend, UpdateMerge
from iii.types import StreamResponse
from iii_helpers.stream import UpdateMerge as HelpersUpdateMerge

from conftest import unique, wait_registered

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _RecordingWriter:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_message_async(self, text: str) -> None:
        self.sent.append(text)


def test_stream_response_control_messages_are_compact_json_with_utf8_kept() -> None:
    writer = _RecordingWriter()
    response = StreamResponse(writer)  # type: ignore[arg-type]

    async def reply() -> None:
        await response.status(404)
        await response.headers({"x-name": "café ☕"})

    asyncio.run(reply())
    assert writer.sent == [
        '{"type":"set_status","status_code":404}',
        '{"type":"set_headers","headers":{"x-name":"café ☕"}}',
    ]
    assert [json.loads(m)["type"] for m in writer.sent] == ["set_status", "set_headers"]


@pytest.mark.parametrize("model", [UpdateMerge, UpdateAppend])
def test_root_merge_and_append_have_no_path_key(model: Any) -> None:
    assert model(value={"a": 1}).model_dump() == {"type": model(value=0).type, "value": {"a": 1}}
    assert "path" not in model(path=None, value=1).model_dump(mode="json")
    assert model.model_validate({"type": model(value=0).type, "path": None, "value": 1}).path is None
    # Explicit paths, the empty string included, still go out as given.
    assert model(path="", value=1).model_dump()["path"] == ""
    assert model(path=["a", "b"], value=1).model_dump()["path"] == ["a", "b"]


def test_helpers_update_merge_is_the_same_model() -> None:
    assert HelpersUpdateMerge is UpdateMerge
    assert UpdateMerge(value={}).path is None


def test_invocation_error_carries_function_and_invocation_ids() -> None:
    err = InvocationError("FORBIDDEN", "not allowed", function_id="orders::list", invocation_id="inv-9")
    assert (err.code, err.message, err.stacktrace) == ("FORBIDDEN", "not allowed", None)
    assert (err.function_id, err.invocation_id) == ("orders::list", "inv-9")
    assert str(err) == "FORBIDDEN: not allowed"
    bare = InvocationError("TIMEOUT", "gone")
    assert (bare.function_id, bare.invocation_id) == (None, None)
    # The positional third argument is still the remote stack trace.
    assert InvocationError("E", "m", "trace").stacktrace == "trace"


def test_queue_unavailable_error_keeps_the_call_ids() -> None:
    original = InvocationError(
        "enqueue_error", "No queue provider registered", "st", function_id="f", invocation_id="i"
    )
    mapped = enqueue_error(original)
    assert isinstance(mapped, QueueUnavailableError)
    assert (mapped.stacktrace, mapped.function_id, mapped.invocation_id) == ("st", "f", "i")


class _ShimOnlyClient:
    """A stand-in client like those written against iii-sdk 0.25.0: it implements only the
    method the free function ``create_stream`` forwards to."""

    def __init__(self) -> None:
        self.served: list[tuple[str, Any]] = []

    def _helpers_create_stream(self, stream_name: str, stream: Any) -> None:
        self.served.append((stream_name, stream))


class _LegacyClient:
    def __init__(self) -> None:
        self.served: list[tuple[str, Any]] = []

    def create_stream(self, stream_name: str, stream: Any) -> None:
        self.served.append((stream_name, stream))


def _stream() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)

        class Notes(IStream[Any]):
            async def get(self, input: Any) -> Any:
                return None

            async def set(self, input: Any) -> Any:
                return None

            async def delete(self, input: Any) -> Any:
                return None

            async def list(self, input: Any) -> Any:
                return []

            async def list_groups(self, input: Any) -> Any:
                return []

            async def update(self, input: Any) -> Any:
                return None

    return Notes()


@pytest.mark.parametrize("client_type", [_ShimOnlyClient, _LegacyClient])
def test_create_stream_reaches_either_client_method_and_warns_once(client_type: Any) -> None:
    client, stream = client_type(), _stream()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        create_stream(client, "notes", stream)
    assert client.served == [("notes", stream)]
    assert [w.category for w in caught] == [FutureWarning]
    assert caught[0].filename == __file__


def test_the_client_has_the_create_stream_shim() -> None:
    from iii import III

    assert callable(III._helpers_create_stream)


def test_bare_list_and_dict_have_formats() -> None:
    assert python_type_to_format(dict) == {"type": "object", "$schema": DIALECT}
    assert python_type_to_format(list) == {"type": "array", "$schema": DIALECT}
    assert python_type_to_format(Optional[list]) == {"type": ["array", "null"], "$schema": DIALECT}

    def handler(data: dict) -> list:  # type: ignore[type-arg]
        return [data]

    assert extract_request_format(handler) == {"type": "object", "$schema": DIALECT}
    assert extract_response_format(handler) == {"type": "array", "$schema": DIALECT}


def test_a_failed_call_names_the_function_it_called(make_worker: Any) -> None:
    server, client = make_worker(), make_worker()
    fid = unique("fails")

    def fail(data: Any) -> None:
        raise ValueError("no stock")

    server.register_function(fid, fail)
    wait_registered(client, fid)
    with pytest.raises(InvocationError) as sync_err:
        client.trigger({"function_id": fid, "payload": {}})
    assert sync_err.value.function_id == fid
    assert "no stock" in sync_err.value.message

    async def call() -> Any:
        return await client.trigger_async({"function_id": fid, "payload": {}})

    with pytest.raises(InvocationError) as async_err:
        asyncio.run(call())
    assert async_err.value.function_id == fid


def test_a_bad_observe_value_is_refused_and_local_dispatch_can_be_turned_off(make_worker):
    worker = make_worker()
    with pytest.raises(TypeError, match="observe"):
        worker.register_function("refused::observed", lambda d: d, observe=object())
    fid = "local::off"
    worker.register_function(fid, lambda d: d["n"] + 1, local_dispatch=False)
    wait_registered(worker, fid)
    assert worker.trigger({"function_id": fid, "payload": {"n": 1}}) == 2
