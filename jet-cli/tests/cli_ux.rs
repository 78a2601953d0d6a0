//! How `jet` talks to a person (issue 17): the question on a terminal for
//! an offer from a stranger (driven through a real pseudo-terminal with
//! tmux), the line that says how to allow a peer without a terminal, the
//! summary line after a transfer, the roster line of `receive --from`, and
//! one-line error messages that say what to do.
//!
//! Against the loopback test server (`scripts/test-server start`); without
//! one these tests skip, unless `JET_REQUIRE_SERVER=1`. Accounts `cli1`..
//! `cli10` are used by this file only. Every process and wait is bounded.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{random_file, server, sha256_b64, Proc, Server};

/// `jet SUB` as a person types it: human output (no `--json`).
fn human(srv: &Server, sub: &str, user: &str, args: &[&str]) -> Command {
    let c = srv.jet(sub, user, &[]);
    // `jet()` adds --json; rebuild without it.
    let mut plain = Command::new(c.get_program());
    let kept: Vec<_> = c
        .get_args()
        .filter(|a| *a != "--json")
        .map(|a| a.to_owned())
        .collect();
    plain.args(kept).args(args);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => plain.env(k, v),
            None => plain.env_remove(k),
        };
    }
    plain
}

fn quote(s: &std::ffi::OsStr) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"))
}

