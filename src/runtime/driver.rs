//! The connection driver: the one loop every connection protocol runs on (RTMP, RTSP,
//! HTTP MPEG-TS, SRT and WebRTC).
//!
//! A protocol plugs in as a `Glue`: its sans-IO connection machine (fed with bytes, polled
//! for outputs) and a `FrameViewer` (ring frames in, protocol bytes out). The driver owns
//! everything else: the input buffer (compaction and bounded growth), the select over
//! socket readable / next ring frame / the machine's deadline / the play's re-check, the
//! ring cursor with its catch-up policy, frame batches, the flush mark, the output
//! (`Outbox`: connection bytes and datagrams), byte accounting, and the end: whatever ends
//! a connection, `Glue::finish` runs once, so a session is closed on every path.
//!
//! ```text
//!   read ─▶ Glue::feed ─▶ Glue::act (outputs; awaits authorization) ─▶ flush
//!     ▲                                                                  │
//!     └── wait: readable | ring frame | deadline | re-check ◀────────────┘
//!                            │
//!        cursor.step ─▶ FrameViewer::queue/write ─▶ Outbox ─▶ socket / UDP
//! ```
//!
//! A connection's `Link` is a byte stream (TCP, TLS: read into the input buffer, the
//! outbox's byte stream written in order) or one peer of the shard's UDP endpoint
//! (`Link::Datagrams`: each datagram from the peer's queue is fed whole to the machine, each
//! `Transmit` is a datagram of its own, and the viewer's datagrams are media payloads the
//! machine carries in its own packets, `Machine::carry`: SRT's sequence numbers, send
//! buffer and encryption). On a datagram link a bad datagram is ignored, never the end.

use crate::auth::play::PlayLifecycle;
use crate::auth::verdict::{DenyReason, StreamId};
use crate::runtime::admission::Arrival;
use crate::runtime::ring_wait::RingReady;
use crate::runtime::rtsp_conn::UdpPair;
use crate::runtime::stop_signal::{StopSignal, shard_stop};
use crate::runtime::tls::Wire;
use crate::shard::{Now, ShardState};
use crate::stream::ring::{Patience, Step, ViewerCursor};
use crate::stream::viewer::{Channel, DatagramTo, FrameViewer, MediaNow, Outbox, Piece};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::LocalReceiver;
use glommio::net::UdpSocket;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

/// Frames sent per wake-up before other tasks get the shard back.
pub const FRAMES_PER_BATCH: usize = 64;
/// Output is written once it reaches this, also in the middle of a frame: a viewer's
/// output buffer stays this small (plus one packet or chunk) whatever the size of a
/// keyframe or of the start-up burst.
pub const FLUSH_AT: usize = 32 * 1024;

/// What the driver does after `Glue::act`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Nothing more moves until new input, a frame or a timer.
    Idle,
    /// The machine took an answer (an authorization): feed the kept input again.
    Again,
    /// End the connection (after writing what is queued).
    Close,
}

/// A viewer playing a stream: where it is in the stream's ring, and its protocol machine.
pub struct Viewing<V> {
    pub stream: StreamId,
    pub cursor: ViewerCursor,
    pub viewer: V,
    pub paused: bool,
    /// When the viewer started, for the closing log line.
    pub started: Instant,
}

impl<V> Viewing<V> {
    pub fn new(stream: StreamId, viewer: V) -> Self {
        Viewing {
            stream,
            cursor: ViewerCursor::new(),
            viewer,
            paused: false,
            started: Instant::now(),
        }
    }
}

/// What a connection plays: its authorization and, while media flows, its viewer. The
/// play is re-checked only while a viewer plays.
pub struct Playback<V> {
    pub play: Option<PlayLifecycle>,
    pub viewing: Option<Viewing<V>>,
}

/// A viewer was to start without an allowed play (a machine out of step with its glue).
#[derive(Debug)]
pub struct NotAllowed;

