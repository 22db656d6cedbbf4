//! RTMP chunk stream framing (Adobe RTMP spec 1.0 §5.3): [`ChunkDecoder`] reassembles
//! messages from chunks, [`ChunkEncoder`] splits messages into chunks.
//!
//! Owns: basic headers with 1-, 2- and 3-byte chunk stream ids (§5.3.1.1), the four message
//! header types (§5.3.1.2.1 .. §5.3.1.2.4), extended timestamps (§5.3.1.3), per-chunk-stream
//! state, the incoming chunk size and limits on message size and on the number of chunk
//! streams. Decoding is check-then-parse (mini-redis style): a chunk is taken only when its
//! whole header and payload are buffered, so a short read changes no state.
//!
//! Conventions where the spec is silent, shared by ffmpeg and nginx-rtmp:
//! * A type 3 chunk carries the 4-byte extended timestamp when the previous header on its
//!   chunk stream did (ffmpeg writes and reads it so; our encoder does the same).
//! * A type 3 chunk that starts a new message adds the previous header's timestamp field
//!   (the delta, or the absolute value after a type 0 header) to the previous timestamp.
//! * A type 0/1/2 header on a chunk stream with an unfinished message abandons it.
//!
//! Never does: interpret messages (protocol control messages such as Set Chunk Size are the
//! session's job, which calls [`ChunkDecoder::set_chunk_size`]), I/O, or panic on input.

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::fmt;

/// Chunk size of both directions until a Set Chunk Size message (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size (§5.4.1: 31 bits).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Message lengths are 24 bits (§5.3.1.2.1).
pub const MAX_WIRE_MESSAGE_LEN: usize = 0xFF_FFFF;
/// Timestamp field value announcing an extended timestamp (§5.3.1.3).
const EXTENDED: u32 = 0xFF_FFFF;

/// One complete message (§5.3.1.2, §6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wraps at 2^32).
    pub timestamp: u32,
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    pub payload: Bytes,
}

/// Limits of one decoder; named so the shell's configuration can set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Larger declared messages end the connection (a 4K keyframe is well under 8 MiB).
    pub max_message_size: usize,
    /// Distinct chunk stream ids a peer may use (real clients use fewer than 10).
    pub max_chunk_streams: usize,
}

impl ChunkLimits {
    /// The default `max_message_size`.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 8 << 20;
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            max_chunk_streams: 64,
        }
    }
}

/// What was wrong with a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkErrorKind {
    /// A message header declared more bytes than [`ChunkLimits::max_message_size`].
    MessageTooLarge { length: usize, max: usize },
    /// A type 1, 2 or 3 header on a chunk stream that never had a type 0 header.
    NoPreviousHeader { fmt: u8 },
    /// More distinct chunk streams than [`ChunkLimits::max_chunk_streams`].
    TooManyChunkStreams { max: usize },
    /// Set Chunk Size with 0 or a value above 2^31-1 (§5.4.1).
    InvalidChunkSize(u32),
    /// The encoder was given a payload longer than the 24-bit length field.
    PayloadTooLong(usize),
}

impl fmt::Display for ChunkErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkErrorKind::MessageTooLarge { length, max } => {
                write!(f, "message of {length} bytes exceeds the {max}-byte limit")
            }
            ChunkErrorKind::NoPreviousHeader { fmt: t } => {
                write!(f, "type {t} chunk header without a previous type 0 header")
            }
            ChunkErrorKind::TooManyChunkStreams { max } => {
                write!(f, "more than {max} chunk streams")
            }
            ChunkErrorKind::InvalidChunkSize(n) => write!(f, "invalid chunk size {n}"),
            ChunkErrorKind::PayloadTooLong(n) => {
                write!(f, "payload of {n} bytes does not fit a 24-bit length")
            }
        }
    }
}

/// A chunk error with its context: the chunk stream and the connection byte offset at which
/// the offending chunk starts (counted from the first byte given to the decoder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkError {
    pub kind: ChunkErrorKind,
    pub csid: u32,
    pub offset: u64,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rtmp chunk stream {} at byte {}: {}",
            self.csid, self.offset, self.kind
        )
    }
}

impl std::error::Error for ChunkError {}

/// Per chunk stream state (§5.3.1.2: later headers inherit fields from earlier ones).
#[derive(Debug, Default)]
struct StreamState {
    timestamp: u32,
    /// The last timestamp field: absolute after type 0, delta after types 1 and 2.
    ts_field: u32,
    /// The last type 0/1/2 header used an extended timestamp.
    extended: bool,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// Payload of the message in progress.
    partial: BytesMut,
    in_progress: bool,
}

