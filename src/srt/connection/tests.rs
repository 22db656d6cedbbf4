use super::*;
use crate::srt::crypto::{KeyMaterial, SALT_LEN, wrap_keys};
use crate::srt::handshake::{cmd, handshake_of, srt_flag};
use crate::srt::packet::{Extensions, HandshakeType, encode_loss_list, parse};
use crate::srt::test_vectors::{self as tv, bytes};

const LOCAL: u32 = 0x0abc_0001;
const LATENCY: Duration = Duration::from_millis(120);

fn peer() -> SocketAddr {
    "127.0.0.1:50123".parse().unwrap()
}

fn hello_from(lines: &[&str]) -> CallerHello {
    let d = bytes(lines);
    let (c, hs) = handshake_of(&d).unwrap();
    handshake::parse_conclusion(&hs, c.timestamp).unwrap()
}

fn drain(conn: &mut SrtConnection) -> Vec<Output> {
    std::iter::from_fn(|| conn.poll_output())
        .filter(|o| !matches!(o, Output::Timeout(_)))
        .collect()
}

fn datagrams(outputs: &[Output]) -> Vec<&[u8]> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit(d) => Some(&d[..]),
            _ => None,
        })
        .collect()
}

fn controls(outputs: &[Output]) -> Vec<Control<'_>> {
    datagrams(outputs)
        .into_iter()
        .filter_map(|d| match parse(d).unwrap() {
            Packet::Control(c) => Some(c.control),
            Packet::Data(..) => None,
        })
        .collect()
}

fn data(outputs: &[Output]) -> Vec<(DataHeader, &[u8])> {
    datagrams(outputs)
        .into_iter()
        .filter_map(|d| match parse(d).unwrap() {
            Packet::Data(h, p) => Some((h, p)),
            Packet::Control(_) => None,
        })
        .collect()
}

/// A viewer connection from the captured ffmpeg conclusion, accepted.
fn established(now: Instant) -> SrtConnection {
    let mut conn = SrtConnection::new(
        hello_from(tv::FFMPEG_CONCLUSION),
        peer(),
        ConnectionConfig::new(LOCAL),
        now,
    );
    let accept = AuthAnswer::Accept {
        latency: LATENCY,
        passphrase: None,
    };
    conn.authorized(accept, now);
    drain(&mut conn);
    conn
}

fn from_peer(conn: &mut SrtConnection, control: Control<'_>, now: Instant) {
    let mut d = Vec::new();
    ControlPacket {
        timestamp: 0,
        dest_socket: LOCAL,
        control,
    }
    .write(&mut d);
    conn.handle_input(&d, now).unwrap();
}

fn full_ack(ack_no: u32, last_acked: SeqNo) -> Control<'static> {
    Control::Ack(Ack {
        ack_no,
        last_acked,
        rtt_us: Some(20_000),
        rtt_var_us: Some(1_000),
        buffer_free: Some(8000),
        ..Ack::default()
    })
}

fn nak(conn: &mut SrtConnection, ranges: &[(SeqNo, SeqNo)], now: Instant) {
    let mut list = Vec::new();
    encode_loss_list(ranges.iter().copied(), &mut list);
    from_peer(conn, Control::Nak(LossList::from_encoded(&list)), now);
}

