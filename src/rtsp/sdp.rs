//! The SDP session description a DESCRIBE returns (RFC 4566 §5; RFC 2326 §C.1 control
//! attributes; RFC 6184 §8.1-8.2.1 H.264 parameters; RFC 3640 §4.1 mpeg4-generic AAC-hbr).
//!
//! Owns: the text of the description (session lines in the order §5 requires, one media
//! section per track with `a=control:trackID=N`), the fixed track ids and payload types, and
//! the small base64 (RFC 4648 §4) and hex encoders the fmtp lines need.
//!
//! Never does: parse SDP (the edge's RTSP client does, in `pull::rtsp::sdp`), or describe anything but live unicast
//! playback: `c=IN IP4 0.0.0.0` and `m=... 0 ...` say "ports come from SETUP", and
//! `a=range:npt=now-` says the stream has no beginning to seek to.

use crate::media::frame::{AudioConfig, MediaInfo, TrackKind, VideoConfig};
use crate::rtp;
use std::fmt::Write;

/// `a=control:trackID=0` is the video track, `trackID=1` the audio track, whichever exist.
pub const VIDEO_TRACK_ID: u32 = 0;
pub const AUDIO_TRACK_ID: u32 = 1;

/// The track id of a track kind.
pub fn track_id(kind: TrackKind) -> u32 {
    match kind {
        TrackKind::Video => VIDEO_TRACK_ID,
        TrackKind::Audio => AUDIO_TRACK_ID,
    }
}

/// The track kind of a track id, if `media` has that track.
pub fn track_kind(media: &MediaInfo, id: u32) -> Option<TrackKind> {
    match id {
        VIDEO_TRACK_ID if media.video.is_some() => Some(TrackKind::Video),
        AUDIO_TRACK_ID if media.audio.is_some() => Some(TrackKind::Audio),
        _ => None,
    }
}

/// Writes the description of `media`. `session_id` goes in `o=` (§5.2); `name` in `s=`
/// (must not contain CR or LF: stream names are normalized before they get here).
pub fn write_sdp(media: &MediaInfo, name: &str, session_id: u64, out: &mut String) {
    let name = if name.is_empty() { "-" } else { name };
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "v=0\r\n\
         o=- {session_id} 1 IN IP4 0.0.0.0\r\n\
         s={name}\r\n\
         c=IN IP4 0.0.0.0\r\n\
         t=0 0\r\n\
         a=control:*\r\n\
         a=range:npt=now-\r\n"
    );
    if let Some(video) = &media.video {
        write_video(video, out);
    }
    if let Some(audio) = &media.audio {
        write_audio(audio, out);
    }
}

fn write_video(video: &VideoConfig, out: &mut String) {
    let pt = rtp::h264::PAYLOAD_TYPE;
    let _ = write!(
        out,
        "m=video 0 RTP/AVP {pt}\r\n\
         a=rtpmap:{pt} H264/{}\r\n\
         a=fmtp:{pt} packetization-mode=1;profile-level-id={:02X}{:02X}{:02X}",
        rtp::h264::CLOCK_RATE,
        video.profile_idc,
        video.constraint_flags,
        video.level_idc
    );
    if !video.sps.is_empty() && !video.pps.is_empty() {
        out.push_str(";sprop-parameter-sets=");
        base64_encode(&video.sps, out);
        out.push(',');
        base64_encode(&video.pps, out);
    }
    out.push_str("\r\n");
    if let Some((num, den)) = video.frame_rate
        && num > 0
        && den > 0
    {
        if num % den == 0 {
            let _ = write!(out, "a=framerate:{}\r\n", num / den);
        } else {
            let _ = write!(
                out,
                "a=framerate:{:.3}\r\n",
                f64::from(num) / f64::from(den)
            );
        }
    }
    let _ = write!(out, "a=control:trackID={VIDEO_TRACK_ID}\r\n");
}

