"""``iii.filter``: the observer filter language, compiled and evaluated by the official
``iii-filter`` crate (the engine's), with the public API and behaviour of iii-sdk 0.25.0's
``iii.filter``: the same names and signatures, the same error codes and messages, the same
reading of Python values as JSON.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import json
import os
import pathlib
import pickle
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, get_args

import pytest
from pydantic import BaseModel, Field

import iii.filter
from iii import _iii
from iii.filter import MATCH_ALL, CompiledFilter, FilterError, FilterErrorCode, compile_filter

# --- the public API --------------------------------------------------------------------------


def test_public_names_and_signatures() -> None:
    assert iii.filter.__all__ == [
        "CompiledFilter",
        "FilterError",
        "FilterErrorCode",
        "MATCH_ALL",
        "compile_filter",
    ]
    assert (
        str(inspect.signature(compile_filter))
        == "(src: 'Any', *, trusted: 'bool' = False) -> 'CompiledFilter'"
    )
    assert str(inspect.signature(CompiledFilter)) == "(src: 'Any', trusted: 'bool' = False) -> 'None'"
    assert str(inspect.signature(CompiledFilter.matches)) == "(self, doc: 'Mapping[str, Any]') -> 'bool'"
    assert str(inspect.signature(FilterError)) == "(code: 'FilterErrorCode', message: 'str') -> 'None'"
    assert get_args(FilterErrorCode) == ("INVALID_FILTER", "INVALID_FILTER_PATH")
    assert issubclass(FilterError, ValueError)
    assert CompiledFilter.__slots__ == ("_compiled", "match_all", "roots", "source")


def test_compiled_filter_attributes() -> None:
    f = compile_filter({"input.amount": {"$gte": 500}, "caller.worker_name": {"$prefix": "checkout-"}})
    assert isinstance(f, CompiledFilter)
    assert f.roots == frozenset({"input", "caller"})
    assert f.match_all is False
    assert f.source == {"input.amount": {"$gte": 500}, "caller.worker_name": {"$prefix": "checkout-"}}
    assert list(f.source) == ["input.amount", "caller.worker_name"]  # as written, in order
    assert repr(f) == f"CompiledFilter({f.source!r})"
    # The normal form, as the engine stores it (compiled by the same crate).
    assert json.loads(f._compiled.normalized_json()) == {
        "$and": [{"caller.worker_name": {"$prefix": "checkout-"}}, {"input.amount": {"$gte": 500}}]
    }


def test_source_is_the_json_of_the_filter() -> None:
    f = compile_filter({"input.a": {"$in": (1, 2.0, "x")}})
    assert f.source == {"input.a": {"$in": [1, 2.0, "x"]}}


def test_match_all() -> None:
    assert MATCH_ALL.match_all is True
    assert MATCH_ALL.roots == frozenset()
    assert MATCH_ALL.source == {}
    for doc in ({}, {"input": 1}, None, [1], "x"):
        assert MATCH_ALL.matches(doc)  # type: ignore[arg-type]
    # Filters that normalize to {} match everything too; a `$or` of {} is not `{}` itself.
    assert compile_filter({"$and": [{}, {"$and": [{}]}]}).match_all
    assert not compile_filter({"$or": [{}]}).match_all
    assert compile_filter({"$or": [{}]}).matches({})
    assert not compile_filter({"$not": {}}).matches({})


# --- evaluation --------------------------------------------------------------------------------

CHARGE = {
    "input.amount": {"$gte": 500},
    "output.charged": {"$exists": True},
    "caller.worker_name": {"$prefix": "checkout-"},
}


def test_filters_on_the_observed_envelope() -> None:
    f = compile_filter(CHARGE)
    hit = {"input": {"amount": 900}, "output": {"charged": 900}, "caller": {"worker_name": "checkout-7"}}
    assert f.matches(hit)
    assert not f.matches({**hit, "input": {"amount": 499}})
    assert not f.matches({**hit, "output": {}})
    assert not f.matches({**hit, "caller": {"worker_name": "indexer"}})
    assert not f.matches({k: v for k, v in hit.items() if k != "caller"})

    on_error = compile_filter(
        {"error.code": {"$in": ["CARD_DECLINED", "TIMEOUT"]}, "metadata.team": {"$eq": "oncall"}}
    )
    assert on_error.roots == frozenset({"error", "metadata"})
    assert on_error.matches(
        {"error": {"code": "CARD_DECLINED", "message": "no"}, "metadata": {"team": "oncall"}}
    )
    assert not on_error.matches({"error": {"code": "OTHER"}, "metadata": {"team": "oncall"}})
    assert not on_error.matches({"output": {"code": "CARD_DECLINED"}, "metadata": {"team": "oncall"}})

    caller_parent = compile_filter({"caller.parent.function_id": {"$eq": "orders::create"}})
    assert caller_parent.matches(
        {"caller": {"worker_name": "w", "parent": {"function_id": "orders::create"}}}
    )
    assert not caller_parent.matches({"caller": {"worker_name": "w"}})


def test_absent_and_null() -> None:
    assert compile_filter({"input.a": {"$ne": 1}}).matches({})
    assert compile_filter({"input.a": {"$nin": [1]}}).matches({"input": {}})
    assert not compile_filter({"input.a": {"$eq": None}}).matches({"input": {}})
    assert compile_filter({"input.a": {"$eq": None}}).matches({"input": {"a": None}})
    exists = compile_filter({"input.a": {"$exists": True}})
    assert exists.matches({"input": {"a": None}})
    assert not exists.matches({"input": {"b": 1}})
    output_null = compile_filter({"output": {"$exists": True}})
    assert output_null.matches({"output": None})
    assert not output_null.matches({"input": 1})


def test_operators() -> None:
    cases: list[tuple[dict[str, Any], Any, bool]] = [
        ({"$eq": 1}, 1.0, True),
        ({"$eq": 1}, True, False),  # a bool is not a number
        ({"$eq": {"k": [1, 2]}}, {"k": [1, 2]}, True),
        ({"$eq": {"k": [1, 2]}}, {"k": (1, 2)}, True),
        ({"$eq": {"k": 1}}, {"k": 1, "j": 2}, False),
        ({"$in": ["a", 1, None]}, None, True),
        ({"$gt": 1}, 1.5, True),
        ({"$gt": 1}, "2", False),  # ordering never mixes types
        ({"$lte": "m"}, "abc", True),
        ({"$prefix": "ab"}, "abc", True),
        ({"$prefix": "ab"}, ["ab"], False),
        ({"$any": {"$eq": "vip"}}, ["x", "vip"], True),
        ({"$any": {"@.sku": {"$eq": "a"}}}, [{"sku": "b"}, {"sku": "a"}], True),
        ({"$any": {}}, [], False),
        ({"$any": {}}, [0], True),
        ({"$any": {"$eq": 1}}, 1, False),
    ]
    for ops, value, expected in cases:
        assert compile_filter({"input.v": ops}).matches({"input": {"v": value}}) is expected, (ops, value)


def test_paths() -> None:
    assert compile_filter({"input.items.1.sku": {"$eq": "b"}}).matches(
        {"input": {"items": [{"sku": "a"}, {"sku": "b"}]}}
    )
    assert not compile_filter({"input.items.01": {"$exists": True}}).matches({"input": {"items": [1, 2]}})
    assert compile_filter({"input.a\\.b": {"$eq": 1}}).matches({"input": {"a.b": 1}})
    assert not compile_filter({"input.a.b": {"$exists": True}}).matches({"input": {"a": "scalar"}})
    assert compile_filter(
        {"$or": [{"input.a": {"$eq": 1}}, {"$not": {"metadata.k": {"$exists": True}}}]}
    ).matches({})


class _Model(BaseModel):
    a: int = 1
    b: str | None = None
    c: int = Field(default=5, alias="cc")


class _Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class _Point:
    x: int
    y: int


class _Opaque:
    pass


def test_python_values_are_read_as_json() -> None:
    def hit(path: str, ops: dict[str, Any], value: Any) -> bool:
        return compile_filter({f"input.{path}": ops}).matches({"input": value})

    assert hit("d", {"$eq": 1.5}, {"d": decimal.Decimal("1.5")})
    assert hit("d", {"$eq": None}, {"d": decimal.Decimal("NaN")})
    assert hit(
        "t",
        {"$eq": "2024-01-01T00:00:00Z"},
        {"t": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},
    )
    assert hit("m.cc", {"$eq": 5}, {"m": _Model()})  # by alias
    assert hit("m.b", {"$exists": False}, {"m": _Model()})  # None fields left out
    assert hit("c", {"$eq": "red"}, {"c": _Color.RED})
    assert hit("p.y", {"$eq": 2}, {"p": _Point(1, 2)})
    assert hit("u", {"$prefix": "00000000-"}, {"u": uuid.UUID(int=1)})
    assert hit("1", {"$eq": "one"}, {1: "one"})  # keys as json.dumps writes them
    assert hit("true", {"$eq": 1}, {True: 1})
    assert hit("null", {"$eq": 1}, {None: 1})
    assert hit("a", {"$eq": 2}, {"a": 1, "1": 3, "a ": 0} | {"a": 2})
    assert hit("nan", {"$eq": None}, {"nan": float("nan")})  # a non-finite float is null
    assert hit("big", {"$gt": 1e15}, {"big": 10**19})
    assert hit("huge", {"$eq": None}, {"huge": 10**400})  # no double holds it
    assert hit("a", {"$eq": [1, None]}, {"a": [1, _Opaque()]})  # unencodable in an array: null
    assert hit("o", {"$exists": False}, {"o": _Opaque()})  # unencodable member: absent
    assert hit("a", {"$eq": {"k": 1}}, {"a": {"k": 1, "o": _Opaque()}})
    assert hit("a", {"$eq": 1}, {"a": 1, (1, 2): "tuple keys are dropped"})
    assert compile_filter({"input.a": {"$eq": 1}}).matches(MappingProxyType({"input": {"a": 1}}))


class _BrokenMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        return iter(["input"])

    def __len__(self) -> int:
        return 1


class _BrokenModel(BaseModel):
    x: int = 1

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        raise RuntimeError("no")


def test_evaluation_never_raises() -> None:
    f = compile_filter({"input.a": {"$ne": 1}})
    assert f.matches(_BrokenMapping()) is False  # an evaluation that fails is a non-match
    assert f.matches({"input": _BrokenModel()}) is True  # a model that cannot dump is absent
    for doc in (None, [1], "input", 5):
        assert f.matches(doc) is True  # type: ignore[arg-type]  # not a mapping: every root absent
    cyclic: dict[str, Any] = {"a": 2}
    cyclic["self"] = cyclic
    assert f.matches({"input": cyclic}) is True
    assert compile_filter({"input.x": {"$exists": True}}).matches({"input": {"x": cyclic}})
    deep: Any = 1
    for _ in range(1000):
        deep = [deep]
    assert compile_filter({"input.0.0": {"$exists": True}}).matches({"input": deep})


def test_only_what_the_paths_reach_is_read() -> None:
    f = compile_filter({"input.a": {"$eq": 1}})
    assert f.matches({"input": {"a": 1}, "output": _BrokenMapping(), "caller": _Opaque()})
    # Members beside the paths are never converted: not the broken ones, not the large ones.
    assert f.matches({"input": {"a": 1, "broken": _BrokenMapping(), "blob": list(range(1_000_000))}})
    items = compile_filter({"input.l.1.x": {"$eq": 2}, "input.m": {"$eq": {"k": [1]}}})
    assert items.matches({"input": {"l": [_BrokenModel(), {"x": 2, "y": _Opaque()}], "m": {"k": (1,)}}})
    assert not items.matches({"input": {"l": [{"x": 2}], "m": {"k": [1]}}})
    # A path through a cycle is followed, as the official evaluator does.
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    assert compile_filter({"input.self.self.a": {"$eq": 1}}).matches({"input": cyclic})


def test_compile_once_and_reuse() -> None:
    f = compile_filter({"input.n": {"$gt": 10}, "input.tags": {"$any": {"$eq": "vip"}}})
    compiled = f._compiled
    docs = [{"input": {"n": n, "tags": ["vip"] if n % 2 else []}} for n in range(100)]
    assert sum(f.matches(d) for d in docs) == 45
    assert sum(f.matches(d) for d in docs) == 45
    assert f._compiled is compiled
    assert docs[11] == {"input": {"n": 11, "tags": ["vip"]}}  # documents are not changed


def test_evaluate_from_two_threads() -> None:
    f = compile_filter({"input.n": {"$gte": 500}, "caller.worker_name": {"$prefix": "w-"}})
    results: dict[int, int] = {}
    barrier = threading.Barrier(2)

    def work(t: int) -> None:
        barrier.wait()
        results[t] = sum(
            f.matches({"input": {"n": n}, "caller": {"worker_name": f"w-{t}" if t else "x"}})
            for n in range(20_000)
        )

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: 0, 1: 19_500}


def test_trusted_skips_only_the_size_limit() -> None:
    too_big = {f"input.k{i:02}": {"$eq": "v" * 200} for i in range(40)}
    with pytest.raises(FilterError, match="encodes to more than 8192 bytes"):
        compile_filter(too_big)
    assert compile_filter(too_big, trusted=True).roots == {"input"}
    # Within 8 KiB as written; its normal form is longer, and reads back when trusted.
    big = {f"input.k{i:02}": {"$eq": "v" * 232} for i in range(32)}
    normal_form = json.loads(compile_filter(big)._compiled.normalized_json())
    assert len(json.dumps(normal_form, separators=(",", ":"))) > 8192
    assert compile_filter(normal_form, trusted=True).matches(
        {"input": {f"k{i:02}": "v" * 232 for i in range(32)}}
    )
    with pytest.raises(FilterError):
        compile_filter({"input.op": "insert"}, trusted=True)


# --- errors ------------------------------------------------------------------------------------


def _deep(n: int) -> Any:
    v: Any = 1
    for _ in range(n):
        v = [v]
    return v


def _nested_or(levels: int) -> dict[str, Any]:
    f: dict[str, Any] = {"input.a": {"$eq": 1}}
    for _ in range(levels):
        f = {"$or": [f]}
    return f


# Every way a filter is refused, with the message iii-sdk 0.25.0 gives.
INVALID: list[tuple[Any, str]] = [
    # not an object
    ([1], "a filter must be a JSON object, found an array"),
    ("x", "a filter must be a JSON object, found a string"),
    (None, "a filter must be a JSON object, found null"),
    (5, "a filter must be a JSON object, found a number"),
    (True, "a filter must be a JSON object, found a boolean"),
    (decimal.Decimal(1), "a filter must be a JSON object, found an object"),
    # not JSON
    ({"input.a": {"$eq": float("nan")}}, "`input.a.$eq`: nan is not a JSON number"),
    ({"input.a": {"$eq": float("-inf")}}, "`input.a.$eq`: -inf is not a JSON number"),
    ({"input.a": {"$eq": 2**53 + 1}}, "`input.a.$eq`: the number 9007199254740993 is outside ±2^53"),
    ({"input.a": {"$eq": 2**70}}, "`input.a.$eq`: the number 1180591620717411303424 is outside ±2^53"),
    ({"input.a": {"$in": [1, 1e300]}}, "`input.a.$in[1]`: the number 1e+300 is outside ±2^53"),
    ({"input.a": {"$eq": decimal.Decimal(1)}}, "`input.a.$eq`: a Decimal is not JSON"),
    ({"input.a": {"$eq": {1, 2}}}, "`input.a.$eq`: a set is not JSON"),
    ({"input.a": {"$eq": {1: 2}}}, "`input.a.$eq`: the key 1 is not a string"),
    (
        {"input.a": {"$eq": "\ud800"}},
        "`input.a.$eq`: a string holds a lone UTF-16 surrogate, which is not valid Unicode",
    ),
    (
        {"input.\ud800": {"$eq": 1}},
        "`input.\ud800`: the key holds a lone UTF-16 surrogate, which is not valid Unicode",
    ),
    ({"x": _deep(130)}, "the filter nests more than 120 arrays / objects"),
    # limits
    ({"input.k": {"$eq": "v" * 9000}}, "the filter encodes to more than 8192 bytes"),
    ({f"input.k{i}": {"$eq": i} for i in range(70)}, "more than 64 operator / clause nodes"),
    (_nested_or(8), "filters nested deeper than 8 levels"),
    ({"input.a": {"$in": list(range(300))}}, "`input.a`: `$in` has 300 items (limit 256)"),
    ({"input.a": {"$eq": _deep(33)}}, "`input.a`: `$eq` nests a literal deeper than 32 arrays / objects"),
    ({"input." + ".".join(["x"] * 17): {"$eq": 1}}, "17 segments after the root (limit 16)"),
    # filters and operators
    (
        {"input.op": "insert"},
        '`input.op`: expected an operator object such as {"$eq": ...}; literal values are not allowed',
    ),
    ({"input.a": {"$eq": 1, "b": 2}}, "literal values are not allowed"),
    ({"input.a": {}}, "`input.a`: empty operator object"),
    ({"input.a": {"$regex": "x"}}, "`input.a`: unknown operator `$regex`"),
    ({"input.a": {"$and": []}}, "`input.a`: `$and` combines filters and is not a value operator"),
    ({"$eq": 1}, '`$eq` needs a path: write {"<path>": {"$eq": ...}}'),
    ({"$foo": 1}, "unknown operator `$foo` (a filter holds paths, `$and`, `$or` and `$not`)"),
    ({"$or": []}, "`$or` takes a non-empty array of filters"),
    ({"$and": {}}, "`$and` takes an array of filters, found an object"),
    ({"$not": []}, "`$not` takes a filter object, found an array"),
    ({"$or": [1]}, "a filter must be a JSON object, found a number"),
    # operands
    ({"input.a": {"$in": 1}}, "`input.a`: `$in` takes an array, found a number"),
    ({"input.a": {"$gt": True}}, "`input.a`: `$gt` takes a number or a string, found a boolean"),
    ({"input.a": {"$exists": 1}}, "`input.a`: `$exists` takes a boolean, found a number"),
    ({"input.a": {"$prefix": 1}}, "`input.a`: `$prefix` takes a string, found a number"),
    (
        {"input.a": {"$any": 1}},
        "`input.a`: `$any` takes an operator object or a filter over `@`, found a number",
    ),
    # paths
    (
        {"bogus.x": {"$eq": 1}},
        "path `bogus.x`: unknown root `bogus` (expected input, output, error, caller or metadata)",
    ),
    ({"@.a": {"$eq": 1}}, "path `@.a`: `@` paths are only allowed inside `$any`"),
    (
        {"input.a": {"$any": {"input.b": {"$eq": 1}}}},
        "path `input.b`: inside `$any` paths start at `@`, the current element",
    ),
    ({"input..a": {"$eq": 1}}, "path `input..a`: empty segment"),
    ({"": {"$eq": 1}}, "empty path"),
    (
        {"input.a\\x": {"$eq": 1}},
        "path `input.a\\x`: invalid escape `\\x` (only `\\.` and `\\\\` are allowed)",
    ),
    ({"input.a\\": {"$eq": 1}}, "path `input.a\\`: dangling `\\` at the end"),
]


@pytest.mark.parametrize(("src", "message"), INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_invalid_filters(src: Any, message: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(src)
    err = info.value
    assert err.code == "INVALID_FILTER"
    assert message in str(err), str(err)
    assert err.message == str(err)
    assert err.args == ("INVALID_FILTER", err.message)
    with pytest.raises(FilterError):
        CompiledFilter(src)


def test_invalid_filter_path_from_the_schema_check() -> None:
    # The engine's check of paths against a function's formats (same crate): a path a closed
    # schema rules out is INVALID_FILTER_PATH; an open schema only warns.
    closed = {"type": "object", "properties": {"amount": {"type": "number"}}, "additionalProperties": False}
    f = compile_filter({"input.amount": {"$gte": 1}, "output.x": {"$exists": True}})
    assert f._compiled.check_schema_paths(closed, {"type": "object"}) == [
        "output.x: response_format is open; path not verified"
    ]
    bad = compile_filter({"input.nope": {"$eq": 1}})
    with pytest.raises(FilterError) as info:
        bad._compiled.check_schema_paths(closed)
    assert info.value.code == "INVALID_FILTER_PATH"
    assert "input.nope" in info.value.message
    assert info.value.args == ("INVALID_FILTER_PATH", info.value.message)
    assert bad._compiled.check_schema_paths() == []


def test_filter_error() -> None:
    err = FilterError("INVALID_FILTER_PATH", "`input.x`: not in the schema")
    assert (err.code, err.message, str(err)) == (
        "INVALID_FILTER_PATH",
        "`input.x`: not in the schema",
        err.message,
    )
    again = pickle.loads(pickle.dumps(err))
    assert (type(again), again.code, again.message) == (FilterError, err.code, err.message)
    invalid = FilterError.invalid("nope")
    assert (invalid.code, str(invalid)) == ("INVALID_FILTER", "nope")
    assert isinstance(invalid, ValueError)


def test_extension_class() -> None:
    f = _iii.Filter({"input.a": {"$eq": 1}})
    assert f.roots == ["input"]
    assert f.match_all is False
    assert f.matches({"input": {"a": 1}})
    assert repr(f) == 'Filter({"$and":[{"input.a":{"$eq":1}}]})'
    with pytest.raises(FilterError):
        _iii.Filter({"input.a": 1})


# --- against the official package --------------------------------------------------------------

# Random filters and documents (with values that are not plain JSON), evaluated by this package and
# by another interpreter whose ``iii`` is the official iii-sdk 0.25.0: every answer, root set and
# error message must be the same. Skipped unless III_OFFICIAL_025_PYTHON names that interpreter.
_DIFFERENTIAL = r"""
import datetime, decimal, json, random, sys
from iii.filter import compile_filter, FilterError
rnd = random.Random(int(sys.argv[1]))
KEYS = ["a", "b", "1", "0", "x.y", "true", "items"]
def lit(d=0):
    r = rnd.random()
    if r < 0.2: return rnd.choice([0, 1, 1.0, -2, 2**53, 3.5])
    if r < 0.4: return rnd.choice(["", "ab", "abc", "b", "é"])
    if r < 0.5: return rnd.choice([None, True, False])
    if r < 0.7 and d < 3: return [lit(d + 1) for _ in range(rnd.randint(0, 3))]
    if d < 3: return {rnd.choice(KEYS): lit(d + 1) for _ in range(rnd.randint(0, 3))}
    return 1
