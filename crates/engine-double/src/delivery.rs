//! Delivering a call to the function's owner: the lookup and pending record (one lock), the
//! `invokefunction` frame, and HTTP-invoked functions. Calls the engine makes itself
//! (queues, notifications, custom streams) go through `call_from_engine`.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::conn::Conn;
use super::http_functions::{self, HttpFunction};
use super::reply::{new_id, not_found, result_frame, Outcome, Reply};
use super::state::{Engine, Pending, State};
use iii_protocol::ErrorBody;

/// Where a call goes.
pub(crate) enum Target {
    /// The worker that registered the function; the call is recorded as pending on it.
    Worker(Arc<Conn>),
    /// An HTTP-invoked function; the engine makes the request and answers `Reply` itself.
    Http(Arc<HttpFunction>, Reply),
}

/// Looks the function up and records the call as pending on its owner, atomically.
pub(crate) fn route(
    state: &mut State,
    function_id: &str,
    id: &str,
    reply: Reply,
) -> Result<Target, ErrorBody> {
    let f = state.functions.get(function_id).ok_or_else(|| not_found(function_id))?;
    if let Some(http) = &f.http {
        return Ok(Target::Http(http.clone(), reply));
    }
    let callee = f.owner.clone();
    let pending = Pending { callee: callee.clone(), function_id: function_id.to_owned(), reply };
    state.pending.insert(id.to_owned(), pending);
    Ok(Target::Worker(callee))
}

/// Runs an HTTP-invoked function in the background and hands its outcome to `reply`.
pub(crate) fn spawn_http(
    engine: &Arc<Engine>,
    f: Arc<HttpFunction>,
    id: &str,
    function_id: &str,
    body: String,
    reply: Reply,
) {
    let (engine, id, fid) = (engine.clone(), id.to_owned(), function_id.to_owned());
    tokio::spawn(async move {
        let out = http_functions::invoke(&f, &fid, &body).await;
        match reply {
            Reply::Caller(caller) => caller.send(result_frame(&id, &fid, out)).await,
            Reply::Await(tx) => {
                let _ = tx.send(out);
            }
            Reply::Discard => log_failure(&engine, &fid, &out),
        }
    });
}

pub(crate) fn log_failure(engine: &Engine, fid: &str, out: &Outcome) {
    if let Err(e) = out {
        engine.log(format!("void call of {fid} failed: {}: {}", e.code, e.message));
    }
}

/// A call made by the engine itself (queues, notifications): no `_caller_worker_id`, fresh id.
pub(crate) async fn call_from_engine(
    engine: &Arc<Engine>,
    function_id: &str,
    data: &str,
    traceparent: Option<&str>,
    baggage: Option<&str>,
    reply: Reply,
) -> Result<(), ErrorBody> {
    let id = new_id();
    let routed = route(&mut engine.state.lock(), function_id, &id, reply)?;
    let callee = match routed {
        Target::Worker(callee) => callee,
        Target::Http(f, reply) => {
            spawn_http(engine, f, &id, function_id, data.to_owned(), reply);
            return Ok(());
        }
    };
    let frame = invoke_frame(&id, function_id, data, traceparent, baggage);
    if callee.tx.send(WsMessage::Text(frame.into())).await.is_err() {
        engine.state.lock().pending.remove(&id);
        return Err(ErrorBody::new("channel_send_failed", "callee connection closed"));
    }
    Ok(())
}

/// The E→W `invokefunction`; the payload text is copied, never re-parsed. A `traceparent` the
/// real engine would not accept is left out, so the callee starts a trace of its own there too.
pub(crate) fn invoke_frame(
    id: &str,
    function_id: &str,
    data: &str,
    traceparent: Option<&str>,
    baggage: Option<&str>,
) -> String {
    let traceparent = traceparent.filter(|tp| engine_accepts(tp));
    iii_protocol::frames::invoke_function(Some(id), function_id, Some(data), None, traceparent, baggage)
}

/// Whether engine v0.11.0 (OpenTelemetry's W3C propagator) keeps a caller's `traceparent`: four
/// fields of 2, 32, 16 and 2 lower-case hex digits, ids not all zero, and at version 00 no flag
/// above 02. Anything else makes it start a new trace.
fn engine_accepts(traceparent: &str) -> bool {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    if parts.len() < 4 || !hex(parts[0], 2) || !hex(parts[1], 32) || !hex(parts[2], 16) || !hex(parts[3], 2) {
        return false;
    }
    let (version, flags) = (&parts[0], &parts[3]);
    let version_00_rules = *version != "00" || (parts.len() == 4 && *flags <= "02");
    *version != "ff" && version_00_rules && !zero(parts[1]) && !zero(parts[2])
}
