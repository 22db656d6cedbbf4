//! HLS playlist rendering (RFC 8216): the master playlist and the live media playlist, with
//! the viewer's token carried into every URI they contain.
//!
//! URIs are relative, so they resolve under whatever path the viewer used for the stream.
//! Renders into a reused buffer; allocates nothing.

use crate::hls::names::{
    Container, LL_DIR, write_ll_part_path, write_ll_segment_path, write_segment_path,
};
use crate::stream::segment::{Part, Segment};
use crate::stream::view::VariantInfo;
/// The token query moved to [`crate::uri`]; this is its old path.
pub use crate::uri::TokenQuery;
use crate::uri::TokenSlot;
use crate::utc::{write_decimal, write_zero_padded};
use std::io::Write;

/// The variant playlist's path relative to the master.
pub const VARIANT_PATH: &str = "tracks-v1a1/mono.m3u8";
/// Directory of segments relative to the stream root.
pub const TRACKS_DIR: &str = "tracks-v1a1/";

/// Master playlist (RFC 8216 §4.3.4.2) with one variant.
pub fn write_master(
    out: &mut Vec<u8>,
    variant: &VariantInfo,
    bandwidth: u64,
    token: TokenQuery<'_>,
) {
    out.extend_from_slice(b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = write!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS=\"{}\"",
        variant.codecs
    );
    if let Some((w, h)) = variant.resolution {
        let _ = write!(out, ",RESOLUTION={w}x{h}");
    }
    if let Some(fps) = variant.frame_rate {
        let _ = write!(out, ",FRAME-RATE={fps:.3}");
    }
    out.push(b'\n');
    out.extend_from_slice(VARIANT_PATH.as_bytes());
    token.write(out);
    out.push(b'\n');
}

/// The fMP4 initialization segment's name, beside the fragments.
pub const INIT_NAME: &str = "init.mp4";

/// Live media playlist (RFC 8216 §4.3.3) over `segments` (oldest first). `dir` is the
/// segment directory relative to the playlist: `""` under `tracks-v1a1/`, or
/// [`TRACKS_DIR`] for playlists at the stream root. fMP4 playlists are version 7 and name the
/// init segment in `EXT-X-MAP` (§4.3.2.5), token included. `token` is the viewer's, or
/// marks its places in a template (`hls::kept`).
pub fn write_media<'s>(
    out: &mut Vec<u8>,
    segments: impl Iterator<Item = &'s Segment> + Clone,
    dir: &str,
    mut token: impl TokenSlot,
    container: Container,
) {
    let target = target_duration_s(segments.clone());
    let first = segments.clone().next().map_or(0, |s| s.sequence);
    let version = match container {
        Container::Ts => 3,
        Container::Fmp4 => 7,
    };
    out.extend_from_slice(b"#EXTM3U\n#EXT-X-VERSION:");
    write_decimal(out, version);
    out.extend_from_slice(b"\n#EXT-X-TARGETDURATION:");
    write_decimal(out, target);
    out.extend_from_slice(b"\n#EXT-X-MEDIA-SEQUENCE:");
    write_decimal(out, first);
    out.push(b'\n');
    if container == Container::Fmp4 {
        out.extend_from_slice(b"#EXT-X-MAP:URI=\"");
        out.extend_from_slice(dir.as_bytes());
        out.extend_from_slice(INIT_NAME.as_bytes());
        token.put(out);
        out.extend_from_slice(b"\"\n");
    }
    for s in segments {
        out.extend_from_slice(b"#EXT-X-PROGRAM-DATE-TIME:");
        crate::utc::write_iso8601(out, s.start_utc_ms);
        out.extend_from_slice(b"\n#EXTINF:");
        write_seconds(out, s.duration_ms);
        out.extend_from_slice(b",\n");
        out.extend_from_slice(dir.as_bytes());
        write_segment_path(out, s, container);
        token.put(out);
        out.push(b'\n');
    }
}

/// The target duration (seconds, rounded up, at least 1) of a playlist over `segments`.
pub fn target_duration_s<'s>(segments: impl Iterator<Item = &'s Segment>) -> u64 {
    segments
        .map(|s| u64::from(s.duration_ms).div_ceil(1000))
        .max()
        .unwrap_or(1)
        .max(1)
}

/// Parts are listed for the segments that end within this many target durations of the
/// live edge (RFC 8216bis §4.4.4.9: older parts SHOULD be removed).
const PART_LISTING_TARGET_DURATIONS: i64 = 3;

/// `ms` as seconds with three decimals (`2.000`).
fn write_seconds(out: &mut Vec<u8>, ms: u32) {
    write_decimal(out, u64::from(ms / 1000));
    out.push(b'.');
    write_zero_padded(out, u64::from(ms % 1000), 3);
}

