//! Function and service registration, and the cleanup when a connection ends (protocol.md 9.1).

use std::sync::Arc;

use super::routing::result_frame;
use super::state::{Conn, Engine, Function, Reply, Service};
use super::triggers;
use crate::protocol::{ErrorBody, Message, RegisterFunction, RegisterService};

pub(crate) fn register_function(engine: &Engine, conn: &Arc<Conn>, f: RegisterFunction) {
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
        http: f.invocation.map(|_| Arc::new(super::http_functions::HttpFunction {})),
    };
    state.functions.insert(f.id, entry);
}

pub(crate) fn unregister_function(engine: &Engine, conn: &Conn, id: &str) {
    let mut state = engine.state.lock();
    state.functions.remove(id);
    if let Some(worker) = state.workers.get_mut(&conn.id) {
        worker.functions.remove(id);
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
    triggers::fire_worker_event(engine, "worker_disconnected", &conn.id);
}
