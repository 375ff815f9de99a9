"""Streaming channels between workers (docs/protocol.md section 8).

A channel is a pair of WebSocket ends on the engine: whatever the writer sends, the reader
receives, in order, with backpressure. :meth:`III.create_channel` makes one; its refs
(``writer_ref`` / ``reader_ref``) can be put in a payload, and the receiving worker gets them
back as :class:`ChannelWriter` / :class:`ChannelReader` objects.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import _iii
from ._models import StreamChannelRef
from ._options import DEFAULT_MAX_MESSAGE_SIZE

log = logging.getLogger("iii.channels")
_T = TypeVar("_T")

__all__ = [
    "MAX_FRAME_SIZE",
    "Channel",
    "ChannelReader",
    "ChannelWriter",
    "ReadableStream",
    "StreamChannelRef",
    "WritableStream",
    "build_channel_url",
    "is_channel_ref",
]

#: Writes are split into binary frames of at most this many bytes (done in the Rust core).
MAX_FRAME_SIZE = 64 * 1024


def is_channel_ref(value: Any) -> bool:
    """True for a dict shaped like a channel ref (``channel_id``, ``access_key``, ``direction``)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("channel_id"), str)
        and isinstance(value.get("access_key"), str)
        and value.get("direction") in ("read", "write")
    )


def build_channel_url(engine_ws_base: str, channel_id: str, access_key: str, direction: str) -> str:
    """The engine URL of one end of a channel: ``<base>/ws/channels/<id>?key=...&dir=read|write``.

    Built by the core from the engine URL by the same rules as the worker link (scheme,
    credentials, host and port kept, the base's path as a prefix and its query before the
    channel's, in iii-sdk 0.25.0's order; the id and key are percent-encoded, so odd
    characters cannot change the path).
    """
    return _iii.channel_url(engine_ws_base, channel_id, access_key, direction)


def _url(base: str, ref: StreamChannelRef, direction: str) -> str:
    return build_channel_url(base, ref.channel_id, ref.access_key, direction)


class _Threads:
    """Threads the SDK owns for the blocking channel operations behind the async API.

    Not asyncio's default executor: its threads are few and refuse work once the interpreter
    starts exiting. These are not daemons (they wait inside Rust with the GIL released, and a
    daemon thread there at interpreter exit aborts the process); an idle one ends after a second,
    so they never keep a finished process alive for long.
    """

    def __init__(self, limit: int = 32) -> None:
        self._jobs: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Any, tuple[Any, ...]]]
        self._jobs = deque()
        self._ready = threading.Condition()
        self._idle = 0
        self._count = 0
        self._limit = limit

    def run(self, fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._ready:
            self._jobs.append((loop, future, fn, args))
            # Every queued job needs a waiting thread of its own: a job must never wait behind
            # one that blocks (a read waiting for the write queued after it).
            if self._idle >= len(self._jobs):
                self._ready.notify()
            elif self._count < self._limit:
                self._count += 1
                try:
                    threading.Thread(
                        target=self._work, name=f"iii-channel-{self._count}", daemon=False
                    ).start()
                except RuntimeError as exc:
                    # CPython 3.12.0-3.12.x refuse new threads once the main thread has returned.
                    # Waiting for a busy thread instead could deadlock (see above): fail the job.
                    self._count -= 1
                    self._jobs.pop()
                    future.set_exception(RuntimeError(f"no thread can do channel I/O: {exc}"))
        return future

    def _work(self) -> None:
        while True:
            with self._ready:
                self._idle += 1
                while not self._jobs:
                    if not self._ready.wait(timeout=1.0) and not self._jobs:
                        self._idle -= 1
                        self._count -= 1
                        return
                self._idle -= 1
                loop, future, fn, args = self._jobs.popleft()
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:
                pass  # the loop is closed: nobody waits for this any more


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_threads = _Threads()


async def _in_thread(fn: Callable[..., _T], *args: Any) -> _T:
    return await _threads.run(fn, *args)


class _End:
    """Opens its socket on first use, so a ref passed on to another worker costs nothing here."""

    _direction = ""

    def __init__(self, engine_ws_base: str, ref: StreamChannelRef | dict[str, Any]) -> None:
        self.ref = ref if isinstance(ref, StreamChannelRef) else StreamChannelRef.model_validate(ref)
        self._url = _url(engine_ws_base, self.ref, self._direction)
        self._socket: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        with self._lock:
            if self._socket is None:
                self._socket = _iii.ChannelSocket(self._url, DEFAULT_MAX_MESSAGE_SIZE)
            return self._socket

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ref.channel_id!r})"


