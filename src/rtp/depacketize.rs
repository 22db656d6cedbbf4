//! The receiving side of RTP, for the edge's RTSP pull: the fixed header (RFC 3550 §5.1),
//! H.264 access units out of RFC 6184 packets (single NAL unit, STAP-A, FU-A), and AAC
//! access units out of RFC 3640 AAC-hbr packets (AU headers, fragmented AUs).
//!
//! Owns: reassembly, bounded (an access unit larger than `MAX_ACCESS_UNIT` is refused), and
//! what a lost packet costs (the access unit it belonged to is dropped whole, never passed
//! on damaged). Never does: timing beyond the RTP timestamp (the client maps it to the
//! stream's timeline), I/O, or panicking on what a peer sends.

use bytes::Bytes;
use std::fmt;

/// The largest access unit reassembled (an 8K intra picture fits).
pub const MAX_ACCESS_UNIT: usize = 4 << 20;

/// An RTP packet's fixed header fields and where its payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Why a packet cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepacketizeError {
    /// Not RTP version 2, or shorter than its header, CSRCs, extension or padding say.
    BadHeader,
    /// A payload shorter than its payload format's own header says.
    BadPayload(&'static str),
    /// An access unit larger than `MAX_ACCESS_UNIT`.
    TooLarge,
}

impl fmt::Display for DepacketizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepacketizeError::BadHeader => f.write_str("malformed RTP header"),
            DepacketizeError::BadPayload(why) => write!(f, "malformed RTP payload: {why}"),
            DepacketizeError::TooLarge => {
                write!(f, "access unit larger than {MAX_ACCESS_UNIT} bytes")
            }
        }
    }
}

/// Splits an RTP packet into its header and payload (CSRCs, extension and padding removed).
pub fn parse_rtp(packet: &[u8]) -> Result<(RtpHeader, &[u8]), DepacketizeError> {
    let bad = DepacketizeError::BadHeader;
    let fixed = packet.get(..12).ok_or(bad)?;
    if fixed[0] >> 6 != 2 {
        return Err(bad);
    }
    let mut start = 12 + 4 * usize::from(fixed[0] & 0x0f);
    if fixed[0] & 0x10 != 0 {
        let ext = packet.get(start..start + 4).ok_or(bad)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    let mut end = packet.len();
    if fixed[0] & 0x20 != 0 {
        end = end
            .checked_sub(usize::from(*packet.last().ok_or(bad)?))
            .ok_or(bad)?;
    }
    let payload = packet.get(start..end).ok_or(bad)?;
    let header = RtpHeader {
        marker: fixed[1] & 0x80 != 0,
        payload_type: fixed[1] & 0x7f,
        seq: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
    };
    Ok((header, payload))
}

/// Whether `seq` follows `last` (none yet counts as following).
fn in_order(last: Option<u16>, seq: u16) -> bool {
    last.is_none_or(|l| l.wrapping_add(1) == seq)
}

/// One H.264 access unit: its NAL units with 4-byte lengths (AVCC), parameter sets left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H264AccessUnit {
    pub timestamp: u32,
    pub data: Bytes,
    /// Holds an IDR slice.
    pub keyframe: bool,
}

/// What an H.264 packet gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum H264Output {
    Unit(H264AccessUnit),
    /// A sequence or picture parameter set sent in band.
    Sps(Bytes),
    Pps(Bytes),
}

/// RFC 6184 depacketizer, packetization modes 0 and 1.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    au: Vec<u8>,
    timestamp: Option<u32>,
    keyframe: bool,
    /// Where the length prefix of the FU-A unit being reassembled is in `au`.
    fragment_at: Option<usize>,
    /// A packet of the current access unit was lost: drop it whole.
    damaged: bool,
    last_seq: Option<u16>,
}

