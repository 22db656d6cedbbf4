//! Flussonic `securetoken` compatibility (spec §7.2): tokens a site signs with a shared
//! secret and SHA-1, verified here with no backend round trip.
//!
//! Owns: parsing, verifying and signing the `securetoken` format. Never does: I/O, clocks
//! (the time is passed in), or deciding what follows `NotSigned`.
//!
//! # Format (as Flussonic documents it)
//!
//! ```text
//! hash  = hex(sha1(streamname + ip + starttime + endtime + secretkey + salt))
//! token = hash + "-" + salt + "-" + endtime + "-" + starttime
//! ```
//!
//! Sources: Flussonic's documentation page "Securing access to streams (authorization
//! with token)" (flussonic.com/doc/authorization/securing-access-to-streams-authorization-with-token/),
//! which gives `string = streamname + ip + starttime + endtime + secretkey + salt` and
//! `sha1(string) + salt + endtime + starttime`, joined by `-` in its PHP example; and the
//! PHP generators derived from that example (`$hash.'-'.$salt.'-'.$endtime.'-'.$starttime`,
//! `$starttime = time() - $desync`, and, from v20.07, "Set $ipaddr = 'no_check_ip' if you
//! want to exclude IP address of client devices from checking"). Times are Unix seconds as
//! decimal text; the hash is hex (PHP's `sha1()` writes lowercase; we accept either case).
//!
//! With `no_check_ip` (`SecureToken::new(secret, false)`), the ip part may be the literal
//! `no_check_ip`, empty (older generators), or the client's address. Newer Flussonic
//! documentation appends an optional `user_id` to the hashed string for its session
//! limiter; how the server learns that id is not documented, so it is not supported yet.
//!
//! Valid while `starttime <= now < endtime`; a token outside that window is `Expired`.

use crate::auth::signed::SignedVerdict;
use crate::auth::verdict::canonical_ip;
use crate::constant_time::constant_time_eq;
use sha1::{Digest, Sha1};
use std::fmt;
use std::net::IpAddr;

/// The ip text a site hashes when the server does not check client addresses.
pub const NO_CHECK_IP: &str = "no_check_ip";
/// Longest token looked at; longer ones are `NotSigned`.
pub const MAX_SECURETOKEN_LEN: usize = 512;
/// Longest salt accepted (PHP examples use 32 hex digits).
pub const MAX_SALT_LEN: usize = 128;

/// A `securetoken://SECRET[?no_check_ip=true]` checker.
#[derive(Clone)]
pub struct SecureToken {
    secret: Box<[u8]>,
    check_ip: bool,
}

impl fmt::Debug for SecureToken {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureToken")
            .field("check_ip", &self.check_ip)
            .finish_non_exhaustive()
    }
}

/// Why a token could not be signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecureTokenError {
    /// Salt empty, too long, or with characters outside `A-Z a-z 0-9 _`.
    BadSalt,
    /// Times negative, or `endtime` not after `starttime`.
    BadTimes { starttime: i64, endtime: i64 },
}

impl fmt::Display for SecureTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecureTokenError::BadSalt => {
                f.write_str("securetoken salt must be 1-128 characters of A-Z a-z 0-9 _")
            }
            SecureTokenError::BadTimes { starttime, endtime } => write!(
                f,
                "securetoken times: need 0 <= starttime ({starttime}) < endtime ({endtime})"
            ),
        }
    }
}

impl std::error::Error for SecureTokenError {}

impl SecureToken {
    /// `check_ip: false` is Flussonic's `no_check_ip=true`.
    pub fn new(secret: &[u8], check_ip: bool) -> Self {
        SecureToken {
            secret: secret.into(),
            check_ip,
        }
    }

    /// Checks `token` for a play of `stream` (the name without a leading `/`) by `ip`.
    /// Wrong stream or wrong address show up as `BadSignature`: both are inside the hash.
    pub fn verify(&self, token: &[u8], stream: &str, ip: IpAddr, now_unix: i64) -> SignedVerdict {
        let Some(parts) = SecureTokenParts::split(token) else {
            return SignedVerdict::NotSigned;
        };
        let client = canonical_ip(ip).to_string();
        let mut candidates: [Option<&str>; 3] = [Some(&client), None, None];
        if !self.check_ip {
            candidates[1] = Some(NO_CHECK_IP);
            candidates[2] = Some("");
        }
        // Every candidate is hashed and compared, match or not, so the time taken does not
        // say which one matched.
        let mut matched = false;
        for ip_text in candidates.into_iter().flatten() {
            let digest = self.digest(
                stream,
                ip_text,
                parts.starttime_text,
                parts.endtime_text,
                parts.salt,
            );
            matched |= constant_time_eq(&digest, &parts.hash);
        }
        if !matched {
            return SignedVerdict::BadSignature;
        }
        if now_unix < parts.starttime || now_unix >= parts.endtime {
            return SignedVerdict::Expired;
        }
        SignedVerdict::Valid {
            expires: parts.endtime,
        }
    }

