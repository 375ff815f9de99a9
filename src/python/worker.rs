//! `Worker`: the Python face of one engine connection (`crate::connection::Client`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::dispatch::{
    outcome_to_py, AsyncCompletion, BlockingCompletion, Item, LinkReader, LoopQueue, LoopQueueInner, Slot,
    SyncQueue, SyncQueueInner,
};
use super::errors;
use super::json::{to_json, to_json_opt};
use super::runtime;
use crate::connection::{Client, ClientConfig, ConnectionState, EventSink, LogLevel, RegistrationKind};
use crate::invocations::Completion;
use crate::protocol::{ErrorBody, InvokeFunction, Message, TriggerAction};

#[derive(Clone, Copy, PartialEq, Eq)]
enum HandlerKind {
    Async,
    Sync,
    Http,
}

/// Routes what the engine sends: invocations to the right queue by handler kind, everything
/// else to the SDK loop. Runs on runtime threads, so it never touches Python.
struct Dispatch {
    kinds: RwLock<HashMap<String, HandlerKind>>,
    loop_queue: Arc<LoopQueueInner>,
    sync_queue: Arc<SyncQueueInner>,
}

impl EventSink for Dispatch {
    fn invocation(&self, client: &Client, call: InvokeFunction) {
        let kind = self.kinds.read().get(&call.function_id).copied();
        let refuse = |code: &str, message: String| {
            if let Some(id) = &call.invocation_id {
                client.send_result(id, &call.function_id, Err(&ErrorBody::new(code, message)));
            }
        };
        match kind {
            Some(HandlerKind::Async) => self.loop_queue.push(Item::Invoke(call)),
            Some(HandlerKind::Sync) => self.sync_queue.push(call),
            Some(HandlerKind::Http) => refuse(
                "function_not_invokable",
                "Function is HTTP-invoked and cannot be invoked locally".to_owned(),
            ),
            None => refuse("function_not_found", format!("Function '{}' not found", call.function_id)),
        }
    }

    fn message(&self, _client: &Client, message: Message) {
        self.loop_queue.push(Item::Message(message));
    }

    fn state_changed(&self, state: ConnectionState) {
        self.loop_queue.push(Item::State(state));
    }

    fn log(&self, level: LogLevel, text: &str) {
        self.loop_queue.push(Item::Log(level, text.to_owned()));
    }
}

/// One connection to the engine, with its registrations and pending calls.
#[pyclass(frozen, module = "iii._iii")]
pub struct Worker {
    client: Client,
    dispatch: Arc<Dispatch>,
}

fn opt<T>(options: &Bound<'_, PyDict>, key: &str) -> PyResult<Option<T>>
where
    T: for<'py> pyo3::conversion::FromPyObjectOwned<'py>,
{
    match options.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v.extract::<T>().map_err(Into::into)?)),
        _ => Ok(None),
    }
}

fn registration_kind(kind: &str) -> PyResult<RegistrationKind> {
    Ok(match kind {
        "trigger_type" => RegistrationKind::TriggerType,
        "service" => RegistrationKind::Service,
        "function" => RegistrationKind::Function,
        "trigger" => RegistrationKind::Trigger,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown registration kind {other:?}"
            )))
        }
    })
}

impl Worker {
    /// Encodes the payload and sends a call that expects an answer; `completion` gets it.
    fn start_call(
        &self,
        function_id: &str,
        payload: &Bound<'_, PyAny>,
        timeout_ms: u64,
        queue: Option<String>,
        completion: Box<dyn Completion>,
    ) -> PyResult<()> {
        let data = to_json_opt(payload)?;
        let action = queue.map(|queue| TriggerAction::Enqueue { queue });
        let timeout = Duration::from_millis(timeout_ms);
        self.client
            .call(function_id, data.as_deref(), action.as_ref(), timeout, completion)
            .map(|_| ())
            .map_err(|e| errors::call_error(payload.py(), &e))
    }
}

