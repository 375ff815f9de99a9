//! `trigger_many`: a batch of calls handed to the core in one crossing.
//!
//! NOTE(perf): a fan-out written with `asyncio.gather` pays, per call, a Task, a future and a
//! semaphore turn on the caller's loop (about 20 us, of which the SDK's own share is 3-4 us).
//! Here Python hands over the whole list once: the payloads become JSON in one go, a runtime
//! task keeps at most `max_in_flight` calls pending and sends each refill of the window in one
//! write, completions land in a vector, and the list of outcomes is built once at the end
//! (benches/RESULTS.md, "trigger_many").

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyString};
use tokio::sync::Notify;
use uuid::Uuid;

use super::errors;
use super::json::{from_json_opt, to_json_opt};
use super::queues::{Item, LoopQueueInner};
use super::runtime;
use super::telemetry::InvocationSpan;
use iii_core::connection::{invocation_id, Connection as CoreConnection, Envelope};
use iii_core::invocations::{CallError, Completion, Outcome};
use iii_protocol::TriggerAction;

/// One call of a batch, encoded and checked before anything is sent.
struct Prepared {
    function_id: String,
    data: Option<String>,
    timeout: Duration,
    /// `None`: a call that waits for its result; `Void`: fire-and-forget; `Enqueue`.
    action: Option<TriggerAction>,
    namespace: Option<String>,
    traceparent: Option<String>,
    baggage: Option<String>,
    metadata: Option<String>,
    /// The call's CLIENT span (OpenTelemetry on, made outside any span): ended with its outcome.
    span: Option<Py<InvocationSpan>>,
}

/// The Python side's tuple for one call (see `normalize` in `III._batch_plan`).
type RawItem<'py> = (
    String,
    Bound<'py, PyAny>,
    u64,
    Option<String>,
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Bound<'py, PyAny>>,
    Option<Py<InvocationSpan>>,
);

/// How to read a batch's requests (see `Batch::prepare`).
pub(crate) struct Plan<'py> {
    pub max_in_flight: usize,
    /// The items are already `RawItem` tuples.
    pub normalized: bool,
    /// `(index, request) -> RawItem`, for requests not read here.
    pub normalize: Bound<'py, PyAny>,
    /// The client's default `timeout_ms`.
    pub timeout_ms: u64,
    /// The worker's namespace, which calls follow unless their function id starts with one of
    /// `engine_prefixes` (`iii._namespaces.for_call`).
    pub namespace: Option<String>,
    pub engine_prefixes: Vec<String>,
}

impl Plan<'_> {
    /// A plain dict request read without Python code; `None` for anything else, including
    /// values `trigger()` would refuse, so that `normalize` raises its usual error.
    fn plain(&self, request: &Bound<'_, PyAny>) -> PyResult<Option<Prepared>> {
        let Ok(dict) = request.cast_exact::<PyDict>() else {
            return Ok(None);
        };
        let (mut function_id, mut payload, mut timeout, mut metadata) = (None, None, None, None);
        for (key, value) in dict.iter() {
            let Ok(key) = key.cast_exact::<PyString>() else {
                return Ok(None);
            };
            match key.to_str()? {
                "function_id" => function_id = Some(value),
                "payload" => payload = Some(value),
                "timeout_ms" => timeout = Some(value),
                "metadata" => metadata = Some(value),
                _ => return Ok(None),
            }
        }
        let Some(function_id) = function_id else {
            return Ok(None);
        };
        let function_id = match function_id.cast_exact::<PyString>() {
            Ok(id) if !id.to_str()?.is_empty() => id.to_str()?.to_owned(),
            _ => return Ok(None),
        };
        let timeout_ms = match timeout {
            None => self.timeout_ms,
            Some(t) if t.is_none() => self.timeout_ms,
            Some(t) => match t.cast_exact::<PyInt>().ok().and_then(|t| t.extract::<u64>().ok()) {
                Some(ms) if ms > 0 => ms,
                _ => return Ok(None),
            },
        };
        let engine_call = self.engine_prefixes.iter().any(|p| function_id.starts_with(p.as_str()));
        let namespace = if engine_call { None } else { self.namespace.clone() };
        Ok(Some(Prepared {
            data: payload.as_ref().map(to_json_opt).transpose()?.flatten(),
            function_id,
            timeout: Duration::from_millis(timeout_ms),
            action: None,
            namespace,
            traceparent: None,
            baggage: None,
            metadata: metadata.as_ref().map(to_json_opt).transpose()?.flatten(),
            span: None,
        }))
    }
}

