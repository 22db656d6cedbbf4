//! PES packets (§2.4.3.6, Table 2-21): reassembled from the payloads of one PID
//! (`PesAssembler`: a PES starts with payload_unit_start_indicator and ends at the next one,
//! or as soon as the bytes PES_packet_length announces are in), and their header read
//! (`parse_pes`: PTS and DTS, §2.4.3.7).
//!
//! PES_packet_length 0 (unbounded, video only) ends only at the next unit start or at
//! [`PesAssembler::finish`]. A PES larger than the assembler's limit is dropped whole.
//!
//! Video access units may span PES packets (§2.4.3.6 leaves the split to the muxer; some
//! broadcast encoders cut every picture into bounded PES packets and time only the first).
//! An assembler built [`joining_untimed`](PesAssembler::joining_untimed) therefore appends
//! a PES without PTS to the one before it, so the track sees whole, timed access units.

/// PES start code prefix, stream_id and PES_packet_length.
const PES_FIXED_LEN: usize = 6;
/// The fixed bytes plus the two flag bytes and PES_header_data_length.
const PES_HEADER_MIN_LEN: usize = 9;
const TIMESTAMP_LEN: usize = 5;

/// Why a PES could not be completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PesProblem {
    /// It grew past the limit; the rest of it is skipped.
    TooLarge,
    /// The next PES started (or the stream ended) before PES_packet_length bytes came.
    Truncated,
}

/// Reassembles the PES packets of one PID. Memory: at most `limit` bytes.
#[derive(Debug)]
pub struct PesAssembler {
    buf: Vec<u8>,
    state: State,
    /// Stream offset of the packet that started the PES being assembled.
    offset: u64,
    limit: usize,
    /// A PES without PTS continues the previous one (video); it then never completes on
    /// its PES_packet_length alone.
    join_untimed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for a unit start (at the beginning, after a PES, after a loss).
    Idle,
    Collecting,
    /// The PES outgrew the limit; waiting for the next unit start.
    Skipping,
}

impl PesAssembler {
    /// An assembler of PES packets of at most `limit` bytes, each complete on its own.
    pub fn new(limit: usize) -> Self {
        PesAssembler {
            buf: Vec::new(),
            state: State::Idle,
            offset: 0,
            limit,
            join_untimed: false,
        }
    }

    /// An assembler that appends a PES without PTS to the previous one (for video).
    pub fn joining_untimed(limit: usize) -> Self {
        PesAssembler {
            join_untimed: true,
            ..Self::new(limit)
        }
    }

    /// Adds one packet's payload (from the packet at stream offset `offset`). Hands every PES
    /// completed by it to `on` with the offset of its first packet, or the problem with it.
    pub fn push(
        &mut self,
        offset: u64,
        unit_start: bool,
        payload: &[u8],
        on: &mut impl FnMut(Result<&[u8], PesProblem>, u64),
    ) {
        let mut payload = payload;
        if unit_start {
            match self.continuation(payload) {
                Some(body) => payload = body,
                None => self.start(offset, on),
            }
        }
        if self.state != State::Collecting {
            return;
        }
        if self.buf.len() + payload.len() > self.limit {
            self.buf.clear();
            self.state = State::Skipping;
            return on(Err(PesProblem::TooLarge), self.offset);
        }
        self.buf.extend_from_slice(payload);
        if !self.join_untimed && self.declared_len().is_some_and(|len| self.buf.len() >= len) {
            self.state = State::Idle;
            on(Ok(&self.buf), self.offset);
        }
    }

    /// Completes the previous PES and starts one at this unit start.
    fn start(&mut self, offset: u64, on: &mut impl FnMut(Result<&[u8], PesProblem>, u64)) {
        self.finish(on);
        self.buf.clear();
        self.state = State::Collecting;
        self.offset = offset;
    }

    /// When this unit start is an untimed PES to join to the one being assembled: its
    /// payload. The joined PES becomes unbounded (PES_packet_length 0).
    fn continuation<'a>(&mut self, payload: &'a [u8]) -> Option<&'a [u8]> {
        if !self.join_untimed || self.state != State::Collecting || self.buf.len() < PES_FIXED_LEN {
            return None;
        }
        let pes = parse_pes(payload).ok()?;
        if pes.pts.is_some() || pes.stream_id != self.buf[3] {
            return None;
        }
        self.buf[4..PES_FIXED_LEN].fill(0);
        Some(pes.payload)
    }

    /// Completes the PES being assembled, if any: at the end of the stream, or when the next
    /// one starts.
    pub fn finish(&mut self, on: &mut impl FnMut(Result<&[u8], PesProblem>, u64)) {
        if self.state != State::Collecting || self.buf.is_empty() {
            self.state = State::Idle;
            return;
        }
        self.state = State::Idle;
        match self.declared_len() {
            Some(len) if self.buf.len() < len => on(Err(PesProblem::Truncated), self.offset),
            _ => on(Ok(&self.buf), self.offset),
        }
    }

    /// Drops the PES being assembled (packets were lost).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.state = State::Idle;
    }

    /// The whole PES length when PES_packet_length is known and not 0.
    fn declared_len(&self) -> Option<usize> {
        let b = self.buf.get(..PES_FIXED_LEN)?;
        let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
        (len != 0).then_some(PES_FIXED_LEN + len)
    }
}

