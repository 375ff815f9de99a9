//! W3C trace context: `traceparent` and `baggage` header values (docs/protocol.md 10.3), and ids.

use std::fmt::Write as _;

/// A 128-bit trace id; never zero when valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub u128);

/// A 64-bit span id; never zero when valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub u64);

impl TraceId {
    /// A random, non-zero id. Ids must be unique, not secret (as for call ids).
    pub fn random() -> TraceId {
        loop {
            let id = fastrand::u128(..);
            if id != 0 {
                return TraceId(id);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }
}

impl SpanId {
    pub fn random() -> SpanId {
        loop {
            let id = fastrand::u64(..);
            if id != 0 {
                return SpanId(id);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn to_hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The parsed `traceparent`: who the caller's span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

impl SpanContext {
    /// Parses a `traceparent` value. Anything malformed (wrong lengths, non-hex, zero ids,
    /// version `ff`) gives `None`: the callee then starts a new trace, as W3C asks.
    pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
        let value = value.trim();
        let mut parts = value.split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let version = u8::from_str_radix(version, 16).ok()?;
        // Version 00 has exactly four fields; later versions may append more.
        if version == 0xff || (version == 0 && parts.next().is_some()) {
            return None;
        }
        let lower_hex = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !lower_hex(trace) || !lower_hex(span) || !flags.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(SpanContext { trace_id: TraceId(trace_id), span_id: SpanId(span_id), sampled: flags & 1 == 1 })
    }

    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        let _ = write!(
            out,
            "00-{:032x}-{:016x}-{}",
            self.trace_id.0,
            self.span_id.0,
            if self.sampled { "01" } else { "00" }
        );
        out
    }
}

/// Most baggage entries a header may carry (W3C: at least 64 must be accepted).
const MAX_BAGGAGE_ENTRIES: usize = 180;
/// Longest baggage header accepted (W3C: at least 8192 bytes).
const MAX_BAGGAGE_BYTES: usize = 8192;

/// Parses a W3C `baggage` value into (key, value) pairs, percent-decoding values and dropping
/// entry properties. Malformed entries are skipped, not fatal; a header over the W3C size
/// limits is ignored after the limit.
pub fn parse_baggage(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut used = 0;
    for member in value.split(',') {
        used += member.len() + 1;
        if used > MAX_BAGGAGE_BYTES + 1 || out.len() >= MAX_BAGGAGE_ENTRIES {
            break;
        }
        let entry = member.split(';').next().unwrap_or("");
        let Some((key, val)) = entry.split_once('=') else { continue };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(is_token_byte) {
            continue;
        }
        let Some(val) = crate::percent::decode(val.trim()) else { continue };
        out.push((key.to_owned(), val));
    }
    out
}

/// Formats (key, value) pairs as a `baggage` value, percent-encoding what W3C does not allow
/// raw. Keys that are not tokens are skipped.
pub fn format_baggage<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (key, value) in entries {
        if key.is_empty() || !key.bytes().all(is_token_byte) {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        for b in value.bytes() {
            if is_baggage_octet(b) && b != b'%' {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = SpanContext::parse_traceparent(text).unwrap();
        assert_eq!(ctx.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.span_id.to_hex(), "00f067aa0ba902b7");
        assert!(ctx.sampled);
        assert_eq!(ctx.traceparent(), text);
        let unsampled = SpanContext::parse_traceparent(&text.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled);
    }

    #[test]
    fn malformed_traceparents_are_rejected() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(SpanContext::parse_traceparent(bad), None, "{bad}");
        }
        // A later version may carry extra fields.
        assert!(SpanContext::parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
            .is_some());
    }

    #[test]
    fn random_ids_are_distinct_and_non_zero() {
        let ids: std::collections::HashSet<u64> = (0..10_000).map(|_| SpanId::random().0).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(!ids.contains(&0));
        assert_ne!(TraceId::random(), TraceId::random());
    }

    #[test]
    fn baggage_parses_decodes_and_skips_bad_members() {
        let parsed = parse_baggage("user=alice, tenant=a%20b;prop=1,bad,=x,k2=%zz,ok=1");
        assert_eq!(
            parsed,
            vec![("user".into(), "alice".into()), ("tenant".into(), "a b".into()), ("ok".into(), "1".into())]
        );
    }

    #[test]
    fn baggage_formats_and_round_trips() {
        let text = format_baggage([("user", "alice"), ("note", "a b,c;d=%"), ("bad key", "x")]);
        assert_eq!(text, "user=alice,note=a%20b%2Cc%3Bd=%25");
        assert_eq!(
            parse_baggage(&text),
            vec![("user".into(), "alice".into()), ("note".into(), "a b,c;d=%".into())]
        );
    }

    #[test]
    fn oversized_baggage_is_cut_at_the_limit() {
        let header: String = (0..10_000).map(|i| format!("k{i}=v,")).collect();
        let parsed = parse_baggage(&header);
        assert!(parsed.len() <= MAX_BAGGAGE_ENTRIES);
        assert!(!parsed.is_empty());
    }
}
