//! An observer's `args` against the owner's `args_format` (docs/protocol.md C.9, C.11
//! `INVALID_ARGS`). UNSURE: the real engine validates full JSON Schema; this double checks only
//! `type`, `required`, `properties`, `additionalProperties: false`, `enum` and array `items`,
//! which is what the official tests' formats use. Anything else in a schema is accepted.

use serde_json::Value;

/// `Err(why)` when `value` breaks `schema`.
pub(crate) fn check(schema: &Value, value: &Value) -> Result<(), String> {
    check_at(schema, value, "args")
}

fn check_at(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Value::Object(schema) = schema else {
        // `true` / `false` schemas, or anything unexpected: only `false` refuses.
        return if *schema == Value::Bool(false) { Err(format!("{at}: not allowed")) } else { Ok(()) };
    };
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| is_type(value, t)) {
            return Err(format!("{at}: expected {}", allowed.join(" or ")));
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.contains(value) {
            return Err(format!("{at}: not one of the allowed values"));
        }
    }
    if let Value::Object(map) = value {
        if let Some(Value::Array(required)) = schema.get("required") {
            if let Some(missing) = required.iter().filter_map(Value::as_str).find(|k| !map.contains_key(*k)) {
                return Err(format!("{at}: missing required property `{missing}`"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, item) in map {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => check_at(sub, item, &format!("{at}.{key}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: unknown property `{key}`"))
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check_at(sub, item, &format!("{at}.{i}"))?;
        }
    }
    Ok(())
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_type_required_properties_and_closed_objects() {
        let schema = json!({"type": "object", "additionalProperties": false, "required": ["expression"],
            "properties": {"expression": {"type": "string"}}});
        assert!(check(&schema, &json!({"expression": "*/5"})).is_ok());
        assert!(check(&schema, &json!({})).unwrap_err().contains("expression"));
        assert!(check(&schema, &json!({"expression": 5})).is_err());
        assert!(check(&schema, &json!({"expression": "x", "extra": 1})).unwrap_err().contains("extra"));
        assert!(check(&schema, &json!([1])).is_err());
        assert!(check(&json!({"type": ["integer", "null"]}), &json!(null)).is_ok());
        assert!(check(&json!({"type": "integer"}), &json!(1.5)).is_err());
        assert!(check(&json!(true), &json!({"anything": 1})).is_ok());
    }
}
