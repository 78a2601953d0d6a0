//! The XMPP account side shared by `jet send`, `receive`, `serve`,
//! `request` and `disco`: options, the optional config file, the password,
//! the connection (with the features we advertise), the `-v` stanza log,
//! finding a peer's full JID and asking it what it supports.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use clap::{Args, ValueEnum};
use jet_ciphers::CipherRegistry;
use jet_core::channel::{iq, IqFilter, StanzaChannel};
use jet_core::cipher::CipherSuite;
use jet_core::envelope::EnvelopeBackend;
use jet_core::error::ChannelError;
use jet_core::jid::{BareJid, FullJid, Jid};
use jet_core::minidom::Element;
use jet_core::ns;
use jet_core::session::{CipherChoice, JetConfig, PeerUnfit};
use jet_core::transport::TransportAdapter;
use jet_core::xml::ElementExt;
use jet_core::xmpp::{XmppChannel, XmppConfig};
use jet_transports::{IbbConfig, IbbTransport, S5bConfig, S5bTransport};
use serde::Deserialize;
use tokio::sync::mpsc;

/// Which transports a session may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    /// SOCKS5 Bytestreams (direct, then proxy), falling back to IBB.
    Auto,
    /// SOCKS5 Bytestreams only (XEP-0260).
    S5b,
    /// In-Band Bytestreams only (XEP-0261).
    Ibb,
}

/// Which envelope carries the transport secret (XEP-0391 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeChoice {
    /// The XEP-0391 stub: the secret in base64, NO security (tests only).
    Stub,
    /// OMEMO 0.3 (XEP-0384, JET-OMEMO per XEP-0396): what deployed clients use.
    Omemo,
    /// OpenPGP for XMPP (XEP-0373), jet's JET-OX profile (docs/jet-ox.md).
    Ox,
}

impl EnvelopeChoice {
    /// The name the user types (`omemo`, `ox`, `stub`).
    pub fn name(self) -> &'static str {
        match self {
            EnvelopeChoice::Stub => "stub",
            EnvelopeChoice::Omemo => "omemo",
            EnvelopeChoice::Ox => "ox",
        }
    }

    /// The disco feature advertising this envelope.
    pub fn disco_feature(self) -> &'static str {
        match self {
            EnvelopeChoice::Stub => ns::JET_STUB_FEATURE,
            EnvelopeChoice::Omemo => ns::JET_OMEMO_FEATURE,
            EnvelopeChoice::Ox => ns::JET_OX_FEATURE,
        }
    }
}

/// Which OMEMO devices and OX keys we encrypt to and accept keys from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustChoice {
    /// Blind trust before verification (default): a contact's new OMEMO
    /// devices are used, their fingerprints shown, only while none of that
    /// contact's devices is verified with `jet keys trust`; after that a
    /// new device is refused until it is verified too. OX: a peer's first
    /// key is trusted on first use, a different key refused until
    /// `jet keys trust`.
    Btbv,
    /// Trust on first use: every new OMEMO device is used, also after
    /// another device of the contact was verified (fingerprint shown); a
    /// changed key is refused. OX as for btbv.
    Tofu,
    /// Only devices and keys marked with `jet keys trust PEER FINGERPRINT`.
    Manual,
}

/// Options every networked subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct AccountArgs {
    /// Our account (bare JID); or `account` in the config file.
    #[arg(long)]
    pub jid: Option<String>,
    /// Connect to HOST:PORT instead of looking up the JID's domain.
    #[arg(long, env = "JET_SERVER")]
    pub server: Option<String>,
    /// Trust only the CA certificates in this PEM file (else the system store).
    #[arg(long, env = "JET_CA")]
    pub ca: Option<PathBuf>,
    /// Read the password from this file (first line; only its owner may
    /// read it: chmod 600). Otherwise `JET_PASSWORD`, otherwise a prompt
    /// on the terminal. Never an argument.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Config file (default: $XDG_CONFIG_HOME/jet/config.toml or ~/.config/jet/config.toml).
    #[arg(long, env = "JET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Envelope carrying the transport secret (default: omemo to send;
    /// `receive` and `serve` accept omemo and ox unless this restricts
    /// them to one). `stub` gives NO security.
    #[arg(long, value_enum)]
    pub envelope: Option<EnvelopeChoice>,
    /// Which new OMEMO devices and OX keys to use (default: btbv).
    #[arg(long, value_enum)]
    pub trust: Option<TrustChoice>,
    /// Where the OMEMO and OX key stores live (default: the user data
    /// directory + /jet, as for `jet keys`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Transports to use.
    #[arg(long, value_enum)]
    pub transport: Option<TransportChoice>,
    /// Address for direct SOCKS5 candidates (XEP-0260). The default,
    /// 127.0.0.1, reaches only a peer on the same machine; a peer
    /// elsewhere then gets the data through the server's proxy
    /// (XEP-0065), or IBB. For direct transfers across a network give an
    /// address of this machine the peer can reach (e.g. --listen
    /// 192.0.2.10, as `ip -brief address` lists it); jet never picks one
    /// by itself, since a candidate tells the peer and the servers that
    /// address.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: std::net::IpAddr,
    /// Offer no direct SOCKS5 candidates (no listener): only the server's
    /// proxy (XEP-0065). The peer's own direct candidates are still tried.
    #[arg(long)]
    pub no_direct: bool,
    /// IBB block size in bytes.
    #[arg(long, default_value_t = 32 * 1024)]
    pub ibb_block: u16,
    /// How long to wait for the peer's presence (seconds).
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
    /// Log stanzas to stderr (secrets redacted).
    #[arg(short, long)]
    pub verbose: bool,
    /// One JSON object per event on stdout (started, first-byte with the
    /// session set-up time in ms, progress, done, error, ...).
    #[arg(long)]
    pub json: bool,
}

/// The config file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Our bare JID.
    pub account: Option<String>,
    /// HOST:PORT of the server.
    pub server: Option<String>,
    /// CA file.
    pub ca: Option<PathBuf>,
    /// Password file.
    pub password_file: Option<PathBuf>,
    /// Default envelope.
    pub envelope: Option<EnvelopeChoice>,
    /// Default OMEMO trust policy.
    pub trust: Option<TrustChoice>,
    /// Key store directory.
    pub data_dir: Option<PathBuf>,
    /// Default transport.
    pub transport: Option<TransportChoice>,
    /// Default cipher URN.
    pub cipher: Option<String>,
    /// Default download directory.
    pub dir: Option<PathBuf>,
}

