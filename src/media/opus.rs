//! AAC → Opus for WebRTC viewers, sans-IO: browsers play Opus, not AAC.
//!
//! `AacToOpus` decodes a stream's raw AAC-LC frames (symphonia's decoder) and encodes the
//! samples as 20 ms Opus packets (libopus). Opus takes 8, 12, 16, 24 and 48 kHz input as
//! it is; the other AAC rates (44.1 kHz the most common of them) are resampled to 48 kHz
//! first (rubato's FFT resampler, fixed ratio, one AAC frame in per call). HE-AAC and more
//! than two channels are refused with `TranscodeError::Unsupported` (the decoder reads
//! AAC-LC, mono or stereo).
//!
//! **Timestamps.** Opus's RTP clock is 48 kHz whatever the input rate. The first frame's
//! 90 kHz PTS, scaled to 48 kHz, times the first sample; every packet after it is 960
//! ticks (20 ms) later, so packets stay on the same media clock as the video and a player
//! keeps lip sync from the RTP timestamps. A frame whose PTS is not where the previous one
//! ended (a lost frame, a new timeline) drops the samples waiting to be encoded and starts
//! the clock again from its own PTS.
//!
//! **Packets.** What one AAC frame completes (none, one or two packets: 1024 samples in,
//! 960 out) is written back to back into one buffer (`write_packet`, read by `packets`):
//! the input's shard shares that buffer with every viewer on every shard as one `Bytes`.

use crate::media::frame::{AudioConfig, TIMESCALE};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia_codec_aac::AacDecoder;
use symphonia_core::audio::{SampleBuffer, SignalSpec};
use symphonia_core::codecs::{CODEC_TYPE_AAC, CodecParameters, Decoder, DecoderOptions};
use symphonia_core::formats::Packet;

/// Opus's RTP clock rate (RFC 7587), whatever the input's rate.
pub const OPUS_CLOCK: u32 = 48_000;
/// One Opus packet's duration on its RTP clock: 20 ms.
pub const PACKET_TICKS: u64 = 960;
/// Input rates libopus encodes as they are.
pub const OPUS_INPUT_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// Encoder bit rate per channel: 48 kbit/s is transparent for most music in Opus.
const BITS_PER_CHANNEL: i32 = 48_000;
/// The largest packet the encoder may write (RFC 6716 recommends 1275 per frame).
const MAX_PACKET: usize = 1275;
/// Samples per channel of one AAC-LC frame.
const AAC_FRAME: usize = 1024;
/// Bytes before each packet in a packet buffer: its 48 kHz time (u64) and length (u16).
const PACKET_HEADER: usize = 10;

/// Why a stream's audio is not transcoded, or a frame was lost.
#[derive(Debug, PartialEq, Eq)]
pub enum TranscodeError {
    /// The stream's audio is of a kind this transcoder does not take (said once per input).
    Unsupported(String),
    /// A frame the decoder could not read, or the encoder refused (the frame is dropped).
    Frame(String),
}

impl std::fmt::Display for TranscodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TranscodeError::Unsupported(why) | TranscodeError::Frame(why) => f.write_str(why),
        }
    }
}

/// A resampler to 48 kHz and the buffer it writes into.
type ToOpusRate = (Fft<f32>, Vec<f32>);

/// One stream's AAC → Opus transcoder.
pub struct AacToOpus {
    decoder: AacDecoder,
    /// For a rate Opus does not take: to 48 kHz, with its output buffer.
    resampler: Option<ToOpusRate>,
    encoder: opus::Encoder,
    channels: usize,
    /// Input samples per channel in one 20 ms packet.
    packet_samples: usize,
    /// 90 kHz ticks of one AAC frame.
    frame_ticks: i64,
    /// Decoded samples not encoded yet, interleaved.
    pcm: Vec<f32>,
    /// The decoder's output, interleaved as f32.
    decoded: SampleBuffer<f32>,
    /// The 48 kHz time of `pcm[0]`, once a frame came.
    clock: Option<u64>,
    /// Where the next frame's PTS should be (90 kHz).
    next_pts: Option<i64>,
    packet: Box<[u8; MAX_PACKET]>,
}

