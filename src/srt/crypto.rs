//! SRT passphrase encryption (draft-sharabayko-srt §3.2.2 key material, §6 encryption), as
//! libsrt (HaiCrypt) does it:
//!
//! * the key material message (KMREQ/KMRSP contents): version, key index bits (even, odd or
//!   both), cipher (AES-CTR), salt, and the wrapped stream keys;
//! * the key-encrypting key: PBKDF2-HMAC-SHA1 of the passphrase, 2048 rounds, over the
//!   salt's last 8 bytes, as long as the stream key (16, 24 or 32 bytes);
//! * the stream keys wrapped with AES key wrap (RFC 3394), even key first;
//! * payloads in AES-CTR: the IV is the salt's first 14 bytes XOR the packet's sequence
//!   number at bytes 10..14, the block counter in the last two bytes.
//!
//! As a listener tessera never makes keys: the caller sends them (KMREQ), tessera unwraps
//! them with the stream's passphrase and answers the same material (KMRSP). Owns the
//! cryptography only; when to apply it is `connection`'s business.

use super::packet::KeyIndex;
use super::seq::SeqNo;
use aes::cipher::{KeyInit, StreamCipher};
use std::fmt;

/// PBKDF2 rounds libsrt uses (`HAICRYPT_PBKDF2_ITER_CNT`).
pub const PBKDF2_ROUNDS: u32 = 2048;
/// The salt length libsrt sends.
pub const SALT_LEN: usize = 16;
/// The key material's fixed part before the salt.
const KM_HEADER_LEN: usize = 16;
/// `0x2029`, "HAI" in the PnP vendor id encoding.
const KM_SIGNATURE: u16 = 0x2029;
/// AES-CTR in the cipher field.
pub const CIPHER_AES_CTR: u8 = 2;
/// Stream encapsulation: MPEG-TS/SRT.
const SE_SRT: u8 = 2;
/// The ICV RFC 3394 puts before the wrapped keys.
const WRAP_OVERHEAD: usize = 8;

