//! The media side of an RTSP play, sans-IO: ring frames in; RTP packets (RFC 6184 H.264,
//! RFC 3640 AAC) and RTCP sender reports (RFC 3550 §6.4.1) out, interleaved on the TCP
//! connection (RFC 2326 §10.12) or as datagrams for the shard's UDP pair. Time is passed in:
//! the sender-report schedule and the media-time-to-wall-clock mapping are tested with fake
//! time.
//!
//! Every track counts RTP time from the same media instant (the first frame sent), so the
//! rtptimes announced in `RTP-Info` and the sender reports name one clock. The mapping from
//! media time to wall clock is fixed at the first frame, so reports of both tracks agree
//! and lip sync holds across a publisher change (the stream's timeline never goes back).

use crate::media::frame::{TIMESCALE, TrackKind};
use crate::rtp::aac::AacPacketizer;
use crate::rtp::h264::H264Packetizer;
use crate::rtp::{DEFAULT_MAX_PAYLOAD, RtpPacket, RtpSender};
use crate::rtsp::session::{PlayStart, TrackTransport};
use crate::stream::ring::FeedFrame;
use crate::stream::viewer::{Channel, DatagramTo, FrameViewer, MediaNow, Outbox};
use std::time::{Duration, Instant};

/// How often RTCP sender reports go out (RFC 3550 §6.2 suggests about 5 s).
pub const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// CNAME in sender reports.
const CNAME: &[u8] = b"tessera";
/// An interleaved frame's `$`, channel and length.
const INTERLEAVED_HEADER_LEN: usize = 4;

struct Track<P> {
    packetizer: P,
    transport: TrackTransport,
}

/// One RTSP viewer's packetizers, report schedule and queued packets.
pub struct RtspViewer {
    video: Option<Track<H264Packetizer>>,
    audio: Option<Track<AacPacketizer>>,
    /// (pts, wall ms) of the first frame sent: the one clock mapping every report uses.
    origin: Option<(i64, i64)>,
    last_report: Option<Instant>,
    packets: u64,
    /// Packets of the frame being written, and how many are written.
    queued: Vec<RtpPacket>,
    queued_transport: Option<TrackTransport>,
    written: usize,
    /// Sender reports due before the frame's packets.
    reports: Vec<(TrackTransport, crate::rtp::rtcp::SenderReport)>,
}

impl RtspViewer {
    pub fn new(play: &PlayStart) -> RtspViewer {
        let mut video = None;
        let mut audio = None;
        for t in &play.tracks {
            match t.kind {
                TrackKind::Video => {
                    if let Some(cfg) = &play.media.video {
                        let packetizer = H264Packetizer::new(t.rtp, cfg, DEFAULT_MAX_PAYLOAD);
                        let transport = t.transport;
                        video = Some(Track {
                            packetizer,
                            transport,
                        });
                    }
                }
                TrackKind::Audio => {
                    let packetizer = AacPacketizer::new(t.rtp, DEFAULT_MAX_PAYLOAD);
                    let transport = t.transport;
                    audio = Some(Track {
                        packetizer,
                        transport,
                    });
                }
            }
        }
        RtspViewer {
            video,
            audio,
            origin: None,
            last_report: None,
            packets: 0,
            queued: Vec::with_capacity(64),
            queued_transport: None,
            written: 0,
            reports: Vec::with_capacity(2),
        }
    }

