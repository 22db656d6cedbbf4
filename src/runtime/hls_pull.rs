//! The HTTP side of an HLS pull (`hls://`, `hlss://`, `http(s)://...m3u8`): runs
//! `pull::hls::HlsPull`'s fetches over one keep-alive connection to the origin (plain, or
//! rustls for HTTPS), reconnecting when the origin closes it or a URI names another host.
//! Segment bodies are handed over as they are read, and the frames they complete are taken
//! before the next read, so a segment is never held whole.
//!
//! The origin's credentials (the input URL's `user:pass`) go to the input's own host and
//! port only, never to another host a playlist names; the viewer's token is never sent.
//!
//! HTTPS trusts the system's roots: the PEM bundle `SSL_CERT_FILE` names (OpenSSL's
//! variable, which an operator's private CA can use), else Debian's or Red Hat's bundle,
//! read once per shard at its first HTTPS pull. No new crate: rustls-native-certs does
//! the same on Linux; webpki-roots would compile Mozilla's list in and ignore the system's.

use crate::config::pull::{PullScheme, PullUrl};
use crate::pull::hls::{HlsPull, Location, Step};
use crate::pull::http::{BodyDecoder, Framing, MAX_HEAD, get_request_keep_alive, parse_head};
use crate::rtmp::flv::MediaFrame;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::cell::OnceCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes read per socket read.
const READ_CHUNK: usize = 64 * 1024;
/// System CA bundles tried when `SSL_CERT_FILE` is not set.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

struct HttpConn {
    at: Location,
    wire: Box<dyn Stream>,
    buf: Vec<u8>,
    /// The origin said it closes after the current response.
    closes: bool,
}

/// An HLS source's requests, driven until it fails.
pub struct HlsSource {
    pull: HlsPull,
    origin: Location,
    userinfo: Option<String>,
    conn: Option<HttpConn>,
    body: Option<BodyDecoder>,
    epoch: Instant,
    scratch: Vec<u8>,
}

impl HlsSource {
    pub fn new(url: &PullUrl, source_timeout: Duration) -> HlsSource {
        let origin = Location {
            tls: url.scheme == PullScheme::Hlss,
            host: url.host.clone(),
            port: url.port,
            path: url.path.clone(),
        };
        let stall_ms = source_timeout.as_millis().try_into().unwrap_or(u64::MAX);
        HlsSource {
            pull: HlsPull::new(origin.clone(), stall_ms),
            origin,
            userinfo: url.userinfo.clone(),
            conn: None,
            body: None,
            epoch: Instant::now(),
            scratch: vec![0; READ_CHUNK],
        }
    }

    /// A probe of `url`: only segments newer than its first playlist are fetched.
    pub fn probe(url: &PullUrl, source_timeout: Duration) -> HlsSource {
        let mut source = HlsSource::new(url, source_timeout);
        source.pull.skip_existing_segments();
        source
    }

