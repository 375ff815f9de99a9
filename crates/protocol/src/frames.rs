//! Hand-written encoders for the two hot messages. Payloads arrive already encoded (by the
//! caller's serialiser), so they are spliced in without being parsed again; everything else
//! goes through `Message::encode`.

use super::{ErrorBody, TriggerAction};

fn push_str(out: &mut String, s: &str) {
    // A `&str` always serialises.
    serde_json::to_writer(unsafe_vec(out), s).expect("a string always serialises");
}

/// Writes through the String's buffer; serde_json only ever writes valid UTF-8.
fn unsafe_vec(out: &mut String) -> &mut Vec<u8> {
    // SAFETY: serde_json's string serialiser emits valid UTF-8 only.
    unsafe { out.as_mut_vec() }
}

/// `invokefunction`. `data` must be valid JSON text; `None` is written as `null` because the
/// engine drops a call without `data`.
pub fn invoke_function(
    invocation_id: Option<&str>,
    function_id: &str,
    data: Option<&str>,
    action: Option<&TriggerAction>,
    traceparent: Option<&str>,
    baggage: Option<&str>,
) -> String {
    let data = data.unwrap_or("null");
    let mut out = String::with_capacity(96 + function_id.len() + data.len());
    out.push_str(r#"{"type":"invokefunction""#);
    if let Some(id) = invocation_id {
        out.push_str(r#","invocation_id":"#);
        push_str(&mut out, id);
    }
    out.push_str(r#","function_id":"#);
    push_str(&mut out, function_id);
    out.push_str(r#","data":"#);
    out.push_str(data);
    if let Some(action) = action {
        out.push_str(r#","action":"#);
        match action {
            TriggerAction::Void => out.push_str(r#"{"type":"void"}"#),
            TriggerAction::Enqueue { queue } => {
                out.push_str(r#"{"type":"enqueue","queue":"#);
                push_str(&mut out, queue);
                out.push('}');
            }
        }
    }
    for (key, value) in [("traceparent", traceparent), ("baggage", baggage)] {
        if let Some(v) = value {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
            push_str(&mut out, v);
        }
    }
    out.push('}');
    out
}

/// Adds a string field to an encoded message object (e.g. HEAD's `namespace` on a call).
pub fn with_field(mut frame: String, key: &str, value: &str) -> String {
    if frame.ends_with('}') {
        frame.pop();
        frame.push_str(",\"");
        frame.push_str(key);
        frame.push_str("\":");
        push_str(&mut frame, value);
        frame.push('}');
    }
    frame
}

/// Adds a field whose value is JSON text (valid JSON, spliced in as is) to an encoded message
/// object (e.g. 0.25's `caller` on a forwarded call).
pub fn with_json_field(mut frame: String, key: &str, json: &str) -> String {
    if frame.ends_with('}') {
        frame.pop();
        frame.push_str(",\"");
        frame.push_str(key);
        frame.push_str("\":");
        frame.push_str(json);
        frame.push('}');
    }
    frame
}

/// `invocationresult`. `Ok(None)` is a null result, written `"result":null` as the 0.25 SDKs
/// write it (engines before 0.25 read it as an absent `result`, docs/protocol.md C.7).
pub fn invocation_result(
    invocation_id: &str,
    function_id: &str,
    outcome: Result<Option<&str>, &ErrorBody>,
) -> String {
    let mut out = String::with_capacity(128);
    out.push_str(r#"{"type":"invocationresult","invocation_id":"#);
    push_str(&mut out, invocation_id);
    out.push_str(r#","function_id":"#);
    push_str(&mut out, function_id);
    match outcome {
        Ok(None) => out.push_str(r#","result":null"#),
        Ok(Some(result)) => {
            out.reserve(result.len() + 12);
            out.push_str(r#","result":"#);
            out.push_str(result);
        }
        Err(error) => {
            out.push_str(r#","error":"#);
            serde_json::to_writer(unsafe_vec(&mut out), error).expect("ErrorBody serialises");
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::super::{raw_json, InvocationResult, InvokeFunction, Message};
    use super::*;

    #[test]
    fn invoke_matches_the_generic_encoder() {
        let action = TriggerAction::Enqueue { queue: "q\"1".into() };
        let fast = invoke_function(
            Some("id-1"),
            "svc::f\u{e9}\"",
            Some(r#"{"a":[1,2]}"#),
            Some(&action),
            Some("00-ab-cd-01"),
            None,
        );
        let generic = Message::InvokeFunction(InvokeFunction {
            invocation_id: Some("id-1".into()),
            function_id: "svc::f\u{e9}\"".into(),
            data: Some(raw_json(r#"{"a":[1,2]}"#).unwrap()),
            traceparent: Some("00-ab-cd-01".into()),
            baggage: None,
            action: Some(action),
            metadata: None,
            namespace: None,
            caller: None,
            observe_depth: None,
            activation: None,
        })
        .encode();
        let a: serde_json::Value = serde_json::from_str(&fast).unwrap();
        let b: serde_json::Value = serde_json::from_str(&generic).unwrap();
        assert_eq!(a, b);
        let void = invoke_function(None, "f", None, Some(&TriggerAction::Void), None, None);
        assert_eq!(
            void,
            r#"{"type":"invokefunction","function_id":"f","data":null,"action":{"type":"void"}}"#
        );
    }

    #[test]
    fn result_matches_the_generic_encoder() {
        let err = ErrorBody {
            code: "invocation_failed".into(),
            message: "b\"oom".into(),
            stacktrace: Some("tb".into()),
        };
        for outcome in [Ok(Some("[1,{\"x\":null}]")), Err(&err)] {
            let fast = invocation_result("i", "f", outcome);
            let generic = Message::InvocationResult(InvocationResult {
                invocation_id: "i".into(),
                function_id: "f".into(),
                result: outcome.ok().flatten().map(|r| raw_json(r).unwrap()),
                error: outcome.err().cloned(),
                traceparent: None,
                baggage: None,
            })
            .encode();
            let a: serde_json::Value = serde_json::from_str(&fast).unwrap();
            let b: serde_json::Value = serde_json::from_str(&generic).unwrap();
            assert_eq!(a, b);
        }
        assert_eq!(
            invocation_result("i", "f", Ok(None)),
            r#"{"type":"invocationresult","invocation_id":"i","function_id":"f","result":null}"#
        );
    }
}
