//! Fault injection: real `jet` processes against the loopback Prosody of
//! `scripts/test-server`, with faults a transfer meets in the field.
//!
//! - A TCP relay ([`Relay`], 127.0.0.1 only) sits between one `jet` and
//!   Prosody (`--server 127.0.0.1:RELAYPORT`); the test cuts it (closes both
//!   sides and stops accepting) to simulate the server disappearing or the
//!   connection dying mid-session.
//! - A file-size limit (`prlimit --fsize`, with SIGXFSZ ignored) makes the
//!   receiver's writes fail as on a full disk (EFBIG).
//! - The sender's test hooks (`JET_TEST_RATE`, `JET_TEST_STALL_AFTER`) slow
//!   its transport streams down or stall them.
//!
//! Only the accounts `fault1` (sender) and `fault2` (receiver) are used;
//! receivers are addressed by the full JID they print. Without a server
//! these tests skip (fail with `JET_REQUIRE_SERVER=1`); every process and
//! every wait is bounded.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{random_file, server, sha256_b64, Proc, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const SENDER: &str = "fault1";
const RECEIVER: &str = "fault2";
const CHUNKED: &str = "urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0";
/// The whole-stream suite these tests name where they assert that nothing
/// is kept before the tag: between two jets the default is the chunked one.
const WHOLE: &str = "urn:xmpp:ciphers:aes-128-gcm-nopadding:0";
/// The chunked mode's plaintext chunk length (docs/chunked-format.md).
const CHUNK_LEN: u64 = 65536;

// ----- the processes ---------------------------------------------------------

