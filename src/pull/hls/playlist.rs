//! HLS playlists (RFC 8216 §4), the parts an edge needs to pull a live stream: a master
//! playlist's variants (`#EXT-X-STREAM-INF`), a media playlist's target duration, media
//! sequence, segments with their durations, `#EXT-X-DISCONTINUITY`, `#EXT-X-MAP` (fMP4) and
//! `#EXT-X-ENDLIST`. Untrusted text: every count and length is bounded, nothing panics, and
//! what tessera cannot carry (encrypted or byte-range segments) is an error saying so.

/// Segments of one media playlist, at most.
pub const MAX_SEGMENTS: usize = 4096;
/// Variants of one master playlist, at most.
pub const MAX_VARIANTS: usize = 64;
/// Longest URI line accepted.
pub const MAX_URI_LEN: usize = 2048;
/// Largest `#EXT-X-TARGETDURATION` accepted, in seconds.
pub const MAX_TARGET_DURATION_S: u64 = 60;

/// A parsed playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playlist {
    Master(Vec<Variant>),
    Media(MediaPlaylist),
}

/// One `#EXT-X-STREAM-INF` of a master playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub bandwidth: u64,
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaPlaylist {
    pub target_duration_ms: u64,
    /// `#EXT-X-MEDIA-SEQUENCE`: the first segment's sequence number.
    pub media_sequence: u64,
    pub segments: Vec<Segment>,
    /// `#EXT-X-ENDLIST`: no segment will be added.
    pub ended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub sequence: u64,
    pub uri: String,
    pub duration_ms: u64,
    /// `#EXT-X-DISCONTINUITY` before it: its timestamps do not follow the previous one's.
    pub discontinuity: bool,
    /// The `#EXT-X-MAP` URI in effect (fMP4 initialization section).
    pub map: Option<String>,
}

impl Playlist {
    /// Parses a whole playlist.
    pub fn parse(text: &[u8]) -> Result<Playlist, String> {
        let text = std::str::from_utf8(text).map_err(|_| "playlist is not UTF-8".to_owned())?;
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some("#EXTM3U") {
            return Err("not a playlist: no #EXTM3U first line".into());
        }
        if text.contains("#EXT-X-STREAM-INF") {
            parse_master(lines).map(Playlist::Master)
        } else {
            parse_media(lines).map(Playlist::Media)
        }
    }
}

fn parse_master<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<Variant>, String> {
    let mut variants = Vec::new();
    let mut pending: Option<u64> = None;
    for line in lines {
        if let Some(attrs) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            let bandwidth = attribute(attrs, "BANDWIDTH")
                .and_then(|b| b.parse().ok())
                .ok_or("#EXT-X-STREAM-INF without a valid BANDWIDTH")?;
            pending = Some(bandwidth);
        } else if !line.starts_with('#') {
            if let Some(bandwidth) = pending.take() {
                if variants.len() == MAX_VARIANTS {
                    return Err(format!("more than {MAX_VARIANTS} variants"));
                }
                variants.push(Variant {
                    bandwidth,
                    uri: uri(line)?,
                });
            }
        }
    }
    if variants.is_empty() {
        return Err("master playlist without variants".into());
    }
    Ok(variants)
}

fn parse_media<'a>(lines: impl Iterator<Item = &'a str>) -> Result<MediaPlaylist, String> {
    let mut list = MediaPlaylist::default();
    let mut target = None;
    let mut duration_ms: Option<u64> = None;
    let mut discontinuity = false;
    let mut map: Option<String> = None;
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            let s: u64 = v
                .trim()
                .parse()
                .map_err(|_| format!("bad target duration `{}`", short(v)))?;
            if !(1..=MAX_TARGET_DURATION_S).contains(&s) {
                return Err(format!(
                    "target duration {s} s out of 1..={MAX_TARGET_DURATION_S}"
                ));
            }
            target = Some(s * 1000);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            // RFC 8216 §4.3.3.2: before the first segment (later, it would renumber them).
            if !list.segments.is_empty() {
                return Err("#EXT-X-MEDIA-SEQUENCE after the first segment".into());
            }
            list.media_sequence = v
                .trim()
                .parse()
                .map_err(|_| format!("bad media sequence `{}`", short(v)))?;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            duration_ms = Some(seconds_to_ms(v.split(',').next().unwrap_or(""))?);
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            if attribute(attrs, "BYTERANGE").is_some() {
                return Err("#EXT-X-MAP with BYTERANGE is not supported".into());
            }
            let u = attribute(attrs, "URI").ok_or("#EXT-X-MAP without URI")?;
            map = Some(uri(u)?);
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            if attribute(attrs, "METHOD") != Some("NONE") {
                return Err("encrypted segments (#EXT-X-KEY) are not supported".into());
            }
        } else if line.starts_with("#EXT-X-BYTERANGE") {
            return Err("byte-range segments are not supported".into());
        } else if line == "#EXT-X-ENDLIST" {
            list.ended = true;
        } else if !line.starts_with('#') {
            let Some(duration_ms) = duration_ms.take() else {
                return Err(format!("segment `{}` without #EXTINF", short(line)));
            };
            if list.segments.len() == MAX_SEGMENTS {
                return Err(format!("more than {MAX_SEGMENTS} segments"));
            }
            let sequence = list
                .media_sequence
                .checked_add(list.segments.len() as u64)
                .ok_or("media sequence overflows")?;
            list.segments.push(Segment {
                sequence,
                uri: uri(line)?,
                duration_ms,
                discontinuity: std::mem::take(&mut discontinuity),
                map: map.clone(),
            });
        }
    }
    list.target_duration_ms = target.ok_or("media playlist without #EXT-X-TARGETDURATION")?;
    Ok(list)
}

