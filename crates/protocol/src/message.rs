//! The messages of the worker <-> engine protocol (docs/protocol.md section 2), both directions.
//!
//! Decoding goes through one flat struct holding every field any message can carry, then picks
//! the variant by `type`. That keeps decoding a single pass, makes unknown fields free to ignore,
//! and lets payloads stay raw JSON (`RawValue`) until a handler needs them. (serde cannot keep a
//! `RawValue` inside an internally tagged enum, which is why the derive is not used to decode.)

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::observe::ObserveMessage;

/// Raw JSON kept as text. `None` in an optional payload position means JSON `null`.
pub type Json = Box<RawValue>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<String>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), stacktrace: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TriggerAction {
    Enqueue { queue: String },
    Void,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegisterFunction {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_format: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation: Option<Json>,
    /// 0.25: the ObserveDescriptor (docs/protocol.md C.9); absent = auto delivery, observable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observe: Option<Json>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegisterService {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_service_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegisterTriggerType {
    pub id: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_request_format: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_request_format: Option<Json>,
}

/// A trigger binding. `config` is always written, as `null` when absent: the engine drops a
/// `registertrigger` without it (docs/protocol.md 1.5).
#[derive(Debug, Clone, Serialize)]
pub struct RegisterTrigger {
    pub id: String,
    pub trigger_type: String,
    pub function_id: String,
    pub config: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Json>,
    /// HEAD: namespace of the target function (absent = `default`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// HEAD: namespace to find the type's provider in (absent = the connection's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_namespace: Option<String>,
}

/// A call. `data` is always written, as `null` when absent: the engine drops an
/// `invokefunction` without it (docs/protocol.md 1.5).
#[derive(Debug, Clone, Serialize)]
pub struct InvokeFunction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    pub function_id: String,
    pub data: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baggage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<TriggerAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Json>,
    /// HEAD: namespace of the target function (absent = `default`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// 0.25: who made the call. A worker asserts `function_id`/`invocation_id`/`parent`; the
    /// engine stamps `worker_id`/`worker_name` of the calling connection before forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<Caller>,
    /// 0.25: depth of the causal chain in observe hops; absent means 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observe_depth: Option<u32>,
    /// 0.25: E→W on an observer activation; W→E on an owner's delivery to its observer's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
}

/// The `caller` of a 0.25 call. Every member is optional and left out when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    /// The caller's own caller, one level only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ParentCaller>>,
}

impl Caller {
    /// The caller a worker asserts on a call made from inside the handler of `invocation_id`
    /// of `function_id`, which `incoming` (its own caller, if any) called: that handler, and
    /// `incoming` without its `parent` one level up (docs/protocol.md C.8.1). The engine adds
    /// `worker_id` and `worker_name`.
    pub fn asserted(function_id: &str, invocation_id: &str, incoming: Option<&Caller>) -> Caller {
        let parent = incoming
            .map(|c| ParentCaller {
                worker_id: c.worker_id.clone(),
                worker_name: c.worker_name.clone(),
                function_id: c.function_id.clone(),
                invocation_id: c.invocation_id.clone(),
            })
            .filter(|p| p != &ParentCaller::default())
            .map(Box::new);
        Caller {
            function_id: Some(function_id.to_owned()),
            invocation_id: Some(invocation_id.to_owned()),
            parent,
            ..Caller::default()
        }
    }

    /// The caller as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings always serialises")
    }
}

/// `caller.parent`: a `Caller` without a `parent` of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentCaller {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
}

/// `activation` of a 0.25 call: the observer it is for, and (E→W) this activation's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub observer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_id: Option<String>,
}

/// `workerregistered` (E→W): the connection's id, HEAD's reattach token and 0.25's features.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerRegistered {
    pub worker_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reattach_token: Option<String>,
    /// 0.25: the engine's protocol features (`observe.v1`, ...). `None` from older engines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

