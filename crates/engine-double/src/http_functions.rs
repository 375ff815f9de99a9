//! HTTP-invoked functions (docs/protocol.md 2.3.1): a function registered with `invocation` is run
//! by the engine as an HTTP/1.1 request to its URL. Plain `http://` only; the client is a
//! minimal one on a tokio `TcpStream` (one request per connection, `connection: close`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::BASE64;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::reply::{new_id, Outcome};
use iii_protocol::ErrorBody;

const MAX_HEADER_BYTES: usize = 64 << 10;
const MAX_BODY_BYTES: usize = 64 << 20;

pub(crate) struct HttpFunction {
    url: String,
    method: &'static str,
    timeout: Duration,
    headers: Vec<(String, String)>,
    auth: Option<Auth>,
}

enum Auth {
    Hmac(Vec<u8>),
    Bearer(String),
    ApiKey { header: String, value: String },
}

#[derive(Deserialize)]
struct InvocationRef {
    url: String,
    #[serde(default)]
    method: Option<Method>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    auth: Option<AuthConfig>,
}

#[derive(Deserialize, Clone, Copy)]
#[allow(clippy::upper_case_acronyms)]
enum Method {
    GET,
    POST,
    PUT,
    PATCH,
    DELETE,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AuthConfig {
    Hmac { secret_key: String },
    Bearer { token_key: String },
    ApiKey { header: String, value_key: String },
}

fn env(name: &str, what: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{what}: environment variable {name} is not set"))
}

/// Parses the `invocation` of a `registerfunction` and resolves its secrets from the engine's
/// environment, once, like the real engine. An error means the function is not registered.
pub(crate) fn setup(invocation: &RawValue) -> Result<HttpFunction, String> {
    let r: InvocationRef =
        serde_json::from_str(invocation.get()).map_err(|e| format!("invalid invocation: {e}"))?;
    let auth = match r.auth {
        None => None,
        Some(AuthConfig::Hmac { secret_key }) => {
            Some(Auth::Hmac(env(&secret_key, "secret_not_found")?.into_bytes()))
        }
        Some(AuthConfig::Bearer { token_key }) => Some(Auth::Bearer(env(&token_key, "token_not_found")?)),
        Some(AuthConfig::ApiKey { header, value_key }) => {
            Some(Auth::ApiKey { header, value: env(&value_key, "api_key_not_found")? })
        }
    };
    let method = match r.method.unwrap_or(Method::POST) {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
    };
    Ok(HttpFunction {
        url: r.url,
        method,
        timeout: Duration::from_millis(r.timeout_ms.unwrap_or(30_000)),
        headers: r.headers.unwrap_or_default().into_iter().collect(),
        auth,
    })
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>:<base64 body>")>`.
pub(crate) fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}:{}", BASE64.encode(body)).as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::from("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

struct Target<'a> {
    /// `host:port` to connect to, and the `host` header.
    authority: &'a str,
    path: String,
}

fn parse_url(url: &str) -> Result<Target<'_>, ErrorBody> {
    let invalid = |why: &str| ErrorBody::new("url_validation_failed", format!("URL {url} rejected: {why}"));
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(invalid("the test engine only calls plain http:// URLs"));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err(invalid("no host"));
    }
    let path = path.split('#').next().unwrap_or_default();
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    Ok(Target { authority, path })
}

fn connect_addr(authority: &str) -> String {
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    }
}

fn clean(s: &str) -> bool {
    !s.contains(['\r', '\n'])
}

fn failed(code: &str, e: impl std::fmt::Display) -> ErrorBody {
    ErrorBody::new(code, e.to_string())
}

/// Calls the function's URL with `body` (the payload JSON) and maps the response.
pub(crate) async fn invoke(f: &HttpFunction, function_id: &str, body: &str) -> Outcome {
    let target = parse_url(&f.url)?;
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-iii-function-path: {}\r\nx-iii-invocation-id: {}\r\nx-iii-timestamp: {timestamp}\r\n",
        f.method,
        target.path,
        target.authority,
        body.len(),
        function_id.replace(['\r', '\n'], ""),
        new_id(),
    );
    for (name, value) in f.headers.iter().filter(|(n, v)| clean(n) && clean(v)) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &f.auth {
        Some(Auth::Hmac(secret)) => {
            head.push_str(&format!("x-iii-signature: {}\r\n", signature(secret, timestamp, body.as_bytes())));
        }
        Some(Auth::Bearer(token)) if clean(token) => {
            head.push_str(&format!("authorization: Bearer {token}\r\n"))
        }
        Some(Auth::ApiKey { header, value }) if clean(header) && clean(value) => {
            head.push_str(&format!("{header}: {value}\r\n"));
        }
        _ => {}
    }
    head.push_str("connection: close\r\n\r\n");
    let exchange = exchange(connect_addr(target.authority), head, body);
    let (status, response) = match tokio::time::timeout(f.timeout, exchange).await {
        Ok(result) => result?,
        Err(_) => {
            let ms = f.timeout.as_millis();
            return Err(failed("http_request_failed", format!("request timed out after {ms} ms")));
        }
    };
    map_response(status, &response)
}

