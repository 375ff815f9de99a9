//! `stream::*` built-ins (docs/protocol.md 7): the engine's in-memory store, the redirection to
//! custom streams (`stream::<op>(<name>)` functions registered by workers) and `stream` triggers.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::delivery::call_from_engine;
use super::kv::Ops;
use super::reply::{input as parse, now_ms, Answer, Outcome, Reply};
use super::state::Engine;
use super::triggers::fire_matching;
use iii_protocol::ErrorBody;

pub(crate) const FUNCTIONS: [&str; 8] = [
    "stream::set",
    "stream::get",
    "stream::delete",
    "stream::list",
    "stream::list_groups",
    "stream::update",
    "stream::send",
    "stream::list_all",
];

pub(crate) fn is_stream_function(function_id: &str) -> bool {
    function_id.starts_with("stream::") && FUNCTIONS.contains(&function_id)
}

#[derive(Deserialize, Serialize)]
struct Item {
    stream_name: String,
    group_id: String,
    item_id: String,
}

#[derive(Deserialize, Serialize)]
struct SetInput {
    stream_name: String,
    group_id: String,
    item_id: String,
    data: Value,
}

#[derive(Deserialize, Serialize)]
struct Group {
    stream_name: String,
    group_id: String,
}

#[derive(Deserialize, Serialize)]
struct Name {
    stream_name: String,
}

#[derive(Deserialize, Serialize)]
struct UpdateInput {
    stream_name: String,
    group_id: String,
    item_id: String,
    ops: Box<RawValue>,
}

#[derive(Deserialize)]
struct SendInput {
    stream_name: String,
    group_id: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

pub(crate) fn to_outcome(value: Option<Value>) -> Outcome {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::value::to_raw_value(&v)
            .map(Some)
            .map_err(|e| ErrorBody::new("serialization_error", e.to_string())),
    }
}

/// Runs `stream::<op>`; `op` is one of [`FUNCTIONS`]. Only custom streams answer later.
pub(crate) fn call(engine: &Arc<Engine>, function_id: &str, text: &str) -> Answer {
    match call_inner(engine, function_id, text) {
        Ok(answer) => answer,
        Err(e) => Answer::Now(Err(e)),
    }
}

fn call_inner(engine: &Arc<Engine>, function_id: &str, text: &str) -> Result<Answer, ErrorBody> {
    let op = &function_id["stream::".len()..];
    let now = |v: Option<Value>| Ok(Answer::Now(to_outcome(v)));
    match op {
        "set" => {
            let input: SetInput = parse(function_id, text)?;
            if let Some(answer) = redirect(engine, op, &input.stream_name, &input) {
                return Ok(answer);
            }
            let old = engine.streams.lock().set(
                &input.stream_name,
                &input.group_id,
                &input.item_id,
                input.data.clone(),
            );
            let kind = if old.is_some() { "update" } else { "create" };
            fire(
                engine,
                &input.stream_name,
                &input.group_id,
                Some(&input.item_id),
                json!({"type": kind, "data": input.data}),
            );
            now(Some(json!({"old_value": old, "new_value": input.data})))
        }
        "get" => {
            let input: Item = parse(function_id, text)?;
            if let Some(answer) = redirect(engine, op, &input.stream_name, &input) {
                return Ok(answer);
            }
            now(engine.streams.lock().get(&input.stream_name, &input.group_id, &input.item_id))
        }
        "delete" => {
            let input: Item = parse(function_id, text)?;
            if let Some(answer) = redirect(engine, op, &input.stream_name, &input) {
                return Ok(answer);
            }
            let old = engine.streams.lock().delete(&input.stream_name, &input.group_id, &input.item_id);
            if let Some(old) = &old {
                fire(
                    engine,
                    &input.stream_name,
                    &input.group_id,
                    Some(&input.item_id),
                    json!({"type": "delete", "data": old}),
                );
            }
            now(Some(json!({ "old_value": old })))
        }
        "list" => {
            let input: Group = parse(function_id, text)?;
            if let Some(answer) = redirect(engine, op, &input.stream_name, &input) {
                return Ok(answer);
            }
            now(Some(Value::from(engine.streams.lock().list(&input.stream_name, &input.group_id))))
        }
        "list_groups" => {
            let input: Name = parse(function_id, text)?;
            if let Some(answer) = redirect(engine, op, &input.stream_name, &input) {
                return Ok(answer);
            }
            now(Some(Value::from(engine.streams.lock().groups(&input.stream_name))))
        }
        "update" => {
            let input: UpdateInput = parse(function_id, text)?;
            let ops = Ops::parse(function_id, input.ops.get(), engine.config.head_rules())?;
            if let Some(answer) = redirect(engine, op, &input.stream_name, &input) {
                return Ok(answer);
            }
            let (old, result) =
                engine.streams.lock().update(&input.stream_name, &input.group_id, &input.item_id, &ops);
            let kind = if old.is_some() { "update" } else { "create" };
            fire(
                engine,
                &input.stream_name,
                &input.group_id,
                Some(&input.item_id),
                json!({"type": kind, "data": result["new_value"]}),
            );
            now(Some(result))
        }
        "send" => {
            let input: SendInput = parse(function_id, text)?;
            let event = json!({"type": "event", "event": {"type": input.kind, "data": input.data}});
            fire(engine, &input.stream_name, &input.group_id, input.id.as_deref(), event);
            now(None)
        }
        _ => {
            // "list_all"
            let names = engine.streams.lock().names();
            let count = names.len();
            let stream: Vec<Value> =
                names.into_iter().map(|(id, groups)| json!({"id": id, "groups": groups})).collect();
            now(Some(json!({"stream": stream, "count": count})))
        }
    }
}

