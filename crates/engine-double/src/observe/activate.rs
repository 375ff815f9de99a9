//! Activating observers (C.12, C.14, C.15, C.17): routed calls of observed functions are
//! remembered until their result arrives, then matched against each active observer (`on`,
//! filter); owners' reports name the matching observers themselves; owner `call`s go to the
//! observer's target and return its result. Each activation respects the loop guard,
//! `max_fires` and `max_in_flight` (extra activations wait in the observer's queue).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::book::{Book, Call, Job, Phase, MAX_DEPTH};
use super::lifecycle::{expired, remove};
use super::{descriptor, raw_value, Outbox};
use crate::conn::Conn;
use crate::delivery::{invoke_frame, route, spawn_http, Target};
use crate::reply::{new_id, now_ms, result_frame, Reply};
use crate::state::{Engine, State};
use crate::v025;
use iii_filter::Doc;
use iii_protocol::frames::with_json_field;
use iii_protocol::{ErrorBody, InvocationResult, InvokeFunction, ObservedItem};

/// A finished invocation of an observed function, routed or reported.
pub(crate) struct Event {
    pub function_id: String,
    pub namespace: String,
    pub invocation_id: String,
    pub success: bool,
    pub input: Option<Value>,
    /// Only on success.
    pub output: Option<Value>,
    /// Only on error: the ErrorBody.
    pub error: Option<Value>,
    pub caller: Option<Value>,
    pub metadata: Option<Value>,
    pub started_at_ms: u64,
    pub duration_ms: f64,
    pub depth: u32,
    pub traceparent: Option<String>,
    pub baggage: Option<String>,
}

/// Remembers a routed call of an observed function until its result arrives. `input` is the
/// payload as the caller sent it, before the engine adds `_caller_worker_id` (C.12).
pub(crate) fn track_call(engine: &Engine, from: &Conn, callee: &Arc<Conn>, inv: &InvokeFunction, id: &str) {
    if !engine.observers.lock().watches(&inv.function_id) {
        return;
    }
    let caller = v025::stamped_caller(engine, from, inv.caller.as_ref());
    let call = Call {
        callee: callee.clone(),
        function_id: inv.function_id.clone(),
        namespace: inv.namespace.clone().unwrap_or_else(|| "default".into()),
        input: raw_value(inv.data.as_ref()).unwrap_or(Value::Null),
        caller: serde_json::to_value(caller).unwrap_or_default(),
        metadata: raw_value(inv.metadata.as_ref()),
        depth: inv.observe_depth.unwrap_or(0),
        started_at_ms: now_ms(),
        started: Instant::now(),
        traceparent: inv.traceparent.clone(),
        baggage: inv.baggage.clone(),
    };
    engine.observers.lock().calls.insert(id.to_owned(), call);
}

/// The event of a tracked call whose result just arrived, if it was tracked.
pub(crate) fn take_call(engine: &Engine, res: &InvocationResult) -> Option<Event> {
    let call = {
        let mut book = engine.observers.lock();
        if book.calls.is_empty() {
            return None;
        }
        book.calls.remove(&res.invocation_id)?
    };
    let success = res.error.is_none();
    Some(Event {
        function_id: call.function_id,
        namespace: call.namespace,
        invocation_id: res.invocation_id.clone(),
        success,
        input: Some(call.input),
        output: success.then(|| raw_value(res.result.as_ref()).unwrap_or(Value::Null)),
        error: res.error.as_ref().map(|e| serde_json::to_value(e).unwrap_or_default()),
        caller: Some(call.caller),
        metadata: call.metadata,
        started_at_ms: call.started_at_ms,
        duration_ms: call.started.elapsed().as_secs_f64() * 1000.0,
        depth: call.depth,
        traceparent: call.traceparent,
        baggage: call.baggage,
    })
}

