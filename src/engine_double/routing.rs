//! Routing of `invokefunction` and `invocationresult` (protocol.md 2.11, 2.12, 3, 4).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::http_functions::{self, HttpFunction};
use super::state::{new_id, Conn, Engine, Pending, Reply, State};
use super::{builtins, head, queues};
use crate::protocol::{ErrorBody, InvocationResult, InvokeFunction, Json, Message, TriggerAction};

const CALLER_KEY: &str = "\"_caller_worker_id\"";

pub(crate) type Outcome = Result<Option<Json>, ErrorBody>;

/// How an engine-answered call completes: at once, or after work that must not hold up the
/// caller's connection (custom streams, HTTP functions).
pub(crate) enum Answer {
    Now(Outcome),
    Later(Pin<Box<dyn Future<Output = Outcome> + Send>>),
    /// Already answered on the wire.
    Handled,
}

pub(crate) fn not_found(function_id: &str) -> ErrorBody {
    ErrorBody::new("function_not_found", format!("Function {function_id} not found"))
}

fn valid_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

pub(crate) async fn invoke(engine: &Arc<Engine>, conn: &Arc<Conn>, mut inv: InvokeFunction) {
    if let Some(id) = inv.invocation_id.as_deref().filter(|id| !valid_id(id)) {
        return engine.log(format!("dropped invokefunction from {}: bad invocation_id {id:?}", conn.id));
    }
    if let Err(e) = head::check_namespace(engine, &inv.function_id, inv.namespace.as_deref()) {
        return match inv.invocation_id {
            Some(id) => conn.send(result_frame(&id, &inv.function_id, Err(e))).await,
            None => engine.log(format!("call of {} failed: {}: {}", inv.function_id, e.code, e.message)),
        };
    }
    match inv.action.take() {
        Some(TriggerAction::Enqueue { queue })
            if engine.config.head_protocol && !engine.config.queue_worker =>
        {
            head::enqueue(engine, conn, inv, &queue).await
        }
        Some(TriggerAction::Enqueue { queue }) => queues::enqueue(engine, conn, inv, &queue).await,
        Some(TriggerAction::Void) => void_call(engine, conn, inv).await,
        None if inv.invocation_id.is_none() => void_call(engine, conn, inv).await,
        None => sync_call(engine, conn, inv).await,
    }
}

/// Where a call goes.
enum Target {
    /// The worker that registered the function; the call is recorded as pending on it.
    Worker(Arc<Conn>),
    /// An HTTP-invoked function; the engine makes the request and answers `Reply` itself.
    Http(Arc<HttpFunction>, Reply),
}

