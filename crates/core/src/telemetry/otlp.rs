//! OTLP/JSON building blocks (docs/protocol.md 10.1): attribute values and key-value lists written
//! straight into a byte buffer, camelCase field names, ids as lower-case hex.
//!
//! Integers are written as JSON numbers: engine v0.11.0 parses `asInt` as a number only and
//! rejects the whole frame when it is a string. Timestamps stay decimal strings (the OTLP/JSON
//! mapping for 64-bit fields; the engine accepts both).

use std::io::Write as _;

use serde_json::Value as Json;

/// An OTLP `AnyValue`. `Null` is written as an empty `AnyValue` (`{}`), which the engine reads
/// back as JSON `null`.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Array(Vec<AnyValue>),
    KvList(Vec<(String, AnyValue)>),
    Null,
}

impl AnyValue {
    /// Structured data kept as structure: objects become `kvlistValue`, arrays `arrayValue`.
    /// An unsigned integer beyond `i64` becomes a double (the engine reads `intValue` as i64).
    pub(crate) fn from_json(value: &Json) -> AnyValue {
        match value {
            Json::Null => AnyValue::Null,
            Json::Bool(b) => AnyValue::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => AnyValue::Int(i),
                None => AnyValue::Double(n.as_f64().unwrap_or(0.0)),
            },
            Json::String(s) => AnyValue::Str(s.clone()),
            Json::Array(items) => AnyValue::Array(items.iter().map(AnyValue::from_json).collect()),
            Json::Object(map) => {
                AnyValue::KvList(map.iter().map(|(k, v)| (k.clone(), AnyValue::from_json(v))).collect())
            }
        }
    }
}

impl From<&str> for AnyValue {
    fn from(s: &str) -> Self {
        AnyValue::Str(s.to_owned())
    }
}

impl From<String> for AnyValue {
    fn from(s: String) -> Self {
        AnyValue::Str(s)
    }
}

/// Writes a JSON string literal (escaped).
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping cannot fail when writing into a Vec.
    let _ = serde_json::to_writer(&mut *out, s);
}

pub(crate) fn write_any(out: &mut Vec<u8>, value: &AnyValue) {
    match value {
        AnyValue::Str(s) => {
            out.extend_from_slice(b"{\"stringValue\":");
            write_str(out, s);
            out.push(b'}');
        }
        AnyValue::Int(i) => {
            let _ = write!(out, "{{\"intValue\":{i}}}");
        }
        AnyValue::Double(d) if d.is_finite() => {
            out.extend_from_slice(b"{\"doubleValue\":");
            let _ = serde_json::to_writer(&mut *out, d);
            out.push(b'}');
        }
        // JSON has no NaN or infinities; OTLP/JSON spells them as strings.
        AnyValue::Double(d) => {
            let text = if d.is_nan() {
                "NaN"
            } else if *d > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            let _ = write!(out, "{{\"doubleValue\":\"{text}\"}}");
        }
        AnyValue::Bool(b) => {
            let _ = write!(out, "{{\"boolValue\":{b}}}");
        }
        AnyValue::Array(items) => {
            out.extend_from_slice(b"{\"arrayValue\":{\"values\":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_any(out, item);
            }
            out.extend_from_slice(b"]}}");
        }
        AnyValue::KvList(pairs) => {
            out.extend_from_slice(b"{\"kvlistValue\":{\"values\":");
            write_attributes(out, pairs.iter().map(|(k, v)| (k.as_str(), v)));
            out.extend_from_slice(b"}}");
        }
        AnyValue::Null => out.extend_from_slice(b"{}"),
    }
}

/// Writes `[{"key":..,"value":..},..]`.
pub(crate) fn write_attributes<'a>(
    out: &mut Vec<u8>,
    pairs: impl IntoIterator<Item = (&'a str, &'a AnyValue)>,
) {
    out.push(b'[');
    for (i, (key, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key_value(out, key, value);
    }
    out.push(b']');
}

pub(crate) fn write_key_value(out: &mut Vec<u8>, key: &str, value: &AnyValue) {
    out.extend_from_slice(b"{\"key\":");
    write_str(out, key);
    out.extend_from_slice(b",\"value\":");
    write_any(out, value);
    out.push(b'}');
}

/// Writes `"name":"<decimal>"` for a 64-bit nanosecond timestamp.
pub(crate) fn write_nanos(out: &mut Vec<u8>, name: &str, nanos: u64) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":\"");
    let mut digits = [0u8; 20];
    let mut n = nanos;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.push(b'"');
}

/// Writes `"name":"<hex>"` with `digits` lower-case hex digits of `id`.
pub(crate) fn write_hex_id(out: &mut Vec<u8>, name: &str, id: u128, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":\"");
    for i in (0..digits).rev() {
        out.push(HEX[((id >> (i * 4)) & 0xf) as usize]);
    }
    out.push(b'"');
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: &AnyValue) -> Json {
        let mut out = Vec::new();
        write_any(&mut out, value);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn structured_data_keeps_its_types() {
        let data = serde_json::json!({
            "s": "x\"y", "i": -3, "big": u64::MAX, "f": 1.5, "b": true, "n": null,
            "list": [1, "a", [false]], "nested": {"k": {"deep": 2}}
        });
        let got = encode(&AnyValue::from_json(&data));
        let values = &got["kvlistValue"]["values"];
        let field = |name: &str| {
            values.as_array().unwrap().iter().find(|kv| kv["key"] == name).unwrap()["value"].clone()
        };
        assert_eq!(field("s"), serde_json::json!({"stringValue": "x\"y"}));
        assert_eq!(field("i"), serde_json::json!({"intValue": -3}));
        assert!(field("i")["intValue"].is_number());
        assert_eq!(field("big"), serde_json::json!({"doubleValue": u64::MAX as f64}));
        assert_eq!(field("f"), serde_json::json!({"doubleValue": 1.5}));
        assert_eq!(field("b"), serde_json::json!({"boolValue": true}));
        assert_eq!(field("n"), serde_json::json!({}));
        assert_eq!(
            field("list"),
            serde_json::json!({"arrayValue": {"values": [
                {"intValue": 1}, {"stringValue": "a"}, {"arrayValue": {"values": [{"boolValue": false}]}}
            ]}})
        );
        assert_eq!(
            field("nested"),
            serde_json::json!({"kvlistValue": {"values": [{"key": "k", "value": {"kvlistValue": {"values": [
                {"key": "deep", "value": {"intValue": 2}}
            ]}}}]}})
        );
    }

    #[test]
    fn non_finite_doubles_stay_valid_json() {
        assert_eq!(encode(&AnyValue::Double(f64::NAN)), serde_json::json!({"doubleValue": "NaN"}));
        assert_eq!(
            encode(&AnyValue::Double(f64::NEG_INFINITY)),
            serde_json::json!({"doubleValue": "-Infinity"})
        );
    }
}
