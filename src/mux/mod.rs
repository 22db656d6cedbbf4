//! Containers: how frames are laid out for a protocol: MPEG-TS (HLS segments), fMP4/CMAF
//! (init segment + fragments, for fMP4 HLS, LL-HLS parts, DASH and MSS) and FLV tags (RTMP);
//! and the way back for MPEG-TS inputs (`ts_demux`: SRT ingest, HLS/HTTP-TS/SRT pulls).

pub mod flv;
pub mod fmp4;
pub mod ts;
pub mod ts_demux;
