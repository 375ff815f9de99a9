"""Local dispatch and the cost of observers (iii-sdk 0.25.0's programming model), with only the
public API that ours and the official ``iii-sdk`` 0.25.0 share, so one file measures both.

  local_dispatch.py                        starts the test engine (0.25 generation), runs this
                                           file with each interpreter below, prints ratios
      [--official25 PY] [--quick]          PY: a python with the official iii-sdk==0.25.0
      [--rounds N]                         fresh processes, rounds interleaved, medians (3)
  local_dispatch.py run URL [--quick]      one client: prints one JSON line

Scenarios (one worker calling functions it registered itself):
  local_sync / local_async    trigger() of a sync handler / trigger_async() of an async handler,
                              run in-process (local dispatch, confirmed by the engine)
  remote_sync / remote_async  the same calls with ``dispatch: "remote"``: through the engine
  local_sync_fanout           trigger_async() of the sync handler from 1000 tasks at once
                              (asyncio.gather under a semaphore), and remote_sync_fanout the same
                              through the engine
  observed_local_<k>          local trigger() of a sync function watched by k observers whose
                              filters read the input but do not match (k = 0, 1, 10): the cost
                              of evaluating filters on the hot path, nothing delivered
  observed_remote_<k>         the same observers, calls routed through the engine
Each figure is calls per second and the caller's CPU microseconds per call (the engine's CPU is
not included). A process sometimes runs every call about 2 us slower than the next one does
(the CPU it lands on, the other processes of the machine), so each client runs in several fresh
processes, rounds interleaved, and the medians are kept. Ratios within one run are what to
compare (benches/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _cpu() -> float:
    return time.process_time()


def _timed(n: int, call) -> dict[str, float]:
    c0, t0 = _cpu(), time.perf_counter()
    for _ in range(n):
        call()
    elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
    return {"per_s": round(n / elapsed), "cpu_us": round(cpu / n * 1e6, 2)}


def _timed_async(n: int, call) -> dict[str, float]:
    async def loop() -> dict[str, float]:
        c0, t0 = _cpu(), time.perf_counter()
        for _ in range(n):
            await call()
        elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
        return {"per_s": round(n / elapsed), "cpu_us": round(cpu / n * 1e6, 2)}

    return asyncio.run(loop())


def _timed_gather(n: int, call, window: int = 1000) -> dict[str, float]:
    async def main() -> dict[str, float]:
        gate = asyncio.Semaphore(window)

        async def one() -> None:
            async with gate:
                await call()

        c0, t0 = _cpu(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
        return {"per_s": round(n / elapsed), "cpu_us": round(cpu / n * 1e6, 2)}

    return asyncio.run(main())


def run(url: str, quick: bool) -> None:
    from iii import InitOptions, register_worker

    iii = register_worker(
        url,
        InitOptions(
            worker_name=f"local-bench-{os.getpid()}", otel={"enabled": False}, enable_metrics_reporting=False
        ),
    )

    def echo_sync(data):
        return data

    async def echo_async(data):
        return data

    def hot(data):
        return data

    def sink(_data):
        return None

    iii.register_function("bench::local_sync", echo_sync)
    iii.register_function("bench::local_async", echo_async)
    iii.register_function("bench::hot", hot)
    iii.register_function("bench::observer_sink", sink)
    payload = {"n": 1, "who": "bench"}

    def call(function_id: str, dispatch: str = "auto"):
        request = {"function_id": function_id, "payload": payload, "dispatch": dispatch}
        return lambda: iii.trigger(request)

    def call_async(function_id: str, dispatch: str = "auto"):
        request = {"function_id": function_id, "payload": payload, "dispatch": dispatch}
        return lambda: iii.trigger_async(request)

    # Warm up: the registrations have reached the engine and it confirmed local dispatch.
    deadline = time.time() + 30
    while True:
        try:
            for fid in ("bench::local_sync", "bench::local_async", "bench::hot"):
                iii.trigger(
                    {"function_id": fid, "payload": payload, "dispatch": "remote", "timeout_ms": 2000}
                )
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    _timed(2000, call("bench::local_sync"))

    n_local, n_remote = (5000, 500) if quick else (50000, 3000)
    out: dict[str, object] = {}
    out["local_sync"] = _timed(n_local, call("bench::local_sync"))
    out["remote_sync"] = _timed(n_remote, call("bench::local_sync", "remote"))
    out["local_async"] = _timed_async(n_local, call_async("bench::local_async"))
    out["remote_async"] = _timed_async(n_remote, call_async("bench::local_async", "remote"))
    n_fan = 2000 if quick else 20000
    out["local_sync_fanout"] = _timed_gather(n_fan, call_async("bench::local_sync"))
    out["remote_sync_fanout"] = _timed_gather(n_fan, call_async("bench::local_sync", "remote"))

    handles = []
    for k in (0, 1, 10):
        while len(handles) < k:
            handle = iii.observe(
                {"function_id": "bench::hot", "filters": {"input.n": {"$gte": 1_000_000 + len(handles)}}},
                "bench::observer_sink",
            )
            handle.ready(timeout=10)
            handles.append(handle)
        out[f"observed_local_{k}"] = _timed(n_local, call("bench::hot"))
        out[f"observed_remote_{k}"] = _timed(n_remote, call("bench::hot", "remote"))
    for handle in handles:
        handle.dispose()
    print(json.dumps(out), flush=True)
    iii.shutdown()


def main() -> None:
    quick = "--quick" in sys.argv
    others = {}
    if "--official25" in sys.argv:
        others["official_py025"] = sys.argv[sys.argv.index("--official25") + 1]
    from iii.testing import Engine

    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    engine = Engine(generation="0.25")
    runs: dict[str, list[dict[str, dict[str, float]]]] = {}
    try:
        for _ in range(rounds):
            for label, python in [("ours", sys.executable), *others.items()]:
                cmd = [python, os.path.abspath(__file__), "run", engine.url] + (["--quick"] if quick else [])
                env = dict(os.environ, HOME="/tmp")
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
                if done.returncode != 0:
                    print(f"{label} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                    continue
                runs.setdefault(label, []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        engine.stop()
    results = {
        label: {
            scenario: {
                "per_s": round(statistics.median(r[scenario]["per_s"] for r in rs)),
                "cpu_us": round(statistics.median(r[scenario]["cpu_us"] for r in rs), 2),
            }
            for scenario in rs[0]
        }
        for label, rs in runs.items()
    }
    for label, medians in results.items():
        print(json.dumps({"client": label, "rounds": len(runs[label]), **medians}), flush=True)
    ours = results.get("ours")
    if not ours:
        return
    per_s = {k: v["per_s"] for k, v in ours.items()}
    print(
        json.dumps(
            {
                "ours local/remote sync": round(per_s["local_sync"] / per_s["remote_sync"], 1),
                "ours local/remote async": round(per_s["local_async"] / per_s["remote_async"], 1),
                "ours local/remote sync fan-out": round(
                    per_s["local_sync_fanout"] / per_s["remote_sync_fanout"], 1
                ),
                "ours observed_local 1/0": round(per_s["observed_local_1"] / per_s["observed_local_0"], 3),
                "ours observed_local 10/0": round(per_s["observed_local_10"] / per_s["observed_local_0"], 3),
            }
        )
    )
    for label, theirs in results.items():
        if label != "ours":
            print(
                json.dumps({f"ours/{label}": {k: round(per_s[k] / v["per_s"], 2) for k, v in theirs.items()}})
            )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "run":
        run(sys.argv[2], "--quick" in sys.argv)
    else:
        main()
