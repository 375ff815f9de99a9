"""Observability helpers of iii-helpers 0.25.0 (``iii_helpers.observability``), written for
this package on top of ``opentelemetry-api`` (and ``opentelemetry-sdk`` for
:class:`BaggageSpanProcessor`):

- payload capture: :func:`redact`, :func:`redact_and_truncate`,
  :func:`resolve_max_bytes_from_env`, :data:`REDACTED_PLACEHOLDER`;
- operations on the current span that need no OpenTelemetry import in user code:
  :func:`current_span_is_recording`, :func:`set_current_span_attribute`,
  :func:`set_current_span_error`, :func:`record_span_event`;
- :class:`BaggageSpanProcessor`, which copies every baggage entry onto each started span;
- :func:`execute_traced_request`, which sends an ``httpx`` request in a CLIENT span;
- :func:`flush_otel`, which sends what this SDK's exporter (in its Rust core) holds.
"""

from __future__ import annotations

import json
import os
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import _iii

__all__ = [
    "REDACTED_PLACEHOLDER",
    "BaggageSpanProcessor",
    "current_span_is_recording",
    "execute_traced_request",
    "flush_otel",
    "record_span_event",
    "redact",
    "redact_and_truncate",
    "resolve_max_bytes_from_env",
    "set_current_span_attribute",
    "set_current_span_error",
]

# --------------------------------------------------------------------------- payload capture

#: What a sensitive value is replaced with.
REDACTED_PLACEHOLDER = "[REDACTED]"
#: Appended to a truncated payload (it keeps the text recognisable, not valid JSON).
_TRUNCATED = '..."[TRUNCATED]"'


def resolve_max_bytes_from_env() -> int | None:
    """The payload size cap from ``III_TRACE_PAYLOAD_MAX_BYTES``: a positive integer, else
    ``None`` (unset, blank, ``unlimited``, not a number, or not positive)."""
    raw = (os.environ.get("III_TRACE_PAYLOAD_MAX_BYTES") or "").strip()
    if not raw or raw.lower() == "unlimited":
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value > 0 else None


# The rule for keys lives in the core, shared with the span's payload events.
_sensitive = _iii.is_sensitive_key