impl AacToOpus {
    /// A transcoder for a stream of this configuration, or why there is none.
    pub fn new(config: &AudioConfig) -> Result<AacToOpus, TranscodeError> {
        let unsupported = |why: String| Err(TranscodeError::Unsupported(why));
        if config.object_type != 2 {
            return unsupported(format!(
                "AAC object type {} (only AAC-LC, 2, is decoded)",
                config.object_type
            ));
        }
        let opus_channels = match config.channels {
            1 => opus::Channels::Mono,
            2 => opus::Channels::Stereo,
            n => return unsupported(format!("{n} AAC channels (mono or stereo only)")),
        };
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_AAC)
            .with_extra_data(config.asc.to_vec().into_boxed_slice());
        let decoder = AacDecoder::try_new(&params, &DecoderOptions::default())
            .map_err(|e| TranscodeError::Unsupported(format!("AAC decoder: {e}")))?;
        let channels = usize::from(config.channels);
        let resampler = resampler(config.sample_rate, channels)?;
        let rate = match resampler {
            Some(_) => OPUS_CLOCK,
            None => config.sample_rate,
        };
        let mut encoder = opus::Encoder::new(rate, opus_channels, opus::Application::Audio)
            .map_err(|e| TranscodeError::Unsupported(format!("Opus encoder: {e}")))?;
        let bitrate = opus::Bitrate::Bits(BITS_PER_CHANNEL * channels as i32);
        encoder
            .set_bitrate(bitrate)
            .map_err(|e| TranscodeError::Unsupported(format!("Opus bit rate: {e}")))?;
        let spec = SignalSpec::new(config.sample_rate, decoder_channels(channels));
        Ok(AacToOpus {
            decoder,
            resampler,
            encoder,
            channels,
            packet_samples: rate as usize / 50,
            frame_ticks: AAC_FRAME as i64 * TIMESCALE / i64::from(config.sample_rate),
            pcm: Vec::with_capacity(2 * AAC_FRAME * channels),
            decoded: SampleBuffer::new(AAC_FRAME as u64, spec),
            clock: None,
            next_pts: None,
            packet: Box::new([0; MAX_PACKET]),
        })
    }

    /// Decodes one raw AAC frame presented at `pts` (90 kHz) and appends the Opus packets
    /// it completes to `out` (`write_packet`). A frame that cannot be decoded is dropped
    /// (the next one restarts the clock).
    pub fn push(&mut self, pts: i64, aac: &[u8], out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        // Saturating: a publisher's timestamps are untrusted and may sit near the ends.
        if self
            .next_pts
            .is_none_or(|next| pts.abs_diff(next) > (self.frame_ticks / 2).unsigned_abs())
        {
            self.pcm.clear();
            self.clock = Some(opus_time(pts));
        }
        self.next_pts = Some(pts.saturating_add(self.frame_ticks));
        self.decode(aac).inspect_err(|_| self.next_pts = None)?;
        self.encode_ready(out)
    }

    /// Decodes `aac` onto the end of the waiting samples.
    fn decode(&mut self, aac: &[u8]) -> Result<(), TranscodeError> {
        let packet = Packet::new_from_slice(0, 0, AAC_FRAME as u64, aac);
        let audio = self
            .decoder
            .decode(&packet)
            .map_err(|e| TranscodeError::Frame(format!("AAC frame: {e}")))?;
        let fits = audio.spec().channels.count() == self.channels
            && audio.frames() * self.channels <= self.decoded.capacity();
        if !fits {
            return Err(TranscodeError::Frame("AAC frame of another shape".into()));
        }
        self.decoded.copy_interleaved_ref(audio);
        let decoded = self.decoded.samples();
        let Some((resampler, out)) = self.resampler.as_mut() else {
            self.pcm.extend_from_slice(decoded);
            return Ok(());
        };
        let frames = decoded.len() / self.channels;
        let resampled = InterleavedSlice::new(decoded, self.channels, frames)
            .map_err(|e| e.to_string())
            .and_then(|input| {
                let capacity = out.len() / self.channels;
                let mut output = InterleavedSlice::new_mut(&mut out[..], self.channels, capacity)
                    .map_err(|e| e.to_string())?;
                let done = resampler.process_into_buffer(&input, &mut output, None);
                done.map_err(|e| e.to_string())
            });
        let (_, written) =
            resampled.map_err(|e| TranscodeError::Frame(format!("resampler: {e}")))?;
        self.pcm.extend_from_slice(&out[..written * self.channels]);
        Ok(())
    }

    /// Encodes every whole 20 ms the waiting samples hold.
    fn encode_ready(&mut self, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        let len = self.packet_samples * self.channels;
        let mut used = 0;
        let mut result = Ok(());
        while self.pcm.len() - used >= len {
            let samples = &self.pcm[used..used + len];
            used += len;
            let clock = self.clock.unwrap_or(0);
            self.clock = Some(clock + PACKET_TICKS);
            match self.encoder.encode_float(samples, &mut self.packet[..]) {
                Ok(n) => write_packet(out, clock, &self.packet[..n]),
                Err(e) => result = Err(TranscodeError::Frame(format!("Opus encoder: {e}"))),
            }
        }
        self.pcm.drain(..used);
        result
    }
}

