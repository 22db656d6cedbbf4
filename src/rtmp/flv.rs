//! FLV tag bodies as RTMP audio (type 8), video (type 9) and data (type 18) messages carry
//! them (FLV spec v10.1 §E.4.2 audio tags, §E.4.3 video tags, §E.4.4 script data; the
//! AVCDecoderConfigurationRecord of ISO 14496-15 §5.2.4.1; the AudioSpecificConfig of
//! ISO 14496-3 §1.6.2.1), in both directions.
//!
//! Owns:
//! * building the `onMetaData` script body (the frame and sequence header tags are built by
//!   `mux::flv`, once per frame by the stream's input, and re-exported here);
//! * parsing: [`FlvDemuxer`] turns a publisher's tags back into [`Frame`]s and
//!   [`MediaInfo`] updates (AVC sequence header → SPS/PPS → `VideoConfig`, AAC sequence
//!   header → `AudioConfig`, millisecond timestamps → 90 kHz without wrap-around), and
//!   [`split_aggregate`] opens aggregate messages (RTMP type 22).
//!
//! Never does: other codecs (H.265/AV1 in "enhanced RTMP", MP3, Speex, ... are refused with
//! an error naming them), file-level FLV headers, or chunking (see `chunk.rs`).

use super::amf0::Amf0Value;
use crate::media::bits::BitReader;
use crate::media::frame::{AudioConfig, Frame, MediaInfo, TIMESCALE, TrackKind, VideoConfig};
use crate::media::h264::{self, H264Error, NAL_AUD, NAL_PPS, NAL_SPS};
use crate::mux::flv::MS_TICKS;
pub use crate::mux::flv::{
    CODEC_AVC, FlvTag, SOUND_AAC, TYPE_AUDIO, TYPE_DATA, TYPE_VIDEO, TagKind, audio_config_tag,
    avc_decoder_configuration_record, frame_tag, video_config_tag,
};
use bytes::Bytes;
use std::fmt;

/// The `onMetaData` properties (§E.5) of a stream: what players show before the first frame.
pub fn metadata(info: &MediaInfo) -> Amf0Value {
    let mut props: Vec<(String, Amf0Value)> = Vec::new();
    let mut put = |k: &str, v: Amf0Value| props.push((k.to_string(), v));
    if let Some(v) = &info.video {
        put("width", f64::from(v.width).into());
        put("height", f64::from(v.height).into());
        if let Some((num, den)) = v.frame_rate.filter(|&(_, d)| d != 0) {
            put("framerate", (f64::from(num) / f64::from(den)).into());
        }
        put("videocodecid", f64::from(CODEC_AVC).into());
    }
    if let Some(a) = &info.audio {
        put("audiosamplerate", f64::from(a.sample_rate).into());
        put("audiochannels", f64::from(a.channels).into());
        put("stereo", (a.channels >= 2).into());
        put("audiocodecid", f64::from(SOUND_AAC).into());
    }
    put("encoder", "tessera".into());
    Amf0Value::EcmaArray(props)
}

/// `onMetaData` as a data tag (type 18), for a viewer whose stream's media became known
/// (or changed) after its play started.
pub fn metadata_tag(info: &MediaInfo, timestamp_ms: i64) -> FlvTag {
    let body = super::amf0::encode_all(&["onMetaData".into(), metadata(info)]);
    FlvTag {
        kind: TagKind::Script,
        timestamp_ms,
        body: body.into(),
    }
}

/// Why a publisher's tag was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlvError {
    /// A tag body shorter than its codec header.
    Truncated { kind: TagKind, len: usize },
    /// A video codec other than H.264 (`CodecID`, §E.4.3.1), or an enhanced-RTMP FourCC.
    UnsupportedVideoCodec(String),
    /// An audio format other than AAC (`SoundFormat`, §E.4.2.1).
    UnsupportedAudioCodec(u8),
    /// The AVCDecoderConfigurationRecord could not be read or has no SPS/PPS.
    BadAvcConfig(String),
    /// The SPS or the frame's NAL units did not parse.
    H264(H264Error),
    /// The AudioSpecificConfig could not be read.
    BadAudioConfig(&'static str),
    /// An aggregate message (type 22) with a malformed sub-tag at `offset`.
    BadAggregate { offset: usize },
}