/// `jet SUB` as `user` (stub envelope, JSON events), run by `program` (jet
/// itself, or a wrapper such as `sh`/`prlimit` given jet's path), connecting
/// to `addr` (Prosody or a relay).
fn jet_cmd(
    srv: &Server,
    mut program: Command,
    addr: &str,
    sub: &str,
    user: &str,
    args: &[&str],
) -> Command {
    program
        .arg(sub)
        .args(["--jid", &srv.jid(user), "--server", addr])
        .arg("--ca")
        .arg(&srv.ca)
        .args(["--envelope", "stub", "--json", "--wait", "5"])
        .args(args)
        .env("JET_PASSWORD", &srv.password)
        .env_remove("JET_TEST_CUT_AFTER")
        .env_remove("JET_TEST_RATE")
        .env_remove("JET_TEST_STALL_AFTER")
        .env("XDG_CONFIG_HOME", "/nonexistent-jet-test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    program
}

/// `jet SUB` through `addr` (a relay).
fn jet_via(srv: &Server, addr: &str, sub: &str, user: &str, args: &[&str]) -> Command {
    jet_cmd(
        srv,
        Command::new(env!("CARGO_BIN_EXE_jet")),
        addr,
        sub,
        user,
        args,
    )
}

/// `jet SUB` straight to Prosody.
fn jet(srv: &Server, sub: &str, user: &str, args: &[&str]) -> Command {
    jet_via(srv, &srv.addr, sub, user, args)
}

/// The arguments of a one-shot receiver for SENDER's offers into `out`:
/// `--once --from SENDER --timeout 50 --dir OUT`, then `extra`.
fn receive_args<'a>(sender: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--once",
        "--from",
        sender,
        "--timeout",
        "50",
        "--dir",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// Spawns a `jet receive` command and waits for its `ready` event; the
/// process and the full JID to send to.
fn ready_receiver(cmd: Command) -> (Proc, String) {
    let recv = Proc::spawn(cmd);
    let to = recv.ready_jid();
    (recv, to)
}

/// `jet send --to TO --transport TRANSPORT --cipher WHOLE FILE` through `addr`, at `rate`
/// bytes per second (test hook) if given.
fn send_via(
    srv: &Server,
    addr: &str,
    to: &str,
    transport: &str,
    file: &Path,
    rate: Option<u64>,
) -> Proc {
    let mut cmd = jet_via(
        srv,
        addr,
        "send",
        SENDER,
        &[
            "--to",
            to,
            "--transport",
            transport,
            "--cipher",
            WHOLE,
            file.to_str().unwrap(),
        ],
    );
    if let Some(rate) = rate {
        cmd.env("JET_TEST_RATE", rate.to_string());
    }
    Proc::spawn(cmd)
}

/// What these tests need beyond `common::Proc`.
trait ProcExt {
    /// The reason of the `error` event (after exit).
    fn error_reason(&self) -> String;
}

impl ProcExt for Proc {
    fn error_reason(&self) -> String {
        self.all_events()
            .into_iter()
            .find(|e| e["event"] == "error")
            .and_then(|e| e["reason"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no error event; stderr:\n{}", self.stderr()))
    }
}

/// Fails unless the process exits non-zero within `bound` with an error
/// event that contains every one of `expect`; returns the reason.
fn expect_failure(p: &mut Proc, who: &str, bound: Duration, expect: &[&str]) -> String {
    let st = p.wait_within(bound);
    assert!(!st.success(), "{who} must fail; stderr:\n{}", p.stderr());
    let reason = p.error_reason();
    for e in expect {
        assert!(
            reason.contains(e),
            "{who}'s error {reason:?} does not mention {e:?}; stderr:\n{}",
            p.stderr()
        );
    }
    reason
}

/// The files in `dir` (name → length).
fn files_in(dir: &Path) -> HashMap<String, u64> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().unwrap().len(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What an interrupted transfer leaves: never a file under the final name,
/// and at most a partial file holding an authenticated prefix of `src`
/// (whole chunks of the chunked mode; nothing in whole-stream mode).
/// Returns the partial file's length (0 when there is none).
fn assert_only_authenticated_bytes(out: &Path, src: &Path, chunked: bool) -> u64 {
    let name = src.file_name().unwrap().to_str().unwrap();
    let files = files_in(out);
    assert!(
        !files.contains_key(name),
        "a file under the final name after a failed transfer: {files:?}"
    );
    let part = format!("{name}.jet-part");
    // The partial file's durable record (`jet_core::ft_fs`) may lie beside it.
    let record = format!("{name}.jet-part.state");
    let others: Vec<_> = files
        .keys()
        .filter(|k| **k != part && **k != record)
        .collect();
    assert!(others.is_empty(), "unexpected files: {others:?}");
    let Some(&kept) = files.get(&part) else {
        return 0;
    };
    if !chunked {
        assert_eq!(
            kept, 0,
            "whole-stream mode authenticates nothing before its tag"
        );
        return 0;
    }
    assert_eq!(kept % CHUNK_LEN, 0, "kept {kept}: not whole chunks");
    let data = std::fs::read(src).unwrap();
    assert!(kept < data.len() as u64, "kept {kept}: the whole file");
    assert_eq!(
        std::fs::read(out.join(&part)).unwrap(),
        data[..kept as usize],
        "the partial file holds exactly an authenticated prefix"
    );
    kept
}

// ----- the relay -------------------------------------------------------------

/// A TCP relay on 127.0.0.1 between `jet` and Prosody. [`cut`](Relay::cut)
/// closes every connection (both sides) and stops accepting: to the client
/// the server is gone.
struct Relay {
    port: u16,
    cut: watch::Sender<bool>,
    /// Bytes relayed from the server to the client(s).
    down: Arc<AtomicU64>,
}

impl Relay {
    /// Relays to `upstream`; cuts by itself once `cut_after_down` bytes
    /// went from the server to the client, if given.
    async fn start(upstream: &str, cut_after_down: Option<u64>) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = watch::channel(false);
        let down = Arc::new(AtomicU64::new(0));
        let upstream = upstream.to_string();
        let (cut2, down2) = (cut.clone(), down.clone());
        tokio::spawn(async move {
            let mut stop = cut_rx.clone();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.wait_for(|c| *c) => return,
                };
                let Ok((client, _)) = accepted else { return };
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, cut_rx.clone(), None));
                tokio::spawn(pump(
                    sr,
                    cw,
                    cut_rx.clone(),
                    Some((down2.clone(), cut_after_down, cut2.clone())),
                ));
            }
        });
        Relay { port, cut, down }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    fn bytes_down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
}

type Counter = (Arc<AtomicU64>, Option<u64>, watch::Sender<bool>);

/// Copies one direction until EOF, an error or the cut; dropping both halves
/// closes the sockets.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
    count: Option<Counter>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = cut.wait_for(|c| *c) => return,
        };
        if *cut.borrow() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if let Some((total, limit, cutter)) = &count {
            let t = total.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            if limit.is_some_and(|l| t >= l) {
                cutter.send_replace(true);
                return;
            }
        }
    }
}

