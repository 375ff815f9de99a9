//! The connection actor: connect, replay, write, read, reconnect.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use super::{Client, Command, ConnectionState, FrameKind, LogLevel};
use crate::invocations::CallError;
use crate::protocol::{frames, Message};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Frames written per flush at most; bounds the latency of the first one.
const BATCH: usize = 256;

/// Why a link ended.
enum End {
    Lost(String),
    /// The engine refused this worker: reconnecting would only be refused again.
    Fatal(String),
    Shutdown,
}

enum ConnectError {
    Transient(String),
    Permanent(String),
}

pub(super) async fn run(client: Client, mut rx: UnboundedReceiver<Command>) {
    let shared = client.shared.clone();
    let timer = tokio::spawn({
        let client = client.clone();
        async move { client.shared.pending.run_timer().await }
    });
    let mut offline: VecDeque<(String, FrameKind)> = VecDeque::new();
    let mut failures: u64 = 0;
    let mut ever_connected = false;
    let policy = shared.config.reconnect.clone();

    let final_state = loop {
        let state = if ever_connected { ConnectionState::Reconnecting } else { ConnectionState::Connecting };
        client.set_state(state, None);
        let attempt = tokio::time::timeout(shared.config.connect_timeout, connect(&client));
        let Some(attempt) = while_offline(&client, &mut rx, &mut offline, attempt).await else {
            break ConnectionState::Disconnected;
        };
        let error = match attempt {
            Ok(Ok(ws)) => {
                failures = 0;
                ever_connected = true;
                let end = serve(&client, ws, &mut rx, &mut offline).await;
                let lost_epoch = shared.epoch.fetch_add(1, Ordering::AcqRel);
                shared.connected.store(false, Ordering::Release);
                match end {
                    End::Shutdown => break ConnectionState::Disconnected,
                    End::Fatal(reason) => {
                        give_up(&client, &mut offline, reason);
                        break ConnectionState::Failed;
                    }
                    End::Lost(reason) => {
                        shared.pending.fail_sent_before(lost_epoch, &reason);
                        client.log(LogLevel::Warn, &format!("connection to the engine lost: {reason}; reconnecting"));
                        reason
                    }
                }
            }
            Ok(Err(ConnectError::Permanent(reason))) => {
                give_up(&client, &mut offline, reason);
                break ConnectionState::Failed;
            }
            Ok(Err(ConnectError::Transient(reason))) => {
                failures += 1;
                reason
            }
            Err(_) => {
                failures += 1;
                format!("no connection within {} ms", shared.config.connect_timeout.as_millis())
            }
        };
        client.set_state(ConnectionState::Reconnecting, Some(error.clone()));
        if !policy.allows(failures) {
            let reason = format!(
                "could not connect to {} after {} attempts: {error}",
                shared.config.url,
                failures
            );
            give_up(&client, &mut offline, reason);
            break ConnectionState::Failed;
        }
        let delay = policy.delay(failures.saturating_sub(1) as u32, fastrand::f64());
        if while_offline(&client, &mut rx, &mut offline, tokio::time::sleep(delay)).await.is_none() {
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
    client.set_state(final_state, None);
}

/// The engine cannot be reached any more: fail everything waiting, refuse new calls.
fn give_up(client: &Client, offline: &mut VecDeque<(String, FrameKind)>, reason: String) {
    client.log(LogLevel::Error, &reason);
    client.set_state(ConnectionState::Failed, Some(reason.clone()));
    offline.clear();
    client.shared.offline_len.store(0, Ordering::Release);
    client.shared.pending.close(CallError::NotConnected(reason));
}

/// Runs `fut` while keeping commands flowing into the offline queue. `None` on shutdown.
async fn while_offline<F: Future>(
    client: &Client,
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
                Some(Command::Send(frame, kind)) => queue_offline(client, offline, frame, kind),
            },
        }
    }
}

