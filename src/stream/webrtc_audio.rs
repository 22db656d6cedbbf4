//! A stream's audio for WebRTC viewers: AAC transcoded to Opus once, on the input's shard,
//! and only while some shard has a WebRTC viewer of the stream.
//!
//! * `OpusDemand`: how many WebRTC viewers want each stream's Opus, counted across shards
//!   (a viewer's shard holds a `DemandHold` for as long as its session lives; the input's
//!   shard reads the count at each audio frame). A fixed table of atomic counters indexed
//!   by the stream id's hash: two streams that share a counter only cost a transcode
//!   nobody watches, never a missing one. It lives in the `Catalog` and is handed from one
//!   catalog to the next by a reload, like the publish slots.
//! * `WebRtcAudio`: one stream's transcoder as its input's events go out. A `Media` event
//!   sets the configuration; each AAC `Frame` event, while wanted, gets the Opus packets it
//!   completes (`FeedFrame::opus`, one `Bytes` every shard's viewers share); without demand
//!   the transcoder is dropped and the next viewer starts a fresh one.
//!
//! Never does: I/O, fan-out (the runtime's `Fanout` calls it before sending an event).

use crate::media::frame::{AudioConfig, TrackKind};
use crate::media::opus::{AacToOpus, TranscodeError};
use crate::stream::StreamId;
use crate::stream::view::StreamEvent;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Counters in the demand table.
pub const DEMAND_SLOTS: usize = 1024;

/// WebRTC viewers per stream, across shards (see the module's comment).
#[derive(Debug)]
pub struct OpusDemand {
    viewers: Box<[AtomicU32]>,
}