fn default_config_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("jet/config.toml"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/jet/config.toml"))
}

/// Everything resolved: options over config file over defaults.
pub struct Account {
    /// Our bare JID.
    pub jid: BareJid,
    /// The options.
    pub args: AccountArgs,
    /// The config file's contents.
    pub file: FileConfig,
    /// The envelope.
    pub envelope: EnvelopeChoice,
    /// The transports.
    pub transport: TransportChoice,
    /// The OMEMO envelope, once set up (for per-peer compatibility).
    omemo: std::sync::OnceLock<Arc<OmemoBackend>>,
}

/// The OMEMO envelope the CLI uses.
type OmemoBackend = jet_envelopes::omemo::OmemoEnvelope<jet_envelopes::omemo::SqliteStore>;

impl Account {
    /// Resolves the options and the config file.
    pub fn resolve(args: &AccountArgs) -> Result<Self> {
        let file = match &args.config {
            Some(p) => load_config(p)?,
            None => match default_config_path() {
                Some(p) if p.exists() => load_config(&p)?,
                _ => FileConfig::default(),
            },
        };
        let jid = args
            .jid
            .clone()
            .or_else(|| file.account.clone())
            .ok_or_else(|| anyhow!("no account: give --jid or `account` in the config file"))?;
        let jid: BareJid = jid
            .parse()
            .map_err(|e| anyhow!("--jid {jid:?} is not a bare JID: {e}"))?;
        if args.listen.is_unspecified() {
            bail!(
                "--listen {} would accept SOCKS5 connections on every interface; give one address",
                args.listen
            );
        }
        let envelope = args
            .envelope
            .or(file.envelope)
            .unwrap_or(EnvelopeChoice::Omemo);
        let transport = args
            .transport
            .or(file.transport)
            .unwrap_or(TransportChoice::Auto);
        Ok(Account {
            jid,
            args: args.clone(),
            file,
            envelope,
            transport,
            omemo: std::sync::OnceLock::new(),
        })
    }

    /// The key store directory: `--data-dir`, the config's `data_dir`, else
    /// the user data directory + `/jet`.
    pub fn data_dir(&self) -> Result<PathBuf> {
        crate::cmd::keys::data_dir(
            self.args
                .data_dir
                .as_deref()
                .or(self.file.data_dir.as_deref()),
        )
    }

    /// The trust policy: `--trust`, the config's `trust`, else btbv.
    pub fn trust(&self) -> TrustChoice {
        self.args
            .trust
            .or(self.file.trust)
            .unwrap_or(TrustChoice::Btbv)
    }

    /// `jet keys trust` as the user must type it for this account (with
    /// `--data-dir` and `--jid` when they are not the defaults' only
    /// choice).
    fn keys_command_prefix(&self) -> String {
        let mut cmd = String::from("jet keys");
        if let Some(d) = self.args.data_dir.as_ref().or(self.file.data_dir.as_ref()) {
            cmd.push_str(&format!(
                " --data-dir {}",
                shell_word(&d.display().to_string())
            ));
        }
        cmd.push_str(&format!(" --jid {} trust", self.jid));
        cmd
    }

    /// The account's persistent record of used transport secrets
    /// (`used-secrets-<account>.sqlite` in [`Self::data_dir`]).
    pub fn used_secrets(&self) -> Result<Arc<dyn jet_core::replay::UsedSecrets>> {
        let path = crate::used::path(&self.data_dir()?, &self.jid);
        Ok(Arc::new(crate::used::SqliteUsedSecrets::open(&path)?))
    }

    /// Marks `peer` as Libervia for receiving: its nonce-reusing OMEMO form
    /// is accepted from it (never when we encrypt the file).
    pub fn accept_libervia_form_from(&self, peer: &FullJid) {
        if let Some(omemo) = self.omemo.get() {
            omemo.accept_libervia_form_from(peer.to_bare());
        }
    }

    /// The envelopes a responder opens: the chosen one, else (no
    /// `--envelope`, none in the config) OMEMO and OX, every envelope jet
    /// can open with a key of its own.
    pub fn responder_envelopes(&self) -> Vec<EnvelopeChoice> {
        if self.args.envelope.or(self.file.envelope).is_some() {
            vec![self.envelope]
        } else {
            vec![EnvelopeChoice::Omemo, EnvelopeChoice::Ox]
        }
    }

    /// The backend of the envelope `which` on a connected account. OMEMO
    /// and OX open (or create) the account's key store in
    /// [`Self::data_dir`] and publish our keys over PEP before any session
    /// starts; the stub is loud.
    pub async fn envelope_backend_of(
        &self,
        ch: &Arc<XmppChannel>,
        which: EnvelopeChoice,
    ) -> Result<Arc<dyn EnvelopeBackend>> {
        let pep: Arc<dyn StanzaChannel> = driver_channel(ch, self.args.verbose);
        match which {
            EnvelopeChoice::Stub => {
                eprintln!(
                    "jet: WARNING: --envelope stub sends the transport key in the clear: \
                     NO security, for tests only"
                );
                Ok(Arc::new(jet_envelopes::stub::StubEnvelope::new()))
            }
            EnvelopeChoice::Omemo => self.omemo(pep).await,
            EnvelopeChoice::Ox => self.ox(pep).await,
        }
    }

