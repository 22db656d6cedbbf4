//! Fuzzes the sans-IO SRT listener: the packet parser, the stateless handshake listener and
//! an established connection (a viewer and a publisher, one encrypted). The input is split
//! into datagrams (a length byte, then that many bytes); each goes to the listener and to
//! both connections, with time moving on a little per datagram, and the connections send
//! media so that ACKs, NAKs and drop requests find packets to act on.
//! Any panic is a bug: untrusted datagrams must only ever produce errors or outputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tessera::srt::connection::{AuthAnswer, ConnectionConfig, SrtConnection};
use tessera::srt::crypto::wrap_keys;
use tessera::srt::handshake::{CallerHello, Listener, ListenerReply};
use tessera::srt::packet::{self, Control, Packet};
use tessera::srt::seq::SeqNo;

const LOCAL: u32 = 0x0abc_0001;

fn hello(stream_id: &str, passphrase: Option<&[u8]>) -> CallerHello {
    CallerHello {
        socket_id: 0x1234,
        isn: SeqNo::new(0x7FFF_FFF0),
        mtu: 1500,
        flow_window: 8192,
        srt_version: 0x0001_0501,
        srt_flags: 0xbf,
        receiver_latency_ms: 120,
        sender_latency_ms: 120,
        stream_id: Some(stream_id.to_owned()),
        key_material: passphrase.and_then(|p| wrap_keys(p, [1; 16], &[2; 16], None)),
        timestamp: 0,
    }
}

fn connection(stream_id: &str, passphrase: Option<&[u8]>, now: Instant) -> SrtConnection {
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let cfg = ConnectionConfig::new(LOCAL);
    let mut conn = SrtConnection::new(hello(stream_id, passphrase), peer, cfg, now);
    let passphrase = passphrase.map(<[u8]>::to_vec);
    let answer = AuthAnswer::Accept {
        latency: Duration::from_millis(120),
        passphrase,
    };
    conn.authorized(answer, now);
    while conn.poll_output().is_some() {}
    conn
}

/// Accepted once (PBKDF2 is slow on purpose), cloned for every run.
struct Templates {
    t0: Instant,
    viewer: SrtConnection,
    publisher: SrtConnection,
}

fn templates() -> &'static Templates {
    static TEMPLATES: OnceLock<Templates> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let t0 = Instant::now();
        Templates {
            t0,
            viewer: connection("#!::r=a,m=request,token=t", None, t0),
            publisher: connection("#!::r=a,m=publish,token=t", Some(b"passphrase"), t0),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let t = templates();
    let t0 = t.t0;
    let listener = Listener::new([9; 32], t0);
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut viewer = t.viewer.clone();
    let mut publisher = t.publisher.clone();
    let mut rest = data;
    let mut now = t0;
    while let Some((&len, tail)) = rest.split_first() {
        let take = usize::from(len).min(tail.len());
        let (datagram, tail) = tail.split_at(take);
        rest = tail;
        now += Duration::from_millis(u64::from(len % 16));
        if let Ok(Packet::Control(c)) = packet::parse(datagram) {
            if let Control::Nak(list) = c.control {
                let _ = list.ranges().count();
            }
        }
        if let Ok(ListenerReply::Conclusion(hello)) = listener.handle(datagram, peer, now) {
            let _ = SrtConnection::new(hello, peer, ConnectionConfig::new(1), now);
        }
        let _ = viewer.send(&[0x47; 1316], now);
        for conn in [&mut viewer, &mut publisher] {
            let _ = conn.handle_input(datagram, now);
            conn.handle_timeout(now);
            while conn.poll_output().is_some() {}
        }
    }
    for conn in [&mut viewer, &mut publisher] {
        conn.handle_timeout(now + Duration::from_secs(10));
        while conn.poll_output().is_some() {}
    }
});
