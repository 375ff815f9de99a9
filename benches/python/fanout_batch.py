"""Fan-out of many small calls: III.trigger_many against asyncio.gather of trigger_async, the
raw protocol client and the official Rust SDKs, on one real engine, in one run.

    python benches/python/fanout_batch.py --engine BIN [--raw BIN] [--rust BIN] [--rust25 BIN]
                                          [--calls 20000] [--window 1000] [--rounds 3]
                                          [--work-us 0]

Starts a private engine from BIN (engine v0.11.0 with the race patch, see
../shared/peers/compare.py; loopback, port 49180, observability off) and ONE serving process,
the raw protocol client's (`raw_limit serve`), so every driver calls the same echo and only the
driving side differs. Then, rounds interleaved, each driver in a fresh process:

  raw_limit / rust_sdk / rust_sdk025   `BIN drive URL`: their `fanout_async_small_per_s`
                                       (--calls 64-byte calls, window 1000)
  ours_many        III.trigger_many (sync, from the main thread), max_in_flight=--window
  ours_many_async  await III.trigger_many_async from an async handler on the SDK loop
  ours_gather      asyncio.gather of trigger_async bounded by a Semaphore(--window), from an
                   async handler (what sdk_bench.py measures); each task spends --work-us of
                   CPU on its result inside the semaphore, as an application does
  ours_floor       the same gather in the same kind of process, but each task awaits a future
                   that is resolved 32 per loop iteration instead of calling: what that way of
                   fanning out costs the driving process with an SDK that costs nothing

For ours, `cpu_us` is the driving process's CPU per call (all threads), `gc_us` the time the
cyclic garbage collector took per call during the fan-out, and `gc_runs` its collections of
each generation. For the gathers, `ramp_ms` is the time from the start of the fan-out to the
end of the loop iteration that first steps its tasks (making 20,000 Tasks, then 1,000 calls
and 19,000 waits on the semaphore, before any answer is read) and `ramp_gc_ms` the collector's
share of it.

Prints one JSON line per driver (median calls/s over the rounds, and each round's) and the
ratios of each of ours to the others. Absolute figures vary between machines; compare the
ratios of one run.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

PORT = 49180
URL = f"ws://127.0.0.1:{PORT}"
CONFIG = """workers:
  - name: iii-worker-manager
    config: {{host: 127.0.0.1, port: {port}}}
  - name: iii-observability
    config: {{enabled: false}}
  - name: iii-telemetry
    config: {{enabled: false}}
  - name: iii-http
    config: {{host: 127.0.0.1, port: {http}}}
  - name: iii-stream
    config: {{host: 127.0.0.1, port: {stream}, adapter: {{name: kv, config: {{store_method: in_memory}}}}}}
  - name: iii-queue
    config: {{adapter: {{name: builtin}}}}
