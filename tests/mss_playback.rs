//! Smooth Streaming (`NAME.isml/manifest`): a live manifest whose fragment URL template
//! carries the token, fragments with the boxes MSS clients need (`tfxd` with the fragment's
//! absolute time, `tfrf` announcing the next one), and everything refused without the token.
//! ffprobe cannot read MSS manifests; tests/browser_playback.rs plays this with dash.js.

mod common;
use common::*;

const TFXD: [u8; 16] = [
    0x6D, 0x1D, 0x9B, 0x05, 0x42, 0xD5, 0x44, 0xE6, 0x80, 0xE2, 0x14, 0x1D, 0xAF, 0xF7, 0x57, 0xB2,
];
const TFRF: [u8; 16] = [
    0xD4, 0x80, 0x7E, 0xF2, 0xCA, 0x39, 0x46, 0x95, 0x8E, 0x54, 0x26, 0xCB, 0x9E, 0x46, 0xA7, 0x9F,
];

/// (type, body) of each box in `buf`; panics when sizes do not add up.
fn boxes(mut buf: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let size = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && size <= buf.len(),
            "box size {size} of {}",
            buf.len()
        );
        out.push((buf[4..8].try_into().unwrap(), &buf[8..size]));
        buf = &buf[size..];
    }
    out
}

fn child<'a>(parent: &'a [u8], kind: &[u8; 4]) -> Vec<&'a [u8]> {
    boxes(parent)
        .into_iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, b)| b)
        .collect()
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

/// The `t` values of a StreamIndex's `<c>` entries, and its fragment URL template.
fn stream_index(manifest: &str, kind: &str) -> (Vec<u64>, String) {
    let start = manifest
        .find(&format!("<StreamIndex Type=\"{kind}\""))
        .unwrap_or_else(|| panic!("no {kind} StreamIndex:\n{manifest}"));
    let section = &manifest[start..];
    let section = &section[..section.find("</StreamIndex>").unwrap()];
    let url = section.split("Url=\"").nth(1).unwrap();
    let url = url[..url.find('"').unwrap()].to_string();
    let times = section
        .split("<c t=\"")
        .skip(1)
        .map(|c| c[..c.find('"').unwrap()].parse().unwrap())
        .collect();
    (times, url)
}

#[test]
fn mss_serves_a_live_manifest_and_fragments_with_the_token_and_refuses_without() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    let manifest_path = "/auth-check.isml/manifest?token=test1";
    server.wait_ok(manifest_path);
    let manifest = get(server.http, manifest_path);
    assert_eq!(
        manifest.header("content-type"),
        Some("text/xml; charset=utf-8")
    );
    let text = manifest.text();
    for needle in [
        "<SmoothStreamingMedia MajorVersion=\"2\"",
        "IsLive=\"TRUE\"",
        "LookAheadFragmentCount=\"1\"",
        "DVRWindowLength=\"",
        "FourCC=\"H264\"",
        // Annex B start code + SPS (NAL type 7), then start code + PPS (type 8).
        "CodecPrivateData=\"0000000167",
        "0000000168",
        // AAC-LC, 48 kHz, stereo.
        "FourCC=\"AACL\" SamplingRate=\"48000\" Channels=\"2\"",
        "CodecPrivateData=\"1190\"",
    ] {
        assert!(text.contains(needle), "manifest lacks {needle:?}:\n{text}");
    }
    let (video_times, video_url) = stream_index(&text, "video");
    let (audio_times, audio_url) = stream_index(&text, "audio");
    assert_eq!(
        video_url,
        "QualityLevels({bitrate})/Fragments(video={start time})?token=test1"
    );
    assert_eq!(
        audio_url,
        "QualityLevels({bitrate})/Fragments(audio={start time})?token=test1"
    );
    assert!(!video_times.is_empty() && !audio_times.is_empty(), "{text}");

    for (kind, t) in [("video", video_times[0]), ("audio", audio_times[0])] {
        let path = format!("/auth-check.isml/QualityLevels(1)/Fragments({kind}={t})?token=test1");
        let fragment = get(server.http, &path);
        assert_eq!(fragment.status, 200, "{path}: {}", fragment.head);
        let top = boxes(&fragment.body);
        let kinds: Vec<&[u8; 4]> = top.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [b"moof", b"mdat"], "{path}");
        let traf = child(top[0].1, b"traf")[0];
        let trun = child(traf, b"trun")[0];
        let samples = u32::from_be_bytes(trun[4..8].try_into().unwrap());
        assert!(samples > 0, "{path}: empty trun");
        let uuids = child(traf, b"uuid");
        let tfxd = uuids
            .iter()
            .find(|b| b[..16] == TFXD)
            .unwrap_or_else(|| panic!("{path}: no tfxd"));
        // Version 1: 64-bit absolute time, then duration.
        assert_eq!(tfxd[16], 1);
        assert_eq!(be64(&tfxd[20..]), t, "{path}: tfxd time");
        let duration = be64(&tfxd[28..]);
        assert!(duration > 0);
        let tfrf = uuids
            .iter()
            .find(|b| b[..16] == TFRF)
            .unwrap_or_else(|| panic!("{path}: no tfrf"));
        assert_eq!((tfrf[16], tfrf[20]), (1, 1), "{path}: tfrf v1, one entry");
        assert_eq!(
            be64(&tfrf[21..]),
            t + duration,
            "{path}: tfrf announces the next"
        );

        // FragmentInfo: the moof alone.
        let info = get(server.http, &path.replace("/Fragments(", "/FragmentInfo("));
        assert_eq!(info.status, 200);
        assert_eq!(info.body, &fragment.body[..info.body.len()]);
        assert_eq!(boxes(&info.body).len(), 1);

        let bare = &path[..path.find('?').unwrap()];
        let refused = get(server.http, bare);
        assert_eq!(refused.status, 403, "{bare}");
        assert_eq!(refused.header("x-deny-reason"), Some("backend_denied"));
    }
    let refused = get(server.http, "/auth-check.isml/manifest");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.header("x-deny-reason"), Some("backend_denied"));
    let wrong = get(server.http, "/auth-check.isml/manifest?token=nope");
    assert_eq!(wrong.status, 403);
    // A fragment that never existed is 404 once authorized, 403 before.
    let missing = "/auth-check.isml/QualityLevels(1)/Fragments(video=7)";
    assert_eq!(
        get(server.http, &format!("{missing}?token=test1")).status,
        404
    );
    assert_eq!(get(server.http, missing).status, 403);
}
