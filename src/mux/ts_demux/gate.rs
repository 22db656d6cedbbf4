//! `StartGate`: the stream's first `Media` waits until every track the PMT lists has its
//! decoder configuration, so the stream starts with one `Media` that describes all of it.
//!
//! A transport stream carries its configuration in band: AAC's in every ADTS header, H.264's
//! in the SPS/PPS before a keyframe, which may come a whole GOP after the first audio frame.
//! Announcing the audio alone and then both would make an input restart its segmenter, and
//! show viewers an audio-only stream, at every start. So the first events are held until
//! the configuration is complete, or until holding more would cost too much (a listed track
//! that never shows up): [`HOLD_LIMIT_TICKS`] of media or [`HOLD_LIMIT_BYTES`]. Then one
//! `Media` with what is known goes out, followed by the held frames. Errors are never held,
//! and after the start everything passes straight through.

use super::DemuxEvent;
use crate::media::frame::{MediaInfo, TIMESCALE, TrackKind};

/// Longest span of held frames (by decode time): 10 s, the longest GOP contribution
/// encoders commonly use. Only frames of configured tracks are held (audio, typically, while
/// the video waits for its first keyframe), and no segment can start before that keyframe
/// anyway, so the wait costs a viewer nothing.
pub const HOLD_LIMIT_TICKS: i64 = 10 * TIMESCALE;
/// Most payload bytes held.
pub const HOLD_LIMIT_BYTES: usize = 8 << 20;

/// Which tracks the program has, i.e. which configurations to wait for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub video: bool,
    pub audio: bool,
}

/// Holds the stream's first events (see the module doc).
#[derive(Debug, Default)]
pub struct StartGate {
    open: bool,
    held: Vec<DemuxEvent>,
}

impl StartGate {
    /// Passes events on: errors at once, frames and configurations once open (held before);
    /// then opens when the configuration is complete or the hold is too long or too large.
    pub fn pass(
        &mut self,
        events: impl IntoIterator<Item = DemuxEvent>,
        expected: Expected,
        info: &MediaInfo,
        out: &mut Vec<DemuxEvent>,
    ) {
        for event in events {
            match event {
                DemuxEvent::Error(_) => out.push(event),
                _ if self.open => out.push(event),
                _ => self.held.push(event),
            }
        }
        if self.open {
            return;
        }
        let complete = (info.video.is_some() || info.audio.is_some())
            && (!expected.video || info.video.is_some())
            && (!expected.audio || info.audio.is_some());
        if complete || self.too_much() {
            self.release(info, out);
        }
    }

    /// Opens now (the stream ended).
    pub fn release(&mut self, info: &MediaInfo, out: &mut Vec<DemuxEvent>) {
        if self.open {
            return;
        }
        self.open = true;
        if info.video.is_some() || info.audio.is_some() {
            out.push(DemuxEvent::Media(info.clone()));
        }
        // The Media above supersedes the held ones; a track it no longer has (the PMT
        // dropped it meanwhile) loses its held frames.
        out.extend(self.held.drain(..).filter(|e| match e {
            DemuxEvent::Frame(f) => match f.track {
                TrackKind::Video => info.video.is_some(),
                TrackKind::Audio => info.audio.is_some(),
            },
            _ => false,
        }));
        self.held = Vec::new();
    }

    fn too_much(&self) -> bool {
        let mut bytes = 0;
        let mut span = (i64::MAX, i64::MIN);
        for e in &self.held {
            if let DemuxEvent::Frame(f) = e {
                bytes += f.data.len();
                span = (span.0.min(f.dts), span.1.max(f.dts));
            }
        }
        bytes > HOLD_LIMIT_BYTES || span.1.saturating_sub(span.0) > HOLD_LIMIT_TICKS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::aac;
    use crate::media::frame::Frame;
    use crate::source::fake::FakeSource;
    use bytes::Bytes;

    fn audio_frame(dts: i64) -> DemuxEvent {
        DemuxEvent::Frame(Frame {
            track: TrackKind::Audio,
            pts: dts,
            dts,
            keyframe: true,
            data: Bytes::from_static(&[1, 2, 3]),
        })
    }

    fn kinds(events: &[DemuxEvent]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e {
                DemuxEvent::Media(_) => "media",
                DemuxEvent::Frame(_) => "frame",
                DemuxEvent::Error(_) => "error",
            })
            .collect()
    }

    #[test]
    fn holds_audio_until_video_is_configured() {
        let both = Expected {
            video: true,
            audio: true,
        };
        let full = FakeSource::new(0, 25).media_info();
        let audio_only = MediaInfo {
            video: None,
            audio: aac::audio_config(2, 48_000, 2),
        };
        let (mut gate, mut out) = (StartGate::default(), Vec::new());
        let media = DemuxEvent::Media(audio_only.clone());
        gate.pass([media, audio_frame(0)], both, &audio_only, &mut out);
        assert!(out.is_empty());
        let error = DemuxEvent::Error(super::super::DemuxError::LostSync { offset: 0 });
        gate.pass([error], both, &audio_only, &mut out);
        assert_eq!(kinds(&out), ["error"], "errors are not held");
        gate.pass([audio_frame(1920)], both, &full, &mut out);
        assert_eq!(kinds(&out), ["error", "media", "frame", "frame"]);
        assert!(matches!(&out[1], DemuxEvent::Media(m) if *m == full));
        gate.pass([audio_frame(3840)], both, &full, &mut out);
        assert_eq!(out.len(), 5, "open: straight through");
    }

    #[test]
    fn gives_up_waiting_after_the_hold_limit() {
        let both = Expected {
            video: true,
            audio: true,
        };
        let audio_only = MediaInfo {
            video: None,
            audio: aac::audio_config(2, 48_000, 2),
        };
        let (mut gate, mut out) = (StartGate::default(), Vec::new());
        let mut dts = 0;
        while out.is_empty() {
            gate.pass([audio_frame(dts)], both, &audio_only, &mut out);
            dts += 1920;
        }
        assert!(dts > HOLD_LIMIT_TICKS);
        assert_eq!(kinds(&out)[0], "media");
        assert_eq!(out.len(), 1 + (dts / 1920) as usize);
    }
}
