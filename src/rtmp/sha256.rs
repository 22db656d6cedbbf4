//! HMAC-SHA256 for the RTMP digest handshake, on RustCrypto's `hmac` + `sha2` (the crates
//! signed tokens use too), in the shape the handshake wants: a MAC over several slices.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes in a SHA-256 digest.
pub const DIGEST_LEN: usize = 32;

/// HMAC-SHA256 of the concatenation of `parts` under `key` (RFC 2104).
pub fn hmac_sha256_parts(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sha256_parts(key, &[data])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2_and_split_parts() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let want = [
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
            0x64, 0xec, 0x38, 0x43,
        ];
        assert_eq!(hmac_sha256(b"Jefe", b"what do ya want for nothing?"), want);
        assert_eq!(
            hmac_sha256_parts(b"Jefe", &[b"what do ya ", b"want for nothing?"]),
            want
        );
    }
}
