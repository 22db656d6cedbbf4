//! The H.264 track of a transport stream (§2.14; an access unit per PES, or over several
//! when the later ones have no PTS, see `pes`; H.264 Annex B byte-stream format) turned
//! into tessera's `Frame` layout: NAL units with 4-byte lengths (ISO 14496-15), without
//! access unit delimiters, and without SPS and PPS, which become the track's
//! [`VideoConfig`](crate::media::frame::VideoConfig) instead (as `rtmp::flv` does for a
//! publisher's AVC sequence header). The frame is a keyframe when it holds an IDR slice
//! (H.264 §7.4.1.2.4).

use super::{DemuxError, DemuxEvent, Pes, TimestampUnwrapper, TrackContext, TrackDemuxer};
use crate::media::frame::{Frame, TrackKind};
use crate::media::h264::{self, AVCC_LENGTH_SIZE, NAL_AUD, NAL_IDR_SLICE, NAL_PPS, NAL_SPS};
use bytes::Bytes;

/// One access unit, converted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AccessUnit<'a> {
    /// The NAL units to keep, each after a 4-byte big-endian length.
    pub avcc: Vec<u8>,
    pub keyframe: bool,
    /// The first SPS and PPS of the access unit, if it has them.
    pub sps: Option<&'a [u8]>,
    pub pps: Option<&'a [u8]>,
}

/// Splits an Annex B access unit into what the frame keeps and its parameter sets.
pub fn convert_access_unit(annex_b: &[u8]) -> AccessUnit<'_> {
    let mut au = AccessUnit {
        avcc: Vec::with_capacity(annex_b.len() + 16),
        ..AccessUnit::default()
    };
    for nal in h264::annex_b_nal_units(annex_b) {
        match h264::nal_unit_type(nal) {
            Some(NAL_AUD) => {}
            Some(NAL_SPS) => {
                au.sps.get_or_insert(nal);
            }
            Some(NAL_PPS) => {
                au.pps.get_or_insert(nal);
            }
            kind => {
                au.keyframe |= kind == Some(NAL_IDR_SLICE);
                // A NAL unit is far shorter than 4 GiB: the PES limit is a few MiB.
                au.avcc
                    .extend_from_slice(&(nal.len() as u32).to_be_bytes()[4 - AVCC_LENGTH_SIZE..]);
                au.avcc.extend_from_slice(nal);
            }
        }
    }
    au
}

/// Per-track state of the H.264 elementary stream.
#[derive(Debug, Default)]
pub struct VideoTrack {
    /// Decode time of the last frame and the step before it, for a PES without PTS.
    last_dts: Option<i64>,
    frame_step: i64,
    /// `NoConfig` was reported since the configuration was last missing.
    no_config_reported: bool,
}

impl TrackDemuxer for VideoTrack {
    fn on_pes(&mut self, pes: &Pes<'_>, at: &mut TrackContext<'_>) {
        let au = convert_access_unit(pes.payload);
        self.update_config(&au, at);
        let Some((pts, dts)) = self.timestamps(pes, at.timeline) else {
            return at.error(DemuxError::NoTimestamp {
                pid: at.pid,
                offset: at.offset,
            });
        };
        if au.avcc.is_empty() {
            return;
        }
        if at.info.video.is_none() {
            if !std::mem::replace(&mut self.no_config_reported, true) {
                at.error(DemuxError::NoConfig {
                    pid: at.pid,
                    track: TrackKind::Video,
                });
            }
            return;
        }
        at.out.push(DemuxEvent::Frame(Frame {
            track: TrackKind::Video,
            pts,
            dts,
            keyframe: au.keyframe,
            data: Bytes::from(au.avcc),
        }));
    }

    fn reset(&mut self) {}
}

impl VideoTrack {
    /// PTS and DTS on the timeline; without a PTS, one frame step after the last frame.
    fn timestamps(
        &mut self,
        pes: &Pes<'_>,
        timeline: &mut TimestampUnwrapper,
    ) -> Option<(i64, i64)> {
        let (pts, dts) = match (pes.pts, pes.dts) {
            (Some(pts), dts) => {
                let pts = timeline.unwrap(pts);
                (pts, dts.map_or(pts, |dts| timeline.unwrap(dts)))
            }
            (None, _) => {
                let dts = self.last_dts? + self.frame_step;
                (dts, dts)
            }
        };
        if let Some(last) = self.last_dts.filter(|&last| dts > last) {
            self.frame_step = dts - last;
        }
        self.last_dts = Some(dts);
        Some((pts, dts))
    }

    /// A new SPS or PPS (either may come alone, the other staying as it was) becomes the
    /// track's configuration when it parses and differs from the current one.
    fn update_config(&mut self, au: &AccessUnit<'_>, at: &mut TrackContext<'_>) {
        if au.sps.is_none() && au.pps.is_none() {
            return;
        }
        let current = at.info.video.as_ref();
        let sps = au.sps.or(current.map(|c| &c.sps[..]));
        let pps = au.pps.or(current.map(|c| &c.pps[..]));
        let (Some(sps), Some(pps)) = (sps, pps) else {
            return;
        };
        if current.is_some_and(|c| c.sps == sps && c.pps == pps) {
            return;
        }
        match h264::video_config(Bytes::copy_from_slice(sps), Bytes::copy_from_slice(pps)) {
            Ok(config) => {
                at.info.video = Some(config);
                self.no_config_reported = false;
                at.out.push(DemuxEvent::Media(at.info.clone()));
            }
            Err(error) => at.error(DemuxError::H264 {
                pid: at.pid,
                offset: at.offset,
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_becomes_avcc_without_aud_and_parameter_sets() {
        let annex_b = [
            &[0, 0, 0, 1, 0x09, 0xF0][..],                           // AUD
            &[0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E],                   // SPS
            &[0, 0, 1, 0x68, 0xCE, 0x3C, 0x80],                      // PPS, 3-byte start code
            &[0, 0, 1, 0x06, 0x05, 0x01, 0x80],                      // SEI
            &[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01], // IDR with an escape
            &[0, 0],                                                 // trailing_zero_8bits
        ]
        .concat();
        let au = convert_access_unit(&annex_b);
        assert!(au.keyframe);
        assert_eq!(au.sps, Some(&[0x67, 0x42, 0xC0, 0x1E][..]));
        assert_eq!(au.pps, Some(&[0x68, 0xCE, 0x3C, 0x80][..]));
        assert_eq!(
            au.avcc,
            [
                &[0, 0, 0, 4, 0x06, 0x05, 0x01, 0x80][..],
                &[0, 0, 0, 7, 0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01],
            ]
            .concat()
        );
    }

    #[test]
    fn non_idr_access_unit_is_not_a_keyframe() {
        let au = convert_access_unit(&[0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x41, 0x9A, 0x02]);
        assert!(!au.keyframe);
        assert_eq!(au.sps, None);
        assert_eq!(au.avcc, [0, 0, 0, 3, 0x41, 0x9A, 0x02]);
        assert!(
            convert_access_unit(&[1, 2, 3]).avcc.is_empty(),
            "no start code"
        );
    }
}
