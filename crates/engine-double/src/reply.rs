//! The engine double's reply vocabulary, used by every other module and importing none of
//! them but `conn`: outcomes, how an answer or a result travels, result frames, input
//! parsing, ids and time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::to_raw_value;
use tokio::sync::oneshot;

use super::conn::Conn;
use iii_protocol::{ErrorBody, InvocationResult, Json, Message};

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

/// Where the result of a call delivered to a worker goes.
pub(crate) enum Reply {
    /// A sync call: back to the caller under the same invocation id.
    Caller(Arc<Conn>),
    /// Void calls and engine-originated notifications: errors are only logged.
    Discard,
    /// Queue deliveries wait for the outcome to decide on redelivery.
    Await(oneshot::Sender<Result<Option<Json>, ErrorBody>>),
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

pub(crate) fn bad_input(function_id: &str, detail: impl std::fmt::Display) -> ErrorBody {
    ErrorBody::new(
        "deserialization_error",
        format!("Failed to deserialize input for {function_id}: {detail}"),
    )
}

pub(crate) fn object1(key: &'static str, value: impl Serialize) -> serde_json::Result<Json> {
    to_raw_value(&std::collections::BTreeMap::from([(key, value)]))
}

pub(crate) fn input<T: DeserializeOwned>(function_id: &str, text: &str) -> Result<T, ErrorBody> {
    serde_json::from_str(text).map_err(|e| bad_input(function_id, e))
}

/// The input of the listings that can include the engine's own entries.
#[derive(serde::Deserialize)]
pub(crate) struct Internal {
    #[serde(default)]
    pub include_internal: Option<bool>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
