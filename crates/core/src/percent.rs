//! Percent-decoding (RFC 3986 section 2.1), shared by engine URLs and W3C baggage values.

/// Decodes `%XX` escapes; None for a malformed escape or a result that is not UTF-8.
pub(crate) fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_escapes_and_refuses_malformed_ones() {
        assert_eq!(decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(decode("plain").as_deref(), Some("plain"));
        assert_eq!(decode("%e2%82%ac").as_deref(), Some("\u{20ac}"));
        assert_eq!(decode("bad%2"), None);
        assert_eq!(decode("bad%zz"), None);
        assert_eq!(decode("%+f"), None, "a sign is not a hex digit");
        assert_eq!(decode("%ff"), None, "not UTF-8");
    }
}
