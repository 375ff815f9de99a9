"""A worker written against the iii-sdk 0.25.0 API only: its import paths and its calls.

Connects to the engine at $III_URL (``register_worker()`` reads it), or to the built-in test
engine when $III_URL is unset. Registers two functions with metadata, streams bytes to one of
them through a channel, and calls them with ``TriggerRequest`` objects.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from iii import InitOptions, InvocationError, TriggerAction, current_invocation, register_worker
from iii.channel import ChannelReader
from iii.helpers import create_channel
from iii.iii_types import TriggerRequest
from iii_helpers.observability import Logger

logger = Logger(service_name="worker-025")


def quote(data: dict[str, Any]) -> dict[str, Any]:
    """Prices a basket; says which function and invocation served it."""
    invocation = current_invocation()
    assert invocation is not None, "a handler always runs inside an invocation"
    total = sum(line["qty"] * line["unit_price"] for line in data["lines"])
    logger.info("quoted", {"lines": len(data["lines"]), "total": total})
    return {
        "total": round(total, 2),
        "served_by": invocation.function_id,
        "invocation_id": invocation.invocation_id,
    }


async def checksum(data: dict[str, Any]) -> dict[str, Any]:
    """Reads every byte sent through the channel whose reader end it was given."""
    reader: ChannelReader = data["upload"]
    received = await reader.read_all()
    invocation = current_invocation()
    return {
        "bytes": len(received),
        "sum": sum(received) % 65536,
        "served_by": invocation.function_id if invocation else None,
    }


def call_when_ready(iii: Any, request: TriggerRequest, deadline_s: float = 10.0) -> Any:
    """``trigger(request)``, retried while the engine does not know the function yet
    (registrations are not acknowledged)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return iii.trigger(request)
        except InvocationError as err:
            if err.code != "function_not_found" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    iii = register_worker(options=InitOptions(worker_name="worker-025"))
    print("connected as worker", iii.worker_id)

    iii.register_function(
        "shop::quote",
        quote,
        description="Prices a basket",
        metadata={"team": "checkout", "version": 2},
    )
    iii.register_function(
        "shop::checksum",
        checksum,
        description="Checksums an upload streamed through a channel",
        metadata={"team": "storage"},
    )

    basket = {"lines": [{"qty": 2, "unit_price": 3.5}, {"qty": 1, "unit_price": 10.0}]}
    quoted = call_when_ready(iii, TriggerRequest(function_id="shop::quote", payload=basket, timeout_ms=5000))
    print("quote        ->", quoted["total"], "served by", quoted["served_by"])

    # A channel: the reader end goes to the function in the payload, this side writes.
    channel = create_channel(iii)
    blob = bytes(range(256)) * 64
    result: dict[str, Any] = {}

    def run_call() -> None:
        result["value"] = call_when_ready(
            iii, TriggerRequest(function_id="shop::checksum", payload={"upload": channel.reader_ref})
        )

    caller = threading.Thread(target=run_call)
    caller.start()

    async def upload() -> None:
        await channel.writer.write(blob)
        await channel.writer.close_async()

    asyncio.run(upload())
    caller.join(timeout=30)
    summed = result["value"]
    print("checksum     ->", summed["bytes"], "bytes, sum", summed["sum"], "served by", summed["served_by"])
    assert summed == {"bytes": len(blob), "sum": sum(blob) % 65536, "served_by": "shop::checksum"}

    fired = iii.trigger(
        TriggerRequest(function_id="shop::quote", payload=basket, action=TriggerAction.Void())
    )
    print("void         ->", fired)

    async def many() -> list[Any]:
        calls = [
            iii.trigger_async(
                TriggerRequest(function_id="shop::quote", payload={"lines": [{"qty": n, "unit_price": 1.0}]})
            )
            for n in (1, 2, 3)
        ]
        return await asyncio.gather(*calls)

    print("trigger_async->", [r["total"] for r in asyncio.run(many())])
    print("outside      ->", current_invocation())
    iii.shutdown()
    print("done")


if __name__ == "__main__":
    if os.environ.get("III_URL"):
        main()
    else:
        from iii.testing import Engine

        with Engine(generation="0.25") as engine:
            os.environ["III_URL"] = engine.url
            main()
