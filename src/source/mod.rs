//! Inputs: where a stream's frames come from.

pub mod fake;
