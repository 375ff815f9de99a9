//! The WebSocket frame codec (RFC 6455 section 5): masked client frames out, server frames
//! reassembled into messages in. Every length read from the wire is checked.

use std::io::Read;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Messages above this are sent as several frames: the engine (tungstenite defaults) resets a
/// connection on a single frame over 16 MiB, while whole messages may be larger.
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

/// Appends one masked client message to `out`, fragmented above `MAX_FRAME`.
pub fn encode_frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    if payload.len() <= MAX_FRAME {
        encode_one(0x80 | opcode, payload, out);
        return;
    }
    let mut chunks = payload.chunks(MAX_FRAME).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let fin = if chunks.peek().is_none() { 0x80 } else { 0 };
        let op = if first { opcode } else { OP_CONTINUATION };
        encode_one(fin | op, chunk, out);
        first = false;
    }
}

fn encode_one(head: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + 14);
    out.push(head);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = fastrand::u32(..).to_ne_bytes();
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// A complete message or control frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>, String),
}

/// Reassembles server frames from bytes. Server frames are unmasked; masked ones are accepted.
pub struct FrameReader {
    /// Received bytes; those before `pos` are already parsed.
    buf: Vec<u8>,
    pos: usize,
    /// Reads land here first: reading straight into `buf` would mean zeroing its spare room
    /// on every read.
    scratch: Box<[u8]>,
    max_message_size: usize,
    partial: Option<(u8, Vec<u8>)>,
}

const READ_CHUNK: usize = 64 * 1024;

impl FrameReader {
    pub fn new(max_message_size: usize, initial: Vec<u8>) -> Self {
        Self {
            buf: initial,
            pos: 0,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            // No buffer can hold more than isize::MAX bytes.
            max_message_size: max_message_size.min(isize::MAX as usize),
            partial: None,
        }
    }