    async fn omemo(&self, pep: Arc<dyn StanzaChannel>) -> Result<Arc<dyn EnvelopeBackend>> {
        use jet_envelopes::omemo::{
            OmemoDirectory, OmemoEnvelope, OmemoStore, PepDirectory, SqliteStore, TrustEvent,
            TrustPolicy,
        };
        let dir = self.data_dir()?;
        let path = crate::cmd::keys::omemo_store_path(&dir, &self.jid)?;
        let (store, created) = SqliteStore::open_or_create(&path)
            .with_context(|| format!("opening the OMEMO store {}", path.display()))?;
        let fingerprint = store.identity_key_pair()?.public.fingerprint();
        let device = store.device_id();
        let directory: Arc<dyn OmemoDirectory> =
            Arc::new(PepDirectory::new(pep, Duration::from_secs(10)));
        let env = OmemoEnvelope::new(store, self.jid.clone(), directory);
        let policy = match self.trust() {
            TrustChoice::Manual => TrustPolicy::Manual,
            TrustChoice::Tofu => TrustPolicy::TrustOnFirstUse,
            TrustChoice::Btbv => TrustPolicy::BlindTrustBeforeVerification,
        };
        env.set_trust_policy(policy);
        let json = self.args.json;
        let me = self.keys_command_prefix();
        env.set_trust_observer(Some(Box::new(move |e: &TrustEvent| {
            let (address, fingerprint, accepted) = match e {
                TrustEvent::NewDevice {
                    address,
                    fingerprint,
                    accepted,
                } => (address, fingerprint, accepted),
                TrustEvent::NotUsed { address, reason } => {
                    return notice(
                        json,
                        serde_json::json!({"event": "new-device", "envelope": "omemo",
                            "device": address.to_string(), "accepted": false,
                            "known": true, "reason": reason}),
                        &format!("jet: not using {}", reason.replace("jet keys trust", &me)),
                    );
                }
                TrustEvent::NonceReusingForm { address } => {
                    return notice(
                        json,
                        serde_json::json!({"event": "warning", "envelope": "omemo",
                            "device": address.to_string(), "warning": "nonce-reusing-form"}),
                        &format!(
                            "jet: WARNING: {address} sent the transport secret in Libervia's \
                             form (the file is encrypted under its OMEMO message's own key \
                             and nonce): accepted, but weaker than XEP-0396's key transport; \
                             see docs/libervia.md"
                        ),
                    );
                }
            };
            let command = format!("{me} {} {}", address.jid, fingerprint.replace(' ', ""));
            let line = if *accepted {
                format!(
                    "jet: new OMEMO device {} of {}, fingerprint {fingerprint}: used \
                     (trusted until you verify one of {}'s devices); compare it with the \
                     one {} shows, then run `{command}`",
                    address.device_id, address.jid, address.jid, address.jid
                )
            } else {
                format!(
                    "jet: new OMEMO device {} of {}, fingerprint {fingerprint}: NOT used \
                     ({}); compare it with the one {} shows, then run `{command}`",
                    address.device_id,
                    address.jid,
                    match policy {
                        TrustPolicy::Manual => "--trust manual".to_string(),
                        _ => format!("another device of {} is verified", address.jid),
                    },
                    address.jid
                )
            };
            notice(
                json,
                serde_json::json!({"event": "new-device", "envelope": "omemo",
                    "device": address.to_string(), "fingerprint": fingerprint,
                    "accepted": accepted}),
                &line,
            );
        })));
        env.publish()
            .await
            .map_err(|e| anyhow!("publishing our OMEMO device and bundle over PEP: {e}"))?;
        // Our own fingerprint: when the device is new, or with -v (not
        // on every run; `jet keys show` has it).
        if !json && (created || self.args.verbose) {
            eprintln!(
                "jet: OMEMO device {device}{} · fingerprint {fingerprint}",
                if created {
                    " (new; `jet keys show --qr` shows it to scan)"
                } else {
                    ""
                }
            );
        }
        let env = Arc::new(env);
        let _ = self.omemo.set(env.clone());
        Ok(env)
    }

    async fn ox(&self, pep: Arc<dyn StanzaChannel>) -> Result<Arc<dyn EnvelopeBackend>> {
        use jet_envelopes::ox::{FileKeyStore, OxEnvelope, OxKeyEvent, OxKeyStore, OxTrustPolicy};
        let dir = crate::cmd::keys::ox_store_dir(&self.data_dir()?, &self.jid);
        let store: Arc<dyn OxKeyStore> = Arc::new(
            FileKeyStore::open(&dir)
                .with_context(|| format!("opening the OX key store {}", dir.display()))?,
        );
        let created = store.own_key(&self.jid)?.is_none();
        if created && !self.args.json {
            eprintln!("jet: generating an OpenPGP key for {} (OX)", self.jid);
        }
        let policy = match self.trust() {
            TrustChoice::Manual => OxTrustPolicy::Manual,
            TrustChoice::Btbv | TrustChoice::Tofu => OxTrustPolicy::PinFirstKey,
        };
        let json = self.args.json;
        let me = self.keys_command_prefix();
        let env = OxEnvelope::load_or_generate(&self.jid, store)?
            .with_channel(pep)
            .with_trust_policy(policy)
            .with_key_observer(Box::new(move |e: &OxKeyEvent| {
                let OxKeyEvent::NewKey {
                    jid,
                    fingerprint,
                    accepted,
                    pinned,
                } = e;
                let line = if *accepted {
                    format!(
                        "jet: first OX key of {jid}, fingerprint {fingerprint}: trusted on \
                         first use and pinned; compare it with the one {jid} shows"
                    )
                } else {
                    format!(
                        "jet: new OX key of {jid}, fingerprint {fingerprint}: NOT used ({}); \
                         if it is really {jid}'s, compare it with the one {jid} shows, then \
                         run `{me} {jid} {fingerprint}`",
                        if pinned.is_empty() {
                            "--trust manual".to_string()
                        } else {
                            format!("the pinned key is {}", pinned.join(", "))
                        }
                    )
                };
                notice(
                    json,
                    serde_json::json!({"event": "new-key", "envelope": "ox",
                        "peer": jid.to_string(), "fingerprint": fingerprint,
                        "accepted": accepted, "pinned": pinned}),
                    &line,
                );
            }));
        env.publish_own_key()
            .await
            .map_err(|e| anyhow!("publishing our OpenPGP key over PEP (XEP-0373 §4): {e}"))?;
        if !self.args.json && (created || self.args.verbose) {
            eprintln!("jet: OX key {}", env.own_key().fingerprint());
        }
        Ok(Arc::new(env))
    }

