//! The bodies of jet's fuzz targets, shared by the cargo-fuzz binaries in
//! `fuzz_targets/` (libFuzzer) and the stable `replay` runner
//! (`src/bin/replay.rs`). Each takes arbitrary bytes and must never panic;
//! where a target checks a property (round trip, one answer per request,
//! nothing unauthenticated accepted) a violation panics, which both runners
//! report as a crash.

#![allow(missing_docs)]

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jet_core::channel::{iq, StanzaChannel};
use jet_core::cipher::CipherSuite;
use jet_core::error::TransportError;
use jet_core::ft::{sanitize_file_name, FileDesc};
use jet_core::jid::{FullJid, Jid};
use jet_core::jingle::{split_jingle, JingleMessage};
use jet_core::layer::{Direction, JetStream};
use jet_core::memory::MemoryRouter;
use jet_core::minidom::Element;
use jet_core::security::Security;
use jet_core::session::{Endpoint, EngineConfig};
use jet_core::testkit::ToySuite;
use jet_core::transport::{Role, TransportAdapter, TransportContext, TransportSignals};
use jet_core::xml::BuilderExt;
use jet_core::{ns, TransportSecret};
use jet_envelopes::StubEnvelope;
use jet_transports::s5b::element::{S5bInfo, S5bTransportElement};
use jet_transports::s5b::socks::server_handshake;
use jet_transports::{IbbConfig, IbbTransport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

mod envelopes;
pub use envelopes::{gen_seeds, omemo_element, omemo_open, outcome_stats, ox_open};

// ---------------------------------------------------------------------------
// helpers

/// Inputs that got past the parser into the deep checks (accepted
/// elements, completed handshakes, sessions with events): the runners print
/// it so that a target that rejects everything is noticed.
pub static DEEP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn deep() {
    DEEP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Parses `data` as one XML element (UTF-8 only).
fn xml(data: &[u8]) -> Option<Element> {
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// Serializes and parses back: whatever jet accepted must survive the wire.
fn reparse(el: &Element) -> Element {
    let s = String::from(el);
    s.parse()
        .unwrap_or_else(|e| panic!("an element we built does not parse back: {e}: {s}"))
}

thread_local! {
    static RT: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs `f` on a per-thread current-thread runtime with a paused clock: the
/// timeouts of the code under test advance instantly when everything idles.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RT.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("a tokio runtime")
        });
        rt.block_on(f)
    })
}

/// jet-core's toy suite (testkit) under AES-256-GCM's URN and sizes (12-
/// or 16-byte IVs), standing in for the real suites: XOR with the key plus
/// a 4-byte running checksum tag, so that tampering and truncation are
/// detectable. NOT a cipher.
pub static TOY: ToySuite = ToySuite::new("urn:xmpp:ciphers:aes-256-gcm-nopadding:0", 32, &[12, 16]);

/// The suites the layer target runs: every suite of jet-ciphers' registry
/// (the streaming and chunked decryptors), plus the toy suite.
pub fn suites() -> Vec<&'static dyn CipherSuite> {
    let mut all: Vec<&'static dyn CipherSuite> =
        jet_ciphers::CipherRegistry::default().iter().collect();
    all.push(&TOY);
    all
}

// ---------------------------------------------------------------------------
// element parsers

/// `<security/>` (XEP-0391 §3): parse; what parses must round-trip.
pub fn security(data: &[u8]) {
    let Some(el) = xml(data) else { return };
    let Ok(sec) = Security::try_from(&el) else {
        return;
    };
    deep();
    let name = sec.name.clone().unwrap_or_else(|| "c".into());
    let again = Security::try_from(&reparse(&sec.to_element_for(&name)))
        .expect("a <security/> we wrote must parse back");
    assert_eq!(again.name.as_deref(), Some(name.as_str()));
    assert_eq!(again.cipher, sec.cipher);
    assert_eq!(again.envelope_type, sec.envelope_type);
    let _ = sec.cipher_is("urn:xmpp:ciphers:aes-128-gcm-nopadding:0");
}

