//! The OX envelope inside jet-core's session engine: the wire form of
//! `<security type='urn:xmpp:openpgp:0'>`, the responder opening it, and the
//! XEP-0391 §7 sender rule ending the session with security-error.
#![cfg(feature = "ox")]

mod ox_support;

use jet_core::envelope::EnvelopeContext;
use std::sync::Arc;
use std::time::Instant;

use jet_core::jid::{FullJid, Jid};
use jet_core::jingle::{ContentParts, Creator, Senders};
use jet_core::minidom::Element;
use jet_core::session::{Endpoint, EngineConfig, Event, JetConfig};
use jet_core::testkit::ToySuite;
use jet_core::{ns, JingleReason};
use jet_envelopes::ox::elements::openpgp_message;
use ox_support::*;

/// A toy suite under AES-256-GCM's URN and sizes (no cipher runs here).
static AES256: ToySuite = ToySuite::new(ns::CIPHER_AES_256_GCM, 32, &[12]);

fn full(s: &str) -> FullJid {
    s.parse().unwrap()
}

fn stamp(mut stanza: Element, from: &FullJid) -> Element {
    use jet_core::xml::ElementExt;
    stanza.set_a("from", from.to_string());
    stanza
}

fn jet_for(p: Party) -> JetConfig {
    JetConfig::new(vec![&AES256], vec![Arc::new(p.env)])
}

#[test]
fn ox_session_carries_the_secret_sealed() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let now = Instant::now();
    let romeo = Party::new(ROMEO);
    let juliet = Party::new(JULIET);
    let mallory = Party::new("mallory@evil.lit");
    romeo.knows(&juliet);
    juliet.knows(&romeo);
    juliet.knows(&mallory);
    mallory.knows(&juliet);
    let romeo_jet = jet_for(romeo);
    let juliet_jet = jet_for(juliet);
    let mallory_jet = jet_for(mallory);

    let mut romeo_ep = Endpoint::new(full(ROMEO_FULL), EngineConfig::from(&romeo_jet));
    let mut juliet_ep = Endpoint::new(full(JULIET_FULL), EngineConfig::from(&juliet_jet));
    let (sec, ts) = rt
        .block_on(romeo_jet.seal(
            &EnvelopeContext::new("s1", "a-file-offer", true),
            &AES256,
            &full(JULIET_FULL).into(),
        ))
        .unwrap();
    let content = ContentParts::new(Creator::Initiator, "a-file-offer")
        .with_senders(Senders::Initiator)
        .with_description(Element::builder("description", ns::JINGLE_FT).build())
        .with_transport(Element::builder("transport", ns::JINGLE_IBB).build())
        .with_security(sec);
    romeo_ep
        .initiate(full(JULIET_FULL), vec![content], now)
        .unwrap();
    let initiate = romeo_ep.poll_transmit().unwrap();

    // On the wire: <security type='urn:xmpp:openpgp:0'><openpgp/></security>,
    // the secret nowhere in the clear.
    let wire_sec = initiate
        .get_child("jingle", ns::JINGLE)
        .and_then(|j| j.get_child("content", ns::JINGLE))
        .and_then(|c| c.get_child("security", ns::JET))
        .unwrap();
    assert_eq!(wire_sec.attr("type"), Some(ns::OX));
    assert_eq!(wire_sec.attr("cipher"), Some(ns::CIPHER_AES_256_GCM));
    let ee = wire_sec.get_child("openpgp", ns::OX).unwrap();
    let message = openpgp_message(ee).unwrap();
    let key = ts.key();
    assert!(!message.windows(key.len()).any(|w| w == key));

    juliet_ep.handle_stanza(stamp(initiate.clone(), &full(ROMEO_FULL)), now);
    let ev = juliet_ep.poll_event().unwrap();
    let Event::IncomingSession {
        initiator,
        contents,
    } = ev.event
    else {
        panic!("{ev:?}")
    };
    let peer: Jid = ev.peer.into();
    let security = contents[0].security.as_ref().unwrap();
    let (suite, opened) = rt
        .block_on(juliet_jet.open(
            &EnvelopeContext::new("s1", "a-file-offer", false),
            security,
            &initiator,
            &peer,
        ))
        .unwrap();
    assert_eq!(suite.urn(), ns::CIPHER_AES_256_GCM);
    assert_eq!(opened, ts);

    // Mallory's own envelope in a session Romeo initiated: the envelope
    // proves mallory, the initiator is romeo (XEP-0391 §7).
    let (msec, _) = rt
        .block_on(mallory_jet.seal(
            &EnvelopeContext::new("s1", "a-file-offer", true),
            &AES256,
            &full(JULIET_FULL).into(),
        ))
        .unwrap();
    let err = rt
        .block_on(juliet_jet.open(
            &EnvelopeContext::new("s1", "a-file-offer", false),
            &msec,
            &full(ROMEO_FULL).into(),
            &"mallory@evil.lit/x".parse().unwrap(),
        ))
        .unwrap_err();
    assert!(
        matches!(err, jet_core::Error::SenderMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(err.jingle_reason(), jet_core::jingle::Reason::SecurityError);
    // Romeo's envelope replayed by the server into a new session: refused.
    let err = rt
        .block_on(juliet_jet.open(
            &EnvelopeContext::new("s1", "a-file-offer", false),
            security,
            &initiator,
            &peer,
        ))
        .unwrap_err();
    assert_eq!(err.jingle_reason(), jet_core::jingle::Reason::SecurityError);
    assert!(err.to_string().contains("replayed"), "{err}");
}

/// The secret is bound to its session: an envelope lifted into another
/// session id or content name is refused with security-error (and that
/// does not spoil it for its own session), and an unbound envelope (jet
/// before the binding) is refused in a session.
#[test]
fn ox_envelopes_are_bound_to_their_session() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let romeo = Party::new(ROMEO);
    let juliet = Party::new(JULIET);
    romeo.knows(&juliet);
    juliet.knows(&romeo);
    let romeo_jet = jet_for(romeo);
    let juliet_jet = jet_for(juliet);
    let initiator: Jid = full(ROMEO_FULL).into();
    let (sec, ts) = rt
        .block_on(romeo_jet.seal(
            &EnvelopeContext::new("sid-1", "c1", true),
            &AES256,
            &full(JULIET_FULL).into(),
        ))
        .unwrap();
    for (sid, name) in [("sid-2", "c1"), ("sid-1", "c2")] {
        let err = rt
            .block_on(juliet_jet.open(
                &EnvelopeContext::new(sid, name, false),
                &sec,
                &initiator,
                &initiator,
            ))
            .unwrap_err();
        assert_eq!(err.jingle_reason(), jet_core::jingle::Reason::SecurityError);
        assert!(err.to_string().contains("another session"), "{err}");
    }
    let (_, opened) = rt
        .block_on(juliet_jet.open(
            &EnvelopeContext::new("sid-1", "c1", false),
            &sec,
            &initiator,
            &initiator,
        ))
        .unwrap();
    assert_eq!(opened, ts);

    // An unbound envelope (sealed outside a session, as jet did before).
    let ee = rt
        .block_on(romeo_jet.envelopes[0].seal(&ts, &full(JULIET_FULL).into()))
        .unwrap();
    let unbound = jet_core::security::Security::new("c1", ns::CIPHER_AES_256_GCM, ns::OX, ee);
    let err = rt
        .block_on(juliet_jet.open(
            &EnvelopeContext::new("sid-3", "c1", false),
            &unbound,
            &initiator,
            &initiator,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("not bound"), "{err}");
}
