//! Log records (`LOGS` frames, docs/protocol.md 10.1) as the SDK `Logger` produces them.

use std::io::Write as _;
use std::sync::Arc;

use super::context::{SpanId, TraceId};
use super::otlp::{self, AnyValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Debug = 5,
    Info = 9,
    Warn = 13,
    Error = 17,
}

impl Severity {
    /// The nearest of the four levels for an OTel severity number (1-24).
    pub fn from_number(n: i64) -> Severity {
        match n {
            ..=8 => Severity::Debug,
            9..=12 => Severity::Info,
            13..=16 => Severity::Warn,
            _ => Severity::Error,
        }
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub time_unix_nano: u64,
    pub severity: Severity,
    pub body: String,
    /// The `service.name` attribute (the Logger's service name).
    pub service_name: Arc<str>,
    /// The structured `log.data`, as JSON text; turned into OTLP values when the batch is
    /// encoded, off the caller's thread.
    pub data: Option<String>,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
}

impl LogRecord {
    /// Writes the log record object (an element of `scopeLogs[].logRecords`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        otlp::write_nanos(out, "timeUnixNano", self.time_unix_nano);
        out.push(b',');
        otlp::write_nanos(out, "observedTimeUnixNano", self.time_unix_nano);
        let _ = write!(
            out,
            ",\"severityNumber\":{},\"severityText\":\"{}\",\"body\":",
            self.severity as u8,
            self.severity.text()
        );
        otlp::write_any(out, &AnyValue::Str(self.body.clone()));
        out.extend_from_slice(b",\"attributes\":[");
        otlp::write_key_value(out, "service.name", &AnyValue::Str(self.service_name.to_string()));
        if let Some(data) = &self.data {
            // Text that is not JSON (it came from our own encoder, so this is defensive) is
            // kept as a string rather than lost.
            let value = match serde_json::from_str::<serde_json::Value>(data) {
                Ok(json) => AnyValue::from_json(&json),
                Err(_) => AnyValue::Str(data.clone()),
            };
            out.push(b',');
            otlp::write_key_value(out, "log.data", &value);
        }
        out.push(b']');
        if let Some(trace) = self.trace_id {
            let _ = write!(out, ",\"traceId\":\"{:032x}\"", trace.0);
        }
        if let Some(span) = self.span_id {
            let _ = write!(out, ",\"spanId\":\"{:016x}\"", span.0);
        }
        if self.trace_id.is_some() {
            out.extend_from_slice(b",\"flags\":1");
        }
        out.push(b'}');
    }
}

#[cfg(test)]
pub(crate) fn sample_log(body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_795_596_163_640_000_000,
        severity: Severity::Info,
        body: body.into(),
        service_name: Arc::from("svc"),
        data: Some(r#"{"a":1,"b":[true,null,2.5],"c":{"d":"e"}}"#.into()),
        trace_id: Some(TraceId(0xabc)),
        span_id: Some(SpanId(0xdef)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_record_carries_severity_attributes_and_ids() {
        let mut out = Vec::new();
        sample_log("hello").encode(&mut out);
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["severityNumber"], 9);
        assert_eq!(json["severityText"], "INFO");
        assert_eq!(json["body"], serde_json::json!({"stringValue": "hello"}));
        assert_eq!(json["traceId"], format!("{:032x}", 0xabc));
        assert_eq!(json["spanId"], format!("{:016x}", 0xdef));
        let attrs = json["attributes"].as_array().unwrap();
        assert_eq!(attrs[0], serde_json::json!({"key": "service.name", "value": {"stringValue": "svc"}}));
        assert_eq!(attrs[1]["key"], "log.data");
        let data = &attrs[1]["value"]["kvlistValue"]["values"];
        assert_eq!(data[0], serde_json::json!({"key": "a", "value": {"intValue": 1}}));
        assert_eq!(
            data[1]["value"],
            serde_json::json!({"arrayValue": {"values": [{"boolValue": true}, {}, {"doubleValue": 2.5}]}})
        );
        assert_eq!(
            data[2]["value"]["kvlistValue"]["values"][0]["value"],
            serde_json::json!({"stringValue": "e"})
        );
    }

    #[test]
    fn a_log_outside_a_span_has_no_ids_and_severities_map_to_four_levels() {
        let mut record = sample_log("x");
        record.trace_id = None;
        record.span_id = None;
        record.data = None;
        let mut out = Vec::new();
        record.encode(&mut out);
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(json.get("traceId").is_none() && json.get("spanId").is_none());
        assert_eq!(json["attributes"].as_array().unwrap().len(), 1);
        let levels: Vec<u8> = [1, 5, 9, 13, 17, 24].iter().map(|n| Severity::from_number(*n) as u8).collect();
        assert_eq!(levels, [5, 5, 9, 13, 17, 17]);
    }
}
