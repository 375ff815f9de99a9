use serde_json::json;

use super::{engine, has_function, until, Client};

#[tokio::test]
async fn built_in_stream_store() {
    let engine = engine().await;
    let mut c = Client::connect(&engine).await;
    let item = |id: &str| json!({"stream_name": "s", "group_id": "g", "item_id": id});

    let res = c.call("stream::get", item("a")).await;
    assert!(res.get("result").is_none() && res.get("error").is_none(), "{res}");
    let set = |id: &str, data| json!({"stream_name": "s", "group_id": "g", "item_id": id, "data": data});
    let res = c.call("stream::set", set("a", json!({"t": 1}))).await;
    assert_eq!(res["result"], json!({"old_value": null, "new_value": {"t": 1}}));
    let res = c.call("stream::set", set("a", json!({"t": 2}))).await;
    assert_eq!(res["result"], json!({"old_value": {"t": 1}, "new_value": {"t": 2}}));
    c.call("stream::set", set("b", json!(3))).await;
    c.call("stream::set", json!({"stream_name": "s", "group_id": "h", "item_id": "x", "data": null})).await;
    c.call("stream::set", json!({"stream_name": "other", "group_id": "z", "item_id": "x", "data": 1})).await;

    assert_eq!(c.call("stream::get", item("a")).await["result"], json!({"t": 2}));
    let res = c.call("stream::list", json!({"stream_name": "s", "group_id": "g"})).await;
    assert_eq!(res["result"], json!([{"t": 2}, 3]));
    let res = c.call("stream::list_groups", json!({"stream_name": "s"})).await;
    assert_eq!(res["result"], json!(["g", "h"]));
    let res = c.call("stream::list_all", json!({})).await;
    assert_eq!(
        res["result"],
        json!({"stream": [{"id": "other", "groups": ["z"]}, {"id": "s", "groups": ["g", "h"]}], "count": 2})
    );
    let res = c.call("stream::delete", item("a")).await;
    assert_eq!(res["result"], json!({"old_value": {"t": 2}}));
    let res = c.call("stream::delete", item("a")).await;
    assert_eq!(res["result"], json!({"old_value": null}));
    let res =
        c.call("stream::send", json!({"stream_name": "s", "group_id": "g", "type": "ping", "data": 1})).await;
    assert!(res.get("result").is_none() && res.get("error").is_none(), "{res}");

    let res = c.call("stream::set", item("a")).await;
    assert_eq!(res["error"]["code"], "deserialization_error");
    let msg = res["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("Failed to deserialize input for stream::set: "), "{msg}");
}

#[tokio::test]
async fn update_ops_and_integer_by() {
    let engine = engine().await;
    let mut c = Client::connect(&engine).await;
    let update = |ops| json!({"stream_name": "s", "group_id": "g", "item_id": "i", "ops": ops});
    let res = c
        .call(
            "stream::update",
            update(
                json!([{"type": "set", "path": "a", "value": 1}, {"type": "increment", "path": "n", "by": 2},
            {"type": "merge", "value": {"m": true}}]),
            ),
        )
        .await;
    assert_eq!(res["result"], json!({"old_value": null, "new_value": {"a": 1, "n": 2, "m": true}}));
    let res = c
        .call(
            "stream::update",
            update(json!([{"type": "decrement", "path": "n", "by": 5}, {"type": "remove", "path": "a"}])),
        )
        .await;
    assert_eq!(
        res["result"],
        json!({"old_value": {"a": 1, "n": 2, "m": true}, "new_value": {"n": -3, "m": true}})
    );
    let res = c.call("stream::update", update(json!([{"type": "increment", "path": "n", "by": 1.5}]))).await;
    assert_eq!(res["error"]["code"], "deserialization_error", "{res}");
    let get = json!({"stream_name": "s", "group_id": "g", "item_id": "i"});
    assert_eq!(c.call("stream::get", get).await["result"], json!({"n": -3, "m": true}));
}

#[tokio::test]
async fn custom_streams_get_exactly_the_typed_keys() {
    let engine = engine().await;
    let mut backend = Client::connect(&engine).await;
    let mut caller = Client::connect(&engine).await;
    for op in ["get", "set", "delete", "list", "list_groups"] {
        backend.register(&format!("stream::{op}(orders)")).await;
    }
    has_function(&engine, "stream::list_groups(orders)").await;

    let cases = [
        (
            "get",
            json!({"stream_name": "orders", "group_id": "g", "item_id": "1", "extra": 1}),
            json!({"id": 1}),
            json!({"id": 1}),
        ),
        (
            "set",
            json!({"stream_name": "orders", "group_id": "g", "item_id": "1", "data": {"v": 2}}),
            json!({"old_value": null, "new_value": {"v": 2}}),
            json!({"old_value": null, "new_value": {"v": 2}}),
        ),
        ("list", json!({"stream_name": "orders", "group_id": "g"}), json!([1, 2]), json!([1, 2])),
        ("list_groups", json!({"stream_name": "orders"}), json!(["g"]), json!(["g"])),
        (
            "delete",
            json!({"stream_name": "orders", "group_id": "g", "item_id": "1"}),
            json!({"old_value": 5}),
            json!({"old_value": 5}),
        ),
    ];
    for (op, input, reply, expected) in cases {
        let pending = tokio::spawn(async move {
            let res = caller.call(&format!("stream::{op}"), input).await;
            (caller, res)
        });
        let inv = backend.recv().await;
        assert_eq!(inv["function_id"], format!("stream::{op}(orders)"));
        let data = inv["data"].as_object().unwrap();
        assert!(!data.contains_key("_caller_worker_id") && !data.contains_key("extra"), "{data:?}");
        assert_eq!(data["stream_name"], "orders");
        backend.reply(&inv, reply).await;
        let (c, res) = pending.await.unwrap();
        caller = c;
        assert_eq!(res["result"], expected, "{op}");
    }

    for (op, code) in [("set", "STREAM_SET_ERROR"), ("delete", "STREAM_DELETE_ERROR")] {
        let input = json!({"stream_name": "orders", "group_id": "g", "item_id": "1", "data": 1});
        let pending = tokio::spawn(async move {
            let res = caller.call(&format!("stream::{op}"), input).await;
            (caller, res)
        });
        let inv = backend.recv().await;
        backend.reply(&inv, json!(null)).await;
        let (c, res) = pending.await.unwrap();
        caller = c;
        assert_eq!(res["error"]["code"], code, "{res}");
    }

    // No stream::update(orders): the engine's own store is used.
    let ops = json!([{"type": "set", "path": "x", "value": 1}]);
    let upd = json!({"stream_name": "orders", "group_id": "g", "item_id": "1", "ops": ops});
    let res = caller.call("stream::update", upd.clone()).await;
    assert_eq!(res["result"], json!({"old_value": null, "new_value": {"x": 1}}));
    backend.register("stream::update(orders)").await;
    has_function(&engine, "stream::update(orders)").await;
    let pending = tokio::spawn(async move { caller.call("stream::update", upd).await });
    let inv = backend.recv().await;
    assert_eq!(inv["data"], json!({"stream_name": "orders", "group_id": "g", "item_id": "1", "ops": ops}));
    backend.reply(&inv, json!({"old_value": 1, "new_value": 2})).await;
    assert_eq!(pending.await.unwrap()["result"], json!({"old_value": 1, "new_value": 2}));
}

#[tokio::test]
async fn a_worker_can_back_the_stream_it_calls() {
    let engine = engine().await;
    let mut c = Client::connect(&engine).await;
    c.register("stream::get(mine)").await;
    has_function(&engine, "stream::get(mine)").await;
    let id = uuid::Uuid::new_v4().to_string();
    c.send(json!({"type": "invokefunction", "invocation_id": id, "function_id": "stream::get",
        "data": {"stream_name": "mine", "group_id": "g", "item_id": "i"}}))
        .await;
    let inv = c.recv().await;
    assert_eq!(inv["function_id"], "stream::get(mine)");
    c.reply(&inv, json!("v")).await;
    let res = c.recv().await;
    assert_eq!((res["invocation_id"].as_str(), &res["result"]), (Some(id.as_str()), &json!("v")));
}

#[tokio::test]
async fn stream_triggers_receive_changes_and_events() {
    let engine = engine().await;
    let mut listener = Client::connect(&engine).await;
    let mut writer = Client::connect(&engine).await;
    listener.register("on::change").await;
    listener
        .send(json!({"type": "registertrigger", "id": "t", "trigger_type": "stream", "function_id": "on::change",
            "config": {"stream_name": "s2"}}))
        .await;
    until("bound", || engine.trigger_ids() == ["t"]).await;
    writer
        .call("stream::set", json!({"stream_name": "other", "group_id": "g", "item_id": "i", "data": 0}))
        .await;
    writer
        .call("stream::set", json!({"stream_name": "s2", "group_id": "g", "item_id": "i", "data": {"t": 1}}))
        .await;
    let inv = listener.recv().await;
    let data = &inv["data"];
    assert!(data["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(
        (&data["type"], &data["streamName"], &data["groupId"], &data["id"]),
        (&json!("stream"), &json!("s2"), &json!("g"), &json!("i"))
    );
    assert_eq!(data["event"], json!({"type": "create", "data": {"t": 1}}));
    listener.reply(&inv, json!(null)).await;
    writer
        .call("stream::send", json!({"stream_name": "s2", "group_id": "g", "type": "typing", "data": 7}))
        .await;
    let inv = listener.recv().await;
    assert_eq!(inv["data"]["event"], json!({"type": "event", "event": {"type": "typing", "data": 7}}));
    listener.reply(&inv, json!(null)).await;
    writer.call("stream::delete", json!({"stream_name": "s2", "group_id": "g", "item_id": "i"})).await;
    let inv = listener.recv().await;
    assert_eq!(inv["data"]["event"], json!({"type": "delete", "data": {"t": 1}}));
}

#[tokio::test]
async fn state_functions_and_triggers() {
    let engine = engine().await;
    let mut c = Client::connect(&engine).await;
    let mut listener = Client::connect(&engine).await;
    listener.register("on::state").await;
    listener
        .send(
            json!({"type": "registertrigger", "id": "st", "trigger_type": "state", "function_id": "on::state",
            "config": {"scope": "cfg"}}),
        )
        .await;
    until("bound", || engine.trigger_ids() == ["st"]).await;

    let res = c.call("state::set", json!({"scope": "cfg", "key": "k", "value": 1})).await;
    assert_eq!(res["result"], json!({"old_value": null, "new_value": 1}));
    let inv = listener.recv().await;
    assert_eq!(
        inv["data"],
        json!({"type": "state", "event_type": "state:created", "scope": "cfg", "key": "k",
            "old_value": null, "new_value": 1})
    );
    listener.reply(&inv, json!(null)).await;
    let res = c.call("state::set", json!({"scope": "cfg", "key": "k", "data": 2})).await;
    assert_eq!(res["result"], json!({"old_value": 1, "new_value": 2}));
    assert_eq!(listener.recv().await["data"]["event_type"], "state:updated");
    c.call("state::set", json!({"scope": "other", "key": "z", "value": {"a": 1}})).await;
    assert_eq!(c.call("state::get", json!({"scope": "cfg", "key": "k"})).await["result"], 2);
    let res = c.call("state::get", json!({"scope": "cfg", "key": "missing"})).await;
    assert!(res.get("result").is_none());
    let ops = json!([{"type": "increment", "path": "a", "by": 2}]);
    let res = c.call("state::update", json!({"scope": "other", "key": "z", "ops": ops})).await;
    assert_eq!(res["result"], json!({"old_value": {"a": 1}, "new_value": {"a": 3}}));
    assert_eq!(c.call("state::list", json!({"scope": "other"})).await["result"], json!([{"a": 3}]));
    assert_eq!(c.call("state::list_groups", json!({})).await["result"], json!({"groups": ["cfg", "other"]}));
    assert_eq!(c.call("state::delete", json!({"scope": "cfg", "key": "k"})).await["result"], 2);
    let res = c
        .call(
            "state::update",
            json!({"scope": "cfg", "key": "k", "ops": [{"type": "increment", "path": "a", "by": 0.5}]}),
        )
        .await;
    assert_eq!(res["error"]["code"], "deserialization_error");
}
