//! The subcommands of `jet`.

pub mod bench;
pub mod crypto;
pub mod demo;
pub mod hooks;
pub mod keys;
pub mod summary;
pub mod xfer;
