//! Containers: how frames are laid out for a protocol: MPEG-TS (HLS segments) and fMP4/CMAF
//! (init segment + fragments, for fMP4 HLS, LL-HLS parts and DASH; built and tested, not yet
//! served).

pub mod fmp4;
pub mod ts;
