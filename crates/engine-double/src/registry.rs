//! Function and service registration, and the cleanup when a connection ends (docs/protocol.md 9.1).

use std::sync::Arc;
use std::time::Duration;

use super::conn::Conn;
use super::reply::{result_frame, Reply};
use super::state::{Engine, Function, Service};
use super::{http_functions, observe, triggers};
use iii_protocol::{ErrorBody, Message, RegisterFunction, RegisterService, RegistrationRejected};

pub(crate) const WORKERS_REGISTER: &str = "engine::workers::register";

pub(crate) async fn register_function(
    engine: &Arc<Engine>,
    conn: &Arc<Conn>,
    f: RegisterFunction,
    namespace: &str,
) {
    if engine.config.head_rules() {
        if let Some(rejected) = function_conflict(engine, conn, &f.id, namespace) {
            return conn.send(rejected).await;
        }
    }
    let http = match f.invocation.as_deref().map(http_functions::setup) {
        None => None,
        Some(Ok(http)) => Some(Arc::new(http)),
        // No reply on the wire, like the real engine (e.g. `secret_not_found`).
        Some(Err(e)) => {
            return engine.log(format!("HTTP function {} from {} not registered: {e}", f.id, conn.id))
        }
    };
    let id = f.id.clone();
    {
        let mut state = engine.state.lock();
        if let Some((service, _)) = f.id.split_once("::") {
            if !state.services.contains_key(service) {
                let svc = Service { name: service.to_owned(), description: None, parent_service_id: None };
                state.services.insert(service.to_owned(), svc);
            }
        }
        if let Some(worker) = state.workers.get_mut(&conn.id) {
            worker.functions.insert(f.id.clone());
        }
        let entry = Function {
            owner: conn.clone(),
            description: f.description,
            request_format: f.request_format,
            response_format: f.response_format,
            metadata: f.metadata,
            namespace: namespace.to_owned(),
            http,
            observe: f.observe,
        };
        state.functions.insert(f.id, entry);
    }
    if engine.config.v025() {
        observe::function_changed(engine, &id).await;
    }
}

/// HEAD: an id owned by another live worker is refused with `FUNCTION_NAMESPACE_CONFLICT`.
fn function_conflict(engine: &Engine, conn: &Conn, id: &str, namespace: &str) -> Option<String> {
    let state = engine.state.lock();
    let owner = state.functions.get(id).map(|f| &f.owner).filter(|o| o.id != conn.id)?;
    let msg = Message::RegistrationRejected(RegistrationRejected {
        code: "FUNCTION_NAMESPACE_CONFLICT".into(),
        namespace: Some(namespace.into()),
        worker_name: None,
        function_id: Some(id.to_owned()),
        owner_worker_id: Some(owner.id.clone()),
    });
    Some(msg.encode())
}

/// HEAD `reattach`: with the right token the previous connection is cleaned up (as if it had
/// disconnected) before this connection's next message is handled; otherwise it is ignored.
pub(crate) async fn reattach(engine: &Engine, conn: &Conn, previous: &str, token: &str) {
    let old = engine.connection(previous).filter(|old| old.id != conn.id);
    let Some(old) = old.filter(|old| old.reattach_token.as_deref() == Some(token)) else {
        return engine.log(format!("reattach from {} ignored: unknown worker or wrong token", conn.id));
    };
    old.kill.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while engine.connection(previous).is_some() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub(crate) async fn unregister_function(engine: &Arc<Engine>, conn: &Conn, id: &str) {
    {
        let mut state = engine.state.lock();
        state.functions.remove(id);
        if let Some(worker) = state.workers.get_mut(&conn.id) {
            worker.functions.remove(id);
        }
    }
    if engine.config.v025() {
        observe::function_changed(engine, id).await;
    }
}

pub(crate) fn register_service(engine: &Engine, s: RegisterService) {
    let name = s.name.filter(|n| !n.is_empty()).unwrap_or_else(|| s.id.clone());
    let svc = Service { name, description: s.description, parent_service_id: s.parent_service_id };
    engine.state.lock().services.insert(s.id, svc);
}

/// Forgets everything a closed connection owned and tells the parties that depended on it.
pub(crate) async fn teardown(engine: &Arc<Engine>, conn: &Arc<Conn>) {
    let mut stopped = Vec::new();
    let mut unbound = Vec::new();
    {
        let mut guard = engine.state.lock();
        let state = &mut *guard;
        if let Some(worker) = state.workers.remove(&conn.id) {
            for id in &worker.functions {
                state.functions.remove(id);
            }
        }
        let ids: Vec<String> = state
            .pending
            .iter()
            .filter(|(_, p)| Arc::ptr_eq(&p.callee, conn))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(p) = state.pending.remove(&id) {
                stopped.push((id, p.function_id, p.reply));
            }
        }
        let bindings: Vec<String> = state
            .triggers
            .iter()
            .filter(|(_, b)| Arc::ptr_eq(&b.owner, conn))
            .map(|(id, _)| id.clone())
            .collect();
        for id in bindings {
            if let Some(b) = state.triggers.remove(&id) {
                let provider = state.trigger_types.get(&b.trigger_type).and_then(|t| t.provider.clone());
                if let Some(p) = provider.filter(|p| !Arc::ptr_eq(p, conn)) {
                    unbound.push((p, id, b.trigger_type));
                }
            }
        }
        state.trigger_types.retain(|_, t| !matches!(&t.provider, Some(p) if Arc::ptr_eq(p, conn)));
    }

    for (id, function_id, reply) in stopped {
        let error = ErrorBody::new("invocation_stopped", "Invocation stopped");
        match reply {
            Reply::Caller(caller) => caller.send(result_frame(&id, &function_id, Err(error))).await,
            Reply::Await(tx) => {
                let _ = tx.send(Err(error));
            }
            Reply::Discard => engine.log(format!("invocation {id} of {function_id} stopped")),
        }
    }
    for (provider, id, trigger_type) in unbound {
        let msg = Message::UnregisterTrigger { id, trigger_type: Some(trigger_type) };
        provider.send(msg.encode()).await;
    }
    if engine.config.v025() {
        observe::connection_gone(engine, conn).await;
    }
    triggers::fire_worker_event(engine, "worker_disconnected", &conn.id);
}
