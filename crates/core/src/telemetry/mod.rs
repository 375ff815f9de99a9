//! OpenTelemetry in the core (docs/protocol.md 10): W3C trace context, span and log records, the
//! worker gauges, their OTLP/JSON encoding and the exporter that sends them as binary frames
//! on the worker's own link (or a telemetry-only `link`). No Python here; `crate::telemetry`
//! binds it.
//!
//! NOTE: OTLP/JSON is written by hand instead of with `opentelemetry-proto` (serde), which adds
//! many crates and minutes to a clean build and encodes a span more slowly (benches/RESULTS.md,
//! "OTLP/JSON written by hand"). The `opentelemetry` SDK crates would also bring their own
//! batch processors and threads, which the exporter below replaces with one thread and bounded
//! buffers.

pub mod context;
pub mod exporter;
pub mod frame;
pub mod link;
pub mod log;
pub mod metrics;
pub mod otlp;
pub mod payload;
pub mod resource;
pub mod span;

#[cfg(test)]
mod tests;

/// Encodes `spans` copies of an invocation span into `OTLP` frames and returns the total
/// frame bytes; for `benches/codec.rs` only.
#[doc(hidden)]
pub fn bench_encode_spans(spans: usize) -> usize {
    use context::{SpanId, TraceId};
    let settings = resource::OtelSettings::resolve(resource::OtelOverrides::default(), |_| None);
    let resource = settings.resource_json();
    let scope = span::Scope { name: "iii-python-sdk".into(), version: "0".into() };
    let record = span::SpanRecord {
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        parent_span_id: Some(SpanId::random()),
        name: "execute bench::echo".into(),
        kind: span::SpanKind::Internal,
        start_unix_nano: 1_795_596_163_640_000_000,
        end_unix_nano: 1_795_596_163_640_100_000,
        // NOTE: no payload events, so the figures stay comparable with earlier runs
        // (benches/RESULTS.md); each adds its JSON text to the span.
        attributes: vec![("faas.invoked_name".into(), "bench::echo".into())],
        events: vec![],
        status: span::StatusCode::Ok,
        status_message: None,
        scope: None,
    };
    let mut scratch = Vec::new();
    let mut packer = frame::FramePacker::new(frame::Signal::Traces, &resource, 1 << 20);
    for _ in 0..spans {
        scratch.clear();
        record.encode(&mut scratch);
        packer.push(&scope, &scratch);
    }
    packer.finish().iter().map(Vec::len).sum()
}
