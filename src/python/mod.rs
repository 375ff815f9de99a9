//! PyO3 bindings: the only code that knows about Python.

mod channel;
mod dispatch;
mod engine;
mod errors;
mod json;
mod runtime;
mod worker;

use pyo3::prelude::*;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<worker::Worker>()?;
    m.add_class::<dispatch::LoopQueue>()?;
    m.add_class::<channel::ChannelSocket>()?;
    m.add_class::<engine::TestEngine>()?;
    m.add_class::<dispatch::SyncQueue>()?;
    m.add_class::<dispatch::LinkReader>()?;
    m.add_function(wrap_pyfunction!(json::py_dumps, m)?)?;
    m.add_function(wrap_pyfunction!(json::py_loads, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
