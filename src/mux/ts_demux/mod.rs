//! MPEG-2 transport stream demuxer (ISO/IEC 13818-1), sans-IO: bytes in, [`DemuxEvent`]s out.
//! The one demuxer of every TS input: SRT publish ingest, and edge pulls over HLS, HTTP
//! MPEG-TS and SRT.
//!
//! Owns, in the order the bytes meet them:
//! * [`framer`]: 188-byte packets out of a stream cut anywhere, resync after lost sync
//!   bytes (§2.4.3.2, §2.4.3.3);
//! * [`packet`]: the packet header, adaptation field length and discontinuity_indicator
//!   (§2.4.3.2-§2.4.3.5), the continuity_counter check (§2.4.3.3);
//! * [`psi`]: PAT and PMT sections (§2.4.4), and what each `stream_type` is (Table 2-34);
//! * [`pes`]: PES reassembly and header, PTS/DTS (§2.4.3.6, §2.4.3.7);
//! * [`clock`]: 33-bit timestamps onto one `i64` timeline per program;
//! * [`video`]: H.264 (stream_type 0x1B, §2.14) to tessera's AVCC frames, SPS/PPS to
//!   [`VideoConfig`](crate::media::frame::VideoConfig);
//! * [`audio`]: AAC in ADTS (stream_type 0x0F) to raw AAC frames, ADTS header to
//!   [`AudioConfig`](crate::media::frame::AudioConfig);
//! * [`gate`]: the first frames held until every listed track is configured, so the stream
//!   starts with one `Media`.
//!
//! What comes out is what every other input of tessera produces (compare `rtmp::flv`'s
//! `FlvDemuxer`): [`DemuxEvent::Media`] whenever a track's decoder configuration appears or
//! changes (carrying both tracks as known; the first one waits until every track the PMT
//! lists is configured), then [`DemuxEvent::Frame`]s, each one access unit with 90 kHz
//! timestamps. Timestamps are the stream's own (the first one as is, later ones unwrapped
//! past 2^33); the input that feeds `LiveInput` rebases them like any other.
//!
//! Order and latency: frames come out when their PES is complete. An audio PES has a length
//! and completes with its last packet; a video PES usually has none (PES_packet_length 0)
//! and completes when the next one starts, so each video frame leaves one frame late, and
//! video and audio frames may come out of decode order by that much.
//!
//! Damage is reported, never panicked on, and never stops the demuxer: a lost sync byte, a
//! continuity counter jump, a bad section or PES, missing tables, an unsupported codec are
//! each a [`DemuxEvent::Error`] with the PID and byte offset; [`DemuxError::is_fatal`] says
//! which mean the stream cannot be carried. Memory is bounded: a partial packet (or the
//! resync window), one section per PSI PID, one PES per track up to [`MAX_PES_LEN`], the
//! streams of one program, the frames held at the start ([`gate`]).
//!
//! Never does: I/O, clocks, PCR-based clock recovery (timestamps are taken as they are),
//! more than one program (the first one of the PAT), codecs other than H.264 and AAC.

pub mod audio;
pub mod clock;
pub mod error;
pub mod framer;
pub mod gate;
pub mod packet;
pub mod pes;
pub mod psi;
pub mod video;

pub use clock::TimestampUnwrapper;
pub use error::DemuxError;

use crate::media::frame::{Frame, MediaInfo};
use audio::AudioTrack;
use framer::{Framed, PacketFramer};
use gate::{Expected, StartGate};
use packet::{Continuity, ContinuityCheck, PacketProblem, TsPacket};
use pes::{Pes, PesAssembler, PesProblem};
use psi::{EsEntry, SectionAssembler, StreamKind};
use video::VideoTrack;

/// A PES larger than this is dropped (a keyframe of 4K H.264 is a few hundred KiB).
pub const MAX_PES_LEN: usize = 4 << 20;
/// Streams of the PMT that are not demuxed (unsupported, ignored) remembered so that each is
/// reported once; a PMT listing more is reported as such.
pub const MAX_LISTED_STREAMS: usize = 16;
/// Packets without a PAT or PMT after which [`DemuxError::MissingTables`] is reported (about
/// 376 KB; muxers repeat their tables every 100 ms or so).
pub const MISSING_TABLES_PACKETS: u64 = 2000;

