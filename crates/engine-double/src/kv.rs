//! The in-memory key-value store behind `stream::*` and `state::*`, and the `UpdateOp`s of
//! `stream::update` / `state::update` as the real engine's built-in `kv` adapter applies them
//! (docs/protocol.md 7.1).

use std::collections::BTreeMap;

use iii_protocol::ErrorBody;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::kv_head;
use super::reply::input as parse;

/// name -> group -> item -> value. `state::*` uses one name and scope/key as group/item.
#[derive(Default)]
pub(crate) struct Store {
    data: BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>>,
}

impl Store {
    pub fn get(&self, name: &str, group: &str, item: &str) -> Option<Value> {
        self.data.get(name)?.get(group)?.get(item).cloned()
    }

    /// Stores `value`; returns the previous value.
    pub fn set(&mut self, name: &str, group: &str, item: &str, value: Value) -> Option<Value> {
        let groups = self.data.entry(name.to_owned()).or_default();
        groups.entry(group.to_owned()).or_default().insert(item.to_owned(), value)
    }

    /// Removes an item; empty groups and names disappear with their last item.
    pub fn delete(&mut self, name: &str, group: &str, item: &str) -> Option<Value> {
        let groups = self.data.get_mut(name)?;
        let items = groups.get_mut(group)?;
        let old = items.remove(item);
        if items.is_empty() {
            groups.remove(group);
        }
        if groups.is_empty() {
            self.data.remove(name);
        }
        old
    }

    pub fn list(&self, name: &str, group: &str) -> Vec<Value> {
        self.data
            .get(name)
            .and_then(|g| g.get(group))
            .map_or_else(Vec::new, |i| i.values().cloned().collect())
    }

    pub fn groups(&self, name: &str) -> Vec<String> {
        self.data.get(name).map_or_else(Vec::new, |g| g.keys().cloned().collect())
    }

    pub fn names(&self) -> Vec<(String, Vec<String>)> {
        self.data.iter().map(|(n, g)| (n.clone(), g.keys().cloned().collect())).collect()
    }

    /// Applies `ops` to the item (a missing item starts as `{}`); returns the old value and the
    /// result, `{old_value, new_value}` plus HEAD's `errors` when an op was skipped.
    pub fn update(&mut self, name: &str, group: &str, item: &str, ops: &Ops) -> (Option<Value>, Value) {
        let old = self.get(name, group, item);
        let (value, errors) = match ops {
            Ops::V011(ops) => {
                let mut value = old.clone().unwrap_or_else(|| Value::Object(Map::new()));
                for op in ops {
                    op.apply(&mut value);
                }
                (value, Vec::new())
            }
            Ops::Head(ops) => kv_head::apply(old.clone(), ops),
        };
        self.set(name, group, item, value.clone());
        let mut result = json!({"old_value": old, "new_value": value});
        if !errors.is_empty() {
            result["errors"] = Value::Array(errors);
        }
        (old, result)
    }
}

/// The `ops` of one update, read by the rules of the engine's generation.
pub(crate) enum Ops {
    V011(Vec<UpdateOp>),
    Head(Vec<kv_head::Op>),
}

impl Ops {
    /// `ops` (JSON text) as `function_id`'s input: a malformed op fails the whole call with
    /// `deserialization_error` (an unknown op type too; before HEAD, `append` is one).
    pub fn parse(function_id: &str, ops: &str, head_rules: bool) -> Result<Ops, ErrorBody> {
        Ok(if head_rules { Ops::Head(parse(function_id, ops)?) } else { Ops::V011(parse(function_id, ops)?) })
    }
}

/// One operation of `stream::update` / `state::update`. `by` is an integer: `1.5` fails the
/// whole call with `deserialization_error`, like the real engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum UpdateOp {
    Set {
        path: String,
        value: Value,
    },
    Merge {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        value: Value,
    },
    Increment {
        path: String,
        by: i64,
    },
    Decrement {
        path: String,
        by: i64,
    },
    Remove {
        path: String,
    },
}

/// `value` made an object (whatever it was replaced when it was not) and its map.
pub(crate) fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