impl<V> Playback<V> {
    /// Opens the allowed play's session and starts `viewer` on its stream: the session's
    /// id for logs (`-` when the shard's session table is full). `Err` when no play was
    /// allowed.
    pub fn start(
        &mut self,
        state: &Rc<RefCell<ShardState>>,
        viewer: V,
    ) -> Result<String, NotAllowed> {
        let play = self.play.as_mut().ok_or(NotAllowed)?;
        let session = crate::runtime::play_auth::open_session(state, play);
        self.viewing = Some(Viewing::new(play.stream(), viewer));
        Ok(session.map_or_else(|| "-".to_owned(), |s| s.to_string()))
    }
}

impl<V> Default for Playback<V> {
    fn default() -> Self {
        Playback {
            play: None,
            viewing: None,
        }
    }
}

/// A protocol's sans-IO connection machine, as the driver feeds and polls it.
pub(crate) trait Machine {
    type Output;
    type Error: std::fmt::Display;
    /// Consumes a prefix of `input`; a framing error queues the machine's refusal and close.
    fn handle_input(&mut self, input: &[u8], now: Instant) -> Result<usize, Self::Error>;
    fn poll_output(&mut self) -> Option<Self::Output>;
    /// Input is kept, not fed, until the pending authorization is answered.
    fn awaiting_authorization(&self) -> bool;
    /// The bytes of an output that only asks for them to be written.
    fn transmit(output: &Self::Output) -> Option<&[u8]>;
    /// The instant of an output that sets the machine's timer.
    fn timeout(output: &Self::Output) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    /// The socket reached its end or failed.
    fn peer_closed(&mut self);
    /// Takes one media payload the viewer wrote as a datagram into the machine's own
    /// packets (a datagram link's protocol: SRT); its outputs then carry it. `Err` when the
    /// machine cannot take more (the viewer is behind). Never called on byte-stream links.
    fn carry(&mut self, _payload: &[u8], _now: Instant) -> Result<(), &'static str> {
        Err("this protocol carries no media datagrams")
    }
}

/// Implements `Machine` for a protocol's connection type, whose inherent `handle_input`,
/// `poll_output`, `awaiting_authorization` and `handle_timeout` have the same meaning, whose
/// outputs have `Transmit(bytes)` and `Timeout(at)` variants, and which may have a
/// `peer_closed` to call when the socket ends.
macro_rules! machine_of {
    ($machine:ty, $output:ident, $error:ty $(, $peer_closed:ident)?) => {
        impl $crate::runtime::driver::Machine for $machine {
            type Output = $output;
            type Error = $error;

            fn handle_input(
                &mut self,
                input: &[u8],
                now: std::time::Instant,
            ) -> Result<usize, $error> {
                <$machine>::handle_input(self, input, now)
            }

            fn poll_output(&mut self) -> Option<$output> {
                <$machine>::poll_output(self)
            }

            fn awaiting_authorization(&self) -> bool {
                <$machine>::awaiting_authorization(self)
            }

            fn transmit(output: &$output) -> Option<&[u8]> {
                match output {
                    $output::Transmit(bytes) => Some(bytes),
                    _ => None,
                }
            }

            fn timeout(output: &$output) -> Option<std::time::Instant> {
                match output {
                    $output::Timeout(at) => Some(*at),
                    _ => None,
                }
            }

            fn handle_timeout(&mut self, now: std::time::Instant) {
                <$machine>::handle_timeout(self, now)
            }

            fn peer_closed(&mut self) {
                $(<$machine>::$peer_closed(self);)?
            }
        }
    };
}
pub(crate) use machine_of;

/// A protocol's side of a connection: what its machine's outputs mean beyond bytes to
/// write and timers (authorizations, plays, publishes), and its goodbye.
pub(crate) trait Glue {
    type Machine: Machine;
    type Viewer: FrameViewer;
    const PROFILE: Profile;

    /// Acts on one output (not a `Transmit` or `Timeout`, which the driver handles):
    /// control bytes into `io.out`; awaits what it needs (an authorization, a publish's
    /// fan-out). `Flow::Idle`: go on with the next output.
    async fn act(
        &mut self,
        output: <Self::Machine as Machine>::Output,
        conn: &mut Conn<Self>,
        io: &mut Io<'_>,
    ) -> Flow;

    /// The played stream's input ended and the viewer has every frame: the protocol's
    /// goodbye into `out` (RTMP: `UnpublishNotify`).
    fn input_ended(_conn: &mut Conn<Self>, _out: &mut Outbox) {}

