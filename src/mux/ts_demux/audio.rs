//! The AAC track of a transport stream (stream_type 0x0F: ISO 13818-7 audio in ADTS
//! frames, ISO 14496-3 §1.A.2.2) turned into raw AAC frames without headers, one `Frame`
//! each, and an [`AudioConfig`](crate::media::frame::AudioConfig) built from the ADTS header.
//!
//! A PES may hold several ADTS frames; its PTS belongs to the first frame that *starts* in it
//! (§2.4.3.7), and every later frame is 1024 samples further on, computed from the PES PTS
//! (no rounding drift inside a PES). A frame cut at the end of a PES is completed from the
//! next one and keeps the time that follows the previous frames.

use super::{DemuxError, DemuxEvent, Pes, TrackContext, TrackDemuxer};
use crate::media::aac::{self, SAMPLE_RATES, SAMPLES_PER_FRAME};
use crate::media::frame::{Frame, TIMESCALE, TrackKind};
use bytes::Bytes;

/// ADTS header without CRC; with `protection_absent = 0` two CRC bytes follow.
const ADTS_HEADER_LEN: usize = 7;
const ADTS_CRC_LEN: usize = 2;

/// The fields of an ADTS header tessera uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdtsHeader {
    /// `profile_ObjectType` + 1: the MPEG-4 audio object type (2 = AAC LC).
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
    /// Header bytes before the raw data block (7, or 9 with a CRC).
    pub header_len: usize,
    /// The whole frame, header included (`frame_length`).
    pub frame_len: usize,
    /// `number_of_raw_data_blocks_in_frame` + 1.
    pub raw_blocks: u8,
}

/// Reads the ADTS header at the start of `b` (at least 7 bytes).
pub fn parse_adts(b: &[u8]) -> Result<AdtsHeader, &'static str> {
    let Some(b) = b.get(..ADTS_HEADER_LEN) else {
        return Err("shorter than an ADTS header");
    };
    if b[0] != 0xFF || b[1] & 0xF0 != 0xF0 {
        return Err("no ADTS syncword");
    }
    if b[1] & 0x06 != 0 {
        return Err("layer is not 0");
    }
    let index = usize::from((b[2] >> 2) & 0x0F);
    let Some(&sample_rate) = SAMPLE_RATES.get(index) else {
        return Err("reserved sampling_frequency_index");
    };
    let header_len = if b[1] & 0x01 == 0 {
        ADTS_HEADER_LEN + ADTS_CRC_LEN
    } else {
        ADTS_HEADER_LEN
    };
    let frame_len =
        (usize::from(b[3] & 0x03) << 11) | (usize::from(b[4]) << 3) | usize::from(b[5] >> 5);
    if frame_len <= header_len {
        return Err("frame_length shorter than the header");
    }
    Ok(AdtsHeader {
        object_type: (b[2] >> 6) + 1,
        sample_rate,
        channels: ((b[2] & 0x01) << 2) | (b[3] >> 6),
        header_len,
        frame_len,
        raw_blocks: (b[6] & 0x03) + 1,
    })
}

/// Ticks from the first frame of a PES to its `index`th, at `sample_rate`.
fn frame_offset(index: i64, sample_rate: u32) -> i64 {
    index * i64::from(SAMPLES_PER_FRAME) * TIMESCALE / i64::from(sample_rate)
}

fn bad_adts(at: &mut TrackContext<'_>, reason: &'static str) {
    at.error(DemuxError::BadAdts {
        pid: at.pid,
        offset: at.offset,
        reason,
    });
}

/// Per-track state of the AAC elementary stream.
#[derive(Debug, Default)]
pub struct AudioTrack {
    /// The start of an ADTS frame cut at the end of the last PES (under 8 KiB: frame_length
    /// has 13 bits).
    carry: Vec<u8>,
    /// Time of the frame after the last one emitted.
    next_pts: Option<i64>,
    /// (object type, sample rate, channels) of the current configuration.
    config_key: Option<(u8, u32, u8)>,
}

/// Where the frames being split take their time from.
struct FrameClock {
    base: Option<i64>,
    index: i64,
}

impl TrackDemuxer for AudioTrack {
    fn on_pes(&mut self, pes: &Pes<'_>, at: &mut TrackContext<'_>) {
        let pes_pts = pes.pts.map(|pts| at.timeline.unwrap(pts));
        let carried = self.carry.len();
        let joined;
        let data = if carried == 0 {
            pes.payload
        } else {
            self.carry.extend_from_slice(pes.payload);
            joined = std::mem::take(&mut self.carry);
            &joined[..]
        };
        let mut clock = FrameClock {
            base: if carried == 0 {
                pes_pts.or(self.next_pts)
            } else {
                self.next_pts
            },
            index: 0,
        };
        let mut pos = 0;
        let mut in_this_pes = carried == 0;
        while pos < data.len() {
            if !in_this_pes && pos >= carried {
                // The first frame that starts in this PES: its PTS is the PES's.
                in_this_pes = true;
                clock = FrameClock {
                    base: pes_pts.or(self.next_pts),
                    index: 0,
                };
            }
            match self.split_frame(&data[pos..], &mut clock, at) {
                Some(used) => pos += used,
                None => return,
            }
        }
    }