    /// Signs a token as a Flussonic site would. `ip: None` signs with `no_check_ip` (only
    /// useful against a checker built with `check_ip: false`).
    pub fn sign(
        &self,
        stream: &str,
        ip: Option<IpAddr>,
        starttime: i64,
        endtime: i64,
        salt: &str,
    ) -> Result<String, SecureTokenError> {
        if salt.is_empty()
            || salt.len() > MAX_SALT_LEN
            || !salt.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(SecureTokenError::BadSalt);
        }
        if starttime < 0 || endtime <= starttime {
            return Err(SecureTokenError::BadTimes { starttime, endtime });
        }
        let ip_text = ip.map_or_else(|| NO_CHECK_IP.to_owned(), |ip| canonical_ip(ip).to_string());
        let (start, end) = (starttime.to_string(), endtime.to_string());
        let digest = self.digest(
            stream,
            &ip_text,
            start.as_bytes(),
            end.as_bytes(),
            salt.as_bytes(),
        );
        let mut token = String::with_capacity(40 + salt.len() + 26);
        for b in digest {
            token.push(char::from(HEX[usize::from(b >> 4)]));
            token.push(char::from(HEX[usize::from(b & 15)]));
        }
        token.push('-');
        token.push_str(salt);
        token.push('-');
        token.push_str(&end);
        token.push('-');
        token.push_str(&start);
        Ok(token)
    }

    fn digest(&self, stream: &str, ip: &str, start: &[u8], end: &[u8], salt: &[u8]) -> [u8; 20] {
        let mut h = Sha1::new();
        h.update(stream.as_bytes());
        h.update(ip.as_bytes());
        h.update(start);
        h.update(end);
        h.update(&self.secret);
        h.update(salt);
        h.finalize().into()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The fields of a token with the `securetoken` shape. The times are kept as sent, since
/// the hash covers their text (a leading zero changes it).
struct SecureTokenParts<'a> {
    hash: [u8; 20],
    salt: &'a [u8],
    endtime_text: &'a [u8],
    starttime_text: &'a [u8],
    endtime: i64,
    starttime: i64,
}

