//! The connection against the engine double: calls, replay order, link loss, offline queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::*;
use crate::invocations::Outcome;
use iii_engine_double::{EngineConfig, EngineHandle};

#[derive(Default)]
struct Echo {
    logs: Mutex<Vec<String>>,
    states: Mutex<Vec<ConnectionState>>,
}

/// Answers every invocation with its own payload.
impl EventSink for Echo {
    fn invocation(&self, conn: &Connection, call: InvokeFunction) {
        if let Some(id) = &call.invocation_id {
            conn.answer(
                id,
                &call.function_id,
                Ok(call.data.as_deref().map(|d| d.get())),
                Envelope::default(),
            );
        }
    }
    fn message(&self, _client: &Connection, _message: Message) {}
    fn state_changed(&self, state: ConnectionState) {
        self.states.lock().push(state);
    }
    fn log(&self, _level: LogLevel, text: &str) {
        self.logs.lock().push(text.to_owned());
    }
}

struct Chan(std::sync::mpsc::Sender<Outcome>);

impl Completion for Chan {
    fn complete(self: Box<Self>, outcome: Outcome) {
        let _ = self.0.send(outcome);
    }
}

fn config(url: &str) -> ConnectionConfig {
    let mut c = ConnectionConfig::new(url);
    c.reconnect.initial_delay_ms = 20;
    c.reconnect.max_delay_ms = 50;
    c.worker_metadata = Some(r#"{"runtime":"rust-test","name":"t"}"#.into());
    c
}

fn register_echo(conn: &Connection, id: &str) {
    let msg = Message::RegisterFunction(iii_protocol::RegisterFunction {
        id: id.into(),
        description: None,
        request_format: None,
        response_format: None,
        metadata: None,
        invocation: None,
        observe: None,
    });
    conn.register(RegistrationKind::Function, id, &msg).unwrap();
}

fn call(
    conn: &Connection,
    function_id: &str,
    data: &str,
    timeout: Duration,
) -> std::sync::mpsc::Receiver<Outcome> {
    let (tx, rx) = std::sync::mpsc::channel();
    conn.call(Envelope::default(), function_id, Some(data), None, timeout, Box::new(Chan(tx))).unwrap();
    rx
}

fn connected(conn: &Connection) {
    assert_eq!(
        conn.wait_for(Duration::from_secs(5), |s| s == ConnectionState::Connected),
        ConnectionState::Connected
    );
}

/// Calls until the function answers (registrations are not acknowledged).
fn call_until_served(conn: &Connection, function_id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match call(conn, function_id, "[1]", Duration::from_secs(5)).recv().unwrap() {
            Ok(v) => return v.map(|v| v.get().to_owned()).unwrap_or_default(),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("never served: {e}"),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// An event sink that never answers.
struct Silent;

impl EventSink for Silent {
    fn invocation(&self, _: &Connection, _: InvokeFunction) {}
    fn message(&self, _: &Connection, _: Message) {}
    fn state_changed(&self, _: ConnectionState) {}
    fn log(&self, _: LogLevel, _: &str) {}
}

/// A test engine and two connected workers: `server` with `sink`, `caller` echoing. Bind
/// `_rt` first so that the runtime is dropped last.
struct Workers {
    server: Connection,
    caller: Connection,
    engine: EngineHandle,
    _rt: tokio::runtime::Runtime,
}

fn two_workers(sink: impl EventSink + 'static) -> Workers {
    let rt = runtime();
    let engine = rt.block_on(EngineHandle::start(EngineConfig::default())).unwrap();
    let server = Connection::start(rt.handle(), config(&engine.url()), Arc::new(sink));
    let caller = Connection::start(rt.handle(), config(&engine.url()), Arc::new(Echo::default()));
    connected(&server);
    connected(&caller);
    Workers { server, caller, engine, _rt: rt }
}

#[test]
fn calls_round_trip_between_two_clients() {
    let Workers { _rt, engine: _engine, server, caller } = two_workers(Echo::default());
    assert!(server.worker_id().is_some());
    register_echo(&server, "echo");
    assert_eq!(call_until_served(&caller, "echo"), "[1]");
    let outcome = call(&caller, "missing", "1", Duration::from_secs(5)).recv().unwrap();
    match outcome {
        Err(CallError::Remote(e)) => assert_eq!(e.code, "function_not_found"),
        other => panic!("unexpected {other:?}"),
    }
    caller.shutdown();
    server.shutdown();
}

#[test]
fn generation_is_read_from_workerregistered_and_namespaces_reach_the_engine() {
    let rt = runtime();
    let old = rt.block_on(EngineHandle::start(EngineConfig::default())).unwrap();
    let conn = Connection::start(rt.handle(), config(&old.url()), Arc::new(Echo::default()));
    connected(&conn);
    assert_eq!(conn.generation(), Generation::V011);
    conn.shutdown();

    let head =
        rt.block_on(EngineHandle::start(EngineConfig { head_protocol: true, ..Default::default() })).unwrap();
    let mut team = config(&head.url());
    team.worker_metadata = Some(r#"{"runtime":"rust-test","name":"team-w","namespace":"team"}"#.into());
    let server = Connection::start(rt.handle(), team, Arc::new(Echo::default()));
    let caller = Connection::start(rt.handle(), config(&head.url()), Arc::new(Echo::default()));
    connected(&server);
    connected(&caller);
    assert_eq!(server.generation(), Generation::Head);
    register_echo(&server, "ns::echo");
    // Registered at once (the metadata follows the replay), but only in namespace `team`.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (tx, rx) = std::sync::mpsc::channel();
        caller
            .call(
                Envelope { namespace: Some("team"), ..Envelope::default() },
                "ns::echo",
                Some("[2]"),
                None,
                Duration::from_secs(5),
                Box::new(Chan(tx)),
            )
            .unwrap();
        match rx.recv().unwrap() {
            Ok(v) => break assert_eq!(v.unwrap().get(), "[2]"),
            Err(e) => assert!(Instant::now() < deadline, "never served: {e}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    match call(&caller, "ns::echo", "1", Duration::from_secs(5)).recv().unwrap() {
        Err(CallError::Remote(e)) => assert_eq!(e.code, "function_not_found"),
        other => panic!("resolved outside its namespace: {other:?}"),
    }
    caller.shutdown();
    server.shutdown();
}

#[test]
fn replays_registrations_in_protocol_order_after_a_reconnect() {
    let rt = runtime();
    let engine = rt.block_on(EngineHandle::start(EngineConfig::default())).unwrap();
    let conn = Connection::start(rt.handle(), config(&engine.url()), Arc::new(Echo::default()));
    connected(&conn);
    let tt = Message::RegisterTriggerType(iii_protocol::RegisterTriggerType {
        id: "tt".into(),
        description: "d".into(),
        trigger_request_format: None,
        call_request_format: None,
    });
    let trigger = Message::RegisterTrigger(iii_protocol::RegisterTrigger {
        id: "trig-1".into(),
        trigger_type: "tt".into(),
        function_id: "f".into(),
        config: None,
        metadata: None,
        namespace: None,
        trigger_namespace: None,
    });
    conn.register(RegistrationKind::Trigger, "trig-1", &trigger).unwrap();
    register_echo(&conn, "f");
    conn.register(RegistrationKind::TriggerType, "tt", &tt).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = engine.received_kinds().len();
    engine.disconnect_all();
    // Wait for the new connection and its replay.
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.received_kinds().len() < before + 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let kinds = engine.received_kinds()[before..].to_vec();
    assert_eq!(
        kinds,
        vec!["registertriggertype", "registerfunction", "registertrigger", "invokefunction"],
        "replay order, then worker metadata"
    );
    assert_eq!(engine.trigger_ids(), vec!["trig-1".to_owned()]);
    conn.shutdown();
}

#[test]
fn link_loss_fails_calls_in_flight_at_once_and_reconnects() {
    let Workers { _rt, engine, server, caller } = two_workers(Silent);
    register_echo(&server, "hang");
    std::thread::sleep(Duration::from_millis(100));
    let pending = call(&caller, "hang", "1", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    engine.disconnect_all();
    let outcome = pending.recv_timeout(Duration::from_secs(2)).expect("failed promptly");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(outcome, Err(CallError::ConnectionLost { .. }) | Err(CallError::Remote(_))),
        "{outcome:?}"
    );
    connected(&caller);
    assert_eq!(caller.pending_calls(), 0);
    caller.shutdown();
    server.shutdown();
}

#[test]
fn calls_made_while_offline_are_sent_after_the_replay() {
    let rt = runtime();
    let engine = rt.block_on(EngineHandle::start(EngineConfig::default())).unwrap();
    // The worker calls its own function: the replay re-registers it before the queued call
    // goes out, on the same connection, so the call is served.
    let conn = Connection::start(rt.handle(), config(&engine.url()), Arc::new(Echo::default()));
    connected(&conn);
    register_echo(&conn, "echo");
    call_until_served(&conn, "echo");
    rt.block_on(engine.stop());
    assert_ne!(
        conn.wait_for(Duration::from_secs(2), |s| s != ConnectionState::Connected),
        ConnectionState::Connected
    );
    let waiting = call(&conn, "echo", r#"{"late":true}"#, Duration::from_secs(10));
    rt.block_on(engine.restart()).unwrap();
    let outcome = waiting.recv_timeout(Duration::from_secs(8)).expect("answered after the replay");
    let value = outcome.expect("served").expect("has a result");
    assert!(value.get().contains(r#""late":true"#), "{}", value.get());
    conn.shutdown();
}

#[test]
fn offline_queue_is_bounded_and_gives_up_after_max_retries() {
    let rt = runtime();
    let mut c = config("ws://127.0.0.1:9");
    c.offline_queue_limit = 2;
    c.reconnect.max_retries = 3;
    c.reconnect.initial_delay_ms = 100;
    let conn = Connection::start(rt.handle(), c, Arc::new(Echo::default()));
    let a = call(&conn, "f", "1", Duration::from_secs(30));
    let b = call(&conn, "f", "2", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(50));
    let (tx, _rx) = std::sync::mpsc::channel();
    let third =
        conn.call(Envelope::default(), "f", Some("3"), None, Duration::from_secs(30), Box::new(Chan(tx)));
    assert!(matches!(third, Err(CallError::OfflineQueueFull { limit: 2 })), "{third:?}");
    assert_eq!(
        conn.wait_for(Duration::from_secs(5), |s| s == ConnectionState::Failed),
        ConnectionState::Failed
    );
    for waiting in [a, b] {
        let outcome = waiting.recv_timeout(Duration::from_secs(1)).unwrap();
        assert!(
            matches!(outcome, Err(CallError::NotConnected(ref m)) if m.contains("after 4 attempts")),
            "{outcome:?}"
        );
    }
    assert!(conn.last_error().unwrap().contains("127.0.0.1:9"));
}

/// Not a benchmark (nothing is asserted about speed): prints the round-trip time of the core
/// alone, to tell its latency apart from the Python layer's. Run with `--ignored --nocapture`.
#[test]
#[ignore]
fn print_core_round_trip() {
    let Workers { _rt, engine: _engine, server, caller } = two_workers(Echo::default());
    register_echo(&server, "echo");
    call_until_served(&caller, "echo");
    let n = 2000;
    let started = Instant::now();
    for _ in 0..n {
        call(&caller, "echo", r#"{"x":1}"#, Duration::from_secs(5)).recv().unwrap().unwrap();
    }
    println!("core round trip: {:.1} us", started.elapsed().as_secs_f64() * 1e6 / n as f64);
}

/// A fake engine that accepts WebSocket upgrades and then sends `frames` on every
/// connection, keeping each socket open. Returns its URL.
fn hostile_engine(frames: Vec<u8>) -> String {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&request).into_owned();
            let key = text
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap_or_default()
                .trim()
                .to_owned();
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.write_all(&frames);
            open.push(stream);
        }
    });
    url
}

#[test]
fn a_continuation_claiming_near_u64_max_bytes_ends_the_link_with_a_clear_error() {
    // Regression: a non-final text frame, then a continuation frame whose 64-bit length is
    // near u64::MAX. The reader overflowed; the runtime reader then kept a dead link alive.
    let mut frames = vec![0x01, 2, b'{', b'"'];
    frames.extend_from_slice(&[0x80, 127]);
    frames.extend_from_slice(&(u64::MAX - 1).to_be_bytes());
    frames.extend_from_slice(b"}}");
    let url = hostile_engine(frames);
    let rt = runtime();
    let echo = Arc::new(Echo::default());
    let conn = Connection::start(rt.handle(), config(&url), echo.clone());
    assert_eq!(
        conn.wait_for(Duration::from_secs(10), |s| s == ConnectionState::Reconnecting),
        ConnectionState::Reconnecting
    );
    let error = conn.last_error().expect("the reason is recorded");
    assert!(error.contains("exceeds the maximum message size"), "{error}");
    assert!(echo.logs.lock().iter().any(|l| l.contains("connection to the engine lost")));
    conn.shutdown();
}

#[test]
fn url_credentials_path_and_extra_headers_reach_the_engine_over_ipv6() {
    let rt = runtime();
    let engine_config = EngineConfig { host: "::1".into(), ..EngineConfig::default() };
    let engine = rt.block_on(EngineHandle::start(engine_config)).unwrap();
    let port = engine.local_addr().port();
    let mut c = config(&format!("WS://al%40ice:s3cret@[::1]:{port}/?team=blue"));
    c.headers = vec![("X-Worker-Token".into(), "t-1".into())];
    let conn = Connection::start(rt.handle(), c, Arc::new(Echo::default()));
    connected(&conn);
    let upgrade = engine.upgrade_requests().pop().expect("the engine saw the upgrade");
    assert_eq!(upgrade.resource, "/?team=blue");
    let header = |name: &str| upgrade.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(header("host"), Some(format!("[::1]:{port}")));
    let basic = format!("Basic {}", data_encoding::BASE64.encode(b"al@ice:s3cret"));
    assert_eq!(header("authorization"), Some(basic));
    assert_eq!(header("x-worker-token").as_deref(), Some("t-1"));
    conn.shutdown();
}

#[test]
fn a_url_with_a_fragment_fails_at_once_with_a_clear_error() {
    let rt = runtime();
    let conn = Connection::start(rt.handle(), config("ws://127.0.0.1:9/#main"), Arc::new(Echo::default()));
    assert_eq!(
        conn.wait_for(Duration::from_secs(5), |s| s == ConnectionState::Failed),
        ConnectionState::Failed
    );
    let error = conn.last_error().unwrap();
    assert!(error.contains("fragment"), "{error}");
}

/// Records which thread completed a blocking call, then hands the outcome to its slot.
struct Recorded(Arc<Slot>, Arc<Mutex<Vec<std::thread::ThreadId>>>);

impl Completion for Recorded {
    fn complete(self: Box<Self>, outcome: Outcome) {
        self.1.lock().push(std::thread::current().id());
        self.0.put(outcome);
    }
}

fn blocking_call(
    conn: &Connection,
    function_id: &str,
    timeout: Duration,
    done_on: &Arc<Mutex<Vec<std::thread::ThreadId>>>,
) -> Outcome {
    let slot = Arc::new(Slot::default());
    let completion = Box::new(Recorded(slot.clone(), done_on.clone()));
    conn.call(Envelope::default(), function_id, Some("[7]"), None, timeout, completion).unwrap();
    conn.wait_result(&slot, Duration::from_secs(30)).expect("an outcome before the wait's limit")
}

/// Repeats `call` while the engine does not know the function yet (its registration is on
/// its way); returns the first other outcome.
fn until_registered<T>(mut call: impl FnMut() -> (Outcome, T)) -> (Outcome, T) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (outcome, extra) = call();
        match &outcome {
            Err(CallError::Remote(e)) if e.code == "function_not_found" && Instant::now() < deadline => {}
            _ => return (outcome, extra),
        }
    }
}

#[test]
fn a_blocking_caller_reads_its_own_result_while_the_loop_holds_the_link_without_reading() {
    let Workers { _rt, engine: _engine, server, caller } = two_workers(Echo::default());
    register_echo(&server, "echo");
    call_until_served(&caller, "echo");
    // An event loop that attached itself as the reader and is busy: only its fallback (every
    // few milliseconds, and not within that time of another read) would read for the caller.
    let _attached = caller.attach_reader().expect("connected");
    let done_on = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..100 {
        let outcome = blocking_call(&caller, "echo", Duration::from_secs(10), &done_on);
        assert_eq!(outcome.unwrap().unwrap().get(), "[7]");
    }
    let me = std::thread::current().id();
    let mine = done_on.lock().iter().filter(|t| **t == me).count();
    assert!(mine > 0, "no result was read by the thread waiting for it");
    caller.shutdown();
    server.shutdown();
}

#[test]
fn a_blocking_caller_polling_the_socket_is_woken_by_a_timeout_and_by_another_reader() {
    let Workers { _rt, engine: _engine, server, caller } = two_workers(Silent);
    register_echo(&server, "hang");
    let done_on = Arc::new(Mutex::new(Vec::new()));
    // Nothing arrives on the socket: the pending table's timer completes the call and must
    // wake the caller out of its poll (the wait's own limit is 30 s).
    let (outcome, waited) = until_registered(|| {
        let started = Instant::now();
        (blocking_call(&caller, "hang", Duration::from_millis(50), &done_on), started.elapsed())
    });
    assert!(matches!(outcome, Err(CallError::Timeout { .. })), "{outcome:?}");
    assert!(waited < Duration::from_secs(10), "the caller slept through its timeout");
    assert_ne!(done_on.lock().last(), Some(&std::thread::current().id()));

    // Another thread holds the reader: the caller waits to be handed its result.
    register_echo(&caller, "self-echo");
    let reader = Arc::new(Mutex::new(caller.attach_reader().expect("connected")));
    let stop = Arc::new(AtomicBool::new(false));
    let pumping = {
        let (reader, stop) = (reader.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                reader.lock().pump();
                std::thread::yield_now();
            }
        })
    };
    let (first, ()) =
        until_registered(|| (blocking_call(&caller, "self-echo", Duration::from_secs(10), &done_on), ()));
    assert_eq!(first.unwrap().unwrap().get(), "[7]");
    for _ in 0..20 {
        let outcome = blocking_call(&caller, "self-echo", Duration::from_secs(10), &done_on);
        assert_eq!(outcome.unwrap().unwrap().get(), "[7]");
    }
    stop.store(true, Ordering::Relaxed);
    pumping.join().unwrap();
    caller.shutdown();
    server.shutdown();
}

/// A scripted engine after v0.11.0: the test reads what the worker sends and answers by hand.
struct Scripted(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>);

impl Scripted {
    async fn accept(listener: &tokio::net::TcpListener) -> Scripted {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = Scripted(tokio_tungstenite::accept_async(tcp).await.unwrap());
        ws.send(r#"{"type":"workerregistered","worker_id":"w","reattach_token":"t"}"#).await;
        ws
    }

    async fn send(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.0.send(text.into()).await.unwrap();
    }

    /// The next text frame as JSON, or None when nothing comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<serde_json::Value> {
        use futures_util::StreamExt;
        loop {
            let frame = tokio::time::timeout(wait, self.0.next()).await.ok()??.ok()?;
            if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
                return serde_json::from_str(&text).ok();
            }
        }
    }

    /// Frames up to and including the `engine::workers::register` call.
    async fn until_announced(&mut self) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        while let Some(frame) = self.next(Duration::from_secs(5)).await {
            let done = frame["function_id"] == "engine::workers::register";
            seen.push(frame);
            if done {
                return seen;
            }
        }
        panic!("no engine::workers::register call in {seen:?}");
    }
}

