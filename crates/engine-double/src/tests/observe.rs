//! Engine 0.25's observe family with raw clients (docs/protocol.md C.9-C.18): observers of
//! routed calls, owners' sets and acks, reports, owner calls, policies and replays.

use std::time::Duration;

use serde_json::{json, Value};

use super::v025::{connect, engine_with, ping, register_call};
use super::{config, Client};
use crate::{EngineConfig, EngineHandle};

async fn engine() -> EngineHandle {
    engine_with(EngineConfig { observer_grace: Duration::from_millis(200), ..config() }).await
}

/// The next frame, which must be of type `kind`.
async fn expect(client: &mut Client, kind: &str) -> Value {
    let frame = client.recv().await;
    assert_eq!(frame["type"], kind, "{frame}");
    frame
}

/// Registers `id` from an `observe.v1` connection; returns the engine's `functionregistered`.
async fn own(client: &mut Client, id: &str, observe: Option<Value>) -> Value {
    let mut msg = json!({"type": "registerfunction", "id": id});
    if let Some(descriptor) = observe {
        msg["observe"] = descriptor;
    }
    client.send(msg).await;
    let confirmed = expect(client, "functionregistered").await;
    assert_eq!((confirmed["id"].as_str(), confirmed["local_dispatch"].as_bool()), (Some(id), Some(true)));
    confirmed
}

/// An owner of `src::f` and a watcher with the target `w::t`.
struct Setup {
    engine: EngineHandle,
    owner: Client,
    watcher: Client,
}

async fn setup(descriptor: Option<Value>) -> Setup {
    let engine = engine().await;
    let mut owner = connect(&engine, "owner").await;
    let confirmed = own(&mut owner, "src::f", descriptor).await;
    assert_eq!(confirmed["observers"], json!([]));
    let mut watcher = connect(&engine, "watcher").await;
    own(&mut watcher, "w::t", None).await;
    Setup { engine, owner, watcher }
}

fn observe_msg(id: &str, source: Value, extra: Value) -> Value {
    let mut msg = json!({"type": "observe", "id": id, "source": source, "target": {"function_id": "w::t"}});
    msg.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    msg
}

/// `observe` → `observeresult{pending}`, `observeradded` to the owner, its ack → `active`.
/// Returns the `observeradded`.
async fn observe_active(s: &mut Setup, msg: Value) -> Value {
    let id = msg["id"].as_str().unwrap().to_owned();
    s.watcher.send(msg).await;
    let result = expect(&mut s.watcher, "observeresult").await;
    assert_eq!(
        (result["id"].as_str(), result["state"].as_str()),
        (Some(id.as_str()), Some("pending")),
        "{result}"
    );
    let added = expect(&mut s.owner, "observeradded").await;
    assert_eq!(added["observer"]["id"], id.as_str());
    ack(&mut s.owner, &added, None).await;
    let active = expect(&mut s.watcher, "observerstatechanged").await;
    assert_eq!((active["id"].as_str(), active["state"].as_str()), (Some(id.as_str()), Some("active")));
    added
}

async fn ack(owner: &mut Client, announced: &Value, error: Option<Value>) {
    let mut msg = json!({"type": "observerack", "function_id": announced["function_id"], "namespace": "default",
        "id": announced["observer"]["id"], "revision": announced["revision"]});
    if let Some(error) = error {
        msg["error"] = error;
    }
    owner.send(msg).await;
}

/// Sends a sync call and returns its invocation id (the answer is read separately).
async fn call(client: &mut Client, function_id: &str, data: Value, extra: Value) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let mut msg =
        json!({"type": "invokefunction", "invocation_id": id, "function_id": function_id, "data": data});
    msg.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    client.send(msg).await;
    id
}

/// The owner answers the next call it gets with `result` (or an error when `result` is null).
async fn serve(owner: &mut Client, result: Value) -> Value {
    let inv = expect(owner, "invokefunction").await;
    if result.is_null() {
        owner.reply_error(&inv, "CARD_DECLINED").await;
    } else {
        owner.reply(&inv, result).await;
    }
    inv
}

/// A routed call of `src::f` by `caller`, served by the owner; returns the caller's answer.
async fn routed(owner: &mut Client, caller: &mut Client, data: Value, result: Value) -> Value {
    call(caller, "src::f", data, json!({})).await;
    serve(owner, result).await;
    expect(caller, "invocationresult").await
}

