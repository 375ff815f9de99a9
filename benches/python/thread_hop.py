"""What running a sync handler on another thread would add to a local call: one hand-off to a
thread pool and back (``concurrent.futures``, as iii-sdk 0.25.0 runs a sync handler called with
``trigger()``), against calling the same function on the calling thread. No engine, no SDK.

  thread_hop.py [--calls N]     prints one JSON line: microseconds per call, median of 5 runs
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import time


def _handler(data: int) -> int:
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    calls = parser.parse_args().calls
    pool = concurrent.futures.ThreadPoolExecutor(4)
    hop, direct = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(calls):
            pool.submit(_handler, i).result(30)
        hop.append((time.perf_counter() - t0) / calls * 1e6)
        t0 = time.perf_counter()
        for i in range(calls):
            _handler(i)
        direct.append((time.perf_counter() - t0) / calls * 1e6)
    pool.shutdown()
    print(json.dumps({"thread_hop_us": round(statistics.median(hop), 1),
                      "same_thread_us": round(statistics.median(direct), 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