// ----- the tests -------------------------------------------------------------

/// (a) IBB carries the data through the XMPP stream; the receiver's
/// connection dies mid-transfer (its relay is cut after ~1.2 MB from the
/// server). The receiver ends non-zero, quickly, saying the XMPP connection
/// was lost; no final file; the partial file holds only authenticated
/// (whole-chunk) bytes. The sender ends non-zero with a clear message
/// (the receiver is gone). Then `receive --resume` over a fresh connection
/// and a new `send` complete the file from where it stopped, SHA-256 equal.
#[tokio::test(flavor = "multi_thread")]
async fn ibb_receiver_connection_dies_then_resume_completes() {
    let Some(srv) = server() else { return };
    let relay = Relay::start(&srv.addr, Some(1_200_000)).await;
    let relay2 = Relay::start(&srv.addr, None).await;
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let len = 2 << 20;
        let src = random_file(tmp.path(), "ibb.bin", len);
        let out = tmp.path().join("in");
        let sender = srv.jid(SENDER);
        let recv_args = receive_args(&sender, &out, &["--resume", "--transport", "ibb"]);
        let run_sender = |to: &str| {
            Proc::spawn(jet(
                &srv,
                "send",
                SENDER,
                &[
                    "--to",
                    to,
                    "--cipher",
                    CHUNKED,
                    "--transport",
                    "ibb",
                    "--ibb-block",
                    "8192",
                    src.to_str().unwrap(),
                ],
            ))
        };

        let (mut recv, to) = ready_receiver(jet_via(
            &srv,
            &relay.addr(),
            "receive",
            RECEIVER,
            &recv_args,
        ));
        let mut send = run_sender(&to);
        recv.event("started", Duration::from_secs(20));
        let deadline = Instant::now() + Duration::from_secs(40);
        while !relay.is_cut() {
            assert!(
                Instant::now() < deadline,
                "the transfer never reached the cut ({} bytes down); receiver:\n{}\nsender:\n{}",
                relay.bytes_down(),
                recv.stderr(),
                send.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let cut_at = Instant::now();
        let r = expect_failure(
            &mut recv,
            "the receiver",
            Duration::from_secs(15),
            &["XMPP connection"],
        );
        assert!(r.contains("lost"), "{r}");
        eprintln!("receiver: {r} (after {:?})", cut_at.elapsed());
        let s = expect_failure(
            &mut send,
            "the sender",
            Duration::from_secs(45),
            &[&to, "went offline"],
        );
        eprintln!("sender: {s} (after {:?})", cut_at.elapsed());
        let kept = assert_only_authenticated_bytes(&out, &src, true);
        assert!(kept > 0, "nothing kept: the cut came after 1.2 MB");

        // Resume through a fresh connection.
        let (mut recv, to) = ready_receiver(jet_via(
            &srv,
            &relay2.addr(),
            "receive",
            RECEIVER,
            &recv_args,
        ));
        let mut send = run_sender(&to);
        assert!(send.wait().success(), "resume send: {}", send.stderr());
        let done = recv.event("done", Duration::from_secs(30));
        assert!(recv.wait().success(), "resume receive: {}", recv.stderr());
        assert_eq!(done["resumed_from"].as_u64().unwrap(), kept);
        let got = out.join("ibb.bin");
        assert_eq!(PathBuf::from(done["path"].as_str().unwrap()), got);
        assert_eq!(sha256_b64(&got), sha256_b64(&src));
        assert_eq!(
            done["hash"].as_str().unwrap(),
            format!("sha-256:{}", sha256_b64(&src))
        );
        assert_eq!(files_in(&out).len(), 1, "no partial file left");
    })
    .await
    .unwrap();
}

