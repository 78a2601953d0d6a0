//! What the end-to-end tests of `jet` share: the loopback Prosody's
//! settings (from the env file `scripts/test-server` writes), running `jet`
//! as a bounded child process with its JSON events collected, and test
//! files. Each test file uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jet_core::channel::StanzaChannel;
use jet_core::jid::BareJid;
use jet_core::xmpp::{XmppChannel, XmppConfig};

const PROCESS_BOUND: Duration = Duration::from_secs(60);

#[path = "../../../test-support/prosody_env.rs"]
pub mod prosody_env;

/// The loopback test server, Prosody or ejabberd
/// (`test-support/prosody_env.rs`).
pub type Server = prosody_env::ProsodyEnv;

/// The server's settings, or `None` (skip) when there is none and it is not
/// required.
pub fn server() -> Option<Server> {
    prosody_env::load()
}

impl Server {
    /// The same server through its shaped c2s port (ejabberd: Debian's
    /// stock 3000 B/s `c2s_shaper`), if it has one.
    pub fn shaped(&self) -> Option<Server> {
        let addr = self.shaped_addr.clone()?;
        Some(Server {
            addr,
            ..self.clone()
        })
    }

    pub fn jid(&self, user: &str) -> String {
        format!("{user}@{}", self.domain)
    }

    pub fn bare(&self, user: &str) -> BareJid {
        self.jid(user).parse().unwrap()
    }

    /// `jet SUB --jid USER --server --ca --envelope stub --json ARGS`.
    pub fn jet(&self, sub: &str, user: &str, args: &[&str]) -> Command {
        self.jet_env(sub, user, "stub", args)
    }

    /// `jet SUB --jid USER --server --ca --envelope ENVELOPE --json ARGS`.
    pub fn jet_env(&self, sub: &str, user: &str, envelope: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_jet"));
        c.arg(sub)
            .args(["--jid", &self.jid(user), "--server", &self.addr])
            .arg("--ca")
            .arg(&self.ca)
            .args(["--envelope", envelope, "--json", "--wait", "5"])
            .args(args)
            .env("JET_PASSWORD", &self.password)
            .env_remove(CUT)
            // `scripts/test-server jet-env` may be in the developer's shell.
            .env_remove("JET_SERVER")
            .env_remove("JET_CA")
            .env_remove("JET_CONFIG")
            .env("XDG_CONFIG_HOME", "/nonexistent-jet-test")
            // Per-account state without --data-dir (the record of used
            // transport secrets, stores) stays out of the user's home.
            .env(
                "XDG_DATA_HOME",
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-data"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub fn config(&self, user: &str) -> XmppConfig {
        XmppConfig::new(self.bare(user), self.password.as_str())
            .server(self.addr.as_str())
            .trust_ca_file(&self.ca)
            .connect_timeout(Duration::from_secs(10))
    }

    /// Makes `a` and `b` subscribed to each other's presence (stored in
    /// their rosters, so later `jet` processes see each other's presence).
    pub async fn pair(&self, a: &str, b: &str) {
        let ca = XmppChannel::connect(self.config(a).resource("pairing"))
            .await
            .unwrap();
        let cb = XmppChannel::connect(self.config(b).resource("pairing"))
            .await
            .unwrap();
        cb.allow_subscription(self.bare(a));
        ca.subscribe_to_presence(self.bare(b)).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(ca
            .available_resources(&self.bare(b))
            .contains(&cb.local_jid())
            && cb
                .available_resources(&self.bare(a))
                .contains(&ca.local_jid()))
        {
            assert!(
                Instant::now() < deadline,
                "{a} and {b} never saw each other"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ca.disconnect().await.unwrap();
        cb.disconnect().await.unwrap();
    }
}

pub const CUT: &str = "JET_TEST_CUT_AFTER";

/// A running `jet` with its stdout events and stderr collected.
pub struct Proc {
    pub child: Child,
    pub events: mpsc::Receiver<serde_json::Value>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().expect("spawning jet");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                match serde_json::from_str(&line) {
                    Ok(v) => {
                        let _ = tx.send(v);
                    }
                    Err(_) => panic!("jet --json printed a non-JSON line: {line:?}"),
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let s2 = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = s2.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Proc {
            child,
            events,
            stderr,
        }
    }

    /// The next event named `name` (others are skipped), within `bound`.
    pub fn event(&self, name: &str, bound: Duration) -> serde_json::Value {
        self.event_where(&format!("{name:?} event"), bound, |v| v["event"] == name)
    }

    /// The next event `pred` accepts (others are skipped), within `bound`.
    pub fn event_where(
        &self,
        what: &str,
        bound: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => continue,
                Err(_) => panic!("no {what} within {bound:?}; stderr:\n{}", self.stderr()),
            }
        }
    }

    /// The full JID of a `jet receive`/`serve`, from its `ready` event.
    pub fn ready_jid(&self) -> String {
        self.event("ready", Duration::from_secs(20))["jid"]
            .as_str()
            .expect("a jid in the ready event")
            .to_string()
    }

    /// All events so far and to come until exit.
    pub fn all_events(&self) -> Vec<serde_json::Value> {
        self.events.try_iter().collect()
    }

    /// Waits for the exit (bounded; killed after the bound).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.wait_within(PROCESS_BOUND)
    }

    /// The exit status, waiting at most `bound` (killed after it).
    pub fn wait_within(&mut self, bound: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader threads drain.
                std::thread::sleep(Duration::from_millis(100));
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "jet did not exit within {bound:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn random_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let mut data = vec![0u8; len];
    getrandom::fill(&mut data).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, &data).unwrap();
    p
}

pub fn sha256_b64(path: &Path) -> String {
    use base64::Engine;
    use sha2::Digest;
    let data = std::fs::read(path).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&data))
}
