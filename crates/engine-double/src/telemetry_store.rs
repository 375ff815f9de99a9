//! What the engine double keeps of the telemetry it receives: spans, logs and metrics parsed
//! from `OTLP` / `LOGS` / `MTRC` frames (docs/protocol.md 10.1), bounded like the engine's memory
//! exporter.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::reply::now_ms;

const MAX_SPANS: usize = 10_000;
const MAX_LOGS: usize = 10_000;
const MAX_METRICS: usize = 10_000;

#[derive(Default)]
pub(crate) struct Store {
    pub(crate) spans: VecDeque<StoredSpan>,
    pub(crate) logs: VecDeque<StoredLog>,
    pub(crate) metrics: VecDeque<StoredMetric>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoredSpanEvent {
    pub(crate) name: String,
    pub(crate) timestamp_unix_nano: u64,
    pub(crate) attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoredSpan {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) parent_span_id: Option<String>,
    pub(crate) name: String,
    pub(crate) start_time_unix_nano: u64,
    pub(crate) end_time_unix_nano: u64,
    pub(crate) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status_description: Option<String>,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) service_name: String,
    pub(crate) events: Vec<StoredSpanEvent>,
    pub(crate) links: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instrumentation_scope_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instrumentation_scope_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) flags: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoredLog {
    pub(crate) timestamp_unix_nano: u64,
    pub(crate) observed_timestamp_unix_nano: u64,
    pub(crate) severity_number: i64,
    pub(crate) severity_text: String,
    pub(crate) body: String,
    pub(crate) attributes: Map<String, Value>,
    pub(crate) trace_id: Option<String>,
    pub(crate) span_id: Option<String>,
    pub(crate) resource: HashMap<String, String>,
    pub(crate) service_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instrumentation_scope_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instrumentation_scope_version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoredNumberPoint {
    pub(crate) value: f64,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) timestamp_unix_nano: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoredMetric {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) unit: String,
    pub(crate) metric_type: &'static str,
    pub(crate) data_points: Vec<Value>,
    pub(crate) service_name: String,
    pub(crate) timestamp_unix_nano: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instrumentation_scope_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) instrumentation_scope_version: Option<String>,
    /// Number points, for `latest_metrics`.
    #[serde(skip)]
    pub(crate) numbers: Vec<StoredNumberPoint>,
}

pub(crate) fn now_ns() -> u64 {
    now_ms() * 1_000_000
}

