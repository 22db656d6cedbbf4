//! The unit of media that flows from a source to every muxer.
//!
//! A `Frame` is one access unit of one track. Its payload is a `Bytes` built once by the
//! source; muxers and viewers share it by reference count and never copy it per viewer.
//! Timestamps are in a single 90 kHz timescale for every track (25 fps video and 48 kHz AAC
//! frames both land on whole ticks), so muxers never accumulate rounding drift.

use bytes::Bytes;

/// Ticks per second of every `Frame` timestamp.
pub const TIMESCALE: i64 = 90_000;

/// Which elementary stream a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// One access unit.
///
/// * Video (H.264): the NAL units of one picture, each prefixed by a 4-byte big-endian length
///   (the AVCC / ISO 14496-15 layout FLV and MP4 use as is). SPS and PPS live in
///   [`VideoConfig`], not in the frame; muxers that need them in band (MPEG-TS, RTP) insert them
///   before keyframes. No access unit delimiter.
/// * Audio (AAC): one raw AAC frame (`raw_data_block`), no ADTS header.
#[derive(Clone, Debug)]
pub struct Frame {
    pub track: TrackKind,
    /// Presentation time, 90 kHz.
    pub pts: i64,
    /// Decode time, 90 kHz. Equal to `pts` when the stream has no B-frames.
    pub dts: i64,
    /// A random access point: an IDR picture for video, every frame for AAC.
    pub keyframe: bool,
    pub data: Bytes,
}

/// H.264 decoder configuration of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoConfig {
    /// One SPS NAL unit, without start code or length prefix.
    pub sps: Bytes,
    /// One PPS NAL unit, without start code or length prefix.
    pub pps: Bytes,
    pub width: u16,
    pub height: u16,
    pub profile_idc: u8,
    /// The byte after `profile_idc` in the SPS (constraint_set0..5 flags).
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Frames per second as (numerator, denominator), when known.
    pub frame_rate: Option<(u32, u32)>,
}

impl VideoConfig {
    /// RFC 6381 codec string, e.g. `avc1.42c01e`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// AAC decoder configuration of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioConfig {
    /// AudioSpecificConfig (ISO 14496-3 1.6.2.1), as carried in MP4 `esds` and FLV.
    pub asc: Bytes,
    /// Audio object type (2 = AAC LC).
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

impl AudioConfig {
    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

/// What a stream carries: the decoder configuration of each track it has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaInfo {
    pub video: Option<VideoConfig>,
    pub audio: Option<AudioConfig>,
}
