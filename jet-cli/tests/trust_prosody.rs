//! Trust policy end to end over the loopback Prosody (issue 15, items 1
//! and 2): `jet send` / `receive` as separate processes, `jet keys trust`
//! in between.
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
