//! RTMP (Adobe RTMP specification 1.0) for players and publishers, as sans-IO cores.
//!
//! Owns, bottom up: `sha256` (HMAC-SHA256 for the digest handshake), `handshake` (§5.2),
//! `chunk` (chunk stream framing, §5.3), `amf0` (command and data encoding, AMF0 spec),
//! `flv` (FLV tag bodies ↔ `media::frame`, FLV spec §E.4), and `session` (the per-connection
//! state machine: protocol control §5.4, user control §6.2/§7.1.7, commands §7.2).
//!
//! Never does: sockets, threads, clocks or authorization decisions. The shard's connection
//! task reads bytes into [`session::RtmpConnection::handle_input`], writes what
//! [`session::RtmpConnection::poll_output`] says, answers `Authorize` from the one auth
//! phase, and hands each viewer the shared [`flv::FlvTag`]s of the stream through
//! [`session::RtmpConnection::media_message`] (see the `session` module doc for the exact
//! contract).

pub mod amf0;
pub mod chunk;
pub mod flv;
pub mod handshake;
pub mod session;
pub mod sha256;
pub mod viewer;