    /// Media bytes went out (the shard's per-protocol counters).
    fn count_sent(_shard: &mut ShardState, _bytes: u64) {}

    /// The connection ends, whatever ended it: release what it holds (a publish).
    async fn finish(&mut self, _conn: &mut Conn<Self>, _io: &mut Io<'_>) {}
}

/// What the driver needs to know of a protocol.
pub(crate) struct Profile {
    /// For log lines: `rtmp`, `rtsp`, `mpegts`.
    pub name: &'static str,
    /// Input buffer size at first, and the most it may grow to (doubling).
    pub input: (usize, usize),
    /// How long its viewer's frames may wait to be woken for in company.
    pub patience: Patience,
}

impl Profile {
    pub const fn new(name: &'static str, input: usize, max_input: usize) -> Profile {
        Profile {
            name,
            input: (input, max_input),
            patience: Patience::Prompt,
        }
    }

    /// The protocol's players buffer seconds: its viewers are woken less often, for
    /// fewer, larger sends (`Patience::Buffered`).
    pub const fn buffered(self) -> Profile {
        Profile {
            patience: Patience::Buffered,
            ..self
        }
    }
}

/// What the driver keeps of a connection: the protocol's machine, what it plays, and the
/// machine's timer.
pub(crate) struct Conn<G: Glue + ?Sized> {
    pub machine: G::Machine,
    pub playback: Playback<G::Viewer>,
    deadline: Option<Instant>,
}

impl<G: Glue + ?Sized> Conn<G> {
    /// A connection about to be driven, boxed: the connection task's future then holds a
    /// pointer, not the machine (several hundred bytes, which the future's layout would
    /// keep once per `async fn` it passes through, for as long as the connection lives).
    pub fn boxed(machine: G::Machine, playback: Playback<G::Viewer>) -> Box<Self> {
        Box::new(Conn {
            machine,
            playback,
            deadline: None,
        })
    }
}

/// Feeds `input` to the machine; returns how many bytes it consumed (none while it waits
/// for an authorization). A framing error consumes everything (on a byte stream the machine
/// has queued its refusal and the close; on a datagram link the datagram is dropped).
fn feed<M: Machine>(
    machine: &mut M,
    link: &Link<'_>,
    name: &str,
    input: &[u8],
    now: Instant,
) -> usize {
    if input.is_empty() || machine.awaiting_authorization() {
        return 0;
    }
    machine.handle_input(input, now).unwrap_or_else(|e| {
        match link {
            Link::Stream(_) => log::info!("{name}: closing on a protocol error: {e}"),
            Link::Datagrams(_) => log::debug!("{name}: datagram ignored: {e}"),
        }
        input.len()
    })
}

/// Datagrams the shard's UDP endpoint queued for one peer (bounded: the endpoint drops
/// what does not fit, as a full socket buffer would).
pub type DatagramQueue = LocalReceiver<Vec<u8>>;

/// What a connection reads and writes.
pub(crate) enum Link<'a> {
    /// A byte stream (TCP or TLS).
    Stream(&'a mut dyn Wire),
    /// One peer of the shard's UDP endpoint: its datagrams in, datagrams to it out.
    Datagrams(PeerLink),
}

/// A peer of a UDP endpoint: its queue, the endpoint's socket, its address.
pub(crate) struct PeerLink {
    pub inbox: DatagramQueue,
    pub socket: Rc<UdpSocket>,
    pub peer: SocketAddr,
}

/// Runs a byte-stream connection (TCP or TLS) that starts with nothing playing.
/// Not an `async fn`: the machine is boxed before the connection's future is made, so no
/// layer of it keeps a copy.
pub(crate) fn drive_stream<'a, G: Glue>(
    glue: &'a mut G,
    machine: G::Machine,
    socket: &'a mut dyn Wire,
    state: &'a Rc<RefCell<ShardState>>,
    peer: IpAddr,
    udp: Option<Rc<UdpPair>>,
    arrival: Arrival,
) -> impl Future<Output = ()> + 'a {
    let conn = Conn::boxed(machine, Playback::default());
    drive(
        glue,
        conn,
        (Link::Stream(socket), arrival),
        state,
        peer,
        udp,
    )
}

