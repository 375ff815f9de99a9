//! How results and inbound work reach Python threads without a per-call bridge.
//!
//! NOTE(perf): a generic tokio->asyncio bridge (a `call_soon_threadsafe` per result) costs more
//! per call than the whole call should (benches/RESULTS.md, "Results reach an event loop in
//! batches"). Instead each event loop owns a `LoopQueue`: runtime threads append to it
//! and write one byte to a socketpair only when it goes from empty to non-empty; the loop's
//! reader callback takes the batch in one call (at most `SETTLE_PER_TAKE` answers of it, the
//! rest on the next iteration). Sync handlers pull jobs from a
//! `JobQueue` on threads the SDK owns, waiting with the GIL released.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;

use super::batch::Batch;
use super::errors;
use super::events::Binding;
use super::json::from_json_opt;
use iii_core::connection::{Connection as CoreConnection, ConnectionState, LogLevel};
use iii_core::invocations::{Completion, Outcome};
use iii_protocol::InvokeFunction;
use uuid::Uuid;

/// Work for an event loop, converted to Python objects only on that loop's thread.
pub(crate) enum Item {
    Done {
        future: Py<PyAny>,
        outcome: Outcome,
        invocation_id: Uuid,
    },
    /// Every call of a `trigger_many_async` batch ended: resolve its future with the list.
    BatchDone(Py<PyAny>, Arc<Batch>),
    /// A local sync handler's outcome for the asyncio future its caller awaits.
    Settle(Py<PyAny>, PyResult<Py<PyAny>>),
    Invoke(InvokeFunction, Arc<Py<PyAny>>),
    Binding(Binding),
    State(ConnectionState),
    Log(LogLevel, String),
    /// Sync handlers are stuck and every handler thread is busy: start one more.
    ThreadWanted,
    /// News of one of this worker's observers.
    Observer(iii_core::observe::ObserverNews),
    /// An owner hook to run.
    Hook(iii_core::observe::HookRequest),
}

/// Calls resolved per `take`; the rest wait for the loop's next iteration.
/// NOTE(perf): the tasks woken by one batch all run in the next iteration, and on CPython 3.11
/// each `asyncio.Semaphore.release` among them scans the waiters woken before it in that
/// iteration, so a batch of n costs a semaphore-bounded fan-out n^2/2 scans. A fan-out whose
/// tasks spend 20 us on each result: 18.8k -> 24.5k calls/s (benches/RESULTS.md, "Answers are
/// resolved 32 at a time").
const SETTLE_PER_TAKE: usize = 32;

pub(crate) struct LoopQueueInner {
    items: Mutex<Vec<Item>>,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    /// Set while the loop's own thread reads its link: it takes the queue right after, so
    /// pushes need no wake-up.
    pub(crate) owner_pumping: AtomicBool,
    /// A wake-up byte may be waiting in the socket: only then does `take` read it.
    woken: AtomicBool,
}

impl LoopQueueInner {
    pub(crate) fn new() -> PyResult<Arc<Self>> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Arc::new(LoopQueueInner {
            items: Mutex::new(Vec::new()),
            wake_tx,
            wake_rx,
            owner_pumping: AtomicBool::new(false),
            woken: AtomicBool::new(false),
        }))
    }

    pub(crate) fn push(&self, item: Item) {
        let was_empty = {
            let mut items = self.items.lock();
            let was_empty = items.is_empty();
            items.push(item);
            was_empty
        };
        if was_empty && !self.owner_pumping.load(Ordering::Acquire) {
            self.wake();
        }
    }

    /// Makes the loop's reader callback run. A full socket buffer means a wake-up is already
    /// pending. The flag is set after the byte is written: a take that misses it leaves the
    /// byte for the next wake-up.
    fn wake(&self) {
        let _ = (&self.wake_tx).write(&[1]);
        self.woken.store(true, Ordering::Release);
    }

    pub(crate) fn fd(&self) -> i32 {
        self.wake_rx.as_raw_fd()
    }

    /// Everything queued so far; resolves the futures of finished calls on the way and returns
    /// the other items.
    pub(crate) fn take(&self, py: Python<'_>) -> Vec<Item> {
        // Consume wake-ups before taking the batch, so a push racing with us re-arms one.
        // One read normally empties the socket (at most one byte per empty->non-empty edge).
        if self.woken.swap(false, Ordering::AcqRel) {
            let mut sink = [0u8; 256];
            while let Ok(256) = (&self.wake_rx).read(&mut sink) {}
        }
        let items = std::mem::take(&mut *self.items.lock());
        let mut others = Vec::new();
        let mut settled = 0;
        let mut items = items.into_iter();
        while let Some(item) = items.next() {
            match item {
                Item::Done { future, outcome, invocation_id } => {
                    resolve(py, future.bind(py), outcome, &invocation_id)
                }
                Item::BatchDone(future, batch) => batch.resolve(py, future.bind(py)),
                Item::Settle(future, outcome) => settle(py, future.bind(py), outcome),
                other => {
                    others.push(other);
                    continue;
                }
            }
            settled += 1;
            if settled == SETTLE_PER_TAKE && items.len() > 0 {
                self.put_back(items.collect());
                break;
            }
        }
        others
    }

    /// Queues `rest` ahead of anything pushed since, and wakes the loop for it.
    fn put_back(&self, mut rest: Vec<Item>) {
        {
            let mut items = self.items.lock();
            rest.append(&mut items);
            *items = rest;
        }
        self.wake();
    }
}