/// (b) S5B carries the data outside the XMPP stream; the *sender's* XMPP
/// connection dies mid-transfer. Without its signalling the sender can no
/// longer learn the receiver's verdict nor be stopped by it, so it aborts at
/// once (closing the bytestream) and says that the XMPP connection was lost;
/// it does not push on blindly and then wait for a verdict that cannot come.
/// The receiver sees the bytestream end early and fails clearly, without a
/// final file and without unauthenticated bytes (whole-stream cipher: no
/// partial file at all).
#[tokio::test(flavor = "multi_thread")]
async fn s5b_sender_loses_its_xmpp_connection_mid_transfer() {
    let Some(srv) = server() else { return };
    let relay = Relay::start(&srv.addr, None).await;
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let src = random_file(tmp.path(), "s5b.bin", 4 << 20);
        let out = tmp.path().join("in");
        let sender = srv.jid(SENDER);
        let (mut recv, to) = ready_receiver(jet(
            &srv,
            "receive",
            RECEIVER,
            &receive_args(&sender, &out, &["--transport", "s5b"]),
        ));
        // 512 KiB/s: the 4 MiB file would take 8 s.
        let mut send = send_via(&srv, &relay.addr(), &to, "s5b", &src, Some(524_288));
        // Cut once a quarter of the data has arrived (over SOCKS5).
        recv.event_where("progress past 1 MiB", Duration::from_secs(30), |v| {
            v["event"] == "progress" && v["bytes"].as_u64().is_some_and(|b| b >= 1 << 20)
        });
        let relayed = relay.bytes_down();
        relay.cut();
        let cut_at = Instant::now();
        let s = expect_failure(
            &mut send,
            "the sender",
            Duration::from_secs(10),
            &["XMPP connection", "lost"],
        );
        eprintln!("sender: {s} (after {:?})", cut_at.elapsed());
        // Whole-stream mode cannot tell a cut from tampering by itself; the
        // announced size can, and the user is told the stream was cut.
        let r = expect_failure(
            &mut recv,
            "the receiver",
            Duration::from_secs(20),
            &[&sender, "truncated"],
        );
        eprintln!("receiver: {r} (after {:?})", cut_at.elapsed());
        // The data did not go through the relay.
        assert!(relayed < 1 << 20, "{relayed} bytes through the relay");
        assert_only_authenticated_bytes(&out, &src, false);
    })
    .await
    .unwrap();
}

/// (b') The other side of (b): the *receiver's* XMPP connection dies while
/// S5B data flows. The receiver stops at once ("the XMPP connection was
/// lost"), keeps no unauthenticated bytes, and closes the bytestream; the
/// sender's next write fails and it ends non-zero within a bound (it cannot
/// hear a reason from a receiver without signalling).
#[tokio::test(flavor = "multi_thread")]
async fn s5b_receiver_loses_its_xmpp_connection_mid_transfer() {
    let Some(srv) = server() else { return };
    let relay = Relay::start(&srv.addr, None).await;
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let src = random_file(tmp.path(), "s5b-r.bin", 4 << 20);
        let out = tmp.path().join("in");
        let sender = srv.jid(SENDER);
        let (mut recv, to) = ready_receiver(jet_via(
            &srv,
            &relay.addr(),
            "receive",
            RECEIVER,
            &receive_args(&sender, &out, &["--transport", "s5b"]),
        ));
        let mut send = send_via(&srv, &srv.addr, &to, "s5b", &src, Some(524_288));
        recv.event_where("progress past 1 MiB", Duration::from_secs(30), |v| {
            v["event"] == "progress" && v["bytes"].as_u64().is_some_and(|b| b >= 1 << 20)
        });
        relay.cut();
        let cut_at = Instant::now();
        let r = expect_failure(
            &mut recv,
            "the receiver",
            Duration::from_secs(10),
            &["XMPP connection was lost"],
        );
        eprintln!("receiver: {r} (after {:?})", cut_at.elapsed());
        let s = expect_failure(
            &mut send,
            "the sender",
            Duration::from_secs(15),
            &[&to, "bytestream broke", "no reason came from the receiver"],
        );
        eprintln!("sender: {s} (after {:?})", cut_at.elapsed());
        assert_only_authenticated_bytes(&out, &src, false);
    })
    .await
    .unwrap();
}

