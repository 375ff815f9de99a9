"""Schema extraction from type hints.

The expected values below mirror what the official pure-Python ``iii-sdk`` 0.11.0 returns for
the same annotations (observed by running its functions), so that functions registered by this
SDK advertise the same request/response formats.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional, TypedDict, Union

import pytest
from pydantic import BaseModel, Field

from iii._format import (
    JSON_SCHEMA_DIALECT,
    extract_request_format,
    extract_response_format,
    handler_input_model,
    python_type_to_format,
)

D = {"$schema": JSON_SCHEMA_DIALECT}


class Inner(BaseModel):
    x: int
    y: Optional[str] = None


class Outer(BaseModel):
    """Outer doc"""

    name: str = Field(description="the name")
    inner: Inner
    items: list[Inner]
    opt: Optional[Inner] = None


class Node(BaseModel):
    children: list[Node] = []


class TD(TypedDict):
    a: int


@dataclasses.dataclass
class DC:
    a: int


INNER_SCHEMA = {
    "properties": {
        "x": {"title": "X", "type": "integer"},
        "y": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Y"},
    },
    "required": ["x"],
    "title": "Inner",
    "type": "object",
}


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, {"type": "string", **D}),
        (int, {"type": "integer", **D}),
        (float, {"type": "number", **D}),
        (bool, {"type": "boolean", **D}),
        (type(None), {"type": "null", **D}),
        (list[int], {"type": "array", "items": {"type": "integer"}, **D}),
        (list[list[int]], {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}, **D}),
        (list[Any], {"type": "array", **D}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}, **D}),
        (dict[int, str], {"type": "object", "additionalProperties": {"type": "string"}, **D}),
        (dict[str, Any], {"type": "object", **D}),
        (Optional[int], {"type": ["integer", "null"], **D}),
        (str | None, {"type": ["string", "null"], **D}),
        (Optional[list[int]], {"type": ["array", "null"], "items": {"type": "integer"}, **D}),
        (list[Optional[int]], {"type": "array", "items": {"type": ["integer", "null"]}, **D}),
        # iii-sdk 0.25.0: bare containers have a format too (0.11.0 gave none).
        (list, {"type": "array", **D}),
        (dict, {"type": "object", **D}),
        (Optional[dict], {"type": ["object", "null"], **D}),
        (list | None, {"type": ["array", "null"], **D}),
    ],
)
def test_describable_annotations_match_official(annotation: Any, expected: dict[str, Any]) -> None:
    assert python_type_to_format(annotation) == expected


@pytest.mark.parametrize(
    "annotation",
    [None, Any, Union[int, str], Union[int, str, None], Optional[Any], bytes, TD, DC, "str"],
)
def test_undescribable_annotations_give_none(annotation: Any) -> None:
    assert python_type_to_format(annotation) is None


def test_schema_marker_is_only_on_the_outermost_schema_and_last() -> None:
    schema = python_type_to_format(list[int])
    assert schema is not None
    assert list(schema)[-1] == "$schema"
    assert "$schema" not in schema["items"]


def test_pydantic_model_uses_its_json_schema() -> None:
    assert python_type_to_format(Inner) == {**INNER_SCHEMA, **D}


def test_nested_pydantic_model_matches_official() -> None:
    # Mirrors iii-sdk 0.11.0's output for the same model: pydantic's validation-mode schema
    # with $defs for the nested model, plus the $schema marker.
    assert python_type_to_format(Outer) == {
        "$defs": {"Inner": INNER_SCHEMA},
        "description": "Outer doc",
        "properties": {
            "name": {"description": "the name", "title": "Name", "type": "string"},
            "inner": {"$ref": "#/$defs/Inner"},
            "items": {"items": {"$ref": "#/$defs/Inner"}, "title": "Items", "type": "array"},
            "opt": {"anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}], "default": None},
        },
        "required": ["name", "inner", "items"],
        "title": "Outer",
        "type": "object",
        **D,
    }


def test_optional_model_and_models_inside_containers() -> None:
    assert python_type_to_format(Optional[Inner]) == {**INNER_SCHEMA, "type": ["object", "null"], **D}
    assert python_type_to_format(list[Inner]) == {"type": "array", "items": INNER_SCHEMA, **D}
    assert python_type_to_format(dict[str, Inner]) == {
        "type": "object",
        "additionalProperties": INNER_SCHEMA,
        **D,
    }


def test_optional_of_a_ref_only_schema_is_left_unchanged() -> None:
    # A self-referencing model's schema is a $ref without a top-level "type": the official
    # SDK returns it unchanged for Optional[...] rather than adding "null".
    plain = python_type_to_format(Node)
    assert plain is not None and "$ref" in plain and "type" not in plain
    assert python_type_to_format(Optional[Node]) == plain


def test_order_of_type_key_is_preserved_when_made_nullable() -> None:
    schema = python_type_to_format(Optional[Inner])
    assert schema is not None
    assert list(schema) == ["properties", "required", "title", "type", "$schema"]


# --------------------------------------------------------------------------- handlers


def typed(data: Inner) -> list[str]:
    return []


async def typed_async(data: int) -> Inner:
    return Inner(x=data)


def untyped(data):  # noqa: ANN001
    return data


def returns_none(data: Any) -> None:
    return None


def unresolvable(data: Missing) -> int:  # noqa: F821
    return 1


def keyword_only(*, data: int) -> int:
    return data


class Handlers:
    def method(self, data: bool) -> float:
        return 1.0

    def __call__(self, data: str) -> str:
        return data


def test_extract_request_and_response_formats() -> None:
    assert extract_request_format(typed) == {**INNER_SCHEMA, **D}
    assert extract_response_format(typed) == {"type": "array", "items": {"type": "string"}, **D}
    assert extract_request_format(typed_async) == {"type": "integer", **D}
    assert extract_response_format(typed_async) == {**INNER_SCHEMA, **D}


def test_missing_hints_give_none() -> None:
    assert extract_request_format(untyped) is None
    assert extract_response_format(untyped) is None
    assert extract_request_format(lambda d: d) is None
    assert extract_request_format(lambda: None) is None


def test_return_none_annotation_is_the_null_type() -> None:
    # Matches the official SDK: ``-> None`` advertises {"type": "null"}, ``data: Any`` nothing.
    assert extract_request_format(returns_none) is None
    assert extract_response_format(returns_none) == {"type": "null", **D}


def test_unresolvable_hint_gives_none_for_both() -> None:
    assert extract_request_format(unresolvable) is None
    assert extract_response_format(unresolvable) is None


def test_bound_methods_and_other_callables() -> None:
    assert extract_request_format(keyword_only) == {"type": "integer", **D}
    assert extract_request_format(Handlers().method) == {"type": "boolean", **D}
    assert extract_response_format(Handlers().method) == {"type": "number", **D}
    # The official SDK does not look into callable objects or partials.
    assert extract_request_format(Handlers()) is None
    assert extract_request_format(functools.partial(typed_async)) is None
    assert extract_request_format(None) is None


def test_handler_input_model() -> None:
    assert handler_input_model(typed) is Inner
    assert handler_input_model(typed_async) is None
    assert handler_input_model(untyped) is None
    assert handler_input_model(lambda: None) is None
    assert handler_input_model(unresolvable) is None


def test_handler_input_model_resolves_string_annotations_and_callables() -> None:
    # This module uses ``from __future__ import annotations``: every annotation is a string.
    def local(data: Outer, metadata: Any = None) -> None:
        return None

    class Callable_:
        def __call__(self, data: Inner) -> None:
            return None

    assert handler_input_model(local) is Outer
    assert handler_input_model(Callable_()) is Inner
