//! Opening a link: TCP connect, TLS for `wss://`, and the WebSocket opening handshake
//! (RFC 6455 section 4, client side, no extensions). The socket (and TLS session) is then
//! handed over non-blocking to `Link`.
//!
//! NOTE: the request is ours (a format string) but the response is read by httparse and the
//! accept key derived by tungstenite, both already in the build. Frames stay on our codec,
//! decided on structure, not timed: tungstenite's `WebSocket` owns its stream and keeps its
//! own write buffer, which would put a second buffer and lock in front of the direct write
//! (`writer`), and its reader cannot be pumped from an event loop holding the socket
//! non-blocking with a TLS session shared with writers. The direct write itself was measured
//! (see `writer`).

use std::net::TcpStream as StdStream;

use rustls::ClientConnection;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::endpoint::Endpoint;
use super::proxy;
use super::tls::{self, TlsError};

#[derive(Debug)]
pub enum HandshakeError {
    /// Retrying cannot help (bad URL or headers, unusable proxy setting, a certificate that
    /// does not verify).
    Permanent(String),
    Transient(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Permanent(reason) | HandshakeError::Transient(reason) => f.write_str(reason),
        }
    }
}

/// Refuses header names and values that would break the request (or smuggle another).
pub(crate) fn check_headers(headers: &[(String, String)]) -> Result<(), String> {
    for (name, value) in headers {
        let bad = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        if name.is_empty() || bad(name) || bad(value) || name.contains(':') {
            return Err(format!("invalid header {name:?}"));
        }
    }
    Ok(())
}

/// The opening handshake's request: `Host` from the URL (IPv6 in brackets, default port
/// left out), Basic auth from its user info unless `headers` carry an `Authorization`.
fn upgrade_request(ep: &Endpoint, key: &str, headers: &[(String, String)]) -> String {
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        ep.resource(),
        ep.host_header()
    );
    let has_authorization = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
    if let (Some(auth), false) = (ep.authorization(), has_authorization) {
        request.push_str(&format!("Authorization: {auth}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// A link that passed the opening handshake.
pub(crate) struct Opened {
    /// Non-blocking, driven without the runtime's reactor from here on: readiness is only
    /// registered when someone waits (see `Writer::flush_backlog` and the reader task).
    pub(crate) stream: StdStream,
    /// `wss://`: the TLS session, handed to the link's writer.
    pub(crate) tls: Option<ClientConnection>,
    /// Bytes the server sent after its response (the first frames may arrive with it).
    pub(crate) leftover: Vec<u8>,
}

/// Opens the TCP connection to `ep`, through the proxy the environment names for it if any.
pub(crate) async fn open_tcp(ep: &Endpoint) -> Result<TcpStream, HandshakeError> {
    let url = ep.uri();
    match proxy::proxy_for(ep).map_err(HandshakeError::Permanent)? {
        Some(proxy) => proxy::tunnel(&proxy, ep).await.map_err(HandshakeError::Transient),
        None => {
            let transient =
                |e: std::io::Error| HandshakeError::Transient(format!("cannot connect to {url}: {e}"));
            let stream = TcpStream::connect((ep.host.as_str(), ep.port)).await.map_err(transient)?;
            stream.set_nodelay(true).map_err(transient)?;
            Ok(stream)
        }
    }
}

/// Connects (TLS for `wss://`) and performs the opening handshake.
pub async fn connect(url: &str, headers: &[(String, String)]) -> Result<Opened, HandshakeError> {
    let ep = Endpoint::parse(url).map_err(HandshakeError::Permanent)?;
    // Messages name the URL without its credentials.
    let url = &ep.uri();
    check_headers(headers).map_err(HandshakeError::Permanent)?;
    let tcp = open_tcp(&ep).await?;
    let key = generate_key();
    let request = upgrade_request(&ep, &key, headers);
    let (tcp, tls, leftover) = if ep.tls {
        let mut stream = tls::connect(&ep.host, tcp).await.map_err(HandshakeError::from)?;
        let leftover = upgrade(&mut stream, url, &request, &key).await?;
        let (tcp, mut session) = stream.into_inner();
        session.set_buffer_limit(None);
        (tcp, Some(session), leftover)
    } else {
        let mut tcp = tcp;
        let leftover = upgrade(&mut tcp, url, &request, &key).await?;
        (tcp, None, leftover)
    };
    let stream = tcp.into_std().map_err(|e| HandshakeError::Transient(e.to_string()))?;
    stream.set_nonblocking(true).map_err(|e| HandshakeError::Transient(e.to_string()))?;
    Ok(Opened { stream, tls, leftover })
}

impl From<TlsError> for HandshakeError {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Certificate(reason) => HandshakeError::Permanent(reason),
            TlsError::Other(reason) => HandshakeError::Transient(reason),
        }
    }
}

/// Sends the upgrade request and checks the response (httparse reads it; tungstenite derives
/// the expected accept key). Returns the bytes that followed the response.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    url: &str,
    request: &str,
    key: &str,
) -> Result<Vec<u8>, HandshakeError> {
    let transient =
        |e: std::io::Error| HandshakeError::Transient(format!("handshake with {url} failed: {e}"));
    stream.write_all(request.as_bytes()).await.map_err(transient)?;
    stream.flush().await.map_err(transient)?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(end)) => {
                if response.code != Some(101) {
                    return Err(HandshakeError::Transient(format!(
                        "{url} refused the WebSocket upgrade: HTTP {} {}",
                        response.code.unwrap_or_default(),
                        response.reason.unwrap_or_default()
                    )));
                }
                let accept = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                    .map(|h| h.value.trim_ascii());
                if accept != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
                    return Err(HandshakeError::Transient(format!(
                        "{url}: invalid Sec-WebSocket-Accept in the handshake"
                    )));
                }
                return Ok(buf.split_off(end));
            }
            Ok(httparse::Status::Partial) if buf.len() <= 16 * 1024 => {}
            Ok(httparse::Status::Partial) => {
                return Err(HandshakeError::Transient(format!("{url}: handshake response too large")));
            }
            Err(e) => {
                return Err(HandshakeError::Transient(format!("{url}: malformed handshake response: {e}")));
            }
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.map_err(transient)?;
        if n == 0 {
            return Err(HandshakeError::Transient(format!(
                "{url} closed the connection during the handshake"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_requests_carry_host_auth_and_extra_headers() {
        let ep = Endpoint::parse("ws://u:p@[::1]:9/x?y=1").unwrap();
        let request = upgrade_request(&ep, "k", &[("X-Team".into(), "a".into())]);
        assert!(request.starts_with("GET /x?y=1 HTTP/1.1\r\nHost: [::1]:9\r\n"), "{request}");
        assert!(request.contains("\r\nAuthorization: Basic dTpw\r\n"), "{request}");
        assert!(request.ends_with("\r\nX-Team: a\r\n\r\n"), "{request}");
        let own = [("authorization".to_owned(), "Bearer t".to_owned())];
        let request = upgrade_request(&ep, "k", &own);
        assert!(!request.contains("Basic") && request.contains("authorization: Bearer t"), "{request}");
        assert!(check_headers(&[("X".into(), "a\r\nHost: evil".into())]).is_err());
        assert!(check_headers(&[("X: y".into(), "a".into())]).is_err());
    }
}
