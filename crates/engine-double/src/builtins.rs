//! Engine functions answered by the engine itself (docs/protocol.md 6.1-6.6).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::{to_raw_value, RawValue};

use super::channels::{self, CHANNELS_CREATE};
use super::conn::Conn;
use super::registry::WORKERS_REGISTER;
use super::reply::{bad_input, input, not_found, now_ms, object1, result_frame, Answer, Internal, Outcome};
use super::state::{Engine, WorkerMeta};
use super::triggers::{self, fire_worker_event};
use super::{head, head_listings, observability, observe, pubsub, state_fns, streams, v025};
use iii_protocol::{ErrorBody, Json, Message, RegistrationRejected};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

const FUNCTIONS_LIST: &str = "engine::functions::list";
const WORKERS_LIST: &str = "engine::workers::list";
const TRIGGERS_LIST: &str = "engine::triggers::list";
const TRIGGER_TYPES_LIST: &str = "engine::trigger-types::list";

const BUILTINS: [&str; 6] =
    [FUNCTIONS_LIST, WORKERS_LIST, TRIGGERS_LIST, TRIGGER_TYPES_LIST, WORKERS_REGISTER, CHANNELS_CREATE];

pub(crate) fn is_builtin(engine: &Engine, function_id: &str) -> bool {
    function_id.starts_with("engine::")
        && if engine.config.head_rules() {
            head_listings::BUILTINS.contains(&function_id)
        } else {
            BUILTINS.contains(&function_id)
        }
}

/// Answers a call to a function the engine provides itself; `None` for any other id.
pub(crate) async fn dispatch(
    engine: &Arc<Engine>,
    conn: &Arc<Conn>,
    function_id: &str,
    invocation_id: Option<&str>,
    data: Option<&RawValue>,
) -> Option<Answer> {
    let text = data.map_or("null", RawValue::get);
    if streams::is_stream_function(function_id) {
        return Some(streams::call(engine, function_id, text));
    }
    if state_fns::is_state_function(function_id) {
        return Some(Answer::Now(state_fns::call(engine, function_id, text)));
    }
    if observability::is_observability_function(function_id) {
        return Some(Answer::Now(observability::call(engine, function_id, text)));
    }
    if function_id == pubsub::PUBLISH {
        return Some(Answer::Now(pubsub::publish(engine, text)));
    }
    if function_id == observe::OBSERVERS_GET && engine.config.v025() {
        return Some(Answer::Now(observe::observers_get(engine, text)));
    }
    if !is_builtin(engine, function_id) {
        return None;
    }
    if function_id == WORKERS_REGISTER && engine.config.head_rules() {
        if let Some(rejected) = name_conflict(engine, conn, text) {
            // HEAD: `{"success": false}`, then `registrationrejected`, then the engine closes.
            if let Some(id) = invocation_id {
                let out = object1("success", false)
                    .map(Some)
                    .map_err(|e| ErrorBody::new("serialization_error", e.to_string()));
                conn.send(result_frame(id, function_id, out)).await;
            }
            conn.send(rejected).await;
            conn.close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "WORKER_NAMESPACE_CONFLICT".into(),
            }))
            .await;
            return Some(Answer::Handled);
        }
        let out = announce(engine, conn, text).await;
        if out.is_ok() && v025::welcome(engine, conn).await {
            // Owners hear of their functions' observers once they know who they are (C.6.1).
            observe::greeted(engine, conn).await;
        }
        return Some(Answer::Now(out));
    }
    if engine.config.head_rules() {
        return Some(Answer::Now(head_listings::call(engine, conn, function_id, text)));
    }
    Some(Answer::Now(call(engine, conn, function_id, data)))
}

/// HEAD: the `name` announced by `engine::workers::register` is held by another live worker.
fn name_conflict(engine: &Engine, conn: &Conn, text: &str) -> Option<String> {
    let input = serde_json::from_str::<RegisterInput>(text).ok()?;
    let name = input.name?;
    let namespace = input.namespace.unwrap_or_else(|| head::DEFAULT_NAMESPACE.into());
    let state = engine.state.lock();
    let owner = state.workers.values().find(|w| {
        w.conn.id != conn.id
            && w.meta.name.as_deref() == Some(name.as_str())
            && w.meta.namespace.as_deref().unwrap_or(head::DEFAULT_NAMESPACE) == namespace
    })?;
    let msg = Message::RegistrationRejected(RegistrationRejected {
        code: "WORKER_NAMESPACE_CONFLICT".into(),
        namespace: Some(namespace.clone()),
        worker_name: Some(name.clone()),
        function_id: None,
        owner_worker_id: Some(owner.conn.id.clone()),
    });
    Some(msg.encode())
}

