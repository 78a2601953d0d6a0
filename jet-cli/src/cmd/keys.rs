//! `jet keys`: show, trust, list and export the local OMEMO and OX keys.
//! Works offline, on the stores in the data directory only:
//!
//! ```text
//! <data dir>/omemo-<account>.sqlite   OMEMO device, sessions, trust (SqliteStore)
//! <data dir>/ox-<account>/            OX key store (FileKeyStore)
//! ```
//!
//! `<data dir>` is `--data-dir`, else the user's data directory + `/jet`
//! (`~/.local/share/jet` on Linux).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use jet_core::jid::BareJid;
use jet_envelopes::omemo::{OmemoStore, PublicKey, SqliteStore, Trust};
use jet_envelopes::ox::{export_armored, FileKeyStore, OxKeyStore};

/// `jet keys` arguments.
#[derive(Args, Debug)]
pub struct KeysArgs {
    /// Where the key stores live (default: the user data directory + /jet).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Our account (bare JID); needed when the data directory holds several.
    #[arg(long, global = true, value_name = "ME")]
    pub jid: Option<String>,
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The `jet keys` subcommands.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Our own OMEMO device and fingerprint (a new device is created if the
    /// account has none yet, given --jid), and our OX fingerprint if an OX
    /// key exists.
    Show,
    /// Mark PEER's key with FINGERPRINT as verified: an OMEMO fingerprint
    /// (64 hex digits) or an OpenPGP (OX) v4 fingerprint (40 hex digits).
    Trust {
        /// The peer's bare JID.
        peer: String,
        /// The fingerprint as shown by the peer's client (spaces allowed).
        fingerprint: String,
    },
    /// The keys known for PEER, with our trust in them.
    List {
        /// The peer's bare JID.
        peer: String,
    },
    /// Write our OX key as armored files that `gpg --import` accepts.
    Export {
        /// Export the OX (OpenPGP) key (the only kind exportable).
        #[arg(long, required = true)]
        ox: bool,
        /// Also write the secret key (unprotected, mode 0600).
        #[arg(long)]
        secret: bool,
        /// Output directory (default: the current directory).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// The data directory: `--data-dir`, else `<user data dir>/jet`.
pub fn data_dir(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(d) => Ok(d.to_path_buf()),
        None => Ok(dirs_data_dir()?.join("jet")),
    }
}

fn dirs_data_dir() -> Result<PathBuf> {
    // Same place SqliteStore::default_path uses.
    let p = SqliteStore::default_path(None, "x")?;
    p.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("no user data directory"))
}

/// The OMEMO store file of `account` in `dir`.
pub fn omemo_store_path(dir: &Path, account: &BareJid) -> Result<PathBuf> {
    Ok(SqliteStore::default_path(Some(dir), &account.to_string())?)
}

/// The OX key store directory of `account` in `dir`.
pub fn ox_store_dir(dir: &Path, account: &BareJid) -> PathBuf {
    dir.join(format!("ox-{account}"))
}

fn parse_jid(s: &str) -> Result<BareJid> {
    s.parse::<BareJid>()
        .map_err(|e| anyhow!("{s:?} is not a bare JID: {e}"))
}

/// Accounts with a store in `dir`.
fn accounts(dir: &Path) -> Result<Vec<BareJid>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let jid = if let Some(j) = name
            .strip_prefix("omemo-")
            .and_then(|n| n.strip_suffix(".sqlite"))
        {
            j.to_string()
        } else if let Some(j) = name.strip_prefix("ox-") {
            j.to_string()
        } else {
            continue;
        };
        if let Ok(j) = jid.parse::<BareJid>() {
            if !out.contains(&j) {
                out.push(j);
            }
        }
    }
    out.sort_by_key(|j| j.to_string());
    Ok(out)
}

