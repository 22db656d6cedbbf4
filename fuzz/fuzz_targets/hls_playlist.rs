//! Fuzzes the HLS pull's playlist side: arbitrary bytes parsed as a playlist, then handed to
//! `HlsPull` as the answer to its first request, then as every reload over a few simulated
//! seconds (segments answered empty). Any panic is a bug; so is a parsed media playlist that
//! breaks the bounds (more than `MAX_SEGMENTS`, sequence numbers that do not follow each
//! other) or a fetch of a URI the pull did not resolve against its origin's rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::pull::hls::playlist::{MAX_SEGMENTS, Playlist};
use tessera::pull::hls::{HlsPull, Location, Step};

fn origin() -> Location {
    Location {
        tls: false,
        host: "origin".into(),
        port: 8080,
        path: "/live/s/index.m3u8?token=t".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Playlist::Media(list)) = Playlist::parse(data) {
        assert!(list.segments.len() <= MAX_SEGMENTS);
        for pair in list.segments.windows(2) {
            assert_eq!(pair[0].sequence + 1, pair[1].sequence);
        }
        for s in &list.segments {
            let _ = origin().resolve(&s.uri);
        }
    }
    let mut pull = HlsPull::new(origin(), 10_000);
    let mut now = 0u64;
    for _ in 0..64 {
        match pull.next_step(now) {
            Ok(Step::Fetch(at)) => {
                assert!(!at.host.is_empty() && at.path.starts_with('/'));
                let result = pull
                    .head(200, None)
                    .and_then(|()| {
                        if at.path.contains(".m3u8") {
                            pull.body(data)
                        } else {
                            Ok(())
                        }
                    })
                    .and_then(|()| pull.body_end(now));
                if result.is_err() {
                    return;
                }
                while pull.poll_media().is_some() {}
            }
            Ok(Step::WaitUntil(at)) => {
                assert!(at > now, "a wait that is already over");
                now = at.max(now) + 250;
            }
            Err(_) => return,
        }
    }
});
