"""Official import path ``iii.telemetry`` (iii-sdk 0.11.0).

PLACEHOLDER (issue 8): importable with the official names and signatures so code written for
the official package imports; the telemetry branch replaces this file with the real thing.
Until then every function except :func:`is_initialized` raises ``NotImplementedError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from .telemetry_types import OtelConfig

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


def _pending(name: str) -> NoReturn:
    raise NotImplementedError(f"iii.telemetry.{name} is not implemented yet (the telemetry work is pending)")


def init_otel(config: OtelConfig | None = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
    _pending("init_otel")


def shutdown_otel() -> None:
    _pending("shutdown_otel")


async def shutdown_otel_async() -> None:
    _pending("shutdown_otel_async")


def attach_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    _pending("attach_event_loop")


def is_initialized() -> bool:
    """False: OpenTelemetry is never initialised by this placeholder."""
    return False


def get_tracer() -> Any:
    _pending("get_tracer")


def get_meter() -> Any:
    _pending("get_meter")


def get_logger() -> Any:
    _pending("get_logger")


def current_trace_id() -> str | None:
    _pending("current_trace_id")


def current_span_id() -> str | None:
    _pending("current_span_id")


async def with_span(
    name: str, fn: Callable[[Any], Awaitable[Any]], *, kind: Any = None, traceparent: str | None = None
) -> Any:
    _pending("with_span")


def inject_traceparent() -> str | None:
    _pending("inject_traceparent")


def extract_traceparent(traceparent: str) -> Any:
    _pending("extract_traceparent")


def inject_baggage() -> str | None:
    _pending("inject_baggage")


def extract_baggage(baggage: str) -> Any:
    _pending("extract_baggage")


def extract_context(traceparent: str | None = None, baggage: str | None = None) -> Any:
    _pending("extract_context")


def get_baggage_entry(key: str) -> str | None:
    _pending("get_baggage_entry")


def set_baggage_entry(key: str, value: str) -> Any:
    _pending("set_baggage_entry")


def remove_baggage_entry(key: str) -> Any:
    _pending("remove_baggage_entry")


def get_all_baggage() -> dict[str, str]:
    _pending("get_all_baggage")