impl H264Depacketizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one packet; completed access units and parameter sets go to `out`.
    pub fn push(
        &mut self,
        header: &RtpHeader,
        payload: &[u8],
        out: &mut Vec<H264Output>,
    ) -> Result<(), DepacketizeError> {
        if !in_order(self.last_seq, header.seq) {
            self.damaged = true;
            self.fragment_at = None;
        }
        self.last_seq = Some(header.seq);
        if self.timestamp.is_some_and(|t| t != header.timestamp) {
            // A new picture began without the last one's marker bit.
            self.finish(out);
        }
        self.timestamp = Some(header.timestamp);
        let result = self.payload(payload, out);
        if result.is_err() {
            self.damaged = true;
            self.fragment_at = None;
        }
        if header.marker {
            self.finish(out);
        }
        result
    }

    fn payload(
        &mut self,
        payload: &[u8],
        out: &mut Vec<H264Output>,
    ) -> Result<(), DepacketizeError> {
        let Some(&nal_header) = payload.first() else {
            return Err(DepacketizeError::BadPayload("empty H.264 payload"));
        };
        match nal_header & 0x1f {
            1..=23 => self.nal(payload, out),
            24 => self.stap_a(&payload[1..], out),
            28 => self.fu_a(payload, out),
            _ => Err(DepacketizeError::BadPayload(
                "unsupported H.264 packet type",
            )),
        }
    }

    /// STAP-A (§5.7.1): 16-bit sizes, each followed by a NAL unit.
    fn stap_a(
        &mut self,
        mut rest: &[u8],
        out: &mut Vec<H264Output>,
    ) -> Result<(), DepacketizeError> {
        while !rest.is_empty() {
            let bad = DepacketizeError::BadPayload("truncated STAP-A");
            let size = rest.get(..2).ok_or(bad)?;
            let size = usize::from(u16::from_be_bytes([size[0], size[1]]));
            let nal = rest.get(2..2 + size).ok_or(bad)?;
            if !nal.is_empty() {
                self.nal(nal, out)?;
            }
            rest = &rest[2 + size..];
        }
        Ok(())
    }

    /// FU-A (§5.8): the NAL header rebuilt from the indicator and the FU header.
    fn fu_a(&mut self, payload: &[u8], _out: &mut Vec<H264Output>) -> Result<(), DepacketizeError> {
        let &[indicator, fu, ref data @ ..] = payload else {
            return Err(DepacketizeError::BadPayload("truncated FU-A"));
        };
        let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
        if start {
            self.grow(5 + data.len())?;
            self.fragment_at = Some(self.au.len());
            self.au.extend_from_slice(&[0; 4]);
            self.au.push((indicator & 0xe0) | (fu & 0x1f));
            self.keyframe |= fu & 0x1f == 5;
        }
        let Some(at) = self.fragment_at else {
            // Its start was lost.
            self.damaged = true;
            return Ok(());
        };
        self.grow(data.len())?;
        self.au.extend_from_slice(data);
        if end {
            let len = (self.au.len() - at - 4) as u32;
            self.au[at..at + 4].copy_from_slice(&len.to_be_bytes());
            self.fragment_at = None;
        }
        Ok(())
    }

    fn nal(&mut self, nal: &[u8], out: &mut Vec<H264Output>) -> Result<(), DepacketizeError> {
        match nal[0] & 0x1f {
            7 => out.push(H264Output::Sps(Bytes::copy_from_slice(nal))),
            8 => out.push(H264Output::Pps(Bytes::copy_from_slice(nal))),
            9 => {} // access unit delimiter: frames carry none
            kind => {
                self.grow(4 + nal.len())?;
                self.au.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                self.au.extend_from_slice(nal);
                self.keyframe |= kind == 5;
            }
        }
        Ok(())
    }

    fn grow(&self, more: usize) -> Result<(), DepacketizeError> {
        if self.au.len() + more > MAX_ACCESS_UNIT {
            return Err(DepacketizeError::TooLarge);
        }
        Ok(())
    }

    /// The access unit so far is complete: out with it, unless damaged or empty.
    fn finish(&mut self, out: &mut Vec<H264Output>) {
        let whole = !self.damaged && self.fragment_at.is_none() && !self.au.is_empty();
        if let (true, Some(timestamp)) = (whole, self.timestamp) {
            out.push(H264Output::Unit(H264AccessUnit {
                timestamp,
                data: Bytes::copy_from_slice(&self.au),
                keyframe: self.keyframe,
            }));
        }
        self.au.clear();
        self.keyframe = false;
        self.damaged = false;
        self.fragment_at = None;
        self.timestamp = None;
    }
}

/// One AAC access unit (a raw `raw_data_block`) and its RTP timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AacAccessUnit {
    pub timestamp: u32,
    pub data: Bytes,
}