/// Sets up an accepted TCP (or TLS) connection for media: no Nagle delay, the shard's write
/// timeout. The peer's address, canonical (an IPv4-mapped IPv6 address as IPv4), or `None`
/// when the connection is already gone.
pub fn prepare_stream(socket: &dyn Wire, state: &Rc<RefCell<ShardState>>) -> Option<IpAddr> {
    let tcp = socket.tcp();
    let peer = tcp.peer_addr().ok()?;
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_write_timeout(Some(state.borrow().limits().write_timeout));
    Some(crate::auth::verdict::canonical_ip(peer.ip()))
}

/// The connection's I/O as glue code sees it.
pub struct Io<'a> {
    pub state: &'a Rc<RefCell<ShardState>>,
    pub peer: IpAddr,
    pub out: Outbox,
    /// On a datagram link, the viewer's media payloads until the machine carries them.
    media: Outbox,
    link: Link<'a>,
    udp: Option<Rc<UdpPair>>,
    /// The shard's stop: a viewer then gets its protocol's goodbye and the connection ends.
    stop: StopSignal,
    /// Told when the machine first asks for an authorization: the connection then keeps
    /// its place in a full cap (`admission`).
    arrival: Arrival,
}

impl Io<'_> {
    /// Queues one of the machine's `Transmit` outputs: appended to the byte stream, or, on a
    /// datagram link, a datagram of its own.
    pub fn transmit(&mut self, bytes: &[u8]) {
        match &self.link {
            Link::Stream(_) => self.out.bytes_mut().extend_from_slice(bytes),
            Link::Datagrams(link) => {
                let to = DatagramTo {
                    channel: Channel::Media,
                    port: link.peer.port(),
                };
                self.out.push_datagram(to, |d| d.extend_from_slice(bytes));
            }
        }
    }

    /// Where the viewer writes: the outbox, or on a datagram link the media payloads.
    fn viewer_out(&mut self) -> &mut Outbox {
        match self.link {
            Link::Stream(_) => &mut self.out,
            Link::Datagrams(_) => &mut self.media,
        }
    }

    /// Sends everything queued (connection bytes in order, then datagrams) and empties the
    /// outbox; `false` when the connection is gone.
    pub async fn flush(&mut self) -> bool {
        let socket = match &mut self.link {
            Link::Stream(socket) => socket,
            Link::Datagrams(link) => {
                for (_, datagram) in self.out.datagrams() {
                    // Lost like any datagram; the peer's NAK or timeout says what follows.
                    let _ = link.socket.send_to(datagram, link.peer).await;
                }
                self.out.clear();
                return true;
            }
        };
        let pieces = self.out.pieces().map(|piece| match piece {
            Piece::Copied(b) => b,
            Piece::Shared(b) => &b[..],
        });
        let mut ok = send_pieces(&mut **socket, pieces).await.is_ok();
        // Inside TLS, records may wait in the session until flushed.
        ok = ok && socket.flush().await.is_ok();
        if let Some(udp) = &self.udp {
            for (to, datagram) in self.out.datagrams() {
                let socket = match to.channel {
                    Channel::Media => &udp.rtp,
                    Channel::Control => &udp.rtcp,
                };
                // A UDP viewer that went away shows as errors here; its control
                // connection's end (or its timeout) is what ends the play.
                let _ = socket
                    .send_to(datagram, SocketAddr::new(self.peer, to.port))
                    .await;
            }
        }
        self.out.release_excess();
        self.out.clear();
        ok
    }
}

/// Most pieces one `sendmsg` takes (Linux's IOV_MAX is 1024). A steady viewer's flush
/// holds a few; the window of slices lives in every connection's task, so it stays small.
const IOVECS_PER_SEND: usize = 16;

