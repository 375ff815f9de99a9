//! Telemetry the engine double receives (`OTLP` / `LOGS` / `MTRC` binary frames, docs/protocol.md
//! 10.1), stored and listed as engine v0.11.0's memory exporter does: `engine::traces::*`,
//! `engine::logs::*`, `engine::metrics::list`, the `log` trigger type and the workers'
//! `latest_metrics` (docs/protocol.md 6.2). Shapes follow the engine's observability module.
//! The engine's own invocation counters are not kept here: `engine_metrics.invocations` and
//! `.workers` are zeros.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::reply::{not_found, now_ms, Outcome};
use super::state::{Binding, Engine};
use super::telemetry_store::{
    now_ns, parse_logs, parse_metrics, parse_spans, StoredLog, StoredMetric, StoredSpan,
};
use super::triggers::{self, LOG_TRIGGER_TYPE};
use iii_protocol::ErrorBody;

/// `latest_metrics` looks this far back (the engine: 2 minutes).
const METRICS_LOOKBACK_NS: u64 = 120_000_000_000;

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
            engine.observability.lock().push_spans(spans);
        }
        b"LOGS" => {
            let logs = parse_logs(&request);
            for log in &logs {
                fire_log_triggers(engine, log);
            }
            engine.observability.lock().push_logs(logs);
        }
        b"MTRC" => match parse_metrics(&request) {
            Ok(metrics) => engine.observability.lock().push_metrics(metrics),
            Err(e) => engine.log(format!("MTRC frame dropped: {e}")),
        },
        _ => {}
    }
}

fn fire_log_triggers(engine: &Arc<Engine>, log: &StoredLog) {
    let level = log.severity_text.to_lowercase();
    let functions: Vec<String> = {
        let state = engine.state.lock();
        let mut bound: Vec<(&String, &Binding)> = state
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
    tokio::spawn(async move { triggers::notify(&engine, functions, &payload).await });
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
        _ => return Err(not_found(function_id)),
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
