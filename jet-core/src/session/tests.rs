//! Engine tests: two endpoints in memory (see `pair.rs`), the test acting as
//! the driver. Each failure test asserts the reason that went on the wire.

use crate::envelope::EnvelopeContext;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jid::{FullJid, Jid};
use minidom::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::pair::{juliet_jid, romeo_jid, Pair};
use super::*;
use crate::channel::iq;
use crate::jingle::{Creator, Senders};
use crate::security::Security;
use crate::testkit::{TestEnvelope, TEST_ENVELOPE, TEST_XOR, TEST_XOR_URN};
use crate::transport::BoxedStream;
use crate::xml::{BuilderExt, ElementExt};

const ECHO_NS: &str = "urn:jet:test:echo";
const PIPE_NS: &str = "urn:jet:test:pipe";

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn jet_for(author: &FullJid) -> JetConfig {
    JetConfig::new(
        vec![&TEST_XOR],
        vec![Arc::new(TestEnvelope {
            author: author.to_bare(),
        })],
    )
}

fn config() -> EngineConfig {
    EngineConfig::from(&jet_for(&romeo_jid()))
}

fn pipe(id: &str) -> Element {
    Element::builder("transport", PIPE_NS).a("id", id).build()
}

fn description() -> Element {
    Element::builder("description", ECHO_NS).build()
}

/// A content with the security sealed by `jet` for Juliet.
fn sealed_content(jet: &JetConfig, name: &str) -> (ContentParts, crate::TransportSecret) {
    let (sec, ts) = block_on(jet.seal(
        &EnvelopeContext::new("s1", name, true),
        &TEST_XOR,
        &juliet_jid().into(),
    ))
    .unwrap();
    let c = ContentParts::new(Creator::Initiator, name)
        .with_senders(Senders::Initiator)
        .with_description(description())
        .with_transport(pipe("r1"))
        .with_security(sec);
    (c, ts)
}

fn plain_content(name: &str) -> ContentParts {
    ContentParts::new(Creator::Initiator, name)
        .with_senders(Senders::Initiator)
        .with_description(description())
        .with_transport(pipe("r1"))
}

/// Romeo initiates with one sealed content; returns the sid and the secret.
fn initiate(p: &mut Pair) -> (String, crate::TransportSecret) {
    let (c, ts) = sealed_content(&jet_for(&romeo_jid()), "c1");
    let sid = p.romeo.initiate(juliet_jid(), vec![c], p.time).unwrap();
    p.drive();
    (sid, ts)
}

/// Juliet as the driver: opens the security and accepts.
fn juliet_opens_and_accepts(p: &mut Pair, sid: &str) -> Result<crate::TransportSecret, Error> {
    let events = p.juliet_events();
    let Some(SessionEvent {
        event: Event::IncomingSession {
            initiator,
            contents,
        },
        peer,
        ..
    }) = events.into_iter().next()
    else {
        panic!("no incoming session");
    };
    let jet = jet_for(&juliet_jid());
    let sec = contents[0].security.as_ref().unwrap();
    let opened = block_on(jet.open(
        &EnvelopeContext::new("s1", "c1", false),
        sec,
        &initiator,
        &Jid::from(peer),
    ));
    match opened {
        Ok((suite, ts)) => {
            assert_eq!(suite.urn(), TEST_XOR_URN);
            p.juliet
                .accept(sid, vec![("c1".into(), pipe("j1"))], vec![], p.time)
                .unwrap();
            p.drive();
            Ok(ts)
        }
        Err(e) => {
            p.juliet.fail(sid, &e, p.time).unwrap();
            p.drive();
            Err(e)
        }
    }
}

fn terminated(events: &[SessionEvent]) -> Option<(Reason, Option<String>, bool)> {
    events.iter().find_map(|e| match &e.event {
        Event::Terminated {
            reason,
            text,
            by_peer,
        } => Some((reason.clone(), text.clone(), *by_peer)),
        _ => None,
    })
}

fn error_condition(stanza: &Element) -> (String, Option<String>) {
    let err = stanza.get_child("error", ns::JABBER_CLIENT).unwrap();
    let cond = err
        .children()
        .find(|c| c.ns() == ns::XMPP_STANZAS && c.name() != "text")
        .unwrap()
        .name()
        .to_string();
    let app = err
        .children()
        .find(|c| c.ns() == ns::JINGLE_ERRORS)
        .map(|c| c.name().to_string());
    (cond, app)
}

