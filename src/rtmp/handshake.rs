//! The server side of the RTMP handshake (Adobe RTMP spec 1.0 §5.2): C0+C1 → S0+S1+S2 → C2.
//!
//! Owns: version checking (§5.2.2), both response schemes, and the check-then-parse of the
//! three client packets. Two schemes exist in the wild:
//!
//! * **simple** (§5.2.3, §5.2.4): C1/S1 are `time, zero, 1528 random bytes`, S2 echoes C1.
//!   librtmp in its default mode and many encoders use it; ffmpeg accepts it.
//! * **digest** (the "complex" handshake of Flash Player 9+ and FMS 3+, never published in
//!   the spec, documented by the librtmp/ffmpeg/nginx-rtmp implementations): C1 carries an
//!   HMAC-SHA256 digest at an offset derived from four bytes of C1 (two layouts: the offset
//!   bytes at 8 or at 772), keyed with the first 30 bytes of the Flash Player key. A server
//!   that finds it answers with an S1 digested the same way with the first 36 bytes of the
//!   Flash Media Server key, and an S2 whose last 32 bytes are
//!   `HMAC(HMAC(full FMS key, C1 digest), S2[..1504])`. Flash players (and ffmpeg when it
//!   plays) verify both. When C1 has a non-zero version but no valid digest we fall back to
//!   the simple scheme.
//!
//! Never does: I/O, clocks (the epoch is passed in), OS randomness (a seeded generator fills
//! the random fields), RTMPE encryption (version 6/8 is refused), or verifying C2, which
//! servers conventionally ignore.

use super::sha256::{DIGEST_LEN, hmac_sha256, hmac_sha256_parts};
use std::fmt;

/// Size of C1, C2, S1 and S2 (§5.2.3).
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only protocol version we speak (§5.2.2: C0/S0 = 3).
pub const RTMP_VERSION: u8 = 3;

/// "Genuine Adobe Flash Player 001" followed by 32 constant bytes; C1 digests use the first
/// 30 bytes.
const PLAYER_KEY_TEXT_LEN: usize = 30;
/// "Genuine Adobe Flash Media Server 001" followed by the same 32 constant bytes; S1 digests
/// use the first 36 bytes, the S2 key derivation all 68.
const SERVER_KEY: [u8; 68] = *b"Genuine Adobe Flash Media Server 001\
\xf0\xee\xc2\x4a\x80\x68\xbe\xe8\x2e\x00\xd0\xd1\x02\x9e\x7e\x57\
\x6e\xec\x5d\x2d\x29\x80\x6f\xab\x93\xb8\xe6\x36\xcf\xeb\x31\xae";
const SERVER_KEY_TEXT_LEN: usize = 36;
const PLAYER_KEY_TEXT: &[u8; PLAYER_KEY_TEXT_LEN] = b"Genuine Adobe Flash Player 001";

/// The version field our digest S1 announces (≥ 3 tells clients to verify the digest).
const SERVER_VERSION: [u8; 4] = [0x04, 0x05, 0x00, 0x01];

/// Where a digest-handshake packet keeps its digest offset bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestLayout {
    /// Offset bytes at 8..12, digest within 12..740 ("scheme 0"; ffmpeg, librtmp).
    OffsetAt8,
    /// Offset bytes at 772..776, digest within 776..1504 ("scheme 1"; Flash Player 10+).
    OffsetAt772,
}

impl DigestLayout {
    fn base(self) -> usize {
        match self {
            DigestLayout::OffsetAt8 => 8,
            DigestLayout::OffsetAt772 => 772,
        }
    }

    /// Position of the 32-byte digest inside a 1536-byte packet.
    pub fn digest_offset(self, packet: &[u8; HANDSHAKE_SIZE]) -> usize {
        let base = self.base();
        let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
        // At most 727 + 772 + 4 + 32 = 1535 ≤ 1536: always in bounds.
        sum % 728 + base + 4
    }
}

/// Which scheme the client used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Simple,
    Digest(DigestLayout),
}

/// A handshake failure, with the byte that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// C0 asked for another version: 6 and 8 are RTMPE (encrypted), others are not RTMP at all
    /// (an HTTP request starts with `G` = 0x47, a TLS hello with 0x16).
    UnsupportedVersion(u8),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::UnsupportedVersion(v @ (6 | 8)) => {
                write!(f, "rtmp handshake: C0 version {v} (RTMPE) is not supported")
            }
            HandshakeError::UnsupportedVersion(v) => {
                write!(f, "rtmp handshake: C0 version {v} is not RTMP 3")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    WaitC0C1,
    WaitC2,
    Done,
}