def redact(value: Any) -> Any:
    """A copy of ``value`` where every dict value under a sensitive key (passwords, secrets,
    tokens, API keys, authorization...) is :data:`REDACTED_PLACEHOLDER`. Dicts, lists and
    tuples are walked recursively (a tuple stays a tuple); other values are returned as is.
    Dict keys must be strings."""
    if isinstance(value, dict):
        return {key: REDACTED_PLACEHOLDER if _sensitive(key) else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    return value


def redact_and_truncate(value: Any, max_bytes: int | None = None) -> tuple[str, bool]:
    """``value`` redacted (see :func:`redact`) and serialised to JSON (non-JSON values with
    ``str``; ``"null"`` if it cannot be serialised), and whether it was cut.

    With a positive ``max_bytes``, a text longer than that many UTF-8 bytes is cut at a
    character boundary so that, with the ``..."[TRUNCATED]"`` marker appended, it fits.
    """
    try:
        text = json.dumps(redact(value), default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = "null"
    if max_bytes is None or max_bytes <= 0:
        return text, False
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    marker = _TRUNCATED.encode("utf-8")
    if max_bytes <= len(marker):
        return _TRUNCATED[:max_bytes], True
    end = max_bytes - len(marker)
    while end > 0 and data[end] & 0xC0 == 0x80:  # continuation byte: back to a boundary
        end -= 1
    return data[:end].decode("utf-8") + _TRUNCATED, True


# --------------------------------------------------------------------------- current span


def current_span_is_recording() -> bool:
    """Whether there is a current span and it records (not dropped by the sampler)."""
    return bool(trace.get_current_span().is_recording())


def set_current_span_attribute(key: str, value: Any) -> None:
    """Sets an attribute on the current span; does nothing when it does not record."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(key, value)


def set_current_span_error(message: str) -> None:
    """Marks the current span as failed with ``message`` (status ERROR)."""
    trace.get_current_span().set_status(Status(StatusCode.ERROR, message))


def record_span_event(name: str, attrs: dict[str, Any] | None = None) -> None:
    """Adds event ``name`` with ``attrs`` to the current span; does nothing when it does not
    record."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, attributes=attrs or {})


# --------------------------------------------------------------------------- baggage


class BaggageSpanProcessor(SpanProcessor):
    """Copies every OpenTelemetry baggage entry of the parent context onto each span when it
    starts, as a string attribute (no filtering: what the keys mean is decided when traces are
    queried). Add it to a ``TracerProvider`` with ``add_span_processor``."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not span.is_recording():
            return
        for key, value in baggage.get_all(parent_context).items():
            if value is not None:
                span.set_attribute(key, str(value))

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


# --------------------------------------------------------------------------- httpx requests

_REQUEST_HEADERS = ("content-type", "accept")
_RESPONSE_HEADERS = ("content-type",)


def _ignored(url: str) -> bool:
    patterns = [p.strip() for p in (os.environ.get("OTEL_FETCH_IGNORE_URLS") or "").split(",")]
    return any(p and p in url for p in patterns)


async def execute_traced_request(client: Any, request: Any) -> Any:
    """Sends ``request`` (an ``httpx.Request``) with ``client`` (an ``httpx.AsyncClient``)
    inside a CLIENT span named ``"<METHOD> <path>"``, with HTTP semantic-convention attributes.

    The current trace context is injected into the request headers (``traceparent``,
    ``baggage``); a response status >= 400 or a send error marks the span ERROR (the error is
    re-raised). URLs containing one of the comma-separated ``OTEL_FETCH_IGNORE_URLS``
    substrings are sent without a span.
    """
    url = request.url
    if _ignored(str(url)):
        return await client.send(request)
    method = str(request.method).upper()
    path = url.path or None
    query = url.query
    query_text = (query.decode() if isinstance(query, bytes) else query) or None
    attributes: dict[str, str | int] = {"http.request.method": method, "url.full": str(url)}
    if url.host:
        attributes["server.address"] = url.host
    if url.scheme:
        attributes["url.scheme"] = url.scheme
        attributes["network.protocol.name"] = "http"
    if path:
        attributes["url.path"] = path
    if url.port:
        attributes["server.port"] = url.port
    if query_text:
        attributes["url.query"] = query_text
    tracer = trace.get_tracer("iii-python-sdk")
    name = f"{method} {path}" if path else method
    with tracer.start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        for key, value in headers.items():
            request.headers[key] = value
        for header in _REQUEST_HEADERS:
            if request.headers.get(header):
                span.set_attribute(f"http.request.header.{header}", request.headers[header])
        if request.content:
            span.set_attribute("http.request.body.size", len(request.content))
        try:
            response = await client.send(request)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.set_attribute("error.type", type(exc).__name__)
            raise
        span.set_attribute("http.response.status_code", response.status_code)
        length = response.headers.get("content-length")
        if length and length.isdigit():
            span.set_attribute("http.response.body.size", int(length))
        for header in _RESPONSE_HEADERS:
            if response.headers.get(header):
                span.set_attribute(f"http.response.header.{header}", response.headers[header])
        if response.status_code >= 400:
            span.set_status(Status(StatusCode.ERROR, str(response.status_code)))
            span.set_attribute("error.type", str(response.status_code))
        else:
            span.set_status(Status(StatusCode.OK))
        return response


# --------------------------------------------------------------------------- flush


async def flush_otel() -> None:
    """Sends the telemetry batched so far (spans, log records, the application's metrics)
    without switching OpenTelemetry off, as iii-helpers 0.25.0's: use it before a
    short-lived process exits. Waits at most 5 s, off the running event loop; a no-op while
    OpenTelemetry is off."""
    import asyncio

    from . import telemetry

    await asyncio.get_running_loop().run_in_executor(None, telemetry.flush)
