"""The buffered HTTP models of iii-helpers 0.25.0 (``iii_helpers.http``).

0.25.0 gave the names ``HttpRequest`` / ``HttpResponse`` to pydantic models of a buffered
request and response (what an ``http``-triggered function receives as its payload and may
return), and renamed the streaming pair to ``iii.types.StreamRequest`` / ``StreamResponse``
(in this package, the 0.11 ``iii.HttpRequest`` / ``iii.HttpResponse`` objects).
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HttpMethod", "HttpRequest", "HttpResponse"]

TInput = TypeVar("TInput")
TOutput = TypeVar("TOutput")

#: Methods of HTTP-invoked functions (``HttpInvocationConfig.method``).
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class HttpRequest(BaseModel, Generic[TInput]):
    """A buffered HTTP request: route parameters, query, parsed body, headers, method."""

    path_params: dict[str, str] = Field(default_factory=dict)
    query_params: dict[str, str | list[str]] = Field(default_factory=dict)
    body: Any | None = None
    headers: dict[str, str | list[str]] = Field(default_factory=dict)
    method: str = "GET"


class HttpResponse(BaseModel, Generic[TOutput]):
    """A buffered HTTP response; ``status_code`` is also accepted (and dumped with
    ``by_alias=True``) as ``statusCode``."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    status_code: int = Field(alias="statusCode")
    body: Any | None = None
    headers: dict[str, str] = Field(default_factory=dict)
