//! `jet`: end-to-end encrypted Jingle file transfer (XEP-0391) from the
//! command line. This file only parses arguments and dispatches; each
//! subcommand lives in [`cmd`].

use clap::{Parser, Subcommand};

mod account;
mod backends;
mod cmd;
mod progress;
mod timing;
mod used;

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
    /// Send files to an XMPP account, end-to-end encrypted (XEP-0391).
    Send(cmd::xfer::SendArgs),
    /// Receive files offered to this account.
    Receive(cmd::xfer::ReceiveArgs),
    /// Serve files to peers that request them by hash (XEP-0391 §4.2).
    Serve(cmd::xfer::ServeArgs),
    /// Request a file by hash from a peer running `jet serve`.
    Request(cmd::xfer::RequestArgs),
    /// Show a peer's JET support: envelopes, transports, ciphers.
    Disco(cmd::xfer::DiscoArgs),
    /// Show, trust, list and export the local OMEMO and OX keys (offline).
    Keys(cmd::keys::KeysArgs),
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
        Command::Send(args) => cmd::xfer::send(args).await,
        Command::Receive(args) => cmd::xfer::receive(args).await,
        Command::Serve(args) => cmd::xfer::serve(args).await,
        Command::Request(args) => cmd::xfer::request(args).await,
        Command::Disco(args) => cmd::xfer::disco(args).await,
        Command::Keys(args) => cmd::keys::run(args),
        Command::Bench(args) => cmd::bench::run(args).await,
    };
    if let Err(e) = result {
        eprintln!("jet: {e:#}");
        std::process::exit(1);
    }
}
