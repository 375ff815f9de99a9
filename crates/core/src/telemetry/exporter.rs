//! The exporter: bounded buffers filled from any thread, drained by one background thread
//! that samples the worker gauges, packs records into frames and hands them to a `FrameSink`
//! (the worker's own link). Producers never wait on I/O: a push is a short lock and a
//! `VecDeque` append; when a buffer is full the oldest record goes, and is counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::frame::{FramePacker, Signal};
use super::log::LogRecord;
use super::metrics::{AppMetric, MetricItem, ProcessSampler};
use super::resource::OtelSettings;
use super::span::{Scope, SpanRecord};

/// Where frames go. `send_frame` must not block for long; false means "not now" (the link is
/// down): the exporter keeps the records and tries again at the next flush.
pub trait FrameSink: Send + Sync + 'static {
    fn send_frame(&self, frame: &[u8]) -> bool;
    /// The engine's id for this worker (the `worker.id` of the gauges), once known.
    fn worker_id(&self) -> Option<String> {
        None
    }
}

impl<F: Fn(&[u8]) -> bool + Send + Sync + 'static> FrameSink for F {
    fn send_frame(&self, frame: &[u8]) -> bool {
        self(frame)
    }
}

impl FrameSink for crate::connection::Connection {
    fn send_frame(&self, frame: &[u8]) -> bool {
        self.send_binary(frame).is_ok()
    }

    fn worker_id(&self) -> Option<String> {
        crate::connection::Connection::worker_id(self)
    }
}

/// How often a waiting flush retries while the link is down.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct ExporterConfig {
    pub(crate) max_spans: usize,
    pub(crate) max_logs: usize,
    pub(crate) max_metric_samples: usize,
    pub(crate) max_raw_frames: usize,
    pub(crate) max_frame_bytes: usize,
    /// Spans are flushed this often (and early once `span_batch` wait).
    pub(crate) span_interval: Duration,
    pub(crate) span_batch: usize,
    pub(crate) log_interval: Duration,
    pub(crate) log_batch: usize,
    /// `None`: no worker gauges.
    pub(crate) metrics_interval: Option<Duration>,
}

impl ExporterConfig {
    pub fn from_settings(settings: &OtelSettings) -> ExporterConfig {
        ExporterConfig {
            max_spans: 8192,
            max_logs: 8192,
            max_metric_samples: 64,
            max_raw_frames: 1000,
            // NOTE: 1 MiB frames: well under the engine's 16 MiB frame limit and the 8 MiB
            // fragment size, and one frame holds about 2,000 invocation spans (about 500 B each),
            // so the writer lock a frame holds stays short next to calls on the same link.
            max_frame_bytes: 1 << 20,
            span_interval: settings.spans_flush_interval,
            span_batch: 512,
            log_interval: settings.logs_flush_interval,
            log_batch: settings.logs_batch_size,
            metrics_interval: settings.metrics_enabled.then_some(settings.metrics_export_interval),
        }
    }
}

/// Counters of what was sent and what was lost.
#[derive(Debug, Default)]
pub struct Counters {
    pub spans_dropped: AtomicU64,
    pub logs_dropped: AtomicU64,
    pub metrics_dropped: AtomicU64,
    /// Frames given whole (`push_frame`) dropped because too many waited.
    pub frames_dropped: AtomicU64,
    /// Records larger than a whole frame.
    pub oversize_dropped: AtomicU64,
    pub frames_sent: AtomicU64,
    pub send_failures: AtomicU64,
}

#[derive(Default)]
struct Buffers {
    spans: VecDeque<SpanRecord>,
    logs: VecDeque<LogRecord>,
    metrics: VecDeque<MetricItem>,
    /// Frames given whole, sent as they are.
    frames: VecDeque<Vec<u8>>,
    /// Flush requests made / served, so `flush` waits for its own.
    flush_requested: u64,
    flush_done: u64,
    flush_ok: bool,
    /// While a flush or shutdown waits, failed sends are retried until then.
    retry_until: Option<Instant>,
    shutdown: bool,
    stopped: bool,
}

struct Inner {
    config: ExporterConfig,
    resource_json: Vec<u8>,
    sdk_scope: Scope,
    buffers: Mutex<Buffers>,
    wake: Condvar,
    done: Condvar,
    sink: RwLock<Option<Arc<dyn FrameSink>>>,
    counters: Counters,
    /// f64 bits; `u64::MAX` while unknown.
    event_loop_lag: AtomicU64,
    worker_id: RwLock<Option<String>>,
}

