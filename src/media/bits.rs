//! Bit-level reading and writing for codec syntax: the `u(n)`, `ue(v)`, `se(v)` descriptors
//! of ITU-T H.264 §7.2 and Exp-Golomb codes of §9.1, plus the RBSP trailing bits of
//! §7.3.2.11. ISO 14496-3 (AAC) syntax uses the same MSB-first `uimsbf` fields.
//!
//! This module owns bit packing only: it knows nothing of NAL units or emulation prevention
//! (see `media::h264`). The reader never panics on short or hostile input; every read
//! returns a [`BitsError`] that says at which bit it stopped.

use std::fmt;

/// Why a [`BitReader`] read failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitsError {
    /// The read needed `needed` bits but only `left` remained, at bit `bit_offset`.
    EndOfData {
        bit_offset: usize,
        needed: usize,
        left: usize,
    },
    /// An Exp-Golomb code with 32 or more leading zero bits starts at `bit_offset`; its value
    /// would not fit in 32 bits (H.264 §9.1 limits codes to 32-bit values).
    ExpGolombTooLong { bit_offset: usize },
    /// A whole-byte read was asked for at `bit_offset`, which is not on a byte boundary.
    Unaligned { bit_offset: usize },
}

impl fmt::Display for BitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BitsError::EndOfData {
                bit_offset,
                needed,
                left,
            } => write!(
                f,
                "end of data at bit {bit_offset}: needed {needed} bits, {left} left"
            ),
            BitsError::ExpGolombTooLong { bit_offset } => {
                write!(
                    f,
                    "Exp-Golomb code at bit {bit_offset} has 32 or more leading zeros"
                )
            }
            BitsError::Unaligned { bit_offset } => {
                write!(
                    f,
                    "byte read at bit {bit_offset}, which is not byte aligned"
                )
            }
        }
    }
}

impl std::error::Error for BitsError {}

/// Writes MSB-first bit fields into a growing byte buffer.
#[derive(Clone, Debug, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Pending bits, right-aligned; fewer than 8 between calls.
    pending: u32,
    pending_bits: u32,
}

impl BitWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer whose buffer can take `bytes` bytes before reallocating.
    pub fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(bytes),
            pending: 0,
            pending_bits: 0,
        }
    }

    /// `u(n)`: the `bits` low bits of `value`, MSB first. `bits` is at most 32; higher bits of
    /// `value` are ignored.
    pub fn u(&mut self, bits: u32, value: u32) {
        debug_assert!(bits <= 32, "u({bits}) is wider than 32 bits");
        let mut remaining = bits.min(32);
        while remaining > 0 {
            // Move at most 8 bits at a time so `pending` (< 8 bits) never overflows.
            let take = remaining.min(8);
            remaining -= take;
            let chunk = (value >> remaining) & ((1u32 << take) - 1);
            self.pending = (self.pending << take) | chunk;
            self.pending_bits += take;
            if self.pending_bits >= 8 {
                self.pending_bits -= 8;
                self.bytes.push((self.pending >> self.pending_bits) as u8);
                self.pending &= (1u32 << self.pending_bits) - 1;
            }
        }
    }

    /// One bit: 1 for `true`.
    pub fn flag(&mut self, value: bool) {
        self.u(1, u32::from(value));
    }

    /// `ue(v)`: unsigned Exp-Golomb code (H.264 §9.1).
    pub fn ue(&mut self, value: u32) {
        let code = u64::from(value) + 1;
        let len = 64 - code.leading_zeros(); // 1..=33 bits
        let suffix_bits = len - 1;
        // Prefix: `suffix_bits` zeros, then the leading 1 of `code`, then its low bits.
        if suffix_bits > 16 {
            self.u(16, 0);
            self.u(suffix_bits - 16, 0);
        } else {
            self.u(suffix_bits, 0);
        }
        self.u(1, 1);
        // `code - (1 << suffix_bits)` < 2^32 because suffix_bits <= 32: the cast is exact.
        self.u(suffix_bits, (code - (1u64 << suffix_bits)) as u32);
    }

    /// `se(v)`: signed Exp-Golomb code (H.264 §9.1.1, Table 9-3).
    pub fn se(&mut self, value: i32) {
        let v = i64::from(value);
        let code_num = if v > 0 { 2 * v - 1 } else { -2 * v };
        // code_num <= 2^32 - 2 for every value but i32::MIN (2^32), which has no 32-bit code.
        self.ue(u32::try_from(code_num).unwrap_or(u32::MAX));
    }

    /// Whole bytes, MSB first. Fast when the writer is byte aligned.
    pub fn bytes(&mut self, data: &[u8]) {
        if self.pending_bits == 0 {
            self.bytes.extend_from_slice(data);
        } else {
            for &b in data {
                self.u(8, u32::from(b));
            }
        }
    }

    /// Zero bits up to the next byte boundary (e.g. `pcm_alignment_zero_bit`, H.264 §7.3.5).
    pub fn align_zero(&mut self) {
        if self.pending_bits > 0 {
            self.u(8 - self.pending_bits, 0);
        }
    }

    /// `rbsp_trailing_bits()` (H.264 §7.3.2.11): a stop bit, then zeros to a byte boundary.
    pub fn rbsp_trailing_bits(&mut self) {
        self.u(1, 1);
        self.align_zero();
    }

    pub fn is_byte_aligned(&self) -> bool {
        self.pending_bits == 0
    }

    /// Bits written so far.
    pub fn bit_len(&self) -> usize {
        self.bytes.len() * 8 + self.pending_bits as usize
    }

    /// The written bytes; a partial last byte is padded with zero bits.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.align_zero();
        self.bytes
    }
}

