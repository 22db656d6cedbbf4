//! The live Smooth Streaming manifest (MS-SSTR §2.2.2): `SmoothStreamingMedia` with
//! `IsLive`, `LookAheadFragmentCount` and `DVRWindowLength`, one `StreamIndex` per track with
//! its `QualityLevel` (H.264 `CodecPrivateData` = start-code-prefixed SPS and PPS in hex;
//! AAC = the AudioSpecificConfig in hex) and one `<c t= d=>` per fragment in the window.
//!
//! Each track runs on its own timescale (`StreamIndex@TimeScale`): video at 90 kHz, audio at
//! its sample rate, the timescales the fragments are written in, so no time is rounded twice.
//! The fragment URL template carries the viewer's token:
//! `QualityLevels({bitrate})/Fragments(video={start time})?token=T`. Renders into a reused
//! buffer; owns no state and never decides who may see the stream.

use crate::media::frame::{MediaInfo, TIMESCALE};
use crate::stream::segment::{MssFragment, Segment};
use crate::uri::TokenQuery;
use std::io::Write;

/// Fragments each fragment's `tfrf` announces (the fragment after it).
pub const LOOKAHEAD_FRAGMENTS: u32 = 1;
/// Nominal AAC bitrate announced for the audio quality level.
const AUDIO_BITRATE: u32 = 128_000;

/// What the manifest needs besides the segments.
pub struct ManifestContext<'a> {
    pub media: &'a MediaInfo,
    /// `Bitrate` of the video quality level (also the `{bitrate}` of its fragment URLs).
    pub video_bitrate: u64,
    pub token: TokenQuery<'a>,
}

/// Whether `segments` carry any MSS fragment yet (the first segment carries none).
pub fn has_fragments<'s>(mut segments: impl Iterator<Item = &'s Segment>) -> bool {
    segments.any(|s| s.mss.video.is_some() || s.mss.audio.is_some())
}

/// Writes the manifest for `segments` (oldest first).
pub fn write_manifest<'s>(
    out: &mut Vec<u8>,
    segments: impl Iterator<Item = &'s Segment> + Clone,
    ctx: &ManifestContext<'_>,
) {
    let video = |s: &'s Segment| s.mss.video.as_ref();
    let audio = |s: &'s Segment| s.mss.audio.as_ref();
    let window: u64 = match ctx.media.video {
        Some(_) => segments.clone().filter_map(video).map(|f| f.duration).sum(),
        None => {
            segments
                .clone()
                .filter_map(audio)
                .map(|f| f.duration)
                .sum::<u64>()
                .saturating_mul(TIMESCALE as u64)
                / u64::from(ctx.media.audio.as_ref().map_or(1, |a| a.sample_rate.max(1)))
        }
    };
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <SmoothStreamingMedia MajorVersion=\"2\" MinorVersion=\"2\" TimeScale=\"{TIMESCALE}\" \
         Duration=\"0\" IsLive=\"TRUE\" LookAheadFragmentCount=\"{LOOKAHEAD_FRAGMENTS}\" \
         DVRWindowLength=\"{window}\" CanSeek=\"TRUE\" CanPause=\"TRUE\">\n"
    );
    if let Some(v) = &ctx.media.video {
        let chunks = segments.clone().filter_map(video).count();
        let _ = write!(
            out,
            "  <StreamIndex Type=\"video\" Name=\"video\" Chunks=\"{chunks}\" QualityLevels=\"1\" \
             TimeScale=\"{TIMESCALE}\" MaxWidth=\"{w}\" MaxHeight=\"{h}\" DisplayWidth=\"{w}\" \
             DisplayHeight=\"{h}\" Url=\"QualityLevels({{bitrate}})/Fragments(video={{start time}})",
            w = v.width,
            h = v.height,
        );
        ctx.token.write(out);
        let _ = write!(
            out,
            "\">\n    <QualityLevel Index=\"0\" Bitrate=\"{}\" FourCC=\"H264\" MaxWidth=\"{}\" \
             MaxHeight=\"{}\" CodecPrivateData=\"00000001",
            ctx.video_bitrate, v.width, v.height
        );
        write_hex(out, &v.sps);
        out.extend_from_slice(b"00000001");
        write_hex(out, &v.pps);
        out.extend_from_slice(b"\"/>\n");
        write_chunks(out, segments.clone().filter_map(video));
        out.extend_from_slice(b"  </StreamIndex>\n");
    }
    if let Some(a) = &ctx.media.audio {
        let chunks = segments.clone().filter_map(audio).count();
        let _ = write!(
            out,
            "  <StreamIndex Type=\"audio\" Name=\"audio\" Chunks=\"{chunks}\" QualityLevels=\"1\" \
             TimeScale=\"{}\" Url=\"QualityLevels({{bitrate}})/Fragments(audio={{start time}})",
            a.sample_rate
        );
        ctx.token.write(out);
        // channelConfiguration 7 is 7.1: eight channels (ISO/IEC 14496-3 Table 1.19).
        let channels = if a.channels == 7 { 8 } else { a.channels };
        let _ = write!(
            out,
            "\">\n    <QualityLevel Index=\"0\" Bitrate=\"{AUDIO_BITRATE}\" FourCC=\"AACL\" \
             SamplingRate=\"{}\" Channels=\"{channels}\" BitsPerSample=\"16\" PacketSize=\"4\" \
             AudioTag=\"255\" CodecPrivateData=\"",
            a.sample_rate
        );
        write_hex(out, &a.asc);
        out.extend_from_slice(b"\"/>\n");
        write_chunks(out, segments.filter_map(audio));
        out.extend_from_slice(b"  </StreamIndex>\n");
    }
    out.extend_from_slice(b"</SmoothStreamingMedia>\n");
}

