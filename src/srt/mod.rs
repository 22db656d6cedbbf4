//! SRT, listener side, as sans-IO values (issue 12; spec playback-auth §2 `srt PORT;`, §4
//! sessions, §5 denial by reject code, §6b addressing). Interoperates with libsrt 1.5 (the
//! ffmpeg and srt-live-transmit of Debian), live mode only.
//!
//! * `packet`: the wire codec (draft-sharabayko-srt §3); `seq`: 31-bit sequence numbers.
//! * `handshake`: HSv5 induction and conclusion (HSREQ/HSRSP, stream id, KMREQ/KMRSP),
//!   rejections with a [`RejectReason`].
//! * `streamid`: the stream id forms callers send (`#!::r=NAME,m=request,token=T`, ...).
//! * `crypto`: passphrase key material and AES-CTR payloads.
//! * `connection`: one peer's connection after its conclusion: the authorization round trip,
//!   then sending (send buffer, ACK/NAK, retransmission, too-late drop) and receiving (ACKs,
//!   NAKs, TSBPD delivery), keepalive, idle timeout and shutdown.
//! * `viewer`: `SrtViewer`, the stream's shared TS chunks cut into 1316-byte payloads
//!   (7 TS packets), starting at a keyframe with PAT/PMT first.
//!
//! Why tessera writes its own core rather than using `srt-protocol` (srt-rs): that crate is
//! mostly sans-IO, but reads the system clock for its cookie (an unkeyed `DefaultHasher`,
//! so predictable), draws from `rand`'s thread RNG inside the state machines, pulls regex,
//! url and derive_more 0.99, has had no release since 0.4.4, and has no way to hold a
//! conclusion while an asynchronous authorizer decides and then answer with a chosen reject
//! code. The newer sans-IO crates (`srt-runtime`, `sapflow-srt`) need Rust 1.94+/1.95 while
//! tessera builds on 1.85, and are young single-author 0.x releases without a record of
//! libsrt interop. What tessera needs is small: listener, live mode, one connection type.
//!
//! Never does: sockets, clocks (time is passed in), authorization decisions (it asks).

pub mod caller;
pub mod connection;
pub mod crypto;
pub mod handshake;
pub mod packet;
pub mod seq;
pub mod streamid;
pub mod viewer;

/// Why a listener refuses a caller, as libsrt numbers it (`srt.h` `SRT_REJ_*` below 1000,
/// `SRT_REJX_*` from 1000: 1000 + the HTTP status it mirrors). On the wire the handshake
/// type is 1000 + this (libsrt's `URQFailure`), and the caller's `srt_getrejectreason`
/// returns exactly this number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RejectReason(pub u32);

impl RejectReason {
    /// `SRT_REJ_ROGUE`: a malformed or inconsistent handshake.
    pub const ROGUE: RejectReason = RejectReason(4);
    /// `SRT_REJ_CLOSE`: the listener is closing.
    pub const CLOSE: RejectReason = RejectReason(7);
    /// `SRT_REJ_VERSION`: handshake version not supported.
    pub const VERSION: RejectReason = RejectReason(8);
    /// `SRT_REJ_BADSECRET`: the passphrases differ.
    pub const BADSECRET: RejectReason = RejectReason(10);
    /// `SRT_REJ_UNSECURE`: one side encrypts, the other does not.
    pub const UNSECURE: RejectReason = RejectReason(11);
    /// `SRT_REJ_CONGESTION`: a congestion controller other than live.
    pub const CONGESTION: RejectReason = RejectReason(13);
    /// `SRT_REJ_FILTER`: packet filters are not supported.
    pub const FILTER: RejectReason = RejectReason(14);
    /// `SRT_REJ_GROUP`: socket groups are not supported.
    pub const GROUP: RejectReason = RejectReason(15);
    /// `SRT_REJX_BAD_REQUEST`.
    pub const BAD_REQUEST: RejectReason = RejectReason(1400);
    /// `SRT_REJX_UNAUTHORIZED`: no token (spec §5).
    pub const UNAUTHORIZED: RejectReason = RejectReason(1401);
    /// `SRT_REJX_OVERLOAD`: too many connections.
    pub const OVERLOAD: RejectReason = RejectReason(1402);
    /// `SRT_REJX_FORBIDDEN`: denied (spec §5).
    pub const FORBIDDEN: RejectReason = RejectReason(1403);
    /// `SRT_REJX_NOTFOUND`: unknown stream (spec §5).
    pub const NOT_FOUND: RejectReason = RejectReason(1404);
    /// `SRT_REJX_BAD_MODE`: a mode (`m=`) the stream does not take.
    pub const BAD_MODE: RejectReason = RejectReason(1405);
    /// `SRT_REJX_CONFLICT`: the stream already has a publisher.
    pub const CONFLICT: RejectReason = RejectReason(1409);
    /// `SRT_REJX_DOWN`: the auth backend is unavailable (spec §5).
    pub const UNAVAILABLE: RejectReason = RejectReason(1503);
}

#[cfg(test)]
mod test_vectors;
