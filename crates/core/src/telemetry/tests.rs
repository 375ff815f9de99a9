//! The exporter end to end with an in-memory sink.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::exporter::{Exporter, ExporterConfig, FrameSink};
use super::log::sample_log;
use super::resource::{OtelOverrides, OtelSettings};
use super::span::sample_span;

#[derive(Default)]
struct Recorder {
    frames: Mutex<Vec<Vec<u8>>>,
    down: AtomicBool,
}

impl FrameSink for Recorder {
    fn send_frame(&self, frame: &[u8]) -> bool {
        if self.down.load(Ordering::SeqCst) {
            return false;
        }
        self.frames.lock().push(frame.to_vec());
        true
    }

    fn worker_id(&self) -> Option<String> {
        Some("worker-7".into())
    }
}

impl Recorder {
    fn bodies(&self, prefix: &[u8]) -> Vec<serde_json::Value> {
        let frames = self.frames.lock();
        frames
            .iter()
            .filter(|f| f.starts_with(prefix))
            .map(|f| serde_json::from_slice(&f[4..]).unwrap())
            .collect()
    }

    fn log_bodies(&self) -> Vec<String> {
        self.bodies(b"LOGS")
            .iter()
            .flat_map(|b| b["resourceLogs"][0]["scopeLogs"][0]["logRecords"].as_array().unwrap().clone())
            .map(|r| r["body"]["stringValue"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn settings() -> OtelSettings {
    OtelSettings::resolve(OtelOverrides { service_name: Some("svc".into()), ..Default::default() }, |_| None)
}

/// Long intervals: nothing is sent unless flushed, so tests decide when frames go.
fn quiet_config() -> ExporterConfig {
    ExporterConfig {
        max_spans: 100,
        max_logs: 100,
        max_metric_samples: 4,
        max_raw_frames: 3,
        max_frame_bytes: 1 << 20,
        span_interval: Duration::from_secs(3600),
        span_batch: 10_000,
        log_interval: Duration::from_secs(3600),
        log_batch: 10_000,
        metrics_interval: None,
    }
}

fn start(config: ExporterConfig) -> (Exporter, Arc<Recorder>) {
    let exporter = Exporter::start(&settings(), config).unwrap();
    let sink = Arc::new(Recorder::default());
    exporter.set_sink(sink.clone());
    (exporter, sink)
}

const WAIT: Duration = Duration::from_secs(10);
/// For waits expected to run out (the link stays down).
const SHORT: Duration = Duration::from_millis(100);

/// Waits on a condition (not a sleep) for at most `WAIT`.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while !done() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

#[test]
fn flush_sends_spans_and_logs_batched_with_the_resource() {
    let (exporter, sink) = start(quiet_config());
    for i in 0..50 {
        exporter.push_span(sample_span(&format!("s{i}")));
        exporter.push_log(sample_log(&format!("l{i}")));
    }
    assert!(exporter.flush(WAIT));
    let traces = sink.bodies(b"OTLP");
    assert_eq!(traces.len(), 1, "50 spans in one frame");
    let rs = &traces[0]["resourceSpans"][0];
    let resource = rs["resource"]["attributes"].as_array().unwrap();
    assert!(resource.contains(&serde_json::json!({"key": "service.name", "value": {"stringValue": "svc"}})));
    assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "iii-python-sdk");
    assert_eq!(rs["scopeSpans"][0]["spans"].as_array().unwrap().len(), 50);
    assert_eq!(sink.bodies(b"LOGS").len(), 1, "never one frame per log record");
    assert_eq!(sink.log_bodies(), (0..50).map(|i| format!("l{i}")).collect::<Vec<_>>());
    assert_eq!(exporter.buffered(), (0, 0, 0));
}

#[test]
fn whole_frames_go_out_at_once_in_order_and_the_oldest_are_dropped_while_the_link_is_down() {
    let (exporter, sink) = start(quiet_config());
    sink.down.store(true, Ordering::SeqCst);
    for n in 0..5 {
        exporter.push_frame(format!("LOGS{{\"n\":{n}}}").into_bytes());
    }
    assert!(!exporter.flush(SHORT), "the link is down");
    assert_eq!(exporter.counters().frames_dropped.load(Ordering::Relaxed), 2, "at most 3 wait");
    sink.down.store(false, Ordering::SeqCst);
    // No flush: a whole frame wakes the exporter (the quiet config's timers are an hour away).
    exporter.push_frame(b"OTLP{\"n\":5}".to_vec());
    assert!(eventually(|| sink.frames.lock().len() == 3));
    let sent: Vec<String> =
        sink.frames.lock().iter().map(|f| String::from_utf8(f.clone()).unwrap()).collect();
    assert_eq!(sent, [r#"LOGS{"n":3}"#, r#"LOGS{"n":4}"#, r#"OTLP{"n":5}"#]);
    assert_eq!(exporter.counters().frames_dropped.load(Ordering::Relaxed), 3);
}

#[test]
fn full_buffers_drop_the_oldest_and_count_them() {
    let (exporter, sink) = start(quiet_config());
    for i in 0..130 {
        exporter.push_log(sample_log(&format!("l{i}")));
    }
    assert_eq!(exporter.counters().logs_dropped.load(Ordering::Relaxed), 30);
    assert!(exporter.flush(WAIT));
    assert_eq!(sink.log_bodies(), (30..130).map(|i| format!("l{i}")).collect::<Vec<_>>());
}

#[test]
fn records_wait_while_the_link_is_down_and_go_after_it_returns() {
    let (exporter, sink) = start(quiet_config());
    sink.down.store(true, Ordering::SeqCst);
    for i in 0..5 {
        exporter.push_log(sample_log(&format!("before{i}")));
    }
    assert!(!exporter.flush(SHORT), "nothing could be sent");
    assert_eq!(exporter.buffered().1, 5);
    exporter.push_log(sample_log("during"));
    sink.down.store(false, Ordering::SeqCst);
    assert!(exporter.flush(WAIT));
    let mut expected: Vec<String> = (0..5).map(|i| format!("before{i}")).collect();
    expected.push("during".into());
    assert_eq!(sink.log_bodies(), expected);
    assert!(exporter.counters().send_failures.load(Ordering::Relaxed) >= 1);
}

#[test]
fn frames_stay_under_the_bound_with_several_records_each() {
    let mut config = quiet_config();
    config.max_frame_bytes = 4096;
    let (exporter, sink) = start(config);
    for i in 0..60 {
        exporter.push_log(sample_log(&format!("record {i} {}", "x".repeat(100))));
    }
    assert!(exporter.flush(WAIT));
    let frames = sink.frames.lock().clone();
    assert!(frames.len() > 1);
    for frame in &frames {
        assert!(frame.len() <= 4096);
    }
    assert!(sink.bodies(b"LOGS").iter().all(|b| b["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
        .as_array()
        .unwrap()
        .len()
        > 1));
    assert_eq!(sink.log_bodies().len(), 60);
}

#[test]
fn a_record_larger_than_a_frame_is_dropped_and_counted() {
    let mut config = quiet_config();
    config.max_frame_bytes = 2048;
    let (exporter, sink) = start(config);
    exporter.push_log(sample_log("small"));
    exporter.push_log(sample_log(&"x".repeat(5000)));
    assert!(exporter.flush(WAIT));
    assert_eq!(sink.log_bodies(), vec!["small".to_owned()]);
    assert_eq!(exporter.counters().oversize_dropped.load(Ordering::Relaxed), 1);
}

#[test]
fn shutdown_flushes_what_is_buffered() {
    let (exporter, sink) = start(quiet_config());
    exporter.push_span(sample_span("last"));
    exporter.push_log(sample_log("bye"));
    assert!(exporter.shutdown(WAIT));
    assert_eq!(sink.bodies(b"OTLP").len(), 1);
    assert_eq!(sink.log_bodies(), vec!["bye".to_owned()]);
    // After shutdown records are ignored and a second shutdown is harmless.
    exporter.push_log(sample_log("late"));
    assert!(exporter.shutdown(WAIT));
    assert_eq!(sink.log_bodies().len(), 1);
}

#[test]
fn a_flush_retries_within_its_wait_until_the_link_is_back() {
    let (exporter, sink) = start(quiet_config());
    sink.down.store(true, Ordering::SeqCst);
    exporter.push_log(sample_log("late link"));
    let exporter = Arc::new(exporter);
    let flusher = {
        let exporter = exporter.clone();
        std::thread::spawn(move || exporter.flush(WAIT))
    };
    // Bring the link back once the first attempt has failed.
    let deadline = std::time::Instant::now() + WAIT;
    while exporter.counters().send_failures.load(Ordering::Relaxed) == 0
        && std::time::Instant::now() < deadline
    {
        std::thread::yield_now();
    }
    sink.down.store(false, Ordering::SeqCst);
    assert!(flusher.join().unwrap());
    assert_eq!(sink.log_bodies(), vec!["late link".to_owned()]);
}

#[test]
fn shutdown_with_the_link_down_gives_up_within_its_wait() {
    let (exporter, sink) = start(quiet_config());
    sink.down.store(true, Ordering::SeqCst);
    exporter.push_log(sample_log("lost"));
    assert!(!exporter.shutdown(SHORT));
}

#[test]
fn the_log_batch_size_triggers_an_early_flush() {
    let mut config = quiet_config();
    config.log_batch = 3;
    let (exporter, sink) = start(config);
    for i in 0..3 {
        exporter.push_log(sample_log(&format!("l{i}")));
    }
    // No flush call: the third record wakes the exporter. Wait for the frame on a condition.
    assert!(eventually(|| sink.log_bodies().len() == 3));
}

#[test]
fn a_record_reaching_an_idle_exporter_wakes_it() {
    // An exporter with nothing buffered sleeps without a timer: the first record must wake it.
    // Each round waits for the previous frame, so the exporter is back asleep (or about to be).
    let mut config = quiet_config();
    config.span_interval = Duration::from_millis(1);
    config.log_interval = Duration::from_millis(1);
    let (exporter, sink) = start(config);
    for i in 0..20 {
        exporter.push_span(sample_span(&format!("s{i}")));
        assert!(eventually(|| sink.bodies(b"OTLP").len() == i + 1), "span {i} was never sent");
        exporter.push_log(sample_log(&format!("l{i}")));
        assert!(eventually(|| sink.log_bodies().len() == i + 1), "log {i} was never sent");
    }
}

#[test]
fn worker_gauges_are_sampled_and_sent_as_numbers() {
    let mut config = quiet_config();
    config.metrics_interval = Some(Duration::from_secs(3600));
    let (exporter, sink) = start(config);
    exporter.set_event_loop_lag(2.5);
    // Shutdown takes a last sample, so gauges go out without waiting an interval.
    assert!(exporter.shutdown(WAIT));
    let bodies = sink.bodies(b"MTRC");
    assert_eq!(bodies.len(), 1);
    let metrics = bodies[0]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"].as_array().unwrap().clone();
    let point =
        |name: &str| metrics.iter().find(|m| m["name"] == name).unwrap()["gauge"]["dataPoints"][0].clone();
    assert!(point("iii.worker.memory.rss")["asInt"].is_u64());
    assert_eq!(point("iii.worker.event_loop.lag_ms")["asDouble"], 2.5);
    assert_eq!(point("iii.worker.cpu.percent")["attributes"][0]["value"]["stringValue"], "worker-7");
}

#[test]
fn spans_from_several_scopes_keep_their_scope() {
    let (exporter, sink) = start(quiet_config());
    let user = Arc::new(super::span::Scope { name: "my.lib".into(), version: "2".into() });
    let mut mine = sample_span("mine");
    mine.scope = Some(user);
    exporter.push_span(sample_span("sdk"));
    exporter.push_span(mine);
    assert!(exporter.flush(WAIT));
    let body = &sink.bodies(b"OTLP")[0];
    let groups = body["resourceSpans"][0]["scopeSpans"].as_array().unwrap();
    let names: Vec<(&str, &str)> = groups
        .iter()
        .map(|g| (g["scope"]["name"].as_str().unwrap(), g["spans"][0]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, vec![("iii-python-sdk", "sdk"), ("my.lib", "mine")]);
}

#[test]
fn telemetry_travels_on_the_workers_own_link_to_the_engine() {
    use crate::connection::{Connection, ConnectionConfig, ConnectionState, EventSink, LogLevel};
    use iii_engine_double::{EngineConfig, EngineHandle};
    use iii_protocol::{InvokeFunction, Message};

    struct Quiet;
    impl EventSink for Quiet {
        fn invocation(&self, _: &Connection, _: InvokeFunction) {}
        fn message(&self, _: &Connection, _: Message) {}
        fn state_changed(&self, _: ConnectionState) {}
        fn log(&self, _: LogLevel, _: &str) {}
    }
    struct Chan(std::sync::mpsc::Sender<crate::invocations::Outcome>);
    impl crate::invocations::Completion for Chan {
        fn complete(self: Box<Self>, outcome: crate::invocations::Outcome) {
            let _ = self.0.send(outcome);
        }
    }
    let call = |conn: &Connection, function_id: &str, data: &str| -> serde_json::Value {
        let (tx, rx) = std::sync::mpsc::channel();
        conn.call(
            crate::connection::Envelope::default(),
            function_id,
            Some(data),
            None,
            WAIT,
            Box::new(Chan(tx)),
        )
        .unwrap();
        let text = rx.recv().unwrap().unwrap().unwrap();
        serde_json::from_str(text.get()).unwrap()
    };

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let engine = rt.block_on(EngineHandle::start(EngineConfig::default())).unwrap();
    let conn = Connection::start(rt.handle(), ConnectionConfig::new(engine.url()), Arc::new(Quiet));
    assert_eq!(conn.wait_for(WAIT, |s| s == ConnectionState::Connected), ConnectionState::Connected);

    let mut config = quiet_config();
    config.metrics_interval = Some(Duration::from_secs(3600));
    let exporter = Exporter::start(&settings(), config).unwrap();
    exporter.set_sink(Arc::new(conn.clone()));
    exporter.push_log(sample_log("over the link"));
    assert!(exporter.shutdown(WAIT), "{:?}", exporter.counters());

    let logs = call(&conn, "engine::logs::list", "{}");
    assert_eq!(logs["logs"][0]["body"], "over the link");
    let id = conn.worker_id().unwrap();
    let workers = call(&conn, "engine::workers::list", &format!("{{\"worker_id\":\"{id}\"}}"));
    assert_eq!(workers["workers"].as_array().unwrap().len(), 1, "no second connection");
    assert!(workers["workers"][0]["latest_metrics"]["memory_rss"].as_u64().unwrap() > 0);

    conn.shutdown();
    assert!(conn.send_binary(b"LOGS{}").is_err());
}

#[test]
fn application_metrics_keep_their_kind_scope_and_numbers() {
    use super::metrics::{AppData, AppMetric, HistogramPoint, NumberPoint, Point};
    use super::otlp::AnyValue;
    use super::span::Scope;
    let (exporter, sink) = start(quiet_config());
    let scope = Arc::new(Scope { name: "shop".into(), version: "1.2".into() });
    let attrs = vec![("route".to_owned(), AnyValue::Str("/buy".into()))];
    let number =
        |value| NumberPoint { attributes: attrs.clone(), start_unix_nano: 5, time_unix_nano: 9, value };
    exporter.push_app_metrics(vec![
        AppMetric {
            name: "orders".into(),
            description: "orders taken".into(),
            unit: "1".into(),
            data: AppData::Sum { points: vec![number(Point::Int(-3))], monotonic: false, temporality: 2 },
            scope: scope.clone(),
        },
        AppMetric {
            name: "latency".into(),
            description: String::new(),
            unit: "ms".into(),
            data: AppData::Histogram {
                points: vec![HistogramPoint {
                    attributes: attrs.clone(),
                    start_unix_nano: 5,
                    time_unix_nano: 9,
                    count: 3,
                    sum: 7.5,
                    bucket_counts: vec![1, 2, 0],
                    explicit_bounds: vec![1.0, 5.0],
                    min: Some(0.5),
                    max: None,
                }],
                temporality: 1,
            },
            scope,
        },
    ]);
    assert!(exporter.shutdown(WAIT));
    let bodies = sink.bodies(b"MTRC");
    assert_eq!(bodies.len(), 1);
    let scope_metrics = &bodies[0]["resourceMetrics"][0]["scopeMetrics"][0];
    assert_eq!(scope_metrics["scope"]["name"], "shop");
    assert_eq!(scope_metrics["scope"]["version"], "1.2");
    let metrics = scope_metrics["metrics"].as_array().unwrap();
    let sum = &metrics[0]["sum"];
    assert_eq!(sum["dataPoints"][0]["asInt"], -3);
    assert_eq!(sum["dataPoints"][0]["attributes"][0]["value"]["stringValue"], "/buy");
    assert_eq!((sum["isMonotonic"].clone(), sum["aggregationTemporality"].clone()), (false.into(), 2.into()));
    let point = &metrics[1]["histogram"]["dataPoints"][0];
    assert_eq!(metrics[1]["unit"], "ms");
    assert_eq!(point["count"], 3);
    assert_eq!(point["bucketCounts"], serde_json::json!([1, 2, 0]));
    assert_eq!(point["explicitBounds"], serde_json::json!([1.0, 5.0]));
    assert_eq!((point["min"].clone(), point.get("max")), (0.5.into(), None));
    assert_eq!(metrics[1]["histogram"]["aggregationTemporality"], 1);
}
