"""The observer filter language (``iii-filter`` v1): a thin view over the official Rust crate.

A filter is validated, normalized and compiled once, by the same ``iii-filter`` crate the engine
uses (``_iii.Filter``), so this SDK and the engine answer alike on every filter and every
document. Evaluation runs in Rust: the parts of the document the filter's paths reach are read into JSON
there, the way the official Python evaluator sees host values (``_json_view`` below handles the values
that are not plain JSON), and the crate evaluates the filter. Nothing here re-implements the
language.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from . import _iii

__all__ = ["MATCH_ALL", "CompiledFilter", "FilterError", "FilterErrorCode", "compile_filter"]

#: Nesting depth of filters (the top-level filter is at depth 1).
MAX_DEPTH = 8
#: Operator / clause nodes (each value operator, ``$or`` and ``$not`` counts one).
MAX_NODES = 64
#: Items of one ``$in`` / ``$nin`` array.
MAX_SET_ITEMS = 256
#: Path segments after the root.
MAX_PATH_SEGMENTS = 16
#: UTF-8 bytes of the compact JSON encoding of the filter.
MAX_ENCODED_BYTES = 8192
#: Numeric literals in a filter must satisfy ``|n| <= 2^53``.
MAX_SAFE_LITERAL = 2**53
#: Arrays / objects nested in one ``$eq`` / ``$ne`` operand or one ``$in`` / ``$nin`` item.
MAX_LITERAL_DEPTH = 32
#: Arrays / objects nested in the whole filter value (the top-level object is 1).
MAX_JSON_DEPTH = 120

FilterErrorCode = Literal["INVALID_FILTER", "INVALID_FILTER_PATH"]


class FilterError(ValueError):
    """A filter the language rejects.

    ``code`` is the protocol error code: ``INVALID_FILTER`` for every rule of the language
    (syntax, operators, operands, limits); ``INVALID_FILTER_PATH`` for a path a function's
    schema rules out (the engine's check).
    """

    def __init__(self, code: FilterErrorCode, message: str) -> None:
        # Both in `args`, so the error pickles (and unpickles) whole.
        super().__init__(code, message)
        self.code: FilterErrorCode = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    @classmethod
    def invalid(cls, message: str) -> FilterError:
        return cls("INVALID_FILTER", message)


class _Absent:
    """What a value JSON cannot encode reads as: nothing."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def _json_view(value: Any) -> Any:
    """One step of JSON encoding for a document value that is not plain JSON (the extension
    handles ``None``, ``str``, ``bool``, ``int``, ``float``, ``dict``, ``list`` and ``tuple``
    itself): a JSON-shaped value, or :data:`ABSENT`.

    As the official evaluator reads them: ``Decimal`` is a number (``null`` when no double
    holds it), ``datetime`` / ``date`` / ``time`` their ISO string (pydantic's JSON form), a
    pydantic model its JSON dump (by alias, without ``None`` fields), and other values what
    pydantic encodes them as. A value it cannot encode is absent.
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, (datetime, date, time)):
        return to_jsonable_python(value)
    if isinstance(value, BaseModel):
        try:
            return value.model_dump(mode="json", by_alias=True, exclude_none=True)
        except Exception:
            return ABSENT
    try:
        return to_jsonable_python(value)
    except Exception:
        return ABSENT


class CompiledFilter:
    """A validated filter, compiled once (by the ``iii-filter`` crate).

    Attributes:
        source: The filter as JSON (what travels on the wire).
        match_all: ``{}``: every document matches.
        roots: The roots any clause references (``input``, ``output``,
            ``error``, ``caller``, ``metadata``).
    """

    __slots__ = ("_compiled", "match_all", "roots", "source")

    def __init__(self, src: Any, trusted: bool = False) -> None:
        compiled = _iii.Filter(src, trusted)
        self._compiled = compiled
        self.roots: frozenset[str] = frozenset(compiled.roots)
        # Validated above: only JSON values, so this round trip cannot fail.
        self.source: dict[str, Any] = json.loads(json.dumps(src, separators=(",", ":"), ensure_ascii=False))
        self.match_all: bool = compiled.match_all

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """Evaluates the filter on a document ``{input?, output?, error?,
        caller?, metadata?}``: a missing key is an absent root, ``None`` the
        value ``null``. Total: never raises for a valid filter, whatever the
        host values hold (an evaluation that fails is a non-match).
        """
        if self.match_all:
            return True
        return self._compiled.matches(doc)

    def __repr__(self) -> str:
        return f"CompiledFilter({self.source!r})"


def compile_filter(src: Any, *, trusted: bool = False) -> CompiledFilter:
    """Validates and compiles a filter.

    ``trusted``: the filter was validated by the engine (the normal form it
    pushes to a function's owner); skip the encoded size limit, which the
    engine already applied to the filter as written.

    Raises:
        FilterError: ``INVALID_FILTER`` when the filter is not valid.
    """
    return CompiledFilter(src, trusted)


#: The filter that matches every document (``{}``).
MATCH_ALL = CompiledFilter({})
