//! Trust policy and replays end to end over the loopback Prosody (issue
//! 15, items 1 to 3): `jet send` / `receive` / `serve` as separate
//! processes, `jet keys trust` in between.
//!
//! * OMEMO, blind trust before verification: once the sender verified the
//!   receiver's device, a device that appears later in the receiver's PEP
//!   device list (here: published by a second `jet` with a fresh store on
//!   the same account, which is what a server adding a device looks like
//!   to the sender) is neither sealed to nor accepted from, until
//!   `jet keys trust` marks its fingerprint.
//! * OX key pinning: a receiver pins the sender's first key; after the
//!   sender's account publishes a new key, envelopes signed by it are
//!   refused until `jet keys trust`.
//! * Replay: a request carrying a transport secret the host already used is
//!   refused by a restarted `jet serve` (its per-account record).
//!
//! Needs `scripts/test-server start`; skips without it unless
//! `JET_REQUIRE_SERVER=1`. Every process and wait is bounded.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{random_file, server, Proc, Server};
use jet_core::xmpp::XmppChannel;

const T: Duration = Duration::from_secs(30);

fn keys(dir: &Path, jid: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jet"))
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .args(["--jid", jid])
        .stdin(Stdio::null())
        .output()
        .expect("running jet keys");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `(device id, fingerprint without spaces)` of the OMEMO store in `dir`.
fn omemo_identity(dir: &Path, jid: &str) -> (String, String) {
    let (ok, shown) = keys(dir, jid, &["show"]);
    assert!(ok, "{shown}");
    let rest = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("omemo device "))
        .unwrap_or_else(|| panic!("no device in {shown:?}"));
    let (id, fpr) = rest.split_once("  ").unwrap();
    let fpr: String = fpr
        .split("  (")
        .next()
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert_eq!(fpr.len(), 64, "{shown}");
    (id.trim().to_string(), fpr)
}

fn ox_fingerprint(dir: &Path, jid: &str) -> String {
    let (ok, shown) = keys(dir, jid, &["show"]);
    assert!(ok, "{shown}");
    shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("ox "))
        .unwrap_or_else(|| panic!("no OX key in {shown:?}"))
        .trim()
        .to_string()
}

fn receive(srv: &Server, user: &str, env: &str, from: &str, dir: &Path, out: &Path) -> Proc {
    Proc::spawn(srv.jet_env(
        "receive",
        user,
        env,
        &[
            "--once",
            "--from",
            &srv.jid(from),
            "--timeout",
            "40",
            "--data-dir",
            dir.to_str().unwrap(),
            "--dir",
            out.to_str().unwrap(),
        ],
    ))
}

fn send(srv: &Server, user: &str, env: &str, to: &str, dir: &Path, file: &Path) -> Proc {
    Proc::spawn(srv.jet_env(
        "send",
        user,
        env,
        &[
            "--to",
            to,
            "--data-dir",
            dir.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    ))
}

/// One transfer that must succeed; returns (sender, receiver) processes.
fn transfer_ok(
    srv: &Server,
    env: &str,
    (from, from_dir): (&str, &Path),
    (to, to_dir): (&str, &Path),
    file: &Path,
    out: &Path,
) -> (Proc, Proc) {
    let mut r = receive(srv, to, env, from, to_dir, out);
    let jid = r.ready_jid();
    let mut s = send(srv, from, env, &jid, from_dir, file);
    assert!(s.wait().success(), "send failed:\n{}", s.stderr());
    assert!(
        r.wait_within(T).success(),
        "receive failed:\n{}",
        r.stderr()
    );
    let name = file.file_name().unwrap();
    assert_eq!(
        std::fs::read(out.join(name)).unwrap(),
        std::fs::read(file).unwrap()
    );
    std::fs::remove_file(out.join(name)).unwrap();
    (s, r)
}

/// One transfer that must fail; the receiver's directory stays empty.
fn transfer_refused(
    srv: &Server,
    env: &str,
    (from, from_dir): (&str, &Path),
    (to, to_dir): (&str, &Path),
    file: &Path,
    out: &Path,
) -> (Proc, Proc) {
    let mut r = receive(srv, to, env, from, to_dir, out);
    let jid = r.ready_jid();
    let mut s = send(srv, from, env, &jid, from_dir, file);
    assert!(!s.wait().success(), "send got through:\n{}", s.stderr());
    assert!(!r.wait().success(), "receive got a file:\n{}", r.stderr());
    let left: Vec<_> = std::fs::read_dir(out)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "files left by a refused transfer: {left:?}"
    );
    (s, r)
}