#[test]
fn calls_queued_offline_wait_for_the_register_answer_on_newer_engines() {
    let rt = runtime();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let conn = Connection::start(rt.handle(), config(&url), Arc::new(Echo::default()));
    register_echo(&conn, "own::echo");
    let mut first = rt.block_on(Scripted::accept(&listener));
    let announced = rt.block_on(first.until_announced());
    assert_eq!(announced.last().unwrap()["action"]["type"], "void", "nothing is held on a first connect");
    connected(&conn); // workerregistered read before the link goes, or the state stays `connecting`
    drop(first);
    assert_eq!(
        conn.wait_for(Duration::from_secs(5), |s| s != ConnectionState::Connected),
        ConnectionState::Reconnecting
    );

    let outcome = call(&conn, "own::echo", "[1]", Duration::from_secs(10));
    let mut second = rt.block_on(Scripted::accept(&listener));
    let replay = rt.block_on(second.until_announced());
    let register = replay.last().unwrap();
    let id = register["invocation_id"].as_str().expect("the register call expects an answer").to_owned();
    assert!(replay.iter().all(|f| f["function_id"] != "own::echo"), "the call went out before the answer");
    // Held until the answer: nothing more comes, however long the engine takes.
    assert!(rt.block_on(second.next(Duration::from_millis(300))).is_none());
    let answer = format!(
        r#"{{"type":"invocationresult","invocation_id":"{id}","function_id":"engine::workers::register","result":{{"success":true}}}}"#
    );
    rt.block_on(second.send(&answer));
    let held = rt.block_on(second.next(Duration::from_secs(5))).expect("the held call follows the answer");
    assert_eq!(held["function_id"], "own::echo");
    let result = format!(
        r#"{{"type":"invocationresult","invocation_id":"{}","function_id":"own::echo","result":[1]}}"#,
        held["invocation_id"].as_str().unwrap()
    );
    rt.block_on(second.send(&result));
    let done = outcome.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(done.unwrap().map(|v| v.get().to_owned()).as_deref(), Some("[1]"));
}