async fn exchange(addr: String, head: String, body: &str) -> Result<(u16, Vec<u8>), ErrorBody> {
    let request_failed =
        |e: std::io::Error| failed("http_request_failed", format!("error sending request: {e}"));
    let mut tcp = TcpStream::connect(&addr).await.map_err(request_failed)?;
    let _ = tcp.set_nodelay(true);
    let mut request = head.into_bytes();
    request.extend_from_slice(body.as_bytes());
    tcp.write_all(&request).await.map_err(request_failed)?;

    let mut buf = Vec::with_capacity(4096);
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEADER_BYTES {
            return Err(failed("http_request_failed", "response headers too large"));
        }
        if tcp.read_buf(&mut buf).await.map_err(request_failed)? == 0 {
            return Err(failed("http_request_failed", "connection closed before a response"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| failed("http_request_failed", "malformed status line"))?;
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let mut body = buf.split_off(header_end);
    let response_failed =
        |e: std::io::Error| failed("http_response_failed", format!("error reading body: {e}"));
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok((status, Vec::new()));
    }
    if chunked {
        loop {
            if let Some(decoded) = dechunk(&body)? {
                return Ok((status, decoded));
            }
            if body.len() > MAX_BODY_BYTES || tcp.read_buf(&mut body).await.map_err(response_failed)? == 0 {
                return Err(failed("http_response_failed", "truncated chunked body"));
            }
        }
    }
    match length {
        Some(n) => {
            while body.len() < n {
                if n > MAX_BODY_BYTES || tcp.read_buf(&mut body).await.map_err(response_failed)? == 0 {
                    return Err(failed("http_response_failed", "truncated body"));
                }
            }
            body.truncate(n);
        }
        None => loop {
            if body.len() > MAX_BODY_BYTES || tcp.read_buf(&mut body).await.map_err(response_failed)? == 0 {
                break;
            }
        },
    }
    Ok((status, body))
}

/// Decodes a complete chunked body; `None` while more bytes are needed.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, ErrorBody> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| failed("http_response_failed", format!("bad chunk size {size_text:?}")))?;
        let start = eol + 2;
        if size == 0 {
            return Ok(Some(out)); // trailers, if any, are ignored
        }
        // The size comes from the wire: checked, so a huge one is refused instead of wrapping.
        let end = out
            .len()
            .checked_add(size)
            .filter(|&total| total <= MAX_BODY_BYTES)
            .and_then(|_| start.checked_add(size))
            .ok_or_else(|| failed("http_response_failed", format!("chunk of {size} bytes is too large")))?;
        if data.len() < end + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[start..end]);
        data = &data[end + 2..];
    }
}

fn map_response(status: u16, body: &[u8]) -> Outcome {
    if (200..300).contains(&status) {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        return serde_json::from_slice::<Box<RawValue>>(body)
            .map(Some)
            .map_err(|e| failed("invalid_response", format!("response is not JSON: {e}")));
    }
    #[derive(Deserialize)]
    struct Failure {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        code: String,
        #[serde(default)]
        message: Option<String>,
    }
    match serde_json::from_slice::<Failure>(body) {
        Ok(f) => {
            Err(ErrorBody::new(f.error.code, f.error.message.unwrap_or_else(|| format!("HTTP {status}"))))
        }
        Err(_) => Err(ErrorBody::new("http_error", format!("HTTP {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // The signed message is "<timestamp>:<base64 body>".
        let sig = signature(b"Jefe", 0, b"what do ya want for nothing?");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert_eq!(BASE64.encode(b"{\"p\":2}"), "eyJwIjoyfQ==");
    }

    #[test]
    fn urls_and_chunks() {
        let t = parse_url("http://127.0.0.1:8080/fn?x=1#frag").unwrap();
        assert_eq!((t.authority, t.path.as_str()), ("127.0.0.1:8080", "/fn?x=1"));
        let t = parse_url("http://example.test").unwrap();
        assert_eq!((connect_addr(t.authority), t.path.as_str()), ("example.test:80".to_owned(), "/"));
        assert_eq!(connect_addr("[::1]"), "[::1]:80");
        assert_eq!(connect_addr("[::1]:9"), "[::1]:9");
        assert_eq!(parse_url("https://x/").err().unwrap().code, "url_validation_failed");
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(), Some(b"abcde".to_vec()));
        assert_eq!(dechunk(b"3\r\nab").unwrap(), None);
        assert!(dechunk(b"zz\r\n").is_err());
        for huge in ["ffffffffffffffff", "fffffffffffffffe", "8000000000000000"] {
            let wire = format!("1\r\na\r\n{huge}\r\nabc");
            assert!(dechunk(wire.as_bytes()).is_err(), "{huge}");
        }
    }

    #[test]
    fn response_mapping() {
        assert!(map_response(200, b"").unwrap().is_none());
        assert_eq!(map_response(201, br#"{"a":1}"#).unwrap().unwrap().get(), r#"{"a":1}"#);
        assert_eq!(map_response(200, b"hello").unwrap_err().code, "invalid_response");
        let e = map_response(400, br#"{"error":{"code":"bad","message":"no"}}"#).unwrap_err();
        assert_eq!((e.code.as_str(), e.message.as_str()), ("bad", "no"));
        let e = map_response(503, b"down").unwrap_err();
        assert_eq!((e.code.as_str(), e.message.as_str()), ("http_error", "HTTP 503"));
        assert_eq!(map_response(302, b"").unwrap_err().message, "HTTP 302");
    }
}
