//! # jet-transports (work in progress)
