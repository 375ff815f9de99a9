"""Serving worker of the end-to-end benchmark (run by bench.py with either SDK's interpreter).

Registers ``<ns>::echo_async``, ``<ns>::echo_sync``, ``<ns>::sink`` (void target, counted) and
``<ns>::stats`` ({"served", "sink", "cpu"}), prints ``READY {...}`` and serves until stdin
closes or SIGTERM. ``--hang-every N`` leaves every Nth echo unanswered, which looks to the
caller like a result the engine dropped (README, "Known engine issue"): a check of the bench's
own robustness.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import connect, cpu, die_with_parent, emit, sdk_info, shutdown_and_exit, watchdog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--ns", required=True, help="function id namespace, e.g. bench-ours-1234")
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument("--hang-every", type=int, default=0, help="leave every Nth echo unanswered")
    args = parser.parse_args()
    die_with_parent()
    watchdog(args.max_seconds)

    iii = connect(args.url, f"{args.ns}-serve")
    counts = {"async": 0, "sink": 0, "sync": 0}
    sync_lock = threading.Lock()  # sync handlers run on threads

    hang = asyncio.Event()  # never set

    async def echo_async(data):
        counts["async"] += 1
        if args.hang_every and counts["async"] % args.hang_every == 0:
            await hang.wait()
        return data

    def echo_sync(data):
        with sync_lock:
            counts["sync"] += 1
            n = counts["sync"]
        if args.hang_every and n % args.hang_every == 0:
            threading.Event().wait(args.max_seconds)
        return data

    async def sink(data):
        counts["sink"] += 1
        return None

    async def stats(data):
        return {
            "served": counts["async"] + counts["sync"] + counts["sink"],
            "sink": counts["sink"],
            "cpu": cpu(),
        }

    iii.register_function(f"{args.ns}::echo_async", echo_async)
    iii.register_function(f"{args.ns}::echo_sync", echo_sync)
    iii.register_function(f"{args.ns}::sink", sink)
    iii.register_function(f"{args.ns}::stats", stats)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emit("READY", {"role": "serve", "pid": os.getpid(), **sdk_info()})
    while not stop.wait(0.5):
        pass
    shutdown_and_exit(iii)


if __name__ == "__main__":
    main()