const PAT_PID: u16 = 0x0000;
const NULL_PID: u16 = 0x1FFF;

/// What the demuxer found in the bytes pushed.
#[derive(Clone, Debug)]
pub enum DemuxEvent {
    /// The stream's decoder configuration changed: both tracks, as known so far.
    Media(MediaInfo),
    /// One access unit.
    Frame(Frame),
    /// Something was damaged or cannot be carried; see [`DemuxError`].
    Error(DemuxError),
}

/// Demuxes one transport stream. Push bytes as they come; call [`finish`](Self::finish) at
/// the end to get the last video frame (its PES has no length and ends only at the next).
#[derive(Debug, Default)]
pub struct TsDemuxer {
    framer: PacketFramer,
    demux: ProgramDemux,
}

impl TsDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Demuxes `bytes` (any split of the stream) and appends what they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<DemuxEvent>) {
        let demux = &mut self.demux;
        self.framer.push(bytes, &mut |framed| match framed {
            Framed::Packet { packet, offset } => demux.packet(packet, offset, out),
            Framed::LostSync { offset } => {
                demux.lost_sync();
                out.push(DemuxEvent::Error(DemuxError::LostSync { offset }));
            }
            Framed::Resynced { offset, skipped } => {
                out.push(DemuxEvent::Error(DemuxError::Resynced { offset, skipped }));
            }
        });
    }

    /// The end of the stream: completes the PES of every track.
    pub fn finish(&mut self, out: &mut Vec<DemuxEvent>) {
        self.demux.finish(self.framer.position(), out);
    }

    /// The decoder configuration found so far (ahead of the `Media` events while the start
    /// is held, see [`gate`]).
    pub fn media_info(&self) -> &MediaInfo {
        &self.demux.info
    }
}

/// Everything after the framer: the tables and the tracks of the program.
#[derive(Debug, Default)]
struct ProgramDemux {
    pat: PsiPid,
    /// Set by the PAT.
    program: Option<Program>,
    info: MediaInfo,
    timeline: TimestampUnwrapper,
    /// What the tracks produced for the packet at hand, before the gate.
    produced: Vec<DemuxEvent>,
    gate: StartGate,
    packets: u64,
    missing_tables_reported: bool,
}

/// One PID carrying sections.
#[derive(Debug, Default)]
struct PsiPid {
    cc: ContinuityCheck,
    sections: SectionAssembler,
}

/// The program the PAT names, and the streams its PMT lists.
#[derive(Debug)]
struct Program {
    number: u16,
    pmt_pid: u16,
    pmt: PsiPid,
    /// The last PMT section applied, so a repeated one costs a comparison.
    last_pmt: Vec<u8>,
    video: Option<Es<VideoTrack>>,
    audio: Option<Es<AudioTrack>>,
    /// (PID, stream_type) of the streams reported as not demuxed.
    listed: Vec<(u16, u8)>,
    /// `TooManyStreams` was reported.
    too_many_listed: bool,
}

/// One demuxed elementary stream.
#[derive(Debug)]
struct Es<T> {
    pid: u16,
    cc: ContinuityCheck,
    pes: PesAssembler,
    track: T,
}

/// What a track's demuxer gets with a PES: where it came from and where results go.
pub struct TrackContext<'a> {
    pub pid: u16,
    /// Stream offset of the packet the PES started in.
    pub offset: u64,
    pub timeline: &'a mut TimestampUnwrapper,
    pub info: &'a mut MediaInfo,
    pub out: &'a mut Vec<DemuxEvent>,
}

impl TrackContext<'_> {
    fn error(&mut self, error: DemuxError) {
        self.out.push(DemuxEvent::Error(error));
    }
}

/// A track: PES payloads in, frames and configurations out.
pub trait TrackDemuxer {
    fn on_pes(&mut self, pes: &Pes<'_>, at: &mut TrackContext<'_>);
    /// Packets were lost: drop anything carried between PES packets.
    fn reset(&mut self);
}

