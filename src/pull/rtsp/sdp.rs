//! The session description an origin answers DESCRIBE with (RFC 4566), read for what the
//! pull needs: each H.264 (RFC 6184 §8.2.1) and AAC `mpeg4-generic` (RFC 3640 §4.1) track,
//! its payload type, clock rate, control URL and decoder configuration. Other tracks are
//! skipped; an H.264 track without `sprop-parameter-sets` waits for in-band SPS/PPS.

use crate::media::frame::{AudioConfig, TrackKind};
use crate::rtsp::sdp::base64_decode;
use bytes::Bytes;

/// What a track carries and how to read its packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackCodec {
    H264 {
        sps: Option<Bytes>,
        pps: Option<Bytes>,
    },
    Aac {
        config: AudioConfig,
        size_bits: u32,
        index_bits: u32,
    },
}

/// One track of the description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpTrack {
    pub payload_type: u8,
    pub clock_rate: u32,
    /// `a=control:` as written (absolute, relative, or `*`).
    pub control: String,
    pub codec: TrackCodec,
}

impl SdpTrack {
    pub fn kind(&self) -> TrackKind {
        match self.codec {
            TrackCodec::H264 { .. } => TrackKind::Video,
            TrackCodec::Aac { .. } => TrackKind::Audio,
        }
    }
}

/// The tracks tessera can carry (at most one video and one audio: the first of each), and
/// the session-level control URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Description {
    pub control: Option<String>,
    pub tracks: Vec<SdpTrack>,
}

/// A media section while it is read.
#[derive(Default)]
struct Media {
    kind: Option<TrackKind>,
    payload_type: Option<u8>,
    encoding: String,
    clock_rate: u32,
    fmtp: String,
    control: String,
}

/// Reads the description; an error when it has no track tessera carries.
pub fn parse(text: &str) -> Result<Description, String> {
    let mut description = Description::default();
    let mut media: Option<Media> = None;
    for line in text.lines().map(str::trim_end) {
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match (kind, media.as_mut()) {
            ("m", _) => {
                finish(media.take(), &mut description);
                media = Some(media_line(value));
            }
            ("a", None) => {
                if let Some(control) = value.strip_prefix("control:") {
                    description.control = Some(control.trim().to_owned());
                }
            }
            ("a", Some(m)) => attribute(m, value),
            _ => {}
        }
    }
    finish(media, &mut description);
    if description.tracks.is_empty() {
        return Err("the origin's SDP has no H.264 or AAC track".into());
    }
    Ok(description)
}

/// `m=video 0 RTP/AVP 96`: the kind and the first payload type.
fn media_line(value: &str) -> Media {
    let mut parts = value.split_ascii_whitespace();
    let kind = match parts.next() {
        Some("video") => Some(TrackKind::Video),
        Some("audio") => Some(TrackKind::Audio),
        _ => None,
    };
    let payload_type = parts.nth(2).and_then(|pt| pt.parse::<u8>().ok());
    Media {
        kind,
        payload_type,
        ..Media::default()
    }
}

fn attribute(m: &mut Media, value: &str) {
    let Some(pt) = m.payload_type else { return };
    let for_pt = |rest: &str| -> Option<String> {
        let (number, tail) = rest.split_once(' ')?;
        (number.parse::<u8>().ok()? == pt).then(|| tail.trim().to_owned())
    };
    if let Some(rest) = value.strip_prefix("rtpmap:") {
        if let Some(map) = for_pt(rest) {
            let mut parts = map.split('/');
            m.encoding = parts.next().unwrap_or("").to_ascii_uppercase();
            m.clock_rate = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
        }
    } else if let Some(rest) = value.strip_prefix("fmtp:") {
        if let Some(fmtp) = for_pt(rest) {
            m.fmtp = fmtp;
        }
    } else if let Some(control) = value.strip_prefix("control:") {
        m.control = control.trim().to_owned();
    }
}

/// Adds a finished media section as a track when tessera carries its codec and has no track
/// of its kind yet.
fn finish(media: Option<Media>, description: &mut Description) {
    let Some(m) = media else { return };
    let (Some(kind), Some(payload_type)) = (m.kind, m.payload_type) else {
        return;
    };
    if description.tracks.iter().any(|t| t.kind() == kind) {
        return;
    }
    let codec = match (kind, m.encoding.as_str()) {
        (TrackKind::Video, "H264") => h264_codec(&m.fmtp),
        (TrackKind::Audio, "MPEG4-GENERIC") => aac_codec(&m.fmtp),
        _ => None,
    };
    let Some(codec) = codec else { return };
    let clock_rate = if m.clock_rate > 0 {
        m.clock_rate
    } else {
        90_000
    };
    description.tracks.push(SdpTrack {
        payload_type,
        clock_rate,
        control: m.control,
        codec,
    });
}