fn queue_offline(client: &Client, offline: &mut VecDeque<(String, FrameKind)>, frame: String, kind: FrameKind) {
    let limit = client.shared.config.offline_queue_limit;
    match kind {
        // The replay after the next connect sends the ledger's current state.
        FrameKind::Ledger(_) => return,
        FrameKind::Call(id) if offline.len() >= limit => {
            client.shared.pending.fail(&id, CallError::OfflineQueueFull { limit });
            return;
        }
        FrameKind::Plain if offline.len() >= limit => {
            client.log(
                LogLevel::Warn,
                &format!("offline queue full ({limit} messages): dropped an outgoing message while disconnected"),
            );
            return;
        }
        _ => offline.push_back((frame, kind)),
    }
    client.shared.offline_len.store(offline.len(), Ordering::Release);
}

async fn connect(client: &Client) -> Result<Ws, ConnectError> {
    let config = &client.shared.config;
    let mut request = config
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::Permanent(format!("invalid engine URL {:?}: {e}", config.url)))?;
    for (name, value) in &config.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ConnectError::Permanent(format!("invalid header name {name:?}: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| ConnectError::Permanent(format!("invalid value for header {name}: {e}")))?;
        request.headers_mut().insert(name, value);
    }
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size));
    match tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true).await {
        Ok((ws, _response)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Url(e)) => {
            Err(ConnectError::Permanent(format!("cannot connect to {:?}: {e}", config.url)))
        }
        Err(e) => Err(ConnectError::Transient(format!("cannot connect to {}: {e}", config.url))),
    }
}

/// Owns one live link until it ends.
async fn serve(
    client: &Client,
    ws: Ws,
    rx: &mut UnboundedReceiver<Command>,
    offline: &mut VecDeque<(String, FrameKind)>,
) -> End {
    let shared = &client.shared;
    let (mut sink, stream) = ws.split();

    let mut replay: Vec<String> = Vec::new();
    let previous = {
        let info = shared.info.lock();
        info.worker_id.clone().zip(info.reattach_token.clone())
    };
    if let Some((previous_worker_id, reattach_token)) = previous {
        replay.push(Message::Reattach { previous_worker_id, reattach_token }.encode());
    }
    let (registrations, replayed_upto) = shared.ledger.lock().snapshot();
    replay.extend(registrations);
    for (frame, kind) in offline.drain(..) {
        if let FrameKind::Call(id) = kind {
            if !shared.pending.contains(&id) {
                continue; // its caller already gave up
            }
        }
        replay.push(frame);
    }
    shared.offline_len.store(0, Ordering::Release);
    if let Some(metadata) = &shared.config.worker_metadata {
        replay.push(frames::invoke_function(None, "engine::workers::register", Some(metadata), Some(&crate::protocol::TriggerAction::Void), None, None));
    }
    {
        let mut info = shared.info.lock();
        info.worker_id = None;
        info.reattach_token = None;
    }
    // Frames flow from now on; the state turns `connected` when `workerregistered` arrives.
    shared.connected.store(true, Ordering::Release);

    for frame in replay {
        if let Err(e) = sink.feed(WsMessage::text(frame)).await {
            return End::Lost(e.to_string());
        }
    }
    if let Err(e) = sink.flush().await {
        return End::Lost(e.to_string());
    }

    let mut reader = tokio::spawn(read_loop(client.clone(), stream));
    let mut ping = tokio::time::interval(shared.config.ping_interval);
    ping.tick().await;
    let end = loop {
        tokio::select! {
            biased;
            joined = &mut reader => {
                break joined.unwrap_or_else(|e| End::Lost(format!("reader stopped: {e}")));
            }
            cmd = rx.recv() => {
                match write_batch(&mut sink, rx, cmd, replayed_upto).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                        break End::Shutdown;
                    }
                    Err(e) => break End::Lost(e),
                }
            }
            _ = ping.tick() => {
                if let Err(e) = sink.send(WsMessage::Ping(Default::default())).await {
                    break End::Lost(e.to_string());
                }
            }
        }
    };
    reader.abort();
    end
}

