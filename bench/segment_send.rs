//! criterion bench of a large segment body on its way into a viewer's socket: before
//! (2026-12-06) every request copied the body from the shared buffer into the socket
//! (`write`); now the shard's memory file of that body (`body_files::file_for`, a hit after
//! the first request) goes out with `sendfile` (`body_files::send_now`), the kernel
//! referencing the file's pages instead of copying them. Over loopback TCP, a thread on the
//! other end reading and dropping everything. The time measured is the sending thread's CPU
//! time (`CLOCK_THREAD_CPUTIME_ID`), what a shard pays per segment: wall time would be the
//! receiving thread's copy, the same in both.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};
use tessera::runtime::body_files::{self, Sent};

/// A connected pair's sending end; the receiving end drains on its own thread.
fn drained_socket() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let sender = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (mut receiver, _) = listener.accept().expect("accept");
    std::thread::spawn(move || {
        let mut sink = vec![0u8; 256 * 1024];
        while matches!(receiver.read(&mut sink), Ok(n) if n > 0) {}
    });
    sender
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("thread CPU clock");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// The sending thread's CPU time for `iters` runs of `send`.
fn cpu_of(iters: u64, mut send: impl FnMut()) -> Duration {
    let start = thread_cpu();
    for _ in 0..iters {
        send();
    }
    thread_cpu() - start
}

/// Waits (without spinning) until `socket` can take more.
fn wait_writable(socket: &TcpStream) {
    use nix::poll::{PollFd, PollFlags, poll};
    let fd = socket.as_fd();
    let mut fds = [PollFd::new(&fd, PollFlags::POLLOUT)];
    poll(&mut fds, -1).expect("poll");
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("segment_send");
    for size in [120 * 1024, 477 * 1024] {
        let body = Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>());
        group.throughput(Throughput::Bytes(size as u64));
        let mut socket = drained_socket();
        group.bench_with_input(BenchmarkId::new("write_copy", size), &body, |b, body| {
            b.iter_custom(|iters| cpu_of(iters, || socket.write_all(body).expect("write")))
        });
        let socket = drained_socket();
        // A body's file is made at its second request; every request after is a hit.
        assert!(body_files::file_for(&body, Instant::now()).is_none());
        group.bench_with_input(
            BenchmarkId::new("sendfile_memfd", size),
            &body,
            |b, body| b.iter_custom(|iters| cpu_of(iters, || send_file(&socket, body))),
        );
    }
    group.finish();
}

/// One segment request's body as the server sends it now.
fn send_file(socket: &TcpStream, body: &Bytes) {
    let file = body_files::file_for(body, Instant::now()).expect("memfd");
    let mut offset = 0i64;
    while (offset as usize) < body.len() {
        let left = body.len() - offset as usize;
        match body_files::send_now(socket.as_raw_fd(), &file, &mut offset, left) {
            Ok(Sent::Bytes(n)) => assert!(n > 0, "peer closed"),
            // The reader is behind: the server awaits writability here.
            Ok(Sent::Full) => wait_writable(socket),
            Err(e) => panic!("sendfile: {e}"),
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
