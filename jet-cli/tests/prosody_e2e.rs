//! `jet send` / `receive` / `serve` / `request` / `disco` as separate
//! processes between real accounts on a loopback Prosody.
//!
//! Start the server with `scripts/test-server install && scripts/test-server
//! start` (it writes `target/test-server/env`; `JET_TEST_SERVER_DIR` moves
//! it, the variables themselves override it). Without a server these tests
//! skip with a message, unless `JET_REQUIRE_SERVER=1`, where they fail.
//! Every process and every wait is bounded; tests running in parallel use
//! distinct receiving accounts, and senders address receivers by the full
//! JID the receiver prints (except where bare-JID discovery is the point).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{random_file, server, sha256_b64, Proc, Server, CUT};
use jet_core::channel::{is_request_for, StanzaChannel};
use jet_core::ns;
use jet_core::xmpp::XmppChannel;

/// Receiver on `to` accepting from `from`; `jet send` from `from`; both
/// must succeed and the received file must equal the sent one.
/// Returns the sender's stderr.
fn transfer(
    srv: &Server,
    from: &str,
    to: &str,
    opts: &[&str],
    bare_to: bool,
    len: usize,
) -> String {
    transfer_env(srv, "stub", from, to, opts, bare_to, len)
}

/// [`transfer`] with the given envelope.
fn transfer_env(
    srv: &Server,
    envelope: &str,
    from: &str,
    to: &str,
    opts: &[&str],
    bare_to: bool,
    len: usize,
) -> String {
    transfer_logs(srv, envelope, from, to, opts, bare_to, len).0
}

/// [`transfer_env`], returning the sender's and the receiver's stderr.
fn transfer_logs(
    srv: &Server,
    envelope: &str,
    from: &str,
    to: &str,
    opts: &[&str],
    bare_to: bool,
    len: usize,
) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let src = random_file(tmp.path(), "payload.bin", len);
    let out = tmp.path().join("in");
    let from_jid = srv.jid(from);
    let mut args = vec![
        "--once",
        "--from",
        &from_jid,
        "--timeout",
        "50",
        "--dir",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(opts);
    let mut recv = Proc::spawn(srv.jet_env("receive", to, envelope, &args));
    // Every receiver event up to its done event.
    let revents = std::cell::RefCell::new(Vec::new());
    let ready = recv.event_where("ready event", Duration::from_secs(20), |e| {
        revents.borrow_mut().push(e.clone());
        e["event"] == "ready"
    });
    let to_jid = if bare_to {
        srv.jid(to)
    } else {
        ready["jid"].as_str().unwrap().to_string()
    };
    let mut sargs = vec!["--to", to_jid.as_str()];
    sargs.extend_from_slice(opts);
    sargs.push(src.to_str().unwrap());
    let mut send = Proc::spawn(srv.jet_env("send", from, envelope, &sargs));
    let st = send.wait();
    assert!(
        st.success(),
        "send failed: {st}; stderr:\n{}",
        send.stderr()
    );
    let done = recv.event_where("done event", Duration::from_secs(30), |e| {
        revents.borrow_mut().push(e.clone());
        e["event"] == "done"
    });
    let rst = recv.wait();
    assert!(
        rst.success(),
        "receive failed: {rst}; stderr:\n{}",
        recv.stderr()
    );
    let mut revents = revents.into_inner();
    revents.extend(recv.all_events());
    // Where the time went, phase by phase, in the order they ended.
    assert_eq!(
        timing_phases(&revents),
        ["login", "keys", "envelope", "session", "transfer", "close"],
        "{revents:?}"
    );
    // Between two jets over JET no plaintext hash is computed or sent (the
    // cipher authenticated every byte; a hash would reach the server in
    // the clear): the file is what was sent, and says so.
    assert_eq!(done["hash_checked"], false, "{done}");
    assert!(done["hash"].is_null(), "{done}");
    let got = PathBuf::from(done["path"].as_str().unwrap());
    assert_eq!(got, out.join("payload.bin"));
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&src).unwrap());
    let sevents = send.all_events();
    let sdone = sevents
        .iter()
        .find(|e| e["event"] == "done")
        .expect("sender done event");
    assert!(sdone["hash"].is_null(), "{sdone}");
    // Before it, exactly one first-byte event with the set-up time.
    let firsts: Vec<_> = sevents
        .iter()
        .filter(|e| e["event"] == "first-byte")
        .collect();
    assert_eq!(firsts.len(), 1, "{sevents:?}");
    let ms = firsts[0]["ms"].as_f64().expect("first-byte ms");
    assert!(ms > 0.0 && ms < 60_000.0, "set-up took {ms} ms");
    assert_eq!(
        timing_phases(&sevents),
        ["login", "keys", "disco", "envelope", "session", "transfer", "close"],
        "{sevents:?}"
    );
    // The sender's data phase ends with the session, after its first byte.
    let pos = |pred: &dyn Fn(&serde_json::Value) -> bool| sevents.iter().position(pred);
    assert!(
        pos(&|e| e["event"] == "first-byte") < pos(&|e| e["phase"] == "transfer"),
        "{sevents:?}"
    );
    (send.stderr(), recv.stderr())
}

