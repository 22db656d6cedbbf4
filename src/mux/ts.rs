//! MPEG-2 transport stream muxer (ISO/IEC 13818-1) for HLS segments and HTTP MPEG-TS.
//!
//! Owns: turning [`Frame`]s into 188-byte transport packets (§2.4.3.2, Table 2-2): the PAT
//! (§2.4.4.3, Table 2-30) and PMT (§2.4.4.8, Table 2-33) sections with their CRC32 (Annex A),
//! one PES packet per frame (§2.4.3.6, Table 2-21) carrying H.264 in Annex B form (§2.14) or
//! AAC in ADTS form (stream_type 0x0F, Table 2-34), the adaptation field with PCR,
//! random_access_indicator and stuffing (§2.4.3.4/§2.4.3.5), and the continuity counter of
//! every PID.
//!
//! Never does: I/O, clocks, segmentation decisions (the segmenter decides where a segment
//! starts and calls [`TsMuxer::write_tables`] there), SI tables (SDT/NIT), null packets, or
//! copies of a frame into an intermediate buffer: each frame is written once, straight into
//! the caller's segment buffer.
//!
//! Layout of one program: PAT on PID 0, PMT on [`PMT_PID`] (program 1), video on
//! [`VIDEO_PID`] (stream_type 0x1B), audio on [`AUDIO_PID`] (stream_type 0x0F). The PCR is
//! carried by the video PID when the stream has video, by the audio PID otherwise.
//!
//! Timestamps: `Frame` times are shifted by [`TIMESTAMP_OFFSET`] (1.4 s) so that the small
//! negative DTS a B-frame stream starts with never reaches the 33-bit field as a negative
//! number, then wrapped modulo 2^33 (§2.4.3.7). The PCR is the DTS of the PES that carries it
//! minus [`PCR_DELAY`] (0.7 s), which is always at or below the DTS and PTS. These are the
//! values ffmpeg's own muxer uses, so our segments start at 1.4 s like ffmpeg's do.

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::media::aac::{self, ADTS_HEADER_LEN};
use crate::media::frame::{AudioConfig, Frame, MediaInfo, TrackKind, VideoConfig};

/// Length of every transport packet (§2.4.3.2).
pub const TS_PACKET_LEN: usize = 188;
/// sync_byte, flags/PID, scrambling/adaptation_field_control/continuity_counter.
const TS_HEADER_LEN: usize = 4;
/// Bytes after the packet header, shared by the adaptation field and the payload.
const TS_BODY_LEN: usize = TS_PACKET_LEN - TS_HEADER_LEN;
const SYNC_BYTE: u8 = 0x47;

/// PID of the program association table (§2.4.4.3, Table 2-3).
pub const PAT_PID: u16 = 0x0000;
/// PID of the program map table of program [`PROGRAM_NUMBER`].
pub const PMT_PID: u16 = 0x1000;
/// PID of the H.264 elementary stream.
pub const VIDEO_PID: u16 = 0x0100;
/// PID of the AAC (ADTS) elementary stream.
pub const AUDIO_PID: u16 = 0x0101;
/// PCR_PID value meaning "no PCR" (§2.4.4.9), used only when the stream has no track at all.
const NO_PCR_PID: u16 = 0x1FFF;
/// The single program of every stream we mux.
pub const PROGRAM_NUMBER: u16 = 1;
const TRANSPORT_STREAM_ID: u16 = 1;

/// stream_type of AVC video (Table 2-34).
pub const STREAM_TYPE_H264: u8 = 0x1B;
/// stream_type of ISO/IEC 13818-7 audio with ADTS transport syntax (Table 2-34).
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
/// stream_id of the first video stream (Table 2-22).
const STREAM_ID_VIDEO: u8 = 0xE0;
/// stream_id of the first audio stream (Table 2-22).
const STREAM_ID_AUDIO: u8 = 0xC0;

/// Added to every `Frame` PTS/DTS (90 kHz) before it is written: 1.4 s.
pub const TIMESTAMP_OFFSET: i64 = 126_000;
/// How far the PCR trails the DTS of the PES whose first packet carries it: 0.7 s.
pub const PCR_DELAY: i64 = 63_000;
/// PTS, DTS and PCR base are 33-bit counters (§2.4.3.7, §2.4.3.5).
const TIMESTAMP_MODULUS: i64 = 1 << 33;

/// Access unit delimiter with primary_pic_type 7 (any slice type), H.264 §7.3.2.4, which
/// §2.14 requires at the start of every AVC access unit in a transport stream.
const AUD_NAL: [u8; 6] = [0x00, 0x00, 0x00, 0x01, 0x09, 0xF0];
const START_CODE: [u8; 4] = [0x00, 0x00, 0x00, 0x01];
const NAL_TYPE_AUD: u8 = 9;
/// Size of an AVCC NAL unit length prefix (ISO/IEC 14496-15 with lengthSizeMinusOne = 3).
const AVCC_LENGTH_LEN: usize = 4;

/// Size of the adaptation field's length and flags bytes.
const AF_LENGTH_AND_FLAGS_LEN: usize = 2;
const PCR_LEN: usize = 6;
const AF_FLAG_RANDOM_ACCESS: u8 = 0x40;
const AF_FLAG_PCR: u8 = 0x10;
const STUFFING_BYTE: u8 = 0xFF;

/// Largest PES header we write: 6 fixed bytes, 3 flag bytes, PTS and DTS.
const PES_HEADER_MAX_LEN: usize = 19;

/// Why a frame could not be muxed. `out` and every continuity counter are untouched when
/// [`TsMuxer::write_frame`] returns one of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TsError {
    /// The frame's track has no configuration in the [`MediaInfo`] the muxer was built from.
    TrackNotConfigured { track: TrackKind, pts: i64 },
    /// The video payload is not a sequence of 4-byte-length-prefixed NAL units.
    BadAvcc {
        pts: i64,
        /// Byte offset in `Frame::data` where the problem starts.
        offset: usize,
        problem: AvccProblem,
    },
    /// An AAC frame too long for the 13-bit ADTS frame_length field.
    AudioFrameTooLong { pts: i64, len: usize },
    /// The audio configuration cannot be written as ADTS (object type above 4 or a sample rate
    /// without a sampling_frequency_index).
    UnsupportedAudioConfig { object_type: u8, sample_rate: u32 },
}

