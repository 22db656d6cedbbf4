//! The media playlists as a shard serves them: rendered once per change of the stream's
//! segment window (a segment cut, an LL-HLS part) with the token's places marked
//! ([`TokenTemplate`], kept in the `StreamView`); each request copies the text and writes
//! its own token in. The renderers are `playlist`'s, so the bytes are the same.

use crate::hls::names::Container;
use crate::hls::playlist::{TRACKS_DIR, write_ll_media, write_media};
use crate::stream::segmenter::PART_TARGET_MS;
use crate::stream::view::{KEPT_DOCUMENTS, StreamView};
use crate::uri::{SlotMarks, TokenQuery, TokenTemplate};

/// The playlists a view keeps rendered, by their index among its kept documents.
#[derive(Clone, Copy)]
enum Kept {
    /// TS, under `tracks-v1a1/`.
    Ts = 0,
    /// TS, at the stream root.
    TsAtRoot = 1,
    /// fMP4, at the stream root.
    Fmp4AtRoot = 2,
    /// LL-HLS.
    Ll = 3,
}

const _: () = assert!((Kept::Ll as usize) < KEPT_DOCUMENTS);

fn kept(dir: &str, container: Container) -> Option<Kept> {
    match (container, dir) {
        (Container::Ts, "") => Some(Kept::Ts),
        (Container::Ts, TRACKS_DIR) => Some(Kept::TsAtRoot),
        (Container::Fmp4, TRACKS_DIR) => Some(Kept::Fmp4AtRoot),
        _ => None,
    }
}

/// [`write_media`] over the view's playlist, from the template kept for it.
pub fn write_kept_media(
    out: &mut Vec<u8>,
    view: &StreamView,
    dir: &str,
    container: Container,
    token: TokenQuery<'_>,
) {
    let window = &view.window;
    let render = |text: &mut Vec<u8>, marks: SlotMarks<'_>| {
        write_media(text, window.playlist(), dir, marks, container)
    };
    match kept(dir, container) {
        Some(doc) => {
            let revision = window.segments_revision();
            write_from_template(out, view, (doc, revision), render, token)
        }
        None => write_media(out, window.playlist(), dir, token, container),
    }
}

/// [`write_ll_media`] over the view's window and open parts, from the template kept for it.
/// The part target is the segmenter's, the same for every stream.
pub fn write_kept_ll_media(out: &mut Vec<u8>, view: &StreamView, token: TokenQuery<'_>) {
    let window = &view.window;
    let render = |text: &mut Vec<u8>, marks: SlotMarks<'_>| {
        let parts = window.open_parts();
        write_ll_media(text, window.playlist(), parts, PART_TARGET_MS, marks)
    };
    let revision = window.revision();
    write_from_template(out, view, (Kept::Ll, revision), render, token);
}