/// The `timing` events' phases, in order; each has a duration in ms.
fn timing_phases(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "timing")
        .map(|e| {
            let ms = e["ms"].as_f64().expect("timing ms");
            assert!((0.0..60_000.0).contains(&ms), "{e}");
            e["phase"].as_str().expect("timing phase").to_string()
        })
        .collect()
}

/// The S5B `<candidate/>` elements in a `-v` stanza log, as attribute maps.
fn candidates(log: &str) -> Vec<std::collections::HashMap<String, String>> {
    log.split("<candidate ")
        .skip(1)
        .filter_map(|rest| rest.split_once("/>").map(|(attrs, _)| attrs))
        .map(|attrs| {
            attrs
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches(['\'', '"']).to_string()))
                .collect()
        })
        .collect()
}

/// The `cid`s of `<activated/>` (XEP-0260 §2.4: a proxy was activated for
/// the nominated candidate) in a `-v` stanza log.
fn activated(log: &str) -> Vec<String> {
    log.split("<activated cid=")
        .skip(1)
        .filter_map(|rest| rest.get(1..).and_then(|r| r.split(['\'', '"']).next()))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn s5b_direct_to_a_bare_jid() {
    let Some(srv) = server() else { return };
    srv.pair("user1", "user2").await;
    tokio::task::spawn_blocking(move || {
        let (slog, rlog) = transfer_logs(
            &srv,
            "stub",
            "user1",
            "user2",
            &["--transport", "s5b", "-v"],
            true,
            1 << 20,
        );
        // Both sides offered a direct candidate and a direct one won: no
        // proxy was activated.
        for log in [&slog, &rlog] {
            assert!(
                candidates(log).iter().any(|c| c["type"] == "direct"),
                "no direct candidate:\n{log}"
            );
            assert!(activated(log).is_empty(), "a proxy was used:\n{log}");
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn s5b_through_the_servers_proxy() {
    let Some(srv) = server() else { return };
    tokio::task::spawn_blocking(move || {
        let (slog, rlog) = transfer_logs(
            &srv,
            "stub",
            "user3",
            "user4",
            &["--transport", "s5b", "--no-direct", "-v"],
            false,
            512 << 10,
        );
        // --no-direct on both sides: every candidate either side saw is the
        // server's proxy (no direct one on 127.0.0.1), and the nominated one
        // was activated, so the bytes went through the proxy.
        for log in [&slog, &rlog] {
            let cands = candidates(log);
            assert!(!cands.is_empty(), "no candidate in the log:\n{log}");
            for c in &cands {
                assert_eq!(c["type"], "proxy", "{c:?}");
                assert!(c["jid"].starts_with(&srv.proxy), "{c:?}");
                if !srv.proxy_addr.is_empty() {
                    assert_eq!(format!("{}:{}", c["host"], c["port"]), srv.proxy_addr);
                }
            }
            let used = activated(log);
            assert_eq!(used.len(), 1, "one activation expected:\n{log}");
            assert!(
                cands.iter().any(|c| c["cid"] == used[0]),
                "the activated candidate {} is not one of the proxy candidates",
                used[0]
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn in_band_bytestreams() {
    let Some(srv) = server() else { return };
    tokio::task::spawn_blocking(move || {
        let log = transfer(
            &srv,
            "user5",
            "user6",
            &["--transport", "ibb", "--ibb-block", "8192", "-v"],
            false,
            200 << 10,
        );
        // -v logs the Jingle exchange, but never the stub's key material.
        assert!(log.contains("<security"), "no stanza log:\n{log}");
        assert!(
            log.contains(ns::ENCRYPTION_STUB),
            "no stub envelope:\n{log}"
        );
        let payloads: Vec<&str> = log.split("<payload").skip(1).collect();
        assert!(!payloads.is_empty(), "no stub payload in the log:\n{log}");
        for p in payloads {
            let text = p.split_once('>').map(|(_, t)| t).unwrap_or_default();
            assert!(
                text.starts_with("[redacted]</payload>"),
                "unredacted payload: {p:.80}"
            );
        }
    })
    .await
    .unwrap();
}

/// IBB behind a server's traffic shaper (ejabberd: Debian's stock
/// `c2s_shaper`, 3000 B/s per client, on the sender's connection): a slow
/// stream is not a stalled one. The blocks are the default 32 KiB, so the
/// last block in flight is acknowledged more than 30 s (the IBB IQ bound)
/// after it was sent, while acknowledgements keep coming; the receiver's
/// `--stall-timeout 20` ("no byte for 20 s": one 32 KiB block, ~44 KB in
/// base64, takes ~15 s through the shaper) does not fire although the
/// whole transfer takes twice as long, and its progress events show the
/// bytes arriving over time. Skipped on a server without a shaped port
/// (Prosody).
#[tokio::test(flavor = "multi_thread")]
async fn ibb_behind_the_servers_shaper_is_slow_not_stalled() {
    let Some(srv) = server() else { return };
    let Some(shaped) = srv.shaped() else {
        eprintln!("skipping: the {} test server has no shaped port", srv.kind);
        return;
    };
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let src = random_file(tmp.path(), "slow.bin", 100_000);
        let out = tmp.path().join("in");
        let from = srv.jid("shaped1");
        let recv = Proc::spawn(srv.jet(
            "receive",
            "shaped2",
            &[
                "--once",
                "--from",
                &from,
                "--transport",
                "ibb",
                "--stall-timeout",
                "20",
                "--timeout",
                "150",
                "--dir",
                out.to_str().unwrap(),
            ],
        ));
        let to = recv.ready_jid();
        let started = Instant::now();
        let mut send = Proc::spawn(shaped.jet(
            "send",
            "shaped1",
            // A whole-stream cipher: the receiver sees the plaintext as
            // it comes (the chunked suite, the default between two jets,
            // hands it out per 64 KiB chunk, two steps for this file).
            &[
                "--to",
                &to,
                "--transport",
                "ibb",
                "--cipher",
                "aes-128-gcm",
                src.to_str().unwrap(),
            ],
        ));
        let st = send.wait_within(Duration::from_secs(150));
        assert!(
            st.success(),
            "send failed: {st}; stderr:\n{}",
            send.stderr()
        );
        let took = started.elapsed();
        let progress = std::cell::RefCell::new(Vec::new());
        let done = recv.event_where("done event", Duration::from_secs(30), |e| {
            if e["event"] == "progress" {
                progress.borrow_mut().push(e["bytes"].as_u64().unwrap());
            }
            e["event"] == "done"
        });
        let progress = progress.into_inner();
        assert_eq!(
            std::fs::read(done["path"].as_str().unwrap()).unwrap(),
            std::fs::read(&src).unwrap()
        );
        // The shaper made this transfer longer than the stall timeout
        // (otherwise the test proves nothing) ...
        assert!(
            took > Duration::from_secs(25),
            "the shaper did not slow the transfer ({took:?}): is the shaped port shaped?"
        );
        // ... and the receiver saw the bytes arrive step by step.
        let distinct: std::collections::BTreeSet<_> = progress.iter().collect();
        assert!(distinct.len() >= 3, "progress events: {progress:?}");
        assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn request_a_file_by_hash_from_jet_serve() {
    let Some(srv) = server() else { return };
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let src = random_file(tmp.path(), "hosted.bin", 300 << 10);
        let hash = format!("sha-256:{}", sha256_b64(&src));
        let out = tmp.path().join("got");
        let requester = srv.jid("user8");
        let mut host = Proc::spawn(srv.jet(
            "serve",
            "user7",
            &[
                "--once",
                "--from",
                &requester,
                "--timeout",
                "50",
                src.to_str().unwrap(),
            ],
        ));
        let ready = host.event("ready", Duration::from_secs(20));
        let host_jid = ready["jid"].as_str().unwrap().to_string();
        let mut req = Proc::spawn(srv.jet(
            "request",
            "user8",
            &[
                "--from",
                &host_jid,
                "--hash",
                &hash,
                "--name",
                "wanted.bin",
                "--dir",
                out.to_str().unwrap(),
            ],
        ));
        let st = req.wait();
        assert!(
            st.success(),
            "request failed: {st}; stderr:\n{}",
            req.stderr()
        );
        let revents = req.all_events();
        let done = revents
            .iter()
            .find(|e| e["event"] == "done")
            .expect("done event");
        assert_eq!(done["hash"].as_str().unwrap(), hash);
        // The request's session is timed like the others' (set-up apart
        // from the data).
        let phases = timing_phases(&revents);
        for p in ["envelope", "session", "transfer"] {
            assert!(phases.iter().any(|x| x == p), "{phases:?}");
        }
        // Saved in --dir (under the name the host's description gives).
        let got = PathBuf::from(done["path"].as_str().unwrap());
        assert_eq!(got.parent().unwrap(), out, "{got:?}");
        assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&src).unwrap());
        assert!(host.wait().success(), "serve: {}", host.stderr());
        // The host's data phase is its own, not counted as set-up: its
        // first data byte was noted (without it, `transfer` is 0 and all
        // of it `session`); it lasts at least the verdict's round trip.
        let hevents = host.all_events();
        let transfer = hevents
            .iter()
            .find(|e| e["event"] == "timing" && e["phase"] == "transfer")
            .unwrap_or_else(|| panic!("{hevents:?}"));
        assert!(transfer["ms"].as_f64().unwrap() > 0.0, "{hevents:?}");
    })
    .await
    .unwrap();
}

/// The first transfer breaks after 300 kB (test hook in the sender); the
/// receiver keeps the authenticated prefix under the partial name (the
/// chunked cipher authenticates chunk by chunk; whole-stream GCM would
/// authenticate nothing before its final tag) and no final file. A second
/// `jet send` of the same file, with `receive --resume`, continues with
/// `<range offset>` in a new session with a fresh transport secret, and the
/// whole file matches.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_transfer_resumes_with_a_range() {
    let Some(srv) = server() else { return };
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let len = 1 << 20;
        let src = random_file(tmp.path(), "big.bin", len);
        let out = tmp.path().join("in");
        let romeo = srv.jid("romeo");
        let chunked = ns::CIPHER_AES_256_GCM_CHUNKED;
        let recv_args = [
            "--once",
            "--resume",
            "--from",
            romeo.as_str(),
            "--timeout",
            "50",
            "--dir",
            out.to_str().unwrap(),
            "--transport",
            "s5b",
        ];
        // First attempt: cut.
        let mut recv = Proc::spawn(srv.jet("receive", "juliet", &recv_args));
        let juliet = recv.ready_jid();
        let send_args = [
            "--to",
            juliet.as_str(),
            "--cipher",
            chunked,
            "--transport",
            "s5b",
            src.to_str().unwrap(),
        ];
        let mut cmd = srv.jet("send", "romeo", &send_args);
        cmd.env(CUT, "300000");
        let mut send = Proc::spawn(cmd);
        assert!(!send.wait().success(), "the cut transfer must fail");
        assert!(!recv.wait().success(), "the cut transfer must fail");
        assert!(!out.join("big.bin").exists(), "no final file after a cut");
        let partial: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.metadata().unwrap().len() > 0)
            // Beside it, its record (`NAME.jet-part.state`, jet_core::ft_fs).
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".state"))
            .collect();
        assert_eq!(partial.len(), 1, "one partial file");
        let kept = partial[0].metadata().unwrap().len();
        assert!(kept > 0 && kept < len as u64, "kept {kept}");
        assert_eq!(
            std::fs::read(partial[0].path()).unwrap(),
            std::fs::read(&src).unwrap()[..kept as usize],
            "the partial file holds exactly the authenticated prefix"
        );

        // Second attempt: resumes.
        let mut recv = Proc::spawn(srv.jet("receive", "juliet", &recv_args));
        let juliet = recv.ready_jid();
        let send_args = [
            "--to",
            juliet.as_str(),
            "--cipher",
            chunked,
            "--transport",
            "s5b",
            src.to_str().unwrap(),
        ];
        let mut send = Proc::spawn(srv.jet("send", "romeo", &send_args));
        assert!(send.wait().success(), "resume send: {}", send.stderr());
        let done = recv.event("done", Duration::from_secs(30));
        assert!(recv.wait().success(), "resume receive: {}", recv.stderr());
        assert_eq!(done["resumed_from"].as_u64().unwrap(), kept);
        assert_eq!(
            std::fs::read(out.join("big.bin")).unwrap(),
            std::fs::read(&src).unwrap()
        );
    })
    .await
    .unwrap();
}

/// A failing `jet`: non-zero exit within the bound, and an error event
/// and stderr that contain `expect`.
fn expect_failure(cmd: Command, expect: &str) -> String {
    let started = Instant::now();
    let mut p = Proc::spawn(cmd);
    let st = p.wait();
    assert!(!st.success(), "must fail; stderr:\n{}", p.stderr());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let err = p
        .all_events()
        .into_iter()
        .find(|e| e["event"] == "error")
        .unwrap_or_else(|| panic!("no error event; stderr:\n{}", p.stderr()));
    let reason = err["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains(expect),
        "error {reason:?} does not mention {expect:?}"
    );
    assert!(
        p.stderr().contains(expect),
        "stderr does not mention {expect:?}:\n{}",
        p.stderr()
    );
    reason
}

fn small_file(tmp: &Path) -> PathBuf {
    random_file(tmp, "small.bin", 1000)
}

#[test]
fn wrong_password_is_reported_as_such() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let f = small_file(tmp.path());
    let mut cmd = srv.jet(
        "send",
        "mallory",
        &["--to", "juliet@jet.test", f.to_str().unwrap()],
    );
    cmd.env("JET_PASSWORD", "not-the-password");
    expect_failure(cmd, "wrong password");
}

