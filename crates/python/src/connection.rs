//! `Connection`: the Python face of one engine connection (`iii_core::connection::Connection`).
//!
//! The core owns the wire protocol: Python calls typed methods (register a function, a trigger,
//! answer a binding...) and receives typed events (`events.rs`); no protocol message is built
//! or parsed in Python. The function registry lives here too, once: it routes invocations
//! without the GIL and hands the handler object to Python with each invocation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::batch::{Batch, BatchHandle, Plan};
use super::errors;
use super::events::{
    Binding, CoreLog, HandlerThreadWanted, Invocation, LinkClosed, StateChange, TriggerBinding,
};
use super::json::to_json_opt;
use super::observe::{to_value, FunctionState, ObserverEvent, OwnerHook};
use super::options::InitOptions;
use super::queues::{outcome_to_py, AsyncCompletion, Item, JobQueue, LoopQueue, LoopQueueInner};
use super::runtime;
use super::telemetry::{InvocationSpan, Telemetry};
use iii_core::connection::{
    Connection as CoreConnection, ConnectionState, Envelope, EventSink, LogLevel, RegistrationKind, Slot,
    SlotCompletion,
};
use iii_core::invocations::Completion;
use iii_protocol::{
    raw_json, Caller, ErrorBody, InvokeFunction, Json, Message, RegisterFunction, RegisterService,
    RegisterTrigger, RegisterTriggerType, TriggerAction, TriggerRegistrationResult,
};

/// A function this worker registered.
enum Entry {
    /// Run here: on the SDK loop (`is_async`) or on a sync-handler thread.
    Local { handler: Arc<Py<PyAny>>, is_async: bool },
    /// Invoked by the engine over HTTP; never runs here.
    Http,
}

/// Routes what the engine sends. Runs on whichever thread reads the link, so it never touches
/// Python: events wait in the SDK loop's queue or the job queue until a Python thread takes them.
struct Router {
    functions: RwLock<HashMap<String, Entry>>,
    loop_queue: Arc<LoopQueueInner>,
    jobs: Arc<JobQueue>,
}

impl EventSink for Router {
    fn invocation(&self, conn: &CoreConnection, call: InvokeFunction) {
        let refusal = match self.functions.read().get(&call.function_id) {
            Some(Entry::Local { handler, is_async: true }) => {
                self.loop_queue.push(Item::Invoke(call, handler.clone()));
                return;
            }
            Some(Entry::Local { handler, is_async: false }) => {
                self.jobs.push(call, handler.clone(), conn);
                return;
            }
            Some(Entry::Http) => ErrorBody::new(
                "function_not_invokable",
                "Function is HTTP-invoked and cannot be invoked locally",
            ),
            None => {
                ErrorBody::new("function_not_found", format!("Function '{}' not found", call.function_id))
            }
        };
        if let Some(id) = &call.invocation_id {
            conn.answer(id, &call.function_id, Err(&refusal), Envelope::default());
        }
    }

    fn message(&self, _conn: &CoreConnection, message: Message) {
        let item = match message {
            Message::RegisterTrigger(t) => Item::Binding(Binding::Register(t)),
            Message::UnregisterTrigger { id, trigger_type } => {
                Item::Binding(Binding::Unregister { id, trigger_type })
            }
            Message::TriggerRegistrationResult(TriggerRegistrationResult {
                id,
                trigger_type,
                error: Some(error),
                ..
            }) => Item::Log(
                LogLevel::Warn,
                format!(
                    "the engine refused trigger {id} ({trigger_type}): {}: {}",
                    error.code, error.message
                ),
            ),
            Message::RegistrationRejected(r) => Item::Log(
                LogLevel::Error,
                format!(
                    "the engine rejected a registration: {} (function {:?}, namespace {:?}, owner {:?})",
                    r.code, r.function_id, r.namespace, r.owner_worker_id
                ),
            ),
            other => Item::Log(LogLevel::Debug, format!("ignored {} message from the engine", other.kind())),
        };
        self.loop_queue.push(item);
    }

    fn state_changed(&self, state: ConnectionState) {
        self.loop_queue.push(Item::State(state));
    }

    fn log(&self, level: LogLevel, text: &str) {
        self.loop_queue.push(Item::Log(level, text.to_owned()));
    }

    fn observer_news(&self, news: iii_core::observe::ObserverNews) {
        self.loop_queue.push(Item::Observer(news));
    }

    fn owner_hook(&self, hook: iii_core::observe::HookRequest) {
        self.loop_queue.push(Item::Hook(hook));
    }
}

