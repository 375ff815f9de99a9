"""What running a sync handler on another thread adds to a local call: one hand-off to a
thread and back through ``concurrent.futures`` and through the core's ``HandlerThreads`` (how
our local dispatch runs a sync handler), against calling the same function on the calling
thread. No engine, no connection.

  thread_hop.py [--calls N]     prints one JSON line: microseconds per call, median of 5 runs
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import statistics
import time


def _handler(data: int) -> int:
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    calls = parser.parse_args().calls
    from iii import _iii

    pool = concurrent.futures.ThreadPoolExecutor(4)
    threads = _iii.HandlerThreads(4)
    hop, ours, direct = [], [], []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(calls):
            pool.submit(_handler, i).result(30)
        hop.append((time.perf_counter() - t0) / calls * 1e6)
        t0 = time.perf_counter()
        for i in range(calls):
            threads.run(functools.partial(_handler, i), 30.0)
        ours.append((time.perf_counter() - t0) / calls * 1e6)
        t0 = time.perf_counter()
        for i in range(calls):
            _handler(i)
        direct.append((time.perf_counter() - t0) / calls * 1e6)
    pool.shutdown()
    print(json.dumps({"thread_hop_us": round(statistics.median(hop), 1),
                      "handler_threads_us": round(statistics.median(ours), 2),
                      "same_thread_us": round(statistics.median(direct), 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