/// Writes `pieces` in order. On plain TCP, many pieces go in one nonblocking `sendmsg`
/// (glommio 0.9 has no vectored send; its own write is the same nonblocking send of one
/// slice, then a wait for writability through the ring): when the socket is full, the
/// next piece is written through glommio, which waits (within the write timeout), and
/// the vectored sends go on. Through TLS, each piece is written into the session.
pub(crate) async fn send_pieces<'p>(
    socket: &mut dyn Wire,
    mut pieces: impl Iterator<Item = &'p [u8]>,
) -> std::io::Result<()> {
    let Some(fd) = socket.plain_fd() else {
        for piece in pieces {
            socket.write_all(piece).await?;
        }
        return Ok(());
    };
    let mut window: [&[u8]; IOVECS_PER_SEND] = [&[]; IOVECS_PER_SEND];
    let (mut start, mut end) = (0, 0);
    loop {
        window.copy_within(start..end, 0);
        (start, end) = (0, end - start);
        while end < IOVECS_PER_SEND {
            match pieces.next() {
                Some([]) => {}
                Some(piece) => {
                    window[end] = piece;
                    end += 1;
                }
                None => break,
            }
        }
        if start == end {
            return Ok(());
        }
        let sent = match send_vectored_now(fd, &window[start..end]) {
            Some(result) => result?,
            None => socket.write(window[start]).await?,
        };
        if sent == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        start += advance(&mut window[start..end], sent);
    }
}

/// One nonblocking `sendmsg` of `slices`; `None` when the socket is full.
fn send_vectored_now(fd: std::os::fd::RawFd, slices: &[&[u8]]) -> Option<std::io::Result<usize>> {
    use nix::sys::socket::{MsgFlags, sendmsg};
    let mut iov = [std::io::IoSlice::new(&[]); IOVECS_PER_SEND];
    for (slot, slice) in iov.iter_mut().zip(slices) {
        *slot = std::io::IoSlice::new(slice);
    }
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    loop {
        match sendmsg::<()>(fd, &iov[..slices.len()], &[], flags, None) {
            Ok(n) => return Some(Ok(n)),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return None,
            Err(e) => return Some(Err(e.into())),
        }
    }
}

/// Drops `sent` bytes from the front of `slices`; returns how many slices are done.
fn advance(slices: &mut [&[u8]], mut sent: usize) -> usize {
    let mut done = 0;
    for slice in slices.iter_mut() {
        if sent < slice.len() {
            *slice = &slice[sent..];
            break;
        }
        sent -= slice.len();
        done += 1;
    }
    done
}

/// The input buffer a playing viewer on a byte stream keeps: after `play` a viewer sends
/// little (acknowledgements, a pause, RTCP reports); a larger message grows it again
/// (`Input::make_room`).
const VIEWER_INPUT: usize = 512;

/// The bytes read and not yet consumed by the machine.
struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    initial: usize,
    max: usize,
}

/// A grown input buffer found empty is given back (to `initial`) once it is this many
/// times `initial`: a publisher's burst of large chunks does not pin megabytes for the
/// connection's life, and a steady publisher whose reads fit a few times `initial` keeps
/// its buffer rather than regrowing it on every message.
const SHRINK_FACTOR: usize = 4;