    /// Adapts what we send to `peer` to Libervia 0.9 (see
    /// [`is_libervia`]): the OMEMO envelope gets a blank payload so that
    /// Libervia keeps our IV. Nothing about the encryption changes.
    pub fn libervia_compat(&self, peer: &FullJid) {
        if let Some(omemo) = self.omemo.get() {
            omemo.send_libervia_compatible_to(peer.to_bare());
        }
        if self.args.json {
            println!(
                "{}",
                serde_json::json!({"event": "compat", "peer": peer.to_string(), "client": "Libervia"})
            );
        } else {
            eprintln!(
                "jet: {peer} is Libervia: sending its compatible forms (blank OMEMO payload, \
                 hex hash)"
            );
        }
    }

    /// The password: --password-file, JET_PASSWORD, or a terminal prompt.
    pub fn password(&self) -> Result<String> {
        if let Some(p) = self
            .args
            .password_file
            .as_ref()
            .or(self.file.password_file.as_ref())
        {
            return read_password_file(p);
        }
        if let Ok(p) = std::env::var("JET_PASSWORD") {
            return Ok(p);
        }
        prompt_password(&format!("Password for {}: ", self.jid))
    }

    /// The XMPP configuration advertising `features`.
    pub fn xmpp_config(&self, password: String, features: Vec<String>) -> XmppConfig {
        let mut c = XmppConfig::new(self.jid.clone(), password)
            .features(features)
            .caps_node("https://example.invalid/jet")
            .connect_timeout(Duration::from_secs(10));
        if let Some(s) = self.args.server.as_ref().or(self.file.server.as_ref()) {
            c = c.server(s.as_str());
        }
        if let Some(ca) = self.args.ca.as_ref().or(self.file.ca.as_ref()) {
            c = c.trust_ca_file(ca);
        }
        c
    }

    /// The transports, in preference order.
    pub fn transports(&self) -> Vec<Arc<dyn TransportAdapter>> {
        let s5b: Arc<dyn TransportAdapter> = Arc::new(S5bTransport::new(S5bConfig {
            direct_addresses: vec![self.args.listen],
            offer_direct: !self.args.no_direct,
            discover_proxy: true,
            ..S5bConfig::default()
        }));
        let ibb: Arc<dyn TransportAdapter> = Arc::new(IbbTransport::new(IbbConfig {
            block_size: self.args.ibb_block.max(1),
            ..IbbConfig::default()
        }));
        match self.transport {
            TransportChoice::Auto => vec![s5b, ibb],
            TransportChoice::S5b => vec![s5b],
            TransportChoice::Ibb => vec![ibb],
        }
    }

    /// The presence wait.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.args.wait.max(1))
    }
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Something the user must see: `line` on stderr, and `event` as a JSON
/// line on stdout under `--json`.
pub fn notice(json: bool, event: serde_json::Value, line: &str) {
    if json {
        println!("{event}");
    }
    crate::progress::eprint_line(line);
}

fn load_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing the config file {}", path.display()))
}

/// The first line of a password file, which only its owner may read or
/// write: a password file that the group or others can read (or replace)
/// is refused, as ssh refuses such a key.
fn read_password_file(p: &Path) -> Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p)
            .with_context(|| format!("reading the password file {}", p.display()))?
            .permissions()
            .mode();
        if mode & 0o066 != 0 {
            return Err(anyhow!(
                "the password file {} is accessible to others (mode {:03o}); \
                 refusing to use it: run chmod 600 {}",
                p.display(),
                mode & 0o777,
                p.display()
            ));
        }
    }
    let s = std::fs::read_to_string(p)
        .with_context(|| format!("reading the password file {}", p.display()))?;
    Ok(s.lines().next().unwrap_or_default().to_string())
}

/// Reads a password from the controlling terminal with echo off.
fn prompt_password(prompt: &str) -> Result<String> {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| {
            anyhow!("no password: set JET_PASSWORD, use --password-file, or run on a terminal")
        })?;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(
                tty.try_clone()
                    .map(std::process::Stdio::from)
                    .unwrap_or(std::process::Stdio::null()),
            )
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let mut out = tty.try_clone()?;
    write!(out, "{prompt}")?;
    out.flush()?;
    let echo_off = stty("-echo");
    let mut line = String::new();
    let read = std::io::BufReader::new(tty.try_clone()?).read_line(&mut line);
    if echo_off {
        stty("echo");
    }
    writeln!(out)?;
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

impl TransportChoice {
    /// The Jingle transport namespaces this choice uses, in preference order.
    pub fn namespaces(self) -> &'static [&'static str] {
        match self {
            TransportChoice::Auto => &[ns::JINGLE_S5B, ns::JINGLE_IBB],
            TransportChoice::S5b => &[ns::JINGLE_S5B],
            TransportChoice::Ibb => &[ns::JINGLE_IBB],
        }
    }
}

/// The transports of `choice` that the peer's disco#info lists, in our
/// order; an error that says what is missing when there are none (a peer
/// would only end such a session with `unsupported-transports`).
pub fn peer_transports(
    peer: &FullJid,
    features: &[String],
    choice: TransportChoice,
) -> Result<Vec<String>> {
    let usable: Vec<String> = choice
        .namespaces()
        .iter()
        .filter(|t| features.iter().any(|f| f == *t))
        .map(|t| t.to_string())
        .collect();
    if usable.is_empty() {
        let what = match choice {
            TransportChoice::Auto => "neither SOCKS5 Bytestreams nor In-Band Bytestreams",
            TransportChoice::S5b => "no SOCKS5 Bytestreams (try --transport ibb or auto)",
            TransportChoice::Ibb => "no In-Band Bytestreams (try --transport s5b or auto)",
        };
        bail!("{peer} supports {what} for Jingle, by its disco#info; no session started");
    }
    Ok(usable)
}