/// A resampler to 48 kHz for a rate Opus does not take (none for one it does), with room
/// for its largest output.
fn resampler(rate: u32, channels: usize) -> Result<Option<ToOpusRate>, TranscodeError> {
    if OPUS_INPUT_RATES.contains(&rate) {
        return Ok(None);
    }
    let fixed = FixedSync::Input;
    let fft = Fft::<f32>::new(
        rate as usize,
        OPUS_CLOCK as usize,
        AAC_FRAME,
        channels,
        fixed,
    )
    .map_err(|e| TranscodeError::Unsupported(format!("resampling {rate} Hz: {e}")))?;
    let out = vec![0.0; fft.output_frames_max() * channels];
    Ok(Some((fft, out)))
}

/// The decoder's channel layout for a mono or stereo stream.
fn decoder_channels(channels: usize) -> symphonia_core::audio::Channels {
    use symphonia_core::audio::Channels;
    match channels {
        1 => Channels::FRONT_CENTRE,
        _ => Channels::FRONT_LEFT | Channels::FRONT_RIGHT,
    }
}

/// A 90 kHz time on Opus's 48 kHz clock (negative times start at 0).
pub fn opus_time(pts: i64) -> u64 {
    (pts.max(0) as u64).saturating_mul(u64::from(OPUS_CLOCK)) / TIMESCALE as u64
}

/// Appends one packet and its 48 kHz time to a packet buffer.
pub fn write_packet(out: &mut Vec<u8>, time: u64, packet: &[u8]) {
    let len = u16::try_from(packet.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&time.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&packet[..usize::from(len)]);
}

