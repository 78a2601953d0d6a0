//! `jet send`, `receive`, `serve`, `request` and `disco`: encrypted file
//! transfer (XEP-0391 over XEP-0234) between real XMPP accounts.
//!
//! The shape is the demo's (driver + cipher registry + envelope +
//! transports), with [`jet_core::xmpp::XmppChannel`] instead of the
//! in-memory router. The initiator asks the peer's disco#info first and
//! refuses peers without JET or without our envelope: no session starts,
//! nothing is ever sent in plaintext (XEP-0391 §7).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use jet_core::channel::StanzaChannel;
use jet_core::driver::{Driver, DriverConfig, Incoming};
use jet_core::envelope::EnvelopeBackend;
use jet_core::ft::{FileDesc, FileHash};
use jet_core::ft_app::{
    FileHost, FileOffer, FileReceiver, FileRequest, LocalFile, ProgressFn, ReceivePolicy,
};
use jet_core::jid::{FullJid, Jid};
use jet_core::session::{Acceptor, JetConfig};
use jet_core::transport::TransportAdapter;
use jet_core::xmpp::XmppChannel;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::account::{self, Account, AccountArgs};
use crate::cmd::summary::{transport_name, Summary, Used};
use crate::progress::Progress;
use crate::timing;

/// Test hook: cut every transport stream after this many bytes written
/// (simulates a broken connection; used by the resume tests).
const CUT_ENV: &str = "JET_TEST_CUT_AFTER";
/// Test hook: write to transport streams at most this many bytes per second
/// (the fault tests slow a transfer down to cut it midway).
const RATE_ENV: &str = "JET_TEST_RATE";
/// Test hook: after this many bytes written, transport writes hang without
/// closing anything (a stalled peer; the stall-timeout tests).
const STALL_ENV: &str = "JET_TEST_STALL_AFTER";

/// Limits of a responder (`receive`, `serve`).
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Sessions at once at most (offers waiting for an answer included);
    /// further offers are refused with `busy`.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions: u32,
    /// Sessions at once from one peer (bare JID) at most; further offers
    /// from it are refused with `busy`. Offers from peers that --from does
    /// not allow are declined before any limit counts them.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions_per_peer: u32,
    /// Abort a transfer when no data moves for this many seconds (0: never).
    #[arg(long, default_value_t = 60)]
    pub stall_timeout: u64,
}

impl LimitArgs {
    /// The driver's limits; offers from peers `allow` (or `yes`) does not
    /// admit are declined before the limits count them, with a line that
    /// says how to allow the peer, unless `ask`: then they go through
    /// (within the limits) to the question on the terminal.
    fn driver_config(&self, allow: &[Jid], yes: bool, ask: bool, json: bool) -> DriverConfig {
        let allow = allow.to_vec();
        DriverConfig {
            max_sessions: self.max_sessions as usize,
            max_sessions_per_peer: self.max_sessions_per_peer as usize,
            admit: Some(jet_core::driver::AdmitHook(Arc::new(move |peer| {
                if ask || allowed(peer, &allow, yes) {
                    return true;
                }
                account::notice(
                    json,
                    json!({"event": "declined", "peer": peer.to_string(), "reason": "not-allowed"}),
                    &format!(
                        "jet: declined an offer from {peer}: not accepted here \
                         (allow it with --from {} or --yes)",
                        peer.to_bare()
                    ),
                );
                false
            }))),
            stall_timeout: (self.stall_timeout > 0)
                .then(|| Duration::from_secs(self.stall_timeout)),
            ..DriverConfig::default()
        }
    }
}

/// Arguments of `jet send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// The receiver: a full JID, or a bare JID (its resource is found from presence).
    #[arg(long)]
    pub to: String,
    /// Cipher URN or short name (default: the chunked suite for a jet peer that lists it,
    /// else the first of ours it lists; AES-128-GCM for a peer that lists none).
    #[arg(long)]
    pub cipher: Option<String>,
    /// Seconds to wait after the last byte for the receiver's verdict (its
    /// `session-terminate`). A receiver that took every byte and never
    /// answers (Dino when its IBB receive failed) is reported after this.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub verdict_timeout: u64,
    /// Files to send, one session each.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Arguments of `jet receive`.
