//! Threads for locally dispatched sync handlers (docs/protocol.md C.16): the caller hands a job
//! to a thread of the pool and waits for it with a timeout, so a handler that overruns its call's
//! timeout keeps running on its own thread while the caller gets the timeout error.
//!
//! NOTE(perf): a hand-off through `concurrent.futures` costs 87 us per call, twenty times the
//! whole local call (benches/RESULTS.md, "A sync local handler on a thread of its own"). Here
//! both sides wait with the GIL released and spin briefly before they park: the caller releases
//! the GIL before it publishes the job, so a spinning thread takes an uncontended GIL at once,
//! and the thread publishes the result after releasing it, so the caller does the same.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::prelude::*;

use super::queues::{Item, LoopQueue, LoopQueueInner, STALL};

/// How long a thread that finished a job looks for the next one before it parks, and how long
/// a caller looks for its result before it parks.
const SPIN: Duration = Duration::from_micros(20);
/// A thread with nothing to do for this long ends.
const IDLE_EXIT: Duration = Duration::from_secs(30);
/// A waiting caller checks for signals (Ctrl-C) this often.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Polls `ready` until it says so or `SPIN` has passed.
fn spin(mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + SPIN;
    let mut round = 0u32;
    while !ready() {
        round = round.wrapping_add(1);
        if round.is_multiple_of(64) && Instant::now() >= until {
            return;
        }
        std::hint::spin_loop();
    }
}

/// The outcome of a job nobody waits for on a thread: to its asyncio future, else (an exception)
/// to `sys.unraisablehook`.
fn deliver(py: Python<'_>, future: Option<Awaited>, outcome: PyResult<Py<PyAny>>) {
    match future {
        Some(Awaited { future, queue, timer }) => {
            if let Some(timer) = timer {
                timer.abort();
            }
            queue.push(Item::Settle(future, outcome))
        }
        None => {
            if let Err(err) = outcome {
                err.write_unraisable(py, None);
            }
        }
    }
}

/// Where a job's outcome goes when someone waits for it.
struct Waiter {
    done: AtomicBool,
    outcome: Mutex<Option<PyResult<Py<PyAny>>>>,
    caller: Thread,
}

struct Job {
    /// Tells this job from the others when a thread for it could not be started.
    seq: u64,
    callable: Py<PyAny>,
    waiter: Option<Arc<Waiter>>,
    future: Option<Awaited>,
}

/// The asyncio future a `trigger_async` caller awaits for a job's outcome, its loop's queue, and
/// the timer that settles it when the call times out first.
struct Awaited {
    future: Py<PyAny>,
    queue: Arc<LoopQueueInner>,
    timer: Option<tokio::task::AbortHandle>,
}

struct State {
    jobs: VecDeque<Job>,
    /// Threads parked for a job; a push unparks one of them (and takes it off).
    parked: Vec<Thread>,
    /// Threads looking for a job without parking, or started and not yet looking.
    spinning: usize,
    threads: usize,
    /// When a thread last took a job: jobs that have not moved for `STALL` wait behind slow ones.
    last_take: Instant,
    watchdog_armed: bool,
    /// The interpreter is exiting: a thread that ran out of work must not take the GIL again
    /// (once it finalises, taking it ends the thread with `pthread_exit`, unwinding through
    /// Rust frames), so it stays parked until the process ends.
    exiting: bool,
}

struct Shared {
    state: Mutex<State>,
    /// `jobs.len()`, read by spinning threads without the lock.
    queued: AtomicUsize,
    seq: AtomicU64,
    max_threads: usize,
    /// `_thread.start_new_thread`: a C call, so no signal handler can run (and raise) between
    /// starting a thread and knowing that it started, as one can in `threading.Thread.start`.
    start_new_thread: Py<PyAny>,
    names: AtomicUsize,
    /// The pool object, for the watchdog to start threads (weak: the pool owns this).
    pool: std::sync::OnceLock<Py<pyo3::types::PyWeakrefReference>>,
}

/// The pool of threads that run locally dispatched sync handlers.
#[pyclass(frozen, weakref, module = "iii._iii")]
pub struct HandlerThreads {
    shared: Arc<Shared>,
}

/// How `run` ended: the job's value, the job's exception, or the timeout (the job goes on).
const DONE: u8 = 0;
const RAISED: u8 = 1;
const TIMED_OUT: u8 = 2;