pub struct Exporter {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, max: usize, dropped: &AtomicU64) {
    if queue.len() >= max {
        queue.pop_front();
        dropped.fetch_add(1, Ordering::Relaxed);
    }
    queue.push_back(item);
}

/// Puts records that could not be sent back in front of newer ones, keeping the newest `max`.
fn put_back<T>(queue: &mut VecDeque<T>, mut unsent: VecDeque<T>, max: usize, dropped: &AtomicU64) {
    unsent.append(queue);
    while unsent.len() > max {
        unsent.pop_front();
        dropped.fetch_add(1, Ordering::Relaxed);
    }
    *queue = unsent;
}

impl Exporter {
    pub fn start(settings: &OtelSettings, config: ExporterConfig) -> std::io::Result<Exporter> {
        let inner = Arc::new(Inner {
            config,
            resource_json: settings.resource_json(),
            sdk_scope: Scope {
                name: super::resource::SDK_NAME.into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            buffers: Mutex::new(Buffers { flush_ok: true, ..Default::default() }),
            wake: Condvar::new(),
            done: Condvar::new(),
            sink: RwLock::new(None),
            counters: Counters::default(),
            event_loop_lag: AtomicU64::new(u64::MAX),
            worker_id: RwLock::new(None),
        });
        let worker = inner.clone();
        let thread = std::thread::Builder::new().name("iii-telemetry".into()).spawn(move || worker.run())?;
        Ok(Exporter { inner, thread: Mutex::new(Some(thread)) })
    }

    /// Sets (or replaces) where frames go. Buffered records are sent at the next flush.
    pub fn set_sink(&self, sink: Arc<dyn FrameSink>) {
        *self.inner.sink.write() = Some(sink);
    }

    pub fn set_worker_id(&self, id: Option<String>) {
        *self.inner.worker_id.write() = id;
    }

    pub fn set_event_loop_lag(&self, ms: f64) {
        let bits = if ms.is_finite() && ms >= 0.0 { ms.to_bits() } else { u64::MAX };
        self.inner.event_loop_lag.store(bits, Ordering::Relaxed);
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Records buffered now: (spans, logs, metric samples).
    pub fn buffered(&self) -> (usize, usize, usize) {
        let b = self.inner.buffers.lock();
        (b.spans.len(), b.logs.len(), b.metrics.len())
    }

    pub fn push_span(&self, span: SpanRecord) {
        let inner = &self.inner;
        let mut b = inner.buffers.lock();
        if b.stopped {
            return;
        }
        push_bounded(&mut b.spans, span, inner.config.max_spans, &inner.counters.spans_dropped);
        // The first record arms the exporter's timer; a full batch goes at once.
        if b.spans.len() == 1 || b.spans.len() == inner.config.span_batch {
            inner.wake.notify_one();
        }
    }

    /// Queues one collection of the application's instruments; it goes out with the next
    /// batch of spans or logs (or a flush).
    pub fn push_app_metrics(&self, metrics: Vec<AppMetric>) {
        let inner = &self.inner;
        let mut b = inner.buffers.lock();
        if b.stopped {
            return;
        }
        if b.metrics.is_empty() && !metrics.is_empty() {
            inner.wake.notify_one();
        }
        for metric in metrics {
            let item = MetricItem::App(metric);
            push_bounded(
                &mut b.metrics,
                item,
                inner.config.max_metric_samples,
                &inner.counters.metrics_dropped,
            );
        }
    }

    pub fn push_log(&self, log: LogRecord) {
        let inner = &self.inner;
        let mut b = inner.buffers.lock();
        if b.stopped {
            return;
        }
        push_bounded(&mut b.logs, log, inner.config.max_logs, &inner.counters.logs_dropped);
        if b.logs.len() == 1 || b.logs.len() == inner.config.log_batch {
            inner.wake.notify_one();
        }
    }

    /// Queues a frame built by the caller (a 4-byte prefix such as `OTLP`, then its JSON), sent
    /// as it is, in order, at once; at most `max_raw_frames` wait (the oldest are dropped).
    pub fn push_frame(&self, frame: Vec<u8>) {
        let inner = &self.inner;
        let mut b = inner.buffers.lock();
        if b.stopped {
            return;
        }
        push_bounded(&mut b.frames, frame, inner.config.max_raw_frames, &inner.counters.frames_dropped);
        inner.wake.notify_one();
    }

    /// Sends everything buffered now, waiting at most `timeout`. True when all of it went out.
    pub fn flush(&self, timeout: Duration) -> bool {
        let inner = &self.inner;
        let deadline = Instant::now() + timeout;
        let mut b = inner.buffers.lock();
        if b.stopped {
            return b.spans.is_empty() && b.logs.is_empty() && b.metrics.is_empty() && b.frames.is_empty();
        }
        b.flush_requested += 1;
        b.retry_until = b.retry_until.max(Some(deadline));
        let mine = b.flush_requested;
        inner.wake.notify_one();
        while b.flush_done < mine && !b.stopped {
            if inner.done.wait_until(&mut b, deadline).timed_out() {
                return false;
            }
        }
        b.flush_ok
    }

    /// Flushes within `timeout` and stops the thread. Records still unsent then are dropped.
    /// True when everything buffered went out. Idempotent.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let inner = &self.inner;
        let deadline = Instant::now() + timeout;
        {
            let mut b = inner.buffers.lock();
            b.shutdown = true;
            b.retry_until = b.retry_until.max(Some(deadline));
            inner.wake.notify_one();
            while !b.stopped {
                if inner.done.wait_until(&mut b, deadline).timed_out() {
                    // The sink is stuck: give up on the rest; the thread exits after its send.
                    b.stopped = true;
                    return false;
                }
            }
        }
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
        let b = inner.buffers.lock();
        b.flush_ok
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let mut b = self.inner.buffers.lock();
        b.shutdown = true;
        self.inner.wake.notify_one();
    }
}

impl Inner {
    fn run(self: Arc<Self>) {
        let mut sampler = ProcessSampler::new();
        let now = Instant::now();
        let (mut next_spans, mut next_logs) =
            (now + self.config.span_interval, now + self.config.log_interval);
        let mut next_metrics = self.config.metrics_interval.map(|i| now + i);
        let mut final_sample_taken = false;
        loop {
            let mut b = self.buffers.lock();
            while !b.shutdown
                && b.flush_requested == b.flush_done
                && b.spans.len() < self.config.span_batch
                && b.logs.len() < self.config.log_batch
                && b.frames.is_empty()
            {
                // NOTE(perf): an empty buffer arms no timer (a push into it wakes this thread),
                // so an idle worker's exporter sleeps between gauge samples.
                let mut deadline = next_metrics;
                let mut arm = |due: Instant| deadline = Some(deadline.map_or(due, |d| d.min(due)));
                if !b.spans.is_empty() || !b.metrics.is_empty() {
                    arm(next_spans);
                }
                if !b.logs.is_empty() {
                    arm(next_logs);
                }
                match deadline {
                    Some(due) if Instant::now() >= due => break,
                    Some(due) => {
                        if self.wake.wait_until(&mut b, due).timed_out() {
                            break;
                        }
                    }
                    None => self.wake.wait(&mut b),
                }
            }
            let now = Instant::now();
            let forced = b.shutdown || b.flush_requested != b.flush_done;
            let flush_mark = b.flush_requested;
            let shutdown = b.shutdown;
            let take_spans = forced || now >= next_spans || b.spans.len() >= self.config.span_batch;
            let take_logs = forced || now >= next_logs || b.logs.len() >= self.config.log_batch;
            let spans = if take_spans { std::mem::take(&mut b.spans) } else { VecDeque::new() };
            let logs = if take_logs { std::mem::take(&mut b.logs) } else { VecDeque::new() };
            let frames = std::mem::take(&mut b.frames);
            drop(b);

            let final_sample = shutdown && next_metrics.is_some() && !final_sample_taken;
            final_sample_taken |= final_sample;
            if next_metrics.is_some_and(|m| now >= m) || final_sample {
                self.sample_gauges(&mut sampler);
                next_metrics = self.config.metrics_interval.map(|i| now + i);
            }
            let metrics = std::mem::take(&mut self.buffers.lock().metrics);
            if take_spans {
                next_spans = now + self.config.span_interval;
            }
            if take_logs {
                next_logs = now + self.config.log_interval;
            }

            let sink = self.sink.read().clone();
            let frames_left = self.send_frames(sink.as_deref(), frames);
            let spans_left = self.send_spans(sink.as_deref(), spans);
            let logs_left = self.send_logs(sink.as_deref(), logs);
            let metrics_left = self.send_metrics(sink.as_deref(), metrics);
            let all_sent = frames_left.is_empty()
                && spans_left.is_empty()
                && logs_left.is_empty()
                && metrics_left.is_empty();

            let mut b = self.buffers.lock();
            let c = &self.counters;
            put_back(&mut b.spans, spans_left, self.config.max_spans, &c.spans_dropped);
            put_back(&mut b.logs, logs_left, self.config.max_logs, &c.logs_dropped);
            put_back(&mut b.metrics, metrics_left, self.config.max_metric_samples, &c.metrics_dropped);
            put_back(&mut b.frames, frames_left, self.config.max_raw_frames, &c.frames_dropped);
            let nothing_left = all_sent
                && b.spans.is_empty()
                && b.logs.is_empty()
                && b.metrics.is_empty()
                && b.frames.is_empty();
            if forced && !nothing_left && !b.stopped && b.retry_until.is_some_and(|d| Instant::now() < d) {
                // The link is down while someone waits: try again shortly, within their wait.
                self.wake.wait_for(&mut b, RETRY_PAUSE);
                continue;
            }
            if forced {
                b.retry_until = None;
                b.flush_done = flush_mark;
                b.flush_ok = nothing_left;
            }
            if shutdown {
                b.stopped = true;
            }
            self.done.notify_all();
            if shutdown {
                return;
            }
        }
    }

