//! A telemetry-only connection (docs/protocol.md 10.2, B.1 #14, C.20), for an `engine_ws_url`
//! that names another engine than the worker's. Against engines that have it, the socket goes
//! to `<url>/otel`, where the engine registers no worker for it; engine v0.11.0 answers that
//! path with HTTP 404, and then the link falls back to the URL as given (where the socket
//! counts as an anonymous worker, as the official 0.11.0 SDK's did).

use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use super::exporter::FrameSink;
use crate::connection::{Connection, ConnectionConfig, ConnectionState, EventSink, LogLevel};
use iii_protocol::{InvokeFunction, Message};

/// The path of the engine's telemetry-only endpoint.
pub const TELEMETRY_PATH: &str = "/otel";

/// `url` with `/otel` appended to its path (a trailing `/` dropped first), the query kept, as
/// iii-helpers 0.25.0's `_append_otel_path`; unchanged when the path already ends so.
pub fn otel_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let (before_query, query) = match before_fragment.find('?') {
        Some(i) => before_fragment.split_at(i),
        None => (before_fragment, ""),
    };
    let path_start = before_query.find("://").map_or(0, |i| i + 3);
    let (authority, path) = match before_query[path_start..].find('/') {
        Some(i) => before_query.split_at(path_start + i),
        None => (before_query, ""),
    };
    let path = path.trim_end_matches('/');
    let path =
        if path.ends_with(TELEMETRY_PATH) { path.to_owned() } else { format!("{path}{TELEMETRY_PATH}") };
    format!("{authority}{path}{query}{fragment}")
}

/// The engine refused the upgrade because it has no such path (engine v0.11.0 on `/otel`).
fn no_such_path(error: &str) -> bool {
    error.contains("refused the WebSocket upgrade: HTTP 404")
}

pub struct TelemetryLink {
    runtime: tokio::runtime::Handle,
    url: String,
    headers: Vec<(String, String)>,
    conn: RwLock<Connection>,
    /// The URL dialled now (`<url>/otel` until the engine refuses it).
    dialled: Mutex<String>,
    closed: std::sync::atomic::AtomicBool,
}

/// What the engine sends on a telemetry-only socket is ignored; a 404 on `/otel` switches the
/// link to the plain URL.
struct Watcher(Weak<TelemetryLink>);

impl EventSink for Watcher {
    fn invocation(&self, _conn: &Connection, _call: InvokeFunction) {}
    fn message(&self, _conn: &Connection, _message: Message) {}
    fn state_changed(&self, state: ConnectionState) {
        if state == ConnectionState::Reconnecting {
            if let Some(link) = self.0.upgrade() {
                link.check_fallback();
            }
        }
    }
    fn log(&self, _level: LogLevel, _text: &str) {}
}

impl TelemetryLink {
    /// Starts connecting to `url` (with `/otel` appended when `telemetry_path`) with `headers`.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        url: &str,
        headers: Vec<(String, String)>,
        telemetry_path: bool,
    ) -> Arc<TelemetryLink> {
        let dialled = if telemetry_path { otel_url(url) } else { url.to_owned() };
        Arc::new_cyclic(|me: &Weak<TelemetryLink>| {
            let conn = Self::dial(runtime, &dialled, &headers, me.clone());
            TelemetryLink {
                runtime: runtime.clone(),
                url: url.to_owned(),
                headers,
                conn: RwLock::new(conn),
                dialled: Mutex::new(dialled),
                closed: std::sync::atomic::AtomicBool::new(false),
            }
        })
    }

    fn dial(
        runtime: &tokio::runtime::Handle,
        url: &str,
        headers: &[(String, String)],
        me: Weak<TelemetryLink>,
    ) -> Connection {
        let mut config = ConnectionConfig::new(url);
        config.headers = headers.to_vec();
        Connection::start(runtime, config, Arc::new(Watcher(me)))
    }

    /// The URL the link dials now.
    pub fn url(&self) -> String {
        self.dialled.lock().clone()
    }

    fn check_fallback(self: &Arc<Self>) {
        let mut dialled = self.dialled.lock();
        if *dialled == self.url || self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let refused = self.conn.read().last_error().is_some_and(|e| no_such_path(&e));
        if !refused {
            return;
        }
        *dialled = self.url.clone();
        let fresh = Self::dial(&self.runtime, &self.url, &self.headers, Arc::downgrade(self));
        let old = std::mem::replace(&mut *self.conn.write(), fresh);
        old.shutdown();
    }

    /// Closes the connection (idempotent).
    pub fn shutdown(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::Release);
        let _guard = self.dialled.lock(); // no fallback dial after this
        self.conn.read().shutdown();
    }
}

impl FrameSink for TelemetryLink {
    fn send_frame(&self, frame: &[u8]) -> bool {
        self.conn.read().send_binary(frame).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otel_path_is_appended_before_the_query() {
        assert_eq!(otel_url("ws://h:1"), "ws://h:1/otel");
        assert_eq!(otel_url("ws://h:1/"), "ws://h:1/otel");
        assert_eq!(otel_url("ws://h:1/base/?t=a/b#f"), "ws://h:1/base/otel?t=a/b#f");
        assert_eq!(otel_url("wss://h/otel"), "wss://h/otel");
        assert_eq!(otel_url("ws://h?x=1"), "ws://h/otel?x=1");
    }

    #[test]
    fn only_a_404_falls_back() {
        assert!(no_such_path("ws://h/otel refused the WebSocket upgrade: HTTP 404 Not Found"));
        assert!(!no_such_path("ws://h/otel refused the WebSocket upgrade: HTTP 401 Unauthorized"));
        assert!(!no_such_path("connection refused"));
    }
}