/// Re-renders the kept document unless it was rendered at `revision` (of the window), then
/// writes it with `token`.
fn write_from_template(
    out: &mut Vec<u8>,
    view: &StreamView,
    (doc, revision): (Kept, u64),
    render: impl Fn(&mut Vec<u8>, SlotMarks<'_>),
    token: TokenQuery<'_>,
) {
    let Ok(mut docs) = view.kept_documents.try_borrow_mut() else {
        // Never borrowed across a request; rendered directly rather than trusted to that.
        let mut direct = TokenTemplate::default();
        direct.refresh(0, &render);
        return direct.write(out, token);
    };
    let template = &mut docs[doc as usize];
    template.refresh(revision, render);
    template.write(out, token);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::segment::{Part, Segment};
    use crate::stream::view::StreamEvent;
    use bytes::Bytes;

    const START: i64 = 1_706_988_696_000;

    fn segment(sequence: u64, duration_ms: u32) -> Segment {
        let start_dts = sequence as i64 * 180_000;
        Segment {
            sequence,
            start_utc_ms: START + sequence as i64 * 2000,
            duration_ms,
            ts: Bytes::new(),
            fmp4: None,
            parts: vec![part(sequence, 0), part(sequence, 1)].into(),
            dash: Default::default(),
            mss: Default::default(),
            start_dts,
            end_dts: start_dts + i64::from(duration_ms) * 90,
        }
    }

    fn part(segment: u64, index: u32) -> Part {
        let start_dts = segment as i64 * 180_000 + i64::from(index) * 28_800;
        Part {
            segment,
            index,
            start_dts,
            end_dts: start_dts + 28_800,
            start_utc_ms: START + segment as i64 * 2000 + i64::from(index) * 320,
            independent: index == 0,
            fmp4: Bytes::new(),
        }
    }

    const TOKENS: [TokenQuery<'static>; 4] = [
        TokenQuery {
            param: "token",
            token: Some(b"test1"),
        },
        TokenQuery {
            param: "t k",
            token: Some(b"a\n#EXT-X-ENDLIST\n"),
        },
        TokenQuery {
            param: "token",
            token: Some(b""),
        },
        TokenQuery {
            param: "token",
            token: None,
        },
    ];

    const PLAYLISTS: [(&str, Container); 4] = [
        ("", Container::Ts),
        (TRACKS_DIR, Container::Ts),
        (TRACKS_DIR, Container::Fmp4),
        // Not kept: rendered directly.
        ("", Container::Fmp4),
    ];

    /// Every kept playlist, for every token, is what the renderers write directly.
    fn assert_same_as_direct(view: &StreamView) {
        let window = &view.window;
        for token in TOKENS {
            for (dir, container) in PLAYLISTS {
                let (mut kept, mut direct) = (Vec::new(), Vec::new());
                write_kept_media(&mut kept, view, dir, container, token);
                write_media(&mut direct, window.playlist(), dir, token, container);
                assert_eq!(
                    String::from_utf8(kept).unwrap(),
                    String::from_utf8(direct).unwrap()
                );
            }
            let (mut kept, mut direct) = (Vec::new(), Vec::new());
            write_kept_ll_media(&mut kept, view, token);
            let parts = window.open_parts();
            write_ll_media(&mut direct, window.playlist(), parts, PART_TARGET_MS, token);
            assert_eq!(
                String::from_utf8(kept).unwrap(),
                String::from_utf8(direct).unwrap()
            );
        }
    }

    #[test]
    fn kept_playlists_are_the_rendered_ones_as_the_window_moves() {
        let mut view = StreamView::default();
        for sequence in 0..12 {
            // Durations vary, so the target duration changes as segments come and go.
            let duration_ms = [2000, 1960, 4040, 2000][sequence as usize % 4];
            for index in 0..3 {
                view.apply(
                    0,
                    StreamEvent::Part {
                        stream: 0,
                        part: part(sequence, index),
                    },
                );
                assert_same_as_direct(&view);
            }
            view.apply(
                0,
                StreamEvent::Segment {
                    stream: 0,
                    segment: segment(sequence, duration_ms),
                },
            );
            assert_same_as_direct(&view);
            // Asked twice without a change: the kept text is written again, unchanged.
            assert_same_as_direct(&view);
        }
    }

    #[test]
    fn a_retired_view_forgets_its_kept_playlists() {
        let mut view = StreamView::default();
        view.apply(
            0,
            StreamEvent::Segment {
                stream: 0,
                segment: segment(5, 2000),
            },
        );
        assert_same_as_direct(&view);
        view.retire();
        view.apply(
            0,
            StreamEvent::Segment {
                stream: 0,
                segment: segment(1, 2000),
            },
        );
        assert_same_as_direct(&view);
    }

    #[test]
    fn parts_dropped_with_a_lost_segment_end_leave_the_ll_playlist() {
        let mut view = StreamView::default();
        let segment = segment(2, 2000);
        view.apply(0, StreamEvent::Segment { stream: 0, segment });
        for index in 0..2 {
            let part = part(3, index);
            view.apply(0, StreamEvent::Part { stream: 0, part });
            assert_same_as_direct(&view);
        }
        // Segment 3 never came; a part of segment 4 that is not its first drops 3's parts.
        let part = part(4, 1);
        view.apply(0, StreamEvent::Part { stream: 0, part });
        assert!(view.window.open_parts().is_empty());
        assert_same_as_direct(&view);
    }
}
