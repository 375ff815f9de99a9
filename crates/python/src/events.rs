//! What the core hands to the Python layer: typed events, built with the GIL held on the thread
//! that handles them (the SDK loop, or a sync-handler thread).

use std::sync::Arc;

use pyo3::prelude::*;

use super::json::{from_json, from_json_opt};
use iii_core::connection::{ConnectionState, LogLevel};
use iii_protocol::{Activation, Caller, InvokeFunction, Json, RegisterTrigger};

/// Two payloads of a frame (data or config, and metadata) as Python objects.
fn read_both(
    py: Python<'_>,
    first: Option<&Json>,
    second: Option<&Json>,
) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    let read = |json: Option<&Json>| from_json_opt(py, json.map(|j| j.get())).map(Bound::unbind);
    Ok((read(first)?, read(second)?))
}

/// The engine asks this worker to run one of its functions.
#[pyclass(frozen, module = "iii._iii")]
pub struct Invocation {
    /// The object registered with the function (`iii.dispatch.Handler`).
    #[pyo3(get)]
    pub handler: Py<PyAny>,
    /// `None` for a fire-and-forget call: nothing is answered.
    #[pyo3(get)]
    pub invocation_id: Option<String>,
    /// A fresh UUID standing for the missing `invocation_id` of a fire-and-forget call (see
    /// `context_id`).
    local_id: Option<String>,
    #[pyo3(get)]
    pub function_id: String,
    #[pyo3(get)]
    pub data: Py<PyAny>,
    #[pyo3(get)]
    pub metadata: Py<PyAny>,
    #[pyo3(get)]
    pub traceparent: Option<String>,
    #[pyo3(get)]
    pub baggage: Option<String>,
    /// The payload may hold channel references (a cheap test on the raw JSON).
    #[pyo3(get)]
    pub has_channel_refs: bool,
    /// 0.25 (docs/protocol.md C.8): who called, as the engine forwarded it.
    pub caller: Option<Caller>,
    /// 0.25: depth of the causal chain in observe hops (0 when absent).
    #[pyo3(get)]
    pub observe_depth: u32,
    /// 0.25: the observer this call activates.
    pub activation: Option<Activation>,
    /// Nesting of in-process (locally dispatched) calls: 0 for a call from the engine.
    #[pyo3(get)]
    pub local_depth: u32,
}

impl Invocation {
    /// The invocation's id in its context (`current_invocation()`, the `caller` of the calls
    /// its handler makes): `invocation_id`, or a fresh UUID for a fire-and-forget call.
    pub(crate) fn context_id(&self) -> &str {
        self.invocation_id.as_deref().or(self.local_id.as_deref()).unwrap_or_default()
    }
}

#[pymethods]
impl Invocation {
    /// The context of a locally dispatched call (docs/protocol.md C.16): no handler object and
    /// no payload here (the SDK runs the handler itself), a caller given as a dict.
    #[staticmethod]
    #[pyo3(signature = (function_id, invocation_id, caller=None, observe_depth=0, metadata=None, local_depth=1))]
    fn local(
        py: Python<'_>,
        function_id: String,
        invocation_id: String,
        caller: Option<&Bound<'_, PyAny>>,
        observe_depth: u32,
        metadata: Option<Py<PyAny>>,
        local_depth: u32,
    ) -> PyResult<Invocation> {
        let caller = match caller.filter(|c| !c.is_none()) {
            Some(c) => serde_json::from_value(crate::observe::to_value(c)?).ok(),
            None => None,
        };
        Ok(Invocation {
            handler: py.None(),
            invocation_id: Some(invocation_id),
            local_id: None,
            function_id,
            data: py.None(),
            metadata: metadata.unwrap_or_else(|| py.None()),
            traceparent: None,
            baggage: None,
            has_channel_refs: false,
            caller,
            observe_depth,
            activation: None,
            local_depth,
        })
    }

    #[getter(context_id)]
    fn py_context_id(&self) -> &str {
        self.context_id()
    }

    /// The caller as a dict (`iii.Caller`), or None (engines before 0.25).
    #[getter(caller)]
    fn py_caller<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.caller.as_ref().map(|c| from_json(py, &c.to_json())).transpose()
    }

    /// The activation as a dict (`{observer_id, activation_id?}`), or None.
    #[getter(activation)]
    fn py_activation<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        // A struct of strings always serialises.
        let text = |a: &Activation| serde_json::to_string(a).unwrap_or_default();
        self.activation.as_ref().map(|a| from_json(py, &text(a))).transpose()
    }
}