/// A 64-bit OTLP field: a number or a decimal string.
fn u64_of(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// An OTLP `AnyValue` as JSON: structure kept, an empty value is null.
fn any_json(v: &Value) -> Value {
    if let Some(s) = v.get("stringValue") {
        return s.clone();
    }
    if let Some(i) = v.get("intValue") {
        return match i {
            Value::String(s) => s.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
            other => other.clone(),
        };
    }
    if let Some(d) = v.get("doubleValue") {
        return d.clone();
    }
    if let Some(b) = v.get("boolValue") {
        return b.clone();
    }
    if let Some(kv) = v.get("kvlistValue") {
        return Value::Object(kv_map(&kv["values"]));
    }
    if let Some(arr) = v.get("arrayValue") {
        return Value::Array(
            arr["values"].as_array().map(|a| a.iter().map(any_json).collect()).unwrap_or_default(),
        );
    }
    Value::Null
}

/// An OTLP `AnyValue` as the engine's attribute string (nested values as JSON text).
fn any_string(v: &Value) -> String {
    match any_json(v) {
        Value::String(s) => s,
        Value::Null => String::new(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if v.get("doubleValue").is_some() => f.to_string(),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn kv_map(list: &Value) -> Map<String, Value> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter(|kv| kv.get("value").is_some())
                .map(|kv| (str_of(&kv["key"]), any_json(&kv["value"])))
                .collect()
        })
        .unwrap_or_default()
}

fn kv_pairs(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter(|kv| kv.get("value").is_some())
                .map(|kv| (str_of(&kv["key"]), any_string(&kv["value"])))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn service_name(resource: &Value) -> String {
    kv_pairs(&resource["attributes"])
        .into_iter()
        .find(|(k, _)| k == "service.name")
        .map_or_else(|| "unknown".into(), |(_, v)| v)
}

fn scope_of(group: &Value) -> (Option<String>, Option<String>) {
    let field = |k: &str| group["scope"][k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    (field("name"), field("version"))
}

fn non_zero_id(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty() && !s.bytes().all(|b| b == b'0')).map(str::to_owned)
}

impl Store {
    pub(crate) fn push_spans(&mut self, spans: Vec<StoredSpan>) {
        push_bounded(&mut self.spans, spans, MAX_SPANS);
    }

    pub(crate) fn push_logs(&mut self, logs: Vec<StoredLog>) {
        push_bounded(&mut self.logs, logs, MAX_LOGS);
    }

    pub(crate) fn push_metrics(&mut self, metrics: Vec<StoredMetric>) {
        push_bounded(&mut self.metrics, metrics, MAX_METRICS);
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, items: impl IntoIterator<Item = T>, max: usize) {
    for item in items {
        if queue.len() >= max {
            queue.pop_front();
        }
        queue.push_back(item);
    }
}

pub(crate) fn parse_spans(request: &Value) -> Vec<StoredSpan> {
    let mut out = Vec::new();
    for rs in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = service_name(&rs["resource"]);
        for group in rs["scopeSpans"].as_array().into_iter().flatten() {
            let (scope_name, scope_version) = scope_of(group);
            for span in group["spans"].as_array().into_iter().flatten() {
                let (status, status_description) = match span["status"]["code"].as_u64() {
                    Some(1) => ("ok", None),
                    Some(2) => (
                        "error",
                        span["status"]["message"].as_str().filter(|m| !m.is_empty()).map(str::to_owned),
                    ),
                    _ => ("unset", None),
                };
                let events = span["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| StoredSpanEvent {
                        name: str_of(&e["name"]),
                        timestamp_unix_nano: u64_of(&e["timeUnixNano"]),
                        attributes: kv_pairs(&e["attributes"]),
                    })
                    .collect();
                out.push(StoredSpan {
                    trace_id: str_of(&span["traceId"]),
                    span_id: str_of(&span["spanId"]),
                    parent_span_id: non_zero_id(&span["parentSpanId"]),
                    name: str_of(&span["name"]),
                    start_time_unix_nano: u64_of(&span["startTimeUnixNano"]),
                    end_time_unix_nano: u64_of(&span["endTimeUnixNano"]),
                    status: status.into(),
                    status_description,
                    attributes: kv_pairs(&span["attributes"]),
                    service_name: service.clone(),
                    events,
                    links: Vec::new(),
                    instrumentation_scope_name: scope_name.clone(),
                    instrumentation_scope_version: scope_version.clone(),
                    flags: span["flags"].as_u64().map(|f| f as u32),
                });
            }
        }
    }
    out
}

pub(crate) fn parse_logs(request: &Value) -> Vec<StoredLog> {
    let mut out = Vec::new();
    for rl in request["resourceLogs"].as_array().into_iter().flatten() {
        let service = service_name(&rl["resource"]);
        let resource: HashMap<String, String> = kv_pairs(&rl["resource"]["attributes"]).into_iter().collect();
        for group in rl["scopeLogs"].as_array().into_iter().flatten() {
            let (scope_name, scope_version) = scope_of(group);
            for r in group["logRecords"].as_array().into_iter().flatten() {
                out.push(StoredLog {
                    timestamp_unix_nano: u64_of(&r["timeUnixNano"]),
                    observed_timestamp_unix_nano: u64_of(&r["observedTimeUnixNano"]),
                    severity_number: r["severityNumber"].as_i64().unwrap_or(0),
                    severity_text: str_of(&r["severityText"]),
                    body: r.get("body").map(any_string).unwrap_or_default(),
                    attributes: kv_map(&r["attributes"]),
                    trace_id: non_zero_id(&r["traceId"]),
                    span_id: non_zero_id(&r["spanId"]),
                    resource: resource.clone(),
                    service_name: service.clone(),
                    instrumentation_scope_name: scope_name.clone(),
                    instrumentation_scope_version: scope_version.clone(),
                });
            }
        }
    }
    out
}

/// Like the engine, an `asInt` that is not a number makes the whole frame fail.
pub(crate) fn parse_metrics(request: &Value) -> Result<Vec<StoredMetric>, String> {
    let now = now_ns();
    let mut out = Vec::new();
    for rm in request["resourceMetrics"].as_array().into_iter().flatten() {
        let service = service_name(&rm["resource"]);
        for group in rm["scopeMetrics"].as_array().into_iter().flatten() {
            let (scope_name, scope_version) = scope_of(group);
            for m in group["metrics"].as_array().into_iter().flatten() {
                let (metric_type, points) = if let Some(g) = m.get("gauge") {
                    ("gauge", &g["dataPoints"])
                } else if let Some(s) = m.get("sum") {
                    (
                        if s["isMonotonic"].as_bool().unwrap_or(false) { "counter" } else { "updowncounter" },
                        &s["dataPoints"],
                    )
                } else if let Some(h) = m.get("histogram") {
                    ("histogram", &h["dataPoints"])
                } else {
                    continue;
                };
                let mut numbers = Vec::new();
                let mut data_points = Vec::new();
                for p in points.as_array().into_iter().flatten() {
                    let attributes = kv_pairs(&p["attributes"]);
                    let timestamp_unix_nano = u64_of(&p["timeUnixNano"]);
                    if metric_type == "histogram" {
                        data_points.push(json!({
                            "count": u64_of(&p["count"]), "sum": p["sum"].as_f64().unwrap_or(0.0),
                            "bucket_counts": p["bucketCounts"].as_array().map(|a| a.iter().map(u64_of).collect::<Vec<_>>()).unwrap_or_default(),
                            "explicit_bounds": p["explicitBounds"].clone(), "min": p["min"].clone(), "max": p["max"].clone(),
                            "attributes": attributes, "timestamp_unix_nano": timestamp_unix_nano,
                        }));
                        continue;
                    }
                    let value = match (p.get("asDouble"), p.get("asInt")) {
                        (Some(d), _) => d.as_f64().ok_or("asDouble is not a number")?,
                        (None, Some(Value::Number(n))) => n.as_i64().ok_or("asInt out of range")? as f64,
                        (None, Some(other)) => {
                            return Err(format!("invalid type: {other}, expected i64 for asInt"))
                        }
                        (None, None) => 0.0,
                    };
                    let point = StoredNumberPoint { value, attributes, timestamp_unix_nano };
                    data_points.push(serde_json::to_value(&point).unwrap_or_default());
                    numbers.push(point);
                }
                out.push(StoredMetric {
                    name: str_of(&m["name"]),
                    description: str_of(&m["description"]),
                    unit: str_of(&m["unit"]),
                    metric_type,
                    data_points,
                    service_name: service.clone(),
                    timestamp_unix_nano: now,
                    instrumentation_scope_name: scope_name.clone(),
                    instrumentation_scope_version: scope_version.clone(),
                    numbers,
                });
            }
        }
    }
    Ok(out)
}