    fn sample_gauges(&self, sampler: &mut ProcessSampler) {
        let id =
            self.worker_id.read().clone().or_else(|| self.sink.read().as_ref().and_then(|s| s.worker_id()));
        let Some(id) = id else { return };
        let lag = self.event_loop_lag.load(Ordering::Relaxed);
        let gauges = sampler.sample(&id, (lag != u64::MAX).then(|| f64::from_bits(lag)));
        let mut b = self.buffers.lock();
        let item = MetricItem::Worker(gauges);
        push_bounded(&mut b.metrics, item, self.config.max_metric_samples, &self.counters.metrics_dropped);
    }

    /// Packs `items` into frames and sends them in order; returns the items not sent (from
    /// the first frame that failed on).
    fn send_items<T>(
        &self,
        sink: Option<&dyn FrameSink>,
        signal: Signal,
        items: VecDeque<T>,
        scope_of: impl Fn(&T) -> Option<&Scope>,
        encode: impl Fn(&T, &mut Vec<u8>),
    ) -> VecDeque<T> {
        let Some(sink) = sink else { return items };
        if items.is_empty() {
            return items;
        }
        let mut scratch = Vec::new();
        let mut bounds = Vec::with_capacity(items.len());
        for item in &items {
            let start = scratch.len();
            encode(item, &mut scratch);
            bounds.push((start, scratch.len()));
        }
        // Which item each frame starts at, so unsent items can be kept.
        let mut packer = FramePacker::new(signal, &self.resource_json, self.config.max_frame_bytes);
        let mut frame_starts = vec![0];
        for (i, (item, (start, end))) in items.iter().zip(&bounds).enumerate() {
            let before = packer.frames_done();
            if !packer.push(scope_of(item).unwrap_or(&self.sdk_scope), &scratch[*start..*end]) {
                self.counters.oversize_dropped.fetch_add(1, Ordering::Relaxed);
            }
            if packer.frames_done() > before {
                frame_starts.push(i);
            }
        }
        let frames = packer.finish();
        for (n, frame) in frames.iter().enumerate() {
            if sink.send_frame(frame) {
                self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.send_failures.fetch_add(1, Ordering::Relaxed);
                let first_unsent = frame_starts.get(n).copied().unwrap_or(0);
                return items.into_iter().skip(first_unsent).collect();
            }
        }
        VecDeque::new()
    }

