use super::*;
use crate::srt::test_vectors::bytes;

#[test]
fn rfc3394_known_answers() {
    // RFC 3394 §4.1: 128 bits of key data with a 128-bit KEK.
    let kek = bytes(&["000102030405060708090A0B0C0D0E0F"]);
    let key = bytes(&["00112233445566778899AABBCCDDEEFF"]);
    let wrapped = bytes(&["1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"]);
    assert_eq!(key_wrap(&kek, &key).unwrap(), wrapped);
    assert_eq!(key_unwrap(&kek, &wrapped).unwrap(), key);
    // §4.6: 256 bits of key data with a 256-bit KEK.
    let kek = bytes(&["000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"]);
    let key = bytes(&["00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"]);
    let wrapped = bytes(&[
        "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
    ]);
    assert_eq!(key_wrap(&kek, &key).unwrap(), wrapped);
    // A wrong KEK fails the integrity check.
    assert_eq!(key_unwrap(&[0u8; 32], &wrapped), None);
}

#[test]
fn key_material_round_trips_for_every_key_length() {
    for len in [16usize, 24, 32] {
        let even: Vec<u8> = (0..len as u8).collect();
        let odd: Vec<u8> = (100..100 + len as u8).collect();
        let km = wrap_keys(b"passphrase-123", [9; SALT_LEN], &even, Some(&odd)).unwrap();
        let mut wire = Vec::new();
        km.write(&mut wire);
        assert_eq!(wire.len() % 4, 0);
        let back = KeyMaterial::parse(&wire).unwrap();
        assert_eq!(back, km);
        assert_eq!(back.keys, KeyIndex::Both);
        assert!(back.unwrap_keys(b"passphrase-123").is_ok());
        assert_eq!(
            back.unwrap_keys(b"passphrase-124").unwrap_err(),
            CryptoError::BadSecret
        );
    }
}

#[test]
fn payload_encryption_round_trips_and_depends_on_seq_and_key() {
    let km = wrap_keys(b"pw-pw-pw-pw", [3; SALT_LEN], &[1; 16], Some(&[2; 16])).unwrap();
    let keys = km.unwrap_keys(b"pw-pw-pw-pw").unwrap();
    let plain: Vec<u8> = (0..1316u32).map(|i| (i % 251) as u8).collect();
    let mut data = plain.clone();
    keys.apply(KeyIndex::Even, SeqNo::new(42), &mut data)
        .unwrap();
    assert_ne!(data, plain);
    let mut other_seq = plain.clone();
    keys.apply(KeyIndex::Even, SeqNo::new(43), &mut other_seq)
        .unwrap();
    assert_ne!(other_seq, data, "the IV carries the sequence number");
    let mut odd = plain.clone();
    keys.apply(KeyIndex::Odd, SeqNo::new(42), &mut odd).unwrap();
    assert_ne!(odd, data);
    keys.apply(KeyIndex::Even, SeqNo::new(42), &mut data)
        .unwrap();
    assert_eq!(data, plain);
    assert_eq!(
        keys.apply(KeyIndex::Clear, SeqNo::new(1), &mut data),
        Err(CryptoError::NoKey)
    );
}

#[test]
fn ctr_keystream_matches_aes_of_the_iv() {
    // The first keystream block is AES(key, IV) with IV = salt[..14] ^ (seq at 10..14).
    use aes::cipher::{BlockEncrypt, KeyInit};
    let salt = [0x5a; SALT_LEN];
    let key = [0x11u8; 16];
    let km = wrap_keys(b"0123456789", salt, &key, None).unwrap();
    let keys = km.unwrap_keys(b"0123456789").unwrap();
    let mut zeros = [0u8; 16];
    keys.apply(KeyIndex::Even, SeqNo::new(0x0102_0304), &mut zeros)
        .unwrap();
    let mut iv = [0x5au8; 16];
    iv[14] = 0;
    iv[15] = 0;
    for (i, b) in [1u8, 2, 3, 4].iter().enumerate() {
        iv[10 + i] ^= b;
    }
    let mut block = iv.into();
    aes::Aes128::new(&key.into()).encrypt_block(&mut block);
    assert_eq!(zeros, block.as_slice());
}

#[test]
fn malformed_key_material_is_an_error_not_a_panic() {
    let km = wrap_keys(b"0123456789", [1; SALT_LEN], &[7; 24], None).unwrap();
    let mut wire = Vec::new();
    km.write(&mut wire);
    for len in 0..wire.len() {
        assert!(KeyMaterial::parse(&wire[..len]).is_err());
    }
    let mut bad = wire.clone();
    bad[15] = 5; // 20-byte keys
    assert_eq!(
        KeyMaterial::parse(&bad),
        Err(CryptoError::Unsupported("key length"))
    );
}
