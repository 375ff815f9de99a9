//! The observe family for Python (docs/protocol.md C.9-C.17): the events an observer's handle
//! and an owner's hooks receive, and `FunctionState`, the core's record of a function this
//! worker owns (local dispatch, its observers, reports), read on every local call.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;

use super::errors;
use super::filter::DocWalk;
use super::json::{from_json, to_json};
use iii_core::connection::{Connection as CoreConnection, LogLevel};
use iii_core::filter::Doc;
use iii_core::observe::{
    FunctionState as CoreFunction, HookOutcome, HookRequest, LocalOutcome, ObserverNews, OwnerError,
};
use iii_protocol::{Caller, ErrorBody, ObserverView};

/// A Python value as a JSON tree (`None` stays `null`).
pub(crate) fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let text = to_json(obj)?;
    serde_json::from_str(&text).map_err(|e| errors::not_serialisable(obj.py(), &e.to_string()))
}

fn to_value_opt(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Value>> {
    obj.filter(|o| !o.is_none()).map(to_value).transpose()
}

fn value_to_py<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    // Trees of JSON values and structs of strings always serialise.
    from_json(py, &serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
}

fn caller_of(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Caller>> {
    match to_value_opt(obj)? {
        Some(v) => Ok(serde_json::from_value(v).ok()),
        None => Ok(None),
    }
}

fn reason_dict<'py>(py: Python<'py>, reason: &Option<ErrorBody>) -> PyResult<Option<Bound<'py, PyAny>>> {
    reason
        .as_ref()
        .map(|r| {
            let d = PyDict::new(py);
            d.set_item("code", &r.code)?;
            d.set_item("message", &r.message)?;
            Ok(d.into_any())
        })
        .transpose()
}

/// News of an observer this worker made: the engine's `observeresult` or
/// `observerstatechanged`, or the core's `UNSUPPORTED` verdict.
#[pyclass(frozen, module = "iii._iii")]
pub struct ObserverEvent {
    news: ObserverNews,
}

impl ObserverEvent {
    pub(crate) fn new(news: ObserverNews) -> Self {
        ObserverEvent { news }
    }
}

#[pymethods]
impl ObserverEvent {
    #[getter]
    fn id(&self) -> &str {
        &self.news.id
    }
    #[getter]
    fn state(&self) -> &str {
        &self.news.state
    }
    /// `{"code", "message"}` or None.
    #[getter]
    fn reason<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        reason_dict(py, &self.news.reason)
    }
    #[getter]
    fn fires(&self) -> u64 {
        self.news.fires
    }
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.news.warnings.clone()
    }
}

/// An owner hook to run: `on_observer_added` (`added`) or `on_observer_removed`. An addition is
/// answered with `Connection.hook_done`.
#[pyclass(frozen, module = "iii._iii")]
pub struct OwnerHook {
    hook: HookRequest,
}

impl OwnerHook {
    pub(crate) fn new(hook: HookRequest) -> Self {
        OwnerHook { hook }
    }
}

#[pymethods]
impl OwnerHook {
    #[getter]
    fn function_id(&self) -> &str {
        &self.hook.function_id
    }
    #[getter]
    fn added(&self) -> bool {
        self.hook.added
    }
    #[getter]
    fn revision(&self) -> u64 {
        self.hook.revision
    }
    /// The function's release count when asked: an addition of another generation is not run.
    #[getter]
    fn generation(&self) -> u64 {
        self.hook.generation
    }
    /// A removal that runs only if the addition it follows accepted the observer.
    #[getter]
    fn pending(&self) -> bool {
        self.hook.pending
    }
    /// The ObserverView as a dict.
    #[getter]
    fn observer<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        value_to_py(py, &self.hook.observer)
    }
}

/// The core's record of a function this worker owns. Thread-safe; the calls made on every local
/// call (`local`, `observed`, `finished`) take no lock.
#[pyclass(frozen, module = "iii._iii")]
pub struct FunctionState {
    pub(crate) core: Arc<CoreFunction>,
    pub(crate) conn: CoreConnection,
}

fn owner_error(py: Python<'_>, function_id: &str, err: OwnerError) -> PyErr {
    errors::invocation_error(py, &err.0, Some(function_id))
}

