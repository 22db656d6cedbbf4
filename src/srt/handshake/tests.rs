use super::*;
use crate::srt::packet::{Packet, parse};
use crate::srt::test_vectors::{self as tv, bytes};

fn caller() -> SocketAddr {
    "127.0.0.1:50123".parse().unwrap()
}

fn listener(start: Instant) -> Listener {
    Listener::new([7; 32], start)
}

fn handshake(datagram: &[u8]) -> (ControlPacket<'_>, Handshake<'_>) {
    handshake_of(datagram).expect("a handshake")
}

/// The captured conclusion, with the cookie this listener would have handed out.
fn conclusion_with_cookie(lines: &[&str], l: &Listener, now: Instant) -> Vec<u8> {
    let mut c = bytes(lines);
    let cookie = l.cookie(caller(), l.bucket(now));
    c[44..48].copy_from_slice(&cookie.to_be_bytes());
    c
}

#[test]
fn induction_from_ffmpeg_gets_v5_magic_and_a_cookie() {
    let now = Instant::now();
    let l = listener(now);
    let ListenerReply::Induction(reply) = l
        .handle(&bytes(tv::FFMPEG_INDUCTION), caller(), now)
        .unwrap()
    else {
        panic!("induction expected");
    };
    let (header, hs) = handshake(&reply);
    assert_eq!(
        header.dest_socket, 0x2e66_2172,
        "addressed to the caller's socket"
    );
    assert_eq!(hs.version, VERSION_5);
    assert_eq!(hs.extension, SRT_MAGIC);
    assert_eq!(hs.kind, HandshakeType::Induction);
    assert_eq!(hs.isn, SeqNo::new(0x5433_b59c));
    assert_eq!(hs.cookie, l.cookie(caller(), 0));
    assert_eq!(
        &hs.peer_ip[..4],
        &[1, 0, 0, 0x7f],
        "libsrt's word order for 127.0.0.1"
    );
    assert_eq!(reply.len(), 64);
}

#[test]
fn ffmpeg_conclusion_parses_hsreq_and_stream_id() {
    let d = bytes(tv::FFMPEG_CONCLUSION);
    let (header, hs) = handshake_of_owned(&d);
    assert_eq!(hs.cookie, tv::CAPTURE_COOKIE);
    let hello = parse_conclusion(&hs, header).unwrap();
    assert_eq!(hello.socket_id, 0x2e66_2172);
    assert_eq!(hello.isn, SeqNo::new(0x5433_b59c));
    assert_eq!(hello.mtu, 1500);
    assert_eq!(hello.srt_version, 0x0001_0501);
    assert_eq!(hello.srt_flags, 0xbf);
    // ffmpeg's libsrt asks 120 ms for its receiving and announces 0 as a sender.
    assert_eq!(
        (hello.receiver_latency_ms, hello.sender_latency_ms),
        (120, 0)
    );
    assert_eq!(
        hello.stream_id.as_deref(),
        Some("#!::r=auth-check,m=request,token=test1")
    );
    assert_eq!(hello.key_material, None);
}

fn handshake_of_owned(d: &[u8]) -> (u32, Handshake<'_>) {
    let (c, hs) = handshake(d);
    (c.timestamp, hs)
}

#[test]
fn srt_live_transmit_publisher_and_passphrase_conclusions() {
    let d = bytes(tv::SLT_PUBLISH_CONCLUSION);
    let (ts, hs) = handshake_of_owned(&d);
    let hello = parse_conclusion(&hs, ts).unwrap();
    assert_eq!(
        hello.stream_id.as_deref(),
        Some("#!::u=pub1,r=live/cam,m=publish")
    );

    let d = bytes(tv::FFMPEG_PASSPHRASE_CONCLUSION);
    let (ts, hs) = handshake_of_owned(&d);
    assert_eq!(
        hs.extension,
        ext_flag::HSREQ | ext_flag::KMREQ | ext_flag::CONFIG
    );
    let hello = parse_conclusion(&hs, ts).unwrap();
    assert_eq!(hello.stream_id.as_deref(), Some("cam1?token=abc"));
    let km = hello.key_material.expect("KMREQ");
    assert_eq!(km.key_len, 16);
    assert!(km.unwrap_keys(tv::CAPTURE_PASSPHRASE).is_ok());
}

#[test]
fn inductions_are_told_apart_from_everything_else() {
    assert!(is_induction(&bytes(tv::FFMPEG_INDUCTION)));
    assert!(!is_induction(&bytes(tv::FFMPEG_CONCLUSION)));
    assert!(!is_induction(&[0x80, 0, 0, 0]));
}

#[test]
fn conclusion_needs_this_listeners_cookie() {
    let now = Instant::now();
    let l = listener(now);
    // The capture's own cookie is not ours.
    let err = l
        .handle(&bytes(tv::FFMPEG_CONCLUSION), caller(), now)
        .unwrap_err();
    assert_eq!(err, HandshakeError::BadCookie);
    let ours = conclusion_with_cookie(tv::FFMPEG_CONCLUSION, &l, now);
    assert!(matches!(
        l.handle(&ours, caller(), now),
        Ok(ListenerReply::Conclusion(_))
    ));
    // Another port, or two minutes later: refused.
    let other: SocketAddr = "127.0.0.1:50124".parse().unwrap();
    assert_eq!(l.handle(&ours, other, now), Err(HandshakeError::BadCookie));
    let later = now + Duration::from_secs(121);
    assert_eq!(
        l.handle(&ours, caller(), later),
        Err(HandshakeError::BadCookie)
    );
    // One minute later it still holds (the previous bucket).
    assert!(
        l.handle(&ours, caller(), now + Duration::from_secs(61))
            .is_ok()
    );
}