/// The batch queue of an event loop other than the SDK's own, for the results of
/// `trigger_async` calls made on it (see the module note).
#[pyclass(frozen, module = "iii._iii")]
pub struct LoopQueue {
    pub(crate) inner: Arc<LoopQueueInner>,
}

#[pymethods]
impl LoopQueue {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(Self { inner: LoopQueueInner::new()? })
    }

    /// File descriptor to watch with `loop.add_reader`.
    #[getter]
    fn fd(&self) -> i32 {
        self.inner.fd()
    }

    /// Items waiting to be taken (a diagnostic).
    fn pending(&self) -> usize {
        self.inner.items.lock().len()
    }

    /// Resolves the futures of the calls that finished.
    fn drain(&self, py: Python<'_>) {
        // Only completions are ever pushed to a foreign loop's queue.
        drop(self.inner.take(py));
    }
}

/// A call's outcome as its value or its exception, which names the call's `function_id` (when
/// given) and `invocation_id`.
pub(crate) fn outcome_to_py(
    py: Python<'_>,
    outcome: Outcome,
    function_id: Option<&str>,
    invocation_id: &Uuid,
) -> PyResult<Py<PyAny>> {
    match outcome {
        Ok(value) => Ok(from_json_opt(py, value.as_deref().map(|v| v.get()))?.unbind()),
        Err(err) => Err(errors::call_error_for(py, &err, function_id, Some(invocation_id))),
    }
}

/// A future whose awaiting task was cancelled is already done; its late outcome is dropped.
fn is_done(py: Python<'_>, future: &Bound<'_, PyAny>) -> bool {
    future.call_method0(pyo3::intern!(py, "done")).and_then(|d| d.is_truthy()).unwrap_or(true)
}

fn resolve(py: Python<'_>, future: &Bound<'_, PyAny>, outcome: Outcome, invocation_id: &Uuid) {
    if !is_done(py, future) {
        set(py, future, outcome_to_py(py, outcome, None, invocation_id));
    }
}

fn settle(py: Python<'_>, future: &Bound<'_, PyAny>, outcome: PyResult<Py<PyAny>>) {
    if !is_done(py, future) {
        set(py, future, outcome);
    }
}

fn set(py: Python<'_>, future: &Bound<'_, PyAny>, outcome: PyResult<Py<PyAny>>) {
    let _ = match outcome {
        Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,)),
        Err(err) => future.call_method1(pyo3::intern!(py, "set_exception"), (err.into_value(py),)),
    };
}

/// Delivers a call's outcome to an asyncio future through its loop's queue.
pub(crate) struct AsyncCompletion {
    pub future: Py<PyAny>,
    pub queue: Arc<LoopQueueInner>,
    /// The call's id on the wire, for its error (`InvocationError.invocation_id`).
    pub invocation_id: Uuid,
}

impl Completion for AsyncCompletion {
    fn complete(self: Box<Self>, outcome: Outcome) {
        let AsyncCompletion { future, queue, invocation_id } = *self;
        queue.push(Item::Done { future, outcome, invocation_id });
    }
}

struct JobState {
    jobs: VecDeque<(InvokeFunction, Arc<Py<PyAny>>)>,
    idle: usize,
    /// Idle threads already notified that have not woken yet: a burst of pushes must not count
    /// on one of them twice (the later jobs would wait, with no watchdog, behind a slow handler).
    waking: usize,
    threads: usize,
    /// At most this many threads: `max_threads`, lowered when a thread could not start.
    cap: usize,
    closed: bool,
    /// When a thread last took a job: a queue that has not moved for `STALL` has its
    /// threads stuck in slow handlers.
    last_take: Instant,
    watchdog_armed: bool,
}

