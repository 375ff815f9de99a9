//! Observers coming and going: creation and replay, states, the owners' view of them, acks,
//! disposal, expiry and the grace period of a departed observing worker (C.10, C.11, C.13, C.15).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::book::{Book, Job, Observer, Phase, DEFAULT_MAX_IN_FLIGHT};
use super::{args, declares_observe, descriptor, raw_value, Outbox};
use crate::conn::Conn;
use crate::reply::{input, Outcome};
use crate::state::{Engine, Function, State};
use iii_filter::Filter;
use iii_protocol::{ErrorBody, Observe, ObserveMessage};

pub(crate) const OBSERVERS_GET: &str = "engine::observers::get";

/// `observe`: create the observer, or take it over again when its id is replayed (C.10.1).
pub(super) async fn observe(engine: &Arc<Engine>, conn: &Arc<Conn>, o: Observe) {
    let mut out = Outbox::default();
    let expiry = {
        let state = engine.state.lock();
        let mut book = engine.observers.lock();
        let expiry = create(&state, &mut book, conn, o, &mut out);
        refresh(&state, &mut book, &mut out);
        expiry
    };
    out.send().await;
    if let Some((id, serial, after)) = expiry {
        let engine = engine.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            expire(&engine, &id, serial).await;
        });
    }
}

/// Returns `(id, serial, delay)` when a new observer needs an expiry timer.
fn create(
    state: &State,
    book: &mut Book,
    conn: &Arc<Conn>,
    o: Observe,
    out: &mut Outbox,
) -> Option<(String, u64, Duration)> {
    let id = o.id.clone();
    let answer = |out: &mut Outbox, state: &str, error: Option<ErrorBody>, warnings: Vec<String>| {
        out.push(conn, ObserveMessage::ObserveResult { id: id.clone(), state: state.into(), error, warnings })
    };
    if let Some(existing) = book.observers.get_mut(&o.id) {
        // A replay (reconnect, reattach): same definition, same observer. UNSURE (C.25 #3):
        // Decided: another definition under a live id is OBSERVER_ID_CONFLICT.
        if existing.def != o {
            let e = ErrorBody::new(
                "OBSERVER_ID_CONFLICT",
                format!("observer {id} exists with another definition"),
            );
            answer(out, "error", Some(e), Vec::new());
            return None;
        }
        existing.watcher = Some(conn.clone());
        existing.epoch += 1;
        existing.phase = phase(state, existing);
        answer(out, existing.phase.name(), None, Vec::new());
        return None;
    }
    let filters = o.source.filters.clone().unwrap_or_else(|| json!({}));
    let filter = match Filter::parse(&filters) {
        Ok(f) => f,
        Err(e) => {
            answer(out, "error", Some(ErrorBody::new(e.code.as_str(), e.message)), Vec::new());
            return None;
        }
    };
    if o.source.function_id == o.target.function_id && o.source.namespace == o.target.namespace {
        let e = ErrorBody::new("SELF_TARGET", "an observer cannot target the function it observes");
        answer(out, "error", Some(e), Vec::new());
        return None;
    }
    let warnings = match state.functions.get(&o.source.function_id).map(|f| admit(f, &o, &filter)) {
        Some(Err(e)) => {
            answer(out, "error", Some(e), Vec::new());
            return None;
        }
        Some(Ok(warnings)) => warnings,
        None => Vec::new(),
    };
    book.next_serial += 1;
    let serial = book.next_serial;
    let expiry = o.expires_in_ms.map(|ms| (id.clone(), serial, Duration::from_millis(ms)));
    let mut obs = Observer {
        capture: o
            .source
            .capture
            .clone()
            .unwrap_or_else(|| ["input", "output", "caller"].map(String::from).to_vec()),
        on: o.source.on.clone().unwrap_or_else(|| "success".into()),
        deliver: o.source.deliver.clone().unwrap_or_else(|| "envelope".into()),
        args: o.source.args.clone().filter(|a| !a.is_null()).unwrap_or_else(|| json!({})),
        max_in_flight: o.max_in_flight.filter(|n| *n > 0).unwrap_or(DEFAULT_MAX_IN_FLIGHT),
        expires_at: expiry.as_ref().map(|(_, _, after)| Instant::now() + *after),
        def: o,
        filter,
        watcher: Some(conn.clone()),
        epoch: 0,
        phase: Phase::Pending,
        announced: None,
        acked: false,
        fires: 0,
        loop_guard_drops: 0,
        in_flight: 0,
        queue: VecDeque::new(),
        serial,
    };
    obs.phase = phase(state, &obs);
    answer(out, obs.phase.name(), None, warnings);
    let source = obs.source().to_owned();
    book.observers.insert(id.clone(), obs);
    announce_added(state, book, &source, &id, out);
    expiry
}