async fn observer_info(client: &mut Client, id: &str) -> Value {
    let res = client.call("engine::observers::get", json!({"id": id})).await;
    res["result"]["observer"].clone()
}

#[tokio::test]
async fn a_routed_call_that_matches_activates_the_target_with_the_envelope() {
    let mut s = setup(None).await;
    let filters = json!({"input.amount": {"$gte": 500}, "output.charged": {"$exists": true},
        "caller.worker_name": {"$prefix": "checkout-"}});
    let source = json!({"function_id": "src::f", "filters": filters,
        "capture": ["input", "output", "error", "caller", "metadata"]});
    let added = observe_active(&mut s, observe_msg("o1", source, json!({"metadata": {"team": "pay"}}))).await;
    // The owner sees the normal form and the defaults, not the observer's metadata.
    assert_eq!(
        added["observer"],
        json!({"id": "o1", "args": {}, "target": "w::t", "on": "success",
            "capture": ["input", "output", "error", "caller", "metadata"],
            "filters": {"$and": [{"caller.worker_name": {"$prefix": "checkout-"}},
                {"input.amount": {"$gte": 500}}, {"output.charged": {"$exists": true}}]}})
    );

    let mut checkout = connect(&s.engine, "checkout-1").await;
    let mut other = connect(&s.engine, "other").await;
    routed(&mut s.owner, &mut checkout, json!({"amount": 100}), json!({"charged": 100})).await;
    routed(&mut s.owner, &mut other, json!({"amount": 950}), json!({"charged": 950})).await;
    routed(&mut s.owner, &mut checkout, json!({"amount": 900}), json!({"note": "no charged"})).await;
    let id =
        call(&mut checkout, "src::f", json!({"amount": 900}), json!({"metadata": {"tenant": "acme"}})).await;
    let inv = serve(&mut s.owner, json!({"charged": 900})).await;
    assert_eq!(inv["data"]["_caller_worker_id"], checkout.id.as_str(), "the callee still gets it");
    expect(&mut checkout, "invocationresult").await;

    // The first activation the watcher gets is the matching call's: the others matched nothing.
    let act = expect(&mut s.watcher, "invokefunction").await;
    let env = &act["data"];
    assert_eq!(act["function_id"], "w::t");
    assert_eq!(act["activation"], json!({"observer_id": "o1", "activation_id": env["activation_id"]}));
    assert_eq!(act["observe_depth"], 1);
    assert_eq!(act["metadata"], json!({"team": "pay"}));
    assert_eq!(
        act["caller"],
        json!({"worker_name": "iii-engine", "function_id": "src::f", "invocation_id": id})
    );
    let mut stable = env.clone();
    for key in ["activation_id", "started_at_ms", "duration_ms"] {
        assert!(stable.as_object_mut().unwrap().remove(key).is_some(), "{key} in {env}");
    }
    assert_eq!(
        stable,
        json!({"observer_id": "o1", "function_id": "src::f", "namespace": "default", "invocation_id": id,
            "status": "success", "input": {"amount": 900}, "output": {"charged": 900},
            "caller": {"worker_id": checkout.id, "worker_name": "checkout-1"}, "metadata": {"tenant": "acme"}})
    );
    assert!(env["duration_ms"].is_number() && env["started_at_ms"].is_u64());
    s.watcher.reply(&act, Value::Null).await;
    let info = observer_info(&mut s.watcher, "o1").await;
    assert_eq!((info["fires"].as_u64(), info["state"].as_str()), (Some(1), Some("active")));
    assert_eq!(info["filters"], added["observer"]["filters"]);
}