/// The disco features we advertise ([`jet_core::session::disco_features`]):
/// the transports of `transport` only (a peer must not offer one we would
/// refuse), the envelopes' features and every cipher URN of `suites`.
pub fn our_features(
    suites: &[&'static dyn CipherSuite],
    envelopes: &[&str],
    transport: TransportChoice,
) -> Vec<String> {
    jet_core::session::disco_features(suites, envelopes, transport.namespaces())
}

/// Connects the account; errors say which of password, server or
/// certificate is wrong (XmppError's variants).
pub async fn connect(account: &Account, features: Vec<String>) -> Result<Arc<XmppChannel>> {
    let password = account.password()?;
    let config = account.xmpp_config(password, features);
    let ch = XmppChannel::connect(config).await.map_err(|e| {
        anyhow!(
            "cannot log in as {}: {}",
            account.jid,
            explain_login(account, e)
        )
    })?;
    Ok(Arc::new(ch))
}

/// One line for a failed login that says what to do, without the debug
/// form of a library's error (DNS, certificate).
fn explain_login(account: &Account, e: jet_core::xmpp::XmppError) -> String {
    use jet_core::xmpp::XmppError;
    let server_given = account
        .args
        .server
        .as_ref()
        .or(account.file.server.as_ref())
        .is_some();
    match e {
        XmppError::Unreachable { server, source } if !server_given => {
            let dns = source.to_string();
            // tokio-xmpp's text is the debug form of its DNS error: only
            // its gist is said.
            let why = if dns.contains("NoRecordsFound") || dns.contains("NXDomain") {
                "the domain has no DNS records for an XMPP server"
            } else if dns.contains("efused") {
                "connection refused"
            } else {
                "the DNS lookup or the connection failed"
            };
            format!(
                "cannot find the XMPP server of {server} ({why}); give its address with \
                 --server HOST[:PORT] (or `server` in the config)"
            )
        }
        XmppError::Unreachable { server, source } => {
            let why = match source.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "no answer".to_string(),
                std::io::ErrorKind::NotFound => "no such host".to_string(),
                _ => first_line(&source.to_string()),
            };
            format!(
                "cannot reach the XMPP server {server} ({why}); check --server and that the \
                 server is running"
            )
        }
        XmppError::UntrustedCertificate { server, reason } => {
            let why = if reason.contains("UnknownIssuer") {
                "signed by a certificate authority this system does not trust"
            } else if reason.contains("NotValidForName") {
                "issued for another name"
            } else if reason.contains("Expired") {
                "expired"
            } else if reason.contains("NotValidYet") {
                "not valid yet"
            } else {
                "refused"
            };
            format!(
                "the TLS certificate of {server} is not trusted ({why}); if the server uses \
                 its own CA (a private or test server), give the CA certificate with --ca FILE \
                 (or `ca` in the config); jet never logs in over an untrusted connection"
            )
        }
        e => first_line(&e.to_string()),
    }
}

/// The first line of a message, without a trailing debug structure.
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Disconnects after the driver's last stanzas went out. The driver hands
/// its final `session-terminate` (or the answer to the peer's) to an outbox
/// task and returns; closing the stream before that task handed it to the
/// channel would drop it, and the peer would wait for its verdict in vain.
/// So: [`Driver::flush`](jet_core::driver::Driver::flush) (everything the engine produced is in the
/// channel's queue), then the channel's close, which writes that queue in
/// order before the goodbye and waits for the server's end of the stream
/// (bounded both).
pub async fn settle_and_disconnect(driver: &jet_core::driver::Driver, ch: &XmppChannel) {
    let _ = tokio::time::timeout(Duration::from_secs(3), driver.flush()).await;
    let _ = ch.disconnect().await;
}

/// The stanza channel the driver gets: the XMPP channel, with a redacting
/// log on stderr under `-v`.
pub fn driver_channel(ch: &Arc<XmppChannel>, verbose: bool) -> Arc<dyn StanzaChannel> {
    if verbose {
        Arc::new(Logged {
            inner: ch.clone(),
            ibb: Arc::new(AtomicU64::new(0)),
        })
    } else {
        ch.clone()
    }
}

/// Logs stanzas going through a channel, with key material redacted.
struct Logged {
    inner: Arc<XmppChannel>,
    ibb: Arc<AtomicU64>,
}

/// The stanza as text for the log: envelope payloads (the stub's key and
/// IV, OMEMO/OX ciphertext) become "[redacted]", IBB data is summarized.
pub fn redacted(stanza: &Element) -> String {
    fn walk(el: &mut Element) {
        let secret = matches!(el.name(), "payload" | "key" | "signcrypt" | "openpgp");
        let ibb = el.is("data", ns::IBB);
        let text = el.text();
        if (secret || ibb) && !text.trim().is_empty() {
            for node in el.nodes_mut() {
                if let jet_core::minidom::Node::Text(t) = node {
                    t.clear();
                }
            }
            el.append_text_node(if ibb {
                format!("[{} base64 chars]", text.len())
            } else {
                "[redacted]".to_string()
            });
        }
        for c in el.children_mut() {
            walk(c);
        }
    }
    let mut copy = stanza.clone();
    walk(&mut copy);
    copy.to_xml_string()
}

impl Logged {
    fn log(&self, dir: &str, stanza: &Element) {
        let is_ibb_data = stanza.children().any(|c| c.is("data", ns::IBB));
        let is_bare_result =
            stanza.attr("type") == Some("result") && stanza.children().next().is_none();
        if is_ibb_data || is_bare_result {
            let n = self.ibb.fetch_add(1, Ordering::Relaxed);
            if n >= 4 && !n.is_multiple_of(500) {
                return;
            }
        }
        crate::progress::eprint_line(&format!("{dir} {}", redacted(stanza)));
    }
}

#[async_trait]
impl StanzaChannel for Logged {
    fn local_jid(&self) -> FullJid {
        self.inner.local_jid()
    }
    async fn request(&self, iq: Element) -> Result<Element, ChannelError> {
        self.log("→", &iq);
        let r = self.inner.request(iq).await;
        match &r {
            Ok(a) => self.log("←", a),
            Err(e) => crate::progress::eprint_line(&format!("← (no answer: {e})")),
        }
        r
    }
    async fn send(&self, stanza: Element) -> Result<(), ChannelError> {
        self.log("→", &stanza);
        self.inner.send(stanza).await
    }
    fn subscribe(&self, filter: IqFilter) -> mpsc::UnboundedReceiver<Element> {
        let mut inner = self.inner.subscribe(filter);
        let (tx, rx) = mpsc::unbounded_channel();
        let me = Logged {
            inner: self.inner.clone(),
            ibb: self.ibb.clone(),
        };
        tokio::spawn(async move {
            while let Some(el) = inner.recv().await {
                me.log("←", &el);
                if tx.send(el).is_err() {
                    break;
                }
            }
        });
        rx
    }
}

