//! Engine 0.25 behaviours for ordinary (non-observe) traffic: feature negotiation, where
//! `workerregistered` answers the connection's first `engine::workers::register` and carries
//! the engine's `features`; and the `caller` (stamped by the engine), `observe_depth` and
//! `metadata` on the calls it forwards.

use std::sync::atomic::Ordering;

use super::conn::Conn;
use super::state::Engine;
use iii_protocol::{frames, Caller, InvokeFunction, WorkerRegistered};

/// What the 0.25 engine advertises in `workerregistered.features` (`large-messages.v1` is
/// declared by workers only).
pub(crate) const ENGINE_FEATURES: [&str; 2] = ["observe.v1", "local-dispatch.v1"];
/// Upgrade response header listing the engine's transport capabilities; `tcp-nodelay` tells
/// the worker that the engine's end has Nagle off, so it may turn its own off too.
pub(crate) const CAPABILITIES_HEADER: &str = "x-iii-capabilities";
pub(crate) const CAPABILITIES: &str = "tcp-nodelay";
/// The telemetry-only socket of 0.25 SDKs: not a worker, the engine sends nothing on it.
pub(crate) const TELEMETRY_PATH: &str = "/otel";

/// The connection's `workerregistered`, as this generation writes it.
pub(crate) fn hello(engine: &Engine, conn: &Conn) -> String {
    WorkerRegistered {
        worker_id: conn.id.clone(),
        reattach_token: conn.reattach_token.clone(),
        features: engine.config.v025().then(|| ENGINE_FEATURES.map(str::to_owned).to_vec()),
    }
    .encode()
}

/// 0.25 sends `workerregistered` once the connection said who it is: after its first accepted
/// `engine::workers::register` (and the registrations that waited for it) were applied.
/// Returns whether it was sent now.
pub(crate) async fn welcome(engine: &Engine, conn: &Conn) -> bool {
    if engine.config.v025() && !conn.greeted.swap(true, Ordering::AcqRel) {
        conn.send(hello(engine, conn)).await;
        return true;
    }
    false
}

/// The caller the engine forwards: the one the worker asserted, with `worker_id` and
/// `worker_name` replaced by the calling connection's. A top-level call's caller is therefore
/// exactly `{worker_id, worker_name}` (docs/protocol.md C.8.1).
pub(crate) fn stamped_caller(engine: &Engine, from: &Conn, asserted: Option<&Caller>) -> Caller {
    let worker_name = engine.state.lock().workers.get(&from.id).and_then(|w| w.meta.name.clone());
    Caller { worker_id: Some(from.id.clone()), worker_name, ..asserted.cloned().unwrap_or_default() }
}

/// 0.25: adds to a call forwarded to its callee the caller the worker asserted, with
/// `worker_id` and `worker_name` replaced by the calling connection's; its `observe_depth`
/// when above 0; and its `metadata`.
pub(crate) fn annotate(engine: &Engine, from: &Conn, inv: &InvokeFunction, frame: String) -> String {
    if !engine.config.v025() {
        return frame;
    }
    let caller = stamped_caller(engine, from, inv.caller.as_ref());
    // A struct of strings always serialises.
    let caller = serde_json::to_string(&caller).unwrap_or_default();
    let mut frame = frames::with_json_field(frame, "caller", &caller);
    if let Some(depth) = inv.observe_depth.filter(|d| *d > 0) {
        frame = frames::with_json_field(frame, "observe_depth", &depth.to_string());
    }
    if let Some(metadata) = &inv.metadata {
        frame = frames::with_json_field(frame, "metadata", metadata.get());
    }
    frame
}