/// (c) A full disk on the receiver, simulated by a file-size limit (EFBIG;
/// SIGXFSZ ignored so that the write fails instead of killing the process).
/// The receiver reports the write error with the file it was writing, ends
/// the session with `failed-application` and that text, and leaves no file
/// under the final name (whole-stream cipher: no partial file either). The
/// sender learns why.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_on_the_receiver_ends_the_session_cleanly() {
    let Some(srv) = server() else { return };
    if Command::new("prlimit").arg("--version").output().is_err() {
        assert_ne!(
            std::env::var("JET_REQUIRE_SERVER").as_deref(),
            Ok("1"),
            "prlimit (util-linux) is missing"
        );
        eprintln!("skipping: no prlimit");
        return;
    }
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let src = random_file(tmp.path(), "big.bin", 3 << 20);
        let out = tmp.path().join("in");
        std::fs::create_dir_all(&out).unwrap();
        let sender = srv.jid(SENDER);
        // sh ignores SIGXFSZ (inherited through exec), prlimit sets a 1 MiB
        // file-size limit, then runs jet.
        let mut wrapper = Command::new("sh");
        wrapper.args([
            "-c",
            "trap '' XFSZ; exec prlimit --fsize=1048576 -- \"$@\"",
            "sh",
            env!("CARGO_BIN_EXE_jet"),
        ]);
        let (mut recv, to) = ready_receiver(jet_cmd(
            &srv,
            wrapper,
            &srv.addr,
            "receive",
            RECEIVER,
            &receive_args(&sender, &out, &["--transport", "s5b"]),
        ));
        let mut send = send_via(&srv, &srv.addr, &to, "s5b", &src, None);
        let r = expect_failure(
            &mut recv,
            "the receiver",
            Duration::from_secs(30),
            &["File too large", "big.bin.jet-part"],
        );
        eprintln!("receiver: {r}");
        let s = expect_failure(
            &mut send,
            "the sender",
            Duration::from_secs(30),
            &["failed-application", "File too large"],
        );
        eprintln!("sender: {s}");
        // The peer learns the file name, not our directories.
        assert!(!s.contains(out.to_str().unwrap()), "{s}");
        assert_only_authenticated_bytes(&out, &src, false);
    })
    .await
    .unwrap();
}

/// A `jet receive` waiting for offers (no `--once`) whose connection dies
/// exits at once with a clear error, instead of waiting for offers that can
/// no longer come until its `--timeout`.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_receiver_whose_connection_dies_exits() {
    let Some(srv) = server() else { return };
    let relay = Relay::start(&srv.addr, None).await;
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let mut recv = Proc::spawn(jet_via(
            &srv,
            &relay.addr(),
            "receive",
            RECEIVER,
            &[
                "--yes",
                "--timeout",
                "50",
                "--dir",
                tmp.path().to_str().unwrap(),
            ],
        ));
        recv.event("ready", Duration::from_secs(20));
        relay.cut();
        let r = expect_failure(
            &mut recv,
            "the receiver",
            Duration::from_secs(10),
            &["XMPP connection was lost"],
        );
        assert!(!r.contains("--timeout"), "{r}");
    })
    .await
    .unwrap();
}

/// `receive --max-size` (human sizes): a larger offer is declined before
/// any data moves; the receiver says why, and so does the sender (the
/// decline's text, issue 17).
#[test]
fn max_size_declines_a_larger_offer() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = random_file(tmp.path(), "two-k.bin", 2048);
    let out = tmp.path().join("in");
    let sender = srv.jid(SENDER);
    let (mut recv, to) = ready_receiver(jet(
        &srv,
        "receive",
        RECEIVER,
        &receive_args(&sender, &out, &["--max-size", "1k"]),
    ));
    let mut send = send_via(&srv, &srv.addr, &to, "auto", &src, None);
    expect_failure(
        &mut send,
        "the sender",
        Duration::from_secs(30),
        &[&format!(
            "{to} declined the transfer: file of 2048 bytes is larger than the limit of 1024 bytes"
        )],
    );
    // The receiver says why; `--once` means the first *accepted* session,
    // so it goes on waiting (issue 14) and takes the next, smaller file.
    let refused = recv.event("error", Duration::from_secs(30));
    let reason = refused["reason"].as_str().unwrap_or_default();
    for e in [
        format!("declined the offer from {}", srv.jid(SENDER)),
        "file of 2048 bytes is larger than the limit of 1024 bytes".to_string(),
    ] {
        assert!(reason.contains(&e), "{reason:?} does not mention {e:?}");
    }
    assert!(files_in(&out).is_empty(), "{:?}", files_in(&out));
    let small = random_file(tmp.path(), "half-k.bin", 512);
    let mut send = send_via(&srv, &srv.addr, &to, "auto", &small, None);
    let st = send.wait_within(Duration::from_secs(30));
    assert!(st.success(), "the second send: {}", send.stderr());
    let st = recv.wait_within(Duration::from_secs(30));
    assert!(
        st.success(),
        "--once ends after its accepted session; stderr:\n{}",
        recv.stderr()
    );
    let got: Vec<String> = files_in(&out).into_keys().collect();
    assert_eq!(got, ["half-k.bin"]);
}

