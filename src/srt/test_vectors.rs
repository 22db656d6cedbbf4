//! Datagrams captured from real libsrt 1.5.1 callers (Debian bookworm's ffmpeg and
//! srt-live-transmit) against a UDP listener script on 127.0.0.1 that answered the
//! induction with cookie `0x00c00c1e` and rejected the conclusion with 1403. Hex, split in
//! lines; [`bytes`] joins them.

/// Joins hex lines into bytes.
pub fn bytes(lines: &[&str]) -> Vec<u8> {
    let hex: String = lines.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("test vector is hex"))
        .collect()
}

/// `len` pseudo-random bytes (xorshift32 on `state`), for the deterministic "never panics"
/// sweeps; the fuzz target goes further.
pub fn noise(state: &mut u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 17;
            *state ^= *state << 5;
            *state as u8
        })
        .collect()
}

/// The cookie the capture script handed out.
pub const CAPTURE_COOKIE: u32 = 0x00c0_0c1e;

/// `ffmpeg -i 'srt://127.0.0.1:40001?streamid=#!::r=auth-check,m=request,token=test1'`: induction.
pub const FFMPEG_INDUCTION: &[&str] = &[
    "8000000000000000000000870000000000000004000000025433b59c000005dc",
    "00002000000000012e662172000000000100007f000000000000000000000000",
];
/// The same caller's conclusion: HSREQ (receiver latency 120, sender 0, flags 0xbf) and the stream id.
pub const FFMPEG_CONCLUSION: &[&str] = &[
    "8000000000000000000001b00000000000000005000000055433b59c000005dc",
    "00002000ffffffff2e66217200c00c1e0100007f000000000000000000000000",
    "0001000300010501000000bf007800000005000a3a3a212375613d72632d6874",
    "6b636568723d6d2c65757165742c74736e656b6f7365743d00003174",
];
/// `ffmpeg -i 'srt://127.0.0.1:40002?streamid=cam1?token=abc&passphrase=secretpassphrase1&pbkeylen=16'`: conclusion with KMREQ (AES-128, even key).
pub const FFMPEG_PASSPHRASE_CONCLUSION: &[&str] = &[
    "8000000000000000000003d30000000000000005000200076ffe1f02000005dc",
    "00002000ffffffff0a523a6400c00c1e0100007f000000000000000000000000",
    "0001000300010501000000bf0078000000050004316d61636b6f743f613d6e65",
    "000063620003000e12202901000000000200020000000404c52f890735229fed",
    "8eea3c63eb2d4f3385be2c7f4033939fe15b4606ec3c8eaf011655f88a3b5167",
];
/// `srt-live-transmit 'srt://127.0.0.1:40003?streamid=#!::u=pub1,r=live/cam,m=publish' file://con`: conclusion.
pub const SLT_PUBLISH_CONCLUSION: &[&str] = &[
    "80000000000000000000015d0000000000000005000000052b47cd37000005dc",
    "00002000ffffffff1529846700c00c1e0100007f000000000000000000000000",
    "0001000300010501000000bf00780000000500083a3a212375703d75722c3162",
    "76696c3d61632f653d6d2c6d6c62757000687369",
];
/// The passphrase of [`FFMPEG_PASSPHRASE_CONCLUSION`].
pub const CAPTURE_PASSPHRASE: &[u8] = b"secretpassphrase1";