impl Shared {
    fn job(&self, callable: Py<PyAny>, waiter: Option<Arc<Waiter>>) -> Job {
        Job { seq: self.seq.fetch_add(1, Ordering::Relaxed), callable, waiter, future: None }
    }

    /// Queues a job; true when a new thread must be started for it (already counted). A job
    /// someone waits for always gets a thread: its caller may be a pool thread itself (a nested
    /// call), so a bound could leave every thread waiting for a job none of them can take.
    ///
    /// NOTE(perf): jobs nobody waits for on a thread (void calls, `trigger_async` callers) come
    /// in bursts, and a thread woken per job made the pool's threads take turns on the GIL for
    /// every job. So while a thread is busy and took a job within `STALL`, such a job waits for
    /// it (it takes the next one without letting go of the GIL), and a watchdog adds a thread
    /// only when the queue stalls; a `trigger_async` caller's outcome goes through its loop's
    /// batch queue (`submit`). A fan-out of `trigger_async` to a sync handler: 8.6k calls/s
    /// before, 21k after (benches/RESULTS.md, "A sync local handler on a thread of its own").
    fn push(self: &Arc<Self>, job: Job) -> bool {
        let bounded = job.waiter.is_none();
        let mut s = self.state.lock();
        s.jobs.push_back(job);
        self.queued.store(s.jobs.len(), Ordering::Release);
        if s.spinning >= s.jobs.len() {
            return false;
        }
        let busy = s.threads.saturating_sub(s.spinning + s.parked.len());
        if bounded && busy > 0 && s.last_take.elapsed() < STALL {
            self.arm_watchdog(&mut s);
            return false;
        }
        self.add_thread(&mut s, bounded)
    }

    /// Wakes a parked thread, or counts a new one to start (true).
    fn add_thread(&self, s: &mut State, bounded: bool) -> bool {
        if let Some(thread) = s.parked.pop() {
            thread.unpark();
            return false;
        }
        if !bounded || s.threads < self.max_threads {
            s.threads += 1;
            s.spinning += 1;
            return true;
        }
        false // every thread is busy: the job waits for the first one free
    }

    fn arm_watchdog(self: &Arc<Self>, s: &mut State) {
        if s.watchdog_armed {
            return;
        }
        s.watchdog_armed = true;
        let shared = self.clone();
        super::runtime::handle().spawn(async move { shared.watch().await });
    }

    /// While jobs wait, gives them one more thread whenever the queue has not moved for `STALL`.
    async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(STALL).await;
            let start = {
                let mut s = self.state.lock();
                if s.jobs.is_empty() || s.exiting {
                    s.watchdog_armed = false;
                    return;
                }
                if s.last_take.elapsed() < STALL || s.spinning >= s.jobs.len() {
                    continue;
                }
                self.add_thread(&mut s, true)
            };
            if start {
                let started = Python::attach(|py| {
                    let pool = self.pool.get()?.bind(py).upgrade()?;
                    let pool = pool.cast_into::<HandlerThreads>().ok()?;
                    Some(HandlerThreads::start_thread(&pool).is_ok())
                });
                if started != Some(true) {
                    self.unstart();
                }
            }
        }
    }

    /// The next job at once, for a thread that still holds the GIL after one nobody waited for.
    fn take_now(&self) -> Option<Job> {
        self.pop(&mut self.state.lock())
    }

    fn pop(&self, s: &mut State) -> Option<Job> {
        let job = s.jobs.pop_front();
        self.queued.store(s.jobs.len(), Ordering::Release);
        if job.is_some() {
            s.last_take = Instant::now();
        }
        job
    }

    /// The next job for a thread that just finished one (or just started); `None` when the
    /// thread should end. Called without the GIL.
    fn next_job(&self, me: &Thread) -> Option<Job> {
        let mut job = None;
        spin(|| {
            if self.queued.load(Ordering::Acquire) > 0 {
                let mut s = self.state.lock();
                job = self.pop(&mut s);
                if job.is_some() {
                    s.spinning -= 1;
                }
            }
            job.is_some()
        });
        if job.is_some() {
            return job;
        }
        let idle_until = Instant::now() + IDLE_EXIT;
        let mut s = self.state.lock();
        s.spinning -= 1;
        loop {
            if let Some(job) = self.pop(&mut s) {
                s.parked.retain(|t| t.id() != me.id());
                return Some(job);
            }
            let now = Instant::now();
            if s.exiting {
                s.parked.retain(|t| t.id() != me.id());
                s.threads -= 1;
                drop(s);
                loop {
                    std::thread::park();
                }
            }
            if now >= idle_until {
                s.parked.retain(|t| t.id() != me.id());
                s.threads -= 1;
                return None;
            }
            if !s.parked.iter().any(|t| t.id() == me.id()) {
                s.parked.push(me.clone());
            }
            drop(s);
            std::thread::park_timeout(idle_until - now);
            s = self.state.lock();
        }
    }

    /// Undoes the count of a thread that could not be started.
    fn unstart(&self) {
        let mut s = self.state.lock();
        s.threads -= 1;
        s.spinning -= 1;
    }
}

