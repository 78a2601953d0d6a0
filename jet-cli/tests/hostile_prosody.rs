//! Hostile offers to a real `jet receive` through the loopback Prosody.
//!
//! The attacker is jet's own engine (a `Driver` on an `XmppChannel` as
//! `hostile1`) whose outgoing stanzas a wrapper edits before they reach the
//! server: what arrives at the victim (`jet receive` as `hostile2`) went
//! through a real XMPP server, its parser and its routing. Each case checks
//! the victim's outcome (exit, message), that the attacker's session ended
//! with a reason, and that nothing was written outside the target directory
//! or under a final name. The in-memory twin of this suite, with wire
//! attacks, is `jet-envelopes/tests/hostile.rs`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{random_file, server, Proc, Server};
use jet_core::channel::{IqFilter, StanzaChannel};
use jet_core::driver::{Driver, DriverConfig};
use jet_core::envelope::EnvelopeBackend;
use jet_core::error::ChannelError;
use jet_core::ft_app::{FileOffer, LocalFile};
use jet_core::jid::FullJid;
use jet_core::minidom::Element;
use jet_core::ns;
use jet_core::session::JetConfig;
use jet_core::transport::TransportAdapter;
use jet_core::xmpp::XmppChannel;
use jet_transports::{IbbConfig, IbbTransport};
use tokio::sync::mpsc;

type Edit = Arc<dyn Fn(&mut Element) + Send + Sync>;

/// An XMPP channel whose outgoing session-initiate is edited first.
struct Editing {
    inner: Arc<XmppChannel>,
    edit: Edit,
}

impl Editing {
    fn apply(&self, mut st: Element) -> Element {
        let initiate = st
            .get_child("jingle", ns::JINGLE)
            .is_some_and(|j| j.attr("action") == Some("session-initiate"));
        if initiate {
            (self.edit)(&mut st);
        }
        st
    }
}

#[async_trait]
impl StanzaChannel for Editing {
    fn local_jid(&self) -> FullJid {
        self.inner.local_jid()
    }
    async fn request(&self, iq: Element) -> Result<Element, ChannelError> {
        self.inner.request(self.apply(iq)).await
    }
    async fn send(&self, stanza: Element) -> Result<(), ChannelError> {
        self.inner.send(self.apply(stanza)).await
    }
    fn subscribe(&self, filter: IqFilter) -> mpsc::UnboundedReceiver<Element> {
        self.inner.subscribe(filter)
    }
}

fn content(st: &mut Element) -> &mut Element {
    st.get_child_mut("jingle", ns::JINGLE)
        .and_then(|j| j.get_child_mut("content", ns::JINGLE))
        .expect("a content")
}

fn file(st: &mut Element) -> &mut Element {
    content(st)
        .get_child_mut("description", ns::JINGLE_FT)
        .and_then(|d| d.get_child_mut("file", ns::JINGLE_FT))
        .expect("a <file/>")
}

fn set_text(parent: &mut Element, name: &str, text: &str) {
    let _ = parent.remove_child(name, ns::JINGLE_FT);
    parent.append_child(Element::builder(name, ns::JINGLE_FT).append(text).build());
}

/// Every file under `root`, relative.
fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

struct Outcome {
    /// The attacker's session result.
    attacker: Result<u64, jet_core::Error>,
    /// The victim's JSON events and stderr.
    events: Vec<serde_json::Value>,
    stderr: String,
}

/// Offers `payload.bin` (4 KiB) from hostile1 to a `jet receive --yes` on
/// hostile2 writing into `root/in`, with `edit` applied to the
/// session-initiate; the victim runs until its session ends or 8 s.
async fn attack(srv: &Server, root: &Path, edit: Edit) -> Outcome {
    let out = root.join("in");
    let src = random_file(root, "payload.bin", 4096);
    let victim = Proc::spawn(srv.jet(
        "receive",
        "hostile2",
        &[
            "--yes",
            "--once",
            "--transport",
            "ibb",
            "--timeout",
            "8",
            "--dir",
            out.to_str().unwrap(),
        ],
    ));
    let ready = tokio::task::spawn_blocking(move || {
        let r = victim.event("ready", Duration::from_secs(20));
        (victim, r)
    })
    .await
    .unwrap();
    let (mut victim, ready) = ready;
    let target: FullJid = ready["jid"].as_str().unwrap().parse().unwrap();

    let ch = Arc::new(
        XmppChannel::connect(srv.config("hostile1").resource("attacker"))
            .await
            .unwrap(),
    );
    let channel: Arc<dyn StanzaChannel> = Arc::new(Editing {
        inner: ch.clone(),
        edit,
    });
    let suite = jet_ciphers::CipherRegistry::default()
        .get(ns::CIPHER_AES_128_GCM)
        .unwrap();
    let envelope: Arc<dyn EnvelopeBackend> = Arc::new(jet_envelopes::stub::StubEnvelope::new());
    let transport: Arc<dyn TransportAdapter> = Arc::new(IbbTransport::new(IbbConfig {
        block_size: 1024,
        ..IbbConfig::default()
    }));
    let (driver, _incoming) = Driver::start(
        channel,
        JetConfig::new(vec![suite], vec![envelope]),
        vec![transport],
        DriverConfig::default(),
    );
    let offer = Arc::new(FileOffer::new(
        LocalFile::describe(&src).await.unwrap(),
        None,
    ));
    let attacker = tokio::time::timeout(Duration::from_secs(30), driver.initiate(target, offer))
        .await
        .expect("the attacker's session ended within 30 s");
    let (events, stderr) = tokio::task::spawn_blocking(move || {
        let _ = victim.wait();
        (victim.all_events(), victim.stderr())
    })
    .await
    .unwrap();
    let _ = ch.disconnect().await;
    Outcome {
        attacker,
        events,
        stderr,
    }
}

