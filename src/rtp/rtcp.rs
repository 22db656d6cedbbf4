//! RTCP for a sender: compound Sender Report + SDES CNAME (RFC 3550 §6.1, §6.4.1, §6.5.1),
//! and a tolerant walker over whatever RTCP a client sends back.
//!
//! Owns: the byte layout of SR and SDES packets, the NTP timestamp format (§4: seconds since
//! 1900 in the high 32 bits, binary fraction in the low 32), and splitting a received compound
//! packet into its packets (§6.1) without trusting any length in it.
//!
//! Never does: I/O, reading a clock (the wall-clock time comes in as milliseconds), keeping
//! reception statistics, or acting on what a client reports. Received RTCP is only ever
//! skipped; the session counts it as a sign of life ([`crate::rtsp::session`]).

use std::fmt;

/// RTCP packet types (RFC 3550 §12.1).
pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;
/// SDES item type CNAME (RFC 3550 §6.5.1).
const SDES_CNAME: u8 = 1;
/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET_SECS: i64 = 2_208_988_800;
/// Length of a sender report without report blocks.
pub const SR_LEN: usize = 28;

/// A 64-bit NTP timestamp (RFC 3550 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// Converts milliseconds since the Unix epoch.
    pub fn from_unix_ms(ms: i64) -> Self {
        let secs = ms.div_euclid(1000).wrapping_add(NTP_UNIX_OFFSET_SECS) as u64;
        let frac = ((ms.rem_euclid(1000) as u64) << 32) / 1000;
        NtpTimestamp((secs << 32) | frac)
    }

    /// The middle 32 bits, as carried in receiver reports' LSR field (§6.4.1).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// The sender information of an SR (RFC 3550 §6.4.1), with no report blocks (we receive
/// nothing over RTP, so we have nothing to report about).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    pub ntp: NtpTimestamp,
    /// The RTP timestamp of the same instant as `ntp`, in the track's clock.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

impl SenderReport {
    /// Appends the 28-byte SR packet.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.push(0x80); // V=2, P=0, RC=0
        out.push(PT_SR);
        out.extend_from_slice(&((SR_LEN / 4 - 1) as u16).to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&self.ntp.0.to_be_bytes());
        out.extend_from_slice(&self.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&self.packet_count.to_be_bytes());
        out.extend_from_slice(&self.octet_count.to_be_bytes());
    }

    /// Appends the compound packet a sender sends (§6.1: SR first, then SDES with CNAME).
    /// `cname` is cut to 255 bytes, the longest an SDES item holds.
    pub fn write_compound(&self, cname: &[u8], out: &mut Vec<u8>) {
        self.write_to(out);
        write_sdes_cname(self.ssrc, cname, out);
    }
}

/// Appends an SDES packet with one chunk holding one CNAME item (RFC 3550 §6.5).
pub fn write_sdes_cname(ssrc: u32, cname: &[u8], out: &mut Vec<u8>) {
    let cname = &cname[..cname.len().min(255)];
    // Chunk: SSRC (4) + type (1) + length (1) + text, then a null item-list terminator and
    // padding to the next 32-bit boundary (at least one null byte).
    let chunk_len = (4 + 2 + cname.len() + 1).next_multiple_of(4);
    let packet_len = 4 + chunk_len;
    out.push(0x81); // V=2, P=0, SC=1
    out.push(PT_SDES);
    out.extend_from_slice(&((packet_len / 4 - 1) as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    let pad = chunk_len - (4 + 2 + cname.len());
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// True when `buf` looks like RTCP rather than RTP: version 2 and a packet type in 192..=223
/// (RFC 5761 §4).
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 4 && buf[0] >> 6 == 2 && (192..=223).contains(&buf[1])
}

/// One packet of a received compound RTCP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcpPacket<'a> {
    pub packet_type: u8,
    /// The 5-bit count field (report blocks, SDES chunks, BYE sources).
    pub count: u8,
    /// The bytes after the 4-byte common header, without padding.
    pub body: &'a [u8],
}

impl RtcpPacket<'_> {
    /// The first SSRC field (sender of an SR/RR, first source of SDES/BYE), when present.
    pub fn ssrc(&self) -> Option<u32> {
        let b = self.body.get(..4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Why a received RTCP packet was not walked to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpError {
    /// Fewer than 4 bytes for a common header at `offset`.
    Truncated { offset: usize },
    /// Version field other than 2 at `offset`.
    BadVersion { offset: usize, version: u8 },
    /// The length field runs past the end of the buffer.
    LengthOverrun {
        offset: usize,
        length: usize,
        available: usize,
    },
    /// The padding count is zero or larger than the packet body.
    BadPadding { offset: usize },
}

impl fmt::Display for RtcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RtcpError::Truncated { offset } => write!(f, "rtcp: truncated header at byte {offset}"),
            RtcpError::BadVersion { offset, version } => {
                write!(f, "rtcp: version {version} at byte {offset}")
            }
            RtcpError::LengthOverrun {
                offset,
                length,
                available,
            } => write!(
                f,
                "rtcp: packet at byte {offset} claims {length} bytes, {available} available"
            ),
            RtcpError::BadPadding { offset } => write!(f, "rtcp: bad padding at byte {offset}"),
        }
    }
}

impl std::error::Error for RtcpError {}

/// Walks the packets of a compound RTCP packet. Yields at most one error, then stops.
pub fn packets(buf: &[u8]) -> RtcpPackets<'_> {
    RtcpPackets {
        buf,
        pos: 0,
        done: false,
    }
}