/// Looks the function up and records the call as pending on its owner, atomically.
fn route(state: &mut State, function_id: &str, id: &str, reply: Reply) -> Result<Target, ErrorBody> {
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
fn spawn_http(
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

async fn sync_call(engine: &Arc<Engine>, conn: &Arc<Conn>, inv: InvokeFunction) {
    let id = inv.invocation_id.as_deref().unwrap_or_default();
    let fid = inv.function_id.as_str();
    if let Some(answer) =
        builtins::dispatch(engine, conn, fid, inv.invocation_id.as_deref(), inv.data.as_deref()).await
    {
        return match answer {
            Answer::Now(out) => conn.send(result_frame(id, fid, out)).await,
            Answer::Handled => {}
            Answer::Later(later) => {
                let (conn, id, fid) = (conn.clone(), id.to_owned(), fid.to_owned());
                tokio::spawn(async move { conn.send(result_frame(&id, &fid, later.await)).await });
            }
        };
    }
    let routed = route(&mut engine.state.lock(), fid, id, Reply::Caller(conn.clone()));
    let data = with_caller(inv.data.as_deref(), &conn.id);
    let callee = match routed {
        Ok(Target::Worker(callee)) => callee,
        Ok(Target::Http(f, reply)) => return spawn_http(engine, f, id, fid, data.into_owned(), reply),
        Err(e) => return conn.send(result_frame(id, fid, Err(e))).await,
    };
    let frame = invoke_frame(id, fid, &data, inv.traceparent.as_deref(), inv.baggage.as_deref());
    if callee.tx.send(WsMessage::Text(frame.into())).await.is_err() {
        let lost = engine.state.lock().pending.remove(id);
        if lost.is_some() {
            let e = ErrorBody::new("channel_send_failed", "callee connection closed");
            conn.send(result_frame(id, fid, Err(e))).await;
        }
    }
}

fn log_failure(engine: &Engine, fid: &str, out: &Outcome) {
    if let Err(e) = out {
        engine.log(format!("void call of {fid} failed: {}: {}", e.code, e.message));
    }
}

async fn void_call(engine: &Arc<Engine>, conn: &Arc<Conn>, inv: InvokeFunction) {
    let fid = inv.function_id.as_str();
    if let Some(answer) =
        builtins::dispatch(engine, conn, fid, inv.invocation_id.as_deref(), inv.data.as_deref()).await
    {
        return match answer {
            Answer::Now(out) => log_failure(engine, fid, &out),
            Answer::Handled => {}
            Answer::Later(later) => {
                let (engine, fid) = (engine.clone(), fid.to_owned());
                tokio::spawn(async move { log_failure(&engine, &fid, &later.await) });
            }
        };
    }
    let id = new_id();
    let routed = route(&mut engine.state.lock(), fid, &id, Reply::Discard);
    let data = with_caller(inv.data.as_deref(), &conn.id);
    let callee = match routed {
        Ok(Target::Worker(callee)) => callee,
        Ok(Target::Http(f, reply)) => return spawn_http(engine, f, &id, fid, data.into_owned(), reply),
        Err(e) => return engine.log(format!("void call of {fid} failed: {}: {}", e.code, e.message)),
    };
    let frame = invoke_frame(&id, fid, &data, inv.traceparent.as_deref(), inv.baggage.as_deref());
    if callee.tx.send(WsMessage::Text(frame.into())).await.is_err() {
        engine.state.lock().pending.remove(&id);
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

pub(crate) async fn result(engine: &Arc<Engine>, conn: &Arc<Conn>, mut res: InvocationResult) {
    if !valid_id(&res.invocation_id) {
        return engine.log(format!("dropped invocationresult from {}: bad invocation_id", conn.id));
    }
    let Some(pending) = engine.state.lock().pending.remove(&res.invocation_id) else {
        return engine.log(format!("invocationresult for unknown invocation {}", res.invocation_id));
    };
    if res.error.is_some() {
        res.result = None;
    }
    if res.function_id.is_empty() {
        res.function_id = pending.function_id;
    }
    match pending.reply {
        Reply::Caller(caller) => caller.send(Message::InvocationResult(res).encode()).await,
        Reply::Await(tx) => {
            let _ = tx.send(match res.error {
                Some(e) => Err(e),
                None => Ok(res.result),
            });
        }
        Reply::Discard => {
            if let Some(e) = res.error {
                engine.log(format!("invocation of {} failed: {}: {}", res.function_id, e.code, e.message));
            }
        }
    }
}

pub(crate) fn result_frame(id: &str, function_id: &str, outcome: Outcome) -> String {
    let (result, error) = match outcome {
        Ok(result) => (result.filter(|r| r.get() != "null"), None),
        Err(e) => (None, Some(e)),
    };
    Message::InvocationResult(InvocationResult {
        invocation_id: id.to_owned(),
        function_id: function_id.to_owned(),
        result,
        error,
        traceparent: None,
        baggage: None,
    })
    .encode()
}

fn push_json_str(out: &mut String, s: &str) {
    // Serialising a str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// The E→W `invokefunction`; the payload text is copied, never re-parsed.
pub(crate) fn invoke_frame(
    id: &str,
    function_id: &str,
    data: &str,
    traceparent: Option<&str>,
    baggage: Option<&str>,
) -> String {
    crate::protocol::frames::invoke_function(Some(id), function_id, Some(data), None, traceparent, baggage)
}

/// Adds `_caller_worker_id` to an object payload by splicing its text; other payloads pass as is.
pub(crate) fn with_caller<'a>(data: Option<&'a RawValue>, caller: &str) -> Cow<'a, str> {
    let Some(raw) = data else {
        return Cow::Borrowed("null");
    };
    let text = raw.get().trim_start();
    let Some(rest) = text.strip_prefix('{') else {
        return Cow::Borrowed(raw.get());
    };
    if text.contains(CALLER_KEY) {
        // The key may already be there: replace it the slow way rather than duplicate it.
        if let Ok(mut map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
            map.insert("_caller_worker_id".into(), caller.into());
            return Cow::Owned(serde_json::Value::Object(map).to_string());
        }
    }
    let rest = rest.trim_start();
    let mut out = String::with_capacity(text.len() + caller.len() + 24);
    out.push('{');
    out.push_str(CALLER_KEY);
    out.push(':');
    push_json_str(&mut out, caller);
    if !rest.starts_with('}') {
        out.push(',');
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn splices_caller_into_objects_only() {
        let v = |s: &str| with_caller(Some(&raw(s)), "w1").into_owned();
        assert_eq!(v("{}"), r#"{"_caller_worker_id":"w1"}"#);
        assert_eq!(v("{ }"), r#"{"_caller_worker_id":"w1"}"#);
        assert_eq!(v(r#"{"x":1}"#), r#"{"_caller_worker_id":"w1","x":1}"#);
        assert_eq!(v("[1,2]"), "[1,2]");
        assert_eq!(v("\"s\""), "\"s\"");
        assert_eq!(with_caller(None, "w1"), "null");
        let replaced: serde_json::Value =
            serde_json::from_str(&v(r#"{"_caller_worker_id":"old","a":1}"#)).unwrap();
        assert_eq!(replaced, serde_json::json!({"_caller_worker_id": "w1", "a": 1}));
    }

    #[test]
    fn hand_written_invoke_frame_decodes() {
        let frame = invoke_frame("i\"d", "a::b", r#"{"k":[1]}"#, Some("00-x"), None);
        match Message::decode(frame.as_bytes()).unwrap() {
            Message::InvokeFunction(inv) => {
                assert_eq!(inv.invocation_id.as_deref(), Some("i\"d"));
                assert_eq!(inv.data.unwrap().get(), r#"{"k":[1]}"#);
                assert_eq!(inv.traceparent.as_deref(), Some("00-x"));
                assert!(inv.action.is_none());
            }
            other => panic!("{other:?}"),
        }
    }
}