/// HEAD `engine::workers::register`: stores the metadata, then fixes the connection's
/// namespace and applies the registrations buffered until now.
async fn announce(engine: &Arc<Engine>, conn: &Arc<Conn>, text: &str) -> Outcome {
    if !text.trim_start().starts_with('{') {
        return Err(bad_input(WORKERS_REGISTER, "expected an object with _caller_worker_id"));
    }
    let input: RegisterInput = input(WORKERS_REGISTER, text)?;
    if input.namespace.as_deref().is_some_and(|ns| ns.trim().is_empty()) {
        return Err(ErrorBody::new("INVALID_NAMESPACE", "namespace is empty"));
    }
    let namespace = input.namespace.clone();
    register_worker(engine, conn, input);
    head::fix_namespace(engine, conn, namespace.as_deref()).await;
    object1("success", true).map(Some).map_err(|e| ErrorBody::new("serialization_error", e.to_string()))
}

fn call(engine: &Arc<Engine>, conn: &Arc<Conn>, function_id: &str, data: Option<&RawValue>) -> Outcome {
    let text = data.map_or("null", RawValue::get);
    let out = match function_id {
        FUNCTIONS_LIST => {
            let input: Internal = input(function_id, text)?;
            let functions = function_entries(engine, input.include_internal.unwrap_or(false));
            object1("functions", functions)
        }
        WORKERS_LIST => {
            let input: WorkerFilter = input(function_id, text)?;
            workers_list(engine, conn, input.worker_id.as_deref())
        }
        TRIGGERS_LIST => {
            let input: Internal = input(function_id, text)?;
            triggers_list(engine, input.include_internal.unwrap_or(false))
        }
        TRIGGER_TYPES_LIST => {
            let input: Internal = input(function_id, text)?;
            trigger_types_list(engine, input.include_internal.unwrap_or(false))
        }
        CHANNELS_CREATE => channels::create(&engine.channels, input(function_id, text)?),
        WORKERS_REGISTER => {
            if !text.trim_start().starts_with('{') {
                return Err(bad_input(function_id, "expected an object with _caller_worker_id"));
            }
            let input: RegisterInput = input(function_id, text)?;
            register_worker(engine, conn, input);
            object1("success", true)
        }
        _ => return Err(not_found(function_id)),
    };
    out.map(Some).map_err(|e| ErrorBody::new("serialization_error", e.to_string()))
}

#[derive(Deserialize)]
struct WorkerFilter {
    #[serde(default)]
    worker_id: Option<String>,
}

#[derive(Deserialize)]
struct RegisterInput {
    runtime: Option<String>,
    version: Option<String>,
    name: Option<String>,
    os: Option<String>,
    pid: Option<u32>,
    telemetry: Option<Json>,
    namespace: Option<String>,
    description: Option<String>,
    isolation: Option<String>,
    #[serde(default, deserialize_with = "lenient_features")]
    features: Option<Vec<String>>,
}

/// The string elements of a `features` array; another value declares nothing.
fn lenient_features<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::Array(items) => {
            Some(items.into_iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
        }
        _ => Some(Vec::new()),
    })
}

#[derive(Serialize)]
struct FunctionInfo<'a> {
    function_id: &'a str,
    description: Option<&'a str>,
    request_format: Option<&'a RawValue>,
    response_format: Option<&'a RawValue>,
    metadata: Option<&'a RawValue>,
}

/// `engine::functions::list` entries, also the `functions` of a functions-available event.
pub(crate) fn function_entries(engine: &Engine, include_internal: bool) -> Json {
    if engine.config.head_rules() {
        return head_listings::function_summaries(engine, include_internal);
    }
    let state = engine.state.lock();
    let mut entries: Vec<FunctionInfo<'_>> = state
        .functions
        .iter()
        .filter(|(id, _)| include_internal || !id.starts_with("engine::"))
        .map(|(id, f)| FunctionInfo {
            function_id: id,
            description: f.description.as_deref(),
            request_format: f.request_format.as_deref(),
            response_format: f.response_format.as_deref(),
            metadata: f.metadata.as_deref(),
        })
        .collect();
    // `stream::*`, `state::*` and `publish` are always listed, like the real engine's modules'
    // functions.
    let modules = streams::FUNCTIONS.iter().chain(state_fns::FUNCTIONS.iter()).chain([&pubsub::PUBLISH]);
    entries.extend(modules.filter(|id| !state.functions.contains_key(**id)).map(|id| FunctionInfo {
        function_id: id,
        description: None,
        request_format: None,
        response_format: None,
        metadata: None,
    }));
    if include_internal {
        entries.extend(BUILTINS.iter().filter(|id| !state.functions.contains_key(**id)).map(|id| {
            FunctionInfo {
                function_id: id,
                description: None,
                request_format: None,
                response_format: None,
                metadata: None,
            }
        }));
    }
    entries.sort_by_key(|e| e.function_id);
    to_raw_value(&entries).unwrap_or_default()
}