#[derive(Args, Debug)]
pub struct ReceiveArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// Directory for received files (default: the config's `dir`, else `.`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Accept offers from this JID (bare or full; repeatable). Others are declined.
    #[arg(long)]
    pub from: Vec<String>,
    /// Accept offers from anyone.
    #[arg(long)]
    pub yes: bool,
    /// On a terminal, an offer from a peer that neither --from nor --yes
    /// allows is asked about (`Accept NAME (SIZE) from PEER? [y/N]`); no
    /// answer within this many seconds declines it. 0: never ask, decline
    /// (as without a terminal).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub ask_timeout: u64,
    /// Stop after the first accepted session (exit status: its outcome).
    #[arg(long)]
    pub once: bool,
    /// Continue a partial file left by an interrupted transfer (asks the
    /// sender for the rest with `<range offset>`).
    #[arg(long)]
    pub resume: bool,
    /// When a file of the offered name exists, save under a free name
    /// (`report (1).pdf`, `report (2).pdf`, ...) instead of declining.
    /// Without it an offer of an existing name is declined (the sender is
    /// told why), or on a terminal asked about. Never overwrites.
    #[arg(long)]
    pub rename: bool,
    /// Give up after this many seconds without finishing (default: wait forever).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Refuse files larger than this (bytes, or with k/M/G: powers of 1024;
    /// default 64G). Also bounds what a sender may stream without
    /// announcing a size.
    #[arg(long, value_parser = crate::cmd::demo::parse_size)]
    pub max_size: Option<u64>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Arguments of `jet serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// Serve requests from this JID (repeatable). Others are declined.
    #[arg(long)]
    pub from: Vec<String>,
    /// Serve anyone.
    #[arg(long)]
    pub yes: bool,
    /// Stop after the first accepted session.
    #[arg(long)]
    pub once: bool,
    /// Give up after this many seconds (default: serve forever).
    #[arg(long)]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Files offered to requesters (by hash).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Arguments of `jet request`.
#[derive(Args, Debug)]
pub struct RequestArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// Who has the file (bare or full JID).
    #[arg(long)]
    pub from: String,
    /// The file's hash as ALGO:BASE64 (e.g. sha-256:47DEQpj8...).
    #[arg(long)]
    pub hash: String,
    /// Name to save it under (and to resume a partial file of that name).
    #[arg(long)]
    pub name: Option<String>,
    /// Directory to save into.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Cipher URN to use.
    #[arg(long)]
    pub cipher: Option<String>,
    /// Refuse the file if it is larger than this (bytes, or with k/M/G:
    /// powers of 1024; default 64G); also bounds what the host may stream
    /// without announcing a size.
    #[arg(long, value_parser = crate::cmd::demo::parse_size)]
    pub max_size: Option<u64>,
}

/// Arguments of `jet disco`.
#[derive(Args, Debug)]
pub struct DiscoArgs {
    #[command(flatten)]
    pub account: AccountArgs,
    /// The peer (bare or full JID).
    pub peer: String,
}

/// Event output: JSON lines on stdout (`--json`), else short human lines.
#[derive(Clone)]
struct Events {
    json: bool,
}

impl Events {
    fn emit(&self, value: serde_json::Value, human: impl FnOnce() -> Option<String>) {
        if self.json {
            println!("{value}");
        } else if let Some(line) = human() {
            println!("{line}");
        }
    }

    fn ready(&self, jid: &FullJid) {
        self.emit(json!({"event": "ready", "jid": jid.to_string()}), || {
            Some(format!("online as {jid}; waiting for offers"))
        });
    }

    fn started(&self, file: &str, size: Option<u64>, peer: &FullJid, role: &str) {
        self.emit(
            json!({"event": "started", "role": role, "file": file, "size": size, "peer": peer.to_string()}),
            || None,
        );
        if !self.json {
            eprintln!(
                "jet: {role} {file} ({} bytes) with {peer}",
                size.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
            );
        }
    }

    /// A finished file. `hash`: the file's hash when one was computed (a
    /// JET stream between jets needs none: its cipher authenticates every
    /// byte). `checked`: for a received file, whether the sender's hash was
    /// compared with it (`None` for a sent file). The human output is the
    /// file line on stdout and the summary line on stderr; the JSON `done`
    /// event carries the same numbers (`"hash": null` without one).
    fn done(&self, path: &str, hash: Option<&FileHash>, checked: Option<bool>, summary: &Summary) {
        let size = summary.size;
        let resumed_from = summary.resumed_from;
        let what = match checked {
            None => "sent",
            Some(true) => "authenticated, hash verified",
            Some(false) => "authenticated by the cipher; the sender gave no hash to compare",
        };
        let shown = hash
            .map(|h| format!("{}:{}", h.algo, h.value))
            .unwrap_or_else(|| "no-hash".into());
        let mut event = json!({"event": "done", "path": path, "size": size,
                   "hash": hash.map(|h| format!("{}:{}", h.algo, h.value)), "resumed_from": resumed_from,
                   "hash_checked": checked});
        if let (Some(e), serde_json::Value::Object(extra)) = (event.as_object_mut(), summary.json())
        {
            e.extend(extra);
        }
        self.emit(event, || {
            Some(format!("{path}\t{size} bytes\t{shown} ({what})"))
        });
        if !self.json {
            let verb = if checked.is_none() {
                "sent"
            } else {
                "received"
            };
            let name = std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.to_string());
            crate::progress::eprint_line(&format!("jet: {verb} {name}: {}", summary.line()));
        }
    }

    /// A received file saved under another name than the offered one.
    fn renamed(&self, f: &jet_core::ft_app::ReceivedFile, offered: &Option<String>) {
        let saved = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(offered) = offered.as_ref().filter(|o| **o != saved) {
            account::notice(
                self.json,
                json!({"event": "renamed", "file": offered, "saved_as": saved,
                       "path": f.path.display().to_string()}),
                &format!("jet: {offered} already exists here: saved as {saved}"),
            );
        }
    }

    /// A received file's sender checksums in algorithms jet cannot compute.
    fn unchecked(&self, f: &jet_core::ft_app::ReceivedFile) {
        for algo in &f.unchecked {
            account::notice(
                self.json,
                json!({"event": "unchecked-hash", "path": f.path.display().to_string(), "algo": algo}),
                &format!(
                    "jet: the sender's {algo} checksum of {} was not checked (jet does not compute {algo})",
                    f.path.display()
                ),
            );
        }
    }

    fn error(&self, reason: &str) {
        if self.json {
            println!("{}", json!({"event": "error", "reason": reason}));
        }
    }

    /// A progress callback: the bar on a TTY, and throttled JSON events;
    /// in JSON, also one `first-byte` event with the milliseconds from
    /// this call (just before the session starts) to the first data byte:
    /// the session set-up time.
    fn progress(&self, total: u64, label: &str) -> (Progress, ProgressFn) {
        let bar = Progress::new(total, label);
        let bar_cb = bar.callback();
        let json = self.json;
        let last = Mutex::new(Instant::now() - Duration::from_secs(1));
        let started = Instant::now();
        let first = std::sync::atomic::AtomicBool::new(true);
        let cb: ProgressFn = Arc::new(move |done, t| {
            bar_cb(done, t);
            if done > 0
                && first.load(std::sync::atomic::Ordering::Relaxed)
                && first.swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                timing::first_byte();
                if json {
                    println!(
                        "{}",
                        json!({"event": "first-byte", "ms": timing::ms(started.elapsed())})
                    );
                }
            }
            if json {
                let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
                if l.elapsed() >= Duration::from_millis(500) {
                    *l = Instant::now();
                    println!(
                        "{}",
                        json!({"event": "progress", "bytes": done, "total": t.or(Some(total))})
                    );
                }
            }
        });
        (bar, cb)
    }
}

/// Resolves when the process gets SIGINT or SIGTERM, with the signal's name.
/// The handlers are installed by the call, so call it before the work it
/// guards starts and poll it alongside ([`interruptible`]).
fn interrupted() -> Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    })
}

/// Runs `work` until it ends or a SIGINT/SIGTERM arrives. On a signal the
/// work is dropped: its sessions end with `cancel` (the peer sees it once
/// the caller flushes with [`account::settle_and_disconnect`]) and a partial
/// file keeps only its authenticated bytes (`jet_core::ft_fs`); the result
/// is a one-line error.
async fn interruptible<T>(
    signal: impl std::future::Future<Output = &'static str>,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        r = work => r,
        sig = signal => Err(anyhow!(
            "interrupted by {sig}: the session was cancelled; only authenticated data was kept"
        )),
    }
}

/// Runs `f`, reporting a failure as a JSON `error` event too.
async fn reported<F: std::future::Future<Output = Result<()>>>(json: bool, f: F) -> Result<()> {
    let r = f.await;
    if let Err(e) = &r {
        Events { json }.error(&format!("{e:#}"));
    }
    r
}

fn with_test_faults(
    transports: Vec<Arc<dyn TransportAdapter>>,
) -> Result<Vec<Arc<dyn TransportAdapter>>> {
    let hook = |name: &str| -> Result<Option<u64>> {
        match std::env::var(name) {
            Ok(v) => {
                let n = v
                    .parse()
                    .map_err(|_| anyhow!("{name}={v:?} is not a number"))?;
                eprintln!("jet: {name}={n} (test hook)");
                Ok(Some(n))
            }
            Err(_) => Ok(None),
        }
    };
    let faults = crate::cmd::hooks::Faults {
        cut_after: hook(CUT_ENV)?,
        stall_after: hook(STALL_ENV)?,
        rate: hook(RATE_ENV)?,
    };
    Ok(faults.wrap(transports))
}

/// A connected account with its driver.
struct Node {
    ch: Arc<XmppChannel>,
    driver: Driver,
    incoming: UnboundedReceiver<Incoming>,
    /// Which transport carried each session.
    used: Used,
}

/// Connects (advertising our envelope's feature) and sets the envelope up
/// on the connection: OMEMO and OX publish our keys over PEP first.
async fn connect_with_envelope(
    acc: &Account,
) -> Result<(Arc<XmppChannel>, Arc<dyn EnvelopeBackend>)> {
    let (ch, mut envelopes) = connect_with_envelopes(acc, &[acc.envelope]).await?;
    let envelope = envelopes.remove(0);
    Ok((ch, envelope))
}

/// [`connect_with_envelope`] for several envelopes (a responder opens
/// each of them), advertising each one's feature.
async fn connect_with_envelopes(
    acc: &Account,
    which: &[account::EnvelopeChoice],
) -> Result<(Arc<XmppChannel>, Vec<Arc<dyn EnvelopeBackend>>)> {
    let registry = crate::backends::registry();
    let suites: Vec<_> = registry.iter().collect();
    let features: Vec<&str> = which.iter().map(|e| e.disco_feature()).collect();
    let features = account::our_features(&suites, &features, acc.transport);
    let login = timing::Phase::start(acc.args.json, "login");
    let ch = account::connect(acc, features).await?;
    login.end();
    let keys = timing::Phase::start(acc.args.json, "keys");
    let mut envelopes: Vec<Arc<dyn EnvelopeBackend>> = Vec::new();
    for &e in which {
        match acc.envelope_backend_of(&ch, e).await {
            Ok(envelope) => envelopes.push(Arc::new(timing::TimedEnvelope(envelope))),
            Err(e) => {
                let _ = ch.disconnect().await;
                return Err(e);
            }
        }
    }
    keys.end();
    Ok((ch, envelopes))
}

/// Lets the last stanzas go out and disconnects (the `close` timing phase).
async fn close(json: bool, node: &Node) {
    let phase = timing::Phase::start(json, "close");
    account::settle_and_disconnect(&node.driver, &node.ch).await;
    phase.end();
}

fn start_driver(
    acc: &Account,
    ch: Arc<XmppChannel>,
    jet: JetConfig,
    config: DriverConfig,
) -> Result<Node> {
    let used = Used::default();
    let transports = used.wrap(with_test_faults(acc.transports())?);
    let json = acc.args.json;
    let refused = jet_core::driver::RefusedHook(Arc::new(move |peer, reason, text| {
        // Offers the engine refused before any application saw them.
        account::notice(
            json,
            json!({"event": "refused", "peer": peer.to_string(), "reason": reason, "text": text}),
            &format!("jet: refused an offer from {peer}: {reason}: {text}"),
        );
    }));
    let (driver, incoming) = Driver::start(
        account::driver_channel(&ch, acc.args.verbose),
        jet,
        transports,
        DriverConfig {
            on_refused: Some(refused),
            ..config
        },
    );
    Ok(Node {
        ch,
        driver,
        incoming,
        used,
    })
}

/// An initiator's connected account and what it chose for the peer.
struct Initiator {
    node: Node,
    peer: FullJid,
    /// The cipher, and whether its URN goes on the wire without `:0`
    /// (deployed clients, which advertise no cipher).
    choice: jet_core::session::CipherChoice,
    /// The peer is Libervia (its quirks apply).
    libervia: bool,
    /// The peer is a jet (its disco identity): it needs no hash of the
    /// file in the offer.
    jet_peer: bool,
    /// The transports both sides support, in our order.
    transports: Vec<String>,
}

impl Initiator {
    /// Offers `app` over the transports the peer supports; what its `run`
    /// returned once the session ended well.
    async fn initiate<A: jet_core::session::Initiator>(
        &self,
        app: Arc<A>,
    ) -> Result<A::Output, jet_core::Error> {
        self.node
            .driver
            .initiate_over(self.peer.clone(), app, Some(&self.transports))
            .await
    }

    /// `aes-128-gcm` for the summary line (the URN for another cipher).
    fn short_cipher(&self) -> String {
        let urn = self.choice.wire_urn();
        account::cipher_short_name(urn).unwrap_or(urn).to_string()
    }

    /// `AES-128-GCM (urn:...)` for the status line.
    fn cipher(&self) -> String {
        format!("{} ({})", self.choice.suite.name(), self.choice.wire_urn())
    }
}

/// Connects, finds the peer, checks its features, picks the cipher and the
/// transports and starts the driver as an initiator.
async fn initiator(
    acc: &Account,
    peer: &str,
    cipher: Option<&str>,
    config: DriverConfig,
) -> Result<Initiator> {
    let (ch, envelope) = connect_with_envelope(acc).await?;
    let result = async {
        let disco_phase = timing::Phase::start(acc.args.json, "disco");
        let peer = account::resolve_peer(&ch, peer, acc.wait()).await?;
        let dch = account::driver_channel(&ch, acc.args.verbose);
        let disco = account::peer_disco(dch.as_ref(), &peer).await?;
        disco_phase.end();
        let registry = crate::backends::registry();
        let ours = JetConfig::new(registry.iter().collect(), vec![envelope.clone()]);
        let choice = account::choose(&peer, &disco.features, &ours, &registry, cipher)?;
        let transports = account::peer_transports(&peer, &disco.features, acc.transport)?;
        let libervia = account::is_libervia(&disco);
        let jet_peer = account::is_jet(&disco);
        if libervia {
            acc.libervia_compat(&peer);
        }
        // The driver offers the chosen suite alone.
        let mut jet = ours.offering(&choice);
        jet.used_secrets = Some(acc.used_secrets()?);
        Ok::<_, anyhow::Error>((peer, jet, choice, libervia, jet_peer, transports))
    }
    .await;
    match result {
        Ok((peer, jet, choice, libervia, jet_peer, transports)) => Ok(Initiator {
            node: start_driver(acc, ch, jet, config)?,
            peer,
            choice,
            libervia,
            jet_peer,
            transports,
        }),
        Err(e) => {
            let _ = ch.disconnect().await;
            Err(e)
        }
    }
}

/// Connects and starts the driver as a responder accepting every suite.
async fn responder(acc: &Account, allow: &[Jid], config: DriverConfig) -> Result<Node> {
    let (ch, envelopes) = connect_with_envelopes(acc, &acc.responder_envelopes()).await?;
    let mut peers: Vec<String> = Vec::new();
    for j in allow {
        ch.allow_subscription(j.to_bare());
        let bare = j.to_bare().to_string();
        if !peers.contains(&bare) {
            peers.push(bare);
        }
    }
    if !peers.is_empty() {
        // The roster changes only with a line on screen.
        let list = peers.join(", ");
        account::notice(
            acc.args.json,
            json!({"event": "roster", "accept_subscription_from": peers}),
            &format!(
                "jet: presence subscription requests from {list} are accepted and returned \
                 (--from), so that a bare JID finds this client: they join your roster"
            ),
        );
    }
    let registry = crate::backends::registry();
    let mut jet = JetConfig::new(registry.iter().collect(), envelopes);
    jet.used_secrets = match acc.used_secrets() {
        Ok(r) => Some(r),
        Err(e) => {
            let _ = ch.disconnect().await;
            return Err(e);
        }
    };
    start_driver(acc, ch, jet, config)
}

/// Why the connection closed, for the user.
fn lost_connection(ch: &XmppChannel) -> anyhow::Error {
    match ch.close_reason() {
        Some(why) => anyhow!("the XMPP connection was lost: {why}"),
        None => anyhow!("the XMPP connection was lost"),
    }
}

fn session_error(peer: &FullJid, e: jet_core::Error, ch: &XmppChannel) -> anyhow::Error {
    match e {
        jet_core::Error::Channel(jet_core::error::ChannelError::Closed) => {
            lost_connection(ch).context(format!("the session with {peer} failed"))
        }
        jet_core::Error::Declined => anyhow!("{peer} declined the transfer"),
        jet_core::Error::Terminated { reason, text } if reason == "decline" => anyhow!(
            "{peer} declined the transfer{}",
            text.map(|t| format!(": {t}")).unwrap_or_default()
        ),
        e => anyhow!("the session with {peer} failed: {e}"),
    }
}

/// Reads and hashes a file to offer; a failure is one line that names the
/// file once (not the I/O error twice through its source chain).
async fn describe(f: &std::path::Path) -> Result<LocalFile> {
    LocalFile::describe(f).await.map_err(|e| file_error(f, e))
}

/// Describes a file to offer without reading it (its hash is computed
/// while it is sent, or by [`LocalFile::hash`] for a peer that needs it
/// in the offer).
async fn stat(f: &std::path::Path) -> Result<LocalFile> {
    LocalFile::stat(f).await.map_err(|e| file_error(f, e))
}

fn file_error(f: &std::path::Path, e: jet_core::Error) -> anyhow::Error {
    match e {
        jet_core::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::NotFound => anyhow!("{}: no such file", f.display()),
            std::io::ErrorKind::PermissionDenied => {
                anyhow!("{}: permission denied (cannot read it)", f.display())
            }
            _ => anyhow!("cannot read {}: {io}", f.display()),
        },
        jet_core::Error::Application(text) => anyhow!("{text}"),
        e => anyhow!("cannot read {}: {e}", f.display()),
    }
}

/// `jet send`.
pub async fn send(args: SendArgs) -> Result<()> {
    let json = args.account.json;
    reported(json, send_inner(args)).await
}

async fn send_inner(args: SendArgs) -> Result<()> {
    let acc = Account::resolve(&args.account)?;
    let events = Events {
        json: acc.args.json,
    };
    // Look at the files before connecting: a typo fails fast.
    let mut files = Vec::new();
    for f in &args.files {
        files.push(stat(f).await?);
    }
    let cipher = args.cipher.clone().or(acc.file.cipher.clone());
    let signal = interrupted()?;
    let config = DriverConfig {
        finish_timeout: Duration::from_secs(args.verdict_timeout.max(1)),
        ..DriverConfig::default()
    };
    let init = initiator(&acc, &args.to, cipher.as_deref(), config).await?;
    let peer = init.peer.clone();
    if !init.jet_peer {
        // Another client may need the hash in the offer (Libervia checks
        // it). A jet needs none: the cipher authenticates the file, and a
        // resumed file's checksum follows its data.
        let phase = timing::Phase::start(acc.args.json, "hash");
        for (local, path) in files.iter_mut().zip(&args.files) {
            if let Err(e) = local.hash().await {
                let _ = init.node.ch.disconnect().await;
                return Err(file_error(path, e));
            }
        }
        phase.end();
    }
    if !acc.args.json {
        let transports: Vec<&str> = init.transports.iter().map(|t| transport_name(t)).collect();
        eprintln!(
            "jet: to {peer} · cipher {} · envelope {} · transport {}",
            init.cipher(),
            acc.envelope.name(),
            transports.join(", then ")
        );
    }
    let sessions = async {
        let mut result = Ok(());
        for local in files {
            let name = local.desc.name.clone().unwrap_or_default();
            let size = local.desc.size.unwrap_or(0);
            events.started(&name, Some(size), &peer, "send");
            let (bar, cb) = events.progress(size, &name);
            let mut offered = local.clone();
            if init.libervia {
                // Libervia 0.9 reads <hash> as base64 of the hex digest.
                for h in offered.desc.hashes.iter_mut() {
                    *h = h.to_hex_in_base64()?;
                }
            }
            let offer = Arc::new(FileOffer::new(offered, Some(cb)));
            let started = Instant::now();
            let clock = timing::SessionClock::start(events.json);
            let r = init.initiate(offer.clone()).await;
            clock.end();
            bar.finish();
            // The file's own hash (not Libervia's form of it), from the
            // offer or computed while sending.
            let hash = local.desc.best_hash().cloned().or_else(|| offer.hash());
            match r {
                Ok(_sent) => events.done(
                    &local.path.display().to_string(),
                    hash.as_ref(),
                    None,
                    &Summary {
                        size,
                        resumed_from: 0,
                        elapsed: started.elapsed(),
                        transport: init.node.used.by_peer(&peer),
                        cipher: init.short_cipher(),
                    },
                ),
                Err(e) => {
                    result = Err(session_error(&peer, e, &init.node.ch));
                    break;
                }
            }
        }
        result
    };
    let result = interruptible(signal, sessions).await;
    close(acc.args.json, &init.node).await;
    result
}

fn parse_allow(list: &[String]) -> Result<Vec<Jid>> {
    list.iter()
        .map(|s| {
            s.parse()
                .map_err(|e| anyhow!("--from {s:?} is not a JID: {e}"))
        })
        .collect()
}

fn allowed(peer: &FullJid, allow: &[Jid], yes: bool) -> bool {
    yes || allow.iter().any(|j| match j.try_as_full() {
        Ok(full) => full == peer,
        Err(bare) => *bare == peer.to_bare(),
    })
}

async fn next_incoming(
    node: &mut Node,
    deadline: Option<tokio::time::Instant>,
) -> Result<Incoming> {
    let next = node.incoming.recv();
    let got = match deadline {
        Some(d) => tokio::time::timeout_at(d, next)
            .await
            .map_err(|_| anyhow!("no transfer finished before --timeout"))?,
        None => next.await,
    };
    got.ok_or_else(|| lost_connection(&node.ch))
}

fn offered_desc(inc: &Incoming) -> Option<FileDesc> {
    inc.contents
        .first()
        .and_then(|c| c.description.as_ref())
        .and_then(|d| FileDesc::from_description(d).ok())
}

/// When the offer's (sanitized) file name is taken where `receiver` saves:
/// that name and the free one it would save under (`None` when none is).
fn taken_name(receiver: &FileReceiver, inc: &Incoming) -> Option<(String, Option<String>)> {
    let description = inc.contents.first()?.description.as_ref()?;
    receiver.name_taken(description)
}

/// Whether the offer's envelope is an OMEMO message with a non-blank
/// `<payload>` (Libervia's or Smack's form, not XEP-0396's key transport).
fn carries_omemo_payload(inc: &Incoming) -> bool {
    inc.contents
        .iter()
        .filter_map(|c| c.security.as_ref())
        .filter_map(|s| s.envelope.get_child("payload", jet_core::ns::OMEMO_LEGACY))
        .any(|p| !p.text().trim().is_empty())
}

/// The short name of the offer's cipher (its URN when not ours).
fn offered_cipher(inc: &Incoming) -> String {
    let urn = inc
        .contents
        .iter()
        .find_map(|c| c.security.as_ref())
        .map(|s| s.cipher.clone())
        .unwrap_or_default();
    account::cipher_short_name(&urn)
        .map(str::to_string)
        .unwrap_or(urn)
}

/// What a responder knows about a finished session.
struct Session {
    /// The file name the peer offered (sanitized), if any.
    offered: Option<String>,
    elapsed: Duration,
    transport: Option<&'static str>,
    cipher: String,
}

impl Session {
    fn summary(&self, size: u64, resumed_from: u64) -> Summary {
        Summary {
            size,
            resumed_from,
            elapsed: self.elapsed,
            transport: self.transport,
            cipher: self.cipher.clone(),
        }
    }
}

/// Whom a responder accepts, and for how long it runs.
#[derive(Clone, Copy)]
struct Gate<'a> {
    acc: &'a Account,
    allow: &'a [Jid],
    yes: bool,
    once: bool,
    deadline: Option<tokio::time::Instant>,
    /// Ask on the terminal about offers `allow`/`yes` do not cover
    /// (`None`: decline them).
    ask: Option<&'a Asker>,
    /// How received files are saved (`receive`; its directory and policy):
    /// an offer of a name taken there is asked about on the terminal (save
    /// under a free name?).
    saving: Option<&'a FileReceiver>,
    /// Save under a free name when the offered one is taken (`--rename`).
    rename: bool,
}

/// Questions on the terminal: one thread reads stdin's lines for the whole
/// run, so that a question that timed out leaves no read behind that would
/// swallow the next answer.
struct Asker {
    lines: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
    timeout: Duration,
}

impl Asker {
    /// Whether to ask: stdin is a terminal and `timeout` is not zero.
    fn wanted(timeout: u64) -> bool {
        use std::io::IsTerminal;
        timeout != 0 && std::io::stdin().is_terminal()
    }

    /// An asker when [`wanted`](Self::wanted). Start it after the login:
    /// its thread reads stdin from then on (a password prompt must not
    /// race it).
    fn on_terminal(timeout: u64) -> Option<Asker> {
        if !Self::wanted(timeout) {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Some(Asker {
            lines: tokio::sync::Mutex::new(rx),
            timeout: Duration::from_secs(timeout),
        })
    }

    /// Asks `question [y/N]`; true only for an answer starting with `y`
    /// within the timeout. Lines typed before the question do not count.
    async fn ask(&self, question: &str) -> Answer {
        let mut lines = self.lines.lock().await;
        while lines.try_recv().is_ok() {}
        eprint!("{question} [y/N] ");
        let got = tokio::time::timeout(self.timeout, lines.recv()).await;
        match got {
            Ok(Some(l)) => {
                let l = l.trim().to_ascii_lowercase();
                if l == "y" || l == "yes" {
                    Answer::Yes
                } else {
                    Answer::No
                }
            }
            Ok(None) => {
                eprintln!();
                Answer::No
            }
            Err(_) => {
                eprintln!();
                Answer::TimedOut
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
    TimedOut,
}

/// Runs a responder loop: declines who is not allowed, accepts the rest
/// with the application `make` builds. Returns after the first accepted
/// session with `--once`, else on the deadline.
async fn serve_loop<A: Acceptor>(
    node: &mut Node,
    gate: Gate<'_>,
    events: &Events,
    mut make: impl FnMut(&Incoming, bool) -> (Arc<A>, Option<Progress>),
    mut finished: impl FnMut(A::Output, &Events, &Session),
) -> Result<()> {
    loop {
        let Gate {
            acc,
            allow,
            yes,
            once,
            deadline,
            ask,
            saving,
            rename,
        } = gate;
        let inc = next_incoming(node, deadline).await?;
        let peer = inc.peer.clone();
        let name = offered_desc(&inc)
            .and_then(|d| d.name)
            .unwrap_or_else(|| "(unnamed)".into());
        let size = offered_desc(&inc).and_then(|d| d.size);
        if !allowed(&peer, allow, yes) {
            let answer = match ask {
                Some(asker) => {
                    let size_text = size
                        .map(|s| indicatif::HumanBytes(s).to_string())
                        .unwrap_or_else(|| "size unknown".into());
                    if events.json {
                        println!(
                            "{}",
                            json!({"event": "ask", "peer": peer.to_string(), "file": name, "size": size})
                        );
                    }
                    asker
                        .ask(&format!("Accept {name} ({size_text}) from {peer}?"))
                        .await
                }
                None => Answer::No,
            };
            if answer != Answer::Yes {
                let (reason, why) = match (ask, answer) {
                    (None, _) => (
                        "not-allowed",
                        format!(
                            "not accepted here (allow it with --from {} or --yes)",
                            peer.to_bare()
                        ),
                    ),
                    (Some(a), Answer::TimedOut) => (
                        "no-answer",
                        format!("no answer within {}s (--ask-timeout)", a.timeout.as_secs()),
                    ),
                    _ => ("answered-no", "you answered no".to_string()),
                };
                account::notice(
                    events.json,
                    json!({"event": "declined", "peer": peer.to_string(), "file": name, "reason": reason}),
                    &format!("jet: declined {name} from {peer}: {why}"),
                );
                let _ = inc.decline().await;
                continue;
            }
        }
        // A name taken here: on a terminal, the question whether to save it
        // under a free name; else the receiver declines it (with why).
        let mut rename = rename;
        if let (Some(saving), Some(asker), false) = (saving, ask, rename) {
            if let Some(free) = taken_name(saving, &inc) {
                let (safe, free) = free;
                let answer = match &free {
                    Some(free) => {
                        if events.json {
                            println!(
                                "{}",
                                json!({"event": "ask-rename", "peer": peer.to_string(), "file": safe, "free": free})
                            );
                        }
                        asker
                            .ask(&format!(
                                // `in/`, not "exists in in."
                                "{safe} from {peer} already exists in {}. Save it as {free}?",
                                saving.dir().join("").display()
                            ))
                            .await
                    }
                    None => Answer::No,
                };
                if answer != Answer::Yes {
                    account::notice(
                        events.json,
                        json!({"event": "declined", "peer": peer.to_string(), "file": safe, "reason": "exists"}),
                        &format!(
                            "jet: declined {safe} from {peer}: it already exists here (--rename saves under a free name)"
                        ),
                    );
                    let _ = inc
                        .decline_because(jet_core::ft_app::name_taken_text(&safe))
                        .await;
                    continue;
                }
                rename = true;
            }
        }
        events.started(&name, size, &peer, "receive");
        if carries_omemo_payload(&inc) {
            // Libervia's JET sender puts its secret in an OMEMO message
            // with a payload (reusing that message's key and nonce): taken
            // only from a peer whose disco identity says Libervia.
            if let Ok(disco) = account::peer_disco(node.ch.as_ref(), &peer).await {
                if account::is_libervia(&disco) {
                    acc.accept_libervia_form_from(&peer);
                }
            }
        }
        let (app, bar) = make(&inc, rename);
        let sid = inc.sid.clone();
        let offered = offered_desc(&inc)
            .and_then(|d| d.name)
            .and_then(|n| jet_core::ft::sanitize_file_name(&n).ok());
        let cipher = offered_cipher(&inc);
        let started = Instant::now();
        let clock = timing::SessionClock::start(events.json);
        let r = inc.accept(app).await;
        clock.end();
        if let Some(b) = bar {
            b.finish();
        }
        match r {
            Ok(output) => finished(
                output,
                events,
                &Session {
                    offered,
                    elapsed: started.elapsed(),
                    transport: node.used.by_sid(&sid),
                    cipher,
                },
            ),
            Err(e) => {
                let ours = matches!(e, jet_core::Error::Refused { .. });
                let e = match e {
                    // Our own decision (size limit, existing file): not
                    // "the peer declined".
                    jet_core::Error::Refused { text, .. } => {
                        let hint = if text
                            .as_deref()
                            .is_some_and(|t| t.ends_with(jet_core::ft_app::NAME_TAKEN))
                        {
                            " (--rename saves under a free name)"
                        } else {
                            ""
                        };
                        anyhow!(
                            "declined the offer from {peer}{}{hint}",
                            text.map(|t| format!(": {t}")).unwrap_or_default()
                        )
                    }
                    e => session_error(&peer, e, &node.ch),
                };
                if once && !ours {
                    return Err(e);
                }
                eprintln!("jet: {e:#}");
                events.error(&format!("{e:#}"));
                if ours {
                    // --once means the first *accepted* session.
                    continue;
                }
            }
        }
        if once {
            return Ok(());
        }
    }
}

/// The directory received files go to: `chosen` (`--dir`, the config's
/// `dir`), created if needed; else the current directory, which is then
/// said (a `dir` event in JSON), and called the home directory when it is
/// `$HOME`, so that files never land there silently.
fn receive_dir(chosen: Option<&PathBuf>, json: bool) -> Result<PathBuf> {
    if let Some(dir) = chosen {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        return Ok(dir.clone());
    }
    let cwd = std::env::current_dir().context("finding the current directory")?;
    let home = std::env::var_os("HOME")
        .and_then(|h| std::fs::canonicalize(h).ok())
        .is_some_and(|h| std::fs::canonicalize(&cwd).is_ok_and(|c| c == h));
    let what = if home {
        "your home directory"
    } else {
        "the current directory"
    };
    account::notice(
        json,
        json!({"event": "dir", "path": cwd.display().to_string(), "default": true, "home": home}),
        &format!(
            "jet: received files go to {} ({what}; choose another with --dir or `dir` in the config)",
            cwd.display()
        ),
    );
    Ok(PathBuf::from("."))
}

/// `jet receive`.
pub async fn receive(args: ReceiveArgs) -> Result<()> {
    let json = args.account.json;
    reported(json, receive_inner(args)).await
}

async fn receive_inner(args: ReceiveArgs) -> Result<()> {
    let acc = Account::resolve(&args.account)?;
    let events = Events {
        json: acc.args.json,
    };
    let dir = receive_dir(args.dir.as_ref().or(acc.file.dir.as_ref()), acc.args.json)?;
    let allow = parse_allow(&args.from)?;
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let signal = interrupted()?;
    let ask = Asker::wanted(args.ask_timeout);
    let mut node = responder(
        &acc,
        &allow,
        args.limits
            .driver_config(&allow, args.yes, ask, acc.args.json),
    )
    .await?;
    let asker = Asker::on_terminal(args.ask_timeout);
    events.ready(&node.ch.local_jid());
    let defaults = ReceivePolicy::default();
    let policy = ReceivePolicy {
        resume: args.resume,
        max_size: args.max_size.unwrap_or(defaults.max_size),
    };
    let saving = FileReceiver::new(dir.clone(), policy.clone(), None);
    let work = serve_loop(
        &mut node,
        Gate {
            acc: &acc,
            allow: &allow,
            yes: args.yes,
            once: args.once,
            deadline,
            ask: asker.as_ref(),
            saving: Some(&saving),
            rename: args.rename,
        },
        &events,
        |inc, rename| {
            let size = offered_desc(inc).and_then(|d| d.size).unwrap_or(0);
            let (bar, cb) = events.progress(size, "receiving");
            (
                Arc::new(FileReceiver::new(dir.clone(), policy.clone(), Some(cb)).renaming(rename)),
                Some(bar),
            )
        },
        |f, ev, session| {
            ev.renamed(&f, &session.offered);
            ev.unchecked(&f);
            ev.done(
                &f.path.display().to_string(),
                f.hash.as_ref(),
                Some(f.hash_checked),
                &session.summary(f.size, f.resumed_from),
            );
        },
    );
    let r = interruptible(signal, work).await;
    close(acc.args.json, &node).await;
    r
}

/// `jet serve`.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let json = args.account.json;
    reported(json, serve_inner(args)).await
}

async fn serve_inner(args: ServeArgs) -> Result<()> {
    let acc = Account::resolve(&args.account)?;
    let events = Events {
        json: acc.args.json,
    };
    let mut files = Vec::new();
    for f in &args.files {
        let local = describe(f).await?;
        let h = &local.desc.hashes[0];
        eprintln!("jet: serving {} as {}:{}", f.display(), h.algo, h.value);
        files.push(local);
    }
    let allow = parse_allow(&args.from)?;
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let signal = interrupted()?;
    let mut node = responder(
        &acc,
        &allow,
        args.limits
            .driver_config(&allow, args.yes, false, acc.args.json),
    )
    .await?;
    events.ready(&node.ch.local_jid());
    let work = serve_loop(
        &mut node,
        Gate {
            acc: &acc,
            allow: &allow,
            yes: args.yes,
            once: args.once,
            deadline,
            ask: None,
            saving: None,
            rename: false,
        },
        &events,
        |_, _| {
            let host = FileHost::new(files.clone(), Some(timing::first_byte_marker()));
            (Arc::new(host), None)
        },
        |_sent, ev, _| {
            ev.emit(json!({"event": "served"}), || Some("served".into()));
        },
    );
    let r = interruptible(signal, work).await;
    close(acc.args.json, &node).await;
    r
}

/// `jet request`.
pub async fn request(args: RequestArgs) -> Result<()> {
    let json = args.account.json;
    reported(json, request_inner(args)).await
}

async fn request_inner(args: RequestArgs) -> Result<()> {
    let acc = Account::resolve(&args.account)?;
    let events = Events {
        json: acc.args.json,
    };
    let hash = FileHash::parse_cli(&args.hash).map_err(|e| anyhow!("--hash: {e}"))?;
    let dir = receive_dir(args.dir.as_ref().or(acc.file.dir.as_ref()), acc.args.json)?;
    let cipher = args.cipher.clone().or(acc.file.cipher.clone());
    let signal = interrupted()?;
    let init = initiator(&acc, &args.from, cipher.as_deref(), DriverConfig::default()).await?;
    let peer = init.peer.clone();
    if !acc.args.json {
        eprintln!(
            "jet: requesting {}:{} from {peer} · cipher {}",
            hash.algo,
            hash.value,
            init.cipher()
        );
    }
    let (bar, cb) = events.progress(0, "requesting");
    // `{e}`, not the error chain: jet_core's I/O error already shows its source.
    let mut req =
        FileRequest::new(dir, hash, args.name.clone(), Some(cb)).map_err(|e| anyhow!("{e}"))?;
    if let Some(limit) = args.max_size {
        req = req.with_max_size(limit);
    }
    let req = Arc::new(req);
    events.started(
        args.name.as_deref().unwrap_or("(by hash)"),
        None,
        &peer,
        "request",
    );
    let started = Instant::now();
    let clock = timing::SessionClock::start(events.json);
    let r = interruptible(signal, async {
        init.initiate(req)
            .await
            .map_err(|e| session_error(&peer, e, &init.node.ch))
    })
    .await;
    clock.end();
    bar.finish();
    close(acc.args.json, &init.node).await;
    let got = r?;
    events.unchecked(&got);
    events.done(
        &got.path.display().to_string(),
        got.hash.as_ref(),
        Some(got.hash_checked),
        &Summary {
            size: got.size,
            resumed_from: got.resumed_from,
            elapsed: started.elapsed(),
            transport: init.node.used.by_peer(&peer),
            cipher: init.short_cipher(),
        },
    );
    Ok(())
}

/// `jet disco`.
pub async fn disco(args: DiscoArgs) -> Result<()> {
    let json = args.account.json;
    reported(json, disco_inner(args)).await
}

async fn disco_inner(args: DiscoArgs) -> Result<()> {
    use jet_core::ns;
    let acc = Account::resolve(&args.account)?;
    // disco needs no envelope of its own (no keys are touched); it
    // advertises the envelope's feature only when one was asked for.
    let envelopes: Vec<&str> = match acc.args.envelope {
        Some(e) => vec![e.disco_feature()],
        None => Vec::new(),
    };
    let registry = crate::backends::registry();
    let ch = account::connect(
        &acc,
        account::our_features(
            &registry.iter().collect::<Vec<_>>(),
            &envelopes,
            acc.transport,
        ),
    )
    .await?;
    let result = async {
        let peer = account::resolve_peer(&ch, &args.peer, acc.wait()).await?;
        let features = account::peer_features(
            account::driver_channel(&ch, acc.args.verbose).as_ref(),
            &peer,
        )
        .await?;
        let has = |f: &str| features.iter().any(|x| x == f);
        let envelopes: Vec<&str> = [
            ns::JET_OMEMO_FEATURE,
            ns::JET_OX_FEATURE,
            ns::JET_STUB_FEATURE,
        ]
        .into_iter()
        .filter(|f| has(f))
        .collect();
        let transports: Vec<&str> = [ns::JINGLE_S5B, ns::JINGLE_IBB]
            .into_iter()
            .filter(|f| has(f))
            .collect();
        let ciphers: Vec<&String> = features
            .iter()
            .filter(|f| f.starts_with("urn:xmpp:ciphers:"))
            .collect();
        let out = json!({
            "event": "disco",
            "peer": peer.to_string(),
            "jet": has(ns::JET),
            "jingle": has(ns::JINGLE),
            "file_transfer": has(ns::JINGLE_FT),
            "envelopes": envelopes,
            "transports": transports,
            "ciphers": ciphers,
        });
        if acc.args.json {
            println!("{out}");
        } else {
            println!("peer\t{peer}");
            println!("jet\t{}", if has(ns::JET) { "yes" } else { "no" });
            println!(
                "file-transfer\t{}",
                if has(ns::JINGLE_FT) { "yes" } else { "no" }
            );
            println!("envelopes\t{}", envelopes.join(" "));
            println!("transports\t{}", transports.join(" "));
            let c: Vec<&str> = ciphers.iter().map(|s| s.as_str()).collect();
            println!("ciphers\t{}", c.join(" "));
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = ch.disconnect().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_bare_and_full() {
        let peer: FullJid = "romeo@jet.test/a".parse().unwrap();
        let bare: Jid = "romeo@jet.test".parse().unwrap();
        let other_res: Jid = "romeo@jet.test/b".parse().unwrap();
        let other: Jid = "mallory@jet.test".parse().unwrap();
        assert!(allowed(&peer, &[bare], false));
        assert!(!allowed(&peer, std::slice::from_ref(&other_res), false));
        assert!(!allowed(&peer, std::slice::from_ref(&other), false));
        assert!(allowed(&peer, &[], true));
    }
}
