//! Newer-engine behaviours (`head_protocol`) and the engine-control helpers for resilience tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{engine, has_function, head_engine, until, Client};

/// The next frame, whatever it is.
async fn frame(client: &mut Client) -> Option<WsMessage> {
    tokio::time::timeout(Duration::from_secs(5), client.ws.next()).await.expect("frame in time")?.ok()
}

async fn announce(client: &mut Client, name: &str) {
    client
        .send(json!({"type": "invokefunction", "function_id": "engine::workers::register",
            "action": {"type": "void"}, "data": {"runtime": "python", "name": name}}))
        .await;
}

#[tokio::test]
async fn reattach_token_only_in_head_mode() {
    let old = engine().await;
    let client = Client::connect(&old).await;
    assert!(client.hello.get("reattach_token").is_none(), "{}", client.hello);
    let head = head_engine().await;
    let client = Client::connect(&head).await;
    let token = client.hello["reattach_token"].as_str().expect("token");
    assert!(uuid::Uuid::parse_str(token).is_ok());
}

#[tokio::test]
async fn reattach_cleans_up_the_previous_connection_first() {
    let engine = head_engine().await;
    let mut old = Client::connect(&engine).await;
    old.register("svc::f").await;
    announce(&mut old, "svc-old").await;
    has_function(&engine, "svc::f").await;

    let mut new = Client::connect(&engine).await;
    // A wrong token is ignored: the old connection stays and keeps its function.
    new.send(json!({"type": "reattach", "previous_worker_id": old.id, "reattach_token": "wrong"})).await;
    new.send(json!({"type": "ping"})).await;
    assert_eq!(new.recv().await["type"], "pong");
    assert_eq!(engine.connection_count(), 2);

    let token = old.hello["reattach_token"].clone();
    new.send(json!({"type": "reattach", "previous_worker_id": old.id, "reattach_token": token})).await;
    new.register("svc::f").await;
    announce(&mut new, "svc-new").await;
    new.send(json!({"type": "ping"})).await;
    assert_eq!(new.recv().await, json!({"type": "pong"}), "no registrationrejected: the old owner is gone");
    assert!(matches!(frame(&mut old).await, None | Some(WsMessage::Close(_))), "old socket dropped");
    assert_eq!(engine.worker_ids(), vec![new.id.clone()]);
    assert_eq!(engine.function_ids(), ["svc::f"]);

    let mut caller = Client::connect(&engine).await;
    let pending = tokio::spawn(async move { caller.call("svc::f", json!({})).await });
    let inv = new.recv().await;
    new.reply(&inv, json!("new")).await;
    assert_eq!(pending.await.unwrap()["result"], "new");
}

#[tokio::test]
async fn reattach_is_an_unknown_message_without_head_mode() {
    let engine = engine().await;
    let old = Client::connect(&engine).await;
    let mut new = Client::connect(&engine).await;
    new.send(json!({"type": "reattach", "previous_worker_id": old.id, "reattach_token": "t"})).await;
    new.send(json!({"type": "ping"})).await;
    assert_eq!(new.recv().await["type"], "pong");
    assert_eq!(engine.connection_count(), 2);
    assert!(engine.received_kinds().contains(&"reattach".to_owned()));
}

#[tokio::test]
async fn a_taken_worker_name_is_rejected_and_the_connection_closed() {
    let engine = head_engine().await;
    let mut first = Client::connect(&engine).await;
    announce(&mut first, "billing").await;
    first.send(json!({"type": "ping"})).await;
    first.recv().await;

    let mut second = Client::connect(&engine).await;
    let res = second.call("engine::workers::register", json!({"name": "billing"})).await;
    assert_eq!(res["result"], json!({"success": false}));
    assert_eq!(
        second.recv().await,
        json!({"type": "registrationrejected", "code": "WORKER_NAMESPACE_CONFLICT", "namespace": "default",
            "worker_name": "billing", "owner_worker_id": first.id})
    );
    assert!(matches!(frame(&mut second).await, Some(WsMessage::Close(_))));
    until("closed", || engine.connection_count() == 1).await;

    // Another name is fine, and so is announcing one's own name again.
    let mut third = Client::connect(&engine).await;
    let res = third.call("engine::workers::register", json!({"name": "shipping"})).await;
    assert_eq!(res["result"], json!({"success": true}));
    let res = first.call("engine::workers::register", json!({"name": "billing"})).await;
    assert_eq!(res["result"], json!({"success": true}));
}

#[tokio::test]
async fn a_taken_function_id_is_rejected_but_the_connection_kept() {
    let engine = head_engine().await;
    let mut owner = Client::connect(&engine).await;
    owner.register("x::f").await;
    announce(&mut owner, "owner").await;
    has_function(&engine, "x::f").await;
    let mut other = Client::connect(&engine).await;
    announce(&mut other, "other").await;
    other.register("x::f").await;
    assert_eq!(
        other.recv().await,
        json!({"type": "registrationrejected", "code": "FUNCTION_NAMESPACE_CONFLICT", "namespace": "default",
            "function_id": "x::f", "owner_worker_id": owner.id})
    );
    owner.register("x::f").await;
    let pending = tokio::spawn(async move { other.call("x::f", json!(1)).await });
    let inv = owner.recv().await;
    assert_eq!(inv["function_id"], "x::f", "the owner's re-registration is not a conflict");
    owner.reply(&inv, json!(2)).await;
    assert_eq!(pending.await.unwrap()["result"], 2);
}

#[tokio::test]
async fn pause_reading_stalls_every_worker_link() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    until("listed", || engine.connection_count() == 1).await;
    engine.pause_reading(true);
    client.send(json!({"type": "ping"})).await;
    client.ws.send(WsMessage::Ping(b"p".to_vec().into())).await.unwrap();
    client.silence(200).await;
    assert_eq!(engine.connection_count(), 1);
    engine.pause_reading(false);
    assert_eq!(client.recv().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn close_all_gracefully_sends_close_1000_and_cleans_up() {
    let engine = engine().await;
    let mut a = Client::connect(&engine).await;
    let mut b = Client::connect(&engine).await;
    a.register("a::f").await;
    has_function(&engine, "a::f").await;
    let closing = tokio::spawn(async move {
        let mut codes = Vec::new();
        for client in [&mut a, &mut b] {
            loop {
                match frame(client).await {
                    Some(WsMessage::Close(f)) => {
                        codes.push(f.map(|f| f.code));
                        break;
                    }
                    Some(_) => continue,
                    None => panic!("socket ended without a Close frame"),
                }
            }
        }
        codes
    });
    engine.close_all_gracefully().await;
    assert_eq!(closing.await.unwrap(), [Some(CloseCode::Normal), Some(CloseCode::Normal)]);
    assert_eq!(engine.connection_count(), 0);
    assert!(engine.function_ids().is_empty());
    let mut again = Client::connect(&engine).await;
    again.send(json!({"type": "ping"})).await;
    assert_eq!(again.recv().await["type"], "pong");
}
