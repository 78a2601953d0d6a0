//! Interop with Libervia (Debian's libervia-backend 0.9), a deployed
//! JET-OMEMO client, on the loopback Prosody: a file from Libervia to
//! `jet receive`, and one from `jet send` to Libervia.
//!
//! Needs `scripts/test-server start` and `scripts/libervia-peer start`
//! (`scripts/test` runs both); without them the tests skip with a message,
//! unless `JET_REQUIRE_LIBERVIA=1`, where they fail. Both directions run
//! in one test: they share the jet account `jetlv` and its OMEMO store.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{random_file, server, sha256_b64, Proc};

struct Libervia {
    jid: String,
    profile: String,
    peer_user: String,
    cli: PathBuf,
    dir: PathBuf,
}

fn libervia() -> Option<Libervia> {
    let dir = std::env::var_os("JET_LIBERVIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/libervia"));
    let vars: HashMap<String, String> = std::fs::read_to_string(dir.join("env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |k: &str| vars.get(k).cloned();
    let (Some(jid), Some(profile), Some(peer), Some(cli)) = (
        get("JET_LIBERVIA_JID"),
        get("JET_LIBERVIA_PROFILE"),
        get("JET_LIBERVIA_PEER"),
        get("JET_LIBERVIA_CLI"),
    ) else {
        let why = format!(
            "no Libervia peer: {} is missing (run `scripts/libervia-peer install && \
             scripts/libervia-peer start`)",
            dir.join("env").display()
        );
        if std::env::var("JET_REQUIRE_LIBERVIA").as_deref() == Ok("1") {
            panic!("JET_REQUIRE_LIBERVIA=1 but {why}");
        }
        eprintln!("skipping: {why}");
        return None;
    };
    Some(Libervia {
        jid,
        profile,
        peer_user: peer.split('@').next().unwrap_or_default().to_string(),
        cli: PathBuf::from(cli),
        dir,
    })
}

impl Libervia {
    /// `libervia-cli ARGS` (through scripts/libervia-peer), bounded.
    fn cli(&self, args: &[&str]) -> Child {
        use std::os::unix::process::CommandExt;
        Command::new(&self.cli)
            .arg("cli")
            // Its own process group: `kill` stops the whole pipeline.
            .process_group(0)
            .args(args)
            .env("LV_TIMEOUT", "90")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running libervia-cli")
    }

    /// The tail of Libervia's backend log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("backend.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

fn kill(mut c: Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", c.id())])
        .status();
    let _ = c.kill();
    let out = c.wait_with_output().expect("libervia-cli output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until `path` holds `len` bytes (bounded).
fn wait_for_file(path: &Path, len: u64, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if std::fs::metadata(path)
            .map(|m| m.len() == len)
            .unwrap_or(false)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Mutual presence subscription between the jet account and Libervia,
/// before any OMEMO device of the jet account is published: Libervia learns
/// device lists from PEP notifications, which need its subscription.
/// `scripts/libervia-peer start` asked for Libervia's subscription; here
/// the jet account approves it and asks back, and Libervia is told to
/// approve (it would otherwise wait for its user when the two requests
/// cross).
async fn pair_with_libervia(srv: &common::Server, jet_user: &str, lv: &Libervia) {
    use jet_core::jid::BareJid;
    let lv_bare: BareJid = lv.jid.parse().unwrap();
    let jet_jid = format!("{jet_user}@{}", srv.domain);
    let ch = jet_core::xmpp::XmppChannel::connect(srv.config(jet_user).resource("pairing"))
        .await
        .unwrap();
    // Approves Libervia's request from `libervia-peer start` if it is
    // pending (it reached the server while this account was offline, and
    // Prosody routes a pending request only once: when it came), else
    // pre-approves it (RFC 6121 §3.4).
    ch.pre_approve(lv_bare.clone()).await.unwrap();
    ch.subscribe_to_presence(lv_bare.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next_approval = Instant::now() + Duration::from_millis(500);
    while ch.available_resources(&lv_bare).is_empty() {
        assert!(
            Instant::now() < deadline,
            "Libervia never let {jet_user} see its presence:\n{}",
            lv.log_tail()
        );
        if Instant::now() >= next_approval {
            let approve = lv.cli(&[
                "debug",
                "bridge",
                "method",
                "-p",
                &lv.profile,
                "subscription",
                "\"subscribed\"",
                &format!("\"{jet_jid}\""),
            ]);
            let _ = tokio::task::spawn_blocking(move || approve.wait_with_output()).await;
            next_approval = Instant::now() + Duration::from_secs(3);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And Libervia subscribed to us (our roster says `from` or `both`):
    // without it the server sends Libervia no PEP notification of our
    // OMEMO device list, and Libervia refuses to send ("no trusted device
    // with a valid session"), as seen once in CI when its own request back
    // came after this channel had gone.
    use jet_core::channel::StanzaChannel;
    let own: jet_core::jid::Jid = srv.bare(jet_user).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let roster = ch
            .request(jet_core::channel::iq(
                "get",
                "",
                None,
                &own,
                Some(jet_core::minidom::Element::builder("query", "jabber:iq:roster").build()),
            ))
            .await
            .unwrap();
        let subscribed = roster
            .get_child("query", "jabber:iq:roster")
            .into_iter()
            .flat_map(|q| q.children())
            .any(|item| {
                item.attr("jid") == Some(lv_bare.to_string().as_str())
                    && matches!(item.attr("subscription"), Some("from" | "both"))
            });
        if subscribed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Libervia never subscribed to {jet_user}'s presence:\n{}",
            lv.log_tail()
        );
        // A request Prosody holds as pending is not routed to us again:
        // approve it from our side, and have Libervia ask (again).
        ch.pre_approve(lv_bare.clone()).await.unwrap();
        let ask = lv.cli(&[
            "debug",
            "bridge",
            "method",
            "-p",
            &lv.profile,
            "subscription",
            "\"subscribe\"",
            &format!("\"{jet_jid}\""),
        ]);
        let _ = tokio::task::spawn_blocking(move || ask.wait_with_output()).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    ch.disconnect().await.unwrap();
}

/// Re-publishes the jet account's OMEMO device list as it is: a fresh PEP
/// notification for Libervia, whose caps the server may not have resolved
/// when `jet` first published (then Libervia never heard of our device).
fn nudge_device_list(srv: &common::Server, jet_user: &str) {
    use jet_core::channel::StanzaChannel;
    use jet_envelopes::omemo::pep;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ch = jet_core::xmpp::XmppChannel::connect(srv.config(jet_user).resource("nudge"))
            .await
            .unwrap();
        let own: jet_core::jid::Jid = srv.bare(jet_user).into();
        let got = ch
            .request(jet_core::channel::iq(
                "get",
                "",
                None,
                &own,
                Some(pep::fetch(jet_envelopes::omemo::xml::NODE_DEVICELIST)),
            ))
            .await
            .unwrap();
        let devices = pep::device_list_from_stanza(&got).unwrap();
        assert!(!devices.is_empty(), "jet published no OMEMO device");
        ch.request(jet_core::channel::iq(
            "set",
            "",
            None,
            &own,
            Some(pep::publish_device_list(&devices)),
        ))
        .await
        .unwrap();
        ch.disconnect().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn file_transfer_with_libervia_both_ways() {
    let Some(srv) = server() else { return };
    let Some(lv) = libervia() else { return };
    pair_with_libervia(&srv, &lv.peer_user, &lv).await;
    tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempdir().unwrap();
        // The jet account's OMEMO store lives as long as Libervia's state
        // (which caches our device list): fresh in CI, kept across local
        // runs.
        let keys = lv.dir.join("jet-keys");
        let keys_s = keys.to_str().unwrap().to_string();
        let jet_user = lv.peer_user.clone();

        // 1. Libervia -> jet receive. Libervia sends its JET-OMEMO form (an
        // OMEMO message whose own key and IV encrypt the file); jet accepts
        // it with a warning, checks the tag and Libervia's hex-in-base64
        // hash, and keeps the file.
        let src = random_file(tmp.path(), "from-libervia.bin", 300 << 10);
        let out = tmp.path().join("in");
        let recv = Proc::spawn(srv.jet_env(
            "receive",
            &jet_user,
            "omemo",
            &[
                "--once",
                "--from",
                &lv.jid,
                "--timeout",
                "120",
                "--data-dir",
                &keys_s,
                "--dir",
                out.to_str().unwrap(),
            ],
        ));
        let ready = recv.event("ready", Duration::from_secs(20));
        let me = ready["jid"].as_str().unwrap().to_string();
        // Our device is published now: let Libervia use OMEMO with us.
        let start = lv.cli(&[
            "encryption",
            "start",
            "-p",
            &lv.profile,
            "-n",
            "OLDMEMO",
            &format!("{jet_user}@{}", srv.domain),
        ]);
        let started = start.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&started.stdout).to_string();
        assert!(said.trim().is_empty(), "encryption start: {said}");
        // Libervia may not have processed the PEP notification of our new
        // device yet (it then refuses to send: no trusted device): retry.
        let mut done = None;
        let mut tries = Vec::new();
        for _attempt in 0..6 {
            nudge_device_list(&srv, &jet_user);
            let send = lv.cli(&[
                "file",
                "send",
                "-p",
                &lv.profile,
                "-e",
                src.to_str().unwrap(),
                &me,
            ]);
            let deadline = Instant::now() + Duration::from_secs(12);
            while Instant::now() < deadline {
                match recv.events.recv_timeout(Duration::from_millis(200)) {
                    Ok(v) if v["event"] == "done" => {
                        done = Some(v);
                        break;
                    }
                    Ok(v) if v["event"] == "error" => panic!(
                        "jet receive failed: {v}\n{}\nLibervia:\n{}",
                        recv.stderr(),
                        lv.log_tail()
                    ),
                    _ => {}
                }
            }
            tries.push(kill(send));
            if done.is_some() {
                break;
            }
        }
        let done = done.unwrap_or_else(|| {
            panic!(
                "no file from Libervia; jet:\n{}\nlibervia-cli: {tries:?}\nLibervia:\n{}",
                recv.stderr(),
                lv.log_tail()
            )
        });
        let got = PathBuf::from(done["path"].as_str().unwrap());
        assert_eq!(got, out.join("from-libervia.bin"));
        assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&src).unwrap());
        assert_eq!(
            done["hash"].as_str().unwrap(),
            format!("sha-256:{}", sha256_b64(&src))
        );
        let err = recv.stderr();
        assert!(
            err.contains("Libervia's form"),
            "no warning about Libervia's nonce-reusing form:\n{err}"
        );
        drop(recv);

        // 2. jet send -> Libervia. Libervia's receiver drops the <iv> of a
        // key transport element without <payload>; jet recognizes Libervia
        // (disco identity) and adds a blank payload (still TK and IV used
        // for the file only) and writes the hash as Libervia reads it.
        let src = random_file(tmp.path(), "to-libervia.bin", 200 << 10);
        let lv_dir = tmp.path().join("libervia-in");
        std::fs::create_dir_all(&lv_dir).unwrap();
        let jet_jid = format!("{jet_user}@{}", srv.domain);
        let lv_recv = lv.cli(&[
            "file",
            "receive",
            "-p",
            &lv.profile,
            "--path",
            lv_dir.to_str().unwrap(),
            "-f",
            &jet_jid,
        ]);
        // libervia-cli registers its listener with the backend first.
        std::thread::sleep(Duration::from_secs(4));
        let mut send = Proc::spawn(srv.jet_env(
            "send",
            &jet_user,
            "omemo",
            &[
                "--to",
                &lv.jid,
                "--data-dir",
                &keys_s,
                src.to_str().unwrap(),
            ],
        ));
        let st = send.wait();
        let landed = lv_dir.join("to-libervia.bin");
        let ok = wait_for_file(&landed, 200 << 10, Duration::from_secs(20));
        let lv_out = kill(lv_recv);
        assert!(
            st.success(),
            "jet send to Libervia failed: {}\nlibervia-cli: {lv_out}\nLibervia:\n{}",
            send.stderr(),
            lv.log_tail()
        );
        assert!(
            ok,
            "Libervia did not write the file; libervia-cli: {lv_out}"
        );
        assert_eq!(
            std::fs::read(&landed).unwrap(),
            std::fs::read(&src).unwrap()
        );
        assert!(
            send.all_events()
                .iter()
                .any(|e| e["event"] == "compat" && e["client"] == "Libervia"),
            "jet did not recognize Libervia"
        );
    })
    .await
    .unwrap();
}
