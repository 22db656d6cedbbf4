//! TLS for the `https`, `rtmps` and `rtsps` listeners: certificates read once at start
//! (and by `--check`), and the handshake on the shard that accepted the connection.
//!
//! rustls is a sans-IO connection (records in, records out); futures-rustls drives it over
//! glommio's socket, so the handshake is one more await in the connection's task: no thread
//! pool, nothing blocks the shard. After the handshake the connection is served exactly as
//! a plaintext one (`Wire`): the same HTTP service, the same RTMP and RTSP machines and
//! authorization. A write encrypts straight from the caller's slice into rustls' record
//! buffer, so a shared segment is never first copied into a plaintext staging buffer.
//!
//! Files: `ssl_certificate PATH;` (PEM, the full chain) and `ssl_certificate_key PATH;`
//! (PEM: PKCS#8, PKCS#1 or SEC1), relative to the config file's directory; without them,
//! Flussonic's `streamer.crt` and `streamer.key` beside the config file. `server_name NAME...
//! { ssl_certificate ...; ssl_certificate_key ...; }` blocks add certificates chosen by the
//! name a client asks for (SNI); others get the default one.

use crate::config::{Config, ConfigError, ConfigErrors, ListenerProto, Span};
use crate::shard::{Handshake, ShardState};
use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::TlsAcceptor;
use futures_rustls::server::TlsStream;
use glommio::net::TcpStream;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// Flussonic's certificate file names, looked for beside the config file.
const DEFAULT_CERTIFICATE: &str = "streamer.crt";
const DEFAULT_KEY: &str = "streamer.key";

/// A connection's byte stream, plaintext or inside TLS: what the connection shells read
/// and write, with the TCP socket underneath for its options and addresses.
pub trait Wire: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> &TcpStream;

    /// The socket, when bytes written are the bytes sent (plain TCP, not TLS): vectored
    /// sends may go straight to it (`driver::send_pieces`).
    fn plain_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

impl Wire for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }

    fn plain_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
}

impl Wire for TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// The server's TLS configurations: HTTPS offers ALPN `http/1.1`; RTMPS and RTSPS no ALPN.
#[derive(Clone)]
pub struct TlsSetup {
    pub https: TlsAcceptor,
    pub other: TlsAcceptor,
}

impl TlsSetup {
    /// The acceptor of a TLS listener of `proto`.
    pub fn acceptor_for(&self, proto: ListenerProto) -> TlsAcceptor {
        match proto {
            ListenerProto::Https | ListenerProto::AdminHttps => self.https.clone(),
            _ => self.other.clone(),
        }
    }
}

/// Reads the certificates and keys when the config has a TLS listener; `None` without one.
/// Errors name the directive (or the first TLS listener, for the default files) by
/// file:line:col.
pub fn load(
    config: &Config,
    config_path: Option<&Path>,
    file_name: &str,
) -> Result<Option<TlsSetup>, ConfigErrors> {
    let Some(listener) = config.listeners.iter().find(|l| l.proto.is_tls()) else {
        return Ok(None);
    };
    let dir = config_path
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let provider = provider();
    let identity = |cert: (PathBuf, Span), key: (PathBuf, Span)| {
        certified_key(&provider, &cert.0, &key.0).map_err(|(on_key, m)| {
            let span = if on_key { key.1 } else { cert.1 };
            ConfigError::new(file_name, Some(span), m)
        })
    };
    let at = |given: &Option<(String, Span)>, default: &str| match given {
        Some((path, span)) => (dir.join(path), *span),
        None => (dir.join(default), listener.span),
    };
    let default = identity(
        at(&config.ssl_certificate, DEFAULT_CERTIFICATE),
        at(&config.ssl_certificate_key, DEFAULT_KEY),
    )?;
    let mut resolver = SniResolver {
        by_name: HashMap::new(),
        default,
    };
    for block in &config.server_names {
        let (cert, key) = (&block.certificate, &block.key);
        let ck = identity((dir.join(&cert.0), cert.1), (dir.join(&key.0), key.1))?;
        for name in &block.names {
            resolver.by_name.insert(name.clone(), ck.clone());
        }
    }
    let resolver = Arc::new(resolver);
    let acceptor = |alpn: &[&[u8]]| {
        server_config(&provider, resolver.clone(), alpn)
            .map(|c| TlsAcceptor::from(Arc::new(c)))
            .map_err(|m| ConfigError::new(file_name, Some(listener.span), m))
    };
    Ok(Some(TlsSetup {
        https: acceptor(&[b"http/1.1"])?,
        other: acceptor(&[])?,
    }))
}

/// Picks the certificate by the name the client asked for (SNI), else the default one.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let asked = hello.server_name().map(str::to_ascii_lowercase);
        let named = asked.and_then(|name| self.by_name.get(&name));
        Some(named.unwrap_or(&self.default).clone())
    }
}

/// ring, not aws-lc-rs (which rustls now prefers for post-quantum key exchange): it builds
/// with the C compiler alone. X25519 and the P-256/P-384 groups remain.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its key as a TLS identity. `Err((on_key, message))`: whether
/// the key (rather than the certificate) is at fault, and why.
fn certified_key(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
) -> Result<Arc<CertifiedKey>, (bool, String)> {
    let chain = read_chain(cert).map_err(|m| (false, m))?;
    let shown = key.display().to_string();
    let key = read_key(key).map_err(|m| (true, m))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| (true, format!("the key `{shown}` cannot sign: {e}")))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| {
        (
            true,
            format!("the certificate and key do not make a TLS identity: {e}"),
        )
    })?;
    Ok(Arc::new(ck))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the certificate `{shown}`: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate `{shown}` is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "no certificate in `{shown}` (PEM `CERTIFICATE` blocks)"
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let shown = path.display();
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a private key from `{shown}`: {e}"))
}

/// A server configuration: TLS 1.2 and 1.3, certificates by SNI, session resumption by
/// tickets and by the session cache.
fn server_config(
    provider: &Arc<CryptoProvider>,
    resolver: Arc<SniResolver>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS tickets: {e}"))?;
    Ok(config)
}

/// The TLS handshake of an accepted connection, bounded by `handshake_timeout` (the
/// deadline of every protocol's first exchange) and counted in the shard's metrics; `None`
/// when it failed or took too long (the connection is then dropped).
pub async fn handshake(
    state: &Rc<RefCell<ShardState>>,
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> Option<TlsStream<TcpStream>> {
    let peer = tcp.peer_addr().ok();
    let deadline = state.borrow().limits().first_request_timeout;
    let accept = async { Some(acceptor.accept(tcp).await) };
    let timeout = async {
        glommio::timer::sleep(deadline).await;
        None
    };
    let (stream, outcome) = match futures_lite::future::or(accept, timeout).await {
        Some(Ok(stream)) => (Some(stream), Handshake::Done),
        Some(Err(e)) => {
            log::debug!("tls handshake from {peer:?} failed: {e}");
            (None, Handshake::Failed)
        }
        None => {
            log::debug!("tls handshake from {peer:?} took longer than {deadline:?}");
            (None, Handshake::TimedOut)
        }
    };
    state.borrow_mut().count_tls_handshake(outcome);
    stream
}
