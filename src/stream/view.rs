//! `StreamView`: what one shard knows of one stream: its media description, its recent
//! segments and its recent frames. The owner shard's input produces them; every shard (owner included) applies
//! the same `StreamEvent`s, so every shard serves the same playlists.

use crate::auth::verdict::StreamId;
use crate::hls::playlist::VariantInfo;
use crate::media::frame::MediaInfo;
use crate::mux::fmp4::{Fmp4Muxer, Tracks};
use crate::stream::ring::{FeedFrame, FrameRing};
use crate::stream::segment::{Part, Segment};
use crate::stream::window::SegmentWindow;
use bytes::Bytes;

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
}

impl StreamEvent {
    pub fn stream(&self) -> StreamId {
        match self {
            StreamEvent::Media { stream, .. }
            | StreamEvent::Segment { stream, .. }
            | StreamEvent::Part { stream, .. }
            | StreamEvent::Frame { stream, .. } => *stream,
        }
    }
}

#[derive(Debug, Default)]
pub struct StreamView {
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
}

impl StreamView {
    pub fn apply(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Media { info, .. } => {
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
            StreamEvent::Segment { segment, .. } => self.window.push(segment),
            StreamEvent::Part { part, .. } => self.window.push_part(part),
            StreamEvent::Frame { frame, .. } => self.ring.push(frame),
        }
    }
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
