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

struct Pending {
    function: Arc<FunctionState>,
    text: String,
    at: Instant,
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
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Queues one item; drops it (counted) when the buffer is full or it can never fit a frame.
    pub(crate) fn push(&self, function: Arc<FunctionState>, item: ObservedItem) {
        let text = match serde_json::to_string(&item) {
            Ok(t) => t,
            Err(_) => return, // a tree of JSON values always serialises
        };
        let mut inner = self.inner.lock();
        if text.len() > FRAME_BYTES {
            inner.drop_count(&item.function_id, "TOO_LARGE", 1);
            return;
        }
        if inner.items.len() >= MAX_ITEMS || inner.bytes + text.len() > MAX_BYTES {
            inner.drop_count(&item.function_id, "BUFFER_FULL", 1);
            return;
        }
        inner.bytes += text.len();
        inner.items.push_back(Pending { function, text, at: Instant::now() });
        let n = inner.items.len();
        drop(inner);
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

    /// `localinvocationstats` for the window since the last one, when anything is non-zero.
    fn send_stats(&self, conn: &Connection) {
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
            return;
        }
        let message = iii_protocol::ObserveMessage::LocalInvocationStats {
            window_ms,
            functions,
            dropped_reports: dropped,
        };
        conn.send_observe_frame(iii_protocol::Message::Observe(Box::new(message)).encode());
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

fn frame(items: &[String]) -> String {
    let mut out = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 48);
    out.push_str(r#"{"type":"invocationsobserved","items":["#);
    out.push_str(&items.join(","));
    out.push_str("]}");
    out
}
