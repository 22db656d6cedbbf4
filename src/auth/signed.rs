//! Signed tokens: playback tokens verified with no backend round trip (spec §7.2).
//!
//! Owns: the `v1` token format, `SignedKeys` (several key ids for rotation), `verify` and
//! `sign`, and `SignedVerdict`, which `auth::securetoken` shares.
//! Never does: I/O, clocks (the time is passed in), caching, or deciding what happens after
//! `NotSigned` (the caller falls through to its other rules, spec §2 / §7.1).
//!
//! # Format
//!
//! ```text
//! v1.<kid>.<exp>.<scope64>.<ip64>.<mac64>
//! ```
//!
//! * `kid`: key id, 1–32 of `A-Z a-z 0-9 _ -`; picks the secret (old and new keys live side
//!   by side during a rotation).
//! * `exp`: expiry, Unix seconds, 1–12 decimal digits. Valid while `now < exp`.
//! * `scope64`: base64url (no padding) of the scope: a stream name (`news/hd`), a prefix
//!   (`news/*`: every stream under `news/`), or `*` (every stream).
//! * `ip64`: base64url of the IP binding: empty (any client), an address (`192.0.2.7`) or a
//!   CIDR (`192.0.2.0/24`, `2001:db8::/32`). IPv4-mapped IPv6 clients count as IPv4.
//! * `mac64`: base64url of `HMAC-SHA256(secret, "v1.<kid>.<exp>.<scope64>.<ip64>")`, the
//!   token's own text before the last dot.
//!
//! Scope and binding are base64url so that stream names and IPv4 addresses (which contain
//! dots) cannot make the fields ambiguous, and so that a token is made only of
//! `A-Z a-z 0-9 - _ .`: it passes through query strings, playlists, RTMP play names and
//! RTSP URLs unencoded. Example (key `k1` = `0123456789abcdef0123456789abcdef`, scope
//! `news/*`, bound to `192.0.2.0/24`, expiring at 1 700 000 000):
//!
//! ```text
//! v1.k1.1700000000.bmV3cy8q.MTkyLjAuMi4wLzI0.J8caWxYybwGauOY1b-xeFALr1IOunFIAOjYihksUvhk
//! ```
//!
//! Checks, in order: format (else `NotSigned`), key id and MAC in constant time (else
//! `BadSignature`, so nothing about a forged token's fields is revealed), expiry, scope,
//! IP binding.

use crate::auth::verdict::{DenyReason, canonical_ip};
use crate::config::Cidr;
pub use crate::config::signed_key::{
    MAX_KID_LEN, MAX_SIGNING_KEYS, MIN_SECRET_LEN, SignedKeyError, check_new_key, is_kid,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::net::IpAddr;

type HmacSha256 = Hmac<Sha256>;

/// The version field every token of this format starts with.
pub const SIGNED_TOKEN_VERSION: &str = "v1";
/// Longest token looked at; longer ones are `NotSigned`.
pub const MAX_SIGNED_TOKEN_LEN: usize = 1024;
/// Longest scope accepted when signing.
pub const MAX_SCOPE_LEN: usize = 512;
/// Largest expiry (12 digits: year 33658).
const MAX_EXPIRY: i64 = 999_999_999_999;

/// What a token says about a play request; shared by `v1` tokens and Flussonic
/// `securetoken`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedVerdict {
    /// Not a token of this format: fall through to the other rules.
    NotSigned,
    /// Good for this stream and client until `expires` (Unix seconds): cap any cached
    /// decision at that time.
    Valid { expires: i64 },
    /// Past its expiry (or, for `securetoken`, before its start time).
    Expired,
    /// Unknown key id, a MAC that does not match, or a malformed token of this format.
    BadSignature,
    /// Genuine, but for another stream.
    WrongStream,
    /// Genuine, but bound to other client addresses.
    WrongIp,
}

impl SignedVerdict {
    /// The spec's reason for a refusal (§5); `None` for `NotSigned` and `Valid`.
    pub fn deny_reason(self) -> Option<DenyReason> {
        match self {
            SignedVerdict::NotSigned | SignedVerdict::Valid { .. } => None,
            SignedVerdict::Expired => Some(DenyReason::TokenExpired),
            SignedVerdict::BadSignature => Some(DenyReason::BadSignature),
            SignedVerdict::WrongStream | SignedVerdict::WrongIp => Some(DenyReason::BackendDenied),
        }
    }
}

