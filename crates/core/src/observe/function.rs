//! A function this worker owns, as the observe family sees it (docs/protocol.md C.13-C.17):
//! whether the engine lets it run locally, its observers (with compiled filters) under the
//! engine's revisions, the owner's acks and hooks, and the reports of its local calls.
//!
//! The flags read on every local call (`local`, `observed`) are atomics, so an unobserved local
//! call costs two loads and no lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::Value;

use crate::connection::Connection;
use crate::filter::{Doc, Filter, Projection};
use iii_protocol::{
    Caller, ErrorBody, LocalFunctionStats, Message, ObserveMessage, ObservedItem, ObserverView,
};

/// An owner hook Python must run (functions registered with hooks only), in the engine's order.
/// For an addition, the owner answers with `FunctionState::hook_done`.
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub function_id: String,
    pub added: bool,
    pub observer: ObserverView,
    pub revision: u64,
    /// The announcement this hook belongs to: an addition and the removal of what it added
    /// share it, and `hook_done` names it.
    pub token: u64,
    /// The function's release count when the hook was asked for: an addition asked for before
    /// the function was released (unregistered, or lost to a namespace conflict) never runs.
    pub generation: u64,
    /// A removal of an observer whose `on_observer_added` had not answered yet: it runs only
    /// if that hook accepted the observer.
    pub pending: bool,
}

/// What became of an owner's answer to `on_observer_added` (`FunctionState::hook_done`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// Acked as the hook answered (active, or refused with the hook's code).
    Acked,
    /// The function was released while the hook ran: nothing acked; what an accepting hook
    /// set up is to be undone now.
    Released,
    /// The owner rejected the observer while its hook ran: the rejection stands; undo likewise.
    Rejected,
    /// The engine removed or replaced the observer meanwhile: acked under the revision it was
    /// announced with; its removal hook was queued behind this one.
    Gone,
}

/// A misuse of `emit` / `call` by the owner (docs/protocol.md C.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerError(pub ErrorBody);

impl OwnerError {
    fn new(code: &str, message: String) -> OwnerError {
        OwnerError(ErrorBody::new(code, message))
    }
}

struct Held {
    view: ObserverView,
    /// Unique per announcement that ran `take`, in announcement order (`observers()` order).
    token: u64,
    filter: Filter,
    /// The revision under which the engine last announced it: what an ack must carry.
    revision: u64,
    active: bool,
    /// The owner's rejection, repeated on every replay that lists it again.
    rejection: Option<ErrorBody>,
    /// Waiting for the owner's `on_observer_added`.
    awaiting_hook: bool,
    /// Its `on_observer_added` ran and accepted it: its removal runs `on_observer_removed`,
    /// even after a late rejection.
    hooked: bool,
}

#[derive(Default)]
struct Inner {
    namespace: Option<String>,
    revision: u64,
    /// The link epoch of the last `functionregistered`: reports go out only on that link.
    confirmed_epoch: Option<u64>,
    observers: BTreeMap<String, Held>,
    /// The last token handed out.
    tokens: u64,
    /// How often the function was released (`retire`).
    generation: u64,
}

impl Inner {
    /// The ids of the observers held, in the order the engine announced them.
    fn ids_in_order(&self) -> Vec<String> {
        let mut held: Vec<(&u64, &String)> = self.observers.iter().map(|(id, h)| (&h.token, id)).collect();
        held.sort_unstable();
        held.into_iter().map(|(_, id)| id.clone()).collect()
    }
}

/// One active observer as a local call is matched against it.
pub struct Matcher {
    pub id: String,
    pub on: String,
    pub filter: Filter,
    pub capture: Vec<String>,
}

/// The active observers a local call of an auto function is matched against, and the parts
/// of the call their filters read (only those are converted from the host's values).
pub struct Matchers {
    pub list: Vec<Matcher>,
    pub projection: Projection,
}

impl Matchers {
    /// The observers whose `on` and filter match the call, and the union of their captures.
    pub fn matching(&self, ok: bool, doc: &Doc<'_>) -> (Vec<String>, Vec<String>) {
        let mut matched = Vec::new();
        let mut captures: Vec<String> = Vec::new();
        for m in &self.list {
            if on_fits(&m.on, ok) && m.filter.matches(doc) {
                matched.push(m.id.clone());
                for c in &m.capture {
                    if !captures.contains(c) {
                        captures.push(c.clone());
                    }
                }
            }
        }
        (matched, captures)
    }
}