impl Waiter {
    fn finish(&self, outcome: PyResult<Py<PyAny>>) {
        *self.outcome.lock() = Some(outcome);
        self.done.store(true, Ordering::Release);
        self.caller.unpark();
    }

    /// Waits for the outcome until `until` (spinning first on the `first` wait); true when it
    /// came. Called without the GIL.
    fn wait(&self, until: Instant, first: bool) -> bool {
        if first {
            spin(|| self.done.load(Ordering::Acquire));
        }
        loop {
            if self.done.load(Ordering::Acquire) {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            std::thread::park_timeout(until - now);
        }
    }
}

#[pymethods]
impl HandlerThreads {
    /// `start_new_thread(fn, args)` starts a thread (`_thread.start_new_thread` unless given).
    #[new]
    #[pyo3(signature = (max_threads, start_new_thread=None))]
    fn new(py: Python<'_>, max_threads: usize, start_new_thread: Option<Py<PyAny>>) -> PyResult<Self> {
        let start_new_thread = match start_new_thread {
            Some(start) => start,
            None => py.import("_thread")?.getattr("start_new_thread")?.unbind(),
        };
        Ok(HandlerThreads {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    jobs: VecDeque::new(),
                    parked: Vec::new(),
                    spinning: 0,
                    threads: 0,
                    exiting: false,
                    last_take: Instant::now(),
                    watchdog_armed: false,
                }),
                queued: AtomicUsize::new(0),
                seq: AtomicU64::new(0),
                max_threads: max_threads.max(1),
                start_new_thread,
                names: AtomicUsize::new(0),
                pool: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Runs `job()` on a thread of the pool and waits up to `timeout_s` for it: `(0, value)`,
    /// `(1, exception)` when the job raised, `(2, None)` when the time ran out (the job goes
    /// on). A signal's exception (Ctrl-C) reaches the caller as itself while the job goes on.
    fn run(slf: &Bound<'_, Self>, job: Py<PyAny>, timeout_s: f64) -> PyResult<(u8, Py<PyAny>)> {
        let py = slf.py();
        let shared = &slf.get().shared;
        let pool = slf.clone().unbind();
        let until = Instant::now() + Duration::from_secs_f64(timeout_s.clamp(0.0, 1e7));
        let waiter = Arc::new(Waiter {
            done: AtomicBool::new(false),
            outcome: Mutex::new(None),
            caller: std::thread::current(),
        });
        let job = shared.job(job, Some(waiter.clone()));
        // Published with the GIL released, so a spinning thread takes an uncontended GIL.
        let mut spin = true;
        let mut job = Some(job);
        loop {
            let slice = until.min(Instant::now() + SIGNAL_CHECK);
            let came = py.detach(|| {
                if let Some(job) = job.take() {
                    let seq = job.seq;
                    if shared.push(job) {
                        Python::attach(|py| Self::start(pool.bind(py), seq));
                    }
                }
                waiter.wait(slice, spin)
            });
            if came {
                break;
            }
            spin = false;
            py.check_signals()?;
            if Instant::now() >= until {
                return Ok((TIMED_OUT, py.None()));
            }
        }
        let outcome = waiter.outcome.lock().take();
        match outcome {
            Some(Ok(value)) => Ok((DONE, value)),
            Some(Err(err)) => Ok((RAISED, err.into_value(py).into_any())),
            None => Ok((TIMED_OUT, py.None())),
        }
    }

    /// Runs `job()` on a thread of the pool; nobody waits for it there. With `future` (an
    /// asyncio future) and `queue` (its loop's), the outcome resolves the future on its loop,
    /// batched with the loop's other completions, or, after `timeout_s`, `timed_out` does (the
    /// job goes on); without, the job's exceptions are its own business (they go to
    /// `sys.unraisablehook`).
    ///
    /// NOTE(perf): the timeout is a runtime timer rather than `asyncio.wait(timeout=)`, whose
    /// waiter future, callbacks and timer handle doubled the caller's cost per call (benches/
    /// RESULTS.md, "A sync local handler on a thread of its own").
    #[pyo3(signature = (job, future=None, queue=None, timeout_s=None, timed_out=None))]
    fn submit(
        slf: &Bound<'_, Self>,
        job: Py<PyAny>,
        future: Option<Py<PyAny>>,
        queue: Option<&Bound<'_, LoopQueue>>,
        timeout_s: Option<f64>,
        timed_out: Option<Py<PyAny>>,
    ) {
        let py = slf.py();
        let shared = &slf.get().shared;
        let mut job = shared.job(job, None);
        if let (Some(future), Some(queue)) = (future, queue) {
            let queue = queue.get().inner.clone();
            let timer = timeout_s.zip(timed_out).map(|(seconds, value)| {
                let (future, queue) = (future.clone_ref(py), queue.clone());
                let after = Duration::from_secs_f64(seconds.clamp(0.0, 1e7));
                super::runtime::handle()
                    .spawn(async move {
                        tokio::time::sleep(after).await;
                        queue.push(Item::Settle(future, Ok(value)));
                    })
                    .abort_handle()
            });
            job.future = Some(Awaited { future, queue, timer });
        }
        let seq = job.seq;
        if shared.push(job) {
            Self::start(slf, seq);
        }
    }

    /// A pool thread's life: runs jobs until it has been idle for `IDLE_EXIT`.
    fn work(&self, py: Python<'_>) {
        let shared = self.shared.clone();
        let name = format!("iii-local-{}", shared.names.fetch_add(1, Ordering::Relaxed) + 1);
        let _ = py
            .import("threading")
            .and_then(|threading| threading.call_method0("current_thread"))
            .and_then(|thread| thread.setattr("name", name));
        let me = std::thread::current();
        let mut next = py.detach(|| shared.next_job(&me));
        while let Some(Job { callable, waiter, future, .. }) = next {
            let outcome = callable.call0(py);
            drop(callable);
            next = match waiter {
                None => {
                    deliver(py, future, outcome);
                    // A burst: the next job without a GIL hand-off (see `push`).
                    shared.take_now().or_else(|| {
                        shared.state.lock().spinning += 1;
                        py.detach(|| shared.next_job(&me))
                    })
                }
                Some(waiter) => {
                    // Counted as looking for work before its caller can queue the next job.
                    shared.state.lock().spinning += 1;
                    py.detach(|| {
                        waiter.finish(outcome);
                        shared.next_job(&me)
                    })
                }
            };
        }
    }

    /// At interpreter exit (an `atexit` hook, which runs before the interpreter finalises):
    /// threads out of work stay parked in Rust instead of returning into Python. Until then an
    /// idle thread ends after `IDLE_EXIT`: shutting a client down does not wake its threads to
    /// end them, as they might still be on their way out when the interpreter finalises.
    fn at_exit(&self) {
        self.shared.state.lock().exiting = true;
    }

    /// Threads alive (busy or idle).
    #[getter]
    fn threads(&self) -> usize {
        self.shared.state.lock().threads
    }
}

impl HandlerThreads {
    /// Starts one pool thread (running `work`).
    fn start_thread(slf: &Bound<'_, Self>) -> PyResult<()> {
        let shared = &slf.get().shared;
        if shared.pool.get().is_none() {
            let _ = shared.pool.set(pyo3::types::PyWeakrefReference::new(slf)?.unbind());
        }
        let work = slf.getattr("work")?;
        shared.start_new_thread.bind(slf.py()).call1((work, ()))?;
        Ok(())
    }

    /// Starts the thread `push` counted; without one (the interpreter is exiting) the queued
    /// job `seq` runs here, unless a thread took it meanwhile.
    fn start(slf: &Bound<'_, Self>, seq: u64) {
        let py = slf.py();
        let this = slf.get();
        if Self::start_thread(slf).is_ok() {
            return;
        }
        this.shared.unstart();
        let job = {
            let mut s = this.shared.state.lock();
            let at = s.jobs.iter().position(|job| job.seq == seq);
            let job = at.and_then(|at| s.jobs.remove(at));
            this.shared.queued.store(s.jobs.len(), Ordering::Release);
            job
        };
        let Some(Job { callable, waiter, future, .. }) = job else { return };
        let outcome = callable.call0(py);
        match waiter {
            Some(waiter) => waiter.finish(outcome),
            None => deliver(py, future, outcome),
        }
    }
}
