//! `TestEngine`: the engine double (`iii_engine_double`) for Python tests and examples.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::runtime;
use iii_engine_double::config::QueueConfig;
use iii_engine_double::{EngineConfig, EngineHandle, Generation};

/// An in-process iii engine for tests; see `iii.testing.Engine`.
#[pyclass(frozen, module = "iii._iii")]
pub struct TestEngine {
    handle: EngineHandle,
}

/// A queue of `iii.testing.Engine(queues=...)`: a name, or a dict of `QueueConfig`'s fields
/// (the missing ones keep their defaults).
#[derive(FromPyObject)]
enum QueueSpec {
    Name(String),
    Fields(#[pyo3(from_py_with = queue_fields)] QueueConfig),
}

fn queue_fields(spec: &Bound<'_, PyAny>) -> PyResult<QueueConfig> {
    #[derive(FromPyObject)]
    #[pyo3(from_item_all)]
    struct Fields {
        name: String,
        #[pyo3(default)]
        max_retries: Option<u32>,
        #[pyo3(default)]
        backoff_ms: Option<u64>,
        #[pyo3(default)]
        concurrency: Option<usize>,
    }
    let f: Fields = spec.extract()?;
    let d = QueueConfig::default();
    Ok(QueueConfig {
        name: f.name,
        max_retries: f.max_retries.unwrap_or(d.max_retries),
        backoff_ms: f.backoff_ms.unwrap_or(d.backoff_ms),
        concurrency: f.concurrency.unwrap_or(d.concurrency),
    })
}

impl From<QueueSpec> for QueueConfig {
    fn from(spec: QueueSpec) -> Self {
        match spec {
            QueueSpec::Name(name) => QueueConfig { name, ..QueueConfig::default() },
            QueueSpec::Fields(config) => config,
        }
    }
}

#[pymethods]
impl TestEngine {
    #[new]
    #[pyo3(signature = (host="127.0.0.1".to_owned(), port=0, queues=None, functions_poll_interval_ms=5000, head_protocol=false, registration_grace_ms=5000, queue_worker=false, generation=None, token=None, observer_grace_ms=30000))]
    #[allow(clippy::too_many_arguments)] // mirrors `iii.testing.Engine`'s keyword arguments
    fn new(
        py: Python<'_>,
        host: String,
        port: u16,
        queues: Option<Vec<QueueSpec>>,
        functions_poll_interval_ms: u64,
        head_protocol: bool,
        registration_grace_ms: u64,
        queue_worker: bool,
        generation: Option<String>,
        token: Option<String>,
        observer_grace_ms: u64,
    ) -> PyResult<Self> {
        let generation = match generation {
            Some(name) => name.parse::<Generation>().map_err(PyValueError::new_err)?,
            None => Generation::default(),
        };
        let mut config = EngineConfig {
            host,
            port,
            functions_poll_interval: Duration::from_millis(functions_poll_interval_ms.max(1)),
            generation,
            head_protocol,
            token,
            registration_grace: Duration::from_millis(registration_grace_ms),
            queue_worker,
            observer_grace: Duration::from_millis(observer_grace_ms),
            ..EngineConfig::default()
        };
        if let Some(queues) = queues {
            config.queues = queues.into_iter().map(QueueConfig::from).collect();
        }
        let handle = py.detach(|| runtime::handle().block_on(EngineHandle::start(config)))?;
        Ok(Self { handle })
    }

    /// `ws://host:port` of the engine.
    #[getter]
    fn url(&self) -> String {
        self.handle.url()
    }

    #[getter]
    fn port(&self) -> u16 {
        self.handle.local_addr().port()
    }

    /// Drops every connection without a close frame and stops listening, like a crash.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| runtime::handle().block_on(self.handle.stop()));
    }

    /// Starts again on the same port with empty state.
    fn restart(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| runtime::handle().block_on(self.handle.restart()))?;
        Ok(())
    }

    /// Drops every worker connection abruptly but keeps listening.
    fn disconnect_all(&self) {
        self.handle.disconnect_all();
    }

    /// Sends every worker a Close frame (1000) and drops it; returns once they are cleaned up.
    fn close_all_gracefully(&self, py: Python<'_>) {
        py.detach(|| runtime::handle().block_on(self.handle.close_all_gracefully()));
    }

    /// Stops (`True`) or resumes (`False`) reading every worker socket, without closing them.
    fn pause_reading(&self, paused: bool) {
        self.handle.pause_reading(paused);
    }

    fn channel_count(&self) -> usize {
        self.handle.channel_count()
    }

    fn connection_count(&self) -> usize {
        self.handle.connection_count()
    }

    fn worker_ids(&self) -> Vec<String> {
        self.handle.worker_ids()
    }

    fn function_ids(&self) -> Vec<String> {
        self.handle.function_ids()
    }

    fn trigger_ids(&self) -> Vec<String> {
        self.handle.trigger_ids()
    }

    /// `(worker id, features)` of the live workers that declared `features` when they
    /// registered (`engine::workers::register`), in connection order.
    fn worker_features(&self) -> Vec<(String, Vec<String>)> {
        self.handle.worker_features()
    }

    /// Types of the messages received from workers, oldest first.
    fn received_kinds(&self) -> Vec<String> {
        self.handle.received_kinds()
    }

    fn reported_items(&self) -> Vec<String> {
        self.handle.reported_items()
    }

    fn local_stats(&self) -> Vec<(String, u64, u64)> {
        self.handle.local_stats()
    }

    fn logs(&self) -> Vec<String> {
        self.handle.logs()
    }

    /// `(path and query, [(lower-case header name, value)])` of every upgrade so far.
    fn upgrade_requests(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.handle.upgrade_requests().into_iter().map(|u| (u.resource, u.headers)).collect()
    }

    fn dead_letters(&self, queue: &str) -> Vec<String> {
        self.handle.dead_letters(queue)
    }

    /// Sends a raw text frame to one worker (for hostile-input tests).
    fn send_raw(&self, worker_id: &str, frame: String) -> bool {
        self.handle.send_raw(worker_id, frame)
    }

    fn send_raw_binary(&self, worker_id: &str, data: Vec<u8>) -> bool {
        self.handle.send_raw_binary(worker_id, data)
    }
}