    /// RTP packets sent so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    fn senders(&mut self) -> impl Iterator<Item = &mut RtpSender> {
        let video = self.video.as_mut().map(|v| v.packetizer.sender_mut());
        let audio = self.audio.as_mut().map(|a| a.packetizer.sender_mut());
        video.into_iter().chain(audio)
    }

    /// Queues a sender report per track when one is due (and before the first packet).
    fn queue_reports_if_due(&mut self, pts: i64, now: Instant) {
        let due = self
            .last_report
            .is_none_or(|t| now.saturating_duration_since(t) >= SENDER_REPORT_INTERVAL);
        if !due {
            return;
        }
        self.last_report = Some(now);
        let Some((origin_pts, origin_wall)) = self.origin else {
            return;
        };
        let wall = origin_wall + (pts - origin_pts) * 1000 / TIMESCALE;
        if let Some(v) = &self.video {
            let report = v.packetizer.sender().sender_report(wall, pts);
            self.reports.push((v.transport, report));
        }
        if let Some(a) = &self.audio {
            let report = a.packetizer.sender().sender_report(wall, pts);
            self.reports.push((a.transport, report));
        }
    }

    fn write_report(
        transport: TrackTransport,
        report: &crate::rtp::rtcp::SenderReport,
        out: &mut Outbox,
    ) {
        match transport {
            TrackTransport::Interleaved { rtcp_channel, .. } => {
                let buf = out.bytes_mut();
                let at = buf.len();
                buf.extend_from_slice(&[b'$', rtcp_channel, 0, 0]);
                report.write_compound(CNAME, buf);
                // A compound SR + SDES is under 300 bytes.
                let len = (buf.len() - at - INTERLEAVED_HEADER_LEN) as u16;
                buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
            }
            TrackTransport::Udp { client, .. } => {
                let to = DatagramTo {
                    channel: Channel::Control,
                    port: client.rtcp,
                };
                out.push_datagram(to, |b| report.write_compound(CNAME, b));
            }
        }
    }

    fn write_packet(transport: TrackTransport, packet: &RtpPacket, out: &mut Outbox) {
        match transport {
            TrackTransport::Interleaved { rtp_channel, .. } => {
                packet.write_interleaved(rtp_channel, out.bytes_mut());
            }
            TrackTransport::Udp { client, .. } => {
                let to = DatagramTo {
                    channel: Channel::Media,
                    port: client.rtp,
                };
                out.push_datagram(to, |b| packet.write_datagram(b));
            }
        }
    }
}

impl FrameViewer for RtspViewer {
    fn queue(&mut self, entry: &FeedFrame, _media: MediaNow<'_>, now: Instant, wall_ms: i64) {
        let frame = &entry.frame;
        let (origin_pts, _) = *self.origin.get_or_insert((frame.pts, wall_ms));
        if self.packets == 0 {
            // Every track counts RTP time from the same media instant (RTP-Info matches).
            for sender in self.senders() {
                sender.set_origin_pts(origin_pts);
            }
        }
        self.queue_reports_if_due(frame.pts, now);
        self.queued.clear();
        self.written = 0;
        let packetized = match frame.track {
            TrackKind::Video => self.video.as_mut().map(|v| {
                let r = v.packetizer.packetize(frame, &mut self.queued);
                (r, v.transport)
            }),
            TrackKind::Audio => self.audio.as_mut().map(|a| {
                let r = a.packetizer.packetize(frame, &mut self.queued);
                (r, a.transport)
            }),
        };
        self.queued_transport = match packetized {
            Some((Ok(()), transport)) => Some(transport),
            Some((Err(e), _)) => {
                log::debug!("rtsp viewer: skipped a frame: {e}");
                None
            }
            None => None,
        };
        self.packets += self.queued.len() as u64;
    }