/// Why a token was not signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignError {
    UnknownKid { kid: String },
    BadScope { problem: &'static str },
    BadExpiry { expires: i64 },
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::UnknownKid { kid } => write!(f, "no signing key with id {kid:?}"),
            SignError::BadScope { problem } => write!(f, "token scope: {problem}"),
            SignError::BadExpiry { expires } => {
                write!(f, "token expiry {expires} is not in 0..=999999999999")
            }
        }
    }
}

impl std::error::Error for SignError {}

/// The keys `v1` tokens are signed with, by key id.
#[derive(Clone, Default)]
pub struct SignedKeys {
    keys: Vec<(Box<str>, Box<[u8]>)>,
}

impl fmt::Debug for SignedKeys {
    /// Key ids only: secrets never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(kid, _)| kid))
            .finish()
    }
}

impl SignedKeys {
    pub fn new() -> Self {
        SignedKeys::default()
    }

    /// Adds a key. Rotation: add the new key, start signing with it, remove the old one
    /// once the last token signed with it has expired.
    pub fn insert(&mut self, kid: &str, secret: &[u8]) -> Result<(), SignedKeyError> {
        check_new_key(self.keys.iter().map(|(k, _)| &**k), kid, secret)?;
        self.keys.push((kid.into(), secret.into()));
        Ok(())
    }

    /// Removes a key; tokens signed with it become `BadSignature`.
    pub fn remove(&mut self, kid: &str) -> bool {
        let before = self.keys.len();
        self.keys.retain(|(k, _)| &**k != kid);
        self.keys.len() != before
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn secret(&self, kid: &str) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(k, _)| &**k == kid)
            .map(|(_, s)| &**s)
    }

    /// Signs a token for `scope` (`name`, `prefix/*` or `*`), bound to `ip_binding` when
    /// given, valid until `expires_unix`.
    pub fn sign(
        &self,
        kid: &str,
        expires_unix: i64,
        scope: &str,
        ip_binding: Option<Cidr>,
    ) -> Result<String, SignError> {
        let secret = self
            .secret(kid)
            .ok_or_else(|| SignError::UnknownKid { kid: kid.into() })?;
        if !(0..=MAX_EXPIRY).contains(&expires_unix) {
            return Err(SignError::BadExpiry {
                expires: expires_unix,
            });
        }
        check_scope(scope)?;
        let mut token = format!("{SIGNED_TOKEN_VERSION}.{kid}.{expires_unix}.");
        base64url_encode(scope.as_bytes(), &mut token);
        token.push('.');
        if let Some(cidr) = ip_binding {
            let max = if cidr.addr.is_ipv4() { 32 } else { 128 };
            let text = if cidr.prefix_len >= max {
                cidr.addr.to_string()
            } else {
                cidr.to_string()
            };
            base64url_encode(text.as_bytes(), &mut token);
        }
        let tag = hmac_sha256(secret, token.as_bytes());
        token.push('.');
        base64url_encode(&tag, &mut token);
        Ok(token)
    }

    /// Checks `token` for a play of `stream` by `ip` at `now_unix` (see the module doc for
    /// the order of checks).
    pub fn verify(&self, token: &[u8], stream: &str, ip: IpAddr, now_unix: i64) -> SignedVerdict {
        let Some(parts) = SignedParts::split(token) else {
            return SignedVerdict::NotSigned;
        };
        let Some(fields) = parts.decode() else {
            return SignedVerdict::BadSignature;
        };
        let Some(secret) = std::str::from_utf8(parts.kid)
            .ok()
            .and_then(|kid| self.secret(kid))
        else {
            return SignedVerdict::BadSignature;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
            return SignedVerdict::BadSignature;
        };
        mac.update(parts.signed);
        // `verify_slice` compares in constant time.
        if mac.verify_slice(&fields.mac).is_err() {
            return SignedVerdict::BadSignature;
        }
        if now_unix >= fields.expires {
            return SignedVerdict::Expired;
        }
        if !scope_matches(&fields.scope, stream) {
            return SignedVerdict::WrongStream;
        }
        if !fields.ip_binding.is_empty() {
            let Ok(cidr) = fields.ip_binding.parse::<Cidr>() else {
                return SignedVerdict::WrongIp;
            };
            if !cidr.contains(canonical_ip(ip)) {
                return SignedVerdict::WrongIp;
            }
        }
        SignedVerdict::Valid {
            expires: fields.expires,
        }
    }
}

