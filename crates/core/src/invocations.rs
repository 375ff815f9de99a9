//! The pending-call table: every call waiting for an `invocationresult`, with its deadline.
//!
//! Completions run outside the table's lock, so a completion may call back into the table.
//! A call ends exactly once: by its result, its deadline, the loss of the link it was sent on,
//! or the client closing; or, when its caller stopped waiting, it is forgotten unrun (`forget`).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

use iii_protocol::{ErrorBody, Json};

/// What a call ends with: the raw JSON result (`None` = null / no result) or an error.
pub type Outcome = Result<Option<Json>, CallError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The remote side (engine or callee) answered with an error.
    Remote(ErrorBody),
    /// No answer before the call's deadline.
    Timeout { function_id: String, timeout_ms: u64 },
    /// The link the call was sent on went down before the answer arrived.
    ConnectionLost { function_id: String, reason: String },
    /// The client cannot send: it gave up reconnecting, or the engine refused it.
    NotConnected(String),
    /// `shutdown()` was called.
    Shutdown,
    /// Disconnected and the offline queue is full.
    OfflineQueueFull { limit: usize },
    /// The encoded message is larger than the configured maximum.
    TooLarge { size: usize, limit: usize },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Remote(e) => write!(f, "{}: {}", e.code, e.message),
            CallError::Timeout { function_id, timeout_ms } => {
                write!(f, "Invocation of '{function_id}' timed out after {timeout_ms}ms")
            }
            CallError::ConnectionLost { function_id, reason } => write!(
                f,
                "connection to the engine was lost while calling '{function_id}' ({reason}); \
                 the call may or may not have run"
            ),
            CallError::NotConnected(reason) => write!(f, "not connected to the engine: {reason}"),
            CallError::Shutdown => write!(f, "the iii client is shut down"),
            CallError::OfflineQueueFull { limit } => write!(
                f,
                "not connected to the engine and the offline queue is full ({limit} messages); \
                 retry once the connection is back"
            ),
            CallError::TooLarge { size, limit } => write!(
                f,
                "message of {size} bytes exceeds the maximum message size of {limit} bytes \
                 (InitOptions.max_message_size)"
            ),
        }
    }
}

impl std::error::Error for CallError {}

/// Receives the outcome of one call. Called exactly once, never under the table's lock.
pub trait Completion: Send {
    fn complete(self: Box<Self>, outcome: Outcome);
}

struct Entry {
    completion: Box<dyn Completion>,
    deadline: Instant,
    epoch: u64,
    function_id: String,
    timeout_ms: u64,
}

#[derive(Default)]
struct Inner {
    calls: HashMap<Uuid, Entry>,
    deadlines: BTreeSet<(Instant, Uuid)>,
    closed: Option<CallError>,
    /// When the timer task will next wake up by itself (`None`: it waits for a notification).
    timer_wakes_at: Option<Instant>,
}

#[derive(Default)]
pub struct PendingTable {
    inner: Mutex<Inner>,
    /// Woken when a deadline earlier than every other one is inserted.
    pub(crate) deadline_changed: Notify,
}

type Finished = Vec<(Box<dyn Completion>, Outcome)>;

fn finish(done: Finished) {
    for (completion, outcome) in done {
        completion.complete(outcome);
    }
}