#[test]
fn authorize_then_accept_answers_with_hsrsp_and_again_on_a_repeat() {
    let now = Instant::now();
    let hello = hello_from(tv::FFMPEG_CONCLUSION);
    let mut conn = SrtConnection::new(hello.clone(), peer(), ConnectionConfig::new(LOCAL), now);
    assert!(conn.awaiting_authorization());
    let out = drain(&mut conn);
    let Output::Authorize { stream_id, request } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(stream_id, "#!::r=auth-check,m=request,token=test1");
    assert_eq!(request.resource.as_deref(), Some("auth-check"));
    assert_eq!(request.token.as_deref(), Some(&b"test1"[..]));
    // The caller repeats its conclusion while tessera decides: nothing is answered yet.
    conn.handle_input(&bytes(tv::FFMPEG_CONCLUSION), now)
        .unwrap();
    assert!(drain(&mut conn).is_empty());

    let accept = AuthAnswer::Accept {
        latency: Duration::from_millis(200),
        passphrase: None,
    };
    conn.authorized(accept, now);
    let out = drain(&mut conn);
    assert_eq!(
        out[0],
        Output::Connected {
            mode: Mode::Play,
            send_latency: Duration::from_millis(200),
            receive_latency: Duration::from_millis(200),
            encrypted: false,
        }
    );
    let reply = datagrams(&out)[0].to_vec();
    let (header, hs) = handshake_of(&reply).unwrap();
    assert_eq!(header.dest_socket, hello.socket_id);
    assert_eq!((hs.kind, hs.socket_id), (HandshakeType::Conclusion, LOCAL));
    let exts: Vec<_> = Extensions::new(hs.extensions, 0)
        .map(Result::unwrap)
        .collect();
    assert_eq!(exts[0].command, cmd::HSRSP);
    assert!(conn.is_established());

    conn.handle_input(&bytes(tv::FFMPEG_CONCLUSION), now)
        .unwrap();
    assert_eq!(datagrams(&drain(&mut conn)), vec![reply.as_slice()]);
}

#[test]
fn rejections_carry_the_reason_and_close() {
    let now = Instant::now();
    for reason in [
        RejectReason::UNAUTHORIZED,
        RejectReason::FORBIDDEN,
        RejectReason::NOT_FOUND,
        RejectReason::UNAVAILABLE,
    ] {
        let hello = hello_from(tv::FFMPEG_CONCLUSION);
        let mut conn = SrtConnection::new(hello, peer(), ConnectionConfig::new(LOCAL), now);
        drain(&mut conn);
        conn.authorized(AuthAnswer::Reject(reason), now);
        let out = drain(&mut conn);
        let (_, hs) = handshake_of(datagrams(&out)[0]).unwrap();
        assert_eq!(hs.kind, HandshakeType::Reject(reason.0));
        assert_eq!(hs.kind.code(), 1000 + reason.0);
        assert_eq!(
            out.last(),
            Some(&Output::Closed(CloseReason::Rejected(reason)))
        );
        assert!(conn.is_closed());
        assert_eq!(conn.poll_output(), None);
    }
}

#[test]
fn a_mode_tessera_does_not_serve_is_refused_without_asking() {
    let now = Instant::now();
    let mut hello = hello_from(tv::FFMPEG_CONCLUSION);
    hello.stream_id = Some("#!::r=x,m=bidirectional".into());
    let mut conn = SrtConnection::new(hello, peer(), ConnectionConfig::new(LOCAL), now);
    let out = drain(&mut conn);
    assert!(!out.iter().any(|o| matches!(o, Output::Authorize { .. })));
    let reason = RejectReason::BAD_MODE;
    assert_eq!(
        out.last(),
        Some(&Output::Closed(CloseReason::Rejected(reason)))
    );
}

#[test]
fn passphrases_must_match_on_both_sides() {
    let now = Instant::now();
    let attempt = |passphrase: Option<&[u8]>, lines: &[&str]| {
        let mut conn =
            SrtConnection::new(hello_from(lines), peer(), ConnectionConfig::new(LOCAL), now);
        drain(&mut conn);
        let passphrase = passphrase.map(<[u8]>::to_vec);
        conn.authorized(
            AuthAnswer::Accept {
                latency: LATENCY,
                passphrase,
            },
            now,
        );
        drain(&mut conn)
    };
    let closed = |r| Some(Output::Closed(CloseReason::Rejected(r)));
    let out = attempt(None, tv::FFMPEG_PASSPHRASE_CONCLUSION);
    assert_eq!(out.last().cloned(), closed(RejectReason::UNSECURE));
    let out = attempt(Some(b"wrong-passphrase"), tv::FFMPEG_PASSPHRASE_CONCLUSION);
    assert_eq!(out.last().cloned(), closed(RejectReason::BADSECRET));
    let out = attempt(Some(b"secret"), tv::FFMPEG_CONCLUSION);
    assert_eq!(out.last().cloned(), closed(RejectReason::UNSECURE));

    let out = attempt(
        Some(tv::CAPTURE_PASSPHRASE),
        tv::FFMPEG_PASSPHRASE_CONCLUSION,
    );
    assert!(matches!(
        out[0],
        Output::Connected {
            encrypted: true,
            ..
        }
    ));
    let (_, hs) = handshake_of(datagrams(&out)[0]).unwrap();
    let exts: Vec<_> = Extensions::new(hs.extensions, 0)
        .map(Result::unwrap)
        .collect();
    assert_eq!(exts[1].command, cmd::KMRSP);
    let sent_km = hello_from(tv::FFMPEG_PASSPHRASE_CONCLUSION)
        .key_material
        .unwrap();
    assert_eq!(
        KeyMaterial::parse(exts[1].contents).unwrap(),
        sent_km,
        "KMRSP echoes KMREQ"
    );
}