/// One `<c>` per fragment, each with its absolute time (a client needs no arithmetic that
/// could drift from the fragments' own `tfxd`).
fn write_chunks<'s>(out: &mut Vec<u8>, fragments: impl Iterator<Item = &'s MssFragment>) {
    for f in fragments {
        let _ = writeln!(out, "    <c t=\"{}\" d=\"{}\"/>", f.time, f.duration);
    }
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{aac, h264};
    use crate::stream::segment::MssFragments;
    use bytes::Bytes;

    const SPS: &[u8] = &[
        0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x42, 0xA4, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xCB, 0x83, 0xCB, 0x20];

    fn segment(i: u64, mss: bool) -> Segment {
        let fragment = |time, duration| MssFragment {
            time,
            duration,
            bytes: Bytes::new(),
        };
        Segment {
            sequence: i,
            start_utc_ms: 1_706_988_696_000 + i as i64 * 2000,
            start_dts: i as i64 * 180_000,
            end_dts: (i as i64 + 1) * 180_000,
            duration_ms: 2000,
            ts: Bytes::new(),
            fmp4: None,
            parts: Default::default(),
            dash: Default::default(),
            mss: if mss {
                MssFragments {
                    video: Some(fragment((i - 1) * 180_000, 180_000)),
                    audio: Some(fragment((i - 1) * 96_000, 96_256)),
                }
            } else {
                MssFragments::default()
            },
        }
    }

    #[test]
    fn live_manifest_lists_fragments_with_the_token_in_the_url_template() {
        let segments = [segment(0, false), segment(1, true), segment(2, true)];
        assert!(!has_fragments(segments[..1].iter()));
        assert!(has_fragments(segments.iter()));
        let media = MediaInfo {
            video: Some(
                h264::video_config(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap(),
            ),
            audio: aac::audio_config(2, 48_000, 2),
        };
        let ctx = ManifestContext {
            media: &media,
            video_bitrate: 1_500_000,
            token: TokenQuery {
                param: "token",
                token: Some(b"a&b\"<"),
            },
        };
        let mut out = Vec::new();
        write_manifest(&mut out, segments.iter(), &ctx);
        let text = String::from_utf8(out).unwrap();
        for needle in [
            "IsLive=\"TRUE\"",
            "LookAheadFragmentCount=\"1\"",
            "DVRWindowLength=\"360000\"",
            "TimeScale=\"90000\"",
            "Url=\"QualityLevels({bitrate})/Fragments(video={start time})?token=a%26b%22%3C\"",
            "Url=\"QualityLevels({bitrate})/Fragments(audio={start time})?token=a%26b%22%3C\"",
            "FourCC=\"H264\" MaxWidth=\"320\" MaxHeight=\"240\" CodecPrivateData=\"000000016742C00DD90141FB0110000003001000000303",
            "00000001",
            "68CB83CB20\"/>",
            "Bitrate=\"1500000\"",
            "FourCC=\"AACL\" SamplingRate=\"48000\" Channels=\"2\"",
            "CodecPrivateData=\"1190\"",
            "Chunks=\"2\"",
            "TimeScale=\"48000\"",
            "<c t=\"0\" d=\"180000\"/>\n    <c t=\"180000\" d=\"180000\"/>",
            "<c t=\"0\" d=\"96256\"/>\n    <c t=\"96000\" d=\"96256\"/>",
        ] {
            assert!(text.contains(needle), "manifest lacks {needle:?}:\n{text}");
        }
        assert!(text.ends_with("</SmoothStreamingMedia>\n"));
    }
}
