//! Rust core of the `iii` Python package. Everything except `python` is plain Rust and is
//! tested with `cargo test`; `python` (behind the `python` feature) holds the PyO3 bindings.

pub mod engine_double;
pub mod invocations;
pub mod protocol;
