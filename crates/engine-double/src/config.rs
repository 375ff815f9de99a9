//! The engine double's settings and what it records of each upgrade request.

use std::time::Duration;

/// What a client sent to open one WebSocket (worker link or channel end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// Path and query.
    pub resource: String,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    pub queues: Vec<QueueConfig>,
    /// How often `engine::functions-available` looks for changes (the real engine: 5 s).
    pub functions_poll_interval: Duration,
    /// Newer-engine ("HEAD", protocol.md Part B) behaviours: `reattach_token` in
    /// `workerregistered`, the `reattach` message, `registrationrejected` for worker-name and
    /// function-id conflicts, registrations buffered until the namespace is known, HEAD's
    /// listing functions and shapes, namespaces on calls, and enqueue through
    /// `engine::queue::enqueue` (see `head`).
    pub head_protocol: bool,
    /// HEAD mode: how long a connection's registrations wait for `engine::workers::register`
    /// before they are applied in the `default` namespace (the real engine: 5 s).
    pub registration_grace: Duration,
    /// HEAD mode: behave as if the standalone queue worker were installed (`enqueue` goes to
    /// the engine's queues, `engine::queue::enqueue` is listed).
    pub queue_worker: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 0,
            queues: vec![QueueConfig::default()],
            functions_poll_interval: Duration::from_secs(5),
            head_protocol: false,
            registration_grace: Duration::from_secs(5),
            queue_worker: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub name: String,
    /// Total deliveries of a failing message before it goes to the dead-letter list.
    pub max_retries: u32,
    pub backoff_ms: u64,
    pub concurrency: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self { name: "default".into(), max_retries: 3, backoff_ms: 200, concurrency: 10 }
    }
}
