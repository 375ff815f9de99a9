"""A first worker: registers functions and calls them in every mode.

Runs against the engine at $III_URL, or against the built-in test engine when it is unset.
"""

from __future__ import annotations

import asyncio
import os
import time

from pydantic import BaseModel

from iii import InitOptions, InvocationError, TriggerAction, register_worker
from iii.testing import Engine


class Order(BaseModel):
    sku: str
    quantity: int


class Receipt(BaseModel):
    sku: str
    total: float


def main(url: str) -> None:
    iii = register_worker(url, InitOptions(worker_name="quickstart"))
    print(f"connected to {url} as worker {iii.worker_id}")

    # A sync handler, registered with a dict.
    iii.register_function(
        {"id": "quickstart::greet", "description": "Greets"}, lambda d: f"Hello, {d['name']}!"
    )

    # An async handler with pydantic models; formats come from the type hints.
    async def price(order: Order) -> Receipt:
        await asyncio.sleep(0)
        return Receipt(sku=order.sku, total=order.quantity * 2.5)

    iii.register_function("quickstart::price", price, description="Prices an order")

    audit: list[dict] = []
    iii.register_function("quickstart::audit", lambda d: audit.append(d))

    def fail(d):
        raise ValueError("out of stock")

    iii.register_function("quickstart::fail", fail)
    time.sleep(0.2)  # registrations are not acknowledged by the engine

    print("sync call    ->", iii.trigger({"function_id": "quickstart::greet", "payload": {"name": "World"}}))
    print(
        "model call   ->",
        iii.trigger({"function_id": "quickstart::price", "payload": Order(sku="A-1", quantity=4)}),
    )
    receipt = iii.trigger(
        {
            "function_id": "quickstart::audit",
            "payload": {"event": "queued"},
            "action": TriggerAction.Enqueue(queue="default"),
        }
    )
    print("enqueue      ->", receipt)
    print(
        "void         ->",
        iii.trigger(
            {
                "function_id": "quickstart::audit",
                "payload": {"event": "fired"},
                "action": TriggerAction.Void(),
            }
        ),
    )
    try:
        iii.trigger({"function_id": "quickstart::fail", "payload": {}})
    except InvocationError as err:
        print("error        ->", err)

    async def concurrently() -> list:
        calls = [
            iii.trigger_async({"function_id": "quickstart::greet", "payload": {"name": n}}) for n in "abc"
        ]
        return await asyncio.gather(*calls)

    print("trigger_async->", asyncio.run(concurrently()))
    deadline = time.monotonic() + 5
    while len(audit) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    print("audit log    ->", sorted(a["event"] for a in audit))
    print(
        "functions    ->",
        sorted(f.function_id for f in iii.list_functions() if f.function_id.startswith("quickstart")),
    )
    iii.shutdown()


if __name__ == "__main__":
    if os.environ.get("III_URL"):
        main(os.environ["III_URL"])
    else:
        with Engine() as engine:
            main(engine.url)
