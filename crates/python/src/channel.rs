//! `ChannelSocket`: blocking channel operations (GIL released) for `iii/channels.py`, which
//! runs them in executor threads for its async API.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use std::time::Duration;

use super::runtime;
use iii_core::channels::{ChannelSocket as Socket, Frame};

/// The URL of one channel end (docs/protocol.md 8.2); `base` is the engine URL the worker uses.
#[pyfunction]
pub fn channel_url(base: &str, channel_id: &str, access_key: &str, direction: &str) -> PyResult<String> {
    iii_core::channels::channel_url(base, channel_id, access_key, direction).map_err(closed)
}

#[pyclass(frozen, module = "iii._iii")]
pub struct ChannelSocket {
    socket: Socket,
}

fn closed(e: String) -> PyErr {
    crate::errors::channel_error(e)
}

/// Runs `operation` on the runtime with the GIL released, waking every 100 ms to let Ctrl-C
/// (or any signal handler that raises) through.
fn wait<F>(py: Python<'_>, operation: F) -> PyResult<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let mut operation = std::pin::pin!(operation);
    loop {
        let slice = py.detach(|| {
            // The timer is made inside the runtime: `timeout` needs its context.
            runtime::handle()
                .block_on(async { tokio::time::timeout(Duration::from_millis(100), &mut operation).await })
        });
        match slice {
            Ok(output) => return Ok(output),
            Err(_) => py.check_signals()?,
        }
    }
}

#[pymethods]
impl ChannelSocket {
    /// Opens one channel end (blocking, GIL released), with `III_TOKEN` as its bearer token
    /// as iii-sdk 0.25.0 sends it.
    #[new]
    fn new(py: Python<'_>, url: String, max_message_size: usize) -> PyResult<Self> {
        let token = std::env::var("III_TOKEN").unwrap_or_default();
        let bearer = Some(token.trim()).filter(|t| !t.is_empty());
        let socket = wait(py, Socket::connect(&url, max_message_size, bearer))?.map_err(closed)?;
        Ok(Self { socket })
    }

    /// Writes bytes as binary frames (64 KiB each at most).
    fn write(&self, py: Python<'_>, data: Vec<u8>) -> PyResult<()> {
        wait(py, self.socket.write(&data))?.map_err(closed)
    }

    /// Sends one text message.
    fn send_text(&self, py: Python<'_>, text: String) -> PyResult<()> {
        wait(py, self.socket.send(Frame::Text(text)))?.map_err(closed)
    }

    /// Next frame: bytes, str, or None when the channel is closed.
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match wait(py, self.socket.recv())? {
            None => Ok(None),
            Some(Ok(Frame::Binary(b))) => Ok(Some(PyBytes::new(py, &b).into_any())),
            Some(Ok(Frame::Text(t))) => Ok(Some(t.into_pyobject(py)?.into_any())),
            Some(Err(e)) => Err(closed(e)),
        }
    }

    /// Closes the channel end after the frames queued before.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        wait(py, self.socket.close())
    }
}
