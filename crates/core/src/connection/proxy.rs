//! Proxies from the environment, chosen the way the official SDK's WebSocket library chooses
//! them: `ws_proxy` / `wss_proxy`, `socks_proxy`, `https_proxy`, (`ws://` only) `http_proxy`,
//! then `all_proxy`, lower case before upper case, unless `no_proxy` names the host. An HTTP
//! proxy is asked for a tunnel with `CONNECT`; SOCKS proxies are refused with a clear error.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::endpoint::{redacted, Endpoint};

/// An HTTP proxy to tunnel through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    /// As configured, for messages (credentials left out).
    pub(crate) shown: String,
    host: String,
    port: u16,
    authorization: Option<String>,
}

/// The proxy for `ep` according to the process environment.
pub(crate) fn proxy_for(ep: &Endpoint) -> Result<Option<Proxy>, String> {
    choose(ep, |name| std::env::var(name).ok())
}

fn lookup(env: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).or_else(|| env(&name.to_ascii_uppercase())).filter(|v| !v.trim().is_empty())
}

fn choose(ep: &Endpoint, env: impl Fn(&str) -> Option<String>) -> Result<Option<Proxy>, String> {
    if let Some(no_proxy) = lookup(&env, "no_proxy") {
        if bypassed(&no_proxy, &ep.host, ep.port) {
            return Ok(None);
        }
    }
    let names: &[&str] = if ep.tls {
        &["wss_proxy", "socks_proxy", "https_proxy", "all_proxy"]
    } else {
        &["ws_proxy", "socks_proxy", "https_proxy", "http_proxy", "all_proxy"]
    };
    let Some((name, value)) = names.iter().find_map(|n| lookup(&env, n).map(|v| (*n, v))) else {
        return Ok(None);
    };
    parse(&value)
        .map(Some)
        .map_err(|why| format!("proxy {name}={:?} cannot be used: {why}", redacted(&value)))
}

/// Whether a `no_proxy` list names `host`: `*`, the host itself, a domain it is under
/// (`example.com`, `.example.com`), or `host:port`.
fn bypassed(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    no_proxy.split(',').map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let (name, entry_port) = match entry.rsplit_once(':') {
            Some((n, p)) if !n.is_empty() && !n.ends_with(':') && p.parse::<u16>().is_ok() => {
                (n.to_owned(), p.parse::<u16>().ok())
            }
            _ => (entry.clone(), None),
        };
        let name = name.trim_start_matches("*.").trim_start_matches('.');
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let host_matches = host == name || host.ends_with(&format!(".{name}"));
        host_matches && entry_port.is_none_or(|p| p == port)
    })
}

fn parse(value: &str) -> Result<Proxy, String> {
    let with_scheme = if value.contains("://") { value.to_owned() } else { format!("http://{value}") };
    let (scheme, _) = with_scheme.split_once("://").unwrap_or_default();
    match scheme.to_ascii_lowercase().as_str() {
        "http" => {}
        s if s.starts_with("socks") => {
            return Err("SOCKS proxies are not supported; use an HTTP proxy (CONNECT) or set no_proxy".into())
        }
        "https" => return Err("TLS to the proxy (https://) is not supported; use http://".into()),
        other => return Err(format!("unknown proxy scheme {other:?}")),
    }
    // The proxy URL reads like an engine URL with another scheme (default port 80 too).
    let as_ws = format!("ws{}", &with_scheme[scheme.len()..]);
    let ep = Endpoint::parse(&as_ws)
        .map_err(|e| e.rsplit_once(": ").map_or(e.clone(), |(_, why)| why.to_owned()))?;
    Ok(Proxy {
        shown: format!("http://{}", ep.host_and_port()),
        host: ep.host.clone(),
        port: ep.port,
        authorization: ep.authorization(),
    })
}