#[test]
fn a_closed_port_is_reported_as_unreachable() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let f = small_file(tmp.path());
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jet"));
    cmd.args(["send", "--jid", &srv.jid("mallory")])
        .args(["--server", &format!("127.0.0.1:{port}")])
        .arg("--ca")
        .arg(&srv.ca)
        .args(["--envelope", "stub", "--json", "--to", "juliet@jet.test"])
        .arg(&f)
        .env("JET_PASSWORD", &srv.password)
        .env("XDG_CONFIG_HOME", "/nonexistent-jet-test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    expect_failure(cmd, "cannot reach");
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let f = small_file(tmp.path());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jet"));
    cmd.args(["send", "--jid", &srv.jid("mallory"), "--server", &srv.addr])
        .args(["--envelope", "stub", "--json", "--to", "juliet@jet.test"])
        .arg(&f)
        .env("JET_PASSWORD", &srv.password)
        .env("XDG_CONFIG_HOME", "/nonexistent-jet-test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    expect_failure(cmd, "not trusted");
}

#[test]
fn an_offline_peer_is_reported() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let f = small_file(tmp.path());
    let ghost = srv.jid("ghost");
    let cmd = srv.jet("send", "mallory", &["--to", &ghost, f.to_str().unwrap()]);
    expect_failure(cmd, "offline");
}

