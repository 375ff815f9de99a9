//! Connection settings and the reconnection backoff policy (docs/protocol.md 9.3).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ReconnectPolicy {
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
    pub backoff_multiplier: f64,
    pub jitter_factor: f64,
    /// -1 retries forever.
    pub max_retries: i64,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay_ms: 1000,
            max_delay_ms: 30_000,
            backoff_multiplier: 2.0,
            jitter_factor: 0.3,
            max_retries: -1,
        }
    }
}

impl ReconnectPolicy {
    /// Delay before retry number `attempt` (0-based), without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let factor = self.backoff_multiplier.max(1.0).powi(attempt.min(64) as i32);
        let ms = (self.initial_delay_ms as f64 * factor).min(self.max_delay_ms as f64);
        Duration::from_millis(ms.max(0.0) as u64)
    }

    /// Delay with uniform jitter of +/- `jitter_factor`, given a random number in [0, 1).
    pub fn delay(&self, attempt: u32, unit_random: f64) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let jitter = self.jitter_factor.clamp(0.0, 1.0);
        let scaled = base * (1.0 + jitter * (2.0 * unit_random - 1.0));
        Duration::from_secs_f64(scaled.max(0.0))
    }

    /// Whether another attempt is allowed after `failures` consecutive failures.
    pub fn allows(&self, failures: u64) -> bool {
        self.max_retries < 0 || failures <= self.max_retries as u64
    }
}

#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Largest message sent or accepted, in bytes.
    pub max_message_size: usize,
    pub reconnect: ReconnectPolicy,
    pub connect_timeout: Duration,
    /// WebSocket pings are sent this often...
    pub ping_interval: Duration,
    /// ...and the link is declared dead after this long without any frame from the engine.
    pub idle_timeout: Duration,
    /// Messages kept while disconnected, sent after the next replay.
    pub offline_queue_limit: usize,
    /// Input of the `engine::workers::register` call sent after every connect (JSON text).
    pub worker_metadata: Option<String>,
}

impl ConnectionConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: Vec::new(),
            max_message_size: 64 * 1024 * 1024,
            reconnect: ReconnectPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            offline_queue_limit: 1000,
            worker_metadata: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let p = ReconnectPolicy::default();
        assert_eq!(p.base_delay(0), Duration::from_millis(1000));
        assert_eq!(p.base_delay(1), Duration::from_millis(2000));
        assert_eq!(p.base_delay(4), Duration::from_millis(16000));
        assert_eq!(p.base_delay(5), Duration::from_millis(30000));
        assert_eq!(p.base_delay(1000), Duration::from_millis(30000));
    }

    #[test]
    fn jitter_stays_in_band() {
        let p = ReconnectPolicy::default();
        assert_eq!(p.delay(0, 0.0), Duration::from_millis(700));
        assert_eq!(p.delay(0, 0.5), Duration::from_millis(1000));
        assert!(p.delay(0, 0.999_999) <= Duration::from_millis(1300));
        let none = ReconnectPolicy { jitter_factor: 0.0, ..ReconnectPolicy::default() };
        assert_eq!(none.delay(2, 0.9), Duration::from_millis(4000));
    }

    #[test]
    fn retry_budget() {
        let forever = ReconnectPolicy::default();
        assert!(forever.allows(1_000_000));
        let three = ReconnectPolicy { max_retries: 3, ..ReconnectPolicy::default() };
        assert!(three.allows(3));
        assert!(!three.allows(4));
        let none = ReconnectPolicy { max_retries: 0, ..ReconnectPolicy::default() };
        assert!(!none.allows(1));
    }
}
