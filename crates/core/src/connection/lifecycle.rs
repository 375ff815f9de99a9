//! The lifecycle task of a connection: connect, replay, reconnect with backoff, offline queue, ping.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

const WORKERS_REGISTER: &str = "engine::workers::register";

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

use super::frame_codec::{OP_CLOSE, OP_PING, OP_TEXT};
use super::handshake::{self, HandshakeError, Opened};
use super::inbound::incoming_handler;
use super::link::{End, Link};
use super::{invocation_id, Command, Connection, ConnectionState, FrameKind, Generation, LogLevel};
use crate::invocations::{CallError, Completion, Outcome};
use iii_protocol::{frames, Message, TriggerAction};

/// Frames that were queued just before the link came up, written per write at most.
const BATCH: usize = 256;

pub(super) async fn run(conn: Connection, mut rx: UnboundedReceiver<Command>) {
    let shared = conn.shared.clone();
    let timer = tokio::spawn({
        let conn = conn.clone();
        async move { conn.shared.pending.run_timer().await }
    });
    let mut offline: VecDeque<(String, FrameKind)> = VecDeque::new();
    let mut failures: u64 = 0;
    let mut ever_connected = false;
    let policy = shared.config.reconnect.clone();

    let final_state = loop {
        let state = if ever_connected { ConnectionState::Reconnecting } else { ConnectionState::Connecting };
        conn.set_state(state, None);
        let attempt = tokio::time::timeout(shared.config.connect_timeout, connect(&conn));
        let Some(attempt) = while_offline(&conn, &mut rx, &mut offline, attempt).await else {
            break ConnectionState::Disconnected;
        };
        let error = match attempt {
            Ok(Ok(opened)) => {
                failures = 0;
                ever_connected = true;
                let end = serve(&conn, opened, &mut rx, &mut offline).await;
                // New calls go to the offline queue from here on; then the calls sent on the
                // lost link fail (their results cannot reach a new connection).
                *shared.link.lock() = None;
                shared.connected.store(false, Ordering::Release);
                let lost_epoch = shared.epoch.fetch_add(1, Ordering::AcqRel);
                match end {
                    End::Shutdown => break ConnectionState::Disconnected,
                    End::Fatal(reason) => {
                        give_up(&conn, &mut offline, reason);
                        break ConnectionState::Failed;
                    }
                    End::Lost(reason) => {
                        shared.pending.fail_sent_before(lost_epoch, &reason);
                        conn.log(
                            LogLevel::Warn,
                            &format!("connection to the engine lost: {reason}; reconnecting"),
                        );
                        reason
                    }
                }
            }
            Ok(Err(HandshakeError::Permanent(reason))) => {
                give_up(&conn, &mut offline, reason);
                break ConnectionState::Failed;
            }
            Ok(Err(HandshakeError::Transient(reason))) => {
                failures += 1;
                reason
            }
            Err(_) => {
                failures += 1;
                format!("no connection within {} ms", shared.config.connect_timeout.as_millis())
            }
        };
        conn.set_state(ConnectionState::Reconnecting, Some(error.clone()));
        if !policy.allows(failures) {
            let reason =
                format!("could not connect to {} after {} attempts: {error}", shared.config.url, failures);
            give_up(&conn, &mut offline, reason);
            break ConnectionState::Failed;
        }
        let delay = policy.delay(failures.saturating_sub(1) as u32, fastrand::f64());
        if while_offline(&conn, &mut rx, &mut offline, tokio::time::sleep(delay)).await.is_none() {
            break ConnectionState::Disconnected;
        }
    };
    timer.abort();
    shared.connected.store(false, Ordering::Release);
    for (_, kind) in offline.drain(..) {
        if let FrameKind::Call(id) = kind {
            shared.pending.fail(&id, CallError::Shutdown);
        }
    }
    conn.set_state(final_state, None);
}

/// The engine cannot be reached any more: fail everything waiting, refuse new calls.
fn give_up(conn: &Connection, offline: &mut VecDeque<(String, FrameKind)>, reason: String) {
    conn.log(LogLevel::Error, &reason);
    conn.set_state(ConnectionState::Failed, Some(reason.clone()));
    offline.clear();
    conn.shared.offline_len.store(0, Ordering::Release);
    conn.shared.pending.close(CallError::NotConnected(reason));
}

/// Runs `fut` while keeping commands flowing into the offline queue. `None` on shutdown.
async fn while_offline<F: Future>(
    conn: &Connection,
    rx: &mut UnboundedReceiver<Command>,
    offline: &mut VecDeque<(String, FrameKind)>,
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            cmd = rx.recv() => match cmd {
                None | Some(Command::Shutdown) => return None,
                Some(Command::Send(frame, kind)) => queue_offline(conn, offline, frame, kind),
            },
        }
    }
}

fn queue_offline(
    conn: &Connection,
    offline: &mut VecDeque<(String, FrameKind)>,
    frame: String,
    kind: FrameKind,
) {
    let limit = conn.shared.config.offline_queue_limit;
    match kind {
        FrameKind::Call(id) if offline.len() >= limit => {
            conn.shared.pending.fail(&id, CallError::OfflineQueueFull { limit });
            return;
        }
        FrameKind::Plain if offline.len() >= limit => {
            conn.log(
                LogLevel::Warn,
                &format!(
                    "offline queue full ({limit} messages): dropped an outgoing message while disconnected"
                ),
            );
            return;
        }
        _ => offline.push_back((frame, kind)),
    }
    conn.shared.offline_len.store(offline.len(), Ordering::Release);
}

async fn connect(conn: &Connection) -> Result<Opened, HandshakeError> {
    let config = &conn.shared.config;
    handshake::connect(&config.url, &config.headers).await
}