#[test]
fn initiate_accept_terminate_success() {
    let mut p = Pair::new(config(), config());
    let (sid, sent_ts) = initiate(&mut p);
    assert_eq!(p.romeo.state(&sid), Some(State::Pending));
    let got_ts = juliet_opens_and_accepts(&mut p, &sid).unwrap();
    assert_eq!(
        got_ts, sent_ts,
        "the responder must get the initiator's secret"
    );
    assert_eq!(p.juliet.state(&sid), Some(State::Active));
    assert_eq!(p.romeo.state(&sid), Some(State::Active));
    let ev = p.romeo_events();
    match &ev[..] {
        [SessionEvent {
            event: Event::Accepted { contents },
            peer,
            ..
        }] => {
            assert_eq!(peer, &juliet_jid());
            assert_eq!(
                contents[0].transport.as_ref().unwrap().attr("id"),
                Some("j1")
            );
        }
        other => panic!("expected Accepted, got {other:?}"),
    }
    // The initiator's view now holds the responder's transport.
    let info = p.romeo.session(&sid).unwrap();
    assert_eq!(
        info.contents[0].transport.as_ref().unwrap().attr("id"),
        Some("j1")
    );

    p.romeo
        .terminate(&sid, Reason::Success, None, p.time)
        .unwrap();
    p.drive();
    assert_eq!(
        p.terminate_reason_from(&romeo_jid()).as_deref(),
        Some("success")
    );
    assert_eq!(
        terminated(&p.juliet_events()),
        Some((Reason::Success, None, true))
    );
    assert_eq!(
        terminated(&p.romeo_events()),
        Some((Reason::Success, None, false))
    );
    assert_eq!(p.romeo.state(&sid), None);
    assert_eq!(p.juliet.state(&sid), None);
    assert_eq!(
        p.actions_from(&romeo_jid()),
        ["session-initiate", "session-terminate"]
    );
    assert_eq!(p.actions_from(&juliet_jid()), ["session-accept"]);
    assert!(p.all_requests_answered());
    assert!(p.romeo.poll_timeout().is_none());
}

#[test]
fn the_security_element_travels_in_the_spec_form() {
    let mut p = Pair::new(config(), config());
    let (_sid, _) = initiate(&mut p);
    let (_, initiate) = &p.log[0];
    let content = initiate
        .get_child("jingle", ns::JINGLE)
        .unwrap()
        .get_child("content", ns::JINGLE)
        .unwrap();
    let sec = content.get_child("security", ns::JET).unwrap();
    assert_eq!(sec.attr("name"), Some("c1"));
    assert_eq!(sec.attr("cipher"), Some(TEST_XOR_URN));
    assert_eq!(sec.attr("type"), Some(TEST_ENVELOPE));
    assert_eq!(
        initiate
            .get_child("jingle", ns::JINGLE)
            .unwrap()
            .attr("initiator"),
        Some("romeo@montague.lit/orchard")
    );
}

#[test]
fn decline() {
    let mut p = Pair::new(config(), config());
    let (sid, _) = initiate(&mut p);
    assert!(p.juliet_events().len() == 1);
    p.juliet
        .terminate(&sid, Reason::Decline, Some("no thanks".into()), p.time)
        .unwrap();
    p.drive();
    assert_eq!(
        p.terminate_reason_from(&juliet_jid()).as_deref(),
        Some("decline")
    );
    assert_eq!(
        terminated(&p.romeo_events()),
        Some((Reason::Decline, Some("no thanks".into()), true))
    );
    assert_eq!(p.romeo.state(&sid), None);
    assert!(p.all_requests_answered());
}

/// Romeo's session-initiate is changed in flight; Juliet must answer with
/// security-error and Romeo must learn it.
fn initiate_tampered(tamper: impl Fn(&mut Element) + 'static) -> Pair {
    let mut p = Pair::new(config(), config());
    p.tamper = Some(Box::new(move |from, st| {
        if from == &romeo_jid() {
            if let Some(j) = st.get_child_mut("jingle", ns::JINGLE) {
                if j.attr("action") == Some("session-initiate") {
                    tamper(j);
                }
            }
        }
        true
    }));
    let (sid, _) = initiate(&mut p);
    assert_eq!(p.romeo.state(&sid), None, "the session must be over");
    p
}