fn account(dir: &Path, given: Option<&str>) -> Result<BareJid> {
    if let Some(j) = given {
        return parse_jid(j);
    }
    match accounts(dir)?.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no key store in {}: give --jid ME", dir.display()),
        many => bail!(
            "several accounts in {} ({}): give --jid ME",
            dir.display(),
            many.iter()
                .map(|j| j.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn ox_store(dir: &Path, me: &BareJid) -> Result<Option<FileKeyStore>> {
    let d = ox_store_dir(dir, me);
    if !d.exists() {
        return Ok(None);
    }
    Ok(Some(FileKeyStore::open(d)?))
}

fn trust_word(t: Trust) -> &'static str {
    match t {
        Trust::Trusted => "trusted",
        Trust::Undecided => "undecided: not verified (used only while no device of this account is verified, or with --trust tofu)",
        Trust::Distrusted => "distrusted",
    }
}

/// Runs `jet keys`.
pub fn run(args: KeysArgs) -> Result<()> {
    let dir = data_dir(args.data_dir.as_deref())?;
    match args.command {
        KeysCommand::Show => {
            let list = match &args.jid {
                Some(j) => vec![parse_jid(j)?],
                None => accounts(&dir)?,
            };
            if list.is_empty() {
                bail!(
                    "no key store in {}: `jet keys show --jid ME` creates an OMEMO device",
                    dir.display()
                );
            }
            for me in list {
                show(&dir, &me)?;
            }
            Ok(())
        }
        KeysCommand::Trust { peer, fingerprint } => {
            let me = account(&dir, args.jid.as_deref())?;
            trust(&dir, &me, &parse_jid(&peer)?, &fingerprint)
        }
        KeysCommand::List { peer } => {
            let me = account(&dir, args.jid.as_deref())?;
            list(&dir, &me, &parse_jid(&peer)?)
        }
        KeysCommand::Export { ox, secret, out } => {
            debug_assert!(ox);
            let me = account(&dir, args.jid.as_deref())?;
            let store = ox_store(&dir, &me)?
                .ok_or_else(|| anyhow!("no OX key store for {me} in {}", dir.display()))?;
            let key = store
                .own_key(&me)?
                .ok_or_else(|| anyhow!("no OX key for {me}"))?;
            let out = out.unwrap_or_else(|| PathBuf::from("."));
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let public = out.join(format!("{me}.pub.asc"));
            let secret_path = secret.then(|| out.join(format!("{me}.sec.asc")));
            export_armored(&key, &public, secret_path.as_deref())?;
            println!("{}", public.display());
            if let Some(s) = secret_path {
                println!("{}", s.display());
            }
            Ok(())
        }
    }
}

fn show(dir: &Path, me: &BareJid) -> Result<()> {
    let path = omemo_store_path(dir, me)?;
    let (store, created) = SqliteStore::open_or_create(&path)
        .with_context(|| format!("OMEMO store {}", path.display()))?;
    println!("account {me}");
    let fpr = store.identity_key_pair()?.public.fingerprint();
    println!(
        "  omemo device {}  {fpr}{}",
        store.device_id(),
        if created {
            "  (new device created)"
        } else {
            ""
        }
    );
    if let Some(ox) = ox_store(dir, me)? {
        if let Some(key) = ox.own_key(me)? {
            println!("  ox {}", key.fingerprint());
        }
    }
    Ok(())
}

/// Hex digits of a fingerprint as typed (spaces and colons dropped).
fn hex_digits(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect()
}

fn trust(dir: &Path, me: &BareJid, peer: &BareJid, fingerprint: &str) -> Result<()> {
    let digits = hex_digits(fingerprint);
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("{fingerprint:?} is not a hex fingerprint");
    }
    match digits.len() {
        40 => {
            let fpr = digits.to_ascii_uppercase();
            let store = ox_store(dir, me)?
                .ok_or_else(|| anyhow!("no OX key store for {me} in {}", dir.display()))?;
            // Trusted OX keys are the store's peer keys (the envelope
            // encrypts to and accepts only them); a key seen after the
            // first one waits as pending until this command.
            let known = store.peer_keys(peer)?;
            if known.iter().any(|k| k.fingerprint() == fpr) {
                println!("ox {peer} {fpr}: trusted (already)");
                Ok(())
            } else if store.trust_pending_key(peer, &fpr)? {
                println!("ox {peer} {fpr}: trusted");
                Ok(())
            } else {
                let pending = store.pending_keys(peer)?;
                let fprs = |keys: &[jet_envelopes::ox::OxPublicKey]| {
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.iter()
                            .map(|k| k.fingerprint().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                };
                bail!(
                    "no OX key {fpr} is stored for {peer} (trusted: {}; not yet trusted: {}); \
                     keys are fetched from {peer}'s PEP when a session needs them",
                    fprs(&known),
                    fprs(&pending)
                )
            }
        }
        64 | 66 => {
            let key = PublicKey::from_fingerprint(&digits)?;
            let path = omemo_store_path(dir, me)?;
            let mut store =
                SqliteStore::open(&path).with_context(|| format!("OMEMO store of {me}"))?;
            let n = store.trust_fingerprint(&peer.to_string(), &key)?;
            if n == 0 {
                println!(
                    "omemo {peer} {}: trusted (no device with it seen yet; it will be trusted when it appears)",
                    key.fingerprint()
                );
            } else {
                println!(
                    "omemo {peer} {}: trusted ({n} device{})",
                    key.fingerprint(),
                    if n == 1 { "" } else { "s" }
                );
            }
            Ok(())
        }
        n => bail!("a fingerprint has 64 hex digits (OMEMO) or 40 (OpenPGP v4, OX), not {n}"),
    }
}

fn list(dir: &Path, me: &BareJid, peer: &BareJid) -> Result<()> {
    let mut any = false;
    let path = omemo_store_path(dir, me)?;
    if path.exists() {
        let store = SqliteStore::open(&path)?;
        for d in store.known_devices(&peer.to_string())? {
            any = true;
            println!(
                "omemo device {}  {}  {}",
                d.device_id,
                d.identity_key.fingerprint(),
                trust_word(d.trust)
            );
        }
    }
    if let Some(ox) = ox_store(dir, me)? {
        for k in ox.peer_keys(peer)? {
            any = true;
            println!("ox {}  trusted", k.fingerprint());
        }
        for k in ox.pending_keys(peer)? {
            any = true;
            println!(
                "ox {}  NOT trusted (new key; `jet keys trust {peer} {}` after comparing)",
                k.fingerprint(),
                k.fingerprint()
            );
        }
    }
    if !any {
        println!("no keys known for {peer}");
    }
    Ok(())
}
