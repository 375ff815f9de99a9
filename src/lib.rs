//! Rust core of the `iii` Python package. Everything except `python` is plain Rust and is
//! tested with `cargo test`; `python` (behind the `python` feature) holds the PyO3 bindings.

pub mod channels;
pub mod connection;
pub mod engine_double;
pub mod invocations;
pub mod protocol;

#[cfg(feature = "python")]
mod python;

#[cfg(feature = "python")]
#[pyo3::pymodule]
fn _iii(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    python::register(m)
}
