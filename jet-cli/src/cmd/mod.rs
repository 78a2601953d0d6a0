//! The subcommands of `jet`.

pub mod crypto;