fn security_of(jingle: &mut Element) -> &mut Element {
    jingle
        .get_child_mut("content", ns::JINGLE)
        .unwrap()
        .get_child_mut("security", ns::JET)
        .unwrap()
}

fn assert_security_error(p: &mut Pair, expect_text: &str) {
    assert_eq!(
        p.terminate_reason_from(&juliet_jid()).as_deref(),
        Some("security-error")
    );
    let (reason, text, by_peer) = terminated(&p.romeo_events()).unwrap();
    assert_eq!(reason, Reason::SecurityError);
    assert!(by_peer);
    assert!(
        text.as_deref().unwrap_or_default().contains(expect_text),
        "{text:?} should mention {expect_text:?}"
    );
    let (reason, _, by_peer) = terminated(&p.juliet_events()).unwrap();
    assert_eq!(reason, Reason::SecurityError);
    assert!(!by_peer);
    // Juliet never accepted, the session-initiate was acknowledged.
    assert_eq!(p.actions_from(&juliet_jid()), ["session-terminate"]);
    assert!(p.all_requests_answered());
}

#[test]
fn unreadable_security_is_a_security_error() {
    let mut p = initiate_tampered(|j| {
        let sec = security_of(j);
        // Drop the envelope element: JET offered but unreadable.
        let _ = sec.remove_child("sealed", TEST_ENVELOPE);
    });
    assert_security_error(&mut p, "cannot be read");
}

#[test]
fn unknown_cipher_is_a_security_error() {
    let mut p = initiate_tampered(|j| {
        security_of(j).set_a("cipher", "urn:xmpp:ciphers:rot13:0");
    });
    assert_security_error(&mut p, "rot13");
}

#[test]
fn unknown_envelope_is_a_security_error() {
    let mut p = initiate_tampered(|j| {
        security_of(j).set_a("type", "urn:example:unknown-envelope");
    });
    assert_security_error(&mut p, "unknown-envelope");
}

#[test]
fn missing_security_when_required_is_a_security_error() {
    let lax = EngineConfig {
        require_encryption: false,
        ..config()
    };
    // The initiator's own policy refuses to send plaintext...
    let mut strict = Endpoint::new(romeo_jid(), config());
    assert!(matches!(
        strict.initiate(
            juliet_jid(),
            vec![plain_content("c1")],
            std::time::Instant::now()
        ),
        Err(Error::MissingSecurity(_))
    ));
    assert!(strict.poll_transmit().is_none());
    // ...and a responder that requires JET refuses a plaintext offer.
    let mut p = Pair::new(lax.clone(), config());
    let sid = p
        .romeo
        .initiate(juliet_jid(), vec![plain_content("c1")], p.time)
        .unwrap();
    p.drive();
    assert_eq!(p.romeo.state(&sid), None);
    assert_security_error(&mut p, "without JET");

    // A responder that does not require it sees the session.
    let mut p = Pair::new(lax.clone(), lax);
    p.romeo
        .initiate(juliet_jid(), vec![plain_content("c1")], p.time)
        .unwrap();
    p.drive();
    let ev = p.juliet_events();
    assert!(
        matches!(ev[0].event, Event::IncomingSession { .. }),
        "{ev:?}"
    );
}

#[test]
fn sender_mismatch_is_a_security_error() {
    // Romeo replays an envelope sealed by Mallory (a third JID).
    let mallory: FullJid = "mallory@evil.lit/x".parse().unwrap();
    let mut p = Pair::new(config(), config());
    let (c, _) = sealed_content(&jet_for(&mallory), "c1");
    let sid = p.romeo.initiate(juliet_jid(), vec![c], p.time).unwrap();
    p.drive();
    let err = juliet_opens_and_accepts(&mut p, &sid).unwrap_err();
    assert!(matches!(err, Error::SenderMismatch { .. }), "{err:?}");
    assert_eq!(
        p.terminate_reason_from(&juliet_jid()).as_deref(),
        Some("security-error")
    );
    let (reason, text, _) = terminated(&p.romeo_events()).unwrap();
    assert_eq!(reason, Reason::SecurityError);
    assert!(text.unwrap().contains("mallory@evil.lit"));
    assert_eq!(p.actions_from(&juliet_jid()), ["session-terminate"]);
}

