//! HTTP-invoked functions, against a tiny HTTP server written here.

use std::collections::HashMap;
use std::time::Duration;

use data_encoding::BASE64;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{engine, has_function, until, Client};

struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct Server {
    url: String,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Server {
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(5), self.seen.recv())
            .await
            .expect("request in time")
            .unwrap()
    }
}

/// Answers the n-th connection with `responses[n]` (raw HTTP); `None` never answers.
async fn server(responses: Vec<Option<&'static str>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for response in responses {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    assert!(tcp.read_buf(&mut buf).await.unwrap() > 0);
                };
                let head = String::from_utf8(buf[..end].to_vec()).unwrap();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap().split(' ');
                let (method, path) = (first.next().unwrap().to_owned(), first.next().unwrap().to_owned());
                let headers: HashMap<String, String> = lines
                    .filter_map(|l| l.split_once(": "))
                    .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
                    .collect();
                let length: usize = headers["content-length"].parse().unwrap();
                while buf.len() < end + length {
                    assert!(tcp.read_buf(&mut buf).await.unwrap() > 0);
                }
                let body = buf[end..end + length].to_vec();
                tx.send(Seen { method, path, headers, body }).unwrap();
                match response {
                    Some(r) => tcp.write_all(r.as_bytes()).await.unwrap(),
                    None => tokio::time::sleep(Duration::from_secs(10)).await,
                }
            });
        }
    });
    Server { url, seen }
}

