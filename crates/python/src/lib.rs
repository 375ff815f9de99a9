//! The `_iii` extension: PyO3 bindings over `iii-core` and the test engine. The only crate
//! that knows about Python.

mod batch;
mod channel;
mod connection;
mod engine;
mod errors;
mod events;
mod filter;
mod handoff;
mod json;
mod observe;
mod options;
mod queues;
mod runtime;
mod telemetry;

use pyo3::prelude::*;

#[pymodule]
fn _iii(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<connection::Connection>()?;
    m.add_class::<queues::LoopQueue>()?;
    m.add_class::<handoff::HandlerThreads>()?;
    m.add_class::<batch::TriggerOutcome>()?;
    m.add_class::<batch::BatchHandle>()?;
    m.add_class::<events::Invocation>()?;
    m.add_class::<events::TriggerBinding>()?;
    m.add_class::<events::StateChange>()?;
    m.add_class::<events::CoreLog>()?;
    m.add_class::<events::LinkClosed>()?;
    m.add_class::<events::HandlerThreadWanted>()?;
    m.add_class::<channel::ChannelSocket>()?;
    m.add_class::<engine::TestEngine>()?;
    m.add_class::<telemetry::Telemetry>()?;
    m.add_class::<telemetry::InvocationSpan>()?;
    m.add_class::<filter::Filter>()?;
    m.add_class::<observe::FunctionState>()?;
    m.add_class::<observe::ObserverEvent>()?;
    m.add_class::<observe::OwnerHook>()?;
    m.add_function(wrap_pyfunction!(channel::channel_url, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry::is_sensitive_key, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