#[test]
fn initiator_attribute_must_be_the_sender() {
    let mut p = Pair::new(config(), config());
    p.tamper = Some(Box::new(|_, st| {
        if let Some(j) = st.get_child_mut("jingle", ns::JINGLE) {
            j.set_a("initiator", "mallory@evil.lit/x");
        }
        true
    }));
    let (c, _) = sealed_content(&jet_for(&romeo_jid()), "c1");
    let sid = p.romeo.initiate(juliet_jid(), vec![c], p.time).unwrap();
    p.drive();
    let (_, answer) = p.log.iter().find(|(f, _)| f == &juliet_jid()).unwrap();
    assert_eq!(error_condition(answer).0, "bad-request");
    assert!(p.juliet_events().is_empty());
    // ... and Juliet's side can tell its user who and why.
    let (from, why) = p.juliet.poll_refused().expect("the refusal is reported");
    assert_eq!(from, romeo_jid().to_string());
    assert!(why.contains("mallory@evil.lit/x"), "{why}");
    assert!(p.juliet.poll_refused().is_none());
    // Romeo's session-initiate was refused: his session is over.
    assert_eq!(p.romeo.state(&sid), None);
    assert_eq!(
        terminated(&p.romeo_events()).unwrap().0,
        Reason::GeneralError
    );
}

