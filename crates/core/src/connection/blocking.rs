//! A thread that blocks for a call's result reads the link itself while no one else does.
//!
//! NOTE(perf): if only the SDK loop read the link, a sequential `trigger()` would pay two
//! wake-ups in series: the loop's thread for the result frame, then the caller. The caller
//! watches the socket too and reads its own result, so the wake-ups happen side by side (the
//! loop finds the reader busy or nothing to read). Figures: benches/RESULTS.md, "A blocking
//! caller reads its own result".

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::link::{Link, Pumped};
use super::{inbound, Connection};
use crate::invocations::{Completion, Outcome};

/// A socket pair per thread: whoever completes a call wakes the caller's `poll` through it.
struct Wake {
    tx: UnixStream,
    rx: UnixStream,
}

impl Wake {
    fn new() -> Option<Arc<Wake>> {
        let (tx, rx) = UnixStream::pair().ok()?;
        tx.set_nonblocking(true).ok()?;
        rx.set_nonblocking(true).ok()?;
        Some(Arc::new(Wake { tx, rx }))
    }

    fn drain(&self) {
        let mut buf = [0u8; 16];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
    }
}

thread_local! {
    static WAKE: Option<Arc<Wake>> = Wake::new();
}

#[derive(Default)]
struct State {
    outcome: Option<Outcome>,
    /// Set while the waiting thread sleeps in `poll` rather than on the condition variable.
    polling: Option<Arc<Wake>>,
}

/// Where a blocking call's outcome lands.
#[derive(Default)]
pub struct Slot {
    state: Mutex<State>,
    ready: Condvar,
}

impl Slot {
    fn take(&self) -> Option<Outcome> {
        self.state.lock().outcome.take()
    }

    fn wait(&self, timeout: Duration) -> Option<Outcome> {
        let mut state = self.state.lock();
        if state.outcome.is_none() && !timeout.is_zero() {
            self.ready.wait_for(&mut state, timeout);
        }
        state.outcome.take()
    }

    pub(super) fn put(&self, outcome: Outcome) {
        let polling = {
            let mut state = self.state.lock();
            state.outcome = Some(outcome);
            state.polling.clone()
        };
        self.ready.notify_one();
        if let Some(wake) = polling {
            // A full buffer means a wake-up is already pending.
            let _ = (&wake.tx).write(&[1]);
        }
    }
}

/// The `Completion` of a call whose caller waits with [`Connection::wait_result`].
pub struct SlotCompletion(pub Arc<Slot>);

impl Completion for SlotCompletion {
    fn complete(self: Box<Self>, outcome: Outcome) {
        self.0.put(outcome);
    }
}

struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits for `fd` or `wake` to be readable, at most `timeout`. False when interrupted.
fn poll_two(fd: i32, wake: i32, timeout: Duration) -> bool {
    let mut fds = [
        libc::pollfd { fd, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: wake, events: libc::POLLIN, revents: 0 },
    ];
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
    unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) >= 0 }
}

impl Connection {
    /// Waits up to `max` for the outcome in `slot`. While connected, no other thread reads the
    /// link and only blocking callers wait for results, this thread reads it: its own result and anything else that arrives (routed
    /// as usual), sleeping in `poll` on the socket between reads. When another thread is
    /// reading, waits to be handed the outcome. None when `max` passed (or a signal arrived).
    pub fn wait_result(&self, slot: &Slot, max: Duration) -> Option<Outcome> {
        let deadline = Instant::now() + max;
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let waiters = &self.shared.blocking_waiters;
        waiters.fetch_add(1, Ordering::SeqCst);
        let _left = Leave(waiters);
        // Results of other calls (an event loop's) in flight: whoever reads for them reads
        // ours too, and a second reader would only wake with every batch of theirs (compare.py
        // blocks the main thread in `trigger` while the SDK loop drives a fan-out).
        if self.shared.pending.len() > waiters.load(Ordering::SeqCst) {
            return slot.wait(max);
        }
        let link = self.shared.link.lock().clone();
        let (Some(link), Some(wake)) = (link, WAKE.with(Clone::clone)) else {
            return slot.wait(max);
        };
        // The runtime's fallback reader leaves the socket to us meanwhile.
        link.callers_reading.fetch_add(1, Ordering::SeqCst);
        let led = self.lead(&link, &wake, slot, deadline);
        link.callers_reading.fetch_sub(1, Ordering::SeqCst);
        match led {
            Led::Done(outcome) => outcome,
            // Whoever reads (or the end of the link) completes the call.
            Led::Follow => slot.wait(remaining()),
        }
    }

    /// Reads the link until `slot` is complete, `deadline` passes or a signal arrives, unless
    /// another thread is reading it (`Follow`).
    fn lead(&self, link: &Link, wake: &Arc<Wake>, slot: &Slot, deadline: Instant) -> Led {
        let mut handle = None;
        loop {
            if let Some(outcome) = slot.take() {
                return Led::Done(Some(outcome));
            }
            let handle =
                handle.get_or_insert_with(|| inbound::incoming_handler(self.clone(), link.writer.clone()));
            match link.pump(handle) {
                Pumped::More => continue,
                Pumped::Drained => {}
                Pumped::Busy | Pumped::Ended => return Led::Follow,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Led::Done(slot.take());
            }
            {
                let mut state = slot.state.lock();
                if state.outcome.is_some() {
                    return Led::Done(state.outcome.take());
                }
                state.polling = Some(wake.clone());
            }
            let went_on = poll_two(link.stream.as_raw_fd(), wake.rx.as_raw_fd(), left);
            slot.state.lock().polling = None;
            wake.drain();
            if !went_on {
                return Led::Done(slot.take()); // a signal: the caller checks it and comes back
            }
        }
    }
}

enum Led {
    Done(Option<Outcome>),
    Follow,
}
