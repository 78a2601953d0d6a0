//! # jet-envelopes (work in progress)

#[cfg(feature = "omemo")]
pub mod omemo;