"""


def start_engine(binary: str) -> tuple[subprocess.Popen[bytes], pathlib.Path]:
    d = pathlib.Path(tempfile.mkdtemp(prefix="fanout-engine-"))
    (d / "cfg").mkdir()  # the engine reloads on any change in its config's folder
    (d / "cfg" / "config.yaml").write_text(CONFIG.format(port=PORT, http=PORT + 1, stream=PORT + 2))
    log = open(d / "engine.log", "w")  # noqa: SIM115 - lives as long as the engine
    env = dict(os.environ, III_TELEMETRY_ENABLED="false")
    p = subprocess.Popen(
        [binary, "--config", "config.yaml", "--no-update-check"],
        cwd=d / "cfg",
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=0.2).close()
            return p, d
        except OSError:
            time.sleep(0.1)
    p.kill()
    sys.exit(f"engine did not start; see {d / 'engine.log'}")


def drive_ours(mode: str, calls: int, window: int, work_us: float) -> None:
    """One driver process of ours: prints {"per_s": ..., "errors": ...}."""
    import asyncio

    from iii import InitOptions, register_worker

    iii = register_worker(
        URL,
        InitOptions(
            worker_name=f"fanout-{os.getpid()}", otel={"enabled": False}, enable_metrics_reporting=False
        ),
    )
    payload = {"blob": "x" * (64 - 12)}
    request = {"function_id": "bench::echo", "payload": payload}
    gc_spent = [0.0, 0.0]  # seconds in the collector so far during a fan-out; its last start

    def gc_timer(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            gc_spent[1] = time.perf_counter()
        else:
            gc_spent[0] += time.perf_counter() - gc_spent[1]

    async def gather(n: int, floor: bool) -> tuple[int, float, float]:
        """Errors, then the ramp and the collector's time in it (s)."""
        sem = asyncio.Semaphore(window)
        errors = 0
        work = work_us / 1e6
        loop = asyncio.get_running_loop()
        waiting: collections.deque[asyncio.Future[None]] = collections.deque()

        def deliver() -> None:  # the floor's answers: 32 per iteration, as the SDK's queue
            for _ in range(min(32, len(waiting))):
                waiting.popleft().set_result(None)
            if not everything.done():
                loop.call_soon(deliver)

        async def one() -> None:
            nonlocal errors
            async with sem:
                try:
                    if floor:
                        answer = loop.create_future()
                        waiting.append(answer)
                        await answer
                    else:
                        await iii.trigger_async(request)
                except Exception:
                    errors += 1
                if work:
                    end = time.perf_counter() + work
                    while time.perf_counter() < end:
                        pass

        ramp = [0.0, 0.0]

        def first_iteration_ends() -> None:  # after the n task steps scheduled before it
            ramp[:] = time.perf_counter() - t0, gc_spent[0] - gc0

        t0, gc0 = time.perf_counter(), gc_spent[0]
        everything = asyncio.gather(*(one() for _ in range(n)))
        loop.call_soon(first_iteration_ends)
        if floor:
            loop.call_soon(deliver)
        await everything
        return errors, ramp[0], ramp[1]

    async def many_async(n: int) -> int:
        outcomes = await iii.trigger_many_async([request] * n, max_in_flight=window)
        return sum(not o.ok for o in outcomes)

    async def on_sdk_loop(data: dict[str, int]) -> dict[str, float]:
        gc_spent[0] = 0.0
        gc.callbacks.append(gc_timer)
        t0 = time.perf_counter()
        out: dict[str, float] = {}
        try:
            if data["gather"]:
                errors, ramp, ramp_gc = await gather(data["n"], bool(data.get("floor")))
                out = {"ramp_ms": round(ramp * 1e3, 1), "ramp_gc_ms": round(ramp_gc * 1e3, 1)}
            else:
                errors = await many_async(data["n"])
        finally:
            gc.callbacks.remove(gc_timer)
        return {"elapsed": time.perf_counter() - t0, "errors": errors, "gc": gc_spent[0], **out}

    iii.register_function("fanout::drive", on_sdk_loop)
    deadline = time.time() + 30
    while True:  # the echo and our own driver function are known to the engine
        try:
            iii.trigger({"function_id": "bench::echo", "payload": {}, "timeout_ms": 2000})
            iii.trigger(
                {"function_id": "fanout::drive", "payload": {"n": 10, "gather": 0}, "timeout_ms": 2000}
            )
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    gc_before = gc.get_stats()
    cpu0 = time.process_time()
    gc_s = None
    if mode == "many":
        t0 = time.perf_counter()
        outcomes = iii.trigger_many([request] * calls, max_in_flight=window)
        elapsed, errors = time.perf_counter() - t0, sum(not o.ok for o in outcomes)
    else:
        r = iii.trigger(
            {
                "function_id": "fanout::drive",
                "payload": {"n": calls, "gather": int(mode != "many_async"), "floor": int(mode == "floor")},
                "timeout_ms": 600_000,
            }
        )
        elapsed, errors, gc_s = r["elapsed"], r["errors"], r["gc"]
    cpu_us = (time.process_time() - cpu0) / calls * 1e6  # the driving process, all threads
    out = {"per_s": round(calls / elapsed), "errors": errors, "cpu_us": round(cpu_us, 1)}
    if gc_s is not None:
        out["gc_us"] = round(gc_s / calls * 1e6, 2)
        out.update({k: r[k] for k in ("ramp_ms", "ramp_gc_ms") if k in r})
    # Collections per generation: the same for ours_gather and ours_floor shows that the
    # collector's work comes with the way of fanning out, not with the SDK's allocations.
    out["gc_runs"] = [
        b["collections"] - a["collections"] for a, b in zip(gc_before, gc.get_stats(), strict=True)
    ]
    print(json.dumps(out), flush=True)
    iii.shutdown()


