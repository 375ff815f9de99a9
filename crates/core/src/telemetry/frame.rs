//! Packs encoded records into binary telemetry frames: a 4-byte prefix and one OTLP/JSON
//! export request, several records per frame, no frame over a size bound (docs/protocol.md 10.1).

use super::otlp;
use super::span::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    fn parts(self) -> (&'static [u8], &'static str, &'static str, &'static str) {
        match self {
            Signal::Traces => (b"OTLP", "resourceSpans", "scopeSpans", "spans"),
            Signal::Logs => (b"LOGS", "resourceLogs", "scopeLogs", "logRecords"),
            Signal::Metrics => (b"MTRC", "resourceMetrics", "scopeMetrics", "metrics"),
        }
    }
}

/// `]}]}]}`: closes the item list, the scope group, its list, the resource group and the request.
const CLOSING: &[u8] = b"]}]}]}";

/// Builds frames of at most `max_bytes` from encoded items, each tagged with its scope.
pub struct FramePacker {
    signal: Signal,
    /// Prefix, resource and the opening of the scope list.
    opening: Vec<u8>,
    max_bytes: usize,
    frames: Vec<Vec<u8>>,
    current: Vec<u8>,
    current_scope: Option<Scope>,
    scope_header_len: usize,
    items_in_frame: usize,
    items_in_scope: usize,
}

impl FramePacker {
    pub fn new(signal: Signal, resource_json: &[u8], max_bytes: usize) -> FramePacker {
        let (prefix, resources, scopes, _) = signal.parts();
        let mut opening = prefix.to_vec();
        for part in [
            b"{\"",
            resources.as_bytes(),
            b"\":[{\"resource\":",
            resource_json,
            b",\"",
            scopes.as_bytes(),
            b"\":[",
        ] {
            opening.extend_from_slice(part);
        }
        FramePacker {
            signal,
            opening,
            max_bytes,
            frames: Vec::new(),
            current: Vec::new(),
            current_scope: None,
            scope_header_len: 0,
            items_in_frame: 0,
            items_in_scope: 0,
        }
    }

    fn open_frame(&mut self) {
        self.current.clear();
        self.current.extend_from_slice(&self.opening);
        self.current_scope = None;
        self.items_in_frame = 0;
        self.items_in_scope = 0;
    }

    fn scope_header(&self, scope: &Scope) -> Vec<u8> {
        let (_, _, _, items) = self.signal.parts();
        let mut out = b"{\"scope\":{\"name\":".to_vec();
        otlp::write_str(&mut out, &scope.name);
        out.extend_from_slice(b",\"version\":");
        otlp::write_str(&mut out, &scope.version);
        out.extend_from_slice(b"},\"");
        out.extend_from_slice(items.as_bytes());
        out.extend_from_slice(b"\":[");
        out
    }

    fn finish_frame(&mut self) {
        if self.items_in_frame == 0 {
            return;
        }
        self.current.extend_from_slice(CLOSING);
        self.frames.push(std::mem::take(&mut self.current));
        self.items_in_frame = 0;
    }

    /// Adds one encoded item. Returns false if the item alone cannot fit in a frame (it is
    /// left out; the caller counts it).
    pub fn push(&mut self, scope: &Scope, item: &[u8]) -> bool {
        if self.items_in_frame == 0 {
            self.open_frame();
        }
        let same_scope = self.current_scope.as_ref() == Some(scope);
        let header = if same_scope { Vec::new() } else { self.scope_header(scope) };
        let header_len = if same_scope { self.scope_header_len } else { header.len() };
        // Separator before the item (or before the new scope group), and `]}` closing a scope
        // group that ends here.
        let extra = usize::from(same_scope && self.items_in_scope > 0)
            + if !same_scope && self.current_scope.is_some() { 3 } else { 0 };
        let alone = self.opening.len() + header_len + item.len() + CLOSING.len();
        if alone > self.max_bytes {
            return false;
        }
        let needed = self.current.len() + extra + header.len() + item.len() + CLOSING.len();
        if needed > self.max_bytes && self.items_in_frame > 0 {
            self.finish_frame();
            return self.push(scope, item);
        }
        if same_scope {
            if self.items_in_scope > 0 {
                self.current.push(b',');
            }
        } else {
            if self.current_scope.is_some() {
                self.current.extend_from_slice(b"]},");
            }
            self.current.extend_from_slice(&header);
            self.current_scope = Some(scope.clone());
            self.scope_header_len = header.len();
            self.items_in_scope = 0;
        }
        self.current.extend_from_slice(item);
        self.items_in_frame += 1;
        self.items_in_scope += 1;
        true
    }

