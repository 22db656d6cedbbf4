//! URIs as every protocol sees them: one normalized form of a request-target (path, token,
//! LL-HLS directives), percent-encoding both ways, and the token query written back into the
//! URIs a viewer is handed. HTTP, RTSP and RTMP normalize through [`Target`]; playlists,
//! manifests, the player page and portal requests encode through [`percent_encode_into`].
//!
//! Never does: routing (which resource a path names) or authorization; no I/O.

mod percent;
mod target;
mod token_query;
mod token_template;

pub use percent::{percent_decode_into, percent_encode_into};
pub use target::{HlsDirectives, Target, TargetError, path_and_query};
pub use token_query::TokenQuery;
pub use token_template::{SlotMarks, TokenSlot, TokenTemplate};