/// What is wrong with an AVCC buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvccProblem {
    /// The frame holds no NAL unit at all.
    Empty,
    /// Fewer than 4 bytes are left where a length prefix should start.
    TruncatedLength { available: usize },
    /// A length prefix of zero.
    ZeroLengthNal,
    /// A length prefix larger than what follows it.
    NalOverrun { declared: usize, available: usize },
}

impl fmt::Display for TsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TsError::TrackNotConfigured { track, pts } => write!(
                f,
                "ts mux: {track:?} frame at pts {pts} but the stream has no {track:?} track"
            ),
            TsError::BadAvcc {
                pts,
                offset,
                problem,
            } => write!(
                f,
                "ts mux: video frame at pts {pts}: byte {offset}: {problem}"
            ),
            TsError::AudioFrameTooLong { pts, len } => write!(
                f,
                "ts mux: audio frame at pts {pts} is {len} bytes, too long for ADTS"
            ),
            TsError::UnsupportedAudioConfig {
                object_type,
                sample_rate,
            } => write!(
                f,
                "ts mux: AAC object type {object_type} at {sample_rate} Hz has no ADTS form"
            ),
        }
    }
}

impl fmt::Display for AvccProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AvccProblem::Empty => f.write_str("access unit has no NAL unit"),
            AvccProblem::TruncatedLength { available } => write!(
                f,
                "NAL length prefix truncated ({available} of {AVCC_LENGTH_LEN} bytes)"
            ),
            AvccProblem::ZeroLengthNal => f.write_str("NAL length prefix of zero"),
            AvccProblem::NalOverrun {
                declared,
                available,
            } => write!(
                f,
                "NAL length prefix declares {declared} bytes but only {available} follow"
            ),
        }
    }
}

impl std::error::Error for TsError {}

/// The 4-bit continuity_counter of one PID (§2.4.3.3). It advances on every packet that
/// carries payload, which is every packet we write.
#[derive(Clone, Copy, Debug, Default)]
struct ContinuityCounter(u8);

impl ContinuityCounter {
    /// The value for the next packet, then advances.
    fn next(&mut self) -> u8 {
        let value = self.0;
        self.0 = (self.0 + 1) & 0x0F;
        value
    }
}

/// MPEG-TS muxer of one stream: one program with at most one H.264 and one AAC track.
///
/// Keep one muxer per output (e.g. per HLS rendition) for the stream's lifetime so
/// continuity counters run on across segments.
#[derive(Clone, Debug)]
pub struct TsMuxer {
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    pcr_pid: u16,
    cc_pat: ContinuityCounter,
    cc_pmt: ContinuityCounter,
    cc_video: ContinuityCounter,
    cc_audio: ContinuityCounter,
}

impl TsMuxer {
    /// A muxer for the tracks `info` has. Configurations are `Bytes` and cheap to clone.
    pub fn new(info: &MediaInfo) -> Self {
        let pcr_pid = match (&info.video, &info.audio) {
            (Some(_), _) => VIDEO_PID,
            (None, Some(_)) => AUDIO_PID,
            (None, None) => NO_PCR_PID,
        };
        TsMuxer {
            video: info.video.clone(),
            audio: info.audio.clone(),
            pcr_pid,
            cc_pat: ContinuityCounter::default(),
            cc_pmt: ContinuityCounter::default(),
            cc_video: ContinuityCounter::default(),
            cc_audio: ContinuityCounter::default(),
        }
    }

    /// PAT + PMT; the segmenter calls this at the start of every segment.
    ///
    /// Appends exactly two packets (376 bytes) to `out`.
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        out.reserve(2 * TS_PACKET_LEN);

        // PAT (Table 2-30): one program, no network_PID entry.
        let [pn_hi, pn_lo] = PROGRAM_NUMBER.to_be_bytes();
        let pat = [pn_hi, pn_lo, 0xE0 | (PMT_PID >> 8) as u8, PMT_PID as u8];
        write_section_packet(
            out,
            PAT_PID,
            self.cc_pat.next(),
            0x00,
            TRANSPORT_STREAM_ID,
            &pat,
        );

