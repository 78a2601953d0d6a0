//! Interop with Dino (Debian's dino-im 0.4.2), the deployed desktop client
//! with JET-OMEMO, headless and driven without a person
//! (`scripts/dino-peer`, docs/dino.md): files from `jet send` to Dino and
//! from Dino (its UI driven with xdotool) to `jet receive`, over S5B, with
//! SHA-256 comparisons; and over IBB, where Dino's own code fails in both
//! directions: there jet must report the failure, clearly and soon.
//!
//! Dino, its Prosody (127.0.0.2:5222, the only address Dino can be pointed
//! at) and every `jet` of these tests run inside the loopback-only network
//! namespace of `scripts/dino-peer` (`scripts/dino-peer exec -- jet ...`).
//! Needs `scripts/dino-peer start` (`scripts/test` runs it); without it the
//! tests skip with a message, unless `JET_REQUIRE_DINO=1`, where they fail.
//! The tests share one Dino, one jet account and its OMEMO store, so they
//! run one at a time.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{random_file, Proc};

/// One Dino: the tests take turns.
static DINO: Mutex<()> = Mutex::new(());

/// How long a transfer of these sizes may take on loopback, set-up
/// included. Below the 30 s jet waits for a verdict and the stall timeout
/// we give it: a transfer that only ends by a timeout fails here.
const TRANSFER_BOUND: Duration = Duration::from_secs(25);

/// How soon jet must report Dino's IBB failure.
const FAILURE_BOUND: Duration = Duration::from_secs(10);

struct Dino {
    _turn: MutexGuard<'static, ()>,
    srv: common::Server,
    dir: PathBuf,
    script: PathBuf,
    jid: String,
    /// The jet account's user name (its roster holds Dino, and Dino's its).
    jet_user: String,
    log: PathBuf,
}

#[derive(Debug, Clone)]
struct Transfer {
    id: u64,
    /// 0: Dino received it, 1: Dino sent it.
    direction: u32,
    /// 0: complete, 3: failed (others: in progress).
    state: u32,
    name: String,
    path: String,
}

