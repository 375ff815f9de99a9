//! Wire format of the iii engine protocol: message types and their JSON encoding.

pub mod frames;
#[cfg(test)]
mod fuzz;
mod message;

pub use message::{
    raw_json, DecodeError, ErrorBody, InvocationResult, InvokeFunction, Json, Message, RegisterFunction,
    RegisterService, RegisterTrigger, RegisterTriggerType, RegistrationRejected, TriggerAction,
    TriggerRegistrationResult,
};