#[test]
fn sends_in_order_and_ack_releases_with_ackack() {
    let t0 = Instant::now();
    let mut conn = established(t0);
    let isn = hello_from(tv::FFMPEG_CONCLUSION).isn;
    for i in 0..10u8 {
        assert_eq!(conn.send(&[i; 1316], t0), Ok(isn.add(u32::from(i))));
    }
    let out = drain(&mut conn);
    let sent = data(&out);
    assert_eq!(sent.len(), 10);
    assert_eq!(sent[3].0.seq, isn.add(3));
    assert_eq!(sent[3].0.msg_no, 4);
    assert_eq!(sent[3].0.position, Position::Only);
    assert_eq!(
        sent[3].0.dest_socket,
        hello_from(tv::FFMPEG_CONCLUSION).socket_id
    );
    assert_eq!(sent[3].1, &[3u8; 1316][..]);

    from_peer(&mut conn, full_ack(7, isn.add(6)), t0);
    assert_eq!(conn.send_buffer_len(), 4);
    assert_eq!(
        controls(&drain(&mut conn)),
        vec![Control::AckAck { ack_no: 7 }]
    );
    assert_eq!(conn.rtt().smoothed, Duration::from_millis(20));
    assert_eq!(
        conn.send(&[0; 1457], t0),
        Err(SendError::TooLarge {
            len: 1457,
            max: 1456
        })
    );
}

#[test]
fn nak_retransmits_from_the_buffer_once_per_rtt() {
    let t0 = Instant::now();
    let mut conn = established(t0);
    let isn = hello_from(tv::FFMPEG_CONCLUSION).isn;
    for i in 0..5u8 {
        conn.send(&[i; 100], t0).unwrap();
    }
    drain(&mut conn);
    let t1 = t0 + Duration::from_millis(30);
    nak(
        &mut conn,
        &[(isn.add(1), isn.add(2)), (isn.add(4), isn.add(4))],
        t1,
    );
    let out = drain(&mut conn);
    let again = data(&out);
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|(h, _)| h.retransmitted));
    assert_eq!((again[0].0.seq, again[0].1), (isn.add(1), &[1u8; 100][..]));
    assert_eq!(again[2].0.seq, isn.add(4));
    assert_eq!(conn.stats.retransmitted, 3);
    // Asked again within an RTT (100 ms before any ACK): not resent yet.
    nak(
        &mut conn,
        &[(isn.add(1), isn.add(1))],
        t1 + Duration::from_millis(10),
    );
    assert!(data(&drain(&mut conn)).is_empty());
    nak(
        &mut conn,
        &[(isn.add(1), isn.add(1))],
        t1 + Duration::from_millis(150),
    );
    assert_eq!(data(&drain(&mut conn)).len(), 1);
}

#[test]
fn nak_for_packets_no_longer_buffered_gets_a_drop_request() {
    let t0 = Instant::now();
    let mut conn = established(t0);
    let isn = hello_from(tv::FFMPEG_CONCLUSION).isn;
    for _ in 0..5 {
        conn.send(&[0; 10], t0).unwrap();
    }
    from_peer(&mut conn, full_ack(1, isn.add(3)), t0);
    drain(&mut conn);
    nak(&mut conn, &[(isn.add(1), isn.add(3))], t0);
    let out = drain(&mut conn);
    let drop = Control::DropRequest {
        msg_no: 0,
        first: isn.add(1),
        last: isn.add(2),
    };
    assert_eq!(controls(&out), vec![drop]);
    assert_eq!(data(&out).len(), 1, "seq 3 is still buffered and resent");
}