/// The value of `key` in an fmtp parameter list (`a=b;c=d`), case-insensitive key.
fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim())
}

fn h264_codec(fmtp: &str) -> Option<TrackCodec> {
    if fmtp_param(fmtp, "packetization-mode").is_some_and(|m| m == "2") {
        return None; // interleaved mode: not carried
    }
    let mut sets = fmtp_param(fmtp, "sprop-parameter-sets")
        .unwrap_or("")
        .split(',')
        .filter_map(base64_decode)
        .filter(|nal| !nal.is_empty());
    let (mut sps, mut pps) = (None, None);
    for nal in sets.by_ref() {
        match nal[0] & 0x1f {
            7 if sps.is_none() => sps = Some(Bytes::from(nal)),
            8 if pps.is_none() => pps = Some(Bytes::from(nal)),
            _ => {}
        }
    }
    Some(TrackCodec::H264 { sps, pps })
}

fn aac_codec(fmtp: &str) -> Option<TrackCodec> {
    let mode = fmtp_param(fmtp, "mode")?;
    if !mode.eq_ignore_ascii_case("AAC-hbr") && !mode.eq_ignore_ascii_case("AAC-lbr") {
        return None;
    }
    let asc = hex_decode(fmtp_param(fmtp, "config")?)?;
    let config = crate::rtmp::flv::parse_audio_specific_config(Bytes::from(asc)).ok()?;
    let number = |key, default| fmtp_param(fmtp, key).map_or(Some(default), |v| v.parse().ok());
    Some(TrackCodec::Aac {
        config,
        size_bits: number("sizelength", 13)?,
        index_bits: number("indexlength", 3)?,
    })
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The URL a track's SETUP goes to: its control resolved against the base (RFC 2326 §C.1.1).
pub fn track_url(base: &str, control: &str) -> String {
    if control.is_empty() || control == "*" {
        return base.to_owned();
    }
    if control.len() > 7 && control[..7].eq_ignore_ascii_case("rtsp://") {
        return control.to_owned();
    }
    let base = base.split('?').next().unwrap_or(base);
    if base.ends_with('/') {
        format!("{base}{control}")
    } else {
        format!("{base}/{control}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::MediaInfo;

    #[test]
    fn tessera_s_own_description_reads_back() {
        let media = MediaInfo {
            video: crate::media::h264::video_config(
                Bytes::from_static(crate::rtmp::flv::tests::SPS),
                Bytes::from_static(crate::rtmp::flv::tests::PPS),
            )
            .ok(),
            audio: crate::media::aac::audio_config(2, 48_000, 2),
        };
        let mut text = String::new();
        crate::rtsp::sdp::write_sdp(&media, "cam", 1, &mut text);
        let d = parse(&text).unwrap();
        assert_eq!(d.tracks.len(), 2);
        let video = &d.tracks[0];
        assert_eq!((video.payload_type, video.clock_rate), (96, 90_000));
        assert_eq!(
            video.codec,
            TrackCodec::H264 {
                sps: Some(media.video.as_ref().unwrap().sps.clone()),
                pps: Some(media.video.as_ref().unwrap().pps.clone()),
            }
        );
        let audio = &d.tracks[1];
        assert_eq!(audio.clock_rate, 48_000);
        let TrackCodec::Aac {
            config,
            size_bits,
            index_bits,
        } = &audio.codec
        else {
            panic!("{audio:?}")
        };
        assert_eq!(
            (config, *size_bits, *index_bits),
            (media.audio.as_ref().unwrap(), 13, 3)
        );
        assert_eq!(
            track_url("rtsp://o/cam?token=1", &audio.control),
            "rtsp://o/cam/trackID=1"
        );
    }

    #[test]
    fn a_camera_s_description_and_unsupported_tracks() {
        let text = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=cam\r\na=control:rtsp://10.0.0.5/live/\r\n\
            m=video 0 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n\
            a=fmtp:97 profile-level-id=42e01f;packetization-mode=1\r\na=control:track1\r\n\
            m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:track2\r\n";
        let d = parse(text).unwrap();
        assert_eq!(d.control.as_deref(), Some("rtsp://10.0.0.5/live/"));
        assert_eq!(d.tracks.len(), 1);
        assert_eq!(
            d.tracks[0].codec,
            TrackCodec::H264 {
                sps: None,
                pps: None
            }
        );
        assert_eq!(
            track_url("rtsp://10.0.0.5/live/", "track1"),
            "rtsp://10.0.0.5/live/track1"
        );
        assert_eq!(track_url("rtsp://a/b", "rtsp://c/d"), "rtsp://c/d");
        assert!(parse("v=0\r\nm=audio 0 RTP/AVP 0\r\n").is_err());
        assert!(parse("garbage\u{0}\n=\nm=\na=fmtp:\n").is_err());
    }
}