#[test]
fn response_carries_hsrsp_with_negotiated_latency() {
    let d = bytes(tv::FFMPEG_CONCLUSION);
    let (ts, hs) = handshake_of_owned(&d);
    let hello = parse_conclusion(&hs, ts).unwrap();
    let (rcv, snd) = negotiate(&hello, 200);
    assert_eq!((rcv, snd), (200, 200));
    // What tessera sends uses the caller's 120; what it receives, its own 80.
    assert_eq!(negotiate(&hello, 80), (80, 120));
    let acc = Acceptance {
        local_socket_id: 0x1111_2222,
        receiver_latency_ms: rcv,
        sender_latency_ms: snd,
        key_material: None,
    };
    let reply = conclusion_response(&hello, &acc, caller().ip(), 99);
    let (header, hs) = handshake(&reply);
    assert_eq!(header.dest_socket, hello.socket_id);
    assert_eq!(hs.kind, HandshakeType::Conclusion);
    assert_eq!(hs.socket_id, 0x1111_2222);
    assert_eq!(hs.isn, hello.isn);
    assert_eq!(hs.extension, ext_flag::HSREQ);
    let exts: Vec<_> = Extensions::new(hs.extensions, 0)
        .map(Result::unwrap)
        .collect();
    assert_eq!(exts.len(), 1);
    assert_eq!(exts[0].command, cmd::HSRSP);
    let [version, flags, latency] = words::<3>(exts[0].contents).unwrap();
    assert_eq!(version, SRT_VERSION);
    assert_ne!(flags & srt_flag::TSBPD_SND, 0);
    assert_ne!(flags & srt_flag::TLPKTDROP, 0);
    assert_ne!(
        flags & srt_flag::REXMITFLG,
        0,
        "the caller set it, so we echo it"
    );
    assert_eq!(latency, 200 << 16 | 200);
}

#[test]
fn rejection_is_1000_plus_the_reason() {
    let d = bytes(tv::FFMPEG_CONCLUSION);
    let (ts, hs) = handshake_of_owned(&d);
    let hello = parse_conclusion(&hs, ts).unwrap();
    for (reason, wire) in [
        (RejectReason::UNAUTHORIZED, 2401u32),
        (RejectReason::FORBIDDEN, 2403),
        (RejectReason::NOT_FOUND, 2404),
        (RejectReason::UNAVAILABLE, 2503),
        (RejectReason::BADSECRET, 1010),
    ] {
        let reply = rejection(&hello, 5, reason, caller().ip(), 0);
        // The capture script's 1403 rejection (0x963 = 2403) made ffmpeg fail to open
        // ("Application-defined rejection reason"); this is the same field.
        assert_eq!(u32::from_be_bytes(reply[36..40].try_into().unwrap()), wire);
        let (_, hs) = handshake(&reply);
        assert_eq!(hs.kind, HandshakeType::Reject(reason.0));
    }
}

#[test]
fn stream_id_word_order_round_trips() {
    for id in [
        "",
        "a",
        "abcd",
        "#!::r=auth-check,m=request,token=test1",
        "cam1?token=abc",
    ] {
        let mut enc = Vec::new();
        encode_stream_id(id, &mut enc);
        assert_eq!(enc.len() % 4, 0);
        assert_eq!(decode_stream_id(&enc), id);
    }
    assert_eq!(decode_stream_id(&[0x3a, 0x3a, 0x21, 0x23]), "#!::");
}

#[test]
fn unsupported_requests_are_refused_with_a_reason() {
    let d = bytes(tv::FFMPEG_CONCLUSION);
    let (ts, hs) = handshake_of_owned(&d);
    let mut filter = hs.extensions.to_vec();
    filter.extend_from_slice(&[0, cmd::FILTER as u8, 0, 1, b'c', b'e', b'f', b':']);
    let hs2 = Handshake {
        extensions: &filter,
        ..hs
    };
    assert!(matches!(
        parse_conclusion(&hs2, ts),
        Err(HandshakeError::Refused {
            reason: RejectReason::FILTER,
            ..
        })
    ));
    let v4 = Handshake { version: 4, ..hs };
    assert!(matches!(
        parse_conclusion(&v4, ts),
        Err(HandshakeError::Refused {
            reason: RejectReason::VERSION,
            ..
        })
    ));
    let no_ext = Handshake { extension: 0, ..hs };
    assert!(matches!(
        parse_conclusion(&no_ext, ts),
        Err(HandshakeError::Refused {
            reason: RejectReason::ROGUE,
            ..
        })
    ));
}

#[test]
fn garbage_and_truncations_never_panic() {
    let now = Instant::now();
    let l = listener(now);
    let full = conclusion_with_cookie(tv::FFMPEG_PASSPHRASE_CONCLUSION, &l, now);
    for len in 0..full.len() {
        let _ = l.handle(&full[..len], caller(), now);
        let _ = parse(&full[..len]);
    }
    assert!(matches!(parse(&full), Ok(Packet::Control(_))));
}
