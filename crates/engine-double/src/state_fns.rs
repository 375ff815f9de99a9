//! `state::*` built-ins (docs/protocol.md 6.8) on the in-memory store, and `state` triggers.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::kv::Ops;
use super::reply::{input as parse, Outcome};
use super::state::Engine;
use super::streams::to_outcome;
use super::triggers::fire_matching;

pub(crate) const FUNCTIONS: [&str; 6] =
    ["state::set", "state::get", "state::delete", "state::update", "state::list", "state::list_groups"];

/// `state::*` keeps everything under one name of the shared store; scope/key are group/item.
const NAME: &str = "";

pub(crate) fn is_state_function(function_id: &str) -> bool {
    function_id.starts_with("state::") && FUNCTIONS.contains(&function_id)
}

#[derive(Deserialize)]
struct Key {
    scope: String,
    key: String,
}

#[derive(Deserialize)]
struct SetInput {
    scope: String,
    key: String,
    #[serde(alias = "data")]
    value: Value,
}

#[derive(Deserialize)]
struct UpdateInput {
    scope: String,
    key: String,
    ops: Box<RawValue>,
}

#[derive(Deserialize)]
struct Scope {
    pub scope: String,
}

pub(crate) fn call(engine: &Arc<Engine>, function_id: &str, text: &str) -> Outcome {
    match &function_id["state::".len()..] {
        "set" => {
            let input: SetInput = parse(function_id, text)?;
            let old = engine.states.lock().set(NAME, &input.scope, &input.key, input.value.clone());
            fire(engine, &input.scope, &input.key, old.clone(), Some(input.value.clone()));
            to_outcome(Some(json!({"old_value": old, "new_value": input.value})))
        }
        "get" => {
            let input: Key = parse(function_id, text)?;
            to_outcome(engine.states.lock().get(NAME, &input.scope, &input.key))
        }
        "delete" => {
            let input: Key = parse(function_id, text)?;
            let old = engine.states.lock().delete(NAME, &input.scope, &input.key);
            if old.is_some() {
                fire(engine, &input.scope, &input.key, old.clone(), None);
            }
            // The old value itself, not wrapped (docs/protocol.md 6.8).
            to_outcome(old)
        }
        "update" => {
            let input: UpdateInput = parse(function_id, text)?;
            let ops = Ops::parse(function_id, input.ops.get(), engine.config.head_rules())?;
            let (old, result) = engine.states.lock().update(NAME, &input.scope, &input.key, &ops);
            fire(engine, &input.scope, &input.key, old, Some(result["new_value"].clone()));
            to_outcome(Some(result))
        }
        "list" => {
            let input: Scope = parse(function_id, text)?;
            to_outcome(Some(Value::from(engine.states.lock().list(NAME, &input.scope))))
        }
        _ => {
            // "list_groups"
            let groups = engine.states.lock().groups(NAME);
            to_outcome(Some(json!({ "groups": groups })))
        }
    }
}

fn fire(engine: &Arc<Engine>, scope: &str, key: &str, old: Option<Value>, new: Option<Value>) {
    let event = match (&old, &new) {
        (_, None) => "state:deleted",
        (None, Some(_)) => "state:created",
        (Some(_), Some(_)) => "state:updated",
    };
    let payload = json!({"type": "state", "event_type": event, "scope": scope, "key": key,
        "old_value": old, "new_value": new});
    fire_matching(engine, "state", &[("scope", scope), ("key", key)], payload.to_string());
}
