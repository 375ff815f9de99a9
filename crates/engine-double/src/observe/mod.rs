//! Engine 0.25's observe family (docs/protocol.md C.9-C.18), in the 0.25 generation only.
//!
//! * `book`: what is known of each observer (data only).
//! * `lifecycle`: `observe` / `unobserve` / `observerack`, the owners' `functionregistered` /
//!   `observeradded` / `observerremoved`, states, disposal, expiry, the grace period of a
//!   departed observing worker, and `engine::observers::get`.
//! * `activate`: routed calls of observed functions, owners' reports (`invocationsobserved`),
//!   owner `call`s, the envelope, the loop guard and `max_in_flight`.
//! * `args`: the minimal `args_format` check.
//!
//! Only connections that declared `observe.v1` in `engine::workers::register` may send these
//! messages, and only they are sent any (C.3.1).

mod activate;
mod args;
pub(crate) mod book;
mod lifecycle;

use std::sync::Arc;

use serde_json::Value;

use super::conn::Conn;
use super::state::{Engine, Function, State};
use iii_protocol::ObserveMessage;

pub(crate) use activate::{activate, owner_call, take_call, track_call};
pub(crate) use lifecycle::{connection_gone, function_changed, greeted, observers_get, OBSERVERS_GET};

pub(crate) const FEATURE: &str = "observe.v1";

/// An observe-family message from a worker.
pub(crate) async fn handle(engine: &Arc<Engine>, conn: &Arc<Conn>, msg: ObserveMessage) {
    if !declares_observe(&engine.state.lock(), &conn.id) {
        return engine.log(format!("dropped {} from {}: it did not declare {FEATURE}", msg.kind(), conn.id));
    }
    match msg {
        ObserveMessage::Observe(o) => lifecycle::observe(engine, conn, o).await,
        ObserveMessage::Unobserve { id } => lifecycle::unobserve(engine, conn, &id).await,
        ObserveMessage::ObserverAck { function_id, id, revision, error, .. } => {
            lifecycle::ack(engine, conn, &function_id, &id, revision, error).await
        }
        ObserveMessage::InvocationsObserved { items } => activate::reports(engine, conn, items).await,
        ObserveMessage::LocalInvocationStats { functions, dropped_reports, .. } => {
            let mut book = engine.observers.lock();
            for f in functions {
                let s = book.local_stats.entry(f.function_id).or_default();
                s.count += f.count;
                s.errors += f.errors;
                s.duration_ms_sum += f.duration_ms_sum;
            }
            for d in dropped_reports {
                *book.dropped_reports.entry((d.function_id, d.reason)).or_default() += d.count;
            }
        }
        other => engine.log(format!("dropped {} from {}: engine-to-worker message", other.kind(), conn.id)),
    }
}

/// The connection declared `observe.v1`.
pub(crate) fn declares_observe(state: &State, conn_id: &str) -> bool {
    state
        .workers
        .get(conn_id)
        .and_then(|w| w.meta.features.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FEATURE))
}

/// Frames to send once the locks are released.
#[derive(Default)]
pub(crate) struct Outbox(Vec<(Arc<Conn>, String)>);

impl Outbox {
    fn push(&mut self, to: &Arc<Conn>, msg: ObserveMessage) {
        self.0.push((to.clone(), msg.encode()));
    }

    async fn send(self) {
        for (conn, frame) in self.0 {
            conn.send(frame).await;
        }
    }
}

/// `registerfunction.observe` as the engine reads it (C.9); absent fields take the defaults.
struct Descriptor {
    owner_delivered: bool,
    args_format: Option<Value>,
    allow: bool,
}

fn descriptor(f: &Function) -> Descriptor {
    let d: Value =
        f.observe.as_deref().and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or_default();
    Descriptor {
        owner_delivered: d.get("delivery").and_then(Value::as_str) == Some("owner"),
        args_format: d.get("args_format").filter(|v| !v.is_null()).cloned(),
        allow: d.get("allow").and_then(Value::as_bool).unwrap_or(true),
    }
}

fn raw_value(raw: Option<&iii_protocol::Json>) -> Option<Value> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}
