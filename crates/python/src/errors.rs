//! The one place where core errors become Python exceptions. The classes live in
//! `iii/errors.py` so they can inherit from built-ins (`TimeoutError`, `ConnectionError`...).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use iii_core::invocations::CallError;

static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn class<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyAny> {
    let module = MODULE
        .get_or_try_init(py, || py.import("iii.errors").map(Bound::unbind))
        .expect("iii.errors is part of the package");
    module.bind(py).getattr(name).expect("exception class exists in iii.errors")
}

fn make<'py>(py: Python<'py>, name: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyErr {
    match class(py, name).call1(args) {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

pub fn not_serialisable(py: Python<'_>, what: &str) -> PyErr {
    make(py, "PayloadNotSerializableError", (what,))
}

pub fn protocol(py: Python<'_>, what: &str) -> PyErr {
    make(py, "ProtocolError", (what,))
}

fn make_kw<'py>(
    py: Python<'py>,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
    kwargs: &[(&str, Option<String>)],
) -> PyErr {
    let made = (|| {
        let kw = pyo3::types::PyDict::new(py);
        for (key, value) in kwargs {
            kw.set_item(key, value)?;
        }
        class(py, name).call(args, Some(&kw))
    })();
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

pub fn call_error(py: Python<'_>, err: &CallError) -> PyErr {
    call_error_for(py, err, None, None)
}

/// `call_error` for a call whose invocation id (and function, when known here) the error
/// names, as iii-sdk 0.25.0's do: `InvocationError.invocation_id` is the id on the wire.
pub fn call_error_for(
    py: Python<'_>,
    err: &CallError,
    function_id: Option<&str>,
    invocation_id: Option<&uuid::Uuid>,
) -> PyErr {
    let text = err.to_string();
    let invocation_id = invocation_id.map(|id| id.hyphenated().to_string());
    match err {
        CallError::Remote(body) => make_kw(
            py,
            "InvocationError",
            (body.code.as_str(), body.message.as_str(), body.stacktrace.as_deref()),
            &[("function_id", function_id.map(str::to_owned)), ("invocation_id", invocation_id)],
        ),
        CallError::Timeout { function_id, timeout_ms } => make_kw(
            py,
            "InvocationTimeoutError",
            (text, function_id.as_str(), *timeout_ms),
            &[("invocation_id", invocation_id)],
        ),
        CallError::ConnectionLost { .. } => make(py, "ConnectionLostError", (text,)),
        CallError::NotConnected(_) => make(py, "NotConnectedError", (text,)),
        CallError::OfflineQueueFull { .. } => make(py, "OfflineQueueFullError", (text,)),
        CallError::Shutdown => make(py, "ClientShutdownError", (text,)),
        CallError::TooLarge { size, limit } => make_kw(
            py,
            "PayloadTooLargeError",
            (text, *size, *limit),
            &[("function_id", function_id.map(str::to_owned)), ("invocation_id", invocation_id)],
        ),
    }
}

/// An error on a channel socket (connection refused, closed mid-stream...).
pub fn channel_error(text: String) -> PyErr {
    Python::attach(|py| make(py, "ChannelError", (text,)))
}

/// `InvocationError(code, message)` naming the function it is about (an owner's misuse of
/// `emit` / `call`, docs/protocol.md C.14).
pub fn invocation_error(py: Python<'_>, body: &iii_protocol::ErrorBody, function_id: Option<&str>) -> PyErr {
    let args = (body.code.as_str(), body.message.as_str());
    make_kw(py, "InvocationError", args, &[("function_id", function_id.map(str::to_owned))])
}

/// The class a call's error becomes, by name (a span ended with it records this name).
pub fn class_name(err: &CallError) -> &'static str {
    match err {
        CallError::Remote(_) => "InvocationError",
        CallError::Timeout { .. } => "InvocationTimeoutError",
        CallError::ConnectionLost { .. } => "ConnectionLostError",
        CallError::NotConnected(_) => "NotConnectedError",
        CallError::OfflineQueueFull { .. } => "OfflineQueueFullError",
        CallError::Shutdown => "ClientShutdownError",
        CallError::TooLarge { .. } => "PayloadTooLargeError",
    }
}
