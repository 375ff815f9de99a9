"""The type stubs of the Rust core list exactly what the extension exports."""

from __future__ import annotations

import ast
import pathlib

import iii._iii as core

STUB = pathlib.Path(core.__file__).with_name("_iii.pyi")


def _stub_names() -> dict[str, set[str]]:
    tree = ast.parse(STUB.read_text())
    out: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"
            }
        elif isinstance(node, ast.FunctionDef):
            out[""].add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[""].add(node.target.id)
    return out


def test_stubs_match_the_extension():
    stubs = _stub_names()
    exported = {name for name in dir(core) if not name.startswith("_")} | {"__version__"}
    classes = {name for name in exported if isinstance(getattr(core, name), type)}
    assert set(stubs) - {""} == classes
    assert stubs[""] == exported - classes
    for cls in classes:
        methods = {n for n in vars(getattr(core, cls)) if not n.startswith("_")}
        assert stubs[cls] == methods, cls
