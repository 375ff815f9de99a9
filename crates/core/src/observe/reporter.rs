//! Reports of observed local calls and emitted events (`invocationsobserved`) and the
//! per-function counts of local calls (`localinvocationstats`), docs/protocol.md C.17.
//!
//! Pushing never blocks the call that reports: items wait in a bounded buffer and a runtime
//! task sends them in batches, each only on a link where the engine confirmed its function
//! (`functionregistered`). What cannot be sent is counted by reason, never silently lost.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::FunctionState;
use crate::connection::{Connection, Shared};
use iii_protocol::{DroppedReportStats, LocalFunctionStats, ObservedItem};

const MAX_ITEMS: usize = 10_000;
const MAX_BYTES: usize = 8 << 20;
/// Items per `invocationsobserved` frame, and the size of a frame's items.
const BATCH: usize = 256;
const FRAME_BYTES: usize = (16 << 20) - 1024;
/// A batch goes out this long after its first item, unless it fills up first.
const DELAY: Duration = Duration::from_millis(5);
/// An item whose function is not confirmed on the current link within this is dropped.
const PARKED_FOR: Duration = Duration::from_secs(30);
const STATS_EVERY: Duration = Duration::from_secs(10);
/// Distinct (function, reason) drop counters kept per window before they merge into `*`.
const DROP_KEYS: usize = 1024;

/// Items an emit may join are looked for among the last this many waiting.
const EMIT_JOIN_WINDOW: usize = 64;

struct Pending {
    function: Arc<FunctionState>,
    text: String,
    at: Instant,
    /// An owner's emit: the whole event and what its observers capture of it, so the same event
    /// emitted to another observer joins it.
    emit: Option<Box<OpenEmit>>,
}

struct OpenEmit {
    whole: ObservedItem,
    captured: Vec<String>,
}

impl OpenEmit {
    /// The item as sent: the parts some matched observer captures.
    fn render(&self) -> Option<String> {
        let has = |name: &str| self.captured.iter().any(|c| c == name);
        let mut item = self.whole.clone();
        if !has("input") {
            item.input = None;
        }
        if !has("metadata") {
            item.metadata = None;
        }
        if !has("caller") {
            item.caller = None;
        }
        serde_json::to_string(&item).ok()
    }

    fn same_event(&self, item: &ObservedItem) -> bool {
        let w = &self.whole;
        w.function_id == item.function_id
            && w.invocation_id == item.invocation_id
            && w.input == item.input
            && w.metadata == item.metadata
            && w.caller == item.caller
    }
}

struct Inner {
    items: VecDeque<Pending>,
    bytes: usize,
    dropped: BTreeMap<(String, &'static str), u64>,
    window_start: Instant,
}

pub(crate) struct Reporter {
    inner: Mutex<Inner>,
    wake: Notify,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                bytes: 0,
                dropped: BTreeMap::new(),
                window_start: Instant::now(),
            }),
            wake: Notify::new(),
        }
    }
}

impl Inner {
    fn drop_count(&mut self, function_id: &str, reason: &'static str, n: u64) {
        let key = if self.dropped.len() >= DROP_KEYS
            && !self.dropped.contains_key(&(function_id.to_owned(), reason))
        {
            ("*".to_owned(), reason)
        } else {
            (function_id.to_owned(), reason)
        };
        *self.dropped.entry(key).or_default() += n;
    }
}

impl Reporter {
    /// Items waiting to be sent and their size in bytes.
    pub(crate) fn backlog(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.items.len(), inner.bytes)
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Queues one item; drops it (counted) when the buffer is full or it can never fit a frame.
    pub(crate) fn push(&self, function: Arc<FunctionState>, item: ObservedItem) {
        let Ok(text) = serde_json::to_string(&item) else { return }; // JSON values always serialise
        let mut inner = self.inner.lock();
        self.enqueue(
            &mut inner,
            Pending { function, text, at: Instant::now(), emit: None },
            &item.function_id,
        );
    }

