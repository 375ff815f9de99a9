"""What an idle connected worker costs: CPU time and context switches over a quiet period.

    python benches/python/idle.py [--url ws://...] [--seconds 20] [--official-python PY]

Starts a test engine in its own process (unless --url / III_URL), then, for each SDK (ours =
this interpreter; official = --official-python), a worker process that connects, registers one
function, waits until connected, and then does nothing for --seconds while it measures its own
CPU time and context switches (getrusage, all threads). Prints one JSON line per SDK.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

WORKER = r"""
import json, resource, sys, time
from iii import register_worker, InitOptions
iii = register_worker(sys.argv[1], InitOptions(worker_name="idle-bench"))
iii.register_function("idle::echo", lambda d: d)
time.sleep(1.0)  # let registration and the first keepalive settle before measuring
before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
time.sleep(float(sys.argv[2]))
after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - t0
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
switches = (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw)
print(json.dumps({"seconds": round(elapsed, 1), "cpu_ms": round(cpu * 1000, 1),
                  "cpu_percent": round(100 * cpu / elapsed, 3), "context_switches": switches,
                  "switches_per_s": round(switches / elapsed, 1)}), flush=True)
iii.shutdown()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("III_URL"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--official-python")
    args = parser.parse_args()
    engine = None
    url = args.url
    if not url:
        port = free_port()
        engine = subprocess.Popen(
            [sys.executable, "-m", "iii.testing", "--port", str(port)], stdout=subprocess.PIPE
        )
        assert engine.stdout is not None
        engine.stdout.readline()  # "listening on ..."
        url = f"ws://127.0.0.1:{port}"
    try:
        sdks = [("ours", sys.executable)] + (
            [("official", args.official_python)] if args.official_python else []
        )
        for name, python in sdks:
            started = time.monotonic()
            out = subprocess.run(
                [python, "-c", WORKER, url, str(args.seconds)],
                capture_output=True,
                text=True,
                timeout=args.seconds + 60,
            )
            if out.returncode != 0:
                print(json.dumps({"sdk": name, "error": out.stderr.strip()[-500:]}))
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["sdk"] = name
            result["wall_s"] = round(time.monotonic() - started, 1)
            print(json.dumps(result), flush=True)
    finally:
        if engine is not None:
            engine.terminate()
            engine.wait(timeout=10)


if __name__ == "__main__":
    main()
