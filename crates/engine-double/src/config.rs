//! The engine double's settings and what it records of each upgrade request.

use std::str::FromStr;
use std::time::Duration;

/// What a client sent to open one WebSocket (worker link or channel end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// Path and query.
    pub resource: String,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
}

/// Which real engine the double behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Generation {
    /// Engine v0.11.0 (docs/protocol.md Part A).
    #[default]
    V011,
    /// The engines after v0.11.0 up to 0.23 (docs/protocol.md Part B, "HEAD").
    Head,
    /// Engine 0.25.0: HEAD plus feature negotiation (`workerregistered` answers
    /// `engine::workers::register` and carries the engine's `features`), the `caller` the engine
    /// stamps on forwarded calls with their `observe_depth` and `metadata`, the
    /// `x-iii-capabilities` upgrade header, the telemetry-only `/otel` socket (see `v025`), and
    /// the observe family: observers, observable functions, reports and owner calls (`observe`).
    V025,
}

impl Generation {
    /// The name `iii.testing.Engine(generation=...)` uses.
    pub fn name(self) -> &'static str {
        match self {
            Generation::V011 => "v0.11",
            Generation::Head => "head",
            Generation::V025 => "0.25",
        }
    }
}

impl FromStr for Generation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v0.11" | "0.11" => Ok(Generation::V011),
            "head" => Ok(Generation::Head),
            "0.25" | "v0.25" => Ok(Generation::V025),
            other => Err(format!("unknown engine generation {other:?} (expected v0.11, head or 0.25)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    pub queues: Vec<QueueConfig>,
    /// How often `engine::functions-available` looks for changes (the real engine: 5 s).
    pub functions_poll_interval: Duration,
    /// The engine to behave like; see `effective_generation` for how `head_protocol` combines.
    pub generation: Generation,
    /// Asks for at least `Generation::Head`: the newer-engine (docs/protocol.md Part B) behaviours,
    /// `reattach_token` in `workerregistered`, the `reattach` message, `registrationrejected` for
    /// worker-name and function-id conflicts, registrations buffered until the namespace is
    /// known, HEAD's listing functions and shapes, namespaces on calls, and enqueue through
    /// `engine::queue::enqueue` (see `head`). Kept for callers that predate `generation`.
    pub head_protocol: bool,
    /// When set (and not blank), every WebSocket upgrade must carry
    /// `Authorization: Bearer <token>`, else it is refused with 401.
    pub token: Option<String>,
    /// HEAD and later: how long a connection's registrations wait for `engine::workers::register`
    /// before they are applied in the `default` namespace (the real engine: 5 s).
    pub registration_grace: Duration,
    /// HEAD and later: behave as if the standalone queue worker were installed (`enqueue` goes to
    /// the engine's queues, `engine::queue::enqueue` is listed).
    pub queue_worker: bool,
    /// 0.25: how long the observers of a worker that went away stay `suspended`, waiting for an
    /// `observe` replay, before they are removed (the real engine: 30 s).
    pub observer_grace: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 0,
            queues: vec![QueueConfig::default()],
            functions_poll_interval: Duration::from_secs(5),
            generation: Generation::V011,
            head_protocol: false,
            token: None,
            registration_grace: Duration::from_secs(5),
            queue_worker: false,
            observer_grace: Duration::from_secs(30),
        }
    }
}

impl EngineConfig {
    /// `generation`, raised to `Head` when `head_protocol` asks for it.
    pub fn effective_generation(&self) -> Generation {
        if self.head_protocol {
            self.generation.max(Generation::Head)
        } else {
            self.generation
        }
    }

    /// The Part B behaviours apply (HEAD and every later generation).
    pub(crate) fn head_rules(&self) -> bool {
        self.effective_generation() >= Generation::Head
    }

    pub(crate) fn v025(&self) -> bool {
        self.effective_generation() >= Generation::V025
    }

    /// The token upgrades must present; a blank one counts as none.
    pub(crate) fn required_token(&self) -> Option<&str> {
        self.token.as_deref().map(str::trim).filter(|t| !t.is_empty())
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
