//! The built-in `fake://` live test source, sans-IO: H.264 Constrained Baseline 320x240 at
//! 25 fps showing a moving test card with the frame's own UTC time, and AAC-LC 48 kHz stereo
//! silence. No external encoder: pictures are coded losslessly with I_PCM and P_Skip
//! macroblocks (see [`encoder`]), audio frames are one constant silent `raw_data_block`
//! (ISO 14496-3 §4.4.2, [`aac::SILENT_STEREO_FRAME`]).
//!
//! Owns: which frame is due when, frame timestamps (90 kHz, starting at 0) and payloads.
//! Never: sleeps, reads a clock or does I/O. The caller passes the elapsed time to
//! [`FakeSource::poll`] and sleeps until [`FakeSource::next_due`].
//!
//! The clock drawn in each picture is `start_utc_ms + pts / 90`: the wall-clock time the frame
//! represents, so a player showing it next to a real clock measures glass-to-player latency.

pub mod encoder;
pub mod picture;

use crate::media::aac;
use crate::media::frame::{AudioConfig, Frame, MediaInfo, TIMESCALE, TrackKind, VideoConfig};
use crate::media::h264;
use bytes::Bytes;
use encoder::PcmSkipEncoder;
use picture::TestCard;

/// One IDR picture per second.
pub const DEFAULT_KEYFRAME_INTERVAL_FRAMES: u32 = 25;
/// Duration of one video frame at 25 fps, 90 kHz ticks.
pub const VIDEO_FRAME_TICKS: i64 = TIMESCALE / encoder::FRAME_RATE as i64;
/// Audio sample rate.
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;
/// Duration of one AAC frame (1024 samples at 48 kHz), 90 kHz ticks.
pub const AUDIO_FRAME_TICKS: i64 =
    aac::SAMPLES_PER_FRAME as i64 * TIMESCALE / AUDIO_SAMPLE_RATE as i64;
/// Audio object type of AAC-LC.
const AAC_LC: u8 = 2;
const AUDIO_CHANNELS: u8 = 2;

/// The `fake://` generator: call [`poll`](FakeSource::poll) with the time elapsed since the
/// stream started; it returns every frame that has become due, video and audio interleaved in
/// decode order.
#[derive(Debug)]
pub struct FakeSource {
    /// Wall-clock time of timestamp 0, milliseconds since the Unix epoch.
    start_utc_ms: i64,
    keyframe_interval_frames: i64,
    video_config: VideoConfig,
    audio_config: AudioConfig,
    /// The payload of every audio frame.
    silence: Bytes,
    card: TestCard,
    encoder: PcmSkipEncoder,
    /// Index of the next video frame to emit.
    next_video_frame: i64,
    /// Index of the next audio frame to emit.
    next_audio_frame: i64,
}

impl FakeSource {
    /// A source whose timestamp 0 is the wall-clock time `start_utc_ms` (milliseconds since
    /// the Unix epoch), with an IDR picture every `keyframe_interval_frames` frames (0 is taken
    /// as 1; [`DEFAULT_KEYFRAME_INTERVAL_FRAMES`] is one second).
    pub fn new(start_utc_ms: i64, keyframe_interval_frames: u32) -> Self {
        let sps = Bytes::from(encoder::sequence_parameter_set());
        let pps = Bytes::from(encoder::picture_parameter_set());
        // Cannot fail: the SPS and PPS are fixed by `encoder`, and the test
        // `media_info_describes_both_tracks` parses exactly these bytes.
        let video_config = h264::video_config(sps, pps).expect("the fake SPS/PPS parse");
        // Cannot fail: 48 kHz has a sampling frequency index, and AAC-LC stereo fits the ASC.
        let audio_config = aac::audio_config(AAC_LC, AUDIO_SAMPLE_RATE, AUDIO_CHANNELS)
            .expect("AAC-LC 48 kHz stereo has an AudioSpecificConfig");
        FakeSource {
            start_utc_ms,
            keyframe_interval_frames: i64::from(keyframe_interval_frames.max(1)),
            video_config,
            audio_config,
            silence: aac::silent_stereo_frame(),
            card: TestCard::new(),
            encoder: PcmSkipEncoder::new(),
            next_video_frame: 0,
            next_audio_frame: 0,
        }
    }

