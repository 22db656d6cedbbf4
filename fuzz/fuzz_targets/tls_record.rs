//! Fuzzes what the server does with untrusted TLS bytes: the HTTPS acceptor that
//! `runtime::tls::load` builds from a config (ring, TLS 1.2 and 1.3, ALPN `http/1.1`, session
//! tickets, the certificate resolver), driven by futures-rustls exactly as a shard drives
//! it, over an in-memory stream that yields the input in pieces and then end-of-file, and
//! discards what the server writes. The first input byte picks the piece size. Record
//! framing, ClientHello parsing (SNI, ALPN, extensions), alerts and the handshake state
//! machine are reached; any panic is a bug.
#![no_main]

use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_rustls::TlsAcceptor;
use libfuzzer_sys::fuzz_target;
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

/// The acceptor as the server builds it, once (its certificate files written to a
/// temporary directory beside a config naming them).
fn acceptor() -> &'static TlsAcceptor {
    static ACCEPTOR: OnceLock<TlsAcceptor> = OnceLock::new();
    ACCEPTOR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tessera-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("c.crt"), include_str!("../tls/fuzz-only.crt")).unwrap();
        std::fs::write(dir.join("c.key"), include_str!("../tls/fuzz-only.key")).unwrap();
        let text = "https 127.0.0.1:8443;\nssl_certificate c.crt;\nssl_certificate_key c.key;\n\
                    stream s { input fake://fake; }\n";
        let path = dir.join("fuzz.conf");
        let config = tessera::config::parse(text, "fuzz.conf").expect("fuzz config parses");
        let setup = tessera::runtime::tls::load(&config, Some(&path), "fuzz.conf")
            .expect("fuzz certificate loads")
            .expect("an https listener");
        let _ = std::fs::remove_dir_all(&dir);
        setup.https
    })
}

/// A peer that sends `input` in `step`-byte reads, then end-of-file; writes vanish.
struct Peer<'a> {
    input: &'a [u8],
    step: usize,
}

impl AsyncRead for Peer<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = self.step.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Peer<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(first).max(1) * 7;
    let peer = Peer { input, step };
    futures_lite::future::block_on(async {
        // The peer never blocks, so the handshake ends: in an error, or in a stream whose
        // remaining records are read as application data.
        if let Ok(mut stream) = acceptor().accept(peer).await {
            let mut buf = [0u8; 4096];
            while let Ok(n) = futures_lite::AsyncReadExt::read(&mut stream, &mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
    });
});