/// The Jingle reader: `JingleMessage::from_iq` and `split_jingle` on an IQ
/// or a bare `<jingle/>`; what parses must serialize and parse back.
pub fn jingle(data: &[u8]) {
    let Some(el) = xml(data) else { return };
    if let Ok(msg) = JingleMessage::from_iq(&el) {
        deep();
        let out = reparse(&msg.to_element());
        let again = JingleMessage::try_from(&out)
            .unwrap_or_else(|e| panic!("a <jingle/> we wrote does not parse back: {e}"));
        assert_eq!(again.action, msg.action);
        assert_eq!(again.sid, msg.sid);
        assert_eq!(again.contents.len(), msg.contents.len());
        for (a, b) in again.contents.iter().zip(&msg.contents) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.security.is_some(), b.security.is_some());
        }
    }
    let jingle = el
        .get_child("jingle", ns::JINGLE)
        .cloned()
        .unwrap_or_else(|| el.clone());
    if let Ok((j, secs)) = split_jingle(&jingle) {
        // A security for a content that exists must go back in.
        let _ = jet_core::jingle::join_jingle(&j, &secs);
    }
}

/// The stub envelope's `open` (XEP-0391 §4 listings form).
pub fn stub_envelope(data: &[u8]) {
    let Some(el) = xml(data) else { return };
    let env = el
        .get_child("encrypted", ns::ENCRYPTION_STUB)
        .cloned()
        .unwrap_or(el);
    if let Ok(secret) = StubEnvelope::secret_of(&env, TOY.secret_shape()) {
        deep();
        assert_eq!(secret.key().len(), 32);
        assert!([12, 16].contains(&secret.iv().len()));
        // Sealing it again gives the same secret back.
        let again = StubEnvelope::secret_of(
            &reparse(&StubEnvelope::envelope_for(&secret)),
            TOY.secret_shape(),
        )
        .expect("a stub envelope we wrote must open");
        assert_eq!(again.key(), secret.key());
        assert_eq!(again.iv(), secret.iv());
        // No key bytes in Debug.
        let dbg = format!("{secret:?}");
        assert!(dbg.contains("redacted"), "{dbg}");
    }
}

/// S5B `<transport/>` and transport-info payloads (XEP-0260).
pub fn s5b_element(data: &[u8]) {
    let Some(el) = xml(data) else { return };
    if let Ok(t) = S5bTransportElement::from_element(&el) {
        deep();
        let again = S5bTransportElement::from_element(&reparse(&t.to_element()))
            .unwrap_or_else(|e| panic!("an S5B <transport/> we wrote does not parse back: {e}"));
        assert_eq!(again, t);
    }
    let sid = el.attr("sid").unwrap_or("s").to_string();
    if let Ok(info) = S5bInfo::from_element(&el, &sid) {
        let again = S5bInfo::from_element(&reparse(&info.to_element(&sid)), &sid)
            .expect("an S5B info we wrote must parse back");
        assert_eq!(again, info);
    }
}

/// The XEP-0234 `<description>`/`<file>` parser and `sanitize_file_name`.
pub fn file_desc(data: &[u8]) {
    // The raw bytes as a name.
    let name = String::from_utf8_lossy(data);
    check_sanitized(&name);
    let Some(el) = xml(data) else { return };
    let desc = FileDesc::from_description(&el).or_else(|_| FileDesc::from_file(&el));
    let Ok(desc) = desc else { return };
    deep();
    if let Some(n) = &desc.name {
        check_sanitized(n);
    }
    let again = FileDesc::from_description(&reparse(&desc.to_description()))
        .unwrap_or_else(|e| panic!("a <file/> we wrote does not parse back: {e}"));
    assert_eq!(again, desc);
}

fn check_sanitized(name: &str) {
    if let Ok(safe) = sanitize_file_name(name) {
        assert!(!safe.is_empty());
        assert!(
            !safe.contains(['/', '\\', '\0']),
            "sanitized {name:?} into {safe:?}"
        );
        assert!(
            safe != "." && safe != "..",
            "sanitized {name:?} into {safe:?}"
        );
        assert!(!safe.chars().any(char::is_control));
        assert!(safe.len() <= 255);
        assert!(
            std::path::Path::new(&safe).components().count() == 1,
            "{safe:?} is more than one path component"
        );
    }
}

// ---------------------------------------------------------------------------
// SOCKS5 server handshake

