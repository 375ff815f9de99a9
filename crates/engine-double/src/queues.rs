//! The `enqueue` action: named queues with receipts, redelivery with backoff and a
//! dead-letter list (docs/protocol.md 4.2).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::conn::Conn;
use super::delivery::call_from_engine;
use super::reply::{new_id, result_frame, Reply};
use super::state::{Engine, Job, Queue};
use iii_protocol::{raw_json, ErrorBody, InvokeFunction};

impl Engine {
    pub fn dead_letters(&self, queue: &str) -> Vec<String> {
        self.queues.get(queue).map_or_else(Vec::new, |q| {
            q.dead.lock().iter().map(|j| j.data.as_ref().map_or("null", |d| d.get()).to_owned()).collect()
        })
    }
}

pub(crate) fn spawn_consumers(engine: &Arc<Engine>) -> Vec<JoinHandle<()>> {
    engine
        .queues
        .values()
        .filter_map(|q| q.rx.lock().take().map(|rx| (q.clone(), rx)))
        .map(|(q, rx)| tokio::spawn(consume(engine.clone(), q, rx)))
        .collect()
}

pub(crate) async fn enqueue(engine: &Arc<Engine>, conn: &Arc<Conn>, inv: InvokeFunction, queue: &str) {
    let fid = inv.function_id;
    let Some(q) = engine.queues.get(queue) else {
        let e = ErrorBody::new("enqueue_error", format!("Queue '{queue}' not found"));
        match inv.invocation_id {
            Some(id) => conn.send(result_frame(&id, &fid, Err(e))).await,
            None => engine.log(format!("enqueue of {fid} failed: {}", e.message)),
        }
        return;
    };
    if let Some(id) = inv.invocation_id {
        let receipt = raw_json(&format!(r#"{{"messageReceiptId":"{}"}}"#, new_id())).ok();
        conn.send(result_frame(&id, &fid, Ok(receipt))).await;
    }
    let job = Job { function_id: fid, data: inv.data, traceparent: inv.traceparent, baggage: inv.baggage };
    let _ = q.tx.send(job);
}

async fn consume(engine: Arc<Engine>, queue: Arc<Queue>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let slots = Arc::new(Semaphore::new(queue.config.concurrency.max(1)));
    while let Some(job) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (engine, queue) = (engine.clone(), queue.clone());
        let mut shutdown = engine.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = deliver(&engine, &queue, job, permit) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
        });
    }
}

async fn deliver(engine: &Arc<Engine>, queue: &Queue, job: Job, _permit: OwnedSemaphorePermit) {
    let attempts = queue.config.max_retries.max(1);
    let data = job.data.as_ref().map_or("null", |d| d.get());
    for attempt in 1..=attempts {
        let (tx, rx) = oneshot::channel();
        let tp = job.traceparent.as_deref();
        let outcome = match call_from_engine(
            engine,
            &job.function_id,
            data,
            tp,
            job.baggage.as_deref(),
            Reply::Await(tx),
        )
        .await
        {
            Ok(()) => rx.await.unwrap_or_else(|_| Err(ErrorBody::new("invocation_error", "call lost"))),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => return,
            Err(e) => engine.log(format!(
                "queue {}: delivery {attempt}/{attempts} of {} failed: {}: {}",
                queue.config.name, job.function_id, e.code, e.message
            )),
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_millis(queue.config.backoff_ms)).await;
        }
    }
    engine.log(format!("queue {}: {} moved to the dead-letter list", queue.config.name, job.function_id));
    queue.dead.lock().push(job);
}
