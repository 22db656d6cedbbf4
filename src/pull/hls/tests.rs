use super::*;
use crate::source::fake::FakeSource;
use crate::stream::ts_feed::TsFeed;

fn origin() -> Location {
    Location {
        tls: false,
        host: "o".into(),
        port: 80,
        path: "/live/index.m3u8".into(),
    }
}

fn media(first: u64, count: u64, end: bool) -> String {
    let mut text = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
    for n in first..first + count {
        text.push_str(&format!("#EXTINF:2.0,\nseg{n}.ts\n"));
    }
    if end {
        text.push_str("#EXT-X-ENDLIST\n");
    }
    text
}

/// Answers the pending fetch with `status` and `body`.
fn answer(pull: &mut HlsPull, status: u16, body: &[u8], now: u64) -> Result<(), String> {
    pull.head(status, None)?;
    pull.body(body)?;
    pull.body_end(now)
}

fn fetch(pull: &mut HlsPull, now: u64) -> String {
    match pull.next_step(now).unwrap() {
        Step::Fetch(at) => at.path,
        other => panic!("expected a fetch, got {other:?}"),
    }
}

#[test]
fn the_pull_starts_near_the_live_edge_and_reloads_at_the_target_duration() {
    let mut pull = HlsPull::new(origin(), 10_000);
    assert_eq!(fetch(&mut pull, 0), "/live/index.m3u8");
    answer(&mut pull, 200, media(10, 6, false).as_bytes(), 0).unwrap();
    for n in 13..16 {
        assert_eq!(fetch(&mut pull, 0), format!("/live/seg{n}.ts"));
        answer(&mut pull, 200, b"", 0).unwrap();
    }
    assert_eq!(pull.next_step(100).unwrap(), Step::WaitUntil(2000));
    // Unchanged: half the target duration.
    assert_eq!(fetch(&mut pull, 2000), "/live/index.m3u8");
    answer(&mut pull, 200, media(10, 6, false).as_bytes(), 2000).unwrap();
    assert_eq!(pull.next_step(2000).unwrap(), Step::WaitUntil(3000));
    // Moved: the new segment only, then a full target duration.
    assert_eq!(fetch(&mut pull, 3000), "/live/index.m3u8");
    answer(&mut pull, 200, media(11, 6, false).as_bytes(), 3000).unwrap();
    assert_eq!(fetch(&mut pull, 3000), "/live/seg16.ts");
    pull.head(404, None).unwrap();
    pull.body_end(3000).unwrap();
    assert_eq!(pull.next_step(3000).unwrap(), Step::WaitUntil(5000));
}

#[test]
fn a_playlist_that_stops_moving_fails_the_source() {
    let mut pull = HlsPull::new(origin(), 10_000);
    fetch(&mut pull, 0);
    answer(&mut pull, 200, media(1, 1, false).as_bytes(), 0).unwrap();
    fetch(&mut pull, 0);
    answer(&mut pull, 200, b"", 0).unwrap();
    let mut now = 0;
    let err = loop {
        now += 500;
        match pull.next_step(now) {
            Ok(Step::Fetch(_)) => {
                answer(&mut pull, 200, media(1, 1, false).as_bytes(), now).unwrap()
            }
            Ok(Step::WaitUntil(_)) => {}
            Err(e) => break e,
        }
    };
    // Three target durations of 2 s (shorter than the source timeout).
    assert_eq!(err, "the playlist stopped moving for 6 s");
    assert!((6000..=7000).contains(&now), "{now}");
}

#[test]
fn loops_refusals_endlists_and_huge_segments_fail_the_source() {
    let mut pull = HlsPull::new(origin(), 10_000);
    fetch(&mut pull, 0);
    answer(&mut pull, 200, media(50, 3, false).as_bytes(), 0).unwrap();
    let err = answer_reload(&mut pull, media(2, 3, false)).unwrap_err();
    assert!(err.contains("went back from 52 to 4"), "{err}");

    let mut pull = HlsPull::new(origin(), 10_000);
    fetch(&mut pull, 0);
    assert_eq!(
        answer(&mut pull, 403, b"", 0).unwrap_err(),
        "origin answered 403 for the playlist"
    );

    let mut pull = HlsPull::new(origin(), 10_000);
    fetch(&mut pull, 0);
    answer(&mut pull, 200, media(1, 1, true).as_bytes(), 0).unwrap();
    fetch(&mut pull, 0);
    pull.head(200, None).unwrap();
    let huge = vec![0x47; MAX_SEGMENT_BYTES as usize + 1];
    assert!(pull.body(&huge).unwrap_err().contains("over 64 MiB"));

    let mut pull = HlsPull::new(origin(), 10_000);
    fetch(&mut pull, 0);
    answer(&mut pull, 200, media(1, 1, true).as_bytes(), 0).unwrap();
    fetch(&mut pull, 0);
    answer(&mut pull, 200, b"", 0).unwrap();
    assert!(pull.next_step(0).unwrap_err().contains("ENDLIST"));
}

