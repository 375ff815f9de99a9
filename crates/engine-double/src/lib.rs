//! An in-process stand-in for the iii engine, used by the test suite and the README quickstart.
//! It is a test tool, not a production engine. `EngineConfig::generation` picks the engine it
//! behaves like: v0.11.0 (docs/protocol.md Part A, the default), HEAD (Part B) or 0.25.
//!
//! Covered: worker registration and routing (sync, void, enqueue), trigger types and bindings,
//! the `engine::*` listings and notifications (`builtins`, `triggers`), channels and their
//! data-plane sockets (`channels`), `stream::*` / `state::*` with custom-stream redirection
//! (`streams`, `state_fns`, `kv`), HTTP-invoked functions over plain `http://`
//! (`http_functions`), from HEAD on the newer engine's `reattach` and `registrationrejected`
//! behaviours, registration buffering, listings, namespaces and enqueue (`head`,
//! `head_listings`), at 0.25 feature negotiation, the stamped `caller` and the `/otel` socket
//! (`v025`), a bearer token on upgrades (`EngineConfig::token`), and telemetry frames with the
//! observability listings (`observability`), and 0.25's observe family: observers, observable
//! functions, owners' reports and owner calls (`observe`). Not covered: RBAC, the same function
//! id in two namespaces (ids are unique across namespaces here), trigger firing across
//! namespaces, `condition_function_id`, legacy triggers turned into observers.
//!
//! Layers, listed so that each module uses only modules listed before it: `conn`, `config`,
//! `reply` (vocabulary); `kv`, `telemetry_store`, `channels`, `http_functions`, `observe::book`,
//! `state` (data); `delivery`, `v025`, `observe`, `triggers`, `registry`, `queues`, `streams`,
//! `state_fns`, `observability`, `head` (mechanisms); `head_listings`, `builtins` (engine
//! functions); `routing`, `server` (entry points).

mod builtins;
mod channels;
pub mod config;
mod conn;
mod delivery;
mod head;
mod head_listings;
mod http_functions;
mod kv;
mod kv_head;
mod observability;
mod observe;
mod pubsub;
mod queues;
mod registry;
mod reply;
mod routing;
mod server;
mod state;
mod state_fns;
mod streams;
mod telemetry_store;
mod triggers;
mod v025;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub use config::{EngineConfig, Generation, UpgradeRequest};
use state::Engine;

