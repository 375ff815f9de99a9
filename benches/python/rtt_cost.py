"""Sequential round trips from this process (``trigger()`` on the main thread, as the round trip
of ``sdk_bench.py``) to a serving process: the latency, and the CPU time and context switches
per call of each thread of both processes (from ``/proc``, Linux only).

    python ../shared/peers/sdk_bench.py serve ws://127.0.0.1:49134 &   # prints "ready"
    python benches/python/rtt_cost.py ws://127.0.0.1:49134 <pid of the serving process>
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict

from iii import InitOptions, register_worker

TICK = os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> dict[str, tuple[int, int]]:
    """Per thread (``name/tid``): (CPU ticks, context switches) so far."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{base}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"{base}/comm") as f:
                name = f.read().strip()
            with open(f"{base}/status") as f:
                switches = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except OSError:
            continue  # the thread ended meanwhile
        out[f"{name}/{tid}"] = (int(fields[11]) + int(fields[12]), switches)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("server_pid", type=int)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    iii = register_worker(
        args.url, InitOptions(worker_name="rtt-cost", otel={"enabled": False}, enable_metrics_reporting=False)
    )
    try:
        for _ in range(200):  # the serving worker's functions, and a warm path
            iii.trigger({"function_id": "bench::echo", "payload": {"i": 1}, "timeout_ms": 5000})
        pids = {"driving": os.getpid(), "serving": args.server_pid}
        before = {role: threads(pid) for role, pid in pids.items()}
        latencies = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            iii.trigger({"function_id": "bench::echo", "payload": {"i": 1}})
            latencies.append(time.perf_counter() - t0)
        after = {role: threads(pid) for role, pid in pids.items()}
    finally:
        iii.shutdown()
    print(f"round trip p50 {statistics.median(latencies) * 1e6:.1f} us over {args.calls} calls")
    for role in pids:
        totals: dict[str, float] = defaultdict(float)
        for key, (ticks, switches) in after[role].items():
            ticks0, switches0 = before[role].get(key, (0, 0))
            cpu_us = (ticks - ticks0) / TICK / args.calls * 1e6
            per_call = (switches - switches0) / args.calls
            totals["cpu"] += cpu_us
            totals["switches"] += per_call
            if per_call >= 0.02 or cpu_us >= 1:
                print(f"  {role:8} {key:24} {cpu_us:6.1f} us CPU  {per_call:5.2f} switches per call")
        print(
            f"  {role:8} {'(all threads)':24} {totals['cpu']:6.1f} us CPU  {totals['switches']:5.2f} switches per call"
        )


if __name__ == "__main__":
    main()