/// A duplex end that reads the fuzz input in chunks and swallows writes.
struct Scripted {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (self.input.len() - self.pos)
            .min(buf.remaining())
            .min(self.chunk);
        let start = self.pos;
        buf.put_slice(&self.input[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

const HASH: &str = "972b7bf47291ca609517f67f86b5081086052dad";

/// The SOCKS5 server side of S5B fed arbitrary client bytes: it accepts
/// only a CONNECT to exactly the session hash, and ends (EOF) without hanging.
pub fn socks5_server(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let mut s = Scripted {
        input: rest.to_vec(),
        pos: 0,
        chunk: usize::from(chunk % 16) + 1,
    };
    let r = block_on(async {
        tokio::time::timeout(Duration::from_secs(5), server_handshake(&mut s, HASH)).await
    });
    let r = r.expect("the SOCKS5 server handshake hung on a finite input");
    if r.is_ok() {
        deep();
        let hash = HASH.as_bytes();
        assert!(
            rest.windows(hash.len()).any(|w| w == hash),
            "accepted a CONNECT without the session hash"
        );
    }
}

// ---------------------------------------------------------------------------
// IBB

struct NoSignals;

#[async_trait]
impl TransportSignals for NoSignals {
    async fn send_info(&mut self, _t: Element) -> Result<(), TransportError> {
        Ok(())
    }
    async fn recv_info(&mut self) -> Result<Element, TransportError> {
        std::future::pending().await
    }
}

fn romeo() -> FullJid {
    "romeo@montague.lit/orchard".parse().unwrap()
}
fn juliet() -> FullJid {
    "juliet@capulet.lit/balcony".parse().unwrap()
}
fn mallory() -> FullJid {
    "mallory@evil.lit/x".parse().unwrap()
}

/// IBB (XEP-0261/XEP-0047), receiving side: a hostile initiator sends a
/// sequence of open/data/close IQs with fuzzed attributes and payloads.
/// Properties: no panic, no hang, every request answered exactly once, and
/// the reader gets exactly the blocks that were acknowledged, in order.
pub fn ibb(data: &[u8]) {
    let mut u = Unstructured::new(data);
    block_on(async move {
        let router = MemoryRouter::new();
        let answers: Arc<Mutex<Vec<Element>>> = Arc::default();
        let a2 = answers.clone();
        router.set_tap(Arc::new(move |from, st| {
            if *from == juliet() && matches!(st.attr("type"), Some("result") | Some("error")) {
                a2.lock().unwrap().push(st.clone());
            }
        }));
        let jc = router.connect(juliet());
        let rc = router.connect(romeo());
        let mc = router.connect(mallory());
        let ctx = TransportContext {
            channel: jc.clone(),
            local: juliet(),
            peer: romeo(),
            role: Role::Responder,
            session_sid: "s".into(),
            content_name: "c".into(),
            we_send: false,
        };
        let config = IbbConfig {
            block_size: 64,
            window: 2,
            receive_buffer: 2,
            iq_timeout: Duration::from_secs(2),
            open_timeout: Duration::from_secs(2),
            read_idle_timeout: Duration::from_secs(3),
        };
        let adapter = IbbTransport::new(config);
        let bs: u16 = u.int_in_range(0..=100).unwrap_or(64);
        let offer = Element::builder("transport", ns::JINGLE_IBB)
            .a("block-size", bs.to_string())
            .a("sid", "ibb1")
            .a("stanza", "iq")
            .build();
        let Ok(neg) = adapter.answer(&ctx, &offer).await else {
            return;
        };
        let reader = tokio::spawn(async move {
            let mut stream = neg.establish(&mut NoSignals).await.ok()?;
            let mut got = Vec::new();
            let r = stream.read_to_end(&mut got).await;
            Some((got, r.is_ok()))
        });
        let mut sent_ids = Vec::new();
        let mut acked_data: Vec<(String, Vec<u8>)> = Vec::new();
        let mut seq: u16 = 0;
        for n in 0..u.int_in_range(0..=12u8).unwrap_or(0) {
            let id = format!("f{n}");
            let kind: u8 = u.int_in_range(0..=5).unwrap_or(5);
            let sid = if u.ratio(1, 8).unwrap_or(false) {
                "other"
            } else {
                "ibb1"
            };
            let mut payload_bytes = Vec::new();
            let child = match kind {
                0 => Element::builder("open", ns::IBB)
                    .a("sid", sid)
                    .a(
                        "block-size",
                        u.int_in_range(0..=200u16).unwrap_or(64).to_string(),
                    )
                    .a(
                        "stanza",
                        if u.ratio(1, 6).unwrap_or(false) {
                            "message"
                        } else {
                            "iq"
                        },
                    )
                    .build(),
                1..=3 => {
                    let len = u.int_in_range(0..=80usize).unwrap_or(0);
                    payload_bytes = u.bytes(len).unwrap_or_default().to_vec();
                    let text = if kind == 3 && u.ratio(1, 3).unwrap_or(false) {
                        // Raw bytes as text: mostly not base64, but when it
                        // happens to be, what counts is what it decodes to
                        // (jet ignores ASCII whitespace in the base64).
                        let text = String::from_utf8_lossy(&payload_bytes).into_owned();
                        let compact: String = text.split_ascii_whitespace().collect();
                        if let Ok(decoded) = STANDARD.decode(compact.as_bytes()) {
                            payload_bytes = decoded;
                        }
                        text
                    } else {
                        STANDARD.encode(&payload_bytes)
                    };
                    let s = if u.ratio(1, 6).unwrap_or(false) {
                        u.arbitrary::<u16>().unwrap_or(0).to_string()
                    } else {
                        seq.to_string()
                    };
                    Element::builder("data", ns::IBB)
                        .a("sid", sid)
                        .a("seq", s)
                        .append(text)
                        .build()
                }
                4 => Element::builder("close", ns::IBB).a("sid", sid).build(),
                _ => Element::builder("open", ns::IBB).build(),
            };
            let is_data = child.name() == "data";
            let seq_attr = child.attr("seq").map(str::to_string);
            let from_mallory = u.ratio(1, 10).unwrap_or(false);
            let ch = if from_mallory { &mc } else { &rc };
            let req = iq("set", &id, None, &Jid::from(juliet()), Some(child));
            sent_ids.push(id.clone());
            let answer = tokio::time::timeout(Duration::from_secs(10), ch.request(req)).await;
            let answer = answer.expect("an IBB request was never answered");
            if answer.is_ok() && is_data && !from_mallory && sid == "ibb1" {
                deep();
                assert_eq!(seq_attr, Some(seq.to_string()), "accepted a seq gap");
                acked_data.push((id.clone(), payload_bytes));
                seq = seq.wrapping_add(1);
            }
        }
        // Close if still open, then the reader must end.
        let close = Element::builder("close", ns::IBB).a("sid", "ibb1").build();
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            rc.request(iq("set", "fclose", None, &Jid::from(juliet()), Some(close))),
        )
        .await;
        let out = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .expect("the IBB reader did not end")
            .expect("the reader task panicked");
        if let Some((got, ok)) = out {
            let expected: Vec<u8> = acked_data.iter().flat_map(|(_, b)| b.clone()).collect();
            if ok {
                assert_eq!(
                    got, expected,
                    "the reader got other bytes than were acknowledged"
                );
            } else {
                // A failed stream may drop what it buffered, never invent.
                assert!(
                    expected.starts_with(&got),
                    "the reader got bytes that were never acknowledged"
                );
            }
        }
        // Exactly one answer per request we sent (answers to jet's own
        // requests, like its <close/>, have other ids).
        let answers = answers.lock().unwrap();
        for id in sent_ids {
            let n = answers
                .iter()
                .filter(|a| a.attr("id") == Some(id.as_str()))
                .count();
            assert!(n <= 1, "request {id} answered {n} times");
        }
    });
}

// ---------------------------------------------------------------------------
// the session engine

const ACTIONS: &[&str] = &[
    "session-initiate",
    "session-accept",
    "session-terminate",
    "session-info",
    "transport-info",
    "transport-replace",
    "transport-accept",
    "transport-reject",
    "content-add",
    "description-info",
    "security-info",
    "bogus",
    "",
];

fn pick<'a, T>(u: &mut Unstructured, items: &'a [T]) -> &'a T {
    let i = u.choose_index(items.len()).unwrap_or(0);
    &items[i]
}

