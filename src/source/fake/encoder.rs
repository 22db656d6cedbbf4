//! A lossless H.264 writer for the `fake://` source that needs no transform coding: IDR
//! pictures made only of I_PCM macroblocks, and P pictures made of P_Skip macroblocks
//! (CAVLC `mb_skip_run`) plus I_PCM macroblocks where the picture changed.
//!
//! Implements, from ITU-T H.264: the NAL unit header (§7.3.1), `seq_parameter_set_data()`
//! (§7.3.2.1.1) with `vui_parameters()` (Annex E.1.1), `pic_parameter_set_rbsp()` (§7.3.2.2),
//! `slice_header()` (§7.3.3) with `ref_pic_list_modification()` (§7.3.3.1) and
//! `dec_ref_pic_marking()` (§7.3.3.3), `slice_data()` (§7.3.4) and the I_PCM case of
//! `macroblock_layer()` (§7.3.5).
//!
//! Why it decodes bit-exactly: I_PCM samples are copied verbatim (§8.3.5); every motion vector
//! in the stream is zero, so the P_Skip prediction (§8.4.1.1) is always the zero vector and a
//! skipped macroblock is an exact copy of the reference picture (the previous frame); the
//! deblocking filter is off (`disable_deblocking_filter_idc = 1`, §7.4.3).
//!
//! The stream is Constrained Baseline (profile_idc 66, constraint_set0 and constraint_set1,
//! Annex A.2.1.1) level 3.0, 320x240, 25 fps, one slice per picture, no reordering.
//!
//! Never: paints pictures (see `picture`) or keeps time.

use crate::media::bits::BitWriter;
use crate::media::h264::{NAL_IDR_SLICE, NAL_PPS, NAL_SLICE, NAL_SPS, escape_emulation_into};
use crate::source::fake::picture::{
    DirtyMacroblocks, HEIGHT_MBS, MB_COUNT, PCM_SAMPLES_PER_MB, Picture, WIDTH_MBS,
};

/// `profile_idc` 66: Baseline.
pub const PROFILE_IDC: u8 = 66;
/// constraint_set0_flag and constraint_set1_flag: Constrained Baseline (Annex A.2.1.1).
pub const CONSTRAINT_FLAGS: u8 = 0xC0;
/// `level_idc` 30: level 3.0.
pub const LEVEL_IDC: u8 = 30;
/// Frames per second, signalled in the VUI as `time_scale / (2 * num_units_in_tick)`.
pub const FRAME_RATE: u32 = 25;
/// `log2_max_frame_num_minus4 + 4`: `frame_num` counts 0..16 and wraps.
const LOG2_MAX_FRAME_NUM: u32 = 4;
const MAX_FRAME_NUM: u32 = 1 << LOG2_MAX_FRAME_NUM;
/// `pic_order_cnt_type` 2: output order is decoding order, no POC fields in slices.
const PIC_ORDER_CNT_TYPE: u32 = 2;

/// `nal_ref_idc` of parameter sets and IDR slices.
const NAL_REF_IDC_IDR: u8 = 3;
/// `nal_ref_idc` of P slices: they are references for the next picture.
const NAL_REF_IDC_P: u8 = 2;

/// `slice_type` values 5..9 say every slice of the picture has this type (Table 7-6).
const SLICE_TYPE_P_ALL: u32 = 5;
const SLICE_TYPE_I_ALL: u32 = 7;
/// `mb_type` of I_PCM in an I slice (Table 7-11) and in a P slice (Table 7-13: 5 + 25).
const MB_TYPE_I_PCM_IN_I: u32 = 25;
const MB_TYPE_I_PCM_IN_P: u32 = 30;

/// Bytes of one coded I_PCM macroblock at most: the `mb_skip_run` before it and `mb_type`
/// (at most 17 + 9 bits), alignment, and the samples. Used only to size buffers.
const PCM_MB_MAX_BYTES: usize = PCM_SAMPLES_PER_MB + 5;

