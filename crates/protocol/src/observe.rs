//! The observe family of protocol 0.25 (docs/protocol.md C.9, C.10): observers, observable
//! functions and the owner's reports.
//!
//! These messages are rare next to calls and results, so they are decoded with serde's derive
//! over owned values rather than through the flat borrowed `Fields` of `message.rs`. Enum-like
//! strings (states, captures, `on`, `deliver`) stay strings: a value a newer peer adds is kept
//! and written back unchanged, as the official SDKs do (C.9, "String enums").

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::message::{Caller, ErrorBody};

/// What an observer watches (`observe.source`). Absent fields stay absent: the engine applies
/// the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObserveSource {
    pub function_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<String>,
}

/// The function an observer activates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveTarget {
    pub function_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `observe` (W→E): create, or idempotently replay under the same id, an observer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observe {
    pub id: String,
    pub source: ObserveSource,
    pub target: ObserveTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fires: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
}

fn default_args() -> Value {
    Value::Object(Default::default())
}

fn default_capture() -> Vec<String> {
    ["input", "output", "caller"].map(str::to_owned).to_vec()
}

fn default_on() -> String {
    "success".to_owned()
}

fn default_namespace() -> String {
    "default".to_owned()
}

/// `null` reads as the default, like an absent field.
fn or_default<'de, D, T, F>(d: D, default: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
    F: FnOnce() -> T,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_else(default))
}

fn args_or_default<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    or_default(d, default_args)
}

fn filters_or_default<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    or_default(d, default_args)
}

fn capture_or_default<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    or_default(d, default_capture)
}

fn on_or_default<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    or_default(d, default_on)
}

fn namespace_or_default<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    or_default(d, default_namespace)
}

fn list_or_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    or_default(d, Vec::new)
}

fn zero_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    or_default(d, || 0)
}

/// Keeps a present `null` as `Some(Value::Null)`, distinct from an absent field.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// An observer as the owner of its source function sees it (C.9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObserverView {
    pub id: String,
    #[serde(default = "default_args", deserialize_with = "args_or_default")]
    pub args: Value,
    #[serde(default = "default_args", deserialize_with = "filters_or_default")]
    pub filters: Value,
    /// The target's function id only.
    pub target: String,
    #[serde(default = "default_capture", deserialize_with = "capture_or_default")]
    pub capture: Vec<String>,
    #[serde(default = "default_on", deserialize_with = "on_or_default")]
    pub on: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<Value>,
}