fn security_el(u: &mut Unstructured, name: &str) -> Element {
    let cipher = *pick(
        u,
        &[
            "urn:xmpp:ciphers:aes-256-gcm-nopadding:0",
            "urn:xmpp:ciphers:aes-256-gcm-nopadding",
            "urn:xmpp:ciphers:aes-128-gcm-nopadding",
            "urn:xmpp:ciphers:rot13",
            "",
        ],
    );
    let type_ = *pick(
        u,
        &[ns::ENCRYPTION_STUB, "eu.siacs.conversations.axolotl", "x"],
    );
    let mut key = [0u8; 44];
    for (i, b) in key.iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    let len = *pick(u, &[44usize, 48, 28, 0, 43]);
    let payload = STANDARD.encode(&key[..len.min(44)]);
    let mut b = Element::builder("security", ns::JET)
        .a("cipher", cipher)
        .a("type", type_);
    if u.ratio(3, 4).unwrap_or(true) {
        b = b.a("name", name);
    }
    if u.ratio(7, 8).unwrap_or(true) {
        b = b.append(
            Element::builder("encrypted", ns::ENCRYPTION_STUB)
                .append(
                    Element::builder("payload", ns::ENCRYPTION_STUB)
                        .append(payload)
                        .build(),
                )
                .build(),
        );
    }
    b.build()
}

