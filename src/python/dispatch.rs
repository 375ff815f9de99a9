//! How results and inbound invocations reach Python threads without a per-call bridge.
//!
//! NOTE(perf): a generic tokio->asyncio bridge (a `call_soon_threadsafe` per result) costs
//! 13-36 us per call. Instead each event loop owns a `LoopQueue`: runtime threads append to it
//! and write one byte to a socketpair only when it goes from empty to non-empty; the loop's
//! reader callback drains the whole batch in one call. Sync handlers pull jobs from a
//! `SyncQueue` on threads the SDK owns, waiting with the GIL released.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyList, PyTuple};

use super::errors;
use super::json::{from_json, from_json_opt};
use crate::connection::{ConnectionState, LogLevel};
use crate::invocations::{Completion, Outcome};
use crate::protocol::{InvokeFunction, Message};

pub(crate) enum Item {
    Done { future: Py<PyAny>, outcome: Outcome },
    Invoke(InvokeFunction),
    Message(Message),
    State(ConnectionState),
    Log(LogLevel, String),
}

pub(crate) struct LoopQueueInner {
    items: Mutex<Vec<Item>>,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    /// Set while the loop's own thread reads its link (`LinkReader.pump`): it drains the queue
    /// right after, so pushes need no wake-up.
    pub(crate) owner_pumping: AtomicBool,
    /// A wake-up byte may be waiting in the socket: only then does `drain` read it.
    woken: AtomicBool,
}

impl LoopQueueInner {
    pub(crate) fn push(&self, item: Item) {
        let was_empty = {
            let mut items = self.items.lock();
            let was_empty = items.is_empty();
            items.push(item);
            was_empty
        };
        if was_empty && !self.owner_pumping.load(Ordering::Acquire) {
            // A full socket buffer means a wake-up is already pending. The flag is set after the
            // byte is written: a drain that misses it leaves the byte for the next wake-up.
            let _ = (&self.wake_tx).write(&[1]);
            self.woken.store(true, Ordering::Release);
        }
    }
}

/// A batch queue bound to one asyncio event loop (see the module note).
#[pyclass(frozen, module = "iii._iii")]
pub struct LoopQueue {
    pub(crate) inner: Arc<LoopQueueInner>,
}

pub(crate) fn outcome_to_py(py: Python<'_>, outcome: Outcome) -> PyResult<Py<PyAny>> {
    match outcome {
        Ok(value) => Ok(from_json_opt(py, value.as_deref().map(|v| v.get()))?.unbind()),
        Err(err) => Err(errors::call_error(py, &err)),
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warning",
        LogLevel::Error => "error",
    }
}

pub(crate) fn invocation_tuple<'py>(py: Python<'py>, call: &InvokeFunction) -> PyResult<Bound<'py, PyTuple>> {
    let data = from_json_opt(py, call.data.as_deref().map(|d| d.get()))?;
    let metadata = from_json_opt(py, call.metadata.as_deref().map(|d| d.get()))?;
    // Channel refs are rare: a substring test spares Python a walk over every payload.
    let has_channel_refs = call.data.as_deref().is_some_and(|d| d.get().contains("\"access_key\""));
    PyTuple::new(
        py,
        [
            call.invocation_id.as_deref().into_pyobject(py)?.into_any(),
            call.function_id.as_str().into_pyobject(py)?.into_any(),
            data,
            metadata,
            PyBool::new(py, has_channel_refs).to_owned().into_any(),
        ],
    )
}

#[pymethods]
impl LoopQueue {
    #[new]
    fn new() -> PyResult<Self> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Self {
            inner: Arc::new(LoopQueueInner {
                items: Mutex::new(Vec::new()),
                wake_tx,
                wake_rx,
                owner_pumping: AtomicBool::new(false),
                woken: AtomicBool::new(false),
            }),
        })
    }

    /// File descriptor to watch with `loop.add_reader`.
    #[getter]
    fn fd(&self) -> i32 {
        self.inner.wake_rx.as_raw_fd()
    }

    /// Resolves the futures of finished calls and returns the other items as tuples:
    /// `("i", invocation_id, function_id, data, metadata, has_channel_refs)`, `("m", type, message)`,
    /// `("s", state)`, `("l", level, text)`. Returns None when there is nothing else.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        // Consume wake-ups before taking the batch, so a push racing with us re-arms one.
        // One read normally empties the socket (at most one byte per empty->non-empty edge).
        if self.inner.woken.swap(false, Ordering::AcqRel) {
            let mut sink = [0u8; 256];
            while let Ok(256) = (&self.inner.wake_rx).read(&mut sink) {}
        }
        let items = std::mem::take(&mut *self.inner.items.lock());
        let mut others: Option<Bound<'py, PyList>> = None;
        for item in items {
            let other = match item {
                Item::Done { future, outcome } => {
                    resolve(py, future.bind(py), outcome);
                    continue;
                }
                Item::Invoke(call) => {
                    let t = invocation_tuple(py, &call)?;
                    let mut v = vec![pyo3::intern!(py, "i").clone().into_any()];
                    v.extend(t.iter());
                    PyTuple::new(py, v)?
                }
                Item::Message(message) => {
                    let value = from_json(py, &message.encode())?;
                    PyTuple::new(
                        py,
                        [
                            pyo3::intern!(py, "m").clone().into_any(),
                            message.kind().into_pyobject(py)?.into_any(),
                            value,
                        ],
                    )?
                }
                Item::State(state) => PyTuple::new(py, ["s", state.as_str()])?,
                Item::Log(level, text) => PyTuple::new(py, ["l", level_name(level), text.as_str()])?,
            };
            others.get_or_insert_with(|| PyList::empty(py)).append(other)?;
        }
        Ok(others)
    }
}

