//! Engine 0.25 (`Generation::V025`) with raw clients: feature negotiation, the stamped
//! `caller`, the bearer token, the upgrade capabilities, the `/otel` socket and 64 MiB messages.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use super::{config, has_function, head_engine, until, Client};
use crate::config::Generation;
use crate::{EngineConfig, EngineHandle};

pub(super) const SDK_FEATURES: [&str; 3] = ["observe.v1", "local-dispatch.v1", "large-messages.v1"];
const MIB: usize = 1 << 20;

pub(super) async fn engine_with(config: EngineConfig) -> EngineHandle {
    EngineHandle::start(EngineConfig { generation: Generation::V025, ..config }).await.expect("engine starts")
}

async fn engine025() -> EngineHandle {
    engine_with(config()).await
}

pub(super) fn register_call(name: &str, features: Value) -> Value {
    json!({"type": "invokefunction", "function_id": "engine::workers::register", "action": {"type": "void"},
        "data": {"runtime": "python", "version": "0.25.0", "name": name, "features": features}})
}

/// Connects the way a 0.25 SDK does: the register call first, then `workerregistered`. The
/// client reads frames of up to 64 MiB, like the SDK.
pub(super) async fn connect(engine: &EngineHandle, name: &str) -> Client {
    let receive = WebSocketConfig::default().max_frame_size(Some(64 * MIB)).max_message_size(Some(64 * MIB));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(engine.url(), Some(receive), false)
        .await
        .expect("connects");
    let mut client = Client { ws, id: String::new(), hello: Value::Null };
    client.send(register_call(name, json!(SDK_FEATURES))).await;
    let hello = client.recv().await;
    assert_eq!(hello["type"], "workerregistered", "{hello}");
    client.id = hello["worker_id"].as_str().expect("worker_id").to_owned();
    client.hello = hello;
    client
}

