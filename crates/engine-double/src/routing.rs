//! Routing of `invokefunction` and `invocationresult` (docs/protocol.md 2.11, 2.12, 3, 4).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::conn::Conn;
use super::delivery::{invoke_frame, log_failure, route, spawn_http, Target};
use super::reply::{new_id, result_frame, Answer, Reply};
use super::state::Engine;
use super::{builtins, head, observe, queues, v025};
use iii_protocol::{ErrorBody, InvocationResult, InvokeFunction, Message, TriggerAction};

const CALLER_KEY: &str = "\"_caller_worker_id\"";

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
    if inv.activation.is_some() && engine.config.v025() {
        // An owner delivering to its observer's target (docs/protocol.md C.14).
        return observe::owner_call(engine, conn, inv).await;
    }
    match inv.action.take() {
        Some(TriggerAction::Enqueue { queue })
            if engine.config.head_rules() && !engine.config.queue_worker =>
        {
            head::enqueue(engine, conn, inv, &queue).await
        }
        Some(TriggerAction::Enqueue { queue }) => queues::enqueue(engine, conn, inv, &queue).await,
        Some(TriggerAction::Void) => void_call(engine, conn, inv).await,
        None if inv.invocation_id.is_none() => void_call(engine, conn, inv).await,
        None => sync_call(engine, conn, inv).await,
    }
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
    if engine.config.v025() {
        observe::track_call(engine, conn, &callee, &inv, id);
    }
    let frame = invoke_frame(id, fid, &data, inv.traceparent.as_deref(), inv.baggage.as_deref());
    let frame = v025::annotate(engine, conn, &inv, frame);
    if callee.tx.send(WsMessage::Text(frame.into())).await.is_err() {
        let lost = engine.state.lock().pending.remove(id);
        if lost.is_some() {
            let e = ErrorBody::new("channel_send_failed", "callee connection closed");
            conn.send(result_frame(id, fid, Err(e))).await;
        }
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
    if engine.config.v025() {
        observe::track_call(engine, conn, &callee, &inv, &id);
    }
    let frame = invoke_frame(&id, fid, &data, inv.traceparent.as_deref(), inv.baggage.as_deref());
    let frame = v025::annotate(engine, conn, &inv, frame);
    if callee.tx.send(WsMessage::Text(frame.into())).await.is_err() {
        engine.state.lock().pending.remove(&id);
    }
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
    if let Some(event) = engine.config.v025().then(|| observe::take_call(engine, &res)).flatten() {
        // Activations are counted (and queued or sent) before the caller has its answer.
        observe::activate(engine, event, None).await;
    }
    forward(engine, pending.reply, res).await;
}

async fn forward(engine: &Engine, reply: Reply, res: InvocationResult) {
    match reply {
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

fn push_json_str(out: &mut String, s: &str) {
    // Serialising a str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
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
        let frame = invoke_frame("i\"d", "a::b", r#"{"k":[1]}"#, Some(PARENT), None);
        match Message::decode(frame.as_bytes()).unwrap() {
            Message::InvokeFunction(inv) => {
                assert_eq!(inv.invocation_id.as_deref(), Some("i\"d"));
                assert_eq!(inv.data.unwrap().get(), r#"{"k":[1]}"#);
                assert_eq!(inv.traceparent.as_deref(), Some(PARENT));
                assert!(inv.action.is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_traceparent_the_real_engine_refuses_is_not_forwarded() {
        let forwarded =
            |tp: &str| match Message::decode(invoke_frame("i", "a::b", "{}", Some(tp), None).as_bytes()) {
                Ok(Message::InvokeFunction(inv)) => inv.traceparent,
                other => panic!("{other:?}"),
            };
        for kept in [PARENT, &PARENT.replace("-01", "-00"), &PARENT.replace("-01", "-02")] {
            assert_eq!(forwarded(kept).as_deref(), Some(kept));
        }
        let flags_03 = PARENT.replace("-01", "-03"); // opentelemetry-sdk's root spans: sampled + random
        let upper = PARENT.replace("0af7", "0AF7");
        let zero_trace = format!("00-{}-b7ad6b7169203331-01", "0".repeat(32));
        let extra_field = format!("{PARENT}-x");
        for refused in [
            "00-x",
            &flags_03,
            &upper,
            &zero_trace,
            &extra_field,
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert_eq!(forwarded(refused), None, "{refused}");
        }
    }
}
