//! The media side of a WebRTC viewer, sans-IO: the ring's H.264 frames and Opus packets as
//! media units for the peer connection, which packetizes (RFC 6184, RFC 7587), encrypts
//! (SRTP) and paces them.
//!
//! Each unit goes into the outbox as one datagram: a `UNIT_HEADER` (track, presentation
//! time, keyframe flag) and the payload: a video access unit in Annex B, the form str0m's
//! packetizer reads, with the stream's SPS and PPS before every keyframe, or one Opus
//! packet (the input's shard transcoded the stream's AAC once: `FeedFrame::opus`). The
//! viewer starts at a keyframe (audio too, so both tracks start together) and, after the
//! browser asks for one (PLI or FIR, `want_keyframe`), holds delta frames back until the
//! next keyframe: a browser that lost a reference decodes again from the first picture it
//! can. Audio flows on meanwhile.

use crate::media::frame::{TrackKind, VideoConfig};
use crate::media::h264::avcc_nal_units;
use crate::media::opus;
use crate::stream::ring::FeedFrame;
use crate::stream::viewer::{Channel, DatagramTo, FrameViewer, MediaNow, Outbox};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

/// Bytes before a unit's payload: track (0 video, 1 audio), pts (u64, big-endian: 90 kHz
/// for video, Opus's 48 kHz RTP clock for audio), flags (bit 0: keyframe).
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
enum Queued {
    Video {
        pts: i64,
        keyframe: bool,
        data: Bytes,
        config: Option<(Bytes, Bytes)>,
    },
    /// The Opus packets of one AAC frame (`media::opus::packets`).
    Audio(Bytes),
}

/// One WebRTC viewer's frames on their way to its peer connection.
#[derive(Debug, Default)]
pub struct WebRtcViewer {
    /// A keyframe was sent since the start or the last keyframe request.
    synced: bool,
    /// A keyframe was sent: audio may flow (it starts with the picture).
    started: bool,
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
        if frame.track == TrackKind::Audio {
            let audio_only = media.info.is_some_and(|m| m.video.is_none());
            if (self.started || audio_only) && !feed.opus.is_empty() {
                self.enqueue(Queued::Audio(feed.opus.clone()));
            }
            return;
        }
        if !self.synced && !frame.keyframe {
            return;
        }
        let video = media.info.and_then(|m| m.video.as_ref());
        let config = frame.keyframe.then(|| video.map(sps_pps)).flatten();
        if frame.keyframe && config.is_none() {
            // A keyframe the browser cannot decode without a configuration: wait.
            return;
        }
        self.synced = true;
        self.started = true;
        self.enqueue(Queued::Video {
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
            match &q {
                Queued::Video {
                    pts,
                    keyframe,
                    data,
                    config,
                } => out.push_datagram(UNITS, |d| {
                    write_video(d, *pts, *keyframe, data, config.as_ref())
                }),
                Queued::Audio(packets) => {
                    for (time, packet) in opus::packets(packets) {
                        out.push_datagram(UNITS, |d| write_audio(d, time, packet));
                    }
                }
            }
            self.units += 1;
        }
        self.queue.is_empty()
    }
}

impl WebRtcViewer {
    /// Queues a unit; a full queue (the peer connection stopped taking them) is dropped
    /// whole and the viewer waits for the next keyframe.
    fn enqueue(&mut self, unit: Queued) {
        if self.queue.len() >= MAX_QUEUED {
            self.queue.clear();
            self.synced = false;
            return;
        }
        self.queue.push_back(unit);
    }
}

fn sps_pps(video: &VideoConfig) -> (Bytes, Bytes) {
    (video.sps.clone(), video.pps.clone())
}

/// A video unit: its header, then its NAL units in Annex B (the configuration first).
fn write_video(
    d: &mut Vec<u8>,
    pts: i64,
    keyframe: bool,
    data: &[u8],
    config: Option<&(Bytes, Bytes)>,
) {
    d.push(0);
    d.extend_from_slice(&(pts as u64).to_be_bytes());
    d.push(u8::from(keyframe));
    if let Some((sps, pps)) = config {
        for nal in [sps, pps] {
            d.extend_from_slice(&ANNEX_B_START);
            d.extend_from_slice(nal);
        }
    }
    for nal in avcc_nal_units(data).flatten() {
        d.extend_from_slice(&ANNEX_B_START);
        d.extend_from_slice(nal);
    }
}

/// An audio unit: its header (48 kHz time), then one Opus packet.
fn write_audio(d: &mut Vec<u8>, time: u64, packet: &[u8]) {
    d.push(1);
    d.extend_from_slice(&time.to_be_bytes());
    d.push(1);
    d.extend_from_slice(packet);
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
            opus: Bytes::new(),
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

    fn opus_feed(pts: i64, times: &[u64]) -> FeedFrame {
        let frame = Frame {
            track: TrackKind::Audio,
            pts,
            dts: pts,
            keyframe: true,
            data: Bytes::from_static(&[0x21, 0, 0, 0, 0, 0x1c]),
        };
        let mut opus = Vec::new();
        for &t in times {
            opus::write_packet(&mut opus, t, &[0xfc, 0xff, 0xfe]);
        }
        FeedFrame {
            flv: crate::mux::flv::frame_tag(&frame),
            ts: Bytes::new(),
            opus: Bytes::from(opus),
            frame,
        }
    }

    #[test]
    fn opus_packets_follow_the_first_keyframe_and_flow_through_a_keyframe_request() {
        let info = MediaInfo {
            video: Some(video_config()),
            audio: None,
        };
        let mut viewer = WebRtcViewer::new();
        queue(&mut viewer, &opus_feed(0, &[0]), &info);
        assert!(
            written(&mut viewer).is_empty(),
            "no audio before the picture"
        );
        queue(&mut viewer, &feed(1800, true), &info);
        queue(&mut viewer, &opus_feed(1920, &[960, 1920]), &info);
        viewer.want_keyframe();
        queue(&mut viewer, &opus_feed(3840, &[2880]), &info);
        let units = written(&mut viewer);
        let audio: Vec<(u64, Vec<u8>)> = units
            .iter()
            .filter_map(|u| read_unit(u))
            .filter(|u| u.track == TrackKind::Audio)
            .map(|u| (u.pts, u.payload.to_vec()))
            .collect();
        let packet = vec![0xfc, 0xff, 0xfe];
        assert_eq!(
            audio,
            [
                (960, packet.clone()),
                (1920, packet.clone()),
                (2880, packet)
            ]
        );
        assert_eq!(units.len(), 4, "the keyframe and three packets");
    }

    #[test]
    fn short_units_are_not_read() {
        assert_eq!(read_unit(&[0; UNIT_HEADER - 1]), None);
    }
}