/// Turns PEER (bare or full) into a full JID: a bare JID waits for the
/// peer's presence (which needs a presence subscription; we ask for one).
pub async fn resolve_peer(ch: &XmppChannel, peer: &str, wait: Duration) -> Result<FullJid> {
    let jid: Jid = peer
        .parse()
        .map_err(|e| anyhow!("{peer:?} is not a JID: {e}"))?;
    if jid.node().is_none() {
        // "romeo" parses as a server JID: say what was probably meant.
        let ours = ch.local_jid().to_bare();
        let domain = ours.domain();
        return Err(if jid.domain().as_str().contains('.') {
            anyhow!("{jid} is a server, not an account: give the peer as NAME@{jid}")
        } else {
            anyhow!(
                "{peer:?} has no domain: give the peer as {}@{domain} (or another NAME@DOMAIN)",
                jid.domain()
            )
        });
    }
    match jid.try_into_full() {
        Ok(full) => Ok(full),
        Err(bare) => {
            if !ch.available_resources(&bare).is_empty() {
                return ch
                    .wait_for_presence(&bare, wait)
                    .await
                    .map_err(|e| anyhow!("waiting for the presence of {bare}: {e}"));
            }
            // Harmless when already subscribed; needed the first time.
            ch.subscribe_to_presence(bare.clone())
                .await
                .map_err(|e| anyhow!("asking {bare} for its presence: {e}"))?;
            // What the server says about the account answers at once when
            // the domain or the account does not exist.
            let known = account_known(ch, &bare).await?;
            ch.wait_for_presence(&bare, wait)
                .await
                .map_err(|e| match e {
                    ChannelError::Timeout(_) => match known {
                        Some(true) => anyhow!(
                            "{bare} is offline (its account exists; no available resource \
                             within {}s)",
                            wait.as_secs()
                        ),
                        _ => anyhow!(
                            "{bare} is offline or does not share its presence with you (no \
                             available resource within {}s; the server does not tell whether \
                             the account exists). If it exists, it must accept your presence \
                             subscription: run `jet receive --from {}` there once",
                            wait.as_secs(),
                            ch.local_jid().to_bare()
                        ),
                    },
                    e => anyhow!("waiting for the presence of {bare}: {e}"),
                })
        }
    }
}

/// Asks the server about `bare` (disco#info to the bare JID, bounded):
/// `Some(true)` when it answered for the account, `None` when it will not
/// say (`service-unavailable`: no such account, or not subscribed), and an
/// error at once when the domain cannot be reached or the account does
/// not exist.
async fn account_known(ch: &XmppChannel, bare: &BareJid) -> Result<Option<bool>> {
    let query = Element::builder("query", ns::DISCO_INFO).build();
    let to: Jid = bare.clone().into();
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        StanzaChannel::request(ch, iq("get", "", None, &to, Some(query))),
    )
    .await;
    let domain = bare.domain();
    let ours = ch.local_jid().domain() == domain;
    match answer {
        Ok(Ok(_)) => Ok(Some(true)),
        Ok(Err(ChannelError::StanzaError {
            condition, text, ..
        })) => match condition.as_str() {
            "remote-server-not-found" => Err(anyhow!(
                "no such domain: {domain} (your server cannot find it: remote-server-not-found)"
            )),
            "remote-server-timeout" => Err(anyhow!(
                "{domain} cannot be reached: your server got no answer from it \
                 (remote-server-timeout)"
            )),
            "not-allowed" if !ours => Err(anyhow!(
                "{domain} cannot be reached: your server does not talk to other domains{}",
                text.map(|t| format!(" ({t})")).unwrap_or_default()
            )),
            "item-not-found" => Err(anyhow!(
                "no such account: {bare} (the server says item-not-found)"
            )),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// The peer's disco#info features (XEP-0030), bounded in time.
pub async fn peer_features(ch: &dyn StanzaChannel, peer: &FullJid) -> Result<Vec<String>> {
    Ok(peer_disco(ch, peer).await?.features)
}

/// What a peer's disco#info says.
pub struct PeerDisco {
    /// Its features.
    pub features: Vec<String>,
    /// The names of its identities (`Libervia`, `Dino`, ...).
    pub names: Vec<String>,
}

/// Whether the peer is Libervia (its disco identity's name), whose 0.9
/// receiver needs a blank OMEMO payload to keep our IV and reads hashes as
/// base64 of the hex digest.
pub fn is_libervia(disco: &PeerDisco) -> bool {
    disco.names.iter().any(|n| n == "Libervia")
}

/// Whether the peer is a jet (its disco identity's name, `jet` by
/// default): it needs no plaintext hash of a file (the cipher
/// authenticates it; a resumed file's comes as a `<checksum/>` after the
/// data), so the sender neither reads the file before offering it nor
/// shows the server a fingerprint of it.
pub fn is_jet(disco: &PeerDisco) -> bool {
    disco.names.iter().any(|n| n == "jet")
}

/// The peer's disco#info (XEP-0030), bounded in time.
pub async fn peer_disco(ch: &dyn StanzaChannel, peer: &FullJid) -> Result<PeerDisco> {
    let query = Element::builder("query", ns::DISCO_INFO).build();
    let to: Jid = peer.clone().into();
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        ch.request(iq("get", "", None, &to, Some(query))),
    )
    .await
    .map_err(|_| anyhow!("{peer} did not answer disco#info within 10s"))?
    .map_err(|e| anyhow!("disco#info of {peer} failed: {e}"))?;
    let q = answer
        .get_child("query", ns::DISCO_INFO)
        .ok_or_else(|| anyhow!("{peer} answered disco#info without a query"))?;
    Ok(PeerDisco {
        features: q
            .children()
            .filter(|c| c.name() == "feature")
            .filter_map(|c| c.attr("var").map(str::to_string))
            .collect(),
        names: q
            .children()
            .filter(|c| c.name() == "identity")
            .filter_map(|c| c.attr("name").map(str::to_string))
            .collect(),
    })
}

/// The suite `wanted` names: its URN (with or without `:0`), or a short
/// name: `aes-128-gcm`, `aes-256-gcm`, `chacha20` (or
/// `chacha20-poly1305`), `chunked`.
pub fn cipher_by_name(registry: &CipherRegistry, wanted: &str) -> Result<&'static dyn CipherSuite> {
    if let Some(s) = registry.get(wanted) {
        return Ok(s);
    }
    let urn = match wanted.trim().to_ascii_lowercase().as_str() {
        "aes-128-gcm" | "aes128gcm" | "aes128" => ns::CIPHER_AES_128_GCM,
        "aes-256-gcm" | "aes256gcm" | "aes256" => ns::CIPHER_AES_256_GCM,
        "chacha20" | "chacha20-poly1305" | "chacha" => ns::CIPHER_CHACHA20_POLY1305,
        "chunked" | "aes-256-gcm-chunked" => ns::CIPHER_AES_256_GCM_CHUNKED,
        _ => "",
    };
    registry.get(urn).ok_or_else(|| {
        let known: Vec<&str> = registry.iter().map(|s| s.urn()).collect();
        anyhow!(
            "unknown cipher {:?}; use aes-128-gcm, aes-256-gcm, chacha20 or chunked, \
             or one of {}",
            wanted.trim(),
            known.join(", ")
        )
    })
}