/// Activates the observers an event concerns: on a routed call of an auto function, every
/// active observer whose `on` and filter match; on a report, the ones the owner listed in `matched`
/// (UNSURE, C.25 #4: Decided: the engine trusts `matched` and does not evaluate filters again).
pub(crate) async fn activate(engine: &Arc<Engine>, ev: Event, matched: Option<Vec<String>>) {
    let mut out = Outbox::default();
    let mut jobs = Vec::new();
    {
        let state = engine.state.lock();
        let mut book = engine.observers.lock();
        let routed = matched.is_none();
        // The owner of an owner-delivered function decides what its observers get (C.14).
        let owner_delivered =
            state.functions.get(&ev.function_id).is_some_and(|f| descriptor(f).owner_delivered);
        if routed && owner_delivered {
            return;
        }
        let ids =
            matched.unwrap_or_else(|| book.of_source(&ev.function_id).map(|o| o.def.id.clone()).collect());
        let now = Instant::now();
        for id in ids {
            let Some(obs) = book.observers.get_mut(&id) else { continue };
            if obs.source() != ev.function_id {
                continue;
            }
            if obs.expired(now) {
                remove(&state, &mut book, &id, "disposed", expired(), &mut out);
                continue;
            }
            if obs.phase != Phase::Active
                || (routed && !(on_matches(&obs.on, ev.success) && obs.filter.matches(&doc(&ev))))
            {
                continue;
            }
            if ev.depth + 1 > MAX_DEPTH {
                obs.loop_guard_drops += 1;
                continue;
            }
            let activation_id = new_id();
            let job = Job {
                observer_id: id.clone(),
                data: envelope(&obs.deliver, &obs.capture, &id, &activation_id, &ev),
                activation_id,
                target: obs.target().to_owned(),
                depth: ev.depth + 1,
                caller: json!({"worker_name": "iii-engine", "function_id": ev.function_id,
                    "invocation_id": ev.invocation_id}),
                metadata: obs.def.metadata.clone(),
                traceparent: ev.traceparent.clone(),
                baggage: ev.baggage.clone(),
                reply_to: None,
            };
            fire(&state, &mut book, job, &mut out, &mut jobs);
        }
    }
    out.send().await;
    for job in jobs {
        tokio::spawn(run(engine.clone(), job));
    }
}

fn on_matches(on: &str, success: bool) -> bool {
    match on {
        "success" => success,
        "error" => !success,
        "complete" => true,
        _ => false,
    }
}

fn doc(ev: &Event) -> Doc<'_> {
    Doc {
        input: ev.input.as_ref(),
        output: ev.output.as_ref(),
        error: ev.error.as_ref(),
        caller: ev.caller.as_ref(),
        metadata: ev.metadata.as_ref(),
    }
}

/// The target's `data` (C.12): the envelope with the captured parts, or with `deliver:
/// "input"` / `"output"` that value alone.
fn envelope(deliver: &str, capture: &[String], observer_id: &str, activation_id: &str, ev: &Event) -> Value {
    match deliver {
        "input" => return ev.input.clone().unwrap_or(Value::Null),
        "output" => return ev.output.clone().unwrap_or(Value::Null),
        _ => {}
    }
    let mut m = Map::new();
    m.insert("observer_id".into(), observer_id.into());
    m.insert("activation_id".into(), activation_id.into());
    m.insert("function_id".into(), ev.function_id.clone().into());
    m.insert("namespace".into(), ev.namespace.clone().into());
    m.insert("invocation_id".into(), ev.invocation_id.clone().into());
    m.insert("status".into(), if ev.success { "success" } else { "error" }.into());
    for part in capture {
        let value = match part.as_str() {
            "input" => &ev.input,
            "output" => &ev.output,
            "error" => &ev.error,
            "caller" => &ev.caller,
            "metadata" => &ev.metadata,
            _ => &None,
        };
        if let Some(v) = value {
            m.insert(part.clone(), v.clone());
        }
    }
    m.insert("started_at_ms".into(), ev.started_at_ms.into());
    m.insert("duration_ms".into(), ev.duration_ms.into());
    Value::Object(m)
}

