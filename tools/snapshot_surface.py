"""Write a JSON description of the public surface of an installed ``iii`` package.

Run it with the official package's interpreter to refresh the snapshot the surface test
compares us with::

    python3 -m venv /tmp/venv-off && /tmp/venv-off/bin/pip install iii-sdk==0.11.0
    /tmp/venv-off/bin/python tools/snapshot_surface.py > tests/data/official_surface.json

    # 0.25.0 ships a second top-level package, iii_helpers (PyPI iii-helpers), described too:
    python3 -m venv /tmp/venv-025 && /tmp/venv-025/bin/pip install iii-sdk==0.25.0
    /tmp/venv-025/bin/python tools/snapshot_surface.py --package iii --package iii_helpers \
        -o tests/data/official_surface_025.json

The same code, imported by ``tests/test_official_surface.py``, describes our package, so both
sides are described by one set of rules:

- a public module is every module (or subpackage module) of the package with no path
  component starting with ``_``;
- a module's public names are its ``__all__`` when it has one, otherwise what its source
  defines at top level (``def``, ``class``, assignments) and what it imports from inside the
  package (``from .x import y``); names starting with ``_`` and stdlib or third-party imports
  are not API. The package's public names also include the submodules that ``import iii``
  makes available as attributes.
- a function is described by its parameters (name, kind, default as ``repr``) and whether it
  is ``async``; a class by its public methods and properties (those defined in the package),
  the fields and defaults of pydantic models and dataclasses, and enum members; a type alias
  by its shape with classes reduced to their names; a constant by its ``repr``.
- ``origin`` (``module.qualname``) says where a class or function is defined; names with the
  same origin must be one object, not look-alikes.

Annotations are not compared: the two packages spell the same types differently.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib
import inspect
import json
import pathlib
import pkgutil
import re
import sys
import types
import typing
from typing import Any

# Private members that frameworks built on the official SDK call or wrap (issue 8, item 3).
RELIED_ON_PRIVATE = {"III": ["_wait_until_connected", "_to_dict", "_handle_message"]}
PACKAGE = "iii"
# Top-level packages whose objects count as "ours" (origins, members): iii-sdk 0.25.0 defines
# part of its surface in iii_helpers and re-exports it from iii.
PACKAGES = ("iii", "iii_helpers")
REQUIRED = "<required>"


def public_modules(package: types.ModuleType) -> list[str]:
    names = [package.__name__]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _top_level_names(source: str) -> list[str]:
    """Names the module binds at top level, plus what it imports from inside the package."""
    names: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.extend(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.extend(alias.asname or alias.name for alias in node.names)
    return names


def module_names(module: types.ModuleType) -> list[str]:
    if hasattr(module, "__all__"):
        names = list(module.__all__)
    else:
        names = _top_level_names(pathlib.Path(module.__file__ or "").read_text())
    return sorted({n for n in names if not n.startswith("_")})


def _repr(value: Any) -> str:
    """``repr(value)``, without the address of reprs like ``<object object at 0x...>`` (a
    sentinel's or a function's), which changes from run to run."""
    return re.sub(r" at 0x[0-9a-fA-F]+>$", ">", repr(value))


def _default(value: Any) -> str:
    return REQUIRED if value is inspect.Parameter.empty else _repr(value)


def describe_signature(fn: Any) -> dict[str, Any]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {"params": None}
    return {
        "params": [[p.name, p.kind.name, _default(p.default)] for p in sig.parameters.values()],
        "async": inspect.iscoroutinefunction(fn),
    }


def _origin(obj: Any) -> str | None:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and module.split(".")[0] in PACKAGES:
        return f"{module}.{qualname}"
    return None


def _fields(cls: type) -> dict[str, str] | None:
    model_fields = getattr(cls, "model_fields", None)
    if isinstance(model_fields, dict) and hasattr(cls, "model_validate"):
        out = {}
        for name, field in model_fields.items():
            if field.is_required():
                out[name] = REQUIRED
            elif field.default_factory is not None:
                out[name] = f"factory:{field.default_factory()!r}"
            else:
                out[name] = _repr(field.default)
            if field.alias and field.alias != name:
                out[name] += f" (alias {field.alias})"
        return out
    if dataclasses.is_dataclass(cls):
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = _repr(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f"factory:{f.default_factory()!r}"
            else:
                out[f.name] = REQUIRED
        return out
    return None


def _members(cls: type) -> dict[str, Any]:
    """Public methods and properties defined in the package (not those pydantic or ABC add)."""
    out: dict[str, Any] = {}
    private = set(RELIED_ON_PRIVATE.get(cls.__name__, []))
    for klass in reversed(cls.__mro__):
        if klass.__module__.split(".")[0] not in PACKAGES:
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_") and name != "__init__" and name not in private:
                continue
            if name == "__init__" and (dataclasses.is_dataclass(cls) or hasattr(cls, "model_fields")):
                continue  # described by the fields
            if isinstance(raw, property):
                out[name] = {"kind": "property"}
            elif isinstance(raw, (staticmethod, classmethod)):
                out[name] = {"kind": type(raw).__name__, **describe_signature(getattr(cls, name))}
            elif inspect.isfunction(raw):
                out[name] = {"kind": "method", **describe_signature(raw)}
    for name in out:
        if getattr(getattr(cls, name, None), "__isabstractmethod__", False):
            out[name]["abstract"] = True
    return dict(sorted(out.items()))


def describe_alias(obj: Any) -> Any:
    """The shape of a type alias, with classes reduced to their names."""
    if obj is None or obj is type(None):
        return "None"
    if isinstance(obj, type) or obj is Any:
        return getattr(obj, "__name__", "Any")
    if isinstance(obj, typing.ForwardRef):
        return obj.__forward_arg__
    if isinstance(obj, str):  # a forward reference left as a string
        return obj
    if isinstance(obj, typing.TypeVar):
        return f"~{obj.__name__}"
    args = typing.get_args(obj)
    origin = typing.get_origin(obj)
    if origin is None:
        return repr(obj)
    if origin is typing.Literal:
        return ["Literal", *sorted(repr(a) for a in args)]
    if origin in (typing.Union, types.UnionType):
        return ["Union", *sorted((describe_alias(a) for a in args), key=json.dumps)]
    name = getattr(origin, "__name__", None) or repr(origin)
    return [
        name,
        *(describe_alias(a) if not isinstance(a, list) else [describe_alias(x) for x in a] for a in args),
    ]


def describe(obj: Any) -> dict[str, Any]:
    if isinstance(obj, types.ModuleType):
        return {"kind": "module", "name": obj.__name__}
    if isinstance(obj, typing.TypeVar):
        return {"kind": "typevar", "name": obj.__name__}
    if obj is Any:
        return {"kind": "alias", "shape": "Any"}
    if isinstance(obj, type) and not typing.get_args(obj):
        out: dict[str, Any] = {"kind": "class", "origin": _origin(obj)}
        if issubclass(obj, enum.Enum):
            out["enum"] = {m.name: repr(m.value) for m in obj}
        fields = _fields(obj)
        if fields is not None:
            out["fields"] = fields
        if dataclasses.is_dataclass(obj):
            # Dataclasses can be built positionally, so their field order is API too.
            out["field_order"] = [f.name for f in dataclasses.fields(obj)]
        out["abstract"] = inspect.isabstract(obj)
        out["members"] = _members(obj)
        return out
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return {"kind": "function", "origin": _origin(obj), **describe_signature(obj)}
    if typing.get_origin(obj) is not None or isinstance(obj, types.UnionType) or obj is Any:
        return {"kind": "alias", "shape": describe_alias(obj)}
    if isinstance(obj, (int, float, str, bytes, bool, type(None))) or dataclasses.is_dataclass(obj):
        return {"kind": "value", "repr": repr(obj)}
    return {"kind": "object", "type": type(obj).__name__}


def snapshot(packages: tuple[str, ...] = (PACKAGE,)) -> dict[str, Any]:
    """The surface of ``packages[0]``, plus the modules of any further packages."""
    out = _snapshot_package(packages[0])
    for extra in packages[1:]:
        more = _snapshot_package(extra)
        out["modules"].update(more["modules"])
        out.setdefault("extra_packages", {})[extra] = more["version"]
    return out


def _snapshot_package(name: str) -> dict[str, Any]:
    package = importlib.import_module(name)
    # Submodule attributes as they are right after `import iii`, before we import the others.
    attributes = sorted(
        n for n in dir(package) if not n.startswith("_") and isinstance(getattr(package, n), types.ModuleType)
    )
    modules: dict[str, Any] = {}
    for module_name in public_modules(package):
        module = importlib.import_module(module_name)
        names = module_names(module)
        if module is package:
            names = sorted(set(names) | set(attributes))
        modules[module_name] = {n: describe(getattr(module, n)) for n in names if hasattr(module, n)}
        missing = [n for n in names if not hasattr(module, n)]
        if missing:
            modules[module_name]["__unresolved__"] = missing
    return {
        "package": name,
        "version": getattr(package, "__version__", None) or _distribution_version(name),
        "python": ".".join(map(str, sys.version_info[:2])),
        "submodule_attributes": attributes,
        "modules": modules,
    }


def _distribution_version(package: str = PACKAGE) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    distribution = {"iii": "iii-sdk"}.get(package, package.replace("_", "-"))
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", help="write here instead of stdout")
    parser.add_argument(
        "--package",
        action="append",
        help="package to describe (repeatable; the first is the main one); default: iii",
    )
    args = parser.parse_args(argv)
    packages = tuple(args.package or [PACKAGE])
    text = json.dumps(snapshot(packages), indent=1, sort_keys=True) + "\n"
    if args.output:
        pathlib.Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