/// When `stream::<op>(<name>)` is registered, the call goes there with exactly the typed keys.
fn redirect<T: Serialize>(engine: &Arc<Engine>, op: &str, stream_name: &str, input: &T) -> Option<Answer> {
    let target = format!("stream::{op}({stream_name})");
    if !engine.state.lock().functions.contains_key(&target) {
        return None;
    }
    let payload = serde_json::to_string(input).unwrap_or_default();
    let (engine, op) = (engine.clone(), op.to_owned());
    Some(Answer::Later(Box::pin(async move {
        let (tx, rx) = oneshot::channel();
        call_from_engine(&engine, &target, &payload, None, None, Reply::Await(tx)).await?;
        let result = rx.await.unwrap_or_else(|_| Err(ErrorBody::new("invocation_error", "call lost")))?;
        let value = result.and_then(|r| serde_json::from_str::<Value>(r.get()).ok()).filter(|v| !v.is_null());
        let input: Value = serde_json::from_str(&payload).unwrap_or_default();
        let (group, item) = (input["group_id"].as_str().unwrap_or(""), input["item_id"].as_str());
        match (op.as_str(), &value) {
            ("set", None) => {
                return Err(ErrorBody::new(
                    "STREAM_SET_ERROR",
                    "Failed to set value: custom stream returned no result",
                ))
            }
            ("delete", None) => {
                return Err(ErrorBody::new(
                    "STREAM_DELETE_ERROR",
                    "Failed to delete value: custom stream returned no result",
                ))
            }
            ("set" | "update", Some(v)) => {
                let kind = if v["old_value"].is_null() { "create" } else { "update" };
                fire(
                    &engine,
                    input["stream_name"].as_str().unwrap_or(""),
                    group,
                    item,
                    json!({"type": kind, "data": v["new_value"]}),
                );
            }
            ("delete", Some(v)) => {
                fire(
                    &engine,
                    input["stream_name"].as_str().unwrap_or(""),
                    group,
                    item,
                    json!({"type": "delete", "data": v["old_value"]}),
                );
            }
            _ => {}
        }
        to_outcome(value)
    })))
}

/// Calls the functions bound with a `stream` trigger matching this item (docs/protocol.md 7.3).
fn fire(engine: &Arc<Engine>, stream_name: &str, group_id: &str, item_id: Option<&str>, event: Value) {
    let payload = json!({"type": "stream", "timestamp": now_ms(), "streamName": stream_name,
        "groupId": group_id, "id": item_id, "event": event});
    let filter = [("stream_name", stream_name), ("group_id", group_id), ("item_id", item_id.unwrap_or(""))];
    fire_matching(engine, "stream", &filter, payload.to_string());
}
