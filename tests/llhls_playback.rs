//! LL-HLS (`index.ll.m3u8`) against the real server: the playlist obeys RFC 8216bis's
//! rules for parts, server control and preload hints; blocking reload and early part
//! requests wait for the part and return once it exists; out-of-range directives are 400;
//! the token rides on every URI; ffmpeg decodes the stream with the token and not without.

mod common;
use common::*;

const PLAYLIST: &str = "/auth-check/index.ll.m3u8?token=test1";

/// The value of `ATTR=` in a tag line, up to the next comma (or the quoted string).
fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[at..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(',').next(),
    }
}

fn seconds(v: &str) -> f64 {
    v.parse().unwrap_or_else(|_| panic!("not a decimal: {v}"))
}

/// (msn, part) of a `ll/MSN.PART.m4s?...` URI.
fn part_address(uri: &str) -> PartAddress {
    let file = uri.split('?').next().unwrap().strip_prefix("ll/").unwrap();
    let (msn, rest) = file.split_once('.').unwrap();
    let part = rest.strip_suffix(".m4s").unwrap();
    (msn.parse().unwrap(), part.parse().unwrap())
}

/// A part's (media sequence number, index).
type PartAddress = (u64, u32);

/// Checks one LL-HLS playlist against the spec's rules; returns the parts listed
/// (address, URI) and the preload hint's address.
fn check_playlist(text: &str) -> (Vec<(PartAddress, String)>, PartAddress) {
    let line = |tag: &str| {
        text.lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or_else(|| panic!("no {tag}:\n{text}"))
    };
    let part_target = seconds(attr(line("#EXT-X-PART-INF:"), "PART-TARGET").unwrap());
    assert!(
        (0.2..=0.5).contains(&part_target),
        "PART-TARGET {part_target}"
    );
    let control = line("#EXT-X-SERVER-CONTROL:");
    assert_eq!(attr(control, "CAN-BLOCK-RELOAD"), Some("YES"), "{control}");
    let hold_back = seconds(attr(control, "PART-HOLD-BACK").unwrap());
    assert!(hold_back >= 3.0 * part_target - 1e-9, "{control}");
    let target: f64 = seconds(line("#EXT-X-TARGETDURATION:").split(':').nth(1).unwrap());
    let mut msn: u64 = line("#EXT-X-MEDIA-SEQUENCE:")
        .split(':')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();

    // Every URI carries the token, the map's, the parts', the hint's and the segments'.
    let map = attr(line("#EXT-X-MAP:"), "URI").unwrap();
    assert_eq!(map, "ll/init.mp4?token=test1");
    let mut parts = Vec::new();
    let mut expected_part = 0u32;
    let mut last_was_independent_start = false;
    for l in text.lines() {
        if let Some(tag) = l.strip_prefix("#EXT-X-PART:") {
            let uri = attr(tag, "URI").unwrap();
            assert!(uri.ends_with(".m4s?token=test1"), "{l}");
            let duration = seconds(attr(tag, "DURATION").unwrap());
            assert!(duration <= part_target + 1e-9, "part over PART-TARGET: {l}");
            let address = part_address(uri);
            assert_eq!(address.1, expected_part, "parts in order: {l}\n{text}");
            if address.1 == 0 {
                assert_eq!(attr(tag, "INDEPENDENT"), Some("YES"), "{l}");
                last_was_independent_start = true;
            }
            expected_part += 1;
            parts.push((address, uri.to_string()));
        } else if let Some(d) = l.strip_prefix("#EXTINF:") {
            let d = seconds(d.trim_end_matches(','));
            assert!(d <= target, "{l}");
        } else if !l.starts_with('#') && !l.is_empty() {
            assert_eq!(l, format!("ll/{msn}.m4s?token=test1"), "segment URI");
            msn += 1;
            expected_part = 0;
        }
    }
    assert!(last_was_independent_start, "{text}");
    let hint_line = line("#EXT-X-PRELOAD-HINT:");
    assert_eq!(attr(hint_line, "TYPE"), Some("PART"));
    let hint_uri = attr(hint_line, "URI").unwrap();
    assert!(hint_uri.ends_with(".m4s?token=test1"), "{hint_line}");
    let hint = part_address(hint_uri);
    // The hint names the part after the last one listed (part 0 of the next segment when
    // the playlist ends with a whole segment).
    assert_eq!(hint, (msn, expected_part), "{text}");
    (parts, hint)
}

