"""Our package offers the official iii-sdk 0.11.0 surface and the official iii-sdk 0.25.0 (+
iii-helpers 0.25.0) surface: every public module, every public name, the same signatures, model
fields and defaults, and the same objects behind names the official package shares.

The official side is a committed snapshot per generation (tests/data/official_surface.json for
0.11.0, tests/data/official_surface_025.json for 0.25.0 with iii_helpers; written by
tools/snapshot_surface.py with the official package installed), so this test runs without it.
Deliberate differences are listed, each with its reason, in tests/surface_allowlist.py
(``ALLOWED`` for 0.11.0, ``ALLOWED_025`` for 0.25.0).
A difference is named ``module:name`` when a name is missing, and by where the official
package defines the object (``iii.iii_constants.InitOptions.max_message_size``) when the
object differs, so one difference is reported once however many paths lead to it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pathlib
import sys
from collections import defaultdict
from typing import Any

import pytest

from surface_allowlist import ALLOWED, ALLOWED_025

ROOT = pathlib.Path(__file__).resolve().parent.parent
SNAPSHOT = json.loads((ROOT / "tests" / "data" / "official_surface.json").read_text())
SNAPSHOT_025 = json.loads((ROOT / "tests" / "data" / "official_surface_025.json").read_text())
GENERATIONS = {
    "0.11.0": (SNAPSHOT, ALLOWED),
    "0.25.0": (SNAPSHOT_025, ALLOWED_025),
}


def _load_snapshot_tool() -> Any:
    spec = importlib.util.spec_from_file_location("snapshot_surface", ROOT / "tools" / "snapshot_surface.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("snapshot_surface", module)
    spec.loader.exec_module(module)
    return module


tool = _load_snapshot_tool()


def _compare_params(key: str, official: dict[str, Any], ours: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    if official.get("async") != ours.get("async"):
        out.append((key, f"async: official {official.get('async')}, ours {ours.get('async')}"))
    off_params, our_params = official.get("params") or [], ours.get("params") or []
    by_name = {p[0]: p for p in our_params}
    for position, param in enumerate(off_params):
        mine = by_name.get(param[0])
        if mine is None:
            out.append((f"{key}({param[0]})", "parameter missing"))
        elif mine[1:] != param[1:]:
            out.append((f"{key}({param[0]})", f"kind/default: official {param[1:]}, ours {mine[1:]}"))
        elif param[1] != "KEYWORD_ONLY" and our_params.index(mine) != position:
            out.append(
                (f"{key}({param[0]})", f"position: official {position}, ours {our_params.index(mine)}")
            )
    known = {p[0] for p in off_params}
    for param in our_params:
        if param[0] not in known:
            out.append((f"{key}({param[0]})", f"extra parameter {param[1:]}"))
    return out


def _compare_class(key: str, official: dict[str, Any], ours: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    if official["abstract"] != ours["abstract"]:
        out.append((key, f"abstract: official {official['abstract']}, ours {ours['abstract']}"))
    if official.get("enum") is not None:
        for member, value in official["enum"].items():
            got = (ours.get("enum") or {}).get(member)
            if got != value:
                out.append((f"{key}.{member}", f"enum member: official {value}, ours {got}"))
    if official.get("fields") is not None:
        our_fields = ours.get("fields")
        if our_fields is None:
            return [(key, "not a pydantic model or dataclass")]
        for field, default in official["fields"].items():
            if field not in our_fields:
                out.append((f"{key}.{field}", "field missing"))
            elif our_fields[field] != default:
                out.append((f"{key}.{field}", f"default: official {default}, ours {our_fields[field]}"))
        for field in our_fields.keys() - official["fields"].keys():
            out.append((f"{key}.{field}", f"extra field, default {our_fields[field]}"))
    if official.get("field_order") is not None:
        order, ours_order = official["field_order"], ours.get("field_order") or []
        if ours_order[: len(order)] != order:
            out.append((key, f"field order (positional construction): official {order}, ours {ours_order}"))
    for member, desc in official["members"].items():
        mine = ours["members"].get(member)
        if mine is None:
            out.append((f"{key}.{member}", f"{desc['kind']} missing"))
        elif mine["kind"] != desc["kind"]:
            out.append((f"{key}.{member}", f"kind: official {desc['kind']}, ours {mine['kind']}"))
        elif desc.get("abstract") != mine.get("abstract"):
            out.append((f"{key}.{member}", "abstract differs"))
        elif desc["kind"] != "property":
            out.extend(_compare_params(f"{key}.{member}", desc, mine))
    return out


def _compare(key: str, official: dict[str, Any], ours: dict[str, Any]) -> list[tuple[str, str]]:
    if official["kind"] != ours["kind"]:
        return [(key, f"kind: official {official['kind']}, ours {ours['kind']}")]
    kind = official["kind"]
    if kind == "class":
        return _compare_class(key, official, ours)
    if kind == "function":
        return _compare_params(key, official, ours)
    if kind == "module":
        return [] if official["name"] == ours["name"] else [(key, f"is module {ours['name']}")]
    for field in ("shape", "repr", "type", "name"):
        if official.get(field) != ours.get(field):
            return [(key, f"{field}: official {official.get(field)!r}, ours {ours.get(field)!r}")]
    return []


def surface_differences(snapshot: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """Every way our package differs from an official snapshot, as (key, description)."""
    snapshot = SNAPSHOT if snapshot is None else snapshot
    diffs: list[tuple[str, str]] = []
    origins: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for module_name, names in snapshot["modules"].items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            diffs.append((module_name, f"module missing ({exc})"))
            continue
        for name, official in names.items():
            if not hasattr(module, name):
                diffs.append((f"{module_name}:{name}", "name missing"))
                continue
            origin = official.get("origin")
            if origin:
                # One object, reachable under several paths: compared once, named by origin.
                origins[origin].append((module_name, name))
                if len(origins[origin]) > 1:
                    continue
            key = origin or f"{module_name}:{name}"
            diffs.extend(_compare(key, official, tool.describe(getattr(module, name))))
    for origin, places in origins.items():
        objects = [getattr(importlib.import_module(m), n, None) for m, n in places]
        first = objects[0]
        for (module_name, name), obj in zip(places[1:], objects[1:], strict=True):
            if obj is not first and obj is not None and first is not None:
                diffs.append(
                    (
                        f"{module_name}:{name}",
                        f"not the same object as {places[0][0]}:{places[0][1]} ({origin})",
                    )
                )
    return diffs


def _report(diffs: list[tuple[str, str]]) -> str:
    return "\n".join(f"  {key}: {what}" for key, what in sorted(diffs))


def test_snapshot_is_the_official_package():
    assert SNAPSHOT["package"] == "iii" and SNAPSHOT["version"] == "0.11.0"
    assert "iii.iii" in SNAPSHOT["modules"] and "III" in SNAPSHOT["modules"]["iii.iii"]
    assert SNAPSHOT_025["package"] == "iii" and SNAPSHOT_025["version"] == "0.25.0"
    assert SNAPSHOT_025["extra_packages"] == {"iii_helpers": "0.25.0"}
    assert "iii.helpers" in SNAPSHOT_025["modules"] and "iii_helpers.http" in SNAPSHOT_025["modules"]


@pytest.mark.parametrize("generation", sorted(GENERATIONS))
def test_submodules_are_attributes_after_import(generation: str):
    import iii

    snapshot, allowed = GENERATIONS[generation]
    missing = [
        name
        for name in snapshot["submodule_attributes"]
        if not hasattr(iii, name) and f"iii:{name}" not in allowed
    ]
    assert not missing


@pytest.mark.parametrize("generation", sorted(GENERATIONS))
def test_surface_matches_the_official_package(generation: str):
    snapshot, allowed = GENERATIONS[generation]
    diffs = [(key, what) for key, what in surface_differences(snapshot) if key not in allowed]
    assert not diffs, f"{len(diffs)} difference(s) from the official iii-sdk {generation}:\n{_report(diffs)}"


@pytest.mark.parametrize("generation", sorted(GENERATIONS))
def test_allow_list_has_no_stale_entries(generation: str):
    snapshot, allowed = GENERATIONS[generation]
    found = {key for key, _ in surface_differences(snapshot)}
    stale = sorted(set(allowed) - found)
    assert not stale, f"allow-listed but no longer different (remove them): {stale}"
    assert all(reason.strip() for reason in allowed.values())