/// RFC 3640 depacketizer for `mode=AAC-hbr` (and any mode with AU-size and AU-Index only).
#[derive(Debug)]
pub struct AacDepacketizer {
    /// `sizelength` / `indexlength` of the fmtp line (AAC-hbr: 13 and 3).
    size_bits: u32,
    index_bits: u32,
    /// A fragmented AU (§3.2.3): its expected size, its timestamp, the bytes so far.
    fragment: Option<(usize, u32)>,
    buf: Vec<u8>,
    last_seq: Option<u16>,
}

/// Samples per AAC frame: consecutive AUs in one packet are this far apart (§3.2.3.2).
const AAC_FRAME_SAMPLES: u32 = 1024;

impl AacDepacketizer {
    /// `None` when the lengths are not ones AAC-hbr can carry (1..=16 bits together).
    pub fn new(size_bits: u32, index_bits: u32) -> Option<Self> {
        (size_bits > 0 && size_bits + index_bits <= 16 && index_bits <= 8).then_some(
            AacDepacketizer {
                size_bits,
                index_bits,
                fragment: None,
                buf: Vec::new(),
                last_seq: None,
            },
        )
    }

    /// Takes one packet; its complete access units go to `out`.
    pub fn push(
        &mut self,
        header: &RtpHeader,
        payload: &[u8],
        out: &mut Vec<AacAccessUnit>,
    ) -> Result<(), DepacketizeError> {
        if !in_order(self.last_seq, header.seq) {
            self.fragment = None;
        }
        self.last_seq = Some(header.seq);
        let bad = |why| DepacketizeError::BadPayload(why);
        let len_bits = payload.get(..2).ok_or(bad("no AU-headers-length"))?;
        let header_bits = usize::from(u16::from_be_bytes([len_bits[0], len_bits[1]]));
        let header_bytes = header_bits.div_ceil(8);
        let headers = payload
            .get(2..2 + header_bytes)
            .ok_or(bad("truncated AU headers"))?;
        let mut data = &payload[2 + header_bytes..];
        let per_au = (self.size_bits + self.index_bits) as usize;
        let count = header_bits / per_au;
        if count == 0 {
            return Err(bad("no AU header"));
        }
        if let Some((size, timestamp)) = self.fragment.take() {
            return self.continue_fragment(size, timestamp, header, data, out);
        }
        for i in 0..count {
            let size = self.au_size(headers, i * per_au) as usize;
            let timestamp = header.timestamp.wrapping_add(AAC_FRAME_SAMPLES * i as u32);
            if size > data.len() {
                // §3.2.3: one AU in several packets; the marker bit ends it.
                if count != 1 || header.marker || size > MAX_ACCESS_UNIT {
                    return Err(bad("AU larger than its packet"));
                }
                self.buf.clear();
                self.buf.extend_from_slice(data);
                self.fragment = Some((size, timestamp));
                return Ok(());
            }
            out.push(AacAccessUnit {
                timestamp,
                data: Bytes::copy_from_slice(&data[..size]),
            });
            data = &data[size..];
        }
        Ok(())
    }

    fn continue_fragment(
        &mut self,
        size: usize,
        timestamp: u32,
        header: &RtpHeader,
        data: &[u8],
        out: &mut Vec<AacAccessUnit>,
    ) -> Result<(), DepacketizeError> {
        if header.timestamp != timestamp || self.buf.len() + data.len() > size {
            return Err(DepacketizeError::BadPayload(
                "AU fragment does not continue",
            ));
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() == size {
            out.push(AacAccessUnit {
                timestamp,
                data: Bytes::copy_from_slice(&self.buf),
            });
        } else if !header.marker {
            self.fragment = Some((size, timestamp));
        }
        Ok(())
    }

    /// The AU-size of the header that starts at bit `at`.
    fn au_size(&self, headers: &[u8], at: usize) -> u32 {
        let mut value = 0u32;
        for bit in at..at + self.size_bits as usize {
            let byte = headers.get(bit / 8).copied().unwrap_or(0);
            value = (value << 1) | u32::from((byte >> (7 - bit % 8)) & 1);
        }
        value
    }
}

#[cfg(test)]
mod tests;