    fn write(&mut self, out: &mut Outbox, mark: usize) -> bool {
        for (transport, report) in self.reports.drain(..) {
            RtspViewer::write_report(transport, &report, out);
        }
        let Some(transport) = self.queued_transport else {
            return true;
        };
        while let Some(packet) = self.queued.get(self.written) {
            if out.len() >= mark {
                return false;
            }
            RtspViewer::write_packet(transport, packet, out);
            self.written += 1;
        }
        self.queued_transport = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::MediaInfo;
    use crate::rtp::RtpParams;
    use crate::rtsp::session::{PlayTrack, PortPair};
    use crate::source::fake::FakeSource;
    use crate::stream::viewer::Piece;

    fn media() -> MediaInfo {
        FakeSource::new(0, 25).media_info()
    }

    fn play(transport: TrackTransport) -> PlayStart {
        let rtp = |pt: u8, clock| RtpParams {
            payload_type: pt,
            clock_rate: clock,
            ssrc: 0x1234_0000 + u32::from(pt),
            seq: 100,
            rtptime: 1000,
        };
        PlayStart {
            session_id: "s".into(),
            stream: "cam".into(),
            media: media(),
            tracks: vec![
                PlayTrack {
                    kind: TrackKind::Video,
                    track_id: 0,
                    transport,
                    rtp: rtp(96, 90_000),
                },
                PlayTrack {
                    kind: TrackKind::Audio,
                    track_id: 1,
                    transport,
                    rtp: rtp(97, 48_000),
                },
            ],
            resumed: false,
        }
    }

    fn interleaved() -> TrackTransport {
        TrackTransport::Interleaved {
            rtp_channel: 0,
            rtcp_channel: 1,
        }
    }

    fn frames(n: usize) -> Vec<FeedFrame> {
        crate::stream::viewer::fake_frames(n)
    }

    /// Interleaved frames in a byte stream: (channel, payload).
    fn interleaved_frames(out: &Outbox) -> Vec<(u8, Vec<u8>)> {
        let mut bytes = Vec::new();
        for p in out.pieces() {
            match p {
                Piece::Copied(b) => bytes.extend_from_slice(b),
                Piece::Shared(b) => bytes.extend_from_slice(b),
            }
        }
        let mut frames = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            assert_eq!(bytes[at], b'$');
            let channel = bytes[at + 1];
            let len = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
            frames.push((channel, bytes[at + 4..at + 4 + len].to_vec()));
            at += 4 + len;
        }
        frames
    }

    fn send(v: &mut RtspViewer, f: &FeedFrame, now: Instant, wall: i64, out: &mut Outbox) {
        let m = media();
        let media = MediaNow {
            version: 1,
            info: Some(&m),
        };
        v.queue(f, media, now, wall);
        assert!(v.write(out, usize::MAX));
    }

