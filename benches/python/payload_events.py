"""CPU cost of the invocation span's payload events (iii.invocation.input / .output, 0.25's
redaction and truncation) on the calling thread, with the exporter running:

- the span without payload events (``III_DISABLE_TRACE_PAYLOADS=1``);
- the span with both events written in Rust (``Telemetry.start_invocation(payload=)`` and
  ``InvocationSpan.end_with_output``), what the SDK does;
- the two event texts made by the Python helper ``iii._observability.redact_and_truncate``
  (what writing them in Python would add on top of the span).

    python benches/python/payload_events.py [--calls 100000]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from iii import OtelConfig, telemetry
from iii._observability import redact_and_truncate
from iii.testing import Engine

SMALL = {"order_id": 1234, "sku": "A-1", "qty": 2, "password": "x"}
RESULT = {"ok": True, "total": 12.5}
LARGE = {"items": [{"sku": f"S-{i}", "qty": i, "price": i * 1.25, "note": "é" * 8} for i in range(60)]}
BLOB = {"blob": "x" * (16384 - 12)}  # compare.py's 16 KiB payload


def per_call(calls: int, body: Any) -> float:
    start = time.thread_time()
    for _ in range(calls):
        body()
    return (time.thread_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    with Engine() as engine:
        telemetry.init_otel(OtelConfig(engine_ws_url=engine.url, metrics_enabled=False))
        live = telemetry.current()
        assert live is not None
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        payloads = (
            ("small payload", SMALL),
            (f"{len(str(LARGE))} B payload", LARGE),
            ("16 KiB string", BLOB),
        )
        for label, payload in payloads:

            def rust(payload: Any = payload) -> None:
                live.start_invocation("bench::echo", parent, None, payload).end_with_output(RESULT)

            def python(payload: Any = payload) -> None:
                redact_and_truncate(payload, None)
                redact_and_truncate(RESULT, None)

            os.environ["III_DISABLE_TRACE_PAYLOADS"] = "1"
            per_call(1000, rust)
            off = per_call(args.calls, rust)
            live.flush(10_000)
            del os.environ["III_DISABLE_TRACE_PAYLOADS"]
            per_call(1000, rust)
            on = per_call(args.calls, rust)
            live.flush(10_000)
            per_call(1000, python)
            py = per_call(args.calls // 4, python)
            print(
                f"{label}: span without events {off:.2f} us, with events (Rust) {on:.2f} us "
                f"(+{on - off:.2f}); the two texts in Python alone {py:.2f} us"
            )
        print("exporter:", live.stats())
        telemetry.shutdown_otel()


if __name__ == "__main__":
    main()