fn workers_list(engine: &Engine, caller: &Arc<Conn>, only: Option<&str>) -> serde_json::Result<Json> {
    #[derive(Serialize)]
    struct WorkerInfo<'a> {
        id: &'a str,
        name: Option<&'a str>,
        runtime: Option<&'a str>,
        version: Option<&'a str>,
        os: Option<&'a str>,
        ip_address: &'a str,
        status: &'a str,
        connected_at_ms: u64,
        function_count: usize,
        functions: Vec<&'a str>,
        active_invocations: usize,
        latest_metrics: Option<serde_json::Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    }
    let state = engine.state.lock();
    let mut workers: Vec<WorkerInfo<'_>> = state
        .workers
        .values()
        .filter(|w| match only {
            Some(id) => id == w.conn.id,
            None => true,
        })
        .map(|w| {
            let conn = &w.conn;
            let in_flight = state.in_flight(conn);
            WorkerInfo {
                id: &conn.id,
                name: w.meta.name.as_deref(),
                runtime: w.meta.runtime.as_deref(),
                version: w.meta.version.as_deref(),
                os: w.meta.os.as_deref(),
                ip_address: &conn.ip,
                status: "connected",
                connected_at_ms: conn.connected_at_ms,
                function_count: w.functions.len(),
                functions: w.functions.iter().map(String::as_str).collect(),
                active_invocations: in_flight + usize::from(Arc::ptr_eq(conn, caller)),
                latest_metrics: observability::latest_metrics(engine, &conn.id),
                pid: w.meta.pid,
            }
        })
        .collect();
    workers.sort_by(|a, b| (a.connected_at_ms, a.id).cmp(&(b.connected_at_ms, b.id)));
    #[derive(Serialize)]
    struct Listing<'a> {
        timestamp: u64,
        workers: Vec<WorkerInfo<'a>>,
    }
    to_raw_value(&Listing { timestamp: now_ms(), workers })
}

fn triggers_list(engine: &Engine, include_internal: bool) -> serde_json::Result<Json> {
    #[derive(Serialize)]
    struct TriggerInfo<'a> {
        id: &'a str,
        trigger_type: &'a str,
        function_id: &'a str,
        config: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<&'a RawValue>,
    }
    let state = engine.state.lock();
    let mut triggers: Vec<TriggerInfo<'_>> = state
        .triggers
        .iter()
        .filter(|(_, b)| include_internal || !b.function_id.starts_with("engine::"))
        .map(|(id, b)| TriggerInfo {
            id,
            trigger_type: &b.trigger_type,
            function_id: &b.function_id,
            config: b.config.as_deref(),
            metadata: b.metadata.as_deref(),
        })
        .collect();
    triggers.sort_by_key(|t| t.id);
    object1("triggers", triggers)
}

fn trigger_types_list(engine: &Engine, include_internal: bool) -> serde_json::Result<Json> {
    #[derive(Serialize)]
    struct TypeInfo<'a> {
        id: &'a str,
        description: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        trigger_request_format: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        call_request_format: Option<&'a RawValue>,
    }
    let state = engine.state.lock();
    let mut types: Vec<TypeInfo<'_>> = state
        .trigger_types
        .iter()
        .filter(|(id, _)| include_internal || !id.starts_with("engine::"))
        .map(|(id, t)| TypeInfo {
            id,
            description: &t.description,
            trigger_request_format: t.trigger_request_format.as_deref(),
            call_request_format: t.call_request_format.as_deref(),
        })
        .collect();
    types.sort_by_key(|t| t.id);
    object1("trigger_types", types)
}

fn register_worker(engine: &Arc<Engine>, conn: &Arc<Conn>, input: RegisterInput) {
    let mut meta = WorkerMeta {
        runtime: Some(input.runtime.unwrap_or_else(|| "unknown".into())),
        version: input.version,
        name: input.name,
        os: input.os,
        pid: input.pid,
        telemetry: input.telemetry,
        namespace: None,
        description: input.description,
        isolation: input.isolation,
        features: input.features,
    };
    if let Some(worker) = engine.state.lock().workers.get_mut(&conn.id) {
        // A connection's namespace, once fixed, stays (`head::fix_namespace`).
        meta.namespace = worker.meta.namespace.take();
        worker.meta = meta;
    }
    fire_worker_event(engine, "worker_metadata_updated", &conn.id);
}

/// Polls the function set like the real engine and notifies `engine::functions-available`.
pub(crate) async fn poll_functions(engine: Arc<Engine>) {
    let mut last = engine.function_ids();
    let mut ticker = tokio::time::interval(engine.config.functions_poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = engine.function_ids();
        if now == last {
            continue;
        }
        last = now;
        let functions = triggers::bound_functions(&engine, triggers::FUNCTIONS_AVAILABLE);
        if functions.is_empty() {
            continue;
        }
        #[derive(Serialize)]
        struct Changed<'a, T: Serialize> {
            event: &'a str,
            functions: T,
        }
        let entries = function_entries(&engine, true);
        let payload = serde_json::to_string(&Changed { event: "functions_changed", functions: entries })
            .unwrap_or_default();
        triggers::notify(&engine, functions, &payload).await;
    }
}