#[test]
fn missing_initiator_attribute_falls_back_to_from() {
    let mut p = Pair::new(config(), config());
    let (c, _) = sealed_content(&jet_for(&romeo_jid()), "c1");
    let sid = p.romeo.initiate(juliet_jid(), vec![c], p.time).unwrap();
    let sid2 = sid.clone();
    // Strip every attribute but action and sid: no initiator.
    p.tamper = Some(Box::new(move |_, st| {
        if let Some(j) = st.get_child_mut("jingle", ns::JINGLE) {
            if j.attr("action") == Some("session-initiate") {
                j.attrs_mut().clear();
                j.set_a("action", "session-initiate");
                j.set_a("sid", sid2.as_str());
            }
        }
        true
    }));
    p.drive();
    let ev = p.juliet_events();
    match &ev[0].event {
        Event::IncomingSession { initiator, .. } => {
            assert_eq!(initiator, &Jid::from(romeo_jid()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.juliet.state(&sid), Some(State::Pending));
}

#[test]
fn transport_replace_accept_and_reject() {
    let mut p = Pair::new(config(), config());
    let (sid, _) = initiate(&mut p);
    juliet_opens_and_accepts(&mut p, &sid).unwrap();
    p.romeo_events();

    // transport-accept with no replace pending is out of order.
    let bogus = {
        let mut m = JingleMessage::new(Action::TransportAccept, sid.clone());
        m.contents
            .push(ContentParts::new(Creator::Initiator, "c1").with_transport(pipe("x")));
        iq(
            "set",
            "bogus1",
            None,
            &romeo_jid().into(),
            Some(m.to_element()),
        )
    };
    p.deliver(&juliet_jid(), bogus);
    let answer = p.romeo.poll_transmit().unwrap();
    assert_eq!(
        error_condition(&answer),
        ("unexpected-request".into(), Some("out-of-order".into()))
    );

    // Replace → accept.
    p.romeo
        .transport_replace(&sid, "c1", pipe("ibb1"), p.time)
        .unwrap();
    p.drive();
    let ev = p.juliet_events();
    assert_eq!(
        ev[0].event,
        Event::TransportReplace {
            content: "c1".into(),
            transport: pipe("ibb1")
        }
    );
    p.juliet
        .transport_accept(&sid, "c1", pipe("ibb2"), p.time)
        .unwrap();
    p.drive();
    assert_eq!(
        p.romeo_events()[0].event,
        Event::TransportAccepted {
            content: "c1".into(),
            transport: pipe("ibb2")
        }
    );
    assert_eq!(
        p.romeo.session(&sid).unwrap().contents[0].transport,
        Some(pipe("ibb2"))
    );
    // Answering twice is refused locally.
    assert!(p
        .juliet
        .transport_accept(&sid, "c1", pipe("x"), p.time)
        .is_err());

    // Replace → reject.
    p.romeo
        .transport_replace(&sid, "c1", pipe("ibb3"), p.time)
        .unwrap();
    p.drive();
    p.juliet_events();
    p.juliet.transport_reject(&sid, "c1", p.time).unwrap();
    p.drive();
    assert_eq!(
        p.romeo_events()[0].event,
        Event::TransportRejected {
            content: "c1".into()
        }
    );
    assert_eq!(
        p.actions_from(&romeo_jid()),
        ["session-initiate", "transport-replace", "transport-replace"]
    );
    assert_eq!(
        p.actions_from(&juliet_jid()),
        [
            "session-accept",
            "transport-accept",
            "transport-accept",
            "transport-reject"
        ]
    );
    // The reject ends nothing by itself; the driver decides.
    assert_eq!(p.romeo.state(&sid), Some(State::Active));
    p.romeo
        .terminate(&sid, Reason::FailedTransport, None, p.time)
        .unwrap();
    p.drive();
    assert_eq!(
        p.terminate_reason_from(&romeo_jid()).as_deref(),
        Some("failed-transport")
    );
}

#[test]
fn transport_info_and_session_info_reach_the_peer() {
    let mut p = Pair::new(config(), config());
    let (sid, _) = initiate(&mut p);
    juliet_opens_and_accepts(&mut p, &sid).unwrap();
    p.romeo_events();
    let used = Element::builder("transport", PIPE_NS)
        .append(Element::builder("candidate-used", PIPE_NS).build())
        .build();
    p.juliet
        .transport_info(&sid, "c1", used.clone(), p.time)
        .unwrap();
    let checksum = Element::builder("checksum", ns::JINGLE_FT).build();
    p.juliet
        .session_info(&sid, Some(checksum.clone()), p.time)
        .unwrap();
    p.juliet.session_info(&sid, None, p.time).unwrap();
    p.drive();
    let ev: Vec<Event> = p.romeo_events().into_iter().map(|e| e.event).collect();
    assert_eq!(
        ev,
        vec![
            Event::TransportInfo {
                content: "c1".into(),
                transport: used
            },
            Event::SessionInfo(checksum)
        ]
    );
    assert!(p.all_requests_answered());
}

#[test]
fn stanza_from_a_wrong_jid_is_rejected() {
    let mut p = Pair::new(config(), config());
    let (sid, _) = initiate(&mut p);
    juliet_opens_and_accepts(&mut p, &sid).unwrap();
    // Mallory, and Romeo's other resource, try to end the session.
    for intruder in ["mallory@evil.lit/x", "romeo@montague.lit/phone"] {
        let intruder: FullJid = intruder.parse().unwrap();
        let mut m = JingleMessage::new(Action::SessionTerminate, sid.clone());
        m.reason = Some(crate::jingle::ReasonInfo::new(Reason::Success, None));
        let st = iq(
            "set",
            "evil1",
            None,
            &juliet_jid().into(),
            Some(m.to_element()),
        );
        p.deliver(&intruder, st);
        p.drive();
        let answer = p.others.last().unwrap();
        assert_eq!(answer.attr("to"), Some(intruder.to_string().as_str()));
        assert_eq!(
            error_condition(answer),
            ("item-not-found".into(), Some("unknown-session".into()))
        );
        assert_eq!(p.juliet.state(&sid), Some(State::Active));
    }
    // Answers to our requests from a wrong JID are ignored too.
    p.juliet.session_info(&sid, None, p.time).unwrap();
    let req = p.juliet.poll_transmit().unwrap();
    let mut fake = crate::channel::iq_error(&req, "cancel", "item-not-found", None);
    fake.set_a("to", juliet_jid().to_string());
    p.deliver(&"mallory@evil.lit/x".parse().unwrap(), fake);
    assert!(p
        .juliet_events()
        .iter()
        .all(|e| !matches!(e.event, Event::RequestFailed { .. })));
}

#[test]
fn unknown_sid_gets_unknown_session() {
    let mut p = Pair::new(config(), config());
    let mut m = JingleMessage::new(Action::SessionInfo, "no-such-sid");
    m.other
        .push(Element::builder("ringing", "urn:example").build());
    let st = iq(
        "set",
        "q1",
        None,
        &juliet_jid().into(),
        Some(m.to_element()),
    );
    p.deliver(&romeo_jid(), st);
    let answer = p.juliet.poll_transmit().unwrap();
    assert_eq!(answer.attr("type"), Some("error"));
    assert_eq!(answer.attr("id"), Some("q1"));
    assert_eq!(
        error_condition(&answer),
        ("item-not-found".into(), Some("unknown-session".into()))
    );
    assert!(p.juliet_events().is_empty());
}

#[test]
fn out_of_order_and_malformed_requests() {
    let mut p = Pair::new(config(), config());
    let (sid, _) = initiate(&mut p);
    // Juliet (responder) receives a session-accept: out of order.
    let mut m = JingleMessage::new(Action::SessionAccept, sid.clone());
    m.contents
        .push(ContentParts::new(Creator::Initiator, "c1").with_transport(pipe("z")));
    p.deliver(
        &romeo_jid(),
        iq(
            "set",
            "o1",
            None,
            &juliet_jid().into(),
            Some(m.to_element()),
        ),
    );
    let answer = p.juliet.poll_transmit().unwrap();
    assert_eq!(
        error_condition(&answer),
        ("unexpected-request".into(), Some("out-of-order".into()))
    );
    // A Jingle with no sid: bad-request.
    let broken = Element::builder("jingle", ns::JINGLE)
        .a("action", "session-info")
        .build();
    p.deliver(
        &romeo_jid(),
        iq("set", "o2", None, &juliet_jid().into(), Some(broken)),
    );
    let answer = p.juliet.poll_transmit().unwrap();
    assert_eq!(error_condition(&answer).0, "bad-request");
    // An action we do not implement.
    let m = JingleMessage::new(Action::ContentAdd, sid.clone());
    p.deliver(
        &romeo_jid(),
        iq(
            "set",
            "o3",
            None,
            &juliet_jid().into(),
            Some(m.to_element()),
        ),
    );
    let answer = p.juliet.poll_transmit().unwrap();
    assert_eq!(error_condition(&answer).0, "feature-not-implemented");
    // The session survived all of it.
    assert_eq!(p.juliet.state(&sid), Some(State::Pending));
    // Not IQ, or IQ get: ignored.
    p.juliet.handle_stanza(
        Element::builder("message", ns::JABBER_CLIENT).build(),
        p.time,
    );
    assert!(p.juliet.poll_transmit().is_none());
}

#[test]
fn timeout_when_no_accept_arrives() {
    let mut p = Pair::new(config(), config());
    let (sid, _) = initiate(&mut p);
    let start = p.time;
    assert_eq!(
        p.romeo.poll_timeout(),
        Some(start + config().accept_timeout)
    );
    // Juliet's driver never answers. Before the deadline nothing happens.
    p.advance(config().accept_timeout - Duration::from_secs(1));
    assert_eq!(p.romeo.state(&sid), Some(State::Pending));
    assert!(p.romeo_events().is_empty());
    p.advance(Duration::from_secs(1));
    assert_eq!(p.romeo.state(&sid), None);
    assert_eq!(
        p.terminate_reason_from(&romeo_jid()).as_deref(),
        Some("timeout")
    );
    assert_eq!(terminated(&p.romeo_events()).unwrap().0, Reason::Timeout);
    let juliet_saw = p.juliet_events();
    assert_eq!(
        terminated(&juliet_saw),
        Some((
            Reason::Timeout,
            Some("no session-accept in time".into()),
            true
        ))
    );
}

#[test]
fn unanswered_request_times_out() {
    let mut p = Pair::new(config(), config());
    let (sid, _) = initiate(&mut p);
    juliet_opens_and_accepts(&mut p, &sid).unwrap();
    // The network now eats everything.
    p.tamper = Some(Box::new(|_, _| false));
    p.romeo
        .transport_replace(&sid, "c1", pipe("i"), p.time)
        .unwrap();
    p.drive();
    p.advance(config().iq_timeout);
    assert_eq!(p.romeo.state(&sid), None);
    let ev = p.romeo_events();
    let (reason, text, by_peer) = terminated(&ev).unwrap();
    assert_eq!((reason, by_peer), (Reason::Timeout, false));
    assert!(text.unwrap().contains("transport-replace"));
}

#[test]
fn offline_peer_ends_the_session() {
    let mut p = Pair::new(config(), config());
    let (c, _) = sealed_content(&jet_for(&romeo_jid()), "c1");
    let nobody: FullJid = "juliet@capulet.lit/gone".parse().unwrap();
    let sid = p.romeo.initiate(nobody, vec![c], p.time).unwrap();
    p.drive();
    assert_eq!(p.romeo.state(&sid), None);
    let (reason, text, _) = terminated(&p.romeo_events()).unwrap();
    assert_eq!(reason, Reason::ConnectivityError);
    assert!(text.unwrap().contains("service-unavailable"));
    // No session-terminate for a session the peer never had.
    assert_eq!(p.actions_from(&romeo_jid()), ["session-initiate"]);
}

#[test]
fn local_misuse_is_an_error_not_a_stanza() {
    let mut p = Pair::new(config(), config());
    let (sid, _) = initiate(&mut p);
    // The initiator cannot accept, nobody can act on an unknown sid.
    assert!(p.romeo.accept(&sid, vec![], vec![], p.time).is_err());
    assert!(p
        .juliet
        .terminate("nope", Reason::Success, None, p.time)
        .is_err());
    // Accept without a transport for the content.
    assert!(p.juliet.accept(&sid, vec![], vec![], p.time).is_err());
    assert!(p
        .juliet
        .accept(&sid, vec![("other".into(), pipe("x"))], vec![], p.time)
        .is_err());
    assert!(p.romeo.initiate(juliet_jid(), vec![], p.time).is_err());
    assert!(p.romeo.poll_transmit().is_none());
    assert!(p.juliet.poll_transmit().is_none());
}

// ----- the Application trait, shown with a byte-echo application ----------

/// Initiator sends `payload` and expects it back; responder echoes.
struct Echo {
    payload: Vec<u8>,
}

#[async_trait]
impl Application for Echo {
    type Output = ();

    async fn run(&self, ctx: AppContext, mut stream: BoxedStream) -> Result<(), Error> {
        let mut got = Vec::new();
        match ctx.role {
            Role::Initiator => {
                stream.write_all(&self.payload).await?;
                stream.shutdown().await?;
                stream.read_to_end(&mut got).await?;
                if got != self.payload {
                    return Err(Error::Application("echo differs".into()));
                }
            }
            Role::Responder => {
                stream.read_to_end(&mut got).await?;
                stream.write_all(&got).await?;
                stream.shutdown().await?;
            }
        }
        Ok(())
    }
}

impl Initiator for Echo {
    fn offer(&self) -> Result<Offer, Error> {
        Ok(Offer {
            description: Element::builder("description", ECHO_NS)
                .a("size", self.payload.len())
                .build(),
            senders: Senders::Both,
        })
    }
}

impl Acceptor for Echo {
    fn namespace(&self) -> &'static str {
        ECHO_NS
    }

    fn decide(&self, description: &Element, _senders: Senders) -> Decision {
        match description
            .attr("size")
            .and_then(|s| s.parse::<usize>().ok())
        {
            Some(n) if n <= 1024 => Decision::Accept(description.clone()),
            _ => Decision::Reject(Reason::Decline, Some("too big to echo".into())),
        }
    }
}

#[test]
fn echo_application_over_the_engine() {
    let app = Arc::new(Echo {
        payload: b"wherefore art thou".to_vec(),
    });
    // Echo runs both ways, which one JET secret must not protect
    // (`rules::check_senders`): a session without JET.
    let plain = EngineConfig {
        require_encryption: false,
        ..config()
    };
    let mut p = Pair::new(plain.clone(), plain);
    // Initiator driver: the application's offer.
    let offer = app.offer().unwrap();
    let content = ContentParts::new(Creator::Initiator, "echo")
        .with_senders(offer.senders)
        .with_description(offer.description)
        .with_transport(pipe("p"));
    let sid = p
        .romeo
        .initiate(juliet_jid(), vec![content], p.time)
        .unwrap();
    p.drive();
    // Responder driver: the application decides.
    let ev = p.juliet_events().remove(0);
    let Event::IncomingSession { contents, .. } = ev.event else {
        panic!()
    };
    let Decision::Accept(desc) = app.decide(
        contents[0].description.as_ref().unwrap(),
        contents[0].senders.clone(),
    ) else {
        panic!("echo should accept")
    };
    p.juliet
        .accept(
            &sid,
            vec![("echo".into(), pipe("q"))],
            vec![("echo".into(), desc.clone())],
            p.time,
        )
        .unwrap();
    p.drive();
    assert!(matches!(p.romeo_events()[0].event, Event::Accepted { .. }));
    // Both run the application over a connected stream.
    block_on(async {
        let (a, b) = tokio::io::duplex(64);
        let ctx = |role, peer: FullJid| AppContext {
            role,
            peer,
            sid: sid.clone(),
            content: "echo".into(),
            description: desc.clone(),
            we_send: true,
            we_receive: true,
            framing: None,
            notes: Default::default(),
            checksum_key: None,
        };
        let (ra, rb) = tokio::join!(
            app.run(ctx(Role::Initiator, juliet_jid()), Box::new(a)),
            app.run(ctx(Role::Responder, romeo_jid()), Box::new(b)),
        );
        ra.unwrap();
        rb.unwrap();
    });
}

#[test]
fn application_rejection_becomes_the_reason() {
    let big = Echo {
        payload: vec![0; 4096],
    };
    let offer = big.offer().unwrap();
    match big.decide(&offer.description, offer.senders) {
        Decision::Reject(reason, text) => {
            let mut p = Pair::new(config(), config());
            let (sid, _) = initiate(&mut p);
            p.juliet.terminate(&sid, reason, text, p.time).unwrap();
            p.drive();
            assert_eq!(
                p.terminate_reason_from(&juliet_jid()).as_deref(),
                Some("decline")
            );
            let (_, text, _) = terminated(&p.romeo_events()).unwrap();
            assert_eq!(text.as_deref(), Some("too big to echo"));
        }
        Decision::Accept(_) => panic!("4096 bytes must be declined"),
    }
}

#[test]
fn jet_config_lookups() {
    let jet = jet_for(&romeo_jid());
    assert!(jet.suite("urn:jet:test:xor-not-a-cipher").is_some());
    assert!(jet.suite(ns::CIPHER_AES_128_GCM).is_none());
    assert!(jet.envelope(TEST_ENVELOPE).is_some());
    let sec = Security::new(
        "c",
        ns::CIPHER_AES_128_GCM,
        TEST_ENVELOPE,
        Element::builder("sealed", TEST_ENVELOPE).build(),
    );
    let from: Jid = romeo_jid().into();
    assert!(matches!(
        block_on(jet.open(&EnvelopeContext::new("s1", "c", false), &sec, &from, &from)),
        Err(Error::UnsupportedCipher(_))
    ));
    let sec = Security::new("c", TEST_XOR_URN, "urn:nope", sec.envelope);
    assert!(matches!(
        block_on(jet.open(&EnvelopeContext::new("s1", "c", false), &sec, &from, &from)),
        Err(Error::UnsupportedEnvelope(_))
    ));
    assert!(format!("{jet:?}").contains(TEST_XOR_URN));
}

#[test]
fn cipher_urn_form_is_configurable_and_both_forms_are_accepted() {
    let mut jet = jet_for(&romeo_jid());
    jet.unversioned_cipher_urns = true;
    let (sec, ts) = block_on(jet.seal(
        &EnvelopeContext::new("s1", "c1", true),
        &TEST_XOR,
        &juliet_jid().into(),
    ))
    .unwrap();
    assert_eq!(sec.cipher, "urn:jet:test:xor-not-a-cipher");
    // The engine and the opener accept it.
    let mut p = Pair::new(config(), config());
    let c = ContentParts::new(Creator::Initiator, "c1")
        .with_senders(Senders::Initiator)
        .with_description(description())
        .with_transport(pipe("r1"))
        .with_security(sec);
    let sid = p.romeo.initiate(juliet_jid(), vec![c], p.time).unwrap();
    p.drive();
    assert_eq!(juliet_opens_and_accepts(&mut p, &sid).unwrap(), ts);
}
