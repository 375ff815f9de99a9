//! Shared state of one engine run: connections, registries and the pending-call table.
//!
//! Everything lives behind one mutex so that routing a call (lookup + pending insert) and
//! tearing down a connection (unregister + failing its calls) can never interleave.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use super::channels::Channels;
use super::config::{EngineConfig, QueueConfig, UpgradeRequest};
use super::conn::Conn;
use super::http_functions::HttpFunction;
use super::kv::Store;
use super::observe::book::Book;
use super::reply::{now_ms, Reply};
use super::telemetry_store;
use iii_protocol::Json;

const MAX_LOGS: usize = 1_000;
const MAX_KINDS: usize = 10_000;

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
    /// 0.25: the protocol features the worker declared (`None`: it declared none).
    pub features: Option<Vec<String>>,
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
    /// 0.25: `registerfunction.observe`, the ObserveDescriptor as sent.
    pub observe: Option<Json>,
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

/// A named queue (docs/protocol.md 4.2): jobs waiting for delivery and the dead-letter list.
pub(crate) struct Job {
    pub(super) function_id: String,
    pub(super) data: Option<Json>,
    pub(super) traceparent: Option<String>,
    pub(super) baggage: Option<String>,
}

pub(crate) struct Queue {
    pub(super) config: QueueConfig,
    pub(super) tx: mpsc::UnboundedSender<Job>,
    pub(super) rx: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    pub(super) dead: Mutex<Vec<Job>>,
}

impl Queue {
    pub fn new(config: QueueConfig) -> Queue {
        let (tx, rx) = mpsc::unbounded_channel();
        Queue { config, tx, rx: Mutex::new(Some(rx)), dead: Mutex::new(Vec::new()) }
    }
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

impl State {
    /// Calls `conn` is part of right now, as callee or as caller (`active_invocations`).
    pub fn in_flight(&self, conn: &Arc<Conn>) -> usize {
        self.pending
            .values()
            .filter(|p| {
                Arc::ptr_eq(&p.callee, conn) || matches!(&p.reply, Reply::Caller(c) if Arc::ptr_eq(c, conn))
            })
            .count()
    }
}

pub(crate) struct Engine {
    pub config: EngineConfig,
    pub state: Mutex<State>,
    pub queues: HashMap<String, Arc<Queue>>,
    pub logs: Mutex<VecDeque<String>>,
    pub kinds: Mutex<VecDeque<&'static str>>,
    /// The upgrade requests of every connection, oldest first (the last `MAX_LOGS`).
    pub upgrades: Mutex<VecDeque<UpgradeRequest>>,
    /// The items of the owners' `invocationsobserved` reports as received (the last `MAX_LOGS`).
    pub reported: Mutex<VecDeque<String>>,
    pub shutdown: watch::Receiver<bool>,
    /// `engine::channels::create` channels by id; they live as long as the engine run.
    pub channels: Channels,
    /// The `stream::*` and `state::*` in-memory stores.
    pub streams: Mutex<Store>,
    pub states: Mutex<Store>,
    /// While true, worker sockets are not read (`EngineHandle::pause_reading`).
    pub paused: watch::Sender<bool>,
    /// Spans, logs and metrics received in telemetry frames.
    pub observability: Mutex<telemetry_store::Store>,
    /// 0.25 observers (`observe`); locked after `state` when both are needed.
    pub observers: Mutex<Book>,
    pub started_at_ms: u64,
    live: AtomicUsize,
}

impl Engine {
    pub fn new(config: EngineConfig, shutdown: watch::Receiver<bool>) -> Engine {
        let queues =
            config.queues.iter().map(|q| (q.name.clone(), Arc::new(Queue::new(q.clone())))).collect();
        Engine {
            config,
            state: Mutex::new(State::default()),
            queues,
            logs: Mutex::new(VecDeque::new()),
            kinds: Mutex::new(VecDeque::new()),
            upgrades: Mutex::new(VecDeque::new()),
            reported: Mutex::new(VecDeque::new()),
            shutdown,
            channels: Mutex::new(HashMap::new()),
            streams: Mutex::new(Store::default()),
            states: Mutex::new(Store::default()),
            paused: watch::Sender::new(false),
            observability: Mutex::new(Default::default()),
            observers: Mutex::new(Book::default()),
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

    pub fn record_upgrade(&self, request: UpgradeRequest) {
        let mut upgrades = self.upgrades.lock();
        if upgrades.len() == MAX_LOGS {
            upgrades.pop_front();
        }
        upgrades.push_back(request);
    }

    pub fn record_report(&self, item: String) {
        let mut reported = self.reported.lock();
        if reported.len() == MAX_LOGS {
            reported.pop_front();
        }
        reported.push_back(item);
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