fn write_audio(audio: &AudioConfig, out: &mut String) {
    let pt = rtp::aac::PAYLOAD_TYPE;
    let _ = write!(
        out,
        "m=audio 0 RTP/AVP {pt}\r\n\
         a=rtpmap:{pt} MPEG4-GENERIC/{}/{}\r\n\
         a=fmtp:{pt} streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;\
         indexdeltalength=3;config=",
        audio.sample_rate, audio.channels
    );
    hex_encode(&audio.asc, out);
    let _ = write!(out, "\r\na=control:trackID={AUDIO_TRACK_ID}\r\n");
}

/// Appends standard base64 with padding (RFC 4648 §4).
pub fn base64_encode(data: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

/// Standard base64 with optional padding (RFC 4648 §4), as `sprop-parameter-sets` carries
/// it; `None` on any other character. Read as base64url (§5) with the two letters swapped,
/// by the strict decoder the signed keys use.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let url: Vec<u8> = text
        .trim_end_matches('=')
        .bytes()
        .map(|b| match b {
            b'+' => b'-',
            b'/' => b'_',
            b'-' | b'_' => b'!', // not standard base64: refused
            b => b,
        })
        .collect();
    crate::auth::signed::base64url_decode(&url)
}

/// Appends lowercase hex.
pub fn hex_encode(data: &[u8], out: &mut String) {
    for b in data {
        let _ = write!(out, "{b:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn media() -> MediaInfo {
        MediaInfo {
            video: Some(VideoConfig {
                sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x01, 0x41, 0xfb]),
                pps: Bytes::from_static(&[0x68, 0xcb, 0x83, 0xcb, 0x20]),
                width: 320,
                height: 240,
                profile_idc: 0x42,
                constraint_flags: 0xc0,
                level_idc: 0x1e,
                frame_rate: Some((25, 1)),
            }),
            audio: crate::media::aac::audio_config(2, 48_000, 2),
        }
    }

    #[test]
    fn sdp_text_exactly() {
        let mut out = String::new();
        write_sdp(&media(), "auth-check", 1234, &mut out);
        assert_eq!(
            out,
            "v=0\r\n\
             o=- 1234 1 IN IP4 0.0.0.0\r\n\
             s=auth-check\r\n\
             c=IN IP4 0.0.0.0\r\n\
             t=0 0\r\n\
                 a=control:*\r\n\
             a=range:npt=now-\r\n\
             m=video 0 RTP/AVP 96\r\n\
             a=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1;profile-level-id=42C01E;sprop-parameter-sets=Z0LAHtkBQfs=,aMuDyyA=\r\n\
             a=framerate:25\r\n\
             a=control:trackID=0\r\n\
             m=audio 0 RTP/AVP 97\r\n\
             a=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
             a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n\
             a=control:trackID=1\r\n"
        );
    }

    #[test]
    fn audio_only_and_video_only() {
        let mut m = media();
        m.video = None;
        let mut out = String::new();
        write_sdp(&m, "", 1, &mut out);
        assert!(out.contains("s=-\r\n"));
        assert!(!out.contains("m=video"));
        assert!(out.contains("a=control:trackID=1\r\n"));
        assert_eq!(track_kind(&m, 0), None);
        assert_eq!(track_kind(&m, 1), Some(TrackKind::Audio));
        assert_eq!(track_kind(&m, 2), None);

        let mut m = media();
        m.audio = None;
        if let Some(v) = m.video.as_mut() {
            v.frame_rate = Some((30_000, 1001));
        }
        out.clear();
        write_sdp(&m, "x", 1, &mut out);
        assert!(out.contains("a=framerate:29.970\r\n"));
        assert!(!out.contains("m=audio"));
    }

    #[test]
    fn base64_vectors() {
        // RFC 4648 §10.
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            base64_encode(input.as_bytes(), &mut out);
            assert_eq!(out, expected);
            assert_eq!(base64_decode(expected).unwrap(), input.as_bytes());
        }
        assert_eq!(base64_decode("//79").unwrap(), [0xff, 0xfe, 0xfd]);
        assert!(base64_decode("Zm9v!").is_none());
        let mut out = String::new();
        base64_encode(&[0xff, 0xfe, 0xfd], &mut out);
        assert_eq!(out, "//79");
        out.clear();
        hex_encode(&[0x11, 0x90, 0x0a], &mut out);
        assert_eq!(out, "11900a");
    }
}
