"""The structured Logger and its exporter seam."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from iii.logger import Logger, get_log_exporter, set_log_exporter


@pytest.fixture
def no_exporter() -> Iterator[None]:
    previous = set_log_exporter(None)
    try:
        yield
    finally:
        set_log_exporter(previous)


def test_records_go_to_python_logging_with_data(caplog: pytest.LogCaptureFixture, no_exporter: None) -> None:
    logger = Logger(trace_id="t1", service_name="orders", span_id="s1")
    with caplog.at_level(logging.DEBUG, logger="iii"):
        logger.info("Order processed", {"order_id": "ord_123"})
        logger.debug("plain")
        logger.warn("careful", [1, 2])
        logger.error("failed", "boom")
    records = caplog.records
    assert [r.levelno for r in records] == [logging.INFO, logging.DEBUG, logging.WARNING, logging.ERROR]
    assert all(r.name.startswith("iii") for r in records)
    first = records[0]
    assert first.data == {"order_id": "ord_123"}  # type: ignore[attr-defined]
    assert first.trace_id == "t1" and first.span_id == "s1"  # type: ignore[attr-defined]
    assert first.getMessage() == '[orders] Order processed {"order_id": "ord_123"}'
    assert records[1].getMessage() == "[orders] plain"
    assert records[1].data is None  # type: ignore[attr-defined]


def test_message_without_service_name_and_unserialisable_data(
    caplog: pytest.LogCaptureFixture, no_exporter: None
) -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    with caplog.at_level(logging.INFO, logger="iii"):
        Logger().info("hello", {"obj": Thing()})
    assert caplog.records[0].getMessage() == 'hello {"obj": "<thing>"}'


def test_record_location_is_the_callers(caplog: pytest.LogCaptureFixture, no_exporter: None) -> None:
    with caplog.at_level(logging.INFO, logger="iii"):
        Logger().info("here")
    assert caplog.records[0].funcName == "test_record_location_is_the_callers"


def test_exporter_receives_severity_numbers(no_exporter: None) -> None:
    seen: list[tuple[int, str, str, Any]] = []
    set_log_exporter(lambda *args: seen.append(args))
    assert get_log_exporter() is not None
    log = Logger()
    log.debug("d", 1)
    log.info("i")
    log.warn("w", {"a": 1})
    log.error("e")
    assert seen == [
        (5, "DEBUG", "d", 1),
        (9, "INFO", "i", None),
        (13, "WARN", "w", {"a": 1}),
        (17, "ERROR", "e", None),
    ]


def test_exporter_sees_records_even_when_logging_is_disabled(no_exporter: None) -> None:
    seen: list[Any] = []
    set_log_exporter(lambda *args: seen.append(args))
    lg = logging.getLogger("iii.logger")
    old = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        Logger().info("quiet")
    finally:
        lg.setLevel(old)
    assert seen == [(9, "INFO", "quiet", None)]


def test_failing_exporter_does_not_break_logging(caplog: pytest.LogCaptureFixture, no_exporter: None) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("exporter down")

    set_log_exporter(broken)
    with caplog.at_level(logging.INFO, logger="iii"):
        Logger().info("still logged")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == ["still logged"]


def test_set_log_exporter_returns_previous_and_none_removes(no_exporter: None) -> None:
    def a(*_: Any) -> None:
        return None

    assert set_log_exporter(a) is None
    assert set_log_exporter(None) is a
    assert get_log_exporter() is None