pub struct FunctionState {
    pub id: String,
    /// `register_function(local_dispatch=...)`.
    allow_local: bool,
    /// Owner hooks run in Python: additions wait for `hook_done`.
    hooks: bool,
    owner_delivery: bool,
    local: AtomicBool,
    /// Active observers, and those of them the SDK matches for local calls (auto delivery).
    active: AtomicUsize,
    auto_active: AtomicUsize,
    /// What a local call is matched against; None without active auto observers.
    matchers: Mutex<Option<Arc<Matchers>>>,
    /// Local calls since the last `localinvocationstats`: counted on every call without a lock.
    calls: AtomicU64,
    errors: AtomicU64,
    duration_us: AtomicU64,
    warned_inactive: AtomicBool,
    inner: Mutex<Inner>,
}

/// What a finished local call was, for the observers' `on` and filters.
pub struct LocalOutcome<'a> {
    pub invocation_id: String,
    pub ok: bool,
    pub input: Option<&'a Value>,
    pub output: Option<&'a Value>,
    pub error: Option<&'a Value>,
    pub caller: Option<Caller>,
    pub metadata: Option<&'a Value>,
    pub started_at_ms: u64,
    pub duration_ms: f64,
    pub observe_depth: u32,
    pub traceparent: Option<String>,
    pub baggage: Option<String>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The same observer announced again: the same args and legacy binding (its filters, target,
/// capture and `on` are the engine's current ones and may change).
fn same_observer(held: &ObserverView, view: &ObserverView) -> bool {
    held.args == view.args && held.legacy == view.legacy
}

fn on_fits(on: &str, ok: bool) -> bool {
    match on {
        "complete" => true,
        "error" => !ok,
        _ => ok,
    }
}

impl FunctionState {
    pub fn new(id: String, allow_local: bool, hooks: bool, owner_delivery: bool) -> Arc<FunctionState> {
        Arc::new(FunctionState {
            id,
            allow_local,
            hooks,
            owner_delivery,
            local: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            auto_active: AtomicUsize::new(0),
            matchers: Mutex::new(None),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            duration_us: AtomicU64::new(0),
            warned_inactive: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// A call resolving to `namespace` (None: the function's own) may run in-process.
    pub fn local(&self, namespace: Option<&str>) -> bool {
        if !self.local.load(Ordering::Acquire) {
            return false;
        }
        match namespace {
            None => true,
            Some(ns) => self.inner.lock().namespace.as_deref().unwrap_or("default") == ns,
        }
    }

    /// A local call must be reported: some active observer is matched by the SDK.
    pub fn observed(&self) -> bool {
        self.auto_active.load(Ordering::Acquire) > 0
    }

    pub fn is_observed(&self) -> bool {
        self.active.load(Ordering::Acquire) > 0
    }

    pub fn owner_delivery(&self) -> bool {
        self.owner_delivery
    }

    /// The active observers' views, in the order the engine announced them.
    pub fn observers(&self) -> Vec<ObserverView> {
        let inner = self.inner.lock();
        let mut active: Vec<&Held> = inner.observers.values().filter(|h| h.active).collect();
        active.sort_unstable_by_key(|h| h.token);
        active.into_iter().map(|h| h.view.clone()).collect()
    }

    /// How often the function was released: an addition hook asked for under another
    /// generation is not run.
    pub fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    pub fn is_active(&self, observer_id: &str) -> bool {
        self.inner.lock().observers.get(observer_id).is_some_and(|h| h.active)
    }

    /// The observer's filter matches `doc` (`{input?, output?, error?, caller?, metadata?}`);
    /// false for an observer this function does not have.
    pub fn matches(&self, observer_id: &str, doc: &Value) -> bool {
        self.inner.lock().observers.get(observer_id).is_some_and(|h| h.filter.matches_value(doc))
    }

    /// The engine confirmed the function (`functionregistered`) on some link since it was
    /// registered or last released.
    pub fn confirmed(&self) -> bool {
        self.inner.lock().confirmed_epoch.is_some()
    }

    /// The local calls (and failed ones) counted since the last `localinvocationstats`.
    pub fn counts(&self) -> (u64, u64) {
        (self.calls.load(Ordering::Relaxed), self.errors.load(Ordering::Relaxed))
    }

    pub(crate) fn confirmed_on(&self, epoch: u64) -> bool {
        self.inner.lock().confirmed_epoch == Some(epoch)
    }

    fn recount(&self, inner: &Inner) {
        let active = inner.observers.values().filter(|h| h.active).count();
        let auto = if self.owner_delivery { 0 } else { active };
        let matchers = (auto > 0).then(|| {
            let list: Vec<Matcher> = inner
                .observers
                .values()
                .filter(|h| h.active)
                .map(|h| Matcher {
                    id: h.view.id.clone(),
                    on: h.view.on.clone(),
                    filter: h.filter.clone(),
                    capture: h.view.capture.clone(),
                })
                .collect();
            let mut projection = Projection::default();
            for m in &list {
                projection.merge(&Projection::of(&m.filter));
            }
            Arc::new(Matchers { list, projection })
        });
        *self.matchers.lock() = matchers;
        self.active.store(active, Ordering::Release);
        self.auto_active.store(auto, Ordering::Release);
    }

    /// The active observers a local call is matched against (None: nobody to report to).
    pub fn matchers(&self) -> Option<Arc<Matchers>> {
        if self.auto_active.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.matchers.lock().clone()
    }

    /// The function's namespace as the engine confirmed it.
    pub fn namespace(&self) -> Option<String> {
        self.inner.lock().namespace.clone()
    }

    /// Queues the report of a local call already matched (`Matchers::matching`): one item
    /// naming the `matched` observers, with the parts of `call` their `captures` ask for.
    pub fn push_matched(
        self: &Arc<Self>,
        conn: &Connection,
        call: LocalOutcome<'_>,
        matched: Vec<String>,
        captures: &[String],
    ) {
        let has = |name: &str| captures.iter().any(|c| c == name);
        let part = |name: &str, value: Option<&Value>| if has(name) { value.cloned() } else { None };
        let item = ObservedItem {
            function_id: self.id.clone(),
            namespace: self.namespace(),
            invocation_id: call.invocation_id,
            matched,
            status: if call.ok { "success" } else { "error" }.into(),
            input: part("input", call.input),
            output: part("output", call.output.filter(|_| call.ok)),
            error: part("error", call.error.filter(|_| !call.ok)),
            metadata: part("metadata", call.metadata),
            caller: if has("caller") { call.caller } else { None },
            started_at_ms: call.started_at_ms,
            duration_ms: call.duration_ms,
            observe_depth: call.observe_depth,
            traceparent: call.traceparent,
            baggage: call.baggage,
        };
        conn.shared.reporter.push(self.clone(), item);
    }

    fn ack(
        &self,
        conn: &Connection,
        namespace: &Option<String>,
        id: &str,
        revision: u64,
        error: Option<ErrorBody>,
    ) {
        let frame = Message::Observe(Box::new(ObserveMessage::ObserverAck {
            function_id: self.id.clone(),
            namespace: Some(namespace.clone().unwrap_or_else(|| "default".into())),
            id: id.to_owned(),
            revision,
            error,
        }))
        .encode();
        conn.send_observe_frame(frame);
    }

    /// Takes a newly announced observer: compiled, then activated and acked at once (so the
    /// first event after the engine marks it active is matched), or handed to the owner's hook.
    fn take(&self, conn: &Connection, inner: &mut Inner, view: ObserverView, revision: u64) {
        let id = view.id.clone();
        let filter = match crate::filter::compile(&view.filters, true) {
            Ok(f) => f,
            Err(e) => {
                let ns = inner.namespace.clone();
                self.ack(conn, &ns, &id, revision, Some(ErrorBody::new(e.code.as_str(), e.message)));
                return;
            }
        };
        let awaiting_hook = self.hooks;
        inner.tokens += 1;
        let token = inner.tokens;
        if awaiting_hook {
            conn.shared.sink.owner_hook(HookRequest {
                function_id: self.id.clone(),
                added: true,
                observer: view.clone(),
                revision,
                token,
                generation: inner.generation,
                pending: false,
            });
        }
        inner.observers.insert(
            id.clone(),
            Held {
                view,
                token,
                filter,
                revision,
                active: !awaiting_hook,
                rejection: None,
                awaiting_hook,
                hooked: false,
            },
        );
        if !awaiting_hook {
            let ns = inner.namespace.clone();
            self.ack(conn, &ns, &id, revision, None);
        }
    }

    /// Forgets an observer, running its removal hook when its addition hook accepted it, or
    /// (`after_pending`: the engine removed it) when that hook, still running, accepts it.
    fn drop_observer(&self, conn: &Connection, inner: &mut Inner, id: &str, after_pending: bool) {
        if let Some(held) = inner.observers.remove(id) {
            let pending = held.awaiting_hook && after_pending;
            if self.hooks && (held.hooked || pending) {
                conn.shared.sink.owner_hook(HookRequest {
                    function_id: self.id.clone(),
                    added: false,
                    observer: held.view,
                    revision: held.revision,
                    token: held.token,
                    generation: inner.generation,
                    pending: !held.hooked,
                });
            }
        }
    }

    /// `functionregistered`: always taken; replaces the whole set (C.13).
    pub(crate) fn registered(
        &self,
        conn: &Connection,
        namespace: String,
        revision: u64,
        local_dispatch: bool,
        observers: Vec<ObserverView>,
    ) {
        let mut inner = self.inner.lock();
        inner.namespace = Some(namespace);
        inner.revision = revision;
        inner.confirmed_epoch = Some(conn.shared.epoch.load(Ordering::Acquire));
        self.local.store(self.allow_local && local_dispatch, Ordering::Release);
        let listed: std::collections::HashSet<String> = observers.iter().map(|v| v.id.clone()).collect();
        let gone: Vec<String> = inner.ids_in_order().into_iter().filter(|id| !listed.contains(id)).collect();
        for id in gone {
            self.drop_observer(conn, &mut inner, &id, true);
        }
        for view in observers {
            self.announced(conn, &mut inner, view, revision, |held, view| same_observer(&held.view, view));
        }
        self.recount(&inner);
    }

    /// `observeradded`; stale revisions are ignored.
    pub(crate) fn added(&self, conn: &Connection, namespace: &str, revision: u64, view: ObserverView) {
        let mut inner = self.inner.lock();
        if revision <= inner.revision {
            return;
        }
        inner.revision = revision;
        inner.namespace.get_or_insert_with(|| namespace.to_owned());
        // Announced again: kept (its hook already ran), unless the owner rejected it late or
        // it is another observer under the same id; then it starts afresh.
        self.announced(conn, &mut inner, view, revision, |held, view| {
            held.rejection.is_none() && same_observer(&held.view, view)
        });
        self.recount(&inner);
    }

    /// An observer the engine announces under `revision`: kept when one is held under its id
    /// and `kept` says so; otherwise the one held (if any) is removed and this one taken.
    fn announced(
        &self,
        conn: &Connection,
        inner: &mut Inner,
        view: ObserverView,
        revision: u64,
        kept: impl Fn(&Held, &ObserverView) -> bool,
    ) {
        match inner.observers.get(&view.id).map(|held| kept(held, &view)) {
            Some(true) => self.keep(conn, inner, view, revision),
            Some(false) => {
                self.drop_observer(conn, inner, &view.id, true);
                self.take(conn, inner, view, revision);
            }
            None => self.take(conn, inner, view, revision),
        }
    }

    /// An observer announced again under `revision`: no hooks; it takes the engine's current
    /// view (filters recompiled when they changed) and is acked again, with its late rejection
    /// if it has one. One still waiting for its add hook is acked when that hook is done.
    fn keep(&self, conn: &Connection, inner: &mut Inner, view: ObserverView, revision: u64) {
        let ns = inner.namespace.clone();
        let Some(held) = inner.observers.get_mut(&view.id) else { return };
        held.revision = revision;
        if let Some(rejection) = held.rejection.clone() {
            self.ack(conn, &ns, &view.id, revision, Some(rejection));
            return;
        }
        if held.view.filters != view.filters {
            match crate::filter::compile(&view.filters, true) {
                Ok(filter) => held.filter = filter,
                Err(e) => {
                    held.active = false;
                    held.view = view;
                    let id = held.view.id.clone();
                    self.ack(conn, &ns, &id, revision, Some(ErrorBody::new(e.code.as_str(), e.message)));
                    return;
                }
            }
        }
        held.view = view;
        if held.awaiting_hook {
            return;
        }
        held.active = true;
        let id = held.view.id.clone();
        self.ack(conn, &ns, &id, revision, None);
    }

    /// `observerremoved`; stale revisions are ignored.
    pub(crate) fn removed(&self, conn: &Connection, revision: u64, id: &str) {
        let mut inner = self.inner.lock();
        if revision <= inner.revision {
            return;
        }
        inner.revision = revision;
        self.drop_observer(conn, &mut inner, id, true);
        self.recount(&inner);
    }

    /// The owner's `on_observer_added` finished: activate and ack, or reject.
    /// `hook` is the request it answers. As iii-sdk 0.25.0: an observer the engine removed
    /// meanwhile is still acked (under the revision it was announced with), one of a function
    /// released meanwhile is not.
    pub fn hook_done(&self, conn: &Connection, hook: &HookRequest, error: Option<ErrorBody>) -> HookOutcome {
        let mut inner = self.inner.lock();
        if inner.generation != hook.generation {
            return HookOutcome::Released;
        }
        let ns = inner.namespace.clone();
        let id = &hook.observer.id;
        match inner.observers.get_mut(id).filter(|h| h.token == hook.token) {
            Some(held) if held.awaiting_hook => {
                held.awaiting_hook = false;
                held.active = error.is_none();
                held.hooked = error.is_none();
                held.rejection = error.clone();
                let revision = held.revision;
                self.ack(conn, &ns, id, revision, error);
                self.recount(&inner);
                HookOutcome::Acked
            }
            Some(_) => HookOutcome::Rejected,
            None => {
                self.ack(conn, &ns, id, hook.revision, error);
                HookOutcome::Gone
            }
        }
    }

    /// The owner rejects a live observer (`Observer.reject`): deactivated now, the rejection
    /// acked at the latest revision and repeated on later replays.
    pub fn reject(&self, conn: &Connection, observer_id: &str, error: ErrorBody) {
        let mut inner = self.inner.lock();
        let ns = inner.namespace.clone();
        let Some(held) = inner.observers.get_mut(observer_id) else { return };
        held.active = false;
        held.awaiting_hook = false;
        held.rejection = Some(error.clone());
        let revision = held.revision;
        self.ack(conn, &ns, observer_id, revision, Some(error));
        self.recount(&inner);
    }

    /// No longer run locally, observers forgotten (their removal hooks run): unregistered, or
    /// in conflict with another worker's function.
    pub(crate) fn retire(&self, conn: &Connection) {
        self.local.store(false, Ordering::Release);
        let mut inner = self.inner.lock();
        inner.confirmed_epoch = None;
        inner.generation += 1;
        // An addition hook still running is answered `Released` and undone by the SDK then.
        for id in inner.ids_in_order() {
            self.drop_observer(conn, &mut inner, &id, false);
        }
        self.recount(&inner);
    }

    /// The engine does not observe: nothing to deliver; local dispatch stays as confirmed
    /// (an engine without observe never confirms it).
    pub(crate) fn engine_without_observe(&self, conn: &Connection) {
        self.warn_inactive(conn);
        let mut inner = self.inner.lock();
        for id in inner.ids_in_order() {
            self.drop_observer(conn, &mut inner, &id, true);
        }
        self.recount(&inner);
    }

    /// Against an engine without observe, a function with hooks or owner delivery is told
    /// once (as iii-sdk 0.25.0) that they will never run.
    pub(crate) fn warn_inactive(&self, conn: &Connection) {
        if (self.hooks || self.owner_delivery) && !self.warned_inactive.swap(true, Ordering::AcqRel) {
            conn.log(
                crate::connection::LogLevel::Warn,
                &format!(
                    "function {:?} declares observe hooks or owner delivery, but the engine does not \
                     support observe (no observe.v1): it runs as a plain function and its observe hooks \
                     are inactive",
                    self.id
                ),
            );
        }
    }

    /// Counts a finished local call (`localinvocationstats`).
    pub fn finished(&self, ok: bool, duration_ms: f64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.duration_us.fetch_add((duration_ms * 1000.0) as u64, Ordering::Relaxed);
    }

    /// The counts since the last call, reset; None when there were no calls.
    pub(crate) fn take_stats(&self) -> Option<LocalFunctionStats> {
        let count = self.calls.swap(0, Ordering::Relaxed);
        let errors = self.errors.swap(0, Ordering::Relaxed);
        let duration_us = self.duration_us.swap(0, Ordering::Relaxed);
        (count > 0).then(|| LocalFunctionStats {
            function_id: self.id.clone(),
            count,
            errors,
            duration_ms_sum: duration_us as f64 / 1000.0,
        })
    }

    /// A finished observed local call: counted, and reported once for every active auto
    /// observer whose `on` and filter match (one item, the union of their captures, C.17).
    pub fn report(self: &Arc<Self>, conn: &Connection, call: LocalOutcome<'_>) {
        self.finished(call.ok, call.duration_ms);
        if self.owner_delivery {
            return;
        }
        let caller = call.caller.as_ref().and_then(|c| serde_json::to_value(c).ok());
        let doc = Doc {
            input: call.input,
            output: if call.ok { call.output } else { None },
            error: if call.ok { None } else { call.error },
            caller: caller.as_ref(),
            metadata: call.metadata,
        };
        let Some(matchers) = self.matchers() else { return };
        let (matched, captures) = matchers.matching(call.ok, &doc);
        if !matched.is_empty() {
            self.push_matched(conn, call, matched, &captures);
        }
    }

    /// The owner checks its `call` to an observer's target (C.14).
    pub fn check_call(&self, observer_id: &str, doc: &Value) -> Result<(), OwnerError> {
        if !self.owner_delivery {
            return Err(OwnerError::new(
                "NOT_OWNER_DELIVERED",
                format!(
                    "function {:?} is not owner-delivered: its observers are served by the engine",
                    self.id
                ),
            ));
        }
        let inner = self.inner.lock();
        let Some(held) = inner.observers.get(observer_id).filter(|h| h.active) else {
            return Err(OwnerError::new(
                "OBSERVER_NOT_ACTIVE",
                format!("observer {observer_id:?} is not active"),
            ));
        };
        if !held.filter.matches_value(doc) {
            return Err(OwnerError::new(
                "FILTERS_NOT_MATCHED",
                format!("the payload does not match the filters of observer {observer_id:?}"),
            ));
        }
        Ok(())
    }

    /// The owner emits an event to one of its observers (C.14): false when the observer is
    /// inactive or its filter does not match, true once the event is queued.
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        self: &Arc<Self>,
        conn: &Connection,
        observer_id: &str,
        event: Value,
        caller: Option<Caller>,
        metadata: Option<Value>,
        invocation_id: String,
        observe_depth: u32,
        traceparent: Option<String>,
        baggage: Option<String>,
    ) -> Result<bool, OwnerError> {
        if !self.owner_delivery {
            return Err(OwnerError::new(
                "NOT_OWNER_DELIVERED",
                format!("function {:?} is not owner-delivered: the engine delivers its events", self.id),
            ));
        }
        let caller_value = caller.as_ref().and_then(|c| serde_json::to_value(c).ok());
        let (capture, namespace) = {
            let inner = self.inner.lock();
            let Some(held) = inner.observers.get(observer_id).filter(|h| h.active) else { return Ok(false) };
            let doc = Doc {
                input: Some(&event),
                caller: caller_value.as_ref(),
                metadata: metadata.as_ref(),
                ..Doc::default()
            };
            if !held.filter.matches(&doc) {
                return Ok(false);
            }
            (held.view.capture.clone(), inner.namespace.clone())
        };
        // Every part is kept: the same event emitted to another observer before the batch goes
        // out joins this item (`Reporter::push_emit`), and may capture more of it.
        let item = ObservedItem {
            function_id: self.id.clone(),
            namespace,
            invocation_id,
            matched: vec![observer_id.to_owned()],
            status: "success".into(),
            input: Some(event),
            output: None,
            error: None,
            metadata,
            caller,
            started_at_ms: now_ms(),
            duration_ms: 0.0,
            observe_depth,
            traceparent,
            baggage,
        };
        conn.shared.reporter.push_emit(self.clone(), item, &capture);
        Ok(true)
    }
}