/// Reassembles messages from a peer's chunks.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: usize,
    limits: ChunkLimits,
    streams: HashMap<u32, StreamState>,
    /// Bytes consumed so far (error offsets).
    consumed: u64,
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkDecoder {
            chunk_size: DEFAULT_CHUNK_SIZE as usize,
            limits,
            streams: HashMap::new(),
            consumed: 0,
        }
    }

    /// Applies the peer's Set Chunk Size (§5.4.1) to the chunks that follow.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkErrorKind> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkErrorKind::InvalidChunkSize(size));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Abort Message (§5.4.2): drops the partial message of `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(st) = self.streams.get_mut(&csid) {
            st.partial.clear();
            st.in_progress = false;
        }
    }

    /// Applies a protocol control message that concerns the decoder: Set Chunk Size (1,
    /// §5.4.1; the first bit masked, as some peers set it) and Abort (2, §5.4.2). Returns
    /// whether `type_id` was one of them.
    pub fn apply_control(&mut self, type_id: u8, payload: &[u8]) -> Result<bool, ChunkErrorKind> {
        let be32 = payload
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        match (type_id, be32) {
            (1, Some(size)) => self.set_chunk_size(size & 0x7FFF_FFFF).map(|()| true),
            (1, None) => Err(ChunkErrorKind::InvalidChunkSize(0)),
            (2, csid) => {
                if let Some(csid) = csid {
                    self.abort(csid);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The Acknowledgement (§5.4.3) sequence number to send now, if a peer `window` of
    /// bytes has been decoded since `last_ack` (which it then moves).
    pub fn acknowledgement_due(&self, window: Option<u32>, last_ack: &mut u64) -> Option<u32> {
        let window = u64::from(window?);
        (self.consumed - *last_ack >= window).then(|| {
            *last_ack = self.consumed;
            // The sequence number wraps at 2^32.
            self.consumed as u32
        })
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Decodes at most one chunk from the start of `buf`. Returns the bytes consumed (0 when
    /// the chunk is not whole yet; nothing changed) and the message it completed, if any.
    pub fn decode(&mut self, buf: &[u8]) -> Result<(usize, Option<Message>), ChunkError> {
        let Some(&b0) = buf.first() else {
            return Ok((0, None));
        };
        let Some((csid, mut pos)) = chunk_stream_id(b0, buf) else {
            return Ok((0, None));
        };
        let fmt = b0 >> 6;
        let err = |kind| ChunkError {
            kind,
            csid,
            offset: self.consumed,
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(header) = buf.get(pos..pos + header_len) else {
            return Ok((0, None));
        };
        pos += header_len;
        let prev = self.streams.get(&csid);
        if fmt != 0 && prev.is_none() {
            return Err(err(ChunkErrorKind::NoPreviousHeader { fmt }));
        }
        if prev.is_none() && self.streams.len() >= self.limits.max_chunk_streams {
            return Err(err(ChunkErrorKind::TooManyChunkStreams {
                max: self.limits.max_chunk_streams,
            }));
        }
        let ts_field = (fmt < 3).then(|| be24(header));
        let extended = match ts_field {
            Some(v) => v == EXTENDED,
            None => prev.is_some_and(|p| p.extended),
        };
        let ext_value = if extended {
            let Some(b) = buf.get(pos..pos + 4) else {
                return Ok((0, None));
            };
            pos += 4;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            None
        };
        let field = ext_value.or(ts_field);
        let continuation = fmt == 3 && prev.is_some_and(|p| p.in_progress);
        let length = if fmt <= 1 {
            be24(&header[3..]) as usize
        } else {
            prev.map_or(0, |p| p.length)
        };
        if length > self.limits.max_message_size {
            return Err(err(ChunkErrorKind::MessageTooLarge {
                length,
                max: self.limits.max_message_size,
            }));
        }
        let have = if continuation {
            prev.map_or(0, |p| p.partial.len())
        } else {
            0
        };
        let take = (length - have.min(length)).min(self.chunk_size);
        let Some(data) = buf.get(pos..pos + take) else {
            return Ok((0, None));
        };
        pos += take;

        // The whole chunk is buffered: commit.
        let st = self.streams.entry(csid).or_default();
        if !continuation {
            st.start_message(fmt, header, field, extended, length);
        }
        st.partial.extend_from_slice(data);
        self.consumed += pos as u64;
        Ok((pos, st.finished_message(csid)))
    }
}

/// The chunk stream id of a basic header starting with `b0` (§5.3.1.1: 1, 2 or 3 bytes)
/// and the basic header's length; `None` while `buf` is shorter than that.
fn chunk_stream_id(b0: u8, buf: &[u8]) -> Option<(u32, usize)> {
    match b0 & 0x3F {
        0 => buf.get(1).map(|&b1| (64 + u32::from(b1), 2)),
        1 => buf
            .get(1..3)
            .map(|b| (64 + u32::from(b[0]) + 256 * u32::from(b[1]), 3)),
        id => Some((u32::from(id), 1)),
    }
}

impl StreamState {
    /// Takes the fields of a chunk that starts a message: what its header type `fmt`
    /// carries, the rest inherited from the previous header (§5.3.1.2). `field` is the
    /// (extended) timestamp field, `None` for a type 3 header.
    fn start_message(
        &mut self,
        fmt: u8,
        header: &[u8],
        field: Option<u32>,
        extended: bool,
        length: usize,
    ) {
        let field = field.unwrap_or(self.ts_field);
        match fmt {
            0 => {
                self.timestamp = field;
                self.type_id = header[6];
                self.stream_id = u32::from_le_bytes([header[7], header[8], header[9], header[10]]);
            }
            1 => {
                self.timestamp = self.timestamp.wrapping_add(field);
                self.type_id = header[6];
            }
            _ => self.timestamp = self.timestamp.wrapping_add(field),
        }
        self.ts_field = field;
        if fmt < 3 {
            self.extended = extended;
        }
        self.length = length;
        self.partial.clear();
        self.in_progress = true;
    }

    /// The message on chunk stream `csid`, once its payload is complete.
    fn finished_message(&mut self, csid: u32) -> Option<Message> {
        if self.partial.len() < self.length {
            return None;
        }
        self.in_progress = false;
        Some(Message {
            csid,
            timestamp: self.timestamp,
            type_id: self.type_id,
            stream_id: self.stream_id,
            payload: self.partial.split().freeze(),
        })
    }
}

fn be24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

/// The header fields of an outgoing message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    /// Chunk stream id, 2 ..= 65599 (2 is reserved for protocol control messages).
    pub csid: u32,
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
}

/// An encoded message as a list of byte slices to write in order: chunk headers (slices of
/// one small buffer) alternating with slices of the payload, which is never copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunks {
    parts: Vec<Bytes>,
}

impl Chunks {
    /// The parts to write, in order (`write_vectored` friendly).
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    pub fn into_parts(self) -> Vec<Bytes> {
        self.parts
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parts concatenated (tests and shells that prefer one buffer).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for p in &self.parts {
            out.extend_from_slice(p);
        }
        out
    }
}

/// Splits outgoing messages at the outgoing chunk size: one type 0 header, then type 3
/// continuation headers (§5.3.1.2.1, §5.3.1.2.4), each repeating the extended timestamp when
/// the message has one (§5.3.1.3). Every message gets a type 0 header: a few bytes more than
/// delta headers, but no per-chunk-stream state to get wrong.
#[derive(Clone, Debug)]
pub struct ChunkEncoder {
    chunk_size: usize,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE as usize,
        }
    }

    /// Use after writing our own Set Chunk Size message (§5.4.1).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkErrorKind> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkErrorKind::InvalidChunkSize(size));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    fn chunk_count(&self, len: usize) -> usize {
        len.div_ceil(self.chunk_size).max(1)
    }

    /// Appends the chunks of one message to `out` (control and command messages).
    pub fn write(
        &self,
        header: &MessageHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ChunkErrorKind> {
        if payload.len() > MAX_WIRE_MESSAGE_LEN {
            return Err(ChunkErrorKind::PayloadTooLong(payload.len()));
        }
        out.reserve(payload.len() + 16 * self.chunk_count(payload.len()));
        write_type0(header, payload.len(), out);
        let mut chunks = payload.chunks(self.chunk_size);
        if let Some(first) = chunks.next() {
            out.extend_from_slice(first);
        }
        for chunk in chunks {
            write_type3(header, out);
            out.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// Appends a message stamped 0 (protocol control, user control and command messages,
    /// far below the length limit, so the length check cannot fail for them).
    pub fn write_unstamped(
        &self,
        (csid, type_id, stream_id): (u32, u8, u32),
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
        };
        let _ = self.write(&header, payload, out);
    }

    /// Appends the chunk of `payload` that starts at `offset` (type 0 header for the first,
    /// type 3 after it) and returns where the next chunk starts (`payload.len()` after the
    /// last). The per-viewer media path: no allocation, and the caller may flush between
    /// chunks so its buffer never grows past one chunk over its flush mark. The caller
    /// checks the length against `MAX_WIRE_MESSAGE_LEN` (as `media_header` does).
    pub fn write_chunk(
        &self,
        header: &MessageHeader,
        payload: &[u8],
        offset: usize,
        out: &mut Vec<u8>,
    ) -> usize {
        let range = self.write_chunk_header(header, payload.len(), offset, out);
        out.extend_from_slice(&payload[range.clone()]);
        range.end
    }

    /// Appends the header of the chunk that starts at `offset` of a `len`-byte payload and
    /// returns the payload bytes that chunk carries, for a caller that sends them from
    /// where they are (a shared `Bytes`) rather than copied behind the header.
    pub fn write_chunk_header(
        &self,
        header: &MessageHeader,
        len: usize,
        offset: usize,
        out: &mut Vec<u8>,
    ) -> std::ops::Range<usize> {
        if offset == 0 {
            write_type0(header, len, out);
        } else {
            write_type3(header, out);
        }
        let start = offset.min(len);
        start..(start + self.chunk_size).min(len)
    }

    /// The chunks of one message as header slices and payload slices (media messages: the
    /// payload `Bytes` is shared, never copied).
    pub fn chunks(
        &self,
        header: &MessageHeader,
        payload: &Bytes,
    ) -> Result<Chunks, ChunkErrorKind> {
        if payload.len() > MAX_WIRE_MESSAGE_LEN {
            return Err(ChunkErrorKind::PayloadTooLong(payload.len()));
        }
        let count = self.chunk_count(payload.len());
        let mut headers = Vec::with_capacity(18 + 8 * (count - 1));
        write_type0(header, payload.len(), &mut headers);
        let first_len = headers.len();
        if count > 1 {
            write_type3(header, &mut headers);
        }
        let cont_len = headers.len() - first_len;
        for _ in 2..count {
            headers.extend_from_within(first_len..first_len + cont_len);
        }
        let headers = Bytes::from(headers);
        let mut parts = Vec::with_capacity(2 * count);
        parts.push(headers.slice(..first_len));
        for (i, start) in (0..payload.len()).step_by(self.chunk_size).enumerate() {
            if i > 0 {
                let h = first_len + (i - 1) * cont_len;
                parts.push(headers.slice(h..h + cont_len));
            }
            let end = (start + self.chunk_size).min(payload.len());
            parts.push(payload.slice(start..end));
        }
        Ok(Chunks { parts })
    }
}

fn write_basic_header(fmt: u8, csid: u32, out: &mut Vec<u8>) {
    match csid {
        2..=63 => out.push((fmt << 6) | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt << 6, (csid - 64) as u8]),
        _ => {
            // 320 ..= 65599; anything else is a caller bug, clamped rather than panicking.
            let v = csid.clamp(320, 65599) - 64;
            out.extend_from_slice(&[(fmt << 6) | 1, v as u8, (v >> 8) as u8]);
        }
    }
}

fn write_type0(header: &MessageHeader, len: usize, out: &mut Vec<u8>) {
    write_basic_header(0, header.csid, out);
    let ts = header.timestamp.min(EXTENDED);
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(header.type_id);
    out.extend_from_slice(&header.stream_id.to_le_bytes());
    if header.timestamp >= EXTENDED {
        out.extend_from_slice(&header.timestamp.to_be_bytes());
    }
}

fn write_type3(header: &MessageHeader, out: &mut Vec<u8>) {
    write_basic_header(3, header.csid, out);
    if header.timestamp >= EXTENDED {
        out.extend_from_slice(&header.timestamp.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(dec: &mut ChunkDecoder, mut buf: &[u8]) -> Result<Vec<Message>, ChunkError> {
        let mut out = Vec::new();
        loop {
            let (used, msg) = dec.decode(buf)?;
            out.extend(msg);
            if used == 0 {
                return Ok(out);
            }
            buf = &buf[used..];
        }
    }

    fn msg(csid: u32, timestamp: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> Message {
        Message {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn spec_example_1_audio_deltas() {
        // §5.3.2.1: four audio messages of 32 bytes on one chunk stream, type 0, 2, 3, 3.
        let mut wire = vec![0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x20, 0x08, 1, 0, 0, 0];
        wire.extend([1u8; 32]);
        wire.extend([0x83, 0x00, 0x00, 0x14]);
        wire.extend([2u8; 32]);
        wire.push(0xC3);
        wire.extend([3u8; 32]);
        wire.push(0xC3);
        wire.extend([4u8; 32]);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let got = decode_all(&mut dec, &wire).unwrap();
        let ts: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, [1000, 1020, 1040, 1060]);
        assert!(got.iter().all(|m| m.type_id == 8 && m.stream_id == 1));
        assert_eq!(got[3].payload, Bytes::from(vec![4u8; 32]));
    }

    #[test]
    fn spec_example_2_split_message() {
        // §5.3.2.2: a 307-byte video message in chunks of 128: type 0 then two type 3.
        let payload: Vec<u8> = (0..307u32).map(|i| i as u8).collect();
        let mut wire = vec![0x04, 0x00, 0x03, 0xE8, 0x00, 0x01, 0x33, 0x09, 1, 0, 0, 0];
        wire.extend(&payload[..128]);
        wire.push(0xC4);
        wire.extend(&payload[128..256]);
        wire.push(0xC4);
        wire.extend(&payload[256..]);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        // Fed a byte at a time, as a slow socket would.
        let mut kept = Vec::new();
        let mut got = Vec::new();
        for &b in &wire {
            kept.push(b);
            let (used, m) = dec.decode(&kept).unwrap();
            kept.drain(..used);
            got.extend(m);
        }
        assert!(kept.is_empty());
        assert_eq!(got, vec![msg(4, 1000, 9, 1, &payload)]);
        // The encoder writes exactly this trace.
        let enc = ChunkEncoder::new();
        let header = MessageHeader {
            csid: 4,
            timestamp: 1000,
            type_id: 9,
            stream_id: 1,
        };
        let mut out = Vec::new();
        enc.write(&header, &payload, &mut out).unwrap();
        assert_eq!(out, wire);
        let chunks = enc.chunks(&header, &Bytes::from(payload.clone())).unwrap();
        assert_eq!(chunks.to_vec(), wire);
        assert_eq!(chunks.parts().len(), 6);
    }

    #[test]
    fn extended_timestamps_on_every_chunk() {
        let header = MessageHeader {
            csid: 6,
            timestamp: 0x0123_4567,
            type_id: 8,
            stream_id: 1,
        };
        let payload = Bytes::from(vec![7u8; 200]);
        let wire = ChunkEncoder::new()
            .chunks(&header, &payload)
            .unwrap()
            .to_vec();
        let mut want = vec![0x06, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xC8, 0x08, 1, 0, 0, 0];
        want.extend([0x01, 0x23, 0x45, 0x67]);
        want.extend([7u8; 128]);
        want.extend([0xC6, 0x01, 0x23, 0x45, 0x67]);
        want.extend([7u8; 72]);
        assert_eq!(wire, want);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let got = decode_all(&mut dec, &wire).unwrap();
        assert_eq!(got, vec![msg(6, 0x0123_4567, 8, 1, &[7u8; 200])]);
        // A following type 3 message adds the previous (extended) timestamp field.
        let mut next = vec![0xC6, 0x01, 0x23, 0x45, 0x67];
        next.extend([9u8; 128]);
        next.extend([0xC6, 0x01, 0x23, 0x45, 0x67]);
        next.extend([9u8; 72]);
        let got = decode_all(&mut dec, &next).unwrap();
        assert_eq!(got[0].timestamp, 0x0246_8ACE);
    }

    #[test]
    fn chunk_by_chunk_writes_the_same_bytes_as_the_parts() {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(64).unwrap();
        for (len, timestamp) in [(0usize, 5u32), (1, 5), (64, 5), (65, 5), (200, 0x0100_0000)] {
            let h = MessageHeader {
                csid: 6,
                timestamp,
                type_id: 9,
                stream_id: 1,
            };
            let payload = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>());
            let mut out = Vec::new();
            let mut at = 0;
            loop {
                at = enc.write_chunk(&h, &payload, at, &mut out);
                if at >= payload.len() {
                    break;
                }
            }
            assert_eq!(out, enc.chunks(&h, &payload).unwrap().to_vec(), "len {len}");
        }
    }

    #[test]
    fn interleaved_chunk_streams_and_chunk_size_change() {
        let enc = {
            let mut e = ChunkEncoder::new();
            e.set_chunk_size(64).unwrap();
            e
        };
        let a = MessageHeader {
            csid: 6,
            timestamp: 40,
            type_id: 8,
            stream_id: 1,
        };
        let v = MessageHeader {
            csid: 400,
            timestamp: 33,
            type_id: 9,
            stream_id: 1,
        };
        let pa = Bytes::from(vec![0xAA; 100]);
        let pv = Bytes::from(vec![0xBB; 150]);
        let ca = enc.chunks(&a, &pa).unwrap().into_parts();
        let cv = enc.chunks(&v, &pv).unwrap().into_parts();
        // Interleave chunk by chunk: a-hdr a0 v-hdr v0 a-cont a1 v-cont v1 v-cont v2.
        let mut wire = Vec::new();
        for i in (0..cv.len()).step_by(2) {
            if i < ca.len() {
                wire.extend_from_slice(&ca[i]);
                wire.extend_from_slice(&ca[i + 1]);
            }
            wire.extend_from_slice(&cv[i]);
            wire.extend_from_slice(&cv[i + 1]);
        }
        // 3-byte basic header for csid 400.
        assert_eq!(&cv[0][..3], &[0x01, (400 - 64) as u8, 1]);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        dec.set_chunk_size(64).unwrap();
        let got = decode_all(&mut dec, &wire).unwrap();
        assert_eq!(
            got,
            vec![
                msg(6, 40, 8, 1, &[0xAA; 100]),
                msg(400, 33, 9, 1, &[0xBB; 150])
            ]
        );
        assert_eq!(
            dec.set_chunk_size(0),
            Err(ChunkErrorKind::InvalidChunkSize(0))
        );
        assert!(dec.set_chunk_size(MAX_CHUNK_SIZE).is_ok());
    }

    #[test]
    fn two_byte_csid_and_type1_header() {
        let mut wire = vec![0x00, 0x06, 0, 0, 10, 0, 0, 2, 20, 0, 0, 0, 0, 1, 2];
        // type 1 on csid 70: delta 5, length 1, type 18.
        wire.extend([0x40, 0x06, 0, 0, 5, 0, 0, 1, 18, 9]);
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let got = decode_all(&mut dec, &wire).unwrap();
        assert_eq!(
            got,
            vec![msg(70, 10, 20, 0, &[1, 2]), msg(70, 15, 18, 0, &[9])]
        );
    }

    #[test]
    fn errors_carry_context() {
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_message_size: 1000,
            max_chunk_streams: 2,
        });
        let mut wire = vec![0x03, 0, 0, 0, 0, 0, 1, 20, 0, 0, 0, 0, 5];
        let (used, m) = dec.decode(&wire).unwrap();
        assert_eq!(used, 13);
        assert!(m.is_some());
        wire = vec![0x05, 0, 0, 0, 0x10, 0, 0, 9, 0, 0, 0, 0];
        let e = dec.decode(&wire).unwrap_err();
        assert_eq!(
            e,
            ChunkError {
                kind: ChunkErrorKind::MessageTooLarge {
                    length: 0x100000,
                    max: 1000
                },
                csid: 5,
                offset: 13
            }
        );
        assert!(e.to_string().contains("at byte 13"));
        let e = dec.decode(&[0x47, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(e.kind, ChunkErrorKind::NoPreviousHeader { fmt: 1 });
        dec.decode(&[0x04, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0])
            .unwrap();
        let e = dec
            .decode(&[0x05, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0])
            .unwrap_err();
        assert_eq!(e.kind, ChunkErrorKind::TooManyChunkStreams { max: 2 });
    }

    #[test]
    fn abort_drops_partial() {
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let mut wire = vec![0x04, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0];
        wire.extend([1u8; 128]);
        assert_eq!(dec.decode(&wire).unwrap(), (140, None));
        dec.abort(4);
        // The next type 3 chunk starts a new message of the same length.
        let mut next = vec![0xC4];
        next.extend([2u8; 128]);
        next.push(0xC4);
        next.extend([2u8; 72]);
        let got = decode_all(&mut dec, &next).unwrap();
        assert_eq!(got[0].payload, Bytes::from(vec![2u8; 200]));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..3000 {
            let len = (next() % 600) as usize;
            let buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut dec = ChunkDecoder::new(ChunkLimits {
                max_message_size: 1 << 16,
                max_chunk_streams: 8,
            });
            if next() % 2 == 0 {
                let _ = dec.set_chunk_size((next() % 300) as u32 + 1);
            }
            let _ = decode_all(&mut dec, &buf);
        }
    }
}