#[pymethods]
impl Worker {
    /// Starts connecting to `url` in the background. `options` holds the connection settings
    /// (see `iii/client.py`), `loop_queue` receives events for the SDK loop, `sync_queue` the
    /// invocations of synchronous handlers.
    #[new]
    fn new(
        url: String,
        options: &Bound<'_, PyDict>,
        loop_queue: &LoopQueue,
        sync_queue: &SyncQueue,
    ) -> PyResult<Self> {
        let mut config = ClientConfig::new(url);
        if let Some(headers) = opt::<HashMap<String, String>>(options, "headers")? {
            config.headers = headers.into_iter().collect();
        }
        if let Some(v) = opt(options, "max_message_size")? {
            config.max_message_size = v;
        }
        let r = &mut config.reconnect;
        if let Some(v) = opt(options, "initial_delay_ms")? {
            r.initial_delay_ms = v;
        }
        if let Some(v) = opt(options, "max_delay_ms")? {
            r.max_delay_ms = v;
        }
        if let Some(v) = opt(options, "backoff_multiplier")? {
            r.backoff_multiplier = v;
        }
        if let Some(v) = opt(options, "jitter_factor")? {
            r.jitter_factor = v;
        }
        if let Some(v) = opt(options, "max_retries")? {
            r.max_retries = v;
        }
        for (key, field) in [
            ("connect_timeout_ms", &mut config.connect_timeout),
            ("ping_interval_ms", &mut config.ping_interval),
            ("idle_timeout_ms", &mut config.idle_timeout),
        ] {
            if let Some(ms) = opt::<u64>(options, key)? {
                *field = Duration::from_millis(ms.max(1));
            }
        }
        if let Some(v) = opt(options, "offline_queue_limit")? {
            config.offline_queue_limit = v;
        }
        if let Some(meta) = options.get_item("worker_metadata")? {
            config.worker_metadata = to_json_opt(&meta)?;
        }
        let dispatch = Arc::new(Dispatch {
            kinds: RwLock::new(HashMap::new()),
            loop_queue: loop_queue.inner.clone(),
            sync_queue: sync_queue.inner.clone(),
        });
        let client = Client::start(runtime::handle(), config, dispatch.clone());
        Ok(Self { client, dispatch })
    }

    /// Lets the SDK loop read the live link itself (None while disconnected).
    fn attach_reader(&self) -> Option<LinkReader> {
        let reader = self.client.attach_reader()?;
        let fd = reader.fd();
        Some(LinkReader {
            reader: parking_lot::Mutex::new(reader),
            queue: self.dispatch.loop_queue.clone(),
            fd,
        })
    }

