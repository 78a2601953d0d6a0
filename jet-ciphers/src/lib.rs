//! # jet-ciphers: the cipher registry (work in progress)
