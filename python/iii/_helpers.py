"""Free-function helpers of iii-sdk 0.25.0 (official path ``iii.helpers``).

0.25.0 turned three ``III`` methods into functions taking the client first; here they call the
methods, which this package keeps for 0.11 code (``iii.create_channel()`` and
``iii.helpers.create_channel(iii)`` do the same thing).
"""

from __future__ import annotations

from typing import Any, TypeVar

from . import _deprecations
from ._channels import Channel
from ._streams import IStream

__all__ = ["create_channel", "create_channel_async", "create_stream"]

TData = TypeVar("TData")


def create_channel(iii: Any, buffer_size: int | None = None) -> Channel:
    """Creates a streaming channel pair through the engine (``engine::channels::create``).

    Pass ``writer_ref`` / ``reader_ref`` to other functions in payloads.
    """
    channel: Channel = iii.create_channel(buffer_size)
    return channel


async def create_channel_async(iii: Any, buffer_size: int | None = None) -> Channel:
    """:func:`create_channel` from a coroutine."""
    channel: Channel = await iii.create_channel_async(buffer_size)
    return channel


def create_stream(iii: Any, stream_name: str, stream: IStream[TData]) -> None:
    """Serves stream ``stream_name`` from ``stream`` (see ``III.create_stream``).

    .. deprecated:: 0.25.0
        As in iii-sdk 0.25.0, every call emits a ``FutureWarning`` (streams move to
        iii-stream). Behaviour is unchanged.
    """
    _deprecations.warn_stream(_deprecations.CREATE_STREAM, stacklevel=2)
    # iii-sdk 0.25.0 forwards to the client's ``_helpers_create_stream``; stand-in clients
    # written against it implement only that method.
    serve = getattr(iii, "_helpers_create_stream", None)
    if serve is None:
        serve = iii.create_stream
    serve(stream_name, stream)
