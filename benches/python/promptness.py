"""How fast the SDK gives up, refuses or answers in the situations where the tests only check
*that* it does (the tests assert behaviour, not wall-clock time; the times are printed here).

    python benches/python/promptness.py [--repeat 5]

Against the in-process test engine, each figure the median (and max) of --repeat tries, in ms:

  void_call           trigger(..., Void) returning while the handler is still blocked
  oversize_refused    a payload over max_message_size refused before it is sent
  timeout_200ms       a call with timeout_ms=200 to a handler that never answers
  shutdown_fails      shutdown() until 5 blocked callers have their ClientShutdownError
  engine_stop_fails   the engine dies until a blocked caller has its ConnectionLostError
  link_cut_fails      the link is reset (proxy) until a blocked caller has its error
  busy_loop_call      a round trip from a blocking caller while a handler hogs the SDK loop
  unreachable_fails   register_worker on a closed port with max_retries=2 (10 ms delay)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))

from iii import III, InitOptions, ReconnectionConfig, TriggerAction, register_worker  # noqa: E402
from iii.testing import Engine  # noqa: E402

from proxy import Proxy  # noqa: E402

FAST = ReconnectionConfig(initial_delay_ms=20, max_delay_ms=100, jitter_factor=0.0)


def worker(url: str, **options: object) -> III:
    options.setdefault("reconnection_config", FAST)
    return register_worker(url, InitOptions(worker_name=f"prompt-{uuid.uuid4().hex[:6]}", **options))  # type: ignore[arg-type]


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.001)


def serve_forever(server: III) -> str:
    """Registers a handler that never answers; returns its id once the engine lists it."""
    fid = f"prompt::never::{uuid.uuid4().hex[:6]}"

    async def never(d: object) -> None:
        await asyncio.Event().wait()

    server.register_function(fid, never)
    wait_for(lambda: any(f.function_id == fid for f in server.list_functions()))
    return fid


def blocked_callers(client: III, fid: str, n: int) -> tuple[list[threading.Thread], list[float]]:
    """n threads blocked in a call (60 s timeout); each records when its call ended."""
    ended: list[float] = []

    def call() -> None:
        try:
            client.trigger({"function_id": fid, "payload": {}, "timeout_ms": 60_000})
        except Exception:  # noqa: BLE001 - the failure is what is timed
            pass
        ended.append(time.perf_counter())

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    wait_for(lambda: client._connection.pending_calls() == n)
    return threads, ended


def void_call(engine: Engine) -> float:
    server, client = worker(engine.url), worker(engine.url)
    release, fid = threading.Event(), f"prompt::void::{uuid.uuid4().hex[:6]}"
    server.register_function(fid, lambda d: release.wait(10))
    wait_for(lambda: any(f.function_id == fid for f in client.list_functions()))
    t0 = time.perf_counter()
    client.trigger({"function_id": fid, "payload": {}, "action": TriggerAction.Void()})
    took = time.perf_counter() - t0
    release.set()
    server.shutdown()
    client.shutdown()
    return took


def oversize_refused(engine: Engine) -> float:
    client = worker(engine.url, max_message_size=1024 * 1024)
    payload = "y" * (2 * 1024 * 1024)
    t0 = time.perf_counter()
    try:
        client.trigger({"function_id": "prompt::none", "payload": payload})
    except Exception:  # noqa: BLE001 - PayloadTooLargeError is expected
        pass
    took = time.perf_counter() - t0
    client.shutdown()
    return took


def timeout_200ms(engine: Engine) -> float:
    server, client = worker(engine.url), worker(engine.url)
    fid = serve_forever(server)
    t0 = time.perf_counter()
    try:
        client.trigger({"function_id": fid, "payload": {}, "timeout_ms": 200})
    except TimeoutError:
        pass
    took = time.perf_counter() - t0
    server.shutdown()
    client.shutdown()
    return took


def shutdown_fails(engine: Engine) -> float:
    server, client = worker(engine.url), worker(engine.url)
    threads, ended = blocked_callers(client, serve_forever(server), 5)
    t0 = time.perf_counter()
    client.shutdown()
    for t in threads:
        t.join(30)
    server.shutdown()
    return max(ended) - t0


def engine_stop_fails(_: Engine) -> float:
    with Engine() as own:
        server, client = worker(own.url), worker(own.url)
        threads, ended = blocked_callers(client, serve_forever(server), 1)
        t0 = time.perf_counter()
        own.stop()
        threads[0].join(30)
        server.shutdown()
        client.shutdown()
        return ended[0] - t0


def link_cut_fails(engine: Engine) -> float:
    proxy = Proxy(engine.port)
    server, client = worker(engine.url), worker(proxy.url)
    threads, ended = blocked_callers(client, serve_forever(server), 1)
    t0 = time.perf_counter()
    proxy.cut()
    threads[0].join(30)
    server.shutdown()
    client.shutdown()
    proxy.close()
    return ended[0] - t0


def busy_loop_call(engine: Engine) -> float:
    server, client = worker(engine.url), worker(engine.url)
    quick, hog = f"prompt::quick::{uuid.uuid4().hex[:6]}", f"prompt::hog::{uuid.uuid4().hex[:6]}"
    hogging, release = threading.Event(), threading.Event()
    server.register_function(quick, lambda d: "quick")

    async def hog_loop(d: object) -> None:
        hogging.set()
        release.wait(30)  # blocks the client's SDK loop

    client.register_function(hog, hog_loop)
    wait_for(lambda: {quick, hog} <= {f.function_id for f in client.list_functions()})
    client.trigger({"function_id": hog, "payload": {}, "action": TriggerAction.Void()})
    hogging.wait(10)
    t0 = time.perf_counter()
    client.trigger({"function_id": quick, "payload": {}, "timeout_ms": 20_000})
    took = time.perf_counter() - t0
    release.set()
    server.shutdown()
    client.shutdown()
    return took


def unreachable_fails(_: Engine) -> float:
    t0 = time.perf_counter()
    try:
        register_worker(
            "ws://127.0.0.1:9",
            InitOptions(reconnection_config=ReconnectionConfig(initial_delay_ms=10, max_retries=2)),
        )
    except ConnectionError:
        pass
    return time.perf_counter() - t0


FIGURES = [
    void_call,
    oversize_refused,
    timeout_200ms,
    shutdown_fails,
    engine_stop_fails,
    link_cut_fails,
    busy_loop_call,
    unreachable_fails,
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON line per figure")
    args = parser.parse_args()
    logging.getLogger("iii").setLevel(logging.CRITICAL)  # lost links and refusals are expected here
    with Engine(functions_poll_interval_ms=100) as engine:
        for figure in FIGURES:
            times = [figure(engine) * 1000 for _ in range(args.repeat)]
            row = {
                "figure": figure.__name__,
                "median_ms": round(statistics.median(times), 2),
                "max_ms": round(max(times), 2),
            }
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(
                    f"{row['figure']:<20} median {row['median_ms']:>9.2f} ms   max {row['max_ms']:>9.2f} ms"
                )


if __name__ == "__main__":
    main()