#[pymethods]
impl FunctionState {
    #[getter]
    fn id(&self) -> &str {
        &self.core.id
    }

    /// A call resolving to `namespace` may run in-process now.
    #[pyo3(signature = (namespace=None))]
    fn local(&self, namespace: Option<&str>) -> bool {
        self.core.local(namespace)
    }

    /// Some active observer is matched by this SDK: a local call must be reported.
    fn observed(&self) -> bool {
        self.core.observed()
    }

    fn is_observed(&self) -> bool {
        self.core.is_observed()
    }

    fn is_active(&self, observer_id: &str) -> bool {
        self.core.is_active(observer_id)
    }

    /// The engine confirmed the function (`functionregistered`) since it was registered.
    fn confirmed(&self) -> bool {
        self.core.confirmed()
    }

    /// `(calls, errors)`: local calls counted since the last `localinvocationstats`.
    fn counts(&self) -> (u64, u64) {
        self.core.counts()
    }

    /// How often the function was released (unregistered, or lost to a namespace conflict).
    fn generation(&self) -> u64 {
        self.core.generation()
    }

    /// The owner's `on_observer_added` answered `hook` (an addition): accepted (`code` None) or
    /// refused with `code`. Returns what became of it: "acked", "released" or "rejected" (undo
    /// what the hook set up now), or "gone" (the engine removed it; its removal hook is queued).
    #[pyo3(signature = (hook, code=None, message=None))]
    fn hook_done(&self, hook: &OwnerHook, code: Option<String>, message: Option<String>) -> &'static str {
        let error = code.map(|c| ErrorBody::new(c, message.unwrap_or_default()));
        match self.core.hook_done(&self.conn, &hook.hook, error) {
            HookOutcome::Acked => "acked",
            HookOutcome::Released => "released",
            HookOutcome::Rejected => "rejected",
            HookOutcome::Gone => "gone",
        }
    }

    /// The active observers' views, as dicts.
    fn observers<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.core.observers().iter().map(|v: &ObserverView| value_to_py(py, v)).collect()
    }

    /// Counts an unobserved local call.
    fn finished(&self, ok: bool, duration_ms: f64) {
        self.core.finished(ok, duration_ms);
    }

    /// A finished local call that was observed when it started: counted, matched against the
    /// active observers in Rust on only the parts their filters read, and reported (its
    /// captured parts converted in full) when one matches. `invocation` is the call's context
    /// (`iii._observe.LocalInvocation`): its id, caller, depth and trace context are read only
    /// when needed, since making them costs more than the match. Data that cannot be read as
    /// JSON is logged and not reported; this never raises for the call's data.
    #[pyo3(signature = (invocation, ok, input, output, error, metadata, started_at_ms, duration_ms))]
    #[allow(clippy::too_many_arguments)]
    fn report<'py>(
        &self,
        py: Python<'py>,
        invocation: &Bound<'py, PyAny>,
        ok: bool,
        input: &Bound<'py, PyAny>,
        output: &Bound<'py, PyAny>,
        error: Option<&Bound<'py, PyAny>>,
        metadata: Option<&Bound<'py, PyAny>>,
        started_at_ms: u64,
        duration_ms: f64,
    ) -> PyResult<()> {
        self.core.finished(ok, duration_ms);
        let Some(matchers) = self.core.matchers() else { return Ok(()) };
        fn present<'py>(o: Option<&Bound<'py, PyAny>>) -> Option<Bound<'py, PyAny>> {
            o.filter(|o| !o.is_none()).cloned()
        }
        let error = if ok { None } else { present(error) };
        let output = ok.then(|| output.clone());
        let reads_caller = matchers.projection.roots[3].is_some();
        let caller = if reads_caller { present(Some(&invocation.getattr("caller")?)) } else { None };
        let metadata = present(metadata);
        let parts = [Some(input.clone()), output, error, caller, metadata];
        let mut walk = DocWalk { py, open: Vec::new() };
        let mut seen: [Option<Value>; 5] = Default::default();
        for ((slot, part), need) in seen.iter_mut().zip(&parts).zip(&matchers.projection.roots) {
            if let (Some(part), Some(need)) = (part, need) {
                *slot = walk.projected(part, need).unwrap_or(None);
            }
        }
        let [i, o, e, c, m] = &seen;
        let doc = Doc {
            input: i.as_ref(),
            output: o.as_ref(),
            error: e.as_ref(),
            caller: c.as_ref(),
            metadata: m.as_ref(),
        };
        let (matched, captures) = matchers.matching(ok, &doc);
        if matched.is_empty() {
            return Ok(());
        }
        let has = |name: &str| captures.iter().any(|c| c == name);
        let mut parts = parts;
        if parts[3].is_none() && has("caller") {
            parts[3] = present(Some(&invocation.getattr("caller")?));
        }
        let field = |name: &str| invocation.getattr(name);
        let invocation_id: String = field("context_id")?.extract()?;
        let observe_depth: u32 = field("observe_depth")?.extract()?;
        let traceparent: Option<String> = field("traceparent")?.extract()?;
        let baggage: Option<String> = field("baggage")?.extract()?;
        let full = |slot: usize, name: &str| -> PyResult<Option<Value>> {
            match &parts[slot] {
                Some(part) if has(name) => to_value(part).map(Some),
                _ => Ok(None),
            }
        };
        let read = || -> PyResult<_> {
            let caller = full(3, "caller")?.and_then(|v| serde_json::from_value::<Caller>(v).ok());
            Ok((full(0, "input")?, full(1, "output")?, full(2, "error")?, caller, full(4, "metadata")?))
        };
        match read() {
            Ok((input, output, error, caller, metadata)) => {
                let call = LocalOutcome {
                    invocation_id,
                    ok,
                    input: input.as_ref(),
                    output: output.as_ref(),
                    error: error.as_ref(),
                    caller,
                    metadata: metadata.as_ref(),
                    started_at_ms,
                    duration_ms,
                    observe_depth,
                    traceparent,
                    baggage,
                };
                self.core.push_matched(&self.conn, call, matched, &captures);
            }
            Err(err) => self.conn.log(
                LogLevel::Warn,
                &format!("a local call of {:?} was not reported to its observers: {err}", self.core.id),
            ),
        }
        Ok(())
    }

    /// The observer's filter matches `doc` (`{input?, output?, error?, caller?, metadata?}`).
    fn matches(&self, observer_id: &str, doc: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.core.matches(observer_id, &to_value(doc)?))
    }

    /// Emits an event to an observer of this owner-delivered function: False when the observer
    /// is inactive or its filter does not match.
    #[pyo3(signature = (observer_id, event, caller, metadata, invocation_id, observe_depth=0,
        traceparent=None, baggage=None))]
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        py: Python<'_>,
        observer_id: &str,
        event: &Bound<'_, PyAny>,
        caller: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        invocation_id: String,
        observe_depth: u32,
        traceparent: Option<String>,
        baggage: Option<String>,
    ) -> PyResult<bool> {
        let event = to_value(event)?;
        let caller = caller_of(caller)?;
        let metadata = to_value_opt(metadata)?;
        self.core
            .emit(
                &self.conn,
                observer_id,
                event,
                caller,
                metadata,
                invocation_id,
                observe_depth,
                traceparent,
                baggage,
            )
            .map_err(|e| owner_error(py, &self.core.id, e))
    }

    /// Checks an owner's `call` to an observer's target before it is sent.
    fn check_call(
        &self,
        py: Python<'_>,
        observer_id: &str,
        payload: &Bound<'_, PyAny>,
        caller: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut doc = serde_json::Map::new();
        doc.insert("input".into(), to_value(payload)?);
        if let Some(c) = to_value_opt(caller)? {
            doc.insert("caller".into(), c);
        }
        if let Some(m) = to_value_opt(metadata)? {
            doc.insert("metadata".into(), m);
        }
        self.core.check_call(observer_id, &Value::Object(doc)).map_err(|e| owner_error(py, &self.core.id, e))
    }

    /// The owner rejects a live observer.
    fn reject(&self, observer_id: &str, code: String, message: String) {
        self.core.reject(&self.conn, observer_id, ErrorBody::new(code, message));
    }
}