impl<'a> SecureTokenParts<'a> {
    fn split(token: &'a [u8]) -> Option<SecureTokenParts<'a>> {
        if token.len() > MAX_SECURETOKEN_LEN || token.len() < 40 + 6 || token[40] != b'-' {
            return None;
        }
        let hash = decode_hex_20(&token[..40])?;
        let rest = &token[41..];
        let mut from_right = rest.rsplitn(3, |&b| b == b'-');
        let starttime_text = from_right.next()?;
        let endtime_text = from_right.next()?;
        let salt = from_right.next()?;
        if salt.is_empty()
            || salt.len() > MAX_SALT_LEN
            || !salt.iter().all(|b| b.is_ascii_graphic())
        {
            return None;
        }
        Some(SecureTokenParts {
            hash,
            salt,
            endtime: parse_unix(endtime_text)?,
            starttime: parse_unix(starttime_text)?,
            endtime_text,
            starttime_text,
        })
    }
}

/// 1 to 12 decimal digits.
fn parse_unix(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 12 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')))
}

fn decode_hex_20(text: &[u8]) -> Option<[u8; 20]> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 20];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        *out.get_mut(i)? = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_700_000_000;
    const END: i64 = 1_700_010_800;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matches_the_documented_php_generator() {
        // sha1("bbc" . "192.0.2.7" . "1700000000" . "1700010800" . "SECRETKEY" . "a1b2c3"),
        // computed independently (python3 hashlib), joined as the PHP example does.
        let st = SecureToken::new(b"SECRETKEY", true);
        let token = st
            .sign("bbc", Some(ip("192.0.2.7")), START, END, "a1b2c3")
            .unwrap();
        assert_eq!(
            token,
            "5c9fdef41595ae92608594cecd7b27113469ff18-a1b2c3-1700010800-1700000000"
        );
        assert_eq!(
            st.verify(token.as_bytes(), "bbc", ip("192.0.2.7"), START + 1),
            SignedVerdict::Valid { expires: END }
        );
        // Upper-case hex from another generator is the same hash.
        let upper = format!("{}{}", token[..40].to_ascii_uppercase(), &token[40..]);
        assert_eq!(
            st.verify(upper.as_bytes(), "bbc", ip("::ffff:192.0.2.7"), START),
            SignedVerdict::Valid { expires: END }
        );
    }

    #[test]
    fn refusals() {
        let st = SecureToken::new(b"SECRETKEY", true);
        let token = st
            .sign("bbc", Some(ip("192.0.2.7")), START, END, "a1b2c3")
            .unwrap();
        let v = |t: &str, stream, client, now| st.verify(t.as_bytes(), stream, ip(client), now);
        assert_eq!(v(&token, "bbc", "192.0.2.7", END), SignedVerdict::Expired);
        assert_eq!(
            v(&token, "bbc", "192.0.2.7", START - 1),
            SignedVerdict::Expired
        );
        assert_eq!(
            v(&token, "cnn", "192.0.2.7", START),
            SignedVerdict::BadSignature
        );
        assert_eq!(
            v(&token, "bbc", "192.0.2.8", START),
            SignedVerdict::BadSignature
        );
        let other_key = SecureToken::new(b"OTHER", true);
        assert_eq!(
            other_key.verify(token.as_bytes(), "bbc", ip("192.0.2.7"), START),
            SignedVerdict::BadSignature
        );
        // Stretching the window breaks the hash.
        let stretched = token.replace("1700010800", "1800010800");
        assert_eq!(
            v(&stretched, "bbc", "192.0.2.7", START),
            SignedVerdict::BadSignature
        );
        // A token signed without an address is refused when addresses are checked.
        let ipless = st.sign("bbc", None, START, END, "a1b2c3").unwrap();
        assert_eq!(
            v(&ipless, "bbc", "192.0.2.7", START),
            SignedVerdict::BadSignature
        );
    }

    #[test]
    fn no_check_ip() {
        let st = SecureToken::new(b"SECRETKEY", false);
        let ipless = st.sign("bbc", None, START, END, "s").unwrap();
        let bound = st
            .sign("bbc", Some(ip("192.0.2.7")), START, END, "s")
            .unwrap();
        for t in [&ipless, &bound] {
            assert_eq!(
                st.verify(t.as_bytes(), "bbc", ip("192.0.2.7"), START),
                SignedVerdict::Valid { expires: END }
            );
        }
        assert_eq!(
            st.verify(ipless.as_bytes(), "bbc", ip("2001:db8::9"), START),
            SignedVerdict::Valid { expires: END }
        );
        // Older generators hashed an empty ip.
        let mut h = Sha1::new();
        h.update(b"bbc1700000000" as &[u8]);
        h.update(b"1700010800SECRETKEYs" as &[u8]);
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let empty_ip = format!("{hex}-s-{END}-{START}");
        assert_eq!(
            st.verify(empty_ip.as_bytes(), "bbc", ip("192.0.2.1"), START),
            SignedVerdict::Valid { expires: END }
        );
    }

    #[test]
    fn not_securetoken_falls_through() {
        let st = SecureToken::new(b"k", true);
        for t in [
            "test1",
            "",
            "v1.k1.1.a.b.c",
            // 39 hex digits.
            "da39a3ee5e6b4b0d3255bfef95601890afd8070-s-2-1",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709-s-2",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709-s-x-1",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709--2-1",
            "zz39a3ee5e6b4b0d3255bfef95601890afd80709-s-2-1",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709-s-2-1234567890123",
        ] {
            assert_eq!(
                st.verify(t.as_bytes(), "s", ip("192.0.2.1"), 1),
                SignedVerdict::NotSigned,
                "{t}"
            );
        }
        // A salt with dashes splits from the right.
        let t = "da39a3ee5e6b4b0d3255bfef95601890afd80709-a-b-2-1";
        assert_eq!(
            st.verify(t.as_bytes(), "s", ip("192.0.2.1"), 1),
            SignedVerdict::BadSignature
        );
    }

    #[test]
    fn sign_refusals() {
        let st = SecureToken::new(b"k", true);
        assert_eq!(st.sign("s", None, 1, 2, ""), Err(SecureTokenError::BadSalt));
        assert_eq!(
            st.sign("s", None, 1, 2, "a-b"),
            Err(SecureTokenError::BadSalt)
        );
        assert!(matches!(
            st.sign("s", None, 5, 5, "a"),
            Err(SecureTokenError::BadTimes { .. })
        ));
        let secretive = SecureToken::new(b"SUPERSECRET", true);
        assert!(!format!("{secretive:?}").contains("SUPERSECRET"));
    }

    /// Deterministic garbage (xorshift64) and mutated genuine tokens never panic and are
    /// never accepted.
    #[test]
    fn garbage_never_panics() {
        let st = SecureToken::new(b"SECRETKEY", false);
        let genuine = st
            .sign("bbc", Some(ip("192.0.2.7")), START, END, "a1b2c3")
            .unwrap()
            .into_bytes();
        let mut x: u64 = 0x0123_4567_89ab_cdef;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"0123456789abcdef-ABCxyz";
        for round in 0..20_000 {
            let mut t = if round % 2 == 0 {
                genuine.clone()
            } else {
                (0..(next() % 100))
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            };
            for _ in 0..(1 + next() % 3) {
                if t.is_empty() {
                    break;
                }
                let i = (next() as usize) % t.len();
                t[i] = if next() % 2 == 0 {
                    next() as u8
                } else {
                    alphabet[(next() % alphabet.len() as u64) as usize]
                };
            }
            let v = st.verify(&t, "bbc", ip("192.0.2.7"), START);
            let same_hash = t.len() >= 40 && t[..40].eq_ignore_ascii_case(&genuine[..40]);
            if t != genuine && !same_hash {
                assert!(!matches!(v, SignedVerdict::Valid { .. }), "{t:?}");
            }
        }
    }
}