/// The raw fields of a token that has the `v1` shape.
struct SignedParts<'a> {
    kid: &'a [u8],
    expires: &'a [u8],
    scope64: &'a [u8],
    ip64: &'a [u8],
    mac64: &'a [u8],
    /// Everything before the last dot: what the MAC covers.
    signed: &'a [u8],
}

/// The decoded fields.
struct SignedFields {
    expires: i64,
    scope: String,
    ip_binding: String,
    mac: Vec<u8>,
}

impl<'a> SignedParts<'a> {
    /// `Some` when `token` has the `v1.` prefix and six dot-separated fields.
    fn split(token: &'a [u8]) -> Option<SignedParts<'a>> {
        if token.len() > MAX_SIGNED_TOKEN_LEN || !token.starts_with(b"v1.") {
            return None;
        }
        let mut it = token.split(|&b| b == b'.');
        let (_, kid, expires, scope64, ip64, mac64) = (
            it.next()?,
            it.next()?,
            it.next()?,
            it.next()?,
            it.next()?,
            it.next()?,
        );
        if it.next().is_some() {
            return None;
        }
        let signed = &token[..token.len() - mac64.len() - 1];
        Some(SignedParts {
            kid,
            expires,
            scope64,
            ip64,
            mac64,
            signed,
        })
    }

    /// Field syntax; `None` for a token of this format that is malformed.
    fn decode(&self) -> Option<SignedFields> {
        if !is_kid(self.kid)
            || self.expires.is_empty()
            || self.expires.len() > 12
            || !self.expires.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let expires = self
            .expires
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        let scope = String::from_utf8(base64url_decode(self.scope64)?).ok()?;
        let ip_binding = String::from_utf8(base64url_decode(self.ip64)?).ok()?;
        let mac = base64url_decode(self.mac64)?;
        if scope.is_empty() || mac.len() != 32 {
            return None;
        }
        Some(SignedFields {
            expires,
            scope,
            ip_binding,
            mac,
        })
    }
}

fn check_scope(scope: &str) -> Result<(), SignError> {
    let bad = |problem| Err(SignError::BadScope { problem });
    if scope.is_empty() || scope.len() > MAX_SCOPE_LEN {
        return bad("empty or longer than 512 bytes");
    }
    if scope.chars().any(char::is_control) {
        return bad("control characters");
    }
    let body = scope.strip_suffix("/*").unwrap_or(scope);
    if scope != "*" && (body.is_empty() || body.contains('*')) {
        return bad("'*' only as the whole scope or as a trailing '/*'");
    }
    Ok(())
}

/// `*` matches every stream, `prefix/*` every stream under `prefix/`, anything else only
/// the stream of that exact name.
fn scope_matches(scope: &str, stream: &str) -> bool {
    if scope == "*" {
        return true;
    }
    match scope.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('/') => {
            stream.len() > prefix.len() && stream.starts_with(prefix)
        }
        _ => scope == stream,
    }
}

fn hmac_sha256(secret: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail; the fallback keeps
    // this free of `unwrap` and is never used.
    match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 4648 §5).
