//! H.264 bitstream helpers shared by sources, ingest and muxers.
//!
//! Owns: the NAL unit header (ITU-T H.264 §7.3.1, §7.4.1), emulation prevention
//! (§7.4.1, inserting and removing `emulation_prevention_three_byte`), walking the NAL units
//! of an access unit in the length-prefixed sample format of ISO 14496-15 ("AVCC") and in the
//! byte-stream format of H.264 Annex B, and reading a sequence parameter set (§7.3.2.1.1, with
//! the VUI timing of Annex E.1.1) far enough to describe the stream.
//!
//! Never: decode slices. Every parser here takes untrusted bytes and returns an error, never
//! panics.

use crate::media::bits::{BitReader, BitsError};
use crate::media::frame::VideoConfig;
use bytes::Bytes;
use std::fmt;

/// `nal_unit_type` of a coded slice of a non-IDR picture (H.264 Table 7-1).
pub const NAL_SLICE: u8 = 1;
/// `nal_unit_type` of a coded slice of an IDR picture.
pub const NAL_IDR_SLICE: u8 = 5;
/// `nal_unit_type` of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// `nal_unit_type` of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// `nal_unit_type` of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// `nal_unit_type` of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// Length of the NAL unit size prefix tessera uses in `Frame` payloads.
pub const AVCC_LENGTH_SIZE: usize = 4;

/// What went wrong reading H.264 data, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum H264Error {
    /// A syntax element could not be read.
    Syntax {
        /// Name of the syntax element, as the spec spells it.
        field: &'static str,
        source: BitsError,
    },
    /// A syntax element holds a value the spec does not allow (or tessera cannot represent).
    InvalidValue { field: &'static str, value: u64 },
    /// A NAL unit of one type was expected and another was found.
    WrongNalType { expected: u8, found: u8 },
    /// A NAL unit had no header byte.
    EmptyNalUnit,
    /// A NAL unit length prefix at byte `offset` declares more bytes than remain.
    AvccTruncated {
        offset: usize,
        declared: usize,
        available: usize,
    },
    /// An AVCC length prefix size other than 1, 2 or 4 bytes.
    AvccLengthSize(usize),
}

impl fmt::Display for H264Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            H264Error::Syntax { field, source } => write!(f, "H.264 {field}: {source}"),
            H264Error::InvalidValue { field, value } => {
                write!(f, "H.264 {field} has invalid value {value}")
            }
            H264Error::WrongNalType { expected, found } => {
                write!(f, "expected H.264 NAL unit type {expected}, found {found}")
            }
            H264Error::EmptyNalUnit => write!(f, "empty H.264 NAL unit"),
            H264Error::AvccTruncated {
                offset,
                declared,
                available,
            } => write!(
                f,
                "NAL unit at byte {offset} declares {declared} bytes but {available} remain"
            ),
            H264Error::AvccLengthSize(size) => {
                write!(
                    f,
                    "unsupported NAL unit length size {size} (expected 1, 2 or 4)"
                )
            }
        }
    }
}

impl std::error::Error for H264Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            H264Error::Syntax { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `nal_unit_type` (the low 5 bits of the NAL unit header, §7.3.1), or `None` for an empty
/// NAL unit.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|header| header & 0x1F)
}

/// `nal_ref_idc` (bits 5..6 of the NAL unit header, §7.3.1), or `None` for an empty NAL unit.
pub fn nal_ref_idc(nal: &[u8]) -> Option<u8> {
    nal.first().map(|header| (header >> 5) & 0x3)
}

/// Turns an RBSP (or a whole NAL unit: the header byte is never 0) into NAL unit payload
/// bytes by inserting `emulation_prevention_three_byte` (§7.4.1) wherever two zero bytes are
/// followed by a byte in 0..=3, and after a final zero byte.
pub fn escape_emulation(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 4);
    escape_emulation_into(rbsp, &mut out);
    out
}

