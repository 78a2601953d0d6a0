//! The stub envelope inside jet-core's session engine: what goes on the
//! wire, the Dino form, and the XEP-0391 §7 sender rule.

use jet_core::envelope::EnvelopeContext;
use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jet_core::jid::{FullJid, Jid};
use jet_core::jingle::{ContentParts, Creator, Senders};
use jet_core::minidom::Element;
use jet_core::session::{Endpoint, EngineConfig, Event, JetConfig};
use jet_core::testkit::ToySuite;
use jet_core::{ns, TransportSecret};
use jet_envelopes::StubEnvelope;

/// A toy suite under AES-128-GCM's URN and sizes (the real suite lives in
/// jet-ciphers). Accepts 12- and 16-byte IVs like the registry does for Dino.
static AES128: ToySuite = ToySuite::new(ns::CIPHER_AES_128_GCM, 16, &[12, 16]);

fn romeo() -> FullJid {
    "romeo@montague.lit/orchard".parse().unwrap()
}

fn juliet() -> FullJid {
    "juliet@capulet.lit/balcony".parse().unwrap()
}

fn jet() -> JetConfig {
    JetConfig::new(vec![&AES128], vec![Arc::new(StubEnvelope)])
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn stamp(mut stanza: Element, from: &FullJid) -> Element {
    use jet_core::xml::ElementExt;
    stanza.set_a("from", from.to_string());
    stanza
}

#[test]
fn stub_session_carries_the_secret_in_the_clear() {
    let rt = rt();
    let now = Instant::now();
    let jet = jet();
    let mut romeo_ep = Endpoint::new(romeo(), EngineConfig::from(&jet));
    let mut juliet_ep = Endpoint::new(juliet(), EngineConfig::from(&jet));
    let (sec, ts) = rt
        .block_on(jet.seal(
            &EnvelopeContext::new("s1", "a-file-offer", true),
            &AES128,
            &juliet().into(),
        ))
        .unwrap();
    let content = ContentParts::new(Creator::Initiator, "a-file-offer")
        .with_senders(Senders::Initiator)
        .with_description(Element::builder("description", ns::JINGLE_FT).build())
        .with_transport(Element::builder("transport", ns::JINGLE_IBB).build())
        .with_security(sec);
    romeo_ep.initiate(juliet(), vec![content], now).unwrap();
    let initiate = romeo_ep.poll_transmit().unwrap();

    // On the wire: the spec form, and the secret readable by anyone.
    let wire_sec = initiate
        .get_child("jingle", ns::JINGLE)
        .and_then(|j| j.get_child("content", ns::JINGLE))
        .and_then(|c| c.get_child("security", ns::JET))
        .unwrap();
    assert_eq!(wire_sec.attr("type"), Some(ns::ENCRYPTION_STUB));
    assert_eq!(wire_sec.attr("name"), Some("a-file-offer"));
    let payload = wire_sec
        .get_child("encrypted", ns::ENCRYPTION_STUB)
        .and_then(|e| e.get_child("payload", ns::ENCRYPTION_STUB))
        .unwrap()
        .text();
    assert_eq!(STANDARD.decode(payload).unwrap(), ts.to_bytes().as_slice());

    juliet_ep.handle_stanza(stamp(initiate, &romeo()), now);
    let ev = juliet_ep.poll_event().unwrap();
    let Event::IncomingSession {
        initiator,
        contents,
    } = ev.event
    else {
        panic!("{ev:?}")
    };
    let peer: Jid = ev.peer.into();
    let (suite, opened) = rt
        .block_on(jet.open(
            &EnvelopeContext::new("s1", "a-file-offer", false),
            contents[0].security.as_ref().unwrap(),
            &initiator,
            &peer,
        ))
        .unwrap();
    assert_eq!(suite.urn(), ns::CIPHER_AES_128_GCM);
    assert_eq!(opened, ts);
}

/// Dino's form: no `name`, cipher without `:0`, 16-byte IV (before 2020).
#[test]
fn dino_form_with_stub_is_read() {
    let rt = rt();
    let now = Instant::now();
    let jet = jet();
    let mut juliet_ep = Endpoint::new(juliet(), EngineConfig::from(&jet));
    let ts = TransportSecret::generate_with(16, 16).unwrap();
    let xml = format!(
        "<iq xmlns='jabber:client' type='set' id='d1' to='juliet@capulet.lit/balcony'>\
         <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='dino1'>\
         <content creator='initiator' name='file' senders='initiator'>\
         <description xmlns='urn:xmpp:jingle:apps:file-transfer:5'><file><name>a.txt</name></file></description>\
         <transport xmlns='urn:xmpp:jingle:transports:ibb:1' sid='ibb1' block-size='4096'/>\
         <security xmlns='urn:xmpp:jingle:jet:0' cipher='urn:xmpp:ciphers:aes-128-gcm-nopadding' \
           type='urn:xmpp:encryption:stub:0'>\
         <encrypted xmlns='urn:xmpp:encryption:stub:0'><payload>{}</payload></encrypted>\
         </security></content></jingle></iq>",
        STANDARD.encode(ts.to_bytes().as_slice())
    );
    // No initiator attribute either: the sender stands in.
    juliet_ep.handle_stanza(stamp(xml.parse().unwrap(), &romeo()), now);
    let ack = juliet_ep.poll_transmit().unwrap();
    assert_eq!(ack.attr("type"), Some("result"));
    let ev = juliet_ep.poll_event().unwrap();
    let Event::IncomingSession {
        initiator,
        contents,
    } = ev.event
    else {
        panic!("{ev:?}")
    };
    assert_eq!(initiator, Jid::from(romeo()));
    let sec = contents[0].security.as_ref().unwrap();
    assert_eq!(sec.name, None);
    let (_, opened) = rt
        .block_on(jet.open(
            &EnvelopeContext::new("s1", "c", false),
            sec,
            &initiator,
            &romeo().into(),
        ))
        .unwrap();
    assert_eq!(opened, ts);
    assert_eq!(opened.iv().len(), 16);
}

/// The stub reports the stanza sender, so an envelope relayed by someone
/// else than the initiator fails the XEP-0391 §7 check.
#[test]
fn stub_sender_is_the_stanza_sender() {
    let rt = rt();
    let jet = jet();
    let (sec, _) = rt
        .block_on(jet.seal(
            &EnvelopeContext::new("s1", "c", true),
            &AES128,
            &juliet().into(),
        ))
        .unwrap();
    let mallory: Jid = "mallory@evil.lit/x".parse().unwrap();
    let err = rt
        .block_on(jet.open(
            &EnvelopeContext::new("s1", "c", false),
            &sec,
            &romeo().into(),
            &mallory,
        ))
        .unwrap_err();
    assert!(
        matches!(err, jet_core::Error::SenderMismatch { .. }),
        "{err:?}"
    );
}
