"""Official import path ``iii.telemetry_exporters`` (iii-sdk 0.11.0).

PLACEHOLDER (issue 8): the official names and signatures, so the module imports; the
telemetry branch replaces this file. Constructing any of these raises ``NotImplementedError``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

__all__ = [
    "PREFIX_METRICS",
    "EngineLogExporter",
    "EngineMetricsExporter",
    "EngineSpanExporter",
    "SharedEngineConnection",
    "log",
]

log = logging.getLogger("iii.telemetry_exporters")

#: Prefix of the binary frames that carry OTLP/JSON metrics to the engine.
PREFIX_METRICS = b"MTRC"


class _Pending:
    def __init__(self, *_: Any) -> None:
        raise NotImplementedError(f"iii.telemetry_exporters.{type(self).__name__} is not implemented yet")


class SharedEngineConnection(_Pending):
    def __init__(self, url: str) -> None:
        super().__init__(url)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        raise NotImplementedError

    def send_threadsafe(self, prefix: bytes, payload: bytes) -> None:
        raise NotImplementedError

    async def shutdown(self) -> None:
        raise NotImplementedError


class EngineSpanExporter(_Pending):
    def __init__(self, connection: SharedEngineConnection) -> None:
        super().__init__(connection)

    def export(self, spans: Sequence[Any]) -> Any:
        raise NotImplementedError

    def shutdown(self) -> None:
        raise NotImplementedError

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        raise NotImplementedError


class EngineLogExporter(_Pending):
    def __init__(self, connection: SharedEngineConnection) -> None:
        super().__init__(connection)

    def export(self, batch: Sequence[Any]) -> Any:
        raise NotImplementedError

    def shutdown(self) -> None:
        raise NotImplementedError

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        raise NotImplementedError


class EngineMetricsExporter(_Pending):
    def __init__(self, connection: SharedEngineConnection) -> None:
        super().__init__(connection)

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        raise NotImplementedError

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        raise NotImplementedError

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        raise NotImplementedError