impl Prepared {
    fn from_tuple(tuple: &Bound<'_, PyAny>) -> PyResult<Prepared> {
        let (function_id, payload, timeout_ms, queue, void, namespace, traceparent, baggage, metadata, span): RawItem<'_> =
            tuple.extract()?;
        let action = match (void, queue) {
            (true, _) => Some(TriggerAction::Void),
            (false, Some(queue)) => Some(TriggerAction::Enqueue { queue }),
            (false, None) => None,
        };
        Ok(Prepared {
            function_id,
            data: to_json_opt(&payload)?,
            timeout: Duration::from_millis(timeout_ms),
            action,
            namespace,
            traceparent,
            baggage,
            metadata: metadata.as_ref().map(to_json_opt).transpose()?.flatten(),
            span,
        })
    }
}

struct State {
    results: Vec<Option<Outcome>>,
    /// The wire id of every call sent so far.
    ids: Vec<Option<Uuid>>,
    in_flight: usize,
    /// The first call the sender has not sent yet (as of its last look at the window).
    next: usize,
    done: usize,
    cancelled: bool,
    /// The async form's future and the queue of its loop, until the batch ends.
    deliver: Option<(Py<PyAny>, Arc<LoopQueueInner>)>,
}

pub(crate) struct Batch {
    conn: CoreConnection,
    items: Vec<Prepared>,
    max_in_flight: usize,
    /// How many places must be free before the sender refills the window.
    refill: usize,
    /// The caller asserted by calls made from a handler (docs/protocol.md C.8.1), as for one call.
    caller: Option<String>,
    observe_depth: Option<u32>,
    state: Mutex<State>,
    /// Wakes the sender: a call ended (room in the window) or the batch was cancelled.
    room: Notify,
    /// Wakes a blocking caller when the last call ends.
    finished: Condvar,
}

/// Routes one call's outcome back to its place in the batch.
struct BatchCompletion {
    batch: Arc<Batch>,
    index: usize,
}

impl Completion for BatchCompletion {
    fn complete(self: Box<Self>, outcome: Outcome) {
        self.batch.record(self.index, outcome, true);
    }
}

fn end_span(span: &InvocationSpan, outcome: &Outcome) {
    match outcome {
        Ok(_) => span.end(),
        Err(err) => span.end_error(errors::class_name(err), err.to_string(), None),
    }
}

impl Batch {
    /// Reads the requests, encoding every payload and metadata now: a request that cannot be
    /// sent fails the whole batch before any call goes out. With `plan.normalized` every item
    /// is already the Python side's tuple (`RawItem`); otherwise a plain dict request (only
    /// `function_id`, `payload`, `timeout_ms`, `metadata`, each of the usual type) is read here,
    /// and anything else goes through `plan.normalize(index, request)`, which checks it as
    /// `trigger()` does and returns the tuple or raises.
    pub(crate) fn prepare(
        py: Python<'_>,
        conn: CoreConnection,
        requests: &Bound<'_, PyAny>,
        plan: &Plan<'_>,
        caller: Option<String>,
        observe_depth: Option<u32>,
    ) -> PyResult<Arc<Batch>> {
        if plan.max_in_flight == 0 {
            return Err(PyValueError::new_err("max_in_flight must be at least 1"));
        }
        let mut prepared = Vec::with_capacity(requests.len().unwrap_or(0));
        for (index, request) in requests.try_iter()?.enumerate() {
            let request = request?;
            let item = match plan.normalized {
                true => None,
                false => plan.plain(&request).inspect_err(|err| note(py, err, index))?,
            };
            let item = match item {
                Some(item) => item,
                None => {
                    let tuple = match plan.normalized {
                        true => request,
                        false => plan.normalize.call1((index, request))?,
                    };
                    Prepared::from_tuple(&tuple).inspect_err(|err| note(py, err, index))?
                }
            };
            prepared.push(item);
        }
        let max_in_flight = plan.max_in_flight;
        let n = prepared.len();
        Ok(Arc::new(Batch {
            conn,
            items: prepared,
            max_in_flight,
            refill: (max_in_flight / 8).clamp(1, 64),
            caller,
            observe_depth,
            state: Mutex::new(State {
                results: (0..n).map(|_| None).collect(),
                ids: vec![None; n],
                in_flight: 0,
                next: 0,
                done: 0,
                cancelled: false,
                deliver: None,
            }),
            room: Notify::new(),
            finished: Condvar::new(),
        }))
    }

    /// Starts sending on the runtime; the async form's `future` gets the list through `queue`.
    pub(crate) fn start(self: &Arc<Self>, deliver: Option<(Py<PyAny>, Arc<LoopQueueInner>)>) {
        if self.items.is_empty() {
            if let Some((future, queue)) = deliver {
                queue.push(Item::BatchDone(future, self.clone()));
            }
            return;
        }
        self.state.lock().deliver = deliver;
        let batch = self.clone();
        runtime::handle().spawn(async move { batch.send_all().await });
    }

