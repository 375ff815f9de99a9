use serde_json::json;

use super::{engine, has_function, until, Client};

fn bind(id: &str, trigger_type: &str, function_id: &str) -> serde_json::Value {
    json!({"type": "registertrigger", "id": id, "trigger_type": trigger_type, "function_id": function_id,
        "config": {"path": "/hook"}})
}

#[tokio::test]
async fn bindings_are_forwarded_to_the_provider_and_unbindings_too() {
    let engine = engine().await;
    let mut provider = Client::connect(&engine).await;
    let mut binder = Client::connect(&engine).await;
    provider.send(json!({"type": "registertriggertype", "id": "webhook", "description": "hooks"})).await;
    until("type", || engine.received_kinds().contains(&"registertriggertype".to_owned())).await;

    binder
        .send(json!({"type": "registertrigger", "id": "late-1", "trigger_type": "webhook",
        "function_id": "user::handler", "config": {"path": "/hook"}, "metadata": {"m": 1}}))
        .await;
    let reg = provider.recv().await;
    assert_eq!(
        reg,
        json!({"type": "registertrigger", "id": "late-1", "trigger_type": "webhook",
        "function_id": "user::handler", "config": {"path": "/hook"}, "metadata": {"m": 1}})
    );
    provider
        .send(json!({"type": "triggerregistrationresult", "id": "late-1", "trigger_type": "webhook",
        "function_id": "user::handler", "error": {"code": "trigger_registration_failed", "message": "no"}}))
        .await;

    binder.send(json!({"type": "unregistertrigger", "id": "late-1"})).await;
    assert_eq!(
        provider.recv().await,
        json!({"type": "unregistertrigger", "id": "late-1", "trigger_type": "webhook"})
    );
    assert!(engine.trigger_ids().is_empty());

    // A type nobody provides: the binding is dropped, not parked.
    binder.send(bind("lost", "nobody", "user::handler")).await;
    binder.send(json!({"type": "ping"})).await;
    assert_eq!(binder.recv().await["type"], "pong");
    assert!(engine.trigger_ids().is_empty());
    assert!(engine.logs().iter().any(|l| l.contains("Trigger type not found")));
    binder.silence(50).await;
}

#[tokio::test]
async fn stored_bindings_are_replayed_to_a_new_provider() {
    let engine = engine().await;
    let mut provider = Client::connect(&engine).await;
    let mut binder = Client::connect(&engine).await;
    provider.send(json!({"type": "registertriggertype", "id": "webhook", "description": "hooks"})).await;
    until("type", || engine.received_kinds().contains(&"registertriggertype".to_owned())).await;
    binder.send(bind("b1", "webhook", "user::one")).await;
    binder.send(bind("b2", "webhook", "user::two")).await;
    assert_eq!(provider.recv().await["id"], "b1");
    assert_eq!(provider.recv().await["id"], "b2");

    drop(provider);
    until("provider gone", || engine.connection_count() == 1).await;
    assert_eq!(engine.trigger_ids(), ["b1", "b2"]);

    let mut successor = Client::connect(&engine).await;
    successor.send(json!({"type": "registertriggertype", "id": "webhook", "description": "hooks v2"})).await;
    let first = successor.recv().await;
    let second = successor.recv().await;
    assert_eq!(
        first,
        json!({"type": "registertrigger", "id": "b1", "trigger_type": "webhook",
        "function_id": "user::one", "config": {"path": "/hook"}})
    );
    assert_eq!(second["id"], "b2");

    // The binder leaves: its bindings go and the provider hears about each.
    drop(binder);
    let mut gone = [successor.recv().await, successor.recv().await];
    gone.sort_by_key(|m| m["id"].as_str().unwrap().to_owned());
    assert_eq!(gone[0], json!({"type": "unregistertrigger", "id": "b1", "trigger_type": "webhook"}));
    assert_eq!(gone[1]["id"], "b2");
    until("bindings removed", || engine.trigger_ids().is_empty()).await;
}

#[tokio::test]
async fn functions_available_fires_when_the_set_changes() {
    let engine = engine().await;
    let mut watcher = Client::connect(&engine).await;
    watcher.register("iii.on_functions_available.1").await;
    watcher.send(bind("fa", "engine::functions-available", "iii.on_functions_available.1")).await;
    let inv = watcher.recv().await;
    assert_eq!(inv["function_id"], "iii.on_functions_available.1");
    assert_eq!(inv["data"]["event"], "functions_changed");
    assert!(inv["data"].get("_caller_worker_id").is_none());
    let ids: Vec<&str> = inv["data"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"iii.on_functions_available.1") && ids.contains(&"engine::functions::list"),
        "{ids:?}"
    );
    watcher.reply(&inv, json!(null)).await;
    watcher.silence(250).await;

    let mut other = Client::connect(&engine).await;
    other.register("new::fn").await;
    let inv = watcher.recv().await;
    assert!(inv["data"]["functions"].as_array().unwrap().iter().any(|f| f["function_id"] == "new::fn"));
    assert_eq!(inv["data"]["functions"][0].as_object().unwrap().len(), 5);
    watcher.reply(&inv, json!(null)).await;
}

#[tokio::test]
async fn workers_available_fires_on_connect_metadata_and_disconnect() {
    let engine = engine().await;
    let mut watcher = Client::connect(&engine).await;
    watcher.register("watch::workers").await;
    watcher.send(bind("wa", "engine::workers-available", "watch::workers")).await;
    has_function(&engine, "watch::workers").await;
    until("binding", || engine.trigger_ids() == ["wa"]).await;

    let mut other = Client::connect(&engine).await;
    let connected = watcher.recv().await;
    assert_eq!(connected["data"], json!({"event": "worker_connected", "worker_id": other.id}));
    watcher.reply(&connected, json!(null)).await;
    other
        .send(json!({"type": "invokefunction", "function_id": "engine::workers::register",
        "action": {"type": "void"}, "data": {"runtime": "rust"}}))
        .await;
    let updated = watcher.recv().await;
    assert_eq!(updated["data"], json!({"event": "worker_metadata_updated", "worker_id": other.id}));
    watcher.reply(&updated, json!(null)).await;
    let other_id = other.id.clone();
    drop(other);
    let gone = watcher.recv().await;
    assert_eq!(gone["data"], json!({"event": "worker_disconnected", "worker_id": other_id}));
}