/// The server half of one connection's handshake.
#[derive(Debug)]
pub struct ServerHandshake {
    state: State,
    rng: u64,
    epoch_ms: u32,
    scheme: Option<Scheme>,
}

impl ServerHandshake {
    /// `seed` fills the random fields (vary it per connection); `epoch_ms` is S1's time field.
    pub fn new(seed: u64, epoch_ms: u32) -> Self {
        ServerHandshake {
            state: State::WaitC0C1,
            rng: seed | 1,
            epoch_ms,
            scheme: None,
        }
    }

    /// True once C2 has been received; chunked messages follow.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The scheme the client used, once C1 has been read.
    pub fn scheme(&self) -> Option<Scheme> {
        self.scheme
    }

    /// Consumes what it can of `buf` (check-then-parse: only whole packets), appends
    /// S0+S1+S2 to `out` after C0+C1, and returns the bytes consumed. Returns 0 when more input
    /// is needed or the handshake is done.
    pub fn handle(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Result<usize, HandshakeError> {
        match self.state {
            State::WaitC0C1 => {
                let Some(&version) = buf.first() else {
                    return Ok(0);
                };
                if version != RTMP_VERSION {
                    return Err(HandshakeError::UnsupportedVersion(version));
                }
                let Some(c1) = buf.get(1..1 + HANDSHAKE_SIZE) else {
                    return Ok(0);
                };
                let c1: &[u8; HANDSHAKE_SIZE] = c1.try_into().expect("slice of HANDSHAKE_SIZE");
                self.respond(c1, out);
                self.state = State::WaitC2;
                Ok(1 + HANDSHAKE_SIZE)
            }
            State::WaitC2 => {
                if buf.len() < HANDSHAKE_SIZE {
                    return Ok(0);
                }
                self.state = State::Done;
                Ok(HANDSHAKE_SIZE)
            }
            State::Done => Ok(0),
        }
    }

    fn respond(&mut self, c1: &[u8; HANDSHAKE_SIZE], out: &mut Vec<u8>) {
        let client_digest = if c1[4..8] == [0, 0, 0, 0] {
            None
        } else {
            [DigestLayout::OffsetAt8, DigestLayout::OffsetAt772]
                .into_iter()
                .find_map(|layout| find_client_digest(c1, layout).map(|d| (layout, d)))
        };
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        match client_digest {
            None => {
                self.scheme = Some(Scheme::Simple);
                // S1 (§5.2.3): time, zero, random.
                let start = out.len();
                out.extend_from_slice(&self.epoch_ms.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
                out.resize(start + HANDSHAKE_SIZE, 0);
                self.fill_random(&mut out[start + 8..]);
                // S2 (§5.2.4): the peer's C1 echoed.
                out.extend_from_slice(c1);
            }
            Some((layout, digest)) => {
                self.scheme = Some(Scheme::Digest(layout));
                let mut s1 = [0u8; HANDSHAKE_SIZE];
                s1[..4].copy_from_slice(&self.epoch_ms.to_be_bytes());
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                self.fill_random(&mut s1[8..]);
                let at = layout.digest_offset(&s1);
                let d = hmac_sha256_parts(
                    &SERVER_KEY[..SERVER_KEY_TEXT_LEN],
                    &[&s1[..at], &s1[at + DIGEST_LEN..]],
                );
                s1[at..at + DIGEST_LEN].copy_from_slice(&d);
                out.extend_from_slice(&s1);

                let mut s2 = [0u8; HANDSHAKE_SIZE];
                self.fill_random(&mut s2[..HANDSHAKE_SIZE - DIGEST_LEN]);
                let key = hmac_sha256(&SERVER_KEY, &digest);
                let sig = hmac_sha256(&key, &s2[..HANDSHAKE_SIZE - DIGEST_LEN]);
                s2[HANDSHAKE_SIZE - DIGEST_LEN..].copy_from_slice(&sig);
                out.extend_from_slice(&s2);
            }
        }
    }

    /// xorshift64*: the fields only need to look random.
    fn fill_random(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let v = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The digest of a client C1 in `layout`, when it verifies under the Flash Player key.
fn find_client_digest(c1: &[u8; HANDSHAKE_SIZE], layout: DigestLayout) -> Option<[u8; 32]> {
    let at = layout.digest_offset(c1);
    let want = hmac_sha256_parts(PLAYER_KEY_TEXT, &[&c1[..at], &c1[at + DIGEST_LEN..]]);
    (c1[at..at + DIGEST_LEN] == want).then_some(want)
}

/// Builds a client C0+C1 with a valid digest in `layout` (tests and the scratch client).
pub fn digest_c0c1(layout: DigestLayout, fill: u8) -> Vec<u8> {
    let mut c1 = [fill; HANDSHAKE_SIZE];
    c1[..4].copy_from_slice(&[0, 0, 0, 0]);
    c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
    let at = layout.digest_offset(&c1);
    let d = hmac_sha256_parts(PLAYER_KEY_TEXT, &[&c1[..at], &c1[at + DIGEST_LEN..]]);
    c1[at..at + DIGEST_LEN].copy_from_slice(&d);
    let mut out = vec![RTMP_VERSION];
    out.extend_from_slice(&c1);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_scheme_echoes_c1() {
        let mut hs = ServerHandshake::new(42, 0x01020304);
        let mut c0c1 = vec![3u8];
        c0c1.extend((0..HANDSHAKE_SIZE).map(|i| if (4..8).contains(&i) { 0 } else { i as u8 }));
        let mut out = Vec::new();
        // Check-then-parse: nothing is consumed until C0+C1 are whole.
        assert_eq!(hs.handle(&c0c1[..1000], &mut out), Ok(0));
        assert!(out.is_empty());
        assert_eq!(hs.handle(&c0c1, &mut out), Ok(1537));
        assert_eq!(hs.scheme(), Some(Scheme::Simple));
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out[0], 3);
        assert_eq!(&out[1..9], &[1, 2, 3, 4, 0, 0, 0, 0]);
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c0c1[1..]);
        assert!(!hs.is_done());
        assert_eq!(hs.handle(&[0; 100], &mut out), Ok(0));
        assert_eq!(
            hs.handle(&[0; HANDSHAKE_SIZE + 5], &mut out),
            Ok(HANDSHAKE_SIZE)
        );
        assert!(hs.is_done());
        assert_eq!(hs.handle(&[0; 10], &mut out), Ok(0));
    }

    #[test]
    fn refuses_other_versions() {
        let mut hs = ServerHandshake::new(1, 0);
        let mut out = Vec::new();
        assert_eq!(
            hs.handle(b"GET / HTTP/1.1\r\n", &mut out),
            Err(HandshakeError::UnsupportedVersion(b'G'))
        );
        assert!(
            HandshakeError::UnsupportedVersion(6)
                .to_string()
                .contains("RTMPE")
        );
    }

    /// Verifies S1 and S2 the way ffmpeg's `rtmp_handshake` does when it plays.
    fn client_verifies(c0c1: &[u8], out: &[u8], layout: DigestLayout) {
        let s1: &[u8; HANDSHAKE_SIZE] = out[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
        assert!(s1[4] >= 3, "version tells the client to verify");
        let at = layout.digest_offset(s1);
        let want = hmac_sha256_parts(
            &SERVER_KEY[..SERVER_KEY_TEXT_LEN],
            &[&s1[..at], &s1[at + 32..]],
        );
        assert_eq!(&s1[at..at + 32], &want);
        let c1: &[u8; HANDSHAKE_SIZE] = c0c1[1..].try_into().unwrap();
        let cat = layout.digest_offset(c1);
        let key = hmac_sha256(&SERVER_KEY, &c1[cat..cat + 32]);
        let s2 = &out[1 + HANDSHAKE_SIZE..];
        assert_eq!(hmac_sha256(&key, &s2[..1504]), s2[1504..]);
    }

    #[test]
    fn digest_scheme_both_layouts() {
        for layout in [DigestLayout::OffsetAt8, DigestLayout::OffsetAt772] {
            let c0c1 = digest_c0c1(layout, 0x5a);
            let mut hs = ServerHandshake::new(7, 1000);
            let mut out = Vec::new();
            assert_eq!(hs.handle(&c0c1, &mut out), Ok(1537));
            assert_eq!(hs.scheme(), Some(Scheme::Digest(layout)));
            client_verifies(&c0c1, &out, layout);
        }
    }

    #[test]
    fn bad_digest_falls_back_to_simple() {
        let mut c0c1 = digest_c0c1(DigestLayout::OffsetAt8, 0x11);
        c0c1[1500] ^= 0xff;
        c0c1[100] ^= 0xff;
        let mut hs = ServerHandshake::new(7, 1000);
        let mut out = Vec::new();
        hs.handle(&c0c1, &mut out).unwrap();
        assert_eq!(hs.scheme(), Some(Scheme::Simple));
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c0c1[1..]);
    }
}