fn ok_json(body: &'static str) -> Option<&'static str> {
    Some(Box::leak(
        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_boxed_str(),
    ))
}

async fn register_http(client: &mut Client, engine: &crate::EngineHandle, id: &str, inv: Value) {
    client.send(json!({"type": "registerfunction", "id": id, "invocation": inv})).await;
    has_function(engine, id).await;
}

#[tokio::test]
async fn the_request_carries_the_payload_and_iii_headers() {
    let engine = engine().await;
    let mut srv = server(vec![ok_json(r#"{"sum":3}"#), ok_json("")]).await;
    let mut owner = Client::connect(&engine).await;
    let inv = json!({"url": format!("{}/fn?x=1", srv.url), "headers": {"x-custom": "yes"}});
    register_http(&mut owner, &engine, "ext::fn2", inv).await;
    let mut caller = Client::connect(&engine).await;
    let res = caller.call("ext::fn2", json!({"p": 2})).await;
    assert_eq!(res["result"], json!({"sum": 3}));
    assert_eq!(res["function_id"], "ext::fn2");
    let seen = srv.next().await;
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/fn?x=1"));
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body, json!({"_caller_worker_id": caller.id, "p": 2}));
    let h = &seen.headers;
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-iii-function-path"], "ext::fn2");
    assert_eq!(h["x-custom"], "yes");
    let call_id = uuid::Uuid::parse_str(&h["x-iii-invocation-id"]).unwrap().to_string();
    assert_ne!(Some(call_id.as_str()), res["invocation_id"].as_str());
    let ts: u64 = h["x-iii-timestamp"].parse().unwrap();
    assert!(ts > 1_700_000_000 && ts < 10_000_000_000, "unix seconds: {ts}");
    assert!(!h.contains_key("authorization") && !h.contains_key("x-iii-signature"));

    // A void call makes the request too; the owner never sees an invokefunction.
    owner.send(json!({"type": "invokefunction", "function_id": "ext::fn2", "action": {"type": "void"}, "data": [1]})).await;
    assert_eq!(srv.next().await.body, b"[1]");
    owner.silence(100).await;
}

#[tokio::test]
async fn responses_map_to_results_and_errors() {
    let engine = engine().await;
    let responses = vec![
        Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        Some("HTTP/1.1 204 No Content\r\n\r\n"),
        Some("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"),
        Some("HTTP/1.1 422 Unprocessable\r\ncontent-length: 45\r\n\r\n{\"error\":{\"code\":\"bad_input\",\"message\":\"no\"}}"),
        Some("HTTP/1.1 500 Oops\r\ncontent-length: 4\r\n\r\ndown"),
        Some("HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n"),
        Some("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"),
        Some("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n[true]"),
        None,
    ];
    let mut srv = server(responses).await;
    let mut c = Client::connect(&engine).await;
    register_http(&mut c, &engine, "ext::f", json!({"url": format!("{}/f", srv.url), "timeout_ms": 300}))
        .await;
    type Expected = (Option<Value>, Option<(&'static str, &'static str)>);
    let expectations: [Expected; 9] = [
        (None, None),
        (None, None),
        (None, Some(("invalid_response", ""))),
        (None, Some(("bad_input", "no"))),
        (None, Some(("http_error", "HTTP 500"))),
        (None, Some(("http_error", "HTTP 302"))),
        (Some(json!({"a": 1})), None),
        (Some(json!([true])), None),
        (None, Some(("http_request_failed", ""))),
    ];
    for (i, (result, error)) in expectations.into_iter().enumerate() {
        let res = c.call("ext::f", json!({"i": i})).await;
        srv.next().await;
        assert_eq!(res.get("result").cloned(), result, "case {i}: {res}");
        match error {
            None => assert!(res.get("error").is_none(), "case {i}: {res}"),
            Some((code, message)) => {
                assert_eq!(res["error"]["code"], code, "case {i}: {res}");
                if !message.is_empty() {
                    assert_eq!(res["error"]["message"], message, "case {i}");
                }
            }
        }
    }

    register_http(&mut c, &engine, "ext::down", json!({"url": "http://127.0.0.1:1/x", "method": "GET"}))
        .await;
    assert_eq!(c.call("ext::down", json!({})).await["error"]["code"], "http_request_failed");
    register_http(&mut c, &engine, "ext::tls", json!({"url": "https://127.0.0.1:1/x"})).await;
    assert_eq!(c.call("ext::tls", json!({})).await["error"]["code"], "url_validation_failed");
}

#[tokio::test]
async fn auth_headers_come_from_the_engine_environment() {
    std::env::set_var("III_DOUBLE_TEST_TOKEN", "tok-1");
    std::env::set_var("III_DOUBLE_TEST_API_KEY", "key-2");
    std::env::set_var("III_DOUBLE_TEST_SECRET", "s3cret");
    let engine = engine().await;
    let ok = || Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let mut srv = server(vec![ok(), ok(), ok()]).await;
    let mut c = Client::connect(&engine).await;
    let url = format!("{}/fn", srv.url);
    for (id, auth) in [
        ("a::bearer", json!({"type": "bearer", "token_key": "III_DOUBLE_TEST_TOKEN"})),
        ("a::key", json!({"type": "api_key", "header": "x-api-key", "value_key": "III_DOUBLE_TEST_API_KEY"})),
        ("a::hmac", json!({"type": "hmac", "secret_key": "III_DOUBLE_TEST_SECRET"})),
    ] {
        register_http(&mut c, &engine, id, json!({"url": url, "method": "PUT", "auth": auth})).await;
    }
    c.call("a::bearer", json!({})).await;
    let seen = srv.next().await;
    assert_eq!((seen.method.as_str(), seen.headers["authorization"].as_str()), ("PUT", "Bearer tok-1"));
    c.call("a::key", json!({})).await;
    assert_eq!(srv.next().await.headers["x-api-key"], "key-2");
    c.call("a::hmac", json!({"p": 2})).await;
    let seen = srv.next().await;
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(format!("{}:{}", seen.headers["x-iii-timestamp"], BASE64.encode(&seen.body)).as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(seen.headers["x-iii-signature"], format!("sha256={hex}"));

    // A missing variable: silently not registered.
    c.send(json!({"type": "registerfunction", "id": "a::missing", "invocation": {"url": url,
        "auth": {"type": "bearer", "token_key": "III_DOUBLE_TEST_NOT_SET"}}}))
        .await;
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.recv().await["type"], "pong");
    assert!(!engine.function_ids().contains(&"a::missing".to_owned()));
    assert!(engine.logs().iter().any(|l| l.contains("token_not_found")), "{:?}", engine.logs());

    // Removed with the connection that registered them.
    drop(c);
    until("removed", || engine.function_ids().is_empty()).await;
}
