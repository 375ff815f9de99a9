"""The ``execute <function>`` span through the application's own OpenTelemetry tracer, while
the SDK's telemetry is off (docs/protocol.md C.20).

iii-sdk 0.25.0 makes that span through the Python API around every handler, remote or local, so
an application that installed a tracer provider of its own (``trace.set_tracer_provider``, or an
auto-instrumentation agent) finds the SDK's spans in its traces and its handlers' spans under
them. With no provider installed that is a no-op span every call pays for; here the call pays a
``sys.modules`` lookup instead, and a span is made only once the application has a tracer that
records. ``import iii`` still never imports ``opentelemetry``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

log = logging.getLogger("iii")

#: The instrumentation scope of the spans (the name 0.25.0 uses).
SCOPE = "iii-python-sdk"

# (key, tracer or None), re-read when the key changes: a provider installed later, or
# ``trace.get_tracer`` / ``get_tracer_provider`` replaced (as tests do).
_cached: tuple[tuple[Any, Any, Any], Any] = ((None, None, None), None)
_MISSING = object()


def app_tracer() -> Any:
    """The application's tracer, or ``None`` while ``opentelemetry`` is not imported or has no
    provider (the API's placeholder tracer, whose spans record nothing)."""
    global _cached
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    # NOTE(perf): the API's own global, not get_tracer_provider(), which reads the environment
    # on every call while no provider is set: 0.93 us per call, against 0.19 for all of this.
    provider = trace.__dict__.get("_TRACER_PROVIDER", _MISSING)
    if provider is _MISSING:
        provider = trace.get_tracer_provider()
    key = (trace.get_tracer, trace.get_tracer_provider, provider)
    cached_key, tracer = _cached
    if cached_key[0] is key[0] and cached_key[1] is key[1] and cached_key[2] is key[2]:
        return tracer
    tracer = trace.get_tracer(SCOPE)
    if isinstance(tracer, (trace.ProxyTracer, trace.NoOpTracer)):
        tracer = None
    _cached = (key, tracer)
    return tracer


def _payloads_traced() -> bool:
    return os.environ.get("III_DISABLE_TRACE_PAYLOADS", "").lower() not in ("1", "true")


class AppSpan:
    """One ``execute <function>`` span (INTERNAL) made with the application's tracer: child of
    the inbound ``traceparent`` (with its ``baggage``), or else of the caller's current context;
    ``context`` is what the handler runs in. ``ok`` / ``failed`` end it."""

    __slots__ = ("span", "context", "_max_bytes")

    def __init__(
        self, tracer: Any, function_id: str, data: Any, traceparent: str | None, baggage: str | None
    ) -> None:
        from opentelemetry import context, propagate, trace

        from ._observability import resolve_max_bytes_from_env

        carrier = {}
        if traceparent:
            carrier["traceparent"] = traceparent
        if baggage:
            carrier["baggage"] = baggage
        parent = propagate.extract(carrier) if carrier else context.get_current()
        self.span = span = tracer.start_span(
            f"execute {function_id}", context=parent, kind=trace.SpanKind.INTERNAL
        )
        self.context = trace.set_span_in_context(span, parent)
        self._max_bytes = resolve_max_bytes_from_env() if span.is_recording() and _payloads_traced() else -1
        if self._max_bytes != -1:
            self._event("iii.invocation.input", data, None)

    def _event(self, name: str, value: Any, ok: bool | None) -> None:
        from ._observability import redact_and_truncate

        text, truncated = redact_and_truncate(value, self._max_bytes)
        attributes: dict[str, Any] = {"iii.payload.json": text, "iii.payload.truncated": truncated}
        if ok is not None:
            attributes["iii.payload.ok"] = ok
        self.span.add_event(name, attributes=attributes)

    def enter(self) -> None:
        """Makes the span current (called inside the handler's own ``contextvars`` context)."""
        from opentelemetry import context

        context.attach(self.context)

    def ok(self, result: Any) -> None:
        try:
            from opentelemetry.trace import StatusCode

            if self._max_bytes != -1:
                self._event("iii.invocation.output", result, True)
            self.span.set_status(StatusCode.OK)
        except Exception:  # the application's provider: its failure is not the call's
            log.exception("the application's tracer failed to record an invocation's output")
        finally:
            _end(self.span)

    def failed(self, exc: BaseException) -> None:
        try:
            from opentelemetry.trace import StatusCode

            if self._max_bytes != -1:
                self._event("iii.invocation.output", {"error": str(exc)}, False)
            self.span.record_exception(exc)
            self.span.set_status(StatusCode.ERROR, str(exc))
        except Exception:
            log.exception("the application's tracer failed to record an invocation's error")
        finally:
            _end(self.span)


def _end(span: Any) -> None:
    try:
        span.end()
    except Exception:
        log.exception("the application's tracer failed to end a span")


def start(function_id: str, data: Any, traceparent: str | None, baggage: str | None) -> AppSpan | None:
    """The span of an invocation starting now, or ``None`` without an application tracer (or
    when it fails: the invocation runs all the same)."""
    tracer = app_tracer()
    if tracer is None:
        return None
    try:
        return AppSpan(tracer, function_id, data, traceparent, baggage)
    except Exception:
        log.exception("the application's tracer failed to start the span of %r", function_id)
        return None


def outgoing_headers() -> tuple[str | None, str | None]:
    """``(traceparent, baggage)`` of the application's current span for a call made now, or
    ``(None, None)`` (then a call from a handler carries its invocation's)."""
    if app_tracer() is None:
        return None, None
    from ._otel_bridge import outgoing_headers as current_headers

    return current_headers()
