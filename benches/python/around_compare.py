"""What cpu_split.py and timeline.py share: ../shared/peers/compare.py loaded unchanged, with
its engine's process id noted, so that they can measure around its serve/drive pairs."""

from __future__ import annotations

import importlib.util
import statistics
from types import ModuleType
from typing import Any


def load_compare(path: str) -> tuple[ModuleType, dict[str, int]]:
    """compare.py as a module, and a dict that holds its engine's pid ("pid") once started.
    The caller wraps ``run_pair`` and then calls ``main()``."""
    spec = importlib.util.spec_from_file_location("compare", path)
    assert spec is not None and spec.loader is not None
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    engine: dict[str, int] = {}
    start_engine = compare.start_engine

    def started(binary: str, otel: bool) -> Any:
        p, d = start_engine(binary, otel)
        engine["pid"] = p.pid
        return p, d

    compare.start_engine = started
    return compare, engine


def medians(rows: list[dict[str, float]], digits: int) -> dict[str, float]:
    """The median of each figure over the rows that have it."""
    keys = dict.fromkeys(k for r in rows for k in r)
    return {k: round(statistics.median(r[k] for r in rows if k in r), digits) for k in keys}