impl PendingTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a call. Fails (handing the completion back) once the table is closed.
    pub fn insert(
        &self,
        id: Uuid,
        function_id: &str,
        timeout: Duration,
        epoch: u64,
        completion: Box<dyn Completion>,
    ) -> Result<(), (Box<dyn Completion>, CallError)> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.inner.lock();
        if let Some(err) = &inner.closed {
            return Err((completion, err.clone()));
        }
        // Wake the timer only if it would sleep past this deadline. In steady traffic the timer
        // is already due earlier (at a deadline of a call that has since completed), so a call
        // costs no extra wake-up of the runtime thread.
        let earliest = inner.timer_wakes_at.is_none_or(|at| deadline < at);
        inner.deadlines.insert((deadline, id));
        let entry = Entry {
            completion,
            deadline,
            epoch,
            function_id: function_id.to_owned(),
            timeout_ms: timeout.as_millis() as u64,
        };
        inner.calls.insert(id, entry);
        drop(inner);
        if earliest {
            self.deadline_changed.notify_one();
        }
        Ok(())
    }

    /// Takes a call out of the table (and its deadline); None if it already ended.
    fn take(&self, id: &Uuid) -> Option<Entry> {
        let mut inner = self.inner.lock();
        let entry = inner.calls.remove(id)?;
        inner.deadlines.remove(&(entry.deadline, *id));
        Some(entry)
    }

    /// Ends a call with its answer. Returns false for an unknown (late, duplicate) id.
    pub fn complete(&self, id: &Uuid, outcome: Outcome) -> bool {
        let Some(entry) = self.take(id) else { return false };
        entry.completion.complete(outcome);
        true
    }

    /// Removes a call and drops its completion unrun: the one way a call ends without an
    /// outcome, for callers that no longer wait (a cancelled batch). False if already ended.
    pub fn forget(&self, id: &Uuid) -> bool {
        // `take` released the lock: dropping a completion may re-enter the table.
        self.take(id).is_some()
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        self.inner.lock().calls.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.inner.lock().deadlines.first().map(|(d, _)| *d)
    }

    /// The next deadline, recorded as the time the timer task will wake up.
    fn arm_timer(&self) -> Option<Instant> {
        let mut inner = self.inner.lock();
        let next = inner.deadlines.first().map(|(d, _)| *d);
        inner.timer_wakes_at = next;
        next
    }

    /// Fails every call whose deadline is at or before `now`. Returns how many.
    pub fn expire(&self, now: Instant) -> usize {
        let mut done: Finished = Vec::new();
        {
            let mut inner = self.inner.lock();
            while let Some(&(deadline, id)) = inner.deadlines.first() {
                if deadline > now {
                    break;
                }
                inner.deadlines.pop_first();
                if let Some(e) = inner.calls.remove(&id) {
                    let err = CallError::Timeout { function_id: e.function_id, timeout_ms: e.timeout_ms };
                    done.push((e.completion, Err(err)));
                }
            }
        }
        let n = done.len();
        finish(done);
        n
    }

    /// Fails the calls sent on links up to and including `epoch`: those links are gone, and the
    /// engine cannot deliver their results to a new connection (docs/protocol.md 3.4).
    pub fn fail_sent_before(&self, epoch: u64, reason: &str) -> usize {
        let mut done: Finished = Vec::new();
        {
            let mut inner = self.inner.lock();
            let lost: Vec<Uuid> =
                inner.calls.iter().filter(|(_, e)| e.epoch <= epoch).map(|(id, _)| *id).collect();
            for id in lost {
                let e = inner.calls.remove(&id).expect("id was just listed");
                inner.deadlines.remove(&(e.deadline, id));
                let err = CallError::ConnectionLost { function_id: e.function_id, reason: reason.to_owned() };
                done.push((e.completion, Err(err)));
            }
        }
        let n = done.len();
        finish(done);
        n
    }

    /// Fails one call with `err` (e.g. it could not be queued). Returns false if already ended.
    pub fn fail(&self, id: &Uuid, err: CallError) -> bool {
        self.complete(id, Err(err))
    }

    /// Fails every call with `err` and refuses new ones with it from now on.
    pub fn close(&self, err: CallError) -> usize {
        let done: Finished = {
            let mut inner = self.inner.lock();
            inner.closed = Some(err.clone());
            inner.deadlines.clear();
            inner.calls.drain().map(|(_, e)| (e.completion, Err(err.clone()))).collect()
        };
        let n = done.len();
        finish(done);
        n
    }

    pub fn closed_reason(&self) -> Option<CallError> {
        self.inner.lock().closed.clone()
    }

    /// Waits for deadlines and expires calls, forever. Run once per table on the runtime.
    pub async fn run_timer(&self) {
        loop {
            let notified = self.deadline_changed.notified();
            match self.arm_timer() {
                None => notified.await,
                Some(deadline) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline.into()) => {
                            self.expire(Instant::now());
                        }
                        _ = notified => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    #[derive(Clone, Default)]
    struct Recorder(Arc<StdMutex<Vec<(u32, Outcome)>>>);

    struct Rec(u32, Recorder);

    impl Completion for Rec {
        fn complete(self: Box<Self>, outcome: Outcome) {
            self.1 .0.lock().unwrap().push((self.0, outcome));
        }
    }

    impl Recorder {
        fn done(&self) -> Vec<(u32, Outcome)> {
            self.0.lock().unwrap().clone()
        }
        fn boxed(&self, tag: u32) -> Box<dyn Completion> {
            Box::new(Rec(tag, self.clone()))
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn completes_once_and_ignores_unknown_ids() {
        let t = PendingTable::new();
        let rec = Recorder::default();
        let id = Uuid::new_v4();
        t.insert(id, "f", LONG, 0, rec.boxed(1)).ok().unwrap();
        assert!(t.complete(&id, Ok(None)));
        assert!(!t.complete(&id, Ok(None)), "a duplicate result is ignored");
        assert!(!t.complete(&Uuid::new_v4(), Ok(None)));
        assert_eq!(rec.done().len(), 1);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn forgotten_calls_never_complete() {
        let t = PendingTable::new();
        let rec = Recorder::default();
        let id = Uuid::new_v4();
        t.insert(id, "f", Duration::from_millis(1), 0, rec.boxed(1)).ok().unwrap();
        assert!(t.forget(&id));
        assert!(!t.forget(&id));
        assert!(!t.complete(&id, Ok(None)), "a late result finds nothing");
        assert_eq!(t.expire(Instant::now() + Duration::from_secs(1)), 0);
        assert!(rec.done().is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn expires_only_what_is_due() {
        let t = PendingTable::new();
        let rec = Recorder::default();
        t.insert(Uuid::new_v4(), "short", Duration::from_millis(1), 0, rec.boxed(1)).ok().unwrap();
        t.insert(Uuid::new_v4(), "long", LONG, 0, rec.boxed(2)).ok().unwrap();
        assert_eq!(t.expire(Instant::now() + Duration::from_millis(5)), 1);
        let done = rec.done();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, 1);
        assert!(matches!(
            &done[0].1,
            Err(CallError::Timeout { function_id, timeout_ms: 1 }) if function_id == "short"
        ));
        assert_eq!(t.len(), 1);
        assert_eq!(
            CallError::Timeout { function_id: "f".into(), timeout_ms: 5 }.to_string(),
            "Invocation of 'f' timed out after 5ms"
        );
    }

    #[test]
    fn link_loss_fails_calls_of_that_link_only() {
        let t = PendingTable::new();
        let rec = Recorder::default();
        t.insert(Uuid::new_v4(), "a", LONG, 3, rec.boxed(1)).ok().unwrap();
        t.insert(Uuid::new_v4(), "b", LONG, 4, rec.boxed(2)).ok().unwrap();
        assert_eq!(t.fail_sent_before(3, "reset"), 1);
        let done = rec.done();
        assert!(
            matches!(&done[0].1, Err(CallError::ConnectionLost { function_id, .. }) if function_id == "a")
        );
        assert_eq!(t.len(), 1);
        assert!(t.next_deadline().is_some());
    }

    #[test]
    fn close_fails_everything_and_refuses_new_calls() {
        let t = PendingTable::new();
        let rec = Recorder::default();
        for i in 0..10 {
            t.insert(Uuid::new_v4(), "f", LONG, 0, rec.boxed(i)).ok().unwrap();
        }
        assert_eq!(t.close(CallError::Shutdown), 10);
        assert!(rec.done().iter().all(|(_, o)| matches!(o, Err(CallError::Shutdown))));
        let refused = t.insert(Uuid::new_v4(), "f", LONG, 0, rec.boxed(99));
        assert!(matches!(refused, Err((_, CallError::Shutdown))));
    }

    /// A completion that re-enters the table must not deadlock.
    #[test]
    fn completion_may_reenter_the_table() {
        struct Reenter(Arc<PendingTable>, Recorder);
        impl Completion for Reenter {
            fn complete(self: Box<Self>, _outcome: Outcome) {
                let rec = self.1.clone();
                self.0.insert(Uuid::new_v4(), "again", LONG, 0, rec.boxed(7)).ok().unwrap();
            }
        }
        let t = Arc::new(PendingTable::new());
        let rec = Recorder::default();
        let id = Uuid::new_v4();
        t.insert(id, "f", LONG, 0, Box::new(Reenter(t.clone(), rec))).ok().unwrap();
        assert!(t.complete(&id, Ok(None)));
        assert_eq!(t.len(), 1);
    }

    #[tokio::test]
    async fn timer_fails_calls_at_their_deadline() {
        let t = Arc::new(PendingTable::new());
        let timer = tokio::spawn({
            let t = t.clone();
            async move { t.run_timer().await }
        });
        let rec = Recorder::default();
        let started = Instant::now();
        t.insert(Uuid::new_v4(), "slow", Duration::from_millis(300), 0, rec.boxed(1)).ok().unwrap();
        // An earlier deadline inserted later must wake the timer before the first one.
        t.insert(Uuid::new_v4(), "fast", Duration::from_millis(30), 0, rec.boxed(2)).ok().unwrap();
        while rec.done().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(rec.done()[0].0, 2);
        assert!(started.elapsed() < Duration::from_millis(250));
        while rec.done().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
        timer.abort();
    }
}