# Figures only ours' drivers report; medians over rounds.
EXTRAS = ("cpu_us", "gc_us", "ramp_ms", "ramp_gc_ms")


def run_driver(cmd: list[str], key: str) -> dict[str, Any] | None:
    d = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    last = (d.stdout.strip().splitlines() or [""])[-1]
    try:
        out = json.loads(last)
    except ValueError:
        print(f"driver {cmd[0]} failed: {(d.stdout + d.stderr)[-400:]}", file=sys.stderr)
        return None
    errors = out[key[: -len("per_s")] + "errors"]
    return {"per_s": out[key], "errors": errors, "gc_runs": out.get("gc_runs")} | {
        k: out[k] for k in EXTRAS if k in out
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", help="iii engine v0.11.0 binary (race patch)")
    ap.add_argument("--raw", help="raw_limit binary (also the serving process)")
    ap.add_argument("--rust", help="rust_ceiling binary (official Rust SDK 0.11.0)")
    ap.add_argument("--rust25", help="rust_ceiling025 binary (official Rust SDK 0.25.0)")
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work-us", type=float, default=0.0, help="CPU each gather task spends on its result")
    ap.add_argument("--drive", choices=["many", "many_async", "gather", "floor"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.drive:
        drive_ours(args.drive, args.calls, args.window, args.work_us)
        return
    if not args.engine or not args.raw:
        sys.exit("--engine and --raw are needed: its serving process answers every driver")
    me = [sys.executable, os.path.abspath(__file__), "--calls", str(args.calls), "--window", str(args.window),
          "--work-us", str(args.work_us)]  # fmt: skip
    drivers: dict[str, tuple[list[str], str]] = {
        "ours_many": ([*me, "--drive", "many"], "per_s"),
        "ours_many_async": ([*me, "--drive", "many_async"], "per_s"),
        "ours_gather": ([*me, "--drive", "gather"], "per_s"),
        "ours_floor": ([*me, "--drive", "floor"], "per_s"),
        "raw_limit": ([args.raw, "drive", URL], "fanout_async_small_per_s"),
    }
    if args.rust:
        drivers["rust_sdk"] = ([args.rust, "drive", URL], "fanout_async_small_per_s")
    if args.rust25:
        drivers["rust_sdk025"] = ([args.rust25, "drive", URL], "fanout_async_small_per_s")
    engine, folder = start_engine(args.engine)
    serve = None
    per_round: dict[str, list[float]] = {name: [] for name in drivers}
    extras: dict[str, dict[str, list[float]]] = {name: {} for name in drivers}
    gc_runs: dict[str, list[int]] = {}
    errors: dict[str, float] = dict.fromkeys(drivers, 0)
    try:
        serve = subprocess.Popen(
            [args.raw, "serve", URL], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert serve.stdout is not None and "ready" in serve.stdout.readline()
        for _ in range(args.rounds):
            for name, (cmd, key) in drivers.items():
                r = run_driver(cmd, key)
                if r is not None:
                    per_round[name].append(r["per_s"])
                    for k in EXTRAS:
                        if k in r:
                            extras[name].setdefault(k, []).append(r[k])
                    if r["gc_runs"] is not None:
                        gc_runs[name] = r["gc_runs"]  # the same every round
                    errors[name] += r["errors"]
    finally:
        if serve is not None:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=10)
        engine.terminate()
        engine.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    med = {name: statistics.median(v) for name, v in per_round.items() if v}
    for name, v in per_round.items():
        line = {"driver": name, "per_s": med.get(name), "rounds": v, "errors": errors[name]}
        line.update({k: statistics.median(x) for k, x in extras[name].items()})
        if name in gc_runs:
            line["gc_runs"] = gc_runs[name]
        print(json.dumps(line))
    for ours in ("ours_many", "ours_many_async", "ours_gather"):
        if ours in med:
            ratios = {
                other: round(med[ours] / med[other], 2) for other in med if not other.startswith("ours")
            }
            ratios.update(
                {f"/{o}": round(med[ours] / med[o], 2) for o in med if o.startswith("ours") and o != ours}
            )
            print(json.dumps({"ratio": ours, **ratios}))


if __name__ == "__main__":
    main()