/// Empties the OMEMO device lists of `users`.
async fn reset_omemo(srv: &Server, users: &[&str]) {
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

#[tokio::test(flavor = "multi_thread")]
async fn omemo_a_device_added_after_verification_is_not_used_until_trusted() {
    let Some(srv) = server() else { return };
    srv.pair("omemo1", "omemo2").await;
    reset_omemo(&srv, &["omemo1", "omemo2"]).await;
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let (da, db, dr) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("rogue"),
        );
        let out = tmp.path().join("in");
        let file = random_file(tmp.path(), "plans.bin", 40 << 10);
        let (a, b) = (srv.jid("omemo1"), srv.jid("omemo2"));

        // Nothing verified: blind trust, the transfer works.
        transfer_ok(&srv, "omemo", ("omemo1", &da), ("omemo2", &db), &file, &out);
        // omemo1 verifies omemo2's device.
        let (_, b_fpr) = omemo_identity(&db, &b);
        let (ok, t) = keys(&da, &a, &["trust", &b, &b_fpr]);
        assert!(ok && t.contains("trusted (1 device)"), "{t}");

        // A device appears in omemo2's list (a fresh store on the account).
        let (rogue_id, rogue_fpr) = omemo_identity(&dr, &b);
        // Not sealed to: the rogue receiver cannot open the envelope.
        let (s, _r) =
            transfer_refused(&srv, "omemo", ("omemo1", &da), ("omemo2", &dr), &file, &out);
        let ev = s
            .all_events()
            .into_iter()
            .find(|e| e["event"] == "new-device" && e["device"] == format!("{b}/{rogue_id}"))
            .unwrap_or_else(|| panic!("no new-device event; stderr:\n{}", s.stderr()));
        assert_eq!(ev["accepted"], false, "{ev}");
        assert_eq!(
            ev["fingerprint"].as_str().unwrap().replace(' ', ""),
            rogue_fpr
        );
        let serr = s.stderr();
        let command = format!(
            "jet keys --data-dir {} --jid {a} trust {b} {rogue_fpr}",
            da.display()
        );
        assert!(
            serr.contains(&command),
            "no exact command {command:?} in:\n{serr}"
        );
        assert!(serr.contains(&rogue_id), "{serr}");
        // The verified device is still sealed to.
        transfer_ok(&srv, "omemo", ("omemo1", &da), ("omemo2", &db), &file, &out);

        // Nor accepted from: the rogue device sends to omemo1.
        let (_s, r) =
            transfer_refused(&srv, "omemo", ("omemo2", &dr), ("omemo1", &da), &file, &out);
        let rerr = r.stderr();
        assert!(rerr.contains(&rogue_id), "{rerr}");
        assert!(
            rerr.contains(&format!("jet keys trust {b} {rogue_fpr}")),
            "the refusal must name the command:\n{rerr}"
        );

        // The user compares and trusts the new device: now both ways work.
        let (ok, t) = keys(&da, &a, &["trust", &b, &rogue_fpr]);
        assert!(ok && t.contains("trusted (1 device)"), "{t}");
        transfer_ok(&srv, "omemo", ("omemo1", &da), ("omemo2", &dr), &file, &out);
        transfer_ok(&srv, "omemo", ("omemo2", &dr), ("omemo1", &da), &file, &out);
    })
    .await
    .unwrap();
    if let Some(srv) = server() {
        reset_omemo(&srv, &["omemo1", "omemo2"]).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ox_a_new_key_is_refused_until_trusted() {
    let Some(srv) = server() else { return };
    srv.pair("ox1", "ox2").await;
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        let (da, db, da2) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("a-new"),
        );
        let out = tmp.path().join("in");
        let file = random_file(tmp.path(), "plans.bin", 40 << 10);
        let (a, b) = (srv.jid("ox1"), srv.jid("ox2"));

        // First contact: ox1's key is trusted on first use, and said so.
        let (_s, r) = transfer_ok(&srv, "ox", ("ox1", &da), ("ox2", &db), &file, &out);
        let first = ox_fingerprint(&da, &a);
        let events = r.all_events();
        assert!(events.iter().any(|e| e["event"] == "done"), "{events:?}");
        let ev = events
            .into_iter()
            .find(|e| e["event"] == "new-key")
            .unwrap_or_else(|| panic!("no new-key event:\n{}", r.stderr()));
        assert_eq!(ev["accepted"], true, "{ev}");
        assert_eq!(ev["fingerprint"].as_str(), Some(first.as_str()));
        assert!(r.stderr().contains(&first), "{}", r.stderr());

        // ox1 moves to a new key (a fresh store publishes it over PEP).
        let (_s, r) = transfer_refused(&srv, "ox", ("ox1", &da2), ("ox2", &db), &file, &out);
        let new = ox_fingerprint(&da2, &a);
        assert_ne!(new, first);
        let rerr = r.stderr();
        assert!(rerr.contains(&new) && rerr.contains(&first), "{rerr}");
        let ev = r
            .all_events()
            .into_iter()
            .find(|e| e["event"] == "new-key")
            .unwrap_or_else(|| panic!("no new-key event:\n{rerr}"));
        assert_eq!(ev["accepted"], false, "{ev}");
        assert_eq!(ev["fingerprint"].as_str(), Some(new.as_str()));
        assert!(rerr.contains(&format!("trust {a} {new}")), "{rerr}");
        let (_, listed) = keys(&db, &b, &["list", &a]);
        assert!(
            listed.contains(&format!("ox {new}  NOT trusted")),
            "{listed}"
        );

        // The user trusts it: the new key goes through.
        let (ok, t) = keys(&db, &b, &["trust", &a, &new]);
        assert!(ok && t.contains("trusted"), "{t}");
        transfer_ok(&srv, "ox", ("ox1", &da2), ("ox2", &db), &file, &out);
    })
    .await
    .unwrap();
}