class _Opaque:
    pass
cyc = {"a": 1}
cyc["self"] = cyc
EXOTIC = [decimal.Decimal("1.5"), decimal.Decimal("NaN"), float("nan"), float("inf"), 10**400, _Opaque(), cyc,
          datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), datetime.date(2024, 1, 2), {1, 2}, b"ab"]
def hostval(d=0):
    r = rnd.random()
    if r < 0.05: return rnd.choice(EXOTIC)
    if r < 0.15: return rnd.choice([0, 1, 1.0, -2, 2**53, 3.5, 2**53 + 1, 10**20])
    if r < 0.3: return rnd.choice(["", "ab", "abc", "b", "é"])
    if r < 0.4: return rnd.choice([None, True, False])
    if r < 0.6 and d < 4:
        v = [hostval(d + 1) for _ in range(rnd.randint(0, 3))]
        return tuple(v) if rnd.random() < 0.2 else v
    if d < 4:
        out = {}
        for _ in range(rnd.randint(0, 4)):
            k = rnd.choice(KEYS + [1, 0, True])
            out[k] = hostval(d + 1)
        return out
    return "leaf"
def path(at=False):
    segs = [rnd.choice(["a", "b", "0", "1", "items", "self", "x\\.y", "true"]) for _ in range(rnd.randint(0, 3))]
    root = "@" if at else rnd.choice(["input", "output", "error", "caller", "metadata"])
    return ".".join([root] + segs)
