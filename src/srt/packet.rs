//! The SRT packet codec (draft-sharabayko-srt §3): the 16-byte header of data and control
//! packets, data packet flags (packet position, in-order, key index, retransmission, message
//! number), and the control packets a live listener meets (handshake, keepalive, ACK, NAK with
//! its loss list, ACKACK, shutdown, drop request, peer error).
//!
//! Parsing checks a length before it reads, borrows the datagram (payloads and handshake
//! extensions stay slices of it) and never panics: any byte string yields a packet or a
//! [`PacketError`] naming the offset and the field. Writing appends to a caller's buffer.
//! Owns the wire format only; what a packet means for a connection lives in `handshake` and
//! `connection`.

use super::seq::SeqNo;
use std::fmt;

/// Bytes in every SRT header (data and control).
pub const HEADER_LEN: usize = 16;
/// Bytes of the handshake CIF before its extensions (§3.2.1).
pub const HANDSHAKE_CIF_LEN: usize = 48;

/// A datagram that is not a valid SRT packet: where and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketError {
    /// Byte offset in the datagram where parsing stopped.
    pub offset: usize,
    /// The field that was short or invalid.
    pub what: &'static str,
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "srt packet: {} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for PacketError {}

/// Where a data packet sits in its message (the PP bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    Middle,
    Last,
    First,
    /// The whole message in one packet (live mode always sends these).
    Only,
}

/// Which stream key encrypted a data packet (the KK bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyIndex {
    Clear,
    Even,
    Odd,
    /// `0b11`: valid in key material, not on a data packet; kept so parsing never fails.
    Both,
}

impl KeyIndex {
    pub(super) fn bits(self) -> u32 {
        match self {
            KeyIndex::Clear => 0,
            KeyIndex::Even => 1,
            KeyIndex::Odd => 2,
            KeyIndex::Both => 3,
        }
    }

    pub(super) fn from_bits(bits: u32) -> KeyIndex {
        match bits & 3 {
            0 => KeyIndex::Clear,
            1 => KeyIndex::Even,
            2 => KeyIndex::Odd,
            _ => KeyIndex::Both,
        }
    }
}

/// The header of a data packet (§3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataHeader {
    pub seq: SeqNo,
    pub position: Position,
    pub in_order: bool,
    pub key: KeyIndex,
    pub retransmitted: bool,
    /// 26-bit message number.
    pub msg_no: u32,
    /// Microseconds since the connection started (wraps).
    pub timestamp: u32,
    pub dest_socket: u32,
}

/// The largest message number (26 bits).
pub const MSG_NO_MAX: u32 = 0x03FF_FFFF;

/// Control packet types (§3.2).
pub mod control_type {
    pub const HANDSHAKE: u16 = 0;
    pub const KEEPALIVE: u16 = 1;
    pub const ACK: u16 = 2;
    pub const NAK: u16 = 3;
    pub const CONGESTION_WARNING: u16 = 4;
    pub const SHUTDOWN: u16 = 5;
    pub const ACKACK: u16 = 6;
    pub const DROPREQ: u16 = 7;
    pub const PEER_ERROR: u16 = 8;
    pub const USER_DEFINED: u16 = 0x7FFF;
}

/// The handshake's request type (§3.2.1.1); values above 1000 are rejections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeType {
    Waveahand,
    Induction,
    Conclusion,
    Agreement,
    Done,
    /// The handshake refuses the connection; the reason is `code - 1000` (libsrt's
    /// `URQFailure`), e.g. 1403 for `SRT_REJX_FORBIDDEN`.
    Reject(u32),
    Other(u32),
}

/// libsrt's `URQ_FAILURE_TYPES`: a rejection's type is this plus its reason.
pub const REJECT_BASE: u32 = 1000;

impl HandshakeType {
    pub fn code(self) -> u32 {
        match self {
            HandshakeType::Waveahand => 0,
            HandshakeType::Induction => 1,
            HandshakeType::Conclusion => 0xFFFF_FFFF,
            HandshakeType::Agreement => 0xFFFF_FFFE,
            HandshakeType::Done => 0xFFFF_FFFD,
            HandshakeType::Reject(reason) => REJECT_BASE.wrapping_add(reason),
            HandshakeType::Other(code) => code,
        }
    }

    pub fn from_code(code: u32) -> HandshakeType {
        match code {
            0 => HandshakeType::Waveahand,
            1 => HandshakeType::Induction,
            0xFFFF_FFFF => HandshakeType::Conclusion,
            0xFFFF_FFFE => HandshakeType::Agreement,
            0xFFFF_FFFD => HandshakeType::Done,
            c if c > REJECT_BASE && c < 0x8000_0000 => HandshakeType::Reject(c - REJECT_BASE),
            c => HandshakeType::Other(c),
        }
    }
}

