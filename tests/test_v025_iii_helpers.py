"""The ``iii_helpers`` package (iii-helpers 0.25.0) shipped with this SDK: re-exports of the
``iii`` objects, and the observability helpers it adds (payload redaction, span operations,
the baggage span processor, traced httpx requests)."""

from __future__ import annotations

import ast
import asyncio
import importlib
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import iii
import iii.stream
import iii.telemetry
import iii_helpers.http
import iii_helpers.observability as obs
import iii_helpers.observability.payload
import iii_helpers.queue
import iii_helpers.stream
import iii_helpers.worker_connection_manager as wcm


def test_every_official_module_imports():
    for name in (
        "iii_helpers",
        "iii_helpers.http",
        "iii_helpers.queue",
        "iii_helpers.stream",
        "iii_helpers.worker_connection_manager",
        "iii_helpers.observability",
        "iii_helpers.observability.logger",
        "iii_helpers.observability.telemetry",
        "iii_helpers.observability.telemetry_types",
        "iii_helpers.observability.reconnection",
        "iii_helpers.observability.payload",
        "iii_helpers.observability.span_ops",
        "iii_helpers.observability.baggage_span_processor",
        "iii_helpers.observability.http_instrumentation",
        "iii_helpers.observability.telemetry_exporters",
    ):
        importlib.import_module(name)


def test_the_observability_submodules_are_attributes_once_the_package_is_imported():
    # A fresh interpreter: in this one, importing a submodule anywhere sets the attribute.
    code = (
        "import iii_helpers.observability as o, types; "
        "print(sorted(n for n, v in vars(o).items() if isinstance(v, types.ModuleType)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(out) == [
        "baggage_span_processor",
        "http_instrumentation",
        "logger",
        "payload",
        "reconnection",
        "span_ops",
        "telemetry",
        "telemetry_types",
    ]


def test_reexports_are_the_iii_objects():
    assert obs.Logger is iii.Logger and obs.OtelConfig is iii.OtelConfig
    assert obs.ReconnectionConfig is iii.ReconnectionConfig
    assert obs.init_otel is iii.telemetry.init_otel and obs.with_span is iii.telemetry.with_span
    assert obs.current_trace_id is iii.telemetry.current_trace_id
    assert importlib.import_module("iii_helpers.observability.logger").Logger is iii.Logger
    assert iii_helpers.queue.EnqueueResult is iii.EnqueueResult
    assert iii_helpers.stream.StreamChangeEvent is iii.StreamChangeEvent
    assert iii_helpers.stream.UpdateSet is iii.stream.UpdateSet
    assert wcm.AuthInput is iii.AuthInput and wcm.AuthResult is iii.AuthResult
    assert iii_helpers.http.http is iii.http
    assert iii_helpers.http.HttpInvocationConfig is iii.HttpInvocationConfig


def test_http_buffered_models():
    request = iii_helpers.http.HttpRequest[dict](body={"a": 1})
    assert (request.method, request.path_params, request.query_params, request.headers) == ("GET", {}, {}, {})
    response = iii_helpers.http.HttpResponse(statusCode=201, body="ok")
    assert response.status_code == 201
    assert iii_helpers.http.HttpResponse(status_code=200).model_dump(by_alias=True)["statusCode"] == 200
    # Not the 0.11 streaming pair, which 0.25 calls StreamRequest / StreamResponse.
    assert iii_helpers.http.HttpRequest is not iii.HttpRequest


def test_stream_additions():
    error = iii_helpers.stream.UpdateOpError(op_index=1, code="merge.path.too_deep", message="m")
    assert error.doc_url is None


def test_redact():
    payload = {
        "user": "ann",
        "Password": "p",
        "nested": [{"api-key": "k", "token": "t", "my_token": "t2", "tokens": 3, "x-token": "t3"}],
        "pair": ("a", {"client_secret": "s"}),
        "Authorization": "Bearer x",
    }
    assert obs.redact(payload) == {
        "user": "ann",
        "Password": "[REDACTED]",
        "nested": [
            {
                "api-key": "[REDACTED]",
                "token": "[REDACTED]",
                "my_token": "[REDACTED]",
                "tokens": 3,
                "x-token": "[REDACTED]",
            }
        ],
        "pair": ("a", {"client_secret": "[REDACTED]"}),
        "Authorization": "[REDACTED]",
    }
    assert payload["Password"] == "p"  # a copy
    assert obs.redact(5) == 5 and obs.REDACTED_PLACEHOLDER == "[REDACTED]"