impl WorkerRegistered {
    /// Decodes a `workerregistered` frame; any other type is `UnknownType`.
    pub fn decode(frame: &[u8]) -> Result<WorkerRegistered, DecodeError> {
        match Message::decode(frame)? {
            Message::WorkerRegistered(w) => Ok(w),
            other => Err(DecodeError::UnknownType(other.kind().to_owned())),
        }
    }

    pub fn encode(&self) -> String {
        Message::WorkerRegistered(self.clone()).encode()
    }

    /// The engine listed `feature` (0.25); false for engines that list none.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.as_deref().is_some_and(|f| f.iter().any(|x| x == feature))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InvocationResult {
    pub invocation_id: String,
    pub function_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baggage: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TriggerRegistrationResult {
    pub id: String,
    pub trigger_type: String,
    pub function_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistrationRejected {
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_worker_id: Option<String>,
}

/// Every message of docs/protocol.md, in either direction.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Message {
    WorkerRegistered(WorkerRegistered),
    RegisterFunction(RegisterFunction),
    UnregisterFunction {
        id: String,
    },
    RegisterService(RegisterService),
    RegisterTriggerType(RegisterTriggerType),
    UnregisterTriggerType {
        id: String,
    },
    RegisterTrigger(RegisterTrigger),
    UnregisterTrigger {
        id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        trigger_type: Option<String>,
    },
    TriggerRegistrationResult(TriggerRegistrationResult),
    InvokeFunction(InvokeFunction),
    InvocationResult(InvocationResult),
    Ping,
    Pong,
    Error {
        error: ErrorBody,
    },
    Reattach {
        previous_worker_id: String,
        reattach_token: String,
    },
    RegistrationRejected(RegistrationRejected),
    /// 0.25's observe family (docs/protocol.md C.10); encoded by `ObserveMessage` itself.
    #[serde(skip_serializing)]
    Observe(Box<ObserveMessage>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a JSON object, or a field had the wrong JSON type.
    Malformed(String),
    /// A `type` this SDK does not know. Newer engines add message types; they are skipped.
    UnknownType(String),
    /// A known type without one of its required fields.
    MissingField { kind: &'static str, field: &'static str },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(e) => write!(f, "malformed frame: {e}"),
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t:?}"),
            DecodeError::MissingField { kind, field } => {
                write!(f, "{kind} frame without required field {field:?}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// The union of every field of every message.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    worker_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reattach_token: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    previous_worker_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    invocation_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    trigger_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    parent_service_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    traceparent: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    baggage: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    trigger_namespace: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    worker_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    owner_worker_id: Option<Cow<'a, str>>,
    #[serde(default)]
    action: Option<TriggerAction>,
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    config: Option<&'a RawValue>,
    #[serde(default, borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(default, borrow)]
    request_format: Option<&'a RawValue>,
    #[serde(default, borrow)]
    response_format: Option<&'a RawValue>,
    #[serde(default, borrow)]
    invocation: Option<&'a RawValue>,
    #[serde(default, borrow)]
    observe: Option<&'a RawValue>,
    #[serde(default, borrow)]
    trigger_request_format: Option<&'a RawValue>,
    #[serde(default, borrow)]
    call_request_format: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "lenient::caller")]
    caller: Option<Caller>,
    #[serde(default, deserialize_with = "lenient::depth")]
    observe_depth: Option<u32>,
    #[serde(default, deserialize_with = "lenient::activation")]
    activation: Option<Activation>,
    #[serde(default, deserialize_with = "lenient::features")]
    features: Option<Vec<String>>,
}

/// The 0.25 fields are read leniently: a malformed one reads as absent (or, for `features`,
/// as an empty list) instead of costing the whole frame, as the official SDKs read them.
mod lenient {
    use super::{Activation, Caller, ParentCaller};
    use serde::{Deserialize, Deserializer};
    use serde_json::{Map, Value};

    fn string(map: &Map<String, Value>, key: &str) -> Option<String> {
        map.get(key).and_then(Value::as_str).map(str::to_owned)
    }

