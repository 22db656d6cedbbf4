//! Program specific information: sections reassembled from packets (§2.4.4.1 pointer_field,
//! §2.4.4.2 section layout), their CRC_32 (Annex A), the program association table
//! (§2.4.4.3, Table 2-30) and the program map table (§2.4.4.8, Table 2-33), and what each
//! `stream_type` (Table 2-34) is, down to the registration (§2.6.8) and DVB descriptors
//! (ETSI EN 300 468 §6.2) that name the codec of a private PES stream.
//!
//! Never: SI tables (SDT, EIT, NIT), multi-program selection (the first program of the PAT
//! is the one demuxed).

use crate::mux::ts::{STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, crc32_mpeg2};

/// A PAT or PMT section is at most 1024 bytes (section_length ≤ 1021, §2.4.4.3/§2.4.4.8).
const MAX_SECTION_LENGTH: usize = 1021;
const SECTION_HEADER_LEN: usize = 3;
/// table_id, section_syntax_indicator..section_length, id, version, section numbers.
const LONG_HEADER_LEN: usize = 8;
const CRC_LEN: usize = 4;
const TABLE_ID_PAT: u8 = 0x00;
const TABLE_ID_PMT: u8 = 0x02;
const STUFFING: u8 = 0xFF;

/// Reassembles the sections of one PSI PID from its packets' payloads.
/// Memory: at most one section plus one packet payload.
#[derive(Debug, Default)]
pub struct SectionAssembler {
    buf: Vec<u8>,
    /// A section start has been seen and `buf` continues it.
    active: bool,
}

impl SectionAssembler {
    /// Adds one packet's payload; hands every section completed by it (or the reason the
    /// data cannot be sections) to `on`.
    pub fn push(
        &mut self,
        unit_start: bool,
        payload: &[u8],
        on: &mut impl FnMut(Result<&[u8], &'static str>),
    ) {
        if !unit_start {
            if self.active {
                self.buf.extend_from_slice(payload);
                self.extract(on);
            }
            return;
        }
        let Some((&pointer, rest)) = payload.split_first() else {
            self.reset();
            return on(Err("payload_unit_start with an empty payload"));
        };
        let Some((tail, head)) = rest.split_at_checked(usize::from(pointer)) else {
            self.reset();
            return on(Err("pointer_field points past the packet"));
        };
        if self.active {
            self.buf.extend_from_slice(tail);
            self.extract(on);
        }
        self.buf.clear();
        self.buf.extend_from_slice(head);
        self.active = true;
        self.extract(on);
    }

    /// Drops what is being assembled (packets were lost).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }

    fn extract(&mut self, on: &mut impl FnMut(Result<&[u8], &'static str>)) {
        loop {
            if self.buf.first() == Some(&STUFFING) {
                // Stuffing bytes: no further section starts in this unit.
                return self.reset();
            }
            let Some(header) = self.buf.get(..SECTION_HEADER_LEN) else {
                return;
            };
            let length = (usize::from(header[1] & 0x0F) << 8) | usize::from(header[2]);
            if length > MAX_SECTION_LENGTH {
                self.reset();
                return on(Err("section_length above 1021"));
            }
            let total = SECTION_HEADER_LEN + length;
            if self.buf.len() < total {
                return;
            }
            on(Ok(&self.buf[..total]));
            self.buf.drain(..total);
        }
    }
}

/// The common part of a long-form section (§2.4.4.2 onwards).
#[derive(Debug, PartialEq, Eq)]
struct Section<'a> {
    table_id: u8,
    /// transport_stream_id (PAT) or program_number (PMT).
    id: u16,
    current: bool,
    /// Between the header and the CRC_32.
    body: &'a [u8],
}

fn parse_section(s: &[u8]) -> Result<Section<'_>, &'static str> {
    if s.len() < LONG_HEADER_LEN + CRC_LEN {
        return Err("section shorter than its header and CRC");
    }
    if s[1] & 0x80 == 0 {
        return Err("section_syntax_indicator is 0");
    }
    if crc32_mpeg2(s) != 0 {
        return Err("CRC_32 mismatch");
    }
    Ok(Section {
        table_id: s[0],
        id: u16::from_be_bytes([s[3], s[4]]),
        current: s[5] & 0x01 != 0,
        body: &s[LONG_HEADER_LEN..s.len() - CRC_LEN],
    })
}

fn pid_at(b: &[u8]) -> u16 {
    (u16::from(b[0] & 0x1F) << 8) | u16::from(b[1])
}

fn length_at(b: &[u8]) -> usize {
    (usize::from(b[0] & 0x0F) << 8) | usize::from(b[1])
}

/// The program a PAT names first: (program_number, program_map_PID). `Ok(None)` for a
/// section that is not current or lists no program (only a network PID).
pub fn parse_pat(section: &[u8]) -> Result<Option<(u16, u16)>, &'static str> {
    let s = parse_section(section)?;
    if s.table_id != TABLE_ID_PAT {
        return Err("table_id is not 0 (PAT)");
    }
    if s.body.len() % 4 != 0 {
        return Err("PAT entries are not 4 bytes each");
    }
    if !s.current {
        return Ok(None);
    }
    Ok(s.body
        .chunks_exact(4)
        .map(|e| (u16::from_be_bytes([e[0], e[1]]), pid_at(&e[2..])))
        .find(|&(program, _)| program != 0))
}