/// One connection to the engine: its registrations, pending calls and the events for the SDK.
#[pyclass(frozen, module = "iii._iii")]
pub struct Connection {
    core: CoreConnection,
    router: Arc<Router>,
    /// The live link while the SDK loop reads it itself (see `iii_core::connection::link`).
    link: Mutex<Option<iii_core::connection::ExternalReader>>,
}

/// A JSON value from Python, kept as raw JSON (`None` stays absent).
fn json_field(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Json>> {
    match value {
        Some(v) => match to_json_opt(v)? {
            Some(text) => Ok(Some(raw_json(&text).expect("the encoder writes valid JSON"))),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// `activation` of an owner's call to its observer's target: the observer, no activation id.
fn activation_json(observer_id: String) -> String {
    // A struct of strings always serialises.
    serde_json::to_string(&iii_protocol::Activation { observer_id, activation_id: None }).unwrap_or_default()
}

/// The fields of a call besides its payload that Python hands over (see `call_extras`).
struct CallExtras {
    metadata: Option<String>,
    caller: Option<String>,
    observe_depth: Option<u32>,
    activation: Option<String>,
}

impl CallExtras {
    fn envelope<'a>(
        &'a self,
        namespace: Option<&'a str>,
        traceparent: Option<&'a str>,
        baggage: Option<&'a str>,
    ) -> Envelope<'a> {
        Envelope {
            namespace,
            traceparent,
            baggage,
            metadata: self.metadata.as_deref(),
            caller: self.caller.as_deref(),
            observe_depth: self.observe_depth,
            activation: self.activation.as_deref(),
        }
    }
}

impl Connection {
    /// Encodes the payload and sends a call that expects an answer under the id `id`;
    /// `completion` gets it.
    #[allow(clippy::too_many_arguments)]
    fn start_call(
        &self,
        id: uuid::Uuid,
        function_id: &str,
        payload: &Bound<'_, PyAny>,
        timeout_ms: u64,
        queue: Option<String>,
        envelope: Envelope<'_>,
        completion: Box<dyn Completion>,
    ) -> PyResult<()> {
        let data = to_json_opt(payload)?;
        let action = queue.map(|queue| TriggerAction::Enqueue { queue });
        let timeout = Duration::from_millis(timeout_ms);
        self.core
            .call_as(id, envelope, function_id, data.as_deref(), action.as_ref(), timeout, completion)
            .map(|_| ())
            .map_err(|e| errors::call_error(payload.py(), &e))
    }

    /// A call's fields besides its payload: its encoded `metadata`; made from the handler of
    /// `parent`, the `caller` it asserts and its `observe_depth` (only to engines that list
    /// `observe.v1`, as 0.25 sends them, docs/protocol.md C.8.1); and an owner's `activation`
    /// of `observer_id` (C.8.3).
    fn call_extras(
        &self,
        metadata: Option<&Bound<'_, PyAny>>,
        parent: Option<&Bound<'_, Invocation>>,
        activation: Option<String>,
    ) -> PyResult<CallExtras> {
        let metadata = metadata.map(to_json_opt).transpose()?.flatten();
        let (caller, observe_depth) = match parent {
            Some(parent) if self.core.engine_observes() => {
                let inv = parent.get();
                let caller = Caller::asserted(&inv.function_id, inv.context_id(), inv.caller.as_ref());
                (Some(caller.to_json()), Some(inv.observe_depth).filter(|d| *d > 0))
            }
            _ => (None, None),
        };
        Ok(CallExtras { metadata, caller, observe_depth, activation: activation.map(activation_json) })
    }

    fn prepare_batch(
        &self,
        py: Python<'_>,
        requests: &Bound<'_, PyAny>,
        plan: &Plan<'_>,
        parent: Option<&Bound<'_, Invocation>>,
    ) -> PyResult<Arc<Batch>> {
        let extras = self.call_extras(None, parent, None)?;
        Batch::prepare(py, self.core.clone(), requests, plan, extras.caller, extras.observe_depth)
    }

    /// Runs a send, holding its frame back when `defer`; true when a `flush` must follow.
    fn sending(&self, defer: bool, send: impl FnOnce() -> PyResult<()>) -> PyResult<bool> {
        if !defer {
            return send().map(|()| false);
        }
        iii_core::connection::deferring(send)?;
        Ok(self.core.take_flush_request())
    }

    fn record(&self, py: Python<'_>, kind: RegistrationKind, id: &str, message: &Message) -> PyResult<()> {
        self.core.register(kind, id, message).map_err(|e| errors::call_error(py, &e))
    }

    /// The invocation for its handler; or, when its data cannot be read into Python, None after
    /// answering the caller with the reason (it would otherwise wait for its whole timeout) and
    /// logging it.
    fn handler_invocation(
        &self,
        py: Python<'_>,
        call: InvokeFunction,
        handler: &Arc<Py<PyAny>>,
    ) -> Option<Invocation> {
        let (err, call) = match Invocation::new(py, call, handler) {
            Ok(invocation) => return Some(invocation),
            Err(refused) => *refused,
        };
        let message = format!("the invocation's data could not be read: {err}");
        if let Some(id) = &call.invocation_id {
            let body = ErrorBody::new("invocation_failed", message.clone());
            let envelope = Envelope::default();
            self.core.answer(id, &call.function_id, Err(&body), envelope);
        }
        let text = format!("function {:?}: {message}", call.function_id);
        self.router.loop_queue.push(Item::Log(LogLevel::Error, text));
        None
    }

    /// Answers a binding whose config cannot be read into Python with the reason, and logs it.
    fn refuse_binding(&self, (err, trigger): (PyErr, RegisterTrigger)) {
        let message = format!("the trigger's config could not be read: {err}");
        let text = format!("trigger {:?} of type {:?}: {message}", trigger.id, trigger.trigger_type);
        let result = Message::TriggerRegistrationResult(TriggerRegistrationResult {
            id: trigger.id,
            trigger_type: trigger.trigger_type,
            function_id: trigger.function_id,
            error: Some(ErrorBody::new("trigger_registration_failed", message)),
        });
        let _ = self.core.send_message(&result); // a lost link ends the binding anyway
        self.router.loop_queue.push(Item::Log(LogLevel::Error, text));
    }
}

#[pymethods]
impl Connection {
    /// Starts connecting to `url` in the background with the settings of `options` (an
    /// `InitOptions`, checked here). Sync handlers run on at most `handler_threads` threads;
    /// `worker_metadata` is the input of the `engine::workers::register` call.
    #[new]
    #[pyo3(signature = (url, options, *, handler_threads, worker_metadata=None))]
    fn new(
        url: String,
        options: InitOptions,
        handler_threads: usize,
        worker_metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut config = options.connection_config(url)?;
        if let Some(meta) = worker_metadata {
            config.worker_metadata = to_json_opt(meta)?;
        }
        let loop_queue = LoopQueueInner::new()?;
        let router = Arc::new(Router {
            functions: RwLock::new(HashMap::new()),
            jobs: JobQueue::new(handler_threads, loop_queue.clone()),
            loop_queue,
        });
        let core = CoreConnection::start(runtime::handle(), config, router.clone());
        Ok(Self { core, router, link: Mutex::new(None) })
    }

    /// The descriptor the SDK loop watches for events; call `poll` when it is readable.
    #[getter]
    fn wake_fd(&self) -> i32 {
        self.router.loop_queue.fd()
    }

    /// Lets the SDK loop read the live link itself: returns the socket's descriptor to watch
    /// (call `poll` when it is readable), or None while disconnected.
    fn attach_link(&self) -> Option<i32> {
        let reader = self.core.attach_reader()?;
        let fd = reader.fd();
        *self.link.lock() = Some(reader);
        Some(fd)
    }

    /// Gives reading back to the runtime. Call after the loop stopped watching the descriptor.
    fn detach_link(&self) {
        self.link.lock().take();
    }

    /// Reads what the link has (when attached), resolves finished calls of this loop, and
    /// returns the other events in order: `Invocation`, `TriggerBinding`, `StateChange`,
    /// `CoreLog`, `HandlerThreadWanted`, `LinkClosed`. None when there are none.
    fn poll<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        let queue = &self.router.loop_queue;
        let mut closed = false;
        if let Some(reader) = self.link.lock().as_mut() {
            queue.owner_pumping.store(true, std::sync::atomic::Ordering::Release);
            closed = !reader.pump();
            queue.owner_pumping.store(false, std::sync::atomic::Ordering::Release);
        }
        let items = queue.take(py);
        if items.is_empty() && !closed {
            return Ok(None);
        }
        let events = PyList::empty(py);
        for item in items {
            match item {
                Item::Invoke(call, handler) => {
                    if let Some(invocation) = self.handler_invocation(py, call, &handler) {
                        events.append(invocation)?;
                    }
                }
                Item::Binding(binding) => match TriggerBinding::new(py, binding) {
                    Ok(binding) => events.append(binding)?,
                    Err(refused) => self.refuse_binding(*refused),
                },
                Item::State(state) => events.append(StateChange::new(state))?,
                Item::Log(level, text) => events.append(CoreLog::new(level, text))?,
                Item::ThreadWanted => events.append(HandlerThreadWanted)?,
                Item::Observer(news) => events.append(ObserverEvent::new(news))?,
                Item::Hook(hook) => events.append(OwnerHook::new(hook))?,
                Item::Done { .. } | Item::BatchDone(..) | Item::Settle(..) => {
                    unreachable!("take() resolves completions")
                }
            }
        }
        if closed {
            events.append(LinkClosed)?;
        }
        Ok(Some(events))
    }

    /// Waits (without the GIL) for the next invocation of a synchronous handler. None once the
    /// SDK is shutting down.
    fn next_job(&self, py: Python<'_>) -> PyResult<Option<Invocation>> {
        loop {
            // A thread that just finished a job takes the next one without a GIL hand-off.
            let job = match self.router.jobs.try_next() {
                Some(job) => Some(job),
                None => {
                    // The answers held back while jobs were queued go out before it waits.
                    self.core.flush_deferred();
                    let jobs = self.router.jobs.clone();
                    py.detach(move || jobs.next())
                }
            };
            let Some(((call, handler), last)) = job else {
                return Ok(None);
            };
            if last {
                // ... and before the last queued job, which may be slow.
                self.core.flush_deferred();
            }
            if let Some(invocation) = self.handler_invocation(py, call, &handler) {
                return Ok(Some(invocation));
            } // else answered with an error: take the next one
        }
    }

    /// Claims a slot for a new sync-handler thread; False when the pool is full or closed.
    fn reserve_handler_thread(&self) -> bool {
        self.router.jobs.reserve_thread()
    }

    /// A reserved sync-handler thread could not start: frees its slot, and the pool grows no more.
    fn handler_thread_not_started(&self) {
        self.router.jobs.thread_not_started();
    }

    /// Ends the sync-handler threads once they finish their current job.
    fn close_jobs(&self) {
        self.router.jobs.close();
    }

    fn state(&self) -> &'static str {
        self.core.state().as_str()
    }

    fn last_error(&self) -> Option<String> {
        self.core.last_error()
    }

    fn worker_id(&self) -> Option<String> {
        self.core.worker_id()
    }

    /// The engine's fatal rejection of this worker, once it ended the connection:
    /// `(code, namespace, worker_name, owner_worker_id)`, absent fields empty.
    fn rejection(&self) -> Option<(String, String, String, String)> {
        self.core.rejection().map(|r| {
            let text = |v: Option<String>| v.unwrap_or_default();
            (r.code, text(r.namespace), text(r.worker_name), text(r.owner_worker_id))
        })
    }

    /// The headers of the upgrade request (`InitOptions.headers`, the `III_TOKEN` bearer), which
    /// a separate telemetry connection sends too.
    fn upgrade_headers(&self) -> HashMap<String, String> {
        self.core.headers().iter().cloned().collect()
    }

    /// The protocol features the engine listed in its last `workerregistered` (0.25: e.g.
    /// `observe.v1`); empty before the first one and for engines before 0.25.
    fn engine_features(&self) -> Vec<String> {
        self.core.engine_features()
    }

    /// `"v0.11"`, `"head"` or `"unknown"` (before the first `workerregistered`).
    fn generation(&self) -> &'static str {
        self.core.generation().as_str()
    }

    fn pending_calls(&self) -> usize {
        self.core.pending_calls()
    }

    /// Waits (without the GIL) until connected, failed or shut down, or `timeout` seconds.
    fn wait_connected(&self, py: Python<'_>, timeout: f64) -> PyResult<&'static str> {
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
        loop {
            let slice =
                deadline.saturating_duration_since(std::time::Instant::now()).min(Duration::from_millis(100));
            let state = py.detach(|| {
                self.core.wait_for(slice, |s| {
                    matches!(
                        s,
                        ConnectionState::Connected | ConnectionState::Failed | ConnectionState::Disconnected
                    )
                })
            });
            if slice.is_zero()
                || !matches!(state, ConnectionState::Connecting | ConnectionState::Reconnecting)
            {
                return Ok(state.as_str());
            }
            py.check_signals()?;
        }
    }

    /// Registers a function run by `handler` here (`is_async`: on the SDK loop, else on a
    /// sync-handler thread), or, with `handler` None, an HTTP-invoked one described by
    /// `invocation`. Raises ValueError for an empty id or one this worker already registered.
    #[pyo3(signature = (
        id, handler, *, is_async=false, description=None, request_format=None, response_format=None,
        metadata=None, invocation=None, observe=None, hooks=false, local_dispatch=true
    ))]
    #[allow(clippy::too_many_arguments)]
    fn register_function(
        &self,
        py: Python<'_>,
        id: String,
        handler: Option<Py<PyAny>>,
        is_async: bool,
        description: Option<String>,
        request_format: Option<&Bound<'_, PyAny>>,
        response_format: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        invocation: Option<&Bound<'_, PyAny>>,
        observe: Option<&Bound<'_, PyAny>>,
        hooks: bool,
        local_dispatch: bool,
    ) -> PyResult<FunctionState> {
        if id.trim().is_empty() {
            return Err(PyValueError::new_err("a function needs a non-empty id"));
        }
        let message = Message::RegisterFunction(RegisterFunction {
            id: id.clone(),
            description,
            request_format: json_field(request_format)?,
            response_format: json_field(response_format)?,
            metadata: json_field(metadata)?,
            invocation: json_field(invocation)?,
            observe: json_field(observe)?,
        });
        let owner_delivery = match observe.filter(|o| !o.is_none()) {
            Some(o) => to_value(o)?.get("delivery").and_then(|d| d.as_str()) == Some("owner"),
            None => false,
        };
        // An HTTP-invoked function has observers and hooks too; it never runs here.
        let state = iii_core::observe::FunctionState::new(
            id.clone(),
            local_dispatch && handler.is_some(),
            hooks,
            owner_delivery,
        );
        let entry = match handler {
            Some(handler) => Entry::Local { handler: Arc::new(handler), is_async },
            None => Entry::Http,
        };
        {
            let mut functions = self.router.functions.write();
            if functions.contains_key(&id) {
                return Err(PyValueError::new_err(format!(
                    "function id {id:?} is already registered by this worker; unregister it first \
                     (FunctionRef.unregister())"
                )));
            }
            functions.insert(id.clone(), entry);
        }
        self.core.own_function(state.clone());
        self.record(py, RegistrationKind::Function, &id, &message).inspect_err(|_| {
            self.router.functions.write().remove(&id);
            self.core.disown_function(&id);
        })?;
        Ok(FunctionState { core: state, conn: self.core.clone() })
    }

    /// Creates an observer (docs/protocol.md C.10.1): None once recorded (sent when the engine
    /// is known to observe, replayed under its id on every connection), or `(code, message)`
    /// when refused here (`INVALID_FILTER`) and nothing was sent.
    #[pyo3(signature = (id, source, target, *, metadata=None, max_fires=None, expires_in_ms=None,
        max_in_flight=None))]
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &self,
        id: String,
        source: &Bound<'_, PyAny>,
        target: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        max_fires: Option<u64>,
        expires_in_ms: Option<u64>,
        max_in_flight: Option<u32>,
    ) -> PyResult<Option<(String, String)>> {
        let source = serde_json::from_value(to_value(source)?)
            .map_err(|e| PyValueError::new_err(format!("invalid observe source: {e}")))?;
        let target = serde_json::from_value(to_value(target)?)
            .map_err(|e| PyValueError::new_err(format!("invalid observe target: {e}")))?;
        let metadata = metadata.filter(|m| !m.is_none()).map(to_value).transpose()?;
        let observe =
            iii_protocol::Observe { id, source, target, metadata, max_fires, expires_in_ms, max_in_flight };
        Ok(self.core.observe(observe).err().map(|e| (e.code, e.message)))
    }

    fn unobserve(&self, id: &str) {
        self.core.unobserve(id);
    }

    /// The observe-family frames (JSON) waiting until the engine says it observes.
    fn held_observe_frames(&self) -> Vec<String> {
        self.core.held_observe_frames()
    }

    /// Reports of local calls waiting to be sent: (items, bytes).
    fn observe_reports_waiting(&self) -> (usize, usize) {
        self.core.observe_reports_waiting()
    }

    /// Invocations of sync handlers waiting for a thread (a diagnostic).
    fn jobs_waiting(&self) -> usize {
        self.router.jobs.waiting()
    }

    /// The SDK loop's own queue, for outcomes that resolve futures on that loop.
    #[getter]
    fn loop_queue(&self) -> LoopQueue {
        LoopQueue { inner: self.router.loop_queue.clone() }
    }

    /// Sends the waiting reports of local calls and their counters now; True when the counters
    /// had anything to send.
    fn flush_observe_reports(&self, py: Python<'_>) -> bool {
        py.detach(|| self.core.flush_observe_reports())
    }

    fn unregister_function(&self, id: &str) {
        self.core.disown_function(id);
        self.router.functions.write().remove(id);
        let frame = Message::UnregisterFunction { id: id.to_owned() }.encode();
        self.core.unregister(RegistrationKind::Function, id, Some(frame));
    }

    #[pyo3(signature = (id, *, name=None, description=None, parent_service_id=None))]
    fn register_service(
        &self,
        py: Python<'_>,
        id: String,
        name: Option<String>,
        description: Option<String>,
        parent_service_id: Option<String>,
    ) -> PyResult<()> {
        let name = Some(name.unwrap_or_else(|| id.clone()));
        let message = Message::RegisterService(RegisterService {
            id: id.clone(),
            name,
            description,
            parent_service_id,
        });
        self.record(py, RegistrationKind::Service, &id, &message)
    }

    /// Binds a trigger to a function; returns the binding's id (a new UUID).
    #[pyo3(signature = (trigger_type, function_id, config=None, metadata=None, namespace=None, trigger_namespace=None))]
    #[allow(clippy::too_many_arguments)] // the fields of `registertrigger`
    fn register_trigger(
        &self,
        py: Python<'_>,
        trigger_type: String,
        function_id: String,
        config: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        namespace: Option<String>,
        trigger_namespace: Option<String>,
    ) -> PyResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let message = Message::RegisterTrigger(RegisterTrigger {
            id: id.clone(),
            trigger_type,
            function_id,
            config: json_field(config)?,
            metadata: json_field(metadata)?,
            namespace,
            trigger_namespace,
        });
        self.record(py, RegistrationKind::Trigger, &id, &message)?;
        Ok(id)
    }

    fn unregister_trigger(&self, id: &str, trigger_type: String) {
        let frame =
            Message::UnregisterTrigger { id: id.to_owned(), trigger_type: Some(trigger_type) }.encode();
        self.core.unregister(RegistrationKind::Trigger, id, Some(frame));
    }

    #[pyo3(signature = (id, description, trigger_request_format=None, call_request_format=None))]
    fn register_trigger_type(
        &self,
        py: Python<'_>,
        id: String,
        description: String,
        trigger_request_format: Option<&Bound<'_, PyAny>>,
        call_request_format: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let message = Message::RegisterTriggerType(RegisterTriggerType {
            id: id.clone(),
            description,
            trigger_request_format: json_field(trigger_request_format)?,
            call_request_format: json_field(call_request_format)?,
        });
        self.record(py, RegistrationKind::TriggerType, &id, &message)
    }

    fn unregister_trigger_type(&self, id: &str) {
        let frame = Message::UnregisterTriggerType { id: id.to_owned() }.encode();
        self.core.unregister(RegistrationKind::TriggerType, id, Some(frame));
    }

    /// Tells the engine whether this worker accepted a binding of its trigger type.
    #[pyo3(signature = (binding, error_code=None, error_message=None))]
    fn answer_binding(
        &self,
        py: Python<'_>,
        binding: &TriggerBinding,
        error_code: Option<String>,
        error_message: Option<String>,
    ) -> PyResult<()> {
        let error = error_code.map(|code| ErrorBody::new(code, error_message.unwrap_or_default()));
        let message = Message::TriggerRegistrationResult(TriggerRegistrationResult {
            id: binding.id.clone(),
            trigger_type: binding.trigger_type.clone(),
            function_id: binding.function_id.clone(),
            error,
        });
        self.core.send_message(&message).map_err(|e| errors::call_error(py, &e))
    }

    /// Sends `telemetry`'s frames on this connection (the worker's own link).
    fn bind_telemetry(&self, telemetry: &Telemetry) {
        telemetry.bind_connection(&self.core);
    }

    /// Handles `frame` as if the engine had sent it (`III._handle_message`).
    fn inject(&self, frame: &[u8]) {
        self.core.handle_inbound(frame);
    }

    /// Calls a function and waits for its result with the GIL released (Ctrl-C still works).
    /// `metadata` travels with the call; `parent` is the invocation whose handler makes the
    /// call (its `caller` and `observe_depth` go with it on engines with `observe.v1`).
    #[pyo3(signature = (
        function_id, payload, timeout_ms, queue=None, namespace=None, traceparent=None, baggage=None,
        *, metadata=None, parent=None, activation=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        py: Python<'_>,
        function_id: &str,
        payload: &Bound<'_, PyAny>,
        timeout_ms: u64,
        queue: Option<String>,
        namespace: Option<&str>,
        traceparent: Option<&str>,
        baggage: Option<&str>,
        metadata: Option<&Bound<'_, PyAny>>,
        parent: Option<&Bound<'_, Invocation>>,
        activation: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let slot = Arc::new(Slot::default());
        let completion = Box::new(SlotCompletion(slot.clone()));
        let extras = self.call_extras(metadata, parent, activation)?;
        let envelope = extras.envelope(namespace, traceparent, baggage);
        let id = iii_core::connection::invocation_id();
        self.start_call(id, function_id, payload, timeout_ms, queue, envelope, completion)?;
        let outcome = loop {
            if let Some(outcome) = py.detach(|| self.core.wait_result(&slot, Duration::from_millis(100))) {
                break outcome;
            }
            py.check_signals()?;
        };
        outcome_to_py(py, outcome, Some(function_id), &id)
    }

    /// Calls a function; `future` gets the outcome through `loop_queue` (None: the SDK loop's).
    /// With `defer` (the SDK loop only), the frame may be held back: True means call `flush`
    /// soon (see `iii_core::connection::deferring`).
    #[pyo3(signature = (
        function_id, payload, timeout_ms, queue, future, loop_queue=None, namespace=None, defer=false,
        traceparent=None, baggage=None, *, metadata=None, parent=None, activation=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn call_async(
        &self,
        function_id: &str,
        payload: &Bound<'_, PyAny>,
        timeout_ms: u64,
        queue: Option<String>,
        future: Py<PyAny>,
        loop_queue: Option<&LoopQueue>,
        namespace: Option<&str>,
        defer: bool,
        traceparent: Option<&str>,
        baggage: Option<&str>,
        metadata: Option<&Bound<'_, PyAny>>,
        parent: Option<&Bound<'_, Invocation>>,
        activation: Option<String>,
    ) -> PyResult<bool> {
        let queue_inner = loop_queue.map_or_else(|| self.router.loop_queue.clone(), |q| q.inner.clone());
        let id = iii_core::connection::invocation_id();
        let completion = Box::new(AsyncCompletion { future, queue: queue_inner, invocation_id: id });
        let extras = self.call_extras(metadata, parent, activation)?;
        let envelope = extras.envelope(namespace, traceparent, baggage);
        self.sending(defer, || {
            self.start_call(id, function_id, payload, timeout_ms, queue, envelope, completion)
        })
    }

    /// Sends a batch of calls, at most `max_in_flight` pending at a time, and waits (without
    /// the GIL) for all of them; returns one `TriggerOutcome` per request, in order.
    /// `requests` are `trigger()`'s requests, read as `batch::Batch::prepare` says (plain dicts
    /// here, the rest through `normalize(index, request)`), or, with `normalized`, already
    /// `(function_id, payload, timeout_ms, queue, void, namespace, traceparent, baggage,
    /// metadata, span)` tuples. A request that cannot be sent raises before anything is sent.
    #[pyo3(signature = (
        requests, max_in_flight, normalize, *, normalized=false, timeout_ms, namespace=None,
        engine_prefixes, parent=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn call_many<'py>(
        &self,
        py: Python<'py>,
        requests: &Bound<'py, PyAny>,
        max_in_flight: usize,
        normalize: Bound<'py, PyAny>,
        normalized: bool,
        timeout_ms: u64,
        namespace: Option<String>,
        engine_prefixes: Vec<String>,
        parent: Option<&Bound<'_, Invocation>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let plan = Plan { max_in_flight, normalized, normalize, timeout_ms, namespace, engine_prefixes };
        let batch = self.prepare_batch(py, requests, &plan, parent)?;
        batch.start(None);
        batch.wait(py)?;
        batch.outcomes(py)
    }

    /// `call_many` for an event loop: `future` gets the list through `loop_queue` (None: the
    /// SDK loop's). Returns the handle that cancels the batch.
    #[pyo3(signature = (
        requests, max_in_flight, normalize, future, loop_queue=None, *, normalized=false, timeout_ms,
        namespace=None, engine_prefixes, parent=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn call_many_async<'py>(
        &self,
        py: Python<'py>,
        requests: &Bound<'py, PyAny>,
        max_in_flight: usize,
        normalize: Bound<'py, PyAny>,
        future: Py<PyAny>,
        loop_queue: Option<&LoopQueue>,
        normalized: bool,
        timeout_ms: u64,
        namespace: Option<String>,
        engine_prefixes: Vec<String>,
        parent: Option<&Bound<'_, Invocation>>,
    ) -> PyResult<BatchHandle> {
        let plan = Plan { max_in_flight, normalized, normalize, timeout_ms, namespace, engine_prefixes };
        let batch = self.prepare_batch(py, requests, &plan, parent)?;
        let queue = loop_queue.map_or_else(|| self.router.loop_queue.clone(), |q| q.inner.clone());
        batch.start(Some((future, queue)));
        Ok(BatchHandle { batch })
    }

    /// Fire-and-forget call; the other arguments as for `call_async`.
    #[pyo3(signature = (
        function_id, payload, namespace=None, defer=false, traceparent=None, baggage=None, *,
        metadata=None, parent=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn call_void(
        &self,
        py: Python<'_>,
        function_id: &str,
        payload: &Bound<'_, PyAny>,
        namespace: Option<&str>,
        defer: bool,
        traceparent: Option<&str>,
        baggage: Option<&str>,
        metadata: Option<&Bound<'_, PyAny>>,
        parent: Option<&Bound<'_, Invocation>>,
    ) -> PyResult<bool> {
        let data = to_json_opt(payload)?;
        let extras = self.call_extras(metadata, parent, None)?;
        let envelope = extras.envelope(namespace, traceparent, baggage);
        self.sending(defer, || {
            self.core
                .call_void(envelope, function_id, data.as_deref())
                .map_err(|e| errors::call_error(py, &e))
        })
    }

    /// Answers `invocation` with `value`, or with `error` (code, message, stacktrace) when
    /// given. `span` is ended first (one already ended with its error stays as it is) and the
    /// answer carries its trace headers. On the SDK loop (`on_loop`) the frame may be held back:
    /// True means call `flush` soon. On a sync-handler thread it is held back while more jobs
    /// are queued, and written by the job queue (see `JobQueue`). A value that cannot be encoded
    /// is answered with an `invocation_failed` error instead, and logged.
    #[pyo3(signature = (invocation, value, on_loop=false, span=None, error=None))]
    fn answer(
        &self,
        invocation: &Bound<'_, Invocation>,
        value: &Bound<'_, PyAny>,
        on_loop: bool,
        span: Option<&Bound<'_, InvocationSpan>>,
        error: Option<(String, String, Option<String>)>,
    ) -> bool {
        let inv = invocation.get();
        let span = span.map(Bound::get);
        if let Some(span) = span {
            // The output event holds the result; an error was recorded by `end_error`.
            if error.is_none() {
                span.end_with(value);
            } else {
                span.end();
            }
        }
        let Some(id) = inv.invocation_id.as_deref() else {
            return false; // fire-and-forget: nothing goes back
        };
        let traceparent = span.map(InvocationSpan::traceparent);
        let envelope = Envelope {
            traceparent: traceparent.as_deref(),
            baggage: span.and_then(InvocationSpan::baggage),
            ..Envelope::default()
        };
        let function_id = &inv.function_id;
        let body = error.map(|(code, message, stacktrace)| ErrorBody { code, message, stacktrace });
        let encoded = if body.is_some() { Ok(None) } else { to_json_opt(value) };
        let send = || {
            match (&body, &encoded) {
                (Some(body), _) => self.core.answer(id, function_id, Err(body), envelope),
                (None, Ok(text)) => self.core.answer(id, function_id, Ok(text.as_deref()), envelope),
                (None, Err(err)) => {
                    let message = format!("the function returned a value that cannot be sent: {err}");
                    let body = ErrorBody::new("invocation_failed", message);
                    self.core.answer(id, function_id, Err(&body), envelope);
                }
            }
            Ok(())
        };
        let flush = if !on_loop && self.router.jobs.waiting() > 0 {
            // Not `sending`: the loop's flush request stays the loop's to take.
            iii_core::connection::deferring(send).map(|()| false)
        } else {
            self.sending(on_loop, send)
        };
        if let (None, Err(err)) = (&body, &encoded) {
            let text = format!("function {function_id:?} returned a value that cannot be sent: {err}");
            self.router.loop_queue.push(Item::Log(LogLevel::Error, text));
        }
        flush.unwrap_or(false)
    }

    /// Writes the frames held back by `defer`.
    fn flush(&self) {
        self.core.flush_deferred();
    }

    /// Fails pending calls, closes the connection and stops reconnecting. Waits up to
    /// `timeout` seconds for the socket to close.
    #[pyo3(signature = (timeout=2.0))]
    fn shutdown(&self, py: Python<'_>, timeout: f64) {
        self.core.shutdown();
        self.router.jobs.close();
        // Handlers often hold the client that holds this connection: let that cycle go.
        self.router.functions.write().clear();
        py.detach(|| {
            self.core.wait_for(Duration::from_secs_f64(timeout.max(0.0)), |s| {
                matches!(s, ConnectionState::Disconnected | ConnectionState::Failed)
            })
        });
    }
}