#[test]
fn the_peer_declines_an_offer_it_did_not_ask_for() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let f = small_file(tmp.path());
    let out = tmp.path().join("in");
    let only = srv.jid("user1");
    let recv = Proc::spawn(srv.jet(
        "receive",
        "mallory",
        &[
            "--from",
            &only,
            "--timeout",
            "30",
            "--dir",
            out.to_str().unwrap(),
        ],
    ));
    let jid = recv.ready_jid();
    let cmd = srv.jet("send", "romeo", &["--to", &jid, f.to_str().unwrap()]);
    expect_failure(cmd, "declined");
    assert!(!out.join("small.bin").exists());
    drop(recv);
}

/// A client that speaks Jingle but not JET: `jet send` refuses before any
/// session starts, so the client never sees a Jingle request.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_without_jet_gets_nothing() {
    let Some(srv) = server() else { return };
    let plain = XmppChannel::connect(srv.config("mallory").resource("no-jet").features([
        ns::JINGLE,
        ns::JINGLE_FT,
        ns::JINGLE_S5B,
        ns::JINGLE_IBB,
    ]))
    .await
    .unwrap();
    let mut jingle = plain.subscribe(std::sync::Arc::new(|iq| {
        is_request_for(iq, "jingle", ns::JINGLE)
    }));
    let target = plain.local_jid().to_string();
    let srv2 = srv.clone();
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let f = small_file(tmp.path());
        let cmd = srv2.jet("send", "user1", &["--to", &target, f.to_str().unwrap()]);
        expect_failure(cmd, "does not support Jingle Encrypted Transports");
    })
    .await
    .unwrap();
    assert!(
        jingle.try_recv().is_err(),
        "the non-JET client received a Jingle request"
    );
    plain.disconnect().await.unwrap();
}