    /// Queues an owner's emit of `whole` (every part present) to its one matched observer, which
    /// captures `capture`. The same event (function, invocation, input, metadata and caller)
    /// emitted to another observer while the first still waits becomes one item naming them
    /// all, with the union of their captures, as iii-sdk 0.25.0 reports it.
    pub(crate) fn push_emit(&self, function: Arc<FunctionState>, whole: ObservedItem, capture: &[String]) {
        let observer = whole.matched[0].clone();
        let mut inner = self.inner.lock();
        let window = inner.items.len().saturating_sub(EMIT_JOIN_WINDOW);
        let joined = inner.items.iter().enumerate().skip(window).rev().find_map(|(at, pending)| {
            let open = pending.emit.as_ref()?;
            if !open.same_event(&whole) || open.whole.matched.contains(&observer) {
                return None;
            }
            let mut grown = OpenEmit { whole: open.whole.clone(), captured: open.captured.clone() };
            grown.whole.matched.push(observer.clone());
            for c in capture {
                if !grown.captured.contains(c) {
                    grown.captured.push(c.clone());
                }
            }
            let text = grown.render()?;
            Some((at, grown, text))
        });
        if let Some((at, grown, text)) = joined {
            let bytes = inner.bytes - inner.items[at].text.len() + text.len();
            if let Some(reason) = refusal(text.len(), bytes) {
                inner.drop_count(&whole.function_id, reason, 1);
                return;
            }
            inner.bytes = bytes;
            inner.items[at].text = text;
            inner.items[at].emit = Some(Box::new(grown));
            return;
        }
        let open = OpenEmit { whole, captured: capture.to_vec() };
        let Some(text) = open.render() else { return };
        let function_id = open.whole.function_id.clone();
        let pending = Pending { function, text, at: Instant::now(), emit: Some(Box::new(open)) };
        self.enqueue(&mut inner, pending, &function_id);
    }

    fn enqueue(&self, inner: &mut Inner, pending: Pending, function_id: &str) {
        let full = (inner.items.len() >= MAX_ITEMS).then_some("BUFFER_FULL");
        if let Some(reason) = refusal(pending.text.len(), inner.bytes + pending.text.len()).or(full) {
            inner.drop_count(function_id, reason, 1);
            return;
        }
        inner.bytes += pending.text.len();
        inner.items.push_back(pending);
        let n = inner.items.len();
        if n == 1 || n >= BATCH {
            self.wake.notify_one();
        }
    }

    /// Drops the waiting items of a function that is gone or in conflict.
    pub(crate) fn drop_function(&self, function_id: &str) {
        let mut inner = self.inner.lock();
        let before = inner.items.len();
        let mut freed = 0;
        inner.items.retain(|p| {
            let keep = p.function.id != function_id;
            if !keep {
                freed += p.text.len();
            }
            keep
        });
        inner.bytes -= freed;
        let gone = (before - inner.items.len()) as u64;
        if gone > 0 {
            inner.drop_count(function_id, "INACTIVE", gone);
        }
    }

    /// Drops every waiting item (the engine does not observe, or the worker shuts down).
    pub(crate) fn clear_items(&self, reason: &'static str) {
        let mut inner = self.inner.lock();
        let items: Vec<Pending> = inner.items.drain(..).collect();
        inner.bytes = 0;
        for p in items {
            inner.drop_count(&p.function.id, reason, 1);
        }
    }

    /// Sends the items whose function is confirmed on the live link, in order, in frames of at
    /// most `BATCH` items; drops those parked too long.
    fn flush(&self, conn: &Connection) {
        let sendable = conn.shared.observe.can_send(conn);
        let epoch = conn.shared.epoch.load(Ordering::Acquire);
        let mut frames: Vec<String> = Vec::new();
        {
            let mut inner = self.inner.lock();
            let mut kept = VecDeque::new();
            let mut batch: Vec<String> = Vec::new();
            let mut batch_bytes = 0;
            let items: Vec<Pending> = inner.items.drain(..).collect();
            inner.bytes = 0;
            for p in items {
                if sendable && p.function.confirmed_on(epoch) {
                    if batch.len() == BATCH || batch_bytes + p.text.len() > FRAME_BYTES {
                        frames.push(frame(&batch));
                        batch.clear();
                        batch_bytes = 0;
                    }
                    batch_bytes += p.text.len();
                    batch.push(p.text);
                } else if p.at.elapsed() >= PARKED_FOR {
                    inner.drop_count(&p.function.id, "INACTIVE", 1);
                } else {
                    inner.bytes += p.text.len();
                    kept.push_back(p);
                }
            }
            if !batch.is_empty() {
                frames.push(frame(&batch));
            }
            inner.items = kept;
        }
        for f in frames {
            if conn.send_text(f).is_err() {
                self.inner.lock().drop_count("*", "INACTIVE", 1);
            }
        }
    }

    /// Sends what waits and the counters now (at shutdown, their last chance); true when the
    /// counters had anything to send.
    pub(crate) fn flush_now(&self, conn: &Connection) -> bool {
        self.flush(conn);
        self.send_stats(conn)
    }