pub(super) async fn ping(client: &mut Client) {
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.recv().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn workerregistered_answers_the_first_register_call_with_the_engine_features() {
    let engine = engine025().await;
    let (ws, _) = tokio_tungstenite::connect_async(engine.url()).await.expect("connects");
    let mut client = Client { ws, id: String::new(), hello: Value::Null };
    // Nothing is sent at connect: the first frame is the answer to a ping.
    ping(&mut client).await;
    client.register("svc::f").await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut announce = register_call("w-1", json!(SDK_FEATURES));
    announce.as_object_mut().unwrap().remove("action");
    announce["invocation_id"] = json!(id);
    client.send(announce).await;

    let hello = client.recv().await;
    assert_eq!(hello["type"], "workerregistered", "{hello}");
    assert_eq!(hello["features"], json!(["observe.v1", "local-dispatch.v1"]));
    let token = hello["reattach_token"].as_str().expect("reattach_token");
    assert!(uuid::Uuid::parse_str(token).is_ok());
    assert_eq!(engine.worker_ids(), [hello["worker_id"].as_str().unwrap()]);
    assert_eq!(engine.function_ids(), ["svc::f"], "registrations applied before the hello");
    // Its owner declared observe.v1: the engine confirms the function once it greeted.
    let confirmed = client.recv().await;
    assert_eq!(
        (confirmed["type"].as_str(), confirmed["id"].as_str()),
        (Some("functionregistered"), Some("svc::f"))
    );
    let res = client.recv().await;
    assert_eq!(
        (res["invocation_id"].as_str(), &res["result"]),
        (Some(id.as_str()), &json!({"success": true}))
    );

    // Announcing again changes the metadata but sends no second hello.
    let res = client.call("engine::workers::register", json!({"name": "w-1", "version": "2"})).await;
    assert_eq!(res["result"], json!({"success": true}));
    ping(&mut client).await;
}

#[tokio::test]
async fn a_refused_register_call_gets_no_workerregistered() {
    let engine = engine025().await;
    let (ws, _) = tokio_tungstenite::connect_async(engine.url()).await.expect("connects");
    let mut blank = Client { ws, id: String::new(), hello: Value::Null };
    let res = blank.call("engine::workers::register", json!({"name": "b", "namespace": " "})).await;
    assert_eq!(res["error"]["code"], "INVALID_NAMESPACE");
    ping(&mut blank).await;

    let owner = connect(&engine, "billing").await;
    let (ws, _) = tokio_tungstenite::connect_async(engine.url()).await.expect("connects");
    let mut second = Client { ws, id: String::new(), hello: Value::Null };
    second.send(register_call("billing", json!(SDK_FEATURES))).await;
    let rejected = second.recv().await;
    assert_eq!(rejected["type"], "registrationrejected", "{rejected}");
    assert_eq!(rejected["owner_worker_id"], owner.id.as_str());
    let closed = tokio::time::timeout(Duration::from_secs(5), second.ws.next()).await.expect("in time");
    assert!(matches!(closed, None | Some(Ok(WsMessage::Close(_))) | Some(Err(_))), "{closed:?}");
}

#[tokio::test]
async fn earlier_generations_greet_at_connect_without_features() {
    for engine in [super::engine().await, head_engine().await] {
        let client = Client::connect(&engine).await;
        assert!(client.hello.get("features").is_none(), "{}", client.hello);
    }
}

#[tokio::test]
async fn forwarded_calls_carry_the_caller_the_engine_stamped() {
    let engine = engine025().await;
    let mut callee = connect(&engine, "callee").await;
    callee.register("svc::target").await;
    assert_eq!(callee.recv().await["type"], "functionregistered");
    has_function(&engine, "svc::target").await;
    let mut caller = connect(&engine, "checkout").await;
    let caller_id = caller.id.clone();

    // A top-level call: the caller is exactly the calling worker.
    let id = uuid::Uuid::new_v4().to_string();
    caller
        .send(
            json!({"type": "invokefunction", "invocation_id": id, "function_id": "svc::target", "data": {}}),
        )
        .await;
    let inv = callee.recv().await;
    assert_eq!(inv["caller"], json!({"worker_id": caller_id, "worker_name": "checkout"}));
    assert!(inv.get("observe_depth").is_none() && inv.get("metadata").is_none(), "{inv}");
    callee.reply(&inv, json!(1)).await;
    assert_eq!(caller.recv().await["result"], 1);

    // From a handler: the asserted ids and parent are kept, the worker fields are the engine's.
    let asserted = json!({"worker_id": "spoofed", "worker_name": "spoofed", "function_id": "c::outer",
        "invocation_id": "inv-1", "parent": {"worker_id": "w-up", "worker_name": "up", "function_id": "u::f",
        "invocation_id": "inv-0", "parent": {"worker_name": "too-deep"}}});
    let id = uuid::Uuid::new_v4().to_string();
    caller
        .send(json!({"type": "invokefunction", "invocation_id": id, "function_id": "svc::target", "data": {},
            "caller": asserted, "observe_depth": 2, "metadata": {"tenant": "acme"}}))
        .await;
    let inv = callee.recv().await;
    assert_eq!(
        inv["caller"],
        json!({"worker_id": caller_id, "worker_name": "checkout", "function_id": "c::outer",
            "invocation_id": "inv-1", "parent": {"worker_id": "w-up", "worker_name": "up",
            "function_id": "u::f", "invocation_id": "inv-0"}})
    );
    assert_eq!((&inv["observe_depth"], &inv["metadata"]), (&json!(2), &json!({"tenant": "acme"})));
    callee.reply(&inv, json!(2)).await;
    assert_eq!(caller.recv().await["result"], 2);

    // A void call is stamped too; a zero depth is not forwarded.
    caller
        .send(json!({"type": "invokefunction", "function_id": "svc::target", "data": null,
            "action": {"type": "void"}, "observe_depth": 0}))
        .await;
    let inv = callee.recv().await;
    assert_eq!(inv["caller"], json!({"worker_id": caller_id, "worker_name": "checkout"}));
    assert!(inv.get("observe_depth").is_none(), "{inv}");
}

#[tokio::test]
async fn head_forwards_no_caller() {
    let engine = head_engine().await;
    let mut callee = Client::connect(&engine).await;
    callee.register("svc::target").await;
    callee
        .send(json!({"type": "invokefunction", "function_id": "engine::workers::register", "data": {"name": "c"},
            "action": {"type": "void"}}))
        .await;
    has_function(&engine, "svc::target").await;
    let mut caller = Client::connect(&engine).await;
    caller
        .send(json!({"type": "invokefunction", "function_id": "svc::target", "data": {},
            "action": {"type": "void"}, "caller": {"function_id": "c::outer"}, "observe_depth": 1}))
        .await;
    let inv = callee.recv().await;
    assert!(inv.get("caller").is_none() && inv.get("observe_depth").is_none(), "{inv}");
}

#[tokio::test]
async fn the_features_a_worker_declared_are_recorded() {
    let engine = engine025().await;
    let a = connect(&engine, "a").await;
    let mut b = connect(&engine, "b").await;
    b.send(register_call("b", json!(["x", 1, "y"]))).await;
    let mut c = connect(&engine, "c").await;
    c.send(json!({"type": "invokefunction", "function_id": "engine::workers::register",
        "action": {"type": "void"}, "data": {"name": "c"}}))
        .await;
    let mut d = connect(&engine, "d").await;
    d.send(register_call("d", json!("observe.v1"))).await;
    for client in [&mut b, &mut c, &mut d] {
        ping(client).await;
    }
    let sdk: Vec<String> = SDK_FEATURES.map(str::to_owned).to_vec();
    // Sorted: workers that connected within the same millisecond have no fixed order.
    let mut declared = engine.worker_features();
    declared.sort();
    let mut expected =
        vec![(a.id.clone(), sdk), (b.id.clone(), vec!["x".into(), "y".into()]), (d.id.clone(), vec![])];
    expected.sort();
    assert_eq!(declared, expected);
    drop(a);
    until("a gone", || engine.worker_features().len() == 2).await;
}

fn request(
    url: &str,
    authorization: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().expect("request");
    if let Some(value) = authorization {
        req.headers_mut().insert("authorization", HeaderValue::from_str(value).unwrap());
    }
    req
}

#[tokio::test]
async fn with_a_token_the_upgrade_needs_it_as_a_bearer_credential() {
    let engine = engine_with(EngineConfig { token: Some("s3cret".into()), ..config() }).await;
    let channel = format!("{}/ws/channels/nope?key=k&dir=read", engine.url());
    for (url, auth) in [
        (engine.url(), None),
        (engine.url(), Some("Bearer wrong")),
        (engine.url(), Some("Basic s3cret")),
        (engine.url(), Some("s3cret")),
        (channel.clone(), None),
    ] {
        match tokio_tungstenite::connect_async(request(&url, auth)).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), 401, "{url} {auth:?}");
                assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            }
            other => panic!("expected 401 for {url} {auth:?}, got {other:?}"),
        }
    }
    assert_eq!(engine.connection_count(), 0);
    for auth in ["Bearer s3cret", "bearer  s3cret "] {
        let (ws, _) =
            tokio_tungstenite::connect_async(request(&engine.url(), Some(auth))).await.expect("accepted");
        let mut client = Client { ws, id: String::new(), hello: Value::Null };
        ping(&mut client).await;
    }
    // Past the token, a channel path is looked up as usual.
    match tokio_tungstenite::connect_async(request(&channel, Some("Bearer s3cret"))).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
    let sent = engine.upgrade_requests();
    assert_eq!(sent.len(), 8);
    assert!(sent[0].headers.iter().all(|(name, _)| name != "authorization"));
    assert!(sent[5].headers.contains(&("authorization".into(), "Bearer s3cret".into())));

    // Any generation checks a configured token.
    let old = EngineHandle::start(EngineConfig { token: Some("t".into()), ..config() }).await.unwrap();
    assert!(
        matches!(tokio_tungstenite::connect_async(old.url()).await, Err(WsError::Http(r)) if r.status() == 401)
    );
    let blank = engine_with(EngineConfig { token: Some("  ".into()), ..config() }).await;
    assert!(tokio_tungstenite::connect_async(blank.url()).await.is_ok(), "a blank token is no token");
}

