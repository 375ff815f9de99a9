"""CLIENT spans for ``urllib.request`` calls, with ``traceparent``/``baggage`` headers injected
(``OtelConfig.fetch_instrumentation_enabled``). Imported only when OpenTelemetry is on."""

from __future__ import annotations

import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, Status, StatusCode

_lock = threading.Lock()
_original: Any = None


def _attributes(method: str, url: str, request: urllib.request.Request | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"http.request.method": method, "url.full": url}
    parts = urlsplit(url)
    for key, value in (
        ("server.address", parts.hostname),
        ("url.scheme", parts.scheme),
        ("url.path", parts.path),
        ("url.query", parts.query),
    ):
        if value:
            attrs[key] = value
    try:
        if parts.port:
            attrs["server.port"] = parts.port
    except ValueError:
        pass
    if request is not None and isinstance(request.data, (bytes, bytearray)):
        attrs["http.request.body.size"] = len(request.data)
    return attrs


def enable() -> None:
    global _original
    with _lock:
        if _original is not None:
            return
        original = urllib.request.OpenerDirector.open
        _original = original

        def open_traced(self: Any, fullurl: Any, data: Any = None, *args: Any, **kwargs: Any) -> Any:
            request = (
                fullurl
                if isinstance(fullurl, urllib.request.Request)
                else urllib.request.Request(fullurl, data)
            )
            if request is not fullurl:
                data = None
            method = request.get_method()
            attrs = _attributes(method, request.full_url, request)
            name = f"{method} {attrs['url.path']}" if "url.path" in attrs else method
            tracer = trace.get_tracer("iii-python-sdk")
            with tracer.start_as_current_span(
                name,
                kind=SpanKind.CLIENT,
                attributes=attrs,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                headers: dict[str, str] = {}
                inject(headers)
                for key, value in headers.items():
                    request.add_unredirected_header(key, value)
                try:
                    response = original(self, request, data, *args, **kwargs)
                except BaseException as exc:
                    span.set_attribute("error.type", type(exc).__name__)
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                    span.record_exception(exc)
                    raise
                status = getattr(response, "status", None)
                if isinstance(status, int):
                    span.set_attribute("http.response.status_code", status)
                    if status >= 400:
                        span.set_attribute("error.type", str(status))
                        span.set_status(Status(StatusCode.ERROR))
                return response

        urllib.request.OpenerDirector.open = open_traced  # type: ignore[method-assign]


def disable() -> None:
    global _original
    with _lock:
        if _original is not None:
            urllib.request.OpenerDirector.open = _original  # type: ignore[method-assign]
            _original = None
