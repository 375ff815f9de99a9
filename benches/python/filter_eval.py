"""Evaluations per second of a compiled observer filter (``iii.filter``) on a small document,
and what compiling one costs. Our filters are compiled and evaluated by the ``iii-filter``
crate in the extension; the official 0.25.0 package evaluates them in pure Python.

    python benches/python/filter_eval.py
    python benches/python/filter_eval.py --compare /path/to/official/venv/bin/python

``--compare`` runs the same measurements under another interpreter whose ``iii`` is the
official package, and prints both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

CHARGE = {
    "input.amount": {"$gte": 500},
    "output.charged": {"$exists": True},
    "caller.worker_name": {"$prefix": "checkout-"},
}
ANY = {"input.items": {"$any": {"@.sku": {"$in": ["a", "b"]}}}, "input.op": {"$ne": "delete"}}

DOC = {
    "input": {"amount": 900, "currency": "EUR", "customer": {"id": "c-1", "tier": "gold"}},
    "output": {"charged": 900, "receipt": "r-1"},
    "caller": {"worker_name": "checkout-1", "function_id": "orders::pay"},
}
MISS = {**DOC, "input": {"amount": 10}}
ITEMS = {"input": {"op": "insert", "items": [{"sku": "x", "qty": 1}, {"sku": "b", "qty": 2}]}}
# The same match with a large payload beside the paths (1,000 members): only the paths are read.
LARGE = {**DOC, "input": {**DOC["input"], "lines": {f"line-{i}": {"sku": i, "qty": 1} for i in range(1000)}}}


def rate(fn: Any, arg: Any, n: int) -> float:
    """Calls per second, best of 5 runs of ``n`` calls."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn(arg)
        best = min(best, time.perf_counter() - started)
    return n / best


def measure(n: int) -> dict[str, float]:
    from iii.filter import MATCH_ALL, compile_filter

    charge = compile_filter(CHARGE)
    items = compile_filter(ANY)
    assert charge.matches(DOC) and not charge.matches(MISS) and items.matches(ITEMS)
    return {
        "3 clauses, match": rate(charge.matches, DOC, n),
        "3 clauses, miss": rate(charge.matches, MISS, n),
        "$any over 2 items + $ne": rate(items.matches, ITEMS, n),
        "3 clauses, 1,000-member input": rate(charge.matches, LARGE, max(n // 10, 1)),
        "MATCH_ALL": rate(MATCH_ALL.matches, DOC, n),
        "compile_filter (3 clauses)": rate(compile_filter, CHARGE, max(n // 10, 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="calls per run")
    parser.add_argument("--compare", metavar="PYTHON", help="an interpreter with the official iii-sdk 0.25.0")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ours = measure(args.n)
    if args.json:
        print(json.dumps(ours))
        return
    official: dict[str, float] = {}
    if args.compare:
        out = subprocess.run(
            [args.compare, __file__, "-n", str(args.n), "--json"], check=True, capture_output=True, text=True
        )
        official = json.loads(out.stdout)
    print(f"python {sys.version.split()[0]}, {args.n} calls per run, best of 5 (calls per second)")
    header = f"{'case':<31} {'ours':>12}"
    if official:
        header += f" {'official':>12} {'ratio':>7}"
    print(header)
    for case, value in ours.items():
        line = f"{case:<31} {value:>12,.0f}"
        if official:
            line += f" {official[case]:>12,.0f} {value / official[case]:>6.1f}x"
        print(line)


if __name__ == "__main__":
    main()
