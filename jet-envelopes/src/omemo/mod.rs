//! OMEMO 0.3 core
pub mod error;
pub mod kdf;
pub mod keys;
pub mod proto;
pub mod ratchet;
pub mod x3dh;
