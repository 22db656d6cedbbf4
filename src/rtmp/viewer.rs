//! The media side of an RTMP play, sans-IO: ring frames in; RTMP chunks out (RTMP 1.0
//! §5.3, type 0 then type 3 headers), written straight into the connection's buffer.
//!
//! What a player expects, and this machine owns:
//! - the decoder configuration (AVC sequence header, AAC AudioSpecificConfig) before any
//!   media, and again, with `onMetaData`, whenever the stream's media changes (a new
//!   publisher, a codec change);
//! - video first: frames are held back until the first video keyframe after each
//!   configuration (audio before it would start a player's clock without a picture);
//! - timestamps relative to the first message sent, never negative (FLV's 32-bit ms).
//!
//! A frame's FLV tag is the shared `Bytes` the input's shard built once; a chunk is its
//! header, written into the connection's buffer, and its slice of the tag, placed in the
//! outbox as it is (`Outbox::push_payload`: shared, not copied, but for small slices).
//! Chunks are written up to the driver's flush mark.

use crate::media::frame::{MediaInfo, TrackKind};
use crate::rtmp::chunk::{ChunkEncoder, MAX_WIRE_MESSAGE_LEN, MessageHeader};
use crate::rtmp::flv::{FlvTag, TagKind, audio_config_tag, metadata_tag, video_config_tag};
use crate::rtmp::session::{CSID_AUDIO, CSID_DATA, CSID_VIDEO};
use crate::stream::ring::FeedFrame;
use crate::stream::viewer::{FrameViewer, MediaNow, Outbox};
use std::collections::VecDeque;
use std::time::Instant;

/// The chunk header `tag` goes out with as a media message of the play on `stream_id`:
/// on the audio, video or data chunk stream, timestamped relative to the first tag
/// (`base_ms`, set by the first call; never negative). `None` for a tag longer than a
/// message may be.
pub fn media_header(
    tag: &FlvTag,
    base_ms: &mut Option<i64>,
    stream_id: u32,
) -> Option<MessageHeader> {
    if tag.body.len() > MAX_WIRE_MESSAGE_LEN {
        return None;
    }
    let base = *base_ms.get_or_insert(tag.timestamp_ms);
    let ts = (tag.timestamp_ms - base).clamp(0, i64::from(u32::MAX)) as u32;
    let csid = match tag.kind {
        TagKind::Audio => CSID_AUDIO,
        TagKind::Video => CSID_VIDEO,
        TagKind::Script => CSID_DATA,
    };
    Some(MessageHeader {
        csid,
        timestamp: ts,
        type_id: tag.kind.message_type(),
        stream_id,
    })
}

/// One RTMP viewer's chunking state and queued tags.
pub struct RtmpViewer {
    encoder: ChunkEncoder,
    /// Message stream id of the play.
    stream_id: u32,
    /// Source timestamp (ms) of the first message: viewer time 0.
    base_ms: Option<i64>,
    /// The stream's `media_version` whose configuration the viewer has.
    sent_version: Option<u64>,
    /// A video keyframe was queued since the last configuration.
    started: bool,
    /// Tags to write, the first one possibly in part (`offset` of its body written).
    queue: VecDeque<FlvTag>,
    current: Option<(MessageHeader, usize)>,
}

impl RtmpViewer {
    /// A play that starts with `media`'s configuration (empty while a published stream
    /// waits for its publisher), which the viewer has as of `version`.
    pub fn new(
        encoder: ChunkEncoder,
        stream_id: u32,
        media: &MediaInfo,
        version: Option<u64>,
    ) -> RtmpViewer {
        let mut viewer = RtmpViewer {
            encoder,
            stream_id,
            base_ms: None,
            sent_version: version,
            started: false,
            queue: VecDeque::with_capacity(4),
            current: None,
        };
        viewer
            .queue
            .extend(media.video.as_ref().map(|v| video_config_tag(v, 0)));
        viewer
            .queue
            .extend(media.audio.as_ref().map(|a| audio_config_tag(a, 0)));
        viewer
    }

    /// After a pause: viewer time restarts at the next tag's (resume at the live edge).
    pub fn resume(&mut self) {
        self.base_ms = None;
    }

    /// Queues `onMetaData` and the decoder configuration at `ms`.
    fn queue_configuration(&mut self, media: &MediaInfo, ms: i64) {
        self.queue.push_back(metadata_tag(media, ms));
        self.queue
            .extend(media.video.as_ref().map(|v| video_config_tag(v, ms)));
        self.queue
            .extend(media.audio.as_ref().map(|a| audio_config_tag(a, ms)));
    }
}

impl FrameViewer for RtmpViewer {
    fn queue(&mut self, entry: &FeedFrame, media: MediaNow<'_>, _now: Instant, _wall_ms: i64) {
        if self.sent_version != Some(media.version)
            && let Some(info) = media.info
        {
            self.sent_version = Some(media.version);
            self.queue_configuration(info, entry.flv.timestamp_ms);
            self.started = false;
        }
        let frame = &entry.frame;
        self.started |= frame.track == TrackKind::Video && frame.keyframe;
        if self.started {
            self.queue.push_back(entry.flv.clone());
        }
    }