    fn parent(map: &Map<String, Value>) -> ParentCaller {
        ParentCaller {
            worker_id: string(map, "worker_id"),
            worker_name: string(map, "worker_name"),
            function_id: string(map, "function_id"),
            invocation_id: string(map, "invocation_id"),
        }
    }

    pub fn caller<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Caller>, D::Error> {
        let Value::Object(map) = Value::deserialize(d)? else { return Ok(None) };
        let top = parent(&map);
        Ok(Some(Caller {
            worker_id: top.worker_id,
            worker_name: top.worker_name,
            function_id: top.function_id,
            invocation_id: top.invocation_id,
            parent: map.get("parent").and_then(Value::as_object).map(|p| Box::new(parent(p))),
        }))
    }

    pub fn depth<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Ok(Value::deserialize(d)?.as_u64().and_then(|n| u32::try_from(n).ok()))
    }

    pub fn activation<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Activation>, D::Error> {
        let Value::Object(map) = Value::deserialize(d)? else { return Ok(None) };
        Ok(string(&map, "observer_id")
            .map(|observer_id| Activation { observer_id, activation_id: string(&map, "activation_id") }))
    }

    /// The string elements of an array; anything else but `null` is an empty list.
    pub fn features<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => None,
            Value::Array(items) => {
                Some(items.into_iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
            }
            _ => Some(Vec::new()),
        })
    }
}

fn own(v: Option<Cow<'_, str>>) -> Option<String> {
    v.map(Cow::into_owned)
}

fn own_json(v: Option<&RawValue>) -> Option<Json> {
    v.map(RawValue::to_owned)
}

fn need(v: Option<Cow<'_, str>>, kind: &'static str, field: &'static str) -> Result<String, DecodeError> {
    v.map(Cow::into_owned).ok_or(DecodeError::MissingField { kind, field })
}

