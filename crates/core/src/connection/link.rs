//! One live connection: its socket, writer and frame reader, and who reads it.
//!
//! NOTE(perf): a reader task on the runtime costs two thread wake-ups per inbound frame (the
//! runtime thread, then the Python thread it hands the frame to), and those context switches
//! dominate a sequential round trip (benches/RESULTS.md, "The SDK loop reads the link
//! itself"). So the Python SDK attaches its own event loop as the reader (`ExternalReader`):
//! the loop watches the socket and `pump`s frames inline. The runtime task then polls every few
//! milliseconds while calls are pending or data frames flow, in case the loop is busy (a
//! blocked loop must not stop results reaching `trigger()` callers on other threads), and
//! sleeps otherwise until a call is made. With nobody attached, the runtime task reads on
//! readiness as usual.
//!
//! NOTE(perf): an idle worker should not wake up, so while idle the runtime does not poll: it
//! wakes only for keepalive and the idle check (every `idle_timeout / 4`) or when a call is
//! made (benches/RESULTS.md, "The runtime reader sleeps while idle").

use std::net::{Shutdown, TcpStream as StdStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::Interest;
use tokio::sync::Notify;

use super::frame_codec::{FrameReader, Incoming};
use super::handshake::Opened;
use super::writer::{self, Writer};

/// How often the runtime reads a link whose owner attached an external reader, if that reader
/// has not read it meanwhile.
const FALLBACK_POLL: Duration = Duration::from_millis(5);
/// Frames handled per `pump` before returning, so one busy link cannot starve an event loop.
/// NOTE(perf): small, because a fan-out bounded by an `asyncio.Semaphore` pays for large
/// batches: Python wakes the next waiter by scanning past those already woken in the same loop
/// iteration, a cost that grows with the square of the results handed over per iteration
/// (`benches/python/batch_size.py`; benches/RESULTS.md, "At most 64 frames per pump").
const PUMP_BUDGET: usize = 64;
/// The runtime keeps polling an externally read link this long after the last data frame.
const ACTIVE_WINDOW_MS: u64 = 100;

/// Why a link ended.
pub(super) enum End {
    Lost(String),
    /// The engine refused this worker: reconnecting would only be refused again.
    Fatal(String),
    Shutdown,
}

pub(super) enum Pumped {
    /// The socket has nothing more for now.
    Drained,
    /// Another thread is reading.
    Busy,
    /// The budget ran out with data left.
    More,
    Ended,
}

pub struct Link {
    pub(super) stream: Arc<StdStream>,
    pub(super) writer: Arc<Writer>,
    reader: Mutex<FrameReader>,
    ended: Mutex<Option<End>>,
    pub(super) ended_notify: Notify,
    started: Instant,
    last_frame_ms: AtomicU64,
    /// Last text or binary frame: control frames (keepalive) do not count as traffic.
    last_data_ms: AtomicU64,
    last_pump_ms: AtomicU64,
    /// Blocking callers reading this socket (see `blocking`): the fallback leaves it to them.
    pub(super) callers_reading: AtomicUsize,
    external: AtomicBool,
    external_changed: Notify,
    /// The runtime reader sleeps until `activity` (see `note_call`).
    idle_waiting: AtomicBool,
    activity: Notify,
}

impl Link {
    pub(super) fn new(opened: Opened, max_message_size: usize) -> Arc<Link> {
        let Opened { stream, tls, leftover } = opened;
        let stream = Arc::new(stream);
        Arc::new(Link {
            writer: Writer::new(stream.clone(), tls),
            stream,
            reader: Mutex::new(FrameReader::new(max_message_size, leftover)),
            ended: Mutex::new(None),
            ended_notify: Notify::new(),
            started: Instant::now(),
            last_frame_ms: AtomicU64::new(0),
            last_data_ms: AtomicU64::new(0),
            last_pump_ms: AtomicU64::new(0),
            callers_reading: AtomicUsize::new(0),
            external: AtomicBool::new(false),
            external_changed: Notify::new(),
            idle_waiting: AtomicBool::new(false),
            activity: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records why the link ended (the first reason wins) and wakes the lifecycle task.
    pub(super) fn end(&self, end: End) {
        {
            let mut ended = self.ended.lock();
            if ended.is_some() {
                return;
            }
            *ended = Some(end);
        }
        self.writer.close("the connection was closed");
        // Readers attached to the socket see end-of-stream and let go of it.
        let _ = self.stream.shutdown(Shutdown::Both);
        self.ended_notify.notify_one();
    }

    pub(super) fn take_end(&self) -> Option<End> {
        self.ended.lock().take()
    }

    pub fn is_ended(&self) -> bool {
        self.ended.lock().is_some() || self.writer.is_closed()
    }

    /// Reads what the socket has and hands each message to `handle`, without blocking. Returns
    /// at once if another thread is reading (`Busy`).
    pub(super) fn pump(&self, mut handle: impl FnMut(Incoming) -> Option<End>) -> Pumped {
        let Some(mut reader) = self.reader.try_lock() else {
            return if self.is_ended() { Pumped::Ended } else { Pumped::Busy };
        };
        if self.is_ended() {
            return Pumped::Ended;
        }
        self.last_pump_ms.store(self.now_ms(), Ordering::Relaxed);
        let mut handled = 0;
        let mut data = false;
        let result = loop {
            match reader.parse() {
                Ok(Some(incoming)) => {
                    handled += 1;
                    data |= matches!(incoming, Incoming::Text(_) | Incoming::Binary(_));
                    if let Some(end) = handle(incoming) {
                        drop(reader);
                        self.end(end);
                        return Pumped::Ended;
                    }
                }
                // Stops where the socket's readiness brings the reader back.
                Ok(None) if handled >= PUMP_BUDGET && !self.writer.input_buffered() => break Pumped::More,
                Ok(None) => match reader.fill(self.writer.received()) {
                    Ok(0) => {
                        drop(reader);
                        self.end(End::Lost("the engine closed the connection without a close frame".into()));
                        return Pumped::Ended;
                    }
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Pumped::Drained,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        drop(reader);
                        self.end(End::Lost(e.to_string()));
                        return Pumped::Ended;
                    }
                },
                Err(e) => {
                    drop(reader);
                    self.end(End::Lost(e));
                    return Pumped::Ended;
                }
            }
        };
        if handled > 0 {
            let now = self.now_ms();
            self.last_frame_ms.store(now, Ordering::Relaxed);
            if data {
                self.last_data_ms.store(now, Ordering::Relaxed);
            }
        }
        result
    }

    /// A call was sent on this link: a sleeping runtime reader starts polling again.
    pub(super) fn note_call(&self) {
        // Pairs with the fence in `read`: either the reader sees the pending call or we see it
        // waiting (and a notification before it waits is kept as a permit).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.idle_waiting.load(Ordering::Relaxed) {
            self.activity.notify_one();
        }
    }

    /// The runtime's reader: on readiness, or, while an external reader is attached, polling
    /// as long as `calls_pending()` or data flows. Also ends the link when no frame arrived for
    /// `idle`.
    pub(super) async fn read(
        &self,
        idle: Duration,
        calls_pending: impl Fn() -> bool,
        mut handle: impl FnMut(Incoming) -> Option<End>,
    ) {
        let idle_ms = idle.as_millis() as u64;
        let silent_too_long =
            || self.now_ms().saturating_sub(self.last_frame_ms.load(Ordering::Relaxed)) > idle_ms;
        let quiet = || {
            self.now_ms().saturating_sub(self.last_data_ms.load(Ordering::Relaxed)) > ACTIVE_WINDOW_MS
                && !calls_pending()
        };
        loop {
            if self.is_ended() {
                return;
            }
            if self.external.load(Ordering::Acquire) && quiet() {
                self.idle_waiting.store(true, Ordering::Relaxed);
                std::sync::atomic::fence(Ordering::SeqCst);
                if quiet() {
                    tokio::select! {
                        _ = self.activity.notified() => {}
                        _ = self.external_changed.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(idle_ms.max(1) / 4 + 1)) => {}
                    }
                }
                self.idle_waiting.store(false, Ordering::Relaxed);
            } else if self.external.load(Ordering::Acquire) {
                tokio::select! {
                    _ = tokio::time::sleep(FALLBACK_POLL) => {}
                    _ = self.external_changed.notified() => continue,
                }
                let since_pump = self.now_ms().saturating_sub(self.last_pump_ms.load(Ordering::Relaxed));
                let caller_reads = self.callers_reading.load(Ordering::SeqCst) > 0;
                if since_pump >= FALLBACK_POLL.as_millis() as u64 && !caller_reads {
                    if let Pumped::Ended = self.pump(&mut handle) {
                        return;
                    }
                }
            } else {
                let Ok(fd) = writer::watch(&self.stream, Interest::READABLE) else {
                    self.end(End::Lost("cannot watch the socket".into()));
                    return;
                };
                // Frames may already be buffered (they can arrive with the handshake response).
                if let Pumped::Ended = self.pump(&mut handle) {
                    return;
                }
                loop {
                    let deadline = tokio::time::sleep(Duration::from_millis(idle_ms.max(1) / 4 + 1));
                    tokio::select! {
                        ready = fd.readable() => {
                            let Ok(mut ready) = ready else { break };
                            match self.pump(&mut handle) {
                                Pumped::Drained | Pumped::Busy => ready.clear_ready(),
                                Pumped::More => {}
                                Pumped::Ended => return,
                            }
                        }
                        _ = deadline => {}
                        _ = self.external_changed.notified() => break,
                    }
                    if silent_too_long() {
                        break;
                    }
                }
            }
            if silent_too_long() {
                self.end(End::Lost(format!("no frame from the engine for {idle_ms} ms")));
                return;
            }
        }
    }

    fn set_external(&self, on: bool) {
        self.external.store(on, Ordering::Release);
        self.external_changed.notify_one();
    }
}

/// An event loop's hold on a live link: watch `fd()` for readability and call `pump`.
/// Dropping it gives reading back to the runtime.
pub struct ExternalReader {
    pub(super) link: Arc<Link>,
    pub(super) handle: Box<dyn FnMut(Incoming) -> Option<End> + Send>,
}

impl ExternalReader {
    pub(super) fn new(link: Arc<Link>, handle: Box<dyn FnMut(Incoming) -> Option<End> + Send>) -> Self {
        link.set_external(true);
        Self { link, handle }
    }

    pub fn fd(&self) -> RawFd {
        self.link.stream.as_raw_fd()
    }

    /// Reads and handles what has arrived. False once the link has ended: stop watching then.
    pub fn pump(&mut self) -> bool {
        !matches!(self.link.pump(&mut self.handle), Pumped::Ended)
    }
}

impl Drop for ExternalReader {
    fn drop(&mut self) {
        self.link.set_external(false);
    }
}
