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
    Show {
        /// Also our OMEMO identity as an `xmpp:` URI
        /// (`xmpp:ME?omemo-sid-DEVICE=FINGERPRINT`, the form Conversations
        /// and Dino show and scan) and as a QR code on the terminal, for
        /// a phone to scan (docs/xmpp-uri.md).
        #[arg(long)]
        qr: bool,
    },
    /// Mark PEER's key with FINGERPRINT as verified: an OMEMO fingerprint
    /// (64 hex digits) or an OpenPGP (OX) v4 fingerprint (40 hex digits).
    /// Or, given an `xmpp:JID?omemo-sid-DEVICE=FINGERPRINT;...` URI alone
    /// (scanned from another client's QR code), mark the OMEMO devices it
    /// lists as verified, for that JID only; a fingerprint that differs
    /// from the key already seen for that device is refused.
    Trust {
        /// The peer's bare JID, or an `xmpp:` URI with OMEMO fingerprints.
        peer: String,
        /// The fingerprint as shown by the peer's client (spaces allowed);
        /// none with a URI.
        fingerprint: Option<String>,
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
        KeysCommand::Show { qr } => {
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
                let store = show(&dir, &me)?;
                if qr {
                    show_qr(&store, &me)?;
                }
            }
            Ok(())
        }
        KeysCommand::Trust { peer, fingerprint } => {
            let me = account(&dir, args.jid.as_deref())?;
            match fingerprint {
                Some(f) => trust(&dir, &me, &parse_jid(&peer)?, &f),
                None if peer.starts_with("xmpp:") => trust_uri(&dir, &me, &peer),
                None => bail!(
                    "give PEER and FINGERPRINT, or an xmpp: URI with omemo-sid-DEVICE=FINGERPRINT"
                ),
            }
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

/// Prints our OMEMO device and OX key; the OMEMO store, opened (or
/// created) for it, comes back.
fn show(dir: &Path, me: &BareJid) -> Result<SqliteStore> {
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
    Ok(store)
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

/// Our OMEMO identity as an `xmpp:` URI: our device and the other devices
/// of ours we verified (as Conversations lists them).
fn own_uri(store: &SqliteStore, me: &BareJid) -> Result<String> {
    let mut devices = vec![(store.device_id(), store.identity_key_pair()?.public)];
    for d in store.known_devices(&me.to_string())? {
        if d.trust == Trust::Trusted && d.device_id != store.device_id() {
            devices.push((d.device_id, d.identity_key));
        }
    }
    Ok(uri::omemo_uri(me, &devices))
}

/// `jet keys show --qr`: the URI as text, then as a QR code drawn with
/// half blocks, light modules as blocks (for light-on-dark terminals, as
/// `qrencode -t UTF8` draws them), with its quiet zone.
fn show_qr(store: &SqliteStore, me: &BareJid) -> Result<()> {
    let uri = own_uri(store, me)?;
    println!("  {uri}");
    println!("{}", qr_text(&uri)?);
    println!("  scan it with Conversations, Dino or another OMEMO client to verify this device");
    Ok(())
}

/// `text` as a QR code in Unicode half blocks (inverted: light modules
/// are drawn).
pub fn qr_text(text: &str) -> Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M)
        .map_err(|e| anyhow!("cannot make a QR code of {text:?}: {e}"))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// `jet keys trust xmpp:JID?omemo-sid-DEVICE=FINGERPRINT;...`.
fn trust_uri(dir: &Path, me: &BareJid, text: &str) -> Result<()> {
    let (peer, devices) = uri::parse_omemo_uri(text)?;
    let path = omemo_store_path(dir, me)?;
    let mut store = SqliteStore::open(&path).with_context(|| format!("OMEMO store of {me}"))?;
    let peer_s = peer.to_string();
    let known = store.known_devices(&peer_s)?;
    let own_device = store.device_id();
    let own_key = store.identity_key_pair()?.public;
    // Everything is checked before anything is trusted: one mismatch and
    // nothing changes.
    for (id, key) in &devices {
        let seen = if peer == *me && *id == own_device {
            Some(own_key)
        } else {
            known
                .iter()
                .find(|d| d.device_id == *id)
                .map(|d| d.identity_key)
        };
        if let Some(seen) = seen {
            if seen.as_bytes() != key.as_bytes() {
                bail!(
                    "REFUSED: the URI says device {id} of {peer} has the fingerprint {}, but the \
                     key seen for that device is {}. Someone may be impersonating {peer}, or the \
                     URI is old: nothing was trusted; ask {peer} to show its current code",
                    key.fingerprint(),
                    seen.fingerprint()
                );
            }
        }
    }
    for (id, key) in &devices {
        if peer == *me && *id == own_device {
            println!(
                "omemo {peer} device {id} {}: this device",
                key.fingerprint()
            );
            continue;
        }
        store.trust_fingerprint(&peer_s, key)?;
        let seen = known.iter().any(|d| d.device_id == *id);
        println!(
            "omemo {peer} device {id} {}: trusted{}",
            key.fingerprint(),
            if seen {
                ""
            } else {
                " (not seen yet: trusted when it appears with this key)"
            }
        );
    }
    Ok(())
}

/// `xmpp:` URIs with OMEMO fingerprints (RFC 5122 with the
/// `omemo-sid-DEVICE=FINGERPRINT` parameters Conversations and Dino use;
/// docs/xmpp-uri.md).
pub mod uri {
    use anyhow::{anyhow, bail, Result};
    use jet_core::jid::BareJid;
    use jet_envelopes::omemo::PublicKey;

    /// The parameter prefix, followed by the device id in decimal.
    const OMEMO_SID: &str = "omemo-sid-";

    /// `xmpp:JID?omemo-sid-ID=HEX;omemo-sid-ID=HEX`: the fingerprint in
    /// lowercase hex without the `05` type byte, parameters separated by
    /// `;`.
    pub fn omemo_uri(jid: &BareJid, devices: &[(u32, PublicKey)]) -> String {
        let params: Vec<String> = devices
            .iter()
            .map(|(id, key)| format!("{OMEMO_SID}{id}={}", hex::encode(key.as_bytes())))
            .collect();
        let mut uri = format!("xmpp:{}", encode(&jid.to_string()));
        if !params.is_empty() {
            uri.push('?');
            uri.push_str(&params.join(";"));
        }
        uri
    }

    /// The JID and the OMEMO devices of an `xmpp:` URI (other parameters
    /// are ignored; `&` is accepted as a separator too).
    pub fn parse_omemo_uri(text: &str) -> Result<(BareJid, Vec<(u32, PublicKey)>)> {
        let text = text.trim();
        let rest = text
            .strip_prefix("xmpp:")
            .ok_or_else(|| anyhow!("{text:?} is not an xmpp: URI"))?;
        if rest.starts_with("//") {
            bail!(
                "{text:?} names an account to act as (xmpp://...); give the contact's xmpp:JID URI"
            );
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = decode(path)?;
        let jid: BareJid = path
            .parse()
            .map_err(|e| anyhow!("the URI's JID {path:?} is not a bare JID: {e}"))?;
        let mut devices: Vec<(u32, PublicKey)> = Vec::new();
        for pair in query.split([';', '&']).filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let Some(id) = key
                .to_ascii_lowercase()
                .strip_prefix(OMEMO_SID)
                .map(str::to_string)
            else {
                continue;
            };
            let id: u32 = id
                .parse()
                .map_err(|_| anyhow!("{key:?}: the device id is not a number"))?;
            let value = decode(value)?;
            let key = PublicKey::from_fingerprint(&value)
                .map_err(|e| anyhow!("the fingerprint of device {id} ({value:?}): {e}"))?;
            if let Some((_, other)) = devices.iter().find(|(d, _)| *d == id) {
                if other.as_bytes() != key.as_bytes() {
                    bail!("the URI gives device {id} two different fingerprints");
                }
                continue;
            }
            devices.push((id, key));
        }
        if devices.is_empty() {
            bail!("the URI lists no OMEMO fingerprint (omemo-sid-DEVICE=FINGERPRINT)");
        }
        Ok((jid, devices))
    }

    /// Percent-encodes what RFC 5122 does not allow as is in a JID's
    /// place (and `%`, `?`, `;`, `&`, `#`).
    fn encode(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            let plain = b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'@'
                        | b'!'
                        | b'$'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b'='
                        | b':'
                        | b'/'
                );
            if plain {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    fn decode(s: &str) -> Result<String> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| anyhow!("bad percent escape in {s:?}"))?;
                out.push(hex);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).map_err(|_| anyhow!("{s:?} is not UTF-8 once decoded"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip_and_the_conversations_form() {
            let jid: BareJid = "jüliet@example.org".parse().unwrap();
            let key = PublicKey::from_fingerprint(&"ab".repeat(32)).unwrap();
            let uri = omemo_uri(&jid, &[(1234, key)]);
            assert_eq!(
                uri,
                format!(
                    "xmpp:j%C3%BCliet@example.org?omemo-sid-1234={}",
                    "ab".repeat(32)
                )
            );
            let (j, d) = parse_omemo_uri(&uri).unwrap();
            assert_eq!(j, jid);
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].0, 1234);
            assert_eq!(d[0].1.as_bytes(), key.as_bytes());
            // As Conversations writes several (`;`), with other parameters,
            // uppercase hex and the 05 type byte tolerated.
            let other = format!("{}{}", "05", "CD".repeat(32));
            let (_, d) = parse_omemo_uri(&format!(
                "xmpp:romeo@example.org?omemo-sid-1={};otr-fingerprint=x;omemo-sid-2={other}",
                "ab".repeat(32)
            ))
            .unwrap();
            assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2]);
            for bad in [
                "romeo@example.org",
                "xmpp:romeo@example.org",
                "xmpp:romeo@example.org?omemo-sid-x=00",
                "xmpp:romeo@example.org?omemo-sid-1=abcd",
                "xmpp://me@example.org/romeo@example.org?omemo-sid-1=00",
            ] {
                assert!(parse_omemo_uri(bad).is_err(), "{bad}");
            }
        }
    }
}
