//! Datagrams from the peer: dispatch by packet type (draft-sharabayko-srt §3), the
//! sender's reactions (ACK, NAK, ACKACK) and the receiver's (data, DROPREQ).

use super::*;
use crate::srt::crypto::KeyMaterial;

/// The shortest time between two resends of one packet: a peer-reported RTT of 0 must not
/// turn every NAK into a resend of the whole buffer.
const MIN_RESEND_GAP: Duration = Duration::from_millis(20);

/// `SRT_KM_S_BADSECRET`, the KMRSP state word for key material that does not unwrap.
const KM_STATE_BADSECRET: u32 = 4;

impl SrtConnection {
    /// Feeds one datagram from the peer; returns its length (a datagram is used whole, so
    /// the driver keeps nothing). An error names what was wrong with the datagram, which is
    /// then ignored; the connection goes on.
    pub fn handle_input(
        &mut self,
        datagram: &[u8],
        now: Instant,
    ) -> Result<usize, ConnectionError> {
        self.timeout_reported = false;
        if self.state == State::Closed {
            return Ok(datagram.len());
        }
        let packet = packet::parse(datagram).map_err(ConnectionError::Packet)?;
        let (dest, handshake) = match &packet {
            Packet::Data(h, _) => (h.dest_socket, false),
            Packet::Control(c) => (c.dest_socket, matches!(c.control, Control::Handshake(_))),
        };
        // A repeated conclusion is addressed to socket 0; everything else to ours.
        if !handshake && dest != self.cfg.local_socket_id {
            return Err(ConnectionError::WrongSocket(dest));
        }
        self.timers.last_received = now;
        match packet {
            Packet::Data(h, payload) => self.on_data(&h, payload, now)?,
            Packet::Control(c) => self.on_control(c.control, now),
        }
        Ok(datagram.len())
    }

    fn on_control(&mut self, control: Control<'_>, now: Instant) {
        match control {
            Control::Handshake(hs) => self.on_handshake(hs.kind, now),
            Control::Shutdown => {
                self.flush_received();
                self.finish(CloseReason::PeerShutdown);
            }
            _ if self.state != State::Established => {}
            Control::Ack(ack) => self.on_ack(&ack, now),
            Control::Nak(list) => self.on_nak(list, now),
            Control::AckAck { ack_no } => self.on_ackack(ack_no, now),
            Control::DropRequest { first, last, .. } => {
                if let Some(recv) = &mut self.recv {
                    recv.sender_dropped(first, last);
                }
            }
            Control::Extended { subtype, body } if subtype == handshake::cmd::KMREQ => {
                self.on_key_refresh(body, now);
            }
            Control::KeepAlive
            | Control::PeerError(_)
            | Control::Extended { .. }
            | Control::Other { .. } => {}
        }
    }

    /// A publisher that shuts down sends nothing more: hand over what is buffered now
    /// rather than drop the last latency's worth.
    fn flush_received(&mut self) {
        if let Some(recv) = self.recv.as_mut() {
            let payloads = recv.drain_all();
            self.stats.receive_skipped = recv.skipped;
            self.outputs
                .extend(payloads.into_iter().map(Output::Payload));
        }
    }

    /// libsrt's sender refreshes its key every 2^24 packets: a new odd (or even) key in an
    /// in-band KMREQ, announced before it is used. Unwrap it, keep it beside the current
    /// one, and answer KMRSP with the same material (or the state word `BADSECRET`).
    fn on_key_refresh(&mut self, body: &[u8], now: Instant) {
        if self.keys.is_none() {
            return;
        }
        let reply = match self.refreshed_keys(body, now) {
            Some(newer) => {
                if let Some(keys) = self.keys.as_mut() {
                    keys.merge(newer);
                }
                body.to_vec()
            }
            None => KM_STATE_BADSECRET.to_be_bytes().to_vec(),
        };
        let control = Control::Extended {
            subtype: handshake::cmd::KMRSP,
            body: &reply,
        };
        self.control(control, now);
    }

    /// The keys of an in-band KMREQ: with the handshake's key-encrypting key when the salt
    /// is the same (libsrt's case), else with a new one, derived at most once per
    /// `KEK_DERIVATION_GAP` (PBKDF2 must not be a peer's lever on the shard's CPU).
    fn refreshed_keys(&mut self, body: &[u8], now: Instant) -> Option<StreamKeys> {
        let km = KeyMaterial::parse(body).ok()?;
        let pass = self.passphrase.as_deref()?;
        let cached = self.kek.as_ref().filter(|k| km.fits(k));
        if cached.is_none() {
            let recent = self
                .last_derivation
                .is_some_and(|at| now.saturating_duration_since(at) < KEK_DERIVATION_GAP);
            if recent {
                return None;
            }
            self.last_derivation = Some(now);
        }
        let kek = km.kek(pass, cached).ok()?;
        km.unwrap_with(&kek).ok()
    }