/// A sender that stops writing without closing anything (test hook): the
/// receiver gives up after `--stall-timeout`, ends the session with
/// `timeout`, and the sender learns it, long before any other timeout.
#[test]
fn a_stalled_sender_times_out_on_the_receiver() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = random_file(tmp.path(), "stall.bin", 1 << 20);
    let out = tmp.path().join("in");
    let sender = srv.jid(SENDER);
    let (mut recv, to) = ready_receiver(jet(
        &srv,
        "receive",
        RECEIVER,
        &receive_args(
            &sender,
            &out,
            &["--stall-timeout", "2", "--transport", "s5b"],
        ),
    ));
    let mut cmd = jet(
        &srv,
        "send",
        SENDER,
        &[
            "--to",
            &to,
            "--transport",
            "s5b",
            "--cipher",
            WHOLE,
            src.to_str().unwrap(),
        ],
    );
    cmd.env("JET_TEST_STALL_AFTER", "300000");
    let mut send = Proc::spawn(cmd);
    recv.event("started", Duration::from_secs(20));
    let started = Instant::now();
    let r = expect_failure(
        &mut recv,
        "the receiver",
        Duration::from_secs(15),
        &["no data arrived for 2 s", "stalled"],
    );
    eprintln!("receiver: {r} (after {:?})", started.elapsed());
    let s = expect_failure(
        &mut send,
        "the sender",
        Duration::from_secs(15),
        &["timeout", "stalled"],
    );
    eprintln!("sender: {s}");
    assert_only_authenticated_bytes(&out, &src, false);
}

/// `receive --max-sessions 1`: while one transfer runs, a second offer is
/// ended at once with `busy` (and says the limit); the first completes.
#[test]
fn max_sessions_refuses_an_offer_beyond_the_limit_with_busy() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let big = random_file(tmp.path(), "first.bin", 1 << 20);
    let small = random_file(tmp.path(), "second.bin", 1000);
    let out = tmp.path().join("in");
    let sender = srv.jid(SENDER);
    let (mut recv, to) = ready_receiver(jet(
        &srv,
        "receive",
        RECEIVER,
        &receive_args(
            &sender,
            &out,
            &["--max-sessions", "1", "--transport", "s5b"],
        ),
    ));
    // 256 KiB/s: the first transfer takes about 4 s.
    let mut first = send_via(&srv, &srv.addr, &to, "s5b", &big, Some(262_144));
    recv.event("progress", Duration::from_secs(20));
    let mut second = send_via(&srv, &srv.addr, &to, "s5b", &small, None);
    expect_failure(
        &mut second,
        "the second sender",
        Duration::from_secs(20),
        &["busy", "too many sessions at once (limit 1)"],
    );
    assert!(first.wait().success(), "first: {}", first.stderr());
    assert!(recv.wait().success(), "receiver: {}", recv.stderr());
    assert_eq!(
        std::fs::read(out.join("first.bin")).unwrap(),
        std::fs::read(&big).unwrap()
    );
    assert!(!out.join("second.bin").exists());
}

// ----- crashes and signals (issue 15, item 4) ---------------------------------

/// `jet send --to TO --transport s5b [--cipher CIPHER] FILE`, at `rate`
/// bytes per second (test hook) if given.
fn send_with(srv: &Server, to: &str, cipher: Option<&str>, file: &Path, rate: Option<u64>) -> Proc {
    let mut args = vec!["--to", to, "--transport", "s5b"];
    if let Some(c) = cipher {
        args.extend(["--cipher", c]);
    }
    args.push(file.to_str().unwrap());
    let mut cmd = jet(srv, "send", SENDER, &args);
    if let Some(rate) = rate {
        cmd.env("JET_TEST_RATE", rate.to_string());
    }
    Proc::spawn(cmd)
}