#[tokio::test]
async fn on_capture_and_deliver_choose_what_activates_and_what_travels() {
    let mut s = setup(None).await;
    let errors = json!({"function_id": "src::f", "on": "error", "capture": ["error"]});
    observe_active(&mut s, observe_msg("errors", errors, json!({}))).await;
    let inputs = json!({"function_id": "src::f", "on": "complete", "deliver": "input"});
    observe_active(&mut s, observe_msg("inputs", inputs, json!({}))).await;
    let mut caller = connect(&s.engine, "caller").await;

    let ok = routed(&mut s.owner, &mut caller, json!({"n": 1}), json!("fine")).await;
    assert_eq!(ok["result"], "fine");
    let act = expect(&mut s.watcher, "invokefunction").await;
    assert_eq!((act["activation"]["observer_id"].as_str(), &act["data"]), (Some("inputs"), &json!({"n": 1})));
    s.watcher.reply(&act, Value::Null).await;

    let failed = routed(&mut s.owner, &mut caller, json!({"n": 2}), Value::Null).await;
    assert_eq!(failed["error"]["code"], "CARD_DECLINED");
    let mut got = Vec::new();
    for _ in 0..2 {
        let act = expect(&mut s.watcher, "invokefunction").await;
        s.watcher.reply(&act, Value::Null).await;
        got.push(act);
    }
    got.sort_by_key(|a| a["activation"]["observer_id"].as_str().map(str::to_owned));
    assert_eq!(got[1]["data"], json!({"n": 2}), "deliver: input");
    let env = &got[0]["data"];
    assert_eq!((env["status"].as_str(), env["observer_id"].as_str()), (Some("error"), Some("errors")));
    assert_eq!(env["error"], json!({"code": "CARD_DECLINED", "message": "boom"}));
    for absent in ["input", "output", "caller", "metadata"] {
        assert!(env.get(absent).is_none(), "{absent} in {env}");
    }
    assert_eq!(observer_info(&mut s.watcher, "errors").await["fires"], 1);
    assert_eq!(observer_info(&mut s.watcher, "inputs").await["fires"], 2);
}

#[tokio::test]
async fn refusals_answer_the_observe_with_an_error() {
    let engine = engine().await;
    let mut owner = connect(&engine, "owner").await;
    own(&mut owner, "auto::f", None).await;
    let args_format = json!({"type": "object", "additionalProperties": false, "required": ["topic"],
        "properties": {"topic": {"type": "string"}}});
    own(&mut owner, "topics::f", Some(json!({"delivery": "owner", "args_format": args_format}))).await;
    own(&mut owner, "closed::f", Some(json!({"allow": false}))).await;
    let cases = [
        ("INVALID_FILTER", json!({"function_id": "auto::f", "filters": {"input.op": "insert"}}), "w::t"),
        ("INVALID_FILTER", json!({"function_id": "auto::f", "filters": {"bogus.x": {"$eq": 1}}}), "w::t"),
        ("SELF_TARGET", json!({"function_id": "auto::f"}), "auto::f"),
        ("INVALID_ARGS", json!({"function_id": "auto::f", "args": {"expression": "* * *"}}), "w::t"),
        ("INVALID_ARGS", json!({"function_id": "topics::f", "args": {}}), "w::t"),
        ("INVALID_ARGS", json!({"function_id": "topics::f", "args": {"topic": "a", "x": 1}}), "w::t"),
        ("NOT_OBSERVABLE", json!({"function_id": "closed::f"}), "w::t"),
    ];
    let mut watcher = connect(&engine, "watcher").await;
    for (n, (code, source, target)) in cases.into_iter().enumerate() {
        let id = format!("bad-{n}");
        watcher
            .send(json!({"type": "observe", "id": id, "source": source, "target": {"function_id": target}}))
            .await;
        let result = expect(&mut watcher, "observeresult").await;
        assert_eq!(
            (result["state"].as_str(), result["error"]["code"].as_str()),
            (Some("error"), Some(code)),
            "{n}"
        );
        let missing = watcher.call("engine::observers::get", json!({"id": id})).await;
        assert_eq!(missing["error"]["code"], "OBSERVER_NOT_FOUND");
    }
    // None of them reached the owner: the next thing it hears is the answer to its own ping.
    ping(&mut owner).await;
}

#[tokio::test]
async fn an_observer_waits_for_its_target_and_for_its_source() {
    let engine = engine().await;
    let mut watcher = connect(&engine, "watcher").await;
    watcher
        .send(json!({"type": "observe", "id": "early", "source": {"function_id": "src::f"},
            "target": {"function_id": "w::t"}}))
        .await;
    assert_eq!(expect(&mut watcher, "observeresult").await["state"], "pending");
    let mut owner = connect(&engine, "owner").await;
    let confirmed = own(&mut owner, "src::f", None).await;
    let views = confirmed["observers"].as_array().unwrap();
    assert_eq!((views.len(), views[0]["id"].as_str()), (1, Some("early")));
    owner
        .send(json!({"type": "observerack", "function_id": "src::f", "id": "early",
            "revision": confirmed["revision"]}))
        .await;
    ping(&mut owner).await; // the ack was handled
    assert_eq!(observer_info(&mut watcher, "early").await["state"], "pending", "no target yet");
    own(&mut watcher, "w::t", None).await;
    let active = expect(&mut watcher, "observerstatechanged").await;
    assert_eq!((active["id"].as_str(), active["state"].as_str()), (Some("early"), Some("active")));
}