def test_redact_and_truncate():
    assert obs.redact_and_truncate({"a": 1, "secret": "s"}) == ('{"a": 1, "secret": "[REDACTED]"}', False)
    assert obs.redact_and_truncate({"a": "é"}) == ('{"a": "é"}', False)
    assert obs.redact_and_truncate({1, 2}) == ('"{1, 2}"', False)  # default=str
    text, cut = obs.redact_and_truncate("x" * 100, max_bytes=30)
    assert cut and text == '"' + "x" * 13 + '..."[TRUNCATED]"' and len(text.encode()) == 30
    # Never half a character: "é" is 2 bytes; the cut backs off to a boundary.
    text, cut = obs.redact_and_truncate("é" * 50, max_bytes=24)
    assert cut and text.endswith('..."[TRUNCATED]"') and len(text.encode()) <= 24
    text.encode("utf-8")
    assert obs.redact_and_truncate("x" * 100, max_bytes=5) == ('..."[', True)
    assert obs.redact_and_truncate("x" * 10, max_bytes=0) == ('"' + "x" * 10 + '"', False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("", None), ("  ", None), ("unlimited", None), ("UNLIMITED", None), ("abc", None),
     ("0", None), ("-5", None), (" 4096 ", 4096)],
)  # fmt: skip
def test_resolve_max_bytes_from_env(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("III_TRACE_PAYLOAD_MAX_BYTES", raising=False)
    else:
        monkeypatch.setenv("III_TRACE_PAYLOAD_MAX_BYTES", raw)
    assert obs.resolve_max_bytes_from_env() == expected


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(obs.BaggageSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_span_ops_on_the_current_span():
    assert obs.current_span_is_recording() is False
    obs.set_current_span_attribute("k", "v")  # no span: nothing happens
    obs.record_span_event("e")
    obs.set_current_span_error("no span")
    provider, exporter = _provider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("work"):
        assert obs.current_span_is_recording() is True
        obs.set_current_span_attribute("k", "v")
        obs.record_span_event("happened", {"n": 1})
        obs.record_span_event("bare")
        obs.set_current_span_error("it broke")
    (span,) = exporter.get_finished_spans()
    assert span.attributes["k"] == "v"
    assert [(e.name, dict(e.attributes)) for e in span.events] == [("happened", {"n": 1}), ("bare", {})]
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "it broke")


def test_baggage_span_processor_copies_baggage():
    provider, exporter = _provider()
    token = context.attach(baggage.set_baggage("tenant", "acme", baggage.set_baggage("n", "7")))
    try:
        with provider.get_tracer("t").start_as_current_span("s"):
            pass
    finally:
        context.detach(token)
    (span,) = exporter.get_finished_spans()
    assert (span.attributes["tenant"], span.attributes["n"]) == ("acme", "7")


class _Url:
    def __init__(self) -> None:
        self.path, self.query, self.host, self.scheme, self.port = "/items", b"q=1", "api.test", "https", 8443

    def __str__(self) -> str:
        return "https://api.test:8443/items?q=1"


class _Client:
    def __init__(self, status: int | None, error: Exception | None = None) -> None:
        self.status, self.error = status, error
        self.sent: list[Any] = []

    async def send(self, request: Any) -> Any:
        self.sent.append(dict(request.headers))
        if self.error is not None:
            raise self.error
        return SimpleNamespace(
            status_code=self.status, headers={"content-length": "12", "content-type": "text/plain"}
        )


def _request() -> Any:
    return SimpleNamespace(
        method="post", url=_Url(), headers={"content-type": "application/json"}, content=b"{}"
    )


def test_execute_traced_request(monkeypatch):
    provider, exporter = _provider()
    monkeypatch.setattr(trace, "get_tracer", provider.get_tracer)
    client = _Client(200)
    response = asyncio.run(obs.execute_traced_request(client, _request()))
    assert response.status_code == 200
    (span,) = exporter.get_finished_spans()
    assert span.name == "POST /items" and span.kind == trace.SpanKind.CLIENT
    assert span.attributes["http.request.method"] == "POST"
    assert span.attributes["url.query"] == "q=1" and span.attributes["server.port"] == 8443
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["http.response.body.size"] == 12
    assert span.attributes["http.request.header.content-type"] == "application/json"
    assert span.status.status_code == StatusCode.OK
    assert client.sent[0]["traceparent"].split("-")[2] == format(span.context.span_id, "016x")

    exporter.clear()
    asyncio.run(obs.execute_traced_request(_Client(503), _request()))
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR and span.attributes["error.type"] == "503"

    exporter.clear()
    with pytest.raises(ConnectionError):
        asyncio.run(obs.execute_traced_request(_Client(None, ConnectionError("down")), _request()))
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR and span.attributes["error.type"] == "ConnectionError"
    assert [e.name for e in span.events] == ["exception"]

    exporter.clear()
    monkeypatch.setenv("OTEL_FETCH_IGNORE_URLS", "nothing, api.test")
    ignored = _Client(200)
    asyncio.run(obs.execute_traced_request(ignored, _request()))
    assert exporter.get_finished_spans() == () and "traceparent" not in ignored.sent[0]


def test_flush_otel_is_a_no_op_while_opentelemetry_is_off():
    # With OpenTelemetry on it flushes the Rust exporter (tests/test_execute_span.py).
    assert asyncio.run(obs.flush_otel()) is None
