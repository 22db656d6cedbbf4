//! The I/O shell of one RTSP connection: feeds bytes to the sans-IO `RtspConnection`, answers
//! its authorization requests with the shard's `Authorizer` (the same entry point HTTP
//! uses), and once PLAY is accepted, sends the stream's frames from the shard's `FrameRing`
//! as RTP, interleaved on the TCP connection or as UDP datagrams from the shard's UDP pair.
//!
//! One task per connection waits on whichever comes first: request bytes, the next frame,
//! or the session deadline (no polling). A viewer whose next frame has left the ring skips
//! to the newest keyframe; one that keeps falling behind is disconnected.

use crate::auth::verdict::{Proto, StreamId, canonical_ip};
use crate::media::frame::{Frame, TIMESCALE, TrackKind};
use crate::rtp::aac::AacPacketizer;
use crate::rtp::h264::H264Packetizer;
use crate::rtp::{DEFAULT_MAX_PAYLOAD, RtpPacket, RtpSender};
use crate::rtsp::session::{
    AuthAnswer, ConnectionConfig, Output, PlayStart, PortPair, RtspConnection, TrackTransport,
};
use crate::runtime::play_auth::ConnectionPlay;
use crate::runtime::ring_wait::RingReady;
use crate::runtime::{flush, sleep_until};
use crate::shard::ShardState;
use crate::stream::ring::{Step, ViewerCursor};
use futures_lite::AsyncReadExt;
use glommio::net::{TcpStream, UdpSocket};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Largest RTSP request buffered (the machine answers 400/413/414 before this fills).
const INPUT_BUFFER: usize = 80 * 1024;
/// Frames sent per wake-up before other tasks get the shard back.
const FRAMES_PER_BATCH: usize = 64;
/// How often RTCP sender reports go out (RFC 3550 §6.2 suggests about 5 s).
const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// CNAME in sender reports.
const CNAME: &[u8] = b"tessera";

/// The shard's UDP sockets for RTP and RTCP, shared by all its RTSP viewers.
pub struct UdpPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub ports: PortPair,
}

impl UdpPair {
    pub fn bind(ip: IpAddr) -> std::io::Result<UdpPair> {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let rtcp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let ports = PortPair {
            rtp: rtp.local_addr()?.port(),
            rtcp: rtcp.local_addr()?.port(),
        };
        Ok(UdpPair { rtp, rtcp, ports })
    }
}

