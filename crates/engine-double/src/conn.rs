//! One worker connection as the rest of the engine double sees it: its outbound queue, its
//! close, and its registrations while HEAD buffers them.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// One worker connection as seen by the rest of the engine.
pub(crate) struct Conn {
    pub id: String,
    /// Bounded like the real engine's per-connection outbound buffer (docs/protocol.md 3.5).
    pub tx: mpsc::Sender<WsMessage>,
    pub kill: Notify,
    pub ip: String,
    pub connected_at_ms: u64,
    /// Given in `workerregistered` in HEAD mode; a later `reattach` must present it.
    pub reattach_token: Option<String>,
    /// Set once the engine queued a Close frame: incoming frames are no longer handled.
    pub closing: AtomicBool,
    /// HEAD: registrations wait here until the connection's namespace is fixed.
    pub registrations: tokio::sync::Mutex<Registrations>,
    /// `workerregistered` was sent (at once before 0.25; after `engine::workers::register` at 0.25).
    pub greeted: AtomicBool,
}

/// HEAD buffers a connection's registrations until `engine::workers::register` (or the grace
/// period) fixes its namespace (docs/protocol.md B.1 #1); v0.11.0 applies them at once.
pub(crate) enum Registrations {
    Buffering(Vec<iii_protocol::Message>),
    Applied,
}

impl Conn {
    pub async fn send(&self, text: String) {
        let _ = self.tx.send(WsMessage::Text(text.into())).await;
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Queues a Close frame; the connection ends once it is written (see `server::write_loop`).
    pub async fn close(&self, frame: Option<CloseFrame>) {
        self.closing.store(true, Ordering::Relaxed);
        let _ = self.tx.send(WsMessage::Close(frame)).await;
    }
}
