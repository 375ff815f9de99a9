//! `stream::update` / `state::update` as engines from HEAD on apply them (docs/protocol.md B.4,
//! 7.1): the op `append`, `merge` and `append` paths given as one key or as a list of literal
//! segments, and an op that cannot apply is skipped and reported in the result's `errors`
//! instead of failing the call. The v0.11.0 rules stay in `kv`.

use serde::Deserialize;
use serde_json::{json, Map, Number, Value};

use super::kv::object;

const MAX_PATH_SEGMENTS: usize = 32;
const MAX_SEGMENT_BYTES: usize = 256;
const MAX_MERGE_DEPTH: usize = 16;
const MAX_MERGE_KEYS: usize = 1024;
/// Keys refused in paths and at the top of a merged object (JavaScript prototype pollution).
const RESERVED_KEYS: [&str; 3] = ["__proto__", "constructor", "prototype"];
const DOC_URL: &str = "https://iii.dev/docs/workers/iii-state#error-codes";

/// `merge` / `append` paths: one first-level key (`""` is the root) or literal segments.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Path {
    Key(String),
    Segments(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Op {
    Set {
        path: String,
        value: Option<Value>,
    },
    Merge {
        #[serde(default)]
        path: Option<Path>,
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
    Append {
        #[serde(default)]
        path: Option<Path>,
        value: Value,
    },
    Remove {
        path: String,
    },
}

/// Why one op was skipped: `{op_index, code, message, doc_url}` in the result's `errors`.
#[derive(Debug, PartialEq)]
pub(crate) struct OpError {
    pub code: String,
    pub message: String,
}

fn fail<T>(code: impl Into<String>, message: impl Into<String>) -> Result<T, OpError> {
    Err(OpError { code: code.into(), message: message.into() })
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Set { .. } => "set",
            Op::Merge { .. } => "merge",
            Op::Increment { .. } => "increment",
            Op::Decrement { .. } => "decrement",
            Op::Append { .. } => "append",
            Op::Remove { .. } => "remove",
        }
    }

    fn segments(&self) -> Vec<&str> {
        fn key(k: &str) -> Vec<&str> {
            if k.is_empty() {
                vec![]
            } else {
                vec![k]
            }
        }
        match self {
            Op::Set { path, .. } | Op::Increment { path, .. } | Op::Decrement { path, .. } => key(path),
            Op::Remove { path } => key(path),
            Op::Merge { path, .. } | Op::Append { path, .. } => match path {
                None => vec![],
                Some(Path::Key(k)) => key(k),
                Some(Path::Segments(s)) => s.iter().map(String::as_str).collect(),
            },
        }
    }
}

