//! The observe family of protocol 0.25 (docs/protocol.md C.9-C.17), in the core like the
//! registrations: the observers this worker made (replayed with their ids on every
//! connection to an engine that observes), the observers of the functions it owns
//! (`function::FunctionState`, with their compiled filters and the local-dispatch flag) and
//! the reports of observed local calls (`reporter`).
//!
//! Observe-family frames go out only once the current link's `workerregistered` said the
//! engine speaks `observe.v1` (C.3.3): until then they are held, and against an engine
//! without it they are dropped and every observer fails with `UNSUPPORTED`.

mod function;
mod reporter;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

pub use function::{FunctionState, HookOutcome, HookRequest, LocalOutcome, Matcher, Matchers, OwnerError};
pub(crate) use reporter::Reporter;

use crate::connection::{Connection, LogLevel};
use iii_protocol::{ErrorBody, Message, Observe, ObserveMessage};

/// At most this many observe-family frames wait for the engine's features (as 0.25).
const HELD_FRAMES: usize = 4096;
const HELD_BYTES: usize = 4 << 20;

fn unsupported() -> ErrorBody {
    ErrorBody::new(
        "UNSUPPORTED",
        "the engine does not support observe (no observe.v1 in its features); upgrade it to 0.25 or later",
    )
}

/// What an observer's handle learns: the engine's `observeresult` / `observerstatechanged`,
/// or the core's own verdict (`UNSUPPORTED`).
#[derive(Debug, Clone, PartialEq)]
pub struct ObserverNews {
    pub id: String,
    pub state: String,
    pub reason: Option<ErrorBody>,
    pub fires: u64,
    pub warnings: Vec<String>,
}

#[derive(Default)]
pub(crate) struct Hub {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// This worker's observers: id -> (creation order, encoded `observe`).
    observers: HashMap<String, (u64, String)>,
    seq: u64,
    held: VecDeque<String>,
    held_bytes: usize,
    /// The link epoch whose `workerregistered` arrived: frames may go out on it.
    registered_epoch: Option<u64>,
    /// The functions this worker owns, by id.
    functions: HashMap<String, Arc<FunctionState>>,
}

impl Inner {
    fn ready(&self, conn: &Connection) -> bool {
        conn.shared.connected.load(Ordering::Acquire)
            && self.registered_epoch == Some(conn.shared.epoch.load(Ordering::Acquire))
    }
}

impl Hub {
    pub(crate) fn function(&self, id: &str) -> Option<Arc<FunctionState>> {
        self.inner.lock().functions.get(id).cloned()
    }

    pub(crate) fn functions(&self) -> Vec<Arc<FunctionState>> {
        self.inner.lock().functions.values().cloned().collect()
    }

    /// Whether observe-family frames may go out now (registered on this link, engine observes).
    pub(crate) fn can_send(&self, conn: &Connection) -> bool {
        self.inner.lock().ready(conn) && conn.engine_observes()
    }
}

impl Connection {
    /// Sends an observe-family frame now, holds it until the engine's features are known, or
    /// drops it when the engine does not observe.
    pub(crate) fn send_observe_frame(&self, frame: String) {
        let mut inner = self.shared.observe.inner.lock();
        if inner.ready(self) {
            if self.engine_observes() {
                let _ = self.send_text(frame);
            }
            return;
        }
        if inner.held.len() >= HELD_FRAMES || inner.held_bytes + frame.len() > HELD_BYTES {
            drop(inner);
            self.log(LogLevel::Warn, "dropped an observe-family frame: too many wait for the engine");
            return;
        }
        inner.held_bytes += frame.len();
        inner.held.push_back(frame);
    }

    /// The observe-family frames waiting for the engine's features (a diagnostic).
    pub fn held_observe_frames(&self) -> Vec<String> {
        self.shared.observe.inner.lock().held.iter().cloned().collect()
    }

    /// Reports of local calls and emits waiting to be sent (items, bytes): those made while the
    /// link is down or before the engine confirmed their function on it (a diagnostic).
    pub fn observe_reports_waiting(&self) -> (usize, usize) {
        self.shared.reporter.backlog()
    }

    /// Creates an observer (docs/protocol.md C.10.1): recorded for replay under its id, sent
    /// once the engine is known to observe. A filter `iii-filter` refuses is refused here
    /// with `INVALID_FILTER`, and one made once an engine without `observe.v1` registered this
    /// worker with `UNSUPPORTED`; nothing is sent then.
    pub fn observe(&self, observe: Observe) -> Result<(), ErrorBody> {
        if let Some(filters) = &observe.source.filters {
            crate::filter::compile(filters, false).map_err(|e| ErrorBody::new(e.code.as_str(), e.message))?;
        }
        let id = observe.id.clone();
        let frame = Message::Observe(Box::new(ObserveMessage::Observe(observe))).encode();
        let mut inner = self.shared.observe.inner.lock();
        if inner.ready(self) && !self.engine_observes() {
            return Err(unsupported());
        }
        inner.seq += 1;
        let seq = inner.seq;
        inner.observers.insert(id, (seq, frame.clone()));
        if inner.ready(self) && self.engine_observes() {
            let _ = self.send_text(frame);
        }
        Ok(())
    }