        // PMT (Table 2-33): no program descriptors, one 5-byte entry per elementary stream.
        let mut pmt = [0u8; 4 + 2 * 5];
        pmt[..4].copy_from_slice(&[
            0xE0 | (self.pcr_pid >> 8) as u8,
            self.pcr_pid as u8,
            0xF0, // reserved, program_info_length = 0
            0x00,
        ]);
        let mut len = 4;
        let streams = [
            (self.video.is_some(), STREAM_TYPE_H264, VIDEO_PID),
            (self.audio.is_some(), STREAM_TYPE_AAC_ADTS, AUDIO_PID),
        ];
        for (_, stream_type, pid) in streams.into_iter().filter(|(present, ..)| *present) {
            pmt[len..len + 5].copy_from_slice(&[
                stream_type,
                0xE0 | (pid >> 8) as u8,
                pid as u8,
                0xF0, // reserved, ES_info_length = 0
                0x00,
            ]);
            len += 5;
        }
        write_section_packet(
            out,
            PMT_PID,
            self.cc_pmt.next(),
            0x02,
            PROGRAM_NUMBER,
            &pmt[..len],
        );
    }

    /// One PES for the frame, packetized into 188-byte packets appended to `out`.
    ///
    /// # Errors
    ///
    /// [`TsError`] when the frame's track is not in the `MediaInfo`, the video payload is not
    /// valid AVCC, or the audio frame cannot be framed as ADTS. On error nothing is appended
    /// and no continuity counter moves, so the caller may skip the frame and carry on.
    pub fn write_frame(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), TsError> {
        match frame.track {
            TrackKind::Video => self.write_video(frame, out),
            TrackKind::Audio => self.write_audio(frame, out),
        }
    }

    /// Video PES: AUD, then SPS and PPS when the frame is a keyframe, then the frame's NAL
    /// units with their length prefixes replaced by start codes (§2.14, H.264 Annex B).
    /// PES_packet_length is 0 (unbounded), allowed for video only (§2.4.3.7).
    fn write_video(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), TsError> {
        let Some(config) = &self.video else {
            return Err(TsError::TrackNotConfigured {
                track: TrackKind::Video,
                pts: frame.pts,
            });
        };
        validate_avcc(&frame.data).map_err(|(offset, problem)| TsError::BadAvcc {
            pts: frame.pts,
            offset,
            problem,
        })?;

        let pts = wrap_timestamp(frame.pts);
        let dts = (frame.dts != frame.pts).then(|| wrap_timestamp(frame.dts));
        let header = PesHeader::new(STREAM_ID_VIDEO, pts, dts, None);
        let pcr = (self.pcr_pid == VIDEO_PID).then(|| pcr_base(frame.dts));

        let parameter_sets: [&[u8]; 2] = [&config.sps, &config.pps];
        let parameter_sets = parameter_sets
            .into_iter()
            .filter(|ps| frame.keyframe && !ps.is_empty())
            .flat_map(|ps| [&START_CODE[..], ps]);
        // An AUD inside the frame would end the access unit we just opened; drop it.
        let nal_units = AvccNalUnits::new(&frame.data)
            .map_while(Result::ok)
            .filter(|nal| nal.first().map(|b| b & 0x1F) != Some(NAL_TYPE_AUD))
            .flat_map(|nal| [&START_CODE[..], nal]);
        let pieces = std::iter::once(header.as_bytes())
            .chain(std::iter::once(&AUD_NAL[..]))
            .chain(parameter_sets)
            .chain(nal_units);

        write_pes(
            out,
            VIDEO_PID,
            &mut self.cc_video,
            pcr,
            frame.keyframe,
            pieces,
        );
        Ok(())
    }

    /// Audio PES: a 7-byte ADTS header (ISO/IEC 14496-3 §1.A.2.2) and the raw AAC frame, with
    /// the real PES_packet_length.
    fn write_audio(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), TsError> {
        let Some(config) = &self.audio else {
            return Err(TsError::TrackNotConfigured {
                track: TrackKind::Audio,
                pts: frame.pts,
            });
        };
        let Some(adts) = aac::adts_header(config, frame.data.len()) else {
            // adts_header refuses either the length or the configuration.
            return Err(if aac::adts_header(config, 0).is_some() {
                TsError::AudioFrameTooLong {
                    pts: frame.pts,
                    len: frame.data.len(),
                }
            } else {
                TsError::UnsupportedAudioConfig {
                    object_type: config.object_type,
                    sample_rate: config.sample_rate,
                }
            });
        };

        let pts = wrap_timestamp(frame.pts);
        let dts = (frame.dts != frame.pts).then(|| wrap_timestamp(frame.dts));
        // At most 0x1FFF bytes (checked by adts_header), so it fits the 16-bit length field.
        let header = PesHeader::new(
            STREAM_ID_AUDIO,
            pts,
            dts,
            Some(ADTS_HEADER_LEN + frame.data.len()),
        );
        let pcr = (self.pcr_pid == AUDIO_PID).then(|| pcr_base(frame.dts));
        let pieces = [header.as_bytes(), &adts[..], &frame.data[..]].into_iter();

        write_pes(
            out,
            AUDIO_PID,
            &mut self.cc_audio,
            pcr,
            frame.keyframe,
            pieces,
        );
        Ok(())
    }
}

/// A `Frame` timestamp shifted by [`TIMESTAMP_OFFSET`] and wrapped to 33 bits.
fn wrap_timestamp(ticks: i64) -> u64 {
    // wrapping_add keeps the value modulo 2^64, hence modulo 2^33; rem_euclid makes it
    // non-negative.
    ticks
        .wrapping_add(TIMESTAMP_OFFSET)
        .rem_euclid(TIMESTAMP_MODULUS) as u64
}

/// program_clock_reference_base for a PES with decode time `dts`: [`PCR_DELAY`] below it.
fn pcr_base(dts: i64) -> u64 {
    wrap_timestamp(dts.wrapping_sub(PCR_DELAY))
}

/// Checks that `data` is one or more 4-byte-length-prefixed, non-empty NAL units filling it
/// exactly. Returns the byte offset and the problem otherwise.
fn validate_avcc(data: &[u8]) -> Result<(), (usize, AvccProblem)> {
    if data.is_empty() {
        return Err((0, AvccProblem::Empty));
    }
    AvccNalUnits::new(data).try_for_each(|nal| nal.map(drop))
}

/// Iterates the NAL units of an AVCC buffer, yielding an error (and then stopping) at the
/// first malformed length prefix.
#[derive(Clone)]
struct AvccNalUnits<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> AvccNalUnits<'a> {
    fn new(data: &'a [u8]) -> Self {
        AvccNalUnits { data, offset: 0 }
    }
}

impl<'a> Iterator for AvccNalUnits<'a> {
    type Item = Result<&'a [u8], (usize, AvccProblem)>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.data[self.offset..];
        if rest.is_empty() {
            return None;
        }
        let start = self.offset;
        // Any error ends the iteration.
        self.offset = self.data.len();
        let Some((prefix, body)) = rest.split_first_chunk::<AVCC_LENGTH_LEN>() else {
            let problem = AvccProblem::TruncatedLength {
                available: rest.len(),
            };
            return Some(Err((start, problem)));
        };
        let declared = u32::from_be_bytes(*prefix) as usize;
        if declared == 0 {
            return Some(Err((start, AvccProblem::ZeroLengthNal)));
        }
        if declared > body.len() {
            let problem = AvccProblem::NalOverrun {
                declared,
                available: body.len(),
            };
            return Some(Err((start, problem)));
        }
        self.offset = start + AVCC_LENGTH_LEN + declared;
        Some(Ok(&body[..declared]))
    }
}

/// A PES packet header (Table 2-21) with PTS and optionally DTS, built on the stack.
struct PesHeader {
    bytes: [u8; PES_HEADER_MAX_LEN],
    len: usize,
}

