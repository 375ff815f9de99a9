"""The engine's listings in the public result types, for either engine generation.

Engine v0.11.0 answers each listing with one call whose entries carry everything. Newer
engines ("HEAD", docs/protocol.md Part B) split them: formats only through
``engine::functions::info`` (at most 32 ids per call), trigger-type schemas through
``engine::triggers::info``, bindings under ``engine::registered-triggers::list`` and trigger
types under ``engine::triggers::list``. Each listing here is a *plan*: a generator that yields
the calls it needs (a batch at a time) and returns the result, so one plan serves the blocking
and the async methods (:func:`run` and :func:`run_async`). Whatever the engine does not
provide is ``None``; malformed entries are skipped or their bad fields dropped, never a
validation error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ._models import FunctionInfo, TriggerInfo, TriggerTypeInfo, WorkerInfo
from .errors import InvocationError

#: ``III.engine_generation`` values.
V011 = "v0.11"
HEAD = "head"

#: The engine caps ``engine::functions::info`` batches at 32 ids.
INFO_BATCH = 32

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Call:
    """One engine call a plan needs. ``optional`` ones give ``None`` instead of raising."""

    function_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    optional: bool = False

    def request(self) -> dict[str, Any]:
        return {"function_id": self.function_id, "payload": self.payload}


Plan = Generator[list[Call], list[Any], T]


def run(plan: Plan[T], trigger: Callable[[dict[str, Any]], Any]) -> T:
    """Runs a plan with blocking calls, one after the other."""
    try:
        calls = next(plan)
        while True:
            calls = plan.send([_guarded(c, trigger) for c in calls])
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(plan: Plan[T], trigger: Callable[[dict[str, Any]], Awaitable[Any]]) -> T:
    """Runs a plan with async calls; the calls of one batch run concurrently."""

    async def one(call: Call) -> Any:
        try:
            return await trigger(call.request())
        except InvocationError:
            if call.optional:
                return None
            raise

    try:
        calls = next(plan)
        while True:
            calls = plan.send(list(await asyncio.gather(*(one(c) for c in calls))))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _guarded(call: Call, trigger: Callable[[dict[str, Any]], Any]) -> Any:
    try:
        return trigger(call.request())
    except InvocationError:
        if call.optional:
            return None
        raise


# -- parsing ----------------------------------------------------------------------------------


def entries(result: Any, key: str) -> list[dict[str, Any]]:
    """The dict entries under ``key`` (or of a bare list); anything else is an empty list."""
    found = result.get(key) if isinstance(result, dict) else result
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def lenient(model: type[M], entry: dict[str, Any]) -> M:
    """``model`` from ``entry``; fields of the wrong type are dropped (so they take defaults)."""
    try:
        return model.model_validate(entry)
    except ValidationError as exc:
        bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    try:
        return model.model_validate({k: v for k, v in entry.items() if k not in bad})
    except ValidationError:
        return model.model_validate({})


def _is_engine(function_id: Any) -> bool:
    return isinstance(function_id, str) and function_id.startswith("engine::")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# -- functions --------------------------------------------------------------------------------


def functions(generation: str, listed: list[dict[str, Any]] | None = None) -> Plan[list[FunctionInfo]]:
    """``list_functions()``; with ``listed``, only completes those entries (functions-available)."""
    if listed is None:
        (result,) = yield [Call("engine::functions::list")]
        # Newer engines also list `engine::queue::*`; v0.11.0 hides every `engine::` id, and
        # so does this method on both.
        listed = [e for e in entries(result, "functions") if not _is_engine(e.get("function_id"))]
    infos = [lenient(FunctionInfo, e) for e in listed]
    if generation != HEAD or not infos:
        return infos
    # HEAD lists no formats: fetch them per namespace, 32 ids per call.
    by_namespace: dict[str | None, list[str]] = {}
    for info, entry in zip(infos, listed, strict=True):
        ids = by_namespace.setdefault(_text(entry.get("namespace")), [])
        if info.function_id and info.function_id not in ids:
            ids.append(info.function_id)
    calls = []
    for namespace, ids in by_namespace.items():
        for start in range(0, len(ids), INFO_BATCH):
            payload: dict[str, Any] = {"function_ids": ids[start : start + INFO_BATCH]}
            if namespace is not None:
                payload["namespace"] = namespace
            calls.append(Call("engine::functions::info", payload, optional=True))
    details: dict[tuple[str | None, str], dict[str, Any]] = {}
    for call, result in zip(calls, (yield calls), strict=True):
        for detail in entries(result, "functions"):
            function_id = _text(detail.get("function_id"))
            if function_id and "error" not in detail:
                details[(call.payload.get("namespace"), function_id)] = detail
    for info, entry in zip(infos, listed, strict=True):
        detail = details.get((_text(entry.get("namespace")), info.function_id), {})
        info.request_format = detail.get("request_schema")
        info.response_format = detail.get("response_schema")
    return infos


# -- workers ----------------------------------------------------------------------------------


def workers(generation: str) -> Plan[list[WorkerInfo]]:
    if generation != HEAD:
        (result,) = yield [Call("engine::workers::list")]
        return [lenient(WorkerInfo, e) for e in entries(result, "workers")]
    # HEAD drops `functions` from workers; the function listing names each one's worker.
    listing = Call("engine::functions::list", {"include_internal": True}, optional=True)
    result, functions_result = yield [Call("engine::workers::list"), listing]
    owned: dict[tuple[str, str], list[str]] = {}
    for f in entries(functions_result, "functions"):
        function_id, worker = _text(f.get("function_id")), _text(f.get("worker_name"))
        if function_id and worker:
            owned.setdefault((_text(f.get("namespace")) or "default", worker), []).append(function_id)
    out = []
    for entry in entries(result, "workers"):
        info = lenient(WorkerInfo, entry)
        if functions_result is not None and info.name:
            namespace = _text(entry.get("namespace")) or "default"
            info.functions = sorted(owned.get((namespace, info.name), []))
        out.append(info)
    return out


# -- triggers and trigger types ----------------------------------------------------------------


def triggers(generation: str, include_internal: bool) -> Plan[list[TriggerInfo]]:
    if generation == HEAD:
        (result,) = yield [Call("engine::registered-triggers::list", {"include_internal": include_internal})]
        rows = entries(result, "registered_triggers")
    else:
        (result,) = yield [Call("engine::triggers::list", {"include_internal": include_internal})]
        rows = entries(result, "triggers")
    return [lenient(TriggerInfo, e) for e in rows]


def trigger_types(generation: str, include_internal: bool) -> Plan[list[TriggerTypeInfo]]:
    if generation != HEAD:
        (result,) = yield [Call("engine::trigger-types::list", {"include_internal": include_internal})]
        return [lenient(TriggerTypeInfo, e) for e in entries(result, "trigger_types")]
    (result,) = yield [Call("engine::triggers::list", {"include_internal": include_internal})]
    listed = entries(result, "triggers")
    types = [lenient(TriggerTypeInfo, e) for e in listed]
    calls = []
    for info, entry in zip(types, listed, strict=True):
        payload: dict[str, Any] = {"id": info.id}
        if _text(entry.get("namespace")):
            payload["namespace"] = entry["namespace"]
        calls.append(Call("engine::triggers::info", payload, optional=True))
    if calls:
        for info, detail in zip(types, (yield calls), strict=True):
            detail = detail if isinstance(detail, dict) else {}
            info.trigger_request_format = detail.get("configuration_schema")
            info.call_request_format = detail.get("request_schema")
    return types
