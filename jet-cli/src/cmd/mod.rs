//! The subcommands of `jet`.

pub mod bench;
pub mod crypto;
pub mod demo;