/// One start..stop lifetime of the engine.
struct Run {
    engine: Arc<Engine>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

pub struct EngineHandle {
    config: EngineConfig,
    addr: SocketAddr,
    runtime: tokio::runtime::Handle,
    run: Mutex<Option<Run>>,
    /// Serialises stop/restart so two of them never interleave.
    lifecycle: tokio::sync::Mutex<()>,
}

impl EngineHandle {
    /// Binds the listener and spawns the engine on the current tokio runtime.
    pub async fn start(config: EngineConfig) -> std::io::Result<EngineHandle> {
        let addr = resolve(&config.host, config.port).await?;
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let run = launch(&config, listener);
        Ok(EngineHandle {
            config,
            addr,
            runtime: tokio::runtime::Handle::current(),
            run: Mutex::new(Some(run)),
            lifecycle: tokio::sync::Mutex::new(()),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Stops listening and drops every connection without a close frame, like a crash.
    pub async fn stop(&self) {
        let _guard = self.lifecycle.lock().await;
        self.stop_locked().await;
    }

    async fn stop_locked(&self) {
        let Some(run) = self.run.lock().take() else {
            return;
        };
        let _ = run.shutdown.send(true);
        for task in run.tasks {
            task.abort();
            let _ = task.await;
        }
        // Connection tasks notice the shutdown themselves; wait until their sockets are closed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while run.engine.live_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Starts again on the same port with fresh state.
    pub async fn restart(&self) -> std::io::Result<()> {
        let _guard = self.lifecycle.lock().await;
        self.stop_locked().await;
        let listener = bind_retrying(self.addr).await?;
        *self.run.lock() = Some(launch(&self.config, listener));
        Ok(())
    }

    /// Drops every current worker connection abruptly; the listener keeps accepting.
    pub fn disconnect_all(&self) {
        if let Some(engine) = self.engine() {
            for conn in engine.connections() {
                conn.kill.notify_one();
            }
        }
    }

    /// Sends every worker a Close frame (1000) and drops the connection once the worker answered
    /// (or after a second), like a proxy or an engine shutting down cleanly; waits until they are
    /// cleaned up (5 s at most). The listener keeps accepting.
    pub async fn close_all_gracefully(&self) {
        let Some(engine) = self.engine() else { return };
        let conns = engine.connections();
        for conn in &conns {
            let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
            conn.closing.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Err(TrySendError::Full(msg)) = conn.tx.try_send(WsMessage::Close(Some(frame))) {
                let conn = conn.clone();
                self.runtime.spawn(async move {
                    let _ = conn.tx.send(msg).await;
                });
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while conns.iter().any(|c| engine.connection(&c.id).is_some())
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// While `paused`, the engine reads nothing from any worker socket (connections stay open,
    /// pings go unanswered, calls stall), so clients see a stalled link. Writes still happen.
    pub fn pause_reading(&self, paused: bool) {
        if let Some(engine) = self.engine() {
            engine.paused.send_replace(paused);
        }
    }

    pub fn connection_count(&self) -> usize {
        self.engine().map_or(0, |e| e.state.lock().workers.len())
    }

    pub fn worker_ids(&self) -> Vec<String> {
        self.engine().map_or_else(Vec::new, |e| {
            let mut conns = e.connections();
            conns.sort_by(|a, b| (a.connected_at_ms, &a.id).cmp(&(b.connected_at_ms, &b.id)));
            conns.iter().map(|c| c.id.clone()).collect()
        })
    }

    pub fn function_ids(&self) -> Vec<String> {
        self.engine().map_or_else(Vec::new, |e| e.function_ids())
    }

    /// Channels created by `engine::channels::create` in this run (they are never removed).
    pub fn channel_count(&self) -> usize {
        self.engine().map_or(0, |e| e.channels.lock().len())
    }

    pub fn trigger_ids(&self) -> Vec<String> {
        self.engine().map_or_else(Vec::new, |e| {
            let mut ids: Vec<String> = e.state.lock().triggers.keys().cloned().collect();
            ids.sort();
            ids
        })
    }

    /// `(worker id, features)` of the live workers that declared `features` in
    /// `engine::workers::register`, in connection order.
    pub fn worker_features(&self) -> Vec<(String, Vec<String>)> {
        let Some(engine) = self.engine() else { return Vec::new() };
        let state = engine.state.lock();
        let mut workers: Vec<_> = state.workers.values().collect();
        workers
            .sort_by(|a, b| (a.conn.connected_at_ms, &a.conn.id).cmp(&(b.conn.connected_at_ms, &b.conn.id)));
        workers.iter().filter_map(|w| Some((w.conn.id.clone(), w.meta.features.clone()?))).collect()
    }

    /// Message `type`s received from workers, oldest first (the last 10 000).
    pub fn received_kinds(&self) -> Vec<String> {
        self.engine().map_or_else(Vec::new, |e| e.kinds.lock().iter().map(|k| (*k).to_owned()).collect())
    }

    /// The items of owners' `invocationsobserved` reports as received, as JSON, oldest first
    /// (the last 1000).
    pub fn reported_items(&self) -> Vec<String> {
        self.engine().map_or_else(Vec::new, |e| e.reported.lock().iter().cloned().collect())
    }

    /// What owners reported in `localinvocationstats`, summed per function:
    /// `(function_id, calls, failed calls)`.
    pub fn local_stats(&self) -> Vec<(String, u64, u64)> {
        self.engine().map_or_else(Vec::new, |e| {
            let book = e.observers.lock();
            book.local_stats.iter().map(|(f, s)| (f.clone(), s.count, s.errors)).collect()
        })
    }

    /// The upgrade requests of connections so far, oldest first (the last 1000).
    pub fn upgrade_requests(&self) -> Vec<UpgradeRequest> {
        self.engine().map_or_else(Vec::new, |e| e.upgrades.lock().iter().cloned().collect())
    }

    /// What the engine would have written to its log (dropped frames, ignored results, ...).
    pub fn logs(&self) -> Vec<String> {
        self.engine().map_or_else(Vec::new, |e| e.logs.lock().iter().cloned().collect())
    }

    /// Payloads of messages that exhausted their deliveries on `queue` (its dead-letter list).
    pub fn dead_letters(&self, queue: &str) -> Vec<String> {
        self.engine().map_or_else(Vec::new, |e| e.dead_letters(queue))
    }

    pub fn send_raw(&self, worker_id: &str, frame: String) -> bool {
        self.inject(worker_id, WsMessage::Text(frame.into()))
    }

    pub fn send_raw_binary(&self, worker_id: &str, bytes: Vec<u8>) -> bool {
        self.inject(worker_id, WsMessage::Binary(bytes.into()))
    }

    fn inject(&self, worker_id: &str, msg: WsMessage) -> bool {
        let Some(conn) = self.engine().and_then(|e| e.connection(worker_id)) else {
            return false;
        };
        match conn.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(msg)) => {
                self.runtime.spawn(async move {
                    let _ = conn.tx.send(msg).await;
                });
                true
            }
            Err(_) => false,
        }
    }

    fn engine(&self) -> Option<Arc<Engine>> {
        self.run.lock().as_ref().map(|r| r.engine.clone())
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        if let Some(run) = self.run.get_mut().take() {
            let _ = run.shutdown.send(true);
            for task in run.tasks {
                task.abort();
            }
        }
    }
}

fn launch(config: &EngineConfig, listener: TcpListener) -> Run {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let engine = Engine::new(config.clone(), shutdown_rx);
    triggers::install_builtin_types(&mut engine.state.lock());
    let engine = Arc::new(engine);
    let mut tasks = vec![tokio::spawn(server::accept_loop(engine.clone(), listener))];
    tasks.extend(queues::spawn_consumers(&engine));
    tasks.push(tokio::spawn(builtins::poll_functions(engine.clone())));
    Run { engine, shutdown, tasks }
}

async fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    tokio::net::lookup_host((host, port)).await?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("cannot resolve {host}"))
    })
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // Connections closed by the engine linger in TIME_WAIT; restart must still get the port.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn bind_retrying(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut attempt = 0;
    loop {
        match bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) if attempt < 50 && e.kind() == std::io::ErrorKind::AddrInUse => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
