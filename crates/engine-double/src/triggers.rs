//! Trigger types, bindings and the engine's own notification types (docs/protocol.md 2.6-2.10, 5, 6.7).

use std::sync::Arc;

use serde::Serialize;

use super::conn::Conn;
use super::delivery::call_from_engine;
use super::reply::Reply;
use super::state::{Binding, Engine, State, TriggerType};
use iii_protocol::{raw_json, Message, RegisterTrigger, RegisterTriggerType};

pub(crate) const LOG_TRIGGER_TYPE: &str = "log";
pub(crate) const FUNCTIONS_AVAILABLE: &str = "engine::functions-available";
pub(crate) const WORKERS_AVAILABLE: &str = "engine::workers-available";

/// Engine-provided types. Only the two `engine::` ones do anything here; the others exist so
/// bindings to them are accepted and listed as on a real engine with its default modules.
const BUILTIN_TYPES: [(&str, &str, &str); 9] = [
    (LOG_TRIGGER_TYPE, "Log event trigger", r#"{"type":"object","properties":{"level":{"type":"string"}}}"#),
    (FUNCTIONS_AVAILABLE, "Fires when the set of registered functions changes", r#"{"type":"object"}"#),
    (
        WORKERS_AVAILABLE,
        "Fires when workers connect, disconnect or update their metadata",
        r#"{"type":"object"}"#,
    ),
    (
        "http",
        "HTTP API trigger",
        r#"{"type":"object","properties":{"api_path":{"type":"string"},"http_method":{"type":"string"}},"required":["api_path"]}"#,
    ),
    (
        "cron",
        "Cron schedule trigger",
        r#"{"type":"object","properties":{"expression":{"type":"string"}},"required":["expression"]}"#,
    ),
    (
        "durable:subscriber",
        "Durable queue subscription",
        r#"{"type":"object","properties":{"topic":{"type":"string"}},"required":["topic"]}"#,
    ),
    (
        "stream",
        "Stream item changes and events",
        r#"{"type":"object","properties":{"stream_name":{"type":"string"},"group_id":{"type":"string"},"item_id":{"type":"string"}}}"#,
    ),
    (
        "state",
        "State changes",
        r#"{"type":"object","properties":{"scope":{"type":"string"},"key":{"type":"string"}}}"#,
    ),
    (
        "subscribe",
        "Pub/sub topic subscription",
        r#"{"type":"object","properties":{"topic":{"type":"string"}},"required":["topic"]}"#,
    ),
];

pub(crate) fn install_builtin_types(state: &mut State) {
    for (id, description, schema) in BUILTIN_TYPES {
        let tt = TriggerType {
            provider: None,
            description: description.to_owned(),
            trigger_request_format: raw_json(schema).ok(),
            call_request_format: raw_json(r#"{"type":"object"}"#).ok(),
        };
        state.trigger_types.insert(id.to_owned(), tt);
    }
}

fn binding_frame(id: &str, b: &Binding) -> String {
    Message::RegisterTrigger(RegisterTrigger {
        id: id.to_owned(),
        trigger_type: b.trigger_type.clone(),
        function_id: b.function_id.clone(),
        config: b.config.clone(),
        metadata: b.metadata.clone(),
        // HEAD: E→W copies carry the namespaces only when they are not `default`.
        namespace: b.namespace.clone().filter(|n| n != "default"),
        trigger_namespace: b.trigger_namespace.clone().filter(|n| n != "default"),
    })
    .encode()
}

/// Makes the connection the provider and replays the bindings already stored for the type.
pub(crate) async fn register_type(engine: &Engine, conn: &Arc<Conn>, t: RegisterTriggerType) {
    let replay = {
        let mut state = engine.state.lock();
        let mut replay: Vec<(&String, &Binding)> =
            state.triggers.iter().filter(|(_, b)| b.trigger_type == t.id).collect();
        replay.sort_by_key(|(id, _)| *id);
        let frames: Vec<String> = replay.into_iter().map(|(id, b)| binding_frame(id, b)).collect();
        let tt = TriggerType {
            provider: Some(conn.clone()),
            description: t.description,
            trigger_request_format: t.trigger_request_format,
            call_request_format: t.call_request_format,
        };
        state.trigger_types.insert(t.id, tt);
        frames
    };
    for frame in replay {
        conn.send(frame).await;
    }
}

pub(crate) async fn register(engine: &Engine, conn: &Arc<Conn>, t: RegisterTrigger) {
    let forward = {
        let mut state = engine.state.lock();
        let provider = match state.trigger_types.get(&t.trigger_type) {
            Some(tt) => tt.provider.clone(),
            // HEAD parks a binding for a type that does not exist yet; the type's
            // registration replays it (docs/protocol.md B.1 #10).
            None if engine.config.head_rules() => None,
            None => {
                drop(state);
                return engine.log(format!(
                    "Trigger type not found: {} (binding {} from {} dropped)",
                    t.trigger_type, t.id, conn.id
                ));
            }
        };
        let binding = Binding {
            trigger_type: t.trigger_type,
            function_id: t.function_id,
            config: t.config,
            metadata: t.metadata,
            owner: conn.clone(),
            namespace: t.namespace,
            trigger_namespace: t.trigger_namespace,
        };
        let forward = provider.map(|p| (p, binding_frame(&t.id, &binding)));
        state.triggers.insert(t.id, binding);
        forward
    };
    if let Some((provider, frame)) = forward {
        provider.send(frame).await;
    }
}

pub(crate) async fn unregister(engine: &Engine, id: &str) {
    let forward = {
        let mut state = engine.state.lock();
        let Some(b) = state.triggers.remove(id) else {
            drop(state);
            return engine.log(format!("unregistertrigger for unknown trigger {id}"));
        };
        let provider = state.trigger_types.get(&b.trigger_type).and_then(|t| t.provider.clone());
        provider.map(|p| (p, b.trigger_type))
    };
    if let Some((provider, trigger_type)) = forward {
        let msg = Message::UnregisterTrigger { id: id.to_owned(), trigger_type: Some(trigger_type) };
        provider.send(msg.encode()).await;
    }
}

pub(crate) fn bound_functions(engine: &Engine, trigger_type: &str) -> Vec<String> {
    bound_where(engine, trigger_type, |_| true)
}

/// The functions bound to `trigger_type` whose config `keeps`, in binding id order.
pub(crate) fn bound_where(
    engine: &Engine,
    trigger_type: &str,
    keeps: impl Fn(Option<&serde_json::value::RawValue>) -> bool,
) -> Vec<String> {
    let state = engine.state.lock();
    let mut bound: Vec<(&String, &Binding)> = state
        .triggers
        .iter()
        .filter(|(_, b)| b.trigger_type == trigger_type && keeps(b.config.as_deref()))
        .collect();
    bound.sort_by_key(|(id, _)| *id);
    bound.into_iter().map(|(_, b)| b.function_id.clone()).collect()
}

/// Engine-originated calls whose result nobody needs; failures only reach the log.
pub(crate) async fn notify(engine: &Arc<Engine>, functions: Vec<String>, payload: &str) {
    for fid in functions {
        if let Err(e) = call_from_engine(engine, &fid, payload, None, None, Reply::Discard).await {
            engine.log(format!("notification to {fid} failed: {}: {}", e.code, e.message));
        }
    }
}

/// Calls, in the background, every function bound to `trigger_type` whose config matches:
/// each `(key, actual)` of `filter` matches when the config's `key` is absent, empty or equal.
pub(crate) fn fire_matching(
    engine: &Arc<Engine>,
    trigger_type: &str,
    filter: &[(&str, &str)],
    payload: String,
) {
    let functions = bound_where(engine, trigger_type, |config| config_matches(config, filter));
    notify_in_background(engine, functions, payload);
}

/// Calls `functions` with `payload` in the background (see `notify`).
pub(crate) fn notify_in_background(engine: &Arc<Engine>, functions: Vec<String>, payload: String) {
    if functions.is_empty() {
        return;
    }
    let engine = engine.clone();
    tokio::spawn(async move { notify(&engine, functions, &payload).await });
}

fn config_matches(config: Option<&serde_json::value::RawValue>, filter: &[(&str, &str)]) -> bool {
    let config: serde_json::Value =
        config.and_then(|c| serde_json::from_str(c.get()).ok()).unwrap_or_default();
    filter.iter().all(|(key, actual)| match config.get(*key).and_then(serde_json::Value::as_str) {
        None | Some("") => true,
        Some(wanted) => wanted == *actual,
    })
}

pub(crate) fn fire_worker_event(engine: &Arc<Engine>, event: &str, worker_id: &str) {
    let functions = bound_functions(engine, WORKERS_AVAILABLE);
    if functions.is_empty() {
        return;
    }
    #[derive(Serialize)]
    struct Event<'a> {
        event: &'a str,
        worker_id: &'a str,
    }
    let payload = serde_json::to_string(&Event { event, worker_id }).unwrap_or_default();
    let engine = engine.clone();
    tokio::spawn(async move { notify(&engine, functions, &payload).await });
}