impl FlvError {
    /// Unsupported codecs end a publish; a damaged tag only loses that tag.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            FlvError::UnsupportedVideoCodec(_) | FlvError::UnsupportedAudioCodec(_)
        )
    }
}

impl fmt::Display for FlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlvError::Truncated { kind, len } => write!(f, "flv: {kind:?} tag of {len} bytes"),
            FlvError::UnsupportedVideoCodec(c) => {
                write!(f, "flv: unsupported video codec {c} (only H.264/AVC)")
            }
            FlvError::UnsupportedAudioCodec(c) => {
                let name = match c {
                    0 => "linear PCM",
                    1 => "ADPCM",
                    2 => "MP3",
                    3 => "PCM LE",
                    4..=6 => "Nellymoser",
                    7 => "G.711 A-law",
                    8 => "G.711 mu-law",
                    11 => "Speex",
                    14 => "MP3 8 kHz",
                    _ => "unknown",
                };
                write!(f, "flv: unsupported audio format {c} ({name}; only AAC)")
            }
            FlvError::BadAvcConfig(why) => write!(f, "flv: bad AVC sequence header: {why}"),
            FlvError::H264(e) => write!(f, "flv: {e}"),
            FlvError::BadAudioConfig(why) => write!(f, "flv: bad AAC sequence header: {why}"),
            FlvError::BadAggregate { offset } => {
                write!(f, "flv: bad aggregate sub-tag at byte {offset}")
            }
        }
    }
}

impl std::error::Error for FlvError {}

/// What a publisher's tag meant.
#[derive(Clone, Debug)]
pub enum MediaFrame {
    /// The stream's decoder configuration changed (a sequence header arrived); carries both
    /// tracks as known so far.
    Config(MediaInfo),
    Frame(Frame),
}

/// Parses one publisher's tags. Keeps the current configuration, the NAL length size of the
/// AVC configuration record, and the timestamp extension.
#[derive(Debug, Default)]
pub struct FlvDemuxer {
    info: MediaInfo,
    nal_length_size: usize,
    /// Last wire timestamp and its extension to 64 bits (RTMP timestamps wrap at 2^32 ms).
    last: Option<(u32, i64)>,
    /// The pts the next AAC frame should have, to undo the millisecond rounding of the wire.
    next_audio_pts: Option<i64>,
}

