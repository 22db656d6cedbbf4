//! `StreamView`: what one shard knows of one stream: its media description, its recent
//! segments and its recent frames, and which input they come from. The input's shard (the
//! owner for `fake://`, the publisher's shard for `publish://`) produces them; every shard
//! (that one included) applies the same `StreamEvent`s, so every shard serves the same
//! playlists.

use crate::media::frame::MediaInfo;
use crate::mux::fmp4::{Fmp4Muxer, Tracks};
use crate::stream::StreamId;
use crate::stream::ring::{FeedFrame, FrameRing};
use crate::stream::segment::{Part, Segment};
use crate::stream::window::SegmentWindow;
use crate::uri::TokenTemplate;
use bytes::Bytes;
use std::cell::RefCell;

/// What an input announces to every shard. `Send`: it crosses shards, and its payloads are
/// `Bytes`, so crossing costs a reference count, not a copy.
#[derive(Clone, Debug)]
pub enum StreamEvent {
    /// The stream's tracks and codec configuration (sent when an input starts).
    Media { stream: StreamId, info: MediaInfo },
    /// A finished segment.
    Segment { stream: StreamId, segment: Segment },
    /// An LL-HLS part of the segment being cut.
    Part { stream: StreamId, part: Part },
    /// One frame, for the frame-by-frame protocols (RTSP, HTTP MPEG-TS), with its TS chunk.
    Frame { stream: StreamId, frame: FeedFrame },
    /// An input started sending (sent before its first `Media`). `generation` counts the
    /// stream's publishers (0 for inputs that live as long as the process): a start older
    /// than the one a shard has seen is a late message and ignored.
    InputStarted { stream: StreamId, generation: u64 },
    /// The input stopped (a publisher left), after its last frame and its final (partial)
    /// segment: frame viewers are told the stream ended; segments stay listed.
    InputEnded { stream: StreamId, generation: u64 },
}

impl StreamEvent {
    pub fn stream(&self) -> StreamId {
        match self {
            StreamEvent::Media { stream, .. }
            | StreamEvent::Segment { stream, .. }
            | StreamEvent::Part { stream, .. }
            | StreamEvent::Frame { stream, .. }
            | StreamEvent::InputStarted { stream, .. }
            | StreamEvent::InputEnded { stream, .. } => *stream,
        }
    }
}

/// The input a shard takes frames from: the shard it runs on and its generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub shard: usize,
    pub generation: u64,
}

#[derive(Debug, Default)]
pub struct StreamView {
    /// The current input, once one started. Frames and media from any other shard are a
    /// previous input's late messages (each shard's events arrive in order, but two
    /// shards' events may interleave) and are ignored.
    pub source: Option<Source>,
    /// An input is sending now (false before the first and after a publisher left).
    pub live: bool,
    /// Counts `Media` changes, so a viewer can tell that its decoder configuration is stale.
    pub media_version: u64,
    pub window: SegmentWindow,
    /// Recent frames, for viewers that take frames rather than segments.
    pub ring: FrameRing,
    /// Known once the input has announced its media.
    pub media: Option<MediaInfo>,
    /// The master playlist's description, derived from `media`.
    pub variant: Option<VariantInfo>,
    /// The fMP4 initialization segment, derived from `media` (every shard builds the same
    /// bytes the owner's segmenter fragments against).
    pub init_mp4: Option<Bytes>,
    /// The single-track init segments DASH uses: (video, audio).
    pub dash_init: (Option<Bytes>, Option<Bytes>),
    /// Documents rendered from `window` with the token's places marked, re-rendered when
    /// it changes (`hls::kept`: the media playlists). A cell: requests see the view shared.
    pub kept_documents: RefCell<[TokenTemplate; KEPT_DOCUMENTS]>,
}

/// How many documents a view keeps rendered.
pub const KEPT_DOCUMENTS: usize = 4;

impl StreamView {
    /// Applies an event that shard `from` sent.
    pub fn apply(&mut self, from: usize, event: StreamEvent) {
        let from_source = self.source.is_none_or(|s| s.shard == from);
        match event {
            StreamEvent::InputStarted { generation, .. } => {
                if self.source.is_some_and(|s| s.generation > generation) {
                    return;
                }
                self.source = Some(Source {
                    shard: from,
                    generation,
                });
                self.live = true;
                // A new input: the previous one's frames are no place to start.
                self.ring.reset();
            }
            StreamEvent::InputEnded { generation, .. } => {
                if self.source
                    == Some(Source {
                        shard: from,
                        generation,
                    })
                {
                    self.live = false;
                    self.ring.close();
                }
            }
            StreamEvent::Media { .. } | StreamEvent::Frame { .. } | StreamEvent::Part { .. }
                if !from_source => {}
            StreamEvent::Media { info, .. } => {
                self.media_version += 1;
                self.variant = Some(variant_info(&info));
                self.init_mp4 = Fmp4Muxer::new(&info).ok().map(|m| m.init_segment());
                let single = |t| {
                    Fmp4Muxer::for_tracks(&info, t)
                        .ok()
                        .map(|m| m.init_segment())
                };
                let video = info.video.as_ref().and_then(|_| single(Tracks::Video));
                let audio = info.audio.as_ref().and_then(|_| single(Tracks::Audio));
                self.dash_init = (video, audio);
                if self.media.as_ref().is_some_and(|old| *old != info) {
                    // New codec configuration: frames of the old one are useless to viewers.
                    self.ring.reset();
                }
                self.media = Some(info);
            }
            // Any input's: the window keeps sequence order and drops late ones.
            StreamEvent::Segment { segment, .. } => self.window.push(segment),
            StreamEvent::Part { part, .. } => self.window.push_part(part),
            StreamEvent::Frame { frame, .. } => self.ring.push(frame),
        }
    }