fn resolve(py: Python<'_>, future: &Bound<'_, PyAny>, outcome: Outcome) {
    // A future whose awaiting task was cancelled is already done; its late result is dropped.
    if future.call_method0(pyo3::intern!(py, "done")).and_then(|d| d.is_truthy()).unwrap_or(true) {
        return;
    }
    let _ = match outcome_to_py(py, outcome) {
        Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,)),
        Err(err) => future.call_method1(pyo3::intern!(py, "set_exception"), (err.into_value(py),)),
    };
}

/// Delivers a call's outcome to an asyncio future through its loop's queue.
pub(crate) struct AsyncCompletion {
    pub future: Py<PyAny>,
    pub queue: Arc<LoopQueueInner>,
}

impl Completion for AsyncCompletion {
    fn complete(self: Box<Self>, outcome: Outcome) {
        let AsyncCompletion { future, queue } = *self;
        queue.push(Item::Done { future, outcome });
    }
}

/// Delivers a call's outcome to a thread blocked in `trigger()`.
#[derive(Default)]
pub(crate) struct Slot {
    value: Mutex<Option<Outcome>>,
    ready: Condvar,
}

impl Slot {
    pub fn wait(&self, timeout: Duration) -> Option<Outcome> {
        let mut value = self.value.lock();
        if value.is_none() {
            self.ready.wait_for(&mut value, timeout);
        }
        value.take()
    }
}

pub(crate) struct BlockingCompletion(pub Arc<Slot>);

impl Completion for BlockingCompletion {
    fn complete(self: Box<Self>, outcome: Outcome) {
        *self.0.value.lock() = Some(outcome);
        self.0.ready.notify_one();
    }
}

struct SyncState {
    jobs: VecDeque<InvokeFunction>,
    idle: usize,
    threads: usize,
    closed: bool,
}

pub(crate) struct SyncQueueInner {
    state: Mutex<SyncState>,
    ready: Condvar,
    max_threads: usize,
}

impl SyncQueueInner {
    pub(crate) fn push(&self, call: InvokeFunction) {
        self.state.lock().jobs.push_back(call);
        self.ready.notify_one();
    }
}

/// Jobs for synchronous handlers, run on threads the SDK owns.
#[pyclass(frozen, module = "iii._iii")]
pub struct SyncQueue {
    pub(crate) inner: Arc<SyncQueueInner>,
}

#[pymethods]
impl SyncQueue {
    #[new]
    fn new(max_threads: usize) -> Self {
        Self {
            inner: Arc::new(SyncQueueInner {
                state: Mutex::new(SyncState { jobs: VecDeque::new(), idle: 0, threads: 0, closed: false }),
                ready: Condvar::new(),
                max_threads: max_threads.max(1),
            }),
        }
    }

    /// Claims a slot for a new handler thread; False when the pool is full or closed.
    fn reserve_thread(&self) -> bool {
        let mut s = self.inner.state.lock();
        if s.closed || s.threads >= self.inner.max_threads {
            return false;
        }
        s.threads += 1;
        true
    }

    /// Waits (without the GIL) for the next job: `(invocation_id, function_id, data, metadata,
    /// has_channel_refs, start_another_thread)`. Returns None once the queue is closed.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let inner = self.inner.clone();
        let taken = py.detach(move || {
            let mut s = inner.state.lock();
            loop {
                if s.closed {
                    s.threads = s.threads.saturating_sub(1);
                    return None;
                }
                if let Some(job) = s.jobs.pop_front() {
                    // Keep one thread waiting so a new job never queues behind a slow handler.
                    let grow = s.idle == 0 && s.threads < inner.max_threads;
                    if grow {
                        s.threads += 1;
                    }
                    return Some((job, grow));
                }
                s.idle += 1;
                inner.ready.wait(&mut s);
                s.idle -= 1;
            }
        });
        let Some((call, grow)) = taken else {
            return Ok(None);
        };
        let t = invocation_tuple(py, &call)?;
        let mut v: Vec<Bound<'py, PyAny>> = t.iter().collect();
        v.push(PyBool::new(py, grow).to_owned().into_any());
        Ok(Some(PyTuple::new(py, v)?))
    }

    fn close(&self) {
        self.inner.state.lock().closed = true;
        self.inner.ready.notify_all();
    }
}

/// The SDK loop's hold on the live link: it watches `fd` and calls `pump` (see
/// `crate::connection::ExternalReader`).
#[pyclass(frozen, module = "iii._iii")]
pub struct LinkReader {
    pub(crate) reader: Mutex<crate::connection::ExternalReader>,
    pub(crate) queue: Arc<LoopQueueInner>,
    #[pyo3(get)]
    pub(crate) fd: i32,
}

#[pymethods]
impl LinkReader {
    /// Reads and dispatches what has arrived; then drain the loop queue. False once the link
    /// has ended: stop watching `fd` then.
    fn pump(&self) -> bool {
        self.queue.owner_pumping.store(true, Ordering::Release);
        let alive = self.reader.lock().pump();
        self.queue.owner_pumping.store(false, Ordering::Release);
        alive
    }
}