/// A PES header's timestamps (33-bit, 90 kHz) and its payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Pes<'a> {
    pub stream_id: u8,
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    pub payload: &'a [u8],
}

/// Reads the header of a complete PES (Table 2-21).
pub fn parse_pes(pes: &[u8]) -> Result<Pes<'_>, &'static str> {
    let Some(h) = pes.get(..PES_HEADER_MIN_LEN) else {
        return Err("shorter than a PES header");
    };
    if h[..3] != [0, 0, 1] {
        return Err("no packet_start_code_prefix");
    }
    let stream_id = h[3];
    if !has_optional_header(stream_id) {
        return Err("stream_id without PTS (padding, private_stream_2, ...)");
    }
    if h[6] & 0xC0 != 0x80 {
        return Err("optional PES header does not start with '10'");
    }
    let header_len = usize::from(h[8]);
    let payload_start = PES_HEADER_MIN_LEN + header_len;
    let declared = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let end = if declared == 0 {
        pes.len()
    } else {
        (PES_FIXED_LEN + declared).min(pes.len())
    };
    if payload_start > end {
        return Err("PES_header_data_length past the PES");
    }
    let fields = &pes[PES_HEADER_MIN_LEN..payload_start];
    let (pts, dts) = match h[7] >> 6 {
        0b00 => (None, None),
        0b10 => (Some(timestamp(fields, 0)?), None),
        0b11 => (Some(timestamp(fields, 0)?), Some(timestamp(fields, 1)?)),
        _ => return Err("PTS_DTS_flags 01 (forbidden)"),
    };
    Ok(Pes {
        stream_id,
        pts,
        dts,
        payload: &pes[payload_start..end],
    })
}

/// Streams whose PES packets have the optional header (Table 2-21: all but program stream
/// map, padding, private_stream_2, ECM, EMM, DSM-CC, H.222.1 type E and the directory).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    )
}

