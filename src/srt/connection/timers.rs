//! Time-driven behaviour (draft-sharabayko-srt §4.6, §4.8, §4.10): the peer idle timeout,
//! keepalives, the sender's too-late drop, and the receiver's ACKs, periodic NAKs and TSBPD
//! delivery. `next_timeout` is the earliest of them.

use super::*;

/// Packets and bytes received between two ACKs, for the ACK's rate fields.
#[derive(Debug, Clone, Copy)]
pub(super) struct RateMeter {
    packets: u32,
    bytes: u64,
    since: Instant,
}

impl RateMeter {
    pub(super) fn new(now: Instant) -> RateMeter {
        RateMeter {
            packets: 0,
            bytes: 0,
            since: now,
        }
    }

    pub(super) fn count(&mut self, bytes: usize) {
        self.packets = self.packets.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes as u64);
    }

    /// (packets/s, bytes/s) since the last call.
    fn take(&mut self, now: Instant) -> (u32, u32) {
        let us = now.saturating_duration_since(self.since).as_micros().max(1);
        let per_s = |n: u64| u32::try_from(u128::from(n) * 1_000_000 / us).unwrap_or(u32::MAX);
        let rates = (per_s(u64::from(self.packets)), per_s(self.bytes));
        *self = RateMeter::new(now);
        rates
    }
}

impl SrtConnection {
    /// Runs whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.timeout_reported = false;
        if self.state == State::Closed {
            return;
        }
        if now >= self.timers.last_received + self.cfg.peer_idle_timeout {
            if self.state == State::Established {
                self.control(Control::Shutdown, now);
            }
            self.finish(CloseReason::PeerIdle);
            return;
        }
        if self.state != State::Established {
            return;
        }
        self.drop_too_late(now);
        if self.recv.is_some() {
            self.receiver_timers(now);
        }
        if now >= self.timers.last_sent + self.cfg.keepalive_interval {
            self.control(Control::KeepAlive, now);
        }
    }

    pub(super) fn next_timeout(&self) -> Instant {
        let mut at = self.timers.last_received + self.cfg.peer_idle_timeout;
        if self.state != State::Established {
            return at;
        }
        at = at.min(self.timers.last_sent + self.cfg.keepalive_interval);
        if let Some(origin) = self.send_buf.oldest_origin() {
            at = at.min(origin + self.send_drop_threshold());
        }
        if let Some(recv) = &self.recv {
            if Some(recv.ack_point()) != self.last_ack_point {
                at = at.min(self.timers.next_ack);
            }
            if recv.has_losses() {
                at = at.min(self.timers.next_nak);
            }
            if let Some(due) = recv.next_due() {
                at = at.min(due);
            }
        }
        at
    }

    /// How old a packet may get before the sender gives up on it: the peer's latency plus
    /// the configured delay, at least 1 s, plus two ACK periods (libsrt's rule).
    pub fn send_drop_threshold(&self) -> Duration {
        (self.send_latency + self.cfg.send_drop_delay).max(MIN_SEND_DROP) + SEND_DROP_SLACK
    }

    fn drop_too_late(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(self.send_drop_threshold()) else {
            return;
        };
        if let Some((first, last, msg_no)) = self.send_buf.drop_older_than(cutoff) {
            self.stats.send_dropped += u64::from(first.distance_to(last).unsigned_abs()) + 1;
            self.control(
                Control::DropRequest {
                    msg_no,
                    first,
                    last,
                },
                now,
            );
        }
    }

    fn receiver_timers(&mut self, now: Instant) {
        self.deliver(now);
        if now >= self.timers.next_ack {
            self.send_ack(now);
            self.timers.next_ack = now + self.cfg.ack_interval;
        }
        let has_losses = self.recv.as_ref().is_some_and(ReceiveBuffer::has_losses);
        if has_losses && now >= self.timers.next_nak {
            let losses = self.recv.as_ref().map(ReceiveBuffer::losses);
            self.send_nak(&losses.unwrap_or_default(), now);
        }
    }

    /// Hands every due payload to the runtime, in order.
    pub(super) fn deliver(&mut self, now: Instant) {
        let Some(recv) = self.recv.as_mut() else {
            return;
        };
        while let Some(payload) = recv.pop_due(now) {
            self.outputs.push_back(Output::Payload(payload));
        }
        self.stats.receive_skipped = recv.skipped;
    }

    /// A full ACK when the ACK point moved since the last one.
    fn send_ack(&mut self, now: Instant) {
        let Some(recv) = &self.recv else {
            return;
        };
        let point = recv.ack_point();
        if Some(point) == self.last_ack_point {
            return;
        }
        let free = u32::try_from(recv.free()).unwrap_or(u32::MAX);
        self.last_ack_point = Some(point);
        self.ack_no = self.ack_no.wrapping_add(1).max(1);
        let (rtt, var) = self.rtt.micros();
        let (packet_rate, byte_rate) = self.rate.take(now);
        let ack = Ack {
            ack_no: self.ack_no,
            last_acked: point,
            rtt_us: Some(rtt),
            rtt_var_us: Some(var),
            buffer_free: Some(free),
            packet_rate: Some(packet_rate),
            capacity: Some(packet_rate),
            receive_rate: Some(byte_rate),
        };
        if self.acks_sent.len() == ACKS_REMEMBERED {
            self.acks_sent.pop_front();
        }
        self.acks_sent.push_back((self.ack_no, now));
        self.control(Control::Ack(ack), now);
    }

    /// A NAK for `ranges`, as many as fit in one packet.
    pub(super) fn send_nak(&mut self, ranges: &[(SeqNo, SeqNo)], now: Instant) {
        let limit = self.max_payload();
        let mut list = Vec::new();
        for &range in ranges {
            if list.len() + 8 > limit {
                break;
            }
            packet::encode_loss_list([range], &mut list);
        }
        self.timers.next_nak = now + self.rtt.nak_interval();
        self.control(Control::Nak(LossList::from_encoded(&list)), now);
    }
}
