use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{engine, has_function, until, Client};

/// Reads until the socket ends; returns whether a Close frame was seen first.
async fn ended_with_close(client: &mut Client) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), client.ws.next()).await.expect("socket ends") {
            Some(Ok(WsMessage::Close(_))) => return true,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return false,
        }
    }
}

#[tokio::test]
async fn stop_drops_connections_and_restart_reuses_the_port() {
    let engine = engine().await;
    let url = engine.url();
    let addr = engine.local_addr();
    assert_eq!(url, format!("ws://127.0.0.1:{}", addr.port()));
    let mut client = Client::connect(&engine).await;
    client.register("old::fn").await;
    has_function(&engine, "old::fn").await;

    engine.stop().await;
    assert!(!ended_with_close(&mut client).await, "a crash sends no close frame");
    assert!(tokio_tungstenite::connect_async(&url).await.is_err(), "nothing listens after stop");
    assert_eq!(engine.connection_count(), 0);

    engine.restart().await.expect("restarts");
    assert_eq!(engine.local_addr(), addr);
    let mut again = Client::connect(&engine).await;
    assert!(engine.function_ids().is_empty(), "fresh state after restart");
    let res = again.call("old::fn", json!({})).await;
    assert_eq!(res["error"]["code"], "function_not_found");
    engine.stop().await;
    engine.stop().await;
}

#[tokio::test]
async fn disconnect_all_keeps_listening_and_cleans_up() {
    let engine = engine().await;
    let mut a = Client::connect(&engine).await;
    let mut b = Client::connect(&engine).await;
    a.register("a::fn").await;
    has_function(&engine, "a::fn").await;
    engine.disconnect_all();
    assert!(!ended_with_close(&mut a).await);
    assert!(!ended_with_close(&mut b).await);
    until("cleaned up", || engine.connection_count() == 0 && engine.function_ids().is_empty()).await;
    let mut c = Client::connect(&engine).await;
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.recv().await["type"], "pong");
}

#[tokio::test]
async fn raw_frames_can_be_injected() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    until("listed", || engine.worker_ids().len() == 1).await;
    assert!(engine.send_raw(&client.id, "{\"type\":\"bogus\"}".into()));
    assert_eq!(client.recv().await, json!({"type": "bogus"}));
    assert!(engine.send_raw_binary(&client.id, vec![1, 2, 3]));
    let frame = tokio::time::timeout(Duration::from_secs(5), client.ws.next()).await.unwrap();
    assert!(matches!(frame, Some(Ok(WsMessage::Binary(b))) if b[..] == [1, 2, 3]));
    assert!(!engine.send_raw("no-such-worker", "{}".into()));
}

#[tokio::test]
async fn only_the_root_path_is_a_worker_endpoint() {
    let engine = engine().await;
    let err = tokio_tungstenite::connect_async(format!("{}/ws/channels/x?key=k&dir=read", engine.url()))
        .await
        .expect_err("not routed");
    assert!(err.to_string().contains("404"), "{err}");
    assert_eq!(engine.connection_count(), 0);
}

#[tokio::test]
async fn a_function_registered_twice_goes_when_either_owner_leaves() {
    let engine = engine().await;
    let mut a = Client::connect(&engine).await;
    let mut b = Client::connect(&engine).await;
    a.register("shared::fn").await;
    has_function(&engine, "shared::fn").await;
    b.register("shared::fn").await;
    b.send(json!({"type": "ping"})).await;
    b.recv().await;
    let mut caller = Client::connect(&engine).await;
    let pending = tokio::spawn(async move { caller.call("shared::fn", json!(1)).await });
    let inv = b.recv().await;
    b.reply(&inv, json!("from b")).await;
    assert_eq!(pending.await.unwrap()["result"], "from b");
    drop(a);
    until("removed with a", || engine.function_ids().is_empty()).await;
}