impl ProgramDemux {
    fn packet(&mut self, bytes: &[u8], offset: u64, out: &mut Vec<DemuxEvent>) {
        self.packets += 1;
        match packet::parse_packet(bytes) {
            Ok(p) => self.route(&p, offset, out),
            Err((pid, problem)) if self.is_tracked(pid) => {
                out.push(DemuxEvent::Error(packet_error(pid, offset, problem)));
            }
            Err(_) => {}
        }
        self.check_tables(offset, out);
    }

    fn is_tracked(&self, pid: u16) -> bool {
        pid == PAT_PID || self.program.as_ref().is_some_and(|p| p.tracks(pid))
    }

    fn route(&mut self, p: &TsPacket<'_>, offset: u64, out: &mut Vec<DemuxEvent>) {
        if p.pid == PAT_PID {
            return self.on_pat(p, offset, out);
        }
        if p.pid == NULL_PID {
            return;
        }
        let Some(program) = &mut self.program else {
            return;
        };
        let mut at = TrackContext {
            pid: p.pid,
            offset,
            timeline: &mut self.timeline,
            info: &mut self.info,
            out: &mut self.produced,
        };
        if p.pid == program.pmt_pid {
            program.on_pmt(p, &mut at);
        } else if let Some(es) = program.video.as_mut().filter(|es| es.pid == p.pid) {
            es.packet(p, &mut at);
        } else if let Some(es) = program.audio.as_mut().filter(|es| es.pid == p.pid) {
            es.packet(p, &mut at);
        }
        let expected = program.expected();
        self.gate
            .pass(self.produced.drain(..), expected, &self.info, out);
    }

