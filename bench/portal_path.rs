//! criterion benches of a cold portal decision's in-process parts, apart from the portal:
//! the claim that picks the shard to ask (`PortalClaims::claim`), the backend exchange's
//! codec (request written, answer parsed on a keep-alive connection), and what a question
//! cost before the claim table when it crossed to the key's owner shard: a round trip over
//! a glommio shared channel (what the auth mesh is made of) between two pinned executors,
//! to a peer that was parked (idle, asleep in the kernel) and back to back.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};
use std::time::{Duration, Instant};
use tessera::auth::backend_client::{BackendConnection, ConnectionLimits};
use tessera::auth::claims::PortalClaims;
use tessera::auth::portal::{BackendQuery, RequestType, write_backend_request};
use tessera::auth::verdict::Proto;
use tessera::config::BackendUrl;

/// What the example portal (`tools/portal.rs`) answers to an allowed token.
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\
X-AuthDuration: 30\r\nX-UserId: alice\r\n\r\nok\n";

fn claim(c: &mut Criterion) {
    let now = Instant::now();
    let claims = PortalClaims::new(now);
    let mut key = 0u64;
    c.bench_function("portal/claim_a_fresh_key", |b| {
        b.iter(|| {
            key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
            black_box(claims.claim(black_box(key), 0, now, Duration::from_secs(3)))
        })
    });
}

fn exchange_codec(c: &mut Criterion) {
    let url = BackendUrl::parse("http://127.0.0.1:8081/auth").expect("url");
    let query = BackendQuery {
        name: "live",
        proto: Proto::Hls,
        ip: "127.0.0.1".parse().expect("ip"),
        token: Some(b"cold-token-0123456789".as_slice()),
        session_id: "0f6c1a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
        request_type: RequestType::NewSession,
        request_number: 1,
        stream_clients: 3,
        total_clients: 7,
        qs: b"token=cold-token-0123456789",
        user_agent: Some(b"curl/8.5.0".as_slice()),
        referer: None,
    };
    let now = Instant::now();
    let mut conn = BackendConnection::new(ConnectionLimits::default(), now);
    let mut request = Vec::with_capacity(512);
    c.bench_function("portal/request_written_and_answer_parsed", |b| {
        b.iter(|| {
            request.clear();
            write_backend_request(&url, black_box(&query), &mut request);
            conn.start(&request, now).expect("idle");
            let n = conn.poll_transmit().len();
            conn.transmitted(n);
            let answer = conn.handle_input(black_box(ANSWER), now).expect("answer");
            black_box(answer.expect("complete"))
        })
    });
}

/// `iters` round trips from an executor on CPU 0 to one on CPU 1 and back, each after
/// `pause` (long enough for the peer to park); the time of the round trips alone.
fn round_trips(iters: u64, pause: Duration) -> Duration {
    let (ping_tx, ping_rx) = shared_channel::new_bounded::<u64>(16);
    let (pong_tx, pong_rx) = shared_channel::new_bounded::<u64>(16);
    let peer = LocalExecutorBuilder::new(Placement::Fixed(1))
        .spawn(move || async move {
            let rx = ping_rx.connect().await;
            let tx = pong_tx.connect().await;
            while let Some(n) = rx.recv().await {
                if tx.send(n).await.is_err() {
                    break;
                }
            }
        })
        .expect("peer executor");
    let took = LocalExecutorBuilder::new(Placement::Fixed(0))
        .spawn(move || async move {
            let tx = ping_tx.connect().await;
            let rx = pong_rx.connect().await;
            let mut took = Duration::ZERO;
            for i in 0..iters {
                if !pause.is_zero() {
                    glommio::timer::sleep(pause).await;
                }
                let start = Instant::now();
                tx.send(i).await.expect("peer gone");
                rx.recv().await.expect("peer gone");
                took += start.elapsed();
            }
            took
        })
        .expect("asking executor")
        .join()
        .expect("asking executor ran");
    peer.join().expect("peer executor ran");
    took
}

fn mesh_hop(c: &mut Criterion) {
    let mut group = c.benchmark_group("portal");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("shard_round_trip_to_a_parked_peer", |b| {
        b.iter_custom(|iters| round_trips(iters, Duration::from_millis(1)))
    });
    group.bench_function("shard_round_trip_back_to_back", |b| {
        b.iter_custom(|iters| round_trips(iters, Duration::ZERO))
    });
    group.finish();
}

criterion_group!(benches, claim, exchange_codec, mesh_hop);
criterion_main!(benches);
