"""OpenTelemetry for iii workers (official module path ``iii.telemetry``).

The exporter lives in Rust (``iii._iii.Telemetry``): spans, Logger records and worker gauges
are batched, OTLP/JSON-encoded and sent as binary frames on the worker's own engine
connection, off the GIL. Python's ``opentelemetry-api`` is the user-facing side: the helpers
below read and write the current OpenTelemetry context, and every span the application's
tracers finish is handed to the Rust exporter.

Nothing here imports ``opentelemetry`` until OpenTelemetry is switched on (``init_otel``) or
a helper that needs it is called.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import _logger
from ._options import OtelConfig

if TYPE_CHECKING:
    from ._iii import Telemetry

__all__ = [
    "OtelConfig",
    "attach_event_loop",
    "current_span_id",
    "current_trace_id",
    "extract_baggage",
    "extract_context",
    "extract_traceparent",
    "get_all_baggage",
    "get_baggage_entry",
    "get_logger",
    "get_meter",
    "get_tracer",
    "init_otel",
    "inject_baggage",
    "inject_traceparent",
    "is_initialized",
    "remove_baggage_entry",
    "set_baggage_entry",
    "shutdown_otel",
    "shutdown_otel_async",
    "with_span",
]

T = TypeVar("T")

_TRACER_NAME = "iii-python-sdk"
_DEFAULT_ENGINE_URL = "ws://localhost:49134"
_SHUTDOWN_WAIT_MS = 5000

_lock = threading.RLock()
_telemetry: Telemetry | None = None
_config: OtelConfig | None = None
_loop: asyncio.AbstractEventLoop | None = None


def coerce_config(config: OtelConfig | dict[str, Any] | None) -> OtelConfig:
    """An :class:`OtelConfig` from an ``OtelConfig``, a dict of its fields, or ``None``."""
    if config is None:
        return OtelConfig()
    if isinstance(config, OtelConfig):
        return config
    if isinstance(config, dict):
        known = {f.name for f in dataclasses.fields(OtelConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise TypeError(f"unknown OtelConfig fields: {', '.join(unknown)}")
        return OtelConfig(**config)
    raise TypeError(f"otel must be an OtelConfig, a dict or None, not {type(config).__name__}")


def otel_enabled(config: OtelConfig) -> bool:
    """On unless ``config.enabled`` is False or ``OTEL_ENABLED`` is false/0/no/off."""
    if config.enabled is not None:
        return bool(config.enabled)
    return os.environ.get("OTEL_ENABLED", "").strip().lower() not in ("false", "0", "no", "off")


def start(
    config: OtelConfig | dict[str, Any] | None,
    worker_url: str | None = None,
    metrics: bool = True,
    headers: dict[str, str] | None = None,
) -> Telemetry | None:
    """Switches OpenTelemetry on for a worker connecting to ``worker_url``; returns the Rust
    exporter to bind to the worker's link (``Telemetry.bind_client``), or ``None`` when
    OpenTelemetry is off. Telemetry gets a connection of its own only when
    ``engine_ws_url`` names another engine (or there is no worker at all): to
    ``<url>/otel`` (``<url>`` itself on engines without that endpoint, as v0.11.0), with the
    upgrade headers ``engine_ws_headers``, else ``headers`` (the worker's).
    """
    global _telemetry, _config
    cfg = coerce_config(config)
    if not otel_enabled(cfg):
        return None
    with _lock:
        if _telemetry is not None:
            return _telemetry
        from ._iii import Telemetry

        telemetry = Telemetry(cfg, metrics=metrics)
        own_url = cfg.engine_ws_url
        if worker_url is None:
            own_url = own_url or os.environ.get("III_URL") or _DEFAULT_ENGINE_URL
        if own_url is not None and own_url != worker_url:
            link_headers = cfg.engine_ws_headers if cfg.engine_ws_headers is not None else headers
            # An explicit engine_ws_url stays the destination when workers bind their links.
            telemetry.connect(own_url, link_headers, pinned=cfg.engine_ws_url is not None)
        from . import _otel_bridge

        _otel_bridge.install_span_processor(telemetry)
        if cfg.metrics_enabled:
            _otel_bridge.install_metric_exporter(telemetry, cfg.metrics_export_interval_ms)
        # Logger records go to the engine when logs are on, and to the application's own
        # LoggerProvider if it installed one (iii-sdk 0.25.0), so the sink is set either way.
        _logger.set_otel_sink(_otel_bridge.log_sink(telemetry, telemetry.logs_enabled))
        if cfg.fetch_instrumentation_enabled:
            from . import _fetch_instrumentation

            _fetch_instrumentation.enable()
        _telemetry, _config = telemetry, cfg
        return telemetry


def init_otel(config: OtelConfig | None = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Switches OpenTelemetry on (a no-op when already on or when disabled by config or
    ``OTEL_ENABLED``). Without a worker, telemetry goes to ``engine_ws_url``, else ``III_URL``,
    else ``ws://localhost:49134`` (``/otel`` appended where the engine has it), with the
    headers ``engine_ws_headers``.
    """
    start(config)
    if loop is not None:
        attach_event_loop(loop)


def flush(timeout_ms: int = _SHUTDOWN_WAIT_MS) -> bool:
    """Sends the spans, log records and metrics buffered so far without switching
    OpenTelemetry off (the application's instruments are collected first), waiting at most
    ``timeout_ms``. True when everything went out (also while OpenTelemetry is off)."""
    telemetry = _telemetry
    if telemetry is None:
        return True
    from . import _otel_bridge

    _otel_bridge.collect_metrics(timeout_ms)
    return telemetry.flush(timeout_ms)


def shutdown_otel() -> None:
    """Flushes what is buffered (waiting at most 5 s) and switches OpenTelemetry off."""
    stop(_SHUTDOWN_WAIT_MS)


def stop(wait_ms: int) -> None:
    """:func:`shutdown_otel`, waiting at most ``wait_ms`` for buffered telemetry to be sent."""
    global _telemetry, _config, _loop
    with _lock:
        telemetry, _telemetry, _config, _loop = _telemetry, None, None, None
        if telemetry is None:
            return
        from . import _fetch_instrumentation, _otel_bridge

        _logger.set_otel_sink(None)
        _otel_bridge.detach_span_processor(telemetry)
        _fetch_instrumentation.disable()
    _otel_bridge.detach_metric_exporter(telemetry, wait_ms)
    telemetry.shutdown(wait_ms)


async def shutdown_otel_async() -> None:
    """:func:`shutdown_otel` without blocking the running event loop."""
    await asyncio.get_running_loop().run_in_executor(None, shutdown_otel)


def current() -> Telemetry | None:
    """The running exporter, if OpenTelemetry is on."""
    return _telemetry


def is_initialized() -> bool:
    """True while OpenTelemetry is on."""
    return _telemetry is not None


def attach_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Measures ``loop``'s lag for the ``iii.worker.event_loop.lag_ms`` gauge (the official
    SDK used this to start its telemetry socket; ours sends on the worker's link)."""
    global _loop
    telemetry = _telemetry
    if telemetry is None or _loop is loop:
        return
    _loop = loop
    interval = 1.0  # NOTE: once a second: an idle worker wakes for nothing more often

    def probe(expected: float) -> None:
        if _telemetry is not telemetry or loop.is_closed():
            return
        now = loop.time()
        telemetry.set_event_loop_lag(max(0.0, (now - expected) * 1000.0))
        loop.call_later(interval, probe, now + interval)

    loop.call_soon_threadsafe(probe, loop.time())


def get_tracer() -> Any:
    """The SDK's tracer (``opentelemetry.trace.Tracer``), or ``None`` while OpenTelemetry is off."""
    if _telemetry is None:
        return None
    from opentelemetry import trace

    return trace.get_tracer(_TRACER_NAME)


def get_meter() -> Any:
    """A meter (``opentelemetry.metrics.Meter``) whose instruments are exported to the engine
    every ``metrics_export_interval_ms`` and at shutdown, or ``None`` while OpenTelemetry or
    its metrics are off. Named after the service, like the official SDK's."""
    telemetry = _telemetry
    if telemetry is None or _config is None or not _config.metrics_enabled:
        return None
    from . import _otel_bridge

    return _otel_bridge.meter(telemetry.service_name)


def get_logger() -> Any:
    """An :class:`iii.Logger` whose records go to the engine, or ``None`` while OpenTelemetry
    is off."""
    if _telemetry is None:
        return None
    return _logger.Logger(service_name=_telemetry.service_name)


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or ``None`` outside a span."""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


def current_span_id() -> str | None:
    """The current span id as 16 hex digits, or ``None`` outside a span."""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.span_id:016x}" if ctx.is_valid else None


async def with_span(
    name: str,
    fn: Callable[[Any], Awaitable[T]],
    *,
    kind: Any = None,
    traceparent: str | None = None,
) -> T:
    """Runs ``await fn(span)`` inside a new span (INTERNAL unless ``kind`` says otherwise),
    the child of ``traceparent`` when given, else of the current span. The span's status is
    OK, or ERROR with the exception recorded when ``fn`` raises. While OpenTelemetry is off
    ``fn`` gets a span that records nothing.
    """
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = get_tracer()
    if tracer is None:
        return await fn(trace.INVALID_SPAN)
    parent = extract_traceparent(traceparent) if traceparent else None
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind if kind is not None else SpanKind.INTERNAL,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            result = await fn(span)
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.record_exception(exc)
            raise
        span.set_status(Status(StatusCode.OK))
        return result


def _inject() -> dict[str, str]:
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def inject_traceparent() -> str | None:
    """The current context as a W3C ``traceparent`` value, or ``None`` outside a span."""
    return _inject().get("traceparent")


def inject_baggage() -> str | None:
    """The current baggage as a W3C ``baggage`` value, or ``None`` when there is none."""
    return _inject().get("baggage")


def extract_traceparent(traceparent: str) -> Any:
    """An OpenTelemetry ``Context`` whose remote parent is ``traceparent``."""
    return extract_context(traceparent=traceparent)


def extract_baggage(baggage: str) -> Any:
    """An OpenTelemetry ``Context`` carrying the entries of a W3C ``baggage`` value."""
    return extract_context(baggage=baggage)


def extract_context(traceparent: str | None = None, baggage: str | None = None) -> Any:
    """An OpenTelemetry ``Context`` from ``traceparent`` and/or ``baggage`` values."""
    from opentelemetry.propagate import extract

    carrier = {}
    if traceparent:
        carrier["traceparent"] = traceparent
    if baggage:
        carrier["baggage"] = baggage
    return extract(carrier)


def get_baggage_entry(key: str) -> str | None:
    """The current baggage's ``key``, or ``None``."""
    from opentelemetry import baggage

    value = baggage.get_baggage(key)
    return None if value is None else str(value)


def set_baggage_entry(key: str, value: str) -> Any:
    """A new ``Context``: the current one with ``key`` set (attach it to make it current)."""
    from opentelemetry import baggage

    return baggage.set_baggage(key, value)


def remove_baggage_entry(key: str) -> Any:
    """A new ``Context``: the current one without ``key``."""
    from opentelemetry import baggage

    return baggage.remove_baggage(key)


def get_all_baggage() -> dict[str, str]:
    """Every entry of the current baggage."""
    from opentelemetry import baggage

    return {k: str(v) for k, v in baggage.get_all().items()}
