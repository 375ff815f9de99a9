"""Structured logging for worker code.

With OpenTelemetry on (the default, see :mod:`iii.telemetry`), every record goes to the engine
as an OpenTelemetry log record: severity, message, ``service.name``, the structured ``data``
as ``log.data``, and the ids of the current span (or the ``trace_id`` / ``span_id`` given to
the Logger). With it off, :class:`Logger` writes through Python :mod:`logging` (logger
``"iii.logger"``, a child of ``"iii"``): the structured ``data`` is attached to the record as
the attribute ``data`` and appended to the message text as JSON. A log exporter installed with
:func:`set_log_exporter` is also handed every record with its OpenTelemetry severity.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "LogExporter",
    "Logger",
    "SEVERITY_DEBUG",
    "SEVERITY_ERROR",
    "SEVERITY_INFO",
    "SEVERITY_WARN",
    "get_log_exporter",
    "is_initialized",
    "log",
    "safe_stringify",
    "set_log_exporter",
    "set_otel_sink",
]

#: OpenTelemetry severity numbers of the four levels.
SEVERITY_DEBUG = 5
SEVERITY_INFO = 9
SEVERITY_WARN = 13
SEVERITY_ERROR = 17

#: ``fn(severity_number, severity_text, message, data)``; may be called from any thread.
LogExporter = Callable[[int, str, str, Any], None]

_LOGGER_NAME = "iii.logger"
log = logging.getLogger(_LOGGER_NAME)

_exporter: LogExporter | None = None
_exporter_lock = threading.Lock()

#: ``fn(severity, message, data, trace_id_hex, span_id_hex, service_name) -> delivered``:
#: installed by :mod:`iii.telemetry` while OpenTelemetry is on; a record it delivered does not
#: also go to Python logging.
OtelSink = Callable[[int, str, Any, "str | None", "str | None", "str | None"], bool]
_otel_sink: OtelSink | None = None


def set_otel_sink(fn: OtelSink | None) -> None:
    """Sends records to ``fn`` instead of Python logging (``None``: back to logging)."""
    global _otel_sink
    _otel_sink = fn


def set_log_exporter(fn: LogExporter | None) -> LogExporter | None:
    """Install ``fn`` as the log exporter (``None`` removes it); returns the previous one."""
    global _exporter
    with _exporter_lock:
        previous, _exporter = _exporter, fn
    return previous


def get_log_exporter() -> LogExporter | None:
    """The currently installed log exporter, if any."""
    return _exporter


def is_initialized() -> bool:
    """True while OpenTelemetry log export is on (records go to the engine, or to an
    installed log exporter)."""
    return _otel_sink is not None or _exporter is not None


def safe_stringify(value: Any) -> str:
    """JSON text of ``value``; values JSON cannot encode are written with ``str()``, and a
    value that still cannot be encoded (e.g. one that contains itself) gives
    ``"[unserializable]"`` instead of an exception."""
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return "[unserializable]"


def _render(data: Any) -> str:
    try:
        return json.dumps(data, default=_fallback, ensure_ascii=False, separators=(", ", ": "))
    except Exception:
        return repr(data)


def _fallback(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:
            pass
    return repr(value)


class Logger:
    """Logger with structured context.

    ``service_name`` prefixes messages as ``[service_name]``; ``trace_id`` and ``span_id`` are
    attached to each record (attributes ``trace_id`` / ``span_id``) to correlate it with a
    trace. Pass structured context as the second argument, preferably a dict::

        logger = Logger(service_name="orders")
        logger.info("Order processed", {"order_id": "ord_123", "status": "completed"})
    """

    def __init__(
        self,
        trace_id: str | None = None,
        service_name: str | None = None,
        span_id: str | None = None,
    ) -> None:
        self._trace_id = trace_id
        self._service_name = service_name
        self._span_id = span_id

    @property
    def trace_id(self) -> str | None:
        return self._trace_id

    @property
    def service_name(self) -> str | None:
        return self._service_name

    @property
    def span_id(self) -> str | None:
        return self._span_id

    def debug(self, message: str, data: Any = None) -> None:
        """Log at debug level."""
        self._emit(logging.DEBUG, SEVERITY_DEBUG, "DEBUG", message, data)

    def info(self, message: str, data: Any = None) -> None:
        """Log at info level."""
        self._emit(logging.INFO, SEVERITY_INFO, "INFO", message, data)

    def warn(self, message: str, data: Any = None) -> None:
        """Log at warning level."""
        self._emit(logging.WARNING, SEVERITY_WARN, "WARN", message, data)

    def error(self, message: str, data: Any = None) -> None:
        """Log at error level."""
        self._emit(logging.ERROR, SEVERITY_ERROR, "ERROR", message, data)

    def _emit(self, py_level: int, severity: int, severity_text: str, message: str, data: Any) -> None:
        exporter = _exporter
        if exporter is not None:
            try:
                exporter(severity, severity_text, message, data)
            except Exception:
                log.debug("log exporter failed", exc_info=True)
        sink = _otel_sink
        if sink is not None:
            try:
                if sink(severity, message, data, self._trace_id, self._span_id, self._service_name):
                    return
            except Exception:
                log.debug("OpenTelemetry log export failed", exc_info=True)
        if not log.isEnabledFor(py_level):
            return
        text = message if self._service_name is None else f"[{self._service_name}] {message}"
        if data is not None:
            text = f"{text} {_render(data)}"
        log.log(
            py_level,
            "%s",
            text,
            extra={"data": data, "trace_id": self._trace_id, "span_id": self._span_id},
            stacklevel=3,
        )
