//! `tshttp://`: one long HTTP response of MPEG-TS (Flussonic's `/NAME/mpegts`, tessera's
//! own), sans-IO: the request, the response head (anything but 200 fails the source), the
//! body's framing, then `mux::ts_demux` to configurations and frames. A body that ends
//! ends the source.

use super::http::{BodyDecoder, get_request, parse_head};
use crate::mux::ts_demux::{DemuxEvent, TsDemuxer};
use crate::rtmp::flv::MediaFrame;
use std::collections::VecDeque;

/// Decoded frames not yet taken; more means the shell stopped reading.
const MAX_QUEUED: usize = 1024;

pub struct TsHttpPull {
    tx: Vec<u8>,
    body: Option<BodyDecoder>,
    demux: TsDemuxer,
    events: Vec<DemuxEvent>,
    media: VecDeque<MediaFrame>,
}

impl TsHttpPull {
    /// A pull of `path` from `host:port`; the request is queued at once.
    pub fn new(host: &str, port: u16, path: &str, userinfo: Option<&str>) -> Self {
        let mut tx = Vec::new();
        get_request(host, port, path, userinfo, &mut tx);
        TsHttpPull {
            tx,
            body: None,
            demux: TsDemuxer::new(),
            events: Vec::new(),
            media: VecDeque::new(),
        }
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.tx)
    }

    pub fn poll_media(&mut self) -> Option<MediaFrame> {
        self.media.pop_front()
    }

    /// Consumes what it can of `buf`; returns the bytes consumed. Errors: a status other
    /// than 200, a malformed head or framing, an unsupported codec, the body's end.
    pub fn handle_input(&mut self, buf: &[u8]) -> Result<usize, String> {
        let mut pos = 0;
        if self.body.is_none() {
            let Some((head, len)) = parse_head(buf)? else {
                return Ok(0);
            };
            if head.status != 200 {
                return Err(format!("origin answered {}", head.status));
            }
            self.body = Some(BodyDecoder::new(head.framing));
            pos = len;
        }
        if self.media.len() >= MAX_QUEUED {
            return Ok(pos);
        }
        let Some(body) = self.body.as_mut() else {
            return Ok(pos);
        };
        let (demux, events) = (&mut self.demux, &mut self.events);
        pos += body.decode(&buf[pos..], &mut |bytes| demux.push(bytes, events))?;
        let done = body.is_done();
        take_demuxed(&mut self.events, &mut self.media, "tshttp pull")?;
        if done {
            return Err("the origin ended the response".into());
        }
        Ok(pos)
    }
}

/// Moves the demuxer's events to `media` as configurations and frames (every pull that
/// carries MPEG-TS: tshttp, SRT); a fatal demux error fails the source, the others are
/// logged under `what`.
pub fn take_demuxed(
    events: &mut Vec<DemuxEvent>,
    media: &mut VecDeque<MediaFrame>,
    what: &str,
) -> Result<(), String> {
    for event in events.drain(..) {
        match event {
            DemuxEvent::Media(info) => media.push_back(MediaFrame::Config(info)),
            DemuxEvent::Frame(frame) => media.push_back(MediaFrame::Frame(frame)),
            DemuxEvent::Error(e) if e.is_fatal() => return Err(e.to_string()),
            DemuxEvent::Error(e) => log::debug!("{what}: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fake::FakeSource;
    use crate::stream::ts_feed::TsFeed;

    #[test]
    fn a_chunked_ts_response_becomes_frames() {
        let mut source = FakeSource::new(0, 25);
        let mut frames = Vec::new();
        source.poll(90_000, &mut frames);
        let mut feed = TsFeed::new(&source.media_info());
        let mut ts = Vec::new();
        for f in &frames {
            ts.extend_from_slice(&feed.chunk(f).unwrap());
        }
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in ts.chunks(1000) {
            wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            wire.extend_from_slice(piece);
            wire.extend_from_slice(b"\r\n");
        }
        let mut pull = TsHttpPull::new("o", 80, "/s/mpegts", None);
        assert!(
            pull.take_output()
                .starts_with(b"GET /s/mpegts HTTP/1.1\r\n")
        );
        let mut buf = Vec::new();
        for piece in wire.chunks(777) {
            buf.extend_from_slice(piece);
            let used = pull.handle_input(&buf).unwrap();
            buf.drain(..used);
        }
        let mut configs = 0;
        let mut got = 0;
        while let Some(m) = pull.poll_media() {
            match m {
                MediaFrame::Config(info) => {
                    configs += 1;
                    assert!(info.video.is_some() && info.audio.is_some());
                }
                MediaFrame::Frame(_) => got += 1,
            }
        }
        assert_eq!(configs, 1);
        // The last video frame waits for the next PES to start.
        assert!(got >= frames.len() - 2, "{got} of {}", frames.len());
    }

    #[test]
    fn a_refusal_fails_the_source() {
        let mut pull = TsHttpPull::new("o", 80, "/s/mpegts", None);
        let err = pull
            .handle_input(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            .unwrap_err();
        assert_eq!(err, "origin answered 403");
    }
}
