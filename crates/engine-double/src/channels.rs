//! Channels (docs/protocol.md 6.5, 8): `engine::channels::create` and the data-plane sockets at
//! `/ws/channels/<id>?key=<access_key>&dir=read|write`.
//!
//! One channel is a bounded queue of WebSocket messages. The writer's frames go in, in order;
//! when the queue is full the writer's socket is not read (TCP backpressure). The reader gets
//! the same frames and, once the writer has closed and the queue is drained, a Close frame
//! without status code. Each end can be opened once. Channels live until the engine restarts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::value::to_raw_value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::ErrorResponse;
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::reply::new_id;
use iii_protocol::Json;

pub(crate) const CHANNELS_CREATE: &str = "engine::channels::create";
pub(crate) const PATH_PREFIX: &str = "/ws/channels/";
const DEFAULT_BUFFER: usize = 64;
const MAX_BUFFER: usize = 1024;
/// How long frames arriving after the writer's Close are still taken (the real engine: 10 ms).
const DRAIN_AFTER_CLOSE: Duration = Duration::from_millis(10);
/// How long the reader gets to answer the engine's Close before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

type Ws = WebSocketStream<TcpStream>;

/// Every channel of the engine run, by id.
pub(crate) type Channels = Mutex<HashMap<String, Arc<Channel>>>;

pub(crate) struct Channel {
    key: String,
    writer: Mutex<Option<mpsc::Sender<WsMessage>>>,
    reader: Mutex<Option<mpsc::Receiver<WsMessage>>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Dir {
    Read,
    Write,
}

#[derive(Serialize)]
struct ChannelRef<'a> {
    channel_id: &'a str,
    access_key: &'a str,
    direction: Dir,
}

#[derive(Deserialize)]
pub(crate) struct CreateInput {
    #[serde(default)]
    buffer_size: Option<usize>,
}

/// `engine::channels::create`: `{"writer": ref, "reader": ref}` sharing id and key.
pub(crate) fn create(channels: &Channels, input: Option<CreateInput>) -> serde_json::Result<Json> {
    let size = input.and_then(|i| i.buffer_size).unwrap_or(DEFAULT_BUFFER).clamp(1, MAX_BUFFER);
    let (id, key) = (new_id(), new_id());
    let (tx, rx) = mpsc::channel(size);
    let channel = Channel { key: key.clone(), writer: Mutex::new(Some(tx)), reader: Mutex::new(Some(rx)) };
    channels.lock().insert(id.clone(), Arc::new(channel));
    #[derive(Serialize)]
    struct Pair<'a> {
        writer: ChannelRef<'a>,
        reader: ChannelRef<'a>,
    }
    to_raw_value(&Pair {
        writer: ChannelRef { channel_id: &id, access_key: &key, direction: Dir::Write },
        reader: ChannelRef { channel_id: &id, access_key: &key, direction: Dir::Read },
    })
}

fn status(code: StatusCode, body: &str) -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(body.to_owned()));
    *resp.status_mut() = code;
    resp
}

/// Resolves an upgrade request for `/ws/channels/<rest>`; answers 404 like the real engine.
#[allow(clippy::result_large_err)] // tungstenite's handshake error type
pub(crate) fn lookup(
    channels: &Channels,
    rest: &str,
    query: Option<&str>,
) -> Result<(Arc<Channel>, Dir), ErrorResponse> {
    let (mut key, mut dir) = (None, None);
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "key" => key = Some(percent_decode(value)),
            "dir" => dir = Some(percent_decode(value)),
            _ => {}
        }
    }
    let not_found = || status(StatusCode::NOT_FOUND, "Channel not found");
    let channel = channels.lock().get(&percent_decode(rest)).cloned().ok_or_else(not_found)?;
    if key.as_deref() != Some(channel.key.as_str()) {
        return Err(not_found());
    }
    let dir = match dir.as_deref() {
        Some("read") => Dir::Read,
        Some("write") => Dir::Write,
        _ => return Err(status(StatusCode::BAD_REQUEST, "Invalid direction")),
    };
    Ok((channel, dir))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs one end of a channel on an upgraded socket.
pub(crate) async fn serve(channel: Arc<Channel>, dir: Dir, mut ws: Ws) {
    match dir {
        Dir::Write => {
            let tx = channel.writer.lock().take();
            match tx {
                Some(tx) => pump_writer(ws, tx).await,
                None => {
                    let _ = ws.close(None).await;
                }
            }
        }
        Dir::Read => {
            let rx = channel.reader.lock().take();
            match rx {
                Some(rx) => pump_reader(ws, rx).await,
                None => {
                    let _ = ws.close(None).await;
                }
            }
        }
    }
}

async fn pump_writer(mut ws: Ws, tx: mpsc::Sender<WsMessage>) {
    while let Some(frame) = ws.next().await {
        match frame {
            Ok(msg @ (WsMessage::Binary(_) | WsMessage::Text(_))) => {
                // Waiting here is the backpressure: nothing more is read until there is room.
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
            Ok(WsMessage::Close(_)) => {
                while let Ok(Some(Ok(msg))) = tokio::time::timeout(DRAIN_AFTER_CLOSE, ws.next()).await {
                    if matches!(msg, WsMessage::Binary(_) | WsMessage::Text(_)) && tx.send(msg).await.is_err()
                    {
                        break;
                    }
                }
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    drop(tx);
    // Completes the closing handshake (tungstenite answers the peer's Close on flush).
    let _ = ws.close(None).await;
}

async fn pump_reader(ws: Ws, mut rx: mpsc::Receiver<WsMessage>) {
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                if sink.feed(msg).await.is_err() {
                    return;
                }
                while let Ok(msg) = rx.try_recv() {
                    if sink.feed(msg).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    // The writer is done and everything was delivered: Close without a status code.
    if sink.send(WsMessage::Close(None)).await.is_ok() {
        let _ =
            tokio::time::timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = stream.next().await {} }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%2Db%20c"), "a-b c");
        assert_eq!(percent_decode("plain-uuid"), "plain-uuid");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