#[tokio::test]
async fn the_upgrade_response_advertises_tcp_nodelay() {
    let engine = engine025().await;
    let (_ws, resp) = tokio_tungstenite::connect_async(engine.url()).await.expect("connects");
    assert_eq!(resp.headers()["x-iii-capabilities"], "tcp-nodelay");
    let head = head_engine().await;
    let (_ws, resp) = tokio_tungstenite::connect_async(head.url()).await.expect("connects");
    assert!(resp.headers().get("x-iii-capabilities").is_none());
}

const OTLP: &str = r#"OTLP{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"otel-side"}}]},"scopeSpans":[{"scope":{"name":"iii-rust-sdk"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"execute a::f","kind":1,"startTimeUnixNano":"100","endTimeUnixNano":"200","status":{"code":1}}]}]}]}"#;

#[tokio::test]
async fn the_otel_socket_takes_telemetry_and_is_no_worker() {
    let engine = engine025().await;
    let mut worker = connect(&engine, "w").await;
    let (mut otel, _) =
        tokio_tungstenite::connect_async(format!("{}/otel", engine.url())).await.expect("connects");
    otel.send(WsMessage::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    otel.send(WsMessage::Binary(OTLP.as_bytes().to_vec().into())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let list = worker.call("engine::traces::list", json!({})).await;
        if list["result"]["total"] == 1 {
            assert_eq!(list["result"]["spans"][0]["service_name"], "otel-side");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "span not stored: {list}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(tokio::time::timeout(Duration::from_millis(100), otel.next()).await.is_err(), "nothing sent");
    assert_eq!(engine.worker_ids(), [worker.id.clone()]);

    let head = head_engine().await;
    let refused = tokio_tungstenite::connect_async(format!("{}/otel", head.url())).await;
    assert!(matches!(refused, Err(WsError::Http(r)) if r.status() == 404));
}

/// Sends `text` as a 0.25 SDK sends a message over 16 MiB: 1 MiB fragments.
async fn send_fragmented(client: &mut Client, text: String) -> Result<(), WsError> {
    let bytes = text.into_bytes();
    let count = bytes.len().div_ceil(MIB);
    for (i, chunk) in bytes.chunks(MIB).enumerate() {
        let opcode = OpCode::Data(if i == 0 { Data::Text } else { Data::Continue });
        client.ws.feed(WsMessage::Frame(Frame::message(chunk.to_vec(), opcode, i + 1 == count))).await?;
    }
    client.ws.flush().await
}

fn big_call(id: &str, function_id: &str, size: usize) -> String {
    format!(
        r#"{{"type":"invokefunction","invocation_id":"{id}","function_id":"{function_id}","data":"{}"}}"#,
        "x".repeat(size)
    )
}

#[tokio::test]
async fn messages_up_to_64_mib_go_through_and_larger_ones_end_the_link() {
    let engine = engine025().await;
    let mut callee = connect(&engine, "callee").await;
    callee.register("big::echo").await;
    assert_eq!(callee.recv().await["type"], "functionregistered");
    has_function(&engine, "big::echo").await;
    let mut caller = connect(&engine, "caller").await;

    let id = uuid::Uuid::new_v4().to_string();
    // Room for what the engine adds on the way (ids, the caller).
    let size = 64 * MIB - 4096;
    send_fragmented(&mut caller, big_call(&id, "big::echo", size)).await.expect("sent");
    let inv = callee.recv().await;
    assert_eq!(inv["data"].as_str().map(str::len), Some(size));
    callee.reply(&inv, json!("ok")).await;
    assert_eq!(caller.recv().await["result"], "ok");

    let id = uuid::Uuid::new_v4().to_string();
    let _ = send_fragmented(&mut caller, big_call(&id, "big::echo", 64 * MIB)).await;
    until("oversized link dropped", || engine.worker_ids() == [callee.id.clone()]).await;
    let end = tokio::time::timeout(Duration::from_secs(5), caller.ws.next()).await.expect("in time");
    assert!(!matches!(end, Some(Ok(WsMessage::Text(_)))), "{end:?}");
    callee.silence(100).await;
}

#[test]
fn generations_by_name_and_the_older_head_switch() {
    assert_eq!("0.25".parse(), Ok(Generation::V025));
    assert_eq!("v0.25".parse(), Ok(Generation::V025));
    assert_eq!("head".parse(), Ok(Generation::Head));
    assert_eq!("v0.11".parse(), Ok(Generation::V011));
    assert!("0.24".parse::<Generation>().is_err());
    assert_eq!(Generation::V025.name(), "0.25");
    let old = EngineConfig { head_protocol: true, ..EngineConfig::default() };
    assert_eq!(old.effective_generation(), Generation::Head);
    let both = EngineConfig { head_protocol: true, generation: Generation::V025, ..EngineConfig::default() };
    assert_eq!(both.effective_generation(), Generation::V025);
}