    #[test]
    fn sender_reports_go_out_first_and_then_every_five_seconds_of_send_time() {
        let mut v = RtspViewer::new(&play(interleaved()));
        let frames = frames(300);
        let t0 = Instant::now();
        let mut out = Outbox::default();
        let mut report_times = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            // 40 ms of send time per frame, whatever the frames' own timestamps.
            let now = t0 + Duration::from_millis(40 * i as u64);
            out.clear();
            send(&mut v, f, now, 1_000_000 + 40 * i as i64, &mut out);
            let rtcp = interleaved_frames(&out)
                .into_iter()
                .filter(|(c, _)| *c == 1)
                .count();
            if rtcp > 0 {
                assert_eq!(rtcp, 2, "one report per track");
                report_times.push(40 * i as u64);
            }
        }
        assert_eq!(report_times[0], 0, "a report precedes the first packet");
        for pair in report_times.windows(2) {
            assert!(
                pair[1] - pair[0] >= 5000 && pair[1] - pair[0] < 5040,
                "{pair:?}"
            );
        }
        assert!(report_times.len() >= 2);
    }

    #[test]
    fn reports_map_media_time_to_the_wall_clock_of_the_first_frame() {
        let mut v = RtspViewer::new(&play(interleaved()));
        let frames = frames(200);
        let t0 = Instant::now();
        let wall0 = 1_700_000_000_000i64;
        let mut out = Outbox::default();
        let mut srs = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            out.clear();
            let now = t0 + Duration::from_millis(40 * i as u64);
            // The wall clock passed in later must not move the mapping: only the first counts.
            send(&mut v, f, now, wall0 + 999_999, &mut out);
            for (c, p) in interleaved_frames(&out) {
                if c == 1 && p[1] == 200 && p[4..8] == [0x12, 0x34, 0x00, 96] {
                    srs.push((
                        f.frame.pts,
                        u64::from_be_bytes(p[8..16].try_into().unwrap()),
                    ));
                }
            }
            if i == 0 {
                // Re-create with the first frame's wall clock: the origin is fixed once.
                assert!(v.origin.is_some());
            }
        }
        assert!(srs.len() >= 2);
        let first_pts = frames[0].frame.pts;
        for (pts, ntp) in srs {
            let wall_ms = wall0 + 999_999 + (pts - first_pts) * 1000 / TIMESCALE;
            let expected = crate::rtp::rtcp::NtpTimestamp::from_unix_ms(wall_ms).0;
            assert_eq!(ntp, expected);
        }
    }

    #[test]
    fn rtp_timestamps_continue_across_a_publisher_change() {
        // A new publisher's frames continue the stream's timeline (never back): the RTP
        // clock follows the media time from the one origin, without a jump back.
        let mut v = RtspViewer::new(&play(interleaved()));
        let mut first = frames(10);
        let mut second = frames(10);
        let shift = first.last().unwrap().frame.pts + 3600;
        for f in &mut second {
            f.frame.pts += shift;
            f.frame.dts += shift;
        }
        first.append(&mut second);
        let t0 = Instant::now();
        let mut last_video_ts: Option<u32> = None;
        let mut out = Outbox::default();
        for (i, f) in first.iter().enumerate() {
            out.clear();
            send(
                &mut v,
                f,
                t0 + Duration::from_millis(40 * i as u64),
                0,
                &mut out,
            );
            for (c, p) in interleaved_frames(&out) {
                if c == 0 && p[1] & 0x7f == 96 {
                    let ts = u32::from_be_bytes(p[4..8].try_into().unwrap());
                    if let Some(prev) = last_video_ts {
                        assert!(
                            ts.wrapping_sub(prev) < 90_000 * 2,
                            "no jump back: {prev} -> {ts}"
                        );
                    }
                    last_video_ts = Some(ts);
                }
            }
        }
        let expected =
            1000u32.wrapping_add((first.last().unwrap().frame.pts - first[0].frame.pts) as u32);
        assert_eq!(last_video_ts, Some(expected));
    }

    #[test]
    fn udp_viewers_get_datagrams_to_the_client_ports() {
        let transport = TrackTransport::Udp {
            client: PortPair {
                rtp: 5000,
                rtcp: 5001,
            },
            server: PortPair {
                rtp: 6000,
                rtcp: 6001,
            },
        };
        let mut v = RtspViewer::new(&play(transport));
        let mut out = Outbox::default();
        send(&mut v, &frames(1)[0], Instant::now(), 0, &mut out);
        assert_eq!(out.stream_len(), 0, "nothing on the TCP connection");
        let ports: Vec<u16> = out.datagrams().map(|(to, _)| to.port).collect();
        assert_eq!(
            &ports[..2],
            &[5001, 5001],
            "reports first, on the RTCP port"
        );
        assert!(ports[2..].iter().all(|p| *p == 5000));
        assert_eq!(v.packets(), ports.len() as u64 - 2);
    }

    #[test]
    fn a_big_frame_is_written_in_pieces_up_to_the_mark() {
        let mut v = RtspViewer::new(&play(interleaved()));
        let key = frames(1).remove(0);
        assert!(key.frame.keyframe && key.frame.data.len() > 3000);
        let m = media();
        v.queue(
            &key,
            MediaNow {
                version: 1,
                info: Some(&m),
            },
            Instant::now(),
            0,
        );
        let mut out = Outbox::default();
        let mut rounds = 0;
        while !v.write(&mut out, 1500) {
            assert!(out.len() < 1500 + 1500, "at most one packet past the mark");
            out.clear();
            rounds += 1;
        }
        assert!(rounds >= 2);
    }
}
