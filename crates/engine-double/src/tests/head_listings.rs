//! HEAD mode: registration buffering, listings, namespaces and enqueue (docs/protocol.md Part B).

use std::time::Duration;

use serde_json::{json, Value};

use super::{config, has_function, head_engine, until, Client};
use crate::{EngineConfig, EngineHandle};

async fn announce(client: &mut Client, name: &str, namespace: Option<&str>) -> Value {
    let mut data = json!({"runtime": "python", "name": name, "pid": 7});
    if let Some(ns) = namespace {
        data["namespace"] = ns.into();
    }
    client.call("engine::workers::register", data).await
}

async fn round_trip(client: &mut Client) {
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.recv().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn registrations_wait_for_the_worker_announcement() {
    let engine = head_engine().await;
    let mut w = Client::connect(&engine).await;
    w.register("buf::f").await;
    round_trip(&mut w).await;
    assert!(engine.function_ids().is_empty(), "buffered until engine::workers::register");
    assert_eq!(announce(&mut w, "buf", None).await["result"], json!({"success": true}));
    assert_eq!(engine.function_ids(), ["buf::f"], "applied before the announcement's result");
    w.register("buf::g").await;
    round_trip(&mut w).await;
    assert_eq!(engine.function_ids(), ["buf::f", "buf::g"], "later ones apply at once");
}

#[tokio::test]
async fn without_an_announcement_the_grace_period_applies_them() {
    let config =
        EngineConfig { head_protocol: true, registration_grace: Duration::from_millis(50), ..config() };
    let engine = EngineHandle::start(config).await.unwrap();
    let mut w = Client::connect(&engine).await;
    w.register("late::f").await;
    has_function(&engine, "late::f").await;
    let mut caller = Client::connect(&engine).await;
    let res = caller.call("engine::workers::register", json!({"namespace": "  "})).await;
    assert_eq!(res["error"]["code"], "INVALID_NAMESPACE");
}

#[tokio::test]
async fn function_listing_has_no_formats_and_info_has_them() {
    let engine = head_engine().await;
    let mut w = Client::connect(&engine).await;
    w.send(json!({"type": "registerfunction", "id": "inf::f", "description": "d",
        "request_format": {"type": "object"}, "response_format": {"type": "string"}}))
        .await;
    w.send(json!({"type": "registerfunction", "id": "inf::hidden", "metadata": {"internal": true}})).await;
    w.send(json!({"type": "registerfunction", "id": "engine::queue::enqueue"})).await;
    announce(&mut w, "inf", None).await;

    let listed = w.call("engine::functions::list", json!({})).await["result"]["functions"].clone();
    let ids: Vec<&str> =
        listed.as_array().unwrap().iter().map(|f| f["function_id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&"inf::f") && ids.contains(&"engine::queue::enqueue") && ids.contains(&"state::get")
    );
    assert!(!ids.contains(&"inf::hidden") && !ids.iter().any(|id| id.starts_with("engine::functions")));
    let f = listed.as_array().unwrap().iter().find(|f| f["function_id"] == "inf::f").unwrap();
    assert_eq!(
        f,
        &json!({"function_id": "inf::f", "namespace": "default", "worker_name": "inf", "description": "d"})
    );
    let all = w.call("engine::functions::list", json!({"include_internal": true})).await;
    let all = all["result"]["functions"].as_array().unwrap().clone();
    assert!(all.iter().any(|f| f["function_id"] == "inf::hidden"));
    assert!(all.iter().any(|f| f["function_id"] == "engine::functions::info"));

    let one = w.call("engine::functions::info", json!({"function_id": "inf::f"})).await["result"].clone();
    assert_eq!(one["request_schema"], json!({"type": "object"}));
    assert_eq!(one["response_schema"], json!({"type": "string"}));
    let batch =
        w.call("engine::functions::info", json!({"function_ids": ["inf::f", "nope::x", "inf::f"]})).await;
    let entries = batch["result"]["functions"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "deduplicated");
    assert_eq!(entries[1], json!({"function_id": "nope::x", "error": "not_found"}));
    let too_many: Vec<String> = (0..33).map(|i| format!("f{i}")).collect();
    let res = w.call("engine::functions::info", json!({"function_ids": too_many})).await;
    assert_eq!(res["error"]["code"], "INVALID_ARGUMENTS");
    let res = w.call("engine::functions::info", json!({})).await;
    assert_eq!(res["error"]["code"], "INVALID_ARGUMENTS");
}

#[tokio::test]
async fn trigger_types_and_bindings_are_listed_apart() {
    let engine = head_engine().await;
    let mut w = Client::connect(&engine).await;
    w.register("tt::f").await;
    w.send(json!({"type": "registertriggertype", "id": "tt::hook", "description": "hooks",
        "trigger_request_format": {"type": "object"}, "call_request_format": {"type": "array"}}))
        .await;
    w.send(json!({"type": "registertrigger", "id": "b1", "trigger_type": "tt::hook", "function_id": "tt::f",
        "config": {"x": 1}}))
        .await;
    w.send(json!({"type": "invokefunction", "function_id": "engine::workers::register",
        "action": {"type": "void"}, "data": {"name": "tt", "pid": 1}}))
        .await;
    assert_eq!(w.recv().await["id"], "b1", "the binding reaches its provider once applied");

    let types = w.call("engine::triggers::list", json!({})).await["result"]["triggers"].clone();
    let hook = types.as_array().unwrap().iter().find(|t| t["id"] == "tt::hook").unwrap().clone();
    assert_eq!(
        hook,
        json!({"id": "tt::hook", "namespace": "default", "worker_name": "tt", "description": "hooks"})
    );
    assert!(!types.as_array().unwrap().iter().any(|t| t["id"] == "engine::functions-available"));
    let info = w.call("engine::triggers::info", json!({"id": "tt::hook"})).await["result"].clone();
    assert_eq!(info["configuration_schema"], json!({"type": "object"}));
    assert_eq!(info["request_schema"], json!({"type": "array"}));
    assert_eq!(info["instance_count"], 1);
    let res = w.call("engine::triggers::info", json!({"id": "none"})).await;
    assert_eq!(res["error"]["code"], "NOT_FOUND");

    let rows = w.call("engine::registered-triggers::list", json!({})).await;
    let rows = rows["result"]["registered_triggers"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["function_id"], "tt::f");
    assert_eq!(rows[0]["config"], json!({"x": 1}));
    assert_eq!(rows[0]["worker_name"], "tt");
    let gone = w.call("engine::trigger-types::list", json!({})).await;
    assert_eq!(gone["error"]["code"], "function_not_found");
}

#[tokio::test]
async fn workers_are_listed_once_they_report_a_pid() {
    let engine = head_engine().await;
    let mut quiet = Client::connect(&engine).await;
    let mut w = Client::connect(&engine).await;
    w.register("wk::f").await;
    announce(&mut w, "wk", Some("team")).await;
    round_trip(&mut quiet).await;
    let res = w.call("engine::workers::list", json!({})).await;
    let workers = res["result"]["workers"].as_array().unwrap().clone();
    assert!(!workers.iter().any(|x| x["id"] == quiet.id.as_str()), "no pid, not listed");
    let me = workers.iter().find(|x| x["id"] == w.id.as_str()).unwrap();
    assert_eq!(me["namespace"], "team");
    assert_eq!(me["function_count"], 1);
    assert!(me.get("functions").is_none() && me.get("pid").is_none());
    assert!(workers.iter().any(|x| x["runtime"] == "engine" && x["status"] == "available"));
}

#[tokio::test]
async fn calls_resolve_in_their_namespace() {
    let engine = head_engine().await;
    let mut w = Client::connect(&engine).await;
    w.register("ns::f").await;
    announce(&mut w, "nsw", Some("team")).await;
    let mut caller = Client::connect(&engine).await;
    let res = caller.call("ns::f", json!({})).await;
    assert_eq!(res["error"]["code"], "function_not_found");
    assert!(res["error"]["message"].as_str().unwrap().contains("namespace default"), "{res}");

    let id = uuid::Uuid::new_v4().to_string();
    caller
        .send(json!({"type": "invokefunction", "invocation_id": id, "function_id": "ns::f", "data": 1,
            "namespace": "team"}))
        .await;
    let inv = w.recv().await;
    assert_eq!(inv["function_id"], "ns::f");
    w.reply(&inv, json!("ok")).await;
    assert_eq!(caller.recv().await["result"], "ok");
}

#[tokio::test]
async fn enqueue_goes_through_the_queue_provider() {
    let engine = head_engine().await;
    let mut caller = Client::connect(&engine).await;
    let id = uuid::Uuid::new_v4().to_string();
    let enqueue = |id: &str| {
        json!({"type": "invokefunction", "invocation_id": id, "function_id": "jobs::run", "data": {"n": 1},
            "action": {"type": "enqueue", "queue": "default"}})
    };
    caller.send(enqueue(&id)).await;
    let res = caller.recv().await;
    assert_eq!(res["error"]["code"], "enqueue_error");
    assert!(res["error"]["message"].as_str().unwrap().starts_with("No queue provider is installed"), "{res}");

    let mut queue = Client::connect(&engine).await;
    queue.register("engine::queue::enqueue").await;
    announce(&mut queue, "queue", None).await;
    let id = uuid::Uuid::new_v4().to_string();
    caller.send(enqueue(&id)).await;
    let inv = queue.recv().await;
    assert_eq!(inv["function_id"], "engine::queue::enqueue");
    assert_eq!(inv["data"]["function_id"], "jobs::run");
    assert_eq!(inv["data"]["queue"], "default");
    assert_eq!(inv["data"]["data"], json!({"n": 1}));
    let receipt = inv["data"]["messageReceiptId"].clone();
    queue.reply(&inv, json!(null)).await;
    let res = caller.recv().await;
    assert_eq!(res["result"], json!({"messageReceiptId": receipt}));
}

#[tokio::test]
async fn functions_available_sends_summaries() {
    let engine = head_engine().await;
    let mut w = Client::connect(&engine).await;
    w.register("watch::cb").await;
    w.send(json!({"type": "registertrigger", "id": "fa", "trigger_type": "engine::functions-available",
        "function_id": "watch::cb", "config": {}}))
        .await;
    announce(&mut w, "watch", None).await;
    let mut other = Client::connect(&engine).await;
    other
        .send(json!({"type": "registerfunction", "id": "new::f", "request_format": {"type": "object"}}))
        .await;
    announce(&mut other, "other", None).await;
    let inv = w.recv().await;
    assert_eq!(inv["function_id"], "watch::cb");
    let functions = inv["data"]["functions"].as_array().unwrap().clone();
    let f = functions.iter().find(|f| f["function_id"] == "new::f").expect("listed");
    assert_eq!(f, &json!({"function_id": "new::f", "namespace": "default", "worker_name": "other"}));
    until("engine ids included", || functions.iter().any(|f| f["function_id"] == "engine::functions::list"))
        .await;
}

#[tokio::test]
async fn v011_mode_has_none_of_it() {
    let engine = super::engine().await;
    let mut w = Client::connect(&engine).await;
    w.register("old::f").await;
    round_trip(&mut w).await;
    assert_eq!(engine.function_ids(), ["old::f"], "applied at once");
    for fid in ["engine::functions::info", "engine::registered-triggers::list", "engine::triggers::info"] {
        assert_eq!(w.call(fid, json!({})).await["error"]["code"], "function_not_found", "{fid}");
    }
    let types = w.call("engine::trigger-types::list", json!({})).await;
    assert!(types["result"]["trigger_types"].as_array().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn a_simulated_queue_worker_takes_enqueues() {
    let config = EngineConfig { head_protocol: true, queue_worker: true, ..config() };
    let engine = EngineHandle::start(config).await.unwrap();
    let mut w = Client::connect(&engine).await;
    w.register("job::run").await;
    announce(&mut w, "jobs", None).await;
    let info = w.call("engine::functions::info", json!({"function_id": "engine::queue::enqueue"})).await;
    assert_eq!(info["result"]["worker_name"], "iii-engine-functions");
    let id = uuid::Uuid::new_v4().to_string();
    w.send(json!({"type": "invokefunction", "invocation_id": id, "function_id": "job::run", "data": 5,
        "action": {"type": "enqueue", "queue": "default"}}))
        .await;
    assert!(w.recv().await["result"]["messageReceiptId"].is_string());
    let delivery = w.recv().await;
    assert_eq!((delivery["function_id"].as_str(), delivery["data"].as_i64()), (Some("job::run"), Some(5)));
}