fn write_part(out: &mut Vec<u8>, part: &Part, token: &mut impl TokenSlot) {
    out.extend_from_slice(b"#EXT-X-PART:DURATION=");
    write_seconds(out, part.duration_ms());
    out.extend_from_slice(b",URI=\"");
    out.extend_from_slice(LL_DIR.as_bytes());
    write_ll_part_path(out, part.segment, part.index);
    token.put(out);
    out.push(b'"');
    if part.independent {
        out.extend_from_slice(b",INDEPENDENT=YES");
    }
    out.push(b'\n');
}

/// LL-HLS media playlist (RFC 8216bis §4.4.3.7, §4.4.3.8, §4.4.4.9, §4.4.5.3) at the stream
/// root: the finished `segments` (oldest first), the parts of the recent ones and of the
/// segment being cut (`open_parts`), and a preload hint naming the next part. Blocking
/// reload is offered (`CAN-BLOCK-RELOAD=YES`), `PART-HOLD-BACK` is three part targets.
/// Every URI carries the viewer's token: map, parts, segments and the hint.
pub fn write_ll_media<'s>(
    out: &mut Vec<u8>,
    segments: impl Iterator<Item = &'s Segment> + Clone,
    open_parts: &[Part],
    part_target_ms: u32,
    mut token: impl TokenSlot,
) {
    let target = target_duration_s(segments.clone());
    let first = segments.clone().next().map_or(0, |s| s.sequence);
    out.extend_from_slice(b"#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:");
    write_decimal(out, target);
    out.extend_from_slice(b"\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=");
    write_seconds(out, part_target_ms.saturating_mul(3));
    out.extend_from_slice(b"\n#EXT-X-PART-INF:PART-TARGET=");
    write_seconds(out, part_target_ms);
    out.extend_from_slice(b"\n#EXT-X-MEDIA-SEQUENCE:");
    write_decimal(out, first);
    out.extend_from_slice(b"\n#EXT-X-MAP:URI=\"");
    out.extend_from_slice(LL_DIR.as_bytes());
    out.extend_from_slice(INIT_NAME.as_bytes());
    token.put(out);
    out.extend_from_slice(b"\"\n");

    let edge_dts = open_parts
        .last()
        .map(|p| p.end_dts)
        .or_else(|| segments.clone().last().map(|s| s.end_dts))
        .unwrap_or(0);
    let listing_from =
        edge_dts - PART_LISTING_TARGET_DURATIONS * target as i64 * crate::media::frame::TIMESCALE;
    let mut next = (first, 0u32);
    for s in segments {
        out.extend_from_slice(b"#EXT-X-PROGRAM-DATE-TIME:");
        crate::utc::write_iso8601(out, s.start_utc_ms);
        out.push(b'\n');
        if s.end_dts > listing_from {
            for part in s.parts.iter() {
                write_part(out, part, &mut token);
            }
        }
        out.extend_from_slice(b"#EXTINF:");
        write_seconds(out, s.duration_ms);
        out.extend_from_slice(b",\n");
        out.extend_from_slice(LL_DIR.as_bytes());
        write_ll_segment_path(out, s.sequence);
        token.put(out);
        out.push(b'\n');
        next = (s.sequence + 1, 0);
    }
    if let Some(first_open) = open_parts.first() {
        out.extend_from_slice(b"#EXT-X-PROGRAM-DATE-TIME:");
        crate::utc::write_iso8601(out, first_open.start_utc_ms);
        out.push(b'\n');
        for part in open_parts {
            write_part(out, part, &mut token);
            next = (part.segment, part.index + 1);
        }
    }
    out.extend_from_slice(b"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"");
    out.extend_from_slice(LL_DIR.as_bytes());
    write_ll_part_path(out, next.0, next.1);
    token.put(out);
    out.extend_from_slice(b"\"\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn seg(sequence: u64, start_utc_ms: i64) -> Segment {
        Segment {
            sequence,
            start_utc_ms,
            duration_ms: 2000,
            ts: Bytes::new(),
            fmp4: None,
            parts: Default::default(),
            dash: Default::default(),
            mss: Default::default(),
            start_dts: 0,
            end_dts: 180_000,
        }
    }

    const TOKEN: TokenQuery<'static> = TokenQuery {
        param: "token",
        token: Some(b"test1"),
    };

    #[test]
    fn master_carries_token() {
        let mut out = Vec::new();
        let v = VariantInfo {
            codecs: "avc1.42c01e,mp4a.40.2".into(),
            resolution: Some((320, 240)),
            frame_rate: Some(25.0),
            video_codec: None,
            audio_codec: None,
            audio_format: None,
        };
        write_master(&mut out, &v, 2_500_000, TOKEN);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2500000,CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=320x240,FRAME-RATE=25.000\n\
             tracks-v1a1/mono.m3u8?token=test1\n"
        );
    }

    #[test]
    fn media_playlist_lists_named_segments_with_token() {
        let mut out = Vec::new();
        let start = crate::utc::epoch_seconds(2024, 2, 3, 19, 31, 36).unwrap() * 1000;
        let segs = [seg(7, start), seg(8, start + 2000)];
        write_media(&mut out, segs.iter(), "", TOKEN, Container::Ts);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
             #EXT-X-PROGRAM-DATE-TIME:2024-02-03T19:31:36.000Z\n#EXTINF:2.000,\n\
             2024/02/03/19/31/36-02000.ts?token=test1\n\
             #EXT-X-PROGRAM-DATE-TIME:2024-02-03T19:31:38.000Z\n#EXTINF:2.000,\n\
             2024/02/03/19/31/38-02000.ts?token=test1\n"
        );
    }

    #[test]
    fn fmp4_playlist_maps_the_init_segment_with_the_token() {
        let mut out = Vec::new();
        let start = crate::utc::epoch_seconds(2024, 2, 3, 19, 31, 36).unwrap() * 1000;
        write_media(
            &mut out,
            [seg(3, start)].iter(),
            TRACKS_DIR,
            TOKEN,
            Container::Fmp4,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n\
             #EXT-X-MAP:URI=\"tracks-v1a1/init.mp4?token=test1\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2024-02-03T19:31:36.000Z\n#EXTINF:2.000,\n\
             tracks-v1a1/2024/02/03/19/31/36-02000.m4s?token=test1\n"
        );
    }

    fn part(segment: u64, index: u32, start_utc_ms: i64) -> Part {
        Part {
            segment,
            index,
            start_dts: i64::from(index) * 28_800,
            end_dts: i64::from(index + 1) * 28_800,
            start_utc_ms,
            independent: index == 0,
            fmp4: Bytes::new(),
        }
    }

    #[test]
    fn ll_playlist_lists_parts_hint_and_token_everywhere() {
        let mut out = Vec::new();
        let start = crate::utc::epoch_seconds(2024, 2, 3, 19, 31, 36).unwrap() * 1000;
        let mut s = seg(3, start);
        s.end_dts = 57_600;
        s.duration_ms = 640;
        s.parts = vec![part(3, 0, start), part(3, 1, start + 320)].into();
        let open = [part(4, 0, start + 640)];
        write_ll_media(&mut out, [s].iter(), &open, 320, TOKEN);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.960\n\
             #EXT-X-PART-INF:PART-TARGET=0.320\n#EXT-X-MEDIA-SEQUENCE:3\n\
             #EXT-X-MAP:URI=\"ll/init.mp4?token=test1\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2024-02-03T19:31:36.000Z\n\
             #EXT-X-PART:DURATION=0.320,URI=\"ll/3.0.m4s?token=test1\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.320,URI=\"ll/3.1.m4s?token=test1\"\n\
             #EXTINF:0.640,\nll/3.m4s?token=test1\n\
             #EXT-X-PROGRAM-DATE-TIME:2024-02-03T19:31:36.640Z\n\
             #EXT-X-PART:DURATION=0.320,URI=\"ll/4.0.m4s?token=test1\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ll/4.1.m4s?token=test1\"\n"
        );
    }

    #[test]
    fn ll_playlist_drops_old_parts_and_hints_the_next_segment() {
        let mut out = Vec::new();
        let segs: Vec<Segment> = (0..5)
            .map(|i| {
                let mut s = seg(i, i as i64 * 2000);
                s.start_dts = i as i64 * 180_000;
                s.end_dts = s.start_dts + 180_000;
                s.parts = vec![part(i, 0, 0)].into();
                s
            })
            .collect();
        write_ll_media(&mut out, segs.iter(), &[], 320, TOKEN);
        let text = String::from_utf8(out).unwrap();
        // Target 2 s: parts of segments ending after 900000 - 3*2*90000 = 360000.
        assert!(!text.contains("ll/1.0.m4s"), "{text}");
        assert!(text.contains("ll/2.0.m4s"), "{text}");
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ll/5.0.m4s?token=test1\"\n"));
    }

    #[test]
    fn hostile_token_cannot_break_lines() {
        let mut out = Vec::new();
        let token = TokenQuery {
            param: "token",
            token: Some(b"a\n#EXT-X-ENDLIST\n"),
        };
        write_media(
            &mut out,
            [seg(0, 0)].iter(),
            TRACKS_DIR,
            token,
            Container::Ts,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("ENDLIST\n"));
        assert!(
            text.contains(
                "tracks-v1a1/1970/01/01/00/00/00-02000.ts?token=a%0A%23EXT-X-ENDLIST%0A\n"
            )
        );
    }
}
