//! `hls://`, `hlss://`: an HLS pull (RFC 8216 §6.3, the client side), sans-IO. It says
//! what to fetch next and when (`next_step`, time passed in), and takes each response's
//! status and body; the runtime does the HTTP over one keep-alive connection.
//!
//! * A master playlist: the variant with the highest `BANDWIDTH` is pulled (Flussonic's
//!   `hls://` takes one rendition; it has no option to pick another).
//! * A media playlist: the pull starts near the live edge (its last three segments, as
//!   RFC 8216 §6.3.3 advises), then reloads every target duration while it moves and every
//!   half target duration while it does not (§6.3.4); segments are fetched in order, a
//!   segment gone (404) is skipped.
//! * Failed source: a playlist that stops moving for three target durations (or
//!   `source_timeout`, when shorter), a media sequence that goes back (a loop, or an origin
//!   that restarted: the next session starts at the new live edge), `#EXT-X-ENDLIST` once its
//!   segments are fetched, a segment over [`MAX_SEGMENT_BYTES`], a playlist over
//!   [`MAX_PLAYLIST_BYTES`], anything but 200 (a playlist may redirect, 5 times in a row).
//! * TS segments go through `mux::ts_demux`, one demuxer while the segments follow each
//!   other; fMP4 ones (`#EXT-X-MAP`) through [`fmp4`]. At a discontinuity
//!   the demuxer starts over and the timestamps are rebased so they continue where the
//!   last segment ended: what reaches `LiveInput` never goes back.

pub mod fmp4;
pub mod location;
pub mod playlist;

use crate::media::frame::Frame;
use crate::mux::ts_demux::{DemuxEvent, TsDemuxer};
use crate::rtmp::flv::MediaFrame;
use fmp4::Fmp4Demuxer;
pub use location::Location;
use playlist::{MediaPlaylist, Playlist, Segment};
use std::collections::VecDeque;

/// Largest playlist (or fMP4 initialization section) read.
pub const MAX_PLAYLIST_BYTES: usize = 1 << 20;
/// Largest segment accepted: past it the source fails (a 4K segment of 10 s at 40 Mbit/s
/// is 50 MB).
pub const MAX_SEGMENT_BYTES: u64 = 64 << 20;
/// Segments fetched at the start: the live edge less three segments (RFC 8216 §6.3.3).
const START_SEGMENTS: usize = 3;
/// Redirects followed in a row for a playlist.
const MAX_REDIRECTS: u8 = 5;
/// Decoded frames not yet taken; more means the shell stopped taking them.
const MAX_QUEUED: usize = 4096;
/// Rebase when a segment's timestamps go back this far without `#EXT-X-DISCONTINUITY`
/// (an origin restarted), or jump forward this far (90 kHz).
const JUMP_BACK: i64 = 90_000;
const JUMP_FORWARD: i64 = 30 * 90_000;