/// The short name [`cipher_by_name`] accepts for a cipher URN (with or
/// without `:0`), or `None` for another URN.
pub fn cipher_short_name(urn: &str) -> Option<&'static str> {
    [
        (ns::CIPHER_AES_128_GCM, "aes-128-gcm"),
        (ns::CIPHER_AES_256_GCM, "aes-256-gcm"),
        (ns::CIPHER_CHACHA20_POLY1305, "chacha20"),
        (ns::CIPHER_AES_256_GCM_CHUNKED, "chunked"),
    ]
    .into_iter()
    .find(|(u, _)| ns::same_cipher(u, urn))
    .map(|(_, name)| name)
}

/// Why a peer that does JET but cannot open our envelope (its `feature`
/// is not in the peer's disco#info) gets no session, with what either
/// side can do about it.
fn envelope_unfit(peer: &FullJid, features: &[String], feature: &str) -> anyhow::Error {
    use EnvelopeChoice as E;
    let has = |f: &str| features.iter().any(|x| x == f);
    let name: &str = match [E::Omemo, E::Ox, E::Stub]
        .into_iter()
        .find(|e| e.disco_feature() == feature)
    {
        Some(e) => e.name(),
        None => feature,
    };
    let theirs: Vec<&str> = [E::Omemo, E::Ox, E::Stub]
        .into_iter()
        .filter(|e| has(e.disco_feature()))
        .map(|e| e.name())
        .collect();
    let instead = match theirs.iter().find(|e| **e != "stub") {
        Some(e) => format!(
            "; it opens {}: send with --envelope {e}",
            theirs.join(" and ")
        ),
        None => String::new(),
    };
    anyhow!(
        "{peer} cannot open the {name} envelope (no {feature} in its disco#info){instead}, or have \
         the receiver run `jet receive` without --envelope (it opens omemo and ox) or with \
         --envelope {name}; no session started"
    )
}