/// The `index`th 5-byte timestamp field: 4 bits prefix, then 3 + 15 + 15 bits each followed
/// by a marker bit.
fn timestamp(fields: &[u8], index: usize) -> Result<u64, &'static str> {
    let at = index * TIMESTAMP_LEN;
    let Some(b) = fields.get(at..at + TIMESTAMP_LEN) else {
        return Err("PES_header_data_length too short for its PTS/DTS");
    };
    let byte = |i: usize| u64::from(b[i]);
    Ok(((byte(0) >> 1) & 0x7) << 30
        | byte(1) << 22
        | (byte(2) >> 1) << 15
        | byte(3) << 7
        | byte(4) >> 1)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn encode_ts(prefix: u8, ts: u64) -> [u8; 5] {
        [
            (prefix << 4) | (((ts >> 30) & 0x7) as u8) << 1 | 1,
            (ts >> 22) as u8,
            (((ts >> 15) & 0x7F) as u8) << 1 | 1,
            (ts >> 7) as u8,
            ((ts & 0x7F) as u8) << 1 | 1,
        ]
    }

    /// A PES with the given timestamps; `bounded` writes the real PES_packet_length.
    pub(crate) fn pes(pts: u64, dts: Option<u64>, payload: &[u8], bounded: bool) -> Vec<u8> {
        let mut fields = encode_ts(if dts.is_some() { 3 } else { 2 }, pts).to_vec();
        if let Some(dts) = dts {
            fields.extend_from_slice(&encode_ts(1, dts));
        }
        let flags = if dts.is_some() { 0xC0 } else { 0x80 };
        let len = if bounded {
            3 + fields.len() + payload.len()
        } else {
            0
        };
        let mut p = vec![0, 0, 1, 0xE0, (len >> 8) as u8, len as u8, 0x80, flags];
        p.push(fields.len() as u8);
        p.extend_from_slice(&fields);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn header_timestamps_and_payload() {
        let max = (1u64 << 33) - 1;
        let p = pes(max, Some(12_345), b"abc", true);
        let parsed = parse_pes(&p).unwrap();
        assert_eq!(
            (parsed.pts, parsed.dts, parsed.payload),
            (Some(max), Some(12_345), &b"abc"[..])
        );
        let p = pes(90_000, None, b"xyz", false);
        let parsed = parse_pes(&p).unwrap();
        assert_eq!(
            (parsed.pts, parsed.dts, parsed.payload),
            (Some(90_000), None, &b"xyz"[..])
        );
    }

    #[test]
    fn bad_headers_are_named() {
        assert!(parse_pes(&[0, 0, 1]).is_err());
        let mut p = pes(1, None, b"", true);
        p[2] = 2;
        assert_eq!(parse_pes(&p), Err("no packet_start_code_prefix"));
        let mut p = pes(1, None, b"", true);
        p[7] = 0x40;
        assert_eq!(parse_pes(&p), Err("PTS_DTS_flags 01 (forbidden)"));
        let mut p = pes(1, None, b"", false);
        p[8] = 40;
        assert_eq!(parse_pes(&p), Err("PES_header_data_length past the PES"));
        let mut p = pes(1, Some(2), b"", false);
        p[8] = 5;
        assert!(parse_pes(&p).is_err(), "DTS flagged but no room for it");
    }

    fn collect(
        asm: &mut PesAssembler,
        offset: u64,
        start: bool,
        payload: &[u8],
    ) -> Vec<(Result<Vec<u8>, PesProblem>, u64)> {
        let mut got = Vec::new();
        asm.push(offset, start, payload, &mut |r, at| {
            got.push((r.map(<[u8]>::to_vec), at))
        });
        got
    }

    #[test]
    fn bounded_pes_completes_as_soon_as_it_is_whole() {
        let p = pes(1, None, &[7u8; 300], true);
        let mut asm = PesAssembler::new(1 << 20);
        assert!(collect(&mut asm, 0, true, &p[..184]).is_empty());
        assert_eq!(
            collect(&mut asm, 188, false, &p[184..]),
            vec![(Ok(p.clone()), 0)]
        );
        // Nothing pending any more.
        let mut got = 0;
        asm.finish(&mut |_, _| got += 1);
        assert_eq!(got, 0);
    }

    #[test]
    fn unbounded_pes_ends_at_the_next_start_or_finish() {
        let a = pes(1, None, &[1u8; 400], false);
        let b = pes(2, None, &[2u8; 10], false);
        let mut asm = PesAssembler::new(1 << 20);
        assert!(
            collect(&mut asm, 0, false, &[9; 50]).is_empty(),
            "mid-PES join is skipped"
        );
        assert!(collect(&mut asm, 188, true, &a[..184]).is_empty());
        assert!(collect(&mut asm, 376, false, &a[184..]).is_empty());
        assert_eq!(collect(&mut asm, 564, true, &b), vec![(Ok(a), 188)]);
        let mut got = Vec::new();
        asm.finish(&mut |r, at| got.push((r.map(<[u8]>::to_vec), at)));
        assert_eq!(got, vec![(Ok(b), 564)]);
    }

    #[test]
    fn untimed_pes_joins_the_one_before_when_asked() {
        let first = pes(1, None, &[1u8; 100], true);
        let mut second = pes(0, None, &[2u8; 50], true);
        second[7] = 0; // no PTS
        second[8] = 0;
        second.drain(9..14);
        second[5] -= 5;
        let third = pes(2, None, &[3u8; 10], true);
        let mut asm = PesAssembler::joining_untimed(1 << 20);
        assert!(
            collect(&mut asm, 0, true, &first).is_empty(),
            "not complete at its length"
        );
        assert!(collect(&mut asm, 188, true, &second).is_empty());
        let got = collect(&mut asm, 376, true, &third);
        let (joined, at) = (got[0].0.as_ref().unwrap(), got[0].1);
        assert_eq!(at, 0);
        let parsed = parse_pes(joined).unwrap();
        assert_eq!(parsed.pts, Some(1));
        assert_eq!(parsed.payload, [[1u8; 100].as_slice(), &[2u8; 50]].concat());
        // Without joining, each is its own PES, complete at its length.
        let mut asm = PesAssembler::new(1 << 20);
        assert_eq!(collect(&mut asm, 0, true, &first).len(), 1);
        assert_eq!(collect(&mut asm, 188, true, &second).len(), 1);
    }

    #[test]
    fn too_large_and_truncated_pes_are_reported() {
        let mut asm = PesAssembler::new(500);
        let big = pes(1, None, &[0u8; 600], false);
        assert!(collect(&mut asm, 0, true, &big[..184]).is_empty());
        assert!(collect(&mut asm, 188, false, &big[184..368]).is_empty());
        assert_eq!(
            collect(&mut asm, 376, false, &big[368..]),
            vec![(Err(PesProblem::TooLarge), 0)]
        );
        assert!(
            collect(&mut asm, 564, false, &[0; 184]).is_empty(),
            "rest skipped"
        );
        let short = pes(1, None, &[0u8; 100], true);
        assert!(collect(&mut asm, 752, true, &short[..50]).is_empty());
        assert_eq!(
            collect(&mut asm, 940, true, &short[..20]),
            vec![(Err(PesProblem::Truncated), 752)]
        );
        asm.reset();
        let mut got = 0;
        asm.finish(&mut |_, _| got += 1);
        assert_eq!(got, 0, "reset dropped it");
    }
}