impl PesHeader {
    /// `payload_len` is the elementary stream bytes that follow the header, or `None` for an
    /// unbounded video PES (PES_packet_length = 0). Callers keep bounded payloads below
    /// 65 526 bytes.
    fn new(stream_id: u8, pts: u64, dts: Option<u64>, payload_len: Option<usize>) -> Self {
        let header_data_len: usize = if dts.is_some() { 10 } else { 5 };
        let packet_len = payload_len.map_or(0, |len| 3 + header_data_len + len);
        debug_assert!(packet_len <= usize::from(u16::MAX));
        let [len_hi, len_lo] = (packet_len as u16).to_be_bytes();
        let mut bytes = [0u8; PES_HEADER_MAX_LEN];
        bytes[..9].copy_from_slice(&[
            0x00,
            0x00,
            0x01, // packet_start_code_prefix
            stream_id,
            len_hi,
            len_lo,
            0x84, // '10', not scrambled, data_alignment_indicator = 1
            if dts.is_some() { 0xC0 } else { 0x80 }, // PTS_DTS_flags
            header_data_len as u8,
        ]);
        match dts {
            Some(dts) => {
                bytes[9..14].copy_from_slice(&encode_timestamp(0b0011, pts));
                bytes[14..19].copy_from_slice(&encode_timestamp(0b0001, dts));
            }
            None => bytes[9..14].copy_from_slice(&encode_timestamp(0b0010, pts)),
        }
        PesHeader {
            bytes,
            len: 9 + header_data_len,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A 33-bit PTS or DTS in its 5-byte PES form: 4-bit prefix, then 3/15/15 bits each followed
/// by a marker bit (§2.4.3.6).
fn encode_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((ts >> 30) & 0x07) as u8) << 1 | 1,
        (ts >> 22) as u8,
        (((ts >> 15) & 0x7F) as u8) << 1 | 1,
        (ts >> 7) as u8,
        ((ts & 0x7F) as u8) << 1 | 1,
    ]
}

/// The 6-byte PCR field (§2.4.3.4): 33-bit base, 6 reserved bits, 9-bit extension (0).
fn encode_pcr(base: u64) -> [u8; PCR_LEN] {
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base & 1) as u8) << 7 | 0x7E,
        0x00,
    ]
}

/// Appends a 4-byte transport packet header.
fn put_ts_header(out: &mut BytesMut, pid: u16, unit_start: bool, adaptation: bool, cc: u8) {
    let adaptation_field_control = if adaptation { 0b11 } else { 0b01 };
    out.put_slice(&[
        SYNC_BYTE,
        (u8::from(unit_start) << 6) | ((pid >> 8) as u8 & 0x1F),
        pid as u8,
        (adaptation_field_control << 4) | cc,
    ]);
}

/// Appends one packet holding a whole PSI section (§2.4.4): pointer_field 0, the long-form
/// section header with version 0 and current_next_indicator 1, `body`, CRC32, then 0xFF
/// stuffing to the end of the packet.
fn write_section_packet(
    out: &mut BytesMut,
    pid: u16,
    cc: u8,
    table_id: u8,
    table_id_extension: u16,
    body: &[u8],
) {
    // transport_stream_id/program_number, version, section numbers, body, CRC.
    let section_length = 5 + body.len() + 4;
    debug_assert!(section_length + 3 < TS_BODY_LEN);
    let packet_start = out.len();
    put_ts_header(out, pid, true, false, cc);
    out.put_u8(0x00); // pointer_field
    let section_start = out.len();
    let [ext_hi, ext_lo] = table_id_extension.to_be_bytes();
    out.put_slice(&[
        table_id,
        0xB0 | (section_length >> 8) as u8, // section_syntax_indicator = 1, '0', reserved
        section_length as u8,
        ext_hi,
        ext_lo,
        0xC1, // reserved, version_number 0, current_next_indicator 1
        0x00, // section_number
        0x00, // last_section_number
    ]);
    out.put_slice(body);
    let crc = crc32_mpeg2(&out[section_start..]);
    out.put_u32(crc);
    let used = out.len() - packet_start;
    out.put_bytes(STUFFING_BYTE, TS_PACKET_LEN - used);
}

/// Number of packets for a PES of `total` bytes when the first packet also carries
/// `first_af_len` bytes of adaptation field.
fn packet_count(total: usize, first_af_len: usize) -> usize {
    let first_capacity = TS_BODY_LEN - first_af_len;
    if total <= first_capacity {
        1
    } else {
        1 + (total - first_capacity).div_ceil(TS_BODY_LEN)
    }
}

/// Packetizes one PES whose bytes are the concatenation of `pieces` (§2.4.3.2).
///
/// The first packet has payload_unit_start_indicator set and, when asked, an adaptation field
/// with the PCR and/or random_access_indicator. The last packet is padded to 188 bytes with
/// adaptation field stuffing (§2.4.3.5: stuffing in PES-carrying packets is done there, never
/// after the payload). Bytes are copied once, from `pieces` straight into `out`.
fn write_pes<'a>(
    out: &mut BytesMut,
    pid: u16,
    cc: &mut ContinuityCounter,
    pcr: Option<u64>,
    random_access: bool,
    pieces: impl Iterator<Item = &'a [u8]> + Clone,
) {
    // Summing over a clone of the same iterator guarantees the count matches what is copied.
    let total: usize = pieces.clone().map(<[u8]>::len).sum();
    let first_af_len = if pcr.is_some() || random_access {
        AF_LENGTH_AND_FLAGS_LEN + if pcr.is_some() { PCR_LEN } else { 0 }
    } else {
        0
    };
    out.reserve(packet_count(total, first_af_len) * TS_PACKET_LEN);

    let mut reader = PieceReader::new(pieces);
    let mut remaining = total;
    let mut first = true;
    while remaining > 0 {
        let fields_len = if first { first_af_len } else { 0 };
        let take = remaining.min(TS_BODY_LEN - fields_len);
        // Whole adaptation field, length byte included: fields plus any stuffing.
        let af_len = TS_BODY_LEN - take;
        put_ts_header(out, pid, first, af_len > 0, cc.next());
        if af_len > 0 {
            // af_len <= 184, so adaptation_field_length fits a byte.
            out.put_u8((af_len - 1) as u8);
        }
        if af_len > 1 {
            let mut flags = 0;
            if first && random_access {
                flags |= AF_FLAG_RANDOM_ACCESS;
            }
            let pcr = pcr.filter(|_| first);
            if pcr.is_some() {
                flags |= AF_FLAG_PCR;
            }
            out.put_u8(flags);
            let mut written = AF_LENGTH_AND_FLAGS_LEN;
            if let Some(base) = pcr {
                out.put_slice(&encode_pcr(base));
                written += PCR_LEN;
            }
            out.put_bytes(STUFFING_BYTE, af_len - written);
        }
        reader.copy_to(out, take);
        remaining -= take;
        first = false;
    }
}