    /// The decoder configuration of both tracks.
    pub fn media_info(&self) -> MediaInfo {
        MediaInfo {
            video: Some(self.video_config.clone()),
            audio: Some(self.audio_config.clone()),
        }
    }

    fn next_video_dts(&self) -> i64 {
        self.next_video_frame * VIDEO_FRAME_TICKS
    }

    fn next_audio_dts(&self) -> i64 {
        self.next_audio_frame * AUDIO_FRAME_TICKS
    }

    /// The 90 kHz time at which the next frame becomes due: sleep until then, then `poll`.
    pub fn next_due(&self) -> i64 {
        self.next_video_dts().min(self.next_audio_dts())
    }

    /// Appends to `out` every frame not emitted yet whose decode time is at or before
    /// `elapsed_90k` (90 kHz since the stream started), in decode order; video first when a
    /// video and an audio frame share a timestamp. After a long stall this is a burst: the
    /// source never skips frames, so timestamps stay continuous.
    pub fn poll(&mut self, elapsed_90k: i64, out: &mut Vec<Frame>) {
        loop {
            let (video_dts, audio_dts) = (self.next_video_dts(), self.next_audio_dts());
            if video_dts.min(audio_dts) > elapsed_90k {
                return;
            }
            let frame = if video_dts <= audio_dts {
                self.emit_video(video_dts)
            } else {
                self.emit_audio(audio_dts)
            };
            out.push(frame);
        }
    }

    /// Paints and encodes the next picture.
    fn emit_video(&mut self, dts: i64) -> Frame {
        let index = self.next_video_frame;
        self.next_video_frame += 1;
        let utc_ms = self.start_utc_ms + dts / (TIMESCALE / 1000);
        // `index` counts up from 0, so it is never negative.
        let changed = self.card.paint(index as u64, utc_ms);
        let keyframe = index % self.keyframe_interval_frames == 0;
        let access_unit = if keyframe {
            self.encoder.encode_idr(self.card.picture())
        } else {
            self.encoder.encode_p(self.card.picture(), &changed)
        };
        Frame {
            track: TrackKind::Video,
            pts: dts,
            dts,
            keyframe,
            data: Bytes::from(access_unit),
        }
    }

