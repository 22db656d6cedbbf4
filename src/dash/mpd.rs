//! The dynamic MPD (ISO/IEC 23009-1) of a live stream: one period, one muxed video+audio
//! representation, a `SegmentTemplate` with a `SegmentTimeline` over the segment window, and
//! the viewer's token carried into the initialization and media URLs.
//!
//! Media time is the stream's 90 kHz decode time, and `availabilityStartTime` is the
//! wall-clock time of media time 0, so a segment becomes available exactly when it was cut
//! (§5.3.9.5.3). `UTCTiming` gives the server clock directly (urn:mpeg:dash:utc:direct:2014)
//! so players need no extra request. Renders into a reused buffer.

use crate::media::frame::TIMESCALE;
use crate::stream::segment::Segment;
use crate::stream::view::VariantInfo;
use crate::uri::TokenQuery;
use crate::utc::write_iso8601;
use std::io::Write;

/// Directory of DASH resources relative to the MPD.
pub const DASH_DIR: &str = "dash/";

/// What the MPD needs besides the segments.
pub struct MpdContext<'a> {
    pub variant: &'a VariantInfo,
    pub bandwidth: u64,
    pub token: TokenQuery<'a>,
    /// Server time now, ms since the epoch.
    pub now_ms: i64,
    /// Target segment duration, ms (minimumUpdatePeriod, minBufferTime).
    pub segment_ms: u32,
}

/// Writes the MPD for `segments` (oldest first; at least one).
pub fn write_mpd<'s>(
    out: &mut Vec<u8>,
    segments: impl Iterator<Item = &'s Segment> + Clone,
    ctx: &MpdContext<'_>,
) {
    let Some(first) = segments.clone().next() else {
        return;
    };
    let window_ms: u64 = segments.clone().map(|s| u64::from(s.duration_ms)).sum();
    out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.extend_from_slice(
        b"<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"dynamic\"",
    );
    out.extend_from_slice(b" availabilityStartTime=\"");
    write_iso8601(out, first.utc_of_zero_ms());
    out.extend_from_slice(b"\" publishTime=\"");
    write_iso8601(out, ctx.now_ms);
    let seg = u64::from(ctx.segment_ms);
    out.extend_from_slice(b"\" minimumUpdatePeriod=\"");
    write_duration(out, seg);
    out.extend_from_slice(b"\" minBufferTime=\"");
    write_duration(out, seg);
    out.extend_from_slice(b"\" timeShiftBufferDepth=\"");
    write_duration(out, window_ms);
    out.extend_from_slice(b"\" suggestedPresentationDelay=\"");
    write_duration(out, seg * 2);
    out.extend_from_slice(b"\">\n  <Period id=\"0\" start=\"PT0S\">\n");
    let v = ctx.variant;
    if let Some(codec) = &v.video_codec {
        out.extend_from_slice(
            b"    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">\n",
        );
        let _ = write!(
            out,
            "      <Representation id=\"v\" codecs=\"{codec}\" bandwidth=\"{}\"",
            ctx.bandwidth
        );
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, " width=\"{w}\" height=\"{h}\"");
        }
        if let Some(fps) = v.frame_rate {
            let _ = write!(out, " frameRate=\"{}\"", fps.round() as u32);
        }
        out.extend_from_slice(b">\n");
        write_template(out, "v", ctx, segments.clone());
        out.extend_from_slice(b"      </Representation>\n    </AdaptationSet>\n");
    }
    if let Some(codec) = &v.audio_codec {
        let (rate, channels) = v.audio_format.unwrap_or((48_000, 2));
        out.extend_from_slice(
            b"    <AdaptationSet id=\"1\" contentType=\"audio\" mimeType=\"audio/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">\n",
        );
        let _ = write!(
            out,
            "      <Representation id=\"a\" codecs=\"{codec}\" bandwidth=\"{AUDIO_BANDWIDTH}\" audioSamplingRate=\"{rate}\">\n\
             \x20       <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{channels}\"/>\n"
        );
        write_template(out, "a", ctx, segments.clone());
        out.extend_from_slice(b"      </Representation>\n    </AdaptationSet>\n");
    }
    out.extend_from_slice(
        b"  </Period>\n  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"",
    );
    write_iso8601(out, ctx.now_ms);
    out.extend_from_slice(b"\"/>\n</MPD>\n");
}