/// Waits for the next playlist fetch and answers it.
fn answer_reload(pull: &mut HlsPull, text: String) -> Result<(), String> {
    let mut now = 0;
    loop {
        now += 100;
        if let Step::Fetch(at) = pull.next_step(now)? {
            if at.path.ends_with(".m3u8") {
                return answer(pull, 200, text.as_bytes(), now);
            }
            answer(pull, 200, b"", now)?;
        }
    }
}

#[test]
fn a_master_playlist_leads_to_its_highest_variant() {
    let mut pull = HlsPull::new(origin(), 10_000);
    fetch(&mut pull, 0);
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000\nlow/i.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=900000\nhigh/i.m3u8?t=1\n";
    answer(&mut pull, 200, master.as_bytes(), 0).unwrap();
    assert_eq!(fetch(&mut pull, 0), "/live/high/i.m3u8?t=1");
    assert!(
        answer(&mut pull, 200, master.as_bytes(), 0)
            .unwrap_err()
            .contains("itself a master")
    );
}

/// Two seconds of the fake source as one TS segment, its timestamps from `start`.
fn ts_segment(start_utc_ms: i64) -> Vec<u8> {
    let mut source = FakeSource::new(start_utc_ms, 25);
    let mut frames = Vec::new();
    source.poll(2 * 90_000, &mut frames);
    let mut feed = TsFeed::new(&source.media_info());
    frames
        .iter()
        .flat_map(|f| feed.chunk(f).unwrap().to_vec())
        .collect()
}

#[test]
fn timestamps_keep_going_forward_across_a_discontinuity() {
    let mut pull = HlsPull::new(origin(), 10_000);
    fetch(&mut pull, 0);
    let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n\
        #EXT-X-DISCONTINUITY\n#EXTINF:2,\na.ts\n";
    answer(&mut pull, 200, text.as_bytes(), 0).unwrap();
    let segment = ts_segment(0);
    let mut video = Vec::new();
    for _ in 0..3 {
        fetch(&mut pull, 0);
        pull.head(200, None).unwrap();
        for piece in segment.chunks(1000) {
            pull.body(piece).unwrap();
            while let Some(m) = pull.poll_media() {
                if let MediaFrame::Frame(f) = m
                    && f.track == crate::media::frame::TrackKind::Video
                {
                    video.push(f.dts);
                }
            }
        }
        pull.body_end(0).unwrap();
    }
    assert!(video.len() > 100, "{}", video.len());
    assert!(video.windows(2).all(|w| w[1] > w[0]), "{video:?}");
}

#[test]
fn fmp4_segments_are_read_after_their_initialization_section() {
    use crate::mux::fmp4::Fmp4Muxer;
    let mut source = FakeSource::new(0, 25);
    let mut frames = Vec::new();
    source.poll(2 * 90_000, &mut frames);
    let mut muxer = Fmp4Muxer::new(&source.media_info()).unwrap();
    let end = frames.iter().map(|f| f.dts).max().unwrap() + 3600;
    let fragment = muxer.fragment(1, &frames, end).unwrap();
    let mut pull = HlsPull::new(origin(), 10_000);
    fetch(&mut pull, 0);
    let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n\
        #EXTINF:2,\na.m4s\n#EXT-X-DISCONTINUITY\n#EXTINF:2,\na.m4s\n";
    answer(&mut pull, 200, text.as_bytes(), 0).unwrap();
    assert_eq!(fetch(&mut pull, 0), "/live/init.mp4");
    answer(&mut pull, 200, &muxer.init_segment(), 0).unwrap();
    let mut dts = Vec::new();
    let mut configs = 0;
    for _ in 0..2 {
        assert_eq!(fetch(&mut pull, 0), "/live/a.m4s");
        pull.head(200, None).unwrap();
        for piece in fragment.chunks(500) {
            pull.body(piece).unwrap();
        }
        pull.body_end(0).unwrap();
        while let Some(m) = pull.poll_media() {
            match m {
                MediaFrame::Config(_) => configs += 1,
                MediaFrame::Frame(f) if f.track == crate::media::frame::TrackKind::Video => {
                    dts.push(f.dts)
                }
                MediaFrame::Frame(_) => {}
            }
        }
    }
    assert!(configs >= 1);
    assert_eq!(
        dts.len(),
        2 * frames
            .iter()
            .filter(|f| f.track == crate::media::frame::TrackKind::Video)
            .count()
    );
    assert!(dts.windows(2).all(|w| w[1] > w[0]), "{dts:?}");
    // The init section is fetched once while the map stays the same.
    assert!(matches!(pull.next_step(0), Ok(Step::WaitUntil(_))));
}

#[test]
fn a_playlist_redirect_is_followed_a_few_times() {
    let mut pull = HlsPull::new(origin(), 10_000);
    for _ in 0..5 {
        fetch(&mut pull, 0);
        pull.head(302, Some("/moved/index.m3u8")).unwrap();
        pull.body_end(0).unwrap();
    }
    assert_eq!(fetch(&mut pull, 0), "/moved/index.m3u8");
    assert!(
        pull.head(302, Some("/again.m3u8"))
            .unwrap_err()
            .contains("302")
    );
}
