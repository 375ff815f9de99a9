//! HEAD's engine functions (docs/protocol.md B.4): listings without formats, `::info` details,
//! bindings under `engine::registered-triggers::list`, trigger types under
//! `engine::triggers::list`, and `engine::trigger-types::list` gone.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::Value;

use super::channels::CHANNELS_CREATE;
use super::conn::Conn;
use super::registry::WORKERS_REGISTER;
use super::reply::{input, not_found, object1, Internal, Outcome};
use super::state::{Engine, State};
use super::{channels, head, state_fns, streams};
use iii_protocol::{ErrorBody, Json};

const FUNCTIONS_LIST: &str = "engine::functions::list";
const FUNCTIONS_INFO: &str = "engine::functions::info";
const WORKERS_LIST: &str = "engine::workers::list";
const TRIGGERS_LIST: &str = "engine::triggers::list";
const TRIGGERS_INFO: &str = "engine::triggers::info";
const REGISTERED_TRIGGERS_LIST: &str = "engine::registered-triggers::list";
/// The real engine caps a `function_ids` batch at 32.
const INFO_BATCH_MAX: usize = 32;

pub(crate) const BUILTINS: [&str; 8] = [
    FUNCTIONS_LIST,
    FUNCTIONS_INFO,
    WORKERS_LIST,
    TRIGGERS_LIST,
    TRIGGERS_INFO,
    REGISTERED_TRIGGERS_LIST,
    WORKERS_REGISTER,
    CHANNELS_CREATE,
];

const DEFAULT: &str = "default";

pub(crate) fn call(engine: &Arc<Engine>, conn: &Arc<Conn>, function_id: &str, text: &str) -> Outcome {
    let out = match function_id {
        FUNCTIONS_LIST => {
            let input: Internal = input(function_id, text)?;
            object1("functions", function_summaries(engine, input.include_internal.unwrap_or(false)))
        }
        FUNCTIONS_INFO => return functions_info(engine, input(function_id, text)?),
        WORKERS_LIST => workers_list(engine, conn),
        TRIGGERS_LIST => {
            let input: Internal = input(function_id, text)?;
            trigger_types(engine, input.include_internal.unwrap_or(false))
        }
        TRIGGERS_INFO => return trigger_type_info(engine, input(function_id, text)?),
        REGISTERED_TRIGGERS_LIST => {
            let input: Internal = input(function_id, text)?;
            registered_triggers(engine, input.include_internal.unwrap_or(false))
        }
        CHANNELS_CREATE => channels::create(&engine.channels, input(function_id, text)?),
        _ => return Err(not_found(function_id)),
    };
    out.map(Some).map_err(|e| ErrorBody::new("serialization_error", e.to_string()))
}

#[derive(Serialize)]
struct FunctionSummary<'a> {
    function_id: &'a str,
    namespace: &'a str,
    worker_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a RawValue>,
}

/// Functions the engine's in-process modules (and a simulated queue worker) provide.
fn module_functions(engine: &Engine) -> impl Iterator<Item = &'static str> {
    let queue = engine.config.queue_worker.then_some(head::ENQUEUE_PROVIDER);
    streams::FUNCTIONS.iter().chain(state_fns::FUNCTIONS.iter()).chain(BUILTINS.iter()).copied().chain(queue)
}

fn owner_name(state: &State, conn: &Conn) -> String {
    let name = state.workers.get(&conn.id).and_then(|w| w.meta.name.clone());
    name.unwrap_or_else(|| conn.id.clone())
}

fn module_of(function_id: &str) -> &'static str {
    if function_id.starts_with("stream::") {
        "iii-stream"
    } else if function_id.starts_with("state::") {
        "iii-state"
    } else {
        "iii-engine-functions"
    }
}

fn is_tagged_internal(metadata: Option<&RawValue>) -> bool {
    let parsed = metadata.and_then(|m| serde_json::from_str::<Value>(m.get()).ok());
    parsed.and_then(|m| m.get("internal").and_then(Value::as_bool)).unwrap_or(false)
}

/// Hidden by default: `engine::*` except `engine::queue::*`, and `metadata.internal == true`.
fn hidden(function_id: &str, metadata: Option<&RawValue>) -> bool {
    let engine_internal = function_id.starts_with("engine::") && !function_id.starts_with("engine::queue::");
    engine_internal || is_tagged_internal(metadata)
}

