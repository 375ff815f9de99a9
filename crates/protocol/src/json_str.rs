//! JSON string encoding, a word at a time.
//!
//! NOTE(perf): serde_json escapes a string byte by byte, a large share of a 16 KiB fan-out's CPU.
//! Here runs of bytes that need no escape are found 32 bytes at a time and copied in one go
//! (figures: benches/RESULTS.md, "JSON strings are escaped 32 bytes at a time"); the output is
//! byte for byte what serde_json writes (property test below).

/// `"`, `\` and bytes below 0x20 are escaped (as serde_json does: `\b \f \n \r \t`, the others
/// as `\u00XX`); everything else, UTF-8 included, is copied as is.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0; // first byte not yet copied
    let mut i = 0;
    while i < bytes.len() {
        if let Some(block) = bytes.get(i..i + 32) {
            let word = |k: usize| u64::from_le_bytes(block[k..k + 8].try_into().expect("8 bytes"));
            if escape_bits(word(0)) | escape_bits(word(8)) | escape_bits(word(16)) | escape_bits(word(24))
                == 0
            {
                i += 32;
                continue;
            }
        }
        if let Some(word) = bytes.get(i..i + 8) {
            if escape_bits(u64::from_le_bytes(word.try_into().expect("8 bytes"))) == 0 {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let unicode;
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0C => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1F => {
                unicode = [b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]];
                &unicode
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// [`write_json_str`] onto a `String`.
pub fn push_json_str(out: &mut String, s: &str) {
    // SAFETY: `write_json_str` copies `s` in runs cut only before ASCII bytes (char
    // boundaries) and adds ASCII escapes, so the buffer stays valid UTF-8.
    write_json_str(unsafe { out.as_mut_vec() }, s);
}

/// Non-zero when any of the eight bytes of `w` is `"`, `\` or below 0x20. May be non-zero
/// for a word that needs nothing (the caller then looks byte by byte); never zero wrongly.
fn escape_bits(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    below_space | zero_bytes(w ^ (ONES * b'"' as u64)) | zero_bytes(w ^ (ONES * b'\\' as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        write_json_str(&mut out, s);
        String::from_utf8(out).expect("valid UTF-8")
    }

    #[test]
    fn escapes_what_json_requires_and_nothing_else() {
        assert_eq!(ours(""), r#""""#);
        assert_eq!(ours("plain text, long enough for words"), r#""plain text, long enough for words""#);
        assert_eq!(ours("a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}"), r#""a\"b\\c\n\r\t\b\f\u0001\u001f""#);
        assert_eq!(ours("é ü 漢字 🎉 \u{7f}"), "\"é ü 漢字 🎉 \u{7f}\"");
        let long = format!("{}\"{}", "x".repeat(20), "y".repeat(13));
        assert_eq!(ours(&long), format!("\"{}\\\"{}\"", "x".repeat(20), "y".repeat(13)));
    }

    proptest! {
        #[test]
        fn writes_what_serde_json_writes(s in any::<String>(), ascii in "[ -~\t\n\"\\\\]{0,64}") {
            for text in [s.as_str(), ascii.as_str()] {
                prop_assert_eq!(ours(text), serde_json::to_string(text).expect("serialises"));
            }
        }
    }
}
