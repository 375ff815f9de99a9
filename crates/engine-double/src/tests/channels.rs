use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{engine, Client};
use crate::EngineHandle;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn create(client: &mut Client, data: Value) -> (Value, Value) {
    let res = client.call("engine::channels::create", data).await;
    let pair = &res["result"];
    (pair["writer"].clone(), pair["reader"].clone())
}

fn end_url(engine: &EngineHandle, r: &Value) -> String {
    format!(
        "{}/ws/channels/{}?key={}&dir={}",
        engine.url(),
        r["channel_id"].as_str().unwrap(),
        r["access_key"].as_str().unwrap(),
        r["direction"].as_str().unwrap()
    )
}

async fn open(engine: &EngineHandle, r: &Value) -> Ws {
    tokio_tungstenite::connect_async(end_url(engine, r)).await.expect("channel end opens").0
}

async fn next(ws: &mut Ws) -> WsMessage {
    tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("frame in time")
        .expect("socket open")
        .expect("frame ok")
}

#[tokio::test]
async fn create_returns_two_refs_of_one_channel() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    let (writer, reader) = create(&mut client, json!({})).await;
    assert_eq!(writer["direction"], "write");
    assert_eq!(reader["direction"], "read");
    assert_eq!(writer["channel_id"], reader["channel_id"]);
    assert_eq!(writer["access_key"], reader["access_key"]);
    assert!(uuid::Uuid::parse_str(writer["channel_id"].as_str().unwrap()).is_ok());
    assert_eq!(writer.as_object().unwrap().len(), 3);
    for size in [json!({"buffer_size": 0}), json!({"buffer_size": 100_000}), json!(null)] {
        let res = client.call("engine::channels::create", size).await;
        assert!(res["result"]["reader"].is_object(), "{res}");
    }
    let res = client.call("engine::channels::create", json!({"buffer_size": "big"})).await;
    assert_eq!(res["error"]["code"], "deserialization_error");
    assert_eq!(engine.channel_count(), 4);
}

#[tokio::test]
async fn unknown_channel_or_wrong_key_is_404() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    let (writer, _) = create(&mut client, json!({})).await;
    let mut wrong_key = writer.clone();
    wrong_key["access_key"] = json!("nope");
    let mut wrong_id = writer.clone();
    wrong_id["channel_id"] = json!(uuid::Uuid::new_v4().to_string());
    for r in [wrong_key, wrong_id] {
        match tokio_tungstenite::connect_async(end_url(&engine, &r)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 404);
                assert_eq!(resp.body().as_deref(), Some(&b"Channel not found"[..]));
            }
            other => panic!("expected 404, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn frames_written_before_the_reader_arrive_in_order_then_close_without_status() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    let (writer, reader) = create(&mut client, json!({"buffer_size": 8})).await;
    drop(client);
    let mut w = open(&engine, &writer).await;
    w.send(WsMessage::Binary(vec![1, 2, 3].into())).await.unwrap();
    w.send(WsMessage::Text(r#"{"type":"set_status","status_code":201}"#.into())).await.unwrap();
    w.send(WsMessage::Binary(vec![4].into())).await.unwrap();
    w.close(None).await.unwrap();

    let mut r = open(&engine, &reader).await;
    assert_eq!(next(&mut r).await, WsMessage::Binary(vec![1, 2, 3].into()));
    assert_eq!(next(&mut r).await, WsMessage::Text(r#"{"type":"set_status","status_code":201}"#.into()));
    assert_eq!(next(&mut r).await, WsMessage::Binary(vec![4].into()));
    assert_eq!(next(&mut r).await, WsMessage::Close(None));
    // The channel outlives the worker that created it.
    assert_eq!(engine.channel_count(), 1);
}

#[tokio::test]
async fn each_end_opens_once() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    let (writer, reader) = create(&mut client, json!({})).await;
    let mut r = open(&engine, &reader).await;
    let mut w = open(&engine, &writer).await;
    for end in [&reader, &writer] {
        let mut again = open(&engine, end).await;
        assert_eq!(next(&mut again).await, WsMessage::Close(None));
    }
    w.send(WsMessage::Text("still works".into())).await.unwrap();
    assert_eq!(next(&mut r).await, WsMessage::Text("still works".into()));
}

#[tokio::test]
async fn a_small_buffer_still_delivers_everything_in_order() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    let (writer, reader) = create(&mut client, json!({"buffer_size": 1})).await;
    let mut w = open(&engine, &writer).await;
    let chunk = vec![7u8; 64 * 1024];
    let sender = tokio::spawn(async move {
        for i in 0..200u32 {
            let mut data = chunk.clone();
            data[..4].copy_from_slice(&i.to_be_bytes());
            w.send(WsMessage::Binary(data.into())).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        w.close(None).await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!sender.is_finished(), "a full buffer stops the engine reading the writer");
    let mut r = open(&engine, &reader).await;
    for i in 0..200u32 {
        match next(&mut r).await {
            WsMessage::Binary(b) => assert_eq!(b[..4], i.to_be_bytes()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(next(&mut r).await, WsMessage::Close(None));
    sender.await.unwrap();
}
