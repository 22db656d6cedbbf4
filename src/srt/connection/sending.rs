//! Media from tessera to the peer (draft-sharabayko-srt §4.5): one payload per data
//! packet (live mode: position "only", a new message number each), encrypted when the
//! connection has keys, kept in the send buffer for retransmission.

use super::*;

/// The largest payload in one packet at a 1500-byte MTU (libsrt's `SRT_LIVE_MAX_PLSIZE`).
pub const MAX_PAYLOAD: usize = 1456;

impl SrtConnection {
    /// Sends `payload` (live mode: 1316 bytes, 7 TS packets, is the usual size). Refused
    /// when the send buffer is full, so the caller can skip instead of queueing.
    pub fn send(&mut self, payload: &[u8], now: Instant) -> Result<SeqNo, SendError> {
        self.timeout_reported = false;
        if self.state != State::Established {
            return Err(SendError::NotConnected);
        }
        let max = self.max_payload();
        if payload.len() > max {
            return Err(SendError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        if !self.send_buf.has_room(packet::HEADER_LEN + payload.len()) {
            return Err(SendError::BufferFull);
        }
        let seq = self.next_seq;
        // One allocation per packet: the send buffer and the output share it.
        let datagram = Bytes::from(self.data_packet(seq, payload, now));
        let msg_no = self.next_msg;
        let in_flight = InFlight {
            seq,
            msg_no,
            origin: now,
            last_sent: now,
            retransmitted: false,
            datagram: datagram.clone(),
        };
        self.send_buf
            .push(in_flight)
            .map_err(|_| SendError::BufferFull)?;
        self.next_seq = seq.next();
        self.next_msg = if msg_no >= MSG_NO_MAX { 1 } else { msg_no + 1 };
        self.stats.sent += 1;
        self.transmit(datagram, now);
        Ok(seq)
    }

    /// The largest payload the negotiated MTU allows.
    pub fn max_payload(&self) -> usize {
        let mtu = usize::try_from(self.hello.mtu).unwrap_or(usize::MAX);
        mtu.saturating_sub(IP_UDP_OVERHEAD + packet::HEADER_LEN)
            .min(MAX_PAYLOAD)
    }

    fn data_packet(&self, seq: SeqNo, payload: &[u8], now: Instant) -> Vec<u8> {
        let key = self
            .keys
            .as_ref()
            .map_or(KeyIndex::Clear, StreamKeys::send_key);
        let header = DataHeader {
            seq,
            position: Position::Only,
            in_order: false,
            key,
            retransmitted: false,
            msg_no: self.next_msg,
            timestamp: self.timestamp(now),
            dest_socket: self.hello.socket_id,
        };
        let mut datagram = Vec::with_capacity(packet::HEADER_LEN + payload.len());
        packet::write_data(&header, payload, &mut datagram);
        if let Some(keys) = &self.keys {
            // Cannot fail: `send_key` names a key these keys have.
            let _ = keys.apply(key, seq, &mut datagram[packet::HEADER_LEN..]);
        }
        datagram
    }
}
