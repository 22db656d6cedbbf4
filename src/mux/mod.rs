//! Containers: how frames are laid out for a protocol: MPEG-TS (HLS segments), fMP4/CMAF
//! (init segment + fragments, for fMP4 HLS, LL-HLS parts, DASH and MSS) and FLV tags (RTMP).

pub mod flv;
pub mod fmp4;
pub mod ts;
