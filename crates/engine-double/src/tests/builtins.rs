use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{engine, has_function, until, Client};

#[tokio::test]
async fn malformed_frames_are_dropped_and_the_connection_survives() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    for bad in [
        "not json",
        "[1,2]",
        r#"{"type":"Ping"}"#,
        r#"{"type":"invokefunction","invocation_id":"6f5a39dd-a9d3-48db-9522-fbc966f31456","function_id":"x"}"#,
        r#"{"type":"invokefunction","invocation_id":"not-a-uuid","function_id":"x","data":1}"#,
        r#"{"type":"registertrigger","id":"t","trigger_type":"http","function_id":"f"}"#,
        r#"{"type":"unregistertriggertype","id":"webhook"}"#,
        "   ",
    ] {
        client.send_text(bad).await;
    }
    client.ws.send(WsMessage::Binary(b"OTLP{\"resourceSpans\":[]}".to_vec().into())).await.unwrap();
    client.ws.send(WsMessage::Binary(br#"{"type":"ping"}"#.to_vec().into())).await.unwrap();
    assert_eq!(client.recv().await, json!({"type": "pong"}));
    client.silence(100).await;
    assert!(engine.trigger_ids().is_empty(), "registertrigger without config is dropped");
    assert!(engine.logs().len() >= 6, "{:?}", engine.logs());
    assert_eq!(
        engine.received_kinds(),
        ["invokefunction", "invokefunction", "registertrigger", "unregistertriggertype", "ping"]
    );
}

#[tokio::test]
async fn protocol_and_websocket_pings_are_answered() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.recv().await, json!({"type": "pong"}));
    client.send(json!({"type": "pong"})).await;
    client.ws.send(WsMessage::Ping(b"hi".to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(std::time::Duration::from_secs(5), client.ws.next()).await.unwrap();
    assert!(matches!(pong, Some(Ok(WsMessage::Pong(p))) if &p[..] == b"hi"));
}

#[tokio::test]
async fn worker_metadata_and_worker_listing() {
    let engine = engine().await;
    let mut other = Client::connect(&engine).await;
    let mut me = Client::connect(&engine).await;
    me.register("math::add").await;
    me.send(json!({"type": "invokefunction", "function_id": "engine::workers::register", "action": {"type": "void"},
        "data": {"runtime": "python", "version": "0.11.0", "name": "probe", "os": "linux", "pid": 42,
                 "telemetry": {"language": "en", "project_name": null, "framework": "iii-py"}}}))
        .await;
    let res = other.call("engine::workers::register", json!({"name": "other"})).await;
    assert_eq!(res["result"], json!({"success": true}));

    let res = me.call("engine::workers::list", json!({})).await;
    let list = &res["result"];
    assert!(list["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    let workers = list["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    let mine = workers.iter().find(|w| w["id"] == me.id.as_str()).unwrap();
    let keys: Vec<&str> = mine.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = [
        "id",
        "name",
        "runtime",
        "version",
        "os",
        "ip_address",
        "status",
        "connected_at_ms",
        "function_count",
        "functions",
        "active_invocations",
        "latest_metrics",
        "pid",
    ];
    expected.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, expected);
    assert_eq!(mine["name"], "probe");
    assert_eq!(mine["runtime"], "python");
    assert_eq!(mine["pid"], 42);
    assert_eq!(mine["ip_address"], "127.0.0.1");
    assert_eq!(mine["status"], "connected");
    assert_eq!(mine["functions"], json!(["math::add"]));
    assert_eq!(mine["function_count"], 1);
    assert_eq!(mine["active_invocations"], 1);
    assert_eq!(mine["latest_metrics"], json!(null));
    let theirs = workers.iter().find(|w| w["id"] == other.id.as_str()).unwrap();
    assert_eq!(theirs["runtime"], "unknown");
    assert!(theirs.get("pid").is_none());
    assert_eq!(theirs["version"], json!(null));

    let filtered = me.call("engine::workers::list", json!({"worker_id": other.id})).await;
    assert_eq!(filtered["result"]["workers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn function_listing_hides_engine_functions_by_default() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    client
        .send(json!({"type": "registerfunction", "id": "probe::f1", "description": "d",
            "request_format": {"type": "object"}, "metadata": {"k": 1}}))
        .await;
    client
        .send(json!({"type": "registerfunction", "id": "ext::http",
            "invocation": {"url": "http://127.0.0.1:1/fn", "method": "POST"}}))
        .await;
    has_function(&engine, "ext::http").await;
    let res = client.call("engine::functions::list", json!({})).await;
    let mut listed = res["result"].clone();
    let functions = listed["functions"].as_array_mut().unwrap();
    // The stream, state and pub/sub modules' functions are always listed, with no metadata.
    let of_modules = |id: &str| id.starts_with("st") || id == "publish";
    let modules: Vec<_> = functions
        .iter()
        .map(|f| f["function_id"].as_str().unwrap().to_owned())
        .filter(|id| of_modules(id))
        .collect();
    assert_eq!(modules.len(), 15, "{modules:?}");
    assert!(modules.contains(&"stream::list_all".to_owned()) && modules.contains(&"state::set".to_owned()));
    assert!(modules.contains(&"publish".to_owned()));
    functions.retain(|f| !of_modules(f["function_id"].as_str().unwrap()));
    assert_eq!(
        listed,
        json!({"functions": [
            {"function_id": "ext::http", "description": null, "request_format": null, "response_format": null, "metadata": null},
            {"function_id": "probe::f1", "description": "d", "request_format": {"type": "object"},
             "response_format": null, "metadata": {"k": 1}}]})
    );
    let res = client.call("engine::functions::list", json!({"include_internal": true})).await;
    let ids: Vec<&str> = res["result"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"engine::workers::register") && ids.contains(&"probe::f1"), "{ids:?}");

    let res = client.call("ext::http", json!({})).await;
    assert_eq!(res["error"]["code"], "http_request_failed");

    let res = client.call("engine::functions::list", json!({"include_internal": "yes"})).await;
    assert_eq!(res["error"]["code"], "deserialization_error");
    let msg = res["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("Failed to deserialize input for engine::functions::list: "), "{msg}");

    client.send(json!({"type": "unregisterfunction", "id": "probe::f1"})).await;
    until("unregistered", || engine.function_ids() == vec!["ext::http".to_owned()]).await;
}

#[tokio::test]
async fn trigger_and_trigger_type_listings() {
    let engine = engine().await;
    let mut client = Client::connect(&engine).await;
    client
        .send(
            json!({"type": "registertrigger", "id": "t1", "trigger_type": "http", "function_id": "api::get",
            "config": {"api_path": "/x"}, "metadata": {"m": 1}}),
        )
        .await;
    client
        .send(json!({"type": "registertrigger", "id": "t2", "trigger_type": "cron", "function_id": "engine::hidden",
            "config": null}))
        .await;
    until("bindings", || engine.trigger_ids().len() == 2).await;
    let res = client.call("engine::triggers::list", json!({})).await;
    assert_eq!(
        res["result"],
        json!({"triggers": [{"id": "t1", "trigger_type": "http", "function_id": "api::get",
            "config": {"api_path": "/x"}, "metadata": {"m": 1}}]})
    );
    let res = client.call("engine::triggers::list", json!({"include_internal": true})).await;
    assert_eq!(
        res["result"]["triggers"][1],
        json!({"id": "t2", "trigger_type": "cron",
        "function_id": "engine::hidden", "config": null})
    );

    let res = client.call("engine::trigger-types::list", json!({})).await;
    let types = res["result"]["trigger_types"].as_array().unwrap();
    let ids: Vec<&str> = types.iter().map(|t| t["id"].as_str().unwrap()).collect();
    // `log` comes from the observability module (listed by engine v0.11.0 too).
    assert_eq!(ids, ["cron", "durable:subscriber", "http", "log", "state", "stream", "subscribe"]);
    assert!(types[0]["description"].is_string() && types[0]["trigger_request_format"].is_object());
    let res = client.call("engine::trigger-types::list", json!({"include_internal": true})).await;
    assert_eq!(res["result"]["trigger_types"].as_array().unwrap().len(), 9);
}
