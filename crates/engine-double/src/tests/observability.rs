//! Telemetry frames into the double and out of its observability listings.

use std::sync::Arc;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::*;
use iii_core::telemetry::context::{SpanId, TraceId};
use iii_core::telemetry::frame::{FramePacker, Signal};
use iii_core::telemetry::log::{LogRecord, Severity};
use iii_core::telemetry::metrics::ProcessSampler;
use iii_core::telemetry::resource::{OtelOverrides, OtelSettings};
use iii_core::telemetry::span::{Scope, SpanEvent, SpanKind, SpanRecord, StatusCode};

fn frame(signal: Signal, items: &[Vec<u8>]) -> Vec<u8> {
    let settings = OtelSettings::resolve(
        OtelOverrides { service_name: Some("svc-a".into()), ..Default::default() },
        |_| None,
    );
    let resource = settings.resource_json();
    let scope = Scope { name: "iii-python-sdk".into(), version: "0".into() };
    let mut packer = FramePacker::new(signal, &resource, 1 << 20);
    for item in items {
        assert!(packer.push(&scope, item));
    }
    let mut frames = packer.finish();
    assert_eq!(frames.len(), 1);
    frames.remove(0)
}

fn span(trace: u128, id: u64, parent: Option<u64>, name: &str, start: u64) -> SpanRecord {
    SpanRecord {
        trace_id: TraceId(trace),
        span_id: SpanId(id),
        parent_span_id: parent.map(SpanId),
        name: name.into(),
        kind: SpanKind::Server,
        start_unix_nano: start,
        end_unix_nano: start + 2_000_000,
        attributes: vec![("function_id".into(), name.trim_start_matches("call ").into())],
        events: vec![],
        status: StatusCode::Ok,
        status_message: None,
        scope: None,
    }
}

fn encoded<T>(items: &[T], encode: impl Fn(&T, &mut Vec<u8>)) -> Vec<Vec<u8>> {
    items
        .iter()
        .map(|i| {
            let mut out = Vec::new();
            encode(i, &mut out);
            out
        })
        .collect()
}

impl Client {
    async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(WsMessage::Binary(bytes.into())).await.expect("send");
    }

    async fn result(&mut self, function_id: &str, data: Value) -> Value {
        let res = self.call(function_id, data).await;
        assert!(res.get("error").is_none(), "{res}");
        res["result"].clone()
    }
}

#[tokio::test]
async fn spans_are_listed_as_root_traces_and_trees() {
    let engine = engine().await;
    let mut c = Client::connect(&engine).await;
    let trace = 0xabcdef;
    let mut failed = span(trace, 3, Some(2), "call c::f", 300);
    failed.status = StatusCode::Error;
    failed.status_message = Some("boom".into());
    failed.events.push(SpanEvent::exception("ValueError", "boom", None, 301));
    let spans = [
        span(trace, 1, None, "call a::f", 100),
        span(trace, 2, Some(1), "call b::f", 200),
        failed,
        span(7, 9, None, "call engine::x", 50),
    ];
    c.send_binary(frame(Signal::Traces, &encoded(&spans, SpanRecord::encode))).await;

    let list = c.result("engine::traces::list", json!({})).await;
    assert_eq!(list["total"], 1, "only roots, engine functions hidden: {list}");
    let root = &list["spans"][0];
    assert_eq!(root["trace_id"], format!("{trace:032x}"));
    assert_eq!(root["name"], "call a::f");
    assert_eq!(root["parent_span_id"], Value::Null);
    assert_eq!(root["service_name"], "svc-a");
    assert_eq!(root["status"], "ok");
    assert_eq!(root["attributes"][0], json!(["function_id", "a::f"]));
    assert_eq!((list["offset"].clone(), list["limit"].clone()), (json!(0), json!(100)));
    let all = c.result("engine::traces::list", json!({"include_internal": true})).await;
    assert_eq!(all["total"], 2);

    let tree = c.result("engine::traces::tree", json!({"trace_id": format!("{trace:032x}")})).await;
    let a = &tree["roots"][0];
    let b = &a["children"][0];
    let leaf = &b["children"][0];
    assert_eq!(
        (a["name"].as_str(), b["name"].as_str(), leaf["name"].as_str()),
        (Some("call a::f"), Some("call b::f"), Some("call c::f"))
    );
    assert_eq!(leaf["status"], "error");
    assert_eq!(leaf["status_description"], "boom");
    assert_eq!(leaf["events"][0]["name"], "exception");
    assert_eq!(leaf["events"][0]["attributes"][0], json!(["exception.type", "ValueError"]));

    let err = c.call("engine::traces::tree", json!({})).await;
    assert_eq!(err["error"]["code"], "deserialization_error");
    assert_eq!(c.result("engine::traces::clear", json!({})).await, json!({"success": true}));
    assert_eq!(c.result("engine::traces::list", json!({})).await["total"], 0);
}