#[tokio::test]
async fn the_owner_acks_before_active_and_its_rejection_ends_the_observer() {
    let mut s = setup(Some(json!({"delivery": "owner"}))).await;
    s.watcher
        .send(observe_msg("stale", json!({"function_id": "src::f", "args": {"topic": "x"}}), json!({})))
        .await;
    assert_eq!(expect(&mut s.watcher, "observeresult").await["state"], "pending");
    let added = expect(&mut s.owner, "observeradded").await;
    assert_eq!(added["observer"]["args"], json!({"topic": "x"}));
    // An ack at another revision is stale: still pending.
    let mut old = added.clone();
    old["revision"] = json!(added["revision"].as_u64().unwrap() - 1);
    ack(&mut s.owner, &old, None).await;
    assert_eq!(observer_info(&mut s.watcher, "stale").await["state"], "pending");

    ack(&mut s.owner, &added, Some(json!({"code": "TOPIC_FORBIDDEN", "message": "not this one"}))).await;
    let failed = expect(&mut s.watcher, "observerstatechanged").await;
    assert_eq!(
        (failed["state"].as_str(), failed["reason"]["code"].as_str()),
        (Some("error"), Some("TOPIC_FORBIDDEN"))
    );
    let removed = expect(&mut s.owner, "observerremoved").await;
    assert_eq!(removed["id"], "stale");
    assert!(removed["revision"].as_u64() > added["revision"].as_u64());
    let missing = s.watcher.call("engine::observers::get", json!({"id": "stale"})).await;
    assert_eq!(missing["error"]["code"], "OBSERVER_NOT_FOUND");
}

#[tokio::test]
async fn max_fires_and_unobserve_dispose_the_observer() {
    let mut s = setup(None).await;
    let once = observe_msg("once", json!({"function_id": "src::f"}), json!({"max_fires": 1}));
    observe_active(&mut s, once).await;
    observe_active(&mut s, observe_msg("open", json!({"function_id": "src::f"}), json!({}))).await;
    let mut caller = connect(&s.engine, "caller").await;

    routed(&mut s.owner, &mut caller, json!(1), json!(1)).await;
    let mut firsts = Vec::new();
    let mut disposed = None;
    while firsts.len() < 2 || disposed.is_none() {
        let frame = s.watcher.recv().await;
        match frame["type"].as_str() {
            Some("invokefunction") => {
                s.watcher.reply(&frame, Value::Null).await;
                firsts.push(frame["activation"]["observer_id"].as_str().unwrap().to_owned());
            }
            Some("observerstatechanged") => disposed = Some(frame),
            _ => panic!("unexpected {frame}"),
        }
    }
    firsts.sort();
    assert_eq!(firsts, ["once", "open"]);
    let disposed = disposed.unwrap();
    assert_eq!((disposed["id"].as_str(), disposed["state"].as_str()), (Some("once"), Some("disposed")));
    assert_eq!(
        (disposed["reason"]["code"].as_str(), disposed["fires"].as_u64()),
        (Some("MAX_FIRES"), Some(1))
    );
    assert_eq!(expect(&mut s.owner, "observerremoved").await["id"], "once");

    s.watcher.send(json!({"type": "unobserve", "id": "open"})).await;
    let gone = expect(&mut s.watcher, "observerstatechanged").await;
    assert_eq!(
        (gone["state"].as_str(), gone["reason"]["code"].as_str()),
        (Some("disposed"), Some("UNOBSERVED"))
    );
    assert_eq!(expect(&mut s.owner, "observerremoved").await["id"], "open");
    // No observer is left: a call activates nothing, so the watcher's next frame is its pong.
    routed(&mut s.owner, &mut caller, json!(2), json!(2)).await;
    ping(&mut s.watcher).await;
    // Unobserving an unknown id still answers `disposed`.
    s.watcher.send(json!({"type": "unobserve", "id": "never"})).await;
    assert_eq!(expect(&mut s.watcher, "observerstatechanged").await["state"], "disposed");
}