/// What an elementary stream is, for the demuxer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    H264,
    AacAdts,
    /// Audio or video in a codec tessera does not carry, by name.
    Unsupported(&'static str),
    /// Not audio or video (metadata, cues, subtitles, private data), by name.
    Ignored(&'static str),
}

/// One elementary stream of a PMT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EsEntry {
    pub pid: u16,
    pub stream_type: u8,
    pub kind: StreamKind,
}

/// The elementary streams of the program `program_number`, or `Ok(None)` for a section
/// of another program or not current.
pub fn parse_pmt(
    section: &[u8],
    program_number: u16,
) -> Result<Option<Vec<EsEntry>>, &'static str> {
    let s = parse_section(section)?;
    if s.table_id != TABLE_ID_PMT {
        return Err("table_id is not 2 (PMT)");
    }
    if s.id != program_number || !s.current {
        return Ok(None);
    }
    let Some(info_len) = s.body.get(2..4).map(length_at) else {
        return Err("PMT shorter than PCR_PID and program_info_length");
    };
    let mut rest = s
        .body
        .get(4 + info_len..)
        .ok_or("program_info_length past the section")?;
    let mut streams = Vec::new();
    while !rest.is_empty() {
        let header = rest.get(..5).ok_or("truncated elementary stream entry")?;
        let es_info_len = length_at(&header[3..]);
        let descriptors = rest
            .get(5..5 + es_info_len)
            .ok_or("ES_info_length past the section")?;
        streams.push(EsEntry {
            pid: pid_at(&header[1..]),
            stream_type: header[0],
            kind: classify(header[0], descriptors),
        });
        rest = &rest[5 + es_info_len..];
    }
    Ok(Some(streams))
}

/// Table 2-34, and the stream types other standards registered that streams carry in
/// practice (ATSC A/52 AC-3 and E-AC-3, SCTE-35).
pub fn classify(stream_type: u8, descriptors: &[u8]) -> StreamKind {
    use StreamKind::{AacAdts, H264, Ignored, Unsupported};
    match stream_type {
        STREAM_TYPE_H264 => H264,
        STREAM_TYPE_AAC_ADTS => AacAdts,
        0x01 => Unsupported("MPEG-1 video"),
        0x02 => Unsupported("MPEG-2 video"),
        0x03 => Unsupported("MPEG-1 audio, MP2/MP3"),
        0x04 => Unsupported("MPEG-2 audio, MP2/MP3"),
        0x10 => Unsupported("MPEG-4 Visual"),
        0x11 => Unsupported("AAC in LATM"),
        0x1C => Unsupported("MPEG-4 audio without transport syntax"),
        0x1F | 0x20 => Unsupported("H.264 SVC/MVC"),
        0x24 => Unsupported("HEVC"),
        0x33 => Unsupported("VVC"),
        0x81 => Unsupported("AC-3"),
        0x87 => Unsupported("E-AC-3"),
        0xEA => Unsupported("VC-1"),
        0x06 => classify_private(descriptors),
        0x05 => Ignored("private sections"),
        0x0B..=0x0D => Ignored("DSM-CC"),
        0x15 => Ignored("metadata, ID3"),
        0x86 => Ignored("SCTE-35 cues"),
        _ => Ignored("unknown stream_type"),
    }
}

