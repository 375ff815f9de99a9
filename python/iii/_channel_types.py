"""Channel helper types of iii-sdk 0.25.0: :class:`ChannelDirection`, :class:`ChannelItem`,
:func:`extract_channel_refs` and :func:`resolve_headers` (official paths ``iii.channels``,
``iii.types``, ``iii.helpers``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypedDict

from pydantic import ValidationError

from ._channels import is_channel_ref
from ._models import StreamChannelRef

__all__ = [
    "ChannelDirection",
    "ChannelItem",
    "StreamChannelRefDict",
    "extract_channel_refs",
    "resolve_headers",
]


class ChannelDirection(str, Enum):
    """Which end of a channel a ref names; the values are ``StreamChannelRef.direction``'s."""

    READ = "read"
    WRITE = "write"


@dataclass
class ChannelItem:
    """One frame of a channel: text (a message) or binary (data). Exactly one is set."""

    text: str | None = None
    binary: bytes | None = None

    def __post_init__(self) -> None:
        if (self.text is None) is (self.binary is None):
            raise ValueError("ChannelItem needs exactly one of text or binary")

    @classmethod
    def text_item(cls, value: str) -> ChannelItem:
        return cls(text=value)

    @classmethod
    def binary_item(cls, value: bytes) -> ChannelItem:
        return cls(binary=value)

    @property
    def is_text(self) -> bool:
        return self.text is not None

    @property
    def is_binary(self) -> bool:
        return self.binary is not None


class StreamChannelRefDict(TypedDict):
    """A channel ref as it appears in a raw payload (what :func:`is_channel_ref` accepts)."""

    channel_id: str
    access_key: str
    direction: Literal["read", "write"]


def extract_channel_refs(data: Any) -> list[tuple[str, StreamChannelRef]]:
    """Every channel ref in ``data`` (dicts and lists, recursively), with its path.

    Paths join dict keys with ``.`` and list indexes as ``[i]``: ``"items[0].writer"``; a ref
    at the top level has the path ``""``.
    """
    found: list[tuple[str, StreamChannelRef]] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if is_channel_ref(value):
            try:
                found.append((path, StreamChannelRef.model_validate(value)))
            except ValidationError:
                pass
        elif isinstance(value, dict):
            children = [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()]
            stack.extend(reversed(children))
        elif isinstance(value, list):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
            stack.extend(reversed(children))
    return found


def resolve_headers(explicit: dict[str, str] | None = None) -> dict[str, str] | None:
    """``explicit`` plus ``Authorization: Bearer $III_TOKEN`` when ``III_TOKEN`` is set (not
    blank) and ``explicit`` has no Authorization header of its own (any case).

    A pure function, as in iii-sdk 0.25.0 (the token is read at each call).
    """
    token = os.environ.get("III_TOKEN", "").strip()
    if not token or any(name.lower() == "authorization" for name in explicit or {}):
        return explicit
    return {**(explicit or {}), "Authorization": f"Bearer {token}"}
