//! The media side of a WebRTC viewer, sans-IO: the ring's H.264 frames as media units for
//! the peer connection, which packetizes (RFC 6184), encrypts (SRTP) and paces them.
//!
//! Each unit goes into the outbox as one datagram: a `UNIT_HEADER` (track, 90 kHz
//! presentation time, keyframe flag) and the access unit in Annex B, the form str0m's
//! packetizer reads, with the stream's SPS and PPS before every keyframe. The viewer
//! starts at a keyframe and, after the browser asks for one (PLI or FIR,
//! `want_keyframe`), holds delta frames back until the next keyframe: a browser that lost
//! a reference decodes again from the first picture it can.

use crate::media::frame::{TrackKind, VideoConfig};
use crate::media::h264::avcc_nal_units;
use crate::stream::ring::FeedFrame;
use crate::stream::viewer::{Channel, DatagramTo, FrameViewer, MediaNow, Outbox};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

/// Bytes before a unit's payload: track (0 video, 1 audio), pts (u64, big-endian), flags
/// (bit 0: keyframe).
pub const UNIT_HEADER: usize = 10;

/// Units queued at most between two writes: the driver writes after every frame, so more
/// means the peer connection stopped taking them.
const MAX_QUEUED: usize = 64;

const ANNEX_B_START: [u8; 4] = [0, 0, 0, 1];

/// Where the units go: the driver hands them to the peer connection (`Machine::carry`).
const UNITS: DatagramTo = DatagramTo {
    channel: Channel::Media,
    port: 0,
};

/// One media unit as the viewer wrote it.
#[derive(Debug, PartialEq, Eq)]
pub struct Unit<'a> {
    pub track: TrackKind,
    pub pts: u64,
    pub keyframe: bool,
    pub payload: &'a [u8],
}

/// Reads a unit the viewer wrote; `None` for anything shorter than its header.
pub fn read_unit(datagram: &[u8]) -> Option<Unit<'_>> {
    let (head, payload) = datagram.split_at_checked(UNIT_HEADER)?;
    let track = if head[0] == 0 {
        TrackKind::Video
    } else {
        TrackKind::Audio
    };
    let pts = u64::from_be_bytes(head[1..9].try_into().ok()?);
    Some(Unit {
        track,
        pts,
        keyframe: head[9] & 1 == 1,
        payload,
    })
}

/// A frame waiting to be written, with the configuration a keyframe carries.
#[derive(Debug)]
struct Queued {
    pts: i64,
    keyframe: bool,
    data: Bytes,
    config: Option<(Bytes, Bytes)>,
}

/// One WebRTC viewer's frames on their way to its peer connection.
#[derive(Debug, Default)]
pub struct WebRtcViewer {
    /// A keyframe was sent since the start or the last keyframe request.
    synced: bool,
    queue: VecDeque<Queued>,
    units: u64,
    keyframe_requests: u32,
}

impl WebRtcViewer {
    pub fn new() -> WebRtcViewer {
        WebRtcViewer::default()
    }

    /// The browser asked for a keyframe (PLI/FIR): delta frames wait for the next one.
    pub fn want_keyframe(&mut self) {
        self.synced = false;
        self.keyframe_requests += 1;
    }

    /// Units written so far.
    pub fn units(&self) -> u64 {
        self.units
    }

    /// Keyframe requests the browser sent.
    pub fn keyframe_requests(&self) -> u32 {
        self.keyframe_requests
    }
}

impl FrameViewer for WebRtcViewer {
    fn queue(&mut self, feed: &FeedFrame, media: MediaNow<'_>, _now: Instant, _wall_ms: i64) {
        let frame = &feed.frame;
        if frame.track != TrackKind::Video || (!self.synced && !frame.keyframe) {
            return;
        }
        let video = media.info.and_then(|m| m.video.as_ref());
        let config = frame.keyframe.then(|| video.map(sps_pps)).flatten();
        if frame.keyframe && config.is_none() {
            // A keyframe the browser cannot decode without a configuration: wait.
            return;
        }
        self.synced = true;
        if self.queue.len() >= MAX_QUEUED {
            self.queue.clear();
            self.synced = false;
            return;
        }
        self.queue.push_back(Queued {
            pts: frame.pts,
            keyframe: frame.keyframe,
            data: frame.data.clone(),
            config,
        });
    }

    fn write(&mut self, out: &mut Outbox, mark: usize) -> bool {
        while out.len() < mark {
            let Some(q) = self.queue.pop_front() else {
                return true;
            };
            out.push_datagram(UNITS, |d| write_unit(d, &q));
            self.units += 1;
        }
        self.queue.is_empty()
    }
}

