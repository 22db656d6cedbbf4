//! Routing a normalized path to a stream and a playback resource. Stream names may contain
//! `/`, so the resource is recognised from the end of the path and the rest is the name.
//! Only syntax here: whether the stream exists is the catalog's call, whether the segment
//! still exists is the window's (after authorization, so a refused viewer learns nothing).

use crate::hls::names::{Container, LlName, parse_ll_name, parse_segment_path};
use crate::hls::playlist::TRACKS_DIR;
use crate::media::frame::TrackKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `index.m3u8`
    HlsMaster,
    /// `tracks-v1a1/mono.m3u8` (`dir` = "") or the aliases `mono.m3u8`, `video.m3u8` at the
    /// stream root (`dir` = "tracks-v1a1/").
    HlsMedia { dir: &'static str },
    /// `mpegts`: the live stream as one continuous MPEG-TS response.
    MpegTs,
    /// `index.mpd`: the live DASH manifest.
    DashManifest,
    /// `dash/v-init.mp4`, `dash/a-init.mp4`: a DASH track's initialization segment.
    DashInit { track: DashTrack },
    /// `dash/v-<decode time>.m4s`, `dash/a-<decode time>.m4s`: a DASH track's fragment.
    DashSegment { track: DashTrack, start_dts: i64 },
    /// `NAME.isml/manifest`: the live Smooth Streaming manifest.
    MssManifest,
    /// `NAME.isml/QualityLevels(<bitrate>)/Fragments(video=<time>)` (or `audio=`): an MSS
    /// fragment, by its time on the track's timeline. `FragmentInfo(...)` instead of
    /// `Fragments(...)` asks for the fragment's `moof` alone (`info_only`).
    MssFragment {
        track: TrackKind,
        time: u64,
        info_only: bool,
    },
    /// `embed.html`: the player page.
    EmbedPage,
    /// `index.fmp4.m3u8`: the media playlist of fMP4 fragments (with `EXT-X-MAP`).
    HlsFmp4Media,
    /// `tracks-v1a1/init.mp4`: the fMP4 initialization segment.
    Fmp4Init,
    /// `index.ll.m3u8`: the LL-HLS media playlist (parts, blocking reload).
    LlHlsMedia,
    /// `ll/init.mp4`: the LL-HLS initialization segment (the fMP4 one).
    LlInit,
    /// `ll/MSN.m4s`, `ll/MSN.PART.m4s`: an LL-HLS segment or part.
    Ll(LlName),
    /// `tracks-v1a1/YYYY/MM/DD/HH/MM/SS-DURMS.ts` (or `.m4s`)
    HlsSegment {
        start_second: i64,
        duration_ms: u32,
        container: Container,
    },
}

impl Resource {
    /// The protocol a request for this resource plays by (what auth and sessions see).
    pub fn proto(self) -> crate::auth::verdict::Proto {
        match self {
            Resource::MpegTs => crate::auth::verdict::Proto::TsHttp,
            Resource::DashManifest | Resource::DashInit { .. } | Resource::DashSegment { .. } => {
                crate::auth::verdict::Proto::Dash
            }
            Resource::MssManifest | Resource::MssFragment { .. } => {
                crate::auth::verdict::Proto::Mss
            }
            Resource::LlHlsMedia | Resource::LlInit | Resource::Ll(_) => {
                crate::auth::verdict::Proto::LlHls
            }
            _ => crate::auth::verdict::Proto::Hls,
        }
    }
}

/// Which track a DASH resource is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DashTrack {
    Video,
    Audio,
}

/// `NAME/dash/{v,a}-<digits>.m4s` → (NAME, track, decode time).
fn dash_segment(p: &str) -> Option<(&str, DashTrack, i64)> {
    let rest = p.strip_suffix(".m4s")?;
    let (dir, file) = rest.rsplit_once('/')?;
    let name = dir.strip_suffix("/dash")?;
    let (track, time) = match file.split_at_checked(2)? {
        ("v-", t) => (DashTrack::Video, t),
        ("a-", t) => (DashTrack::Audio, t),
        _ => return None,
    };
    if time.is_empty() || time.len() > 18 || !time.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name, track, time.parse().ok()?))
}

/// The longest decimal a time or bitrate in an MSS URL may have (fits `u64`).
const MSS_MAX_DIGITS: usize = 19;

fn mss_number(digits: &str) -> Option<u64> {
    let ok = !digits.is_empty()
        && digits.len() <= MSS_MAX_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| digits.parse().ok()).flatten()
}

