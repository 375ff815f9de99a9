//! Payload events of the invocation span, with iii-helpers 0.25.0's rules (docs/protocol.md
//! C.20; `iii_helpers.observability.payload`): the redaction of sensitive keys, the JSON text as
//! Python's `json.dumps(value, default=str, ensure_ascii=False)` writes it, truncation with a
//! marker, and the two environment switches. The walk over Python objects lives in the
//! binding; everything that needs no Python is here.

use super::otlp::AnyValue;
use super::span::SpanEvent;

/// What a sensitive value is replaced with.
pub const REDACTED: &str = "[REDACTED]";
/// Appended to a cut payload.
pub const TRUNCATED_MARKER: &str = "...\"[TRUNCATED]\"";

/// A key is sensitive when, lower-cased, it contains one of these...
const SENSITIVE_PARTS: [&str; 13] = [
    "api_key",
    "apikey",
    "api-key",
    "password",
    "secret",
    "credential",
    "authorization",
    "auth_token",
    "access_token",
    "refresh_token",
    "bearer",
    "private_key",
    "client_secret",
];

/// Whether the value under dict key `key` is replaced by [`REDACTED`]: the lower-cased key
/// contains one of the sensitive words, is `token`, or ends with `_token` / `-token`.
pub fn is_sensitive(key: &str) -> bool {
    if key.is_ascii() && key.len() <= 64 {
        // NOTE(perf): no allocation for the usual short ASCII key.
        let mut buf = [0u8; 64];
        let lowered = &mut buf[..key.len()];
        lowered.copy_from_slice(key.as_bytes());
        lowered.make_ascii_lowercase();
        return sensitive_lowered(std::str::from_utf8(lowered).unwrap_or_default());
    }
    sensitive_lowered(&key.to_lowercase())
}

fn sensitive_lowered(lowered: &str) -> bool {
    SENSITIVE_PARTS.iter().any(|part| lowered.contains(part))
        || lowered == "token"
        || lowered.ends_with("_token")
        || lowered.ends_with("-token")
}

/// Whether payload events are recorded: `III_DISABLE_TRACE_PAYLOADS` is not `1` / `true`
/// (any case), as the official SDK reads it.
pub fn payloads_enabled(env: impl Fn(&str) -> Option<String>) -> bool {
    !env("III_DISABLE_TRACE_PAYLOADS").is_some_and(|v| matches!(v.to_lowercase().as_str(), "1" | "true"))
}

/// `III_TRACE_PAYLOAD_MAX_BYTES`: a positive integer, else no cap (unset, blank, `unlimited`,
/// not a number, zero or negative).
pub fn max_bytes(env: impl Fn(&str) -> Option<String>) -> Option<usize> {
    let raw = env("III_TRACE_PAYLOAD_MAX_BYTES")?;
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("unlimited") {
        return None;
    }
    raw.parse::<i64>().ok().filter(|v| *v > 0).map(|v| usize::try_from(v).unwrap_or(usize::MAX))
}

/// The capture settings of one span, read from the process environment when it starts:
/// `None` when payload events are off, else the size cap.
pub fn capture_from_env() -> Option<Option<usize>> {
    let env = |name: &str| std::env::var(name).ok();
    payloads_enabled(env).then(|| max_bytes(env))
}

/// Writes `s` as a JSON string literal the way Python's `json.dumps(..., ensure_ascii=False)`
/// does: `"`, `\` and control characters escaped (`\n`, `\r`, `\t`, `\b`, `\f`, else
/// `\u00xx`), everything else as is; the same escapes as the frame codec's, whose fast path
/// it shares (a 16 KiB payload is copied in runs, not byte by byte).
pub fn write_py_str(out: &mut String, s: &str) {
    iii_protocol::push_json_str(out, s);
}

/// Writes a finite float as Python's `repr` does: the shortest text that reads back the same,
/// in decimal for magnitudes from 1e-4 up to 1e16, else as `<mantissa>e<sign><two or more
/// digits>` (`1e+16`, `1.5e-07`). Rust's `{:?}` picks the same digits and the same switch
/// point; only its exponent is written differently (`1e16`, `1.5e-7`).
pub fn write_py_float(out: &mut String, f: f64) {
    use std::fmt::Write as _;
    let start = out.len();
    let _ = write!(out, "{f:?}");
    let Some(e) = out[start..].find('e').map(|i| start + i) else { return };
    let exponent = out[e + 1..].to_owned();
    out.truncate(e + 1);
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent.as_str()),
    };
    out.push(sign);
    if digits.len() < 2 {
        out.push('0');
    }
    out.push_str(digits);
}

/// `text` cut to `max_bytes` UTF-8 bytes with [`TRUNCATED_MARKER`] appended (at a character
/// boundary), and whether it was cut; unchanged without a cap or when it fits.
pub fn truncate(text: String, max_bytes: Option<usize>) -> (String, bool) {
    let Some(max) = max_bytes.filter(|m| *m > 0) else { return (text, false) };
    if text.len() <= max {
        return (text, false);
    }
    let marker = TRUNCATED_MARKER;
    if max <= marker.len() {
        return (marker[..max].to_owned(), true);
    }
    let mut cut = max - marker.len();
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + marker.len());
    out.push_str(&text[..cut]);
    out.push_str(marker);
    (out, true)
}

