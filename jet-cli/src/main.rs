//! `jet`: end-to-end encrypted Jingle file transfer (XEP-0391) from the
//! command line. This file only parses arguments and dispatches; each
//! subcommand lives in [`cmd`].

use clap::{Parser, Subcommand};

mod cmd;
mod progress;

/// jet: Jingle Encrypted Transports (XEP-0391) tools.
#[derive(Parser, Debug)]
#[command(name = "jet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the supported cipher suites: URN, key bits, IV bits (tab-separated), name.
    Ciphers,
    /// Encrypt a file or stream with a JET cipher.
    #[command(long_about = cmd::crypto::ENCRYPT_LONG_ABOUT)]
    Encrypt(cmd::crypto::CryptArgs),
    /// Decrypt a file or stream; OUT appears only if the data authenticates.
    #[command(long_about = cmd::crypto::DECRYPT_LONG_ABOUT)]
    Decrypt(cmd::crypto::CryptArgs),
    /// Run Romeo and Juliet in one process: an encrypted file transfer over
    /// the real session, cipher and transport code, with an in-memory XMPP
    /// router instead of a server. Exits 0 only if the received file's
    /// SHA-256 matches.
    Demo(cmd::demo::DemoArgs),
    /// Measure cipher throughput on this machine (GB/s), and with
    /// --transfer a loopback S5B transfer plain versus encrypted.
    Bench(cmd::bench::BenchArgs),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ciphers => cmd::crypto::ciphers(),
        Command::Encrypt(args) => cmd::crypto::encrypt(args).await,
        Command::Decrypt(args) => cmd::crypto::decrypt(args).await,
        Command::Demo(args) => cmd::demo::run(args).await,
        Command::Bench(args) => cmd::bench::run(args).await,
    };
    if let Err(e) = result {
        eprintln!("jet: {e:#}");
        std::process::exit(1);
    }
}
