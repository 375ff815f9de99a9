//! Property tests: the decoder never panics, whatever the engine sends, and every message the
//! encoder writes decodes back to the same kind.

use proptest::prelude::*;

use super::{frames, Message, TriggerAction};

/// Mutations of realistic frames reach deeper into the decoder than random bytes alone.
fn seed_frames() -> Vec<&'static str> {
    vec![
        r#"{"type":"invocationresult","invocation_id":"73b2d337-6e4c-4c2b-8be5-fc9745713579","function_id":"f","result":{"a":[1,2]}}"#,
        r#"{"type":"invokefunction","invocation_id":"73b2d337-6e4c-4c2b-8be5-fc9745713579","function_id":"f","data":{"x":"\u00e9"},"traceparent":"00-1-2-01"}"#,
        r#"{"type":"registertrigger","id":"t","trigger_type":"w","function_id":"f","config":null,"metadata":{"m":1}}"#,
        r#"{"type":"unregistertrigger","id":"t","trigger_type":"w"}"#,
        r#"{"type":"workerregistered","worker_id":"w","reattach_token":"t"}"#,
        r#"{"type":"registrationrejected","code":"X","namespace":"n"}"#,
        r#"{"type":"error","error":{"code":"AUTH_ERROR","message":"m"}}"#,
        r#"{"type":"ping"}"#,
    ]
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seed_frames();
    (0..seeds.len(), proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8)).prop_map(
        move |(i, edits)| {
            let mut bytes = seeds[i].as_bytes().to_vec();
            for (pos, byte, op) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let at = pos % bytes.len();
                match op {
                    0 => bytes[at] = byte,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            bytes
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn decoder_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_mutated_frames(bytes in mutated()) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn encoded_calls_decode_back(
        function_id in "\\PC{0,40}",
        queue in proptest::option::of("\\PC{1,20}"),
        n in any::<i64>(),
        text in "\\PC{0,60}",
    ) {
        let data = serde_json::json!({"n": n, "text": text}).to_string();
        let action = queue.map(|queue| TriggerAction::Enqueue { queue });
        let frame = frames::invoke_function(Some("id"), &function_id, Some(&data), action.as_ref(), None, None);
        match Message::decode(frame.as_bytes()) {
            Ok(Message::InvokeFunction(call)) => {
                prop_assert_eq!(call.function_id, function_id);
                prop_assert_eq!(call.action, action);
                let back: serde_json::Value = serde_json::from_str(call.data.unwrap().get()).unwrap();
                prop_assert_eq!(back["text"].as_str().unwrap(), text.as_str());
            }
            other => prop_assert!(false, "decoded to {:?}", other),
        }
    }
}
