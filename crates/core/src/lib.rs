//! Core of the iii SDK, in plain Rust: the connection to the engine (transport, reconnect,
//! replay), invocation correlation, channels and telemetry export. No Python here: the
//! `iii-python` crate binds it.

pub mod channels;
pub mod connection;
pub mod filter;
pub mod invocations;
pub mod observe;
mod percent;
pub mod telemetry;