impl Invocation {
    /// The invocation as Python sees it, or, when its data or metadata cannot be read, why,
    /// with the call (to answer it).
    pub(crate) fn new(
        py: Python<'_>,
        call: InvokeFunction,
        handler: &Arc<Py<PyAny>>,
    ) -> Result<Self, Box<(PyErr, InvokeFunction)>> {
        let has_channel_refs = call.data.as_deref().is_some_and(|d| d.get().contains("\"access_key\""));
        let (data, metadata) = match read_both(py, call.data.as_ref(), call.metadata.as_ref()) {
            Ok(both) => both,
            Err(err) => return Err(Box::new((err, call))),
        };
        let local_id = call.invocation_id.is_none().then(|| uuid::Uuid::new_v4().to_string());
        Ok(Invocation {
            handler: handler.clone_ref(py),
            has_channel_refs,
            data,
            metadata,
            invocation_id: call.invocation_id,
            local_id,
            function_id: call.function_id,
            traceparent: call.traceparent,
            baggage: call.baggage,
            caller: call.caller,
            observe_depth: call.observe_depth.unwrap_or(0),
            activation: call.activation,
            local_depth: 0,
        })
    }
}

/// The engine binds (`register` true) or unbinds a trigger of a type this worker provides.
/// Answer a binding with `Connection.answer_binding`.
#[pyclass(frozen, get_all, module = "iii._iii")]
pub struct TriggerBinding {
    pub register: bool,
    pub id: String,
    pub trigger_type: String,
    pub function_id: String,
    pub config: Py<PyAny>,
    pub metadata: Py<PyAny>,
    pub namespace: Option<String>,
}

/// What arrives from the engine about a binding, before it meets Python.
pub(crate) enum Binding {
    Register(RegisterTrigger),
    Unregister { id: String, trigger_type: Option<String> },
}

impl TriggerBinding {
    /// The binding as Python sees it, or, when its config or metadata cannot be read, why,
    /// with the binding (to answer it).
    pub(crate) fn new(py: Python<'_>, binding: Binding) -> Result<Self, Box<(PyErr, RegisterTrigger)>> {
        Ok(match binding {
            Binding::Register(t) => {
                let (config, metadata) = match read_both(py, t.config.as_ref(), t.metadata.as_ref()) {
                    Ok(both) => both,
                    Err(err) => return Err(Box::new((err, t))),
                };
                TriggerBinding {
                    register: true,
                    id: t.id,
                    trigger_type: t.trigger_type,
                    function_id: t.function_id,
                    config,
                    metadata,
                    namespace: t.namespace,
                }
            }
            Binding::Unregister { id, trigger_type } => TriggerBinding {
                register: false,
                id,
                trigger_type: trigger_type.unwrap_or_default(),
                function_id: String::new(),
                config: py.None(),
                metadata: py.None(),
                namespace: None,
            },
        })
    }
}

/// The connection changed state: connecting, connected, reconnecting, failed, disconnected.
#[pyclass(frozen, get_all, module = "iii._iii")]
pub struct StateChange {
    pub state: &'static str,
}

impl StateChange {
    pub(crate) fn new(state: ConnectionState) -> Self {
        StateChange { state: state.as_str() }
    }
}

/// Something the core wants logged through Python's `logging` (`level` is a `logging` level).
#[pyclass(frozen, get_all, module = "iii._iii")]
pub struct CoreLog {
    pub level: i32,
    pub text: String,
}

impl CoreLog {
    pub(crate) fn new(level: LogLevel, text: String) -> Self {
        let level = match level {
            LogLevel::Debug => 10,
            LogLevel::Info => 20,
            LogLevel::Warn => 30,
            LogLevel::Error => 40,
        };
        CoreLog { level, text }
    }
}

/// Synchronous handlers are stuck and every handler thread is busy: start one more thread
/// (its slot is already reserved).
#[pyclass(frozen, module = "iii._iii")]
pub struct HandlerThreadWanted;

/// The link the SDK loop was reading has ended: stop watching its descriptor, then call
/// `Connection.detach_link`.
#[pyclass(frozen, module = "iii._iii")]
pub struct LinkClosed;