/// Appends a NAL unit (header byte, then the RBSP written by `write` with emulation
/// prevention, §7.4.1) to `out`.
fn write_nal_unit(
    out: &mut Vec<u8>,
    nal_ref_idc: u8,
    nal_unit_type: u8,
    rbsp_capacity: usize,
    write: impl FnOnce(&mut BitWriter),
) {
    let mut w = BitWriter::with_capacity(rbsp_capacity);
    write(&mut w);
    let rbsp = w.into_bytes();
    out.reserve(rbsp.len() + rbsp.len() / 256 + 8);
    // forbidden_zero_bit 0, nal_ref_idc, nal_unit_type (§7.3.1).
    out.push((nal_ref_idc << 5) | nal_unit_type);
    escape_emulation_into(&rbsp, out);
}

/// A parameter set NAL unit, without start code or length prefix.
fn parameter_set(nal_unit_type: u8, write: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
    let mut nal = Vec::new();
    write_nal_unit(&mut nal, NAL_REF_IDC_IDR, nal_unit_type, 32, write);
    nal
}

/// A one-NAL-unit access unit in the `Frame` layout: a 4-byte big-endian length, then the
/// NAL unit (the ISO 14496-15 sample format).
fn avcc_access_unit(
    nal_ref_idc: u8,
    nal_unit_type: u8,
    rbsp_capacity: usize,
    write: impl FnOnce(&mut BitWriter),
) -> Vec<u8> {
    let mut au = Vec::with_capacity(rbsp_capacity + rbsp_capacity / 256 + 16);
    au.extend_from_slice(&[0; 4]);
    write_nal_unit(&mut au, nal_ref_idc, nal_unit_type, rbsp_capacity, write);
    // A picture is at most MB_COUNT I_PCM macroblocks plus headers (~120 kB): fits in u32.
    let len = (au.len() - 4) as u32;
    au[..4].copy_from_slice(&len.to_be_bytes());
    au
}

/// The sequence parameter set NAL unit (§7.3.2.1.1), without start code or length prefix.
pub fn sequence_parameter_set() -> Vec<u8> {
    parameter_set(NAL_SPS, |w| {
        w.u(8, PROFILE_IDC.into());
        w.u(8, CONSTRAINT_FLAGS.into());
        w.u(8, LEVEL_IDC.into());
        w.ue(0); // seq_parameter_set_id
        w.ue(LOG2_MAX_FRAME_NUM - 4); // log2_max_frame_num_minus4
        w.ue(PIC_ORDER_CNT_TYPE);
        w.ue(1); // max_num_ref_frames
        w.flag(false); // gaps_in_frame_num_value_allowed_flag
        w.ue(WIDTH_MBS as u32 - 1); // pic_width_in_mbs_minus1
        w.ue(HEIGHT_MBS as u32 - 1); // pic_height_in_map_units_minus1
        w.flag(true); // frame_mbs_only_flag
        w.flag(true); // direct_8x8_inference_flag
        w.flag(false); // frame_cropping_flag
        w.flag(true); // vui_parameters_present_flag
        write_vui(w);
        w.rbsp_trailing_bits();
    })
}

/// `vui_parameters()` (Annex E.1.1): timing for 25 fps and a bitstream restriction that tells
/// decoders no picture waits for reordering.
fn write_vui(w: &mut BitWriter) {
    w.flag(false); // aspect_ratio_info_present_flag
    w.flag(false); // overscan_info_present_flag
    w.flag(false); // video_signal_type_present_flag
    w.flag(false); // chroma_loc_info_present_flag
    w.flag(true); // timing_info_present_flag
    w.u(32, 1); // num_units_in_tick
    w.u(32, 2 * FRAME_RATE); // time_scale: a frame is two ticks (E.2.1)
    w.flag(true); // fixed_frame_rate_flag
    w.flag(false); // nal_hrd_parameters_present_flag
    w.flag(false); // vcl_hrd_parameters_present_flag
    w.flag(false); // pic_struct_present_flag
    w.flag(true); // bitstream_restriction_flag
    w.flag(true); // motion_vectors_over_pic_boundaries_flag
    w.ue(0); // max_bytes_per_pic_denom: no limit
    w.ue(0); // max_bits_per_mb_denom: no limit
    w.ue(16); // log2_max_mv_length_horizontal
    w.ue(16); // log2_max_mv_length_vertical
    w.ue(0); // max_num_reorder_frames
    w.ue(1); // max_dec_frame_buffering
}