fn content_el(u: &mut Unstructured) -> Element {
    let name = *pick(u, &["c", "d", "", "jet"]);
    let mut b = Element::builder("content", ns::JINGLE)
        .a("creator", *pick(u, &["initiator", "responder", "nobody"]))
        .a("name", name);
    if u.ratio(1, 2).unwrap_or(false) {
        b = b.a(
            "senders",
            *pick(u, &["initiator", "responder", "both", "none", "x"]),
        );
    }
    if u.ratio(4, 5).unwrap_or(true) {
        b = b.append(
            Element::builder("description", *pick(u, &[ns::JINGLE_FT, "urn:example:app"]))
                .append(
                    Element::builder("file", ns::JINGLE_FT)
                        .append(
                            Element::builder("name", ns::JINGLE_FT)
                                .append("../x")
                                .build(),
                        )
                        .build(),
                )
                .build(),
        );
    }
    if u.ratio(4, 5).unwrap_or(true) {
        let tns = *pick(u, &[ns::JINGLE_IBB, ns::JINGLE_S5B, "urn:example:pipe"]);
        b = b.append(
            Element::builder("transport", tns)
                .a("sid", "t1")
                .a("block-size", "4096")
                .build(),
        );
    }
    let n_sec = *pick(u, &[1usize, 1, 0, 2]);
    for _ in 0..n_sec {
        b = b.append(security_el(u, name));
    }
    b.build()
}