/// Opens a tunnel to `ep` through `proxy` (HTTP `CONNECT`).
pub(crate) async fn tunnel(proxy: &Proxy, ep: &Endpoint) -> Result<TcpStream, String> {
    let failed = |why: String| format!("proxy {} could not reach {}: {why}", proxy.shown, ep.host_header());
    let mut stream = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| format!("cannot connect to proxy {}: {e}", proxy.shown))?;
    stream.set_nodelay(true).map_err(|e| failed(e.to_string()))?;
    let target = ep.host_and_port();
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = &proxy.authorization {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| failed(e.to_string()))?;
    // Read the response byte by byte: nothing after it may be consumed (it is the server's).
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(failed("response too large".into()));
        }
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.map_err(|e| failed(e.to_string()))? == 0 {
            return Err(failed("it closed the connection".into()));
        }
        head.push(byte[0]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    response.parse(&head).map_err(|e| failed(format!("malformed response: {e}")))?;
    match response.code {
        Some(code) if (200..300).contains(&code) => Ok(stream),
        code => Err(failed(format!(
            "it answered HTTP {} {}",
            code.unwrap_or_default(),
            response.reason.unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(vars: &[(&str, &str)], url: &str) -> Result<Option<Proxy>, String> {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        choose(&Endpoint::parse(url).unwrap(), move |n| env.get(n).cloned())
    }

    fn shown(vars: &[(&str, &str)], url: &str) -> Option<String> {
        with(vars, url).unwrap().map(|p| p.shown)
    }

    #[test]
    fn picks_the_proxy_like_the_official_sdk() {
        assert_eq!(shown(&[], "ws://e:1"), None);
        assert_eq!(shown(&[("HTTP_PROXY", "http://p:8080")], "ws://e:1").as_deref(), Some("http://p:8080"));
        assert_eq!(
            shown(&[("HTTP_PROXY", "http://p:8080")], "wss://e:1"),
            None,
            "http_proxy is for ws:// only"
        );
        let both = [("https_proxy", "http://s:1"), ("http_proxy", "http://h:2")];
        assert_eq!(shown(&both, "ws://e").as_deref(), Some("http://s:1"));
        assert_eq!(shown(&both, "wss://e").as_deref(), Some("http://s:1"));
        let cases = [("HTTPS_PROXY", "http://upper:1"), ("https_proxy", "http://lower:2")];
        assert_eq!(shown(&cases, "wss://e").as_deref(), Some("http://lower:2"));
        assert_eq!(shown(&[("ALL_PROXY", "http://all:3")], "wss://e").as_deref(), Some("http://all:3"));
        assert_eq!(shown(&[("https_proxy", "")], "wss://e"), None, "empty means unset");
        assert_eq!(shown(&[("https_proxy", "p")], "wss://e").as_deref(), Some("http://p:80"));
        assert_eq!(shown(&[("https_proxy", "http://[::1]:9")], "wss://e").as_deref(), Some("http://[::1]:9"));
    }

    #[test]
    fn proxy_credentials_become_proxy_authorization() {
        let p = with(&[("https_proxy", "http://u:p@proxy:8080")], "wss://e").unwrap().unwrap();
        assert_eq!(p.authorization.as_deref(), Some("Basic dTpw"));
        assert_eq!(p.shown, "http://proxy:8080", "credentials stay out of messages");
    }

    #[test]
    fn no_proxy_is_honoured() {
        let proxy = ("https_proxy", "http://p:1");
        for (no_proxy, url, bypass) in [
            ("*", "wss://anything", true),
            ("engine.internal", "wss://engine.internal", true),
            ("example.com", "wss://a.example.com", true),
            (".example.com", "wss://a.example.com", true),
            ("*.example.com", "wss://a.example.com", true),
            ("example.com", "wss://badexample.com", false),
            ("localhost, 127.0.0.1", "wss://127.0.0.1:9", true),
            ("LOCALHOST", "wss://localhost", true),
            ("e:443", "wss://e", true),
            ("e:8443", "wss://e", false),
            ("::1", "wss://[::1]:9", true),
            ("[::1]", "wss://[::1]:9", true),
            ("other", "wss://e", false),
        ] {
            let got = shown(&[proxy, ("no_proxy", no_proxy)], url);
            assert_eq!(got.is_none(), bypass, "no_proxy={no_proxy:?} url={url}");
        }
        assert_eq!(shown(&[proxy, ("NO_PROXY", "e")], "wss://e"), None);
    }

    #[test]
    fn socks_and_other_schemes_fail_with_a_clear_error() {
        for value in ["socks5://p:1080", "socks5h://p:1080", "SOCKS4://p"] {
            let err = with(&[("ALL_PROXY", value)], "wss://e").unwrap_err();
            assert!(err.contains("SOCKS proxies are not supported") && err.contains("all_proxy"), "{err}");
        }
        assert!(with(&[("https_proxy", "https://p")], "wss://e").unwrap_err().contains("not supported"));
        let err = with(&[("https_proxy", "socks5://u:s3cret@p")], "wss://e").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        let err = with(&[("https_proxy", "http://p:notaport")], "wss://e").unwrap_err();
        assert!(err.contains("bad port"), "{err}");
        assert!(with(&[("https_proxy", "ftp://p")], "wss://e").unwrap_err().contains("unknown proxy scheme"));
    }
}
