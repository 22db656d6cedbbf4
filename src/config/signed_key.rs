//! The rules of a `signed_key ID SECRET;` (spec §7.2): the key id's syntax, the secret's
//! length, no id twice, at most [`MAX_SIGNING_KEYS`]. The config checks them when it is read
//! and the verifier (`auth::signed::SignedKeys`) when a key is added, with the same code, so
//! a config that checks is a config whose keys load.

use std::fmt;

/// Keys held at once (current, next and a few retiring ones).
pub const MAX_SIGNING_KEYS: usize = 16;
/// Longest key id.
pub const MAX_KID_LEN: usize = 32;
/// Shortest secret accepted: 128 bits.
pub const MIN_SECRET_LEN: usize = 16;

/// Why a key was not added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedKeyError {
    BadKid { kid: String },
    ShortSecret { kid: String, min: usize },
    DuplicateKid { kid: String },
    TooManyKeys { max: usize },
}

impl fmt::Display for SignedKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignedKeyError::BadKid { kid } => {
                write!(f, "key id {kid:?}: use 1-32 characters of A-Z a-z 0-9 _ -")
            }
            SignedKeyError::ShortSecret { kid, min } => {
                write!(f, "key {kid:?}: secret shorter than {min} bytes")
            }
            SignedKeyError::DuplicateKid { kid } => write!(f, "key id {kid:?} given twice"),
            SignedKeyError::TooManyKeys { max } => write!(f, "more than {max} signing keys"),
        }
    }
}

impl std::error::Error for SignedKeyError {}

/// Whether `kid` is a key id: 1 to [`MAX_KID_LEN`] of `A-Z a-z 0-9 _ -`.
pub fn is_kid(kid: &[u8]) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether key `kid` with `secret` may join the keys `existing` (their ids): checked in the
/// order id syntax, secret length, duplicate id, number of keys.
pub fn check_new_key<'a>(
    existing: impl Iterator<Item = &'a str>,
    kid: &str,
    secret: &[u8],
) -> Result<(), SignedKeyError> {
    if !is_kid(kid.as_bytes()) {
        return Err(SignedKeyError::BadKid { kid: kid.into() });
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(SignedKeyError::ShortSecret {
            kid: kid.into(),
            min: MIN_SECRET_LEN,
        });
    }
    let mut count = 0;
    for id in existing {
        if id == kid {
            return Err(SignedKeyError::DuplicateKid { kid: kid.into() });
        }
        count += 1;
    }
    if count >= MAX_SIGNING_KEYS {
        return Err(SignedKeyError::TooManyKeys {
            max: MAX_SIGNING_KEYS,
        });
    }
    Ok(())
}