    fn reset(&mut self) {
        self.carry.clear();
    }
}

impl AudioTrack {
    /// Emits the ADTS frame at the start of `rest`; returns its length, or `None` when the
    /// rest of the PES is kept for the next one or dropped.
    fn split_frame(
        &mut self,
        rest: &[u8],
        clock: &mut FrameClock,
        at: &mut TrackContext<'_>,
    ) -> Option<usize> {
        let (header, frame) = self.whole_frame(rest, at)?;
        if header.raw_blocks != 1 {
            bad_adts(at, "several raw_data_blocks in one ADTS frame");
            return Some(header.frame_len);
        }
        if !self.update_config(&header, at) {
            return None;
        }
        let Some(base) = clock.base else {
            at.error(DemuxError::NoTimestamp {
                pid: at.pid,
                offset: at.offset,
            });
            return None;
        };
        let pts = base + frame_offset(clock.index, header.sample_rate);
        clock.index += 1;
        self.next_pts = Some(base + frame_offset(clock.index, header.sample_rate));
        at.out.push(DemuxEvent::Frame(Frame {
            track: TrackKind::Audio,
            pts,
            dts: pts,
            keyframe: true,
            data: Bytes::copy_from_slice(&frame[header.header_len..]),
        }));
        Some(header.frame_len)
    }

    /// The ADTS frame at the start of `rest`, when it is all there. A frame cut short by the
    /// end of the PES is carried to the next one; a bad header drops the rest of the PES.
    fn whole_frame<'a>(
        &mut self,
        rest: &'a [u8],
        at: &mut TrackContext<'_>,
    ) -> Option<(AdtsHeader, &'a [u8])> {
        match parse_adts(rest) {
            Ok(header) => match rest.get(..header.frame_len) {
                Some(frame) => Some((header, frame)),
                None => {
                    self.carry.extend_from_slice(rest);
                    None
                }
            },
            Err(_) if rest.len() < ADTS_HEADER_LEN => {
                self.carry.extend_from_slice(rest);
                None
            }
            Err(reason) => {
                bad_adts(at, reason);
                None
            }
        }
    }

    /// Makes the header's configuration the track's; false when it has none tessera can
    /// describe (channel configuration 0, defined by a program_config_element).
    fn update_config(&mut self, header: &AdtsHeader, at: &mut TrackContext<'_>) -> bool {
        let key = (header.object_type, header.sample_rate, header.channels);
        if self.config_key == Some(key) {
            return true;
        }
        let Some(config) = aac::audio_config(key.0, key.1, key.2) else {
            bad_adts(
                at,
                "channel_configuration 0 (program_config_element) is not supported",
            );
            return false;
        };
        self.config_key = Some(key);
        if at.info.audio.as_ref() != Some(&config) {
            at.info.audio = Some(config);
            at.out.push(DemuxEvent::Media(at.info.clone()));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::adts_header;

    #[test]
    fn adts_header_round_trips_with_the_muxer_side() {
        let config = aac::audio_config(2, 44_100, 1).unwrap();
        let h = adts_header(&config, 100).unwrap();
        let parsed = parse_adts(&h).unwrap();
        assert_eq!(
            parsed,
            AdtsHeader {
                object_type: 2,
                sample_rate: 44_100,
                channels: 1,
                header_len: 7,
                frame_len: 107,
                raw_blocks: 1,
            }
        );
        let mut with_crc = h;
        with_crc[1] &= 0xFE;
        assert_eq!(parse_adts(&with_crc).unwrap().header_len, 9);
    }

    #[test]
    fn bad_adts_headers_are_named() {
        let config = aac::audio_config(2, 48_000, 2).unwrap();
        let h = adts_header(&config, 10).unwrap();
        assert_eq!(parse_adts(&h[..5]), Err("shorter than an ADTS header"));
        let mut bad = h;
        bad[0] = 0xFE;
        assert_eq!(parse_adts(&bad), Err("no ADTS syncword"));
        let mut bad = h;
        bad[2] |= 0x3C; // index 15
        assert_eq!(parse_adts(&bad), Err("reserved sampling_frequency_index"));
        let mut bad = h;
        bad[4] = 0;
        bad[5] &= 0x1F;
        assert_eq!(
            parse_adts(&bad),
            Err("frame_length shorter than the header")
        );
    }

    #[test]
    fn frame_offsets_do_not_drift() {
        assert_eq!(frame_offset(1, 48_000), 1920);
        assert_eq!(frame_offset(1, 44_100), 2089);
        assert_eq!(frame_offset(2, 44_100), 4179);
        assert_eq!(frame_offset(44_100, 44_100), 1024 * 90_000);
    }
}
