//! Futures a connection task awaits for media that is not there yet, each woken by the push
//! that brings it (no polling).
//!
//! `SegmentReady` parks an HTTP request (a DASH segment or LL-HLS part being cut, an LL-HLS
//! blocking reload) until the segment window has what it asks for.
//!
//! `RingReady`: the future a connection task awaits for its next frame. It resolves when the
//! stream's `FrameRing` on this shard has something for the viewer's cursor (a frame, or
//! news that the frame is gone), or, for a viewer that has not started, when a keyframe
//! exists. Pending, it leaves its `Waker` with the ring, so `FrameRing::push` wakes it: no
//! polling.

use crate::shard::ShardState;
use crate::stream::StreamId;
use crate::stream::ring::{Lookup, Patience};
use crate::stream::window::Awaited;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// Resolves when the ring has something for `cursor` (a frame, or news that it is gone), or,
/// for a viewer that has not started, when a keyframe exists.
pub struct RingReady<'a> {
    pub state: &'a Rc<RefCell<ShardState>>,
    pub stream: StreamId,
    pub cursor: Option<u64>,
    pub patience: Patience,
}

impl Future for RingReady<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut shard = self.state.borrow_mut();
        let Some(view) = shard.view_mut(self.stream) else {
            return Poll::Pending;
        };
        let ready = match self.cursor {
            None => view.ring.start().is_some(),
            Some(c) => view.ring.is_closed() || !matches!(view.ring.get(c), Lookup::NotYet),
        };
        if ready {
            Poll::Ready(())
        } else {
            view.ring.wait(cx.waker(), self.patience);
            Poll::Pending
        }
    }
}

/// Resolves when the stream's segment window on this shard has what a parked request waits
/// for (a segment newer than a sequence number, or an LL-HLS part); woken by the window's
/// segment and part pushes.
pub struct SegmentReady<'a> {
    pub state: &'a Rc<RefCell<ShardState>>,
    pub stream: StreamId,
    pub until: Awaited,
}

impl Future for SegmentReady<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut shard = self.state.borrow_mut();
        let Some(view) = shard.view_mut(self.stream) else {
            return Poll::Ready(());
        };
        if view.window.has(self.until) {
            Poll::Ready(())
        } else {
            view.window.wait(cx.waker());
            Poll::Pending
        }
    }
}