impl Input {
    fn new((initial, max): (usize, usize)) -> Input {
        Input {
            buf: vec![0; initial],
            start: 0,
            end: 0,
            initial,
            max,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Moves the unconsumed tail to the front, and grows a full buffer (doubling, up to
    /// `max`). `false` when it is full at `max`.
    fn make_room(&mut self) -> bool {
        if self.start == self.end && self.buf.len() >= SHRINK_FACTOR * self.initial {
            self.buf = vec![0; self.initial];
            (self.start, self.end) = (0, 0);
            return true;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end < self.buf.len() {
            return true;
        }
        if self.buf.len() >= self.max {
            return false;
        }
        let grown = (self.buf.len() * 2).min(self.max);
        self.buf.resize(grown, 0);
        true
    }

    /// Gives back a buffer larger than `size` once what it holds fits with room to spare.
    fn shrink_to(&mut self, size: usize) {
        if self.buf.len() <= size || self.end - self.start >= size {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        (self.start, self.end) = (0, self.end - self.start);
        self.buf.truncate(size);
        self.buf.shrink_to_fit();
    }
}

/// The connection's one timer, for the machine's deadline and the play's re-check: kept
/// across waits and made again only when the earliest of them changes. A viewer waits
/// dozens of times a second; a timer made, registered and dropped on every wait was ~9% of
/// the shard's time at 1,000 RTMP viewers.
#[derive(Default)]
struct Alarm {
    armed: Option<(glommio::timer::Timer, Instant)>,
    /// The reactor holds the armed timer with the task's waker: no need to poll it again.
    charged: bool,
}

impl Alarm {
    /// Arms the alarm for `at` (none: never), unless it is armed for that already.
    fn set(&mut self, at: Option<Instant>) {
        if self.armed.as_ref().map(|&(_, armed)| armed) == at {
            return;
        }
        self.charged = false;
        self.armed = at.map(|at| {
            let timer = glommio::timer::Timer::new(at.saturating_duration_since(Instant::now()));
            (timer, at)
        });
    }

    /// Resolves once the armed instant has come.
    fn fired(&mut self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let Some((timer, at)) = self.armed.as_mut() else {
                return std::task::Poll::Pending;
            };
            if Instant::now() >= *at {
                return std::task::Poll::Ready(());
            }
            if !self.charged {
                std::task::ready!(std::pin::Pin::new(timer).poll(cx));
                self.charged = true;
            }
            std::task::Poll::Pending
        })
    }
}

/// Why the driver woke.
enum Wake {
    Read(std::io::Result<usize>),
    Frame,
    Deadline,
    Recheck,
    Stop,
}

/// Runs a connection until it ends, then lets the glue release what it holds.
pub(crate) async fn drive<'a, G: Glue>(
    glue: &mut G,
    mut conn: Box<Conn<G>>,
    (link, arrival): (Link<'a>, Arrival),
    state: &'a Rc<RefCell<ShardState>>,
    peer: IpAddr,
    udp: Option<Rc<UdpPair>>,
) {
    let mut io = Io {
        arrival,
        state,
        peer,
        // Grows to what a flush holds, and shrinks back after a burst (`release_excess`).
        out: Outbox::default(),
        media: Outbox::default(),
        link,
        udp,
        stop: shard_stop(),
    };
    run(glue, &mut conn, &mut io).await;
    close_play(&mut conn, &io);
    glue.finish(&mut conn, &mut io).await;
    let _ = io.flush().await;
}

/// The connection's loop; returns on any end.
async fn run<G: Glue>(glue: &mut G, conn: &mut Conn<G>, io: &mut Io<'_>) {
    let mut input = Input::new(G::PROFILE.input);
    let mut alarm = Alarm::default();
    loop {
        loop {
            let n = feed(
                &mut conn.machine,
                &io.link,
                G::PROFILE.name,
                input.pending(),
                Instant::now(),
            );
            input.consume(n);
            if conn.machine.awaiting_authorization() {
                io.arrival.asked();
            }
            match act_on_outputs(glue, conn, io).await {
                Flow::Again => continue,
                Flow::Idle => break,
                Flow::Close => return,
            }
        }
        if !io.flush().await {
            conn.machine.peer_closed();
            return;
        }
        if conn.playback.viewing.is_some() && matches!(io.link, Link::Stream(_)) {
            input.shrink_to(VIEWER_INPUT);
        }
        if !input.make_room() {
            let (name, max) = (G::PROFILE.name, input.max);
            log::info!(
                "{name} {}: closing: a message larger than {max} bytes",
                io.peer
            );
            return;
        }
        match wait(conn, io, &mut input, &mut alarm).await {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => {
                conn.machine.peer_closed();
                let _ = act_on_outputs(glue, conn, io).await;
                return;
            }
            Wake::Read(Ok(n)) => input.end += n,
            Wake::Deadline => {
                conn.deadline = None;
                conn.machine.handle_timeout(Instant::now());
            }
            Wake::Stop => {
                say_goodbye(glue, conn, io).await;
                return;
            }
            Wake::Recheck => {
                if let Err(reason) = recheck(conn, io) {
                    // Revoked, over a session limit, or refused by the portal on re-check.
                    log::info!("{} {}: play ended: {reason}", G::PROFILE.name, io.peer);
                    return;
                }
            }
            Wake::Frame => {
                if let Err(why) = send_frames(glue, conn, io).await {
                    log::info!("{} {}: {why}", G::PROFILE.name, io.peer);
                    return;
                }
            }
        }
    }
}

/// Acts on every output the machine has: bytes to write and timers here, the rest by the
/// glue. `Close` at the first that ends the connection, `Again` when one of them wants the
/// kept input fed again.
async fn act_on_outputs<G: Glue>(glue: &mut G, conn: &mut Conn<G>, io: &mut Io<'_>) -> Flow {
    let mut flow = Flow::Idle;
    while let Some(output) = conn.machine.poll_output() {
        if let Some(bytes) = G::Machine::transmit(&output) {
            io.transmit(bytes);
            continue;
        }
        if let Some(at) = G::Machine::timeout(&output) {
            conn.deadline = Some(at);
            continue;
        }
        match glue.act(output, conn, io).await {
            Flow::Close => return Flow::Close,
            Flow::Again => flow = Flow::Again,
            Flow::Idle => {}
        }
    }
    flow
}

/// Waits for whichever comes first: input, the viewer's next frame, the machine's
/// deadline, or the play's re-check.
async fn wait<G: Glue>(
    conn: &Conn<G>,
    io: &mut Io<'_>,
    input: &mut Input,
    alarm: &mut Alarm,
) -> Wake {
    let deadline = conn.deadline;
    let playback = &conn.playback;
    let sending = playback
        .viewing
        .as_ref()
        .filter(|v| !v.paused)
        .map(|v| (v.stream, v.cursor.position()));
    let recheck_at = playback
        .play
        .as_ref()
        .filter(|_| playback.viewing.is_some())
        .and_then(PlayLifecycle::next_check);
    let state = io.state;
    let read = async {
        match &mut io.link {
            Link::Stream(socket) => Wake::Read(socket.read(&mut input.buf[input.end..]).await),
            // One datagram at a time: the machine uses each whole before the next is read.
            Link::Datagrams(link) if input.end == input.start => match link.inbox.recv().await {
                Some(datagram) => {
                    let room = &mut input.buf[input.end..];
                    let n = datagram.len().min(room.len());
                    room[..n].copy_from_slice(&datagram[..n]);
                    Wake::Read(Ok(n))
                }
                None => Wake::Read(Ok(0)),
            },
            Link::Datagrams(_) => futures_lite::future::pending().await,
        }
    };
    let frame = async {
        match sending {
            Some((stream, cursor)) => {
                RingReady {
                    state,
                    stream,
                    cursor,
                    patience: G::PROFILE.patience,
                }
                .await;
                Wake::Frame
            }
            None => futures_lite::future::pending().await,
        }
    };
    alarm.set(match (deadline, recheck_at) {
        (Some(d), Some(r)) => Some(d.min(r)),
        (d, r) => d.or(r),
    });
    let timer = async {
        alarm.fired().await;
        match deadline {
            Some(at) if at <= Instant::now() => Wake::Deadline,
            _ => Wake::Recheck,
        }
    };
    let stop = async {
        io.stop.fired().await;
        Wake::Stop
    };
    use futures_lite::future::or;
    or(stop, or(read, or(frame, timer))).await
}

/// The shard stops: a viewer is told the stream ended, in its protocol's words (RTMP's
/// onStatus, SRT's shutdown, the end of a chunked MPEG-TS body), before the connection ends.
async fn say_goodbye<G: Glue>(glue: &mut G, conn: &mut Conn<G>, io: &mut Io<'_>) {
    log::info!("{} {}: server stopping", G::PROFILE.name, io.peer);
    if conn.playback.viewing.is_some() {
        G::input_ended(conn, io.viewer_out());
        let _ = deliver(glue, conn, io).await;
    }
}

/// Re-checks the playing viewer's authorization (its session is closed on a refusal).
fn recheck<G: Glue>(conn: &mut Conn<G>, io: &Io<'_>) -> Result<(), DenyReason> {
    let Some(play) = conn.playback.play.as_mut() else {
        return Ok(());
    };
    io.state.borrow_mut().recheck_play(play, Now::read())
}

/// Closes the connection's play session, if one is open.
fn close_play<G: Glue>(conn: &mut Conn<G>, io: &Io<'_>) {
    let Some(play) = conn.playback.play.as_mut() else {
        return;
    };
    if play.is_open() {
        io.state.borrow_mut().close_play(play, Instant::now());
    }
}

/// What a viewer's cursor found.
enum Next {
    Frame,
    Wait,
    Ended,
    TooSlow,
    Gone,
}

/// Sends what the ring has for the viewer (up to a batch), flushing at the mark.
async fn send_frames<G: Glue>(
    glue: &mut G,
    conn: &mut Conn<G>,
    io: &mut Io<'_>,
) -> Result<(), &'static str> {
    let mut sent = 0u64;
    // The frames of one wake-up go out together: one reading of the clocks serves them all.
    let now = (Instant::now(), crate::utc::now_ms());
    for _ in 0..FRAMES_PER_BATCH {
        match queue_next_frame(conn, io, now) {
            Next::Frame => {}
            Next::Wait => break,
            Next::Gone => return Err("disconnecting: stream gone"),
            Next::TooSlow => return Err("disconnecting: viewer stays behind the live edge"),
            Next::Ended => {
                G::input_ended(conn, io.viewer_out());
                let _ = deliver(glue, conn, io).await;
                return Err("play ended: the publisher left");
            }
        }
        while let Some(viewing) = conn.playback.viewing.as_mut() {
            let done = viewing.viewer.write(io.viewer_out(), FLUSH_AT);
            if done && io.viewer_out().len() < FLUSH_AT {
                break;
            }
            sent += deliver(glue, conn, io).await?;
        }
    }
    sent += deliver(glue, conn, io).await?;
    if let Some(play) = conn.playback.play.as_mut() {
        play.sent(sent);
    }
    G::count_sent(&mut io.state.borrow_mut(), sent);
    Ok(())
}

/// Sends what the viewer wrote; returns its bytes. On a datagram link its payloads first
/// go into the machine's packets (`Machine::carry`), which the machine's outputs carry.
async fn deliver<G: Glue>(
    glue: &mut G,
    conn: &mut Conn<G>,
    io: &mut Io<'_>,
) -> Result<u64, &'static str> {
    let sent = io.viewer_out().len() as u64;
    if let Link::Datagrams(_) = io.link {
        let now = Instant::now();
        for (_, payload) in io.media.datagrams() {
            conn.machine.carry(payload, now)?;
        }
        io.media.clear();
        if act_on_outputs(glue, conn, io).await == Flow::Close {
            return Err("disconnecting: the connection closed");
        }
    }
    if !io.flush().await {
        return Err("disconnecting: write failed");
    }
    Ok(sent)
}

/// Steps the viewer's cursor once and queues the frame it finds; `now`: the monotonic and
/// the UTC clock (ms).
fn queue_next_frame<G: Glue>(conn: &mut Conn<G>, io: &Io<'_>, now: (Instant, i64)) -> Next {
    let Some(viewing) = conn.playback.viewing.as_mut() else {
        return Next::Wait;
    };
    let shard = io.state.borrow();
    let Some(view) = shard.view(viewing.stream) else {
        return Next::Gone;
    };
    match viewing.cursor.step(&view.ring) {
        Step::Frame(f) => {
            let media = MediaNow {
                version: view.media_version,
                info: view.media.as_ref(),
            };
            viewing.viewer.queue(f, media, now.0, now.1);
            Next::Frame
        }
        Step::Wait => Next::Wait,
        Step::Ended => Next::Ended,
        Step::TooSlow => Next::TooSlow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(input: &mut Input) {
        input.end = input.buf.len();
    }

    #[test]
    fn the_input_buffer_grows_to_its_bound_and_is_given_back_when_empty() {
        let mut input = Input::new((1024, 8192));
        for want in [2048, 4096, 8192] {
            fill(&mut input);
            assert!(input.make_room());
            assert_eq!(input.buf.len(), want);
        }
        fill(&mut input);
        assert!(!input.make_room(), "full at its bound");
        input.consume(8000);
        assert!(input.make_room(), "a partial message is kept");
        assert_eq!((input.pending().len(), input.buf.len()), (192, 8192));
        input.consume(192);
        assert!(input.make_room());
        assert_eq!(input.buf.len(), 1024, "an empty grown buffer is given back");
    }

    #[test]
    fn a_buffer_grown_a_little_is_kept() {
        let mut input = Input::new((1024, 8192));
        fill(&mut input);
        assert!(input.make_room());
        input.consume(2048);
        assert!(input.make_room());
        assert_eq!(input.buf.len(), 2048);
    }
}