fn log(body: &str, severity: Severity, data: Option<&str>, trace: Option<u128>, at: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: at,
        severity,
        body: body.into(),
        service_name: Arc::from("orders"),
        data: data.map(str::to_owned),
        trace_id: trace.map(TraceId),
        span_id: trace.map(|_| SpanId(5)),
    }
}

#[tokio::test]
async fn logs_keep_structured_data_and_fire_log_triggers() {
    let engine = engine().await;
    let mut c = Client::connect(&engine).await;
    c.register("on::error").await;
    c.send(json!({"type": "registertrigger", "id": "t1", "trigger_type": "log", "function_id": "on::error", "config": {"level": "error"}})).await;
    until("log trigger", || !engine.trigger_ids().is_empty()).await;
    let records = [
        log("first", Severity::Info, Some(r#"{"a":1,"b":[true,null,1.5],"c":{"d":"e"}}"#), Some(0x77), 1_000),
        log("second", Severity::Error, None, None, 2_000),
    ];
    c.send_binary(frame(Signal::Logs, &encoded(&records, LogRecord::encode))).await;

    let fired = c.recv().await;
    assert_eq!(fired["type"], "invokefunction");
    assert_eq!(fired["function_id"], "on::error");
    assert_eq!(fired["data"]["body"], "second");
    assert_eq!(fired["data"]["severity_text"], "ERROR");
    c.reply(&fired, json!(null)).await;

    let listed = c.result("engine::logs::list", json!({})).await;
    assert_eq!(listed["total"], 2);
    let newest_first: Vec<&str> =
        listed["logs"].as_array().unwrap().iter().map(|l| l["body"].as_str().unwrap()).collect();
    assert_eq!(newest_first, ["second", "first"]);
    let first = &listed["logs"][1];
    assert_eq!(first["severity_number"], 9);
    assert_eq!(first["attributes"]["service.name"], "orders");
    assert_eq!(first["attributes"]["log.data"], json!({"a": 1, "b": [true, null, 1.5], "c": {"d": "e"}}));
    assert_eq!(first["trace_id"], format!("{:032x}", 0x77));
    assert_eq!(first["resource"]["service.name"], "svc-a");
    assert_eq!(listed["logs"][0]["trace_id"], Value::Null);

    let by_trace = c.result("engine::logs::list", json!({"trace_id": format!("{:032x}", 0x77)})).await;
    assert_eq!(by_trace["total"], 1);
    let errors = c.result("engine::logs::list", json!({"severity_min": 17})).await;
    assert_eq!(errors["total"], 1);
}

#[tokio::test]
async fn worker_gauges_fill_latest_metrics_and_string_integers_are_rejected() {
    let engine = engine().await;
    let mut c = Client::connect(&engine).await;
    let listing = c.result("engine::workers::list", json!({"worker_id": c.id})).await;
    assert_eq!(listing["workers"][0]["latest_metrics"], Value::Null);

    let gauges = ProcessSampler::new().sample(&c.id, Some(3.5));
    c.send_binary(frame(Signal::Metrics, &encoded(&[gauges], |g, out| g.encode(out)))).await;
    let listing = c.result("engine::workers::list", json!({"worker_id": c.id})).await;
    let m = &listing["workers"][0]["latest_metrics"];
    assert!(m["memory_rss"].as_u64().unwrap() > 0, "{m}");
    assert!(m["cpu_user_micros"].is_u64());
    assert_eq!(m["event_loop_lag_ms"], 3.5);
    assert_eq!(m["runtime"], "node");
    assert!(m["timestamp_ms"].as_u64().unwrap() > 0);

    let listed = c.result("engine::metrics::list", json!({"metric_name": "iii.worker.memory.rss"})).await;
    let metric = &listed["sdk_metrics"][0];
    assert_eq!(metric["metric_type"], "gauge");
    assert_eq!(metric["data_points"][0]["attributes"][0], json!(["worker.id", c.id]));
    assert!(listed["engine_metrics"]["performance"].is_object());

    // An integer sent as a string (the official SDK's bug) loses the whole frame.
    let bad = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "x.ok", "gauge": {"dataPoints": [{"asInt": 1}]}},
        {"name": "x.bad", "gauge": {"dataPoints": [{"asInt": "2"}]}}]}]}]});
    c.send_binary([b"MTRC".as_slice(), bad.to_string().as_bytes()].concat()).await;
    let listed = c.result("engine::metrics::list", json!({"metric_name": "x.ok"})).await;
    assert_eq!(listed["sdk_metrics"], json!([]));
}

#[tokio::test]
async fn malformed_telemetry_frames_are_dropped_and_the_link_survives() {
    let engine = engine().await;
    let mut c = Client::connect(&engine).await;
    for bad in [&b"OTLP{not json"[..], b"LOGS", b"MTRC[]", b"OTLP{\"resourceSpans\":7}"] {
        c.send_binary(bad.to_vec()).await;
    }
    assert_eq!(c.result("engine::traces::list", json!({})).await["total"], 0);
    assert_eq!(c.result("engine::logs::list", json!(null)).await["total"], 0);
}