    fn on_pat(&mut self, p: &TsPacket<'_>, offset: u64, out: &mut Vec<DemuxEvent>) {
        if !self.pat.accept(p, offset, out) {
            return;
        }
        let program = &mut self.program;
        self.pat
            .sections
            .push(
                p.unit_start,
                p.payload,
                &mut |section| match section.and_then(psi::parse_pat) {
                    Ok(Some((number, pmt_pid))) => {
                        if !program
                            .as_ref()
                            .is_some_and(|p| p.number == number && p.pmt_pid == pmt_pid)
                        {
                            *program = Some(Program::new(number, pmt_pid));
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => out.push(DemuxEvent::Error(DemuxError::BadSection {
                        pid: PAT_PID,
                        offset,
                        reason,
                    })),
                },
            );
    }

    /// Reports a stream without a PAT or PMT, once, after [`MISSING_TABLES_PACKETS`].
    fn check_tables(&mut self, offset: u64, out: &mut Vec<DemuxEvent>) {
        let has_pmt = self
            .program
            .as_ref()
            .is_some_and(|p| !p.last_pmt.is_empty());
        if has_pmt {
            self.missing_tables_reported = false;
        } else if self.packets >= MISSING_TABLES_PACKETS && !self.missing_tables_reported {
            self.report_missing_tables(offset, out);
        }
    }

    fn report_missing_tables(&mut self, offset: u64, out: &mut Vec<DemuxEvent>) {
        self.missing_tables_reported = true;
        out.push(DemuxEvent::Error(DemuxError::MissingTables {
            offset,
            pat_seen: self.program.is_some(),
            packets: self.packets,
        }));
    }

    /// Sync was lost: nothing assembled so far can be trusted, and the counters restart.
    fn lost_sync(&mut self) {
        self.pat.reset();
        if let Some(program) = &mut self.program {
            program.reset();
        }
    }

    /// The end of the stream, `end` bytes in.
    fn finish(&mut self, end: u64, out: &mut Vec<DemuxEvent>) {
        let has_pmt = self
            .program
            .as_ref()
            .is_some_and(|p| !p.last_pmt.is_empty());
        if !has_pmt && self.packets > 0 && !self.missing_tables_reported {
            self.report_missing_tables(end, out);
        }
        if let Some(program) = &mut self.program {
            let mut at = TrackContext {
                pid: 0,
                offset: 0,
                timeline: &mut self.timeline,
                info: &mut self.info,
                out: &mut self.produced,
            };
            if let Some(es) = &mut program.video {
                es.finish(&mut at);
            }
            if let Some(es) = &mut program.audio {
                es.finish(&mut at);
            }
            let expected = program.expected();
            self.gate
                .pass(self.produced.drain(..), expected, &self.info, out);
        }
        self.gate.release(&self.info, out);
    }
}

fn packet_error(pid: u16, offset: u64, problem: PacketProblem) -> DemuxError {
    match problem {
        PacketProblem::TransportError => DemuxError::TransportError { pid, offset },
        PacketProblem::Scrambled => DemuxError::Scrambled { pid, offset },
        PacketProblem::Malformed(reason) => DemuxError::BadPacket {
            pid,
            offset,
            reason,
        },
    }
}

/// The continuity check every PID shares: false when the packet is a duplicate to drop;
/// a gap is reported (and `on_gap` drops what was being assembled) and the packet is kept.
fn check_continuity(
    cc: &mut ContinuityCheck,
    p: &TsPacket<'_>,
    offset: u64,
    out: &mut Vec<DemuxEvent>,
    on_gap: impl FnOnce(),
) -> bool {
    match cc.check(p) {
        Continuity::InOrder => true,
        Continuity::Duplicate => false,
        Continuity::Gap { expected } => {
            out.push(DemuxEvent::Error(DemuxError::Continuity {
                pid: p.pid,
                offset,
                expected,
                found: p.continuity_counter,
            }));
            on_gap();
            true
        }
    }
}

impl PsiPid {
    /// Checks the packet's continuity; false when it is to be dropped.
    fn accept(&mut self, p: &TsPacket<'_>, offset: u64, out: &mut Vec<DemuxEvent>) -> bool {
        let sections = &mut self.sections;
        check_continuity(&mut self.cc, p, offset, out, || sections.reset())
    }

    fn reset(&mut self) {
        self.cc.reset();
        self.sections.reset();
    }
}

impl Program {
    fn new(number: u16, pmt_pid: u16) -> Self {
        Program {
            number,
            pmt_pid,
            pmt: PsiPid::default(),
            last_pmt: Vec::new(),
            video: None,
            audio: None,
            listed: Vec::new(),
            too_many_listed: false,
        }
    }

    fn expected(&self) -> Expected {
        Expected {
            video: self.video.is_some(),
            audio: self.audio.is_some(),
        }
    }

    fn tracks(&self, pid: u16) -> bool {
        pid == self.pmt_pid
            || self.video.as_ref().is_some_and(|es| es.pid == pid)
            || self.audio.as_ref().is_some_and(|es| es.pid == pid)
    }

    fn reset(&mut self) {
        self.pmt.reset();
        if let Some(es) = &mut self.video {
            es.reset();
        }
        if let Some(es) = &mut self.audio {
            es.reset();
        }
    }

    fn on_pmt(&mut self, p: &TsPacket<'_>, at: &mut TrackContext<'_>) {
        if !self.pmt.accept(p, at.offset, at.out) {
            return;
        }
        let mut changed = None;
        let (number, last) = (self.number, &self.last_pmt);
        self.pmt
            .sections
            .push(p.unit_start, p.payload, &mut |section| match section
                .and_then(|s| new_pmt(s, number, last))
            {
                Ok(Some(found)) => changed = Some(found),
                Ok(None) => {}
                Err(reason) => at.error(DemuxError::BadSection {
                    pid: p.pid,
                    offset: at.offset,
                    reason,
                }),
            });
        if let Some(update) = changed {
            self.last_pmt = update.section;
            self.apply_pmt(&update.streams, at);
        }
    }

    /// Takes the first H.264 and the first AAC stream of the PMT; reports the others once.
    /// A track the PMT no longer lists leaves the stream's `MediaInfo`.
    fn apply_pmt(&mut self, streams: &[EsEntry], at: &mut TrackContext<'_>) {
        let (mut video, mut audio) = (None, None);
        for es in streams {
            match es.kind {
                StreamKind::H264 if video.is_none() => video = Some(es.pid),
                StreamKind::AacAdts if audio.is_none() => audio = Some(es.pid),
                StreamKind::H264 | StreamKind::AacAdts => {
                    self.list(es, "a second stream of its kind", at)
                }
                StreamKind::Unsupported(name) | StreamKind::Ignored(name) => {
                    self.list(es, name, at)
                }
            }
        }
        if self.video.as_ref().map(|es| es.pid) != video {
            let pes = || PesAssembler::joining_untimed(MAX_PES_LEN);
            self.video = video.map(|pid| Es::new(pid, pes(), VideoTrack::default()));
        }
        if self.audio.as_ref().map(|es| es.pid) != audio {
            let pes = || PesAssembler::new(MAX_PES_LEN);
            self.audio = audio.map(|pid| Es::new(pid, pes(), AudioTrack::default()));
        }
        let before = at.info.clone();
        if video.is_none() {
            at.info.video = None;
        }
        if audio.is_none() {
            at.info.audio = None;
        }
        if *at.info != before {
            at.out.push(DemuxEvent::Media(at.info.clone()));
        }
    }

    /// Reports a stream that is not demuxed, the first time the PMT lists it.
    fn list(&mut self, es: &EsEntry, name: &'static str, at: &mut TrackContext<'_>) {
        let key = (es.pid, es.stream_type);
        if self.listed.contains(&key) {
            return;
        }
        if self.listed.len() >= MAX_LISTED_STREAMS {
            if !std::mem::replace(&mut self.too_many_listed, true) {
                at.error(DemuxError::TooManyStreams {
                    pid: self.pmt_pid,
                    limit: MAX_LISTED_STREAMS,
                });
            }
            return;
        }
        self.listed.push(key);
        let (pid, stream_type) = key;
        at.error(match es.kind {
            StreamKind::Unsupported(name) => DemuxError::UnsupportedCodec {
                pid,
                stream_type,
                name,
            },
            _ => DemuxError::IgnoredStream {
                pid,
                stream_type,
                name,
            },
        });
    }
}

impl<T: TrackDemuxer> Es<T> {
    fn new(pid: u16, pes: PesAssembler, track: T) -> Self {
        Es {
            pid,
            cc: ContinuityCheck::default(),
            pes,
            track,
        }
    }

    fn packet(&mut self, p: &TsPacket<'_>, at: &mut TrackContext<'_>) {
        let (pes, track) = (&mut self.pes, &mut self.track);
        let in_order = check_continuity(&mut self.cc, p, at.offset, at.out, || {
            pes.reset();
            track.reset();
        });
        if !in_order {
            return;
        }
        let track = &mut self.track;
        self.pes
            .push(at.offset, p.unit_start, p.payload, &mut |result, offset| {
                complete_pes(track, result, offset, at);
            });
    }

    fn finish(&mut self, at: &mut TrackContext<'_>) {
        at.pid = self.pid;
        let track = &mut self.track;
        self.pes
            .finish(&mut |result, offset| complete_pes(track, result, offset, at));
    }

    fn reset(&mut self) {
        self.cc.reset();
        self.pes.reset();
        self.track.reset();
    }
}

/// A PMT section that differs from the last one applied, and the streams it lists.
struct PmtUpdate {
    section: Vec<u8>,
    streams: Vec<EsEntry>,
}

/// The update a PMT section of `program` brings: `Ok(None)` for a repeat of the `last` one
/// (the usual case, one comparison) or another program's.
fn new_pmt(section: &[u8], program: u16, last: &[u8]) -> Result<Option<PmtUpdate>, &'static str> {
    if section == last {
        return Ok(None);
    }
    let streams = psi::parse_pmt(section, program)?;
    Ok(streams.map(|streams| PmtUpdate {
        section: section.to_vec(),
        streams,
    }))
}

/// Hands a reassembled PES to its track, or reports why it could not be.
fn complete_pes<T: TrackDemuxer>(
    track: &mut T,
    result: Result<&[u8], PesProblem>,
    offset: u64,
    at: &mut TrackContext<'_>,
) {
    let pid = at.pid;
    let error = match result.map(pes::parse_pes) {
        Ok(Ok(pes)) => {
            let packet_offset = std::mem::replace(&mut at.offset, offset);
            track.on_pes(&pes, at);
            at.offset = packet_offset;
            return;
        }
        Ok(Err(reason)) => DemuxError::BadPes {
            pid,
            offset,
            reason,
        },
        Err(PesProblem::TooLarge) => DemuxError::PesTooLarge {
            pid,
            offset,
            limit: MAX_PES_LEN,
        },
        Err(PesProblem::Truncated) => DemuxError::BadPes {
            pid,
            offset,
            reason: "shorter than its PES_packet_length",
        },
    };
    at.error(error);
}

#[cfg(test)]
mod tests;