#[test]
fn too_late_packets_are_dropped_with_a_drop_request() {
    let t0 = Instant::now();
    let mut conn = established(t0);
    let isn = hello_from(tv::FFMPEG_CONCLUSION).isn;
    for _ in 0..3 {
        conn.send(&[0; 10], t0).unwrap();
    }
    conn.send(&[0; 10], t0 + Duration::from_millis(500))
        .unwrap();
    drain(&mut conn);
    // Latency 120 ms: the threshold is the 1 s floor plus 20 ms.
    assert_eq!(conn.send_drop_threshold(), Duration::from_millis(1020));
    let due = t0 + Duration::from_millis(1020);
    conn.handle_timeout(t0);
    assert!(matches!(conn.poll_output(), Some(Output::Timeout(at)) if at <= due));
    conn.handle_timeout(due - Duration::from_millis(1));
    assert!(
        !controls(&drain(&mut conn))
            .iter()
            .any(|c| matches!(c, Control::DropRequest { .. }))
    );
    conn.handle_timeout(due + Duration::from_millis(1));
    let out = drain(&mut conn);
    let drop = Control::DropRequest {
        msg_no: 1,
        first: isn,
        last: isn.add(2),
    };
    assert!(controls(&out).contains(&drop));
    assert_eq!((conn.send_buffer_len(), conn.stats.send_dropped), (1, 3));
}

#[test]
fn keepalive_after_a_quiet_second_and_idle_peer_closes() {
    let t0 = Instant::now();
    let mut conn = established(t0);
    conn.handle_timeout(t0);
    assert_eq!(
        conn.poll_output(),
        Some(Output::Timeout(t0 + Duration::from_secs(1)))
    );
    conn.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(controls(&drain(&mut conn)), vec![Control::KeepAlive]);
    // The peer's keepalive keeps it alive.
    from_peer(&mut conn, Control::KeepAlive, t0 + Duration::from_secs(4));
    conn.handle_timeout(t0 + Duration::from_secs(6));
    assert!(!conn.is_closed());
    assert_eq!(controls(&drain(&mut conn)), vec![Control::KeepAlive]);
    conn.handle_timeout(t0 + Duration::from_secs(9));
    let out = drain(&mut conn);
    assert_eq!(controls(&out), vec![Control::Shutdown]);
    assert_eq!(out.last(), Some(&Output::Closed(CloseReason::PeerIdle)));
}

#[test]
fn shutdown_both_ways() {
    let t0 = Instant::now();
    let mut conn = established(t0);
    from_peer(&mut conn, Control::Shutdown, t0);
    assert_eq!(
        drain(&mut conn),
        vec![Output::Closed(CloseReason::PeerShutdown)]
    );
    assert_eq!(conn.send(&[1], t0), Err(SendError::NotConnected));

    let mut conn = established(t0);
    conn.close(t0);
    let out = drain(&mut conn);
    assert_eq!(controls(&out), vec![Control::Shutdown]);
    assert_eq!(out.last(), Some(&Output::Closed(CloseReason::Local)));
}

/// A publisher connection (srt-live-transmit's conclusion), accepted, with its keys when
/// `passphrase` is given (the hello then carries key material made here).
fn publisher(now: Instant, passphrase: Option<&[u8]>) -> (SrtConnection, CallerHello) {
    publisher_with(now, passphrase, LATENCY)
}

fn publisher_with(
    now: Instant,
    passphrase: Option<&[u8]>,
    latency: Duration,
) -> (SrtConnection, CallerHello) {
    let mut hello = hello_from(tv::SLT_PUBLISH_CONCLUSION);
    if let Some(p) = passphrase {
        hello.key_material = wrap_keys(p, [4; SALT_LEN], &[9; 32], None);
    }
    let mut conn = SrtConnection::new(hello.clone(), peer(), ConnectionConfig::new(LOCAL), now);
    let out = drain(&mut conn);
    assert!(
        matches!(&out[0], Output::Authorize { request, .. } if request.mode() == Mode::Publish)
    );
    let passphrase = passphrase.map(<[u8]>::to_vec);
    conn.authorized(
        AuthAnswer::Accept {
            latency,
            passphrase,
        },
        now,
    );
    drain(&mut conn);
    (conn, hello)
}