    fn state(&self) -> &'static str {
        self.client.state().as_str()
    }

    fn last_error(&self) -> Option<String> {
        self.client.last_error()
    }

    fn worker_id(&self) -> Option<String> {
        self.client.worker_id()
    }

    fn pending_calls(&self) -> usize {
        self.client.pending_calls()
    }

    /// Waits (without the GIL) until connected, failed or shut down, or `timeout` seconds.
    fn wait_connected(&self, py: Python<'_>, timeout: f64) -> PyResult<&'static str> {
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
        loop {
            let slice =
                deadline.saturating_duration_since(std::time::Instant::now()).min(Duration::from_millis(100));
            let state = py.detach(|| {
                self.client.wait_for(slice, |s| {
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

    /// Registers a function. `kind` is "async", "sync" or "http"; `message` the
    /// `registerfunction` message as a dict.
    fn register_function(&self, id: String, kind: &str, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let kind = match kind {
            "async" => HandlerKind::Async,
            "sync" => HandlerKind::Sync,
            "http" => HandlerKind::Http,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown handler kind {other:?}"
                )))
            }
        };
        let frame = to_json(message)?;
        self.dispatch.kinds.write().insert(id.clone(), kind);
        self.client
            .register_frame(RegistrationKind::Function, &id, frame)
            .map_err(|e| errors::call_error(message.py(), &e))
    }

    fn unregister_function(&self, id: &str) {
        self.dispatch.kinds.write().remove(id);
        let frame = Message::UnregisterFunction { id: id.to_owned() }.encode();
        self.client.unregister(RegistrationKind::Function, id, Some(frame));
    }

    /// Records and sends a registration of `kind` ("trigger_type", "service", "trigger").
    fn register(&self, kind: &str, id: &str, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let kind = registration_kind(kind)?;
        let frame = to_json(message)?;
        self.client.register_frame(kind, id, frame).map_err(|e| errors::call_error(message.py(), &e))
    }

    /// Forgets a registration and sends `message` (its unregister message) if given.
    #[pyo3(signature = (kind, id, message=None))]
    fn unregister(&self, kind: &str, id: &str, message: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let kind = registration_kind(kind)?;
        let frame = message.map(to_json).transpose()?;
        self.client.unregister(kind, id, frame);
        Ok(())
    }

    /// Sends one message that is neither a call nor a registration.
    fn send(&self, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let frame = to_json(message)?;
        self.client.send_text(frame).map_err(|e| errors::call_error(message.py(), &e))
    }

    /// Calls a function and waits for its result with the GIL released (Ctrl-C still works).
    #[pyo3(signature = (function_id, payload, timeout_ms, queue=None))]
    fn call(
        &self,
        py: Python<'_>,
        function_id: &str,
        payload: &Bound<'_, PyAny>,
        timeout_ms: u64,
        queue: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let slot = Arc::new(Slot::default());
        self.start_call(function_id, payload, timeout_ms, queue, Box::new(BlockingCompletion(slot.clone())))?;
        let outcome = loop {
            if let Some(outcome) = py.detach(|| slot.wait(Duration::from_millis(100))) {
                break outcome;
            }
            py.check_signals()?;
        };
        outcome_to_py(py, outcome)
    }

    /// Calls a function; `future` (of the loop that owns `loop_queue`) gets the outcome.
    #[pyo3(signature = (function_id, payload, timeout_ms, queue, future, loop_queue))]
    fn call_async(
        &self,
        function_id: &str,
        payload: &Bound<'_, PyAny>,
        timeout_ms: u64,
        queue: Option<String>,
        future: Py<PyAny>,
        loop_queue: &LoopQueue,
    ) -> PyResult<()> {
        let completion = Box::new(AsyncCompletion { future, queue: loop_queue.inner.clone() });
        self.start_call(function_id, payload, timeout_ms, queue, completion)
    }

    /// Fire-and-forget call.
    fn call_void(&self, py: Python<'_>, function_id: &str, payload: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = to_json_opt(payload)?;
        self.client.call_void(function_id, data.as_deref()).map_err(|e| errors::call_error(py, &e))
    }

    /// Answers an invocation with a value. If the value cannot be encoded, the caller gets an
    /// `invocation_failed` error instead and the encoding error is returned (else None).
    fn reply(&self, invocation_id: &str, function_id: &str, value: &Bound<'_, PyAny>) -> Option<String> {
        match to_json_opt(value) {
            Ok(text) => {
                self.client.send_result(invocation_id, function_id, Ok(text.as_deref()));
                None
            }
            Err(err) => {
                let message = format!("the function returned a value that cannot be sent: {err}");
                let body = ErrorBody::new("invocation_failed", message.clone());
                self.client.send_result(invocation_id, function_id, Err(&body));
                Some(message)
            }
        }
    }

    /// Answers an invocation with an error.
    #[pyo3(signature = (invocation_id, function_id, code, message, stacktrace=None))]
    fn reply_error(
        &self,
        invocation_id: &str,
        function_id: &str,
        code: String,
        message: String,
        stacktrace: Option<String>,
    ) {
        let body = ErrorBody { code, message, stacktrace };
        self.client.send_result(invocation_id, function_id, Err(&body));
    }

    /// Fails pending calls, closes the connection and stops reconnecting. Waits up to
    /// `timeout` seconds for the socket to close.
    #[pyo3(signature = (timeout=2.0))]
    fn shutdown(&self, py: Python<'_>, timeout: f64) {
        self.client.shutdown();
        py.detach(|| {
            self.client.wait_for(Duration::from_secs_f64(timeout.max(0.0)), |s| {
                matches!(s, ConnectionState::Disconnected | ConnectionState::Failed)
            })
        });
    }
}