/// A private PES stream (stream_type 0x06) names its codec in a descriptor.
fn classify_private(mut descriptors: &[u8]) -> StreamKind {
    use StreamKind::{Ignored, Unsupported};
    while let [tag, len, rest @ ..] = descriptors {
        let Some(body) = rest.get(..usize::from(*len)) else {
            break;
        };
        let kind = match (tag, body) {
            // registration_descriptor (§2.6.8): a format_identifier.
            (0x05, [a, b, c, d, ..]) => match &[*a, *b, *c, *d] {
                b"AC-3" => Some(Unsupported("AC-3")),
                b"EAC3" => Some(Unsupported("E-AC-3")),
                b"Opus" => Some(Unsupported("Opus")),
                b"HEVC" => Some(Unsupported("HEVC")),
                b"AV01" => Some(Unsupported("AV1")),
                b"VC-1" => Some(Unsupported("VC-1")),
                b"ID3 " => Some(Ignored("metadata, ID3")),
                _ => None,
            },
            (0x6A, _) => Some(Unsupported("AC-3")),
            (0x7A, _) => Some(Unsupported("E-AC-3")),
            (0x7B, _) => Some(Unsupported("DTS")),
            (0x56, _) => Some(Ignored("DVB teletext")),
            (0x59, _) => Some(Ignored("DVB subtitles")),
            _ => None,
        };
        if let Some(kind) = kind {
            return kind;
        }
        descriptors = &rest[usize::from(*len)..];
    }
    Ignored("private PES data")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A long-form section with its CRC.
    pub(crate) fn section(table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
        let len = 5 + body.len() + CRC_LEN;
        let mut s = vec![table_id, 0xB0 | (len >> 8) as u8, len as u8];
        s.extend_from_slice(&id.to_be_bytes());
        s.extend_from_slice(&[0xC1, 0x00, 0x00]); // version 0, current, section 0 of 0
        s.extend_from_slice(body);
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    pub(crate) fn pmt_body(streams: &[(u8, u16, &[u8])]) -> Vec<u8> {
        let mut b = vec![0xE1, 0x00, 0xF0, 0x00];
        for (stream_type, pid, descriptors) in streams {
            b.push(*stream_type);
            b.extend_from_slice(&(0xE000 | pid).to_be_bytes());
            b.extend_from_slice(&(0xF000 | descriptors.len() as u16).to_be_bytes());
            b.extend_from_slice(descriptors);
        }
        b
    }

    fn sections_of(
        assembler: &mut SectionAssembler,
        start: bool,
        payload: &[u8],
    ) -> Vec<Result<Vec<u8>, &'static str>> {
        let mut got = Vec::new();
        assembler.push(start, payload, &mut |r| got.push(r.map(<[u8]>::to_vec)));
        got
    }

    #[test]
    fn pat_names_its_first_program() {
        let pat = section(0, 1, &[0, 0, 0xE0, 0x10, 0, 1, 0xF0, 0x00]);
        assert_eq!(parse_pat(&pat), Ok(Some((1, 0x1000))));
        let mut bad = pat.clone();
        bad[9] ^= 1;
        assert_eq!(parse_pat(&bad), Err("CRC_32 mismatch"));
        assert!(parse_pat(&section(2, 1, &[])).is_err());
    }

    #[test]
    fn pmt_lists_streams_by_kind() {
        let hevc_reg: &[u8] = &[0x05, 4, b'H', b'E', b'V', b'C'];
        let body = pmt_body(&[
            (0x1B, 0x100, &[]),
            (0x0F, 0x101, &[0x0A, 4, b'e', b'n', b'g', 0]),
            (0x24, 0x102, &[]),
            (0x06, 0x103, hevc_reg),
            (0x06, 0x104, &[0x59, 0]),
            (0x15, 0x105, &[]),
        ]);
        let streams = parse_pmt(&section(2, 1, &body), 1).unwrap().unwrap();
        let kinds: Vec<(u16, StreamKind)> = streams.iter().map(|e| (e.pid, e.kind)).collect();
        assert_eq!(
            kinds,
            [
                (0x100, StreamKind::H264),
                (0x101, StreamKind::AacAdts),
                (0x102, StreamKind::Unsupported("HEVC")),
                (0x103, StreamKind::Unsupported("HEVC")),
                (0x104, StreamKind::Ignored("DVB subtitles")),
                (0x105, StreamKind::Ignored("metadata, ID3")),
            ]
        );
        assert_eq!(
            parse_pmt(&section(2, 7, &body), 1),
            Ok(None),
            "other program"
        );
        let mut truncated = body.clone();
        truncated.truncate(body.len() - 3);
        assert!(parse_pmt(&section(2, 1, &truncated), 1).is_err());
    }

    #[test]
    fn sections_span_packets_and_share_them() {
        let a = section(0, 1, &[0, 1, 0xF0, 0x00]);
        let b = section(2, 1, &pmt_body(&[(0x1B, 0x100, &[0u8; 200][..])]));
        assert!(b.len() > 184);
        let mut asm = SectionAssembler::default();
        // Pointer 0, section a, then the start of b.
        let mut first = vec![0];
        first.extend_from_slice(&a);
        first.extend_from_slice(&b[..100]);
        assert_eq!(sections_of(&mut asm, true, &first), vec![Ok(a.clone())]);
        // The rest of b, then stuffing.
        let mut second = b[100..].to_vec();
        second.extend_from_slice(&[0xFF; 20]);
        assert_eq!(sections_of(&mut asm, false, &second), vec![Ok(b.clone())]);
        // Continuation packets without a start are ignored until the next start.
        assert!(sections_of(&mut asm, false, &b[..50]).is_empty());
        // A pointer_field that points past the packet.
        assert_eq!(
            sections_of(&mut asm, true, &[200, 1, 2]),
            vec![Err("pointer_field points past the packet")]
        );
        // A pointer_field that finishes the previous section.
        assert!(sections_of(&mut asm, true, &[0, b[0], b[1], b[2]]).is_empty());
        let mut tail = vec![(b.len() - 3) as u8];
        tail.extend_from_slice(&b[3..]);
        tail.extend_from_slice(&a);
        assert!(b.len() - 3 < 256);
        assert_eq!(sections_of(&mut asm, true, &tail), vec![Ok(b), Ok(a)]);
    }

    #[test]
    fn oversized_section_length_is_refused() {
        let mut asm = SectionAssembler::default();
        assert_eq!(
            sections_of(&mut asm, true, &[0, 0x02, 0xBF, 0xFF, 0, 0]),
            vec![Err("section_length above 1021")]
        );
    }
}