    /// The caller repeats its conclusion until it hears the answer: answer again.
    fn on_handshake(&mut self, kind: packet::HandshakeType, now: Instant) {
        if kind == packet::HandshakeType::Conclusion {
            if let Some(reply) = self.handshake_reply.clone() {
                self.transmit(reply, now);
            }
        }
    }

    /// The receiver's ACK: release what it has, take its RTT, answer a full ACK with ACKACK.
    fn on_ack(&mut self, ack: &Ack, now: Instant) {
        self.send_buf.acknowledge(ack.last_acked);
        if let (Some(rtt), Some(var)) = (ack.rtt_us, ack.rtt_var_us) {
            self.rtt.from_peer(rtt, var);
            self.control(Control::AckAck { ack_no: ack.ack_no }, now);
        }
    }

    fn on_ackack(&mut self, ack_no: u32, now: Instant) {
        if let Some(&(_, sent)) = self.acks_sent.iter().find(|(n, _)| *n == ack_no) {
            self.rtt.sample(now.saturating_duration_since(sent));
        }
    }

    /// Retransmits what the NAK lists and is still buffered; a DROPREQ for what is gone.
    fn on_nak(&mut self, list: LossList<'_>, now: Instant) {
        for (first, last) in list.ranges() {
            self.drop_request_if_gone(first, last, now);
            for index in self.send_buf.indices(first, last) {
                self.retransmit(index, now);
            }
        }
    }

    fn drop_request_if_gone(&mut self, first: SeqNo, last: SeqNo, now: Instant) {
        // Everything before the buffer's front (or, when empty, before the next to send)
        // was acknowledged or dropped: tell the receiver not to wait for it.
        let boundary = self.send_buf.front_seq().unwrap_or(self.next_seq);
        if !first.precedes(boundary) || self.next_seq.distance_to(first) > 0 {
            return;
        }
        let gone_last = if last.precedes(boundary) {
            last
        } else {
            boundary.prev()
        };
        let control = Control::DropRequest {
            msg_no: 0,
            first,
            last: gone_last,
        };
        self.control(control, now);
    }

    /// Sends packet `index` of the buffer again, with the retransmission flag; a packet
    /// already retransmitted is not sent again within one RTT (at least `MIN_RESEND_GAP`,
    /// whatever RTT the peer claims), so a NAK listing the whole buffer many times over
    /// resends each packet once.
    fn retransmit(&mut self, index: usize, now: Instant) {
        let flag = self.hello.srt_flags & handshake::srt_flag::REXMITFLG != 0;
        let min_gap = self.rtt.smoothed.max(MIN_RESEND_GAP);
        let Some(p) = self.send_buf.at_mut(index) else {
            return;
        };
        if p.retransmitted && now.saturating_duration_since(p.last_sent) < min_gap {
            return;
        }
        p.retransmitted = true;
        p.last_sent = now;
        // A copy: the flag changes the header (resends are the rare path).
        let mut datagram = p.datagram.to_vec();
        if flag {
            packet::set_retransmitted(&mut datagram);
        }
        self.stats.retransmitted += 1;
        self.transmit(datagram, now);
    }

    /// A publisher's data packet: decrypt, store, NAK a gap at once, deliver what is due.
    fn on_data(
        &mut self,
        h: &DataHeader,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), ConnectionError> {
        if self.state != State::Established || self.recv.is_none() {
            return Ok(()); // a viewer has nothing to send; ignored
        }
        let mut payload = payload.to_vec();
        if h.key != KeyIndex::Clear {
            let keys = self.keys.as_ref();
            let keys = keys.ok_or(ConnectionError::Crypto(CryptoError::NoKey))?;
            keys.apply(h.key, h.seq, &mut payload)
                .map_err(ConnectionError::Crypto)?;
        }
        self.stats.received += 1;
        self.rate.count(payload.len());
        let recv = self.recv.as_mut().expect("checked above");
        if let Arrival::Stored { gap: Some(gap) } = recv.insert(h.seq, h.timestamp, payload, now) {
            self.send_nak(&[gap], now);
        }
        self.deliver(now);
        Ok(())
    }
}