/// Copies byte counts out of a sequence of slices, crossing slice boundaries.
struct PieceReader<'a, I> {
    current: &'a [u8],
    rest: I,
}

impl<'a, I: Iterator<Item = &'a [u8]>> PieceReader<'a, I> {
    fn new(rest: I) -> Self {
        PieceReader { current: &[], rest }
    }

    fn copy_to(&mut self, out: &mut BytesMut, mut n: usize) {
        while n > 0 {
            if self.current.is_empty() {
                match self.rest.next() {
                    Some(piece) => self.current = piece,
                    None => {
                        // Unreachable: write_pes asks for exactly the sum of the piece
                        // lengths. Keep the packet 188 bytes long regardless.
                        debug_assert!(false, "PES pieces shorter than their counted length");
                        out.put_bytes(STUFFING_BYTE, n);
                        return;
                    }
                }
                continue;
            }
            let k = n.min(self.current.len());
            out.put_slice(&self.current[..k]);
            self.current = &self.current[k..];
            n -= k;
        }
    }
}

/// CRC-32/MPEG-2 table: polynomial 0x04C11DB7, MSB first (Annex A).
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC32 of a PSI section (Annex A): initial value all ones, no reflection, no final XOR.
/// Running it over a section including its CRC_32 field gives zero.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |crc, &byte| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ byte)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::audio_config;
    use bytes::Bytes;
    use std::collections::HashMap;

    // ---- a small demuxer that parses our output back -------------------------------------

    #[derive(Debug, Default)]
    struct Demuxed {
        pat: Option<Pat>,
        pmt: Option<Pmt>,
        /// PID -> reassembled PES packets, in order.
        pes: HashMap<u16, Vec<Pes>>,
        /// PID -> packets seen.
        packets: HashMap<u16, usize>,
        tables_seen: usize,
    }

    #[derive(Debug, PartialEq)]
    struct Pat {
        transport_stream_id: u16,
        programs: Vec<(u16, u16)>,
    }

    #[derive(Debug, PartialEq)]
    struct Pmt {
        program_number: u16,
        pcr_pid: u16,
        streams: Vec<(u8, u16)>,
    }

    #[derive(Debug, Default)]
    struct Pes {
        stream_id: u8,
        packet_len: u16,
        pts: u64,
        dts: Option<u64>,
        pcr: Option<u64>,
        random_access: bool,
        payload: Vec<u8>,
        /// Bytes of PES (header included) reassembled from packets.
        total_len: usize,
    }

    /// Bytes of one PES so far, with the PCR and random_access_indicator of its first packet.
    type PesStart = (Vec<u8>, Option<u64>, bool);

    fn demux(ts: &[u8]) -> Demuxed {
        assert_eq!(ts.len() % TS_PACKET_LEN, 0, "output is whole packets");
        let mut d = Demuxed::default();
        let mut last_cc: HashMap<u16, u8> = HashMap::new();
        let mut raw: HashMap<u16, Vec<PesStart>> = HashMap::new();
        for packet in ts.chunks_exact(TS_PACKET_LEN) {
            assert_eq!(packet[0], SYNC_BYTE);
            assert_eq!(packet[1] & 0x80, 0, "transport_error_indicator");
            let unit_start = packet[1] & 0x40 != 0;
            let pid = u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2]);
            assert_eq!(packet[3] >> 6, 0, "not scrambled");
            let afc = (packet[3] >> 4) & 0x3;
            let cc = packet[3] & 0x0F;
            assert!(afc == 0b01 || afc == 0b11, "every packet carries payload");
            if let Some(prev) = last_cc.insert(pid, cc) {
                assert_eq!(cc, (prev + 1) & 0x0F, "continuity on PID {pid:#x}");
            }
            *d.packets.entry(pid).or_default() += 1;

            let mut pos = 4;
            let mut pcr = None;
            let mut rai = false;
            if afc == 0b11 {
                let af_len = usize::from(packet[4]);
                assert!(af_len <= 183);
                if af_len > 0 {
                    let flags = packet[5];
                    rai = flags & AF_FLAG_RANDOM_ACCESS != 0;
                    assert_eq!(flags & !(AF_FLAG_RANDOM_ACCESS | AF_FLAG_PCR), 0);
                    let mut p = 6;
                    if flags & AF_FLAG_PCR != 0 {
                        let b = &packet[6..12];
                        let base = u64::from(b[0]) << 25
                            | u64::from(b[1]) << 17
                            | u64::from(b[2]) << 9
                            | u64::from(b[3]) << 1
                            | u64::from(b[4] >> 7);
                        assert_eq!(b[4] & 0x7E, 0x7E, "PCR reserved bits");
                        assert_eq!(u16::from(b[4] & 1) << 8 | u16::from(b[5]), 0);
                        pcr = Some(base);
                        p += PCR_LEN;
                    }
                    assert!(
                        packet[p..5 + af_len].iter().all(|&b| b == 0xFF),
                        "stuffing bytes"
                    );
                }
                pos = 5 + af_len;
            }
            let payload = &packet[pos..];
            assert!(!payload.is_empty());

            if pid == PAT_PID || pid == PMT_PID {
                assert!(unit_start, "each table fits one packet");
                assert_eq!(payload[0], 0, "pointer_field");
                let section = &payload[1..];
                let section_length = usize::from(section[1] & 0x0F) << 8 | usize::from(section[2]);
                let section = &section[..3 + section_length];
                assert_eq!(crc32_mpeg2(section), 0, "section CRC on PID {pid:#x}");
                assert!(payload[1 + 3 + section_length..].iter().all(|&b| b == 0xFF));
                assert_eq!(section[1] & 0xC0, 0x80);
                assert_eq!(section[5], 0xC1, "version 0, current");
                assert_eq!((section[6], section[7]), (0, 0));
                let ext = u16::from_be_bytes([section[3], section[4]]);
                let body = &section[8..section.len() - 4];
                if pid == PAT_PID {
                    assert_eq!(section[0], 0x00);
                    let programs = body
                        .chunks_exact(4)
                        .map(|c| {
                            (
                                u16::from_be_bytes([c[0], c[1]]),
                                u16::from_be_bytes([c[2] & 0x1F, c[3]]),
                            )
                        })
                        .collect();
                    d.pat = Some(Pat {
                        transport_stream_id: ext,
                        programs,
                    });
                    d.tables_seen += 1;
                } else {
                    assert_eq!(section[0], 0x02);
                    let pcr_pid = u16::from_be_bytes([body[0] & 0x1F, body[1]]);
                    let info_len = usize::from(body[2] & 0x0F) << 8 | usize::from(body[3]);
                    let mut streams = Vec::new();
                    let mut es = &body[4 + info_len..];
                    while !es.is_empty() {
                        let es_info_len = usize::from(es[3] & 0x0F) << 8 | usize::from(es[4]);
                        streams.push((es[0], u16::from_be_bytes([es[1] & 0x1F, es[2]])));
                        es = &es[5 + es_info_len..];
                    }
                    d.pmt = Some(Pmt {
                        program_number: ext,
                        pcr_pid,
                        streams,
                    });
                }
                continue;
            }
            let units = raw.entry(pid).or_default();
            if unit_start {
                units.push((payload.to_vec(), pcr, rai));
            } else {
                assert!(
                    pcr.is_none() && !rai,
                    "PCR/RAI only in a PES's first packet"
                );
                units
                    .last_mut()
                    .expect("PES continuation without a start")
                    .0
                    .extend_from_slice(payload);
            }
        }
        for (pid, units) in raw {
            let list = d.pes.entry(pid).or_default();
            for (bytes, pcr, random_access) in units {
                list.push(parse_pes(&bytes, pcr, random_access));
            }
        }
        d
    }

    fn decode_timestamp(b: &[u8], prefix: u8) -> u64 {
        assert_eq!(b[0] >> 4, prefix, "PTS/DTS prefix");
        assert_eq!(b[0] & 1, 1);
        assert_eq!(b[2] & 1, 1);
        assert_eq!(b[4] & 1, 1);
        u64::from((b[0] >> 1) & 0x07) << 30
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1)
    }

    fn parse_pes(b: &[u8], pcr: Option<u64>, random_access: bool) -> Pes {
        assert_eq!(&b[..3], &[0, 0, 1], "PES start code");
        let packet_len = u16::from_be_bytes([b[4], b[5]]);
        assert_eq!(b[6] & 0xC0, 0x80);
        let flags = b[7] >> 6;
        let header_len = usize::from(b[8]);
        let (pts, dts) = match flags {
            0b10 => (decode_timestamp(&b[9..14], 0b0010), None),
            0b11 => (
                decode_timestamp(&b[9..14], 0b0011),
                Some(decode_timestamp(&b[14..19], 0b0001)),
            ),
            other => panic!("PTS_DTS_flags {other:#b}"),
        };
        let payload = b[9 + header_len..].to_vec();
        if packet_len != 0 {
            assert_eq!(usize::from(packet_len), b.len() - 6, "PES_packet_length");
        }
        Pes {
            stream_id: b[3],
            packet_len,
            pts,
            dts,
            pcr,
            random_access,
            payload,
            total_len: b.len(),
        }
    }

    // ---- fixtures ---------------------------------------------------------------------------

    const SPS: &[u8] = &[0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5];
    const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];

    fn video_config() -> VideoConfig {
        VideoConfig {
            sps: Bytes::from_static(SPS),
            pps: Bytes::from_static(PPS),
            width: 320,
            height: 240,
            profile_idc: 0x42,
            constraint_flags: 0xC0,
            level_idc: 0x1E,
            frame_rate: Some((25, 1)),
        }
    }

    fn av_info() -> MediaInfo {
        MediaInfo {
            video: Some(video_config()),
            audio: audio_config(2, 48000, 2),
        }
    }

    fn avcc(nals: &[&[u8]]) -> Bytes {
        let mut b = Vec::new();
        for nal in nals {
            b.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            b.extend_from_slice(nal);
        }
        Bytes::from(b)
    }

    fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        let mut b = Vec::new();
        for nal in nals {
            b.extend_from_slice(&START_CODE);
            b.extend_from_slice(nal);
        }
        b
    }

    fn patterned(first: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| first.wrapping_add(i as u8)).collect()
    }

    fn video(pts: i64, dts: i64, keyframe: bool, nals: &[&[u8]]) -> Frame {
        Frame {
            track: TrackKind::Video,
            pts,
            dts,
            keyframe,
            data: avcc(nals),
        }
    }

    fn audio(pts: i64, data: Vec<u8>) -> Frame {
        Frame {
            track: TrackKind::Audio,
            pts,
            dts: pts,
            keyframe: true,
            data: Bytes::from(data),
        }
    }

    // ---- tests ------------------------------------------------------------------------------

    #[test]
    fn crc_check_value() {
        // The catalogued check value of CRC-32/MPEG-2.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn tables_describe_the_program() {
        let mut mux = TsMuxer::new(&av_info());
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        assert_eq!(out.len(), 2 * TS_PACKET_LEN);
        let d = demux(&out);
        assert_eq!(
            d.pat,
            Some(Pat {
                transport_stream_id: 1,
                programs: vec![(PROGRAM_NUMBER, PMT_PID)],
            })
        );
        assert_eq!(
            d.pmt,
            Some(Pmt {
                program_number: PROGRAM_NUMBER,
                pcr_pid: VIDEO_PID,
                streams: vec![(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)],
            })
        );
    }

    #[test]
    fn audio_only_stream_puts_pcr_on_audio() {
        let info = MediaInfo {
            video: None,
            audio: audio_config(2, 48000, 2),
        };
        let mut mux = TsMuxer::new(&info);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        mux.write_frame(&audio(0, patterned(1, 300)), &mut out)
            .unwrap();
        let d = demux(&out);
        let pmt = d.pmt.unwrap();
        assert_eq!(pmt.pcr_pid, AUDIO_PID);
        assert_eq!(pmt.streams, vec![(0x0F, AUDIO_PID)]);
        let pes = &d.pes[&AUDIO_PID][0];
        assert_eq!(pes.pcr, Some((TIMESTAMP_OFFSET - PCR_DELAY) as u64));
        let err = mux.write_frame(&video(0, 0, true, &[&[0x65, 1]]), &mut out);
        assert_eq!(
            err,
            Err(TsError::TrackNotConfigured {
                track: TrackKind::Video,
                pts: 0
            })
        );
    }

    #[test]
    fn keyframe_reassembles_to_annex_b_in_order() {
        let mut mux = TsMuxer::new(&av_info());
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let sei = patterned(0x06, 20);
        let mut idr = patterned(0x65, 1000);
        idr[0] = 0x65;
        let frame = video(3600, 0, true, &[&sei, &idr]);
        mux.write_frame(&frame, &mut out).unwrap();
        let d = demux(&out);
        let list = &d.pes[&VIDEO_PID];
        assert_eq!(list.len(), 1);
        let pes = &list[0];
        assert_eq!(pes.stream_id, 0xE0);
        assert_eq!(pes.packet_len, 0, "unbounded video PES");
        let mut expected = AUD_NAL.to_vec();
        expected.extend(annex_b(&[SPS, PPS, &sei, &idr]));
        assert_eq!(pes.payload, expected);
        assert!(pes.random_access);
        assert_eq!(pes.pts, 3600 + TIMESTAMP_OFFSET as u64);
        assert_eq!(pes.dts, Some(TIMESTAMP_OFFSET as u64));
        assert_eq!(pes.pcr, Some((TIMESTAMP_OFFSET - PCR_DELAY) as u64));
        assert!(pes.pcr.unwrap() <= pes.dts.unwrap());
    }

    #[test]
    fn non_keyframe_has_aud_but_no_parameter_sets_and_pts_only() {
        let mut mux = TsMuxer::new(&av_info());
        let mut out = BytesMut::new();
        let slice = patterned(0x41, 50);
        mux.write_frame(&video(7200, 7200, false, &[&slice]), &mut out)
            .unwrap();
        assert_eq!(out.len(), TS_PACKET_LEN);
        let d = demux(&out);
        let pes = &d.pes[&VIDEO_PID][0];
        let mut expected = AUD_NAL.to_vec();
        expected.extend(annex_b(&[&slice]));
        assert_eq!(pes.payload, expected);
        assert!(!pes.random_access);
        assert_eq!(pes.dts, None, "DTS omitted when equal to PTS");
        assert_eq!(pes.pts, 7200 + TIMESTAMP_OFFSET as u64);
        assert!(pes.pcr.is_some(), "every video PES carries a PCR");
    }

    #[test]
    fn in_band_aud_is_dropped() {
        let mut mux = TsMuxer::new(&av_info());
        let mut out = BytesMut::new();
        let slice = patterned(0x41, 10);
        mux.write_frame(&video(0, 0, false, &[&[0x09, 0xF0], &slice]), &mut out)
            .unwrap();
        let pes = &demux(&out).pes[&VIDEO_PID][0];
        let mut expected = AUD_NAL.to_vec();
        expected.extend(annex_b(&[&slice]));
        assert_eq!(pes.payload, expected);
    }

    /// Every PES size around the packet boundaries, with and without an adaptation field in
    /// the first packet, comes out as whole packets that reassemble exactly.
    #[test]
    fn every_size_packetizes_exactly() {
        let mut mux = TsMuxer::new(&av_info());
        let mut out = BytesMut::new();
        let mut expected = Vec::new();
        for len in 1..=600 {
            let mut nal = patterned(len as u8, len);
            nal[0] = 0x41;
            let keyframe = len % 3 == 0;
            mux.write_frame(&video(len as i64, len as i64, keyframe, &[&nal]), &mut out)
                .unwrap();
            expected.push((keyframe, nal.clone()));
            // Non-key audio takes the path with no adaptation field in the first packet.
            let mut sound = audio(len as i64, nal.clone());
            sound.keyframe = len % 2 == 0;
            mux.write_frame(&sound, &mut out).unwrap();
        }
        let d = demux(&out);
        let videos = &d.pes[&VIDEO_PID];
        let audios = &d.pes[&AUDIO_PID];
        assert_eq!(videos.len(), 600);
        assert_eq!(audios.len(), 600);
        for ((keyframe, nal), (v, a)) in expected.iter().zip(videos.iter().zip(audios)) {
            let mut want = AUD_NAL.to_vec();
            if *keyframe {
                want.extend(annex_b(&[SPS, PPS]));
            }
            want.extend(annex_b(&[nal]));
            assert_eq!(v.payload, want);
            assert_eq!(v.random_access, *keyframe);
            assert_eq!(&a.payload[ADTS_HEADER_LEN..], &nal[..]);
            assert_eq!(a.total_len, 6 + usize::from(a.packet_len));
            assert_eq!(a.random_access, a.pts % 2 == 0);
        }
    }

    #[test]
    fn adts_frames_round_trip() {
        let info = av_info();
        let config = info.audio.clone().unwrap();
        let mut mux = TsMuxer::new(&info);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let frames: Vec<Vec<u8>> = [5, 183, 184, 400, 1500].map(|n| patterned(7, n)).into();
        for (i, data) in frames.iter().enumerate() {
            mux.write_frame(&audio(1920 * i as i64, data.clone()), &mut out)
                .unwrap();
        }
        let d = demux(&out);
        let list = &d.pes[&AUDIO_PID];
        assert_eq!(list.len(), frames.len());
        for (i, (pes, data)) in list.iter().zip(&frames).enumerate() {
            assert_eq!(pes.stream_id, 0xC0);
            let adts = aac::adts_header(&config, data.len()).unwrap();
            assert_eq!(&pes.payload[..ADTS_HEADER_LEN], &adts);
            assert_eq!(&pes.payload[ADTS_HEADER_LEN..], &data[..]);
            assert_eq!(
                usize::from(pes.packet_len),
                8 + ADTS_HEADER_LEN + data.len()
            );
            assert_eq!(pes.pts, (1920 * i as i64 + TIMESTAMP_OFFSET) as u64);
            assert_eq!(pes.dts, None);
            assert_eq!(pes.pcr, None, "PCR is on the video PID");
            assert!(pes.random_access);
        }
    }

    #[test]
    fn continuity_counters_run_across_calls_and_segments() {
        let mut mux = TsMuxer::new(&av_info());
        let mut out = BytesMut::new();
        for segment in 0..20 {
            mux.write_tables(&mut out);
            for i in 0..5 {
                let t = (segment * 5 + i) * 3600;
                let nal = patterned(0x41, 300 + i as usize * 97);
                mux.write_frame(&video(t, t, i == 0, &[&nal]), &mut out)
                    .unwrap();
                mux.write_frame(&audio(t, patterned(0, 371)), &mut out)
                    .unwrap();
            }
        }
        // demux asserts CC continuity per PID over the whole buffer.
        let d = demux(&out);
        assert_eq!(d.packets[&PAT_PID], 20);
        assert_eq!(d.packets[&PMT_PID], 20);
        assert_eq!(d.tables_seen, 20);
        assert_eq!(d.pes[&VIDEO_PID].len(), 100);
    }

    #[test]
    fn timestamps_are_offset_and_wrap_at_33_bits() {
        let mut mux = TsMuxer::new(&av_info());
        let mut out = BytesMut::new();
        let near_wrap = TIMESTAMP_MODULUS - TIMESTAMP_OFFSET - 10;
        let nal: &[u8] = &[0x41, 1, 2];
        mux.write_frame(&video(near_wrap + 20, near_wrap, false, &[nal]), &mut out)
            .unwrap();
        // A B-frame stream's first DTS is below zero; it still lands above zero.
        mux.write_frame(&video(0, -7200, true, &[nal]), &mut out)
            .unwrap();
        mux.write_frame(&video(i64::MAX, i64::MIN, false, &[nal]), &mut out)
            .unwrap();
        let list = &demux(&out).pes[&VIDEO_PID];
        assert_eq!(list[0].pts, 10);
        assert_eq!(list[0].dts, Some((TIMESTAMP_MODULUS - 10) as u64));
        assert_eq!(
            list[0].pcr,
            Some((TIMESTAMP_MODULUS - 10 - PCR_DELAY) as u64)
        );
        assert_eq!(list[1].pts, TIMESTAMP_OFFSET as u64);
        assert_eq!(list[1].dts, Some((TIMESTAMP_OFFSET - 7200) as u64));
        assert_eq!(list[2].pts, wrap_timestamp(i64::MAX));
        assert!(list[2].pts < 1 << 33);
    }

    #[test]
    fn garbage_avcc_is_an_error_and_writes_nothing() {
        let mut mux = TsMuxer::new(&av_info());
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let before = out.clone();
        let cases: [(&[u8], usize, AvccProblem); 5] = [
            (&[], 0, AvccProblem::Empty),
            (&[0, 0, 1], 0, AvccProblem::TruncatedLength { available: 3 }),
            (&[0, 0, 0, 0, 0x65], 0, AvccProblem::ZeroLengthNal),
            (
                &[0, 0, 0, 2, 0x41, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1],
                6,
                AvccProblem::NalOverrun {
                    declared: 0xFFFF_FFFF,
                    available: 1,
                },
            ),
            (
                &[0, 0, 0, 1, 0x41, 0, 0],
                5,
                AvccProblem::TruncatedLength { available: 2 },
            ),
        ];
        for (data, offset, problem) in cases {
            let frame = Frame {
                track: TrackKind::Video,
                pts: 42,
                dts: 42,
                keyframe: true,
                data: Bytes::copy_from_slice(data),
            };
            let err = mux.write_frame(&frame, &mut out).unwrap_err();
            assert_eq!(
                err,
                TsError::BadAvcc {
                    pts: 42,
                    offset,
                    problem
                }
            );
            assert!(err.to_string().contains("pts 42"));
            assert_eq!(out, before, "nothing written on error");
        }
        // The counters did not move: the next frame continues the sequence.
        mux.write_frame(&video(0, 0, true, &[&[0x65, 0]]), &mut out)
            .unwrap();
        demux(&out);
    }

    #[test]
    fn oversized_audio_frame_is_an_error() {
        let mut mux = TsMuxer::new(&av_info());
        let mut out = BytesMut::new();
        let err = mux
            .write_frame(&audio(9, vec![0; 0x2000]), &mut out)
            .unwrap_err();
        assert_eq!(
            err,
            TsError::AudioFrameTooLong {
                pts: 9,
                len: 0x2000
            }
        );
        assert!(out.is_empty());
        let mut info = av_info();
        info.audio.as_mut().unwrap().object_type = 5;
        let mut mux = TsMuxer::new(&info);
        assert!(matches!(
            mux.write_frame(&audio(0, vec![0; 10]), &mut out),
            Err(TsError::UnsupportedAudioConfig { object_type: 5, .. })
        ));
    }

    #[test]
    fn large_keyframe_allocates_once() {
        let mut mux = TsMuxer::new(&av_info());
        let mut out = BytesMut::new();
        let big = patterned(0x65, 100_000);
        mux.write_frame(&video(0, 0, true, &[&big, &big]), &mut out)
            .unwrap();
        let payload = AUD_NAL.len() + 8 + SPS.len() + PPS.len() + 2 * (4 + big.len());
        let packets = packet_count(14 + payload, 8);
        assert_eq!(out.len(), packets * TS_PACKET_LEN);
        assert_eq!(out.capacity(), out.len(), "reserved exactly once");
    }
}