/// The picture parameter set NAL unit (§7.3.2.2), without start code or length prefix.
pub fn picture_parameter_set() -> Vec<u8> {
    parameter_set(NAL_PPS, |w| {
        w.ue(0); // pic_parameter_set_id
        w.ue(0); // seq_parameter_set_id
        w.flag(false); // entropy_coding_mode_flag: CAVLC
        w.flag(false); // bottom_field_pic_order_in_frame_present_flag
        w.ue(0); // num_slice_groups_minus1
        w.ue(0); // num_ref_idx_l0_default_active_minus1
        w.ue(0); // num_ref_idx_l1_default_active_minus1
        w.flag(false); // weighted_pred_flag
        w.u(2, 0); // weighted_bipred_idc
        w.se(0); // pic_init_qp_minus26
        w.se(0); // pic_init_qs_minus26
        w.se(0); // chroma_qp_index_offset
        w.flag(true); // deblocking_filter_control_present_flag
        w.flag(false); // constrained_intra_pred_flag
        w.flag(false); // redundant_pic_cnt_present_flag
        w.rbsp_trailing_bits();
    })
}

/// Writes one I_PCM `macroblock_layer()` (§7.3.5) of macroblock `mb_addr`.
fn write_pcm_macroblock(w: &mut BitWriter, mb_type: u32, picture: &Picture, mb_addr: usize) {
    let mut samples = [0u8; PCM_SAMPLES_PER_MB];
    picture.pcm_samples(mb_addr, &mut samples);
    w.ue(mb_type);
    w.align_zero(); // pcm_alignment_zero_bit
    w.bytes(&samples);
}

/// Encodes pictures one after another, keeping `frame_num` and `idr_pic_id`.
#[derive(Clone, Debug, Default)]
pub struct PcmSkipEncoder {
    /// `frame_num` of the last picture (§7.4.3): 0 at an IDR, then +1 per picture, all
    /// pictures being references.
    frame_num: u32,
    /// `idr_pic_id` of the next IDR picture; consecutive IDRs must differ (§7.4.3).
    next_idr_pic_id: u32,
}

impl PcmSkipEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// One IDR picture, every macroblock I_PCM. Returns the access unit in `Frame` layout (one
    /// length-prefixed slice NAL unit).
    pub fn encode_idr(&mut self, picture: &Picture) -> Vec<u8> {
        self.frame_num = 0;
        let idr_pic_id = self.next_idr_pic_id;
        self.next_idr_pic_id = (idr_pic_id + 1) % 65_536;
        let capacity = MB_COUNT * PCM_MB_MAX_BYTES + 16;
        avcc_access_unit(NAL_REF_IDC_IDR, NAL_IDR_SLICE, capacity, |w| {
            write_slice_header(w, SLICE_TYPE_I_ALL, 0, Some(idr_pic_id));
            // slice_data() of an I slice: one macroblock_layer() per macroblock.
            for mb_addr in 0..MB_COUNT {
                write_pcm_macroblock(w, MB_TYPE_I_PCM_IN_I, picture, mb_addr);
            }
            w.rbsp_trailing_bits(); // rbsp_slice_trailing_bits() without cabac_zero_words
        })
    }

    /// One P picture predicted from the previous picture: the macroblocks in `changed` are
    /// I_PCM, all others P_Skip. Returns the access unit in `Frame` layout. The first picture
    /// of a stream must come from [`encode_idr`](Self::encode_idr).
    pub fn encode_p(&mut self, picture: &Picture, changed: &DirtyMacroblocks) -> Vec<u8> {
        self.frame_num = (self.frame_num + 1) % MAX_FRAME_NUM;
        let capacity = changed.len() * PCM_MB_MAX_BYTES + 32;
        avcc_access_unit(NAL_REF_IDC_P, NAL_SLICE, capacity, |w| {
            write_slice_header(w, SLICE_TYPE_P_ALL, self.frame_num, None);
            // slice_data() of a P slice with CAVLC (§7.3.4): each coded macroblock is preceded
            // by the count of skipped ones; a final run covers the skipped tail.
            let mut skip_run = 0u32;
            for mb_addr in 0..MB_COUNT {
                if changed.contains(mb_addr) {
                    w.ue(skip_run); // mb_skip_run
                    skip_run = 0;
                    write_pcm_macroblock(w, MB_TYPE_I_PCM_IN_P, picture, mb_addr);
                } else {
                    skip_run += 1;
                }
            }
            if skip_run > 0 {
                w.ue(skip_run);
            }
            w.rbsp_trailing_bits();
        })
    }
}

