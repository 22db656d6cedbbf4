//! Fuzzes the WHEP offer path as tessera takes it: any bytes as the POSTed offer (UTF-8
//! checked, then str0m's SDP parser and offer/answer through `WebRtcPeer::answer`), the
//! WHEP path and Bearer parsing, and any bytes as a datagram from an unknown address (the
//! endpoint's STUN username lookup) and fed to an answered peer (STUN, DTLS, SRTCP).
//! Any panic is a bug: a browser's offer and datagrams must only produce errors or outputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Instant;
use tessera::webrtc::peer::{IceCreds, WebRtcPeer};
use tessera::webrtc::whep::{bearer_token, stun_local_ufrag, whep_path};

/// A real Chromium offer: the seed the mutations start from, and the peer the datagrams go to.
const OFFER: &str = include_str!("../../tests/data/chromium_whep_offer.sdp");

fn creds() -> IceCreds {
    IceCreds {
        ufrag: "fuzzfuzzfuzzfuzz".into(),
        pass: "0123456789abcdef0123456789abcdef".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let local = "127.0.0.1:18090".parse().unwrap();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = whep_path(text);
        let _ = WebRtcPeer::answer(text, local, creds(), None, now);
    }
    let _ = bearer_token(Some(data));
    let _ = stun_local_ufrag(data);
    if let Ok((mut peer, _)) = WebRtcPeer::answer(OFFER, local, creds(), None, now) {
        peer.set_remote("127.0.0.1:40000".parse().unwrap());
        let _ = peer.handle_input(data, now);
        while peer.poll_output().is_some() {}
    }
});