/// What the source function's registration says about an observer (C.11): `NOT_OBSERVABLE`,
/// `INVALID_ARGS`, `INVALID_FILTER_PATH`; otherwise the filter's schema warnings.
fn admit(f: &Function, o: &Observe, filter: &Filter) -> Result<Vec<String>, ErrorBody> {
    let d = descriptor(f);
    let fid = &o.source.function_id;
    if !d.allow {
        return Err(ErrorBody::new("NOT_OBSERVABLE", format!("{fid} is not observable")));
    }
    let args = o.source.args.clone().filter(|a| !a.is_null());
    let given = args.as_ref().is_some_and(|a| a.as_object().is_none_or(|m| !m.is_empty()));
    if !d.owner_delivered && given {
        return Err(ErrorBody::new("INVALID_ARGS", format!("{fid} takes no observer args")));
    }
    if let (true, Some(format)) = (d.owner_delivered, &d.args_format) {
        args::check(format, &args.unwrap_or_else(|| json!({})))
            .map_err(|e| ErrorBody::new("INVALID_ARGS", e))?;
    }
    let (req, resp) = (raw_value(f.request_format.as_ref()), raw_value(f.response_format.as_ref()));
    filter
        .check_schema_paths(req.as_ref(), resp.as_ref())
        .map_err(|e| ErrorBody::new(e.code.as_str(), e.message))
}

/// The observer's state as things stand (C.11). An owner that speaks `observe.v1` must have
/// acked the observer first (C.10.8); its SDK acks every observer, auto ones included.
fn phase(state: &State, obs: &Observer) -> Phase {
    if obs.watcher.is_none() {
        return Phase::Suspended;
    }
    let Some(source) = state.functions.get(obs.source()) else { return Phase::Pending };
    if !state.functions.contains_key(obs.target()) {
        return Phase::Pending;
    }
    if declares_observe(state, &source.owner.id) && !obs.acked {
        return Phase::Pending;
    }
    Phase::Active
}

/// Recomputes every observer's state and tells the watchers of the changes.
fn refresh(state: &State, book: &mut Book, out: &mut Outbox) {
    for obs in book.observers.values_mut() {
        if !state.functions.contains_key(obs.source()) {
            // The owner's ack held for its registration only.
            obs.announced = None;
            obs.acked = false;
        }
        let now = phase(state, obs);
        if now != obs.phase {
            obs.phase = now;
            if let Some(watcher) = &obs.watcher {
                out.push(watcher, changed(obs, now.name(), None));
            }
        }
    }
}

fn changed(obs: &Observer, state: &str, reason: Option<ErrorBody>) -> ObserveMessage {
    ObserveMessage::ObserverStateChanged {
        id: obs.def.id.clone(),
        state: state.into(),
        reason,
        fires: obs.fires,
    }
}

/// Owner of `function_id` that should hear of its observers: registered, `observe.v1`, greeted.
fn announced_owner<'a>(state: &'a State, function_id: &str) -> Option<(&'a Function, &'a Arc<Conn>)> {
    let f = state.functions.get(function_id)?;
    let ok =
        declares_observe(state, &f.owner.id) && f.owner.greeted.load(std::sync::atomic::Ordering::Acquire);
    ok.then_some((f, &f.owner))
}

fn announce_added(state: &State, book: &mut Book, function_id: &str, id: &str, out: &mut Outbox) {
    let Some((f, owner)) = announced_owner(state, function_id) else { return };
    let revision = book.next_revision(function_id);
    let Some(obs) = book.observers.get_mut(id) else { return };
    obs.announced = Some(revision);
    obs.acked = false;
    let msg = ObserveMessage::ObserverAdded {
        function_id: function_id.to_owned(),
        namespace: f.namespace.clone(),
        revision,
        observer: obs.view(),
    };
    out.push(owner, msg);
}