impl FlvDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration received so far.
    pub fn info(&self) -> &MediaInfo {
        &self.info
    }

    fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => i64::from(ts),
            Some((prev, prev_ext)) => prev_ext + i64::from(ts.wrapping_sub(prev) as i32),
        };
        self.last = Some((ts, ext));
        ext
    }

    /// A video tag body (§E.4.3.1). `Ok(None)`: nothing to forward (end of sequence, frames
    /// before the sequence header, video info frames).
    pub fn video(
        &mut self,
        timestamp_ms: u32,
        body: &Bytes,
    ) -> Result<Option<MediaFrame>, FlvError> {
        let Some(&b0) = body.first() else {
            return Ok(None);
        };
        if b0 & 0x80 != 0 {
            // Enhanced RTMP: IsExHeader, then a FourCC.
            let fourcc = body.get(1..5).map_or_else(
                || "(truncated)".to_string(),
                |f| String::from_utf8_lossy(f).into_owned(),
            );
            return Err(FlvError::UnsupportedVideoCodec(format!(
                "enhanced RTMP '{fourcc}'"
            )));
        }
        let codec = b0 & 0x0F;
        if codec != CODEC_AVC {
            let name = match codec {
                2 => "Sorenson H.263",
                3 => "Screen video",
                4 => "VP6",
                5 => "VP6 alpha",
                6 => "Screen video 2",
                12 => "HEVC (legacy id 12)",
                _ => "unknown",
            };
            return Err(FlvError::UnsupportedVideoCodec(format!("{codec} ({name})")));
        }
        let frame_type = b0 >> 4;
        if frame_type == 5 {
            return Ok(None);
        }
        if body.len() < 5 {
            return Err(FlvError::Truncated {
                kind: TagKind::Video,
                len: body.len(),
            });
        }
        let ts = self.extend(timestamp_ms);
        match body[1] {
            0 => {
                let (cfg, length_size) = parse_avc_config(&body.slice(5..))?;
                self.nal_length_size = length_size;
                if self.info.video.as_ref() == Some(&cfg) {
                    return Ok(None);
                }
                self.info.video = Some(cfg);
                Ok(Some(MediaFrame::Config(self.info.clone())))
            }
            1 => {
                if self.info.video.is_none() {
                    return Ok(None);
                }
                let raw =
                    (u32::from(body[2]) << 16) | (u32::from(body[3]) << 8) | u32::from(body[4]);
                let cts = ((raw << 8) as i32) >> 8;
                let data = self.frame_nal_units(body.slice(5..))?;
                if data.is_empty() {
                    return Ok(None);
                }
                let dts = ts * MS_TICKS;
                Ok(Some(MediaFrame::Frame(Frame {
                    track: TrackKind::Video,
                    pts: dts + i64::from(cts) * MS_TICKS,
                    dts,
                    keyframe: frame_type == 1,
                    data,
                })))
            }
            _ => Ok(None),
        }
    }

    /// NAL units with 4-byte lengths and without SPS, PPS and AUD (the `Frame` layout); the
    /// input is shared when it already has that layout.
    fn frame_nal_units(&self, data: Bytes) -> Result<Bytes, FlvError> {
        let length_size = if self.nal_length_size == 0 {
            4
        } else {
            self.nal_length_size
        };
        let mut clean = length_size == 4;
        for nal in
            h264::avcc_nal_units_with_length_size(&data, length_size).map_err(FlvError::H264)?
        {
            let nal = nal.map_err(FlvError::H264)?;
            if matches!(h264::nal_unit_type(nal), Some(NAL_SPS | NAL_PPS | NAL_AUD)) {
                clean = false;
            }
        }
        if clean {
            return Ok(data);
        }
        let mut out = Vec::with_capacity(data.len() + 16);
        for nal in
            h264::avcc_nal_units_with_length_size(&data, length_size).map_err(FlvError::H264)?
        {
            let nal = nal.map_err(FlvError::H264)?;
            if !matches!(h264::nal_unit_type(nal), Some(NAL_SPS | NAL_PPS | NAL_AUD)) {
                out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                out.extend_from_slice(nal);
            }
        }
        Ok(out.into())
    }

    /// An audio tag body (§E.4.2.1, §E.4.2.2).
    pub fn audio(
        &mut self,
        timestamp_ms: u32,
        body: &Bytes,
    ) -> Result<Option<MediaFrame>, FlvError> {
        let Some(&b0) = body.first() else {
            return Ok(None);
        };
        let format = b0 >> 4;
        if format != SOUND_AAC {
            return Err(FlvError::UnsupportedAudioCodec(format));
        }
        let Some(&packet_type) = body.get(1) else {
            return Err(FlvError::Truncated {
                kind: TagKind::Audio,
                len: body.len(),
            });
        };
        let ts = self.extend(timestamp_ms);
        match packet_type {
            0 => {
                let cfg = parse_audio_specific_config(body.slice(2..))?;
                self.next_audio_pts = None;
                if self.info.audio.as_ref() == Some(&cfg) {
                    return Ok(None);
                }
                self.info.audio = Some(cfg);
                Ok(Some(MediaFrame::Config(self.info.clone())))
            }
            1 => {
                let Some(cfg) = &self.info.audio else {
                    return Ok(None);
                };
                let data = body.slice(2..);
                if data.is_empty() {
                    return Ok(None);
                }
                // The wire has whole milliseconds; a 48 kHz AAC frame lasts 1920 ticks
                // (21.33 ms). Snap to the sample clock while the wire agrees within 1 ms.
                let mut pts = ts * MS_TICKS;
                let scaled = 1024 * TIMESCALE;
                let sr = i64::from(cfg.sample_rate);
                if sr > 0 && scaled % sr == 0 {
                    if let Some(expected) = self.next_audio_pts
                        && (pts - expected).abs() <= MS_TICKS
                    {
                        pts = expected;
                    }
                    self.next_audio_pts = Some(pts + scaled / sr);
                }
                Ok(Some(MediaFrame::Frame(Frame {
                    track: TrackKind::Audio,
                    pts,
                    dts: pts,
                    keyframe: true,
                    data,
                })))
            }
            _ => Ok(None),
        }
    }
}