/// `engine::functions::list` entries, also the `functions` of a functions-available event.
pub(crate) fn function_summaries(engine: &Engine, include_internal: bool) -> Json {
    let state = engine.state.lock();
    let mut entries: Vec<FunctionSummary<'_>> = state
        .functions
        .iter()
        .map(|(id, f)| FunctionSummary {
            function_id: id,
            namespace: &f.namespace,
            worker_name: owner_name(&state, &f.owner),
            description: f.description.as_deref(),
            metadata: f.metadata.as_deref(),
        })
        .collect();
    let modules = module_functions(engine);
    entries.extend(modules.filter(|id| !state.functions.contains_key(*id)).map(|id| FunctionSummary {
        function_id: id,
        namespace: DEFAULT,
        worker_name: module_of(id).to_owned(),
        description: None,
        metadata: None,
    }));
    entries.retain(|e| include_internal || !hidden(e.function_id, e.metadata));
    entries.sort_by_key(|e| e.function_id);
    to_raw_value(&entries).unwrap_or_default()
}

#[derive(Deserialize)]
struct InfoInput {
    #[serde(default)]
    function_id: Option<String>,
    #[serde(default)]
    function_ids: Option<Vec<String>>,
    #[serde(default)]
    namespace: Option<String>,
}

fn invalid(message: &str) -> ErrorBody {
    ErrorBody::new("INVALID_ARGUMENTS", message)
}

/// One function's detail, or `None` when it is not registered (in `namespace`, if given).
fn function_detail(
    engine: &Engine,
    state: &State,
    function_id: &str,
    namespace: Option<&str>,
) -> Option<Value> {
    let registered_triggers: Vec<Value> = {
        let mut refs: Vec<(&String, &super::state::Binding)> =
            state.triggers.iter().filter(|(_, b)| b.function_id == function_id).collect();
        refs.sort_by_key(|(id, _)| *id);
        refs.into_iter()
            .map(|(id, b)| {
                serde_json::json!({"id": id, "trigger_type": b.trigger_type, "config": raw_value(b.config.as_deref())})
            })
            .collect()
    };
    let mut detail = match state.functions.get(function_id) {
        Some(f) => {
            if namespace.is_some_and(|ns| ns != f.namespace) {
                return None;
            }
            let mut d = serde_json::json!({
                "function_id": function_id, "namespace": f.namespace,
                "worker_name": owner_name(state, &f.owner),
            });
            for (key, value) in [
                ("description", f.description.as_ref().map(|d| Value::String(d.clone()))),
                ("request_schema", f.request_format.as_deref().map(|v| raw_value(Some(v)))),
                ("response_schema", f.response_format.as_deref().map(|v| raw_value(Some(v)))),
                ("metadata", f.metadata.as_deref().map(|v| raw_value(Some(v)))),
            ] {
                if let Some(v) = value {
                    d[key] = v;
                }
            }
            d
        }
        None => {
            let id = module_functions(engine).find(|id| *id == function_id)?;
            if namespace.is_some_and(|ns| ns != DEFAULT) {
                return None;
            }
            serde_json::json!({"function_id": id, "namespace": DEFAULT, "worker_name": module_of(id)})
        }
    };
    detail["registered_triggers"] = Value::Array(registered_triggers);
    Some(detail)
}

fn raw_value(v: Option<&RawValue>) -> Value {
    v.and_then(|v| serde_json::from_str(v.get()).ok()).unwrap_or(Value::Null)
}

fn functions_info(engine: &Engine, input: InfoInput) -> Outcome {
    let ns = input.namespace.as_deref();
    let state = engine.state.lock();
    let out = match (input.function_id, input.function_ids) {
        (Some(_), Some(_)) => return Err(invalid("pass either `function_id` or `function_ids`, not both")),
        (None, None) => return Err(invalid("missing field `function_id` (or `function_ids` for a batch)")),
        (Some(id), None) => function_detail(engine, &state, &id, ns).ok_or_else(|| not_found(&id))?,
        (None, Some(ids)) => {
            let mut unique: Vec<String> = Vec::new();
            for id in ids {
                if !unique.contains(&id) {
                    unique.push(id);
                }
            }
            if unique.is_empty() {
                return Err(invalid("`function_ids` must be a non-empty array of function ids"));
            }
            if unique.len() > INFO_BATCH_MAX {
                return Err(invalid(&format!("too many function_ids (max {INFO_BATCH_MAX})")));
            }
            let entries: Vec<Value> = unique
                .iter()
                .map(|id| {
                    function_detail(engine, &state, id, ns)
                        .unwrap_or_else(|| serde_json::json!({"function_id": id, "error": "not_found"}))
                })
                .collect();
            serde_json::json!({ "functions": entries })
        }
    };
    to_raw_value(&out).map(Some).map_err(|e| ErrorBody::new("serialization_error", e.to_string()))
}