/// `functionregistered` with the whole current set, each observer announced anew (C.10.5).
fn announce_function(state: &State, book: &mut Book, function_id: &str, out: &mut Outbox) {
    let Some((f, owner)) = announced_owner(state, function_id) else { return };
    let revision = book.next_revision(function_id);
    let mut observers: Vec<_> = book.observers.values_mut().filter(|o| o.source() == function_id).collect();
    observers.sort_by(|a, b| a.def.id.cmp(&b.def.id));
    let views = observers
        .into_iter()
        .map(|o| {
            o.announced = Some(revision);
            o.acked = false;
            o.view()
        })
        .collect();
    let msg = ObserveMessage::FunctionRegistered {
        id: function_id.to_owned(),
        namespace: f.namespace.clone(),
        revision,
        local_dispatch: f.http.is_none(),
        observers: views,
    };
    out.push(owner, msg);
}

/// Removes an observer, telling its watcher (`state` with `reason`) and its source's owner.
/// Returns what was queued for it.
pub(super) fn remove(
    state: &State,
    book: &mut Book,
    id: &str,
    end: &str,
    reason: ErrorBody,
    out: &mut Outbox,
) -> VecDeque<Job> {
    let Some(mut obs) = book.observers.remove(id) else { return VecDeque::new() };
    if let Some(watcher) = &obs.watcher {
        out.push(watcher, changed(&obs, end, Some(reason)));
    }
    if obs.announced.is_some() {
        if let Some((f, owner)) = announced_owner(state, obs.source()) {
            let revision = book.next_revision(obs.source());
            let msg = ObserveMessage::ObserverRemoved {
                function_id: obs.source().to_owned(),
                namespace: f.namespace.clone(),
                revision,
                id: id.to_owned(),
            };
            out.push(owner, msg);
        }
    }
    std::mem::take(&mut obs.queue)
}

pub(super) async fn unobserve(engine: &Arc<Engine>, conn: &Arc<Conn>, id: &str) {
    let mut out = Outbox::default();
    {
        let state = engine.state.lock();
        let mut book = engine.observers.lock();
        let reason = ErrorBody::new("UNOBSERVED", "unobserved");
        if book.observers.contains_key(id) {
            // Dropped, not delivered: nothing is activated after an unobserve.
            remove(&state, &mut book, id, "disposed", reason, &mut out);
        } else {
            // Already gone: still answer, the SDK waits for `disposed`.
            let msg = ObserveMessage::ObserverStateChanged {
                id: id.to_owned(),
                state: "disposed".into(),
                reason: Some(reason),
                fires: 0,
            };
            out.push(conn, msg);
        }
    }
    out.send().await;
}

/// `observerack` (C.10.8): a stale revision or a stranger's ack is ignored; a rejection puts the
/// observer in `error` with the owner's code, then removes it.
pub(super) async fn ack(
    engine: &Arc<Engine>,
    conn: &Arc<Conn>,
    function_id: &str,
    id: &str,
    revision: u64,
    rejection: Option<ErrorBody>,
) {
    let mut out = Outbox::default();
    {
        let state = engine.state.lock();
        let mut book = engine.observers.lock();
        let owner_ok = state.functions.get(function_id).is_some_and(|f| f.owner.id == conn.id);
        let current = book
            .observers
            .get(id)
            .is_some_and(|o| o.source() == function_id && o.announced == Some(revision));
        if !owner_ok || !current {
            drop((state, book));
            return engine.log(format!("stale observerack for {id} at revision {revision} from {}", conn.id));
        }
        match rejection {
            Some(e) => {
                remove(&state, &mut book, id, "error", e, &mut out);
            }
            None => {
                if let Some(obs) = book.observers.get_mut(id) {
                    obs.acked = true;
                }
            }
        }
        refresh(&state, &mut book, &mut out);
    }
    out.send().await;
}

/// A function was registered (or unregistered, or its owner left): re-check the observers of
/// `function_id` against the new registration and tell its owner the whole set.
pub(crate) async fn function_changed(engine: &Arc<Engine>, function_id: &str) {
    let mut out = Outbox::default();
    {
        let state = engine.state.lock();
        let mut book = engine.observers.lock();
        if let Some(f) = state.functions.get(function_id) {
            let refused: Vec<(String, ErrorBody)> = book
                .observers
                .values()
                .filter(|o| o.source() == function_id)
                .filter_map(|o| admit(f, &o.def, &o.filter).err().map(|e| (o.def.id.clone(), e)))
                .collect();
            for (id, e) in refused {
                remove(&state, &mut book, &id, "error", e, &mut out);
            }
            for obs in book.observers.values_mut().filter(|o| o.source() == function_id) {
                obs.announced = None;
                obs.acked = false;
            }
            announce_function(&state, &mut book, function_id, &mut out);
        }
        refresh(&state, &mut book, &mut out);
    }
    out.send().await;
}