def opobj(depth, at):
    ops = {}
    for _ in range(rnd.randint(1, 2)):
        op = rnd.choice(["$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$prefix", "$any"])
        if op in ("$eq", "$ne"): ops[op] = lit()
        elif op in ("$in", "$nin"): ops[op] = [lit() for _ in range(rnd.randint(0, 3))]
        elif op in ("$gt", "$gte", "$lt", "$lte"): ops[op] = rnd.choice([1, 2.5, "ab", "b", -1])
        elif op == "$exists": ops[op] = rnd.random() < 0.5
        elif op == "$prefix": ops[op] = rnd.choice(["", "a", "ab"])
        elif depth < 4:
            ops[op] = opobj(depth + 1, at) if rnd.random() < 0.5 else filt(depth + 1, True)
        else: ops["$exists"] = True
    return ops
def filt(depth=0, at=False):
    f = {}
    for _ in range(rnd.randint(0 if depth else 1, 3)):
        r = rnd.random()
        if r < 0.6 or depth >= 4: f[path(at)] = opobj(depth, at)
        elif r < 0.75: f["$or"] = [filt(depth + 1, at) for _ in range(rnd.randint(1, 2))]
        elif r < 0.9: f["$not"] = filt(depth + 1, at)
        else: f["$and"] = [filt(depth + 1, at) for _ in range(rnd.randint(1, 2))]
    return f