fn data_packet(seq: SeqNo, ts: u32, payload: &[u8], key: KeyIndex) -> Vec<u8> {
    let h = DataHeader {
        seq,
        position: Position::Only,
        in_order: false,
        key,
        retransmitted: false,
        msg_no: 1,
        timestamp: ts,
        dest_socket: LOCAL,
    };
    let mut d = Vec::new();
    packet::write_data(&h, payload, &mut d);
    d
}

fn payloads(outputs: &[Output]) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Payload(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn publisher_gaps_are_naked_acked_and_delivered_in_order_at_tsbpd_time() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let (mut conn, hello) = publisher_with(t0, None, ms(1000));
    let isn = hello.isn;
    conn.handle_input(&data_packet(isn, 0, b"p0", KeyIndex::Clear), t0)
        .unwrap();
    conn.handle_input(
        &data_packet(isn.add(3), 3_000, b"p3", KeyIndex::Clear),
        t0 + ms(3),
    )
    .unwrap();
    let out = drain(&mut conn);
    let mut list = Vec::new();
    encode_loss_list([(isn.add(1), isn.add(2))], &mut list);
    assert_eq!(
        controls(&out),
        vec![Control::Nak(LossList::from_encoded(&list))]
    );

    conn.handle_timeout(t0 + ms(10));
    let out = drain(&mut conn);
    let acks: Vec<_> = controls(&out)
        .into_iter()
        .filter_map(|c| match c {
            Control::Ack(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].last_acked, isn.add(1));
    // The sender's ACKACK gives an RTT sample.
    from_peer(
        &mut conn,
        Control::AckAck {
            ack_no: acks[0].ack_no,
        },
        t0 + ms(14),
    );
    assert!(conn.rtt().smoothed < ms(100));

    // The periodic NAK asks again after RTT + 4 RTTVar (300 ms with the initial RTT).
    conn.handle_timeout(t0 + ms(200));
    let out = drain(&mut conn);
    assert!(!controls(&out).iter().any(|c| matches!(c, Control::Nak(_))));
    conn.handle_timeout(t0 + ms(303));
    let out = drain(&mut conn);
    assert!(controls(&out).contains(&Control::Nak(LossList::from_encoded(&list))));

    // The retransmissions arrive; p0 is due at 1 s, p1..p3 follow in order.
    conn.handle_input(
        &data_packet(isn.add(1), 1_000, b"p1", KeyIndex::Clear),
        t0 + ms(310),
    )
    .unwrap();
    conn.handle_input(
        &data_packet(isn.add(2), 2_000, b"p2", KeyIndex::Clear),
        t0 + ms(311),
    )
    .unwrap();
    conn.handle_timeout(t0 + ms(999));
    assert!(payloads(&drain(&mut conn)).is_empty());
    conn.handle_timeout(t0 + ms(1003));
    let got = payloads(&drain(&mut conn));
    assert_eq!(
        got,
        vec![
            b"p0".to_vec(),
            b"p1".to_vec(),
            b"p2".to_vec(),
            b"p3".to_vec()
        ]
    );
    assert_eq!(conn.stats.receive_skipped, 0);
}

#[test]
fn publisher_holes_past_their_time_are_skipped() {
    let t0 = Instant::now();
    let (mut conn, hello) = publisher(t0, None);
    let isn = hello.isn;
    conn.handle_input(&data_packet(isn, 0, b"a", KeyIndex::Clear), t0)
        .unwrap();
    conn.handle_input(&data_packet(isn.add(2), 2_000, b"c", KeyIndex::Clear), t0)
        .unwrap();
    from_peer(
        &mut conn,
        Control::DropRequest {
            msg_no: 0,
            first: isn.add(1),
            last: isn.add(1),
        },
        t0,
    );
    conn.handle_timeout(t0 + Duration::from_millis(200));
    assert_eq!(
        payloads(&drain(&mut conn)),
        vec![b"a".to_vec(), b"c".to_vec()]
    );
    assert_eq!(conn.stats.receive_skipped, 1);
}

#[test]
fn publisher_shutdown_delivers_what_is_buffered_first() {
    let t0 = Instant::now();
    let (mut conn, hello) = publisher(t0, None);
    conn.handle_input(&data_packet(hello.isn, 0, b"a", KeyIndex::Clear), t0)
        .unwrap();
    conn.handle_input(
        &data_packet(hello.isn.add(1), 10, b"b", KeyIndex::Clear),
        t0,
    )
    .unwrap();
    from_peer(&mut conn, Control::Shutdown, t0);
    let out = drain(&mut conn);
    assert_eq!(payloads(&out), vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(out.last(), Some(&Output::Closed(CloseReason::PeerShutdown)));
}

#[test]
fn encrypted_publisher_payloads_are_decrypted() {
    let t0 = Instant::now();
    let pass = b"publisher-passphrase";
    let (mut conn, hello) = publisher(t0, Some(pass));
    let keys = hello.key_material.unwrap().unwrap_keys(pass).unwrap();
    let plain = [0x47u8; 1316];
    let mut cipher = plain;
    keys.apply(KeyIndex::Even, hello.isn, &mut cipher).unwrap();
    conn.handle_input(&data_packet(hello.isn, 0, &cipher, KeyIndex::Even), t0)
        .unwrap();
    conn.handle_timeout(t0 + LATENCY);
    assert_eq!(payloads(&drain(&mut conn)), vec![plain.to_vec()]);
    // A packet under a key the caller never sent is refused, not delivered.
    let odd = data_packet(hello.isn.add(1), 0, &cipher, KeyIndex::Odd);
    assert_eq!(
        conn.handle_input(&odd, t0),
        Err(ConnectionError::Crypto(CryptoError::NoKey))
    );
}

#[test]
fn key_refresh_in_band_adds_the_odd_key_and_is_answered() {
    let t0 = Instant::now();
    let pass = b"publisher-passphrase";
    let (mut conn, hello) = publisher(t0, Some(pass));
    // The sender announces its next (odd) key with the same salt.
    let mut refresh = wrap_keys(pass, [4; SALT_LEN], &[7; 32], None).unwrap();
    refresh.keys = KeyIndex::Odd;
    let mut body = Vec::new();
    refresh.write(&mut body);
    let kmreq = Control::Extended {
        subtype: cmd::KMREQ,
        body: &body,
    };
    from_peer(&mut conn, kmreq, t0);
    let out = drain(&mut conn);
    let kmrsp = Control::Extended {
        subtype: cmd::KMRSP,
        body: &body,
    };
    assert_eq!(controls(&out), vec![kmrsp]);
    // Packets under the odd key now decrypt; the even key still works.
    let odd_keys = refresh.unwrap_keys(pass).unwrap();
    let even_keys = hello.key_material.unwrap().unwrap_keys(pass).unwrap();
    let mut p0 = *b"even-key-payload";
    even_keys.apply(KeyIndex::Even, hello.isn, &mut p0).unwrap();
    let mut p1 = *b"odd-key-payload!";
    odd_keys
        .apply(KeyIndex::Odd, hello.isn.add(1), &mut p1)
        .unwrap();
    conn.handle_input(&data_packet(hello.isn, 0, &p0, KeyIndex::Even), t0)
        .unwrap();
    conn.handle_input(&data_packet(hello.isn.add(1), 0, &p1, KeyIndex::Odd), t0)
        .unwrap();
    conn.handle_timeout(t0 + LATENCY);
    let got = payloads(&drain(&mut conn));
    assert_eq!(
        got,
        vec![b"even-key-payload".to_vec(), b"odd-key-payload!".to_vec()]
    );

    // Material the passphrase does not unwrap gets the BADSECRET state word.
    let bad = wrap_keys(b"another-passphrase", [4; SALT_LEN], &[7; 32], None).unwrap();
    let mut body = Vec::new();
    bad.write(&mut body);
    let kmreq = Control::Extended {
        subtype: cmd::KMREQ,
        body: &body,
    };
    from_peer(&mut conn, kmreq, t0);
    let state = 4u32.to_be_bytes();
    let refused = Control::Extended {
        subtype: cmd::KMRSP,
        body: &state,
    };
    assert_eq!(controls(&drain(&mut conn)), vec![refused]);
}

#[test]
fn encrypted_viewer_packets_decrypt_with_the_callers_keys() {
    let t0 = Instant::now();
    let hello = hello_from(tv::FFMPEG_PASSPHRASE_CONCLUSION);
    let mut conn = SrtConnection::new(hello.clone(), peer(), ConnectionConfig::new(LOCAL), t0);
    let passphrase = Some(tv::CAPTURE_PASSPHRASE.to_vec());
    conn.authorized(
        AuthAnswer::Accept {
            latency: LATENCY,
            passphrase,
        },
        t0,
    );
    drain(&mut conn);
    let plain = [0x47u8; 1316];
    conn.send(&plain, t0).unwrap();
    let out = drain(&mut conn);
    let (h, payload) = data(&out)[0];
    assert_eq!(h.key, KeyIndex::Even);
    assert_ne!(payload, &plain[..]);
    let keys = hello
        .key_material
        .unwrap()
        .unwrap_keys(tv::CAPTURE_PASSPHRASE)
        .unwrap();
    let mut back = payload.to_vec();
    keys.apply(h.key, h.seq, &mut back).unwrap();
    assert_eq!(back, plain);
    assert_ne!(hello.srt_flags & srt_flag::HAICRYPT, 0);
}

#[test]
fn stray_and_malformed_datagrams_are_errors_not_the_end() {
    let t0 = Instant::now();
    let mut conn = established(t0);
    assert!(matches!(
        conn.handle_input(&[0x80, 0], t0),
        Err(ConnectionError::Packet(_))
    ));
    let mut other = Vec::new();
    ControlPacket {
        timestamp: 0,
        dest_socket: 99,
        control: Control::Shutdown,
    }
    .write(&mut other);
    assert_eq!(
        conn.handle_input(&other, t0),
        Err(ConnectionError::WrongSocket(99))
    );
    assert!(conn.is_established());
    let mut x: u32 = 0x9e37_79b9;
    for len in 0..300usize {
        let mut d = tv::noise(&mut x, len);
        if d.len() >= 16 {
            d[12..16].copy_from_slice(&LOCAL.to_be_bytes());
        }
        let _ = conn.handle_input(&d, t0);
        conn.handle_timeout(t0 + Duration::from_millis(len as u64));
        drain(&mut conn);
    }
}

/// An in-band KMREQ with `salt`, as its body.
fn refresh_body(pass: &[u8], salt: u8) -> Vec<u8> {
    let mut refresh = wrap_keys(pass, [salt; SALT_LEN], &[7; 32], None).unwrap();
    refresh.keys = KeyIndex::Odd;
    let mut body = Vec::new();
    refresh.write(&mut body);
    body
}

/// What the connection answers a KMREQ with `body` at `now`: the material back, or not.
fn refresh_accepted(conn: &mut SrtConnection, body: &[u8], now: Instant) -> bool {
    let kmreq = Control::Extended {
        subtype: cmd::KMREQ,
        body,
    };
    from_peer(conn, kmreq, now);
    let echoed = Control::Extended {
        subtype: cmd::KMRSP,
        body,
    };
    controls(&drain(conn)).contains(&echoed)
}

#[test]
fn key_refreshes_with_new_salts_run_pbkdf2_at_most_once_a_second() {
    let t0 = Instant::now();
    let pass = b"publisher-passphrase";
    let (mut conn, _) = publisher(t0, Some(pass));
    // The handshake's salt (4, see `publisher`): the cached KEK, any number of times.
    for i in 0..5 {
        let body = refresh_body(pass, 4);
        assert!(refresh_accepted(&mut conn, &body, t0), "same salt, #{i}");
    }
    // A new salt derives once; another within the second is refused (BADSECRET).
    assert!(refresh_accepted(&mut conn, &refresh_body(pass, 5), t0));
    let soon = t0 + Duration::from_millis(500);
    assert!(!refresh_accepted(&mut conn, &refresh_body(pass, 6), soon));
    let later = t0 + Duration::from_millis(1001);
    assert!(refresh_accepted(&mut conn, &refresh_body(pass, 6), later));
}