/// Writes `first` and everything else already queued, then flushes once. `Ok(false)` on shutdown.
async fn write_batch(
    sink: &mut SplitSink<Ws, WsMessage>,
    rx: &mut UnboundedReceiver<Command>,
    first: Option<Command>,
    replayed_upto: u64,
) -> Result<bool, String> {
    let mut next = first;
    let mut written = 0;
    loop {
        match next {
            None | Some(Command::Shutdown) => {
                sink.flush().await.map_err(|e| e.to_string())?;
                return Ok(false);
            }
            Some(Command::Send(_, FrameKind::Ledger(seq))) if seq <= replayed_upto => {}
            Some(Command::Send(frame, _)) => {
                sink.feed(WsMessage::text(frame)).await.map_err(|e| e.to_string())?;
                written += 1;
            }
        }
        if written >= BATCH {
            break;
        }
        match rx.try_recv() {
            Ok(cmd) => next = Some(cmd),
            Err(_) => break,
        }
    }
    sink.flush().await.map_err(|e| e.to_string())?;
    Ok(true)
}

async fn read_loop(client: Client, mut stream: SplitStream<Ws>) -> End {
    let idle = client.shared.config.idle_timeout;
    loop {
        let frame = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return End::Lost(format!("no frame from the engine for {} ms", idle.as_millis())),
            Ok(None) => return End::Lost("the engine closed the connection".into()),
            Ok(Some(Err(e))) => return End::Lost(e.to_string()),
            Ok(Some(Ok(frame))) => frame,
        };
        let end = match frame {
            WsMessage::Text(text) => handle_frame(&client, text.as_bytes()),
            WsMessage::Binary(bytes) => handle_frame(&client, &bytes),
            WsMessage::Close(close) => {
                let why = close.map(|c| format!(" (code {}, {:?})", u16::from(c.code), c.reason.as_str()));
                Some(End::Lost(format!("the engine closed the connection{}", why.unwrap_or_default())))
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => None,
        };
        if let Some(end) = end {
            return end;
        }
    }
}

fn handle_frame(client: &Client, bytes: &[u8]) -> Option<End> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let message = match Message::decode(bytes) {
        Ok(m) => m,
        Err(e) => {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            client.log(LogLevel::Warn, &format!("ignored a frame from the engine ({e}): {start}"));
            return None;
        }
    };
    let shared = &client.shared;
    match message {
        Message::InvocationResult(result) => match Uuid::try_parse(&result.invocation_id) {
            Ok(id) => {
                let outcome = match result.error {
                    Some(error) => Err(CallError::Remote(error)),
                    None => Ok(result.result),
                };
                shared.pending.complete(&id, outcome);
            }
            Err(_) => client.log(
                LogLevel::Warn,
                &format!("ignored a result with a malformed invocation id {:?}", result.invocation_id),
            ),
        },
        Message::InvokeFunction(call) => shared.sink.invocation(client, call),
        Message::WorkerRegistered { worker_id, reattach_token } => {
            {
                let mut info = shared.info.lock();
                info.worker_id = Some(worker_id);
                info.reattach_token = reattach_token;
            }
            client.set_state(ConnectionState::Connected, None);
        }
        Message::Ping => {
            let _ = shared.tx.send(Command::Send(Message::Pong.encode(), FrameKind::Plain));
        }
        Message::Pong => {}
        Message::Error { error } => {
            return Some(End::Fatal(format!("the engine refused this worker: {}: {}", error.code, error.message)));
        }
        Message::RegistrationRejected(rejected) if rejected.code == "WORKER_NAMESPACE_CONFLICT" => {
            let reason = format!(
                "the engine rejected this worker (WORKER_NAMESPACE_CONFLICT): a live worker named {:?} \
                 already exists in namespace {:?}; give each worker a unique worker_name",
                rejected.worker_name.clone().unwrap_or_default(),
                rejected.namespace.clone().unwrap_or_default()
            );
            shared.sink.message(client, Message::RegistrationRejected(rejected));
            return Some(End::Fatal(reason));
        }
        other => shared.sink.message(client, other),
    }
    None
}
