//! The WebSocket listener and the per-connection reader/writer tasks.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::state::{new_id, now_ms, Conn, Engine, Worker};
use super::{registry, routing, triggers};
use crate::protocol::Message;

const OUTBOUND_CAPACITY: usize = 64;
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

#[allow(clippy::result_large_err)] // the signature is tungstenite's callback type
fn check_path(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    if req.uri().path() == "/" {
        return Ok(resp);
    }
    let mut not_found = ErrorResponse::new(Some("Not Found".into()));
    *not_found.status_mut() = StatusCode::NOT_FOUND;
    Err(not_found)
}

async fn serve(engine: Arc<Engine>, tcp: TcpStream, peer: SocketAddr) {
    let _live = engine.live_guard();
    let mut shutdown = engine.shutdown.clone();
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(tcp, check_path, Some(ws_config()));
    let ws = tokio::select! {
        ws = handshake => match ws {
            Ok(ws) => ws,
            Err(e) => return engine.log(format!("handshake with {peer} failed: {e}")),
        },
        _ = shutdown.wait_for(|s| *s) => return,
    };
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let conn = Arc::new(Conn {
        id: new_id(),
        tx,
        kill: Notify::new(),
        ip: peer.ip().to_string(),
        connected_at_ms: now_ms(),
    });
    // Queued before the connection becomes visible, so nothing can overtake it.
    let hello = Message::WorkerRegistered { worker_id: conn.id.clone(), reattach_token: None };
    let _ = conn.tx.try_send(WsMessage::Text(hello.encode().into()));
    let mut writer = tokio::spawn(write_loop(sink, rx));
    engine.state.lock().workers.insert(
        conn.id.clone(),
        Worker { conn: conn.clone(), meta: Default::default(), functions: Default::default() },
    );
    triggers::fire_worker_event(&engine, "worker_connected", &conn.id);

    let mut writer_done = false;
    let stopped = tokio::select! {
        _ = read_loop(&engine, &conn, stream) => false,
        _ = &mut writer => {
            writer_done = true;
            false
        }
        _ = conn.kill.notified() => false,
        _ = shutdown.wait_for(|s| *s) => true,
    };
    if !writer_done {
        // Awaiting the aborted task guarantees the sink, and so the socket, is gone.
        writer.abort();
        let _ = writer.await;
    }
    if !stopped && !engine.is_shut_down() {
        registry::teardown(&engine, &conn).await;
    }
}

/// The only owner of the sink: sends whatever is queued, one flush per batch.
async fn write_loop(mut sink: SplitSink<Ws, WsMessage>, mut rx: mpsc::Receiver<WsMessage>) {
    let mut batch = Vec::with_capacity(OUTBOUND_CAPACITY);
    while rx.recv_many(&mut batch, OUTBOUND_CAPACITY).await > 0 {
        for msg in batch.drain(..) {
            if sink.feed(msg).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

async fn read_loop(engine: &Arc<Engine>, conn: &Arc<Conn>, mut stream: SplitStream<Ws>) {
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(WsMessage::Text(text)) => handle_frame(engine, conn, text.as_bytes()).await,
            Ok(WsMessage::Binary(bytes)) => {
                if !TELEMETRY_PREFIXES.iter().any(|p| bytes.starts_with(p)) {
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
        Message::RegisterFunction(f) => registry::register_function(engine, conn, f),
        Message::UnregisterFunction { id } => registry::unregister_function(engine, conn, &id),
        Message::RegisterService(s) => registry::register_service(engine, s),
        Message::RegisterTriggerType(t) => triggers::register_type(engine, conn, t).await,
        Message::RegisterTrigger(t) => {
            if t.config.is_none() && !present(bytes).config {
                return engine.log(format!("dropped registertrigger from {}: missing config", conn.id));
            }
            triggers::register(engine, conn, t).await;
        }
        Message::UnregisterTrigger { id, .. } => triggers::unregister(engine, &id).await,
        Message::TriggerRegistrationResult(r) => engine.log(format!(
            "triggerregistrationresult for {} ({}): {}",
            r.id,
            r.trigger_type,
            r.error.map_or_else(|| "ok".to_owned(), |e| format!("{}: {}", e.code, e.message))
        )),
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