/// What the runtime does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// GET this location (keep the connection when it is the same origin).
    Fetch(Location),
    /// Nothing to fetch before this time (ms, the caller's clock).
    WaitUntil(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fetching {
    Playlist,
    Init(String),
    Segment(Segment),
    /// A response whose body is dropped (a segment gone).
    Skip,
}

enum Demux {
    Ts(Box<TsDemuxer>),
    Fmp4(Box<Fmp4Demuxer>),
}

pub struct HlsPull {
    playlist: Location,
    from_master: bool,
    redirects: u8,
    fetching: Option<Fetching>,
    body: Vec<u8>,
    segment_bytes: u64,
    target_ms: u64,
    stall_ms: u64,
    next_reload_ms: Option<u64>,
    moved_at_ms: u64,
    last_sequence: Option<u64>,
    queue: VecDeque<Segment>,
    ended: bool,
    init_uri: Option<String>,
    demux: Demux,
    events: Vec<DemuxEvent>,
    media: VecDeque<MediaFrame>,
    rebase: Rebase,
    /// Segments at the start: the last [`START_SEGMENTS`], or none (a probe).
    start_segments: usize,
}

impl HlsPull {
    /// A pull of the playlist at `playlist`; fails when it stops moving for `stall_ms` (or
    /// three target durations, when shorter).
    pub fn new(playlist: Location, stall_ms: u64) -> Self {
        HlsPull {
            playlist,
            from_master: false,
            redirects: 0,
            fetching: None,
            body: Vec::new(),
            segment_bytes: 0,
            target_ms: 0,
            stall_ms,
            next_reload_ms: None,
            moved_at_ms: 0,
            last_sequence: None,
            queue: VecDeque::new(),
            ended: false,
            init_uri: None,
            demux: Demux::Ts(Box::default()),
            events: Vec::new(),
            media: VecDeque::new(),
            rebase: Rebase::default(),
            start_segments: START_SEGMENTS,
        }
    }

    /// Fetches only the segments that appear after the first playlist (a probe of a
    /// primary source: a stalled origin still lists its last segments).
    pub fn skip_existing_segments(&mut self) {
        self.start_segments = 0;
    }

    pub fn poll_media(&mut self) -> Option<MediaFrame> {
        self.media.pop_front()
    }

    /// What to fetch next, at `now_ms`; an error fails the source.
    pub fn next_step(&mut self, now_ms: u64) -> Result<Step, String> {
        debug_assert!(self.fetching.is_none(), "a response is still being read");
        if self.last_sequence.is_some() {
            let limit = self.stall_ms.min(3 * self.target_ms).max(1000);
            if now_ms.saturating_sub(self.moved_at_ms) > limit {
                return Err(format!(
                    "the playlist stopped moving for {} s",
                    limit.div_ceil(1000)
                ));
            }
        }
        if self.next_reload_ms.is_none_or(|at| now_ms >= at) {
            self.fetching = Some(Fetching::Playlist);
            return Ok(Step::Fetch(self.playlist.clone()));
        }
        if let Some(segment) = self.queue.front() {
            if let Some(map) = &segment.map
                && self.init_uri.as_ref() != Some(map)
            {
                let at = self.playlist.resolve(map)?;
                self.fetching = Some(Fetching::Init(map.clone()));
                return Ok(Step::Fetch(at));
            }
            if segment.map.is_none() && self.init_uri.take().is_some() {
                self.demux = Demux::Ts(Box::default());
                self.rebase.pending = true;
            }
            let at = self.playlist.resolve(&segment.uri)?;
            self.fetching = self.queue.pop_front().map(Fetching::Segment);
            return Ok(Step::Fetch(at));
        }
        if self.ended {
            return Err("the playlist ended (#EXT-X-ENDLIST)".into());
        }
        Ok(Step::WaitUntil(self.next_reload_ms.unwrap_or(now_ms)))
    }

    /// The response head of the fetch `next_step` asked for.
    pub fn head(&mut self, status: u16, location: Option<&str>) -> Result<(), String> {
        let fetching = self
            .fetching
            .as_ref()
            .ok_or("a response nobody asked for")?;
        self.body.clear();
        self.segment_bytes = 0;
        match (status, fetching) {
            (200, _) => {
                self.redirects = 0;
                Ok(())
            }
            (301 | 302 | 303 | 307 | 308, Fetching::Playlist) if self.redirects < MAX_REDIRECTS => {
                let location = location.ok_or("a redirect without Location")?;
                self.playlist = self.playlist.resolve(location)?;
                self.redirects += 1;
                self.fetching = Some(Fetching::Skip);
                self.next_reload_ms = None;
                Ok(())
            }
            (404 | 410, Fetching::Segment(segment)) => {
                log::debug!("hls pull: segment {} is gone, skipped", segment.sequence);
                self.fetching = Some(Fetching::Skip);
                Ok(())
            }
            (_, Fetching::Playlist) => Err(format!("origin answered {status} for the playlist")),
            (_, Fetching::Init(_)) => Err(format!(
                "origin answered {status} for the initialization section"
            )),
            (_, _) => Err(format!("origin answered {status} for a segment")),
        }
    }

    /// Body bytes of the current response.
    pub fn body(&mut self, bytes: &[u8]) -> Result<(), String> {
        match &self.fetching {
            Some(Fetching::Playlist | Fetching::Init(_)) => {
                if self.body.len() + bytes.len() > MAX_PLAYLIST_BYTES {
                    return Err(format!(
                        "playlist or initialization section over {MAX_PLAYLIST_BYTES} bytes"
                    ));
                }
                self.body.extend_from_slice(bytes);
                Ok(())
            }
            Some(Fetching::Segment(_)) => {
                self.segment_bytes += bytes.len() as u64;
                if self.segment_bytes > MAX_SEGMENT_BYTES {
                    return Err(format!("a segment over {} MiB", MAX_SEGMENT_BYTES >> 20));
                }
                self.demux_segment(bytes)
            }
            Some(Fetching::Skip) | None => Ok(()),
        }
    }

    /// The current response is complete.
    pub fn body_end(&mut self, now_ms: u64) -> Result<(), String> {
        match self.fetching.take() {
            Some(Fetching::Playlist) => {
                let text = std::mem::take(&mut self.body);
                self.playlist_loaded(&text, now_ms)
            }
            Some(Fetching::Init(uri)) => {
                let init = std::mem::take(&mut self.body);
                let mut demux = Fmp4Demuxer::new();
                demux.init(&init)?;
                self.finish_demux()?;
                self.demux = Demux::Fmp4(Box::new(demux));
                self.init_uri = Some(uri);
                self.rebase.pending = true;
                Ok(())
            }
            Some(Fetching::Segment(_) | Fetching::Skip) | None => Ok(()),
        }
    }

    /// Whether the response being read is a segment (the runtime reads those in pieces
    /// and takes the frames between them).
    pub fn reading_segment(&self) -> bool {
        matches!(self.fetching, Some(Fetching::Segment(_)))
    }

    fn playlist_loaded(&mut self, text: &[u8], now_ms: u64) -> Result<(), String> {
        match Playlist::parse(text)? {
            Playlist::Master(variants) => {
                if self.from_master {
                    return Err("a variant is itself a master playlist".into());
                }
                let best = variants
                    .iter()
                    .max_by_key(|v| v.bandwidth)
                    .ok_or("master playlist without variants")?;
                log::info!(
                    "hls pull: master playlist, pulling the variant of {} bit/s",
                    best.bandwidth
                );
                self.playlist = self.playlist.resolve(&best.uri)?;
                self.from_master = true;
                self.next_reload_ms = None;
                Ok(())
            }
            Playlist::Media(list) => self.media_playlist(list, now_ms),
        }
    }

    fn media_playlist(&mut self, list: MediaPlaylist, now_ms: u64) -> Result<(), String> {
        self.target_ms = list.target_duration_ms;
        self.ended = list.ended;
        let newest = list.segments.last().map(|s| s.sequence);
        let moved = match (self.last_sequence, newest) {
            (_, None) => false,
            (None, Some(_)) => {
                let skip = list.segments.len().saturating_sub(self.start_segments);
                self.queue.extend(list.segments.into_iter().skip(skip));
                true
            }
            (Some(last), Some(newest)) if newest < last => {
                return Err(format!(
                    "the media sequence went back from {last} to {newest} (a playlist loop, or the origin restarted)"
                ));
            }
            (Some(last), Some(newest)) => {
                self.queue
                    .extend(list.segments.into_iter().filter(|s| s.sequence > last));
                newest > last
            }
        };
        if self.last_sequence.is_none() || moved {
            self.moved_at_ms = now_ms;
        }
        if moved {
            self.last_sequence = newest;
        }
        let wait = if moved {
            self.target_ms
        } else {
            self.target_ms / 2
        };
        self.next_reload_ms = Some(now_ms + wait);
        Ok(())
    }

    fn demux_segment(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.media.len() >= MAX_QUEUED {
            return Err("decoded frames are not being taken".into());
        }
        let discontinuity = matches!(&self.fetching, Some(Fetching::Segment(s)) if s.discontinuity)
            && self.segment_bytes == bytes.len() as u64;
        if discontinuity {
            self.finish_demux()?;
            self.demux = match &self.demux {
                Demux::Ts(_) => Demux::Ts(Box::default()),
                Demux::Fmp4(d) => Demux::Fmp4(Box::new(d.restarted())),
            };
            self.rebase.pending = true;
        }
        match &mut self.demux {
            Demux::Ts(d) => d.push(bytes, &mut self.events),
            Demux::Fmp4(d) if self.segment_bytes == bytes.len() as u64 => {
                d.start_segment();
                d.push(bytes, &mut self.events)?
            }
            Demux::Fmp4(d) => d.push(bytes, &mut self.events)?,
        }
        self.take_events()
    }

    /// Ends the current demuxer (the last video frame of a TS stream leaves only then).
    fn finish_demux(&mut self) -> Result<(), String> {
        if let Demux::Ts(d) = &mut self.demux {
            d.finish(&mut self.events);
        }
        self.take_events()
    }

    fn take_events(&mut self) -> Result<(), String> {
        for event in self.events.drain(..) {
            match event {
                DemuxEvent::Media(info) => self.media.push_back(MediaFrame::Config(info)),
                DemuxEvent::Frame(mut frame) => {
                    self.rebase.apply(&mut frame);
                    self.media.push_back(MediaFrame::Frame(frame));
                }
                DemuxEvent::Error(e) if e.is_fatal() => return Err(e.to_string()),
                DemuxEvent::Error(e) => log::debug!("hls pull: {e}"),
            }
        }
        Ok(())
    }
}

/// Keeps the timestamps going forward across discontinuities.
#[derive(Debug, Default)]
struct Rebase {
    offset: i64,
    /// The latest decode time handed out.
    end: Option<i64>,
    /// The next frame starts a new timeline.
    pending: bool,
}

impl Rebase {
    fn apply(&mut self, frame: &mut Frame) {
        if let Some(end) = self.end {
            let dts = frame.dts + self.offset;
            if self.pending || dts < end - JUMP_BACK || dts > end + JUMP_FORWARD {
                // One frame (at 30 fps) after the last one.
                self.offset = end + 3000 - frame.dts;
            }
        }
        self.pending = false;
        frame.dts += self.offset;
        frame.pts += self.offset;
        self.end = Some(self.end.map_or(frame.dts, |e| e.max(frame.dts)));
    }
}

#[cfg(test)]
mod tests;
