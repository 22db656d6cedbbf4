//! Microsoft Smooth Streaming (MS-SSTR): the live manifest over the MSS fragments the
//! segmenter writes (single-track fMP4 with `tfxd`/`tfrf`, see `mux::fmp4`).

pub mod manifest;
