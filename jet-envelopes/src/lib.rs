//! # jet-envelopes (work in progress)