fn check_path(op: &str, segments: &[&str]) -> Result<(), OpError> {
    let code = |reason: &str| format!("{op}.path.{reason}");
    if segments.len() > MAX_PATH_SEGMENTS {
        let n = segments.len();
        return fail(code("too_deep"), format!("path has {n} segments, at most {MAX_PATH_SEGMENTS} allowed"));
    }
    for seg in segments {
        if seg.is_empty() {
            return fail(code("empty_segment"), "path has an empty segment");
        }
        if seg.len() > MAX_SEGMENT_BYTES {
            let n = seg.len();
            return fail(
                code("segment_too_long"),
                format!("path segment of {n} bytes, at most {MAX_SEGMENT_BYTES}"),
            );
        }
        if RESERVED_KEYS.contains(seg) {
            return fail(code("proto_polluted"), format!("path segment '{seg}' is not allowed"));
        }
    }
    Ok(())
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_merge_value(value: &Value) -> Result<&Map<String, Value>, OpError> {
    let Value::Object(map) = value else {
        return fail("merge.value.not_an_object", "a merge value must be a JSON object");
    };
    if map.len() > MAX_MERGE_KEYS {
        let n = map.len();
        return fail(
            "merge.value.too_many_keys",
            format!("merge value has {n} keys, at most {MAX_MERGE_KEYS}"),
        );
    }
    if let Some(key) = map.keys().find(|k| RESERVED_KEYS.contains(&k.as_str())) {
        return fail("merge.value.proto_polluted", format!("merge value key {key:?} is not allowed"));
    }
    let d = depth(value);
    if d > MAX_MERGE_DEPTH {
        return fail(
            "merge.value.too_deep",
            format!("merge value nests {d} deep, at most {MAX_MERGE_DEPTH}"),
        );
    }
    Ok(map)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn label(segments: &[&str]) -> String {
    match segments {
        [] => "root".into(),
        [one] => (*one).into(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// `value + by` (`up`) or `value - by`, integers staying integers; None when `value` is not a
/// number or the result is out of range.
fn step(value: &Value, by: i64, up: bool) -> Option<Value> {
    if let Some(n) = value.as_i64() {
        if let Some(next) = if up { n.checked_add(by) } else { n.checked_sub(by) } {
            return Some(Value::from(next));
        }
    }
    if let Some(n) = value.as_u64() {
        let grows = (by >= 0) == up;
        let next = if grows { n.checked_add(by.unsigned_abs()) } else { n.checked_sub(by.unsigned_abs()) };
        return next.map(Value::from);
    }
    let f = value.as_f64().filter(|_| value.is_f64())?;
    Number::from_f64(if up { f + by as f64 } else { f - by as f64 }).map(Value::Number)
}

/// What a missing number becomes: `by` (`up`) or `-by` (`-i64::MIN` as a u64).
fn fresh(by: i64, up: bool) -> Value {
    match (up, by.checked_neg()) {
        (true, _) => Value::from(by),
        (false, Some(negated)) => Value::from(negated),
        (false, None) => Value::from(by.unsigned_abs()),
    }
}

/// What appending to nothing makes: a string stays a string, anything else a one-item array.
fn first_append(value: &Value) -> Value {
    if value.is_string() {
        value.clone()
    } else {
        Value::Array(vec![value.clone()])
    }
}

fn append_to(target: &mut Value, value: &Value, at: &str) -> Result<(), OpError> {
    match target {
        Value::Array(items) => items.push(value.clone()),
        Value::String(text) => match value.as_str() {
            Some(more) => text.push_str(more),
            None => {
                let message = format!("cannot append a {} to the string at '{at}'", kind(value));
                return fail("append.type_mismatch", message);
            }
        },
        Value::Null => *target = first_append(value),
        other => {
            let message =
                format!("cannot append at '{at}': it is a {}, not an array, a string or null", kind(other));
            return fail("append.type_mismatch", message);
        }
    }
    Ok(())
}

/// The object at `segments` under `root`, made (replacing whatever is not an object on the way)
/// when missing.
fn object_at<'a>(root: &'a mut Value, segments: &[&str]) -> &'a mut Map<String, Value> {
    let mut node = root;
    for seg in segments {
        node = object(node).entry(*seg).or_insert(Value::Null);
    }
    object(node)
}

fn not_object(op: &str, segments: &[&str], current: &Value) -> Result<(), OpError> {
    let message =
        format!("cannot {op} at '{}': the item is a {}, not an object", label(segments), kind(current));
    fail(format!("{op}.target_not_object"), message)
}

/// The item being updated; `missing` while it did not exist and no op has written it yet.
struct Item {
    value: Value,
    missing: bool,
}

impl Item {
    fn apply(&mut self, op: &Op) -> Result<(), OpError> {
        let segments = op.segments();
        check_path(op.name(), &segments)?;
        let current = &mut self.value;
        match (op, segments.as_slice()) {
            (Op::Set { value, .. }, []) => *current = value.clone().unwrap_or(Value::Null),
            (Op::Set { path, value }, _) => match current {
                Value::Object(map) => {
                    map.insert(path.clone(), value.clone().unwrap_or(Value::Null));
                }
                _ => return not_object("set", &segments, current),
            },
            (Op::Merge { value, .. }, []) => {
                let fields = check_merge_value(value)?;
                // A root that is not an object is left as it is, and no error reported.
                let Value::Object(map) = current else { return Ok(()) };
                map.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            (Op::Merge { value, .. }, _) => {
                let fields = check_merge_value(value)?;
                object_at(current, &segments).extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            (Op::Increment { by, .. } | Op::Decrement { by, .. }, []) => {
                let up = matches!(op, Op::Increment { .. });
                *current = if self.missing {
                    fresh(*by, up)
                } else {
                    match step(current, *by, up) {
                        Some(next) => next,
                        None => return not_a_number(op.name(), "root", current),
                    }
                };
            }
            (Op::Increment { path, by } | Op::Decrement { path, by }, _) => {
                let up = matches!(op, Op::Increment { .. });
                let Value::Object(map) = current else { return not_object(op.name(), &segments, current) };
                match map.get_mut(path) {
                    None => {
                        map.insert(path.clone(), fresh(*by, up));
                    }
                    Some(field) => match step(field, *by, up) {
                        Some(next) => *field = next,
                        None => return not_a_number(op.name(), path, field),
                    },
                }
            }
            (Op::Append { value, .. }, []) => {
                if self.missing {
                    *current = Value::Null;
                }
                append_to(current, value, "root")?;
            }
            (Op::Append { .. }, _) if !current.is_object() => {
                return not_object("append", &segments, current)
            }
            (Op::Append { value, .. }, [parents @ .., key]) => {
                let map = object_at(current, parents);
                match map.get_mut(*key) {
                    Some(field) => append_to(field, value, key)?,
                    // A missing nested field always becomes an array, strings included.
                    None if !parents.is_empty() => {
                        map.insert((*key).to_owned(), Value::Array(vec![value.clone()]));
                    }
                    None => {
                        map.insert((*key).to_owned(), first_append(value));
                    }
                }
            }
            (Op::Remove { .. }, []) => *current = Value::Null,
            (Op::Remove { path }, _) => match current {
                Value::Object(map) => {
                    map.remove(path);
                }
                _ => return not_object("remove", &segments, current),
            },
        }
        self.missing = false;
        Ok(())
    }
}

fn not_a_number(op: &str, at: &str, found: &Value) -> Result<(), OpError> {
    fail(format!("{op}.not_number"), format!("expected a number at '{at}', found a {}", kind(found)))
}

/// Applies `ops` in order to `old` (a missing item starts as `{}`). Returns the new value and
/// the result's `errors` entries for the ops that were skipped.
pub(crate) fn apply(old: Option<Value>, ops: &[Op]) -> (Value, Vec<Value>) {
    let mut item = Item { missing: old.is_none(), value: old.unwrap_or_else(|| Value::Object(Map::new())) };
    let mut errors = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        if let Err(e) = item.apply(op) {
            errors.push(json!({"op_index": index, "code": e.code, "message": e.message, "doc_url": DOC_URL}));
        }
    }
    (item.value, errors)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(old: Option<Value>, ops: Value) -> (Value, Vec<(usize, String)>) {
        let ops: Vec<Op> = serde_json::from_value(ops).unwrap();
        let (value, errors) = apply(old, &ops);
        let errors = errors
            .iter()
            .map(|e| (e["op_index"].as_u64().unwrap() as usize, e["code"].as_str().unwrap().to_owned()))
            .collect();
        (value, errors)
    }

    #[test]
    fn append_pushes_to_arrays_and_concatenates_strings() {
        let (value, errors) = run(
            Some(json!({"events": [], "transcript": "hello"})),
            json!([
                {"type": "append", "path": "events", "value": {"kind": "chunk"}},
                {"type": "append", "path": "transcript", "value": " world"},
                {"type": "append", "path": "fresh", "value": "text"},
                {"type": "append", "path": "list", "value": 1},
            ]),
        );
        assert_eq!(
            value,
            json!({"events": [{"kind": "chunk"}], "transcript": "hello world", "fresh": "text", "list": [1]})
        );
        assert!(errors.is_empty());
    }

    #[test]
    fn nested_paths_create_objects_and_a_missing_nested_leaf_is_an_array() {
        let (value, errors) = run(
            Some(json!({"a": 5})),
            json!([
                {"type": "append", "path": ["a", "b", "log"], "value": "x"},
                {"type": "merge", "path": ["m", "n"], "value": {"k": 1}},
                {"type": "merge", "path": "m", "value": {"j": 2}},
            ]),
        );
        assert_eq!(value, json!({"a": {"b": {"log": ["x"]}}, "m": {"n": {"k": 1}, "j": 2}}));
        assert!(errors.is_empty());
    }

    #[test]
    fn ops_that_cannot_apply_are_skipped_and_reported_while_the_rest_apply() {
        let (value, errors) = run(
            Some(json!({"s": "text", "n": "not a number", "o": {}})),
            json!([
                {"type": "append", "path": "s", "value": 1},
                {"type": "increment", "path": "n", "by": 1},
                {"type": "append", "path": "o", "value": 1},
                {"type": "merge", "value": [1]},
                {"type": "merge", "path": ["ok", ""], "value": {}},
                {"type": "set", "path": "__proto__", "value": 1},
                {"type": "merge", "value": {"constructor": 1}},
                {"type": "increment", "path": "count", "by": 2},
            ]),
        );
        assert_eq!(value, json!({"s": "text", "n": "not a number", "o": {}, "count": 2}));
        let codes: Vec<(usize, &str)> = errors.iter().map(|(i, c)| (*i, c.as_str())).collect();
        assert_eq!(
            codes,
            [
                (0, "append.type_mismatch"),
                (1, "increment.not_number"),
                (2, "append.type_mismatch"),
                (3, "merge.value.not_an_object"),
                (4, "merge.path.empty_segment"),
                (5, "set.path.proto_polluted"),
                (6, "merge.value.proto_polluted"),
            ]
        );
    }

    #[test]
    fn a_missing_item_takes_its_shape_from_the_first_root_op() {
        assert_eq!(run(None, json!([{"type": "increment", "path": "", "by": 3}])).0, json!(3));
        assert_eq!(run(None, json!([{"type": "decrement", "path": "", "by": 3}])).0, json!(-3));
        assert_eq!(
            run(None, json!([{"type": "append", "value": "a"}, {"type": "append", "value": "b"}])).0,
            json!("ab")
        );
        assert_eq!(run(None, json!([{"type": "append", "path": "", "value": 1}])).0, json!([1]));
        // An existing object root is not appended to.
        let (value, errors) = run(Some(json!({})), json!([{"type": "append", "value": 1}]));
        assert_eq!((value, errors), (json!({}), vec![(0, "append.type_mismatch".to_owned())]));
    }

    #[test]
    fn set_and_remove_at_the_root_and_keys_on_a_scalar_root() {
        let (value, errors) = run(
            Some(json!(7)),
            json!([
                {"type": "set", "path": "a", "value": 1},
                {"type": "append", "path": "a", "value": 1},
                {"type": "remove", "path": "a"},
                {"type": "increment", "path": "", "by": 1},
            ]),
        );
        assert_eq!(value, json!(8));
        let codes: Vec<&str> = errors.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(codes, ["set.target_not_object", "append.target_not_object", "remove.target_not_object"]);
        assert_eq!(run(Some(json!({"a": 1})), json!([{"type": "remove", "path": ""}])).0, Value::Null);
        assert_eq!(
            run(Some(json!({"a": 1})), json!([{"type": "set", "path": "", "value": null}])).0,
            Value::Null
        );
    }

    #[test]
    fn integers_stay_integers_and_floats_floats() {
        let (value, _) = run(
            Some(json!({"i": i64::MAX, "u": u64::MAX, "f": 1.5})),
            json!([
                {"type": "increment", "path": "i", "by": 1},
                {"type": "decrement", "path": "u", "by": 1},
                {"type": "increment", "path": "f", "by": 1},
                {"type": "decrement", "path": "missing", "by": i64::MIN},
            ]),
        );
        assert_eq!(
            value,
            json!({"i": 9_223_372_036_854_775_808_u64, "u": u64::MAX - 1, "f": 2.5, "missing": 9_223_372_036_854_775_808_u64})
        );
    }

    #[test]
    fn path_limits() {
        let deep: Vec<String> = (0..33).map(|i| format!("k{i}")).collect();
        let long = "x".repeat(257);
        let (_, errors) = run(
            None,
            json!([
                {"type": "append", "path": deep, "value": 1},
                {"type": "merge", "path": [long], "value": {}},
                {"type": "merge", "value": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": {"l": {"m": {"n": {"o": {"p": {"q": 1}}}}}}}}}}}}}}}}}},
            ]),
        );
        let codes: Vec<&str> = errors.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(codes, ["append.path.too_deep", "merge.path.segment_too_long", "merge.value.too_deep"]);
    }
}