/// `NAME.isml/manifest` and `NAME.isml/QualityLevels(N)/Fragments(video=T)` (MS-SSTR
/// §2.2.1-2.2.3; `FragmentInfo` is the IIS spelling for the `moof` alone) → (NAME, resource).
fn mss(p: &str) -> Option<(&str, Resource)> {
    if let Some(name) = p.strip_suffix(".isml/manifest") {
        return Some((name, Resource::MssManifest));
    }
    let (rest, fragment) = p.rsplit_once('/')?;
    let (dir, quality) = rest.rsplit_once('/')?;
    let name = dir.strip_suffix(".isml")?;
    mss_number(quality.strip_prefix("QualityLevels(")?.strip_suffix(')')?)?;
    let (info_only, args) = if let Some(a) = fragment.strip_prefix("Fragments(") {
        (false, a)
    } else {
        (true, fragment.strip_prefix("FragmentInfo(")?)
    };
    let (kind, time) = args.strip_suffix(')')?.split_once('=')?;
    let track = match kind {
        "video" => TrackKind::Video,
        "audio" => TrackKind::Audio,
        _ => return None,
    };
    let time = mss_number(time)?;
    Some((
        name,
        Resource::MssFragment {
            track,
            time,
            info_only,
        },
    ))
}

/// Splits a normalized path (`/name.../resource`) into the stream name and the resource.
pub fn route(path: &str) -> Option<(&str, Resource)> {
    let p = path.strip_prefix('/')?;
    let (name, resource) = if let Some(name) = p.strip_suffix("/tracks-v1a1/mono.m3u8") {
        (name, Resource::HlsMedia { dir: "" })
    } else if let Some(name) = p.strip_suffix("/mpegts") {
        (name, Resource::MpegTs)
    } else if let Some(name) = p.strip_suffix("/index.mpd") {
        (name, Resource::DashManifest)
    } else if let Some(name) = p.strip_suffix("/dash/v-init.mp4") {
        (
            name,
            Resource::DashInit {
                track: DashTrack::Video,
            },
        )
    } else if let Some(name) = p.strip_suffix("/dash/a-init.mp4") {
        (
            name,
            Resource::DashInit {
                track: DashTrack::Audio,
            },
        )
    } else if let Some((name, track, start_dts)) = dash_segment(p) {
        (name, Resource::DashSegment { track, start_dts })
    } else if let Some(routed) = mss(p) {
        routed
    } else if let Some(name) = p.strip_suffix("/embed.html") {
        (name, Resource::EmbedPage)
    } else if let Some(name) = p.strip_suffix("/index.fmp4.m3u8") {
        (name, Resource::HlsFmp4Media)
    } else if let Some(name) = p.strip_suffix("/tracks-v1a1/init.mp4") {
        (name, Resource::Fmp4Init)
    } else if let Some(name) = p.strip_suffix("/index.ll.m3u8") {
        (name, Resource::LlHlsMedia)
    } else if let Some(name) = p.strip_suffix("/ll/init.mp4") {
        (name, Resource::LlInit)
    } else if let Some((name, ll)) = p
        .rsplit_once('/')
        .and_then(|(dir, file)| Some((dir.strip_suffix("/ll")?, parse_ll_name(file)?)))
    {
        (name, Resource::Ll(ll))
    } else if let Some(name) = p.strip_suffix("/index.m3u8") {
        (name, Resource::HlsMaster)
    } else if let Some(name) = p
        .strip_suffix("/mono.m3u8")
        .or_else(|| p.strip_suffix("/video.m3u8"))
    {
        (name, Resource::HlsMedia { dir: TRACKS_DIR })
    } else if p.ends_with(".ts") || p.ends_with(".m4s") {
        let mut it = p.rsplitn(8, '/');
        let last = it.next()?;
        let mi = it.next()?;
        let h = it.next()?;
        let d = it.next()?;
        let mo = it.next()?;
        let y = it.next()?;
        if it.next()? != "tracks-v1a1" {
            return None;
        }
        let name = it.next()?;
        let (start_second, duration_ms, container) = parse_segment_path([y, mo, d, h, mi, last])?;
        let segment = Resource::HlsSegment {
            start_second,
            duration_ms,
            container,
        };
        (name, segment)
    } else {
        return None;
    };
    (!name.is_empty()).then_some((name, resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_resources() {
        assert_eq!(
            route("/live/cam/mpegts"),
            Some(("live/cam", Resource::MpegTs))
        );
        assert_eq!(route("/a/index.mpd"), Some(("a", Resource::DashManifest)));
        let video = DashTrack::Video;
        assert_eq!(
            route("/a/dash/v-init.mp4"),
            Some(("a", Resource::DashInit { track: video }))
        );
        let seg = Resource::DashSegment {
            track: video,
            start_dts: 180_000,
        };
        assert_eq!(route("/a/b/dash/v-180000.m4s"), Some(("a/b", seg)));
        let audio = Resource::DashSegment {
            track: DashTrack::Audio,
            start_dts: 7,
        };
        assert_eq!(route("/a/dash/a-7.m4s"), Some(("a", audio)));
        for bad in [
            "/a/dash/v--1.m4s",
            "/a/dash/v-1x.m4s",
            "/dash/v-1.m4s",
            "/a/dash/x-1.m4s",
            "/a/dash/1.m4s",
        ] {
            assert_eq!(route(bad), None, "{bad}");
        }
        assert_eq!(
            route("/auth-check/index.m3u8"),
            Some(("auth-check", Resource::HlsMaster))
        );
        assert_eq!(
            route("/live/cam1/index.m3u8"),
            Some(("live/cam1", Resource::HlsMaster))
        );
        assert_eq!(
            route("/a/tracks-v1a1/mono.m3u8"),
            Some(("a", Resource::HlsMedia { dir: "" }))
        );
        assert_eq!(
            route("/a/mono.m3u8"),
            Some(("a", Resource::HlsMedia { dir: TRACKS_DIR }))
        );
        assert_eq!(
            route("/a/video.m3u8"),
            Some(("a", Resource::HlsMedia { dir: TRACKS_DIR }))
        );
        let start = crate::utc::epoch_seconds(2024, 2, 3, 19, 31, 36).unwrap();
        assert_eq!(
            route("/x/y/tracks-v1a1/2024/02/03/19/31/36-05000.ts"),
            Some((
                "x/y",
                Resource::HlsSegment {
                    start_second: start,
                    duration_ms: 5000,
                    container: Container::Ts
                }
            ))
        );
        assert_eq!(
            route("/a/tracks-v1a1/2024/02/03/19/31/36-05000.m4s"),
            Some((
                "a",
                Resource::HlsSegment {
                    start_second: start,
                    duration_ms: 5000,
                    container: Container::Fmp4
                }
            ))
        );
        assert_eq!(
            route("/a/index.fmp4.m3u8"),
            Some(("a", Resource::HlsFmp4Media))
        );
        assert_eq!(
            route("/a/tracks-v1a1/init.mp4"),
            Some(("a", Resource::Fmp4Init))
        );
    }

    #[test]
    fn mss_and_embed_resources() {
        assert_eq!(
            route("/live/cam.isml/manifest"),
            Some(("live/cam", Resource::MssManifest))
        );
        assert_eq!(
            route("/a.isml/QualityLevels(1500000)/Fragments(video=180000)"),
            Some((
                "a",
                Resource::MssFragment {
                    track: TrackKind::Video,
                    time: 180_000,
                    info_only: false
                }
            ))
        );
        assert_eq!(
            route("/a/b.isml/QualityLevels(0)/FragmentInfo(audio=96000)"),
            Some((
                "a/b",
                Resource::MssFragment {
                    track: TrackKind::Audio,
                    time: 96_000,
                    info_only: true
                }
            ))
        );
        assert_eq!(route("/a/embed.html"), Some(("a", Resource::EmbedPage)));
        for bad in [
            "/.isml/manifest",
            "/a.isml/QualityLevels()/Fragments(video=1)",
            "/a.isml/QualityLevels(x)/Fragments(video=1)",
            "/a.isml/QualityLevels(1)/Fragments(text=1)",
            "/a.isml/QualityLevels(1)/Fragments(video=-1)",
            "/a.isml/QualityLevels(1)/Fragments(video=1",
            "/a.isml/QualityLevels(1)/Fragments(video=99999999999999999999)",
            "/a.isml/QualityLevels(1)/Fragment(video=1)",
            "/a/QualityLevels(1)/Fragments(video=1)",
            "/embed.html",
        ] {
            assert_eq!(route(bad), None, "{bad}");
        }
        assert_eq!(
            Resource::MssManifest.proto(),
            crate::auth::verdict::Proto::Mss
        );
    }

    #[test]
    fn ll_hls_resources() {
        assert_eq!(
            route("/a/b/index.ll.m3u8"),
            Some(("a/b", Resource::LlHlsMedia))
        );
        assert_eq!(route("/a/ll/init.mp4"), Some(("a", Resource::LlInit)));
        assert_eq!(
            route("/a/ll/12.m4s"),
            Some(("a", Resource::Ll(LlName::Segment { sequence: 12 })))
        );
        let part = LlName::Part {
            sequence: 12,
            part: 4,
        };
        assert_eq!(route("/a/b/ll/12.4.m4s"), Some(("a/b", Resource::Ll(part))));
        assert_eq!(
            Resource::Ll(part).proto(),
            crate::auth::verdict::Proto::LlHls
        );
        for bad in [
            "/ll/1.m4s",
            "/a/ll/x.m4s",
            "/a/ll/1.2.3.m4s",
            "/a/index.ll.m3u",
        ] {
            assert_eq!(route(bad), None, "{bad}");
        }
    }

    #[test]
    fn everything_else_is_unrouted() {
        for p in [
            "/",
            "/index.m3u8",
            "/a",
            "/a/other.m3u8",
            "/a/tracks-v1a2/2024/02/03/19/31/36-05000.ts",
            "/a/tracks-v1a1/2024/02/03/19/31/36.ts",
            "/tracks-v1a1/2024/02/03/19/31/36-05000.ts",
            "/a/index.m3u8x",
            "/a/init.mp4",
            "/a/tracks-v1a1/2024/02/03/19/31/36-05000.mp4",
            "/a/init.mp4",
            "/a/tracks-v1a1/2024/02/03/19/31/36-05000.mp4",
        ] {
            assert_eq!(route(p), None, "{p}");
        }
    }
}