/// [`escape_emulation`], appending to `out`.
pub fn escape_emulation_into(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0usize;
    for &byte in rbsp {
        if zeros >= 2 && byte <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(byte);
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
    // §7.4.1: the last byte of a NAL unit is never 0x00.
    if zeros > 0 {
        out.push(3);
    }
}

/// Removes every `emulation_prevention_three_byte` (§7.3.1): a 0x03 after two zero bytes.
pub fn unescape_emulation(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &byte in nal {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        out.push(byte);
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// The NAL units of a length-prefixed buffer (the ISO 14496-15 sample format of `Frame` video
/// payloads). Zero-length entries are skipped. A truncated entry yields one error, then the
/// iterator ends.
#[derive(Clone, Debug)]
pub struct AvccNalUnits<'a> {
    data: &'a [u8],
    offset: usize,
    length_size: usize,
    failed: bool,
}

/// Iterates the NAL units of an AVCC buffer with 4-byte length prefixes.
pub fn avcc_nal_units(data: &[u8]) -> AvccNalUnits<'_> {
    AvccNalUnits {
        data,
        offset: 0,
        length_size: AVCC_LENGTH_SIZE,
        failed: false,
    }
}

/// Iterates the NAL units of an AVCC buffer whose prefixes are `length_size` bytes
/// (`lengthSizeMinusOne + 1` of the `avcC` box: 1, 2 or 4).
pub fn avcc_nal_units_with_length_size(
    data: &[u8],
    length_size: usize,
) -> Result<AvccNalUnits<'_>, H264Error> {
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(H264Error::AvccLengthSize(length_size));
    }
    Ok(AvccNalUnits {
        data,
        offset: 0,
        length_size,
        failed: false,
    })
}

impl<'a> Iterator for AvccNalUnits<'a> {
    type Item = Result<&'a [u8], H264Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed || self.offset >= self.data.len() {
                return None;
            }
            let rest = &self.data[self.offset..];
            let Some(prefix) = rest.get(..self.length_size) else {
                self.failed = true;
                return Some(Err(H264Error::AvccTruncated {
                    offset: self.offset,
                    declared: self.length_size,
                    available: rest.len(),
                }));
            };
            let declared = prefix
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            let body = &rest[self.length_size..];
            let Some(nal) = body.get(..declared) else {
                self.failed = true;
                return Some(Err(H264Error::AvccTruncated {
                    offset: self.offset,
                    declared,
                    available: body.len(),
                }));
            };
            self.offset += self.length_size + declared;
            if !nal.is_empty() {
                return Some(Ok(nal));
            }
        }
    }
}

/// The NAL units of an Annex B byte stream (H.264 §B.2): bytes between `0x000001` start
/// codes, without the trailing zero bytes (`trailing_zero_8bits`, or the first byte of a
/// 4-byte start code). Bytes before the first start code and empty NAL units are skipped.
#[derive(Clone, Debug)]
pub struct AnnexBNalUnits<'a> {
    data: &'a [u8],
    /// Start of the next NAL unit payload, or `None` when no start code is left.
    next: Option<usize>,
}

/// Iterates the NAL units of an Annex B buffer.
pub fn annex_b_nal_units(data: &[u8]) -> AnnexBNalUnits<'_> {
    AnnexBNalUnits {
        data,
        next: find_start_code(data, 0).map(|at| at + 3),
    }
}

/// Index of the first byte of the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let tail = data.get(from..)?;
    tail.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| from + i)
}

impl<'a> Iterator for AnnexBNalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let start = self.next?;
            let end = match find_start_code(self.data, start) {
                Some(at) => {
                    self.next = Some(at + 3);
                    at
                }
                None => {
                    self.next = None;
                    self.data.len()
                }
            };
            let mut nal = self.data.get(start..end).unwrap_or(&[]);
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }
}

/// Appends the NAL units of a 4-byte-prefixed AVCC buffer to `out` as an Annex B byte
/// stream (4-byte start codes).
pub fn avcc_to_annex_b(avcc: &[u8], out: &mut Vec<u8>) -> Result<(), H264Error> {
    for nal in avcc_nal_units(avcc) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal?);
    }
    Ok(())
}

/// What tessera needs to know from a sequence parameter set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    /// The byte after `profile_idc`: `constraint_set0_flag` .. `constraint_set5_flag` and
    /// `reserved_zero_2bits`.
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub seq_parameter_set_id: u32,
    pub chroma_format_idc: u32,
    /// Displayed width in luma samples, after frame cropping (§7.4.2.1.1, eq. 7-19 .. 7-22).
    pub width: u32,
    /// Displayed height in luma samples, after frame cropping.
    pub height: u32,
    pub frame_mbs_only: bool,
    /// Frames per second as a reduced fraction, from the VUI timing information (Annex E.2.1:
    /// one frame is two ticks), when present.
    pub frame_rate: Option<(u32, u32)>,
}

