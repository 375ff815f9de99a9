use serde_json::json;

use super::{engine, has_function, until, Client};

#[tokio::test]
async fn workerregistered_comes_first_with_a_uuid() {
    let engine = engine().await;
    let client = Client::connect(&engine).await;
    assert!(uuid::Uuid::parse_str(&client.id).is_ok());
    until("worker listed", || engine.worker_ids() == vec![client.id.clone()]).await;
    assert_eq!(engine.connection_count(), 1);
}

#[tokio::test]
async fn sync_call_keeps_the_id_and_injects_the_caller() {
    let engine = engine().await;
    let mut callee = Client::connect(&engine).await;
    let mut caller = Client::connect(&engine).await;
    callee.register("probe::echo").await;
    has_function(&engine, "probe::echo").await;

    let id = uuid::Uuid::new_v4().to_string();
    caller
        .send(json!({"type": "invokefunction", "invocation_id": id, "function_id": "probe::echo",
            "data": {"x": 1}, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}))
        .await;
    let inv = callee.recv().await;
    assert_eq!(inv["type"], "invokefunction");
    assert_eq!(inv["invocation_id"], id.as_str());
    assert_eq!(inv["data"], json!({"_caller_worker_id": caller.id, "x": 1}));
    assert_eq!(inv["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert!(inv.get("action").is_none());
    callee.reply(&inv, json!({"echo": 1})).await;
    let res = caller.recv().await;
    assert_eq!(res["invocation_id"], id.as_str());
    assert_eq!(res["function_id"], "probe::echo");
    assert_eq!(res["result"], json!({"echo": 1}));
    assert!(res.get("error").is_none());

    // Non-object payloads are untouched; an empty object still gets the caller.
    for (sent, seen) in [(json!([1, 2]), json!([1, 2])), (json!({}), json!({"_caller_worker_id": caller.id}))]
    {
        let pending = tokio::spawn(async move {
            let res = caller.call("probe::echo", sent).await;
            (caller, res)
        });
        let inv = callee.recv().await;
        assert_eq!(inv["data"], seen);
        callee.reply(&inv, json!(null)).await;
        let (c, res) = pending.await.unwrap();
        caller = c;
        assert!(res.get("result").is_none(), "null result is omitted: {res}");
    }
}

#[tokio::test]
async fn errors_pass_through_and_win_over_results() {
    let engine = engine().await;
    let mut callee = Client::connect(&engine).await;
    let mut caller = Client::connect(&engine).await;
    callee.register("probe::fail").await;
    has_function(&engine, "probe::fail").await;
    let pending = tokio::spawn(async move { caller.call("probe::fail", json!(null)).await });
    let inv = callee.recv().await;
    assert_eq!(inv["data"], json!(null));
    callee
        .send(json!({"type": "invocationresult", "invocation_id": inv["invocation_id"], "function_id": "probe::fail",
            "result": 5, "error": {"code": "invocation_failed", "message": "boom", "stacktrace": "tb"}}))
        .await;
    let res = pending.await.unwrap();
    assert_eq!(res["error"], json!({"code": "invocation_failed", "message": "boom", "stacktrace": "tb"}));
    assert!(res.get("result").is_none());
}

#[tokio::test]
async fn unknown_function_is_function_not_found() {
    let engine = engine().await;
    let mut caller = Client::connect(&engine).await;
    let res = caller.call("nope::x", json!({})).await;
    assert_eq!(res["function_id"], "nope::x");
    assert_eq!(res["error"], json!({"code": "function_not_found", "message": "Function nope::x not found"}));
}

#[tokio::test]
async fn callee_disconnect_stops_calls_in_flight() {
    let engine = engine().await;
    let mut callee = Client::connect(&engine).await;
    let mut caller = Client::connect(&engine).await;
    callee.register("slow::f").await;
    has_function(&engine, "slow::f").await;
    let pending = tokio::spawn(async move { caller.call("slow::f", json!({})).await });
    let _inv = callee.recv().await;
    drop(callee);
    let res = pending.await.unwrap();
    assert_eq!(res["error"], json!({"code": "invocation_stopped", "message": "Invocation stopped"}));
    until("function removed", || engine.function_ids().is_empty()).await;
}

#[tokio::test]
async fn void_calls_get_a_fresh_id_and_no_reply() {
    let engine = engine().await;
    let mut callee = Client::connect(&engine).await;
    let mut caller = Client::connect(&engine).await;
    callee.register("audit::log").await;
    has_function(&engine, "audit::log").await;
    let given = uuid::Uuid::new_v4().to_string();
    caller
        .send(json!({"type": "invokefunction", "invocation_id": given, "function_id": "audit::log",
            "data": {"e": 1}, "action": {"type": "void"}}))
        .await;
    caller.send(json!({"type": "invokefunction", "function_id": "audit::log", "data": 7})).await;
    let first = callee.recv().await;
    assert_ne!(first["invocation_id"], given.as_str());
    assert!(uuid::Uuid::parse_str(first["invocation_id"].as_str().unwrap()).is_ok());
    assert_eq!(first["data"], json!({"_caller_worker_id": caller.id, "e": 1}));
    let second = callee.recv().await;
    assert_eq!(second["data"], json!(7));
    callee.reply(&first, json!(1)).await;
    callee.reply_error(&second, "invocation_failed").await;
    caller
        .send(json!({"type": "invokefunction", "function_id": "missing::fn", "data": null,
        "action": {"type": "void"}}))
        .await;
    caller.silence(150).await;
}

#[tokio::test]
async fn enqueue_replies_with_a_receipt_then_redelivers_after_errors() {
    let engine = engine().await;
    let mut consumer = Client::connect(&engine).await;
    let mut producer = Client::connect(&engine).await;
    consumer.register("q::job").await;
    has_function(&engine, "q::job").await;
    let id = uuid::Uuid::new_v4().to_string();
    producer
        .send(json!({"type": "invokefunction", "invocation_id": id, "function_id": "q::job",
            "data": {"n": 1}, "action": {"type": "enqueue", "queue": "default"}}))
        .await;
    let receipt = producer.recv().await;
    assert_eq!(receipt["invocation_id"], id.as_str());
    let receipt_id = receipt["result"]["messageReceiptId"].as_str().expect("receipt");
    assert!(uuid::Uuid::parse_str(receipt_id).is_ok());

    let first = consumer.recv().await;
    assert_eq!(first["data"], json!({"n": 1}), "queue deliveries carry the original data");
    assert_ne!(first["invocation_id"], id.as_str());
    consumer.reply_error(&first, "invocation_failed").await;
    let second = consumer.recv().await;
    assert_eq!(second["data"], json!({"n": 1}));
    assert_ne!(second["invocation_id"], first["invocation_id"]);
    consumer.reply(&second, json!(null)).await;
    consumer.silence(200).await;
    producer.silence(10).await;
    assert!(engine.dead_letters("default").is_empty());
}

#[tokio::test]
async fn exhausted_messages_go_to_the_dead_letter_list() {
    let engine = engine().await;
    let mut consumer = Client::connect(&engine).await;
    let mut producer = Client::connect(&engine).await;
    consumer.register("q::bad").await;
    has_function(&engine, "q::bad").await;
    producer
        .send(json!({"type": "invokefunction", "function_id": "q::bad", "data": [3],
            "action": {"type": "enqueue", "queue": "serial"}}))
        .await;
    for _ in 0..2 {
        let inv = consumer.recv().await;
        consumer.reply_error(&inv, "invocation_failed").await;
    }
    consumer.silence(100).await;
    until("dead letter", || engine.dead_letters("serial") == vec!["[3]".to_owned()]).await;
    producer.silence(10).await;

    // Nobody serves the function: every delivery fails, the message still ends in the list.
    producer
        .send(json!({"type": "invokefunction", "function_id": "ghost::fn", "data": 1,
            "action": {"type": "enqueue", "queue": "serial"}}))
        .await;
    until("second dead letter", || engine.dead_letters("serial").len() == 2).await;
}

#[tokio::test]
async fn enqueue_to_an_unknown_queue_fails() {
    let engine = engine().await;
    let mut producer = Client::connect(&engine).await;
    let id = uuid::Uuid::new_v4().to_string();
    producer
        .send(json!({"type": "invokefunction", "invocation_id": id, "function_id": "q::job",
            "data": {}, "action": {"type": "enqueue", "queue": "missing"}}))
        .await;
    let res = producer.recv().await;
    assert_eq!(res["error"], json!({"code": "enqueue_error", "message": "Queue 'missing' not found"}));
}

#[tokio::test]
async fn many_concurrent_calls_between_two_workers_complete() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    let engine = engine().await;
    let mut callee = Client::connect(&engine).await;
    let caller = Client::connect(&engine).await;
    callee.register("bulk::echo").await;
    has_function(&engine, "bulk::echo").await;
    const N: usize = 2_000;
    let blob = "x".repeat(16 * 1024);

    let echo = tokio::spawn(async move {
        let (mut tx, mut rx) = callee.ws.split();
        for _ in 0..N {
            let inv: serde_json::Value = loop {
                if let WsMessage::Text(t) = rx.next().await.unwrap().unwrap() {
                    break serde_json::from_str(&t).unwrap();
                }
            };
            let res = json!({"type": "invocationresult", "invocation_id": inv["invocation_id"],
                "function_id": "bulk::echo", "result": inv["data"]["blob"]});
            tx.send(WsMessage::Text(res.to_string().into())).await.unwrap();
        }
    });
    let (mut tx, mut rx) = caller.ws.split();
    let sender = tokio::spawn(async move {
        for _ in 0..N {
            let call = json!({"type": "invokefunction", "invocation_id": uuid::Uuid::new_v4().to_string(),
                "function_id": "bulk::echo", "data": {"blob": blob}});
            tx.send(WsMessage::Text(call.to_string().into())).await.unwrap();
        }
        tx
    });
    let mut done = 0;
    while done < N {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(30), rx.next()).await.unwrap();
        if let WsMessage::Text(t) = frame.unwrap().unwrap() {
            let res: serde_json::Value = serde_json::from_str(&t).unwrap();
            assert_eq!(res["result"].as_str().map(str::len), Some(16 * 1024), "{t:.200}");
            done += 1;
        }
    }
    let _tx = sender.await.unwrap();
    echo.await.unwrap();
}
