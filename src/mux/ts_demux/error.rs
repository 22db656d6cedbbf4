//! What the demuxer reports about a damaged or unusable stream. Every error names the PID
//! and the byte offset (from the first byte ever pushed) of the transport packet it was
//! found in, so a log line points into a capture of the stream.

use crate::media::frame::TrackKind;
use crate::media::h264::H264Error;
use std::fmt;

/// One problem in the transport stream. None of them stops the demuxer: it drops what is
/// damaged and carries on; [`DemuxError::is_fatal`] says which ones mean the stream as a
/// whole cannot be carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DemuxError {
    /// No sync byte (0x47) where a packet should start; bytes are skipped until two sync
    /// bytes 188 bytes apart are found again (§2.4.3.3).
    LostSync { offset: u64 },
    /// Bytes skipped while looking for sync, reported when sync is found again.
    Resynced { offset: u64, skipped: u64 },
    /// A packet with `transport_error_indicator` set, dropped.
    TransportError { pid: u16, offset: u64 },
    /// A packet with `transport_scrambling_control` set: encrypted, dropped.
    Scrambled { pid: u16, offset: u64 },
    /// A packet whose header or adaptation field does not parse, dropped.
    BadPacket {
        pid: u16,
        offset: u64,
        reason: &'static str,
    },
    /// Packets are missing (or out of order) on a PID: the continuity_counter jumped
    /// (§2.4.3.3). The PES or section being assembled on it is dropped.
    Continuity {
        pid: u16,
        offset: u64,
        expected: u8,
        found: u8,
    },
    /// A PAT or PMT section that does not parse (length, CRC, syntax), dropped.
    BadSection {
        pid: u16,
        offset: u64,
        reason: &'static str,
    },
    /// No PAT, or a PAT but no PMT, after this many packets: nothing can be demuxed.
    MissingTables {
        offset: u64,
        pat_seen: bool,
        packets: u64,
    },
    /// An elementary stream of a codec tessera does not carry (Table 2-34 and the
    /// registration descriptors of common private streams).
    UnsupportedCodec {
        pid: u16,
        stream_type: u8,
        name: &'static str,
    },
    /// An elementary stream that is not audio or video (metadata, SCTE-35, subtitles), or a
    /// second stream of a kind already carried: skipped.
    IgnoredStream {
        pid: u16,
        stream_type: u8,
        name: &'static str,
    },
    /// The PMT lists more streams than the demuxer remembers ([`super::MAX_LISTED_STREAMS`]);
    /// the rest are skipped without a report.
    TooManyStreams { pid: u16, limit: usize },
    /// A PES that grew beyond [`super::MAX_PES_LEN`], dropped.
    PesTooLarge { pid: u16, offset: u64, limit: usize },
    /// A PES whose header does not parse, dropped.
    BadPes {
        pid: u16,
        offset: u64,
        reason: &'static str,
    },
    /// A PES without a PTS and nothing to derive one from, dropped.
    NoTimestamp { pid: u16, offset: u64 },
    /// The H.264 parameter sets do not parse; the stream's configuration is unchanged.
    H264 {
        pid: u16,
        offset: u64,
        error: H264Error,
    },
    /// An ADTS frame that cannot be read (ISO 14496-3 §1.A.2.2); the rest of its PES is
    /// dropped.
    BadAdts {
        pid: u16,
        offset: u64,
        reason: &'static str,
    },
    /// Frames of a track arrived before its decoder configuration (no SPS/PPS yet) and were
    /// dropped; reported once per track until the configuration comes.
    NoConfig { pid: u16, track: TrackKind },
}

impl DemuxError {
    /// True when the stream as a whole cannot be carried (a codec tessera does not have);
    /// everything else loses a packet, a PES or a table, and the stream goes on.
    pub fn is_fatal(&self) -> bool {
        matches!(self, DemuxError::UnsupportedCodec { .. })
    }
}

impl fmt::Display for DemuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemuxError::LostSync { offset } => {
                write!(f, "ts: lost sync (no 0x47) at byte {offset}")
            }
            DemuxError::Resynced { offset, skipped } => {
                write!(
                    f,
                    "ts: sync found again at byte {offset}, {skipped} bytes skipped"
                )
            }
            DemuxError::TransportError { pid, offset } => {
                write!(
                    f,
                    "ts: transport error indicator on PID {pid:#x} at byte {offset}"
                )
            }
            DemuxError::Scrambled { pid, offset } => {
                write!(f, "ts: scrambled packet on PID {pid:#x} at byte {offset}")
            }
            DemuxError::BadPacket {
                pid,
                offset,
                reason,
            } => write!(
                f,
                "ts: bad packet on PID {pid:#x} at byte {offset}: {reason}"
            ),
            DemuxError::Continuity {
                pid,
                offset,
                expected,
                found,
            } => write!(
                f,
                "ts: continuity counter {found} instead of {expected} on PID {pid:#x} at byte \
                 {offset} (packets lost)"
            ),
            DemuxError::BadSection {
                pid,
                offset,
                reason,
            } => write!(
                f,
                "ts: bad section on PID {pid:#x} at byte {offset}: {reason}"
            ),
            DemuxError::MissingTables {
                offset,
                pat_seen,
                packets,
            } => {
                let missing = if *pat_seen { "PMT" } else { "PAT" };
                write!(
                    f,
                    "ts: no {missing} in {packets} packets (at byte {offset})"
                )
            }
            DemuxError::UnsupportedCodec {
                pid,
                stream_type,
                name,
            } => write!(
                f,
                "ts: unsupported codec stream_type {stream_type:#04x} ({name}) on PID {pid:#x}"
            ),
            DemuxError::IgnoredStream {
                pid,
                stream_type,
                name,
            } => write!(
                f,
                "ts: ignoring stream_type {stream_type:#04x} ({name}) on PID {pid:#x}"
            ),
            DemuxError::TooManyStreams { pid, limit } => write!(
                f,
                "ts: PMT on PID {pid:#x} lists more than {limit} streams; the rest are ignored"
            ),
            DemuxError::PesTooLarge { pid, offset, limit } => write!(
                f,
                "ts: PES on PID {pid:#x} larger than {limit} bytes, dropped at byte {offset}"
            ),
            DemuxError::BadPes {
                pid,
                offset,
                reason,
            } => write!(f, "ts: bad PES on PID {pid:#x} at byte {offset}: {reason}"),
            DemuxError::NoTimestamp { pid, offset } => write!(
                f,
                "ts: PES without PTS on PID {pid:#x} at byte {offset}, dropped"
            ),
            DemuxError::H264 { pid, offset, error } => {
                write!(f, "ts: H.264 on PID {pid:#x} at byte {offset}: {error}")
            }
            DemuxError::BadAdts {
                pid,
                offset,
                reason,
            } => write!(
                f,
                "ts: bad ADTS frame on PID {pid:#x} at byte {offset}: {reason}"
            ),
            DemuxError::NoConfig { pid, track } => write!(
                f,
                "ts: {track:?} frames on PID {pid:#x} before its decoder configuration, dropped"
            ),
        }
    }
}

impl std::error::Error for DemuxError {}