/// Reads the first SPS and PPS of an AVCDecoderConfigurationRecord.
pub fn parse_avc_config(rec: &Bytes) -> Result<(VideoConfig, usize), FlvError> {
    let bad = |why: &str| FlvError::BadAvcConfig(why.to_string());
    if rec.len() < 7 {
        return Err(bad("shorter than 7 bytes"));
    }
    if rec[0] != 1 {
        return Err(bad("configurationVersion is not 1"));
    }
    let length_size = usize::from(rec[4] & 3) + 1;
    if length_size == 3 {
        return Err(bad("lengthSizeMinusOne = 2"));
    }
    let mut pos = 5;
    let mut read_sets = |count_mask: u8| -> Result<Option<Bytes>, FlvError> {
        let count = rec.get(pos).ok_or_else(|| bad("truncated"))? & count_mask;
        pos += 1;
        let mut first = None;
        for _ in 0..count {
            let len = rec
                .get(pos..pos + 2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                .ok_or_else(|| bad("truncated parameter set length"))?;
            pos += 2;
            if pos + len > rec.len() {
                return Err(bad("truncated parameter set"));
            }
            if first.is_none() {
                first = Some(rec.slice(pos..pos + len));
            }
            pos += len;
        }
        Ok(first)
    };
    let sps = read_sets(0x1F)?.ok_or_else(|| bad("no SPS"))?;
    let pps = read_sets(0xFF)?.ok_or_else(|| bad("no PPS"))?;
    let cfg = h264::video_config(sps, pps).map_err(FlvError::H264)?;
    Ok((cfg, length_size))
}

/// Reads an AudioSpecificConfig's object type, rate and channels (ISO 14496-3 §1.6.2.1);
/// keeps the bytes as they came.
pub fn parse_audio_specific_config(asc: Bytes) -> Result<AudioConfig, FlvError> {
    let mut r = BitReader::new(&asc);
    let truncated = |_| FlvError::BadAudioConfig("truncated");
    let mut object_type = r.u(5).map_err(truncated)?;
    if object_type == 31 {
        object_type = 32 + r.u(6).map_err(truncated)?;
    }
    let index = r.u(4).map_err(truncated)?;
    let sample_rate = if index == 15 {
        r.u(24).map_err(truncated)?
    } else {
        *crate::media::aac::SAMPLE_RATES
            .get(index as usize)
            .ok_or(FlvError::BadAudioConfig("reserved samplingFrequencyIndex"))?
    };
    let channels = r.u(4).map_err(truncated)? as u8;
    if object_type == 0 || sample_rate == 0 {
        return Err(FlvError::BadAudioConfig("object type or rate is zero"));
    }
    Ok(AudioConfig {
        asc,
        object_type: object_type.min(255) as u8,
        sample_rate,
        channels,
    })
}

/// One FLV tag out of an aggregate message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregatePart {
    pub type_id: u8,
    pub timestamp_ms: u32,
    pub body: Bytes,
}