    fn write(&mut self, out: &mut Outbox, mark: usize) -> bool {
        let RtmpViewer {
            encoder,
            stream_id,
            base_ms,
            queue,
            current,
            ..
        } = self;
        while let Some(tag) = queue.front() {
            let (header, mut at) = match current.take() {
                Some(resumed) => resumed,
                None => match media_header(tag, base_ms, *stream_id) {
                    Some(header) => (header, 0),
                    None => {
                        queue.pop_front();
                        continue;
                    }
                },
            };
            loop {
                let range =
                    encoder.write_chunk_header(&header, tag.body.len(), at, out.bytes_mut());
                at = range.end;
                out.push_payload(&tag.body, range);
                if at >= tag.body.len() {
                    break;
                }
                if out.len() >= mark {
                    *current = Some((header, at));
                    return false;
                }
            }
            queue.pop_front();
            if out.len() >= mark {
                return queue.is_empty();
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::{ChunkDecoder, ChunkLimits};
    use crate::rtmp::flv::{TYPE_AUDIO, TYPE_DATA, TYPE_VIDEO};
    use crate::source::fake::FakeSource;

    fn media() -> MediaInfo {
        FakeSource::new(0, 25).media_info()
    }

    fn frames(n: usize) -> Vec<FeedFrame> {
        crate::stream::viewer::fake_frames(n)
    }

    /// Decodes what the viewer wrote: (message type, timestamp, body length).
    fn messages(bytes: &[u8]) -> Vec<(u8, u32, usize)> {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder
            .set_chunk_size(ChunkEncoder::new().chunk_size() as u32)
            .expect("a valid chunk size");
        let mut got = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let (n, msg) = decoder.decode(&bytes[at..]).expect("valid chunks");
            assert!(n > 0);
            at += n;
            if let Some(m) = msg {
                got.push((m.type_id, m.timestamp, m.payload.len()));
            }
        }
        got
    }

    fn run(v: &mut RtmpViewer, frames: &[FeedFrame], version: u64, m: &MediaInfo) -> Vec<u8> {
        let mut out = Outbox::default();
        for f in frames {
            let media = MediaNow {
                version,
                info: Some(m),
            };
            v.queue(f, media, Instant::now(), 0);
            while !v.write(&mut out, usize::MAX) {}
        }
        out.stream_bytes()
    }

    /// Frames starting with audio before the first keyframe.
    fn audio_first() -> Vec<FeedFrame> {
        let all = frames(200);
        let first_key = all
            .iter()
            .position(|f| f.frame.track == TrackKind::Video && f.frame.keyframe)
            .unwrap();
        let second_key = all
            .iter()
            .skip(first_key + 1)
            .position(|f| f.frame.track == TrackKind::Video && f.frame.keyframe)
            .map(|p| p + first_key + 1)
            .unwrap();
        // Start mid-GOP: audio and inter frames come before the next keyframe.
        all[first_key + 1..=second_key + 3].to_vec()
    }

    #[test]
    fn configuration_first_then_nothing_before_the_first_keyframe() {
        let m = media();
        let mut v = RtmpViewer::new(ChunkEncoder::new(), 1, &m, Some(1));
        let bytes = run(&mut v, &audio_first(), 1, &m);
        let msgs = messages(&bytes);
        assert_eq!(msgs[0].0, TYPE_VIDEO, "AVC sequence header first");
        assert_eq!(msgs[1].0, TYPE_AUDIO, "then the AAC config");
        assert_eq!((msgs[0].1, msgs[1].1), (0, 0));
        assert_eq!(msgs[2].0, TYPE_VIDEO, "audio is gated until the keyframe");
        assert!(msgs.len() > 3);
    }

    #[test]
    fn configuration_is_sent_again_when_the_media_changes() {
        let m = media();
        let mut v = RtmpViewer::new(ChunkEncoder::new(), 1, &m, Some(1));
        let all = frames(200);
        let mut out_a = run(&mut v, &all[..10], 1, &m);
        let before = messages(&out_a).len();
        // A new publisher: version 2. onMetaData and both configs precede its media, and
        // audio waits for its first keyframe again.
        out_a.extend(run(&mut v, &audio_first(), 2, &m));
        let msgs = messages(&out_a);
        let after: Vec<u8> = msgs[before..].iter().map(|m| m.0).collect();
        assert_eq!(
            &after[..4],
            &[TYPE_DATA, TYPE_VIDEO, TYPE_AUDIO, TYPE_VIDEO]
        );
    }

    #[test]
    fn timestamps_count_from_the_first_message() {
        let m = MediaInfo::default();
        let mut v = RtmpViewer::new(ChunkEncoder::new(), 1, &m, None);
        let mut all = frames(30);
        for f in &mut all {
            f.flv.timestamp_ms += 50_000;
        }
        let msgs = messages(&run(&mut v, &all, 7, &media()));
        assert_eq!(
            msgs[0].0, TYPE_DATA,
            "a waiting viewer gets onMetaData first"
        );
        assert!(
            msgs.iter().all(|m| m.1 < 2_000),
            "relative to the first: {msgs:?}"
        );
    }

    #[test]
    fn a_keyframe_is_written_in_pieces_up_to_the_mark() {
        let m = media();
        let mut v = RtmpViewer::new(ChunkEncoder::new(), 1, &m, Some(1));
        let key = frames(1).remove(0);
        assert!(key.flv.body.len() > 3 * 1024);
        let media = MediaNow {
            version: 1,
            info: Some(&m),
        };
        v.queue(&key, media, Instant::now(), 0);
        let mut out = Outbox::default();
        let mut all = Vec::new();
        let mark = 1024;
        loop {
            let done = v.write(&mut out, mark);
            assert!(out.len() < mark + ChunkEncoder::new().chunk_size() + 32);
            all.extend_from_slice(&out.stream_bytes());
            out.clear();
            if done {
                break;
            }
        }
        let msgs = messages(&all);
        assert_eq!(
            msgs.last().unwrap().2,
            key.flv.body.len(),
            "the whole keyframe"
        );
    }
}