    fn now_ms(&self) -> u64 {
        self.epoch
            .elapsed()
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX)
    }

    /// The next configuration or frame; an error when the source failed, or sent no frame
    /// for `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<MediaFrame, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(media) = self.pull.poll_media() {
                return Ok(media);
            }
            if Instant::now() >= deadline {
                return Err(format!("no media for {} s", timeout.as_secs()));
            }
            if self.body.is_some() {
                self.read_body(deadline).await?;
                continue;
            }
            match self.pull.next_step(self.now_ms())? {
                Step::Fetch(at) => self.fetch(at, deadline).await?,
                Step::WaitUntil(ms) => {
                    let wait = Duration::from_millis(ms.saturating_sub(self.now_ms()));
                    let left = deadline.saturating_duration_since(Instant::now());
                    glommio::timer::sleep(wait.min(left)).await;
                }
            }
        }
    }

    /// Sends the GET for `at` (on the kept connection when it is the same origin; once
    /// more on a new one if the kept one was closed meanwhile) and reads the head.
    async fn fetch(&mut self, at: Location, deadline: Instant) -> Result<(), String> {
        let reuse = self
            .conn
            .as_ref()
            .is_some_and(|c| c.at.same_origin(&at) && !c.closes);
        if !reuse {
            self.conn = Some(connect(&at, deadline).await?);
        }
        let head = match self.request(&at, deadline).await {
            Ok(head) => head,
            Err(_) if reuse => {
                self.conn = Some(connect(&at, deadline).await?);
                self.request(&at, deadline).await?
            }
            Err(why) => return Err(why),
        };
        let (status, framing, location, closes) = head;
        if let Some(conn) = self.conn.as_mut() {
            conn.closes = closes;
        }
        self.pull.head(status, location.as_deref())?;
        self.body = Some(BodyDecoder::new(framing));
        Ok(())
    }

    /// Writes the request and reads the response head.
    async fn request(
        &mut self,
        at: &Location,
        deadline: Instant,
    ) -> Result<(u16, Framing, Option<String>, bool), String> {
        // The input's credentials go to its own origin only.
        let userinfo = self
            .userinfo
            .as_deref()
            .filter(|_| at.same_origin(&self.origin));
        let mut req = Vec::with_capacity(256);
        get_request_keep_alive(&at.host, at.port, &at.path, userinfo, &mut req);
        let conn = self.conn.as_mut().ok_or("no connection")?;
        conn.buf.clear();
        within(deadline, conn.wire.write_all(&req))
            .await?
            .map_err(|e| format!("write to {}: {e}", at.host))?;
        loop {
            if let Some((head, len)) = parse_head(&conn.buf)? {
                conn.buf.drain(..len);
                return Ok((head.status, head.framing, head.location, head.closes));
            }
            if conn.buf.len() > MAX_HEAD {
                return Err("response head too long".into());
            }
            let n = within(deadline, conn.wire.read(&mut self.scratch))
                .await?
                .map_err(|e| format!("read from {}: {e}", at.host))?;
            if n == 0 {
                return Err(format!("{} closed the connection", at.host));
            }
            conn.buf.extend_from_slice(&self.scratch[..n]);
        }
    }

    /// Hands what is buffered of the body to the pull; when that takes nothing (nothing
    /// buffered, or a partial chunk header), reads once more instead.
    async fn read_body(&mut self, deadline: Instant) -> Result<(), String> {
        let (Some(conn), Some(body)) = (self.conn.as_mut(), self.body.as_mut()) else {
            return Err("no response to read".into());
        };
        if !conn.buf.is_empty() || body.is_done() {
            let mut failed = None;
            let pull = &mut self.pull;
            let used = body.decode(&conn.buf, &mut |bytes| {
                if failed.is_none()
                    && let Err(e) = pull.body(bytes)
                {
                    failed = Some(e);
                }
            })?;
            conn.buf.drain(..used);
            if let Some(why) = failed {
                return Err(why);
            }
            if body.is_done() {
                self.body = None;
                if conn.closes {
                    self.conn = None;
                }
                return self.pull.body_end(self.now_ms());
            }
            if used > 0 {
                return Ok(());
            }
        }
        let n = within(deadline, conn.wire.read(&mut self.scratch))
            .await?
            .map_err(|e| format!("read: {e}"))?;
        if n > 0 {
            conn.buf.extend_from_slice(&self.scratch[..n]);
            return Ok(());
        }
        let until_close = body.framing() == Framing::Close;
        self.body = None;
        self.conn = None;
        if !until_close {
            return Err("the origin closed the connection mid-response".into());
        }
        self.pull.body_end(self.now_ms())
    }
}

/// `fut`, or an error once `deadline` passes.
async fn within<T>(
    deadline: Instant,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    let wait = deadline.saturating_duration_since(Instant::now());
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(wait).await;
        None
    })
    .await
    .ok_or_else(|| "the origin did not answer in time".to_owned())
}

async fn connect(at: &Location, deadline: Instant) -> Result<HttpConn, String> {
    let wait = deadline.saturating_duration_since(Instant::now());
    let tcp =
        super::resolve::connect(&at.host, at.port, wait.max(Duration::from_millis(1))).await?;
    let _ = tcp.set_nodelay(true);
    let wire: Box<dyn Stream> = if at.tls {
        let name = ServerName::try_from(at.host.clone())
            .map_err(|_| format!("`{}` is not a valid TLS server name", at.host))?;
        let connector = futures_rustls::TlsConnector::from(client_config()?);
        let tls = within(deadline, connector.connect(name, tcp))
            .await?
            .map_err(|e| format!("TLS with {}: {e}", at.host))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    Ok(HttpConn {
        at: at.clone(),
        wire,
        buf: Vec::new(),
        closes: false,
    })
}

thread_local! {
    static CLIENT_CONFIG: OnceCell<Result<Arc<ClientConfig>, String>> = const { OnceCell::new() };
}

/// The shard's TLS client configuration: the system's roots (see the module's comment).
fn client_config() -> Result<Arc<ClientConfig>, String> {
    CLIENT_CONFIG.with(|cell| cell.get_or_init(build_client_config).clone())
}

fn build_client_config() -> Result<Arc<ClientConfig>, String> {
    let path = std::env::var("SSL_CERT_FILE")
        .ok()
        .or_else(|| {
            CA_BUNDLES
                .iter()
                .find(|p| std::path::Path::new(p).exists())
                .map(|p| (*p).to_owned())
        })
        .ok_or("no CA bundle: set SSL_CERT_FILE")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("cannot read CA bundle {path}: {e}"))?
        .filter_map(Result::ok)
        .collect();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("no CA certificate in {path}"));
    }
    let config = ClientConfig::builder_with_provider(crate::runtime::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
