//! The WebSocket listener and the per-connection reader/writer tasks.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::channels::{self, Channel, Dir};
use super::config::UpgradeRequest;
use super::conn::{Conn, Registrations};
use super::reply::{new_id, now_ms};
use super::state::{Engine, Worker};
use super::{head, observability, observe, registry, routing, triggers, v025};
use iii_protocol::Message;

const OUTBOUND_CAPACITY: usize = 64;
/// How long a worker gets to answer the engine's Close frame before its socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
const TELEMETRY_PREFIXES: [&[u8]; 3] = [b"OTLP", b"MTRC", b"LOGS"];

type Ws = WebSocketStream<TcpStream>;

pub(crate) async fn accept_loop(engine: Arc<Engine>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve(engine.clone(), tcp, peer));
            }
            Err(e) => {
                engine.log(format!("accept failed: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(Some(16 << 20))
}

/// What an upgrade request asked for.
enum Route {
    Worker,
    Channel(Arc<Channel>, Dir),
    /// 0.25's telemetry-only socket.
    Telemetry,
}

/// Records the upgrade, checks its token and path, and answers it.
#[allow(clippy::result_large_err)] // the signature is tungstenite's callback type
fn accept_upgrade(
    engine: &Engine,
    req: &Request,
    mut resp: Response,
    route: &mut Route,
) -> Result<Response, ErrorResponse> {
    check_upgrade(engine, req, route)?;
    if engine.config.v025() {
        resp.headers_mut().insert(v025::CAPABILITIES_HEADER, HeaderValue::from_static(v025::CAPABILITIES));
    }
    Ok(resp)
}

#[allow(clippy::result_large_err)] // the signature is tungstenite's callback type
fn check_upgrade(engine: &Engine, req: &Request, route: &mut Route) -> Result<(), ErrorResponse> {
    engine.record_upgrade(UpgradeRequest {
        resource: req.uri().path_and_query().map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
    });
    if let Some(token) = engine.config.required_token() {
        if !bearer_matches(req, token) {
            let mut refused = ErrorResponse::new(Some("Unauthorized".into()));
            *refused.status_mut() = StatusCode::UNAUTHORIZED;
            refused.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Err(refused);
        }
    }
    let path = req.uri().path();
    if path == "/" {
        return Ok(());
    }
    if path == v025::TELEMETRY_PATH && engine.config.v025() {
        *route = Route::Telemetry;
        return Ok(());
    }
    if let Some(rest) = path.strip_prefix(channels::PATH_PREFIX) {
        let (channel, dir) = channels::lookup(&engine.channels, rest, req.uri().query())?;
        *route = Route::Channel(channel, dir);
        return Ok(());
    }
    let mut not_found = ErrorResponse::new(Some("Not Found".into()));
    *not_found.status_mut() = StatusCode::NOT_FOUND;
    Err(not_found)
}

/// `Authorization: Bearer <token>`, the scheme in any case.
fn bearer_matches(req: &Request, token: &str) -> bool {
    req.headers().get_all(header::AUTHORIZATION).iter().filter_map(|v| v.to_str().ok()).any(|value| {
        value.trim().split_once(char::is_whitespace).is_some_and(|(scheme, credentials)| {
            scheme.eq_ignore_ascii_case("bearer") && credentials.trim() == token
        })
    })
}

async fn serve(engine: Arc<Engine>, tcp: TcpStream, peer: SocketAddr) {
    let _live = engine.live_guard();
    let mut shutdown = engine.shutdown.clone();
    let mut route = Route::Worker;
    #[allow(clippy::result_large_err)] // the signature is tungstenite's callback type
    let callback = |req: &Request, resp: Response| accept_upgrade(&engine, req, resp, &mut route);
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(ws_config()));
    let ws = tokio::select! {
        ws = handshake => match ws {
            Ok(ws) => ws,
            Err(e) => return engine.log(format!("handshake with {peer} failed: {e}")),
        },
        _ = shutdown.wait_for(|s| *s) => return,
    };
    match route {
        Route::Worker => serve_worker(engine, ws, peer).await,
        Route::Channel(channel, dir) => tokio::select! {
            _ = channels::serve(channel, dir, ws) => {}
            _ = shutdown.wait_for(|s| *s) => {}
        },
        Route::Telemetry => tokio::select! {
            _ = serve_telemetry(&engine, ws) => {}
            _ = shutdown.wait_for(|s| *s) => {}
        },
    }
}

/// Stores the telemetry frames of an `/otel` socket and ignores everything else on it.
async fn serve_telemetry(engine: &Arc<Engine>, mut ws: Ws) {
    while let Some(frame) = ws.next().await {
        match frame {
            Ok(WsMessage::Binary(bytes)) if TELEMETRY_PREFIXES.iter().any(|p| bytes.starts_with(p)) => {
                observability::ingest(engine, &bytes)
            }
            Ok(_) => {}
            Err(e) => return engine.log(format!("telemetry socket read error: {e}")),
        }
    }
}

async fn serve_worker(engine: Arc<Engine>, ws: Ws, peer: SocketAddr) {
    let mut shutdown = engine.shutdown.clone();
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let reattach_token = engine.config.head_rules().then(new_id);
    let conn = Arc::new(Conn {
        id: new_id(),
        tx,
        kill: Notify::new(),
        ip: peer.ip().to_string(),
        connected_at_ms: now_ms(),
        reattach_token: reattach_token.clone(),
        closing: AtomicBool::new(false),
        registrations: tokio::sync::Mutex::new(if engine.config.head_rules() {
            Registrations::Buffering(Vec::new())
        } else {
            Registrations::Applied
        }),
        greeted: AtomicBool::new(!engine.config.v025()),
    });
    if !engine.config.v025() {
        // Queued before the connection becomes visible, so nothing can overtake it.
        let _ = conn.tx.try_send(WsMessage::Text(v025::hello(&engine, &conn).into()));
    }
    let mut writer = tokio::spawn(write_loop(sink, rx));
    engine.state.lock().workers.insert(
        conn.id.clone(),
        Worker { conn: conn.clone(), meta: Default::default(), functions: Default::default() },
    );
    triggers::fire_worker_event(&engine, "worker_connected", &conn.id);
    let grace =
        engine.config.head_rules().then(|| tokio::spawn(head::grace_timer(engine.clone(), conn.clone())));

    let read = read_loop(&engine, &conn, stream);
    tokio::pin!(read);
    let mut writer_done = false;
    let mut graceful = false;
    let stopped = tokio::select! {
        _ = &mut read => false,
        closed = &mut writer => {
            writer_done = true;
            graceful = matches!(closed, Ok(true));
            false
        }
        _ = conn.kill.notified() => false,
        _ = shutdown.wait_for(|s| *s) => true,
    };
    if graceful {
        // The engine sent Close: give the peer a moment to answer it.
        let _ = tokio::time::timeout(CLOSE_GRACE, &mut read).await;
    }
    if !writer_done {
        // Awaiting the aborted task guarantees the sink, and so the socket, is gone.
        writer.abort();
        let _ = writer.await;
    }
    if let Some(grace) = grace {
        grace.abort();
    }
    if !stopped && !engine.is_shut_down() {
        registry::teardown(&engine, &conn).await;
    }
}

/// The only owner of the sink: sends whatever is queued, one flush per batch. Returns true
/// when it stopped after writing a Close frame.
async fn write_loop(mut sink: SplitSink<Ws, WsMessage>, mut rx: mpsc::Receiver<WsMessage>) -> bool {
    let mut batch = Vec::with_capacity(OUTBOUND_CAPACITY);
    while rx.recv_many(&mut batch, OUTBOUND_CAPACITY).await > 0 {
        let mut closed = false;
        for msg in batch.drain(..) {
            closed = matches!(msg, WsMessage::Close(_));
            if sink.feed(msg).await.is_err() {
                return false;
            }
            if closed {
                break;
            }
        }
        if sink.flush().await.is_err() {
            return false;
        }
        if closed {
            return true;
        }
    }
    false
}

async fn read_loop(engine: &Arc<Engine>, conn: &Arc<Conn>, mut stream: SplitStream<Ws>) {
    let mut paused = engine.paused.subscribe();
    loop {
        let Some(frame) = stream.next().await else {
            return;
        };
        if !conn.is_closing() {
            // Paused: hold this frame and read nothing more (no pongs either) until resumed.
            wait_unpaused(&mut paused).await;
        }
        if conn.is_closing() {
            continue;
        }
        match frame {
            Ok(WsMessage::Text(text)) => handle_frame(engine, conn, text.as_bytes()).await,
            Ok(WsMessage::Binary(bytes)) => {
                if TELEMETRY_PREFIXES.iter().any(|p| bytes.starts_with(p)) {
                    observability::ingest(engine, &bytes);
                } else {
                    handle_frame(engine, conn, &bytes).await;
                }
            }
            Ok(_) => {}
            Err(e) => {
                engine.log(format!("connection {} read error: {e}", conn.id));
                return;
            }
        }
    }
}

async fn wait_unpaused(paused: &mut tokio::sync::watch::Receiver<bool>) {
    let is_paused = *paused.borrow();
    if is_paused {
        let _ = paused.wait_for(|p| !*p).await;
    }
}

async fn handle_frame(engine: &Arc<Engine>, conn: &Arc<Conn>, bytes: &[u8]) {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let msg = match Message::decode(bytes) {
        Ok(msg) => msg,
        Err(e) => return engine.log(format!("dropped frame from {}: {e}", conn.id)),
    };
    engine.record_kind(msg.kind());
    match msg {
        Message::InvokeFunction(inv) => {
            if inv.data.is_none() && !present(bytes).data {
                return engine.log(format!("dropped invokefunction from {}: missing data", conn.id));
            }
            routing::invoke(engine, conn, inv).await;
        }
        Message::InvocationResult(res) => routing::result(engine, conn, res).await,
        Message::Reattach { previous_worker_id, reattach_token } if engine.config.head_rules() => {
            registry::reattach(engine, conn, &previous_worker_id, &reattach_token).await
        }
        Message::RegisterTrigger(t) if t.config.is_none() && !present(bytes).config => {
            engine.log(format!("dropped registertrigger from {}: missing config", conn.id))
        }
        msg @ (Message::RegisterFunction(_)
        | Message::UnregisterFunction { .. }
        | Message::RegisterService(_)
        | Message::RegisterTriggerType(_)
        | Message::RegisterTrigger(_)
        | Message::UnregisterTrigger { .. }) => head::admit(engine, conn, msg).await,
        Message::TriggerRegistrationResult(r) => engine.log(format!(
            "triggerregistrationresult for {} ({}): {}",
            r.id,
            r.trigger_type,
            r.error.map_or_else(|| "ok".to_owned(), |e| format!("{}: {}", e.code, e.message))
        )),
        Message::Observe(msg) if engine.config.v025() => observe::handle(engine, conn, *msg).await,
        Message::Ping => conn.send(Message::Pong.encode()).await,
        Message::Pong => {}
        other => engine.log(format!("dropped frame from {}: unknown variant {}", conn.id, other.kind())),
    }
}

/// Tells a field that is absent from one that is `null`, which `Message::decode` merges.
#[derive(Deserialize, Default)]
struct Present {
    #[serde(default, deserialize_with = "exists")]
    data: bool,
    #[serde(default, deserialize_with = "exists")]
    config: bool,
}

fn exists<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

fn present(bytes: &[u8]) -> Present {
    serde_json::from_slice(bytes).unwrap_or_default()
}