fn type_owner(state: &State, t: &super::state::TriggerType, id: &str) -> String {
    match &t.provider {
        Some(conn) => owner_name(state, conn),
        None if id.starts_with("engine::") => "iii-engine-functions".into(),
        None => format!("iii-{}", id.split(':').next().unwrap_or(id)),
    }
}

fn trigger_types(engine: &Engine, include_internal: bool) -> serde_json::Result<Json> {
    let state = engine.state.lock();
    let mut types: Vec<Value> = state
        .trigger_types
        .iter()
        .filter(|(id, _)| include_internal || !id.starts_with("engine::"))
        .map(|(id, t)| {
            serde_json::json!({"id": id, "namespace": DEFAULT, "worker_name": type_owner(&state, t, id),
                "description": t.description})
        })
        .collect();
    types.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    object1("triggers", types)
}

#[derive(Deserialize)]
struct TypeInfoInput {
    id: String,
    #[serde(default)]
    namespace: Option<String>,
}

fn trigger_type_info(engine: &Engine, input: TypeInfoInput) -> Outcome {
    let namespace = input.namespace.unwrap_or_else(|| DEFAULT.to_owned());
    let state = engine.state.lock();
    let found = state.trigger_types.get(&input.id).filter(|_| namespace == DEFAULT);
    let Some(t) = found else {
        return Err(ErrorBody::new(
            "NOT_FOUND",
            format!("Trigger type '{}' is not registered in namespace '{namespace}'.", input.id),
        ));
    };
    let mut detail = serde_json::json!({
        "id": input.id, "namespace": namespace, "worker_name": type_owner(&state, t, &input.id),
        "description": t.description,
        "instance_count": state.triggers.values().filter(|b| b.trigger_type == input.id).count(),
    });
    if let Some(v) = t.trigger_request_format.as_deref() {
        detail["configuration_schema"] = raw_value(Some(v));
    }
    if let Some(v) = t.call_request_format.as_deref() {
        detail["request_schema"] = raw_value(Some(v));
    }
    to_raw_value(&detail).map(Some).map_err(|e| ErrorBody::new("serialization_error", e.to_string()))
}

fn registered_triggers(engine: &Engine, include_internal: bool) -> serde_json::Result<Json> {
    let state = engine.state.lock();
    let mut rows: Vec<Value> = state
        .triggers
        .iter()
        .filter(|(_, b)| include_internal || !b.function_id.starts_with("engine::"))
        .map(|(id, b)| {
            let worker_name = state.functions.get(&b.function_id).map(|f| owner_name(&state, &f.owner));
            let config = raw_value(b.config.as_deref());
            let summary: String = config.to_string().chars().take(80).collect();
            serde_json::json!({"id": id, "trigger_type": b.trigger_type, "function_id": b.function_id,
                "worker_name": worker_name.unwrap_or_default(), "config": config, "config_summary": summary})
        })
        .collect();
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    object1("registered_triggers", rows)
}

/// HEAD lists socket workers only once they reported a `pid`, plus the in-process modules.
fn workers_list(engine: &Engine, caller: &Arc<Conn>) -> serde_json::Result<Json> {
    let state = engine.state.lock();
    let mut workers: Vec<Value> = state
        .workers
        .values()
        .filter(|w| w.meta.pid.is_some())
        .map(|w| {
            let conn = &w.conn;
            let in_flight = state.in_flight(conn);
            serde_json::json!({
                "name": w.meta.name, "description": w.meta.description, "version": w.meta.version,
                "id": conn.id, "namespace": w.meta.namespace.as_deref().unwrap_or(DEFAULT),
                "runtime": w.meta.runtime, "os": w.meta.os, "status": "connected",
                "function_count": w.functions.len(), "connected_at_ms": conn.connected_at_ms,
                "active_invocations": in_flight + usize::from(Arc::ptr_eq(conn, caller)),
                "isolation": w.meta.isolation, "ip_address": conn.ip,
            })
        })
        .collect();
    for (name, count) in [("iii-stream", streams::FUNCTIONS.len()), ("iii-state", state_fns::FUNCTIONS.len())]
    {
        workers.push(serde_json::json!({
            "name": name, "description": null, "version": env!("CARGO_PKG_VERSION"), "id": name,
            "namespace": DEFAULT, "runtime": "engine", "os": null, "status": "available",
            "function_count": count, "connected_at_ms": engine.started_at_ms, "active_invocations": 0,
            "isolation": "in-process", "ip_address": null,
        }));
    }
    let key = |w: &Value| w["name"].as_str().or(w["id"].as_str()).unwrap_or_default().to_owned();
    workers.sort_by_key(key);
    object1("workers", workers)
}