fn sps_pps(video: &VideoConfig) -> (Bytes, Bytes) {
    (video.sps.clone(), video.pps.clone())
}

/// The unit's header, then its NAL units in Annex B (the configuration first).
fn write_unit(d: &mut Vec<u8>, q: &Queued) {
    d.push(0);
    d.extend_from_slice(&(q.pts as u64).to_be_bytes());
    d.push(u8::from(q.keyframe));
    if let Some((sps, pps)) = &q.config {
        for nal in [sps, pps] {
            d.extend_from_slice(&ANNEX_B_START);
            d.extend_from_slice(nal);
        }
    }
    for nal in avcc_nal_units(&q.data).flatten() {
        d.extend_from_slice(&ANNEX_B_START);
        d.extend_from_slice(nal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::{Frame, MediaInfo};

    fn video_config() -> VideoConfig {
        VideoConfig {
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e]),
            pps: Bytes::from_static(&[0x68, 0xce]),
            width: 320,
            height: 240,
            profile_idc: 66,
            constraint_flags: 0xc0,
            level_idc: 30,
            frame_rate: None,
        }
    }

    fn feed(pts: i64, keyframe: bool) -> FeedFrame {
        let nal: &[u8] = if keyframe { &[0x65, 1, 2] } else { &[0x41, 3] };
        let mut data = (nal.len() as u32).to_be_bytes().to_vec();
        data.extend_from_slice(nal);
        let frame = Frame {
            track: TrackKind::Video,
            pts,
            dts: pts,
            keyframe,
            data: Bytes::from(data),
        };
        FeedFrame {
            flv: crate::mux::flv::frame_tag(&frame),
            ts: Bytes::new(),
            frame,
        }
    }

    fn written(viewer: &mut WebRtcViewer) -> Vec<Vec<u8>> {
        let mut out = Outbox::default();
        assert!(viewer.write(&mut out, usize::MAX));
        out.datagrams().map(|(_, d)| d.to_vec()).collect()
    }

    fn queue(viewer: &mut WebRtcViewer, frame: &FeedFrame, info: &MediaInfo) {
        let media = MediaNow {
            version: 1,
            info: Some(info),
        };
        viewer.queue(frame, media, Instant::now(), 0);
    }

    #[test]
    fn starts_at_a_keyframe_with_its_configuration_in_annex_b() {
        let info = MediaInfo {
            video: Some(video_config()),
            audio: None,
        };
        let mut viewer = WebRtcViewer::new();
        queue(&mut viewer, &feed(0, false), &info);
        queue(&mut viewer, &feed(3600, true), &info);
        queue(&mut viewer, &feed(7200, false), &info);
        let units = written(&mut viewer);
        assert_eq!(
            units.len(),
            2,
            "the delta frame before the keyframe is not sent"
        );
        let key = read_unit(&units[0]).unwrap();
        assert_eq!(
            (key.track, key.pts, key.keyframe),
            (TrackKind::Video, 3600, true)
        );
        let annex_b = [
            &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e][..],
            &[0, 0, 0, 1, 0x68, 0xce],
            &[0, 0, 0, 1, 0x65, 1, 2],
        ]
        .concat();
        assert_eq!(key.payload, &annex_b[..]);
        let delta = read_unit(&units[1]).unwrap();
        assert_eq!((delta.pts, delta.keyframe), (7200, false));
        assert_eq!(delta.payload, &[0, 0, 0, 1, 0x41, 3]);
    }

    #[test]
    fn a_keyframe_request_holds_delta_frames_until_the_next_keyframe() {
        let info = MediaInfo {
            video: Some(video_config()),
            audio: None,
        };
        let mut viewer = WebRtcViewer::new();
        queue(&mut viewer, &feed(0, true), &info);
        written(&mut viewer);
        viewer.want_keyframe();
        queue(&mut viewer, &feed(3600, false), &info);
        assert!(written(&mut viewer).is_empty());
        queue(&mut viewer, &feed(7200, true), &info);
        let units = written(&mut viewer);
        assert_eq!(units.len(), 1);
        assert!(read_unit(&units[0]).unwrap().keyframe);
        assert_eq!(viewer.keyframe_requests(), 1);
    }

    #[test]
    fn a_keyframe_without_a_configuration_waits() {
        let info = MediaInfo::default();
        let mut viewer = WebRtcViewer::new();
        queue(&mut viewer, &feed(0, true), &info);
        assert!(written(&mut viewer).is_empty());
    }

    #[test]
    fn short_units_are_not_read() {
        assert_eq!(read_unit(&[0; UNIT_HEADER - 1]), None);
    }
}