    /// Frames completed so far.
    pub fn frames_done(&self) -> usize {
        self.frames.len()
    }

    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.finish_frame();
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(name: &str) -> Scope {
        Scope { name: name.into(), version: "1".into() }
    }

    fn body(frame: &[u8]) -> serde_json::Value {
        serde_json::from_slice(&frame[4..]).unwrap()
    }

    #[test]
    fn items_of_several_scopes_share_one_frame() {
        let (a, b) = (scope("a"), scope("b"));
        let mut packer = FramePacker::new(Signal::Traces, b"{\"attributes\":[]}", 1 << 20);
        for (s, item) in [(&a, "1"), (&a, "2"), (&b, "3"), (&a, "4")] {
            assert!(packer.push(s, item.as_bytes()));
        }
        let frames = packer.finish();
        assert_eq!(frames.len(), 1);
        assert_eq!(&frames[0][..4], b"OTLP");
        let json = body(&frames[0]);
        let groups = json["resourceSpans"][0]["scopeSpans"].as_array().unwrap();
        let seen: Vec<(String, Vec<i64>)> = groups
            .iter()
            .map(|g| {
                (
                    g["scope"]["name"].as_str().unwrap().to_owned(),
                    g["spans"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect(),
                )
            })
            .collect();
        assert_eq!(seen, vec![("a".into(), vec![1, 2]), ("b".into(), vec![3]), ("a".into(), vec![4])]);
    }

    #[test]
    fn frames_never_exceed_the_bound_and_keep_every_item() {
        let s = scope("sdk");
        let max = 300;
        let mut packer = FramePacker::new(Signal::Logs, b"{\"attributes\":[]}", max);
        let items: Vec<String> =
            (0..200).map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 40))).collect();
        for item in &items {
            assert!(packer.push(&s, item.as_bytes()));
        }
        let frames = packer.finish();
        assert!(frames.len() > 1);
        let mut seen = Vec::new();
        for frame in &frames {
            assert!(frame.len() <= max, "{} > {max}", frame.len());
            assert_eq!(&frame[..4], b"LOGS");
            let json = body(frame);
            let records = json["resourceLogs"][0]["scopeLogs"][0]["logRecords"].as_array().unwrap().clone();
            assert!(records.len() > 1, "several records per frame");
            seen.extend(records.into_iter().map(|r| r["n"].as_i64().unwrap()));
        }
        assert_eq!(seen, (0..200).collect::<Vec<i64>>());
    }

    #[test]
    fn an_item_too_large_for_any_frame_is_refused() {
        let s = scope("sdk");
        let mut packer = FramePacker::new(Signal::Metrics, b"{}", 160);
        assert!(packer.push(&s, b"1"));
        assert!(!packer.push(&s, "9".repeat(200).as_bytes()));
        assert!(packer.push(&s, b"2"));
        let frames = packer.finish();
        assert_eq!(frames.len(), 1);
        assert_eq!(
            body(&frames[0])["resourceMetrics"][0]["scopeMetrics"][0]["metrics"],
            serde_json::json!([1, 2])
        );
    }

    #[test]
    fn nothing_pushed_gives_no_frame() {
        assert!(FramePacker::new(Signal::Traces, b"{}", 100).finish().is_empty());
    }
}
