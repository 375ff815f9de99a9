//! `stream::*` and `state::*` built-ins (protocol.md 6.8, 7.1, 7.2).

/// stream name (or state scope) -> group -> item -> value.
#[derive(Default)]
pub(crate) struct Store {}
