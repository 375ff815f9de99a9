"""Soak benchmark: 200,000 calls while the link to the engine is cut every two seconds.

Every call must end (a result or a clear error) within its timeout, resident memory must stay
flat, and after every reconnect the worker's functions and trigger must be registered again.
Prints the counts; nothing is asserted (exit status 1 only if a call hung).

    python benches/python/soak.py [--calls 200000] [--cut-every 2.0] [--concurrency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))

from iii import IIIError, InitOptions, ReconnectionConfig, TriggerHandler, register_worker  # noqa: E402
from iii.testing import Engine  # noqa: E402

from proxy import Proxy  # noqa: E402


def rss_mib() -> float:
    if not os.path.exists("/proc/self/statm"):  # macOS: ps reports the resident set in KiB
        ps = subprocess.run(["ps", "-o", "rss=", "-p", str(os.getpid())], capture_output=True, check=True)
        return int(ps.stdout) / 1024
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Provider(TriggerHandler):
    def register_trigger(self, config):
        pass

    def unregister_trigger(self, config):
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--cut-every", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--timeout-ms", type=int, default=5000)
    args = parser.parse_args()

    engine = Engine()
    proxy = Proxy(engine.port)
    worker = register_worker(
        proxy.url,
        InitOptions(
            worker_name="soak",
            reconnection_config=ReconnectionConfig(initial_delay_ms=50, max_delay_ms=500),
            invocation_timeout_ms=args.timeout_ms,
            offline_queue_limit=100_000,
        ),
    )

    async def echo(data):
        return data

    worker.register_function("soak::echo", echo)
    worker.register_trigger_type({"id": "soak::type", "description": "soak"}, Provider())
    trigger = worker.register_trigger({"type": "soak::type", "function_id": "soak::echo", "config": {}})
    del trigger

    reconnects = 0
    replay_checks = collections.Counter()
    checked = threading.Event()

    def on_state(state: str) -> None:
        nonlocal reconnects
        if state == "connected":
            reconnects += 1
            threading.Thread(target=check_replay, daemon=True).start()

    def check_replay() -> None:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            if "soak::echo" in engine.function_ids() and len(engine.trigger_ids()) == 1:
                replay_checks["registered again"] += 1
                checked.set()
                return
            time.sleep(0.02)
        replay_checks["missing after reconnect"] += 1

    worker.on_connection_state_change(on_state)
    time.sleep(0.3)

    stop_cutting = threading.Event()

    def cutter() -> None:
        while not stop_cutting.wait(args.cut_every):
            proxy.cut()

    threading.Thread(target=cutter, daemon=True).start()
    outcomes: collections.Counter[str] = collections.Counter()
    slowest = 0.0
    rss = [rss_mib()]

    async def drive() -> None:
        nonlocal slowest
        sem = asyncio.Semaphore(args.concurrency)

        async def one(i: int) -> None:
            nonlocal slowest
            async with sem:
                started = time.monotonic()
                try:
                    result = await worker.trigger_async({"function_id": "soak::echo", "payload": {"i": i}})
                    outcomes["ok" if result["i"] == i else "wrong result"] += 1
                except IIIError as exc:
                    outcomes[type(exc).__name__] += 1
                except Exception as exc:  # noqa: BLE001 - anything unexpected is reported
                    outcomes[f"unexpected {type(exc).__name__}"] += 1
                slowest = max(slowest, time.monotonic() - started)

        async def sample() -> None:
            while True:
                await asyncio.sleep(1.0)
                rss.append(rss_mib())

        sampler = asyncio.ensure_future(sample())
        batch = 10_000
        for start in range(0, args.calls, batch):
            await asyncio.gather(*(one(i) for i in range(start, min(start + batch, args.calls))))
        sampler.cancel()

    started = time.monotonic()
    asyncio.run(drive())
    elapsed = time.monotonic() - started
    stop_cutting.set()
    rss.append(rss_mib())

    ended = sum(outcomes.values())
    print(
        f"calls: {args.calls} in {elapsed:.1f} s ({args.calls / elapsed:,.0f}/s), link cut every {args.cut_every} s"
    )
    print(
        f"ended: {ended} (hung: {args.calls - ended}); slowest call {slowest * 1000:.0f} ms (timeout {args.timeout_ms} ms)"
    )
    for name, count in outcomes.most_common():
        print(f"  {name:>24}: {count}")
    print(f"reconnects: {reconnects}; replay checks: {dict(replay_checks)}")
    third = max(1, len(rss) // 3)
    print(
        f"RSS MiB: start {rss[0]:.1f}, after first third {max(rss[:third]):.1f}, "
        f"max {max(rss):.1f}, end {rss[-1]:.1f}"
    )
    worker.shutdown()
    proxy.close()
    engine.close()
    return 0 if ended == args.calls else 1


if __name__ == "__main__":
    sys.exit(main())