impl Message {
    /// Decodes one frame. Unknown fields are ignored; unknown types give `UnknownType`.
    pub fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
        let f: Fields<'_> =
            serde_json::from_slice(frame).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if ObserveMessage::KINDS.contains(&f.kind.as_ref()) {
            let m = serde_json::from_slice(frame).map_err(|e| DecodeError::Malformed(e.to_string()))?;
            return Ok(Message::Observe(Box::new(m)));
        }
        let msg = match f.kind.as_ref() {
            "invokefunction" => Message::InvokeFunction(InvokeFunction {
                invocation_id: own(f.invocation_id),
                function_id: need(f.function_id, "invokefunction", "function_id")?,
                data: own_json(f.data),
                traceparent: own(f.traceparent),
                baggage: own(f.baggage),
                action: f.action,
                metadata: own_json(f.metadata),
                namespace: own(f.namespace),
                caller: f.caller,
                observe_depth: f.observe_depth,
                activation: f.activation,
            }),
            "invocationresult" => Message::InvocationResult(InvocationResult {
                invocation_id: need(f.invocation_id, "invocationresult", "invocation_id")?,
                function_id: own(f.function_id).unwrap_or_default(),
                result: own_json(f.result),
                error: f.error,
                traceparent: own(f.traceparent),
                baggage: own(f.baggage),
            }),
            "workerregistered" => Message::WorkerRegistered(WorkerRegistered {
                worker_id: need(f.worker_id, "workerregistered", "worker_id")?,
                reattach_token: own(f.reattach_token),
                features: f.features,
            }),
            "ping" => Message::Ping,
            "pong" => Message::Pong,
            "registerfunction" => Message::RegisterFunction(RegisterFunction {
                id: need(f.id, "registerfunction", "id")?,
                description: own(f.description),
                request_format: own_json(f.request_format),
                response_format: own_json(f.response_format),
                metadata: own_json(f.metadata),
                invocation: own_json(f.invocation),
                observe: own_json(f.observe),
            }),
            "unregisterfunction" => {
                Message::UnregisterFunction { id: need(f.id, "unregisterfunction", "id")? }
            }
            "registerservice" => Message::RegisterService(RegisterService {
                id: need(f.id, "registerservice", "id")?,
                name: own(f.name),
                description: own(f.description),
                parent_service_id: own(f.parent_service_id),
            }),
            "registertriggertype" => Message::RegisterTriggerType(RegisterTriggerType {
                id: need(f.id, "registertriggertype", "id")?,
                description: own(f.description).unwrap_or_default(),
                trigger_request_format: own_json(f.trigger_request_format),
                call_request_format: own_json(f.call_request_format),
            }),
            "unregistertriggertype" => {
                Message::UnregisterTriggerType { id: need(f.id, "unregistertriggertype", "id")? }
            }
            "registertrigger" => Message::RegisterTrigger(RegisterTrigger {
                id: need(f.id, "registertrigger", "id")?,
                trigger_type: need(f.trigger_type, "registertrigger", "trigger_type")?,
                function_id: need(f.function_id, "registertrigger", "function_id")?,
                config: own_json(f.config),
                metadata: own_json(f.metadata),
                namespace: own(f.namespace),
                trigger_namespace: own(f.trigger_namespace),
            }),
            "unregistertrigger" => Message::UnregisterTrigger {
                id: need(f.id, "unregistertrigger", "id")?,
                trigger_type: own(f.trigger_type),
            },
            "triggerregistrationresult" => Message::TriggerRegistrationResult(TriggerRegistrationResult {
                id: need(f.id, "triggerregistrationresult", "id")?,
                trigger_type: own(f.trigger_type).unwrap_or_default(),
                function_id: own(f.function_id).unwrap_or_default(),
                error: f.error,
            }),
            "error" => Message::Error {
                error: f.error.ok_or(DecodeError::MissingField { kind: "error", field: "error" })?,
            },
            "reattach" => Message::Reattach {
                previous_worker_id: need(f.previous_worker_id, "reattach", "previous_worker_id")?,
                reattach_token: need(f.reattach_token, "reattach", "reattach_token")?,
            },
            "registrationrejected" => Message::RegistrationRejected(RegistrationRejected {
                code: need(f.code, "registrationrejected", "code")?,
                namespace: own(f.namespace),
                worker_name: own(f.worker_name),
                function_id: own(f.function_id),
                owner_worker_id: own(f.owner_worker_id),
            }),
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        };
        Ok(msg)
    }

    /// Encodes the message as the text of one WebSocket frame.
    pub fn encode(&self) -> String {
        if let Message::Observe(m) = self {
            return m.encode();
        }
        // Serialising these types cannot fail: keys are strings and raw values are valid JSON.
        serde_json::to_string(self).expect("protocol messages always serialise")
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Message::WorkerRegistered(_) => "workerregistered",
            Message::RegisterFunction(_) => "registerfunction",
            Message::UnregisterFunction { .. } => "unregisterfunction",
            Message::RegisterService(_) => "registerservice",
            Message::RegisterTriggerType(_) => "registertriggertype",
            Message::UnregisterTriggerType { .. } => "unregistertriggertype",
            Message::RegisterTrigger(_) => "registertrigger",
            Message::UnregisterTrigger { .. } => "unregistertrigger",
            Message::TriggerRegistrationResult(_) => "triggerregistrationresult",
            Message::InvokeFunction(_) => "invokefunction",
            Message::InvocationResult(_) => "invocationresult",
            Message::Ping => "ping",
            Message::Pong => "pong",
            Message::Error { .. } => "error",
            Message::Reattach { .. } => "reattach",
            Message::RegistrationRejected(_) => "registrationrejected",
            Message::Observe(m) => m.kind(),
        }
    }
}