    /// The stream left the config: its viewers end (as when an input ends) and what its
    /// input made is let go. The ring keeps its count, so a viewer's cursor stays valid.
    pub fn retire(&mut self) {
        self.ring.close();
        let ring = std::mem::take(&mut self.ring);
        *self = StreamView {
            source: self.source,
            ring,
            ..StreamView::default()
        };
    }

    /// The stream's media while an input is sending.
    pub fn live_media(&self) -> Option<&MediaInfo> {
        self.media.as_ref().filter(|_| self.live)
    }
}

/// What manifests say about the one variant (HLS master playlist, DASH MPD), derived from
/// the stream's `MediaInfo` by [`variant_info`].
#[derive(Clone, Debug)]
pub struct VariantInfo {
    /// `CODECS` attribute value, e.g. `avc1.42c01e,mp4a.40.2`.
    pub codecs: String,
    pub resolution: Option<(u16, u16)>,
    pub frame_rate: Option<f64>,
    /// Per-track codec strings, for manifests that describe tracks apart (DASH).
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// Audio sample rate and channel count.
    pub audio_format: Option<(u32, u8)>,
}

/// The master playlist's description of a stream.
pub fn variant_info(info: &MediaInfo) -> VariantInfo {
    let mut codecs = Vec::new();
    if let Some(v) = &info.video {
        codecs.push(v.codec_string());
    }
    if let Some(a) = &info.audio {
        codecs.push(a.codec_string());
    }
    VariantInfo {
        codecs: codecs.join(","),
        video_codec: info.video.as_ref().map(|v| v.codec_string()),
        audio_codec: info.audio.as_ref().map(|a| a.codec_string()),
        audio_format: info.audio.as_ref().map(|a| (a.sample_rate, a.channels)),
        resolution: info.video.as_ref().map(|v| (v.width, v.height)),
        frame_rate: info
            .video
            .as_ref()
            .and_then(|v| v.frame_rate)
            .filter(|&(_, den)| den > 0)
            .map(|(num, den)| f64::from(num) / f64::from(den)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::{Frame, TrackKind};

    fn frame(keyframe: bool, pts: i64) -> StreamEvent {
        let frame = Frame {
            track: TrackKind::Video,
            pts,
            dts: pts,
            keyframe,
            data: Bytes::from_static(b"x"),
        };
        let flv = crate::mux::flv::frame_tag(&frame);
        StreamEvent::Frame {
            stream: 0,
            frame: FeedFrame {
                frame,
                ts: Bytes::new(),
                flv,
                opus: Bytes::new(),
            },
        }
    }

    fn started(generation: u64) -> StreamEvent {
        StreamEvent::InputStarted {
            stream: 0,
            generation,
        }
    }

    fn ended(generation: u64) -> StreamEvent {
        StreamEvent::InputEnded {
            stream: 0,
            generation,
        }
    }

    #[test]
    fn a_new_input_on_another_shard_wins_over_late_messages_of_the_old_one() {
        let mut v = StreamView::default();
        assert!(!v.live);
        v.apply(1, started(1));
        v.apply(1, frame(true, 0));
        assert!(v.live && v.ring.start().is_some());
        // A publisher on shard 0 takes over before shard 1's last messages arrive.
        v.apply(0, started(2));
        assert_eq!(v.ring.start(), None, "the old input's frames are no start");
        let end = v.ring.end();
        v.apply(1, frame(false, 1));
        assert_eq!(v.ring.end(), end, "late frame of the old input ignored");
        v.apply(1, ended(1));
        assert!(v.live, "late end of the old input ignored");
        v.apply(0, started(1));
        assert_eq!(
            v.source,
            Some(Source {
                shard: 0,
                generation: 2
            }),
            "an older start is ignored"
        );
        v.apply(0, frame(true, 10));
        assert!(v.ring.start().is_some());
        v.apply(0, ended(2));
        assert!(!v.live);
        assert!(v.ring.is_closed());
        assert_eq!(v.ring.start(), None, "new viewers wait for the next input");
    }
}