/// The `iii.invocation.input` event.
pub fn input_event(json: String, truncated: bool, at: u64) -> SpanEvent {
    SpanEvent {
        name: "iii.invocation.input".into(),
        time_unix_nano: at,
        attributes: vec![
            ("iii.payload.json".into(), AnyValue::Str(json)),
            ("iii.payload.truncated".into(), AnyValue::Bool(truncated)),
        ],
    }
}

/// The `iii.invocation.output` event; `ok` false for `{"error": ...}`.
pub fn output_event(json: String, truncated: bool, ok: bool, at: u64) -> SpanEvent {
    SpanEvent {
        name: "iii.invocation.output".into(),
        time_unix_nano: at,
        attributes: vec![
            ("iii.payload.json".into(), AnyValue::Str(json)),
            ("iii.payload.truncated".into(), AnyValue::Bool(truncated)),
            ("iii.payload.ok".into(), AnyValue::Bool(ok)),
        ],
    }
}

/// The payload of a failed invocation's output event: `{"error": message}`, redacted (the
/// key is not sensitive) and truncated.
pub fn error_json(message: &str, max_bytes: Option<usize>) -> (String, bool) {
    let mut text = String::with_capacity(message.len() + 12);
    text.push_str("{\"error\": ");
    write_py_str(&mut text, message);
    text.push('}');
    truncate(text, max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn sensitive_keys_follow_the_official_list() {
        for key in [
            "password",
            "API_KEY",
            "x-api-key",
            "Authorization",
            "token",
            "refresh_token",
            "csrf-token",
            "my_secret",
            "bearer",
            "client_secret",
            "userCredentials",
        ] {
            assert!(is_sensitive(key), "{key}");
        }
        for key in ["tokens", "tokenizer", "name", "auth", "keys", "pass"] {
            assert!(!is_sensitive(key), "{key}");
        }
    }

    #[test]
    fn environment_switches() {
        assert!(payloads_enabled(env_of(&[])));
        assert!(!payloads_enabled(env_of(&[("III_DISABLE_TRACE_PAYLOADS", "TRUE")])));
        assert!(!payloads_enabled(env_of(&[("III_DISABLE_TRACE_PAYLOADS", "1")])));
        assert!(payloads_enabled(env_of(&[("III_DISABLE_TRACE_PAYLOADS", "yes")])));
        assert_eq!(max_bytes(env_of(&[("III_TRACE_PAYLOAD_MAX_BYTES", " 64 ")])), Some(64));
        for raw in ["", "unlimited", "0", "-3", "x"] {
            let pairs: &'static [(&'static str, &'static str)] = match raw {
                "" => &[("III_TRACE_PAYLOAD_MAX_BYTES", "")],
                "unlimited" => &[("III_TRACE_PAYLOAD_MAX_BYTES", "unlimited")],
                "0" => &[("III_TRACE_PAYLOAD_MAX_BYTES", "0")],
                "-3" => &[("III_TRACE_PAYLOAD_MAX_BYTES", "-3")],
                _ => &[("III_TRACE_PAYLOAD_MAX_BYTES", "x")],
            };
            assert_eq!(max_bytes(env_of(pairs)), None, "{raw:?}");
        }
    }

    #[test]
    fn strings_escape_as_python_json_dumps() {
        let mut out = String::new();
        write_py_str(&mut out, "a\"b\\c\nd\u{1}é\u{7f}");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\u{7f}\"");
        // Every control character, as json.dumps writes it, inside a run long enough for the
        // codec's word-at-a-time path.
        let controls: String = (0u8..0x20).map(char::from).collect();
        let long = format!("{}{controls}{}", "x".repeat(40), "y".repeat(40));
        out.clear();
        write_py_str(&mut out, &long);
        let escaped = "\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f";
        assert_eq!(out, format!("\"{}{escaped}{}\"", "x".repeat(40), "y".repeat(40)));
    }

    #[test]
    fn floats_print_as_python_repr() {
        for (f, text) in [
            (1.5, "1.5"),
            (100.0, "100.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e17, "1.5e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e-7, "1e-07"),
            (-0.0, "-0.0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.1, "0.1"),
        ] {
            let mut out = String::new();
            write_py_float(&mut out, f);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn truncation_keeps_characters_whole_and_appends_the_marker() {
        assert_eq!(truncate("abc".into(), None), ("abc".into(), false));
        assert_eq!(truncate("abc".into(), Some(3)), ("abc".into(), false));
        let long = "é".repeat(20); // 40 bytes
        let (cut, was_cut) = truncate(long, Some(21));
        assert!(was_cut);
        assert_eq!(cut, format!("éé{TRUNCATED_MARKER}"));
        assert_eq!(truncate("x".repeat(40), Some(5)), ("...\"[".into(), true));
        assert_eq!(error_json("boom", None), ("{\"error\": \"boom\"}".into(), false));
    }
}