/// Answers every invocation with `null` and keeps the calls.
#[derive(Default)]
struct Recorder(Mutex<Vec<InvokeFunction>>);

impl EventSink for Recorder {
    fn invocation(&self, conn: &Connection, call: InvokeFunction) {
        let id = call.invocation_id.clone();
        let function_id = call.function_id.clone();
        self.0.lock().push(call); // before the answer: the caller reads it once answered
        if let Some(id) = id {
            conn.answer(&id, &function_id, Ok(None), Envelope::default());
        }
    }
    fn message(&self, _: &Connection, _: Message) {}
    fn state_changed(&self, _: ConnectionState) {}
    fn log(&self, _: LogLevel, _: &str) {}
}

#[test]
fn records_the_engine_features_whichever_order_workerregistered_comes_in() {
    let rt = runtime();
    // 0.25 sends workerregistered, with its features, after engine::workers::register.
    let v025 = EngineConfig { generation: iii_engine_double::Generation::V025, ..Default::default() };
    let engine = rt.block_on(EngineHandle::start(v025)).unwrap();
    let conn = Connection::start(rt.handle(), config(&engine.url()), Arc::new(Echo::default()));
    assert!(conn.engine_features().is_empty() && !conn.engine_observes(), "unknown before it arrives");
    connected(&conn);
    assert_eq!(conn.engine_features(), ["observe.v1", "local-dispatch.v1"]);
    assert!(conn.engine_observes());
    conn.shutdown();
    // v0.11.0 and HEAD send it first, without features.
    for generation in [iii_engine_double::Generation::V011, iii_engine_double::Generation::Head] {
        let engine =
            rt.block_on(EngineHandle::start(EngineConfig { generation, ..Default::default() })).unwrap();
        let conn = Connection::start(rt.handle(), config(&engine.url()), Arc::new(Echo::default()));
        connected(&conn);
        assert!(conn.engine_features().is_empty(), "{generation:?}");
        assert!(!conn.engine_observes());
        conn.shutdown();
    }
    // Whatever the order, an injected workerregistered is read the same way. (Another name:
    // the engine may not have seen the first connection go yet.)
    let mut other = config(&engine.url());
    other.worker_metadata = Some(r#"{"runtime":"rust-test","name":"t2"}"#.into());
    let conn = Connection::start(rt.handle(), other, Arc::new(Echo::default()));
    connected(&conn);
    conn.handle_inbound(br#"{"type":"workerregistered","worker_id":"w","features":["observe.v1",7]}"#);
    assert_eq!((conn.engine_features(), conn.engine_observes()), (vec!["observe.v1".to_owned()], true));
    conn.shutdown();
}

#[test]
fn a_call_carries_its_metadata_caller_and_depth() {
    let rt = runtime();
    let v025 = EngineConfig { generation: iii_engine_double::Generation::V025, ..Default::default() };
    let engine = rt.block_on(EngineHandle::start(v025)).unwrap();
    let recorder = Arc::new(Recorder::default());
    let named = |name: &str| {
        let mut c = config(&engine.url());
        c.worker_metadata = Some(format!(r#"{{"runtime":"rust-test","name":"{name}"}}"#));
        c
    };
    // Two names: a 0.25 engine refuses a second live worker of the same name.
    let server = Connection::start(rt.handle(), named("server"), recorder.clone());
    let caller = Connection::start(rt.handle(), named("caller"), Arc::new(Echo::default()));
    connected(&server);
    connected(&caller);
    register_echo(&server, "ctx::f");
    call_until_served(&caller, "ctx::f");
    let asserted = iii_protocol::Caller::asserted("a::outer", "inv-1", None).to_json();
    let (tx, rx) = std::sync::mpsc::channel();
    let envelope = Envelope {
        metadata: Some(r#"{"tenant":"acme"}"#),
        caller: Some(&asserted),
        observe_depth: Some(2),
        ..Envelope::default()
    };
    caller.call(envelope, "ctx::f", Some("1"), None, Duration::from_secs(5), Box::new(Chan(tx))).unwrap();
    rx.recv().unwrap().unwrap();
    let last = recorder.0.lock().last().cloned().unwrap();
    assert_eq!(last.metadata.unwrap().get(), r#"{"tenant":"acme"}"#);
    assert_eq!(last.observe_depth, Some(2));
    let stamped = last.caller.unwrap();
    assert_eq!(
        (stamped.function_id.as_deref(), stamped.invocation_id.as_deref()),
        (Some("a::outer"), Some("inv-1"))
    );
    assert_eq!(stamped.worker_id, caller.worker_id(), "the engine stamps the calling connection");
    assert_eq!(stamped.worker_name.as_deref(), Some("caller"));
    // A call made outside any handler carries none of it: the engine's caller only.
    call_until_served(&caller, "ctx::f");
    let last = recorder.0.lock().last().cloned().unwrap();
    assert_eq!((last.metadata.is_none(), last.observe_depth), (true, None));
    assert_eq!(last.caller.unwrap().function_id, None);
    caller.shutdown();
    server.shutdown();
}