/// A command running on a tmux pseudo-terminal (its own tmux server, on a
/// socket in its own temporary directory), killed with that server when dropped.
struct Tmux {
    socket: String,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Runs `cmd` in a new tmux session; after it exits the pane shows
    /// `[exit CODE]` and stays for capture.
    fn run(cmd: &Command) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        let mut script = String::from("#!/bin/sh\n");
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => script += &format!("export {}={}\n", k.to_string_lossy(), quote(v)),
                None => script += &format!("unset {}\n", k.to_string_lossy()),
            }
        }
        script += &quote(cmd.get_program());
        for a in cmd.get_args() {
            script += " ";
            script += &quote(a);
        }
        script += "\necho \"[exit $?]\"\nsleep 120\n";
        let path = dir.path().join("run.sh");
        std::fs::write(&path, script).unwrap();
        // The socket in the temporary directory: nothing is left behind.
        let socket = dir.path().join("tmux.sock").to_string_lossy().into_owned();
        let st = Command::new("tmux")
            .args(["-S", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "250", "-y", "50", "sh"])
            .arg(&path)
            .status()
            .expect("running tmux (Debian package tmux)");
        assert!(st.success(), "tmux new-session failed");
        Tmux { socket, _dir: dir }
    }

    /// The pane's text, wrapped lines joined.
    fn pane(&self) -> String {
        let out = Command::new("tmux")
            .args(["-S", &self.socket, "capture-pane", "-p", "-J", "-S", "-"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the pane contains `text` (at least `count` times).
    fn wait_for(&self, text: &str, count: usize, bound: Duration) -> String {
        let deadline = Instant::now() + bound;
        loop {
            let pane = self.pane();
            if pane.matches(text).count() >= count {
                return pane;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} (x{count}) on the terminal within {bound:?}; it shows:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let st = Command::new("tmux")
            .args(["-S", &self.socket, "send-keys", "-t", "0"])
            .args(keys)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-S", &self.socket, "kill-server"])
            .status();
    }
}

/// The full JID in `online as JID; waiting for offers`.
fn online_jid(pane: &str) -> String {
    let line = pane
        .lines()
        .find(|l| l.starts_with("online as "))
        .expect("an `online as` line");
    line["online as ".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn tmux_present() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Waits (bounded) until `p`'s stderr contains `text`.
fn wait_stderr(p: &Proc, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.stderr().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} on stderr:\n{}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `file` from `from` to `to` and returns the finished process.
fn send(srv: &Server, from: &str, to: &str, file: &Path) -> Proc {
    let mut cmd = srv.jet("send", from, &["--to", to]);
    cmd.arg(file);
    Proc::spawn(cmd)
}

#[test]
fn a_stranger_is_asked_about_on_a_terminal() {
    let Some(srv) = server() else { return };
    assert!(tmux_present(), "tmux is needed (apt-get install tmux)");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    let recv = human(
        &srv,
        "receive",
        "cli2",
        &[
            "--dir",
            dir.to_str().unwrap(),
            "--once",
            "--ask-timeout",
            "3",
        ],
    );
    let term = Tmux::run(&recv);
    let pane = term.wait_for("waiting for offers", 1, Duration::from_secs(20));
    let to = online_jid(&pane);
    let me = srv.jid("cli1");

    // No answer: declined after --ask-timeout.
    let a = random_file(tmp.path(), "a.bin", 1000);
    let mut p = send(&srv, "cli1", &to, &a);
    term.wait_for(
        &format!("Accept a.bin (1000 B) from {me}/"),
        1,
        Duration::from_secs(20),
    );
    assert!(!p.wait().success(), "an unanswered offer must be declined");
    assert!(p.stderr().contains("declined"), "{}", p.stderr());
    term.wait_for("no answer within 3s", 1, Duration::from_secs(5));

    // "n": declined.
    let b = random_file(tmp.path(), "b.bin", 2000);
    let mut p = send(&srv, "cli1", &to, &b);
    term.wait_for("Accept b.bin (1.95 KiB)", 1, Duration::from_secs(20));
    term.keys(&["n", "Enter"]);
    assert!(!p.wait().success(), "an offer answered no must be declined");
    assert!(p.stderr().contains("declined"), "{}", p.stderr());
    term.wait_for("you answered no", 1, Duration::from_secs(5));

    // "y": received, and --once ends the receiver with success.
    let c = random_file(tmp.path(), "c.bin", 300 * 1024);
    let mut p = send(&srv, "cli1", &to, &c);
    term.wait_for("Accept c.bin (300.00 KiB)", 1, Duration::from_secs(20));
    term.keys(&["y", "Enter"]);
    assert!(p.wait().success(), "sender: {}", p.stderr());
    let pane = term.wait_for("[exit ", 1, Duration::from_secs(20));
    assert!(pane.contains("[exit 0]"), "receiver failed:\n{pane}");
    // The summary line: size, time, rate, transport, cipher (between two
    // jets: the chunked suite).
    let summary = pane
        .lines()
        .find(|l| l.starts_with("jet: received c.bin: "))
        .unwrap_or_else(|| panic!("no summary line:\n{pane}"));
    assert!(
        summary.starts_with("jet: received c.bin: 300.00 KiB in ")
            && summary.contains(" s (")
            && summary.contains("/s) · s5b · chunked"),
        "{summary}"
    );
    // No bar is left half-drawn: every line it drew was cleared.
    assert!(
        !pane.contains("receiving ["),
        "a bar stayed on screen:\n{pane}"
    );
    assert_eq!(sha256_b64(&dir.join("c.bin")), sha256_b64(&c));
    assert!(!dir.join("a.bin").exists() && !dir.join("b.bin").exists());
}

#[test]
fn without_a_terminal_a_stranger_is_declined_with_how_to_allow_it() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    // stdin is /dev/null (not a terminal): no question, as before.
    let recv = Proc::spawn(srv.jet(
        "receive",
        "cli4",
        &["--dir", dir.to_str().unwrap(), "--timeout", "30"],
    ));
    let to = recv.ready_jid();
    let f = random_file(tmp.path(), "x.bin", 1000);
    let mut p = send(&srv, "cli3", &to, &f);
    assert!(!p.wait().success(), "a stranger's offer must be declined");
    assert!(p.stderr().contains("declined"), "{}", p.stderr());
    let ev = recv.event("declined", Duration::from_secs(10));
    assert_eq!(ev["reason"], "not-allowed");
    assert!(ev["peer"].as_str().unwrap().starts_with(&srv.jid("cli3")));
    wait_stderr(
        &recv,
        &format!("allow it with --from {} or --yes", srv.jid("cli3")),
    );
    assert!(!dir.join("x.bin").exists());
}

#[test]
fn the_done_event_says_size_time_rate_transport_and_cipher_and_from_says_the_roster_changes() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    let recv = Proc::spawn(srv.jet(
        "receive",
        "cli8",
        &[
            "--dir",
            dir.to_str().unwrap(),
            "--from",
            &srv.jid("cli7"),
            // S5B: over IBB the sender's close sometimes meets a receiver
            // that already closed (service-unavailable), reported apart.
            "--timeout",
            "40",
            "--transport",
            "s5b",
        ],
    ));
    // --from changes the roster only with a line that says so.
    let roster = recv.event("roster", Duration::from_secs(20));
    assert_eq!(
        roster["accept_subscription_from"],
        serde_json::json!([srv.jid("cli7")])
    );
    let to = recv.ready_jid();
    wait_stderr(
        &recv,
        &format!(
            "presence subscription requests from {} are accepted",
            srv.jid("cli7")
        ),
    );
    let f = random_file(tmp.path(), "s.bin", 100 * 1024);
    let mut cmd = srv.jet(
        "send",
        "cli7",
        &["--to", &to, "--transport", "s5b", "--cipher", "chacha20"],
    );
    cmd.arg(&f);
    let mut p = Proc::spawn(cmd);
    let sent = p.event("done", Duration::from_secs(30));
    assert!(p.wait().success(), "{}", p.stderr());
    let got = recv.event("done", Duration::from_secs(30));
    for ev in [&sent, &got] {
        assert_eq!(ev["size"], 100 * 1024, "{ev}");
        assert_eq!(ev["transport"], "s5b", "{ev}");
        assert_eq!(ev["cipher"], "chacha20", "{ev}");
        assert_eq!(ev["resumed_from"], 0, "{ev}");
        let secs = ev["seconds"].as_f64().unwrap();
        let rate = ev["bytes_per_second"].as_u64().unwrap();
        assert!(secs > 0.0, "{ev}");
        // The rate is the size over the time (rounded).
        let expect = (100.0 * 1024.0) / secs.max(1e-3);
        assert!((rate as f64 - expect).abs() <= expect * 0.01 + 1.0, "{ev}");
    }
    assert_eq!(sha256_b64(&dir.join("s.bin")), sha256_b64(&f));
}

/// Empties the OMEMO device lists of `users` (each run's devices are new).
async fn reset_omemo(srv: &Server, users: &[&str]) {
    use jet_core::xmpp::XmppChannel;
    for user in users {
        let ch = XmppChannel::connect(srv.config(user).resource("reset"))
            .await
            .unwrap();
        let to: jet_core::jid::Jid = srv.bare(user).into();
        let publish = jet_envelopes::omemo::pep::publish_device_list(&[]);
        jet_core::channel::StanzaChannel::request(
            &ch,
            jet_core::channel::iq("set", "", None, &to, Some(publish)),
        )
        .await
        .unwrap();
        ch.disconnect().await.unwrap();
    }
}

/// A notice printed while the progress bar is drawn (here OMEMO's "new
/// device" line, printed when the sender's key arrives after the bar
/// appeared) clears the bar first: no frozen bar stays on the terminal.
#[test]
fn a_notice_during_the_bar_leaves_no_half_drawn_bar() {
    let Some(srv) = server() else { return };
    assert!(tmux_present(), "tmux is needed (apt-get install tmux)");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        srv.pair("cli5", "cli6").await;
        reset_omemo(&srv, &["cli5", "cli6"]).await;
    });
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    let (rdata, sdata) = (tmp.path().join("r"), tmp.path().join("s"));
    let mut recv = human(
        &srv,
        "receive",
        "cli6",
        &[
            "--dir",
            dir.to_str().unwrap(),
            "--from",
            &srv.jid("cli5"),
            "--once",
            "--timeout",
            "60",
            "--data-dir",
            rdata.to_str().unwrap(),
        ],
    );
    // Replace `--envelope stub` by OMEMO.
    let args: Vec<_> = recv.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = recv
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    recv = Command::new(recv.get_program());
    recv.args(args.iter().map(|a| {
        if a == "stub" {
            "omemo".as_ref()
        } else {
            a.as_os_str()
        }
    }));
    for (k, v) in envs {
        match v {
            Some(v) => recv.env(k, v),
            None => recv.env_remove(k),
        };
    }
    let term = Tmux::run(&recv);
    let pane = term.wait_for("waiting for offers", 1, Duration::from_secs(30));
    let to = online_jid(&pane);
    let f = random_file(tmp.path(), "slow.bin", 1024 * 1024);
    let mut cmd = srv.jet_env(
        "send",
        "cli5",
        "omemo",
        &["--to", &to, "--data-dir", sdata.to_str().unwrap()],
    );
    cmd.arg(&f).env("JET_TEST_RATE", "400000");
    let mut p = Proc::spawn(cmd);
    // The bar is drawn during the transfer...
    term.wait_for("receiving [", 1, Duration::from_secs(30));
    assert!(p.wait().success(), "sender: {}", p.stderr());
    let pane = term.wait_for("[exit ", 1, Duration::from_secs(30));
    assert!(pane.contains("[exit 0]"), "receiver failed:\n{pane}");
    assert!(pane.contains("new OMEMO device"), "no notice:\n{pane}");
    // ... and none of it stays once the transfer is over.
    assert!(
        !pane.contains("receiving ["),
        "a bar stayed on screen:\n{pane}"
    );
    assert!(
        pane.contains("jet: received slow.bin: 1.00 MiB in "),
        "{pane}"
    );
    assert_eq!(sha256_b64(&dir.join("slow.bin")), sha256_b64(&f));
}

/// `jet send --json` from `cli1` with exactly `conn` as connection options
/// (no --server or --ca unless given), bounded.
fn send_with(conn: &[&str], file: &str, netns: bool) -> (std::process::ExitStatus, String, String) {
    let jet = env!("CARGO_BIN_EXE_jet");
    let mut c = if netns {
        // A network namespace of its own with only a `lo` that is down:
        // the DNS lookup fails here without any packet leaving the host.
        let mut c = Command::new("unshare");
        c.args(["-rn", jet]);
        c
    } else {
        Command::new(jet)
    };
    c.args(["send", "--json", "--envelope", "stub", "--wait", "2"])
        .args(conn)
        .args(["--to", "cli2@jet.test", file])
        // Exactly `conn`: nothing from the developer's environment.
        .env_remove("JET_SERVER")
        .env_remove("JET_CA")
        .env_remove("JET_CONFIG")
        .env("JET_PASSWORD", "not-used-before-login")
        .env("XDG_CONFIG_HOME", "/nonexistent-jet-test")
        .env(
            "XDG_DATA_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-data"),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut p = Proc::spawn(c);
    let st = p.wait_within(Duration::from_secs(30));
    let reason = p
        .all_events()
        .into_iter()
        .find(|e| e["event"] == "error")
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .unwrap_or_default();
    (st, reason, p.stderr())
}

/// The error is one line (no debug structure, not twice) and says `hint`.
fn one_line_with(what: &str, st: std::process::ExitStatus, reason: &str, stderr: &str, hint: &str) {
    assert_eq!(st.code(), Some(1), "{what}: {stderr}");
    assert!(reason.contains(hint), "{what}: {reason:?}");
    let line = format!("jet: {reason}");
    assert_eq!(
        stderr.lines().filter(|l| *l == line).count(),
        1,
        "{what}: the error line once on stderr:\n{stderr}"
    );
    for debug in [
        "Dns(",
        "NoRecords",
        "UnknownIssuer",
        "Custom {",
        "kind:",
        "os error 2): No such",
    ] {
        assert!(
            !reason.contains(debug),
            "{what}: debug output {debug:?} in {reason:?}"
        );
    }
}

#[test]
fn a_missing_file_is_said_once_before_connecting() {
    let (st, reason, err) = send_with(
        &["--jid", "cli1@jet.test", "--server", "127.0.0.1:1"],
        "/nonexistent/jet-missing.bin",
        false,
    );
    one_line_with(
        "missing file",
        st,
        &reason,
        &err,
        "/nonexistent/jet-missing.bin: no such file",
    );
    assert_eq!(err.matches("jet-missing.bin").count(), 1, "{err}");
}

#[test]
fn a_refused_connection_says_to_check_the_server() {
    let (st, reason, err) = send_with(
        &["--jid", "cli1@jet.test", "--server", "127.0.0.1:1"],
        "Cargo.toml",
        false,
    );
    one_line_with(
        "refused",
        st,
        &reason,
        &err,
        "cannot reach the XMPP server 127.0.0.1:1 (connection refused); check --server",
    );
}

#[test]
fn an_untrusted_certificate_suggests_ca() {
    let Some(srv) = server() else { return };
    let (st, reason, err) = send_with(
        &["--jid", &srv.jid("cli1"), "--server", &srv.addr],
        "Cargo.toml",
        false,
    );
    one_line_with(
        "untrusted",
        st,
        &reason,
        &err,
        "give the CA certificate with --ca FILE",
    );
    assert!(reason.contains("is not trusted"), "{reason}");
}

#[test]
fn without_server_a_failed_lookup_says_to_give_server() {
    let netns = Command::new("unshare")
        .args(["-rn", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !netns {
        eprintln!(
            "skipped: no network namespace here (unshare -rn); the lookup must not leave the host"
        );
        return;
    }
    let (st, reason, err) = send_with(&["--jid", "cli1@jet.test"], "Cargo.toml", true);
    one_line_with(
        "no --server",
        st,
        &reason,
        &err,
        "cannot find the XMPP server of jet.test",
    );
    assert!(reason.contains("--server HOST[:PORT]"), "{reason}");
}

/// `jet send --to PEER` from `user` (bounded); the error event's reason
/// and how long it took.
fn send_to(srv: &Server, user: &str, peer: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut p = Proc::spawn(srv.jet("send", user, &["--to", peer, "Cargo.toml"]));
    let st = p.wait_within(Duration::from_secs(30));
    assert_eq!(st.code(), Some(1), "{}", p.stderr());
    let reason = p
        .all_events()
        .into_iter()
        .find(|e| e["event"] == "error")
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no error event: {}", p.stderr()));
    (reason, started.elapsed())
}

#[test]
fn a_peer_without_domain_a_server_and_an_unreachable_domain_are_told_at_once() {
    let Some(srv) = server() else { return };
    let d = &srv.domain;
    let (r, took) = send_to(&srv, "cli9", "romeo");
    assert!(
        r.contains(&format!(
            "\"romeo\" has no domain: give the peer as romeo@{d}"
        )),
        "{r}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    let (r, _) = send_to(&srv, "cli9", d);
    assert!(
        r.contains(&format!("{d} is a server, not an account")),
        "{r}"
    );
    // The test server does not talk to other domains: it says so at once
    // (no packet leaves the host).
    let (r, took) = send_to(&srv, "cli9", "romeo@nowhere.invalid");
    assert!(r.starts_with("nowhere.invalid cannot be reached"), "{r}");
    assert!(
        took < Duration::from_secs(3),
        "answered at once, not after --wait: {took:?}"
    );
}

#[test]
fn an_offline_account_is_told_from_one_that_may_not_exist() {
    let Some(srv) = server() else { return };
    // cli10 shares its presence with cli9, and is offline.
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(srv.pair("cli9", "cli10"));
    let (r, _) = send_to(&srv, "cli9", &srv.jid("cli10"));
    assert!(
        r.contains(&format!(
            "{} is offline (its account exists",
            srv.jid("cli10")
        )),
        "{r}"
    );
    // An account the server will not tell about (it does not exist, or does
    // not share its presence): said so, with what to do if it exists.
    let (r, _) = send_to(&srv, "cli9", &srv.jid("nobody-here"));
    assert!(
        r.contains("is offline or does not share its presence with you")
            && r.contains(&format!("jet receive --from {}", srv.jid("cli9"))),
        "{r}"
    );
}

/// An offer of a name that exists: without `--rename` it is declined and
/// the sender is told why; with `--rename` it is saved as `NAME (1).EXT`
/// (the existing file untouched), and said so.
#[test]
fn a_taken_name_is_declined_with_why_or_saved_under_a_free_name() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.pdf"), b"mine").unwrap();
    let f = random_file(tmp.path(), "report.pdf", 5000);
    let args = |extra: &'static [&'static str]| {
        let mut a = vec![
            "--dir".to_string(),
            dir.to_str().unwrap().to_string(),
            "--yes".into(),
            "--timeout".into(),
            "40".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let argv = args(&[]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let recv = Proc::spawn(srv.jet("receive", "cli11", &argv));
    let to = recv.ready_jid();
    let mut p = send(&srv, "cli12", &to, &f);
    assert!(
        !p.wait().success(),
        "an offer of a taken name must be declined"
    );
    assert!(
        p.stderr().contains(&format!(
            "{to} declined the transfer: report.pdf already exists there"
        )),
        "{}",
        p.stderr()
    );
    // The receiver says so, with the flag that saves under a free name.
    let err = recv.event("error", Duration::from_secs(10));
    let reason = err["reason"].as_str().unwrap();
    assert!(
        reason.contains("report.pdf already exists there (--rename saves under a free name)"),
        "{reason}"
    );
    drop(recv);
    assert_eq!(std::fs::read(dir.join("report.pdf")).unwrap(), b"mine");

    let argv = args(&["--rename", "--once"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut recv = Proc::spawn(srv.jet("receive", "cli11", &argv));
    let to = recv.ready_jid();
    let mut p = send(&srv, "cli12", &to, &f);
    assert!(p.wait().success(), "sender: {}", p.stderr());
    let renamed = recv.event("renamed", Duration::from_secs(30));
    assert_eq!(renamed["file"], "report.pdf");
    assert_eq!(renamed["saved_as"], "report (1).pdf");
    let done = recv.event("done", Duration::from_secs(10));
    assert!(
        done["path"].as_str().unwrap().ends_with("report (1).pdf"),
        "{done}"
    );
    assert!(recv.wait_within(Duration::from_secs(20)).success());
    assert_eq!(std::fs::read(dir.join("report.pdf")).unwrap(), b"mine");
    assert_eq!(sha256_b64(&dir.join("report (1).pdf")), sha256_b64(&f));
}

/// On a terminal, an offer of a taken name is asked about: "n" declines
/// it (the sender hears why), "y" saves it under the free name proposed.
#[test]
fn on_a_terminal_a_taken_name_is_asked_about() {
    let Some(srv) = server() else { return };
    assert!(tmux_present(), "tmux is needed (apt-get install tmux)");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let recv = human(
        &srv,
        "receive",
        "cli13",
        &[
            "--dir",
            dir.to_str().unwrap(),
            "--from",
            &srv.jid("cli14"),
            "--once",
            "--ask-timeout",
            "20",
        ],
    );
    let term = Tmux::run(&recv);
    let pane = term.wait_for("waiting for offers", 1, Duration::from_secs(20));
    let to = online_jid(&pane);
    let f = random_file(tmp.path(), "notes.txt", 3000);
    let question = format!(
        "notes.txt from {} already exists in {}. Save it as notes (1).txt? [y/N]",
        srv.jid("cli14"),
        dir.join("").display()
    );

    let mut p = send(&srv, "cli14", &to, &f);
    term.wait_for(
        &question[question.find(" already").unwrap()..],
        1,
        Duration::from_secs(20),
    );
    term.keys(&["n", "Enter"]);
    assert!(!p.wait().success(), "an offer answered no must be declined");
    assert!(
        p.stderr()
            .contains("declined the transfer: notes.txt already exists there"),
        "{}",
        p.stderr()
    );
    term.wait_for(
        "it already exists here (--rename",
        1,
        Duration::from_secs(5),
    );

    let mut p = send(&srv, "cli14", &to, &f);
    term.wait_for(
        "Save it as notes (1).txt? [y/N]",
        2,
        Duration::from_secs(20),
    );
    term.keys(&["y", "Enter"]);
    assert!(p.wait().success(), "sender: {}", p.stderr());
    let pane = term.wait_for("[exit ", 1, Duration::from_secs(20));
    assert!(pane.contains("[exit 0]"), "receiver failed:\n{pane}");
    assert!(
        pane.contains("jet: notes.txt already exists here: saved as notes (1).txt"),
        "{pane}"
    );
    assert!(
        pane.contains("jet: received notes (1).txt: 2.93 KiB in "),
        "{pane}"
    );
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(sha256_b64(&dir.join("notes (1).txt")), sha256_b64(&f));
}

/// Our own OMEMO fingerprint is printed when the device is new and with
/// -v, not on every run.
#[test]
fn our_fingerprint_is_shown_when_new_or_with_v() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("keys");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--data-dir",
            data.to_str().unwrap(),
            "--timeout",
            "1",
            "--dir",
            tmp.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut c = human(&srv, "receive", "cli11", &args);
        // OMEMO, not the tests' stub.
        let argv: Vec<_> = c
            .get_args()
            .map(|a| {
                if a == "stub" {
                    "omemo".into()
                } else {
                    a.to_owned()
                }
            })
            .collect();
        let mut cmd = Command::new(c.get_program());
        cmd.args(argv).stdin(std::process::Stdio::null());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        c = cmd;
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("--timeout"),
            "the receiver did not run:\n{err}"
        );
        err.lines()
            .find(|l| l.starts_with("jet: OMEMO device "))
            .map(str::to_string)
    };
    let first = run(&[]).expect("the first run shows the new device");
    assert!(
        first.contains("(new;") && first.contains("· fingerprint "),
        "{first}"
    );
    assert_eq!(run(&[]), None, "shown again on a later run");
    let verbose = run(&["-v"]).expect("-v shows it");
    assert!(!verbose.contains("new"), "{verbose}");
    // The same device and fingerprint.
    let fpr = |l: &str| l.split("fingerprint ").nth(1).unwrap().to_string();
    assert_eq!(fpr(&verbose), fpr(&first));
}

/// The README's send/receive example works as written against the test
/// server with the environment `scripts/test-server jet-env` prints (no
/// --server, no --ca), peers given as bare JIDs.
#[test]
fn the_readme_example_works_with_the_test_servers_environment() {
    let Some(srv) = server() else { return };
    let dir = common::prosody_env::env_file()
        .parent()
        .unwrap()
        .to_path_buf();
    let Ok(text) = std::fs::read_to_string(dir.join("jet-env")) else {
        // Another server's env file (scripts/test-ejabberd writes none).
        assert!(
            std::env::var_os("JET_TEST_SERVER_DIR").is_some(),
            "scripts/test-server start wrote no {}",
            dir.join("jet-env").display()
        );
        return;
    };
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["JET_SERVER", "JET_CA", "JET_PASSWORD"]);
    assert_eq!(vars[0].1, srv.addr);
    // The same two settings as a config file.
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(
        config.contains(&format!("server = \"{}\"", srv.addr)),
        "{config}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let jet = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_jet"));
        c.args(args)
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .env("XDG_CONFIG_HOME", tmp.path().join("config"))
            .env("XDG_DATA_HOME", tmp.path().join("data"))
            .env_remove("JET_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let (romeo, juliet) = (srv.jid("cli17"), srv.jid("cli18"));
    let inbox = tmp.path().join("in");
    let mut recv = Proc::spawn(jet(&[
        "receive",
        "--jid",
        &juliet,
        "--from",
        &romeo,
        "--once",
        "--dir",
        inbox.to_str().unwrap(),
        "--timeout",
        "60",
        "--json",
    ]));
    recv.ready_jid();
    let f = random_file(tmp.path(), "report.pdf", 50_000);
    let mut send = Proc::spawn(jet(&[
        "send",
        "--jid",
        &romeo,
        "--to",
        &juliet,
        "--json",
        f.to_str().unwrap(),
    ]));
    assert!(
        send.wait_within(Duration::from_secs(60)).success(),
        "{}",
        send.stderr()
    );
    assert!(
        recv.wait_within(Duration::from_secs(30)).success(),
        "{}",
        recv.stderr()
    );
    assert_eq!(sha256_b64(&inbox.join("report.pdf")), sha256_b64(&f));
}
