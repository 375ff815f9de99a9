"""Structured logging for worker code.

With OpenTelemetry on (the default, see :mod:`iii.telemetry`), every record goes to the engine
as an OpenTelemetry log record: severity, message, ``service.name``, the structured ``data``
as ``log.data``, and the ids of the current span (or the ``trace_id`` / ``span_id`` given to
the Logger). With it off, :class:`Logger` writes through Python :mod:`logging` (logger
``"iii.logger"``, a child of ``"iii"``): the structured ``data`` is attached to the record as
the attribute ``data`` and appended to the message text as JSON. A log exporter installed with
:func:`set_log_exporter` is also handed every record with its OpenTelemetry severity.
"""

from ._logger import (
    SEVERITY_DEBUG,
    SEVERITY_ERROR,
    SEVERITY_INFO,
    SEVERITY_WARN,
    Logger,
    get_log_exporter,
    is_initialized,
    log,
    safe_stringify,
    set_log_exporter,
    set_otel_sink,
)

__all__ = [
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
