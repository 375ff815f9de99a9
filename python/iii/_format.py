"""Derive JSON Schemas for function registrations from Python type hints.

``register_function("id", handler)`` advertises the request and response formats of a handler
from the annotation of its first parameter and of its return value. The schemas produced here
are the same as those of the official ``iii-sdk`` 0.25.0 (0.11.0's, plus bare containers):

* ``str`` / ``int`` / ``float`` / ``bool`` / ``NoneType`` map to the JSON types ``string`` /
  ``integer`` / ``number`` / ``boolean`` / ``null``;
* ``list[X]`` maps to an ``array`` (with ``items`` when ``X`` is describable), ``dict[K, V]`` to
  an ``object`` (with ``additionalProperties`` when ``V`` is describable); a bare ``list`` /
  ``dict`` to a plain ``array`` / ``object`` (0.11.0 gave ``None`` for those);
* ``X | None`` adds ``"null"`` to the ``type`` of ``X`` (when ``X`` has a single ``type``);
* a pydantic model maps to its ``model_json_schema()``;
* anything else (other unions, ``Any``, TypedDicts, dataclasses, enums, literals, unresolvable
  names) is not describable and yields ``None``.

The outermost schema carries a ``$schema`` key naming JSON Schema draft 2020-12.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "extract_request_format",
    "extract_response_format",
    "handler_input_model",
    "python_type_to_format",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}

_UNION_ORIGINS: tuple[Any, ...] = (Union, types.UnionType)


def python_type_to_format(annotation: Any) -> dict[str, Any] | None:
    """Return the JSON Schema describing ``annotation``, or ``None`` if it has none."""
    schema = _describe(annotation)
    if schema is None:
        return None
    schema["$schema"] = JSON_SCHEMA_DIALECT
    return schema


def _describe(tp: Any) -> dict[str, Any] | None:
    """The schema of ``tp`` without the ``$schema`` marker (a fresh dict each call)."""
    if tp is None:
        # A bare ``None`` means "no annotation" here; ``-> None`` arrives as NoneType once
        # resolved by ``get_type_hints``.
        return None
    scalar = _scalar_name(tp)
    if scalar is not None:
        return {"type": scalar}
    if inspect.isclass(tp) and issubclass(tp, BaseModel):
        return tp.model_json_schema()

    origin = get_origin(tp)
    args = get_args(tp)
    # A bare ``list`` / ``dict`` (no parameters) is an array / object, as in iii-sdk 0.25.0
    # (0.11.0 gave no format for them).
    if tp is list:
        origin = list
    elif tp is dict:
        origin = dict
    if origin is list:
        schema: dict[str, Any] = {"type": "array"}
        item = _describe(args[0]) if args else None
        if item is not None:
            schema["items"] = item
        return schema
    if origin is dict:
        schema = {"type": "object"}
        value = _describe(args[1]) if len(args) == 2 else None
        if value is not None:
            schema["additionalProperties"] = value
        return schema
    if origin in _UNION_ORIGINS:
        return _describe_optional(args)
    return None


def _scalar_name(tp: Any) -> str | None:
    try:
        return _SCALARS.get(tp)
    except TypeError:  # unhashable annotation objects
        return None


def _describe_optional(args: tuple[Any, ...]) -> dict[str, Any] | None:
    """Only ``X | None`` is describable; other unions are not."""
    none_type = type(None)
    if len(args) != 2 or none_type not in args:
        return None
    inner_type = args[0] if args[1] is none_type else args[1]
    inner = _describe(inner_type)
    if inner is None:
        return None
    current = inner.get("type")
    if isinstance(current, str):
        # Rebuild to keep the key order of the inner schema.
        return {key: ([value, "null"] if key == "type" else value) for key, value in inner.items()}
    # Schemas without a single ``type`` (e.g. a ``$ref`` to a recursive model) stay as they are.
    return inner


# --------------------------------------------------------------------------- handlers


def _hints_and_first_param(func: Any) -> tuple[dict[str, Any], inspect.Parameter | None] | None:
    """Resolved type hints of ``func`` and its first parameter; ``None`` if not introspectable."""
    try:
        hints = get_type_hints(func)
        params = list(inspect.signature(func).parameters.values())
    except Exception:
        return None
    return hints, (params[0] if params else None)


def extract_request_format(func: Any) -> dict[str, Any] | None:
    """JSON Schema of the first parameter of ``func`` (the payload), or ``None``."""
    found = _hints_and_first_param(func)
    if found is None:
        return None
    hints, first = found
    if first is None or first.name not in hints:
        return None
    return python_type_to_format(hints[first.name])


def extract_response_format(func: Any) -> dict[str, Any] | None:
    """JSON Schema of the return annotation of ``func``, or ``None``."""
    found = _hints_and_first_param(func)
    if found is None:
        return None
    hints, _ = found
    if "return" not in hints:
        return None
    return python_type_to_format(hints["return"])


def handler_input_model(handler: Any) -> type[BaseModel] | None:
    """The pydantic model class the first parameter of ``handler`` is annotated with.

    String annotations (including those made lazy by ``from __future__ import annotations``)
    are resolved with :func:`typing.get_type_hints`. If resolution fails, a non-string
    annotation is still used as written. Callable objects are inspected through ``__call__``.
    Returns ``None`` when the handler takes no parameter or the annotation is not a model.
    """
    target = handler
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        call = getattr(type(handler), "__call__", None)  # noqa: B004 - want the class attribute
        if call is None or not inspect.isfunction(call):
            return None
        target = handler.__call__
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None
    if not params:
        return None
    first = params[0]
    annotation: Any
    try:
        annotation = get_type_hints(target).get(first.name, first.annotation)
    except Exception:
        annotation = first.annotation
    if isinstance(annotation, typing.ForwardRef) or isinstance(annotation, str):
        return None
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    return None
