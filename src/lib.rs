//! Rust core of the `iii` Python package. Everything except `python` is plain Rust and is
//! tested with `cargo test`; `python` (behind the `python` feature) holds the PyO3 bindings.

// Crate-private unless a bench needs it, so that dead code warns. Without the bindings nothing
// outside the tests uses the connection, so dead code is reported by the `python` build only.
#[cfg_attr(not(feature = "python"), allow(dead_code))]
mod channels;
#[cfg_attr(not(feature = "python"), allow(dead_code))]
mod connection;
#[cfg_attr(not(feature = "python"), allow(dead_code))]
mod engine_double;
pub mod invocations;
mod percent;
pub mod protocol;
pub mod telemetry;

#[cfg(feature = "python")]
mod python;

#[cfg(feature = "python")]
#[pyo3::pymodule]
fn _iii(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    python::register(m)
}