fn add(current: Option<&Value>, by: i64) -> Value {
    match current {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::from(i.saturating_add(by)),
            None => Value::from(n.as_f64().unwrap_or(0.0) + by as f64),
        },
        _ => Value::from(by),
    }
}

impl UpdateOp {
    fn apply(&self, value: &mut Value) {
        match self {
            UpdateOp::Set { path, value: v } if path.is_empty() => *value = v.clone(),
            UpdateOp::Set { path, value: v } => {
                object(value).insert(path.clone(), v.clone());
            }
            UpdateOp::Merge { path, value: Value::Object(src) }
                if path.as_deref().unwrap_or("").is_empty() =>
            {
                let dst = object(value);
                for (k, v) in src {
                    dst.insert(k.clone(), v.clone());
                }
            }
            // A nested path or a non-object value: the v0.11.0 kv adapter only merges at the root.
            UpdateOp::Merge { .. } => {}
            UpdateOp::Increment { path, by } => {
                let map = object(value);
                let next = add(map.get(path), *by);
                map.insert(path.clone(), next);
            }
            UpdateOp::Decrement { path, by } => {
                let map = object(value);
                let next = add(map.get(path), by.saturating_neg());
                map.insert(path.clone(), next);
            }
            UpdateOp::Remove { path } => {
                object(value).remove(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ops(v: Value) -> Ops {
        Ops::V011(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn ops_apply_in_order_to_a_missing_item() {
        let mut store = Store::default();
        let (old, new) = store.update(
            "s",
            "g",
            "i",
            &ops(json!([
                {"type": "set", "path": "a", "value": 1},
                {"type": "merge", "value": {"b": 2, "c": 3}},
                {"type": "increment", "path": "n", "by": 5},
                {"type": "decrement", "path": "a", "by": 3},
                {"type": "remove", "path": "c"},
                {"type": "merge", "path": "x", "value": {"ignored": true}},
            ])),
        );
        assert_eq!(old, None);
        assert_eq!(new, json!({"old_value": null, "new_value": {"a": -2, "b": 2, "n": 5}}));
        let (old, new) =
            store.update("s", "g", "i", &ops(json!([{"type": "set", "path": "", "value": [1]}])));
        assert_eq!(old, Some(json!({"a": -2, "b": 2, "n": 5})));
        assert_eq!(new["new_value"], json!([1]));
        assert_eq!(store.get("s", "g", "i"), Some(json!([1])));
    }

    #[test]
    fn head_rules_report_skipped_ops_and_know_append() {
        let mut store = Store::default();
        assert!(Ops::parse("state::update", r#"[{"type":"append","value":1}]"#, false).is_err());
        let ops = Ops::parse(
            "state::update",
            r#"[{"type":"append","path":"l","value":1},{"type":"increment","path":"l","by":1}]"#,
            true,
        )
        .unwrap();
        let (_, result) = store.update("s", "g", "i", &ops);
        assert_eq!(result["new_value"], json!({"l": [1]}));
        assert_eq!(result["errors"][0]["op_index"], 1);
        assert_eq!(result["errors"][0]["code"], "increment.not_number");
        let (_, result) = store.update("s", "g", "i", &ops);
        assert_eq!(result["new_value"], json!({"l": [1, 1]}));
        let (_, result) = store.update("s", "g", "j", &Ops::parse("f", "[]", true).unwrap());
        assert!(result.get("errors").is_none(), "no errors key when every op applied");
    }

    #[test]
    fn by_must_be_an_integer() {
        let bad =
            serde_json::from_value::<Vec<UpdateOp>>(json!([{"type": "increment", "path": "n", "by": 1.5}]));
        assert!(bad.is_err());
    }

    #[test]
    fn empty_groups_vanish() {
        let mut store = Store::default();
        store.set("s", "g1", "a", json!(1));
        store.set("s", "g2", "b", json!(2));
        assert_eq!(store.groups("s"), ["g1", "g2"]);
        assert_eq!(store.delete("s", "g1", "a"), Some(json!(1)));
        assert_eq!(store.groups("s"), ["g2"]);
        assert_eq!(store.delete("s", "g2", "b"), Some(json!(2)));
        assert!(store.names().is_empty());
        assert_eq!(store.delete("s", "g2", "b"), None);
    }
}