#[test]
fn disco_lists_the_jet_features_of_a_receiver() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let recv = Proc::spawn(srv.jet(
        "receive",
        "user8",
        &["--timeout", "30", "--dir", tmp.path().to_str().unwrap()],
    ));
    let jid = recv.ready_jid();
    // The disco side runs from a config file and a password file only.
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, format!("{}\n", srv.password)).unwrap();
    // Only its owner may read a password file.
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let conf = tmp.path().join("config.toml");
    std::fs::write(
        &conf,
        format!(
            "account = {:?}\nserver = {:?}\nca = {:?}\npassword_file = {:?}\n",
            srv.jid("user7"),
            srv.addr,
            srv.ca,
            pw
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jet"));
    cmd.arg("disco")
        .arg("--config")
        .arg(&conf)
        .args(["--json", &jid])
        .env_remove("JET_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut d = Proc::spawn(cmd);
    let info = d.event("disco", Duration::from_secs(20));
    assert!(d.wait().success(), "{}", d.stderr());
    assert_eq!(info["jet"], true);
    assert_eq!(info["envelopes"], serde_json::json!([ns::JET_STUB_FEATURE]));
    assert_eq!(
        info["transports"],
        serde_json::json!([ns::JINGLE_S5B, ns::JINGLE_IBB])
    );
    let ciphers: Vec<&str> = info["ciphers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in [
        ns::CIPHER_AES_128_GCM,
        ns::CIPHER_AES_256_GCM,
        ns::CIPHER_AES_256_GCM_CHUNKED,
        ns::CIPHER_CHACHA20_POLY1305,
    ] {
        assert!(ciphers.contains(&c), "{c} missing from {ciphers:?}");
    }
    drop(recv);
}

/// `jet keys ARGS --data-dir DIR --jid USER`: its stdout (must succeed).
fn keys(srv: &Server, dir: &Path, user: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_jet"))
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .args(["--jid", &srv.jid(user)])
        .stdin(Stdio::null())
        .output()
        .expect("running jet keys");
    assert!(
        out.status.success(),
        "jet keys {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `<key>` texts of the logged stanzas are redacted.
fn assert_keys_redacted(log: &str, element: &str) {
    let open = format!("<{element}");
    let parts: Vec<&str> = log.split(open.as_str()).skip(1).collect();
    assert!(!parts.is_empty(), "no <{element}> in the log:\n{log}");
    for p in parts {
        let Some((_, text)) = p.split_once('>') else {
            continue;
        };
        if text.starts_with('<') || p.split_once('>').unwrap().0.ends_with('/') {
            continue; // no text of its own
        }
        assert!(
            text.starts_with("[redacted]</"),
            "unredacted <{element}>: {text:.80}"
        );
    }
}

impl Server {
    /// Empties the OMEMO device lists of `users` (devices of earlier runs
    /// on a long-lived local server would otherwise pile up).
    async fn reset_omemo(&self, users: &[&str]) {
        for user in users {
            let ch = XmppChannel::connect(self.config(user).resource("reset"))
                .await
                .unwrap();
            let to: jet_core::jid::Jid = self.bare(user).into();
            let publish = jet_envelopes::omemo::pep::publish_device_list(&[]);
            ch.request(jet_core::channel::iq("set", "", None, &to, Some(publish)))
                .await
                .unwrap();
            ch.disconnect().await.unwrap();
        }
    }
}

/// OMEMO from the command line, the default envelope: each account gets a
/// device in its store (`--data-dir`), publishes it over PEP, and the file
/// travels under a JET-OMEMO key transport element, on S5B and then IBB
/// (the second run reuses the stored sessions). Then the receiver, with a
/// fresh store and `--trust manual`, refuses the sender's unknown device
/// (security error on both sides, nothing received) until `jet keys trust`
/// marks the fingerprint `jet keys show` printed on the sender's side.
#[tokio::test(flavor = "multi_thread")]
async fn omemo_envelope_over_s5b_and_ibb_with_trust() {
    let Some(srv) = server() else { return };
    srv.pair("omemo1", "omemo2").await;
    srv.reset_omemo(&["omemo1", "omemo2"]).await;
    tokio::task::spawn_blocking(move || {
        let keys_dir = tempfile::tempdir().unwrap();
        let d = keys_dir.path().to_str().unwrap();
        for transport in ["s5b", "ibb"] {
            let log = transfer_env(
                &srv,
                "omemo",
                "omemo1",
                "omemo2",
                &["--transport", transport, "--data-dir", d, "-v"],
                false,
                300 << 10,
            );
            assert!(
                log.contains(ns::OMEMO_LEGACY),
                "no OMEMO envelope in the log:\n{log}"
            );
            assert_keys_redacted(&log, "key");
        }
        // Both stores hold a device, and each knows the other's.
        let shown = keys(&srv, keys_dir.path(), "omemo1", &["show"]);
        // "  omemo device ID  FINGERPRINT (64 hex digits in groups)"
        let sender_fpr = shown
            .lines()
            .find_map(|l| l.trim().strip_prefix("omemo device "))
            .and_then(|rest| rest.split_once("  "))
            .map(|(_, fpr)| fpr.trim().to_string())
            .filter(|f| f.chars().filter(char::is_ascii_hexdigit).count() == 64)
            .unwrap_or_else(|| panic!("no fingerprint in {shown:?}"));
        let listed = keys(
            &srv,
            keys_dir.path(),
            "omemo2",
            &["list", &srv.jid("omemo1")],
        );
        assert!(listed.contains(&sender_fpr), "{listed}");

        // Manual trust on a fresh receiving store.
        let strict_dir = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let src = random_file(tmp.path(), "secret.bin", 50 << 10);
        let out = tmp.path().join("in");
        let from = srv.jid("omemo1");
        let recv_cmd = |out: &Path| {
            srv.jet_env(
                "receive",
                "omemo2",
                "omemo",
                &[
                    "--once",
                    "--from",
                    &from,
                    "--timeout",
                    "30",
                    "--trust",
                    "manual",
                    "--data-dir",
                    strict_dir.path().to_str().unwrap(),
                    "--dir",
                    out.to_str().unwrap(),
                ],
            )
        };
        let send_cmd = |to: &str| {
            srv.jet_env(
                "send",
                "omemo1",
                "omemo",
                &["--to", to, "--data-dir", d, src.to_str().unwrap()],
            )
        };
        let recv = Proc::spawn(recv_cmd(&out));
        let ready = recv.event("ready", Duration::from_secs(20));
        let to = ready["jid"].as_str().unwrap().to_string();
        let mut send = Proc::spawn(send_cmd(&to));
        let st = send.wait();
        assert!(!st.success(), "an untrusted sender got through");
        let refused = recv.event("new-device", Duration::from_secs(20));
        assert_eq!(refused["accepted"], false, "{refused}");
        assert_eq!(refused["fingerprint"].as_str(), Some(sender_fpr.as_str()));
        let serr = send.stderr();
        assert!(serr.contains("security"), "sender's error: {serr}");
        drop(recv);
        assert!(
            !out.join("secret.bin").exists(),
            "a file from an untrusted device"
        );

        let trusted = keys(
            &srv,
            strict_dir.path(),
            "omemo2",
            &["trust", &from, &sender_fpr],
        );
        assert!(trusted.contains("trusted"), "{trusted}");
        let mut recv = Proc::spawn(recv_cmd(&out));
        let ready = recv.event("ready", Duration::from_secs(20));
        let to = ready["jid"].as_str().unwrap().to_string();
        let mut send = Proc::spawn(send_cmd(&to));
        let st = send.wait();
        assert!(st.success(), "after trust: {}", send.stderr());
        let done = recv.event("done", Duration::from_secs(30));
        assert!(recv.wait().success(), "{}", recv.stderr());
        assert_eq!(
            std::fs::read(done["path"].as_str().unwrap()).unwrap(),
            std::fs::read(&src).unwrap()
        );
    })
    .await
    .unwrap();
}

/// OX (XEP-0373, our JET-OX profile) from the command line: each account
/// generates an OpenPGP key in its store, publishes it over PEP, fetches
/// the peer's, and the file travels on S5B and then IBB; `jet keys` then
/// lists the peer's key and exports ours.
#[tokio::test(flavor = "multi_thread")]
async fn ox_envelope_over_s5b_and_ibb() {
    let Some(srv) = server() else { return };
    srv.pair("ox1", "ox2").await;
    tokio::task::spawn_blocking(move || {
        let keys_dir = tempfile::tempdir().unwrap();
        let d = keys_dir.path().to_str().unwrap();
        for transport in ["s5b", "ibb"] {
            let log = transfer_env(
                &srv,
                "ox",
                "ox1",
                "ox2",
                &["--transport", transport, "--data-dir", d, "-v"],
                false,
                300 << 10,
            );
            assert!(log.contains("urn:xmpp:openpgp:0"), "no OX envelope:\n{log}");
            assert_keys_redacted(&log, "openpgp");
        }
        let shown = keys(&srv, keys_dir.path(), "ox1", &["show"]);
        let fpr = shown
            .lines()
            .find_map(|l| l.trim().strip_prefix("ox "))
            .unwrap_or_else(|| panic!("no OX key in {shown:?}"))
            .trim()
            .to_string();
        let listed = keys(&srv, keys_dir.path(), "ox2", &["list", &srv.jid("ox1")]);
        assert!(listed.contains(&fpr), "{listed}");
        let out = keys_dir.path().join("export");
        let exported = keys(
            &srv,
            keys_dir.path(),
            "ox1",
            &["export", "--ox", "--out", out.to_str().unwrap()],
        );
        let armored = std::fs::read_to_string(exported.lines().next().unwrap()).unwrap();
        assert!(armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    })
    .await
    .unwrap();
}

/// `cmd` without its `--envelope X` (as a user who does not choose one).
fn without_envelope(cmd: Command) -> Command {
    let mut args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let i = args.iter().position(|a| a == "--envelope").unwrap();
    args.drain(i..i + 2);
    let mut plain = Command::new(cmd.get_program());
    plain
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => plain.env(k, v),
            None => plain.env_remove(k),
        };
    }
    plain
}

/// Issue 17: `jet receive` without --envelope opens OMEMO and OX, so
/// `jet send --envelope ox` works against it; a receiver restricted to
/// OMEMO makes the OX sender say what either side can do.
#[tokio::test(flavor = "multi_thread")]
async fn a_default_receiver_opens_ox_and_a_restricted_one_says_how_to_fix_it() {
    let Some(srv) = server() else { return };
    srv.pair("cli15", "cli16").await;
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("keys");
        let d = d.to_str().unwrap();
        let out = tmp.path().join("in");
        let src = random_file(tmp.path(), "ox.bin", 200 << 10);
        let from = srv.jid("cli15");
        let recv_args = [
            "--once",
            "--from",
            &from,
            "--timeout",
            "50",
            "--dir",
            out.to_str().unwrap(),
            "--data-dir",
            d,
        ];
        let recv = Proc::spawn(without_envelope(
            srv.jet_env("receive", "cli16", "omemo", &recv_args),
        ));
        let to = recv.ready_jid();
        let mut send = Proc::spawn(srv.jet_env(
            "send",
            "cli15",
            "ox",
            &["--to", &to, "--data-dir", d, src.to_str().unwrap()],
        ));
        assert!(send.wait().success(), "{}", send.stderr());
        let mut recv = recv;
        let done = recv.event("done", Duration::from_secs(30));
        assert!(recv.wait().success(), "{}", recv.stderr());
        assert_eq!(
            std::fs::read(done["path"].as_str().unwrap()).unwrap(),
            std::fs::read(&src).unwrap()
        );

        // --envelope omemo restricts the receiver: the OX sender is told
        // what to do, and nothing starts.
        let recv = Proc::spawn(srv.jet_env("receive", "cli16", "omemo", &recv_args));
        let to = recv.ready_jid();
        let mut send = Proc::spawn(srv.jet_env(
            "send",
            "cli15",
            "ox",
            &["--to", &to, "--data-dir", d, src.to_str().unwrap()],
        ));
        assert!(!send.wait().success());
        let err = send.stderr();
        for part in [
            &format!("{to} cannot open the ox envelope"),
            "it opens omemo: send with --envelope omemo",
            "run `jet receive` without --envelope (it opens omemo and ox) or with --envelope ox",
        ] {
            assert!(err.contains(part), "{part:?} not in:\n{err}");
        }
        assert!(!out.join("ox (1).bin").exists());
    })
    .await
    .unwrap();
}

/// Issue 15 item 6: without --dir or a config `dir`, `jet receive` says
/// where files go, and calls it the home directory when it is $HOME (before
/// connecting: here to a closed port, no server needed).
#[test]
fn receive_says_where_files_go_when_it_defaults_to_home() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (home, expect) in [
        (true, "your home directory"),
        (false, "the current directory"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jet"));
        cmd.args(["receive", "--jid", "nobody@jet.test", "--server"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--envelope", "stub", "--wait", "1", "--yes", "--once"])
            .current_dir(tmp.path())
            .env(
                "HOME",
                if home {
                    tmp.path().to_path_buf()
                } else {
                    PathBuf::from("/nonexistent-home")
                },
            )
            .env("JET_PASSWORD", "x")
            .env("XDG_CONFIG_HOME", "/nonexistent-jet-test")
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let line = format!(
            "received files go to {} ({expect};",
            tmp.path().canonicalize().unwrap().display()
        );
        assert!(err.contains(&line), "{line:?} not in:\n{err}");
    }
}
