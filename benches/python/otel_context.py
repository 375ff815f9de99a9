"""What making an invocation's OpenTelemetry context current costs, three ways, and what each
adds to OpenTelemetry's own context operations.

    python benches/python/otel_context.py [--n 200000] [--repeat 7]

- eager: OpenTelemetry's stock runtime context (``ContextVarsRuntimeContext``); the
  invocation's context is built (its span as a ``NonRecordingSpan``, its baggage) and attached
  when the invocation starts.
- lazy runtime: a runtime context wrapping the stock one that builds the invocation's context
  when something first reads or replaces the current one. This is what an
  ``opentelemetry_context`` entry point selected with ``OTEL_PYTHON_CONTEXT`` would install;
  every application's context operation then goes through it.
- InvocationOtelContext (what the SDK does, ``iii._otel_bridge``): the stock runtime context, with
  a ``Context`` subclass attached at once whose entries are built on the first read.

Each invocation runs in a fresh ``contextvars`` context, as in the SDK's dispatch. Prints the
best of --repeat runs in microseconds of the thread's CPU time per operation.
"""

from __future__ import annotations

import argparse
import contextvars
import time
from collections.abc import Callable
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.context import Context, _RuntimeContext
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

from iii import OtelConfig
from iii import _otel_bridge as bridge
from iii._iii import InvocationSpan, Telemetry

_pending: contextvars.ContextVar[InvocationSpan | None] = contextvars.ContextVar("pending")


class LazyRuntime(_RuntimeContext):
    """The entry-point alternative: builds the pending invocation's context on first use."""

    def __init__(self) -> None:
        self.inner = ContextVarsRuntimeContext()

    def _enter_pending(self) -> None:
        span = _pending.get(None)
        if span is not None:
            _pending.set(None)
            self.inner.attach(bridge._entries(span))

    def attach(self, context: Context) -> Token[Context]:
        self._enter_pending()
        return self.inner.attach(context)

    def get_current(self) -> Context:
        self._enter_pending()
        return self.inner.get_current()

    def detach(self, token: Token[Context]) -> None:
        self.inner.detach(token)


def best(n: int, repeat: int, body: Callable[[int], object]) -> float:
    """Microseconds per operation, best of ``repeat`` runs of ``body(n)``."""
    body(min(n, 1000))
    runs = []
    for _ in range(repeat):
        start = time.thread_time()
        body(n)
        runs.append(time.thread_time() - start)
    return min(runs) / n * 1e6


def in_fresh_contexts(step: Callable[[], object]) -> Callable[[int], object]:
    def body(n: int) -> None:
        for _ in range(n):
            contextvars.Context().run(step)

    return body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    def measure(step: Callable[[], object]) -> float:
        return best(args.n, args.repeat, in_fresh_contexts(step))

    telemetry = Telemetry(OtelConfig(enabled=True), metrics=False)
    stock, lazy = ContextVarsRuntimeContext(), LazyRuntime()
    empty = Context()

    def attach_detach(runtime: _RuntimeContext) -> Callable[[int], None]:
        def body(n: int) -> None:
            attach, detach = runtime.attach, runtime.detach
            for _ in range(n):
                detach(attach(empty))

        return body

    def get_current(runtime: _RuntimeContext) -> Callable[[int], None]:
        def body(n: int) -> None:
            get = runtime.get_current
            for _ in range(n):
                get()

        return body

    def span_reads(runtime: _RuntimeContext, ctx: Context) -> Callable[[int], None]:
        def body(n: int) -> None:
            token = runtime.attach(ctx)
            get, current_span = runtime.get_current, trace.get_current_span
            for _ in range(n):
                current_span(get())
            runtime.detach(token)

        return body

    span = telemetry.start_invocation("bench::f", None, None)
    built = bridge.InvocationOtelContext(span)
    len(built)
    print("OpenTelemetry's operations (us)          stock   lazy runtime   InvocationOtelContext")
    for name, figures in (
        ("attach + detach", [best(args.n, args.repeat, attach_detach(rt)) for rt in (stock, lazy)]),
        ("get_current", [best(args.n, args.repeat, get_current(rt)) for rt in (stock, lazy)]),
        (
            "current span, context already built",
            [
                best(args.n, args.repeat, span_reads(stock, bridge._entries(span))),
                best(args.n, args.repeat, span_reads(lazy, bridge._entries(span))),
                best(args.n, args.repeat, span_reads(stock, built)),
            ],
        ),
    ):
        print(f"  {name:38s} " + "   ".join(f"{f:6.3f}" for f in figures))

    empty_run = measure(lambda: None)
    print(f"\nper invocation (us, less the fresh contextvars context itself, {empty_run:.3f})")
    print("                                          eager   lazy runtime   InvocationOtelContext")
    for baggage in (None, "user=alice,tenant=acme"):
        span = telemetry.start_invocation("bench::f", None, baggage)

        def eager(span: InvocationSpan = span) -> Any:
            return stock.attach(bridge._entries(span))

        def lazy_enter(span: InvocationSpan = span) -> Any:
            return _pending.set(span)

        def ours(span: InvocationSpan = span) -> Any:
            return stock.attach(bridge.InvocationOtelContext(span))

        def read_once(enter: Callable[[], Any], runtime: Any) -> Callable[[], Any]:
            def step() -> Any:
                enter()
                return trace.get_current_span(runtime.get_current()).get_span_context()

            return step

        label = "with 2 baggage entries" if baggage else "no baggage"
        rows = [
            (f"enter ({label})", [measure(eager), measure(lazy_enter), measure(ours)]),
            (
                "enter + read the current span once",
                [
                    measure(read_once(eager, stock)),
                    measure(read_once(lazy_enter, lazy)),
                    measure(read_once(ours, stock)),
                ],
            ),
        ]
        for name, figures in rows:
            cells = "   ".join(f"{f - empty_run:6.3f}" for f in figures)
            print(f"  {name:38s} {cells}")

    def headers_in(ctx: Context) -> Callable[[int], None]:
        def body(n: int) -> None:
            token = otel_context.attach(ctx)
            headers = bridge.outgoing_headers
            for _ in range(n):
                headers()
            otel_context.detach(token)

        return body

    span = telemetry.start_invocation("bench::f", None, "user=alice")
    print("\noutgoing_headers() (us)                  plain context   InvocationOtelContext")
    plain = best(args.n, args.repeat, headers_in(bridge._entries(span)))
    lazy_ctx = best(args.n, args.repeat, headers_in(bridge.InvocationOtelContext(span)))
    print(f"  {'in the invocation context':38s} {plain:6.3f}          {lazy_ctx:6.3f}")
    telemetry.shutdown(0)


if __name__ == "__main__":
    main()