/// Why key material could not be read or used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// The key material message is malformed: which field, at which byte.
    Malformed { offset: usize, what: &'static str },
    /// Cipher other than AES-CTR, or a key length other than 16/24/32.
    Unsupported(&'static str),
    /// The passphrase does not unwrap the keys (RFC 3394 integrity check failed): libsrt's
    /// `SRT_REJ_BADSECRET`.
    BadSecret,
    /// A data packet names a key the connection does not have.
    NoKey,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::Malformed { offset, what } => {
                write!(f, "srt key material: {what} at byte {offset}")
            }
            CryptoError::Unsupported(what) => write!(f, "srt key material: unsupported {what}"),
            CryptoError::BadSecret => f.write_str("srt key material: wrong passphrase"),
            CryptoError::NoKey => f.write_str("srt: packet encrypted with a key not received"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// A key material message (§3.2.2), as carried in KMREQ/KMRSP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Which keys are wrapped: even, odd or both.
    pub keys: KeyIndex,
    pub cipher: u8,
    pub salt: Vec<u8>,
    /// Bytes per stream key: 16, 24 or 32.
    pub key_len: usize,
    /// The RFC 3394 output: 8 + key_len per key.
    pub wrapped: Vec<u8>,
}

fn malformed(offset: usize, what: &'static str) -> CryptoError {
    CryptoError::Malformed { offset, what }
}

impl KeyMaterial {
    /// Parses a key material message; trailing bytes (word padding) are ignored.
    pub fn parse(b: &[u8]) -> Result<KeyMaterial, CryptoError> {
        if b.len() < KM_HEADER_LEN {
            return Err(malformed(b.len(), "key material header"));
        }
        if b[0] != 0x12 || u16::from_be_bytes([b[1], b[2]]) != KM_SIGNATURE {
            return Err(malformed(0, "key material version/signature"));
        }
        let keys = match b[3] & 3 {
            0 => return Err(malformed(3, "key material with no key")),
            bits => KeyIndex::from_bits(u32::from(bits)),
        };
        let salt_len = usize::from(b[14]) * 4;
        let key_len = usize::from(b[15]) * 4;
        if !matches!(key_len, 16 | 24 | 32) {
            return Err(CryptoError::Unsupported("key length"));
        }
        let count = if keys == KeyIndex::Both { 2 } else { 1 };
        let wrapped_len = WRAP_OVERHEAD + key_len * count;
        let salt_end = KM_HEADER_LEN + salt_len;
        let end = salt_end + wrapped_len;
        if b.len() < end {
            return Err(malformed(b.len(), "key material salt and wrapped keys"));
        }
        Ok(KeyMaterial {
            keys,
            cipher: b[8],
            salt: b[KM_HEADER_LEN..salt_end].to_vec(),
            key_len,
            wrapped: b[salt_end..end].to_vec(),
        })
    }

    /// Appends the message (its length is a multiple of 4, as handshake extensions need).
    pub fn write(&self, out: &mut Vec<u8>) {
        let [s0, s1] = KM_SIGNATURE.to_be_bytes();
        out.extend_from_slice(&[0x12, s0, s1, self.keys.bits() as u8]);
        out.extend_from_slice(&[0; 4]); // KEKI: the default key-encrypting key
        out.extend_from_slice(&[self.cipher, 0, SE_SRT, 0]);
        let salt_words = (self.salt.len() / 4) as u8;
        let key_words = (self.key_len / 4) as u8;
        out.extend_from_slice(&[0, 0, salt_words, key_words]);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.wrapped);
    }

    /// Unwraps the stream keys with `passphrase`.
    pub fn unwrap_keys(&self, passphrase: &[u8]) -> Result<StreamKeys, CryptoError> {
        self.unwrap_with(&self.kek(passphrase, None)?)
    }

    /// The key-encrypting key for this material: `cached` when it was derived for the same
    /// salt and key length (libsrt keeps its salt for the session, so a key refresh needs
    /// no new PBKDF2 run), else derived from `passphrase`.
    pub fn kek(&self, passphrase: &[u8], cached: Option<&Kek>) -> Result<Kek, CryptoError> {
        if self.cipher != CIPHER_AES_CTR {
            return Err(CryptoError::Unsupported("cipher (only AES-CTR)"));
        }
        let salt: [u8; SALT_LEN] = self
            .salt
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Unsupported("salt length"))?;
        if let Some(kek) = cached.filter(|k| k.salt == salt && k.key.len() == self.key_len) {
            return Ok(kek.clone());
        }
        let key = derive_kek(passphrase, &salt, self.key_len);
        Ok(Kek { salt, key })
    }

    /// Whether `kek` was derived for this material (no PBKDF2 run needed).
    pub fn fits(&self, kek: &Kek) -> bool {
        self.salt == kek.salt && self.key_len == kek.key.len()
    }

    /// Unwraps the stream keys with a key-encrypting key made by [`KeyMaterial::kek`].
    pub fn unwrap_with(&self, kek: &Kek) -> Result<StreamKeys, CryptoError> {
        let salt = kek.salt;
        let plain = key_unwrap(&kek.key, &self.wrapped).ok_or(CryptoError::BadSecret)?;
        if plain.len() < self.key_len {
            return Err(CryptoError::BadSecret);
        }
        let (first, second) = plain.split_at(self.key_len);
        let key = |k: &[u8]| BlockKey::new(k).map(|block| SessionKey { salt, block });
        let (even, odd) = match self.keys {
            KeyIndex::Even => (Some(key(first)?), None),
            KeyIndex::Odd => (None, Some(key(first)?)),
            _ => (Some(key(first)?), Some(key(second)?)),
        };
        Ok(StreamKeys { even, odd })
    }
}

/// A key-encrypting key and the salt it was derived for (PBKDF2 is slow on purpose: a
/// connection keeps the one it made at the handshake).
#[derive(Clone)]
pub struct Kek {
    salt: [u8; SALT_LEN],
    key: Vec<u8>,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(..)")
    }
}

/// The key-encrypting key: PBKDF2-HMAC-SHA1 over the salt's last 8 bytes (libsrt's
/// `hcryptCtx_GenSecret`).
pub fn derive_kek(passphrase: &[u8], salt: &[u8; SALT_LEN], key_len: usize) -> Vec<u8> {
    let mut kek = vec![0u8; key_len];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(passphrase, &salt[SALT_LEN - 8..], PBKDF2_ROUNDS, &mut kek);
    kek
}

/// RFC 3394 key wrap with a 16/24/32-byte KEK; `None` for another KEK length or a key
/// that is not a multiple of 8 bytes.
pub fn key_wrap(kek: &[u8], keys: &[u8]) -> Option<Vec<u8>> {
    match kek.len() {
        16 => aes_kw::KekAes128::try_from(kek).ok()?.wrap_vec(keys).ok(),
        24 => aes_kw::KekAes192::try_from(kek).ok()?.wrap_vec(keys).ok(),
        32 => aes_kw::KekAes256::try_from(kek).ok()?.wrap_vec(keys).ok(),
        _ => None,
    }
}

