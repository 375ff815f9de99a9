"""What the number of results handed to an event loop per iteration costs a fan-out that is
bounded by an ``asyncio.Semaphore`` (the usual way to cap concurrency, and how the peer
benchmark drives its fan-outs). No engine: results are resolved ``B`` per loop iteration, as
``Connection.poll`` reads at most ``PUMP_BUDGET`` frames per call (``src/connection/link.rs``)
and a loop's queue resolves at most ``SETTLE_PER_TAKE`` futures per take
(``crates/python/src/queues.rs``). With an SDK that costs nothing, what remains is the
benchmark's own cost per call, on asyncio's loop and on uvloop (the SDK loop's).

Python's semaphore wakes the next waiter by scanning past the ones already woken in the same
iteration, so the cost grows with the square of ``B``.

    python benches/python/batch_size.py
"""

from __future__ import annotations

import asyncio
import collections
import time


async def fan_out(batch: int, calls: int = 20_000, concurrency: int = 1000) -> float:
    loop = asyncio.get_running_loop()
    waiting: collections.deque[asyncio.Future[None]] = collections.deque()
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            result: asyncio.Future[None] = loop.create_future()
            waiting.append(result)
            await result

    def deliver() -> None:
        for _ in range(min(batch, len(waiting))):
            waiting.popleft().set_result(None)
        if not everything.done():
            loop.call_soon(deliver)

    everything = asyncio.ensure_future(asyncio.gather(*(one() for _ in range(calls))))
    loop.call_soon(deliver)
    started = time.process_time()
    await everything
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    runners = [("asyncio", asyncio.run)]
    try:
        import uvloop

        runners.append(("uvloop", uvloop.run))
    except ImportError:
        pass
    for name, run in runners:
        print(f"{name}: results per loop iteration -> CPU per call (best of 9)")
        for batch in (1000, 512, 256, 64, 32, 16, 1):
            best = min(run(fan_out(batch)) for _ in range(9))
            print(f"  {batch:4d}: {best:5.2f} us")


if __name__ == "__main__":
    main()
