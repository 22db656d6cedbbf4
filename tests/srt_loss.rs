//! SRT under loss: a small UDP relay inside the test stands between ffmpeg (libsrt 1.5) and
//! the real server and drops 3 % of the datagrams each way (a fixed pseudo-random sequence);
//! NAKs and retransmissions from the server's send buffer must hide it, so that ffmpeg
//! decodes 10 s of the fake source with `-xerror` and prints nothing. Only 127.0.0.1.

mod common;
use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Datagrams dropped per thousand, each way.
const DROP_PER_MILLE: u32 = 30;

/// A UDP relay for one caller: what reaches `front` goes to `server` from `back`, and back.
struct LossyRelay {
    front: u16,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    relayed: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

/// Decides which datagrams to drop: xorshift32, `DROP_PER_MILLE` of a thousand.
struct Dropper(u32);

impl Dropper {
    fn drops(&mut self) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0 % 1000 < DROP_PER_MILLE
    }
}

impl LossyRelay {
    fn start(server: SocketAddr) -> LossyRelay {
        let front = UdpSocket::bind("127.0.0.1:0").expect("relay front");
        let back = UdpSocket::bind("127.0.0.1:0").expect("relay back");
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
        }
        let port = front.local_addr().unwrap().port();
        let (front, back) = (Arc::new(front), Arc::new(back));
        let caller: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (dropped, relayed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut threads = Vec::new();
        for (towards_server, seed) in [(true, 0x1234_5678u32), (false, 0x9abc_def1)] {
            let (front, back, caller) = (front.clone(), back.clone(), caller.clone());
            let (stop, dropped, relayed) = (stop.clone(), dropped.clone(), relayed.clone());
            threads.push(std::thread::spawn(move || {
                let mut dropper = Dropper(seed);
                let mut buf = [0u8; 2048];
                let (from, to) = if towards_server {
                    (&front, &back)
                } else {
                    (&back, &front)
                };
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, source)) = from.recv_from(&mut buf) else {
                        continue;
                    };
                    let target = if towards_server {
                        *caller.lock().unwrap() = Some(source);
                        Some(server)
                    } else {
                        *caller.lock().unwrap()
                    };
                    if dropper.drops() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if let Some(target) = target {
                        let _ = to.send_to(&buf[..n], target);
                        relayed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        LossyRelay {
            front: port,
            stop,
            dropped,
            relayed,
            threads,
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn ffmpeg_decodes_ten_seconds_through_three_percent_loss_each_way() {
    let (http, srt) = (free_port(), free_port());
    // 500 ms of latency, as SRT over a lossy link is run (several round trips): a resend
    // that is itself dropped must have time for a second NAK even on a loaded machine (at
    // 120 ms, scheduling delays of a busy 2-core test host alone made libsrt give up on
    // packets). Without retransmission, 3 % loss corrupts the picture whatever the latency.
    let config = format!(
        "{}srt 127.0.0.1:{srt};\nsrt_latency 500;\n",
        demo_config(http)
    );
    let server = Server::start(&config, http);
    server.wait_ok("/auth-check/tracks-v1a1/mono.m3u8?token=test1");
    let relay = LossyRelay::start(SocketAddr::from(([127, 0, 0, 1], srt)));
    let url = format!(
        "srt://127.0.0.1:{}?streamid=#!::r=auth-check,m=request,token=test1",
        relay.front
    );
    assert_decodes_cleanly(&[], &url, 10, &[]);
    let (dropped, relayed) = (
        relay.dropped.load(Ordering::Relaxed),
        relay.relayed.load(Ordering::Relaxed),
    );
    eprintln!("relay: {relayed} datagrams relayed, {dropped} dropped");
    // The loss was real: about 3 % of several thousand datagrams.
    assert!(relayed > 1000, "{relayed} relayed");
    assert!(
        dropped * 100 > relayed * 2,
        "{dropped} of {relayed} dropped"
    );
}
