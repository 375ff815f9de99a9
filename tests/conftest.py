"""Shared fixtures: an engine (the built-in test engine, or a real one via ``III_URL``) and
workers connected to it that are shut down after each test."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from iii import III, InitOptions, InvocationError, ReconnectionConfig, register_worker
from iii.testing import Engine

REAL_ENGINE_URL = os.environ.get("III_URL")
#: Which generation the built-in test engine behaves like (``v0.11`` or ``head``).
TEST_ENGINE_GENERATION = os.environ.get("III_TEST_ENGINE", "v0.11")


@pytest.fixture
def engine() -> Iterator[Engine]:
    """The built-in test engine. Tests that control the engine itself use this directly."""
    if REAL_ENGINE_URL:
        pytest.skip("needs control over the engine (not possible with III_URL)")
    with Engine(functions_poll_interval_ms=100, generation=TEST_ENGINE_GENERATION, queue_worker=True) as e:
        yield e


@pytest.fixture
def engine_url() -> Iterator[str]:
    if REAL_ENGINE_URL:
        yield REAL_ENGINE_URL
        return
    with Engine(functions_poll_interval_ms=100, generation=TEST_ENGINE_GENERATION, queue_worker=True) as e:
        yield e.url


WorkerFactory = Callable[..., III]


@pytest.fixture
def obs_engine() -> Iterator[Engine]:
    """An engine of the 0.25 generation (observe tests)."""
    if REAL_ENGINE_URL:
        pytest.skip("sends engine frames itself (not possible with III_URL)")
    with Engine(functions_poll_interval_ms=100, generation="0.25") as e:
        yield e


@pytest.fixture
def obs_workers(obs_engine: Engine) -> Iterator[WorkerFactory]:
    created: list[III] = []

    def make(**options: Any) -> III:
        options.setdefault("worker_name", f"obs-{uuid.uuid4().hex[:8]}")
        options.setdefault("reconnection_config", ReconnectionConfig(initial_delay_ms=50, max_delay_ms=200))
        options.setdefault("otel", {"enabled": False})
        worker = register_worker(obs_engine.url, InitOptions(**options))
        created.append(worker)
        return worker

    yield make
    for worker in created:
        worker.shutdown()


@pytest.fixture
def make_worker(engine_url: str) -> Iterator[WorkerFactory]:
    created: list[III] = []

    def make(url: str | None = None, **options: object) -> III:
        options.setdefault("worker_name", f"test-{uuid.uuid4().hex[:8]}")
        options.setdefault("reconnection_config", ReconnectionConfig(initial_delay_ms=50, max_delay_ms=200))
        worker = register_worker(url or engine_url, InitOptions(**options))  # type: ignore[arg-type]
        created.append(worker)
        return worker

    yield make
    for worker in created:
        worker.shutdown()


def unique(prefix: str = "t") -> str:
    """A function id no other test (or earlier run against a real engine) uses."""
    return f"{prefix}::{uuid.uuid4().hex[:10]}"


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.1f} s")
        time.sleep(interval)


def needs_queue(worker: III) -> None:
    """Engines after v0.11.0 enqueue through engine::queue::enqueue (the standalone queue
    worker); skip where it is not installed."""
    if worker.engine_generation == "head" and not has_queue_worker(worker):
        pytest.skip("no queue worker (engine::queue::enqueue) on this engine")


def has_queue_worker(worker: III) -> bool:
    request = {"function_id": "engine::functions::info", "payload": {"function_id": "engine::queue::enqueue"}}
    try:
        worker.trigger(request)
    except InvocationError:
        return False
    return True


def wait_registered(caller: III, function_id: str, timeout: float = 5.0) -> None:
    """Registrations are not acknowledged: poll the engine's function list."""
    wait_until(lambda: any(f.function_id == function_id for f in caller.list_functions()), timeout)


@pytest.fixture
def needs_observability(engine_url: str) -> None:
    """Skips a test when the engine keeps no telemetry (a real engine whose observability
    module is off answers engine::traces::list with function_not_found)."""
    if not REAL_ENGINE_URL:
        return
    from iii import InvocationError

    probe = register_worker(
        engine_url, InitOptions(worker_name="observability-probe", otel={"enabled": False})
    )
    try:
        probe.trigger({"function_id": "engine::traces::list", "payload": {}, "timeout_ms": 5000})
    except InvocationError as exc:
        pytest.skip(f"the engine's observability module is off ({exc.code})")
    finally:
        probe.shutdown()


def stream_through_a_channel(producer: III, consumer: III, blob: bytes) -> bytes:
    """A function on ``producer`` writes ``blob`` into a channel ``consumer`` created and passed
    to it; returns what ``consumer`` read from the channel."""
    import asyncio

    fid = unique("produce")

    async def produce(data: Any) -> None:
        await data["out"].write(blob)
        await data["out"].close_async()

    producer.register_function(fid, produce)
    wait_registered(consumer, fid)
    channel = consumer.create_channel()

    async def run() -> bytes:
        call = asyncio.ensure_future(
            consumer.trigger_async({"function_id": fid, "payload": {"out": channel.writer_ref}})
        )
        received = await channel.reader.read_all()
        await call
        return received

    return asyncio.run(run())