/// Iterator returned by [`packets`].
#[derive(Clone, Debug)]
pub struct RtcpPackets<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Iterator for RtcpPackets<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let offset = self.pos;
        let rest = &self.buf[offset..];
        let result = (|| {
            let header = rest.get(..4).ok_or(RtcpError::Truncated { offset })?;
            let version = header[0] >> 6;
            if version != 2 {
                return Err(RtcpError::BadVersion { offset, version });
            }
            let length = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
            if length > rest.len() {
                return Err(RtcpError::LengthOverrun {
                    offset,
                    length,
                    available: rest.len(),
                });
            }
            let mut body = &rest[4..length];
            if header[0] & 0x20 != 0 {
                let pad = usize::from(*body.last().ok_or(RtcpError::BadPadding { offset })?);
                if pad == 0 || pad > body.len() {
                    return Err(RtcpError::BadPadding { offset });
                }
                body = &body[..body.len() - pad];
            }
            Ok((
                RtcpPacket {
                    packet_type: header[1],
                    count: header[0] & 0x1f,
                    body,
                },
                length,
            ))
        })();
        match result {
            Ok((packet, length)) => {
                self.pos += length;
                Some(Ok(packet))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_from_unix_ms() {
        assert_eq!(NtpTimestamp::from_unix_ms(0).0, 2_208_988_800u64 << 32);
        // 1.5 s after the epoch: fraction is exactly one half.
        let t = NtpTimestamp::from_unix_ms(1500);
        assert_eq!(t.0 >> 32, 2_208_988_801);
        assert_eq!(t.0 as u32, 0x8000_0000);
        assert_eq!(
            NtpTimestamp::from_unix_ms(1_700_000_000_250).0 >> 32,
            3_908_988_800
        );
        assert_eq!(
            t.middle32(),
            ((2_208_988_801u64 & 0xffff) << 16 | 0x8000) as u32
        );
    }

    #[test]
    fn sender_report_byte_layout() {
        let sr = SenderReport {
            ssrc: 0x1122_3344,
            ntp: NtpTimestamp::from_unix_ms(1500),
            rtp_timestamp: 0xaabb_ccdd,
            packet_count: 3,
            octet_count: 0x0102,
        };
        let mut out = Vec::new();
        sr.write_compound(b"tessera", &mut out);
        let expected: Vec<u8> = [
            // SR: V=2 RC=0, PT=200, length 6
            &[0x80, 200, 0x00, 0x06][..],
            &[0x11, 0x22, 0x33, 0x44],
            &[0x83, 0xaa, 0x7e, 0x81, 0x80, 0x00, 0x00, 0x00], // NTP 2208988801.5
            &[0xaa, 0xbb, 0xcc, 0xdd],
            &[0, 0, 0, 3],
            &[0, 0, 0x01, 0x02],
            // SDES: V=2 SC=1, PT=202, length 4 (20 bytes)
            &[0x81, 202, 0x00, 0x04],
            &[0x11, 0x22, 0x33, 0x44],
            &[1, 7],
            b"tessera",
            &[0, 0, 0], // end + pad: 4+2+7 = 13 → 16
        ]
        .concat();
        assert_eq!(out, expected);
        let parsed: Vec<_> = packets(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].packet_type, PT_SR);
        assert_eq!(parsed[0].ssrc(), Some(0x1122_3344));
        assert_eq!(parsed[1].packet_type, PT_SDES);
        assert_eq!(parsed[1].count, 1);
        assert!(is_rtcp(&out));
    }

    #[test]
    fn sdes_padding_always_terminates() {
        for len in 0..12 {
            let mut out = Vec::new();
            write_sdes_cname(1, &vec![b'a'; len][..], &mut out);
            assert_eq!(out.len() % 4, 0);
            assert_eq!(out[9], len as u8);
            assert_eq!(*out.last().unwrap(), 0);
            assert_eq!((usize::from(out[3]) + 1) * 4, out.len());
        }
        let mut out = Vec::new();
        write_sdes_cname(1, &[b'x'; 300], &mut out);
        assert_eq!(out[9], 255);
    }

    #[test]
    fn receiver_reports_are_walked_and_garbage_is_an_error() {
        // RR with one report block + BYE with padding.
        let mut rr = vec![0x81, PT_RR, 0, 7];
        rr.extend_from_slice(&[0xaa; 28]);
        rr.extend_from_slice(&[0xa1, PT_BYE, 0, 2, 0, 0, 0, 9, 0, 0, 0, 4]);
        let got: Vec<_> = packets(&rr).collect();
        assert_eq!(got.len(), 2);
        let bye = got[1].unwrap();
        assert_eq!(bye.packet_type, PT_BYE);
        assert_eq!(bye.body, &[0, 0, 0, 9]);

        assert_eq!(
            packets(&[0x81, PT_RR, 0, 9, 0]).next(),
            Some(Err(RtcpError::LengthOverrun {
                offset: 0,
                length: 40,
                available: 5
            }))
        );
        assert_eq!(
            packets(&[0x40, 1, 2, 3]).next(),
            Some(Err(RtcpError::BadVersion {
                offset: 0,
                version: 1
            }))
        );
        assert_eq!(
            packets(&[0xa0, 200, 0, 0]).next(),
            Some(Err(RtcpError::BadPadding { offset: 0 }))
        );
        assert_eq!(
            packets(&[0x80, 200]).next(),
            Some(Err(RtcpError::Truncated { offset: 0 }))
        );
        assert!(!is_rtcp(&[0x80, 96, 0, 0]));

        // Deterministic garbage never panics and the iterator always ends.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8 ^ 0x80).collect();
            assert!(packets(&bytes).count() <= 64);
        }
    }
}