#[tokio::test]
async fn an_expired_observer_is_disposed_by_its_timer() {
    let mut s = setup(None).await;
    let lease = observe_msg("lease", json!({"function_id": "src::f"}), json!({"expires_in_ms": 100}));
    observe_active(&mut s, lease).await;
    let expired = expect(&mut s.watcher, "observerstatechanged").await;
    assert_eq!(
        (expired["state"].as_str(), expired["reason"]["code"].as_str()),
        (Some("disposed"), Some("EXPIRED"))
    );
    assert_eq!(expect(&mut s.owner, "observerremoved").await["id"], "lease");
}

#[tokio::test]
async fn max_in_flight_queues_activations_and_loses_none() {
    let mut s = setup(None).await;
    let one = observe_msg(
        "one",
        json!({"function_id": "src::f", "capture": ["input"]}),
        json!({"max_in_flight": 1}),
    );
    observe_active(&mut s, one).await;
    let mut caller = connect(&s.engine, "caller").await;
    for n in 0..3 {
        routed(&mut s.owner, &mut caller, json!(n), json!(n)).await;
    }
    let info = observer_info(&mut caller, "one").await;
    assert_eq!(
        (info["in_flight"].as_u64(), info["queued"].as_u64(), info["fires"].as_u64()),
        (Some(1), Some(2), Some(3))
    );
    for n in 0..3 {
        let act = expect(&mut s.watcher, "invokefunction").await;
        assert_eq!(act["data"]["input"], n, "in order");
        // The next one waits for this answer.
        let info = observer_info(&mut s.watcher, "one").await;
        assert_eq!(info["in_flight"], 1);
        s.watcher.reply(&act, Value::Null).await;
    }
}

#[tokio::test]
async fn the_loop_guard_drops_activations_deeper_than_eight() {
    let mut s = setup(None).await;
    observe_active(&mut s, observe_msg("loop", json!({"function_id": "src::f"}), json!({}))).await;
    let mut caller = connect(&s.engine, "caller").await;
    call(&mut caller, "src::f", json!(8), json!({"observe_depth": 8})).await;
    assert_eq!(serve(&mut s.owner, json!(8)).await["observe_depth"], 8);
    expect(&mut caller, "invocationresult").await;
    call(&mut caller, "src::f", json!(7), json!({"observe_depth": 7})).await;
    serve(&mut s.owner, json!(7)).await;
    expect(&mut caller, "invocationresult").await;
    let act = expect(&mut s.watcher, "invokefunction").await;
    assert_eq!((act["observe_depth"].as_u64(), &act["data"]["input"]), (Some(8), &json!(7)));
    s.watcher.reply(&act, Value::Null).await;
    let info = observer_info(&mut s.watcher, "loop").await;
    assert_eq!((info["dropped"]["LOOP_GUARD"].as_u64(), info["fires"].as_u64()), (Some(1), Some(1)));
}