/// Splits an aggregate message (RTMP spec §7.1.6): FLV tags (11-byte header, body, 4-byte
/// back pointer). Sub-tag timestamps are rebased so the first one equals the message's.
pub fn split_aggregate(message_ts: u32, payload: &Bytes) -> Result<Vec<AggregatePart>, FlvError> {
    let mut parts = Vec::new();
    let mut pos = 0;
    let mut first_ts = None;
    while pos < payload.len() {
        let Some(h) = payload.get(pos..pos + 11) else {
            return Err(FlvError::BadAggregate { offset: pos });
        };
        let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = (u32::from(h[7]) << 24)
            | (u32::from(h[4]) << 16)
            | (u32::from(h[5]) << 8)
            | u32::from(h[6]);
        let body_start = pos + 11;
        let end = body_start + len + 4;
        if end > payload.len() {
            return Err(FlvError::BadAggregate { offset: pos });
        }
        let base = *first_ts.get_or_insert(ts);
        parts.push(AggregatePart {
            type_id: h[0] & 0x1F,
            timestamp_ms: message_ts.wrapping_add(ts.wrapping_sub(base)),
            body: payload.slice(body_start..body_start + len),
        });
        pos = end;
    }
    Ok(parts)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::aac;

    /// x264's SPS for 320x240 Constrained Baseline level 1.3 at 25 fps.
    pub(crate) const SPS: &[u8] = &[
        0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x42, 0xA4, 0x80,
    ];
    pub(crate) const PPS: &[u8] = &[0x68, 0xCB, 0x83, 0xCB, 0x20];

    fn assert_same(got: Option<MediaFrame>, want: &Frame) {
        let Some(MediaFrame::Frame(f)) = got else {
            panic!("frame expected, got {got:?}");
        };
        assert_eq!(
            (f.track, f.pts, f.dts, f.keyframe, &f.data),
            (want.track, want.pts, want.dts, want.keyframe, &want.data)
        );
    }

    fn video_cfg() -> VideoConfig {
        h264::video_config(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap()
    }

    #[test]
    fn avc_sequence_header_bytes_and_round_trip() {
        let cfg = video_cfg();
        assert_eq!((cfg.width, cfg.height), (320, 240));
        let tag = video_config_tag(&cfg, 0);
        let mut want = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xC0, 0x0D, 0xFF, 0xE1, 0, 24];
        want.extend_from_slice(SPS);
        want.extend_from_slice(&[1, 0, 5]);
        want.extend_from_slice(PPS);
        assert_eq!(&tag.body[..], &want[..]);
        let mut demux = FlvDemuxer::new();
        let Some(MediaFrame::Config(info)) = demux.video(0, &tag.body).unwrap() else {
            panic!("config expected");
        };
        assert_eq!(
            info,
            MediaInfo {
                video: Some(cfg.clone()),
                audio: None
            }
        );
        // The same header again is not a change.
        assert!(demux.video(0, &tag.body).unwrap().is_none());
    }

    #[test]
    fn video_frames_round_trip_with_composition_time() {
        let cfg = video_cfg();
        let mut demux = FlvDemuxer::new();
        // Frames before the sequence header are dropped.
        let frame = Frame {
            track: TrackKind::Video,
            pts: 90_000 + 7200,
            dts: 90_000,
            keyframe: true,
            data: Bytes::from_static(&[0, 0, 0, 3, 0x65, 0x88, 0x84]),
        };
        let tag = frame_tag(&frame);
        assert_eq!(tag.timestamp_ms, 1000);
        assert_eq!(&tag.body[..5], &[0x17, 1, 0, 0, 80]);
        assert!(demux.video(1000, &tag.body).unwrap().is_none());
        demux
            .video(1000, &video_config_tag(&cfg, 1000).body)
            .unwrap();
        let got = demux.video(1000, &tag.body).unwrap();
        assert_same(got, &frame);
        // Negative composition time and a non-keyframe.
        let b = Frame {
            pts: 90_000 - 3600,
            keyframe: false,
            ..frame.clone()
        };
        let tag = frame_tag(&b);
        assert_eq!(&tag.body[..5], &[0x27, 1, 0xFF, 0xFF, 0xD8]);
        assert_same(demux.video(1000, &tag.body).unwrap(), &b);
        // In-band SPS/PPS/AUD are stripped.
        let mut body = vec![0x17, 1, 0, 0, 0];
        for nal in [&[0x09, 0xF0][..], SPS, PPS, &[0x65, 0x88, 0x84]] {
            body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            body.extend_from_slice(nal);
        }
        let Some(MediaFrame::Frame(f)) = demux.video(1040, &Bytes::from(body)).unwrap() else {
            panic!("frame expected");
        };
        assert_eq!(&f.data[..], &[0, 0, 0, 3, 0x65, 0x88, 0x84]);
        assert_eq!(f.dts, 1040 * 90);
    }

    #[test]
    fn aac_round_trip_and_sample_clock() {
        let cfg = aac::audio_config(2, 48_000, 2).unwrap();
        let tag = audio_config_tag(&cfg, 0);
        assert_eq!(&tag.body[..], &[0xAF, 0x00, 0x11, 0x90]);
        let mut demux = FlvDemuxer::new();
        let Some(MediaFrame::Config(info)) = demux.audio(0, &tag.body).unwrap() else {
            panic!("config expected");
        };
        assert_eq!(info.audio, Some(cfg));
        let mut pts = Vec::new();
        for i in 0..4i64 {
            let f = Frame {
                track: TrackKind::Audio,
                pts: i * 1920,
                dts: i * 1920,
                keyframe: true,
                data: aac::silent_stereo_frame(),
            };
            let tag = frame_tag(&f);
            assert_eq!(&tag.body[..2], &[0xAF, 0x01]);
            let Some(MediaFrame::Frame(back)) =
                demux.audio(tag.timestamp_ms as u32, &tag.body).unwrap()
            else {
                panic!("frame expected");
            };
            assert_eq!(back.data, f.data);
            pts.push(back.pts);
        }
        // 0, 21, 42, 64 ms on the wire; exact 1920-tick steps out.
        assert_eq!(pts, [0, 1920, 3840, 5760]);
    }

    #[test]
    fn refuses_other_codecs_by_name() {
        let mut demux = FlvDemuxer::new();
        let e = demux
            .audio(0, &Bytes::from_static(&[0x2F, 0x00]))
            .unwrap_err();
        assert!(e.to_string().contains("MP3"), "{e}");
        assert!(e.is_fatal());
        let e = demux
            .video(0, &Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1']))
            .unwrap_err();
        assert!(e.to_string().contains("hvc1"), "{e}");
        let e = demux.video(0, &Bytes::from_static(&[0x1C, 0])).unwrap_err();
        assert!(e.to_string().contains("HEVC"), "{e}");
        assert!(demux.video(0, &Bytes::from_static(&[0x17, 0, 0])).is_err());
        assert!(
            demux
                .video(0, &Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x42]))
                .is_err()
        );
    }

    #[test]
    fn timestamps_extend_past_wrap() {
        let mut demux = FlvDemuxer::new();
        assert_eq!(demux.extend(u32::MAX - 10), i64::from(u32::MAX - 10));
        assert_eq!(demux.extend(5), i64::from(u32::MAX) + 6);
        assert_eq!(demux.extend(3), i64::from(u32::MAX) + 4);
    }

    #[test]
    fn metadata_properties() {
        let info = MediaInfo {
            video: Some(video_cfg()),
            audio: aac::audio_config(2, 48_000, 2),
        };
        let md = metadata(&info);
        assert_eq!(md.get("width").and_then(Amf0Value::as_number), Some(320.0));
        assert_eq!(
            md.get("framerate").and_then(Amf0Value::as_number),
            Some(25.0)
        );
        assert_eq!(
            md.get("audiocodecid").and_then(Amf0Value::as_number),
            Some(10.0)
        );
    }

    #[test]
    fn aggregate_split() {
        let mut p = Vec::new();
        for (t, ts, body) in [(9u8, 100u32, &[1u8, 2][..]), (8, 120, &[3][..])] {
            p.push(t);
            p.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            p.extend_from_slice(&ts.to_be_bytes()[1..]);
            p.push(0);
            p.extend_from_slice(&[0, 0, 0]);
            p.extend_from_slice(body);
            p.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        }
        let parts = split_aggregate(5000, &Bytes::from(p.clone())).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].type_id, parts[0].timestamp_ms), (9, 5000));
        assert_eq!((parts[1].type_id, parts[1].timestamp_ms), (8, 5020));
        assert_eq!(&parts[1].body[..], &[3]);
        p.pop();
        assert!(split_aggregate(0, &Bytes::from(p)).is_err());
    }
}
