//! The observe family in the core against a scripted engine that records every frame and
//! sends what a test tells it to (the engine double's routing is tested in its own crate).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

use super::*;
use crate::connection::{ConnectionConfig, ConnectionState, EventSink};
use iii_protocol::{InvokeFunction, ObserveSource, ObserveTarget};

#[derive(Default)]
struct Sink {
    news: Mutex<Vec<ObserverNews>>,
    hooks: Mutex<Vec<HookRequest>>,
}

impl EventSink for Sink {
    fn invocation(&self, _conn: &Connection, _call: InvokeFunction) {}
    fn message(&self, _conn: &Connection, _message: Message) {}
    fn state_changed(&self, _state: ConnectionState) {}
    fn log(&self, _level: LogLevel, _text: &str) {}
    fn observer_news(&self, news: ObserverNews) {
        self.news.lock().push(news);
    }
    fn owner_hook(&self, hook: HookRequest) {
        self.hooks.lock().push(hook);
    }
}

/// One scripted engine: answers each connection's `engine::workers::register` with a
/// `workerregistered` listing `features`, records what workers send, and sends `to_worker`.
struct Scripted {
    url: String,
    frames: Arc<Mutex<Vec<Value>>>,
    to_worker: mpsc::UnboundedSender<String>,
    /// Ends the current connection (the worker reconnects).
    cut: mpsc::UnboundedSender<()>,
}

async fn scripted(features: Vec<&'static str>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let frames = Arc::new(Mutex::new(Vec::new()));
    let (to_worker, mut outbox) = mpsc::unbounded_channel::<String>();
    let (cut, mut cuts) = mpsc::unbounded_channel::<()>();
    let recorded = frames.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            n += 1;
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            loop {
                tokio::select! {
                    msg = ws.next() => {
                        let Some(Ok(Ws::Text(text))) = msg else { break };
                        let v: Value = serde_json::from_str(&text).unwrap();
                        if v["function_id"] == "engine::workers::register" {
                            let hello = json!({"type":"workerregistered","worker_id":format!("w{n}"),
                                "reattach_token":"t","features":features});
                            ws.send(Ws::Text(hello.to_string().into())).await.unwrap();
                        }
                        recorded.lock().push(v);
                    }
                    Some(frame) = outbox.recv() => { let _ = ws.send(Ws::Text(frame.into())).await; }
                    Some(()) = cuts.recv() => break,
                }
            }
        }
    });
    Scripted { url, frames, to_worker, cut }
}

impl Scripted {
    fn sent(&self, kind: &str) -> Vec<Value> {
        self.frames.lock().iter().filter(|f| f["type"] == kind).cloned().collect()
    }