/// Waits (bounded) until the partial file of `name` in `out` holds more
/// than `at_least` bytes.
fn wait_for_partial(out: &Path, name: &str, at_least: u64, recv: &Proc, send: &Proc) {
    let part = out.join(format!("{name}.jet-part"));
    let deadline = Instant::now() + Duration::from_secs(40);
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) <= at_least {
        assert!(
            Instant::now() < deadline,
            "the partial file never grew past {at_least} bytes; receiver:\n{}\nsender:\n{}",
            recv.stderr(),
            send.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `jet receive` killed with SIGKILL mid-transfer (no handler, no clean-up:
/// the decrypted bytes stay in `NAME.jet-part`), restarted with `--resume`
/// and offered the file again: a whole-stream suite starts over from 0 (its
/// bytes were never authenticated), the chunked suite continues from a
/// 64 KiB boundary its record vouches for. The file ends right and alone in
/// the directory.
#[test]
fn a_receiver_killed_mid_transfer_resumes_only_authenticated_bytes() {
    let Some(srv) = server() else { return };
    for (cipher, chunked) in [(Some(WHOLE), false), (Some(CHUNKED), true)] {
        let tmp = tempfile::tempdir().unwrap();
        let src = random_file(tmp.path(), "k.bin", 3 << 20);
        let out = tmp.path().join("in");
        let sender = srv.jid(SENDER);
        let recv_args = receive_args(&sender, &out, &["--resume", "--transport", "s5b"]);
        let (mut recv, to) = ready_receiver(jet(&srv, "receive", RECEIVER, &recv_args));
        // 512 KiB/s: about 6 s for the file; killed after 1 MiB.
        let mut send = send_with(&srv, &to, cipher, &src, Some(524_288));
        wait_for_partial(&out, "k.bin", 1 << 20, &recv, &send);
        recv.child.kill().unwrap(); // SIGKILL
        recv.child.wait().unwrap();
        let _ = send.child.kill();
        let _ = send.child.wait();
        let left = std::fs::metadata(out.join("k.bin.jet-part")).unwrap().len();
        assert!(left > 1 << 20, "decrypted bytes left behind: {left}");
        assert!(!out.join("k.bin").exists());

        let (mut recv, to) = ready_receiver(jet(&srv, "receive", RECEIVER, &recv_args));
        let mut send = send_with(&srv, &to, cipher, &src, None);
        let done = recv.event("done", Duration::from_secs(40));
        assert!(send.wait().success(), "resume send: {}", send.stderr());
        assert!(recv.wait().success(), "resume receive: {}", recv.stderr());
        let from = done["resumed_from"].as_u64().unwrap();
        if chunked {
            assert!(from > 0, "the chunked suite recorded nothing in 1 MiB");
            assert_eq!(
                from % CHUNK_LEN,
                0,
                "resumed from {from}: not a chunk boundary"
            );
            assert!(
                from <= left,
                "resumed from {from} past the {left} bytes left"
            );
        } else {
            assert_eq!(from, 0, "a whole-stream partial file was trusted");
        }
        assert_eq!(sha256_b64(&out.join("k.bin")), sha256_b64(&src));
        let files = files_in(&out);
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            vec!["k.bin"],
            "only the file is left: {files:?}"
        );
    }
}

/// SIGTERM (whole-stream suite) and SIGINT (chunked suite) to `jet receive`
/// mid-transfer: it exits non-zero within a bound with one line saying so,
/// the sender learns that the receiver cancelled, and only authenticated
/// bytes stay (none for whole-stream, whole chunks for the chunked suite).
#[test]
fn sigterm_and_sigint_cancel_the_session_and_keep_only_authenticated_bytes() {
    let Some(srv) = server() else { return };
    for (signal, cipher, chunked) in [("TERM", Some(WHOLE), false), ("INT", Some(CHUNKED), true)] {
        let tmp = tempfile::tempdir().unwrap();
        let src = random_file(tmp.path(), "sig.bin", 3 << 20);
        let out = tmp.path().join("in");
        let sender = srv.jid(SENDER);
        let recv_args = receive_args(&sender, &out, &["--resume", "--transport", "s5b"]);
        let (mut recv, to) = ready_receiver(jet(&srv, "receive", RECEIVER, &recv_args));
        let mut send = send_with(&srv, &to, cipher, &src, Some(524_288));
        wait_for_partial(&out, "sig.bin", 1 << 20, &recv, &send);
        let st = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(recv.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let r = expect_failure(
            &mut recv,
            "the receiver",
            Duration::from_secs(10),
            &[&format!("interrupted by SIG{signal}")],
        );
        let lines: Vec<_> = recv
            .stderr()
            .lines()
            .filter(|l| l.contains("interrupted"))
            .map(str::to_string)
            .collect();
        assert_eq!(lines.len(), 1, "one line: {lines:?}");
        eprintln!("receiver: {r}");
        let s = expect_failure(
            &mut send,
            "the sender",
            Duration::from_secs(20),
            &["cancel"],
        );
        eprintln!("sender: {s}");
        let kept = assert_only_authenticated_bytes(&out, &src, chunked);
        if chunked {
            assert!(kept > 0, "the chunked suite kept nothing of 1 MiB");
        } else {
            assert!(files_in(&out).is_empty(), "{:?}", files_in(&out));
        }
    }
}

// ----- limits (issue 15, item 6) ---------------------------------------------

/// `--max-sessions-per-peer 1`: while one transfer from a peer runs, a
/// second offer from the same peer is ended with `busy` (saying the
/// per-peer limit), although the total limit has room.
#[test]
fn max_sessions_per_peer_refuses_a_second_offer_from_the_same_peer() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let big = random_file(tmp.path(), "first.bin", 1 << 20);
    let small = random_file(tmp.path(), "second.bin", 1000);
    let out = tmp.path().join("in");
    let sender = srv.jid(SENDER);
    let (mut recv, to) = ready_receiver(jet(
        &srv,
        "receive",
        RECEIVER,
        &receive_args(
            &sender,
            &out,
            &[
                "--max-sessions",
                "4",
                "--max-sessions-per-peer",
                "1",
                "--transport",
                "s5b",
            ],
        ),
    ));
    let mut first = send_via(&srv, &srv.addr, &to, "s5b", &big, Some(262_144));
    recv.event("progress", Duration::from_secs(20));
    let mut second = send_via(&srv, &srv.addr, &to, "s5b", &small, None);
    expect_failure(
        &mut second,
        "the second sender",
        Duration::from_secs(20),
        &["busy", "limit 1 per peer"],
    );
    assert!(first.wait().success(), "first: {}", first.stderr());
    assert!(recv.wait().success(), "receiver: {}", recv.stderr());
    assert!(out.join("first.bin").exists());
    assert!(!out.join("second.bin").exists());
}

/// `--from` applies before the limits: with `--max-sessions 2`, one
/// transfer running and a stranger's offer arriving, the stranger is
/// declined at once (not queued, holding a slot), and a second offer from
/// the allowed peer still gets the free slot and completes.
#[test]
fn strangers_are_declined_before_they_take_a_slot() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let big = random_file(tmp.path(), "first.bin", 1 << 20);
    let small = random_file(tmp.path(), "second.bin", 1000);
    let evil = random_file(tmp.path(), "stranger.bin", 1000);
    let out = tmp.path().join("in");
    let sender = srv.jid(SENDER);
    let (recv, to) = ready_receiver(jet(
        &srv,
        "receive",
        RECEIVER,
        &[
            "--from",
            &sender,
            "--timeout",
            "50",
            "--dir",
            out.to_str().unwrap(),
            "--max-sessions",
            "2",
            "--transport",
            "s5b",
        ],
    ));
    // 256 KiB/s: the first transfer takes about 4 s.
    let mut first = send_via(&srv, &srv.addr, &to, "s5b", &big, Some(262_144));
    recv.event("progress", Duration::from_secs(20));
    let stranger_at = Instant::now();
    let mut stranger = Proc::spawn(jet(
        &srv,
        "send",
        "mallory",
        &["--to", &to, "--transport", "s5b", evil.to_str().unwrap()],
    ));
    expect_failure(
        &mut stranger,
        "the stranger",
        Duration::from_secs(20),
        &["declined"],
    );
    eprintln!("stranger declined after {:?}", stranger_at.elapsed());
    assert!(
        !first
            .child
            .try_wait()
            .unwrap()
            .is_some_and(|st| st.success()),
        "the stranger was declined only after the first transfer"
    );
    let mut second = send_via(&srv, &srv.addr, &to, "s5b", &small, None);
    assert!(second.wait().success(), "second: {}", second.stderr());
    assert!(first.wait().success(), "first: {}", first.stderr());
    recv.event_where("second done", Duration::from_secs(20), |e| {
        e["event"] == "done"
            && e["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("second.bin"))
    });
    drop(recv);
    assert_eq!(
        std::fs::read(out.join("second.bin")).unwrap(),
        std::fs::read(&small).unwrap()
    );
    assert!(!out.join("stranger.bin").exists());
}
