//! Tests driving the engine double with raw WebSocket clients.

mod builtins;
mod channels;
mod head;
mod head_listings;
mod http_functions;
mod lifecycle;
mod observability;
mod observe;
mod routing;
mod streams;
mod throughput;
mod triggers;
mod v025;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::config::QueueConfig;
use super::{EngineConfig, EngineHandle};

const WAIT: Duration = Duration::from_secs(5);

pub(super) async fn engine() -> EngineHandle {
    EngineHandle::start(config()).await.expect("engine starts")
}

/// An engine with the newer-engine behaviours on (`head_protocol`).
pub(super) async fn head_engine() -> EngineHandle {
    EngineHandle::start(EngineConfig { head_protocol: true, ..config() }).await.expect("engine starts")
}

pub(super) fn config() -> EngineConfig {
    EngineConfig {
        queues: vec![
            QueueConfig { backoff_ms: 50, ..QueueConfig::default() },
            QueueConfig { name: "serial".into(), concurrency: 1, max_retries: 2, backoff_ms: 20 },
        ],
        functions_poll_interval: Duration::from_millis(100),
        ..EngineConfig::default()
    }
}

pub(super) struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub id: String,
    /// The `workerregistered` frame.
    pub hello: Value,
}

impl Client {
    pub async fn connect(engine: &EngineHandle) -> Client {
        let (mut ws, _) = tokio_tungstenite::connect_async(engine.url()).await.expect("connects");
        let first = next_json(&mut ws).await;
        assert_eq!(first["type"], "workerregistered", "{first}");
        let id = first["worker_id"].as_str().expect("worker_id").to_owned();
        Client { ws, id, hello: first }
    }

    pub async fn send(&mut self, msg: Value) {
        self.send_text(&msg.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(WsMessage::Text(text.to_owned().into())).await.expect("send");
    }

    pub async fn recv(&mut self) -> Value {
        next_json(&mut self.ws).await
    }

    /// Asserts that nothing arrives for a while.
    pub async fn silence(&mut self, ms: u64) {
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(ms), self.ws.next()).await {
            panic!("expected silence, got {frame:?}");
        }
    }

    pub async fn register(&mut self, id: &str) {
        self.send(json!({"type": "registerfunction", "id": id})).await;
    }

    /// A sync call; returns the `invocationresult`.
    pub async fn call(&mut self, function_id: &str, data: Value) -> Value {
        let id = uuid::Uuid::new_v4().to_string();
        self.send(
            json!({"type": "invokefunction", "invocation_id": id, "function_id": function_id, "data": data}),
        )
        .await;
        let res = self.recv().await;
        assert_eq!(res["type"], "invocationresult", "{res}");
        assert_eq!(res["invocation_id"], id.as_str());
        res
    }

    /// Answers an incoming `invokefunction` with a result.
    pub async fn reply(&mut self, inv: &Value, result: Value) {
        self.send(json!({"type": "invocationresult", "invocation_id": inv["invocation_id"],
            "function_id": inv["function_id"], "result": result}))
            .await;
    }

    pub async fn reply_error(&mut self, inv: &Value, code: &str) {
        self.send(json!({"type": "invocationresult", "invocation_id": inv["invocation_id"],
            "function_id": inv["function_id"], "error": {"code": code, "message": "boom"}}))
            .await;
    }
}

pub(super) async fn next_json(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.expect("frame in time");
        match frame.expect("connection open").expect("frame ok") {
            WsMessage::Text(t) => return serde_json::from_str(&t).expect("engine sends JSON"),
            WsMessage::Binary(b) => panic!("engine sent binary {b:?}"),
            _ => continue,
        }
    }
}

/// Polls a condition until it holds (registrations are not acknowledged on the wire).
pub(super) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(super) async fn has_function(engine: &EngineHandle, id: &str) {
    until(id, || engine.function_ids().iter().any(|f| f == id)).await;
}

#[test]
fn the_handle_can_be_shared_across_threads() {
    fn check<T: Send + Sync + 'static>() {}
    check::<EngineHandle>();
}
