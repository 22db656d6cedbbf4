//! FLV tags as RTMP carries them (FLV spec v10.1 §E.4.2 audio tags, §E.4.3 video tags; the
//! AVCDecoderConfigurationRecord of ISO 14496-15 §5.2.4.1; the AudioSpecificConfig of
//! ISO 14496-3 §1.6.2.1), built from frames: one [`FlvTag`] per frame, built once by the
//! stream's input and shared (`Bytes`) by every RTMP viewer's chunk encoder, and the
//! sequence header tags of a stream's decoder configurations.
//!
//! Never does: parsing tags back into frames, `onMetaData` or chunking (`rtmp::flv`,
//! `rtmp::chunk`).

use crate::media::frame::{AudioConfig, Frame, TIMESCALE, TrackKind, VideoConfig};
use bytes::Bytes;

/// RTMP message type ids of the three FLV tag kinds (RTMP spec §7.1.4, §7.1.5, §7.1.2).
pub const TYPE_AUDIO: u8 = 8;
pub const TYPE_VIDEO: u8 = 9;
pub const TYPE_DATA: u8 = 18;

/// FLV `CodecID` 7 (§E.4.3.1).
pub const CODEC_AVC: u8 = 7;
/// FLV `SoundFormat` 10 (§E.4.2.1).
pub const SOUND_AAC: u8 = 10;
/// First byte of every AAC audio tag: AAC, "44 kHz", 16-bit, stereo (§E.4.2.1: for AAC the
/// rate and type fields are always 3 and 1; the real values are in the AudioSpecificConfig).
const AAC_FLAGS: u8 = (SOUND_AAC << 4) | 0x0F;

/// 90 kHz ticks per millisecond (FLV timestamps are milliseconds).
pub const MS_TICKS: i64 = TIMESCALE / 1000;

/// Which kind of FLV tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
    Script,
}

impl TagKind {
    /// The RTMP message type that carries this tag.
    pub fn message_type(self) -> u8 {
        match self {
            TagKind::Audio => TYPE_AUDIO,
            TagKind::Video => TYPE_VIDEO,
            TagKind::Script => TYPE_DATA,
        }
    }
}

/// One tag body, built once and shared by every viewer (cloning is a reference count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlvTag {
    pub kind: TagKind,
    /// Decode time in milliseconds on the source's clock (`dts / 90`, floored).
    pub timestamp_ms: i64,
    /// The whole tag body: the codec header bytes followed by the payload.
    pub body: Bytes,
}

fn ms(ticks: i64) -> i64 {
    ticks.div_euclid(MS_TICKS)
}

/// AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1) with one SPS and one PPS and
/// 4-byte NAL unit lengths, the layout of `Frame` payloads.
pub fn avc_decoder_configuration_record(cfg: &VideoConfig) -> Vec<u8> {
    let mut out = Vec::with_capacity(11 + cfg.sps.len() + cfg.pps.len());
    out.extend_from_slice(&[
        1,
        cfg.profile_idc,
        cfg.constraint_flags,
        cfg.level_idc,
        0xFC | 3, // reserved 6 bits, lengthSizeMinusOne = 3
        0xE0 | 1, // reserved 3 bits, numOfSequenceParameterSets = 1
    ]);
    out.extend_from_slice(&(cfg.sps.len().min(0xFFFF) as u16).to_be_bytes());
    out.extend_from_slice(&cfg.sps[..cfg.sps.len().min(0xFFFF)]);
    out.push(1);
    out.extend_from_slice(&(cfg.pps.len().min(0xFFFF) as u16).to_be_bytes());
    out.extend_from_slice(&cfg.pps[..cfg.pps.len().min(0xFFFF)]);
    out
}

/// The AVC sequence header tag (§E.4.3.1 `AVCPacketType` 0): keyframe, codec 7.
pub fn video_config_tag(cfg: &VideoConfig, timestamp_ms: i64) -> FlvTag {
    let mut body = vec![0x10 | CODEC_AVC, 0, 0, 0, 0];
    body.extend_from_slice(&avc_decoder_configuration_record(cfg));
    FlvTag {
        kind: TagKind::Video,
        timestamp_ms,
        body: body.into(),
    }
}

/// The AAC sequence header tag (§E.4.2.2 `AACPacketType` 0) carrying the ASC.
pub fn audio_config_tag(cfg: &AudioConfig, timestamp_ms: i64) -> FlvTag {
    let mut body = Vec::with_capacity(2 + cfg.asc.len());
    body.extend_from_slice(&[AAC_FLAGS, 0]);
    body.extend_from_slice(&cfg.asc);
    FlvTag {
        kind: TagKind::Audio,
        timestamp_ms,
        body: body.into(),
    }
}

/// The tag of one frame: an AVC NALU tag (frame type 1 or 2, `AVCPacketType` 1, composition
/// time `pts - dts` in ms, §E.4.3.1) or an AAC raw tag (`AACPacketType` 1).
pub fn frame_tag(frame: &Frame) -> FlvTag {
    let timestamp_ms = ms(frame.dts);
    let body = match frame.track {
        TrackKind::Video => {
            let cts = (ms(frame.pts) - timestamp_ms).clamp(-0x80_0000, 0x7F_FFFF) as i32;
            let frame_type = if frame.keyframe { 1 } else { 2 };
            let mut body = Vec::with_capacity(5 + frame.data.len());
            body.push((frame_type << 4) | CODEC_AVC);
            body.push(1);
            body.extend_from_slice(&cts.to_be_bytes()[1..]);
            body.extend_from_slice(&frame.data);
            body
        }
        TrackKind::Audio => {
            let mut body = Vec::with_capacity(2 + frame.data.len());
            body.extend_from_slice(&[AAC_FLAGS, 1]);
            body.extend_from_slice(&frame.data);
            body
        }
    };
    FlvTag {
        kind: match frame.track {
            TrackKind::Video => TagKind::Video,
            TrackKind::Audio => TagKind::Audio,
        },
        timestamp_ms,
        body: body.into(),
    }
}
