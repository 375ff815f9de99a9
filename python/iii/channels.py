"""Streaming channels between workers (docs/protocol.md section 8).

A channel is a pair of WebSocket ends on the engine: whatever the writer sends, the reader
receives, in order, with backpressure. :meth:`III.create_channel` makes one; its refs
(``writer_ref`` / ``reader_ref``) can be put in a payload, and the receiving worker gets them
back as :class:`ChannelWriter` / :class:`ChannelReader` objects.
"""

from ._channels import (
    MAX_FRAME_SIZE,
    Channel,
    ChannelReader,
    ChannelWriter,
    ReadableStream,
    StreamChannelRef,
    WritableStream,
    build_channel_url,
    is_channel_ref,
    log,
    resolve_refs,
)
from ._options import DEFAULT_MAX_MESSAGE_SIZE

__all__ = [
    "Channel",
    "ChannelReader",
    "ChannelWriter",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_FRAME_SIZE",
    "ReadableStream",
    "StreamChannelRef",
    "WritableStream",
    "build_channel_url",
    "is_channel_ref",
    "log",
    "resolve_refs",
]
