//! The socket of an `srt://` pull: a UDP socket of its own, connected to the listener, on
//! the stream's owner shard, driving `pull::srt::SrtPull` (handshake, then the connection's
//! timers and datagrams) for `runtime::pull`.

use crate::config::pull::PullUrl;
use crate::pull::srt::{SrtPull, caller_options};
use crate::rtmp::flv::MediaFrame;
use crate::srt::caller::CallerConfig;
use crate::srt::seq::SeqNo;
use glommio::net::UdpSocket;
use std::time::{Duration, Instant};

/// tessera's receive latency for a pull (libsrt's default is 120 ms).
const LATENCY: Duration = Duration::from_millis(120);
/// The largest datagram read (an SRT packet fits in the 1500-byte MTU).
const DATAGRAM: usize = 2048;

pub struct SrtLink {
    socket: UdpSocket,
    pull: SrtPull,
    buf: Vec<u8>,
}

impl SrtLink {
    /// Calls the listener; done when the handshake completes within `timeout`.
    pub async fn open(url: &PullUrl, timeout: Duration) -> Result<SrtLink, String> {
        let peer = super::resolve::resolve(&url.host, url.port, timeout).await?;
        let local = if peer.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local).map_err(|e| format!("cannot bind UDP: {e}"))?;
        socket
            .connect(peer)
            .await
            .map_err(|e| format!("cannot connect UDP to {peer}: {e}"))?;
        let (stream_id, passphrase) = caller_options(&url.path);
        let cfg = CallerConfig {
            local_socket_id: (crate::auth::os_seed() as u32 & 0x3FFF_FFFF).max(1),
            isn: SeqNo::new(crate::auth::os_seed() as u32),
            stream_id,
            passphrase,
            latency: LATENCY,
            key_seed: key_seed(),
        };
        let pull = SrtPull::new(cfg, peer, Instant::now())?;
        let mut link = SrtLink {
            socket,
            pull,
            buf: vec![0; DATAGRAM],
        };
        let deadline = Instant::now() + timeout;
        while !link.pull.is_connected() {
            if Instant::now() >= deadline {
                return Err(format!("no SRT handshake answer from {peer}"));
            }
            link.step(deadline).await?;
        }
        Ok(link)
    }

    /// The next configuration or frame; an error when the source failed or sent no frame
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
            self.step(deadline).await?;
        }
    }

    /// Sends what is due, then waits for a datagram or the next timer (at most `deadline`).
    async fn step(&mut self, deadline: Instant) -> Result<(), String> {
        while let Some(datagram) = self.pull.poll_transmit(Instant::now()) {
            self.socket
                .send(&datagram)
                .await
                .map_err(|e| format!("send: {e}"))?;
        }
        let until = self.pull.next_timeout().min(deadline);
        let wait = until.saturating_duration_since(Instant::now());
        let recv = self.socket.recv(&mut self.buf);
        let got = futures_lite::future::or(async { Some(recv.await) }, async {
            glommio::timer::sleep(wait).await;
            None
        })
        .await;
        let now = Instant::now();
        match got {
            Some(Ok(n)) => self.pull.handle_datagram(&self.buf[..n], now),
            Some(Err(e)) => Err(format!("receive: {e}")),
            None => self.pull.handle_timeout(now),
        }
    }
}

impl Drop for SrtLink {
    /// The listener hears the end at once (a shutdown, sent without waiting; lost if the
    /// socket is full) rather than after its idle timeout.
    fn drop(&mut self) {
        use nix::sys::socket::{MsgFlags, send};
        use std::os::fd::AsRawFd;
        for datagram in self.pull.close(Instant::now()) {
            let _ = send(self.socket.as_raw_fd(), &datagram, MsgFlags::MSG_DONTWAIT);
        }
    }
}

/// 32 bytes from the OS for the salt and the stream key of an encrypted pull.
fn key_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        chunk.copy_from_slice(&crate::auth::os_seed().to_le_bytes());
    }
    seed
}