fn read_u(r: &mut BitReader<'_>, bits: u32, field: &'static str) -> Result<u32, H264Error> {
    r.u(bits)
        .map_err(|source| H264Error::Syntax { field, source })
}

fn read_flag(r: &mut BitReader<'_>, field: &'static str) -> Result<bool, H264Error> {
    r.flag()
        .map_err(|source| H264Error::Syntax { field, source })
}

fn read_ue(r: &mut BitReader<'_>, field: &'static str) -> Result<u32, H264Error> {
    r.ue().map_err(|source| H264Error::Syntax { field, source })
}

fn read_se(r: &mut BitReader<'_>, field: &'static str) -> Result<i32, H264Error> {
    r.se().map_err(|source| H264Error::Syntax { field, source })
}

fn read_ue_max(r: &mut BitReader<'_>, field: &'static str, max: u32) -> Result<u32, H264Error> {
    let value = read_ue(r, field)?;
    if value > max {
        return Err(H264Error::InvalidValue {
            field,
            value: value.into(),
        });
    }
    Ok(value)
}

/// Profiles whose SPS carries `chroma_format_idc` and the fields after it (§7.3.2.1.1).
fn has_chroma_format(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Skips one `scaling_list()` (§7.3.2.1.1.1) of `size` coefficients.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), H264Error> {
    let mut last_scale: i32 = 8;
    let mut next_scale: i32 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = read_se(r, "delta_scale")?;
            if !(-128..=127).contains(&delta) {
                return Err(H264Error::InvalidValue {
                    field: "delta_scale",
                    value: delta.unsigned_abs().into(),
                });
            }
            next_scale = (last_scale + delta + 256) % 256;
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Reads a sequence parameter set NAL unit (with its header byte, emulation prevention still
/// in place): `seq_parameter_set_data()` of §7.3.2.1.1 and the VUI of Annex E.1.1 up to the
/// timing information.
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H264Error> {
    let found = nal_unit_type(nal).ok_or(H264Error::EmptyNalUnit)?;
    if found != NAL_SPS {
        return Err(H264Error::WrongNalType {
            expected: NAL_SPS,
            found,
        });
    }
    let rbsp = unescape_emulation(&nal[1..]);
    let r = &mut BitReader::new(&rbsp);

    let profile_idc = read_u(r, 8, "profile_idc")? as u8;
    let constraint_flags = read_u(r, 8, "constraint_set_flags")? as u8;
    let level_idc = read_u(r, 8, "level_idc")? as u8;
    let seq_parameter_set_id = read_ue_max(r, "seq_parameter_set_id", 31)?;

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if has_chroma_format(profile_idc) {
        chroma_format_idc = read_ue_max(r, "chroma_format_idc", 3)?;
        if chroma_format_idc == 3 {
            separate_colour_plane = read_flag(r, "separate_colour_plane_flag")?;
        }
        read_ue_max(r, "bit_depth_luma_minus8", 6)?;
        read_ue_max(r, "bit_depth_chroma_minus8", 6)?;
        read_flag(r, "qpprime_y_zero_transform_bypass_flag")?;
        if read_flag(r, "seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if read_flag(r, "seq_scaling_list_present_flag")? {
                    skip_scaling_list(r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    read_ue_max(r, "log2_max_frame_num_minus4", 12)?;
    match read_ue_max(r, "pic_order_cnt_type", 2)? {
        0 => {
            read_ue_max(r, "log2_max_pic_order_cnt_lsb_minus4", 12)?;
        }
        1 => {
            read_flag(r, "delta_pic_order_always_zero_flag")?;
            read_se(r, "offset_for_non_ref_pic")?;
            read_se(r, "offset_for_top_to_bottom_field")?;
            let cycle = read_ue_max(r, "num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..cycle {
                read_se(r, "offset_for_ref_frame")?;
            }
        }
        _ => {}
    }
    read_ue(r, "max_num_ref_frames")?;
    read_flag(r, "gaps_in_frame_num_value_allowed_flag")?;
    let width_mbs = u64::from(read_ue(r, "pic_width_in_mbs_minus1")?) + 1;
    let height_map_units = u64::from(read_ue(r, "pic_height_in_map_units_minus1")?) + 1;
    let frame_mbs_only = read_flag(r, "frame_mbs_only_flag")?;
    if !frame_mbs_only {
        read_flag(r, "mb_adaptive_frame_field_flag")?;
    }
    read_flag(r, "direct_8x8_inference_flag")?;

    // §7.4.2.1.1: frame size in luma samples, then the cropping window (eq. 7-19 .. 7-22).
    let frame_height_factor = if frame_mbs_only { 1 } else { 2 };
    let coded_width = width_mbs * 16;
    let coded_height = height_map_units * 16 * frame_height_factor;
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1, frame_height_factor),
        1 => (2, 2 * frame_height_factor),
        2 => (2, frame_height_factor),
        _ => (1, frame_height_factor),
    };
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if read_flag(r, "frame_cropping_flag")? {
        let left = u64::from(read_ue(r, "frame_crop_left_offset")?);
        let right = u64::from(read_ue(r, "frame_crop_right_offset")?);
        let top = u64::from(read_ue(r, "frame_crop_top_offset")?);
        let bottom = u64::from(read_ue(r, "frame_crop_bottom_offset")?);
        crop_x = (left + right) * crop_unit_x;
        crop_y = (top + bottom) * crop_unit_y;
    }
    let width = coded_width
        .checked_sub(crop_x)
        .filter(|w| *w > 0 && *w <= u64::from(u32::MAX))
        .ok_or(H264Error::InvalidValue {
            field: "frame_crop_left_offset + frame_crop_right_offset",
            value: crop_x,
        })?;
    let height = coded_height
        .checked_sub(crop_y)
        .filter(|h| *h > 0 && *h <= u64::from(u32::MAX))
        .ok_or(H264Error::InvalidValue {
            field: "frame_crop_top_offset + frame_crop_bottom_offset",
            value: crop_y,
        })?;

    let frame_rate = if read_flag(r, "vui_parameters_present_flag")? {
        parse_vui_frame_rate(r)?
    } else {
        None
    };

    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        seq_parameter_set_id,
        chroma_format_idc,
        // Both fit: checked against u32::MAX above.
        width: width as u32,
        height: height as u32,
        frame_mbs_only,
        frame_rate,
    })
}

/// Reads `vui_parameters()` (Annex E.1.1) up to `timing_info_present_flag` and its fields,
/// and returns the frame rate they give (E.2.1: a frame lasts two ticks).
fn parse_vui_frame_rate(r: &mut BitReader<'_>) -> Result<Option<(u32, u32)>, H264Error> {
    /// `aspect_ratio_idc` value that signals an explicit `sar_width`/`sar_height` (Table E-1).
    const EXTENDED_SAR: u32 = 255;
    if read_flag(r, "aspect_ratio_info_present_flag")?
        && read_u(r, 8, "aspect_ratio_idc")? == EXTENDED_SAR
    {
        read_u(r, 16, "sar_width")?;
        read_u(r, 16, "sar_height")?;
    }
    if read_flag(r, "overscan_info_present_flag")? {
        read_flag(r, "overscan_appropriate_flag")?;
    }
    if read_flag(r, "video_signal_type_present_flag")? {
        read_u(r, 3, "video_format")?;
        read_flag(r, "video_full_range_flag")?;
        if read_flag(r, "colour_description_present_flag")? {
            read_u(r, 8, "colour_primaries")?;
            read_u(r, 8, "transfer_characteristics")?;
            read_u(r, 8, "matrix_coefficients")?;
        }
    }
    if read_flag(r, "chroma_loc_info_present_flag")? {
        read_ue(r, "chroma_sample_loc_type_top_field")?;
        read_ue(r, "chroma_sample_loc_type_bottom_field")?;
    }
    if !read_flag(r, "timing_info_present_flag")? {
        return Ok(None);
    }
    let num_units_in_tick = read_u(r, 32, "num_units_in_tick")?;
    let time_scale = read_u(r, 32, "time_scale")?;
    // Both must be greater than 0 (E.2.1); a stream that breaks this just has no known rate.
    if num_units_in_tick == 0 || time_scale == 0 {
        return Ok(None);
    }
    let num = u64::from(time_scale);
    let den = 2 * u64::from(num_units_in_tick);
    let divisor = gcd(num, den);
    let (num, den) = (num / divisor, den / divisor);
    // `num` <= time_scale fits; `den` may not when num_units_in_tick is odd and huge.
    Ok(u32::try_from(den).ok().map(|den| (num as u32, den)))
}

/// Builds the [`VideoConfig`] of a stream from its SPS and PPS NAL units (each with its
/// header byte, no start code or length prefix).
pub fn video_config(sps: Bytes, pps: Bytes) -> Result<VideoConfig, H264Error> {
    let info = parse_sps(&sps)?;
    let found = nal_unit_type(&pps).ok_or(H264Error::EmptyNalUnit)?;
    if found != NAL_PPS {
        return Err(H264Error::WrongNalType {
            expected: NAL_PPS,
            found,
        });
    }
    let width = u16::try_from(info.width).map_err(|_| H264Error::InvalidValue {
        field: "pic_width_in_mbs_minus1",
        value: info.width.into(),
    })?;
    let height = u16::try_from(info.height).map_err(|_| H264Error::InvalidValue {
        field: "pic_height_in_map_units_minus1",
        value: info.height.into(),
    })?;
    Ok(VideoConfig {
        sps,
        pps,
        width,
        height,
        profile_idc: info.profile_idc,
        constraint_flags: info.constraint_flags,
        level_idc: info.level_idc,
        frame_rate: info.frame_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x264's SPS for 1280x720 High profile level 3.1 at 25 fps.
    const X264_SPS_720P: &[u8] = &[
        0x67, 0x64, 0x00, 0x1F, 0xAC, 0xD9, 0x40, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x83, 0x19, 0x60,
    ];

    #[test]
    fn emulation_prevention_round_trips() {
        let cases: &[(&[u8], &[u8])] = &[
            (&[0, 0, 1], &[0, 0, 3, 1]),
            (&[0, 0, 2, 0, 0, 3, 7], &[0, 0, 3, 2, 0, 0, 3, 3, 7]),
            (&[0, 0, 4], &[0, 0, 4]),
            (&[0x65, 0, 0, 0, 0, 1], &[0x65, 0, 0, 3, 0, 0, 3, 1]),
            (&[], &[]),
        ];
        for (rbsp, escaped) in cases {
            assert_eq!(&escape_emulation(rbsp)[..], *escaped, "escape {rbsp:?}");
            assert_eq!(
                &unescape_emulation(escaped)[..],
                *rbsp,
                "unescape {escaped:?}"
            );
        }
        // A NAL unit never ends in a zero byte (cabac_zero_word padding gets a final 0x03).
        assert_eq!(escape_emulation(&[1, 0]), [1, 0, 3]);
        assert_eq!(escape_emulation(&[0, 0, 0]), [0, 0, 3, 0, 3]);
        // No escaped NAL unit contains a start code, and unescaping restores the input.
        let noisy: Vec<u8> = (0..4096u32)
            .map(|i| (i * 7919 % 5) as u8)
            .chain([9])
            .collect();
        let escaped = escape_emulation(&noisy);
        assert!(
            !escaped
                .windows(3)
                .any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2)
        );
        assert_eq!(unescape_emulation(&escaped), noisy);
    }

    /// x264's SPS for 1920x1080 Main profile at 30000/1001 fps: coded 1088 lines, cropped.
    const X264_SPS_1080P_MAIN: &[u8] = &[
        0x67, 0x4D, 0x40, 0x28, 0xEC, 0xA0, 0x3C, 0x01, 0x13, 0xF2, 0xE0, 0x22, 0x00, 0x00, 0x07,
        0xD2, 0x00, 0x01, 0xD4, 0xC0, 0x1E, 0x30, 0x63, 0x2C,
    ];

    #[test]
    fn parses_cropped_sps() {
        let sps = parse_sps(X264_SPS_1080P_MAIN).unwrap();
        assert_eq!(
            (sps.profile_idc, sps.constraint_flags, sps.level_idc),
            (77, 0x40, 40)
        );
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.frame_rate, Some((30_000, 1001)));
    }

    #[test]
    fn parses_x264_sps() {
        let sps = parse_sps(X264_SPS_720P).unwrap();
        assert_eq!(sps.profile_idc, 100);
        assert_eq!(sps.constraint_flags, 0);
        assert_eq!(sps.level_idc, 31);
        assert_eq!(sps.chroma_format_idc, 1);
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert!(sps.frame_mbs_only);
        assert_eq!(sps.frame_rate, Some((25, 1)));
    }

    #[test]
    fn sps_errors_carry_the_field() {
        assert_eq!(parse_sps(&[]), Err(H264Error::EmptyNalUnit));
        assert_eq!(
            parse_sps(&[0x68, 0xCE]),
            Err(H264Error::WrongNalType {
                expected: NAL_SPS,
                found: NAL_PPS
            })
        );
        match parse_sps(&X264_SPS_720P[..6]) {
            Err(H264Error::Syntax { field, .. }) => assert!(!field.is_empty()),
            other => panic!("truncated SPS parsed as {other:?}"),
        }
        // Every prefix of a real SPS fails cleanly or parses; none panics.
        for len in 0..X264_SPS_720P.len() {
            let _ = parse_sps(&X264_SPS_720P[..len]);
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                buf.push((seed >> 24) as u8 & if seed & 1 == 0 { 0x03 } else { 0xFF });
            }
            let _ = parse_sps(&buf);
            if let Some(first) = buf.first_mut() {
                *first = 0x67;
            }
            let _ = parse_sps(&buf);
            let _ = avcc_nal_units(&buf).count();
            let _ = annex_b_nal_units(&buf).count();
            let _ = unescape_emulation(&buf);
            let _ = video_config(Bytes::from(buf.clone()), Bytes::from_static(&[0x68]));
        }
    }

    #[test]
    fn avcc_iteration() {
        let buf = [0, 0, 0, 2, 0x65, 0xAA, 0, 0, 0, 0, 0, 0, 0, 1, 0x41];
        let nals: Vec<_> = avcc_nal_units(&buf).collect();
        assert_eq!(nals, vec![Ok(&[0x65, 0xAA][..]), Ok(&[0x41][..])]);

        let truncated = [0, 0, 0, 1, 0x09, 0, 0, 0, 5, 0x41];
        let nals: Vec<_> = avcc_nal_units(&truncated).collect();
        assert_eq!(
            nals,
            vec![
                Ok(&[0x09][..]),
                Err(H264Error::AvccTruncated {
                    offset: 5,
                    declared: 5,
                    available: 1
                })
            ]
        );
        let short_prefix: Vec<_> = avcc_nal_units(&[0, 0]).collect();
        assert_eq!(short_prefix.len(), 1);
        assert!(short_prefix[0].is_err());

        let two_byte = avcc_nal_units_with_length_size(&[0, 1, 0x67, 0, 1, 0x68], 2).unwrap();
        assert_eq!(two_byte.count(), 2);
        assert_eq!(
            avcc_nal_units_with_length_size(&[], 3).err(),
            Some(H264Error::AvccLengthSize(3))
        );

        let mut annex_b = Vec::new();
        avcc_to_annex_b(&buf, &mut annex_b).unwrap();
        assert_eq!(annex_b, [0, 0, 0, 1, 0x65, 0xAA, 0, 0, 0, 1, 0x41]);
    }

    #[test]
    fn annex_b_iteration() {
        let stream = [
            0xFF, 0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 0, 1, 0, 0, 1, 0x65, 0, 0,
            3, 1, 0,
        ];
        let nals: Vec<&[u8]> = annex_b_nal_units(&stream).collect();
        assert_eq!(
            nals,
            vec![
                &[0x67, 0x42][..],
                &[0x68, 0xCE][..],
                &[0x65, 0, 0, 3, 1][..]
            ]
        );
        assert_eq!(annex_b_nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(annex_b_nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(annex_b_nal_units(&[]).count(), 0);
    }

    #[test]
    fn video_config_needs_a_pps() {
        let sps = Bytes::from_static(X264_SPS_720P);
        assert_eq!(
            video_config(sps.clone(), Bytes::from_static(&[0x65])),
            Err(H264Error::WrongNalType {
                expected: NAL_PPS,
                found: NAL_IDR_SLICE
            })
        );
        let config = video_config(sps, Bytes::from_static(&[0x68, 0xEB, 0xE3, 0xCB])).unwrap();
        assert_eq!(config.codec_string(), "avc1.64001f");
        assert_eq!((config.width, config.height), (1280, 720));
        assert_eq!(config.frame_rate, Some((25, 1)));
    }
}