/// The handshake control information field (§3.2.1), extensions kept as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake<'a> {
    pub version: u32,
    pub encryption: u16,
    pub extension: u16,
    pub isn: SeqNo,
    pub mtu: u32,
    pub flow_window: u32,
    pub kind: HandshakeType,
    pub socket_id: u32,
    pub cookie: u32,
    pub peer_ip: [u8; 16],
    /// The extension blocks (HSREQ, KMREQ, SID, ...) as sent; see [`Extensions`].
    pub extensions: &'a [u8],
}

/// An ACK's fields (§3.2.4). A light ACK carries only `last_acked`; a small one adds RTT,
/// its variance and the free buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ack {
    pub ack_no: u32,
    /// The sequence number after the last packet received in order.
    pub last_acked: SeqNo,
    pub rtt_us: Option<u32>,
    pub rtt_var_us: Option<u32>,
    pub buffer_free: Option<u32>,
    pub packet_rate: Option<u32>,
    pub capacity: Option<u32>,
    pub receive_rate: Option<u32>,
}

/// A NAK's loss list (§3.2.5): single sequence numbers and ranges, kept as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossList<'a>(&'a [u8]);

/// A control packet's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control<'a> {
    Handshake(Handshake<'a>),
    KeepAlive,
    Ack(Ack),
    Nak(LossList<'a>),
    AckAck {
        ack_no: u32,
    },
    Shutdown,
    DropRequest {
        msg_no: u32,
        first: SeqNo,
        last: SeqNo,
    },
    PeerError(u32),
    /// `UMSG_EXT` (type 0x7FFF): an SRT command in-band, `subtype` being its `SRT_CMD_*`
    /// (libsrt's key refresh sends KMREQ = 3 this way, answered by KMRSP = 4).
    Extended {
        subtype: u16,
        body: &'a [u8],
    },
    /// Congestion warning and unknown types: nothing a listener acts on.
    Other {
        control_type: u16,
        subtype: u16,
    },
}

/// A control packet: its header fields and meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlPacket<'a> {
    pub timestamp: u32,
    pub dest_socket: u32,
    pub control: Control<'a>,
}

/// A parsed datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Data(DataHeader, &'a [u8]),
    Control(ControlPacket<'a>),
}

/// Big-endian reads with a bounds check that names the field.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u32(&mut self, what: &'static str) -> Result<u32, PacketError> {
        let bytes = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u32_opt(&mut self) -> Option<u32> {
        self.u32("optional word").ok()
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PacketError> {
        let err = PacketError {
            offset: self.pos,
            what,
        };
        let end = self.pos.checked_add(n).ok_or(err)?;
        let out = self.buf.get(self.pos..end).ok_or(err)?;
        self.pos = end;
        Ok(out)
    }

    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }
}

/// Parses one datagram.
pub fn parse(datagram: &[u8]) -> Result<Packet<'_>, PacketError> {
    let mut r = Reader {
        buf: datagram,
        pos: 0,
    };
    let w0 = r.u32("header word 0")?;
    let w1 = r.u32("header word 1")?;
    let timestamp = r.u32("timestamp")?;
    let dest_socket = r.u32("destination socket id")?;
    if w0 & 0x8000_0000 == 0 {
        let header = data_header(w0, w1, timestamp, dest_socket);
        return Ok(Packet::Data(header, r.rest()));
    }
    let control_type = ((w0 >> 16) & 0x7FFF) as u16;
    let subtype = (w0 & 0xFFFF) as u16;
    let control = parse_control(control_type, subtype, w1, &mut r)?;
    Ok(Packet::Control(ControlPacket {
        timestamp,
        dest_socket,
        control,
    }))
}

fn data_header(w0: u32, w1: u32, timestamp: u32, dest_socket: u32) -> DataHeader {
    let position = match w1 >> 30 {
        0 => Position::Middle,
        1 => Position::Last,
        2 => Position::First,
        _ => Position::Only,
    };
    DataHeader {
        seq: SeqNo::new(w0),
        position,
        in_order: w1 & (1 << 29) != 0,
        key: KeyIndex::from_bits(w1 >> 27),
        retransmitted: w1 & (1 << 26) != 0,
        msg_no: w1 & MSG_NO_MAX,
        timestamp,
        dest_socket,
    }
}

