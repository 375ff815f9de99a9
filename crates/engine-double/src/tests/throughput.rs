//! A rough throughput probe, not a test: `cargo test --release throughput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{engine, has_function, Client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_of_sync_calls() {
    const N: usize = 200_000;
    const WINDOW: usize = 512;
    let engine = engine().await;
    let mut callee = Client::connect(&engine).await;
    let caller = Client::connect(&engine).await;
    callee.register("bench::echo").await;
    has_function(&engine, "bench::echo").await;

    // The callee answers with the smallest valid result, echoing the id by text search.
    let (mut ctx, mut crx) = callee.ws.split();
    let (res_tx, mut res_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(Ok(WsMessage::Text(t))) = crx.next().await {
            let start = t.find("\"invocation_id\":\"").unwrap() + 17;
            let id = &t[start..start + 36];
            let _ = res_tx.send(format!(
                r#"{{"type":"invocationresult","invocation_id":"{id}","function_id":"bench::echo","result":1}}"#
            ));
        }
    });
    tokio::spawn(async move {
        while let Some(first) = res_rx.recv().await {
            ctx.feed(WsMessage::Text(first.into())).await.unwrap();
            while let Ok(more) = res_rx.try_recv() {
                ctx.feed(WsMessage::Text(more.into())).await.unwrap();
            }
            ctx.flush().await.unwrap();
        }
    });

    let window = Arc::new(Semaphore::new(WINDOW));
    let (mut tx, mut rx) = caller.ws.split();
    let started = Instant::now();
    let sender = {
        let window = window.clone();
        tokio::spawn(async move {
            for i in 0..N {
                window.acquire().await.unwrap().forget();
                let call = json!({"type": "invokefunction", "invocation_id": uuid::Uuid::new_v4().to_string(),
                    "function_id": "bench::echo", "data": {"i": i}});
                tx.feed(WsMessage::Text(call.to_string().into())).await.unwrap();
                if window.available_permits() == 0 || i + 1 == N {
                    tx.flush().await.unwrap();
                }
            }
            tx
        })
    };
    let mut done = 0;
    while done < N {
        if let Some(Ok(WsMessage::Text(_))) = rx.next().await {
            done += 1;
            window.add_permits(1);
        }
    }
    let elapsed = started.elapsed();
    let _ = sender.await;
    println!("{N} sync calls in {elapsed:?}: {:.0} calls/s", N as f64 / elapsed.as_secs_f64());
}
