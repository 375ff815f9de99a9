//! Opening a link: TCP connect and the WebSocket opening handshake (RFC 6455 section 4,
//! client side, no extensions). The socket is then handed over non-blocking to `Link`.

use std::net::TcpStream as StdStream;

use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::endpoint::Endpoint;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#[derive(Debug)]
pub enum HandshakeError {
    /// Retrying cannot help (bad URL, bad headers).
    Permanent(String),
    Transient(String),
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

/// Connects and performs the opening handshake. Returns the stream and any bytes the server
/// sent after its response (the first frames may arrive in the same packet).
pub async fn connect(
    url: &str,
    headers: &[(String, String)],
) -> Result<(StdStream, Vec<u8>), HandshakeError> {
    let ep = Endpoint::parse(url).map_err(HandshakeError::Permanent)?;
    if ep.tls {
        return Err(HandshakeError::Permanent(format!("{url}: wss:// is not supported yet")));
    }
    check_headers(headers).map_err(HandshakeError::Permanent)?;
    let mut stream = TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| HandshakeError::Transient(format!("cannot connect to {url}: {e}")))?;
    stream.set_nodelay(true).map_err(|e| HandshakeError::Transient(e.to_string()))?;
    let key = data_encoding::BASE64.encode(&fastrand::u128(..).to_le_bytes());
    let request = upgrade_request(&ep, &key, headers);
    let transient =
        |e: std::io::Error| HandshakeError::Transient(format!("handshake with {url} failed: {e}"));
    stream.write_all(request.as_bytes()).await.map_err(transient)?;

    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err(HandshakeError::Transient(format!("{url}: handshake response too large")));
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.map_err(transient)?;
        if n == 0 {
            return Err(HandshakeError::Transient(format!(
                "{url} closed the connection during the handshake"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(HandshakeError::Transient(format!("{url} refused the WebSocket upgrade: {status}")));
    }
    let expected = {
        let mut sha = Sha1::new();
        sha.update(key.as_bytes());
        sha.update(GUID.as_bytes());
        data_encoding::BASE64.encode(&sha.finalize())
    };
    let accept = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|(_, v)| v.trim().to_owned());
    if accept.as_deref() != Some(expected.as_str()) {
        return Err(HandshakeError::Transient(format!(
            "{url}: invalid Sec-WebSocket-Accept in the handshake"
        )));
    }
    let leftover = buf.split_off(end);
    // From here on the socket is driven without the runtime's reactor: readiness is only
    // registered when someone waits (see `Writer::flush_backlog` and the reader task).
    let stream = stream.into_std().map_err(|e| HandshakeError::Transient(e.to_string()))?;
    stream.set_nonblocking(true).map_err(|e| HandshakeError::Transient(e.to_string()))?;
    Ok((stream, leftover))
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
