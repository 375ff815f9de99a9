//! The channel data plane (docs/protocol.md 8): one WebSocket per channel end at
//! `<engine>/ws/channels/<id>?key=<access_key>&dir=<read|write>`.
//!
//! Outbound and inbound frames go through bounded queues, so a slow peer slows the producer
//! (the engine applies TCP backpressure on its side too) instead of growing memory.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_tungstenite::tungstenite::handshake::client::{generate_key, Request};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use tokio_tungstenite::WebSocketStream;

use crate::connection::endpoint::Endpoint;
use crate::connection::handshake::open_tcp;
use crate::connection::tls;

/// Binary writes are split into frames of at most this size, like the official SDKs.
pub const MAX_CHUNK: usize = 64 * 1024;
const QUEUE: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Binary(Vec<u8>),
    Text(String),
}

enum Out {
    Frame(Frame),
    Close(oneshot::Sender<()>),
}

/// The URL of one channel end. `base` is the engine URL the worker connected to; the
/// channel URL keeps its scheme, credentials, host, port, path prefix and query.
pub fn channel_url(
    base: &str,
    channel_id: &str,
    access_key: &str,
    direction: &str,
) -> Result<String, String> {
    Ok(Endpoint::parse(base)?.channel_url(channel_id, access_key, direction))
}

/// The upgrade request for `ep`, built like the worker link's (Host, Basic auth).
fn upgrade_request(ep: &Endpoint, bearer: Option<&str>) -> Result<Request, String> {
    let mut request = Request::builder()
        .uri(ep.uri())
        .header("Host", ep.host_header())
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key());
    if let Some(auth) = ep.authorization() {
        request = request.header("Authorization", auth);
    } else if let Some(token) = bearer {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    request.body(()).map_err(|e| format!("invalid channel URL: {e}"))
}

/// One open channel end.
pub struct ChannelSocket {
    out: mpsc::Sender<Out>,
    inbound: Mutex<mpsc::Receiver<Result<Frame, String>>>,
}

impl ChannelSocket {
    /// Opens the socket, with `bearer` as its token unless the URL carries credentials; fails
    /// with the engine's answer (e.g. 404 for an unknown channel).
    pub async fn connect(
        url: &str,
        max_message_size: usize,
        bearer: Option<&str>,
    ) -> Result<ChannelSocket, String> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(max_message_size))
            .max_frame_size(Some(max_message_size));
        let ep = Endpoint::parse(url)?;
        let request = upgrade_request(&ep, bearer)?;
        let failed = |e: &dyn std::fmt::Display| format!("cannot open channel {url}: {e}");
        let tcp = open_tcp(&ep).await.map_err(|e| failed(&e))?;
        if ep.tls {
            let stream = tls::connect(&ep.host, tcp).await.map_err(|e| failed(&e))?;
            let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map_err(|e| failed(&e))?;
            Ok(Self::start(ws))
        } else {
            let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
                .await
                .map_err(|e| failed(&e))?;
            Ok(Self::start(ws))
        }
    }

    /// Spawns the reading and writing tasks of an open socket.
    fn start<S>(ws: WebSocketStream<S>) -> ChannelSocket
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Out>(QUEUE);
        let (in_tx, in_rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            while let Some(next) = stream.next().await {
                let frame = match next {
                    Ok(WsMessage::Binary(b)) => Ok(Frame::Binary(b.to_vec())),
                    Ok(WsMessage::Text(t)) => Ok(Frame::Text(t.as_str().to_owned())),
                    Ok(WsMessage::Close(_)) => break,
                    Ok(_) => continue,
                    Err(e) => Err(e.to_string()),
                };
                let failed = frame.is_err();
                if in_tx.send(frame).await.is_err() || failed {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(out) = out_rx.recv().await {
                match out {
                    Out::Frame(Frame::Binary(b)) => {
                        if sink.send(WsMessage::binary(b)).await.is_err() {
                            break;
                        }
                    }
                    Out::Frame(Frame::Text(t)) => {
                        if sink.send(WsMessage::text(t)).await.is_err() {
                            break;
                        }
                    }
                    Out::Close(done) => {
                        // Give the engine a moment to take the last data frames before the
                        // Close frame: it stops draining shortly after a Close arrives.
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        let _ = sink.close().await;
                        let _ = done.send(());
                        break;
                    }
                }
            }
        });
        ChannelSocket { out: out_tx, inbound: Mutex::new(in_rx) }
    }

    /// Queues a frame, waiting while the outbound queue is full.
    pub async fn send(&self, frame: Frame) -> Result<(), String> {
        self.out.send(Out::Frame(frame)).await.map_err(|_| "the channel is closed".to_owned())
    }

    /// Writes `data` as binary frames of at most `MAX_CHUNK` bytes.
    pub async fn write(&self, data: &[u8]) -> Result<(), String> {
        for chunk in data.chunks(MAX_CHUNK) {
            self.send(Frame::Binary(chunk.to_vec())).await?;
        }
        Ok(())
    }

    /// The next frame, or `None` once the other side closed the channel.
    pub async fn recv(&self) -> Option<Result<Frame, String>> {
        self.inbound.lock().await.recv().await
    }

    /// Sends the Close frame after everything queued before it.
    pub async fn close(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.out.send(Out::Close(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_urls_keep_the_engine_url_parts() {
        assert_eq!(
            channel_url("ws://h:1/", "c-1", "a b/+", "read").unwrap(),
            "ws://h:1/ws/channels/c-1?key=a%20b%2F%2B&dir=read"
        );
        assert!(channel_url("ws://h/#x", "c", "k", "read").unwrap_err().contains("fragment"));
    }

    #[test]
    fn channel_upgrade_requests_carry_host_and_auth() {
        let ep = Endpoint::parse("WS://u:p@[::1]/ws/channels/c?key=k&dir=read").unwrap();
        let request = upgrade_request(&ep, Some("t")).unwrap();
        assert_eq!(request.uri().to_string(), "ws://[::1]/ws/channels/c?key=k&dir=read");
        assert_eq!(request.headers()["host"], "[::1]");
        assert_eq!(request.headers()["authorization"], "Basic dTpw", "URL credentials win");
        let plain = Endpoint::parse("ws://h/ws/channels/c?key=k&dir=read").unwrap();
        assert_eq!(upgrade_request(&plain, Some("t")).unwrap().headers()["authorization"], "Bearer t");
        assert!(upgrade_request(&plain, None).unwrap().headers().get("authorization").is_none());
    }
}