/// A stub envelope that always carries the same secret, whatever it is
/// asked to seal: what a server replaying one captured `session-initiate`
/// (same envelope, same transport secret) delivers, without having to
/// capture it.
struct ReplayingStub(jet_core::TransportSecret);

#[async_trait::async_trait]
impl jet_core::envelope::EnvelopeBackend for ReplayingStub {
    fn envelope_type(&self) -> &'static str {
        jet_core::ns::ENCRYPTION_STUB
    }
    fn disco_feature(&self) -> &'static str {
        jet_core::ns::JET_STUB_FEATURE
    }
    fn is_secure(&self) -> bool {
        false
    }
    async fn seal(
        &self,
        _secret: &jet_core::TransportSecret,
        _recipient: &jet_core::jid::Jid,
    ) -> Result<jet_core::minidom::Element, jet_core::error::EnvelopeError> {
        Ok(jet_envelopes::stub::StubEnvelope::envelope_for(&self.0))
    }
    async fn open(
        &self,
        _: &jet_core::minidom::Element,
        _: &jet_core::jid::Jid,
        _: jet_core::SecretShape,
    ) -> Result<jet_core::envelope::OpenedEnvelope, jet_core::error::EnvelopeError> {
        Err(jet_core::error::EnvelopeError::Open(
            "requester only".into(),
        ))
    }
}