/// Counts the activation and sends it, or queues it behind `max_in_flight`; `max_fires`
/// disposes the observer after its last activation (which still goes, with anything queued).
fn fire(state: &State, book: &mut Book, job: Job, out: &mut Outbox, jobs: &mut Vec<Job>) {
    let id = job.observer_id.clone();
    let Some(obs) = book.observers.get_mut(&id) else { return };
    obs.fires += 1;
    if obs.in_flight < obs.max_in_flight {
        obs.in_flight += 1;
        jobs.push(job);
    } else {
        obs.queue.push_back(job);
    }
    if obs.def.max_fires.is_some_and(|n| obs.fires >= n) {
        let reason = ErrorBody::new("MAX_FIRES", "max_fires reached");
        jobs.extend(remove(state, book, &id, "disposed", reason, out));
    }
}

/// Delivers a job, then the observer's queued ones as its slot frees up.
async fn run(engine: Arc<Engine>, mut job: Job) {
    loop {
        let observer_id = job.observer_id.clone();
        deliver(&engine, job).await;
        let next = {
            let mut book = engine.observers.lock();
            book.observers.get_mut(&observer_id).and_then(|obs| {
                obs.in_flight = obs.in_flight.saturating_sub(1);
                let next = obs.queue.pop_front()?;
                obs.in_flight += 1;
                Some(next)
            })
        };
        match next {
            Some(next) => job = next,
            None => return,
        }
    }
}

/// One activation: an `invokefunction` to the target with `activation`, `observe_depth`, the
/// caller and the observer's metadata; waits for its result (which frees the slot).
async fn deliver(engine: &Arc<Engine>, job: Job) {
    let id = new_id();
    let data = job.data.to_string();
    let (tx, rx) = oneshot::channel();
    let lost = || ErrorBody::new("invocation_stopped", "activation lost");
    let routed = route(&mut engine.state.lock(), &job.target, &id, Reply::Await(tx));
    let outcome = match routed {
        Ok(Target::Worker(callee)) => {
            let mut frame =
                invoke_frame(&id, &job.target, &data, job.traceparent.as_deref(), job.baggage.as_deref());
            frame = with_json_field(frame, "caller", &job.caller.to_string());
            frame = with_json_field(frame, "observe_depth", &job.depth.to_string());
            if let Some(metadata) = &job.metadata {
                frame = with_json_field(frame, "metadata", &metadata.to_string());
            }
            let activation = json!({"observer_id": job.observer_id, "activation_id": job.activation_id});
            frame = with_json_field(frame, "activation", &activation.to_string());
            if callee.tx.send(WsMessage::Text(frame.into())).await.is_err() {
                engine.state.lock().pending.remove(&id);
                Err(lost())
            } else {
                rx.await.unwrap_or_else(|_| Err(lost()))
            }
        }
        Ok(Target::Http(f, reply)) => {
            spawn_http(engine, f, &id, &job.target, data, reply);
            rx.await.unwrap_or_else(|_| Err(lost()))
        }
        Err(e) => Err(e),
    };
    match job.reply_to {
        Some((owner, invocation_id)) => owner.send(result_frame(&invocation_id, &job.target, outcome)).await,
        None => {
            if let Err(e) = outcome {
                engine.log(format!(
                    "activation of {} for {} failed: {}: {}",
                    job.target, job.observer_id, e.code, e.message
                ));
            }
        }
    }
}

/// `invocationsobserved` (C.10.9): each item activates the observers it lists, each with its
/// own capture. Items for functions the sender does not own are dropped.
pub(super) async fn reports(engine: &Arc<Engine>, conn: &Arc<Conn>, items: Vec<ObservedItem>) {
    for item in items {
        engine.record_report(serde_json::to_string(&item).unwrap_or_default());
        let owns =
            engine.state.lock().functions.get(&item.function_id).is_some_and(|f| f.owner.id == conn.id);
        if !owns {
            engine.log(format!("dropped report of {} from {}: not its owner", item.function_id, conn.id));
            continue;
        }
        let success = item.status != "error";
        let ev = Event {
            namespace: item.namespace.unwrap_or_else(|| "default".into()),
            invocation_id: item.invocation_id,
            success,
            input: item.input,
            output: item.output.filter(|_| success),
            error: item.error.filter(|_| !success),
            caller: item.caller.map(|c| serde_json::to_value(c).unwrap_or_default()),
            metadata: item.metadata,
            started_at_ms: item.started_at_ms,
            duration_ms: item.duration_ms,
            depth: item.observe_depth,
            traceparent: item.traceparent,
            baggage: item.baggage,
            function_id: item.function_id,
        };
        activate(engine, ev, Some(item.matched)).await;
    }
}