/// Moves the offline queue's frames to `out`, leaving out calls whose caller gave up.
fn take_offline(conn: &Connection, offline: &mut VecDeque<(String, FrameKind)>, out: &mut Vec<String>) {
    for (frame, kind) in offline.drain(..) {
        if let FrameKind::Call(id) = kind {
            if !conn.shared.pending.contains(&id) {
                continue; // its caller already gave up
            }
        }
        out.push(frame);
    }
    conn.shared.offline_len.store(0, Ordering::Release);
}

/// Completes when the `engine::workers::register` call is answered (or fails).
struct Announced(oneshot::Sender<()>);

impl Completion for Announced {
    fn complete(self: Box<Self>, _: Outcome) {
        let _ = self.0.send(());
    }
}

/// Owns one live link until it ends.
async fn serve(
    conn: &Connection,
    opened: Opened,
    rx: &mut UnboundedReceiver<Command>,
    offline: &mut VecDeque<(String, FrameKind)>,
) -> End {
    let shared = &conn.shared;
    let link = Link::new(opened, shared.config.max_message_size);
    let writer = link.writer.clone();
    let mut flusher = tokio::spawn({
        let writer = writer.clone();
        async move { writer.flush_backlog().await }
    });
    let reader = tokio::spawn({
        let (link, handle) = (link.clone(), incoming_handler(conn.clone(), writer.clone()));
        let idle = shared.config.idle_timeout;
        let shared = shared.clone();
        async move { link.read(idle, move || !shared.pending.is_empty(), handle).await }
    });

    let (previous, generation) = {
        let mut info = shared.info.lock();
        let previous = info.worker_id.clone().zip(info.reattach_token.clone());
        info.worker_id = None;
        info.reattach_token = None;
        (previous, info.generation)
    };
    let mut replay: Vec<String> = Vec::new();
    if let Some((previous_worker_id, reattach_token)) = previous {
        replay.push(Message::Reattach { previous_worker_id, reattach_token }.encode());
    }
    // Calls queued offline wait for the answer to `engine::workers::register` on engines that
    // apply registrations only when it arrives (after v0.11.0, docs/protocol.md B.1 #1), since
    // they may call this worker's own functions. v0.11.0 applies registrations at once.
    let mut announced = None;
    {
        // Under the ledger lock, so every registration lands exactly once on this link:
        // either in this snapshot or, once the writer is live, written by its registrar.
        let ledger = shared.ledger.lock();
        replay.extend(ledger.snapshot());
        // Right after the registrations, so calls queued offline come after it.
        if let Some(metadata) = &shared.config.worker_metadata {
            let hold = generation != Generation::V011 && !offline.is_empty();
            let id = hold.then(|| {
                let (done, answered) = oneshot::channel();
                let id = invocation_id();
                let epoch = shared.epoch.load(Ordering::Acquire);
                let wait = shared.config.connect_timeout;
                // A fresh id cannot be refused; the table completes it on answer, loss or timeout.
                let _ = shared.pending.insert(id, WORKERS_REGISTER, wait, epoch, Box::new(Announced(done)));
                announced = Some(answered);
                id.hyphenated().to_string()
            });
            let action = if hold { None } else { Some(&TriggerAction::Void) };
            replay.push(frames::invoke_function(
                id.as_deref(),
                WORKERS_REGISTER,
                Some(metadata),
                action,
                None,
                None,
            ));
        }
        if announced.is_none() {
            take_offline(conn, offline, &mut replay);
        }
        if let Err(e) = writer.send_many(OP_TEXT, replay.iter().map(String::as_bytes)) {
            return End::Lost(e);
        }
        // Frames flow from now on; the state turns `connected` when `workerregistered` arrives.
        *shared.link.lock() = Some(link.clone());
        shared.connected.store(true, Ordering::Release);
    }

    let mut ping = tokio::time::interval(shared.config.ping_interval);
    ping.tick().await;
    let end = loop {
        tokio::select! {
            _ = async { announced.as_mut().expect("guarded").await }, if announced.is_some() => {
                announced = None;
                let mut held = Vec::new();
                take_offline(conn, offline, &mut held);
                if let Err(e) = writer.send_many(OP_TEXT, held.iter().map(String::as_bytes)) {
                    break End::Lost(e);
                }
            }
            _ = link.ended_notify.notified() => {
                if let Some(end) = link.take_end() {
                    break end;
                }
            }
            reason = &mut flusher => {
                // Ending the link stops the flusher too: the link's reason is the real one.
                break link.take_end().unwrap_or_else(|| {
                    End::Lost(reason.unwrap_or_else(|e| format!("writer stopped: {e}")))
                });
            }
            cmd = rx.recv() => {
                // Frames queued just before the link came up: send them and whatever followed.
                let mut batch = Vec::new();
                let mut shutdown = false;
                let mut next = cmd;
                loop {
                    match next {
                        None | Some(Command::Shutdown) => shutdown = true,
                        Some(Command::Send(frame, _)) => batch.push(frame),
                    }
                    if shutdown || batch.len() >= BATCH {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(cmd) => next = Some(cmd),
                        Err(_) => break,
                    }
                }
                if let Err(e) = writer.send_many(OP_TEXT, batch.iter().map(String::as_bytes)) {
                    break End::Lost(e);
                }
                if shutdown {
                    *shared.link.lock() = None;
                    let _ = writer.send(OP_CLOSE, &1000u16.to_be_bytes());
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                    while writer.has_backlog() && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    break End::Shutdown;
                }
            }
            _ = ping.tick() => {
                if let Err(e) = writer.send(OP_PING, b"") {
                    break End::Lost(e);
                }
            }
        }
    };
    link.end(End::Shutdown);
    reader.abort();
    flusher.abort();
    end
}
