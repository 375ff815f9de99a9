//! Telemetry the engine double receives (`OTLP` / `LOGS` / `MTRC` binary frames, protocol.md
//! 10.1), stored and listed as engine v0.11.0's memory exporter does: `engine::traces::*`,
//! `engine::logs::*`, `engine::metrics::list`, the `log` trigger type and the workers'
//! `latest_metrics` (protocol.md 6.2). Shapes follow the engine's observability module.
//! The engine's own invocation counters are not kept here: `engine_metrics.invocations` and
//! `.workers` are zeros.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::routing::Outcome;
use super::state::{now_ms, Engine};
use crate::protocol::ErrorBody;

const MAX_SPANS: usize = 10_000;
const MAX_LOGS: usize = 10_000;
const MAX_METRICS: usize = 10_000;
/// `latest_metrics` looks this far back (the engine: 2 minutes).
const METRICS_LOOKBACK_NS: u64 = 120_000_000_000;

pub(crate) const LOG_TRIGGER_TYPE: &str = "log";

const FUNCTIONS: [&str; 6] = [
    "engine::traces::list",
    "engine::traces::tree",
    "engine::traces::clear",
    "engine::logs::list",
    "engine::logs::clear",
    "engine::metrics::list",
];

pub(crate) fn is_observability_function(function_id: &str) -> bool {
    FUNCTIONS.contains(&function_id)
}

#[derive(Default)]
pub(crate) struct Store {
    spans: VecDeque<StoredSpan>,
    logs: VecDeque<StoredLog>,
    metrics: VecDeque<StoredMetric>,
}