pub fn base64url_encode(data: &[u8], out: &mut String) {
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(BASE64URL[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
}

/// Strict base64url without padding: no `=`, no other alphabet, unused bits zero (so every
/// value has exactly one encoding).
pub fn base64url_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = chunk.len() - 1;
        if bytes[keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_699_990_000;
    const EXP: i64 = 1_700_000_000;

    fn keys() -> SignedKeys {
        let mut k = SignedKeys::new();
        k.insert("k1", SECRET).unwrap();
        k.insert("k2", b"another secret, 2025").unwrap();
        k
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn known_answer() {
        let t = keys()
            .sign("k1", EXP, "news/*", Some("192.0.2.0/24".parse().unwrap()))
            .unwrap();
        assert!(
            t.starts_with("v1.k1.1700000000.bmV3cy8q.MTkyLjAuMi4wLzI0."),
            "{t}"
        );
        // HMAC-SHA256 of the signed part, computed independently (python3 hmac).
        assert_eq!(
            t,
            "v1.k1.1700000000.bmV3cy8q.MTkyLjAuMi4wLzI0.J8caWxYybwGauOY1b-xeFALr1IOunFIAOjYihksUvhk"
        );
    }

    #[test]
    fn valid_tokens() {
        let k = keys();
        let t = k.sign("k2", EXP, "news/hd", None).unwrap();
        assert_eq!(
            k.verify(t.as_bytes(), "news/hd", ip("198.51.100.1"), NOW),
            SignedVerdict::Valid { expires: EXP }
        );
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        let t = k
            .sign("k1", EXP, "news/*", Some("192.0.2.0/24".parse().unwrap()))
            .unwrap();
        for (stream, client) in [("news/hd", "192.0.2.7"), ("news/a/b", "::ffff:192.0.2.9")] {
            assert_eq!(
                k.verify(t.as_bytes(), stream, ip(client), NOW),
                SignedVerdict::Valid { expires: EXP },
                "{stream} {client}"
            );
        }
        let t = k
            .sign("k1", EXP, "*", Some("2001:db8::1".parse().unwrap()))
            .unwrap();
        assert_eq!(
            k.verify(t.as_bytes(), "anything", ip("2001:db8::1"), NOW),
            SignedVerdict::Valid { expires: EXP }
        );
    }

    #[test]
    fn refusals() {
        let k = keys();
        let t = k
            .sign("k1", EXP, "news/*", Some("192.0.2.0/24".parse().unwrap()))
            .unwrap();
        let v =
            |token: &str, stream, client, now| k.verify(token.as_bytes(), stream, ip(client), now);
        assert_eq!(v(&t, "news/hd", "192.0.2.7", EXP), SignedVerdict::Expired);
        assert_eq!(v(&t, "news", "192.0.2.7", NOW), SignedVerdict::WrongStream);
        assert_eq!(v(&t, "news/", "192.0.2.7", NOW), SignedVerdict::WrongStream);
        assert_eq!(
            v(&t, "sport/hd", "192.0.2.7", NOW),
            SignedVerdict::WrongStream
        );
        assert_eq!(v(&t, "news/hd", "192.0.3.7", NOW), SignedVerdict::WrongIp);
        assert_eq!(v(&t, "news/hd", "2001:db8::1", NOW), SignedVerdict::WrongIp);
        let exact = k.sign("k1", EXP, "news", None).unwrap();
        assert_eq!(
            v(&exact, "news/hd", "192.0.2.7", NOW),
            SignedVerdict::WrongStream
        );
        assert_eq!(
            v(&exact, "newsx", "192.0.2.7", NOW),
            SignedVerdict::WrongStream
        );

        // Any change to the signed text breaks the MAC, whatever the field.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = [
            format!("v1.k1.1800000000.{}.{}.{}", parts[3], parts[4], parts[5]),
            format!("v1.k2.{}.{}.{}.{}", parts[2], parts[3], parts[4], parts[5]),
            format!("v1.k1.{}.{}..{}", parts[2], parts[3], parts[5]),
            format!("v1.k1.{}.Kg.{}.{}", parts[2], parts[4], parts[5]),
            format!("v1.k9.{}.{}.{}.{}", parts[2], parts[3], parts[4], parts[5]),
            format!("{}.{}", &t[..t.rfind('.').unwrap()], "A".repeat(43)),
            format!("{}.{}", &t[..t.rfind('.').unwrap()], "A".repeat(42)),
            format!("v1.k1.-5.{}.{}.{}", parts[3], parts[4], parts[5]),
            format!("v1.k!.{}.{}.{}.{}", parts[2], parts[3], parts[4], parts[5]),
        ];
        for f in &forged {
            assert_eq!(
                v(f, "news/hd", "192.0.2.7", NOW),
                SignedVerdict::BadSignature,
                "{f}"
            );
        }
        // An expired forgery says BadSignature, not Expired.
        assert_eq!(
            v(&forged[0], "news/hd", "192.0.2.7", EXP + 1),
            SignedVerdict::BadSignature
        );
        // Removing the key retires its tokens.
        let mut k2 = keys();
        assert!(k2.remove("k1"));
        assert_eq!(
            k2.verify(t.as_bytes(), "news/hd", ip("192.0.2.7"), NOW),
            SignedVerdict::BadSignature
        );
        assert_eq!(
            SignedVerdict::Expired.deny_reason(),
            Some(DenyReason::TokenExpired)
        );
        assert_eq!(
            SignedVerdict::BadSignature.deny_reason(),
            Some(DenyReason::BadSignature)
        );
        assert_eq!(SignedVerdict::Valid { expires: 1 }.deny_reason(), None);
    }

    #[test]
    fn not_signed_falls_through() {
        let k = keys();
        for t in [
            "test1",
            "",
            "v1",
            "v1.a.b",
            "v2.k1.1.a.b.c",
            "v1.k1.1.a.b.c.d",
            "V1.k1.1.a.b.c",
        ] {
            assert_eq!(
                k.verify(t.as_bytes(), "s", ip("192.0.2.1"), NOW),
                SignedVerdict::NotSigned,
                "{t}"
            );
        }
        let long = format!("v1.k1.1.a.b.{}", "A".repeat(2000));
        assert_eq!(
            k.verify(long.as_bytes(), "s", ip("192.0.2.1"), NOW),
            SignedVerdict::NotSigned
        );
    }

    #[test]
    fn key_management() {
        let mut k = SignedKeys::new();
        assert!(matches!(
            k.insert("", SECRET),
            Err(SignedKeyError::BadKid { .. })
        ));
        assert!(matches!(
            k.insert("a.b", SECRET),
            Err(SignedKeyError::BadKid { .. })
        ));
        assert!(matches!(
            k.insert("k", b"short"),
            Err(SignedKeyError::ShortSecret { .. })
        ));
        k.insert("k", SECRET).unwrap();
        assert!(matches!(
            k.insert("k", SECRET),
            Err(SignedKeyError::DuplicateKid { .. })
        ));
        for i in 1..MAX_SIGNING_KEYS {
            k.insert(&format!("k{i}"), SECRET).unwrap();
        }
        assert!(matches!(
            k.insert("extra", SECRET),
            Err(SignedKeyError::TooManyKeys { .. })
        ));
        assert!(!format!("{k:?}").contains("0123456789abcdef"));
        assert!(matches!(
            k.sign("nope", EXP, "s", None),
            Err(SignError::UnknownKid { .. })
        ));
        for bad in ["", "a*", "*/x", "a/*/b", "/*", "a\nb"] {
            assert!(
                matches!(k.sign("k", EXP, bad, None), Err(SignError::BadScope { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            k.sign("k", -1, "s", None),
            Err(SignError::BadExpiry { .. })
        ));
    }

    #[test]
    fn base64url_round_trip() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut s = String::new();
            base64url_encode(&data, &mut s);
            assert_eq!(base64url_decode(s.as_bytes()), Some(data));
        }
        let mut s = String::new();
        base64url_encode(b"news/*", &mut s);
        assert_eq!(s, "bmV3cy8q");
        assert_eq!(base64url_decode(b"bmV3cy8q="), None);
        assert_eq!(base64url_decode(b"bmV3cy8+"), None);
        assert_eq!(base64url_decode(b"A"), None);
        assert_eq!(base64url_decode(b"AB"), None, "non-zero unused bits");
        assert_eq!(base64url_decode(b"AA"), Some(vec![0]));
    }

    /// Deterministic garbage (xorshift64) and mutated genuine tokens never panic and are
    /// never accepted.
    #[test]
    fn garbage_never_panics() {
        let k = keys();
        let genuine = k
            .sign("k1", EXP, "news/*", Some("192.0.2.0/24".parse().unwrap()))
            .unwrap()
            .into_bytes();
        let mut x: u64 = 0xdead_beef_cafe_f00d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"v1.k-_AZaz09/*=";
        for round in 0..20_000 {
            let mut t = if round % 2 == 0 {
                genuine.clone()
            } else {
                (0..(next() % 120))
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            };
            let flips = 1 + next() % 3;
            for _ in 0..flips {
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
            let v = k.verify(&t, "news/hd", ip("192.0.2.7"), NOW);
            if t != genuine {
                assert!(!matches!(v, SignedVerdict::Valid { .. }), "{t:?}");
            }
        }
    }
}
