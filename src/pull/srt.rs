//! `srt://HOST:PORT?streamid=...&passphrase=...`: the SRT caller of the edge, sans-IO. The
//! handshake is `srt::caller`'s, the connection after it `srt::connection`'s (receive
//! buffer, ACK/NAK, TSBPD delivery, keep-alive, idle timeout), and the payloads (MPEG-TS,
//! 7 packets each) go through `mux::ts_demux` as an SRT publisher's do. A refusal, the
//! listener's shutdown or its silence fails the source.

use super::tshttp::take_demuxed;
use crate::mux::ts_demux::{DemuxEvent, TsDemuxer};
use crate::rtmp::flv::MediaFrame;
use crate::srt::caller::{CallerConfig, CallerError, SrtCaller};
use crate::srt::connection::{CloseReason, Output, SrtConnection};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

/// Decoded frames not yet taken; beyond it the oldest are dropped (UDP cannot be paused).
const MAX_QUEUED: usize = 1024;

pub struct SrtPull {
    caller: SrtCaller,
    conn: Option<SrtConnection>,
    demux: TsDemuxer,
    events: Vec<DemuxEvent>,
    media: VecDeque<MediaFrame>,
    transmit: VecDeque<Bytes>,
    timer: Option<Instant>,
}

impl SrtPull {
    pub fn new(cfg: CallerConfig, peer: SocketAddr, now: Instant) -> Result<Self, String> {
        Ok(SrtPull {
            caller: SrtCaller::new(cfg, peer, now).map_err(|e| e.to_string())?,
            conn: None,
            demux: TsDemuxer::new(),
            events: Vec::new(),
            media: VecDeque::new(),
            transmit: VecDeque::new(),
            timer: None,
        })
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.conn.is_none() {
            return self.caller.poll_transmit(now).map(Bytes::from);
        }
        self.transmit.pop_front()
    }

    pub fn poll_media(&mut self) -> Option<MediaFrame> {
        self.media.pop_front()
    }

    /// When [`SrtPull::handle_timeout`] is next due.
    pub fn next_timeout(&self) -> Instant {
        match (&self.conn, self.timer) {
            (None, _) => self.caller.next_timeout(),
            (Some(_), Some(at)) => at,
            (Some(_), None) => Instant::now(),
        }
    }

    /// A datagram from the listener. Errors fail the source; a datagram that is merely
    /// unusable is ignored.
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else {
            return self.handshake(datagram, now);
        };
        if let Err(e) = conn.handle_input(datagram, now) {
            log::debug!("srt pull: {e}");
        }
        self.drain()
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), String> {
        if let Some(conn) = self.conn.as_mut() {
            conn.handle_timeout(now);
            return self.drain();
        }
        Ok(())
    }

    /// Ends the connection from this side; returns the shutdown to send (nothing before
    /// the handshake completed).
    pub fn close(&mut self, now: Instant) -> Vec<Bytes> {
        if let Some(conn) = self.conn.as_mut() {
            conn.close(now);
            let _ = self.drain(); // ends with `Closed(Local)`
        }
        self.transmit.drain(..).collect()
    }

    fn handshake(&mut self, datagram: &[u8], now: Instant) -> Result<(), String> {
        match self.caller.handle_input(datagram, now) {
            Ok(Some(conn)) => {
                self.conn = Some(conn);
                self.drain()
            }
            Ok(None) => Ok(()),
            Err(CallerError::Stray(e)) => {
                log::debug!("srt pull: {e}");
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The connection's outputs: datagrams to send, payloads to demux, its end.
    fn drain(&mut self) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        while let Some(output) = conn.poll_output() {
            match output {
                Output::Transmit(d) => self.transmit.push_back(d),
                Output::Timeout(at) => self.timer = Some(at),
                Output::Payload(payload) => self.demux.push(&payload, &mut self.events),
                Output::Closed(reason) => return Err(closed(reason)),
                Output::Authorize { .. } | Output::Connected { .. } => {}
            }
        }
        take_demuxed(&mut self.events, &mut self.media, "srt pull")?;
        while self.media.len() > MAX_QUEUED {
            self.media.pop_front();
        }
        Ok(())
    }
}

fn closed(reason: CloseReason) -> String {
    match reason {
        CloseReason::PeerShutdown => "the listener closed the connection".into(),
        CloseReason::PeerIdle => "the listener went silent".into(),
        CloseReason::Rejected(r) => format!("the listener refused ({})", r.0),
        CloseReason::Local => "closed".into(),
    }
}

/// The stream id and passphrase of an `srt://` input's query (`path` is `/?...`),
/// percent-decoded.
pub fn caller_options(path: &str) -> (String, Option<Vec<u8>>) {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    let mut stream_id = String::new();
    let mut passphrase = None;
    for (key, value) in query.split('&').filter_map(|p| p.split_once('=')) {
        let mut decoded = Vec::new();
        if crate::uri::percent_decode_into(value.as_bytes(), &mut decoded).is_err() {
            decoded = value.as_bytes().to_vec();
        }
        match key {
            "streamid" => stream_id = String::from_utf8_lossy(&decoded).into_owned(),
            "passphrase" => passphrase = Some(decoded),
            _ => {}
        }
    }
    (stream_id, passphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_from_the_query_percent_decoded() {
        assert_eq!(
            caller_options("/?streamid=%23!::r=s,m=request&passphrase=0987654321"),
            ("#!::r=s,m=request".to_owned(), Some(b"0987654321".to_vec()))
        );
        assert_eq!(caller_options("/"), (String::new(), None));
    }
}
