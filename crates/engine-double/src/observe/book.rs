//! What the engine knows of observers (docs/protocol.md C.9-C.15): each observer's definition,
//! its state and counters, the activations waiting for an in-flight slot, the per-function
//! revisions of the owners' observer sets, and the routed calls whose completion is watched.
//!
//! Lock order: `Engine::state` before `Engine::observers`, never the other way round.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::super::conn::Conn;
use iii_filter::Filter;
use iii_protocol::{Observe, ObserverView};

/// Hops an activation may be away from the first call (C.8.2): depth 9 is dropped.
pub(crate) const MAX_DEPTH: u32 = 8;
/// `max_in_flight` when the observer gives none. UNSURE (C.25 #1): the real default is unknown.
pub(crate) const DEFAULT_MAX_IN_FLIGHT: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Active,
    Suspended,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Active => "active",
            Phase::Suspended => "suspended",
        }
    }
}

/// One activation ready to go to the observer's target.
pub(crate) struct Job {
    pub observer_id: String,
    pub activation_id: String,
    pub target: String,
    pub data: Value,
    pub depth: u32,
    /// The engine's caller on an activation, or the owner's on an owner `call`.
    pub caller: Value,
    pub metadata: Option<Value>,
    pub traceparent: Option<String>,
    pub baggage: Option<String>,
    /// An owner `call`: the target's result goes back to it under this invocation id.
    pub reply_to: Option<(Arc<Conn>, String)>,
}

pub(crate) struct Observer {
    /// The `observe` as received, compared on replay.
    pub def: Observe,
    pub filter: Filter,
    pub capture: Vec<String>,
    pub on: String,
    pub deliver: String,
    pub args: Value,
    /// The observing connection; `None` while its worker is away (`suspended`).
    pub watcher: Option<Arc<Conn>>,
    /// Bumped on every detach and reattach, so a stale grace timer does nothing.
    pub epoch: u64,
    pub phase: Phase,
    /// The revision under which the source's owner was last told of this observer.
    pub announced: Option<u64>,
    /// The owner acked `announced` without error.
    pub acked: bool,
    pub fires: u64,
    pub loop_guard_drops: u64,
    pub in_flight: u32,
    pub max_in_flight: u32,
    pub queue: VecDeque<Job>,
    pub expires_at: Option<Instant>,
    /// Unique per creation, so timers never touch a later observer with the same id.
    pub serial: u64,
}

impl Observer {
    pub fn source(&self) -> &str {
        &self.def.source.function_id
    }

    pub fn target(&self) -> &str {
        &self.def.target.function_id
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// The observer as its source's owner sees it (no metadata, policy or watcher).
    pub fn view(&self) -> ObserverView {
        ObserverView {
            id: self.def.id.clone(),
            args: self.args.clone(),
            filters: self.filter.normalized().clone(),
            target: self.target().to_owned(),
            capture: self.capture.clone(),
            on: self.on.clone(),
            legacy: None,
        }
    }
}

/// A routed call of an observed function, remembered until its result arrives.
pub(crate) struct Call {
    /// The connection running it: if it goes away, so does the record.
    pub callee: Arc<Conn>,
    pub function_id: String,
    pub namespace: String,
    pub input: Value,
    pub caller: Value,
    pub metadata: Option<Value>,
    pub depth: u32,
    pub started_at_ms: u64,
    pub started: Instant,
    pub traceparent: Option<String>,
    pub baggage: Option<String>,
}

/// What owners reported in `localinvocationstats`, summed per function.
#[derive(Default, Debug, Clone, Copy, PartialEq)]
pub(crate) struct LocalStats {
    pub count: u64,
    pub errors: u64,
    pub duration_ms_sum: f64,
}

#[derive(Default)]
pub(crate) struct Book {
    pub observers: HashMap<String, Observer>,
    /// Per source function: the revision of its observer set last sent to an owner.
    pub revisions: HashMap<String, u64>,
    pub calls: HashMap<String, Call>,
    pub local_stats: HashMap<String, LocalStats>,
    /// `(function_id, reason)` → reports the owner dropped.
    pub dropped_reports: HashMap<(String, String), u64>,
    pub next_serial: u64,
}

impl Book {
    pub fn next_revision(&mut self, function_id: &str) -> u64 {
        let rev = self.revisions.entry(function_id.to_owned()).or_insert(0);
        *rev += 1;
        *rev
    }

    /// Whether any observer watches `function_id` (so its routed calls are worth remembering).
    pub fn watches(&self, function_id: &str) -> bool {
        !self.observers.is_empty() && self.observers.values().any(|o| o.source() == function_id)
    }

    pub fn of_source<'a>(&'a self, function_id: &'a str) -> impl Iterator<Item = &'a Observer> + 'a {
        self.observers.values().filter(move |o| o.source() == function_id)
    }
}