/// Invocations of synchronous handlers, for threads the SDK owns.
///
/// NOTE(perf): waking a thread for every job would make the sync-handler threads take turns on
/// the GIL for each call (a futex wake-up and a GIL hand-off per call), and growing the pool
/// whenever no thread is idle spends the serving process's time starting threads. So a thread
/// that finishes a job takes the next one without letting go of the GIL; a waiting thread is
/// woken only when no thread is busy or the busy ones have not taken a job for `STALL` (a slow
/// handler), and the SDK loop is asked for one more thread only when that happens with none
/// waiting (benches/RESULTS.md, "Sync-handler threads keep the GIL between jobs").
///
/// Answers a thread gives while more jobs are queued are held back (`Writer::defer`), so a
/// burst goes out in a few writes: they go out when a thread takes the last queued job or runs
/// out of jobs, and the watchdog writes them every `STALL` while jobs wait, so a slow handler
/// taken next delays them by at most that (benches/RESULTS.md, "Sync handlers' answers go out
/// together").
pub(crate) struct JobQueue {
    state: Mutex<JobState>,
    ready: Condvar,
    /// Where requests for more threads go (the SDK loop starts them).
    loop_queue: Arc<LoopQueueInner>,
}

/// How long queued jobs may wait behind busy threads before another thread runs (here and in
/// `handoff`'s pool).
pub(crate) const STALL: Duration = Duration::from_millis(2);

/// An invocation and the handler object that runs it.
pub(crate) type Job = (InvokeFunction, Arc<Py<PyAny>>);

impl JobQueue {
    pub(crate) fn new(max_threads: usize, loop_queue: Arc<LoopQueueInner>) -> Arc<Self> {
        Arc::new(JobQueue {
            state: Mutex::new(JobState {
                jobs: VecDeque::new(),
                idle: 0,
                waking: 0,
                threads: 0,
                cap: max_threads.max(1),
                closed: false,
                last_take: Instant::now(),
                watchdog_armed: false,
            }),
            ready: Condvar::new(),
            loop_queue,
        })
    }

    pub(crate) fn push(
        self: &Arc<Self>,
        call: InvokeFunction,
        handler: Arc<Py<PyAny>>,
        conn: &CoreConnection,
    ) {
        let mut s = self.state.lock();
        s.jobs.push_back((call, handler));
        let busy = s.threads - s.idle;
        if s.idle > s.waking && (busy == 0 || s.last_take.elapsed() >= STALL) {
            s.waking += 1;
            self.ready.notify_one();
        } else if !s.watchdog_armed {
            s.watchdog_armed = true;
            let (queue, conn) = (self.clone(), conn.clone());
            super::runtime::handle().spawn(async move { queue.watch(conn).await });
        }
    }

    /// Jobs queued (a thread answering while there are some takes one next).
    pub(crate) fn waiting(&self) -> usize {
        self.state.lock().jobs.len()
    }

    /// Whenever the queue stalls, wakes a waiting thread or asks for a new one, until the
    /// queue is empty; writes the answers held back meanwhile (see the type's note).
    async fn watch(&self, conn: CoreConnection) {
        loop {
            tokio::time::sleep(STALL).await;
            conn.flush_deferred();
            let mut s = self.state.lock();
            if s.jobs.is_empty() || s.closed {
                s.watchdog_armed = false;
                return;
            }
            if s.last_take.elapsed() < STALL {
                continue;
            }
            if s.idle > s.waking {
                s.waking += 1;
                self.ready.notify_one();
            } else if s.threads < s.cap {
                s.threads += 1;
                drop(s);
                self.loop_queue.push(Item::ThreadWanted);
            }
        }
    }

    /// Claims a slot for a new handler thread; false when the pool is full or closed.
    pub(crate) fn reserve_thread(&self) -> bool {
        let mut s = self.state.lock();
        if s.closed || s.threads >= s.cap {
            return false;
        }
        s.threads += 1;
        true
    }

    /// Gives back a reserved slot whose thread could not start; the pool stops growing there
    /// (an interpreter that refused one thread refuses the next).
    pub(crate) fn thread_not_started(&self) {
        let mut s = self.state.lock();
        s.threads -= 1;
        s.cap = s.threads;
    }

    /// The next job, and whether it was the last one queued.
    fn take(&self, s: &mut JobState) -> Option<(Job, bool)> {
        let job = s.jobs.pop_front()?;
        s.last_take = Instant::now();
        Some((job, s.jobs.is_empty()))
    }

    /// The next job if one is queued, without waiting, and whether it was the last one.
    pub(crate) fn try_next(&self) -> Option<(Job, bool)> {
        let mut s = self.state.lock();
        if s.closed {
            return None;
        }
        self.take(&mut s)
    }

    /// Waits for the next job (and whether it was the last one queued); `None` once the queue
    /// is closed (the thread then ends).
    pub(crate) fn next(&self) -> Option<(Job, bool)> {
        let mut s = self.state.lock();
        loop {
            if s.closed {
                s.threads = s.threads.saturating_sub(1);
                return None;
            }
            if let Some(job) = self.take(&mut s) {
                return Some(job);
            }
            s.idle += 1;
            self.ready.wait(&mut s);
            s.idle -= 1;
            s.waking = s.waking.saturating_sub(1); // parking_lot has no spurious wake-ups
        }
    }

    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }
}