/// The victim told its user (stderr and a JSON `refused` event) that it
/// refused the offer, with `reason`.
fn assert_refused_and_told(o: &Outcome, reason: &str) {
    assert!(
        o.stderr.contains("refused an offer from hostile1"),
        "the victim said nothing:\n{}",
        o.stderr
    );
    assert!(
        o.events
            .iter()
            .any(|e| e["event"] == "refused" && e["reason"] == reason),
        "no refused event with {reason}: {:?}",
        o.events
    );
}

fn reason_of<T>(r: &Result<T, jet_core::Error>) -> String {
    match r {
        Err(jet_core::Error::Terminated { reason, .. }) => reason.clone(),
        Err(e) => format!("{e}"),
        Ok(_) => "success".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_offers_through_a_real_server() {
    let Some(srv) = server() else { return };
    srv.pair("hostile1", "hostile2").await;

    // 1. Path traversal in <name>: the file lands inside the target
    //    directory under a harmless name, or not at all; never outside.
    let tmp = tempfile::tempdir().unwrap();
    let o = attack(
        &srv,
        tmp.path(),
        Arc::new(|st: &mut Element| set_text(file(st), "name", "../../escape.bin")),
    )
    .await;
    let files = files_under(tmp.path());
    assert!(
        files
            .iter()
            .all(|f| f == "payload.bin" || f.starts_with("in/")),
        "written outside the target directory: {files:?}\n{}",
        o.stderr
    );
    assert!(
        !tmp.path().join("escape.bin").exists()
            && !tmp.path().parent().unwrap().join("escape.bin").exists()
    );

    // 2. An absolute path in <name>, pointing next to the target directory.
    let tmp = tempfile::tempdir().unwrap();
    let abs = tmp.path().join("abs.bin").display().to_string();
    let o = attack(
        &srv,
        tmp.path(),
        Arc::new(move |st: &mut Element| set_text(file(st), "name", &abs)),
    )
    .await;
    assert!(
        !tmp.path().join("abs.bin").exists(),
        "an absolute <name> was honoured: {:?}\n{}",
        files_under(tmp.path()),
        o.stderr
    );

    // 3. An envelope type nobody knows: refused before any byte moves.
    let tmp = tempfile::tempdir().unwrap();
    let o = attack(
        &srv,
        tmp.path(),
        Arc::new(|st: &mut Element| {
            if let Some(s) = content(st).get_child_mut("security", ns::JET) {
                jet_core::xml::ElementExt::set_a(s, "type", "urn:example:rot13");
            }
        }),
    )
    .await;
    assert_eq!(reason_of(&o.attacker), "security-error", "{}", o.stderr);
    assert!(files_under(&tmp.path().join("in")).is_empty());
    assert_refused_and_told(&o, "security-error");

    // 4. A huge <size>: refused by the receiver's size limit.
    let tmp = tempfile::tempdir().unwrap();
    let o = attack(
        &srv,
        tmp.path(),
        Arc::new(|st: &mut Element| set_text(file(st), "size", "1125899906842624")),
    )
    .await;
    assert!(o.attacker.is_err(), "a 1 PiB offer was accepted");
    assert!(
        o.stderr.contains("declined the offer from hostile1")
            && o.stderr.contains("larger than the limit"),
        "the victim must say why it declined:\n{}",
        o.stderr
    );
    assert!(
        files_under(&tmp.path().join("in")).is_empty(),
        "{:?}",
        files_under(tmp.path())
    );

    // 5. The security element removed: JET required, plaintext refused.
    let tmp = tempfile::tempdir().unwrap();
    let o = attack(
        &srv,
        tmp.path(),
        Arc::new(|st: &mut Element| {
            let _ = content(st).remove_child("security", ns::JET);
        }),
    )
    .await;
    assert!(o.attacker.is_err(), "a plaintext offer was accepted");
    assert!(
        files_under(&tmp.path().join("in")).is_empty(),
        "plaintext bytes were written: {:?}",
        files_under(tmp.path())
    );
    assert_refused_and_told(&o, "security-error");
}