    /// `localinvocationstats` for the window since the last one, when anything is non-zero;
    /// true when it was sent.
    fn send_stats(&self, conn: &Connection) -> bool {
        let functions: Vec<LocalFunctionStats> =
            conn.shared.observe.functions().iter().filter_map(|f| f.take_stats()).collect();
        let (dropped, window_ms) = {
            let mut inner = self.inner.lock();
            let dropped: Vec<DroppedReportStats> = std::mem::take(&mut inner.dropped)
                .into_iter()
                .map(|((function_id, reason), count)| DroppedReportStats {
                    function_id,
                    reason: reason.to_owned(),
                    count,
                })
                .collect();
            let window_ms = inner.window_start.elapsed().as_millis() as u64;
            inner.window_start = Instant::now();
            (dropped, window_ms)
        };
        if functions.is_empty() && dropped.is_empty() {
            return false;
        }
        let message = iii_protocol::ObserveMessage::LocalInvocationStats {
            window_ms,
            functions,
            dropped_reports: dropped,
        };
        conn.send_observe_frame(iii_protocol::Message::Observe(Box::new(message)).encode());
        true
    }

    /// The reporter's task: batches after `DELAY`, parks and expires, stats every `STATS_EVERY`.
    /// It holds the connection only while it works, so a dropped connection (and the sockets
    /// its sink owns) is released at once; it ends at shutdown or when the connection is gone.
    pub(crate) async fn run(reporter: Arc<Reporter>, shared: Weak<Shared>) {
        let mut last_stats = Instant::now();
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(1), reporter.wake.notified()).await;
            let waiting = reporter.inner.lock().items.len();
            if waiting > 0 && waiting < BATCH {
                tokio::time::sleep(DELAY).await;
            }
            let Some(shared) = shared.upgrade() else { break };
            let conn = Connection { shared };
            if conn.shared.shutting_down.load(Ordering::Acquire) {
                break;
            }
            reporter.flush(&conn);
            if last_stats.elapsed() >= STATS_EVERY {
                reporter.send_stats(&conn);
                last_stats = Instant::now();
            }
        }
        reporter.clear_items("INACTIVE");
    }
}

/// Why an item of `len` bytes cannot wait with the buffer at `bytes` once it is in, if it can't.
fn refusal(len: usize, bytes: usize) -> Option<&'static str> {
    if len > FRAME_BYTES {
        Some("TOO_LARGE")
    } else if bytes > MAX_BYTES {
        Some("BUFFER_FULL")
    } else {
        None
    }
}

fn frame(items: &[String]) -> String {
    let mut out = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 48);
    out.push_str(r#"{"type":"invocationsobserved","items":["#);
    out.push_str(&items.join(","));
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use iii_protocol::Caller;
    use serde_json::{json, Value};

    fn emitted(observer: &str, invocation: &str, event: Value) -> ObservedItem {
        ObservedItem {
            function_id: "cron::tick".into(),
            namespace: Some("default".into()),
            invocation_id: invocation.into(),
            matched: vec![observer.into()],
            status: "success".into(),
            input: Some(event),
            output: None,
            error: None,
            metadata: None,
            caller: Some(Caller { worker_id: Some("w".into()), ..Caller::default() }),
            started_at_ms: 1,
            duration_ms: 0.0,
            observe_depth: 0,
            traceparent: None,
            baggage: None,
        }
    }

    fn waiting(reporter: &Reporter) -> Vec<Value> {
        let inner = reporter.inner.lock();
        assert_eq!(inner.bytes, inner.items.iter().map(|p| p.text.len()).sum::<usize>());
        inner.items.iter().map(|p| serde_json::from_str(&p.text).unwrap()).collect()
    }

    #[test]
    fn one_event_emitted_to_several_observers_is_one_item_with_the_union_of_their_captures() {
        let reporter = Reporter::default();
        let f = FunctionState::new("cron::tick".into(), true, false, true);
        let input = vec!["input".to_owned()];
        let both = vec!["input".to_owned(), "caller".to_owned()];
        reporter.push_emit(f.clone(), emitted("a", "i1", json!({"n": 7})), &input);
        let first = waiting(&reporter);
        assert!(first[0].get("caller").is_none(), "a does not capture the caller");
        reporter.push_emit(f.clone(), emitted("b", "i1", json!({"n": 7})), &both);
        // Another event, another invocation, or the same observer again: items of their own.
        reporter.push_emit(f.clone(), emitted("c", "i1", json!({"n": 8})), &input);
        reporter.push_emit(f.clone(), emitted("d", "i2", json!({"n": 7})), &input);
        reporter.push_emit(f.clone(), emitted("a", "i1", json!({"n": 7})), &input);
        let items = waiting(&reporter);
        let matched: Vec<Value> = items.iter().map(|i| i["matched"].clone()).collect();
        assert_eq!(matched, vec![json!(["a", "b"]), json!(["c"]), json!(["d"]), json!(["a"])]);
        assert_eq!(items[0]["caller"]["worker_id"], "w");
        assert_eq!(items[0]["input"], json!({"n": 7}));
        assert!(items[1].get("caller").is_none());
    }
}