/// `slice_header()` (§7.3.3) for this stream's SPS and PPS. `idr_pic_id` is `Some` exactly
/// for IDR pictures.
fn write_slice_header(w: &mut BitWriter, slice_type: u32, frame_num: u32, idr_pic_id: Option<u32>) {
    w.ue(0); // first_mb_in_slice
    w.ue(slice_type);
    w.ue(0); // pic_parameter_set_id
    w.u(LOG2_MAX_FRAME_NUM, frame_num); // frame_num
    // frame_mbs_only_flag = 1: no field_pic_flag.
    if let Some(id) = idr_pic_id {
        w.ue(id);
    }
    // pic_order_cnt_type = 2: no pic_order_cnt_lsb / delta_pic_order_cnt.
    if slice_type == SLICE_TYPE_P_ALL {
        w.flag(false); // num_ref_idx_active_override_flag
        w.flag(false); // ref_pic_list_modification_flag_l0 (§7.3.3.1)
    }
    // dec_ref_pic_marking() (§7.3.3.3); every picture here has nal_ref_idc != 0.
    if idr_pic_id.is_some() {
        w.flag(false); // no_output_of_prior_pics_flag
        w.flag(false); // long_term_reference_flag
    } else {
        w.flag(false); // adaptive_ref_pic_marking_mode_flag: sliding window
    }
    w.se(0); // slice_qp_delta
    w.ue(1); // disable_deblocking_filter_idc: filter off
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::{nal_ref_idc, nal_unit_type, parse_sps};

    #[test]
    fn sps_parses_back() {
        let sps = sequence_parameter_set();
        assert_eq!(nal_unit_type(&sps), Some(NAL_SPS));
        assert_eq!(nal_ref_idc(&sps), Some(3));
        let info = parse_sps(&sps).unwrap();
        assert_eq!(info.profile_idc, 66);
        assert_eq!(info.constraint_flags, 0xC0);
        assert_eq!(info.level_idc, 30);
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.frame_rate, Some((25, 1)));
        assert!(info.frame_mbs_only);
    }

    #[test]
    fn pps_bytes() {
        let pps = picture_parameter_set();
        // ue(0) x2, 0, 0, ue(0) x3, 0, 00, se(0) x3, 1, 0, 0, stop bit: 1100 1110 0011 1100 1...
        assert_eq!(pps, [0x68, 0xCE, 0x3C, 0x80]);
    }

    #[test]
    fn idr_size_is_pcm_dominated() {
        let picture = Picture::filled(crate::source::fake::picture::Yuv::new(16, 128, 128));
        let mut encoder = PcmSkipEncoder::new();
        let idr = encoder.encode_idr(&picture);
        assert_eq!(
            u32::from_be_bytes([idr[0], idr[1], idr[2], idr[3]]) as usize,
            idr.len() - 4
        );
        let idr = &idr[4..];
        assert_eq!(nal_unit_type(idr), Some(NAL_IDR_SLICE));
        assert!(idr.len() > MB_COUNT * PCM_SAMPLES_PER_MB);
        assert!(idr.len() < MB_COUNT * PCM_MB_MAX_BYTES);
        let p = encoder.encode_p(&picture, &DirtyMacroblocks::default());
        let p = &p[4..];
        assert_eq!(nal_unit_type(p), Some(NAL_SLICE));
        assert_eq!(nal_ref_idc(p), Some(2));
        assert!(
            p.len() < 16,
            "an unchanged picture is a few bytes, got {}",
            p.len()
        );
    }
}