/// Serves one RTSP connection until TEARDOWN, a refusal, a timeout, or the peer leaves.
pub async fn serve(
    mut stream: TcpStream,
    state: Rc<RefCell<ShardState>>,
    udp: Option<Rc<UdpPair>>,
    seed: u64,
) {
    let peer = match stream.peer_addr() {
        Ok(a) => canonical_ip(a.ip()),
        Err(_) => return,
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(state.borrow().limits.write_timeout));
    let mut cfg = ConnectionConfig::new(seed);
    cfg.token_param = state.borrow().catalog.token_param.to_string();
    cfg.server = crate::http::response::SERVER;
    cfg.udp_server_ports = udp.as_ref().map(|u| [u.ports, u.ports]);
    let mut conn = RtspConnection::new(cfg, Instant::now());

    let mut inbuf = vec![0u8; INPUT_BUFFER];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut deadline = Instant::now() + Duration::from_secs(60);
    let mut player: Option<Player> = None;
    let mut authorized: Option<ConnectionPlay> = None;

    loop {
        // Feed what is buffered and act on every output, until nothing moves.
        loop {
            if start < end && !conn.awaiting_authorization() {
                match conn.handle_input(&inbuf[start..end], Instant::now()) {
                    Ok(n) => start += n,
                    Err(e) => {
                        log::debug!("rtsp {peer}: {e}");
                        start = end;
                    }
                }
            }
            let mut answered = false;
            while let Some(output) = conn.poll_output() {
                match output {
                    Output::Transmit(bytes) => out.extend_from_slice(&bytes),
                    Output::Authorize {
                        stream: name,
                        token,
                        user_agent,
                    } => {
                        let (answer, play) =
                            authorize(&state, &name, token.as_deref(), user_agent.as_deref(), peer)
                                .await;
                        authorized = play;
                        conn.authorized(answer, Instant::now());
                        answered = true;
                    }
                    Output::Play(play) => {
                        if !flush(&mut stream, &mut out).await {
                            return;
                        }
                        match (&mut player, play.resumed) {
                            (Some(p), true) => p.paused = false,
                            _ => {
                                let Some(auth) = &mut authorized else { return };
                                let session = auth.open_session();
                                log::info!(
                                    "rtsp play started session={} rtsp_session={} stream={} ip={peer}",
                                    session.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                                    play.session_id,
                                    play.stream,
                                );
                                player = Some(Player::new(auth.stream, &play, peer, udp.clone()));
                            }
                        }
                    }
                    Output::Pause => {
                        if let Some(p) = &mut player {
                            p.paused = true;
                        }
                    }
                    Output::Close(reason) => {
                        let _ = flush(&mut stream, &mut out).await;
                        log::debug!("rtsp {peer}: closing: {reason:?}");
                        log_closed(&conn, &player, peer);
                        return;
                    }
                    Output::Timeout(at) => deadline = at,
                }
            }
            if !answered {
                break;
            }
        }
        if !flush(&mut stream, &mut out).await {
            log_closed(&conn, &player, peer);
            return;
        }
        if start > 0 {
            inbuf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == inbuf.len() {
            // The machine refuses oversized requests long before; a safety net.
            return;
        }

        let sending = player.as_ref().is_some_and(|p| !p.paused);
        let wake = {
            let read = async { Wake::Read(stream.read(&mut inbuf[end..]).await) };
            let frame = async {
                match &player {
                    Some(p) if sending => {
                        RingReady {
                            state: &state,
                            stream: p.stream,
                            cursor: p.cursor.position(),
                        }
                        .await;
                        Wake::Frame
                    }
                    _ => futures_lite::future::pending().await,
                }
            };
            let timer = async {
                sleep_until(Some(deadline)).await;
                Wake::Deadline
            };
            let recheck_at = authorized
                .as_ref()
                .filter(|_| player.is_some())
                .map(ConnectionPlay::next_check);
            let recheck = async {
                sleep_until(recheck_at).await;
                Wake::Recheck
            };
            futures_lite::future::or(
                read,
                futures_lite::future::or(frame, futures_lite::future::or(timer, recheck)),
            )
            .await
        };
        match wake {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => {
                log_closed(&conn, &player, peer);
                return;
            }
            Wake::Read(Ok(n)) => end += n,
            Wake::Deadline => conn.handle_timeout(Instant::now()),
            Wake::Recheck => {
                if let Some(a) = &mut authorized
                    && let Err(reason) = a.recheck()
                {
                    // Revoked, over a session limit, or refused by the portal on re-check.
                    log::info!("rtsp {peer}: play ended: {reason}");
                    log_closed(&conn, &player, peer);
                    return;
                }
            }
            Wake::Frame => {
                let Some(p) = &mut player else { continue };
                let packets_before = p.packets;
                match p.send_ready_frames(&state, &mut stream, &mut out).await {
                    Ok(()) => {
                        if let Some(a) = &mut authorized {
                            // RTP packets are at most an MTU; a close enough byte count.
                            a.sent((p.packets - packets_before) * 1200);
                        }
                    }
                    Err(why) => {
                        log::info!("rtsp {peer}: disconnecting: {why}");
                        log_closed(&conn, &player, peer);
                        return;
                    }
                }
            }
        }
    }
}

enum Wake {
    Read(std::io::Result<usize>),
    Frame,
    Deadline,
    Recheck,
}

fn log_closed(conn: &RtspConnection, player: &Option<Player>, peer: IpAddr) {
    if let (Some(id), Some(p)) = (conn.session_id(), player) {
        log::info!(
            "session closed id={id} proto=rtsp ip={peer} packets={} seconds={}",
            p.packets,
            p.started.elapsed().as_secs()
        );
    }
}

/// Asks the shard's authorizer (waiting for a portal when one is asked); returns the
/// machine's answer and, when allowed, the play (its session opens at PLAY).
async fn authorize(
    state: &Rc<RefCell<ShardState>>,
    name: &str,
    token: Option<&[u8]>,
    user_agent: Option<&str>,
    peer: IpAddr,
) -> (AuthAnswer, Option<ConnectionPlay>) {
    let spec = state.borrow().catalog.stream_by_name(name).map(|s| s.id);
    let Some(id) = spec else {
        return (AuthAnswer::NotFound, None);
    };
    let ua = user_agent.map(str::as_bytes);
    let mut play = ConnectionPlay::new(state, id, Proto::Rtsp, token, peer, ua);
    if let Err(reason) = play.authorize().await {
        let reason = reason.as_str();
        return (AuthAnswer::Denied { reason }, None);
    }
    let media = state
        .borrow()
        .streams
        .get(id as usize)
        .and_then(|v| v.live_media().cloned());
    match media {
        Some(media) => (AuthAnswer::Allowed { media }, Some(play)),
        None => {
            log::info!("rtsp {peer}: stream {name} has no media yet");
            (AuthAnswer::NotFound, None)
        }
    }
}

struct Track<P> {
    packetizer: P,
    transport: TrackTransport,
}

/// A playing viewer: where it is in the ring and how its packets leave.
struct Player {
    stream: StreamId,
    cursor: ViewerCursor,
    paused: bool,
    peer: IpAddr,
    udp: Option<Rc<UdpPair>>,
    video: Option<Track<H264Packetizer>>,
    audio: Option<Track<AacPacketizer>>,
    /// (pts, wall ms) of the first frame sent: the one clock mapping every sender report uses.
    origin: Option<(i64, i64)>,
    last_report: Option<Instant>,
    packets: u64,
    started: Instant,
    scratch: Vec<RtpPacket>,
    datagram: Vec<u8>,
}

impl Player {
    fn new(stream: StreamId, play: &PlayStart, peer: IpAddr, udp: Option<Rc<UdpPair>>) -> Player {
        let mut video = None;
        let mut audio = None;
        for t in &play.tracks {
            match t.kind {
                TrackKind::Video => {
                    if let Some(cfg) = &play.media.video {
                        let packetizer = H264Packetizer::new(t.rtp, cfg, DEFAULT_MAX_PAYLOAD);
                        video = Some(Track {
                            packetizer,
                            transport: t.transport,
                        });
                    }
                }
                TrackKind::Audio => {
                    let packetizer = AacPacketizer::new(t.rtp, DEFAULT_MAX_PAYLOAD);
                    audio = Some(Track {
                        packetizer,
                        transport: t.transport,
                    });
                }
            }
        }
        Player {
            stream,
            cursor: ViewerCursor::new(),
            paused: false,
            peer,
            udp,
            video,
            audio,
            origin: None,
            last_report: None,
            packets: 0,
            started: Instant::now(),
            scratch: Vec::with_capacity(64),
            datagram: Vec::with_capacity(1500),
        }
    }

    /// Sends every frame the ring has for this viewer (up to a batch), then returns.
    async fn send_ready_frames(
        &mut self,
        state: &Rc<RefCell<ShardState>>,
        stream: &mut TcpStream,
        out: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        for _ in 0..FRAMES_PER_BATCH {
            let frame = {
                let shard = state.borrow();
                let Some(view) = shard.streams.get(self.stream as usize) else {
                    return Err("stream gone");
                };
                match self.cursor.step(&view.ring) {
                    Step::Frame(f) => f.frame.clone(),
                    Step::Wait => break,
                    Step::Ended => return Err("the publisher left"),
                    Step::TooSlow => return Err("viewer stays behind the live edge"),
                }
            };
            self.send_frame(&frame, stream, out).await?;
        }
        if !flush(stream, out).await {
            return Err("write failed");
        }
        Ok(())
    }

    async fn send_frame(
        &mut self,
        frame: &Frame,
        stream: &mut TcpStream,
        out: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        let (origin_pts, origin_wall) = *self
            .origin
            .get_or_insert_with(|| (frame.pts, crate::utc::now_ms()));
        if self.packets == 0 {
            // Every track counts RTP time from the same media instant (RTP-Info matches).
            if let Some(v) = &mut self.video {
                v.packetizer.sender_mut().set_origin_pts(origin_pts);
            }
            if let Some(a) = &mut self.audio {
                a.packetizer.sender_mut().set_origin_pts(origin_pts);
            }
        }
        let due = self
            .last_report
            .is_none_or(|t| t.elapsed() >= SENDER_REPORT_INTERVAL);
        if due {
            self.last_report = Some(Instant::now());
            let wall = origin_wall + (frame.pts - origin_pts) * 1000 / TIMESCALE;
            if let Some(v) = &self.video {
                let report = report(v.packetizer.sender(), wall, frame.pts);
                self.emit_rtcp(&report, v.transport, out).await?;
            }
            if let Some(a) = &self.audio {
                let report = report(a.packetizer.sender(), wall, frame.pts);
                self.emit_rtcp(&report, a.transport, out).await?;
            }
        }
        self.scratch.clear();
        let transport = match frame.track {
            TrackKind::Video => match &mut self.video {
                Some(v) => v
                    .packetizer
                    .packetize(frame, &mut self.scratch)
                    .map(|()| v.transport),
                None => return Ok(()),
            },
            TrackKind::Audio => match &mut self.audio {
                Some(a) => a
                    .packetizer
                    .packetize(frame, &mut self.scratch)
                    .map(|()| a.transport),
                None => return Ok(()),
            },
        };
        let transport = match transport {
            Ok(t) => t,
            Err(e) => {
                log::debug!("rtsp {}: skipped a frame: {e:?}", self.peer);
                return Ok(());
            }
        };
        self.packets += self.scratch.len() as u64;
        match transport {
            TrackTransport::Interleaved { rtp_channel, .. } => {
                for packet in &self.scratch {
                    packet.write_interleaved(rtp_channel, out);
                }
            }
            TrackTransport::Udp { client, .. } => {
                let Some(udp) = &self.udp else {
                    return Err("udp transport without sockets");
                };
                let to = SocketAddr::new(self.peer, client.rtp);
                for packet in &self.scratch {
                    self.datagram.clear();
                    packet.write_datagram(&mut self.datagram);
                    // A UDP viewer that went away shows as errors here; the RTSP connection's
                    // end (or its timeout) is what ends the session.
                    let _ = udp.rtp.send_to(&self.datagram, to).await;
                }
            }
        }
        if out.len() > 64 * 1024 && !flush(stream, out).await {
            return Err("write failed");
        }
        Ok(())
    }

    async fn emit_rtcp(
        &self,
        compound: &[u8],
        transport: TrackTransport,
        out: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        match transport {
            TrackTransport::Interleaved { rtcp_channel, .. } => {
                let len = u16::try_from(compound.len()).map_err(|_| "rtcp too long")?;
                out.push(b'$');
                out.push(rtcp_channel);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(compound);
            }
            TrackTransport::Udp { client, .. } => {
                if let Some(udp) = &self.udp {
                    let _ = udp
                        .rtcp
                        .send_to(compound, SocketAddr::new(self.peer, client.rtcp))
                        .await;
                }
            }
        }
        Ok(())
    }
}

fn report(sender: &RtpSender, wall_ms: i64, pts: i64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    sender
        .sender_report(wall_ms, pts)
        .write_compound(CNAME, &mut buf);
    buf
}

/// Reads and discards what clients send to the shard's UDP ports (receiver reports), so
/// socket buffers never fill.
pub async fn drain_udp(socket: Rc<UdpPair>, rtcp: bool) {
    let mut buf = vec![0u8; 2048];
    loop {
        let sock = if rtcp { &socket.rtcp } else { &socket.rtp };
        if sock.recv_from(&mut buf).await.is_err() {
            glommio::timer::sleep(Duration::from_millis(100)).await;
        }
    }
}