/// RFC 3394 key unwrap; `None` when the integrity check fails (wrong KEK).
pub fn key_unwrap(kek: &[u8], wrapped: &[u8]) -> Option<Vec<u8>> {
    match kek.len() {
        16 => aes_kw::KekAes128::try_from(kek)
            .ok()?
            .unwrap_vec(wrapped)
            .ok(),
        24 => aes_kw::KekAes192::try_from(kek)
            .ok()?
            .unwrap_vec(wrapped)
            .ok(),
        32 => aes_kw::KekAes256::try_from(kek)
            .ok()?
            .unwrap_vec(wrapped)
            .ok(),
        _ => None,
    }
}

/// Builds key material for `keys` (tests, and a future caller side).
pub fn wrap_keys(
    passphrase: &[u8],
    salt: [u8; SALT_LEN],
    even: &[u8],
    odd: Option<&[u8]>,
) -> Option<KeyMaterial> {
    let kek = derive_kek(passphrase, &salt, even.len());
    let mut plain = even.to_vec();
    plain.extend_from_slice(odd.unwrap_or_default());
    Some(KeyMaterial {
        keys: if odd.is_some() {
            KeyIndex::Both
        } else {
            KeyIndex::Even
        },
        cipher: CIPHER_AES_CTR,
        salt: salt.to_vec(),
        key_len: even.len(),
        wrapped: key_wrap(&kek, &plain)?,
    })
}

/// One stream key's expanded AES cipher.
#[derive(Clone)]
enum BlockKey {
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(aes::Aes256),
}

impl fmt::Debug for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlockKey(..)") // never print key bytes
    }
}

impl BlockKey {
    fn new(key: &[u8]) -> Result<BlockKey, CryptoError> {
        let bad = |_| CryptoError::Unsupported("key length");
        Ok(match key.len() {
            16 => BlockKey::Aes128(aes::Aes128::new_from_slice(key).map_err(bad)?),
            24 => BlockKey::Aes192(aes::Aes192::new_from_slice(key).map_err(bad)?),
            _ => BlockKey::Aes256(aes::Aes256::new_from_slice(key).map_err(bad)?),
        })
    }

    fn apply(&self, iv: &[u8; 16], data: &mut [u8]) {
        use ctr::cipher::InnerIvInit;
        let iv = iv.into();
        match self {
            BlockKey::Aes128(k) => {
                let core = ctr::CtrCore::inner_iv_init(k.clone(), iv);
                ctr::Ctr128BE::<aes::Aes128>::from_core(core).apply_keystream(data)
            }
            BlockKey::Aes192(k) => {
                let core = ctr::CtrCore::inner_iv_init(k.clone(), iv);
                ctr::Ctr128BE::<aes::Aes192>::from_core(core).apply_keystream(data)
            }
            BlockKey::Aes256(k) => {
                let core = ctr::CtrCore::inner_iv_init(k.clone(), iv);
                ctr::Ctr128BE::<aes::Aes256>::from_core(core).apply_keystream(data)
            }
        }
    }
}

/// One stream key with the salt it came with.
#[derive(Clone, Debug)]
struct SessionKey {
    salt: [u8; SALT_LEN],
    block: BlockKey,
}

impl SessionKey {
    /// AES-CTR with IV = salt[..14] XOR (seq at bytes 10..14), counter in bytes 14..16.
    fn apply(&self, seq: SeqNo, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[10..14].copy_from_slice(&seq.value().to_be_bytes());
        for (b, s) in iv[..14].iter_mut().zip(&self.salt[..14]) {
            *b ^= s;
        }
        self.block.apply(&iv, data);
    }
}

/// The stream keys of one connection (even and odd, as the sender's key refresh
/// alternates them), ready to encrypt and decrypt payloads.
#[derive(Clone, Debug)]
pub struct StreamKeys {
    even: Option<SessionKey>,
    odd: Option<SessionKey>,
}

impl StreamKeys {
    /// The key index tessera sends with (the even key when it has one).
    pub fn send_key(&self) -> KeyIndex {
        if self.even.is_some() {
            KeyIndex::Even
        } else {
            KeyIndex::Odd
        }
    }

    /// Takes the keys a refresh brought (an in-band KMREQ), keeping the others.
    pub fn merge(&mut self, newer: StreamKeys) {
        if newer.even.is_some() {
            self.even = newer.even;
        }
        if newer.odd.is_some() {
            self.odd = newer.odd;
        }
    }

    /// Encrypts or decrypts (CTR is its own inverse) the payload of packet `seq` with key
    /// `index`.
    pub fn apply(
        &self,
        index: KeyIndex,
        seq: SeqNo,
        payload: &mut [u8],
    ) -> Result<(), CryptoError> {
        let key = match index {
            KeyIndex::Even => self.even.as_ref(),
            KeyIndex::Odd => self.odd.as_ref(),
            KeyIndex::Clear | KeyIndex::Both => None,
        };
        key.ok_or(CryptoError::NoKey)?.apply(seq, payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