/// `#EXTINF`'s duration: decimal seconds, to ms (bounded like the target duration).
fn seconds_to_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let bad = || format!("bad segment duration `{}`", short(text));
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    if whole > MAX_TARGET_DURATION_S * 10 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let millis = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |acc, b| acc * 10 + u64::from(b - b'0'));
    Ok(whole * 1000 + millis)
}

fn uri(line: &str) -> Result<String, String> {
    if line.len() > MAX_URI_LEN {
        return Err(format!("URI longer than {MAX_URI_LEN} bytes"));
    }
    if line.bytes().any(|b| b < b' ' || b == 0x7f || b == b' ') {
        return Err("URI with spaces or control characters".into());
    }
    Ok(line.to_owned())
}

/// The value of `name` in an attribute list (RFC 8216 §4.2), quotes removed.
fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                let next = quoted[end + 1..]
                    .strip_prefix(',')
                    .unwrap_or(&quoted[end + 1..]);
                (&quoted[..end], next)
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        if key.trim() == name {
            return Some(value);
        }
        rest = next;
    }
    None
}

/// At most 40 bytes of untrusted text, for error messages.
fn short(text: &str) -> &str {
    let mut end = text.len().min(40);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFMPEG_TS: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n\
        #EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:1.000000,\nlive7.ts\n#EXT-X-DISCONTINUITY\n\
        #EXTINF:0.960000,\nlive8.ts\n";

    #[test]
    fn a_media_playlist_gives_its_segments_with_sequence_numbers() {
        let Playlist::Media(list) = Playlist::parse(FFMPEG_TS.as_bytes()).unwrap() else {
            panic!("media playlist expected");
        };
        assert_eq!((list.target_duration_ms, list.media_sequence), (1000, 7));
        assert_eq!(list.segments.len(), 2);
        assert_eq!(list.segments[1].sequence, 8);
        assert_eq!(list.segments[1].duration_ms, 960);
        assert!(list.segments[1].discontinuity && !list.segments[0].discontinuity);
        assert!(!list.ended);
    }

    #[test]
    fn fmp4_maps_and_the_end_are_kept() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n\
            #EXTINF:2,\n0.m4s\n#EXT-X-ENDLIST\n";
        let Ok(Playlist::Media(list)) = Playlist::parse(text.as_bytes()) else {
            panic!("media playlist expected");
        };
        assert_eq!(list.segments[0].map.as_deref(), Some("init.mp4"));
        assert_eq!(list.segments[0].duration_ms, 2000);
        assert!(list.ended);
    }

    #[test]
    fn a_master_playlist_gives_its_variants() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401f,mp4a.40.2\",RESOLUTION=640x360\n\
            low/index.m3u8\n#EXT-X-STREAM-INF:CODECS=\"a,b\",BANDWIDTH=2000000\nhigh/index.m3u8\n";
        let Ok(Playlist::Master(v)) = Playlist::parse(text.as_bytes()) else {
            panic!("master playlist expected");
        };
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[1].bandwidth, v[1].uri.as_str()),
            (2_000_000, "high/index.m3u8")
        );
    }

    #[test]
    fn what_cannot_be_carried_is_refused_with_a_reason() {
        for (text, why) in [
            ("garbage", "#EXTM3U"),
            ("#EXTM3U\n#EXTINF:1,\na.ts\n", "TARGETDURATION"),
            (
                "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n",
                "encrypted",
            ),
            ("#EXTM3U\n#EXT-X-TARGETDURATION:99999\n", "out of"),
            (
                "#EXTM3U\n#EXT-X-TARGETDURATION:1\na.ts\n",
                "without #EXTINF",
            ),
            (
                "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:x,\na.ts\n",
                "duration",
            ),
            (
                "#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x1\na.m3u8\n",
                "BANDWIDTH",
            ),
        ] {
            let err = Playlist::parse(text.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
        let many = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n{}",
            "#EXTINF:1,\na.ts\n".repeat(MAX_SEGMENTS + 1)
        );
        assert!(Playlist::parse(many.as_bytes()).is_err());
    }

    #[test]
    fn attributes_respect_quotes() {
        assert_eq!(attribute("A=1,B=\"x,y\",C=3", "C"), Some("3"));
        assert_eq!(attribute("A=1,B=\"x,y\",C=3", "B"), Some("x,y"));
        assert_eq!(attribute("A=\"open", "A"), None);
    }
}