    fn emit_audio(&mut self, dts: i64) -> Frame {
        self.next_audio_frame += 1;
        Frame {
            track: TrackKind::Audio,
            pts: dts,
            dts,
            keyframe: true,
            data: self.silence.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::picture::{
        CHROMA_WIDTH, HEIGHT_MBS, MB_COUNT, PCM_SAMPLES_PER_MB, WIDTH, WIDTH_MBS,
    };
    use super::*;
    use crate::media::bits::BitReader;
    use crate::media::h264::{
        avcc_nal_units, nal_ref_idc, nal_unit_type, parse_sps, unescape_emulation,
    };

    const START_UTC_MS: i64 = 1_704_164_645_678;

    /// A decoder for exactly the subset `encoder` writes (§7.3.3 slice headers with this SPS
    /// and PPS, CAVLC `mb_skip_run`, I_PCM), written from the spec independently of the
    /// encoder. A P_Skip macroblock with a zero motion vector leaves the reference samples in
    /// place, so the planes are decoded in place.
    struct SubsetDecoder {
        luma: Vec<u8>,
        cb: Vec<u8>,
        cr: Vec<u8>,
        /// `frame_num` of the previous picture, `None` before the first IDR.
        previous_frame_num: Option<u32>,
        previous_idr_pic_id: Option<u32>,
    }

    impl SubsetDecoder {
        fn new() -> Self {
            SubsetDecoder {
                luma: vec![0; 320 * 240],
                cb: vec![0; 160 * 120],
                cr: vec![0; 160 * 120],
                previous_frame_num: None,
                previous_idr_pic_id: None,
            }
        }

        fn decode(&mut self, nal: &[u8]) -> Result<(), String> {
            let header = nal[0];
            assert_eq!(header & 0x80, 0, "forbidden_zero_bit");
            let idr = match nal_unit_type(nal) {
                Some(5) => true,
                Some(1) => false,
                other => return Err(format!("unexpected nal_unit_type {other:?}")),
            };
            assert_eq!(nal_ref_idc(nal), Some(if idr { 3 } else { 2 }));
            let rbsp = unescape_emulation(&nal[1..]);
            let r = &mut BitReader::new(&rbsp);
            let e = |e| format!("{e}");

            // slice_header() (§7.3.3)
            assert_eq!(r.ue().map_err(e)?, 0, "first_mb_in_slice");
            let slice_type = r.ue().map_err(e)?;
            assert_eq!(slice_type, if idr { 7 } else { 5 }, "slice_type");
            assert_eq!(r.ue().map_err(e)?, 0, "pic_parameter_set_id");
            let frame_num = r.u(4).map_err(e)?;
            if idr {
                assert_eq!(frame_num, 0);
                let idr_pic_id = r.ue().map_err(e)?;
                assert_ne!(
                    Some(idr_pic_id),
                    self.previous_idr_pic_id,
                    "idr_pic_id repeats"
                );
                self.previous_idr_pic_id = Some(idr_pic_id);
            } else {
                let previous = self.previous_frame_num.ok_or("P picture before any IDR")?;
                assert_eq!(frame_num, (previous + 1) % 16, "gap in frame_num");
                assert!(!r.flag().map_err(e)?, "num_ref_idx_active_override_flag");
                assert!(!r.flag().map_err(e)?, "ref_pic_list_modification_flag_l0");
            }
            self.previous_frame_num = Some(frame_num);
            if idr {
                assert!(!r.flag().map_err(e)?, "no_output_of_prior_pics_flag");
                assert!(!r.flag().map_err(e)?, "long_term_reference_flag");
            } else {
                assert!(!r.flag().map_err(e)?, "adaptive_ref_pic_marking_mode_flag");
            }
            assert_eq!(r.se().map_err(e)?, 0, "slice_qp_delta");
            assert_eq!(r.ue().map_err(e)?, 1, "disable_deblocking_filter_idc");

            // slice_data() (§7.3.4), CAVLC.
            let mut mb_addr = 0usize;
            let mut more_data = true;
            while more_data {
                if !idr {
                    let skip_run = r.ue().map_err(e)? as usize;
                    mb_addr += skip_run; // P_Skip with mv (0, 0): samples stay as they are.
                    if mb_addr > MB_COUNT {
                        return Err(format!("mb_skip_run runs past the picture to {mb_addr}"));
                    }
                    if skip_run > 0 {
                        more_data = r.more_rbsp_data();
                    }
                }
                if more_data {
                    if mb_addr >= MB_COUNT {
                        return Err("macroblock after the last one".into());
                    }
                    let mb_type = r.ue().map_err(e)?;
                    assert_eq!(mb_type, if idr { 25 } else { 30 }, "mb_type is I_PCM");
                    while !r.is_byte_aligned() {
                        assert!(!r.flag().map_err(e)?, "pcm_alignment_zero_bit");
                    }
                    let samples = r.bytes(PCM_SAMPLES_PER_MB).map_err(e)?;
                    self.put_pcm(mb_addr, samples);
                    mb_addr += 1;
                }
                more_data = r.more_rbsp_data();
            }
            if mb_addr != MB_COUNT {
                return Err(format!("slice ends at macroblock {mb_addr}"));
            }
            // rbsp_slice_trailing_bits(): stop bit, zeros to the end.
            assert!(r.flag().map_err(e)?, "rbsp_stop_one_bit");
            while r.bits_left() > 0 {
                assert!(!r.flag().map_err(e)?, "rbsp_alignment_zero_bit");
            }
            Ok(())
        }

        /// §8.3.5: sample i of the luma block goes to (i % 16, i / 16); chroma likewise 8x8.
        fn put_pcm(&mut self, mb_addr: usize, samples: &[u8]) {
            let (mb_x, mb_y) = (mb_addr % WIDTH_MBS, mb_addr / WIDTH_MBS);
            for (i, &s) in samples[..256].iter().enumerate() {
                self.luma[(mb_y * 16 + i / 16) * WIDTH + mb_x * 16 + i % 16] = s;
            }
            for (i, &s) in samples[256..320].iter().enumerate() {
                self.cb[(mb_y * 8 + i / 8) * CHROMA_WIDTH + mb_x * 8 + i % 8] = s;
            }
            for (i, &s) in samples[320..].iter().enumerate() {
                self.cr[(mb_y * 8 + i / 8) * CHROMA_WIDTH + mb_x * 8 + i % 8] = s;
            }
        }
    }

    #[test]
    fn media_info_describes_both_tracks() {
        let source = FakeSource::new(START_UTC_MS, DEFAULT_KEYFRAME_INTERVAL_FRAMES);
        let info = source.media_info();
        let video = info.video.unwrap();
        assert_eq!(video.codec_string(), "avc1.42c01e");
        assert_eq!((video.width, video.height), (320, 240));
        assert_eq!(video.frame_rate, Some((25, 1)));
        let sps = parse_sps(&video.sps).unwrap();
        assert_eq!((sps.profile_idc, sps.constraint_flags), (66, 0xC0));
        assert_eq!(
            (sps.width, sps.height, sps.frame_rate),
            (320, 240, Some((25, 1)))
        );
        assert_eq!(WIDTH_MBS * HEIGHT_MBS, MB_COUNT);
        let audio = info.audio.unwrap();
        assert_eq!(&audio.asc[..], &[0x11, 0x90]);
        assert_eq!((audio.sample_rate, audio.channels), (48_000, 2));
        assert_eq!((VIDEO_FRAME_TICKS, AUDIO_FRAME_TICKS), (3600, 1920));
    }

    /// The "parse slices back" test: three GOPs decoded by [`SubsetDecoder`] equal, byte for
    /// byte, the pictures painted for each frame's own clock.
    #[test]
    fn slices_decode_to_the_painted_pictures() {
        let mut source = FakeSource::new(START_UTC_MS, DEFAULT_KEYFRAME_INTERVAL_FRAMES);
        let mut decoder = SubsetDecoder::new();
        let mut repainted = TestCard::new();
        let mut frames = Vec::new();
        let mut video_frames = 0;
        let mut p_bytes = 0;
        while video_frames < 3 * 25 + 5 {
            frames.clear();
            source.poll(source.next_due(), &mut frames);
            for frame in frames.iter().filter(|f| f.track == TrackKind::Video) {
                let nals: Vec<&[u8]> = avcc_nal_units(&frame.data).map(|n| n.unwrap()).collect();
                assert_eq!(nals.len(), 1, "one slice NAL unit per picture");
                assert_eq!(nal_unit_type(nals[0]) == Some(5), frame.keyframe);
                assert_eq!(frame.keyframe, video_frames % 25 == 0);
                decoder.decode(nals[0]).unwrap();

                let painted = source.card.picture();
                assert!(
                    decoder.luma == painted.luma(),
                    "luma of frame {video_frames}"
                );
                assert!(decoder.cb == painted.cb(), "Cb of frame {video_frames}");
                assert!(decoder.cr == painted.cr(), "Cr of frame {video_frames}");
                // The clock drawn is the frame's own time: start + pts / 90.
                repainted.paint(video_frames, START_UTC_MS + frame.pts / 90);
                assert!(
                    repainted.picture() == painted,
                    "clock of frame {video_frames}"
                );
                if !frame.keyframe {
                    p_bytes += frame.data.len();
                }
                video_frames += 1;
            }
        }
        let p_frames = 3 * 24 + 4;
        assert!(
            p_bytes / p_frames < 12_000,
            "P frames average {} bytes",
            p_bytes / p_frames
        );
    }

    #[test]
    fn poll_emits_due_frames_in_decode_order() {
        let mut source = FakeSource::new(START_UTC_MS, DEFAULT_KEYFRAME_INTERVAL_FRAMES);
        assert_eq!(source.next_due(), 0);
        let mut frames = Vec::new();
        source.poll(-1, &mut frames);
        assert!(frames.is_empty());

        // Uneven steps, including a stall of 1.3 s.
        let mut elapsed = 0i64;
        let mut last_elapsed = -1i64;
        let mut step = 0;
        let mut all = Vec::new();
        while elapsed <= 10 * TIMESCALE {
            frames.clear();
            source.poll(elapsed, &mut frames);
            for frame in &frames {
                assert!(
                    frame.dts > last_elapsed && frame.dts <= elapsed,
                    "emitted off time"
                );
                assert_eq!(frame.pts, frame.dts);
            }
            assert!(source.next_due() > elapsed);
            all.append(&mut frames);
            last_elapsed = elapsed;
            step += 1;
            elapsed += if step == 100 {
                117_000
            } else {
                50 + (step * 7919) % 4000
            };
        }
        assert!(all.windows(2).all(|w| w[0].dts <= w[1].dts), "decode order");

        for second in 0..10 {
            let range = second * TIMESCALE..(second + 1) * TIMESCALE;
            let in_second = |track| {
                all.iter()
                    .filter(|f| f.track == track && range.contains(&f.dts))
                    .count()
            };
            assert_eq!(in_second(TrackKind::Video), 25, "second {second}");
            let audio = in_second(TrackKind::Audio);
            assert!(
                audio == 46 || audio == 47,
                "second {second}: {audio} audio frames"
            );
        }
        let video: Vec<&Frame> = all.iter().filter(|f| f.track == TrackKind::Video).collect();
        for (i, frame) in video.iter().enumerate() {
            assert_eq!(frame.dts, i as i64 * 3600);
            assert_eq!(frame.keyframe, i % 25 == 0, "video frame {i}");
        }
        let audio: Vec<&Frame> = all.iter().filter(|f| f.track == TrackKind::Audio).collect();
        for (i, frame) in audio.iter().enumerate() {
            assert_eq!(frame.dts, i as i64 * 1920);
            assert!(frame.keyframe);
            assert_eq!(&frame.data[..], &aac::SILENT_STEREO_FRAME);
        }
        // Video first when both tracks share a timestamp (0, 57 600, ...).
        assert_eq!(all[0].track, TrackKind::Video);
        assert_eq!(all[1].track, TrackKind::Audio);
    }

    #[test]
    fn keyframe_interval_is_configurable() {
        for (interval, expected) in [(0, 1), (1, 1), (50, 50)] {
            let mut source = FakeSource::new(0, interval);
            let mut frames = Vec::new();
            source.poll(99 * VIDEO_FRAME_TICKS, &mut frames);
            let keyframes: Vec<i64> = frames
                .iter()
                .filter(|f| f.track == TrackKind::Video && f.keyframe)
                .map(|f| f.dts / VIDEO_FRAME_TICKS)
                .collect();
            let want: Vec<i64> = (0..100).step_by(expected).collect();
            assert_eq!(keyframes, want, "interval {interval}");
        }
    }
}
