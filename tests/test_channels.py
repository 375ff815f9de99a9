"""Channels: create, pass refs in payloads, stream bytes and messages between workers."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from iii import Channel, ChannelError, ChannelReader, ChannelWriter
from iii._channels import _in_thread

from conftest import unique, wait_registered


def test_channel_streams_bytes_and_messages_between_workers(make_worker):
    producer_side, consumer_side = make_worker(), make_worker()
    fid = unique("producer")
    blob = bytes(range(256)) * 1024  # 256 KiB: several 64 KiB frames

    async def produce(data):
        writer = data["output"]
        assert isinstance(writer, ChannelWriter)
        await writer.send_message_async("starting")
        await writer.write(blob)
        writer.stream.write(b"tail")
        await writer.close_async()
        return {"sent": len(blob) + 4}

    producer_side.register_function(fid, produce)
    wait_registered(consumer_side, fid)
    channel = consumer_side.create_channel(buffer_size=8)
    assert isinstance(channel, Channel)
    assert channel.writer_ref.channel_id == channel.reader_ref.channel_id
    assert (channel.writer_ref.direction, channel.reader_ref.direction) == ("write", "read")
    messages: list[str] = []
    channel.reader.on_message(messages.append)

    async def run():
        call = asyncio.ensure_future(
            consumer_side.trigger_async({"function_id": fid, "payload": {"output": channel.writer_ref}})
        )
        received = await channel.reader.read_all()
        return received, await call

    received, result = asyncio.run(run())
    assert received == blob + b"tail"
    assert result == {"sent": len(blob) + 4}
    assert messages == ["starting"]


def test_sync_handler_reads_a_channel(make_worker):
    server, client = make_worker(), make_worker()
    fid = unique("consumer")

    def consume(data):
        reader = data["input"]
        assert isinstance(reader, ChannelReader)
        return len(reader.read_all_sync())

    server.register_function(fid, consume)
    wait_registered(client, fid)

    async def run():
        channel = await client.create_channel_async()
        call = asyncio.ensure_future(
            client.trigger_async({"function_id": fid, "payload": {"input": channel.reader_ref}})
        )
        await channel.writer.write(b"x" * 100_000)
        await channel.writer.close_async()
        return await call

    assert asyncio.run(run()) == 100_000


def test_ctrl_c_interrupts_a_blocked_channel_read(make_worker):
    worker = make_worker()
    channel = worker.create_channel()
    # A process started in the background may inherit SIGINT as ignored: make it Ctrl-C again.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    interrupt.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            channel.reader.read_chunk_sync()  # nobody writes: it waits until interrupted
    finally:
        interrupt.cancel()
        signal.signal(signal.SIGINT, previous)
    channel.writer.write_sync(b"still usable")
    channel.writer.close()
    assert channel.reader.read_all_sync() == b"still usable"


def test_async_channel_operations_run_on_the_sdks_own_threads(make_worker):
    worker = make_worker()
    channel = worker.create_channel()
    names: list[str] = []

    async def run() -> bytes:
        names.append(await _in_thread(lambda: threading.current_thread().name))
        await channel.writer.write(b"abc")
        await channel.writer.close_async()
        return await channel.reader.read_all()

    assert asyncio.run(run()) == b"abc"
    assert names[0].startswith("iii-channel-")
    assert not threading.current_thread().name.startswith("iii-channel-")


def test_a_channel_that_cannot_be_opened_raises_channel_error(make_worker):
    worker = make_worker()
    bogus = ChannelReader(
        worker._address, {"channel_id": "no-such-channel", "access_key": "x", "direction": "read"}
    )
    with pytest.raises(ChannelError):
        bogus.read_all_sync()


def test_channel_io_fails_clearly_when_no_thread_can_start(monkeypatch):
    """CPython 3.12.0-3.12.x refuse new threads once the main thread has returned: the channel
    operation that needed one fails at once instead of waiting for a thread that never comes."""
    from iii._channels import _Threads

    start = threading.Thread.start

    def refusing(self: threading.Thread) -> None:
        if self.name.startswith("iii-channel-"):
            raise RuntimeError("can't create new thread at interpreter shutdown")
        start(self)

    monkeypatch.setattr(threading.Thread, "start", refusing)
    threads = _Threads()

    async def run() -> None:
        with pytest.raises(RuntimeError, match="no thread can do channel I/O"):
            await threads.run(lambda: "never")
        monkeypatch.undo()
        assert await threads.run(lambda: "later") == "later"  # a thread that can start takes the next

    asyncio.run(run())
