//! MPEG-DASH: the live MPD over the same fMP4 fragments HLS serves.

pub mod mpd;
