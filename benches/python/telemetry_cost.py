"""CPU cost of the telemetry work one invocation adds on the Python side, with the exporter
running: start the invocation span in Rust, make it the current OpenTelemetry context while
the handler runs, read the outgoing headers once, end the span; and one Logger record.

    python benches/python/telemetry_cost.py [--calls 200000]

Prints microseconds of CPU per call on the calling thread (what the call path pays), and of
the whole process (which also includes the exporter thread and the in-process test engine
parsing and storing what it receives).
"""

from __future__ import annotations

import argparse
import time

from opentelemetry import context as otel_context

from iii import Logger, OtelConfig, telemetry
from iii import _otel_bridge as bridge
from iii.testing import Engine


def per_call(calls: int, body: object) -> tuple[float, float]:
    assert callable(body)
    thread, process = time.thread_time(), time.process_time()
    for _ in range(calls):
        body()
    return (time.thread_time() - thread) / calls * 1e6, (time.process_time() - process) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    with Engine() as engine:
        telemetry.init_otel(OtelConfig(engine_ws_url=engine.url, metrics_enabled=False))
        live = telemetry._telemetry
        assert live is not None
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

        def invocation() -> None:
            span = live.start_invocation("bench::echo", parent, None)
            token = otel_context.attach(bridge.invocation_context(span))
            bridge.outgoing_headers()
            otel_context.detach(token)
            span.end()

        def span_only() -> None:
            live.start_invocation("bench::echo", parent, None).end()

        logger = Logger()

        def log() -> None:
            logger.info("bench", {"n": 1, "s": "x"})

        for name, body in (
            ("span in Rust only", span_only),
            ("invocation with context", invocation),
            ("Logger record", log),
        ):
            per_call(1000, body)
            thread, process = per_call(args.calls, body)
            live.flush(10_000)
            print(f"{name}: {thread:.2f} us CPU per call on the caller's thread ({process:.2f} us process)")
        print("exporter:", live.stats())
        telemetry.shutdown_otel()


if __name__ == "__main__":
    main()