out = []
docs = [{r: hostval() for r in ["input", "output", "error", "caller", "metadata"] if rnd.random() < 0.7} for _ in range(40)]
for _ in range(300):
    f = filt()
    try: c = compile_filter(f)
    except FilterError as e: out.append(("err", e.code, str(e))); continue
    out.append((sorted(c.roots), c.match_all, [c.matches(d) for d in docs]))
print(json.dumps(out))
"""


@pytest.mark.skipif(
    not os.environ.get("III_OFFICIAL_025_PYTHON"), reason="III_OFFICIAL_025_PYTHON is not set"
)
@pytest.mark.parametrize("seed", range(8))
def test_same_answers_as_the_official_package(seed: int, tmp_path: pathlib.Path) -> None:
    script = tmp_path / "differential.py"
    script.write_text(_DIFFERENTIAL)

    def run(python: str) -> Any:
        out = subprocess.run(
            [python, str(script), str(seed)], check=True, capture_output=True, text=True, cwd=tmp_path
        )
        return json.loads(out.stdout)

    official, ours = run(os.environ["III_OFFICIAL_025_PYTHON"]), run(sys.executable)
    assert len(ours) == len(official) == 300
    for i, (a, b) in enumerate(zip(official, ours, strict=True)):
        assert a == b, i
