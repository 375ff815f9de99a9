"""Typed request / response objects for functions bound to ``http`` triggers.

The engine calls such a function with the request (path, query, headers, parsed JSON body) and
two channel refs: ``request_body`` (the raw body) and ``response`` (for streaming a reply). A
function may simply return ``{"status_code": ..., "body": ...}``; :func:`http` wraps a handler
``(request, response)`` that wants to stream instead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ._channels import ChannelReader, ChannelWriter, WritableStream

__all__ = ["HttpRequest", "HttpResponse", "InternalHttpRequest", "http"]


@dataclass
class InternalHttpRequest:
    """The engine's request with both channel ends."""

    path_params: dict[str, str]
    query_params: dict[str, Any]
    body: Any
    headers: dict[str, Any]
    method: str
    response: ChannelWriter
    request_body: ChannelReader


@dataclass
class HttpRequest:
    """What an :func:`http` handler receives as its request."""

    path_params: dict[str, str]
    query_params: dict[str, Any]
    body: Any
    headers: dict[str, Any]
    method: str
    request_body: ChannelReader


def _control(message: dict[str, Any]) -> str:
    """A control message of the response channel as iii-sdk 0.25.0 writes it: compact JSON,
    non-ASCII characters kept as UTF-8 (not ``\\u`` escapes)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class HttpResponse:
    """Streams a reply: optional :meth:`status` and :meth:`headers`, then body bytes, then close."""

    def __init__(self, writer: ChannelWriter) -> None:
        self._writer = writer

    async def status(self, status_code: int) -> None:
        await self._writer.send_message_async(_control({"type": "set_status", "status_code": status_code}))

    async def headers(self, headers: dict[str, str]) -> None:
        await self._writer.send_message_async(_control({"type": "set_headers", "headers": headers}))

    @property
    def stream(self) -> WritableStream:
        return self._writer.stream

    @property
    def writer(self) -> ChannelWriter:
        return self._writer

    def close(self) -> None:
        self._writer.close()


def http(callback: Callable[[HttpRequest, HttpResponse], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """Adapts ``async def handler(request, response)`` to the function signature the engine calls."""

    async def handler(raw: Any) -> Any:
        if isinstance(raw, InternalHttpRequest):
            internal = raw
        else:
            internal = InternalHttpRequest(
                response=raw["response"],
                request_body=raw["request_body"],
                path_params=raw.get("path_params") or {},
                query_params=raw.get("query_params") or {},
                body=raw.get("body"),
                headers=raw.get("headers") or {},
                method=raw.get("method") or "GET",
            )
        request = HttpRequest(
            request_body=internal.request_body,
            path_params=internal.path_params,
            query_params=internal.query_params,
            body=internal.body,
            headers=internal.headers,
            method=internal.method,
        )
        return await callback(request, HttpResponse(internal.response))

    handler.__name__ = getattr(callback, "__name__", "http_handler")
    return handler
