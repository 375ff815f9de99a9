//! HTTP-invoked functions (protocol.md 2.3.1).

pub(crate) struct HttpFunction {}
