//! TLS for `wss://` (rustls, ring provider): trust comes from the system store, or from
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` when set (what Python's default context honours); the
//! host name is always verified.

use std::sync::Arc;

use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Why a TLS connection could not be set up, and whether retrying can help.
#[derive(Debug)]
pub(crate) enum TlsError {
    /// The certificate (or the host name) does not verify: retrying would fail the same way.
    Certificate(String),
    Other(String),
}

/// The environment the client config was built from, and the config.
type Cached = (Option<String>, Option<String>, Arc<ClientConfig>);

static CONFIG: Mutex<Option<Cached>> = Mutex::new(None);

/// The client config, built once per value of `SSL_CERT_FILE` / `SSL_CERT_DIR` (loading the
/// system store parses a few hundred certificates).
fn client_config() -> Result<Arc<ClientConfig>, TlsError> {
    let file = std::env::var("SSL_CERT_FILE").ok();
    let dir = std::env::var("SSL_CERT_DIR").ok();
    let mut cached = CONFIG.lock();
    if let Some((f, d, config)) = cached.as_ref() {
        if *f == file && *d == dir {
            return Ok(config.clone());
        }
    }
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        return Err(TlsError::Other(format!(
            "no trusted certificates found (system store, SSL_CERT_FILE={}, SSL_CERT_DIR={}){}",
            file.as_deref().unwrap_or("unset"),
            dir.as_deref().unwrap_or("unset"),
            if errors.is_empty() { String::new() } else { format!(": {}", errors.join("; ")) }
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    *cached = Some((file, dir, config.clone()));
    Ok(config)
}

/// Runs the TLS handshake with `host` over `tcp`.
pub(crate) async fn connect(host: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>, TlsError> {
    let config = client_config()?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| TlsError::Certificate(format!("{host} is not a valid TLS server name: {e}")))?;
    TlsConnector::from(config).connect(name, tcp).await.map_err(|e| classify(host, e))
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Certificate(reason) | TlsError::Other(reason) => f.write_str(reason),
        }
    }
}

fn classify(host: &str, e: std::io::Error) -> TlsError {
    let rustls_error = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(reason)) => TlsError::Certificate(format!(
            "the TLS certificate of {host} was not accepted: {}",
            describe(reason)
        )),
        Some(other) => TlsError::Other(format!("TLS handshake with {host} failed: {other}")),
        None => TlsError::Other(format!("TLS handshake with {host} failed: {e}")),
    }
}

fn describe(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match reason {
        E::UnknownIssuer => "it is not signed by a trusted authority (unknown issuer; add its CA \
                             to the system store or point SSL_CERT_FILE at it)"
            .into(),
        E::Expired | E::ExpiredContext { .. } => format!("it has expired ({reason:?})"),
        E::NotValidYet | E::NotValidYetContext { .. } => format!("it is not valid yet ({reason:?})"),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            format!("it is not valid for this host name ({reason:?})")
        }
        other => format!("{other:?}"),
    }
}