/// An owner's `call` (C.14): `invokefunction` with `activation {observer_id}` from the source's
/// owner, to the observer's target; the target's result goes back to the owner.
pub(crate) async fn owner_call(engine: &Arc<Engine>, conn: &Arc<Conn>, inv: InvokeFunction) {
    let caller =
        serde_json::to_value(v025::stamped_caller(engine, conn, inv.caller.as_ref())).unwrap_or_default();
    let observer_id = inv.activation.as_ref().map(|a| a.observer_id.clone()).unwrap_or_default();
    let reply_to = inv.invocation_id.clone().map(|id| (conn.clone(), id));
    let mut out = Outbox::default();
    let mut jobs = Vec::new();
    let checked = {
        let state = engine.state.lock();
        let mut book = engine.observers.lock();
        let job = Job {
            observer_id: observer_id.clone(),
            activation_id: new_id(),
            target: inv.function_id.clone(),
            data: raw_value(inv.data.as_ref()).unwrap_or(Value::Null),
            depth: inv.observe_depth.unwrap_or(0) + 1,
            caller,
            metadata: None,
            traceparent: inv.traceparent.clone(),
            baggage: inv.baggage.clone(),
            reply_to: reply_to.clone(),
        };
        admit_call(&state, &mut book, conn, job, &mut out)
            .map(|job| fire(&state, &mut book, job, &mut out, &mut jobs))
    };
    out.send().await;
    match checked {
        Ok(()) => {
            for job in jobs {
                tokio::spawn(run(engine.clone(), job));
            }
        }
        Err(e) => match reply_to {
            Some((conn, id)) => conn.send(result_frame(&id, &inv.function_id, Err(e))).await,
            None => engine.log(format!("owner call for {observer_id} refused: {}: {}", e.code, e.message)),
        },
    }
}

/// Why an owner `call` cannot go (C.11 codes), or the job with the observer's metadata.
fn admit_call(
    state: &State,
    book: &mut Book,
    conn: &Conn,
    mut job: Job,
    out: &mut Outbox,
) -> Result<Job, ErrorBody> {
    let id = job.observer_id.clone();
    let refuse = |code: &str, message: &str| Err(ErrorBody::new(code, format!("observer {id}: {message}")));
    let Some(obs) = book.observers.get_mut(&id) else { return refuse("OBSERVER_NOT_FOUND", "not found") };
    let Some(source) = state.functions.get(obs.source()) else {
        return refuse("OBSERVER_NOT_ACTIVE", "no source");
    };
    if source.owner.id != conn.id {
        return refuse("NOT_FUNCTION_OWNER", "the caller does not own the observed function");
    }
    if job.target != obs.target() {
        return refuse("TARGET_MISMATCH", "not the observer's target");
    }
    if !descriptor(source).owner_delivered {
        return refuse("NOT_OWNER_DELIVERED", "the observed function is not owner-delivered");
    }
    if obs.expired(Instant::now()) {
        remove(state, book, &id, "disposed", expired(), out);
        return refuse("OBSERVER_NOT_ACTIVE", "expired");
    }
    if obs.phase != Phase::Active {
        return refuse("OBSERVER_NOT_ACTIVE", obs.phase.name());
    }
    if job.depth > MAX_DEPTH {
        obs.loop_guard_drops += 1;
        return refuse("LOOP_GUARD", "observe depth limit reached");
    }
    if obs.in_flight >= obs.max_in_flight {
        return refuse("OVERFLOW", "max_in_flight reached");
    }
    job.metadata = obs.def.metadata.clone();
    Ok(job)
}
