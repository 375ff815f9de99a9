"""Official path ``iii_helpers.observability.telemetry_exporters`` (iii-helpers 0.25.0).
Re-exports of ``iii.telemetry_exporters`` (exporters backed by this SDK's Rust exporter)."""

from iii.telemetry_exporters import (
    PREFIX_METRICS,
    EngineLogExporter,
    EngineMetricsExporter,
    EngineSpanExporter,
    SharedEngineConnection,
    log,
)

__all__ = [
    "PREFIX_METRICS",
    "EngineLogExporter",
    "EngineMetricsExporter",
    "EngineSpanExporter",
    "SharedEngineConnection",
    "log",
]