#[test]
fn ll_playlist_follows_the_spec_and_blocking_reload_waits_for_the_part() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    server.wait_ok(PLAYLIST);
    let text = get(server.http, PLAYLIST).text();
    let (parts, hint) = check_playlist(&text);
    assert!(!parts.is_empty(), "{text}");

    // Blocking reload for the hinted part: answered once that part is listed.
    let (msn, part) = hint;
    let reload = get(
        server.http,
        &format!("{PLAYLIST}&_HLS_msn={msn}&_HLS_part={part}"),
    );
    assert_eq!(reload.status, 200);
    let (parts, next) = check_playlist(&reload.text());
    assert!(
        parts.iter().any(|(a, _)| *a == hint) || next.0 > msn,
        "reload returned before {hint:?}:\n{}",
        reload.text()
    );

    // A part asked for before it exists (the new hint) waits for it.
    let early = format!("/auth-check/ll/{}.{}.m4s?token=test1", next.0, next.1);
    let fetched = get(server.http, &early);
    assert_eq!(fetched.status, 200, "{early}");
    assert_eq!(fetched.header("content-type"), Some("video/iso.segment"));
    assert_eq!(&fetched.body[4..8], b"moof");

    // Blocking reload for a whole segment (no _HLS_part) returns with it listed.
    let segment_reload = get(server.http, &format!("{PLAYLIST}&_HLS_msn={}", msn + 1));
    assert_eq!(segment_reload.status, 200);
    assert!(
        segment_reload
            .text()
            .contains(&format!("\nll/{}.m4s?token=test1\n", msn + 1)),
        "{}",
        segment_reload.text()
    );

    // The segment is its parts back to back.
    let (listed, _) = check_playlist(&segment_reload.text());
    let whole = get(
        server.http,
        &format!("/auth-check/ll/{}.m4s?token=test1", msn + 1),
    );
    assert_eq!(whole.status, 200);
    let mut joined = Vec::new();
    for (_, uri) in listed.iter().filter(|(a, _)| a.0 == msn + 1) {
        joined.extend(get(server.http, &format!("/auth-check/{uri}")).body);
    }
    assert_eq!(joined, whole.body);

    let init = get(server.http, "/auth-check/ll/init.mp4?token=test1");
    assert_eq!(init.status, 200);
    assert_eq!(&init.body[4..8], b"ftyp");
}

#[test]
fn out_of_range_directives_are_400_and_missing_token_is_403() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    server.wait_ok(PLAYLIST);
    let (_, (open, next_part)) = check_playlist(&get(server.http, PLAYLIST).text());
    // `open` is the segment being cut, or the next one when the playlist ends on a whole
    // segment; either way, the last whole segment is at least open - 1.
    let last = open - 1;
    for (query, why) in [
        (
            format!("_HLS_msn={}", last + 3),
            "past the segment after the open one",
        ),
        (format!("_HLS_msn={last}&_HLS_msn={last}"), "repeated"),
        ("_HLS_part=1".to_string(), "_HLS_part without _HLS_msn"),
        ("_HLS_msn=x".to_string(), "not a number"),
        (
            format!("_HLS_msn={open}&_HLS_part={}", next_part + 60),
            "part far ahead",
        ),
    ] {
        let r = get(server.http, &format!("{PLAYLIST}&{query}"));
        assert_eq!(r.status, 400, "{why}: {query}");
    }
    // A part long gone (or never to exist) is 404 at once.
    assert_eq!(
        get(server.http, "/auth-check/ll/0.999.m4s?token=test1").status,
        404
    );

    let text = get(server.http, PLAYLIST).text();
    let (parts, _) = check_playlist(&text);
    let (_, part_uri) = &parts[0];
    let bare_part = part_uri.split('?').next().unwrap();
    for bare in [
        "/auth-check/index.ll.m3u8".to_string(),
        format!("/auth-check/index.ll.m3u8?_HLS_msn={open}&_HLS_part=0"),
        "/auth-check/ll/init.mp4".to_string(),
        format!("/auth-check/{bare_part}"),
        format!("/auth-check/ll/{last}.m4s"),
        format!("/auth-check/index.ll.m3u8?token=wrong&_HLS_msn={open}"),
    ] {
        let r = get(server.http, &bare);
        assert_eq!(r.status, 403, "{bare}");
        assert_eq!(r.header("x-deny-reason"), Some("backend_denied"), "{bare}");
    }
    let log = server.log_text();
    assert!(log.contains("proto=llhls"), "sessions are llhls:\n{log}");
}

#[test]
fn ffmpeg_decodes_ll_hls_with_the_token_and_fails_without() {
    let port = free_port();
    let server = Server::start(&demo_config(port), port);
    server.wait_ok(PLAYLIST);
    // ffmpeg 5.1 ignores the LL-HLS tags and plays the whole segments. Like with fMP4 HLS
    // (see hls_playback.rs), it re-reads the init segment after every live reload and the
    // mov demuxer notes the second moov: a line about the client; anything else is ours.
    assert_decodes_cleanly(
        &[],
        &server.url(PLAYLIST),
        5,
        &["Found duplicated MOOV Atom", "Last message repeated"],
    );

    let bare = server.url("/auth-check/index.ll.m3u8");
    let mut cmd = tool("ffmpeg");
    cmd.args(["-v", "warning", "-xerror", "-i", &bare])
        .args(["-t", "5", "-f", "null", "-"]);
    let out = run_bounded(&mut cmd, std::time::Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "played without a token:\n{err}");
    assert!(err.contains("403"), "{err}");
}