/// Reads MSB-first bit fields from a byte slice. Never panics: reads past the end return
/// [`BitsError::EndOfData`] and leave the position unchanged.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    position: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, position: 0 }
    }

    /// Bits not read yet.
    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.position)
    }

    /// Bits read so far.
    pub fn position(&self) -> usize {
        self.position
    }

    pub fn is_byte_aligned(&self) -> bool {
        self.position & 7 == 0
    }

    fn need(&self, bits: usize) -> Result<(), BitsError> {
        let left = self.bits_left();
        if bits > left {
            Err(BitsError::EndOfData {
                bit_offset: self.position,
                needed: bits,
                left,
            })
        } else {
            Ok(())
        }
    }

    /// `u(n)` for `bits` in 0..=32.
    pub fn u(&mut self, bits: u32) -> Result<u32, BitsError> {
        debug_assert!(bits <= 32, "u({bits}) is wider than 32 bits");
        let bits = bits.min(32) as usize;
        self.need(bits)?;
        let mut value: u64 = 0;
        let mut remaining = bits;
        while remaining > 0 {
            // `need` checked that these bytes exist.
            let byte = self.data[self.position / 8];
            let bit_in_byte = self.position % 8;
            let take = remaining.min(8 - bit_in_byte);
            let chunk = (byte >> (8 - bit_in_byte - take)) & (((1u16 << take) - 1) as u8);
            value = (value << take) | u64::from(chunk);
            self.position += take;
            remaining -= take;
        }
        // At most 32 bits were gathered.
        Ok(value as u32)
    }

    /// One bit as a boolean.
    pub fn flag(&mut self) -> Result<bool, BitsError> {
        Ok(self.u(1)? == 1)
    }

    /// `ue(v)`: unsigned Exp-Golomb code (H.264 §9.1).
    pub fn ue(&mut self) -> Result<u32, BitsError> {
        let start = self.position;
        let mut leading_zeros = 0u32;
        loop {
            match self.u(1) {
                Ok(1) => break,
                Ok(_) => {
                    leading_zeros += 1;
                    if leading_zeros >= 32 {
                        self.position = start;
                        return Err(BitsError::ExpGolombTooLong { bit_offset: start });
                    }
                }
                Err(e) => {
                    self.position = start;
                    return Err(e);
                }
            }
        }
        match self.u(leading_zeros) {
            // leading_zeros <= 31, so the sum is at most 2^32 - 2.
            Ok(suffix) => Ok(((1u64 << leading_zeros) - 1 + u64::from(suffix)) as u32),
            Err(e) => {
                self.position = start;
                Err(e)
            }
        }
    }

    /// `se(v)`: signed Exp-Golomb code (H.264 §9.1.1).
    pub fn se(&mut self) -> Result<i32, BitsError> {
        let k = i64::from(self.ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |value| <= 2^31 - 1 because k <= 2^32 - 2.
        Ok(value as i32)
    }

    /// Skips `bits` bits.
    pub fn skip(&mut self, bits: usize) -> Result<(), BitsError> {
        self.need(bits)?;
        self.position += bits;
        Ok(())
    }

    /// `count` whole bytes, borrowed from the input. The reader must be byte aligned.
    pub fn bytes(&mut self, count: usize) -> Result<&'a [u8], BitsError> {
        if !self.is_byte_aligned() {
            return Err(BitsError::Unaligned {
                bit_offset: self.position,
            });
        }
        self.need(count.saturating_mul(8))?;
        let start = self.position / 8;
        self.position += count * 8;
        Ok(&self.data[start..start + count])
    }

    /// `more_rbsp_data()` (H.264 §7.2): true when anything but the `rbsp_trailing_bits` (the
    /// last 1 bit and the zeros after it) is left.
    pub fn more_rbsp_data(&self) -> bool {
        let Some(last_one) = self.last_set_bit() else {
            return false;
        };
        self.position < last_one
    }

    /// Bit position of the last 1 bit in the data (the RBSP stop bit), if any.
    fn last_set_bit(&self) -> Option<usize> {
        let (index, &byte) = self.data.iter().enumerate().rev().find(|(_, b)| **b != 0)?;
        Some(index * 8 + 7 - byte.trailing_zeros() as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_fields_round_trip() {
        let mut w = BitWriter::new();
        w.u(3, 0b101);
        w.u(5, 0b10011);
        w.u(12, 0xABC);
        w.u(32, 0xDEAD_BEEF);
        w.flag(true);
        assert_eq!(w.bit_len(), 53);
        let bytes = w.into_bytes();
        assert_eq!(bytes[0], 0b1011_0011);
        assert_eq!(bytes.len(), 7);
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.u(3), Ok(0b101));
        assert_eq!(r.u(5), Ok(0b10011));
        assert_eq!(r.u(12), Ok(0xABC));
        assert_eq!(r.u(32), Ok(0xDEAD_BEEF));
        assert_eq!(r.flag(), Ok(true));
        assert_eq!(r.bits_left(), 3);
    }

    #[test]
    fn exp_golomb_matches_table_9_2() {
        // codeNum 0..=8 from H.264 Table 9-2, and se mapping from Table 9-3.
        let mut w = BitWriter::new();
        w.ue(0); // 1
        w.ue(1); // 010
        w.ue(2); // 011
        w.ue(3); // 00100
        w.se(1); // 010
        w.se(-1); // 011
        w.se(2); // 00100
        w.rbsp_trailing_bits();
        let bytes = w.into_bytes();
        assert_eq!(bytes, vec![0b1010_0110, 0b0100_0100, 0b1100_1001]);
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.ue(), Ok(0));
        assert_eq!(r.ue(), Ok(1));
        assert_eq!(r.ue(), Ok(2));
        assert_eq!(r.ue(), Ok(3));
        assert_eq!(r.se(), Ok(1));
        assert_eq!(r.se(), Ok(-1));
        assert_eq!(r.se(), Ok(2));
        assert!(!r.more_rbsp_data());
    }

    #[test]
    fn exp_golomb_extremes_round_trip() {
        let values = [0, 1, 254, 255, 65_535, 1 << 20, u32::MAX - 1, u32::MAX];
        let mut w = BitWriter::new();
        for &v in &values {
            w.ue(v);
        }
        for v in [i32::MAX, -i32::MAX, 0, -7] {
            w.se(v);
        }
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        for &v in &values[..6] {
            assert_eq!(r.ue(), Ok(v));
        }
        assert_eq!(r.ue(), Ok(u32::MAX - 1));
        // u32::MAX needs 32 leading zeros: writable, rejected on read as out of range.
        let at = r.position();
        assert_eq!(r.ue(), Err(BitsError::ExpGolombTooLong { bit_offset: at }));
        assert_eq!(r.position(), at);
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        let mut r = BitReader::new(&[0b0000_0001]);
        assert_eq!(
            r.u(9),
            Err(BitsError::EndOfData {
                bit_offset: 0,
                needed: 9,
                left: 8
            })
        );
        assert_eq!(r.position(), 0);
        // 7 zeros then a 1 then nothing: the suffix is missing.
        assert!(r.ue().is_err());
        assert_eq!(r.position(), 0);
        let mut empty = BitReader::new(&[]);
        assert!(empty.flag().is_err());
        assert!(empty.se().is_err());
        assert!(empty.bytes(1).is_err());
        assert!(!empty.more_rbsp_data());
        assert_eq!(empty.bits_left(), 0);
    }

    #[test]
    fn aligned_bytes_and_trailing_bits() {
        let mut w = BitWriter::with_capacity(8);
        w.u(3, 0);
        w.align_zero();
        assert!(w.is_byte_aligned());
        w.bytes(&[0x12, 0x34]);
        w.u(4, 0xF);
        w.bytes(&[0xAB]); // unaligned path
        w.rbsp_trailing_bits();
        let bytes = w.into_bytes();
        assert_eq!(bytes, vec![0x00, 0x12, 0x34, 0xFA, 0xB8]);
        let mut r = BitReader::new(&bytes);
        r.skip(8).unwrap();
        assert_eq!(r.bytes(2), Ok(&[0x12, 0x34][..]));
        assert!(r.more_rbsp_data());
        assert_eq!(r.u(12), Ok(0xFAB));
        assert!(!r.more_rbsp_data());
        assert_eq!(r.bytes(1), Err(BitsError::Unaligned { bit_offset: 36 }));
    }
}
