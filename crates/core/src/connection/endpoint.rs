//! Engine URLs: `ws://` and `wss://`, read the way the official SDK's WebSocket library reads
//! them (scheme in any case, IPv6 literals in brackets, default ports 80 and 443,
//! `user:password@` sent as Basic auth, path and query kept, a fragment refused), and the
//! channel URLs derived from them (docs/protocol.md 8).

/// Where one WebSocket goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) tls: bool,
    /// Lower case; an IPv6 literal without its brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path (at least `/`), without the query.
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    /// Decoded `user:password` from the URL.
    pub(crate) credentials: Option<(String, String)>,
    /// The authority as written (user info included), for URLs derived from this one.
    authority: String,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Endpoint, String> {
        let shown = redacted(url);
        let invalid = |why: &str| format!("invalid engine URL {shown:?}: {why}");
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("expected ws://host:port"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "ws" => false,
            "wss" => true,
            _ => return Err(invalid("the scheme must be ws:// or wss://")),
        };
        if rest.contains('#') {
            return Err(invalid("a fragment (#...) means nothing in a WebSocket URL"));
        }
        if !url.is_ascii() {
            return Err(invalid(
                "non-ASCII characters; percent-encode them (and use the IDNA form of a host name)",
            ));
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(end);
        let (path, query) = match resource.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (resource, None),
        };
        let path = if path.is_empty() { "/".to_owned() } else { path.to_owned() };

        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let credentials = match userinfo {
            None => None,
            Some(userinfo) => {
                let (user, password) = userinfo
                    .split_once(':')
                    .ok_or_else(|| invalid("a user name without a password (expected user:password@)"))?;
                let decode = |s: &str| {
                    crate::percent::decode(s).ok_or_else(|| invalid("bad percent-encoding in the user info"))
                };
                Some((decode(user)?, decode(password)?))
            }
        };
        let (host, port_text) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| invalid("unclosed [ in the host"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid("the text in brackets is not an IPv6 address"));
            }
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or_else(|| invalid("junk after the IPv6 address"))?),
                ),
            }
        } else {
            match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if !hostport.starts_with('[') && host.contains(['[', ']', '@', ' ']) {
            return Err(invalid("bad characters in the host (write an IPv6 address in brackets)"));
        }
        let default_port = if tls { 443 } else { 80 };
        let port = match port_text {
            None | Some("") => default_port,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| invalid("bad port"))?,
        };
        Ok(Endpoint {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            path,
            query,
            credentials,
            authority: authority.to_owned(),
        })
    }

    /// The `Host` header: IPv6 literals in brackets, the port only when not the default.
    pub(crate) fn host_header(&self) -> String {
        let host = self.host_for_url();
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// `host:port` with the port always written (IPv6 in brackets), as `CONNECT` wants it.
    pub(crate) fn host_and_port(&self) -> String {
        format!("{}:{}", self.host_for_url(), self.port)
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// Path and query, as sent in the request line.
    pub(crate) fn resource(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// `Basic ...` for the credentials in the URL.
    pub(crate) fn authorization(&self) -> Option<String> {
        let (user, password) = self.credentials.as_ref()?;
        Some(format!("Basic {}", data_encoding::BASE64.encode(format!("{user}:{password}").as_bytes())))
    }

    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls {
            "wss"
        } else {
            "ws"
        }
    }

    /// `scheme://host[:port]` plus the resource, for clients that want a URI (user info left
    /// out: it travels as the `Authorization` header).
    pub(crate) fn uri(&self) -> String {
        format!("{}://{}{}", self.scheme(), self.host_header(), self.resource())
    }

    /// The URL of one channel end on the engine this endpoint names: same scheme, user info,
    /// host and port; the channel path under this URL's path (a reverse proxy may mount the
    /// engine under a prefix); this URL's query kept, before the channel's own parameters (in
    /// iii-sdk 0.25.0's order).
    pub(crate) fn channel_url(&self, channel_id: &str, access_key: &str, direction: &str) -> String {
        let prefix = self.path.trim_end_matches('/');
        let own = self.query.as_deref().filter(|q| !q.is_empty()).map(|q| format!("{q}&"));
        format!(
            "{}://{}{prefix}/ws/channels/{}?{}key={}&dir={}",
            self.scheme(),
            self.authority,
            encode_component(channel_id),
            own.unwrap_or_default(),
            encode_component(access_key),
            encode_component(direction),
        )
    }
}

/// `url` with any password replaced by `***`, for messages.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{hostport}{}", &rest[end..])
        }
        None => url.to_owned(),
    }
}

fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn hosts_ports_and_resources() {
        let e = parse("ws://localhost:49134");
        assert_eq!((e.host.as_str(), e.port, e.resource().as_str()), ("localhost", 49134, "/"));
        assert_eq!(e.host_header(), "localhost:49134");
        let e = parse("ws://10.0.0.1/x/y?a=1");
        assert_eq!((e.port, e.resource().as_str(), e.host_header().as_str()), (80, "/x/y?a=1", "10.0.0.1"));
        assert_eq!(parse("ws://h:1?token=t").resource(), "/?token=t");
        let e = parse("wss://Engine.Example.COM");
        assert!(e.tls);
        assert_eq!(
            (e.host.as_str(), e.port, e.host_header().as_str()),
            ("engine.example.com", 443, "engine.example.com")
        );
        assert_eq!(parse("wss://h:8443/").host_header(), "h:8443");
        assert_eq!(parse("ws://h:443/").host_header(), "h:443");
        assert_eq!(parse("ws://h:/").port, 80);
    }

    #[test]
    fn schemes_in_any_case() {
        assert!(!parse("WS://h").tls);
        assert!(parse("Wss://h").tls);
        assert_eq!(parse("WSS://h").uri(), "wss://h/");
    }

    #[test]
    fn ipv6_literals_with_and_without_port() {
        let e = parse("ws://[::1]:9");
        assert_eq!((e.host.as_str(), e.port, e.host_header().as_str()), ("::1", 9, "[::1]:9"));
        let e = parse("ws://[::1]");
        assert_eq!((e.host.as_str(), e.port, e.host_header().as_str()), ("::1", 80, "[::1]"));
        let e = parse("wss://[2001:DB8::1]/p?q");
        assert_eq!((e.port, e.host_header().as_str(), e.resource().as_str()), (443, "[2001:db8::1]", "/p?q"));
        assert!(Endpoint::parse("ws://[::1").is_err());
        assert!(Endpoint::parse("ws://[nothex]:1").is_err());
        assert!(Endpoint::parse("ws://::1:9").is_err());
    }

    #[test]
    fn user_info_becomes_basic_auth() {
        let e = parse("ws://al%40ice:p%3Ass@h:1/x");
        assert_eq!(e.credentials, Some(("al@ice".into(), "p:ss".into())));
        assert_eq!(
            e.authorization().unwrap(),
            format!("Basic {}", data_encoding::BASE64.encode(b"al@ice:p:ss"))
        );
        assert_eq!(e.host_header(), "h:1");
        assert_eq!(e.uri(), "ws://h:1/x", "credentials never go into the request URI");
        assert!(parse("ws://h").authorization().is_none());
        let err = Endpoint::parse("ws://user@h").unwrap_err();
        assert!(err.contains("without a password"), "{err}");
    }

    #[test]
    fn clear_errors_for_what_cannot_work() {
        for (url, why) in [
            ("ws://h/x#frag", "fragment"),
            ("http://h", "ws:// or wss://"),
            ("h:1", "expected ws://host:port"),
            ("ws://h:notaport", "bad port"),
            ("ws://h:70000", "bad port"),
            ("ws://h:0", "bad port"),
            ("ws://", "no host"),
            ("ws://:1", "no host"),
            ("ws://hé", "non-ASCII"),
        ] {
            let err = Endpoint::parse(url).unwrap_err();
            assert!(err.contains(why) && err.contains(&format!("{url:?}")), "{url}: {err}");
        }
    }

    #[test]
    fn messages_never_show_the_password() {
        let err = Endpoint::parse("ws://al:s3cret@h:1/#frag").unwrap_err();
        assert!(err.contains("ws://al:***@h:1/#frag") && !err.contains("s3cret"), "{err}");
        assert_eq!(redacted("ws://h:1/p?q"), "ws://h:1/p?q");
    }

    #[test]
    fn channel_urls_follow_the_engine_url() {
        let e = parse("ws://h:1/");
        assert_eq!(
            e.channel_url("c-1", "a b/+", "read"),
            "ws://h:1/ws/channels/c-1?key=a%20b%2F%2B&dir=read"
        );
        let e = parse("WSS://u:p@[::1]/iii/?token=t");
        assert_eq!(
            e.channel_url("c", "k", "write"),
            "wss://u:p@[::1]/iii/ws/channels/c?token=t&key=k&dir=write"
        );
        let derived = parse(&e.channel_url("c", "k", "write"));
        assert_eq!(derived.authorization(), e.authorization());
        assert_eq!((derived.port, derived.host_header()), (443, "[::1]".to_owned()));
    }
}
