//! Shared state of one engine run: connections, registries and the pending-call table.
//!
//! Everything lives behind one mutex so that routing a call (lookup + pending insert) and
//! tearing down a connection (unregister + failing its calls) can never interleave.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::channels::Channel;
use super::http_functions::HttpFunction;
use super::kv::Store;
use super::queues::Queue;
use super::EngineConfig;
use crate::protocol::{ErrorBody, Json};

const MAX_LOGS: usize = 1_000;
const MAX_KINDS: usize = 10_000;

/// One worker connection as seen by the rest of the engine.
pub(crate) struct Conn {
    pub id: String,
    /// Bounded like the real engine's per-connection outbound buffer (protocol.md 3.5).
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
}

/// HEAD buffers a connection's registrations until `engine::workers::register` (or the grace
/// period) fixes its namespace (protocol.md B.1 #1); v0.11.0 applies them at once.
pub(crate) enum Registrations {
    Buffering(Vec<crate::protocol::Message>),
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

#[derive(Default, Clone)]
pub(crate) struct WorkerMeta {
    pub runtime: Option<String>,
    pub version: Option<String>,
    pub name: Option<String>,
    pub os: Option<String>,
    pub pid: Option<u32>,
    /// HEAD additions; `namespace` is `None` until announced (then `default` if absent).
    pub namespace: Option<String>,
    pub description: Option<String>,
    pub isolation: Option<String>,
    #[allow(dead_code)] // kept like the real engine does; no v0.11.0 listing shows it
    pub telemetry: Option<Json>,
}

pub(crate) struct Worker {
    pub conn: Arc<Conn>,
    pub meta: WorkerMeta,
    /// Every id this connection registered; all are removed when it goes away.
    pub functions: BTreeSet<String>,
}

pub(crate) struct Function {
    pub owner: Arc<Conn>,
    pub description: Option<String>,
    pub request_format: Option<Json>,
    pub response_format: Option<Json>,
    pub metadata: Option<Json>,
    /// HEAD: the namespace the function was registered in (always `default` at v0.11.0).
    pub namespace: String,
    /// Set for HTTP-invoked functions: the engine calls the URL instead of a worker.
    pub http: Option<Arc<HttpFunction>>,
}

#[allow(dead_code)] // stored for completeness; services only matter to dashboards
pub(crate) struct Service {
    pub name: String,
    pub description: Option<String>,
    pub parent_service_id: Option<String>,
}

pub(crate) struct TriggerType {
    /// `None` for the engine's own types.
    pub provider: Option<Arc<Conn>>,
    pub description: String,
    pub trigger_request_format: Option<Json>,
    pub call_request_format: Option<Json>,
}

pub(crate) struct Binding {
    pub trigger_type: String,
    pub function_id: String,
    pub config: Option<Json>,
    pub metadata: Option<Json>,
    pub owner: Arc<Conn>,
    /// HEAD: namespace of the target function and of the type's provider, as sent.
    pub namespace: Option<String>,
    pub trigger_namespace: Option<String>,
}

/// Where the result of a call delivered to a worker goes.
pub(crate) enum Reply {
    /// A sync call: back to the caller under the same invocation id.
    Caller(Arc<Conn>),
    /// Void calls and engine-originated notifications: errors are only logged.
    Discard,
    /// Queue deliveries wait for the outcome to decide on redelivery.
    Await(oneshot::Sender<Result<Option<Json>, ErrorBody>>),
}

pub(crate) struct Pending {
    pub callee: Arc<Conn>,
    pub function_id: String,
    pub reply: Reply,
}

#[derive(Default)]
pub(crate) struct State {
    pub workers: HashMap<String, Worker>,
    pub functions: HashMap<String, Function>,
    pub services: HashMap<String, Service>,
    pub trigger_types: HashMap<String, TriggerType>,
    pub triggers: HashMap<String, Binding>,
    pub pending: HashMap<String, Pending>,
}

pub(crate) struct Engine {
    pub config: EngineConfig,
    pub state: Mutex<State>,
    pub queues: HashMap<String, Arc<Queue>>,
    pub logs: Mutex<VecDeque<String>>,
    pub kinds: Mutex<VecDeque<&'static str>>,
    /// The upgrade requests of every connection, oldest first (the last `MAX_LOGS`).
    pub upgrades: Mutex<VecDeque<super::UpgradeRequest>>,
    pub shutdown: watch::Receiver<bool>,
    /// `engine::channels::create` channels by id; they live as long as the engine run.
    pub channels: Mutex<HashMap<String, Arc<Channel>>>,
    /// The `stream::*` and `state::*` in-memory stores.
    pub streams: Mutex<Store>,
    pub states: Mutex<Store>,
    /// While true, worker sockets are not read (`EngineHandle::pause_reading`).
    pub paused: watch::Sender<bool>,
    /// Spans, logs and metrics received in telemetry frames.
    pub observability: Mutex<super::observability::Store>,
    pub started_at_ms: u64,
    live: AtomicUsize,
}

impl Engine {
    pub fn new(config: EngineConfig, shutdown: watch::Receiver<bool>) -> Engine {
        let queues =
            config.queues.iter().map(|q| (q.name.clone(), Arc::new(Queue::new(q.clone())))).collect();
        let mut state = State::default();
        super::triggers::install_builtin_types(&mut state);
        Engine {
            config,
            state: Mutex::new(state),
            queues,
            logs: Mutex::new(VecDeque::new()),
            kinds: Mutex::new(VecDeque::new()),
            upgrades: Mutex::new(VecDeque::new()),
            shutdown,
            channels: Mutex::new(HashMap::new()),
            streams: Mutex::new(Store::default()),
            states: Mutex::new(Store::default()),
            paused: watch::Sender::new(false),
            observability: Mutex::new(Default::default()),
            started_at_ms: now_ms(),
            live: AtomicUsize::new(0),
        }
    }

    pub fn log(&self, line: impl Into<String>) {
        let mut logs = self.logs.lock();
        if logs.len() == MAX_LOGS {
            logs.pop_front();
        }
        logs.push_back(line.into());
    }

    pub fn record_upgrade(&self, request: super::UpgradeRequest) {
        let mut upgrades = self.upgrades.lock();
        if upgrades.len() == MAX_LOGS {
            upgrades.pop_front();
        }
        upgrades.push_back(request);
    }

    pub fn record_kind(&self, kind: &'static str) {
        let mut kinds = self.kinds.lock();
        if kinds.len() == MAX_KINDS {
            kinds.pop_front();
        }
        kinds.push_back(kind);
    }

    pub fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn connections(&self) -> Vec<Arc<Conn>> {
        self.state.lock().workers.values().map(|w| w.conn.clone()).collect()
    }

    pub fn connection(&self, worker_id: &str) -> Option<Arc<Conn>> {
        self.state.lock().workers.get(worker_id).map(|w| w.conn.clone())
    }

    pub fn function_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.state.lock().functions.keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Counts a connection task as alive until the guard drops (its socket is closed by then).
    pub fn live_guard(self: &Arc<Self>) -> LiveGuard {
        self.live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.clone())
    }
}

pub(crate) struct LiveGuard(Arc<Engine>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