    /// Disposes of an observer: no more replays, and `unobserve` for the engine.
    pub fn unobserve(&self, id: &str) {
        let known = self.shared.observe.inner.lock().observers.remove(id).is_some();
        if known {
            let frame = Message::Observe(Box::new(ObserveMessage::Unobserve { id: id.to_owned() })).encode();
            self.send_observe_frame(frame);
        }
    }

    /// Records a function this worker owns, so the engine's owner messages reach it.
    pub fn own_function(&self, state: Arc<FunctionState>) {
        let mut inner = self.shared.observe.inner.lock();
        if inner.ready(self) && !self.engine_observes() {
            state.warn_inactive(self);
        }
        inner.functions.insert(state.id.clone(), state);
    }

    /// Forgets an owned function: no more local calls or reports for it.
    pub fn disown_function(&self, id: &str) {
        if let Some(state) = self.shared.observe.inner.lock().functions.remove(id) {
            state.retire(self);
        }
        self.shared.reporter.drop_function(id);
    }

    /// The function this worker owns under `id`.
    pub fn owned_function(&self, id: &str) -> Option<Arc<FunctionState>> {
        self.shared.observe.function(id)
    }

    /// `workerregistered` arrived on the live link: send what waited and replay every observer,
    /// or, from an engine without `observe.v1`, fail them all.
    pub(crate) fn observe_registered(&self, observes: bool) {
        let mut inner = self.shared.observe.inner.lock();
        inner.registered_epoch = Some(self.shared.epoch.load(Ordering::Acquire));
        let held: Vec<String> = inner.held.drain(..).collect();
        inner.held_bytes = 0;
        if observes {
            let mut replay: Vec<&(u64, String)> = inner.observers.values().collect();
            replay.sort_by_key(|(seq, _)| *seq);
            for frame in held.into_iter().chain(replay.into_iter().map(|(_, f)| f.clone())) {
                let _ = self.send_text(frame);
            }
            drop(inner);
            self.shared.reporter.wake();
            return;
        }
        let ids: Vec<String> = inner.observers.drain().map(|(id, _)| id).collect();
        let functions: Vec<Arc<FunctionState>> = inner.functions.values().cloned().collect();
        drop(inner);
        for id in ids {
            self.shared.sink.observer_news(ObserverNews {
                id,
                state: "error".into(),
                reason: Some(unsupported()),
                fires: 0,
                warnings: Vec::new(),
            });
        }
        for f in functions {
            f.engine_without_observe(self);
        }
        self.shared.reporter.clear_items("INACTIVE");
    }

    /// One observe-family message from the engine.
    pub(crate) fn observe_inbound(&self, message: ObserveMessage) {
        let owned = |id: &str| self.shared.observe.function(id);
        match message {
            ObserveMessage::ObserveResult { id, state, error, warnings } => {
                self.observer_update(ObserverNews { id, state, reason: error, fires: 0, warnings })
            }
            ObserveMessage::ObserverStateChanged { id, state, reason, fires } => {
                self.observer_update(ObserverNews { id, state, reason, fires, warnings: Vec::new() })
            }
            ObserveMessage::FunctionRegistered { id, namespace, revision, local_dispatch, observers } => {
                match owned(&id) {
                    Some(f) => {
                        f.registered(self, namespace, revision, local_dispatch, observers);
                        self.shared.reporter.wake();
                    }
                    None => {
                        self.log(LogLevel::Debug, &format!("functionregistered for unknown function {id:?}"))
                    }
                }
            }
            ObserveMessage::ObserverAdded { function_id, namespace, revision, observer } => {
                if let Some(f) = owned(&function_id) {
                    f.added(self, &namespace, revision, observer);
                }
            }
            ObserveMessage::ObserverRemoved { function_id, revision, id, .. } => {
                if let Some(f) = owned(&function_id) {
                    f.removed(self, revision, &id);
                }
            }
            other => self.log(LogLevel::Debug, &format!("ignored {} message from the engine", other.kind())),
        }
    }

    fn observer_update(&self, news: ObserverNews) {
        if news.state == "disposed" {
            self.shared.observe.inner.lock().observers.remove(&news.id);
        }
        self.shared.sink.observer_news(news);
    }

    /// `registrationrejected` for one function (`FUNCTION_NAMESPACE_CONFLICT`): it is no longer
    /// run locally, its observers are forgotten and its parked reports dropped.
    pub(crate) fn function_conflict(&self, function_id: &str) {
        if let Some(f) = self.shared.observe.function(function_id) {
            f.retire(self);
        }
        self.shared.reporter.drop_function(function_id);
    }
}
