//! DASH (`index.mpd`): a dynamic MPD whose initialization and media URLs carry the token,
//! one adaptation set per track; ffprobe and ffmpeg play it; everything is refused without
//! the token.

mod common;
use common::*;

#[test]
fn dash_plays_with_the_token_and_refuses_without() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    let mpd_path = "/auth-check/index.mpd?token=test1";
    server.wait_ok(mpd_path);
    let mpd = get(server.http, mpd_path);
    assert_eq!(mpd.header("content-type"), Some("application/dash+xml"));
    let text = mpd.text();
    for needle in [
        "type=\"dynamic\"",
        "availabilityStartTime=",
        "timeShiftBufferDepth=",
        "minimumUpdatePeriod=",
        "urn:mpeg:dash:utc:direct:2014",
        "initialization=\"dash/v-init.mp4?token=test1\"",
        "media=\"dash/v-$Time$.m4s?token=test1\"",
        "initialization=\"dash/a-init.mp4?token=test1\"",
        "media=\"dash/a-$Time$.m4s?token=test1\"",
    ] {
        assert!(text.contains(needle), "MPD lacks {needle:?}:\n{text}");
    }
    // The first video segment's time, from the timeline.
    let t = text
        .split("<S t=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let fragment = get(
        server.http,
        &format!("/auth-check/dash/v-{t}.m4s?token=test1"),
    );
    assert_eq!(fragment.status, 200, "{}", fragment.head);
    assert_eq!(&fragment.body[4..8], b"moof");
    for bare in [
        "/auth-check/index.mpd".to_string(),
        "/auth-check/dash/v-init.mp4".to_string(),
        format!("/auth-check/dash/v-{t}.m4s"),
    ] {
        let r = get(server.http, &bare);
        assert_eq!(r.status, 403, "{bare}");
        assert_eq!(r.header("x-deny-reason"), Some("backend_denied"));
    }

    let url = server.url(mpd_path);
    assert_probe_shows_fake_source(&[], &url);
    assert_decodes_cleanly(&[], &url, 5, &[]);
}
