//! HEAD-mode behaviours (docs/protocol.md Part B) other than the listings: registrations buffered
//! until the connection's namespace is known, namespaces on calls, and enqueue through the
//! `engine::queue::enqueue` provider.

use std::sync::Arc;

use super::conn::{Conn, Registrations};
use super::delivery::call_from_engine;
use super::reply::{new_id, result_frame, Reply};
use super::state::Engine;
use super::{registry, triggers};
use iii_protocol::{raw_json, ErrorBody, InvokeFunction, Message};

pub(crate) const DEFAULT_NAMESPACE: &str = "default";
pub(crate) const ENQUEUE_PROVIDER: &str = "engine::queue::enqueue";

/// Applies a registration message now, or keeps it until the namespace is fixed (HEAD).
pub(crate) async fn admit(engine: &Arc<Engine>, conn: &Arc<Conn>, msg: Message) {
    let mut regs = conn.registrations.lock().await;
    if let Registrations::Buffering(buffer) = &mut *regs {
        buffer.push(msg);
        return;
    }
    let namespace = connection_namespace(engine, conn);
    apply(engine, conn, msg, &namespace).await;
}

async fn apply(engine: &Arc<Engine>, conn: &Arc<Conn>, msg: Message, namespace: &str) {
    match msg {
        Message::RegisterFunction(f) => registry::register_function(engine, conn, f, namespace).await,
        Message::UnregisterFunction { id } => registry::unregister_function(engine, conn, &id).await,
        Message::RegisterService(s) => registry::register_service(engine, s),
        Message::RegisterTriggerType(t) => triggers::register_type(engine, conn, t).await,
        Message::RegisterTrigger(t) => triggers::register(engine, conn, t).await,
        Message::UnregisterTrigger { id, .. } => triggers::unregister(engine, &id).await,
        other => engine.log(format!("not a registration: {}", other.kind())),
    }
}

/// The namespace the connection's registrations land in (`default` at v0.11.0).
pub(crate) fn connection_namespace(engine: &Engine, conn: &Conn) -> String {
    let state = engine.state.lock();
    let ns = state.workers.get(&conn.id).and_then(|w| w.meta.namespace.clone());
    ns.unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// Fixes the connection's namespace (first `engine::workers::register`, or the grace period)
/// and applies what was buffered, in order. Later calls change nothing: a connection whose
/// buffer already drained keeps its namespace.
pub(crate) async fn fix_namespace(engine: &Arc<Engine>, conn: &Arc<Conn>, namespace: Option<&str>) {
    let mut regs = conn.registrations.lock().await;
    let Registrations::Buffering(buffer) = std::mem::replace(&mut *regs, Registrations::Applied) else {
        return;
    };
    let namespace = namespace.unwrap_or(DEFAULT_NAMESPACE).to_owned();
    if let Some(worker) = engine.state.lock().workers.get_mut(&conn.id) {
        worker.meta.namespace = Some(namespace.clone());
    }
    for msg in buffer {
        apply(engine, conn, msg, &namespace).await;
    }
}

/// Without `engine::workers::register` in time, the registrations go to `default`.
pub(crate) async fn grace_timer(engine: Arc<Engine>, conn: Arc<Conn>) {
    tokio::time::sleep(engine.config.registration_grace).await;
    fix_namespace(&engine, &conn, None).await;
}

/// HEAD resolves a call in its `namespace` (absent = `default`); a blank one is refused.
pub(crate) fn check_namespace(
    engine: &Engine,
    function_id: &str,
    namespace: Option<&str>,
) -> Result<(), ErrorBody> {
    if !engine.config.head_rules() {
        return Ok(());
    }
    let wanted = namespace.unwrap_or(DEFAULT_NAMESPACE);
    if wanted.trim().is_empty() {
        return Err(ErrorBody::new("INVALID_NAMESPACE", "namespace is empty"));
    }
    let state = engine.state.lock();
    match state.functions.get(function_id) {
        Some(f) if f.namespace != wanted => Err(ErrorBody::new(
            "function_not_found",
            format!(
                "Function {function_id} not found in namespace {wanted}. It is registered in namespace(s): {}",
                f.namespace
            ),
        )),
        _ => Ok(()),
    }
}

/// HEAD's `enqueue` action: the engine hands the message to `engine::queue::enqueue` (the
/// standalone queue worker) and answers the caller with a receipt or `enqueue_error`.
pub(crate) async fn enqueue(engine: &Arc<Engine>, conn: &Arc<Conn>, inv: InvokeFunction, queue: &str) {
    let receipt = new_id();
    let mut input = serde_json::json!({
        "queue": queue,
        "function_id": inv.function_id,
        "data": inv.data.as_deref().and_then(|d| serde_json::from_str::<serde_json::Value>(d.get()).ok()),
        "messageReceiptId": receipt,
        "traceparent": inv.traceparent,
        "baggage": inv.baggage,
    });
    if let Some(ns) = inv.namespace.as_deref().filter(|ns| *ns != DEFAULT_NAMESPACE) {
        input["namespace"] = ns.into();
    }
    let (engine, conn) = (engine.clone(), conn.clone());
    tokio::spawn(async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent =
            call_from_engine(&engine, ENQUEUE_PROVIDER, &input.to_string(), None, None, Reply::Await(tx))
                .await;
        let outcome = match sent {
            Ok(()) => rx.await.unwrap_or_else(|_| Err(ErrorBody::new("invocation_error", "call lost"))),
            Err(e) => Err(e),
        };
        let fid = inv.function_id;
        let answer = match outcome {
            Ok(_) => Ok(raw_json(&format!(r#"{{"messageReceiptId":"{receipt}"}}"#)).ok()),
            Err(e) if e.code == "function_not_found" => Err(ErrorBody::new(
                "enqueue_error",
                format!(
                    "No queue provider is installed. `TriggerAction::Enqueue` routes through the \
                     `{ENQUEUE_PROVIDER}` provider, which the standalone queue worker registers. Add \
                     it with `iii worker add queue`. (underlying: {})",
                    e.message
                ),
            )),
            Err(e) => Err(ErrorBody::new("enqueue_error", format!("{}: {}", e.code, e.message))),
        };
        match inv.invocation_id {
            Some(id) => conn.send(result_frame(&id, &fid, answer)).await,
            None => {
                if let Err(e) = answer {
                    engine.log(format!("enqueue of {fid} failed: {}", e.message));
                }
            }
        }
    });
}