/// One observed invocation an owner reports (C.17): local calls and emitted events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedItem {
    pub function_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub invocation_id: String,
    #[serde(default, deserialize_with = "list_or_empty")]
    pub matched: Vec<String>,
    pub status: String,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<Caller>,
    pub started_at_ms: u64,
    pub duration_ms: f64,
    #[serde(default)]
    pub observe_depth: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baggage: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalFunctionStats {
    pub function_id: String,
    pub count: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub duration_ms_sum: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedReportStats {
    pub function_id: String,
    /// `BUFFER_FULL`, `TOO_LARGE` or `INACTIVE`.
    pub reason: String,
    pub count: u64,
}

/// The observe-family messages, both directions (C.10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ObserveMessage {
    Observe(Observe),
    Unobserve {
        id: String,
    },
    ObserveResult {
        id: String,
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
        #[serde(default, deserialize_with = "list_or_empty", skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    ObserverStateChanged {
        id: String,
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ErrorBody>,
        #[serde(default, deserialize_with = "zero_if_null")]
        fires: u64,
    },
    FunctionRegistered {
        id: String,
        #[serde(default = "default_namespace", deserialize_with = "namespace_or_default")]
        namespace: String,
        revision: u64,
        #[serde(default)]
        local_dispatch: bool,
        #[serde(default, deserialize_with = "list_or_empty")]
        observers: Vec<ObserverView>,
    },
    ObserverAdded {
        function_id: String,
        #[serde(default = "default_namespace", deserialize_with = "namespace_or_default")]
        namespace: String,
        revision: u64,
        observer: ObserverView,
    },
    ObserverRemoved {
        function_id: String,
        #[serde(default = "default_namespace", deserialize_with = "namespace_or_default")]
        namespace: String,
        revision: u64,
        id: String,
    },
    ObserverAck {
        function_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        id: String,
        revision: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
    InvocationsObserved {
        items: Vec<ObservedItem>,
    },
    LocalInvocationStats {
        window_ms: u64,
        #[serde(default, deserialize_with = "list_or_empty")]
        functions: Vec<LocalFunctionStats>,
        #[serde(default, deserialize_with = "list_or_empty")]
        dropped_reports: Vec<DroppedReportStats>,
    },
}

impl ObserveMessage {
    /// The `type` values of this family.
    pub const KINDS: [&'static str; 10] = [
        "observe",
        "unobserve",
        "observeresult",
        "observerstatechanged",
        "functionregistered",
        "observeradded",
        "observerremoved",
        "observerack",
        "invocationsobserved",
        "localinvocationstats",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            ObserveMessage::Observe(_) => "observe",
            ObserveMessage::Unobserve { .. } => "unobserve",
            ObserveMessage::ObserveResult { .. } => "observeresult",
            ObserveMessage::ObserverStateChanged { .. } => "observerstatechanged",
            ObserveMessage::FunctionRegistered { .. } => "functionregistered",
            ObserveMessage::ObserverAdded { .. } => "observeradded",
            ObserveMessage::ObserverRemoved { .. } => "observerremoved",
            ObserveMessage::ObserverAck { .. } => "observerack",
            ObserveMessage::InvocationsObserved { .. } => "invocationsobserved",
            ObserveMessage::LocalInvocationStats { .. } => "localinvocationstats",
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("observe messages always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use serde_json::json;

    fn decode(v: Value) -> ObserveMessage {
        match Message::decode(v.to_string().as_bytes()).unwrap() {
            Message::Observe(m) => *m,
            other => panic!("not an observe message: {other:?}"),
        }
    }

    #[test]
    fn observe_round_trips_and_leaves_absent_fields_out() {
        let frame = json!({"type":"observe","id":"o1",
            "source":{"function_id":"p::charge","filters":{"input.amount":{"$gte":500}},"on":"error"},
            "target":{"function_id":"alerts::x"},"max_in_flight":4});
        let msg = decode(frame.clone());
        let back: Value = serde_json::from_str(&msg.encode()).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn defaults_apply_to_absent_and_null_fields() {
        let msg = decode(json!({"type":"functionregistered","id":"f","namespace":null,"revision":3,
            "observers":[{"id":"a","target":"t","args":null,"capture":null}]}));
        let ObserveMessage::FunctionRegistered { namespace, revision, local_dispatch, observers, .. } = msg
        else {
            panic!()
        };
        assert_eq!((namespace.as_str(), revision, local_dispatch), ("default", 3, false));
        assert_eq!(observers[0].args, json!({}));
        assert_eq!(observers[0].filters, json!({}));
        assert_eq!(observers[0].capture, ["input", "output", "caller"]);
        assert_eq!(observers[0].on, "success");
    }

    #[test]
    fn an_item_keeps_null_distinct_from_absent() {
        let msg =
            decode(json!({"type":"invocationsobserved","items":[{"function_id":"f","invocation_id":"i",
            "status":"success","input":null,"started_at_ms":1,"duration_ms":0.5}]}));
        let ObserveMessage::InvocationsObserved { items } = &msg else { panic!() };
        assert_eq!(items[0].input, Some(Value::Null));
        assert_eq!(items[0].output, None);
        let back: Value = serde_json::from_str(&msg.encode()).unwrap();
        assert!(back["items"][0].as_object().unwrap().contains_key("input"));
        assert!(!back["items"][0].as_object().unwrap().contains_key("output"));
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let msg = decode(json!({"type":"observerstatechanged","id":"o","state":"hibernating","fires":null}));
        assert_eq!(
            msg,
            ObserveMessage::ObserverStateChanged {
                id: "o".into(),
                state: "hibernating".into(),
                reason: None,
                fires: 0
            }
        );
    }

    #[test]
    fn a_malformed_observe_message_is_an_error_not_a_panic() {
        assert!(Message::decode(br#"{"type":"observeradded","function_id":"f"}"#).is_err());
        assert!(Message::decode(br#"{"type":"observe","id":5}"#).is_err());
    }
}