fn dino() -> Option<Dino> {
    let turn = DINO.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::var_os("JET_DINO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dino"));
    let vars: HashMap<String, String> = std::fs::read_to_string(dir.join("env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |k: &str| vars.get(k).cloned();
    let (
        Some(script),
        Some(jid),
        Some(peer),
        Some(log),
        Some(domain),
        Some(addr),
        Some(ca),
        Some(password),
    ) = (
        get("JET_DINO_SCRIPT"),
        get("JET_DINO_JID"),
        get("JET_DINO_PEER"),
        get("JET_DINO_LOG"),
        get("JET_DINO_XMPP_DOMAIN"),
        get("JET_DINO_XMPP_SERVER"),
        get("JET_DINO_CA"),
        get("JET_DINO_PASSWORD"),
    )
    else {
        let why = format!(
            "no Dino peer: {} is missing (run `scripts/dino-peer install && \
             scripts/dino-peer start` as root)",
            dir.join("env").display()
        );
        if std::env::var("JET_REQUIRE_DINO").as_deref() == Ok("1") {
            panic!("JET_REQUIRE_DINO=1 but {why}");
        }
        eprintln!("skipping: {why}");
        return None;
    };
    let srv = common::Server {
        proxy: get("JET_DINO_PROXY").unwrap_or_else(|| format!("proxy.{domain}")),
        proxy_addr: get("JET_DINO_PROXY_ADDR").unwrap_or_default(),
        domain,
        addr,
        ca: PathBuf::from(ca),
        password,
        kind: "prosody".into(),
        shaped_addr: None,
    };
    Some(Dino {
        _turn: turn,
        srv,
        script: PathBuf::from(script),
        jid,
        jet_user: peer.split('@').next().unwrap_or_default().to_string(),
        log: PathBuf::from(log),
        dir,
    })
}

impl Dino {
    /// `jet SUB` as the jet account with OMEMO (its store next to Dino's
    /// state), inside Dino's namespace: `scripts/dino-peer exec -- jet ...`.
    fn jet(&self, sub: &str, args: &[&str]) -> Command {
        let keys = self.dir.join("jet-keys");
        let mut all = vec!["--data-dir", keys.to_str().unwrap()];
        all.extend_from_slice(args);
        let inner = self.srv.jet_env(sub, &self.jet_user, "omemo", &all);
        let mut c = Command::new(&self.script);
        c.arg("exec")
            .arg("--")
            .arg(inner.get_program())
            .args(inner.get_args());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// `scripts/dino-peer ARGS`, bounded; its stdout, or a panic with what
    /// it said.
    fn script(&self, args: &[&str], bound: Duration) -> String {
        let mut child = Command::new("timeout")
            .arg("--kill-after=5")
            .arg(bound.as_secs().to_string())
            .arg(&self.script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running scripts/dino-peer");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
        let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let st = child.wait().unwrap();
        let (out, err) = (out.join().unwrap(), err.join().unwrap());
        assert!(
            st.success(),
            "scripts/dino-peer {args:?} failed ({st}): {out}{err}\nDino:\n{}",
            self.log_tail()
        );
        out
    }

    /// Dino's file transfers (its database), oldest first.
    fn transfers(&self) -> Vec<Transfer> {
        self.script(&["received"], Duration::from_secs(20))
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() >= 8).then(|| Transfer {
                    id: f[0].parse().unwrap(),
                    direction: f[1].parse().unwrap(),
                    state: f[2].parse().unwrap(),
                    name: f[6].to_string(),
                    path: f[7].to_string(),
                })
            })
            .collect()
    }

    fn last_transfer_id(&self) -> u64 {
        self.transfers().last().map(|t| t.id).unwrap_or(0)
    }

    /// Waits (bounded) for a transfer newer than `after` named `name` in
    /// `direction` to reach a final state (complete or failed).
    fn wait_transfer(&self, after: u64, direction: u32, name: &str, bound: Duration) -> Transfer {
        let deadline = Instant::now() + bound;
        let mut last = None;
        while Instant::now() < deadline {
            last = self
                .transfers()
                .into_iter()
                .find(|t| t.id > after && t.direction == direction && t.name == name);
            if let Some(t) = &last {
                if t.state == 0 || t.state == 3 {
                    return t.clone();
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!(
            "Dino's transfer of {name} did not finish within {bound:?} (last seen: {last:?})\nDino:\n{}",
            self.log_tail()
        )
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// Dino's debug log from byte `from` on.
    fn log_since(&self, from: u64) -> String {
        let log = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&log[(from as usize).min(log.len())..]).into_owned()
    }

    /// Dino's own warnings and Jingle lines of the log's tail, for failure
    /// messages (the full log, stanzas included, is in JET_DINO_LOG).
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| {
                (l.contains("WARNING") || l.contains("xmpp-vala") || l.contains("libdino"))
                    && !l.contains("Gtk-")
            })
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// `jet send FILE` to Dino over S5B: jet exits 0 with `done`, Dino stores
/// the file (state complete) and its bytes hash like the source's.
fn jet_to_dino_s5b(len: usize) {
    let Some(dino) = dino() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("jet-to-dino-{len}.bin");
    let src = random_file(tmp.path(), &name, len);
    let before = dino.last_transfer_id();
    let started = Instant::now();
    let mut send = Proc::spawn(dino.jet(
        "send",
        &[
            "--transport",
            "s5b",
            "--to",
            &dino.jid,
            src.to_str().unwrap(),
        ],
    ));
    let st = send.wait_within(TRANSFER_BOUND + Duration::from_secs(10));
    let took = started.elapsed();
    let events = send.all_events();
    let t = dino.wait_transfer(before, 0, &name, Duration::from_secs(20));
    assert!(
        st.success() && took < TRANSFER_BOUND,
        "jet send to Dino failed or ended only by a timeout ({st}, after {took:?}): {events:?}\n{}\nDino's transfer: {t:?}\nDino:\n{}",
        send.stderr(),
        dino.log_tail()
    );
    let done = events
        .iter()
        .find(|e| e["event"] == "done")
        .unwrap_or_else(|| panic!("no done event: {events:?}"));
    assert_eq!(done["size"], len);
    assert_eq!(
        t.state,
        0,
        "Dino did not complete the download: {t:?}\nDino:\n{}",
        dino.log_tail()
    );
    let stored = PathBuf::from(&t.path);
    assert_eq!(
        std::fs::metadata(&stored).map(|m| m.len()).ok(),
        Some(len as u64),
        "Dino's stored file {} has the wrong size",
        stored.display()
    );
    assert_eq!(
        sha256_hex(&stored),
        sha256_hex(&src),
        "Dino's file differs from what jet sent"
    );
}

/// Dino (its UI) sends FILE to `jet receive` over S5B: jet exits 0 with
/// `done`, the file lands under its name, SHA-256 equal to the source's.
fn dino_to_jet_s5b(len: usize) {
    let Some(dino) = dino() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("dino-to-jet-{len}.bin");
    let src = random_file(tmp.path(), &name, len);
    let out = tmp.path().join("in");
    let before = dino.last_transfer_id();
    let mut recv = Proc::spawn(dino.jet(
        "receive",
        &[
            "--once",
            "--transport",
            "s5b",
            "--from",
            &dino.jid,
            "--stall-timeout",
            "20",
            "--timeout",
            "120",
            "--dir",
            out.to_str().unwrap(),
        ],
    ));
    recv.ready_jid();
    dino.script(&["send", src.to_str().unwrap()], Duration::from_secs(90));
    let offered = Instant::now();
    let st = recv.wait_within(TRANSFER_BOUND + Duration::from_secs(10));
    let took = offered.elapsed();
    let events = recv.all_events();
    assert!(
        st.success() && took < TRANSFER_BOUND,
        "jet receive from Dino failed or ended only by a timeout ({st}, after {took:?}): {events:?}\n{}\nDino:\n{}",
        recv.stderr(),
        dino.log_tail()
    );
    let done = events
        .iter()
        .find(|e| e["event"] == "done")
        .unwrap_or_else(|| panic!("no done event: {events:?}"));
    let got = PathBuf::from(done["path"].as_str().unwrap());
    assert_eq!(got, out.join(&name));
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&src),
        "jet's file differs from Dino's"
    );
    // Dino offers no hash: the GCM tag authenticated the file, jet hashes
    // nothing (docs/dino.md).
    assert!(done["hash"].is_null(), "{done}");
    let t = dino.wait_transfer(before, 1, &name, Duration::from_secs(20));
    assert_eq!(t.state, 0, "Dino calls its upload failed: {t:?}");
}

#[test]
fn jet_sends_64k_to_dino_over_s5b() {
    jet_to_dino_s5b(64 << 10);
}

#[test]
fn jet_sends_1m_to_dino_over_s5b() {
    jet_to_dino_s5b(1 << 20);
}

#[test]
fn dino_sends_64k_to_jet_over_s5b() {
    dino_to_jet_s5b(64 << 10);
}

#[test]
fn dino_sends_1m_to_jet_over_s5b() {
    dino_to_jet_s5b(1 << 20);
}

/// `jet send --transport ibb` to Dino: Dino 0.4.2 cannot receive over IBB
/// (it fails setting the stream up: "can't do non-async closes on in-band
/// bytestreams"). jet must say the session failed, soon, and never claim
/// success.
#[test]
fn jet_reports_dinos_ibb_receive_failure() {
    let Some(dino) = dino() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let name = "jet-to-dino-ibb.bin";
    let src = random_file(tmp.path(), name, 64 << 10);
    let before = dino.last_transfer_id();
    let started = Instant::now();
    let mut send = Proc::spawn(dino.jet(
        "send",
        &[
            "--transport",
            "ibb",
            // Dino never answers after a failed IBB receive: the verdict
            // wait is the one bound on how soon jet can say so.
            "--verdict-timeout",
            "5",
            "--to",
            &dino.jid,
            src.to_str().unwrap(),
        ],
    ));
    let st = send.wait_within(Duration::from_secs(60));
    let took = started.elapsed();
    let events = send.all_events();
    let t = dino.wait_transfer(before, 0, name, Duration::from_secs(20));
    assert_eq!(t.state, 3, "Dino did not fail over IBB this time: {t:?}");
    assert!(
        !st.success() && !events.iter().any(|e| e["event"] == "done"),
        "jet claimed success although Dino failed: {events:?}"
    );
    let error = events
        .iter()
        .find(|e| e["event"] == "error")
        .unwrap_or_else(|| panic!("no error event: {events:?}\n{}", send.stderr()));
    assert!(
        error["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(&dino.jid),
        "the error does not name the peer: {error}"
    );
    // Dino fails at accept time and then only acknowledges our <open/>,
    // <data/> and <close/>: no session-terminate, no IBB error. The one
    // sign is the verdict that does not come after the stream is closed.
    assert!(
        took < FAILURE_BOUND,
        "jet took {took:?} to report Dino's IBB failure (bound {FAILURE_BOUND:?}; Dino \
         acknowledged every IBB packet and sent no verdict): {error}"
    );
}

/// Dino sends over IBB to `jet receive --transport ibb` (which then
/// advertises IBB only): Dino's IBB sender fails; jet must end the session
/// with an error soon after the offer, keep no file, and not wait for a
/// timeout.
#[test]
fn jet_reports_dinos_ibb_send_failure() {
    let Some(dino) = dino() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let name = "dino-to-jet-ibb.bin";
    let src = random_file(tmp.path(), name, 64 << 10);
    let out = tmp.path().join("in");
    let mut recv = Proc::spawn(dino.jet(
        "receive",
        &[
            "--once",
            "--transport",
            "ibb",
            "--from",
            &dino.jid,
            "--stall-timeout",
            "20",
            "--timeout",
            "120",
            "--dir",
            out.to_str().unwrap(),
        ],
    ));
    recv.ready_jid();
    let log_from = dino.log_len();
    dino.script(&["send", src.to_str().unwrap()], Duration::from_secs(90));
    let offered = Instant::now();
    let st = recv.wait_within(Duration::from_secs(60));
    let took = offered.elapsed();
    let events = recv.all_events();
    // Dino's offer as it logged it (--print-xmpp): which transport it chose.
    let log = dino.log_since(log_from);
    let offer = log
        .split("XMPP OUT")
        .find(|s| s.contains("'session-initiate'"))
        .unwrap_or_else(|| panic!("Dino sent no session-initiate:\n{}", dino.log_tail()));
    assert!(
        offer.contains("urn:xmpp:jingle:transports:ibb:1"),
        "Dino offered no IBB transport to a jet that accepts IBB only (jet advertised S5B?); \
         jet said: {events:?}"
    );
    assert!(
        !st.success() && !events.iter().any(|e| e["event"] == "done"),
        "jet claimed success: {events:?}"
    );
    let error = events
        .iter()
        .find(|e| e["event"] == "error")
        .unwrap_or_else(|| panic!("no error event: {events:?}\n{}", recv.stderr()));
    let reason = error["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&dino.jid),
        "the error does not name the peer: {error}"
    );
    assert!(
        !reason.contains("stalled") && !reason.contains("timed out"),
        "jet waited for a timeout instead of seeing Dino's failure: {error}"
    );
    assert!(
        took < FAILURE_BOUND,
        "jet took {took:?} to report Dino's IBB failure (bound {FAILURE_BOUND:?}): {error}"
    );
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "jet kept files from a failed transfer: {left:?}"
    );
}