class ChannelWriter(_End):
    """The sending end: binary data (:meth:`write`) and text messages (:meth:`send_message`)."""

    _direction = "write"

    def __init__(self, engine_ws_base: str, ref: StreamChannelRef | dict[str, Any]) -> None:
        super().__init__(engine_ws_base, ref)
        self.stream = WritableStream(self)

    def write_sync(self, data: bytes) -> None:
        """Writes bytes (split into 64 KiB frames), blocking while the channel is full."""
        self._open().write(bytes(data))

    async def write(self, data: bytes) -> None:
        await _in_thread(self.write_sync, data)

    def send_message(self, msg: str) -> None:
        """Sends one text message (blocking briefly while the channel is full)."""
        self._open().send_text(msg)

    async def send_message_async(self, msg: str) -> None:
        await _in_thread(self.send_message, msg)

    def close(self) -> None:
        """Ends the stream once everything written before has been sent."""
        self._open().close()

    async def close_async(self) -> None:
        await _in_thread(self.close)


class ChannelReader(_End):
    """The receiving end: iterate it for binary chunks; text messages go to callbacks."""

    _direction = "read"

    def __init__(self, engine_ws_base: str, ref: StreamChannelRef | dict[str, Any]) -> None:
        super().__init__(engine_ws_base, ref)
        self._callbacks: list[Callable[[str], Any]] = []
        self.stream = ReadableStream(self)

    def on_message(self, callback: Callable[[str], Any]) -> None:
        """Calls ``callback(text)`` for every text message read from the channel."""
        self._callbacks.append(callback)

    def read_chunk_sync(self) -> bytes | None:
        """The next binary chunk (text messages go to the callbacks), or None at the end."""
        socket = self._open()
        while True:
            frame = socket.recv()
            if frame is None or isinstance(frame, bytes):
                return frame
            for callback in self._callbacks:
                try:
                    callback(frame)
                except Exception:
                    log.exception("channel message callback raised")

    def read_all_sync(self) -> bytes:
        """Reads until the writer closes; for synchronous handlers."""
        chunks = []
        while (chunk := self.read_chunk_sync()) is not None:
            chunks.append(chunk)
        return b"".join(chunks)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await _in_thread(self.read_chunk_sync)) is not None:
            yield chunk

    async def read_all(self) -> bytes:
        return await _in_thread(self.read_all_sync)

    async def close_async(self) -> None:
        if self._socket is not None:
            await _in_thread(self._socket.close)


class WritableStream:
    """File-like view of a :class:`ChannelWriter`: ``write(data)`` then ``end()``."""

    def __init__(self, writer: ChannelWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        self._writer.write_sync(data)

    def end(self, data: bytes | None = None) -> None:
        if data:
            self._writer.write_sync(data)
        self._writer.close()


class ReadableStream:
    """Async-iterable view of a :class:`ChannelReader`."""

    def __init__(self, reader: ChannelReader) -> None:
        self._reader = reader

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._reader.__aiter__()


@dataclass
class Channel:
    """A channel made by :meth:`III.create_channel`: local ends and their shareable refs."""

    writer: ChannelWriter
    reader: ChannelReader
    writer_ref: StreamChannelRef
    reader_ref: StreamChannelRef


def resolve_refs(base: str, value: Any) -> Any:
    """Replaces channel refs anywhere in a payload with reader / writer objects (a
    :class:`StreamChannelRef` too: a local call's deep copy keeps it a model, where a remote
    call would have carried its dict)."""
    if isinstance(value, StreamChannelRef):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        if is_channel_ref(value):
            return ChannelReader(base, value) if value["direction"] == "read" else ChannelWriter(base, value)
        return {k: resolve_refs(base, v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(base, v) for v in value]
    return value