/// Nominal AAC bandwidth announced for the audio representation.
const AUDIO_BANDWIDTH: u32 = 128_000;

/// A `SegmentTemplate` with its timeline: each entry is a closed segment, so its exact
/// duration is known, and `t + d` is the next entry's `t`.
fn write_template<'s>(
    out: &mut Vec<u8>,
    track: &str,
    ctx: &MpdContext<'_>,
    segments: impl Iterator<Item = &'s Segment>,
) {
    let _ = write!(
        out,
        "        <SegmentTemplate timescale=\"{TIMESCALE}\" initialization=\"{DASH_DIR}{track}-init.mp4"
    );
    ctx.token.write(out);
    let _ = write!(out, "\" media=\"{DASH_DIR}{track}-$Time$.m4s");
    ctx.token.write(out);
    out.extend_from_slice(b"\">\n          <SegmentTimeline>\n");
    for s in segments {
        let d = (s.end_dts - s.start_dts).max(1);
        let _ = writeln!(out, "            <S t=\"{}\" d=\"{d}\"/>", s.start_dts);
    }
    out.extend_from_slice(b"          </SegmentTimeline>\n        </SegmentTemplate>\n");
}

/// Writes an xs:duration in seconds with millisecond precision, e.g. `PT2.000S`.
fn write_duration(out: &mut Vec<u8>, ms: u64) {
    let _ = write!(out, "PT{}.{:03}S", ms / 1000, ms % 1000);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn mpd_lists_the_window_with_the_token_in_every_url() {
        let segs: Vec<Segment> = (0..2)
            .map(|i| Segment {
                sequence: i,
                start_utc_ms: 1_706_988_696_000 + i as i64 * 2000,
                start_dts: 180_000 + i as i64 * 180_000,
                end_dts: 180_000 + i as i64 * 180_000 + 180_000,
                duration_ms: 2000,
                ts: Bytes::new(),
                fmp4: None,
                parts: Default::default(),
                dash: Default::default(),
                mss: Default::default(),
            })
            .collect();
        let variant = VariantInfo {
            codecs: "avc1.42c01e,mp4a.40.2".into(),
            resolution: Some((320, 240)),
            frame_rate: Some(25.0),
            video_codec: Some("avc1.42c01e".into()),
            audio_codec: Some("mp4a.40.2".into()),
            audio_format: Some((48_000, 2)),
        };
        let ctx = MpdContext {
            variant: &variant,
            bandwidth: 2_000_000,
            token: TokenQuery {
                param: "token",
                token: Some(b"t 1"),
            },
            now_ms: 1_706_988_700_500,
            segment_ms: 2000,
        };
        let mut out = Vec::new();
        write_mpd(&mut out, segs.iter(), &ctx);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("type=\"dynamic\""), "{text}");
        // Media time 0 is two seconds before the first segment's wall-clock start.
        assert!(
            text.contains("availabilityStartTime=\"2024-02-03T19:31:34.000Z\""),
            "{text}"
        );
        assert!(text.contains("timeShiftBufferDepth=\"PT4.000S\""), "{text}");
        assert!(
            text.contains("initialization=\"dash/v-init.mp4?token=t%201\""),
            "{text}"
        );
        assert!(
            text.contains("media=\"dash/a-$Time$.m4s?token=t%201\""),
            "{text}"
        );
        assert!(
            text.contains(
                "<S t=\"180000\" d=\"180000\"/>\n            <S t=\"360000\" d=\"180000\"/>"
            ),
            "{text}"
        );
        assert!(text.contains(
            "<Representation id=\"v\" codecs=\"avc1.42c01e\" bandwidth=\"2000000\" width=\"320\" height=\"240\" frameRate=\"25\">"
        ));
        assert!(
            text.contains("<Representation id=\"a\" codecs=\"mp4a.40.2\""),
            "{text}"
        );
        assert!(text.contains("value=\"2\"/>"), "{text}");
        assert!(text.ends_with("</MPD>\n"));
    }
}