impl Default for OpusDemand {
    fn default() -> Self {
        OpusDemand {
            viewers: (0..DEMAND_SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl OpusDemand {
    fn slot(&self, stream: StreamId) -> &AtomicU32 {
        &self.viewers[stream as usize % DEMAND_SLOTS]
    }

    /// Whether any WebRTC viewer wants `stream`'s Opus.
    pub fn wanted(&self, stream: StreamId) -> bool {
        self.slot(stream).load(Ordering::Relaxed) > 0
    }

    /// Counts one viewer of `stream` until the hold is dropped.
    pub fn hold(self: &Arc<Self>, stream: StreamId) -> DemandHold {
        self.slot(stream).fetch_add(1, Ordering::Relaxed);
        DemandHold {
            demand: self.clone(),
            stream,
        }
    }
}

/// One viewer's demand (see `OpusDemand::hold`).
#[derive(Debug)]
pub struct DemandHold {
    demand: Arc<OpusDemand>,
    stream: StreamId,
}

impl Drop for DemandHold {
    fn drop(&mut self) {
        self.demand
            .slot(self.stream)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// One stream's transcoder on its input's shard.
#[derive(Default)]
pub struct WebRtcAudio {
    config: Option<AudioConfig>,
    transcoder: Option<AacToOpus>,
    /// The configuration cannot be transcoded (said once, until the next `Media`).
    refused: bool,
    packets: Vec<u8>,
}

impl WebRtcAudio {
    /// Sees one of the stream's events on its way out: remembers the audio configuration
    /// and, while `wanted`, gives an AAC frame its Opus packets.
    pub fn on_event(&mut self, event: &mut StreamEvent, wanted: bool) {
        match event {
            StreamEvent::Media { info, .. } if info.audio != self.config => {
                self.config = info.audio.clone();
                self.transcoder = None;
                self.refused = false;
            }
            StreamEvent::InputStarted { .. } | StreamEvent::InputEnded { .. } => {
                self.transcoder = None;
            }
            StreamEvent::Frame { stream, frame } if frame.frame.track == TrackKind::Audio => {
                if !wanted {
                    self.transcoder = None;
                    return;
                }
                let (pts, aac) = (frame.frame.pts, &frame.frame.data);
                frame.opus = self.transcode(*stream, pts, aac);
            }
            _ => {}
        }
    }

    /// The Opus packets one AAC frame completes (empty when none, or none can be made).
    fn transcode(&mut self, stream: StreamId, pts: i64, aac: &[u8]) -> Bytes {
        self.start(stream);
        let Some(transcoder) = self.transcoder.as_mut() else {
            return Bytes::new();
        };
        self.packets.clear();
        // Symphonia's decoder reads untrusted bytes: a panic in it drops the transcoder
        // (and the stream's WebRTC audio until its next configuration), never the shard.
        let pushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            transcoder.push(pts, aac, &mut self.packets)
        }));
        match pushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::debug!("stream {stream}: webrtc audio: {e}"),
            Err(_) => {
                log::warn!("stream {stream}: the AAC decoder failed: no WebRTC audio");
                self.transcoder = None;
                self.refused = true;
            }
        }
        if self.packets.is_empty() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(&self.packets)
        }
    }

    /// Makes a transcoder for the configuration, unless one runs or it was refused.
    fn start(&mut self, stream: StreamId) {
        if self.transcoder.is_some() || self.refused {
            return;
        }
        let Some(config) = &self.config else { return };
        match AacToOpus::new(config) {
            Ok(t) => self.transcoder = Some(t),
            Err(TranscodeError::Unsupported(why) | TranscodeError::Frame(why)) => {
                log::warn!("stream {stream}: no WebRTC audio: {why}");
                self.refused = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac::{audio_config, silent_stereo_frame};
    use crate::media::frame::{Frame, MediaInfo};
    use crate::media::opus::packets;
    use crate::stream::ring::FeedFrame;

    fn media(object_type: u8) -> StreamEvent {
        StreamEvent::Media {
            stream: 3,
            info: MediaInfo {
                video: None,
                audio: audio_config(object_type, 48_000, 2),
            },
        }
    }

    fn aac(pts: i64) -> StreamEvent {
        let frame = Frame {
            track: TrackKind::Audio,
            pts,
            dts: pts,
            keyframe: true,
            data: silent_stereo_frame(),
        };
        StreamEvent::Frame {
            stream: 3,
            frame: FeedFrame {
                flv: crate::mux::flv::frame_tag(&frame),
                ts: Bytes::new(),
                opus: Bytes::new(),
                frame,
            },
        }
    }

    fn opus_of(event: &StreamEvent) -> Vec<u64> {
        match event {
            StreamEvent::Frame { frame, .. } => packets(&frame.opus).map(|(t, _)| t).collect(),
            _ => panic!("not a frame"),
        }
    }

    #[test]
    fn aac_frames_get_opus_packets_only_while_wanted() {
        let mut audio = WebRtcAudio::default();
        audio.on_event(&mut media(2), true);
        let mut first = aac(0);
        audio.on_event(&mut first, false);
        assert!(opus_of(&first).is_empty());
        let mut wanted = aac(1920);
        audio.on_event(&mut wanted, true);
        assert_eq!(opus_of(&wanted), [1024]);
        let mut next = aac(3840);
        audio.on_event(&mut next, true);
        assert_eq!(opus_of(&next), [1024 + 960]);
        let mut unwanted = aac(5760);
        audio.on_event(&mut unwanted, false);
        assert!(opus_of(&unwanted).is_empty());
        assert!(audio.transcoder.is_none(), "dropped without demand");
    }

    #[test]
    fn audio_the_transcoder_does_not_take_gives_no_packets() {
        let mut audio = WebRtcAudio::default();
        audio.on_event(&mut media(5), true);
        let mut frame = aac(0);
        audio.on_event(&mut frame, true);
        assert!(opus_of(&frame).is_empty());
        assert!(audio.refused);
        // A new configuration is tried again.
        audio.on_event(&mut media(2), true);
        let mut frame = aac(0);
        audio.on_event(&mut frame, true);
        assert_eq!(opus_of(&frame).len(), 1);
    }

    #[test]
    fn demand_counts_holds_across_threads_until_they_drop() {
        let demand = Arc::new(OpusDemand::default());
        assert!(!demand.wanted(7));
        let a = demand.hold(7);
        let b = std::thread::spawn({
            let demand = demand.clone();
            move || demand.hold(7)
        })
        .join()
        .unwrap();
        drop(a);
        assert!(demand.wanted(7));
        assert!(
            demand.wanted(7 + DEMAND_SLOTS as StreamId),
            "a shared counter"
        );
        drop(b);
        assert!(!demand.wanted(7));
    }
}
