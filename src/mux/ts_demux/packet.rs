//! One transport packet's header (§2.4.3.2, Table 2-2) and adaptation field (§2.4.3.4,
//! Table 2-6, as far as the demuxer needs it: its length and the discontinuity_indicator),
//! and `ContinuityCheck`, the continuity_counter rule of §2.4.3.3.

use crate::mux::ts::TS_PACKET_LEN;

/// What the demuxer needs from one packet.
#[derive(Debug, PartialEq, Eq)]
pub struct TsPacket<'a> {
    pub pid: u16,
    /// `payload_unit_start_indicator`: a PES or a section starts in this payload.
    pub unit_start: bool,
    pub continuity_counter: u8,
    /// `adaptation_field_control` says the packet carries payload (it may still be empty).
    pub has_payload: bool,
    /// `discontinuity_indicator` of the adaptation field: the continuity counter (and the
    /// time base) may jump here.
    pub discontinuity: bool,
    pub payload: &'a [u8],
}

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketProblem {
    /// `transport_error_indicator` is set.
    TransportError,
    /// `transport_scrambling_control` is not 00.
    Scrambled,
    /// The header or adaptation field is malformed.
    Malformed(&'static str),
}

/// Reads a 188-byte packet (its first byte is the sync byte; the framer checked it).
/// On error, also returns the PID, for the report.
pub fn parse_packet(p: &[u8]) -> Result<TsPacket<'_>, (u16, PacketProblem)> {
    if p.len() != TS_PACKET_LEN {
        return Err((0, PacketProblem::Malformed("not 188 bytes")));
    }
    let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
    if p[1] & 0x80 != 0 {
        return Err((pid, PacketProblem::TransportError));
    }
    if p[3] & 0xC0 != 0 {
        return Err((pid, PacketProblem::Scrambled));
    }
    let control = (p[3] >> 4) & 0x3;
    let (has_adaptation, has_payload) = match control {
        0b01 => (false, true),
        0b10 => (true, false),
        0b11 => (true, true),
        _ => return Err((pid, PacketProblem::Malformed("adaptation_field_control 00"))),
    };
    let mut payload_start = 4;
    let mut discontinuity = false;
    if has_adaptation {
        let len = usize::from(p[4]);
        // §2.4.3.5: 183 bytes with no payload, 0..=182 before a payload.
        let fits = if has_payload { len <= 182 } else { len == 183 };
        if !fits {
            return Err((pid, PacketProblem::Malformed("adaptation_field_length")));
        }
        discontinuity = len > 0 && p[5] & 0x80 != 0;
        payload_start = 5 + len;
    }
    Ok(TsPacket {
        pid,
        unit_start: p[1] & 0x40 != 0,
        continuity_counter: p[3] & 0x0F,
        has_payload,
        discontinuity,
        payload: if has_payload {
            &p[payload_start..]
        } else {
            &[]
        },
    })
}

/// What the continuity counter of a packet says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuity {
    /// The packet follows the previous one (or there is nothing to check against).
    InOrder,
    /// The same counter again: a duplicate packet (allowed once, §2.4.3.3), to be dropped.
    Duplicate,
    /// Packets are missing: the counter should have been `expected`.
    Gap { expected: u8 },
}

/// The continuity_counter of one PID, as received.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContinuityCheck {
    last: Option<u8>,
    duplicate_seen: bool,
}

impl ContinuityCheck {
    /// Checks a packet's counter and remembers it. Packets without payload do not advance
    /// the counter and are not checked.
    pub fn check(&mut self, packet: &TsPacket<'_>) -> Continuity {
        if !packet.has_payload {
            return Continuity::InOrder;
        }
        let cc = packet.continuity_counter;
        let verdict = match self.last {
            Some(last) if !packet.discontinuity && cc != (last + 1) & 0x0F => {
                if cc == last && !self.duplicate_seen {
                    self.duplicate_seen = true;
                    return Continuity::Duplicate;
                }
                Continuity::Gap {
                    expected: (last + 1) & 0x0F,
                }
            }
            _ => Continuity::InOrder,
        };
        self.last = Some(cc);
        self.duplicate_seen = false;
        verdict
    }