    /// Keeps the window full until every call is sent or the batch is cancelled.
    ///
    /// NOTE(perf): refilling on every completion made one write (and one wake-up of this task)
    /// per call or two, while results were still arriving; refilling once `refill` places are
    /// free sends about that many calls per write (benches/RESULTS.md, "trigger_many").
    async fn send_all(self: Arc<Self>) {
        let n = self.items.len();
        let mut next = 0;
        while next < n {
            let room = {
                let mut s = self.state.lock();
                if s.cancelled {
                    return;
                }
                s.next = next;
                let room = self.max_in_flight.saturating_sub(s.in_flight);
                (room >= self.refill.min(n - next)).then_some(room)
            };
            let Some(room) = room else {
                self.room.notified().await; // `record` wakes us when enough room is free
                continue;
            };
            // Held back and written together: one write per refill of the window, not per call.
            next = iii_core::connection::deferring(|| {
                let mut sent = 0;
                while next < n && sent < room {
                    if self.send_one(next) {
                        sent += 1;
                    }
                    next += 1;
                }
                next
            });
            self.conn.flush_deferred();
        }
    }

    /// Sends call `index`; true when it now takes a place in the window.
    fn send_one(self: &Arc<Self>, index: usize) -> bool {
        let item = &self.items[index];
        let envelope = Envelope {
            namespace: item.namespace.as_deref(),
            traceparent: item.traceparent.as_deref(),
            baggage: item.baggage.as_deref(),
            metadata: item.metadata.as_deref(),
            caller: self.caller.as_deref(),
            observe_depth: self.observe_depth,
            activation: None,
        };
        if let Some(TriggerAction::Void) = item.action {
            let sent = self.conn.call_void(envelope, &item.function_id, item.data.as_deref());
            self.record(index, sent.map(|()| None), false);
            return false;
        }
        let id = invocation_id();
        {
            let mut s = self.state.lock();
            if s.cancelled {
                return false;
            }
            s.ids[index] = Some(id);
            s.in_flight += 1;
        }
        let completion = Box::new(BatchCompletion { batch: self.clone(), index });
        let sent = self.conn.call_as(
            id,
            envelope,
            &item.function_id,
            item.data.as_deref(),
            item.action.as_ref(),
            item.timeout,
            completion,
        );
        match sent {
            Err(err) => self.record(index, Err(err), true), // nothing went out
            Ok(_) if self.state.lock().cancelled => {
                self.conn.abandon(&id); // cancelled while it was being sent
            }
            Ok(_) => {}
        }
        true
    }

    /// Stores call `index`'s outcome (`windowed`: it held a place in the window).
    fn record(self: &Arc<Self>, index: usize, outcome: Outcome, windowed: bool) {
        if let Some(span) = &self.items[index].span {
            end_span(span.get(), &outcome);
        }
        let deliver = {
            let mut s = self.state.lock();
            if s.results[index].is_some() {
                return;
            }
            s.results[index] = Some(outcome);
            let n = self.items.len();
            // The sender waits for `refill` free places (fewer near the end): wake it once, when
            // the room reaches that.
            let mut wake = false;
            if windowed {
                s.in_flight -= 1;
                let unsent = n - s.next;
                wake = unsent > 0 && self.max_in_flight - s.in_flight == self.refill.min(unsent);
            }
            s.done += 1;
            if s.done < n {
                drop(s);
                if wake {
                    self.room.notify_one();
                }
                return;
            }
            self.finished.notify_all();
            s.deliver.take()
        };
        if let Some((future, queue)) = deliver {
            queue.push(Item::BatchDone(future, self.clone()));
        }
    }

    /// Stops sending and forgets the calls still pending (their late results are ignored).
    /// Their spans end with `CancelledError`; the batch delivers nothing.
    pub(crate) fn cancel(&self) {
        let pending: Vec<(usize, Uuid)> = {
            let mut s = self.state.lock();
            if s.cancelled || s.done == self.items.len() {
                return;
            }
            s.cancelled = true;
            s.deliver = None;
            let s = &*s;
            s.ids
                .iter()
                .enumerate()
                .filter_map(|(i, id)| id.filter(|_| s.results[i].is_none()).map(|id| (i, id)))
                .collect()
        };
        for (index, id) in pending {
            if self.conn.abandon(&id) {
                if let Some(span) = &self.items[index].span {
                    span.get().end_error("CancelledError", "the batch was cancelled".into(), None);
                }
            }
        }
        self.room.notify_one();
        self.finished.notify_all();
    }