/// Checks that the peer does JET with our first envelope and picks the
/// cipher ([`JetConfig::choose_cipher_as`]): `--cipher` (`wanted`, a name
/// [`cipher_by_name`] knows) if given, else a chunked suite the peer lists,
/// else the first of `jet`'s suites it lists, else AES-128-GCM under its
/// unversioned URN when the peer advertises JET but no cipher URNs (Dino,
/// Conversations). Refuses, never plaintext.
pub fn choose(
    peer: &FullJid,
    features: &[String],
    jet: &JetConfig,
    registry: &CipherRegistry,
    wanted: Option<&str>,
) -> Result<CipherChoice> {
    let wanted = wanted.map(|w| cipher_by_name(registry, w)).transpose()?;
    jet.choose_cipher_as(features, wanted).map_err(|e| match e {
        PeerUnfit::NoJet => {
            anyhow!("{peer} {e}; refusing to send anything (jet never falls back to plaintext)")
        }
        PeerUnfit::EnvelopeNotAdvertised { feature, .. } => envelope_unfit(peer, features, feature),
        e => anyhow!("{peer} {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> FullJid {
        "juliet@jet.test/x".parse().unwrap()
    }

    #[test]
    fn transports_follow_the_peer_and_what_we_advertise_is_what_we_accept() {
        let ibb_only = vec![ns::JET.to_string(), ns::JINGLE_IBB.to_string()];
        let both = vec![ns::JINGLE_S5B.to_string(), ns::JINGLE_IBB.to_string()];
        assert_eq!(
            peer_transports(&peer(), &ibb_only, TransportChoice::Auto).unwrap(),
            [ns::JINGLE_IBB]
        );
        assert_eq!(
            peer_transports(&peer(), &both, TransportChoice::Auto).unwrap(),
            [ns::JINGLE_S5B, ns::JINGLE_IBB]
        );
        let e = peer_transports(&peer(), &ibb_only, TransportChoice::S5b).unwrap_err();
        assert!(e.to_string().contains("--transport ibb"), "{e}");
        assert!(peer_transports(&peer(), &[], TransportChoice::Auto).is_err());

        let reg = CipherRegistry::default();
        let suites: Vec<_> = reg.iter().collect();
        let ibb = our_features(&suites, &[], TransportChoice::Ibb);
        assert!(ibb.iter().any(|f| f == ns::JINGLE_IBB));
        assert!(!ibb
            .iter()
            .any(|f| f == ns::JINGLE_S5B || f == ns::BYTESTREAMS));
        let s5b = our_features(&suites, &[], TransportChoice::S5b);
        assert!(s5b.iter().any(|f| f == ns::JINGLE_S5B));
        assert!(!s5b.iter().any(|f| f == ns::JINGLE_IBB || f == ns::IBB));
        let auto = our_features(&suites, &[], TransportChoice::Auto);
        for f in [ns::JINGLE_S5B, ns::JINGLE_IBB, ns::IBB, ns::BYTESTREAMS] {
            assert!(auto.iter().any(|x| x == f), "{f}");
        }
    }

    #[test]
    fn a_password_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("pw");
        std::fs::write(&p, "secret\nsecond line\n").unwrap();
        for mode in [0o644, 0o604, 0o640, 0o660, 0o602] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_password_file(&p).unwrap_err().to_string();
            assert!(
                e.contains("chmod 600") && e.contains("accessible to others"),
                "{mode:o}: {e}"
            );
            assert!(!e.contains("secret"), "{e}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_password_file(&p).unwrap(), "secret");
        }
    }

    #[test]
    fn short_cipher_names_are_accepted_everywhere_a_urn_is() {
        let reg = CipherRegistry::default();
        for (name, urn) in [
            ("aes-128-gcm", ns::CIPHER_AES_128_GCM),
            ("AES-256-GCM", ns::CIPHER_AES_256_GCM),
            ("chacha20", ns::CIPHER_CHACHA20_POLY1305),
            ("chunked", ns::CIPHER_AES_256_GCM_CHUNKED),
            (
                "urn:xmpp:ciphers:aes-128-gcm-nopadding",
                ns::CIPHER_AES_128_GCM,
            ),
            (
                ns::CIPHER_AES_256_GCM_CHUNKED,
                ns::CIPHER_AES_256_GCM_CHUNKED,
            ),
        ] {
            assert_eq!(cipher_by_name(&reg, name).unwrap().urn(), urn, "{name}");
        }
        let e = cipher_by_name(&reg, "rot13").unwrap_err().to_string();
        assert!(e.contains("chacha20") && e.contains("rot13"), "{e}");
    }

    #[test]
    fn choice_follows_the_peers_features() {
        let reg = CipherRegistry::default();
        let jet = JetConfig::new(
            reg.iter().collect(),
            vec![Arc::new(jet_envelopes::stub::StubEnvelope::new())],
        );
        let base = vec![ns::JET.to_string(), ns::JET_STUB_FEATURE.to_string()];
        // No JET: refused.
        let err = choose(&peer(), &base[1..], &jet, &reg, None).err().unwrap();
        assert!(err
            .to_string()
            .contains("does not support Jingle Encrypted"));
        // JET but not our envelope: refused.
        let err = choose(&peer(), &base[..1], &jet, &reg, None).err().unwrap();
        assert!(err.to_string().contains("envelope"));
        // JET without cipher URNs: AES-128-GCM, unversioned.
        let c = choose(&peer(), &base, &jet, &reg, None).unwrap();
        assert_eq!(c.suite.urn(), ns::CIPHER_AES_128_GCM);
        assert!(c.unversioned);
        // The first of ours the peer lists.
        let mut f = base.clone();
        f.push(ns::CIPHER_CHACHA20_POLY1305.into());
        f.push(ns::CIPHER_AES_256_GCM.into());
        let c = choose(&peer(), &f, &jet, &reg, None).unwrap();
        assert_eq!(c.suite.urn(), ns::CIPHER_AES_256_GCM);
        assert!(!c.unversioned);
        // --cipher the peer does not list: refused.
        assert!(choose(&peer(), &f, &jet, &reg, Some(ns::CIPHER_AES_128_GCM)).is_err());
        // Another jet (it lists every suite): the chunked one, unless
        // --cipher says otherwise (a short name).
        let all = our_features(
            &reg.iter().collect::<Vec<_>>(),
            &[ns::JET_STUB_FEATURE],
            TransportChoice::Auto,
        );
        let c = choose(&peer(), &all, &jet, &reg, None).unwrap();
        assert_eq!(c.suite.urn(), ns::CIPHER_AES_256_GCM_CHUNKED);
        let c = choose(&peer(), &all, &jet, &reg, Some("aes-128-gcm")).unwrap();
        assert_eq!(c.suite.urn(), ns::CIPHER_AES_128_GCM);
        assert!(choose(&peer(), &all, &jet, &reg, Some("rot13")).is_err());
    }

    #[test]
    fn the_log_redacts_the_stub_payload() {
        let secret =
            jet_core::secret::TransportSecret::new((0..32).collect(), (100..112).collect())
                .unwrap();
        let env = jet_envelopes::stub::StubEnvelope::envelope_for(&secret);
        let text = redacted(&env);
        assert!(text.contains("[redacted]"), "{text}");
        let b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(secret.to_bytes().as_slice())
        };
        assert!(!text.contains(&b64), "{text}");
    }
}

#[cfg(test)]
mod login_messages {
    use super::*;
    use jet_core::xmpp::XmppError;

    fn account(server: Option<&str>) -> Account {
        let mut args = vec!["x", "--jid", "romeo@jet.test"];
        if let Some(s) = server {
            args.extend(["--server", s]);
        }
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            a: AccountArgs,
        }
        let p = <P as clap::Parser>::parse_from(args);
        Account::resolve(&p.a).unwrap()
    }

    #[test]
    fn a_dns_failure_without_server_says_to_give_server() {
        let e = XmppError::Unreachable {
            server: "jet.test".into(),
            source: std::io::Error::other(
                "Dns(NoRecordsFound(NoRecords { query: Query { name: Name(\"jet.test.\") } }))",
            ),
        };
        let m = explain_login(&account(None), e);
        assert!(m.contains("--server HOST[:PORT]"), "{m}");
        assert!(m.contains("no DNS records"), "{m}");
        assert!(!m.contains("Dns(") && !m.contains("Query"), "{m}");
    }

    #[test]
    fn an_untrusted_certificate_suggests_ca() {
        let e = XmppError::UntrustedCertificate {
            server: "jet.test".into(),
            reason: "UnknownIssuer".into(),
        };
        let m = explain_login(&account(Some("127.0.0.1:5222")), e);
        assert!(m.contains("--ca FILE"), "{m}");
        assert!(!m.contains("UnknownIssuer"), "{m}");
    }

    #[test]
    fn a_refused_connection_names_the_server_and_what_to_check() {
        let e = XmppError::Unreachable {
            server: "127.0.0.1:1".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let m = explain_login(&account(Some("127.0.0.1:1")), e);
        assert!(
            m.contains("127.0.0.1:1 (connection refused)") && m.contains("--server"),
            "{m}"
        );
    }
}
