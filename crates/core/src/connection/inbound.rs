//! Inbound routing: what each frame the engine sends does (results, invocations, control).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use uuid::Uuid;

use super::frame_codec::{Incoming, OP_CLOSE, OP_PONG};
use super::link::End;
use super::writer::Writer;
use super::{Connection, ConnectionState, Generation, LogLevel};
use crate::invocations::CallError;
use iii_protocol::Message;

/// What the reader does with each message (on whichever thread reads).
pub(super) fn incoming_handler(
    conn: Connection,
    writer: Arc<Writer>,
) -> Box<dyn FnMut(Incoming) -> Option<End> + Send> {
    Box::new(move |incoming| match incoming {
        Incoming::Text(bytes) | Incoming::Binary(bytes) => handle_frame(&conn, &bytes),
        Incoming::Ping(payload) => {
            let _ = writer.send(OP_PONG, &payload);
            None
        }
        Incoming::Pong => None,
        Incoming::Close(code, reason) => {
            let _ = writer.send(OP_CLOSE, &code.unwrap_or(1000).to_be_bytes());
            let code = code.map(|c| format!(" (code {c}, {reason:?})")).unwrap_or_default();
            Some(End::Lost(format!("the engine closed the connection{code}")))
        }
    })
}

pub(super) fn handle_frame(conn: &Connection, bytes: &[u8]) -> Option<End> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let message = match Message::decode(bytes) {
        Ok(m) => m,
        Err(e) => {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            conn.log(LogLevel::Warn, &format!("ignored a frame from the engine ({e}): {start}"));
            return None;
        }
    };
    let shared = &conn.shared;
    match message {
        Message::InvocationResult(result) => match Uuid::try_parse(&result.invocation_id) {
            Ok(id) => {
                let outcome = match result.error {
                    Some(error) => Err(CallError::Remote(error)),
                    None => Ok(result.result),
                };
                shared.pending.complete(&id, outcome);
            }
            Err(_) => conn.log(
                LogLevel::Warn,
                &format!("ignored a result with a malformed invocation id {:?}", result.invocation_id),
            ),
        },
        Message::InvokeFunction(call) => shared.sink.invocation(conn, call),
        Message::WorkerRegistered(hello) => {
            conn.log(
                LogLevel::Info,
                &format!(
                    "connected to the iii engine at {} as worker {}",
                    shared.config.url, hello.worker_id
                ),
            );
            // Before `connected` is announced, so whoever waits for it sees the generation and
            // the features. A 0.25 engine sends this after `engine::workers::register`
            // (docs/protocol.md C.6.1), older ones first: either way it is recorded here.
            let observes = hello.has_feature("observe.v1");
            {
                let mut info = shared.info.lock();
                info.generation =
                    if hello.reattach_token.is_some() { Generation::Head } else { Generation::V011 };
                info.worker_id = Some(hello.worker_id);
                info.reattach_token = hello.reattach_token;
                info.engine_features = hello.features.unwrap_or_default();
                shared.engine_observes.store(observes, Ordering::Relaxed);
            }
            conn.observe_registered(observes);
            conn.set_state(ConnectionState::Connected, None);
        }
        Message::Ping => {
            let _ = conn.send_message(&Message::Pong);
        }
        Message::Pong => {}
        Message::Error { error } => {
            return Some(End::Fatal(format!(
                "the engine refused this worker: {}: {}",
                error.code, error.message
            )));
        }
        // Only a function's conflict leaves the worker up (the owner keeps the function); any
        // other rejection of the worker is fatal, as in iii-sdk 0.25.0.
        Message::RegistrationRejected(rejected) if rejected.code != "FUNCTION_NAMESPACE_CONFLICT" => {
            let reason = format!(
                "the engine rejected this worker ({}): a live worker named {:?} already exists in \
                 namespace {:?} (owned by {:?}); give each worker a unique worker_name",
                rejected.code,
                rejected.worker_name.clone().unwrap_or_default(),
                rejected.namespace.clone().unwrap_or_default(),
                rejected.owner_worker_id.clone().unwrap_or_default(),
            );
            shared.info.lock().rejection = Some(rejected.clone());
            shared.sink.message(conn, Message::RegistrationRejected(rejected));
            return Some(End::Fatal(reason));
        }
        Message::Observe(message) => conn.observe_inbound(*message),
        Message::RegistrationRejected(rejected) => {
            if let Some(function_id) = &rejected.function_id {
                conn.function_conflict(function_id);
            }
            shared.sink.message(conn, Message::RegistrationRejected(rejected));
        }
        other => shared.sink.message(conn, other),
    }
    None
}
