//! The spec's §1 HLS scenario against the real binary: 403 without a token, playlists and
//! segments with it, the token carried into every URI, and ffprobe/ffmpeg playing it.

mod common;
use common::*;
use std::time::Duration;

const MEDIA: &str = "/auth-check/tracks-v1a1/mono.m3u8?token=test1";

#[test]
fn no_token_is_403_with_reason_cors_server_and_timing() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    for path in [
        "/auth-check/index.m3u8",
        "/auth-check/index.m3u8?token=wrong",
        MEDIA.trim_end_matches("test1"),
    ] {
        let r = get(server.http, path);
        assert_eq!(r.status, 403, "{path}: {}", r.head);
        assert_eq!(r.header("x-deny-reason"), Some("backend_denied"), "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        for h in [
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-expose-headers",
        ] {
            assert!(r.header(h).is_some(), "{path}: missing {h}");
        }
        assert!(
            r.header("server")
                .is_some_and(|s| s.starts_with("tessera/"))
        );
        assert!(
            r.header("x-run-time")
                .is_some_and(|v| v.parse::<u64>().is_ok()),
            "x-run-time is integer microseconds"
        );
        assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
        assert!(r.text().contains("backend_denied"));
    }
}

#[test]
fn token_follows_into_every_uri() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    server.wait_ok(MEDIA);

    let master = get(server.http, "/auth-check/index.m3u8?token=test1");
    assert_eq!(master.status, 200);
    assert_eq!(
        master.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(master.header("cache-control"), Some("no-cache"));
    let text = master.text();
    assert!(text.contains("RESOLUTION=320x240"), "{text}");
    assert!(text.contains("CODECS=\"avc1.42c01e,mp4a.40.2\""), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "tracks-v1a1/mono.m3u8?token=test1"),
        "{text}"
    );

    let media = get(server.http, MEDIA);
    assert_eq!(media.status, 200);
    let text = media.text();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:"), "{text}");
    assert!(text.contains("#EXT-X-TARGETDURATION:2"), "{text}");
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{text}");
    let uris: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(!uris.is_empty());
    for uri in &uris {
        assert!(is_segment_name(uri), "segment URI shape: {uri}");
        assert!(uri.ends_with("?token=test1"), "{uri}");
        let seg = get(server.http, &format!("/auth-check/tracks-v1a1/{uri}"));
        assert_eq!(seg.status, 200, "{uri}");
        assert_eq!(seg.header("content-type"), Some("video/mp2t"));
        assert!(
            seg.header("cache-control")
                .is_some_and(|c| c.contains("max-age"))
        );
        assert!(seg.body.len() > 188 && seg.body.len() % 188 == 0 && seg.body[0] == 0x47);
        // The same segment without the token is refused, with no hint that it exists.
        let (bare, _) = uri.split_once('?').unwrap();
        assert_eq!(
            get(server.http, &format!("/auth-check/tracks-v1a1/{bare}")).status,
            403
        );
    }

    for alias in [
        "/auth-check/mono.m3u8?token=test1",
        "/auth-check/video.m3u8?token=test1",
    ] {
        let text = get(server.http, alias).text();
        for uri in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let rest = uri
                .strip_prefix("tracks-v1a1/")
                .unwrap_or_else(|| panic!("{alias}: {uri}"));
            assert!(
                is_segment_name(rest) && rest.ends_with("?token=test1"),
                "{uri}"
            );
        }
    }
}

/// `YYYY/MM/DD/HH/MM/SS-DDDDD.ts?...`
fn is_segment_name(uri: &str) -> bool {
    let name = uri.split('?').next().unwrap_or("");
    let parts: Vec<&str> = name.split('/').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 6
        && digits(parts[0], 4)
        && parts[1..5].iter().all(|p| digits(p, 2))
        && parts[5].len() == 11
        && digits(&parts[5][..2], 2)
        && &parts[5][2..3] == "-"
        && parts[5].ends_with(".ts")
        && digits(&parts[5][3..8], 5)
}