    /// Forgets the counter (after sync was lost, nothing can be checked against it).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pid: u16, unit_start: bool, control: u8, cc: u8) -> Vec<u8> {
        let mut p = vec![0xFF; TS_PACKET_LEN];
        p[0] = 0x47;
        p[1] = (u8::from(unit_start) << 6) | (pid >> 8) as u8;
        p[2] = pid as u8;
        p[3] = (control << 4) | cc;
        p
    }

    #[test]
    fn header_fields_and_payload() {
        let p = raw(0x101, true, 0b01, 7);
        let t = parse_packet(&p).unwrap();
        assert_eq!(
            (t.pid, t.unit_start, t.continuity_counter, t.payload.len()),
            (0x101, true, 7, 184)
        );
        let mut p = raw(0x100, false, 0b11, 0);
        p[4] = 7; // adaptation field of 7 bytes, discontinuity set
        p[5] = 0x80;
        let t = parse_packet(&p).unwrap();
        assert!(t.discontinuity);
        assert_eq!(t.payload.len(), 184 - 8);
        let mut p = raw(0x100, false, 0b10, 0);
        p[4] = 183;
        p[5] = 0;
        let t = parse_packet(&p).unwrap();
        assert!(!t.has_payload && t.payload.is_empty());
    }

    #[test]
    fn bad_packets_name_their_problem_and_pid() {
        let mut p = raw(0x42, false, 0b01, 0);
        p[1] |= 0x80;
        assert_eq!(parse_packet(&p), Err((0x42, PacketProblem::TransportError)));
        let mut p = raw(0x42, false, 0b01, 0);
        p[3] |= 0x80;
        assert_eq!(parse_packet(&p), Err((0x42, PacketProblem::Scrambled)));
        let p = raw(0x42, false, 0b00, 0);
        assert!(matches!(
            parse_packet(&p),
            Err((0x42, PacketProblem::Malformed(_)))
        ));
        let mut p = raw(0x42, false, 0b11, 0);
        p[4] = 183; // no room left for the payload the control promises
        assert!(matches!(
            parse_packet(&p),
            Err((0x42, PacketProblem::Malformed(_)))
        ));
        assert!(parse_packet(&p[..100]).is_err());
    }

    #[test]
    fn continuity_counter_rules() {
        let mut check = ContinuityCheck::default();
        let with = |cc: u8| raw(0x100, false, 0b01, cc);
        let verdict = |c: &mut ContinuityCheck, p: &[u8]| c.check(&parse_packet(p).unwrap());
        assert_eq!(verdict(&mut check, &with(14)), Continuity::InOrder);
        assert_eq!(verdict(&mut check, &with(15)), Continuity::InOrder);
        assert_eq!(verdict(&mut check, &with(0)), Continuity::InOrder, "wraps");
        assert_eq!(verdict(&mut check, &with(0)), Continuity::Duplicate);
        assert_eq!(
            verdict(&mut check, &with(0)),
            Continuity::Gap { expected: 1 },
            "a second duplicate is an error"
        );
        assert_eq!(
            verdict(&mut check, &with(5)),
            Continuity::Gap { expected: 1 }
        );
        assert_eq!(verdict(&mut check, &with(6)), Continuity::InOrder);
        // No payload: the counter does not advance and is not checked.
        let mut af_only = raw(0x100, false, 0b10, 3);
        af_only[4] = 183;
        assert_eq!(verdict(&mut check, &af_only), Continuity::InOrder);
        assert_eq!(verdict(&mut check, &with(7)), Continuity::InOrder);
        // A discontinuity_indicator allows any value.
        let mut jump = raw(0x100, false, 0b11, 12);
        jump[4] = 1;
        jump[5] = 0x80;
        assert_eq!(verdict(&mut check, &jump), Continuity::InOrder);
        assert_eq!(verdict(&mut check, &with(13)), Continuity::InOrder);
    }
}