fn parse_control<'a>(
    kind: u16,
    subtype: u16,
    info: u32,
    r: &mut Reader<'a>,
) -> Result<Control<'a>, PacketError> {
    use self::control_type as t;
    Ok(match kind {
        t::HANDSHAKE => Control::Handshake(parse_handshake(r)?),
        t::KEEPALIVE => Control::KeepAlive,
        t::ACK => Control::Ack(parse_ack(info, r)?),
        t::NAK => Control::Nak(parse_loss_list(r)?),
        t::ACKACK => Control::AckAck { ack_no: info },
        t::SHUTDOWN => Control::Shutdown,
        t::DROPREQ => Control::DropRequest {
            msg_no: info,
            first: SeqNo::new(r.u32("drop request first seq")?),
            last: SeqNo::new(r.u32("drop request last seq")?),
        },
        t::PEER_ERROR => Control::PeerError(info),
        t::USER_DEFINED => Control::Extended {
            subtype,
            body: r.rest(),
        },
        _ => Control::Other {
            control_type: kind,
            subtype,
        },
    })
}

fn parse_handshake<'a>(r: &mut Reader<'a>) -> Result<Handshake<'a>, PacketError> {
    let version = r.u32("handshake version")?;
    let types = r.u32("handshake encryption/extension field")?;
    let isn = SeqNo::new(r.u32("handshake initial sequence number")?);
    let mtu = r.u32("handshake MTU")?;
    let flow_window = r.u32("handshake flow window")?;
    let kind = HandshakeType::from_code(r.u32("handshake type")?);
    let socket_id = r.u32("handshake socket id")?;
    let cookie = r.u32("handshake cookie")?;
    let ip = r.bytes(16, "handshake peer address")?;
    let mut peer_ip = [0u8; 16];
    peer_ip.copy_from_slice(ip);
    Ok(Handshake {
        version,
        encryption: (types >> 16) as u16,
        extension: (types & 0xFFFF) as u16,
        isn,
        mtu,
        flow_window,
        kind,
        socket_id,
        cookie,
        peer_ip,
        extensions: r.rest(),
    })
}

fn parse_ack(ack_no: u32, r: &mut Reader<'_>) -> Result<Ack, PacketError> {
    Ok(Ack {
        ack_no,
        last_acked: SeqNo::new(r.u32("ack last acknowledged seq")?),
        rtt_us: r.u32_opt(),
        rtt_var_us: r.u32_opt(),
        buffer_free: r.u32_opt(),
        packet_rate: r.u32_opt(),
        capacity: r.u32_opt(),
        receive_rate: r.u32_opt(),
    })
}

fn parse_loss_list<'a>(r: &mut Reader<'a>) -> Result<LossList<'a>, PacketError> {
    let rest = r.rest();
    let list = LossList(&rest[..rest.len() / 4 * 4]);
    // Check now that every range has its end, so iteration cannot fail later.
    let mut words = list.0.chunks_exact(4).map(word);
    let mut offset = r.pos;
    while let Some(w) = words.next() {
        if w & 0x8000_0000 != 0 && words.next().is_none() {
            return Err(PacketError {
                offset,
                what: "loss list range without its last seq",
            });
        }
        offset += 4;
    }
    Ok(list)
}

fn word(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl<'a> LossList<'a> {
    /// The lost ranges, each `(first, last)` inclusive; a single loss is `(s, s)`.
    pub fn ranges(&self) -> impl Iterator<Item = (SeqNo, SeqNo)> + 'a {
        let mut words = self.0.chunks_exact(4).map(word);
        std::iter::from_fn(move || {
            let w = words.next()?;
            let first = SeqNo::new(w);
            if w & 0x8000_0000 == 0 {
                return Some((first, first));
            }
            words.next().map(|last| (first, SeqNo::new(last)))
        })
    }
}

/// One handshake extension block: its command (`SRT_CMD_*`) and contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension<'a> {
    pub command: u16,
    pub contents: &'a [u8],
}

/// The handshake extension blocks (§3.2.1.1): a 16-bit command, a 16-bit length in 32-bit
/// words, then the words. Yields an error (once) for a block that overruns the packet.
pub struct Extensions<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Extensions<'a> {
    /// `offset` is where `extensions` starts in the datagram, for error reports.
    pub fn new(extensions: &'a [u8], offset: usize) -> Extensions<'a> {
        Extensions {
            rest: extensions,
            offset,
        }
    }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Result<Extension<'a>, PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 4 {
            return None;
        }
        let command = u16::from_be_bytes([self.rest[0], self.rest[1]]);
        let len = usize::from(u16::from_be_bytes([self.rest[2], self.rest[3]])) * 4;
        let Some(contents) = self.rest.get(4..4 + len) else {
            let err = PacketError {
                offset: self.offset,
                what: "handshake extension longer than the packet",
            };
            self.rest = &[];
            return Some(Err(err));
        };
        self.rest = &self.rest[4 + len..];
        self.offset += 4 + len;
        Some(Ok(Extension { command, contents }))
    }
}