/// The packets of a packet buffer with their 48 kHz times; stops at a truncated one.
pub fn packets(mut buffer: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    std::iter::from_fn(move || {
        let (head, rest) = buffer.split_at_checked(PACKET_HEADER)?;
        let time = u64::from_be_bytes(head[..8].try_into().ok()?);
        let len = usize::from(u16::from_be_bytes(head[8..].try_into().ok()?));
        let (packet, rest) = rest.split_at_checked(len)?;
        buffer = rest;
        Some((time, packet))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::{SILENT_STEREO_FRAME, audio_config};

    /// 1 s of a 440 Hz sine, AAC-LC 48 kHz stereo in ADTS (ffmpeg's encoder):
    /// `ffmpeg -f lavfi -i sine=f=440:r=48000 -ac 2 -t 1 -c:a aac -b:a 96k -f adts FILE`.
    const SINE: &[u8] = include_bytes!("../../tests/data/sine440_48k_stereo.aac");

    /// The raw frames of an ADTS stream (no CRC), each with its 90 kHz PTS at 48 kHz.
    fn adts_frames(mut data: &[u8]) -> Vec<(i64, &[u8])> {
        let mut frames = Vec::new();
        while data.len() >= 7 {
            let len = (usize::from(data[3] & 3) << 11)
                | (usize::from(data[4]) << 3)
                | usize::from(data[5] >> 5);
            assert_eq!(data[1] & 1, 1, "no CRC in the fixture");
            let pts = frames.len() as i64 * 1920;
            frames.push((pts, &data[7..len]));
            data = &data[len..];
        }
        frames
    }

    /// Sign changes of a tone, a change counted only between samples louder than the
    /// codecs' noise around silence (their start-up).
    fn crossings(samples: impl Iterator<Item = f32>) -> u32 {
        let (mut count, mut last) = (0, None);
        for x in samples.filter(|x| x.abs() > 0.01) {
            let negative = x < 0.0;
            if last.is_some_and(|l| l != negative) {
                count += 1;
            }
            last = Some(negative);
        }
        count
    }

    fn stereo_48k() -> AudioConfig {
        audio_config(2, 48_000, 2).unwrap()
    }

    /// Every packet of `frames`, in order.
    fn transcode(frames: &[(i64, &[u8])]) -> Vec<(u64, Vec<u8>)> {
        let mut t = AacToOpus::new(&stereo_48k()).unwrap();
        let mut out = Vec::new();
        for &(pts, aac) in frames {
            t.push(pts, aac, &mut out).unwrap();
        }
        packets(&out).map(|(t, p)| (t, p.to_vec())).collect()
    }

    #[test]
    fn a_sine_comes_back_from_opus_with_its_duration_and_energy() {
        let frames = adts_frames(SINE);
        assert!(frames.len() >= 46, "{} frames", frames.len());
        let packets = transcode(&frames);
        // 1024 samples in per frame, 960 out per packet.
        assert_eq!(packets.len(), frames.len() * 1024 / 960);
        for (i, (time, _)) in packets.iter().enumerate() {
            assert_eq!(*time, i as u64 * PACKET_TICKS);
        }
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
        let mut pcm = vec![0f32; 2 * 5760];
        let mut left = Vec::new();
        for (_, packet) in &packets {
            let n = decoder.decode_float(packet, &mut pcm, false).unwrap();
            assert_eq!(n, 960);
            left.extend(pcm[..2 * n].chunks(2).map(|frame| frame[0]));
        }
        let energy: f64 = left.iter().map(|&x| f64::from(x).powi(2)).sum();
        let rms = (energy / left.len() as f64).sqrt();
        assert!(rms > 0.05, "rms {rms}");
        // 440 Hz: 880 sign changes a second, give or take the codecs' start-up.
        let seconds = left.len() as f64 / 48_000.0;
        let per_second = f64::from(crossings(left.into_iter())) / seconds;
        assert!(
            (800.0..960.0).contains(&per_second),
            "{per_second} crossings/s"
        );
    }

    #[test]
    fn silence_is_encoded_and_times_follow_the_pts() {
        let silent = [SILENT_STEREO_FRAME; 16];
        let base = 90_000 * 10;
        let frames: Vec<(i64, &[u8])> = silent
            .iter()
            .enumerate()
            .map(|(i, f)| (base + i as i64 * 1920, &f[..]))
            .collect();
        let packets = transcode(&frames);
        // 16 frames of 1024 samples: 17 packets of 960, 64 samples left waiting.
        assert_eq!(packets.len(), 17);
        assert_eq!(packets[0].0, 480_000, "10 s on the 48 kHz clock");
        assert_eq!(packets[16].0, 480_000 + 16 * PACKET_TICKS);
    }

    #[test]
    fn a_jump_in_the_pts_starts_the_clock_again() {
        let mut t = AacToOpus::new(&stereo_48k()).unwrap();
        let mut out = Vec::new();
        t.push(0, &SILENT_STEREO_FRAME, &mut out).unwrap();
        // 64 samples wait; a frame 10 s later drops them and starts from its own PTS.
        t.push(900_000, &SILENT_STEREO_FRAME, &mut out).unwrap();
        let times: Vec<u64> = packets(&out).map(|(t, _)| t).collect();
        assert_eq!(times, [0, 480_000]);
    }

    /// 1 s of the same sine at 44.1 kHz mono: resampled to 48 kHz, 20 ms a packet.
    const SINE_44K: &[u8] = include_bytes!("../../tests/data/sine440_44k_mono.aac");

    #[test]
    fn audio_at_44_1_khz_is_resampled_to_48() {
        let frames: Vec<(i64, &[u8])> = adts_frames(SINE_44K)
            .into_iter()
            .enumerate()
            .map(|(i, (_, aac))| (i as i64 * 1024 * 90_000 / 44_100, aac))
            .collect();
        let mut t = AacToOpus::new(&audio_config(2, 44_100, 1).unwrap()).unwrap();
        let mut out = Vec::new();
        for &(pts, aac) in &frames {
            t.push(pts, aac, &mut out).unwrap();
        }
        let packets: Vec<(u64, &[u8])> = packets(&out).collect();
        // 1024 samples at 44.1 kHz are 1114.5 at 48: ~1.16 packets a frame.
        let expected = frames.len() * 1024 * 48_000 / 44_100 / 960;
        assert!(
            packets.len().abs_diff(expected) <= 1,
            "{} packets, {expected} expected",
            packets.len()
        );
        assert!(packets.windows(2).all(|w| w[1].0 == w[0].0 + PACKET_TICKS));
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut pcm = vec![0f32; 5760];
        let mut mono = Vec::new();
        for (_, packet) in &packets {
            let n = decoder.decode_float(packet, &mut pcm, false).unwrap();
            mono.extend_from_slice(&pcm[..n]);
        }
        let seconds = mono.len() as f64 / 48_000.0;
        let per_second = f64::from(crossings(mono.into_iter())) / seconds;
        assert!(
            (800.0..960.0).contains(&per_second),
            "{per_second} crossings/s: still 440 Hz"
        );
    }

    #[test]
    fn unsupported_audio_is_refused_and_garbage_frames_are_errors() {
        let he = AacToOpus::new(&audio_config(5, 48_000, 2).unwrap());
        assert!(matches!(he, Err(TranscodeError::Unsupported(_))));
        let surround = AacToOpus::new(&audio_config(2, 48_000, 6).unwrap());
        assert!(matches!(surround, Err(TranscodeError::Unsupported(_))));
        let mut t = AacToOpus::new(&stereo_48k()).unwrap();
        let mut out = Vec::new();
        for garbage in [
            &[][..],
            &[0xff; 3],
            &[0x21, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            let _ = t.push(0, garbage, &mut out);
        }
        // Still usable after garbage.
        t.push(1920, &SILENT_STEREO_FRAME, &mut out).unwrap();
    }

    #[test]
    fn packet_buffers_read_back_and_stop_at_a_truncated_packet() {
        let mut out = Vec::new();
        write_packet(&mut out, 7, b"abc");
        write_packet(&mut out, 967, b"de");
        let read: Vec<(u64, &[u8])> = packets(&out).collect();
        assert_eq!(read, [(7, &b"abc"[..]), (967, &b"de"[..])]);
        assert_eq!(packets(&out[..out.len() - 1]).count(), 1);
        assert_eq!(opus_time(90_000), 48_000);
        assert_eq!(opus_time(-5), 0);
    }
}