#[derive(Debug, Clone, Serialize)]
struct StoredSpanEvent {
    name: String,
    timestamp_unix_nano: u64,
    attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
struct StoredSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    name: String,
    start_time_unix_nano: u64,
    end_time_unix_nano: u64,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_description: Option<String>,
    attributes: Vec<(String, String)>,
    service_name: String,
    events: Vec<StoredSpanEvent>,
    links: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instrumentation_scope_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instrumentation_scope_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
struct StoredLog {
    timestamp_unix_nano: u64,
    observed_timestamp_unix_nano: u64,
    severity_number: i64,
    severity_text: String,
    body: String,
    attributes: Map<String, Value>,
    trace_id: Option<String>,
    span_id: Option<String>,
    resource: HashMap<String, String>,
    service_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    instrumentation_scope_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instrumentation_scope_version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct StoredNumberPoint {
    value: f64,
    attributes: Vec<(String, String)>,
    timestamp_unix_nano: u64,
}

#[derive(Debug, Clone, Serialize)]
struct StoredMetric {
    name: String,
    description: String,
    unit: String,
    metric_type: &'static str,
    data_points: Vec<Value>,
    service_name: String,
    timestamp_unix_nano: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    instrumentation_scope_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instrumentation_scope_version: Option<String>,
    /// Number points, for `latest_metrics`.
    #[serde(skip)]
    numbers: Vec<StoredNumberPoint>,
}

fn now_ns() -> u64 {
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

fn service_name(resource: &Value) -> String {
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

fn push_bounded<T>(queue: &mut VecDeque<T>, items: impl IntoIterator<Item = T>, max: usize) {
    for item in items {
        if queue.len() >= max {
            queue.pop_front();
        }
        queue.push_back(item);
    }
}

/// Stores one binary telemetry frame. Frames that do not parse are logged and dropped, as
/// the engine does (it sends no reply).
pub(crate) fn ingest(engine: &Arc<Engine>, frame: &[u8]) {
    let (prefix, body) = frame.split_at(4.min(frame.len()));
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            engine.log(format!("telemetry frame {} dropped: {e}", String::from_utf8_lossy(prefix)));
            return;
        }
    };
    match prefix {
        b"OTLP" => {
            let spans = parse_spans(&request);
            push_bounded(&mut engine.observability.lock().spans, spans, MAX_SPANS);
        }
        b"LOGS" => {
            let logs = parse_logs(&request);
            for log in &logs {
                fire_log_triggers(engine, log);
            }
            push_bounded(&mut engine.observability.lock().logs, logs, MAX_LOGS);
        }
        b"MTRC" => match parse_metrics(&request) {
            Ok(metrics) => push_bounded(&mut engine.observability.lock().metrics, metrics, MAX_METRICS),
            Err(e) => engine.log(format!("MTRC frame dropped: {e}")),
        },
        _ => {}
    }
}

fn parse_spans(request: &Value) -> Vec<StoredSpan> {
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

fn parse_logs(request: &Value) -> Vec<StoredLog> {
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
fn parse_metrics(request: &Value) -> Result<Vec<StoredMetric>, String> {
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

fn fire_log_triggers(engine: &Arc<Engine>, log: &StoredLog) {
    let level = log.severity_text.to_lowercase();
    let functions: Vec<String> = {
        let state = engine.state.lock();
        let mut bound: Vec<(&String, &super::state::Binding)> = state
            .triggers
            .iter()
            .filter(|(_, b)| b.trigger_type == LOG_TRIGGER_TYPE)
            .filter(|(_, b)| {
                let config: Value =
                    b.config.as_deref().and_then(|c| serde_json::from_str(c.get()).ok()).unwrap_or_default();
                let wanted = config["level"].as_str().unwrap_or("all");
                wanted == "all" || wanted == level
            })
            .collect();
        bound.sort_by_key(|(id, _)| *id);
        bound.into_iter().map(|(_, b)| b.function_id.clone()).collect()
    };
    if functions.is_empty() {
        return;
    }
    let payload = serde_json::to_string(log).unwrap_or_default();
    let engine = engine.clone();
    tokio::spawn(async move { super::triggers::notify(&engine, functions, &payload).await });
}

/// The `latest_metrics` of a worker's listing entry: its newest `iii.worker.*` gauges from
/// the last two minutes, or `None`.
pub(crate) fn latest_metrics(engine: &Engine, worker_id: &str) -> Option<Value> {
    let store = engine.observability.lock();
    let since = now_ns().saturating_sub(METRICS_LOOKBACK_NS);
    let mut fields = Map::new();
    let mut newest = 0;
    for (name, field, integer) in [
        ("iii.worker.memory.heap_used", "memory_heap_used", true),
        ("iii.worker.memory.heap_total", "memory_heap_total", true),
        ("iii.worker.memory.rss", "memory_rss", true),
        ("iii.worker.memory.external", "memory_external", true),
        ("iii.worker.cpu.percent", "cpu_percent", false),
        ("iii.worker.cpu.user_micros", "cpu_user_micros", true),
        ("iii.worker.cpu.system_micros", "cpu_system_micros", true),
        ("iii.worker.event_loop.lag_ms", "event_loop_lag_ms", false),
        ("iii.worker.uptime_seconds", "uptime_seconds", true),
    ] {
        let point = store
            .metrics
            .iter()
            .rev()
            .filter(|m| m.name == name && m.timestamp_unix_nano >= since)
            .flat_map(|m| m.numbers.iter())
            .find(|p| p.attributes.iter().any(|(k, v)| k == "worker.id" && v == worker_id));
        if let Some(p) = point {
            newest = newest.max(p.timestamp_unix_nano);
            let value = if integer { Value::from(p.value as u64) } else { json!(p.value) };
            fields.insert(field.into(), value);
        }
    }
    if fields.is_empty() {
        return None;
    }
    fields.insert("timestamp_ms".into(), Value::from(newest / 1_000_000));
    // Engine v0.11.0 reports every worker's metrics as coming from the Node SDK.
    fields.insert("runtime".into(), Value::from("node"));
    Some(Value::Object(fields))
}

#[derive(Deserialize, Default)]
struct TracesListInput {
    trace_id: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
    service_name: Option<String>,
    name: Option<String>,
    status: Option<String>,
    min_duration_ms: Option<f64>,
    max_duration_ms: Option<f64>,
    start_time: Option<u64>,
    end_time: Option<u64>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    attributes: Option<Vec<Vec<String>>>,
    include_internal: Option<bool>,
    search_all_spans: Option<bool>,
}

#[derive(Deserialize)]
struct TracesTreeInput {
    trace_id: String,
}

#[derive(Deserialize, Default)]
struct LogsListInput {
    start_time: Option<u64>,
    end_time: Option<u64>,
    trace_id: Option<String>,
    span_id: Option<String>,
    severity_min: Option<i64>,
    severity_text: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

#[derive(Deserialize, Default)]
struct MetricsListInput {
    start_time: Option<u64>,
    end_time: Option<u64>,
    metric_name: Option<String>,
    aggregate_interval: Option<u64>,
}

fn input<T: for<'de> Deserialize<'de> + Default>(function_id: &str, text: &str) -> Result<T, ErrorBody> {
    if text.trim() == "null" {
        return Ok(T::default());
    }
    serde_json::from_str(text).map_err(|e| {
        ErrorBody::new("deserialization_error", format!("Failed to deserialize input for {function_id}: {e}"))
    })
}

/// Answers one of `FUNCTIONS`.
pub(crate) fn call(engine: &Engine, function_id: &str, text: &str) -> Outcome {
    let value = match function_id {
        "engine::traces::list" => traces_list(engine, input(function_id, text)?),
        "engine::traces::tree" => {
            let input: TracesTreeInput = serde_json::from_str(text).map_err(|e| {
                ErrorBody::new(
                    "deserialization_error",
                    format!("Failed to deserialize input for {function_id}: {e}"),
                )
            })?;
            traces_tree(engine, &input.trace_id)
        }
        "engine::traces::clear" => {
            engine.observability.lock().spans.clear();
            json!({"success": true})
        }
        "engine::logs::list" => logs_list(engine, input(function_id, text)?),
        "engine::logs::clear" => {
            engine.observability.lock().logs.clear();
            json!({"success": true})
        }
        "engine::metrics::list" => metrics_list(engine, input(function_id, text)?),
        _ => return Err(super::routing::not_found(function_id)),
    };
    serde_json::value::to_raw_value(&value)
        .map(Some)
        .map_err(|e| ErrorBody::new("serialization_error", e.to_string()))
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn traces_list(engine: &Engine, q: TracesListInput) -> Value {
    let store = engine.observability.lock();
    let spans: Vec<&StoredSpan> =
        store.spans.iter().filter(|s| q.trace_id.as_ref().is_none_or(|t| &s.trace_id == t)).collect();
    let name_matched: Option<std::collections::HashSet<&str>> =
        match (&q.name, q.search_all_spans.unwrap_or(false)) {
            (Some(name), true) => Some(
                spans.iter().filter(|s| contains_ci(&s.name, name)).map(|s| s.trace_id.as_str()).collect(),
            ),
            _ => None,
        };
    let mut roots: Vec<&StoredSpan> = spans
        .into_iter()
        .filter(|s| s.parent_span_id.is_none())
        .filter(|s| {
            q.include_internal.unwrap_or(false)
                || !s.attributes.iter().any(|(k, v)| {
                    (k == "iii.function.kind" && v == "internal")
                        || (k == "function_id" && v.starts_with("engine::"))
                })
        })
        .filter(|s| q.service_name.as_ref().is_none_or(|n| contains_ci(&s.service_name, n)))
        .filter(|s| match (&q.name, &name_matched) {
            (_, Some(traces)) => traces.contains(s.trace_id.as_str()),
            (Some(n), None) => contains_ci(&s.name, n),
            (None, None) => true,
        })
        .filter(|s| q.status.as_ref().is_none_or(|st| contains_ci(&s.status, st)))
        .filter(|s| {
            let ms = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as f64 / 1e6;
            q.min_duration_ms.is_none_or(|m| ms >= m) && q.max_duration_ms.is_none_or(|m| ms <= m)
        })
        .filter(|s| q.start_time.is_none_or(|t| s.end_time_unix_nano >= t.saturating_mul(1_000_000)))
        .filter(|s| q.end_time.is_none_or(|t| s.start_time_unix_nano <= t.saturating_mul(1_000_000)))
        .filter(|s| {
            q.attributes
                .iter()
                .flatten()
                .filter(|p| p.len() == 2)
                .all(|p| s.attributes.iter().any(|(k, v)| *k == p[0] && *v == p[1]))
        })
        .collect();
    let asc = q.sort_order.as_deref().is_none_or(|o| o.eq_ignore_ascii_case("asc"));
    roots.sort_by(|a, b| {
        let dur = |s: &StoredSpan| s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
        let ord = match q.sort_by.as_deref().unwrap_or("start_time") {
            "duration" => dur(a).cmp(&dur(b)),
            "name" => a.name.cmp(&b.name),
            _ => a.start_time_unix_nano.cmp(&b.start_time_unix_nano),
        };
        if asc {
            ord
        } else {
            ord.reverse()
        }
    });
    let (offset, limit) = (q.offset.unwrap_or(0), q.limit.unwrap_or(100));
    let total = roots.len();
    let page: Vec<&StoredSpan> = roots.into_iter().skip(offset).take(limit).collect();
    json!({"spans": page, "total": total, "offset": offset, "limit": limit})
}

fn traces_tree(engine: &Engine, trace_id: &str) -> Value {
    let store = engine.observability.lock();
    let spans: Vec<&StoredSpan> = store.spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let mut children: HashMap<&str, Vec<&StoredSpan>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        match &span.parent_span_id {
            Some(parent) => children.entry(parent.as_str()).or_default().push(span),
            None => roots.push(span),
        }
    }
    fn node(span: &StoredSpan, children: &mut HashMap<&str, Vec<&StoredSpan>>, depth: usize) -> Value {
        let mut value = serde_json::to_value(span).unwrap_or_default();
        let kids =
            if depth > 256 { Vec::new() } else { children.remove(span.span_id.as_str()).unwrap_or_default() };
        value["children"] = Value::Array(kids.into_iter().map(|k| node(k, children, depth + 1)).collect());
        value
    }
    let roots: Vec<Value> = roots.into_iter().map(|r| node(r, &mut children, 0)).collect();
    json!({"roots": roots})
}

fn logs_list(engine: &Engine, q: LogsListInput) -> Value {
    let store = engine.observability.lock();
    let (start_ns, end_ns) =
        (q.start_time.map(|t| t.saturating_mul(1_000_000)), q.end_time.map(|t| t.saturating_mul(1_000_000)));
    let mut logs: Vec<&StoredLog> = store
        .logs
        .iter()
        .filter(|l| q.trace_id.as_ref().is_none_or(|t| l.trace_id.as_ref() == Some(t)))
        .filter(|l| q.span_id.as_ref().is_none_or(|s| l.span_id.as_ref() == Some(s)))
        .filter(|l| q.severity_min.is_none_or(|m| l.severity_number >= m))
        .filter(|l| q.severity_text.as_ref().is_none_or(|t| l.severity_text.eq_ignore_ascii_case(t)))
        .filter(|l| start_ns.is_none_or(|s| l.timestamp_unix_nano >= s))
        .filter(|l| end_ns.is_none_or(|e| l.timestamp_unix_nano <= e))
        .collect();
    logs.sort_by_key(|l| std::cmp::Reverse(l.timestamp_unix_nano));
    let total = logs.len();
    let page: Vec<&StoredLog> =
        logs.into_iter().skip(q.offset.unwrap_or(0)).take(q.limit.unwrap_or(usize::MAX)).collect();
    json!({
        "logs": page, "total": total,
        "query": {"trace_id": q.trace_id, "span_id": q.span_id, "severity_min": q.severity_min,
                  "severity_text": q.severity_text, "start_time": q.start_time, "end_time": q.end_time,
                  "offset": q.offset, "limit": q.limit},
        "timestamp": now_ms(),
    })
}

fn metrics_list(engine: &Engine, q: MetricsListInput) -> Value {
    let (perf, sdk_metrics) = {
        let store = engine.observability.lock();
        let mut durations: Vec<f64> = store
            .spans
            .iter()
            .map(|s| s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as f64 / 1e6)
            .collect();
        durations.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            durations.get(((durations.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
        };
        let avg =
            if durations.is_empty() { 0.0 } else { durations.iter().sum::<f64>() / durations.len() as f64 };
        let perf = json!({
            "avg_duration_ms": avg, "p50_duration_ms": pct(0.5), "p95_duration_ms": pct(0.95),
            "p99_duration_ms": pct(0.99), "min_duration_ms": durations.first().copied().unwrap_or(0.0),
            "max_duration_ms": durations.last().copied().unwrap_or(0.0),
        });
        let range = match (q.start_time, q.end_time) {
            (Some(s), Some(e)) => Some((s.saturating_mul(1_000_000), e.saturating_mul(1_000_000))),
            _ => None,
        };
        let metrics: Vec<StoredMetric> = store
            .metrics
            .iter()
            .filter(|m| q.metric_name.as_ref().is_none_or(|n| &m.name == n))
            .filter(|m| range.is_none_or(|(s, e)| m.timestamp_unix_nano >= s && m.timestamp_unix_nano <= e))
            .cloned()
            .collect();
        (perf, metrics)
    };
    let mut out = json!({
        "engine_metrics": {
            "invocations": {"total": 0, "success": 0, "error": 0, "deferred": 0, "by_function": {}},
            "workers": {"spawns": 0, "deaths": 0, "active": 0},
            "performance": perf,
        },
        "sdk_metrics": sdk_metrics,
        "timestamp": now_ms(),
    });
    if q.start_time.is_some() || q.end_time.is_some() || q.aggregate_interval.is_some() {
        out["query"] = json!({"start_time": q.start_time, "end_time": q.end_time,
                              "aggregate_interval": q.aggregate_interval, "metric_name": q.metric_name});
    }
    out
}
