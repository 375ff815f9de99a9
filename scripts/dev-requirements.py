#!/usr/bin/env python3
"""Prints, one a line, what test.sh installs into ./.venv: pyproject.toml's [build-system]
requires (maturin, for `maturin develop`) and then each named optional-dependency extra, so the
pinned tool versions live in pyproject.toml only.

Usage: python scripts/dev-requirements.py test lint
Python 3.11+ reads the file with tomllib; Python 3.10 needs the `tomli` package (test.sh installs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def main(extras: list[str]) -> None:
    with PYPROJECT.open("rb") as f:
        pyproject = tomllib.load(f)
    requirements = list(pyproject["build-system"]["requires"])
    defined = pyproject["project"]["optional-dependencies"]
    for extra in extras:
        if extra not in defined:
            sys.exit(f"{PYPROJECT}: no extra {extra!r} (there are: {', '.join(defined)})")
        requirements += defined[extra]
    print("\n".join(dict.fromkeys(requirements)))


if __name__ == "__main__":
    main(sys.argv[1:])