/// The session engine fed arbitrary sequences of valid-ish Jingle IQs (and
/// answers, timeouts and driver calls). Properties: no panic; every IQ
/// `set` with a `<jingle/>` gets exactly one answer (`result` or `error`)
/// addressed to its sender; every request jet sends has an id and a `to`.
pub fn session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let t0 = Instant::now();
    let mut now = t0;
    let config = EngineConfig {
        supported_ciphers: vec!["urn:xmpp:ciphers:aes-256-gcm-nopadding:0".into()],
        supported_envelopes: vec![ns::ENCRYPTION_STUB.into()],
        require_encryption: u.arbitrary().unwrap_or(true),
        accept_timeout: Duration::from_secs(10),
        iq_timeout: Duration::from_secs(5),
    };
    let mut ep = Endpoint::new(juliet(), config);
    let peers = [
        "romeo@montague.lit/orchard",
        "romeo@montague.lit/other",
        "mallory@evil.lit/x",
        "romeo@montague.lit",
        "",
    ];
    let mut sids: Vec<String> = vec!["s1".into(), "s2".into(), "".into()];
    // Our own outgoing requests, to answer (id, to).
    let mut ours: Vec<(String, String)> = Vec::new();
    let steps = u.int_in_range(0..=40u8).unwrap_or(0);
    for n in 0..steps {
        let op: u8 = u.int_in_range(0..=9).unwrap_or(0);
        let mut request_id = None;
        match op {
            0..=4 => {
                let id = format!("f{n}");
                let from = *pick(&mut u, &peers);
                let action = *pick(&mut u, ACTIONS);
                let sid = pick(&mut u, &sids).clone();
                let mut j = Element::builder("jingle", ns::JINGLE)
                    .a("action", action)
                    .a("sid", sid);
                if u.ratio(1, 2).unwrap_or(false) {
                    j = j.a("initiator", *pick(&mut u, &peers));
                }
                let n_contents = u.int_in_range(0..=2u8).unwrap_or(1);
                for _ in 0..n_contents {
                    j = j.append(content_el(&mut u));
                }
                if action == "session-terminate" && u.ratio(1, 2).unwrap_or(false) {
                    j = j.append(
                        Element::builder("reason", ns::JINGLE)
                            .append(
                                Element::builder(
                                    *pick(&mut u, &["success", "security-error", "nonsense"]),
                                    ns::JINGLE,
                                )
                                .build(),
                            )
                            .build(),
                    );
                }
                let mut b = Element::builder("iq", ns::JABBER_CLIENT)
                    .a("type", "set")
                    .a("id", id.as_str())
                    .a("to", juliet().to_string());
                if !from.is_empty() {
                    b = b.a("from", from);
                }
                let stanza = b.append(j.build()).build();
                request_id = Some((id, from.to_string()));
                ep.handle_stanza(stanza, now);
            }
            5 if !ours.is_empty() => {
                let i = u.choose_index(ours.len()).unwrap_or(0);
                let (id, to) = ours.swap_remove(i);
                let type_ = *pick(&mut u, &["result", "error"]);
                let from = if u.ratio(1, 5).unwrap_or(false) {
                    "mallory@evil.lit/x".to_string()
                } else {
                    to
                };
                let mut b = Element::builder("iq", ns::JABBER_CLIENT)
                    .a("type", type_)
                    .a("id", id)
                    .a("from", from);
                if type_ == "error" {
                    b = b.append(
                        Element::builder("error", ns::JABBER_CLIENT)
                            .a("type", "cancel")
                            .append(Element::builder("item-not-found", ns::XMPP_STANZAS).build())
                            .build(),
                    );
                }
                ep.handle_stanza(b.build(), now);
            }
            6 => {
                now += Duration::from_secs(u.int_in_range(0..=12u64).unwrap_or(1));
                ep.handle_timeout(now);
            }
            7 => {
                // Driver calls with arbitrary arguments: errors are fine.
                let sid = pick(&mut u, &sids).clone();
                let t = Element::builder("transport", ns::JINGLE_IBB).build();
                let _ = match u.int_in_range(0..=5u8).unwrap_or(0) {
                    0 => ep.accept(&sid, vec![("c".into(), t)], vec![], now),
                    1 => ep.terminate(&sid, jet_core::jingle::Reason::Cancel, None, now),
                    2 => ep.transport_accept(&sid, "c", t, now),
                    3 => ep.transport_reject(&sid, "c", now),
                    4 => ep.transport_replace(&sid, "c", t, now),
                    _ => ep.session_info(&sid, None, now),
                };
            }
            8 => {
                let c =
                    jet_core::jingle::ContentParts::new(jet_core::jingle::Creator::Initiator, "c")
                        .with_description(Element::builder("description", ns::JINGLE_FT).build())
                        .with_transport(Element::builder("transport", ns::JINGLE_IBB).build())
                        .with_security(Security::new(
                            "c",
                            "urn:xmpp:ciphers:aes-256-gcm-nopadding:0",
                            ns::ENCRYPTION_STUB,
                            Element::builder("encrypted", ns::ENCRYPTION_STUB).build(),
                        ));
                if let Ok(sid) = ep.initiate(romeo(), vec![c], now) {
                    sids.push(sid);
                }
            }
            _ => {
                // Raw bytes as a stanza.
                let len = u.int_in_range(0..=200usize).unwrap_or(0);
                if let Some(el) = u.bytes(len).ok().and_then(xml) {
                    let is_request = el.name() == "iq"
                        && el.attr("type") == Some("set")
                        && el.get_child("jingle", ns::JINGLE).is_some();
                    if is_request {
                        request_id = Some((
                            el.attr("id").unwrap_or_default().to_string(),
                            el.attr("from").unwrap_or_default().to_string(),
                        ));
                    }
                    ep.handle_stanza(el, now);
                }
            }
        }
        // Drain what the endpoint sent.
        let mut answers = 0;
        while let Some(out) = ep.poll_transmit() {
            assert_eq!(out.name(), "iq", "jet sent a non-IQ: {out:?}");
            let type_ = out.attr("type").unwrap_or_default();
            let id = out.attr("id").unwrap_or_default().to_string();
            match type_ {
                "set" => {
                    assert!(!id.is_empty(), "a request without id");
                    let to = out.attr("to").expect("a request without to").to_string();
                    assert!(
                        out.get_child("jingle", ns::JINGLE).is_some(),
                        "a request without <jingle/>"
                    );
                    ours.push((id, to));
                }
                "result" | "error" => {
                    let Some((rid, from)) = &request_id else {
                        panic!("an answer ({type_}) to no request: {out:?}");
                    };
                    assert_eq!(&id, rid, "an answer to the wrong id");
                    if !from.is_empty() {
                        assert_eq!(out.attr("to"), Some(from.as_str()), "answer misaddressed");
                    }
                    answers += 1;
                }
                other => panic!("jet sent an IQ of type {other:?}"),
            }
        }
        if let Some((id, _)) = request_id {
            assert_eq!(answers, 1, "request {id} got {answers} answers");
        }
        while ep.poll_event().is_some() {
            deep();
        }
        if let Some(t) = ep.poll_timeout() {
            assert!(t >= t0, "a timeout in the past of the start");
        }
    }
}

