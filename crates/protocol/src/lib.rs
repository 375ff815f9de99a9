//! Wire format of the iii engine protocol: message types and their JSON encoding.

pub mod frames;
#[cfg(test)]
mod fuzz;
mod json_str;
mod message;
mod observe;

pub use json_str::{push_json_str, write_json_str};
pub use message::{
    raw_json, Activation, Caller, DecodeError, ErrorBody, InvocationResult, InvokeFunction, Json, Message,
    ParentCaller, RegisterFunction, RegisterService, RegisterTrigger, RegisterTriggerType,
    RegistrationRejected, TriggerAction, TriggerRegistrationResult, WorkerRegistered,
};
pub use observe::{
    DroppedReportStats, LocalFunctionStats, Observe, ObserveMessage, ObserveSource, ObserveTarget,
    ObservedItem, ObserverView,
};