    /// Reads what `source` (a non-blocking socket) has. `Ok(0)`: the peer closed the stream;
    /// `WouldBlock`: nothing more for now.
    pub fn fill(&mut self, mut source: impl Read) -> std::io::Result<usize> {
        let n = source.read(&mut self.scratch)?;
        self.compact();
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    /// Appends received bytes (what `fill` does with what it reads).
    #[cfg(test)]
    fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Drops the bytes already parsed (only the tail of a partial frame is ever left).
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Takes one message out of the buffer if a complete one is there.
    pub fn parse(&mut self) -> Result<Option<Incoming>, String> {
        loop {
            let b = &self.buf[self.pos..];
            if b.len() < 2 {
                return Ok(None);
            }
            let fin = b[0] & 0x80 != 0;
            if b[0] & 0x70 != 0 {
                return Err("frame with reserved bits set (no extension was negotiated)".into());
            }
            let opcode = b[0] & 0x0F;
            let masked = b[1] & 0x80 != 0;
            let (len, mut at) = match b[1] & 0x7F {
                126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
                127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")), 10),
                126 | 127 => return Ok(None),
                n => (n as u64, 2),
            };
            if opcode >= OP_CLOSE && (!fin || len > 125) {
                return Err("control frame fragmented or longer than 125 bytes".into());
            }
            // Lengths come from the wire: every sum is checked (a continuation frame claiming
            // nearly u64::MAX bytes must be refused, not wrap around).
            let so_far = self.partial.as_ref().map_or(0, |(_, p)| p.len()) as u64;
            let total = len.checked_add(so_far).filter(|&t| t <= self.max_message_size as u64);
            let Some(len) = total.and(usize::try_from(len).ok()) else {
                return Err(format!(
                    "message of {} bytes exceeds the maximum message size of {} bytes",
                    (so_far as u128) + (len as u128),
                    self.max_message_size
                ));
            };
            let mask = if masked {
                if b.len() < at + 4 {
                    return Ok(None);
                }
                at += 4;
                Some([b[at - 4], b[at - 3], b[at - 2], b[at - 1]])
            } else {
                None
            };
            let end = match at.checked_add(len) {
                Some(end) if end <= b.len() => end,
                Some(_) => return Ok(None),
                None => return Err(format!("frame length {len} is out of range")),
            };
            let mut payload: Vec<u8> = b[at..end].to_vec();
            self.pos += end;
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
            }
            if let Some(mask) = mask {
                apply_mask(&mut payload, mask);
            }
            match opcode {
                OP_TEXT | OP_BINARY if self.partial.is_some() => {
                    return Err("new message started inside a fragmented one".into())
                }
                OP_TEXT | OP_BINARY if fin => {
                    return Ok(Some(if opcode == OP_TEXT {
                        Incoming::Text(payload)
                    } else {
                        Incoming::Binary(payload)
                    }))
                }
                OP_TEXT | OP_BINARY => self.partial = Some((opcode, payload)),
                OP_CONTINUATION => {
                    let Some((first, mut data)) = self.partial.take() else {
                        return Err("continuation frame without a message to continue".into());
                    };
                    data.extend_from_slice(&payload);
                    if fin {
                        return Ok(Some(if first == OP_TEXT {
                            Incoming::Text(data)
                        } else {
                            Incoming::Binary(data)
                        }));
                    }
                    self.partial = Some((first, data));
                }
                OP_PING => return Ok(Some(Incoming::Ping(payload))),
                OP_PONG => return Ok(Some(Incoming::Pong)),
                OP_CLOSE => {
                    let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                    return Ok(Some(Incoming::Close(code, reason)));
                }
                other => return Err(format!("frame with unknown opcode {other}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        if payload.len() < 126 {
            out.push(payload.len() as u8);
        } else if payload.len() <= 65535 {
            out.push(126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        } else {
            out.push(127);
            out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn client_frames_are_masked_and_round_trip() {
        for len in [0usize, 5, 125, 126, 65535, 65536, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut frame = Vec::new();
            encode_frame(OP_TEXT, &payload, &mut frame);
            assert_eq!(frame[0], 0x81);
            assert!(frame[1] & 0x80 != 0, "client frames must be masked");
            let mut reader = FrameReader::new(1 << 20, frame);
            assert_eq!(reader.parse().unwrap(), Some(Incoming::Text(payload)));
        }
    }

    #[test]
    fn large_messages_are_sent_as_fragments() {
        let payload: Vec<u8> = (0..MAX_FRAME * 2 + 5).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        encode_frame(OP_TEXT, &payload, &mut wire);
        assert_eq!(wire[0], OP_TEXT, "first fragment: text, not final");
        let mut reader = FrameReader::new(payload.len(), wire);
        assert_eq!(reader.parse().unwrap(), Some(Incoming::Text(payload)));
        assert_eq!(reader.parse().unwrap(), None);
    }

    #[test]
    fn reassembles_fragments_and_interleaved_control_frames() {
        let mut bytes = server_frame(OP_TEXT, false, b"hel");
        bytes.extend(server_frame(OP_PING, true, b"p"));
        bytes.extend(server_frame(OP_CONTINUATION, true, b"lo"));
        bytes.extend(server_frame(OP_CLOSE, true, &[0x03, 0xE8, b'b', b'y', b'e']));
        let mut reader = FrameReader::new(1024, Vec::new());
        // Byte by byte: partial headers and payloads must wait for more input.
        let mut out = Vec::new();
        for b in bytes {
            reader.push(&[b]);
            while let Some(msg) = reader.parse().unwrap() {
                out.push(msg);
            }
        }
        assert_eq!(
            out,
            vec![
                Incoming::Ping(b"p".to_vec()),
                Incoming::Text(b"hello".to_vec()),
                Incoming::Close(Some(1000), "bye".into())
            ]
        );
    }

    #[test]
    fn rejects_oversized_and_malformed_frames() {
        let mut reader = FrameReader::new(10, server_frame(OP_BINARY, true, &[0; 11]));
        assert!(reader.parse().unwrap_err().contains("maximum message size of 10"));
        let mut reader = FrameReader::new(10, server_frame(OP_CONTINUATION, true, b"x"));
        assert!(reader.parse().is_err());
        let mut reader = FrameReader::new(10, vec![0xC1, 0x00]);
        assert!(reader.parse().is_err());
        let mut reader = FrameReader::new(10, server_frame(0x3, true, b""));
        assert!(reader.parse().is_err());
        let mut reader = FrameReader::new(1000, server_frame(OP_PING, true, &[0; 126]));
        assert!(reader.parse().is_err(), "control frames carry at most 125 bytes");
        let mut reader = FrameReader::new(1000, server_frame(OP_PING, false, b""));
        assert!(reader.parse().is_err(), "control frames are never fragmented");
    }

    /// A 127-length header claiming `len` bytes, with `tail` actually following.
    fn claimed_frame(head: u8, len: u64, tail: &[u8]) -> Vec<u8> {
        let mut out = vec![head, 127];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(tail);
        out
    }

    #[test]
    fn continuation_with_a_length_near_u64_max_is_an_error() {
        // Regression: the reader added the wire length to what it had, overflowing (a panic
        // in debug builds, an out-of-range slice in release).
        for limit in [64 << 20, usize::MAX] {
            for claimed in [u64::MAX, u64::MAX - 1, u64::MAX - 9, u64::MAX - 10, 1 << 63] {
                let mut wire = server_frame(OP_TEXT, false, b"ab");
                wire.extend(claimed_frame(0x80 | OP_CONTINUATION, claimed, b"cd"));
                let mut reader = FrameReader::new(limit, wire);
                let err = reader.parse().expect_err("a clean error, not a wait for more bytes");
                assert!(err.contains("exceeds the maximum message size"), "{err}");
            }
        }
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn extreme_length() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..200,
            Just(125),
            Just(126),
            Just(u16::MAX as u64),
            Just(u16::MAX as u64 + 1),
            Just(u32::MAX as u64),
            Just(1 << 63),
            Just(64),
            Just(65),
            Just(1 << 20),
            (0u64..16).prop_map(|k| u64::MAX - k),
            any::<u64>(),
        ]
    }

    /// The length a complete frame header at the start of `b` claims.
    fn header_length(b: &[u8]) -> Option<u64> {
        match *b.get(1)? & 0x7F {
            126 => Some(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as u64),
            127 => Some(u64::from_be_bytes(b.get(2..10)?.try_into().ok()?)),
            n => Some(n as u64),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        /// Whatever the engine sends, parsing never panics and never returns more than it got.
        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut reader = FrameReader::new(256, bytes);
            for _ in 0..64 {
                match reader.parse() {
                    Ok(Some(Incoming::Text(p) | Incoming::Binary(p) | Incoming::Ping(p))) => prop_assert!(p.len() <= 256),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }

        /// Sequences of frames whose headers claim extreme lengths (near 2^16, 2^32, 2^63,
        /// u64::MAX, the size limit) never panic, never yield more than the limit, and a
        /// claim over the limit is an error at once rather than a wait for bytes that would
        /// never come.
        #[test]
        fn extreme_lengths_never_panic_or_stall(
            frames in proptest::collection::vec(
                (0u8..16, any::<bool>(), any::<bool>(), extreme_length(), proptest::collection::vec(any::<u8>(), 0..40)),
                1..8,
            ),
            limit in prop_oneof![Just(64usize), Just(1 << 20), Just(usize::MAX)],
        ) {
            let mut wire = Vec::new();
            for (opcode, fin, masked, claimed, tail) in &frames {
                wire.push(if *fin { 0x80 | opcode } else { *opcode });
                let mask_bit = if *masked { 0x80 } else { 0 };
                match *claimed {
                    n if n < 126 => wire.push(mask_bit | n as u8),
                    n if n <= u16::MAX as u64 => {
                        wire.push(mask_bit | 126);
                        wire.extend_from_slice(&(n as u16).to_be_bytes());
                    }
                    n => {
                        wire.push(mask_bit | 127);
                        wire.extend_from_slice(&n.to_be_bytes());
                    }
                }
                if *masked {
                    wire.extend_from_slice(&[1, 2, 3, 4]);
                }
                wire.extend_from_slice(tail);
            }
            let mut reader = FrameReader::new(limit, wire);
            for _ in 0..16 {
                let so_far = reader.partial.as_ref().map_or(0, |(_, p)| p.len()) as u64;
                match reader.parse() {
                    Ok(Some(Incoming::Text(p) | Incoming::Binary(p) | Incoming::Ping(p))) => {
                        prop_assert!(p.len() <= limit)
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        let rest = &reader.buf[reader.pos..];
                        if let Some(claimed) = header_length(rest) {
                            prop_assert!(claimed.saturating_add(so_far) <= limit as u64);
                        }
                        break;
                    }
                    Err(_) => break,
                }
            }
        }

        /// Messages split at any points into fragments and reads come out whole and in order.
        #[test]
        fn fragmented_messages_reassemble(
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            fragment in 1usize..64,
            read_size in 1usize..100,
        ) {
            let mut wire = Vec::new();
            for m in &messages {
                let chunks: Vec<&[u8]> = if m.is_empty() { vec![&m[..]] } else { m.chunks(fragment).collect() };
                for (i, chunk) in chunks.iter().enumerate() {
                    let fin = i + 1 == chunks.len();
                    let opcode = if i == 0 { OP_BINARY } else { OP_CONTINUATION };
                    wire.push(if fin { 0x80 | opcode } else { opcode });
                    wire.push(chunk.len() as u8);
                    wire.extend_from_slice(chunk);
                }
            }
            let mut reader = FrameReader::new(1 << 20, Vec::new());
            let mut out = Vec::new();
            for piece in wire.chunks(read_size) {
                reader.push(piece);
                while let Some(msg) = reader.parse().unwrap() {
                    out.push(msg);
                }
            }
            let expected: Vec<Incoming> = messages.into_iter().map(Incoming::Binary).collect();
            prop_assert_eq!(out, expected);
        }
    }
}