/// Issue 15 item 3: a `jet request` replayed to a restarted `jet serve`
/// would make the host encrypt the file again under a key and IV it already
/// used. The host's per-account record of used secrets (in its data
/// directory) survives the restart: the second request with the same
/// secret is refused with security-error and no byte is sent under it; a
/// request with a fresh secret is served.
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_request_to_a_restarted_serve_is_refused() {
    use jet_core::driver::{Driver, DriverConfig};
    use jet_core::ft::{FileHash, HashAlgo};
    use jet_core::ft_app::FileRequest;
    use jet_core::session::JetConfig;
    use jet_core::transport::TransportAdapter;
    use std::sync::Arc;

    let Some(srv) = server() else { return };
    srv.pair("user7", "user8").await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("host-data");
    let src = random_file(tmp.path(), "hosted.bin", 64 << 10);
    let hash = FileHash::of(HashAlgo::Sha256, &std::fs::read(&src).unwrap());
    let suite = jet_ciphers::CipherRegistry::default()
        .get(jet_core::ns::CIPHER_AES_128_GCM)
        .unwrap();
    let captured = jet_core::TransportSecret::generate(suite).unwrap();
    std::fs::create_dir_all(tmp.path().join("got")).unwrap();

    let ch = Arc::new(
        XmppChannel::connect(srv.config("user8").resource("replayer"))
            .await
            .unwrap(),
    );
    let requester = srv.jid("user8");
    // One request carrying `secret` to a fresh `jet serve` on the host's
    // data directory; returns the requester's result and the host.
    let run = |secret: jet_core::TransportSecret| {
        let srv = &srv;
        let ch = ch.clone();
        let data = data.clone();
        let src = src.clone();
        let requester = requester.clone();
        let hash = hash.clone();
        let out = tmp.path().join("got");
        async move {
            let host = Proc::spawn(srv.jet(
                "serve",
                "user7",
                &[
                    "--once",
                    "--from",
                    &requester,
                    "--timeout",
                    "20",
                    "--transport",
                    "ibb",
                    "--data-dir",
                    data.to_str().unwrap(),
                    src.to_str().unwrap(),
                ],
            ));
            let (host, host_jid) = tokio::task::spawn_blocking(move || {
                let j = host.ready_jid();
                (host, j)
            })
            .await
            .unwrap();
            let transport: Arc<dyn TransportAdapter> = Arc::new(jet_transports::IbbTransport::new(
                jet_transports::IbbConfig::default(),
            ));
            let (driver, _incoming) = Driver::start(
                ch,
                JetConfig::new(vec![suite], vec![Arc::new(ReplayingStub(secret))]),
                vec![transport],
                DriverConfig::default(),
            );
            let app =
                Arc::new(FileRequest::new(out, hash, Some("wanted.bin".into()), None).unwrap());
            let r = tokio::time::timeout(
                Duration::from_secs(30),
                driver.initiate(host_jid.parse().unwrap(), app),
            )
            .await
            .expect("the request ended in bounded time");
            let mut host = host;
            let host = tokio::task::spawn_blocking(move || {
                let _ = host.wait_within(T);
                host
            })
            .await
            .unwrap();
            (r, host)
        }
    };

    // First request: the host opens the secret and encrypts the file under
    // it (the requester, which sealed a secret it does not hold, cannot
    // read it: the session fails on its side, not on the host's).
    let (_r, host) = run(captured.clone()).await;
    let herr = host.stderr();
    assert!(!herr.contains("already used"), "{herr}");
    let events = host.all_events();
    // It went as far as the data: the requester (holding another key)
    // failed the stream's authentication, not the set-up.
    assert!(
        events.iter().any(|e| e["event"] == "error"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("security-error"))),
        "the host did not serve the first request: {events:?}\n{herr}"
    );
    // Replayed to the restarted host: refused before any byte.
    let (r, host) = run(captured.clone()).await;
    let err = r.expect_err("a replayed secret was served").to_string();
    assert!(err.contains("security-error"), "{err}");
    assert!(err.contains("already used"), "{err}");
    let herr = host.stderr();
    assert!(herr.contains("already used"), "host:\n{herr}");
    assert!(
        !host.all_events().iter().any(|e| e["event"] == "first-byte"),
        "the host sent data under a used secret"
    );
    // A fresh secret is served (the refusal was about the secret).
    let (_r, host) = run(jet_core::TransportSecret::generate(suite).unwrap()).await;
    assert!(!host.stderr().contains("already used"), "{}", host.stderr());
    let _ = ch.disconnect().await;
}