#[tokio::test]
async fn reports_activate_the_listed_observers_each_with_its_own_capture() {
    let mut s = setup(None).await;
    observe_active(
        &mut s,
        observe_msg("a", json!({"function_id": "src::f", "capture": ["input"]}), json!({})),
    )
    .await;
    let b = json!({"function_id": "src::f", "capture": ["caller", "metadata"]});
    observe_active(&mut s, observe_msg("b", b, json!({"metadata": {"m": "b"}}))).await;
    let item = json!({"function_id": "src::f", "namespace": "default", "invocation_id": "local-1",
        "matched": ["a", "b"], "status": "success", "input": {"x": 1}, "output": 2, "metadata": {"t": 1},
        "caller": {"worker_id": s.owner.id, "worker_name": "owner"}, "started_at_ms": 5, "duration_ms": 0.5,
        "observe_depth": 2});
    // A report of a function the sender does not own is dropped.
    let mut stray = item.clone();
    stray["function_id"] = json!("w::t");
    s.owner.send(json!({"type": "invocationsobserved", "items": [stray, item]})).await;
    s.owner
        .send(json!({"type": "localinvocationstats", "window_ms": 10000,
            "functions": [{"function_id": "src::f", "count": 3}], "dropped_reports": []}))
        .await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let act = expect(&mut s.watcher, "invokefunction").await;
        s.watcher.reply(&act, Value::Null).await;
        assert_eq!(act["observe_depth"], 3);
        got.push(act);
    }
    got.sort_by_key(|a| a["activation"]["observer_id"].as_str().map(str::to_owned));
    let strip = |act: &Value| {
        let mut env = act["data"].clone();
        env.as_object_mut().unwrap().remove("activation_id");
        env
    };
    let common = json!({"function_id": "src::f", "namespace": "default", "invocation_id": "local-1",
        "status": "success", "started_at_ms": 5, "duration_ms": 0.5});
    let mut a = common.clone();
    a["observer_id"] = json!("a");
    a["input"] = json!({"x": 1});
    assert_eq!(strip(&got[0]), a);
    let mut b = common;
    b["observer_id"] = json!("b");
    b["caller"] = json!({"worker_id": s.owner.id, "worker_name": "owner"});
    b["metadata"] = json!({"t": 1});
    assert_eq!(strip(&got[1]), b);
    assert_eq!(got[1]["metadata"], json!({"m": "b"}), "the observer's metadata sidecar");
    ping(&mut s.owner).await;
}

#[tokio::test]
async fn owner_calls_reach_the_target_and_return_its_result() {
    let mut s = setup(Some(json!({"delivery": "owner"}))).await;
    let route = observe_msg(
        "route",
        json!({"function_id": "src::f"}),
        json!({"metadata": {"r": 1}, "max_in_flight": 1}),
    );
    observe_active(&mut s, route).await;
    let owner_call = |id: &str, observer: &str, target: &str, depth: u32| {
        json!({"type": "invokefunction", "invocation_id": id, "function_id": target, "data": {"path": "/u"},
            "activation": {"observer_id": observer}, "observe_depth": depth,
            "caller": {"function_id": "src::f", "invocation_id": "inv-1"}})
    };
    let first = uuid::Uuid::new_v4().to_string();
    s.owner.send(owner_call(&first, "route", "w::t", 0)).await;
    let act = expect(&mut s.watcher, "invokefunction").await;
    assert_eq!((act["data"].clone(), act["metadata"].clone()), (json!({"path": "/u"}), json!({"r": 1})));
    assert_eq!(act["activation"]["observer_id"], "route");
    assert!(act["activation"]["activation_id"].is_string());
    assert_eq!(
        (act["caller"]["worker_id"].as_str(), act["observe_depth"].as_u64()),
        (Some(s.owner.id.as_str()), Some(1))
    );

    // While that one is in flight: refusals, answered at once.
    for (observer, target, depth, code) in [
        ("route", "w::t", 0, "OVERFLOW"),
        ("route", "w::t", 8, "LOOP_GUARD"),
        ("route", "src::f", 0, "TARGET_MISMATCH"),
        ("nobody", "w::t", 0, "OBSERVER_NOT_FOUND"),
    ] {
        let id = uuid::Uuid::new_v4().to_string();
        s.owner.send(owner_call(&id, observer, target, depth)).await;
        let res = expect(&mut s.owner, "invocationresult").await;
        assert_eq!(
            (res["invocation_id"].as_str(), res["error"]["code"].as_str()),
            (Some(id.as_str()), Some(code))
        );
    }
    s.watcher.reply(&act, json!({"status": 200})).await;
    let res = expect(&mut s.owner, "invocationresult").await;
    assert_eq!(
        (res["invocation_id"].as_str(), &res["result"]),
        (Some(first.as_str()), &json!({"status": 200}))
    );
    // A stranger cannot deliver for the owner.
    let id = uuid::Uuid::new_v4().to_string();
    s.watcher.send(owner_call(&id, "route", "w::t", 0)).await;
    assert_eq!(expect(&mut s.watcher, "invocationresult").await["error"]["code"], "NOT_FUNCTION_OWNER");
    // A routed call of an owner-delivered function activates nothing by itself.
    let mut caller = connect(&s.engine, "caller").await;
    routed(&mut s.owner, &mut caller, json!({"path": "/u"}), json!(1)).await;
    assert_eq!(observer_info(&mut caller, "route").await["fires"], 1, "the owner call only");
}

