"""The listing plans on canned engine answers: both shapes, malformed entries, failed detail
calls. No engine involved."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from iii import InvocationError
from iii import _listings as listings


class Canned:
    """Answers calls from a table; records what was asked."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: dict[str, Any]) -> Any:
        self.calls.append(request)
        answer = self.answers[request["function_id"]]
        if isinstance(answer, Exception):
            raise answer
        return answer(request["payload"]) if callable(answer) else answer

    async def call_async(self, request: dict[str, Any]) -> Any:
        return self(request)


def test_v011_functions_come_from_one_call() -> None:
    engine = Canned(
        {
            "engine::functions::list": {
                "functions": [
                    {"function_id": "a::f", "request_format": {"type": "object"}, "description": None},
                    "not an entry",
                    {"function_id": "b::g", "description": 42, "metadata": {"k": 1}},
                ]
            }
        }
    )
    got = listings.run(listings.functions("v0.11"), engine)
    assert [f.function_id for f in got] == ["a::f", "b::g"]
    assert got[0].request_format == {"type": "object"}
    assert got[1].description is None, "a wrongly typed field falls back to its default"
    assert got[1].metadata == {"k": 1}
    assert len(engine.calls) == 1


def _info(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "functions": [
            {"function_id": fid, "error": "not_found"}
            if fid.endswith("gone")
            else {"function_id": fid, "request_schema": {"id": fid}, "namespace": payload.get("namespace")}
            for fid in payload["function_ids"]
        ]
    }


def test_head_functions_get_formats_in_batches_per_namespace() -> None:
    listed = [{"function_id": f"a::f{i}", "namespace": "default", "worker_name": "w"} for i in range(70)]
    listed += [{"function_id": "t::x", "namespace": "team"}, {"function_id": "t::gone", "namespace": "team"}]
    engine = Canned({"engine::functions::list": {"functions": listed}, "engine::functions::info": _info})
    got = listings.run(listings.functions("head"), engine)
    assert len(got) == 72
    assert got[0].request_format == {"id": "a::f0"} and got[69].request_format == {"id": "a::f69"}
    assert got[70].request_format == {"id": "t::x"}
    assert got[71].request_format is None and got[71].response_format is None
    batches = [c["payload"] for c in engine.calls[1:]]
    assert [len(b["function_ids"]) for b in batches] == [32, 32, 6, 2]
    assert [b["namespace"] for b in batches] == ["default", "default", "default", "team"]
    assert got[0].model_extra == {"namespace": "default", "worker_name": "w"}


def test_head_formats_are_none_when_info_is_refused() -> None:
    engine = Canned(
        {
            "engine::functions::list": {"functions": [{"function_id": "a::f"}]},
            "engine::functions::info": InvocationError("FORBIDDEN", "not visible"),
        }
    )
    (f,) = asyncio.run(listings.run_async(listings.functions("head"), engine.call_async))
    assert (f.function_id, f.request_format) == ("a::f", None)


def test_the_listing_call_itself_still_raises() -> None:
    engine = Canned({"engine::functions::list": InvocationError("FORBIDDEN", "no")})
    with pytest.raises(InvocationError):
        listings.run(listings.functions("head"), engine)


def test_head_workers_get_their_functions_from_the_function_listing() -> None:
    engine = Canned(
        {
            "engine::workers::list": {
                "workers": [
                    {
                        "id": "1",
                        "name": "w",
                        "namespace": "default",
                        "status": "connected",
                        "ip_address": None,
                    },
                    {"id": "2", "name": "w", "namespace": "team", "status": "connected"},
                    {"id": "iii-stream", "name": "iii-stream", "runtime": "engine", "status": "available"},
                    {"id": "3", "name": None, "function_count": "many"},
                ]
            },
            "engine::functions::list": {
                "functions": [
                    {"function_id": "b::f", "worker_name": "w", "namespace": "default"},
                    {"function_id": "a::f", "worker_name": "w", "namespace": "default"},
                    {"function_id": "t::f", "worker_name": "w", "namespace": "team"},
                    {"function_id": "stream::get", "worker_name": "iii-stream"},
                ]
            },
        }
    )
    got = {w.id: w for w in listings.run(listings.workers("head"), engine)}
    assert got["1"].functions == ["a::f", "b::f"]
    assert got["2"].functions == ["t::f"]
    assert got["iii-stream"].functions == ["stream::get"]
    assert got["3"].functions == [] and got["3"].function_count == 0
    assert engine.calls[1]["payload"] == {"include_internal": True}


def test_bindings_and_types_in_both_shapes() -> None:
    old = Canned(
        {
            "engine::triggers::list": {"triggers": [{"id": "t", "trigger_type": "http", "function_id": "f"}]},
            "engine::trigger-types::list": {"trigger_types": [{"id": "http", "trigger_request_format": {}}]},
        }
    )
    (binding,) = listings.run(listings.triggers("v0.11", False), old)
    assert (binding.trigger_type, binding.config, binding.metadata) == ("http", None, None)
    (tt,) = listings.run(listings.trigger_types("v0.11", True), old)
    assert tt.trigger_request_format == {}
    assert old.calls[1]["payload"] == {"include_internal": True}

    head = Canned(
        {
            "engine::registered-triggers::list": {
                "registered_triggers": [
                    {
                        "id": "t",
                        "trigger_type": "http",
                        "function_id": "f",
                        "config": {"p": 1},
                        "worker_name": "w",
                    }
                ]
            },
            "engine::triggers::list": {
                "triggers": [{"id": "http", "namespace": "default", "description": "d"}, {"id": "gone"}]
            },
            "engine::triggers::info": lambda p: (
                {"configuration_schema": {"c": 1}, "request_schema": {"r": 1}}
                if p["id"] == "http"
                else "junk"
            ),
        }
    )
    (binding,) = listings.run(listings.triggers("head", False), head)
    assert (binding.config, binding.metadata) == ({"p": 1}, None)
    http, gone = listings.run(listings.trigger_types("head", False), head)
    assert (http.trigger_request_format, http.call_request_format) == ({"c": 1}, {"r": 1})
    assert (gone.trigger_request_format, gone.call_request_format) == (None, None)
    assert head.calls[-2]["payload"] == {"id": "http", "namespace": "default"}


def test_functions_available_entries_are_completed_without_listing_again() -> None:
    engine = Canned({"engine::functions::info": _info})
    entries = listings.entries(
        {"event": "functions_changed", "functions": [{"function_id": "x::f"}, 3]}, "functions"
    )
    (f,) = listings.run(listings.functions("head", entries), engine)
    assert f.request_format == {"id": "x::f"}
    assert [c["function_id"] for c in engine.calls] == ["engine::functions::info"]
    assert listings.entries("garbage", "functions") == []


def test_list_functions_hides_engine_ids_on_both_generations() -> None:
    listed = {"functions": [{"function_id": "engine::queue::enqueue"}, {"function_id": "a::f"}]}
    for generation in ("v0.11", "head"):
        engine = Canned({"engine::functions::list": listed, "engine::functions::info": _info})
        assert [f.function_id for f in listings.run(listings.functions(generation), engine)] == ["a::f"]
    entries = listings.entries(listed, "functions")
    engine = Canned({"engine::functions::info": _info})
    assert len(listings.run(listings.functions("head", entries), engine)) == 2, "notifications keep them"