/// The owner just got its `workerregistered`: `functionregistered` for each of its functions.
pub(crate) async fn greeted(engine: &Arc<Engine>, conn: &Arc<Conn>) {
    let mut out = Outbox::default();
    {
        let state = engine.state.lock();
        let mut book = engine.observers.lock();
        let ids: Vec<String> =
            state.workers.get(&conn.id).map(|w| w.functions.iter().cloned().collect()).unwrap_or_default();
        for id in ids {
            announce_function(&state, &mut book, &id, &mut out);
        }
        refresh(&state, &mut book, &mut out);
    }
    out.send().await;
}

/// A connection ended: its observers are `suspended` for the grace period (C.15), after which
/// they are removed unless an `observe` replay took them over; observers of the functions it
/// owned wait (`pending`) for the next owner.
pub(crate) async fn connection_gone(engine: &Arc<Engine>, conn: &Arc<Conn>) {
    let mut out = Outbox::default();
    let mut timers = Vec::new();
    {
        let state = engine.state.lock();
        let mut book = engine.observers.lock();
        book.calls.retain(|_, c| !Arc::ptr_eq(&c.callee, conn));
        for obs in book.observers.values_mut() {
            if obs.watcher.as_ref().is_some_and(|w| Arc::ptr_eq(w, conn)) {
                obs.watcher = None;
                obs.epoch += 1;
                timers.push((obs.def.id.clone(), obs.serial, obs.epoch));
            }
        }
        refresh(&state, &mut book, &mut out);
    }
    out.send().await;
    for (id, serial, epoch) in timers {
        let engine = engine.clone();
        tokio::spawn(async move {
            tokio::time::sleep(engine.config.observer_grace).await;
            let mut out = Outbox::default();
            {
                let state = engine.state.lock();
                let mut book = engine.observers.lock();
                let still = book.observers.get(&id).is_some_and(|o| o.serial == serial && o.epoch == epoch);
                if still {
                    let reason =
                        ErrorBody::new("OBSERVER_DISCONNECTED", "the observing worker did not come back");
                    remove(&state, &mut book, &id, "disposed", reason, &mut out);
                }
            }
            out.send().await;
        });
    }
}

/// `expires_in_ms` ran out (C.15): disposed with `EXPIRED`, whatever was queued is dropped.
async fn expire(engine: &Arc<Engine>, id: &str, serial: u64) {
    let mut out = Outbox::default();
    {
        let state = engine.state.lock();
        let mut book = engine.observers.lock();
        if book.observers.get(id).is_some_and(|o| o.serial == serial) {
            remove(&state, &mut book, id, "disposed", expired(), &mut out);
        }
    }
    out.send().await;
}

pub(super) fn expired() -> ErrorBody {
    ErrorBody::new("EXPIRED", "expires_in_ms elapsed")
}

/// `engine::observers::get {id}` → `{"observer": {...}}` (C.18). UNSURE: the real output's
/// fields beyond `filters` and `dropped.LOOP_GUARD`; this shows the definition, state and counters.
pub(crate) fn observers_get(engine: &Engine, text: &str) -> Outcome {
    #[derive(serde::Deserialize)]
    struct Input {
        id: String,
    }
    let Input { id } = input(OBSERVERS_GET, text)?;
    let book = engine.observers.lock();
    let obs = book
        .observers
        .get(&id)
        .filter(|o| !o.expired(Instant::now()))
        .ok_or_else(|| ErrorBody::new("OBSERVER_NOT_FOUND", format!("observer {id} not found")))?;
    let mut source = serde_json::to_value(&obs.def.source).unwrap_or_default();
    source["filters"] = obs.filter.normalized().clone();
    source["args"] = obs.args.clone();
    source["capture"] = json!(obs.capture);
    source["on"] = json!(obs.on);
    source["deliver"] = json!(obs.deliver);
    let view = json!({"observer": {
        "id": obs.def.id,
        "source": source,
        "target": obs.def.target,
        "filters": obs.filter.normalized(),
        "metadata": obs.def.metadata,
        "state": obs.phase.name(),
        "fires": obs.fires,
        "max_fires": obs.def.max_fires,
        "max_in_flight": obs.max_in_flight,
        "in_flight": obs.in_flight,
        "queued": obs.queue.len(),
        "dropped": {"LOOP_GUARD": obs.loop_guard_drops},
    }});
    serde_json::value::to_raw_value(&view)
        .map(Some)
        .map_err(|e| ErrorBody::new("serialization_error", e.to_string()))
}
