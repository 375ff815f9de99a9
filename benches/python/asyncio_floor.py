"""The CPU a fan-out costs the driving process when the SDK costs nothing.

`sdk_bench.py` (the peers' benchmark) drives a fan-out from a handler: one coroutine per call,
an `asyncio.Semaphore` bounding 1,000 in flight, `asyncio.gather` over 20,000 of them, each
awaiting `trigger_async`. Here `trigger_async` is replaced by the least any asyncio SDK must do:
suspend on a future, resolved on a later loop iteration, `--batch` futures per iteration (as
answers arrive in batches). What remains is the benchmark's own cost, the same for every Python
SDK, on the event loop the handler runs on (ours: uvloop).

    python benches/python/asyncio_floor.py [--calls 20000] [--rounds 5] [--batch 1 8 32 64 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any


async def fan_out(calls: int, concurrency: int, batch: int) -> float:
    """CPU microseconds per call of one fan-out."""
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[None]] = []
    scheduled = False

    def settle() -> None:
        nonlocal scheduled
        ready = pending[:batch]
        del pending[:batch]
        for future in ready:
            future.set_result(None)
        if pending:
            loop.call_soon(settle)
        else:
            scheduled = False

    async def trigger_async(request: dict[str, Any]) -> None:
        nonlocal scheduled
        future = loop.create_future()
        pending.append(future)
        if not scheduled:
            scheduled = True
            loop.call_soon(settle)
        return await future

    semaphore = asyncio.Semaphore(concurrency)
    payload = {"blob": "x" * 52}
    errors = 0

    async def one() -> None:
        nonlocal errors
        async with semaphore:
            try:
                await trigger_async({"function_id": "bench::echo", "payload": payload})
            except Exception:
                errors += 1

    cpu0 = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    assert errors == 0
    return (time.process_time() - cpu0) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32, 64, 1000])
    args = parser.parse_args()
    runners: list[tuple[str, Callable[[Coroutine[Any, Any, float]], float]]] = [("asyncio", asyncio.run)]
    try:
        import uvloop

        runners.append(("uvloop", uvloop.run))
    except ImportError:
        pass
    for name, run in runners:
        for batch in args.batch:
            figures = sorted(run(fan_out(args.calls, args.concurrency, batch)) for _ in range(args.rounds))
            print(f"{name:8} {batch:5} answers per iteration: driver CPU per call median "
                  f"{statistics.median(figures):.1f} us (min {figures[0]:.1f}, max {figures[-1]:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