#[tokio::test]
async fn a_replayed_observe_is_the_same_observer_and_a_departed_watcher_is_suspended() {
    let mut s = setup(None).await;
    let msg = observe_msg("keep", json!({"function_id": "src::f"}), json!({}));
    observe_active(&mut s, msg.clone()).await;
    let mut caller = connect(&s.engine, "caller").await;
    routed(&mut s.owner, &mut caller, json!(1), json!(1)).await;
    let act = expect(&mut s.watcher, "invokefunction").await;
    s.watcher.reply(&act, Value::Null).await;
    assert_eq!(observer_info(&mut s.watcher, "keep").await["fires"], 1);

    let Setup { engine, mut owner, watcher } = s;
    drop(watcher);
    super::until("the watcher to leave", || engine.connection_count() == 2).await;
    assert_eq!(observer_info(&mut caller, "keep").await["state"], "suspended");
    let mut back = connect(&engine, "watcher").await;
    own(&mut back, "w::t", None).await;
    back.send(msg.clone()).await;
    let replayed = expect(&mut back, "observeresult").await;
    assert_eq!((replayed["id"].as_str(), replayed["state"].as_str()), (Some("keep"), Some("active")));
    assert_eq!(observer_info(&mut back, "keep").await["fires"], 1, "the same observer");
    // Another definition under the same id is a conflict.
    let mut other = msg;
    other["source"]["on"] = json!("error");
    back.send(other).await;
    assert_eq!(expect(&mut back, "observeresult").await["error"]["code"], "OBSERVER_ID_CONFLICT");
    // The owner was told nothing of any of this.
    ping(&mut owner).await;
    routed(&mut owner, &mut caller, json!(2), json!(2)).await;
    assert_eq!(expect(&mut back, "invokefunction").await["activation"]["observer_id"], "keep");

    // Gone for longer than the grace period: removed, and the owner hears of it.
    drop(back);
    let removed = expect(&mut owner, "observerremoved").await;
    assert_eq!(removed["id"], "keep");
}

#[tokio::test]
async fn a_returning_owner_gets_the_set_again_and_must_ack_it() {
    let mut s = setup(None).await;
    let added = observe_active(&mut s, observe_msg("o", json!({"function_id": "src::f"}), json!({}))).await;
    drop(s.owner);
    let pending = expect(&mut s.watcher, "observerstatechanged").await;
    assert_eq!(pending["state"], "pending");
    let mut owner = connect(&s.engine, "owner").await;
    let confirmed = own(&mut owner, "src::f", None).await;
    assert!(confirmed["revision"].as_u64() > added["revision"].as_u64());
    assert_eq!(confirmed["observers"], json!([added["observer"]]));
    assert_eq!(observer_info(&mut s.watcher, "o").await["state"], "pending", "until acked");
    owner
        .send(json!({"type": "observerack", "function_id": "src::f", "id": "o",
            "revision": confirmed["revision"]}))
        .await;
    assert_eq!(expect(&mut s.watcher, "observerstatechanged").await["state"], "active");
}

#[tokio::test]
async fn only_observe_connections_take_part() {
    let engine = engine().await;
    let (ws, _) = tokio_tungstenite::connect_async(engine.url()).await.expect("connects");
    let mut legacy = Client { ws, id: String::new(), hello: Value::Null };
    legacy.send(register_call("legacy", json!([]))).await;
    assert_eq!(
        expect(&mut legacy, "workerregistered").await["features"],
        json!(["observe.v1", "local-dispatch.v1"])
    );
    legacy.register("legacy::f").await;
    legacy.register("legacy::t").await;
    legacy
        .send(json!({"type": "observe", "id": "x", "source": {"function_id": "legacy::f"},
            "target": {"function_id": "legacy::t"}}))
        .await;
    // No functionregistered and no observeresult: the next frame answers the ping.
    ping(&mut legacy).await;

    // An observer of a legacy owner's function needs no ack.
    let mut watcher = connect(&engine, "watcher").await;
    watcher
        .send(json!({"type": "observe", "id": "y", "source": {"function_id": "legacy::f"},
            "target": {"function_id": "legacy::t"}}))
        .await;
    assert_eq!(expect(&mut watcher, "observeresult").await["state"], "active");
}