/// Appends a data packet: header, then `payload`.
pub fn write_data(h: &DataHeader, payload: &[u8], out: &mut Vec<u8>) {
    let pp: u32 = match h.position {
        Position::Middle => 0,
        Position::Last => 1,
        Position::First => 2,
        Position::Only => 3,
    };
    let w1 = pp << 30
        | u32::from(h.in_order) << 29
        | h.key.bits() << 27
        | u32::from(h.retransmitted) << 26
        | (h.msg_no & MSG_NO_MAX);
    for w in [h.seq.value(), w1, h.timestamp, h.dest_socket] {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Rewrites the retransmission flag of a data packet already written.
pub fn set_retransmitted(datagram: &mut [u8]) {
    if let Some(b) = datagram.get_mut(4) {
        *b |= 0x04;
    }
}

fn control_header(out: &mut Vec<u8>, kind: u16, info: u32, timestamp: u32, dest: u32) {
    typed_header(out, u32::from(kind) << 16, info, timestamp, dest);
}

/// `kind_subtype`: the control type in the high half, the subtype in the low one.
fn typed_header(out: &mut Vec<u8>, kind_subtype: u32, info: u32, timestamp: u32, dest: u32) {
    let w0 = 0x8000_0000 | kind_subtype;
    for w in [w0, info, timestamp, dest] {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

impl ControlPacket<'_> {
    /// Appends this packet. Keepalive, shutdown and ACKACK get the 4 zero bytes libsrt sends.
    pub fn write(&self, out: &mut Vec<u8>) {
        let (ts, dest) = (self.timestamp, self.dest_socket);
        use control_type as t;
        match &self.control {
            Control::Handshake(hs) => {
                control_header(out, t::HANDSHAKE, 0, ts, dest);
                hs.write(out);
            }
            Control::KeepAlive => empty(out, t::KEEPALIVE, 0, ts, dest),
            Control::Ack(ack) => {
                control_header(out, t::ACK, ack.ack_no, ts, dest);
                ack.write(out);
            }
            Control::Nak(list) => {
                control_header(out, t::NAK, 0, ts, dest);
                out.extend_from_slice(list.0);
            }
            Control::AckAck { ack_no } => empty(out, t::ACKACK, *ack_no, ts, dest),
            Control::Shutdown => empty(out, t::SHUTDOWN, 0, ts, dest),
            Control::DropRequest {
                msg_no,
                first,
                last,
            } => {
                control_header(out, t::DROPREQ, *msg_no, ts, dest);
                out.extend_from_slice(&first.value().to_be_bytes());
                out.extend_from_slice(&last.value().to_be_bytes());
            }
            Control::PeerError(code) => empty(out, t::PEER_ERROR, *code, ts, dest),
            Control::Extended { subtype, body } => {
                let kind = u32::from(t::USER_DEFINED) << 16 | u32::from(*subtype);
                typed_header(out, kind, 0, ts, dest);
                out.extend_from_slice(body);
            }
            Control::Other {
                control_type,
                subtype,
            } => {
                let kind = u32::from(*control_type & 0x7FFF) << 16 | u32::from(*subtype);
                typed_header(out, kind, 0, ts, dest);
            }
        }
    }
}

fn empty(out: &mut Vec<u8>, kind: u16, info: u32, timestamp: u32, dest: u32) {
    control_header(out, kind, info, timestamp, dest);
    out.extend_from_slice(&[0; 4]);
}

impl Handshake<'_> {
    /// Appends the CIF and its extension bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        let types = u32::from(self.encryption) << 16 | u32::from(self.extension);
        let words = [
            self.version,
            types,
            self.isn.value(),
            self.mtu,
            self.flow_window,
            self.kind.code(),
            self.socket_id,
            self.cookie,
        ];
        for w in words {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&self.peer_ip);
        out.extend_from_slice(self.extensions);
    }
}

impl Ack {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.last_acked.value().to_be_bytes());
        let rest = [
            self.rtt_us,
            self.rtt_var_us,
            self.buffer_free,
            self.packet_rate,
            self.capacity,
            self.receive_rate,
        ];
        for w in rest.into_iter().map_while(|w| w) {
            out.extend_from_slice(&w.to_be_bytes());
        }
    }
}

/// Builds a NAK loss list from inclusive ranges, in the compressed form (§3.2.5).
pub fn encode_loss_list(ranges: impl IntoIterator<Item = (SeqNo, SeqNo)>, out: &mut Vec<u8>) {
    for (first, last) in ranges {
        if first == last {
            out.extend_from_slice(&first.value().to_be_bytes());
        } else {
            out.extend_from_slice(&(first.value() | 0x8000_0000).to_be_bytes());
            out.extend_from_slice(&last.value().to_be_bytes());
        }
    }
}

impl<'a> LossList<'a> {
    /// A loss list over bytes built by [`encode_loss_list`].
    pub fn from_encoded(bytes: &'a [u8]) -> LossList<'a> {
        LossList(&bytes[..bytes.len() / 4 * 4])
    }
}

#[cfg(test)]
mod tests;