/// Parses a JSON text into an owned raw value, checking it is valid JSON.
pub fn raw_json(text: &str) -> Result<Json, serde_json::Error> {
    RawValue::from_string(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msg: &Message) -> Message {
        Message::decode(msg.encode().as_bytes()).expect("decodes what it encodes")
    }

    #[test]
    fn invoke_function_always_carries_data() {
        let msg = Message::InvokeFunction(InvokeFunction {
            invocation_id: None,
            function_id: "a::b".into(),
            data: None,
            traceparent: None,
            baggage: None,
            action: Some(TriggerAction::Void),
            metadata: None,
            namespace: None,
            caller: None,
            observe_depth: None,
            activation: None,
        });
        let text = msg.encode();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "invokefunction");
        assert!(v.as_object().unwrap().contains_key("data"), "{text}");
        assert!(v["data"].is_null());
        assert_eq!(v["action"], serde_json::json!({"type": "void"}));
        assert!(!v.as_object().unwrap().contains_key("invocation_id"));
    }

    #[test]
    fn register_trigger_always_carries_config() {
        let msg = Message::RegisterTrigger(RegisterTrigger {
            id: "t".into(),
            trigger_type: "cron".into(),
            function_id: "f".into(),
            config: None,
            metadata: None,
            namespace: None,
            trigger_namespace: None,
        });
        let v: serde_json::Value = serde_json::from_str(&msg.encode()).unwrap();
        assert!(v.as_object().unwrap().contains_key("config"));
        assert!(v["config"].is_null());
        assert!(!v.as_object().unwrap().contains_key("metadata"));
    }

    #[test]
    fn payload_stays_verbatim() {
        let data = raw_json(r#"{"a": [1, 2.5, "x\u00e9"], "b": null}"#).unwrap();
        let msg = Message::InvokeFunction(InvokeFunction {
            invocation_id: Some("73b2d337-6e4c-4c2b-8be5-fc9745713579".into()),
            function_id: "f".into(),
            data: Some(data.clone()),
            traceparent: None,
            baggage: None,
            action: Some(TriggerAction::Enqueue { queue: "default".into() }),
            metadata: None,
            namespace: None,
            caller: None,
            observe_depth: None,
            activation: None,
        });
        match roundtrip(&msg) {
            Message::InvokeFunction(inv) => {
                assert_eq!(inv.data.unwrap().get(), data.get());
                assert_eq!(inv.action, Some(TriggerAction::Enqueue { queue: "default".into() }));
            }
            other => panic!("wrong variant {other:?}"),
        }
    }

    #[test]
    fn decodes_engine_result_with_error_and_unknown_fields() {
        let frame = br#"{"type":"invocationresult","invocation_id":"c7f90bc4-0000-4000-8000-000000000000",
            "function_id":"probe::echo","future_field":{"x":1},
            "error":{"code":"invocation_failed","message":"boom","stacktrace":"Traceback"}}"#;
        match Message::decode(frame).unwrap() {
            Message::InvocationResult(r) => {
                assert_eq!(r.error.as_ref().unwrap().code, "invocation_failed");
                assert_eq!(r.error.unwrap().stacktrace.as_deref(), Some("Traceback"));
                assert!(r.result.is_none());
            }
            other => panic!("wrong variant {other:?}"),
        }
    }

    #[test]
    fn null_result_is_none() {
        let frame = br#"{"type":"invocationresult","invocation_id":"x","function_id":"f","result":null}"#;
        match Message::decode(frame).unwrap() {
            Message::InvocationResult(r) => assert!(r.result.is_none()),
            other => panic!("wrong variant {other:?}"),
        }
    }

    #[test]
    fn escaped_strings_decode() {
        let frame = br#"{"type":"invokefunction","invocation_id":"i","function_id":"a\"b\\c","data":1}"#;
        match Message::decode(frame).unwrap() {
            Message::InvokeFunction(inv) => assert_eq!(inv.function_id, "a\"b\\c"),
            other => panic!("wrong variant {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_frames_without_panicking() {
        assert!(matches!(Message::decode(b"not json"), Err(DecodeError::Malformed(_))));
        assert!(matches!(Message::decode(b"[1,2]"), Err(DecodeError::Malformed(_))));
        assert!(matches!(Message::decode(b"{}"), Err(DecodeError::Malformed(_))));
        assert!(matches!(
            Message::decode(br#"{"type":"Ping"}"#),
            Err(DecodeError::UnknownType(t)) if t == "Ping"
        ));
        assert!(matches!(
            Message::decode(br#"{"type":"invocationresult","function_id":"f"}"#),
            Err(DecodeError::MissingField { field: "invocation_id", .. })
        ));
        assert!(matches!(
            Message::decode(br#"{"type":"invokefunction","function_id":5,"data":1}"#),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn decodes_head_engine_messages() {
        let frame = br#"{"type":"workerregistered","worker_id":"w1","reattach_token":"tok"}"#;
        match Message::decode(frame).unwrap() {
            Message::WorkerRegistered(w) => {
                assert_eq!(w.worker_id, "w1");
                assert_eq!(w.reattach_token.as_deref(), Some("tok"));
                assert_eq!(w.features, None, "absent: an engine before 0.25");
            }
            other => panic!("wrong variant {other:?}"),
        }
        let frame = br#"{"type":"registrationrejected","code":"WORKER_NAMESPACE_CONFLICT","namespace":"default","owner_worker_id":"o"}"#;
        assert!(matches!(
            Message::decode(frame).unwrap(),
            Message::RegistrationRejected(r) if r.code == "WORKER_NAMESPACE_CONFLICT"
        ));
        let reattach = Message::Reattach { previous_worker_id: "p".into(), reattach_token: "t".into() };
        assert_eq!(reattach.encode(), r#"{"type":"reattach","previous_worker_id":"p","reattach_token":"t"}"#);
    }

    #[test]
    fn reads_the_0_25_call_fields() {
        let frame = br#"{"type":"invokefunction","invocation_id":"i","function_id":"f","data":null,
            "caller":{"worker_id":"w","worker_name":"billing","function_id":"c::outer","invocation_id":"inv",
                "parent":{"worker_name":"up","function_id":"u::f","parent":{"worker_name":"deeper"}}},
            "observe_depth":2,"activation":{"observer_id":"o1","activation_id":"a1"},"metadata":{"k":1}}"#;
        let Message::InvokeFunction(inv) = Message::decode(frame).unwrap() else { panic!() };
        let caller = inv.caller.clone().unwrap();
        assert_eq!(caller.worker_id.as_deref(), Some("w"));
        assert_eq!(caller.function_id.as_deref(), Some("c::outer"));
        let parent = caller.parent.unwrap();
        assert_eq!(
            (parent.worker_name.as_deref(), parent.function_id.as_deref()),
            (Some("up"), Some("u::f"))
        );
        assert_eq!(inv.observe_depth, Some(2));
        assert_eq!(
            inv.activation,
            Some(Activation { observer_id: "o1".into(), activation_id: Some("a1".into()) })
        );
        let again: serde_json::Value = serde_json::from_str(&Message::InvokeFunction(inv).encode()).unwrap();
        assert_eq!(
            again["caller"],
            serde_json::json!({"worker_id": "w", "worker_name": "billing", "function_id": "c::outer",
                "invocation_id": "inv", "parent": {"worker_name": "up", "function_id": "u::f"}}),
            "parent is one level deep"
        );
        assert_eq!(again["metadata"], serde_json::json!({"k": 1}));
    }

    #[test]
    fn malformed_0_25_call_fields_read_as_absent() {
        let frame = br#"{"type":"invokefunction","function_id":"f","data":1,
            "caller":{"worker_id":7,"function_id":"ok","parent":"x"},"observe_depth":-1,
            "activation":{"observer_id":3}}"#;
        let Message::InvokeFunction(inv) = Message::decode(frame).unwrap() else { panic!() };
        assert_eq!(inv.caller, Some(Caller { function_id: Some("ok".into()), ..Caller::default() }));
        assert_eq!((inv.observe_depth, inv.activation), (None, None));
        let frame =
            br#"{"type":"invokefunction","function_id":"f","data":1,"caller":[1],"observe_depth":"2"}"#;
        let Message::InvokeFunction(inv) = Message::decode(frame).unwrap() else { panic!() };
        assert_eq!((inv.caller, inv.observe_depth), (None, None));
    }

    #[test]
    fn calls_without_0_25_fields_encode_as_before() {
        let frame = br#"{"type":"invokefunction","invocation_id":"i","function_id":"f","data":{"a":1}}"#;
        let Message::InvokeFunction(inv) = Message::decode(frame).unwrap() else { panic!() };
        assert_eq!(
            Message::InvokeFunction(inv).encode(),
            r#"{"type":"invokefunction","invocation_id":"i","function_id":"f","data":{"a":1}}"#
        );
    }

    #[test]
    fn worker_registered_carries_the_engine_features() {
        let hello = WorkerRegistered {
            worker_id: "w1".into(),
            reattach_token: Some("t".into()),
            features: Some(vec!["observe.v1".into(), "local-dispatch.v1".into()]),
        };
        let text = hello.encode();
        assert_eq!(
            text,
            r#"{"type":"workerregistered","worker_id":"w1","reattach_token":"t","features":["observe.v1","local-dispatch.v1"]}"#
        );
        assert_eq!(WorkerRegistered::decode(text.as_bytes()).unwrap(), hello);
        // The message's variant carries the same fields.
        assert!(matches!(
            Message::decode(text.as_bytes()).unwrap(),
            Message::WorkerRegistered(w) if w == hello && w.has_feature("observe.v1")
        ));
        let legacy = WorkerRegistered { worker_id: "w".into(), ..Default::default() };
        assert_eq!(legacy.encode(), r#"{"type":"workerregistered","worker_id":"w"}"#);
        assert!(!legacy.has_feature("observe.v1"));
        let read = |features: &str| {
            let frame = format!(r#"{{"type":"workerregistered","worker_id":"w","features":{features}}}"#);
            WorkerRegistered::decode(frame.as_bytes()).unwrap().features
        };
        assert_eq!(read(r#"["a",1,null,"b"]"#), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(read("\"observe.v1\""), Some(vec![]));
        assert_eq!(read("null"), None);
        assert!(matches!(WorkerRegistered::decode(br#"{"type":"ping"}"#), Err(DecodeError::UnknownType(_))));
    }

    #[test]
    fn an_asserted_caller_names_the_handler_and_its_caller_one_level_up() {
        let alone = Caller::asserted("a::f", "inv-1", None);
        assert_eq!(alone.to_json(), r#"{"function_id":"a::f","invocation_id":"inv-1"}"#);
        let incoming = Caller {
            worker_id: Some("w".into()),
            worker_name: Some("up".into()),
            function_id: Some("u::f".into()),
            invocation_id: Some("inv-0".into()),
            parent: Some(Box::new(ParentCaller { worker_name: Some("deeper".into()), ..Default::default() })),
        };
        assert_eq!(
            Caller::asserted("a::f", "inv-1", Some(&incoming)).to_json(),
            r#"{"function_id":"a::f","invocation_id":"inv-1","parent":{"worker_id":"w","worker_name":"up","function_id":"u::f","invocation_id":"inv-0"}}"#
        );
        let empty = Caller::asserted("a::f", "inv-1", Some(&Caller::default()));
        assert_eq!(empty.parent, None, "an empty caller is no parent");
    }

    #[test]
    fn unit_messages_encode_as_bare_type() {
        assert_eq!(Message::Ping.encode(), r#"{"type":"ping"}"#);
        assert_eq!(Message::decode(br#"{"type":"pong"}"#).unwrap().kind(), "pong");
    }
}
