//! Finished spans and their OTLP/JSON form (one span object; `frame` assembles the request).

use std::io::Write as _;
use std::sync::Arc;

use super::context::{SpanId, TraceId};
use super::otlp::{self, AnyValue};

/// OTLP `Span.SpanKind`. Python's `opentelemetry.trace.SpanKind` numbers the same kinds from 0
/// (INTERNAL = 0), OTLP from 1; `from_python` converts (the official SDK forgot to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    pub fn from_python(value: i64) -> SpanKind {
        match value {
            1 => SpanKind::Server,
            2 => SpanKind::Client,
            3 => SpanKind::Producer,
            4 => SpanKind::Consumer,
            _ => SpanKind::Internal,
        }
    }
}

/// OTLP `Status.StatusCode` (Python's `StatusCode` uses the same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    pub fn from_number(value: i64) -> StatusCode {
        match value {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: Vec<(String, AnyValue)>,
}

impl SpanEvent {
    /// The one `exception` event of a failed span (OTel semantic conventions).
    pub fn exception(kind: &str, message: &str, stacktrace: Option<&str>, at: u64) -> SpanEvent {
        let mut attributes = vec![
            ("exception.type".to_owned(), kind.into()),
            ("exception.message".to_owned(), message.into()),
        ];
        if let Some(stack) = stacktrace {
            attributes.push(("exception.stacktrace".to_owned(), stack.into()));
        }
        SpanEvent { name: "exception".into(), time_unix_nano: at, attributes }
    }
}

/// Who produced a span (`scopeSpans[].scope`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: Vec<(String, AnyValue)>,
    pub events: Vec<SpanEvent>,
    pub status: StatusCode,
    pub status_message: Option<String>,
    /// `None`: the SDK's own scope.
    pub scope: Option<Arc<Scope>>,
}

impl SpanRecord {
    /// Writes the span object (an element of `scopeSpans[].spans`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        otlp::write_hex_id(out, "traceId", self.trace_id.0, 32);
        out.push(b',');
        otlp::write_hex_id(out, "spanId", self.span_id.0 as u128, 16);
        if let Some(parent) = self.parent_span_id {
            out.push(b',');
            otlp::write_hex_id(out, "parentSpanId", parent.0 as u128, 16);
        }
        out.extend_from_slice(b",\"name\":");
        otlp::write_str(out, &self.name);
        let _ = write!(out, ",\"kind\":{},", self.kind as u8);
        otlp::write_nanos(out, "startTimeUnixNano", self.start_unix_nano);
        out.push(b',');
        otlp::write_nanos(out, "endTimeUnixNano", self.end_unix_nano);
        out.extend_from_slice(b",\"attributes\":");
        otlp::write_attributes(out, self.attributes.iter().map(|(k, v)| (k.as_str(), v)));
        out.extend_from_slice(b",\"events\":[");
        for (i, event) in self.events.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            otlp::write_nanos(out, "timeUnixNano", event.time_unix_nano);
            out.extend_from_slice(b",\"name\":");
            otlp::write_str(out, &event.name);
            out.extend_from_slice(b",\"attributes\":");
            otlp::write_attributes(out, event.attributes.iter().map(|(k, v)| (k.as_str(), v)));
            out.push(b'}');
        }
        let _ = write!(out, "],\"links\":[],\"status\":{{\"code\":{}", self.status as u8);
        if let Some(message) = &self.status_message {
            out.extend_from_slice(b",\"message\":");
            otlp::write_str(out, message);
        }
        out.extend_from_slice(b"}}");
    }
}

#[cfg(test)]
pub(crate) fn sample_span(name: &str) -> SpanRecord {
    SpanRecord {
        trace_id: TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736),
        span_id: SpanId(0xf067aa0ba902b7),
        parent_span_id: Some(SpanId(1)),
        name: name.into(),
        kind: SpanKind::Server,
        start_unix_nano: 1_795_596_163_640_000_000,
        end_unix_nano: 1_795_596_163_640_100_000,
        attributes: vec![("faas.invoked_name".into(), "fn::x".into())],
        events: vec![],
        status: StatusCode::Unset,
        status_message: None,
        scope: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_encodes_as_otlp_json() {
        let mut span = sample_span("call fn::x");
        span.status = StatusCode::Error;
        span.status_message = Some("boom".into());
        span.events.push(SpanEvent::exception("ValueError", "boom", Some("Traceback"), 7));
        let mut out = Vec::new();
        span.encode(&mut out);
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(json["spanId"], "00f067aa0ba902b7");
        assert_eq!(json["parentSpanId"], "0000000000000001");
        assert_eq!(json["kind"], 2);
        assert_eq!(json["startTimeUnixNano"], "1795596163640000000");
        assert_eq!(json["status"], serde_json::json!({"code": 2, "message": "boom"}));
        let events = json["events"].as_array().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["name"], "exception");
        assert_eq!(
            events[0]["attributes"][0],
            serde_json::json!({"key": "exception.type", "value": {"stringValue": "ValueError"}})
        );
    }

    #[test]
    fn a_root_span_has_no_parent_field_and_python_kinds_shift_by_one() {
        let mut span = sample_span("root");
        span.parent_span_id = None;
        let mut out = Vec::new();
        span.encode(&mut out);
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(json.get("parentSpanId").is_none());
        assert_eq!(SpanKind::from_python(0), SpanKind::Internal);
        assert_eq!(SpanKind::from_python(1) as u8, 2);
        assert_eq!(SpanKind::from_python(4) as u8, 5);
        assert_eq!(SpanKind::from_python(99), SpanKind::Internal);
    }
}
