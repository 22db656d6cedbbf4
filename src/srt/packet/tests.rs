use super::*;
use crate::srt::test_vectors::noise;

fn round_trip(p: ControlPacket<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    p.write(&mut out);
    assert_eq!(parse(&out), Ok(Packet::Control(p)));
    out
}

#[test]
fn data_header_fields_round_trip() {
    let h = DataHeader {
        seq: SeqNo::new(0x7FFF_FFFE),
        position: Position::Only,
        in_order: false,
        key: KeyIndex::Odd,
        retransmitted: true,
        msg_no: 0x03FF_FFFF,
        timestamp: 0xDEAD_BEEF,
        dest_socket: 0x1234_5678,
    };
    let mut out = Vec::new();
    write_data(&h, b"payload", &mut out);
    assert_eq!(&out[..4], &[0x7F, 0xFF, 0xFF, 0xFE]);
    // PP=11, O=0, KK=10, R=1, msgno all ones.
    assert_eq!(&out[4..8], &[0xD7, 0xFF, 0xFF, 0xFF]);
    assert_eq!(parse(&out), Ok(Packet::Data(h, &b"payload"[..])));
    let clear = DataHeader {
        retransmitted: false,
        key: KeyIndex::Clear,
        ..h
    };
    let mut out = Vec::new();
    write_data(&clear, &[], &mut out);
    set_retransmitted(&mut out);
    let Ok(Packet::Data(back, _)) = parse(&out) else {
        panic!()
    };
    assert!(back.retransmitted);
}

#[test]
fn control_packets_round_trip() {
    let ctl = |control| ControlPacket {
        timestamp: 1000,
        dest_socket: 77,
        control,
    };
    let ka = round_trip(ctl(Control::KeepAlive));
    assert_eq!(&ka[..4], &[0x80, 0x01, 0, 0]);
    assert_eq!(ka.len(), 20);
    round_trip(ctl(Control::Shutdown));
    round_trip(ctl(Control::AckAck { ack_no: 9 }));
    round_trip(ctl(Control::PeerError(4000)));
    round_trip(ctl(Control::DropRequest {
        msg_no: 5,
        first: SeqNo::new(10),
        last: SeqNo::new(20),
    }));
    let full = Ack {
        ack_no: 3,
        last_acked: SeqNo::new(100),
        rtt_us: Some(10_000),
        rtt_var_us: Some(5_000),
        buffer_free: Some(8000),
        packet_rate: Some(1),
        capacity: Some(2),
        receive_rate: Some(3),
    };
    assert_eq!(round_trip(ctl(Control::Ack(full))).len(), 16 + 28);
    let light = Ack {
        ack_no: 0,
        last_acked: SeqNo::new(100),
        ..Ack::default()
    };
    assert_eq!(round_trip(ctl(Control::Ack(light))).len(), 20);
    round_trip(ctl(Control::Other {
        control_type: control_type::CONGESTION_WARNING,
        subtype: 0,
    }));
    let ext = round_trip(ctl(Control::Extended {
        subtype: 3,
        body: &[1, 2, 3, 4],
    }));
    assert_eq!(&ext[..4], &[0xFF, 0xFF, 0, 3]);
}

#[test]
fn nak_loss_list_singles_and_ranges() {
    let mut list = Vec::new();
    let ranges = [
        (SeqNo::new(5), SeqNo::new(5)),
        (SeqNo::new(8), SeqNo::new(12)),
        (SeqNo::new(SeqNo::MAX), SeqNo::new(1)),
    ];
    encode_loss_list(ranges, &mut list);
    assert_eq!(list.len(), 4 + 8 + 8);
    let p = ControlPacket {
        timestamp: 0,
        dest_socket: 1,
        control: Control::Nak(LossList::from_encoded(&list)),
    };
    let out = round_trip(p);
    let Ok(Packet::Control(ControlPacket {
        control: Control::Nak(parsed),
        ..
    })) = parse(&out)
    else {
        panic!()
    };
    assert_eq!(parsed.ranges().collect::<Vec<_>>(), ranges);
}

#[test]
fn errors_name_the_field_and_offset() {
    assert_eq!(
        parse(&[0x80, 0, 0, 0, 0]),
        Err(PacketError {
            offset: 4,
            what: "header word 1"
        })
    );
    let mut hs = vec![0x80, 0, 0, 0];
    hs.extend_from_slice(&[0; 12 + 20]);
    let err = parse(&hs).unwrap_err();
    assert_eq!((err.offset, err.what), (36, "handshake type"));
    // A range start without its end.
    let mut nak = vec![0x80, 0x03, 0, 0];
    nak.extend_from_slice(&[0; 12]);
    nak.extend_from_slice(&[0x80, 0, 0, 1]);
    assert_eq!(
        parse(&nak).unwrap_err().what,
        "loss list range without its last seq"
    );
    let mut drop = vec![0x80, 0x07, 0, 0];
    drop.extend_from_slice(&[0; 12]);
    assert_eq!(parse(&drop).unwrap_err().offset, 16);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic sweep; the fuzz target goes further.
    let mut x: u32 = 0x1234_5678;
    for len in 0..200usize {
        for _ in 0..20 {
            let buf = noise(&mut x, len);
            if let Ok(Packet::Control(ControlPacket { control, .. })) = parse(&buf) {
                match control {
                    Control::Nak(l) => {
                        let _ = l.ranges().count();
                    }
                    Control::Handshake(hs) => {
                        let _ = Extensions::new(hs.extensions, 0).count();
                    }
                    _ => {}
                }
            }
        }
    }
}