#[test]
fn ffprobe_sees_the_fake_source_through_the_token() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    server.wait_ok(MEDIA);
    let url = server.url("/auth-check/index.m3u8?token=test1");
    let err = assert_probe_shows_fake_source(&[], &url);
    for needle in ["tracks-v1a1/mono.m3u8?token=test1", ".ts?token=test1"] {
        assert!(
            err.contains(needle),
            "ffprobe did not follow the token: {needle:?}:\n{err}"
        );
    }

    let denied = run_bounded(
        tool("ffprobe").arg(server.url("/auth-check/index.m3u8")),
        Duration::from_secs(60),
    );
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"));
}

#[test]
fn ffmpeg_decodes_six_seconds_without_a_warning() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    server.wait_ok(MEDIA);
    let url = server.url("/auth-check/index.m3u8?token=test1");
    assert_decodes_cleanly(&[], &url, 6, &[]);
}

#[test]
fn open_stream_needs_no_token_and_adds_none() {
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\nstream live/open {{ input fake://fake; segment_duration 1; }}\n"
    );
    let server = Server::start(&config, port);
    server.wait_ok("/live/open/tracks-v1a1/mono.m3u8");
    let master = get(server.http, "/live/open/index.m3u8");
    assert_eq!(master.status, 200);
    assert!(master.text().lines().any(|l| l == "tracks-v1a1/mono.m3u8"));
    let media = get(server.http, "/live/open/tracks-v1a1/mono.m3u8").text();
    assert!(media.contains("#EXT-X-TARGETDURATION:1"), "{media}");
    assert!(!media.contains('?'), "{media}");
}

#[test]
fn sessions_are_logged_with_a_token_tag_never_the_token() {
    let port = free_port();
    let config = demo_config(port).replace("test1", "s3cr3t-t0ken");
    let server = Server::start(&config, port);
    server.wait_ok("/auth-check/tracks-v1a1/mono.m3u8?token=s3cr3t-t0ken");
    let r = get(
        server.http,
        "/auth-check/tracks-v1a1/mono.m3u8?token=s3cr3t-t0ken",
    );
    let id = r.header("x-session-id").expect("session id").to_string();
    assert_eq!(id.len(), 36);
    get(server.http, "/auth-check/index.m3u8?token=wrong-t0ken");
    let log = server.log_text();
    assert!(log.contains(&format!("session opened id={id}")), "{log}");
    assert!(!log.contains("s3cr3t"), "whole token in the log:\n{log}");
    assert!(
        !log.contains("wrong-t0ken"),
        "whole token in the log:\n{log}"
    );
}

#[test]
fn fmp4_hls_plays_with_the_token_and_refuses_without() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    let playlist = "/auth-check/index.fmp4.m3u8?token=test1";
    server.wait_ok(playlist);
    let text = get(server.http, playlist).text();
    assert!(text.contains("#EXT-X-VERSION:7"), "{text}");
    assert!(
        text.contains("#EXT-X-MAP:URI=\"tracks-v1a1/init.mp4?token=test1\""),
        "{text}"
    );
    let uris: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(
        !uris.is_empty() && uris.iter().all(|u| u.ends_with(".m4s?token=test1")),
        "{text}"
    );

    let init = get(server.http, "/auth-check/tracks-v1a1/init.mp4?token=test1");
    assert_eq!(init.status, 200);
    assert_eq!(&init.body[4..8], b"ftyp");
    let fragment = get(server.http, &format!("/auth-check/{}", uris[0]));
    assert_eq!(fragment.status, 200);
    assert_eq!(fragment.header("content-type"), Some("video/iso.segment"));
    assert_eq!(&fragment.body[4..8], b"moof");
    for bare in [
        "/auth-check/index.fmp4.m3u8",
        "/auth-check/tracks-v1a1/init.mp4",
    ] {
        assert_eq!(get(server.http, bare).status, 403, "{bare}");
    }
    let (bare_fragment, _) = uris[0].split_once('?').unwrap();
    assert_eq!(
        get(server.http, &format!("/auth-check/{bare_fragment}")).status,
        403
    );

    let url = server.url(playlist);
    assert_probe_shows_fake_source(&[], &url);
    // ffmpeg 5.1's HLS demuxer re-reads the init segment after every live playlist reload
    // (it compares init sections by pointer) and the mov demuxer then notes the second
    // moov: that line is about the client, anything else would be ours.
    assert_decodes_cleanly(
        &[],
        &url,
        6,
        &["Found duplicated MOOV Atom", "Last message repeated"],
    );
}