    /// Waits (without the GIL, waking every 100 ms for Ctrl-C) until every call ended; a
    /// signal's exception cancels the batch and is raised.
    pub(crate) fn wait(&self, py: Python<'_>) -> PyResult<()> {
        let n = self.items.len();
        loop {
            let done = py.detach(|| {
                let mut s = self.state.lock();
                if s.done < n {
                    self.finished.wait_for(&mut s, Duration::from_millis(100));
                }
                s.done == n
            });
            if done {
                return Ok(());
            }
            if let Err(err) = py.check_signals() {
                self.cancel();
                return Err(err);
            }
        }
    }

    /// The outcomes, in request order, as a list of `TriggerOutcome`. Once: it takes them.
    pub(crate) fn outcomes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let (results, ids) = {
            let mut s = self.state.lock();
            (std::mem::take(&mut s.results), std::mem::take(&mut s.ids))
        };
        let mut out = Vec::with_capacity(results.len());
        for ((result, id), item) in results.into_iter().zip(ids).zip(&self.items) {
            let (value, error) = match result {
                Some(Ok(value)) => match from_json_opt(py, value.as_deref().map(|v| v.get())) {
                    Ok(value) => (value.unbind(), None),
                    Err(err) => (py.None(), Some(err.into_value(py).into_any())),
                },
                Some(Err(err)) => {
                    let exc = errors::call_error_for(py, &err, Some(&item.function_id), id.as_ref());
                    (py.None(), Some(exc.into_value(py).into_any()))
                }
                None => {
                    let exc = errors::call_error(py, &CallError::Shutdown);
                    (py.None(), Some(exc.into_value(py).into_any()))
                }
            };
            out.push(Py::new(py, TriggerOutcome { result: Some(value), error })?);
        }
        PyList::new(py, out)
    }

    /// Sets the async form's future to the list of outcomes (unless it was cancelled).
    pub(crate) fn resolve(&self, py: Python<'_>, future: &Bound<'_, PyAny>) {
        if future.call_method0(pyo3::intern!(py, "done")).and_then(|d| d.is_truthy()).unwrap_or(true) {
            return;
        }
        let _ = match self.outcomes(py) {
            Ok(list) => future.call_method1(pyo3::intern!(py, "set_result"), (list,)),
            Err(err) => future.call_method1(pyo3::intern!(py, "set_exception"), (err.into_value(py),)),
        };
    }
}

/// The result of one call of a batch: `ok` and `result`, or the `error` the same call made
/// with `trigger()` would have raised.
///
/// Visible to the garbage collector: once `value()` has raised the error, its traceback can
/// lead back here (frame -> list of outcomes -> this outcome -> the error).
#[pyclass(module = "iii._iii")]
pub struct TriggerOutcome {
    result: Option<Py<PyAny>>,
    error: Option<Py<PyAny>>,
}

#[pymethods]
impl TriggerOutcome {
    #[new]
    #[pyo3(signature = (result=None, error=None))]
    fn new(result: Option<Py<PyAny>>, error: Option<Py<PyAny>>) -> Self {
        Self { result, error }
    }

    /// True when the call returned (`result` holds its value), False when it failed (`error`).
    #[getter]
    fn ok(&self) -> bool {
        self.error.is_none()
    }

    #[getter]
    fn result(&self, py: Python<'_>) -> Py<PyAny> {
        self.result.as_ref().map_or_else(|| py.None(), |r| r.clone_ref(py))
    }

    #[getter]
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.error.as_ref().map(|e| e.clone_ref(py))
    }

    /// The result, or raises the error.
    fn value(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.error {
            None => Ok(self.result(py)),
            Some(err) => Err(PyErr::from_value(err.bind(py).clone())),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(match &self.error {
            None => format!("TriggerOutcome(result={})", self.result(py).bind(py).repr()?),
            Some(err) => format!("TriggerOutcome(error={})", err.bind(py).repr()?),
        })
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.result)?;
        visit.call(&self.error)
    }

    fn __clear__(&mut self) {
        self.result = None;
        self.error = None;
    }
}

/// A running `trigger_many_async` batch, to cancel it when its awaiting task is cancelled.
#[pyclass(frozen, module = "iii._iii")]
pub struct BatchHandle {
    pub(crate) batch: Arc<Batch>,
}

#[pymethods]
impl BatchHandle {
    /// Stops sending the rest and forgets the calls still pending. Idempotent; nothing once the
    /// batch has ended.
    fn cancel(&self) {
        self.batch.cancel();
    }
}

/// Adds which request of the batch failed to `err` (a note, where Python has them).
fn note(py: Python<'_>, err: &PyErr, index: usize) {
    let value = err.value(py);
    if value.hasattr("add_note").unwrap_or(false) {
        let _ = value.call_method1("add_note", (format!("in trigger_many request {index}"),));
    }
}
