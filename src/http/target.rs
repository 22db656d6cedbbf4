//! Request-target normalization lives in [`crate::uri`] (RTSP and RTMP use it too); these
//! are its old paths.

pub use crate::uri::{
    HlsDirectives, Target, TargetError, percent_decode_into, percent_encode_into,
};