    fn wait_for(&self, kind: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.sent(kind);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn start(rt: &tokio::runtime::Runtime, url: &str, sink: Arc<Sink>) -> Connection {
    let mut config = ConnectionConfig::new(url);
    config.reconnect.initial_delay_ms = 10;
    config.reconnect.max_delay_ms = 20;
    config.worker_metadata = Some(r#"{"runtime":"rust-test","name":"owner"}"#.into());
    let conn = Connection::start(rt.handle(), config, sink);
    assert_eq!(
        conn.wait_for(Duration::from_secs(10), |s| s == ConnectionState::Connected),
        ConnectionState::Connected
    );
    conn
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn observe(id: &str, filters: Option<Value>) -> Observe {
    Observe {
        id: id.into(),
        source: ObserveSource { function_id: "p::charge".into(), filters, ..Default::default() },
        target: ObserveTarget { function_id: "t::alert".into(), namespace: None },
        metadata: None,
        max_fires: None,
        expires_in_ms: None,
        max_in_flight: None,
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Answers the latest addition hook asked for `id`.
fn answer(
    f: &Arc<FunctionState>,
    conn: &Connection,
    sink: &Sink,
    id: &str,
    error: Option<ErrorBody>,
) -> HookOutcome {
    let hook = sink.hooks.lock().iter().rev().find(|h| h.added && h.observer.id == id).cloned();
    f.hook_done(conn, &hook.expect("an addition hook"), error)
}

#[test]
fn a_filter_iii_filter_refuses_is_refused_locally_and_nothing_is_sent() {
    let rt = runtime();
    let engine = rt.block_on(scripted(vec!["observe.v1"]));
    let conn = start(&rt, &engine.url, Arc::default());
    let err = conn.observe(observe("bad", Some(json!({"input.op": "insert"})))).unwrap_err();
    assert_eq!(err.code, "INVALID_FILTER");
    conn.observe(observe("good", None)).unwrap();
    let sent = engine.wait_for("observe", 1);
    assert_eq!(sent.iter().map(|f| f["id"].clone()).collect::<Vec<_>>(), vec![json!("good")]);
    conn.shutdown();
}

#[test]
fn observers_are_replayed_with_their_ids_after_a_reconnect_and_unobserve_stops_that() {
    let rt = runtime();
    let engine = rt.block_on(scripted(vec!["observe.v1"]));
    let conn = start(&rt, &engine.url, Arc::default());
    conn.observe(observe("o1", Some(json!({"input.amount": {"$gte": 500}})))).unwrap();
    conn.observe(observe("o2", None)).unwrap();
    assert_eq!(engine.wait_for("observe", 2).len(), 2);
    engine.cut.send(()).unwrap();
    let replayed = engine.wait_for("observe", 4);
    let ids: Vec<Value> = replayed[2..].iter().map(|f| f["id"].clone()).collect();
    assert_eq!(ids, vec![json!("o1"), json!("o2")], "replayed in creation order, same ids");
    assert_eq!(replayed[2]["source"]["filters"], json!({"input.amount": {"$gte": 500}}), "as written");
    conn.unobserve("o1");
    assert_eq!(engine.wait_for("unobserve", 1)[0]["id"], "o1");
    engine.cut.send(()).unwrap();
    let after = engine.wait_for("observe", 5);
    assert_eq!(after[4]["id"], "o2");
    conn.shutdown();
}

#[test]
fn against_an_engine_without_observe_every_observer_fails_unsupported() {
    let rt = runtime();
    let engine = rt.block_on(scripted(vec![]));
    let sink = Arc::new(Sink::default());
    // Created before the connection knows the engine's features: held, then refused.
    let mut config = ConnectionConfig::new(&engine.url);
    config.worker_metadata = Some(r#"{"runtime":"rust-test"}"#.into());
    let conn = Connection::start(rt.handle(), config, sink.clone());
    conn.observe(observe("o1", None)).unwrap();
    wait_until("UNSUPPORTED", || !sink.news.lock().is_empty());
    let news = sink.news.lock()[0].clone();
    assert_eq!((news.id.as_str(), news.state.as_str()), ("o1", "error"));
    assert_eq!(news.reason.unwrap().code, "UNSUPPORTED");
    // Made once that engine registered the worker: refused at once.
    assert_eq!(
        conn.wait_for(Duration::from_secs(10), |s| s == ConnectionState::Connected),
        ConnectionState::Connected
    );
    assert_eq!(conn.observe(observe("o2", None)).unwrap_err().code, "UNSUPPORTED");
    // Held frames (o1's unobserve) are dropped, never sent, once the engine is known not to observe.
    conn.unobserve("o1");
    assert!(conn.held_observe_frames().is_empty());
    assert!(engine.sent("observe").is_empty() && engine.sent("unobserve").is_empty());
    conn.shutdown();
}

fn registered(function_id: &str, revision: u64, observers: Value) -> String {
    json!({"type":"functionregistered","id":function_id,"namespace":"default","revision":revision,
        "local_dispatch":true,"observers":observers})
    .to_string()
}

fn outcome<'a>(input: &'a Value, ok: bool) -> LocalOutcome<'a> {
    LocalOutcome {
        invocation_id: "i-1".into(),
        ok,
        input: Some(input),
        output: None,
        error: None,
        caller: None,
        metadata: None,
        started_at_ms: 1,
        duration_ms: 0.5,
        observe_depth: 0,
        traceparent: None,
        baggage: None,
    }
}

#[test]
fn an_owned_function_is_confirmed_acked_and_reports_only_matching_calls() {
    let rt = runtime();
    let engine = rt.block_on(scripted(vec!["observe.v1", "local-dispatch.v1"]));
    let conn = start(&rt, &engine.url, Arc::default());
    let f = FunctionState::new("p::charge".into(), true, false, false);
    conn.own_function(f.clone());
    assert!(!f.local(None), "not before the engine confirms it");
    let big = json!([{"id":"big","filters":{"$and":[{"input.amount":{"$gte":500}}]},"target":"t::alert",
        "capture":["input"],"on":"success"}]);
    engine.to_worker.send(registered("p::charge", 1, big)).unwrap();
    let acks = engine.wait_for("observerack", 1);
    assert_eq!(
        acks[0],
        json!({"type":"observerack","function_id":"p::charge","namespace":"default","id":"big","revision":1})
    );
    assert!(f.local(None) && f.local(Some("default")) && !f.local(Some("other")));
    assert!(f.observed());
    f.report(&conn, outcome(&json!({"amount": 10}), true));
    f.report(&conn, outcome(&json!({"amount": 900}), false)); // `on: success` only
    f.report(&conn, outcome(&json!({"amount": 700, "card": "x"}), true));
    let reports = engine.wait_for("invocationsobserved", 1);
    let items = reports[0]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["matched"], json!(["big"]));
    assert_eq!(items[0]["input"], json!({"amount": 700, "card": "x"}));
    assert!(items[0].get("caller").is_none(), "not captured");
    conn.shutdown();
}

#[test]
fn an_addition_answered_after_a_removal_is_acked_after_a_release_or_rejection_is_not() {
    let rt = runtime();
    let engine = rt.block_on(scripted(vec!["observe.v1"]));
    let sink = Arc::new(Sink::default());
    let conn = start(&rt, &engine.url, sink.clone());
    let f = FunctionState::new("h::f".into(), true, true, false);
    let g = FunctionState::new("h::g".into(), true, true, false);
    conn.own_function(f.clone());
    conn.own_function(g.clone());
    let view = |id: &str| json!({"id":id,"target":"t::x"});
    engine.to_worker.send(registered("h::f", 1, json!([view("a"), view("b")]))).unwrap();
    wait_until("two hooks", || sink.hooks.lock().len() == 2);
    // Removed while its hook runs: the removal waits on that hook, whose answer is still acked
    // under the revision the observer was announced with.
    let removed = json!({"type":"observerremoved","function_id":"h::f","revision":2,"id":"a"});
    engine.to_worker.send(removed.to_string()).unwrap();
    wait_until("the pending removal", || sink.hooks.lock().len() == 3);
    let (add, removal) = {
        let hooks = sink.hooks.lock();
        (hooks[0].clone(), hooks[2].clone())
    };
    assert!(!removal.added && removal.pending && removal.observer.id == "a");
    assert_eq!(removal.token, add.token);
    assert_eq!(answer(&f, &conn, &sink, "a", None), HookOutcome::Gone);
    let acks = engine.wait_for("observerack", 1);
    assert_eq!((acks[0]["id"].clone(), acks[0]["revision"].clone()), (json!("a"), json!(1)));
    // Released (a namespace conflict) while b's hook runs: no removal asked, no ack.
    let generation = f.generation();
    conn.function_conflict("h::f");
    assert_eq!(f.generation(), generation + 1);
    assert_eq!(sink.hooks.lock().len(), 3);
    assert_eq!(answer(&f, &conn, &sink, "b", None), HookOutcome::Released);
    assert!(!f.is_observed());
    // Rejected by the owner while its hook runs: the rejection stands, never a success ack.
    engine.to_worker.send(registered("h::g", 1, json!([view("c")]))).unwrap();
    wait_until("c's hook", || sink.hooks.lock().len() == 4);
    g.reject(&conn, "c", ErrorBody::new("RACE", "rejected first"));
    assert_eq!(answer(&g, &conn, &sink, "c", None), HookOutcome::Rejected);
    engine
        .to_worker
        .send(
            json!({"type":"observeradded","function_id":"h::g","revision":2,"observer":view("d")})
                .to_string(),
        )
        .unwrap();
    wait_until("d's hook", || sink.hooks.lock().len() == 5);
    assert_eq!(answer(&g, &conn, &sink, "d", None), HookOutcome::Acked);
    // In order on the one socket: nothing for b, c's rejection only, then d.
    let acks = engine.wait_for("observerack", 3);
    let seen: Vec<(Value, Value)> =
        acks.iter().map(|a| (a["id"].clone(), a["error"]["code"].clone())).collect();
    assert_eq!(seen, vec![(json!("a"), Value::Null), (json!("c"), json!("RACE")), (json!("d"), Value::Null)]);
    assert_eq!(g.observers().iter().map(|v| v.id.clone()).collect::<Vec<_>>(), vec!["d"]);
    conn.shutdown();
}

#[test]
fn revisions_stale_messages_and_replays_follow_the_engine() {
    let rt = runtime();
    let engine = rt.block_on(scripted(vec!["observe.v1"]));
    let sink = Arc::new(Sink::default());
    let conn = start(&rt, &engine.url, sink.clone());
    let f = FunctionState::new("r::f".into(), true, true, false);
    conn.own_function(f.clone());
    let view = |id: &str| json!({"id":id,"target":"t::x"});
    engine.to_worker.send(registered("r::f", 1, json!([view("a"), view("b")]))).unwrap();
    wait_until("two hooks", || sink.hooks.lock().len() == 2);
    assert!(engine.sent("observerack").is_empty(), "hooks first");
    answer(&f, &conn, &sink, "a", None);
    answer(&f, &conn, &sink, "b", Some(ErrorBody::new("TOPIC_FORBIDDEN", "no")));
    let acks = engine.wait_for("observerack", 2);
    assert!(acks[0].get("error").is_none());
    assert_eq!(acks[1]["error"]["code"], "TOPIC_FORBIDDEN");
    assert_eq!(f.observers().iter().map(|v| v.id.clone()).collect::<Vec<_>>(), vec!["a"]);
    // Stale: ignored. Newer: taken.
    let added = |rev: u64, id: &str| {
        json!({"type":"observeradded","function_id":"r::f","revision":rev,"observer":view(id)}).to_string()
    };
    engine.to_worker.send(added(1, "stale")).unwrap();
    engine.to_worker.send(added(2, "c")).unwrap();
    wait_until("hook for c", || sink.hooks.lock().len() == 3);
    assert_eq!(sink.hooks.lock()[2].observer.id, "c");
    // A replay listing b and c: a's removal hook runs, b's rejection is repeated, c still waits.
    engine.to_worker.send(registered("r::f", 5, json!([view("b"), view("c")]))).unwrap();
    wait_until("removal of a", || sink.hooks.lock().len() == 4);
    let removal = sink.hooks.lock()[3].clone();
    assert!(!removal.added && removal.observer.id == "a");
    let acks = engine.wait_for("observerack", 3);
    assert_eq!((acks[2]["id"].clone(), acks[2]["revision"].clone()), (json!("b"), json!(5)));
    assert_eq!(acks[2]["error"]["code"], "TOPIC_FORBIDDEN");
    answer(&f, &conn, &sink, "c", None);
    let acks = engine.wait_for("observerack", 4);
    assert_eq!(
        (acks[3]["id"].clone(), acks[3]["revision"].clone()),
        (json!("c"), json!(5)),
        "latest revision"
    );
    assert!(f.is_observed());
    conn.shutdown();
}

/// `function_id`, observed by "all", reports a call on a new link that has not confirmed the
/// function yet: the report waits (parked until the engine confirms it there).
fn held_report(rt: &tokio::runtime::Runtime, function_id: &str) -> (Scripted, Connection) {
    let engine = rt.block_on(scripted(vec!["observe.v1"]));
    let conn = start(rt, &engine.url, Arc::default());
    let f = FunctionState::new(function_id.into(), true, false, false);
    conn.own_function(f.clone());
    engine.to_worker.send(registered(function_id, 1, json!([{"id":"all","target":"t::x"}]))).unwrap();
    engine.wait_for("observerack", 1);
    engine.cut.send(()).unwrap();
    engine.wait_for("invokefunction", 2);
    f.report(&conn, outcome(&json!({"n": 1}), true));
    assert_eq!(conn.observe_reports_waiting().0, 1, "held until the new link confirms the function");
    (engine, conn)
}

#[test]
fn reports_wait_for_the_confirmation_on_the_current_link() {
    let rt = runtime();
    let (engine, conn) = held_report(&rt, "p::charge");
    engine.to_worker.send(registered("p::charge", 2, json!([{"id":"all","target":"t::x"}]))).unwrap();
    let reports = engine.wait_for("invocationsobserved", 1);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["items"][0]["input"], json!({"n": 1}));
    assert_eq!(conn.observe_reports_waiting(), (0, 0));
    conn.shutdown();
}

#[test]
fn reports_held_for_a_function_in_conflict_are_dropped_as_inactive_and_counted() {
    let rt = runtime();
    let (engine, conn) = held_report(&rt, "p::held");
    let conflict = json!({"type":"registrationrejected","code":"FUNCTION_NAMESPACE_CONFLICT",
        "namespace":"default","function_id":"p::held","owner_worker_id":"other"});
    engine.to_worker.send(conflict.to_string()).unwrap();
    wait_until("the held report released", || conn.observe_reports_waiting().0 == 0);
    assert!(conn.flush_observe_reports());
    let stats = engine.wait_for("localinvocationstats", 1);
    assert_eq!(stats[0]["dropped_reports"], json!([{"function_id":"p::held","reason":"INACTIVE","count":1}]));
    assert!(engine.sent("invocationsobserved").is_empty());
    conn.shutdown();
}

#[test]
fn owner_delivery_checks_the_observer_before_anything_is_sent() {
    let rt = runtime();
    let engine = rt.block_on(scripted(vec!["observe.v1"]));
    let conn = start(&rt, &engine.url, Arc::default());
    let auto = FunctionState::new("a::f".into(), true, false, false);
    let owned = FunctionState::new("o::cron".into(), true, false, true);
    conn.own_function(auto.clone());
    conn.own_function(owned.clone());
    let err = auto.emit(&conn, "x", json!(1), None, None, "i".into(), 0, None, None).unwrap_err();
    assert_eq!(err.0.code, "NOT_OWNER_DELIVERED");
    assert_eq!(owned.check_call("nobody", &json!({"input": 1})).unwrap_err().0.code, "OBSERVER_NOT_ACTIVE");
    let view = json!([{"id":"o","filters":{"$and":[{"input.day":{"$eq":"mon"}}]},"target":"t::x","capture":["input"]}]);
    engine.to_worker.send(registered("o::cron", 1, view)).unwrap();
    engine.wait_for("observerack", 1);
    assert!(!owned.observed(), "owner-delivered: local calls are not matched by the SDK");
    assert!(owned.is_observed());
    let miss = owned.emit(&conn, "o", json!({"day":"tue"}), None, None, "i1".into(), 0, None, None);
    assert_eq!(miss, Ok(false));
    assert_eq!(
        owned.check_call("o", &json!({"input": {"day": "tue"}})).unwrap_err().0.code,
        "FILTERS_NOT_MATCHED"
    );
    assert_eq!(
        owned.emit(&conn, "o", json!({"day":"mon"}), None, None, "i2".into(), 1, None, None),
        Ok(true)
    );
    let items = engine.wait_for("invocationsobserved", 1)[0]["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["matched"], json!(["o"]));
    assert_eq!(
        (items[0]["invocation_id"].clone(), items[0]["observe_depth"].clone()),
        (json!("i2"), json!(1))
    );
    owned.reject(&conn, "o", ErrorBody::new("INVALID_CRON_EXPRESSION", "bad day"));
    assert_eq!(engine.wait_for("observerack", 2)[1]["error"]["code"], "INVALID_CRON_EXPRESSION");
    assert!(!owned.is_active("o"));
    conn.shutdown();
}

#[test]
fn a_function_conflict_stops_local_dispatch() {
    let rt = runtime();
    let engine = rt.block_on(scripted(vec!["observe.v1"]));
    let conn = start(&rt, &engine.url, Arc::default());
    let f = FunctionState::new("p::f".into(), true, false, false);
    conn.own_function(f.clone());
    engine.to_worker.send(registered("p::f", 1, json!([]))).unwrap();
    wait_until("confirmation", || f.local(None));
    let conflict = json!({"type":"registrationrejected","code":"FUNCTION_NAMESPACE_CONFLICT",
        "namespace":"default","function_id":"p::f","owner_worker_id":"other"});
    engine.to_worker.send(conflict.to_string()).unwrap();
    wait_until("local dispatch off", || !f.local(None));
    assert_eq!(conn.state(), ConnectionState::Connected, "only the function is refused");
    conn.shutdown();
}

#[test]
fn a_function_registered_without_local_dispatch_never_runs_locally() {
    let rt = runtime();
    let engine = rt.block_on(scripted(vec!["observe.v1"]));
    let conn = start(&rt, &engine.url, Arc::default());
    let f = FunctionState::new("p::remote".into(), false, false, false);
    conn.own_function(f.clone());
    engine.to_worker.send(registered("p::remote", 1, json!([{"id":"x","target":"t::x"}]))).unwrap();
    engine.wait_for("observerack", 1);
    assert!(!f.local(None));
    conn.shutdown();
}

#[test]
fn a_replay_keeps_an_observer_with_new_filters_and_changed_args_make_another() {
    let rt = runtime();
    let engine = rt.block_on(scripted(vec!["observe.v1"]));
    let sink = Arc::new(Sink::default());
    let conn = start(&rt, &engine.url, sink.clone());
    let f = FunctionState::new("d::fn".into(), true, true, false);
    conn.own_function(f.clone());
    let view =
        |id: &str, args: Value, filters: Value| json!({"id":id,"target":"t","args":args,"filters":filters});
    engine
        .to_worker
        .send(registered(
            "d::fn",
            2,
            json!([view("keep", json!({}), json!({})), view("args", json!({"a":1}), json!({}))]),
        ))
        .unwrap();
    wait_until("two add hooks", || sink.hooks.lock().len() == 2);
    answer(&f, &conn, &sink, "keep", None);
    answer(&f, &conn, &sink, "args", None);
    engine.wait_for("observerack", 2);
    let narrower = json!({"$and":[{"input.n":{"$gt":1}}]});
    engine
        .to_worker
        .send(registered(
            "d::fn",
            7,
            json!([view("keep", json!({}), narrower.clone()), view("args", json!({"a":2}), json!({}))]),
        ))
        .unwrap();
    // `args` changed: removed (its hook) and added again (its hook); `keep` only acked again.
    wait_until("remove and add of args", || sink.hooks.lock().len() == 4);
    let hooks: Vec<(bool, String)> =
        sink.hooks.lock()[2..].iter().map(|h| (h.added, h.observer.id.clone())).collect();
    assert_eq!(hooks, vec![(false, "args".to_owned()), (true, "args".to_owned())]);
    let acks = engine.wait_for("observerack", 3);
    assert_eq!((acks[2]["id"].clone(), acks[2]["revision"].clone()), (json!("keep"), json!(7)));
    assert!(
        f.matches("keep", &json!({"input": {"n": 2}})) && !f.matches("keep", &json!({"input": {"n": 1}}))
    );
    assert_eq!(f.observers().iter().find(|v| v.id == "keep").unwrap().filters, narrower);
    conn.shutdown();
}

#[test]
fn local_calls_are_counted_until_the_stats_take_them() {
    let f = FunctionState::new("c::f".into(), true, false, false);
    assert!(!f.confirmed());
    f.finished(true, 1.0);
    f.finished(false, 2.0);
    assert_eq!(f.counts(), (2, 1));
    let stats = f.take_stats().expect("two calls");
    assert_eq!((stats.count, stats.errors), (2, 1));
    assert_eq!(f.counts(), (0, 0));
}
