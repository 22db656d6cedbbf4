//! LL-HLS blocking playlist reload (RFC 8216bis §6.2.5.2): what a request carrying the
//! `_HLS_msn` / `_HLS_part` delivery directives gets, decided against the shard's segment
//! window. Sans-IO: the HTTP service parks the request when told to wait and asks again
//! when the window moves (or the wait times out).

use crate::stream::window::{ADVANCE_PART_LIMIT, Awaited, SegmentWindow};

/// What a playlist request with delivery directives gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// Render the playlist now.
    Now,
    /// Park until the window has this, then render.
    Wait(Awaited),
    /// 400: `_HLS_part` without `_HLS_msn`, `_HLS_msn` beyond the segment after the one being
    /// cut, or a part too far ahead.
    BadRequest,
}

/// Decides a blocking reload. `window` must hold at least one segment.
pub fn blocking_reload(window: &SegmentWindow, msn: Option<u64>, part: Option<u64>) -> Reload {
    let Some(msn) = msn else {
        return match part {
            Some(_) => Reload::BadRequest,
            None => Reload::Now,
        };
    };
    let Some(last) = window.newest().map(|s| s.sequence) else {
        return Reload::BadRequest;
    };
    // "greater than the Media Sequence Number of the last Media Segment in the current
    // Playlist plus two": beyond the segment after the one being cut.
    if msn > last.saturating_add(2) {
        return Reload::BadRequest;
    }
    let awaited = match part {
        None if msn == 0 => return Reload::Now,
        None => Awaited::SegmentAfter(msn - 1),
        Some(part) => {
            let open = last + 1;
            let listed = if msn == open {
                window.open_parts().len() as u64
            } else {
                0
            };
            if msn >= open && part > listed + u64::from(ADVANCE_PART_LIMIT) {
                return Reload::BadRequest;
            }
            Awaited::Part {
                segment: msn,
                part: part as u32,
            }
        }
    };
    if window.has(awaited) {
        Reload::Now
    } else {
        Reload::Wait(awaited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::segment::{Part, Segment};
    use bytes::Bytes;

    fn window() -> SegmentWindow {
        let mut w = SegmentWindow::new(3, 2);
        for sequence in 0..3 {
            w.push(Segment {
                sequence,
                start_utc_ms: 0,
                start_dts: 0,
                end_dts: 90_000,
                duration_ms: 1000,
                ts: Bytes::new(),
                fmp4: None,
                parts: Default::default(),
                mss: Default::default(),
                dash: Default::default(),
            });
        }
        w.push_part(Part {
            segment: 3,
            index: 0,
            start_dts: 0,
            end_dts: 28_800,
            start_utc_ms: 0,
            independent: true,
            fmp4: Bytes::new(),
        });
        w
    }

    #[test]
    fn directives_decide_now_wait_or_refuse() {
        let w = window();
        assert_eq!(blocking_reload(&w, None, None), Reload::Now);
        assert_eq!(blocking_reload(&w, None, Some(1)), Reload::BadRequest);
        assert_eq!(blocking_reload(&w, Some(2), None), Reload::Now);
        assert_eq!(blocking_reload(&w, Some(3), Some(0)), Reload::Now);
        assert_eq!(
            blocking_reload(&w, Some(3), Some(1)),
            Reload::Wait(Awaited::Part {
                segment: 3,
                part: 1
            })
        );
        assert_eq!(
            blocking_reload(&w, Some(3), None),
            Reload::Wait(Awaited::SegmentAfter(2))
        );
        assert_eq!(
            blocking_reload(&w, Some(4), Some(0)),
            Reload::Wait(Awaited::Part {
                segment: 4,
                part: 0
            })
        );
        assert_eq!(blocking_reload(&w, Some(5), None), Reload::BadRequest);
        assert_eq!(blocking_reload(&w, Some(3), Some(5)), Reload::BadRequest);
        assert_eq!(
            blocking_reload(&w, Some(3), Some(4)),
            Reload::Wait(Awaited::Part {
                segment: 3,
                part: 4
            })
        );
        assert_eq!(blocking_reload(&w, Some(4), Some(4)), Reload::BadRequest);
        assert_eq!(
            blocking_reload(&w, Some(0), Some(9)),
            Reload::Now,
            "old segment"
        );
    }
}