    /// Sends whole frames in order; returns those not sent (from the first that failed).
    fn send_frames(&self, sink: Option<&dyn FrameSink>, mut frames: VecDeque<Vec<u8>>) -> VecDeque<Vec<u8>> {
        let Some(sink) = sink else { return frames };
        while let Some(frame) = frames.front() {
            if !sink.send_frame(frame) {
                self.counters.send_failures.fetch_add(1, Ordering::Relaxed);
                break;
            }
            self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
            frames.pop_front();
        }
        frames
    }

    fn send_spans(&self, sink: Option<&dyn FrameSink>, spans: VecDeque<SpanRecord>) -> VecDeque<SpanRecord> {
        self.send_items(sink, Signal::Traces, spans, |s| s.scope.as_deref(), |s, out| s.encode(out))
    }

    fn send_logs(&self, sink: Option<&dyn FrameSink>, logs: VecDeque<LogRecord>) -> VecDeque<LogRecord> {
        self.send_items(sink, Signal::Logs, logs, |_| None, |l, out| l.encode(out))
    }

    fn send_metrics(
        &self,
        sink: Option<&dyn FrameSink>,
        samples: VecDeque<MetricItem>,
    ) -> VecDeque<MetricItem> {
        self.send_items(sink, Signal::Metrics, samples, MetricItem::scope, MetricItem::encode)
    }
}
