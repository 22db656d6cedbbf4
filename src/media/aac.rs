//! AAC helpers: AudioSpecificConfig (ISO 14496-3 §1.6.2.1) and ADTS headers (§1.A.2.2),
//! and a silent raw frame (§4.4.2, `raw_data_block`) for test sources.

use crate::media::frame::AudioConfig;
use bytes::Bytes;

/// Sampling frequencies indexed by `samplingFrequencyIndex` (ISO 14496-3 Table 1.18).
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Index of `rate` in [`SAMPLE_RATES`], if it is a standard rate.
pub fn sample_rate_index(rate: u32) -> Option<u8> {
    SAMPLE_RATES
        .iter()
        .position(|&r| r == rate)
        .map(|i| i as u8)
}

/// Builds the two-byte AudioSpecificConfig for a plain (non-SBR) AAC stream.
/// Returns `None` when the sample rate has no index or the values do not fit the fields.
pub fn audio_config(object_type: u8, sample_rate: u32, channels: u8) -> Option<AudioConfig> {
    let index = sample_rate_index(sample_rate)?;
    if object_type == 0 || object_type > 30 || channels == 0 || channels > 7 {
        return None;
    }
    // 5 bits object type, 4 bits frequency index, 4 bits channel configuration,
    // then GASpecificConfig: frameLengthFlag=0, dependsOnCoreCoder=0, extensionFlag=0.
    let bits: u16 =
        (u16::from(object_type) << 11) | (u16::from(index) << 7) | (u16::from(channels) << 3);
    Some(AudioConfig {
        asc: Bytes::copy_from_slice(&bits.to_be_bytes()),
        object_type,
        sample_rate,
        channels,
    })
}

/// Length of an ADTS header without CRC.
pub const ADTS_HEADER_LEN: usize = 7;

/// Writes a 7-byte ADTS header (no CRC) for one raw AAC frame of `payload_len` bytes.
/// Returns `None` when the frame is too long for the 13-bit length field or the config
/// cannot be expressed in ADTS (object type above 4, non-standard rate).
pub fn adts_header(config: &AudioConfig, payload_len: usize) -> Option<[u8; ADTS_HEADER_LEN]> {
    let frame_len = payload_len + ADTS_HEADER_LEN;
    if frame_len > 0x1FFF || config.object_type == 0 || config.object_type > 4 {
        return None;
    }
    let index = sample_rate_index(config.sample_rate)?;
    let profile = config.object_type - 1;
    let channels = config.channels & 0x7;
    let len = frame_len as u32;
    Some([
        0xFF,
        0xF1, // syncword low bits, MPEG-4, layer 0, protection_absent=1
        (profile << 6) | (index << 2) | (channels >> 2),
        ((channels & 0x3) << 6) | ((len >> 11) & 0x3) as u8,
        ((len >> 3) & 0xFF) as u8,
        (((len & 0x7) << 5) as u8) | 0x1F, // buffer fullness 0x7FF (VBR), high bits
        0xFC,                              // buffer fullness low bits, one raw data block
    ])
}

/// Samples per channel in one AAC-LC frame (`frameLengthFlag = 0`).
pub const SAMPLES_PER_FRAME: u32 = 1024;

/// One raw AAC-LC frame of digital silence for a stereo stream (channel configuration 2), at
/// any sample rate: a `raw_data_block()` (ISO 14496-3 §4.4.2.1) holding one
/// `channel_pair_element()` with `common_window = 1` and an `ics_info()` of `max_sfb = 0`
/// (no scale factor bands, so no spectral data), both `individual_channel_stream()`s
/// (§4.4.2.7) with `global_gain = 0` and no pulse/TNS/gain control, then `ID_END`.
pub const SILENT_STEREO_FRAME: [u8; 6] = [0x21, 0x00, 0x00, 0x00, 0x00, 0x1C];

/// [`SILENT_STEREO_FRAME`] as a shared payload.
pub fn silent_stereo_frame() -> Bytes {
    Bytes::from_static(&SILENT_STEREO_FRAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_stereo_frame_syntax() {
        use crate::media::bits::BitWriter;
        let mut w = BitWriter::new();
        w.u(3, 1); // id_syn_ele = ID_CPE
        w.u(4, 0); // element_instance_tag
        w.flag(true); // common_window
        // ics_info(): ics_reserved_bit, window_sequence = ONLY_LONG_SEQUENCE, window_shape,
        // max_sfb = 0, predictor_data_present = 0.
        w.u(1, 0);
        w.u(2, 0);
        w.u(1, 0);
        w.u(6, 0);
        w.flag(false);
        w.u(2, 0); // ms_mask_present
        for _channel in 0..2 {
            w.u(8, 0); // global_gain
            // section_data() and scale_factor_data() are empty for max_sfb = 0.
            w.flag(false); // pulse_data_present
            w.flag(false); // tns_data_present
            w.flag(false); // gain_control_data_present
            // spectral_data() is empty.
        }
        w.u(3, 7); // id_syn_ele = ID_END
        assert_eq!(w.into_bytes(), SILENT_STEREO_FRAME);
        assert_eq!(silent_stereo_frame().len(), 6);
    }

    #[test]
    fn asc_for_lc_48k_stereo() {
        let cfg = audio_config(2, 48000, 2).unwrap();
        assert_eq!(&cfg.asc[..], &[0x11, 0x90]);
        assert_eq!(cfg.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn adts_header_fields() {
        let cfg = audio_config(2, 48000, 2).unwrap();
        let h = adts_header(&cfg, 6).unwrap();
        assert_eq!(h, [0xFF, 0xF1, 0x4C, 0x80, 0x01, 0xBF, 0xFC]);
        assert!(adts_header(&cfg, 0x2000).is_none());
    }
}