// ---------------------------------------------------------------------------
// the JET layer (streaming decryption)

/// A reader that hands out `data` in chunks of fuzzed sizes, then EOF.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    i: usize,
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = if self.sizes.is_empty() {
            usize::MAX
        } else {
            self.sizes[self.i % self.sizes.len()]
        };
        self.i += 1;
        let n = (self.data.len() - self.pos)
            .min(buf.remaining())
            .min(size.max(1));
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Writes append to `data` (the send side's sink).
impl AsyncWrite for Chunked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.data.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The JET layer's receive side with every suite in [`suites`]: a stream
/// encrypted by the layer's send side, then tampered with (flipped byte,
/// truncation, appended bytes) or not, read back in fuzzed chunk sizes.
/// Properties: the untouched stream reads back exactly; a changed stream
/// never reads to a successful end; raw fuzz bytes never panic.
pub fn jet_layer(data: &[u8]) {
    for suite in suites() {
        jet_layer_with(suite, data);
    }
}

/// [`jet_layer`] for one suite (generic over `jet_core::cipher`).
pub fn jet_layer_with(suite: &dyn CipherSuite, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let key: Vec<u8> = (0..suite.key_len()).map(|i| i as u8).collect();
    let iv: Vec<u8> = (0..suite.iv_len()).map(|i| 0xa0 ^ i as u8).collect();
    let secret = TransportSecret::new(key, iv).expect("distinct key and iv");
    let plain_len = u.int_in_range(0..=4096usize).unwrap_or(0);
    let plain: Vec<u8> = (0..plain_len).map(|i| (i * 31 % 251) as u8).collect();
    let sizes: Vec<usize> = (0..u.int_in_range(0..=8usize).unwrap_or(0))
        .map(|_| u.int_in_range(1..=700usize).unwrap_or(1))
        .collect();
    let mode: u8 = u.int_in_range(0..=4).unwrap_or(0);
    block_on(async {
        // Encrypt through the layer.
        let out = Chunked {
            data: Vec::new(),
            pos: 0,
            sizes: Vec::new(),
            i: 0,
        };
        let mut sink =
            JetStream::new(out, suite, &secret, Direction::Send).expect("an encrypting layer");
        sink.write_all(&plain).await.expect("encrypt");
        sink.shutdown().await.expect("finish");
        let wire = sink.into_inner().data;
        let mut changed = wire.clone();
        match mode {
            0 => {}
            1 if !changed.is_empty() => {
                let i = u.choose_index(changed.len()).unwrap_or(0);
                let bit = 1u8 << u.int_in_range(0..=7u8).unwrap_or(0);
                changed[i] ^= bit;
            }
            2 if !changed.is_empty() => {
                let keep = u.choose_index(changed.len()).unwrap_or(0);
                changed.truncate(keep);
            }
            3 => {
                let extra = u.int_in_range(1..=64usize).unwrap_or(1);
                changed.extend(std::iter::repeat_n(0x42u8, extra));
            }
            _ => {
                changed = u.take_rest().to_vec();
            }
        }
        let src = Chunked {
            data: changed.clone(),
            pos: 0,
            sizes,
            i: 0,
        };
        let mut rx =
            JetStream::new(src, suite, &secret, Direction::Receive).expect("a decrypting layer");
        let mut got = Vec::new();
        let r = rx.read_to_end(&mut got).await;
        if r.is_ok() {
            deep();
        }
        if changed == wire {
            r.expect("the untouched stream must authenticate");
            assert_eq!(got, plain);
            assert_eq!(rx.authenticated_len(), plain.len() as u64);
        } else if mode != 4 {
            // (Raw bytes, mode 4, could forge the toy suite's 4-byte
            // checksum; a real AEAD makes that property hold there too.)
            assert!(
                r.is_err(),
                "a changed stream ({} bytes, was {}) read to a successful end",
                changed.len(),
                wire.len()
            );
        }
    });
}
