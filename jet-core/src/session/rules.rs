//! The session rules the engine decides from stanzas and its state, so
//! that a driver only executes them:
//! - **one direction per content with JET**: XEP-0391 gives a content one
//!   transport secret; `senders='both'` would encrypt both directions
//!   under the same key and IV (a reused nonce). [`check_senders`] refuses
//!   it when we offer; an incoming `session-initiate` that asks for it is
//!   ended with `incompatible-parameters` before any application sees it;
//! - **transport fallback** (XEP-0166 §6.8, XEP-0260 §2.4): when a
//!   content's transport fails, the initiator offers the next of its
//!   transports after the one that failed with `transport-replace`
//!   ([`Endpoint::fallback_transport`]); the responder accepts an offer it
//!   has a transport for and rejects any other
//!   ([`Endpoint::answer_replace`]);
//! - **the end-of-transfer verdict**: the side that receives ends the
//!   session once the data authenticated; the sender's outcome is that
//!   `session-terminate`: `success` means delivered, any other reason is
//!   the failure ([`verdict`]). A sender that has sent everything waits
//!   for it a bounded time ([`Endpoint::await_verdict`]); without it the
//!   engine ends the session with `timeout` ([`verdict_timeout_text`]).

use std::time::{Duration, Instant};

use minidom::Element;

use super::{Endpoint, Event};
use crate::error::Error;
use crate::jingle::{Reason, Senders};
use crate::transport::Role;

/// Why `senders='both'` is refused when we would offer it.
pub const BOTH_WAYS_OFFER: &str = "senders='both' with JET would use one key and IV both ways";

/// The text of the `session-terminate` that refuses an offer of
/// `senders='both'` with JET (reason `incompatible-parameters`).
pub const BOTH_WAYS_REFUSED: &str = "senders='both' with JET would reuse the key and IV";

/// Whether a content with `senders` may be offered, `encrypted` with JET:
/// one transport secret protects one direction only.
pub fn check_senders(senders: &Senders, encrypted: bool) -> Result<(), Error> {
    if both_ways(senders, encrypted) {
        return Err(Error::Protocol(BOTH_WAYS_OFFER.into()));
    }
    Ok(())
}

/// Whether a content with `senders`, `encrypted` with JET, would use one
/// transport secret both ways (what [`check_senders`] refuses).
pub fn both_ways(senders: &Senders, encrypted: bool) -> bool {
    encrypted && *senders == Senders::Both
}

/// A session that ended without `success`: the transfer failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Undelivered {
    /// The reason.
    pub reason: Reason,
    /// Its text, if any.
    pub text: Option<String>,
    /// Whether the peer ended the session (else our engine or driver).
    pub by_peer: bool,
}

/// What a session's end ([`Event::Terminated`]; `None` for any other
/// event) means for the transfer it carried: `Ok` when it ended with
/// `success` (the receiver has everything, authenticated), else why not.
pub fn verdict(event: &Event) -> Option<Result<(), Undelivered>> {
    match event {
        Event::Terminated { reason, .. } if delivered(reason) => Some(Ok(())),
        Event::Terminated {
            reason,
            text,
            by_peer,
        } => Some(Err(Undelivered {
            reason: reason.clone(),
            text: text.clone(),
            by_peer: *by_peer,
        })),
        _ => None,
    }
}

/// Whether a session that ended with `reason` delivered its transfer:
/// only `success` says the receiver has everything, authenticated.
pub fn delivered(reason: &Reason) -> bool {
    *reason == Reason::Success
}

/// What a sender waited for in vain when no verdict came within `within`
/// (an [`Error::Timeout`] of it is the error to report).
pub fn verdict_wait(within: Duration) -> String {
    format!(
        "the receiver's verdict: every byte was sent, but no session-terminate \
         came within {} s, so whether the file arrived is unknown",
        within.as_secs()
    )
}

/// The text of the `timeout` that ends a session whose receiver gave no
/// verdict within `within` ([`Endpoint::await_verdict`]).
pub fn verdict_timeout_text(within: Duration) -> String {
    Error::Timeout(verdict_wait(within)).to_string()
}

impl Endpoint {
    /// Initiator: after `content`'s transport failed, the index in `ours`
    /// (transport namespaces, our order of preference) of the transport
    /// to offer with [`transport_replace`](Self::transport_replace): the
    /// next one after the transport the content uses now. `None`: none
    /// left, the session fails. An error for a responder (only the
    /// initiator replaces a transport; the responder waits for its offer)
    /// or an unknown session or content.
    pub fn fallback_transport(
        &self,
        sid: &str,
        content: &str,
        ours: &[&str],
    ) -> Result<Option<usize>, Error> {
        let s = self.live(sid)?;
        if s.role != Role::Initiator {
            return Err(Error::Protocol(
                "only the initiator replaces a transport".into(),
            ));
        }
        let failed = s
            .contents
            .iter()
            .find(|c| c.name == content)
            .ok_or_else(|| Error::Protocol(format!("no content {content:?} in session {sid}")))?
            .transport
            .as_ref()
            .map(|t| t.ns())
            .unwrap_or_default();
        let next = ours
            .iter()
            .position(|t| *t == failed)
            .map(|i| i + 1)
            .filter(|i| *i < ours.len());
        Ok(next)
    }

    /// Responder, after [`Event::TransportReplace`] for `content`: the
    /// index in `ours` (transport namespaces) of the transport that answers
    /// the offer and the offered `<transport/>`; answer it with
    /// [`transport_accept`](Self::transport_accept). When none of ours
    /// does, sends `transport-reject` and returns `None`.
    pub fn answer_replace(
        &mut self,
        sid: &str,
        content: &str,
        ours: &[&str],
        now: Instant,
    ) -> Result<Option<(usize, Element)>, Error> {
        let offer = self
            .live(sid)?
            .replace_in
            .get(content)
            .cloned()
            .ok_or_else(|| {
                Error::Protocol(format!("no transport-replace for {content:?} to answer"))
            })?;
        match ours.iter().position(|t| *t == offer.ns()) {
            Some(i) => Ok(Some((i, offer))),
            None => {
                self.transport_reject(sid, content, now)?;
                Ok(None)
            }
        }
    }

    /// Sender: every byte of session `sid` is sent; the receiver's
    /// `session-terminate` is its verdict ([`verdict`]). Without one
    /// within `within`, the engine ends the session with `timeout`
    /// ([`verdict_timeout_text`]).
    pub fn await_verdict(
        &mut self,
        sid: &str,
        within: Duration,
        now: Instant,
    ) -> Result<(), Error> {
        let s = self
            .sessions
            .get_mut(sid)
            .ok_or_else(|| Error::Protocol(format!("no live session {sid}")))?;
        s.verdict_deadline = Some((now + within, within));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::pair::{juliet_jid, romeo_jid, Pair};
    use super::super::{EngineConfig, Event, State};
    use super::*;
    use crate::jingle::{ContentParts, Creator};
    use crate::security::Security;

    const PIPE: &str = "urn:jet:test:pipe";
    const TUBE: &str = "urn:jet:test:tube";
    const WIRE: &str = "urn:jet:test:wire";

    fn config() -> EngineConfig {
        EngineConfig {
            supported_ciphers: vec!["urn:jet:test:c:0".into()],
            supported_envelopes: vec!["urn:jet:test:e".into()],
            ..EngineConfig::default()
        }
    }

    fn security() -> Security {
        let ee = Element::builder("sealed", "urn:jet:test:e").build();
        Security::new("c", "urn:jet:test:c:0", "urn:jet:test:e", ee)
    }

    fn content(senders: Senders, transport: &str) -> ContentParts {
        ContentParts::new(Creator::Initiator, "c")
            .with_senders(senders)
            .with_description(Element::builder("description", "urn:jet:test:app").build())
            .with_transport(Element::builder("transport", transport).build())
            .with_security(security())
    }

    /// Romeo offers over `transport`, Juliet accepts with the same one.
    fn active(p: &mut Pair, transport: &str) -> String {
        let sid = p
            .romeo
            .initiate(
                juliet_jid(),
                vec![content(Senders::Initiator, transport)],
                p.time,
            )
            .unwrap();
        p.drive();
        p.juliet_events();
        let t = Element::builder("transport", transport).build();
        p.juliet
            .accept(&sid, vec![("c".into(), t)], vec![], p.time)
            .unwrap();
        p.drive();
        p.romeo_events();
        sid
    }

    #[test]
    fn both_directions_under_one_secret_are_refused_both_ways() {
        assert!(check_senders(&Senders::Both, false).is_ok());
        assert!(check_senders(&Senders::Initiator, true).is_ok());
        assert!(check_senders(&Senders::Responder, true).is_ok());
        let e = check_senders(&Senders::Both, true).unwrap_err();
        assert!(e.to_string().contains(BOTH_WAYS_OFFER), "{e}");

        // We never send such an offer.
        let mut p = Pair::new(config(), config());
        let e = p
            .romeo
            .initiate(juliet_jid(), vec![content(Senders::Both, PIPE)], p.time)
            .unwrap_err();
        assert!(e.to_string().contains(BOTH_WAYS_OFFER), "{e}");
        assert!(p.romeo.poll_transmit().is_none());

        // A peer's offer of it is acknowledged, then ended before any
        // application sees it.
        let mut lax = config();
        lax.require_encryption = false;
        let mut p = Pair::new(lax, config());
        // Romeo's engine is bypassed: the stanza a careless peer sends.
        let mut msg =
            crate::jingle::JingleMessage::new(crate::jingle::Action::SessionInitiate, "s9");
        msg.initiator = Some(romeo_jid().into());
        msg.contents.push(content(Senders::Both, PIPE));
        let stanza = crate::channel::iq(
            "set",
            "x1",
            Some(&romeo_jid().into()),
            &juliet_jid().into(),
            Some(msg.to_element()),
        );
        p.juliet.handle_stanza(stanza, p.time);
        let ack = p.juliet.poll_transmit().unwrap();
        assert_eq!(ack.attr("type"), Some("result"));
        let terminate = p.juliet.poll_transmit().unwrap();
        let text = String::from(&terminate);
        assert!(text.contains("incompatible-parameters"), "{text}");
        assert!(text.contains(BOTH_WAYS_REFUSED), "{text}");
        let evs: Vec<_> = std::iter::from_fn(|| p.juliet.poll_event()).collect();
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert!(matches!(
            &evs[0].event,
            Event::Terminated {
                reason: Reason::IncompatibleParameters,
                by_peer: false,
                ..
            }
        ));
        assert_eq!(p.juliet.state("s9"), None);
    }

    #[test]
    fn the_initiator_falls_back_to_its_next_transport_in_order() {
        let mut p = Pair::new(config(), config());
        let sid = active(&mut p, PIPE);
        let ours = [WIRE, PIPE, TUBE];
        assert_eq!(
            p.romeo.fallback_transport(&sid, "c", &ours).unwrap(),
            Some(2)
        );
        // The last one failed: nothing left.
        assert_eq!(
            p.romeo
                .fallback_transport(&sid, "c", &[WIRE, PIPE])
                .unwrap(),
            None
        );
        // One we never had: nothing to follow it.
        assert_eq!(
            p.romeo.fallback_transport(&sid, "c", &[TUBE]).unwrap(),
            None
        );
        // The responder waits for the initiator's offer.
        assert!(p.juliet.fallback_transport(&sid, "c", &ours).is_err());
        assert!(p.romeo.fallback_transport(&sid, "nope", &ours).is_err());
        assert!(p.romeo.fallback_transport("nope", "c", &ours).is_err());

        // Replaced and accepted: the next failure falls back from the new one.
        let tube = Element::builder("transport", TUBE).build();
        p.romeo
            .transport_replace(&sid, "c", tube.clone(), p.time)
            .unwrap();
        p.drive();
        p.romeo_events();
        assert!(matches!(
            p.juliet_events()[0].event,
            Event::TransportReplace { .. }
        ));
        let (i, offer) = p
            .juliet
            .answer_replace(&sid, "c", &[PIPE, TUBE], p.time)
            .unwrap()
            .unwrap();
        assert_eq!((i, offer.ns()), (1, TUBE.to_string()));
        p.juliet.transport_accept(&sid, "c", tube, p.time).unwrap();
        p.drive();
        assert!(matches!(
            p.romeo_events()[0].event,
            Event::TransportAccepted { .. }
        ));
        assert_eq!(p.romeo.fallback_transport(&sid, "c", &ours).unwrap(), None);
        assert_eq!(
            p.romeo
                .fallback_transport(&sid, "c", &[TUBE, WIRE])
                .unwrap(),
            Some(1)
        );
    }

    #[test]
    fn the_responder_rejects_a_replacement_it_cannot_run() {
        let mut p = Pair::new(config(), config());
        let sid = active(&mut p, PIPE);
        // Nothing offered yet: nothing to answer.
        assert!(p.juliet.answer_replace(&sid, "c", &[PIPE], p.time).is_err());
        let tube = Element::builder("transport", TUBE).build();
        p.romeo.transport_replace(&sid, "c", tube, p.time).unwrap();
        p.drive();
        p.juliet_events();
        assert_eq!(
            p.juliet
                .answer_replace(&sid, "c", &[PIPE, WIRE], p.time)
                .unwrap(),
            None
        );
        p.drive();
        assert!(matches!(
            p.romeo_events()[0].event,
            Event::TransportRejected { .. }
        ));
        // Answered: a second answer is an error, the session goes on.
        assert!(p.juliet.answer_replace(&sid, "c", &[TUBE], p.time).is_err());
        assert_eq!(p.juliet.state(&sid), Some(State::Active));
    }

    #[test]
    fn the_receivers_terminate_is_the_verdict() {
        let ended = |reason: Reason, by_peer| Event::Terminated {
            reason,
            text: Some("why".into()),
            by_peer,
        };
        assert_eq!(verdict(&ended(Reason::Success, true)), Some(Ok(())));
        assert_eq!(
            verdict(&ended(Reason::SecurityError, true)),
            Some(Err(Undelivered {
                reason: Reason::SecurityError,
                text: Some("why".into()),
                by_peer: true
            }))
        );
        assert_eq!(
            verdict(&Event::TransportRejected {
                content: "c".into()
            }),
            None
        );

        // The receiver's success arrives before the bound: delivered.
        let mut p = Pair::new(config(), config());
        let sid = active(&mut p, PIPE);
        p.romeo
            .await_verdict(&sid, Duration::from_secs(30), p.time)
            .unwrap();
        p.juliet
            .terminate(&sid, Reason::Success, None, p.time)
            .unwrap();
        p.drive();
        let evs = p.romeo_events();
        assert_eq!(verdict(&evs.last().unwrap().event), Some(Ok(())));

        // No word within the bound: the engine ends it with timeout.
        let mut p = Pair::new(config(), config());
        let sid = active(&mut p, PIPE);
        p.romeo
            .await_verdict(&sid, Duration::from_secs(30), p.time)
            .unwrap();
        let deadline = p.romeo.poll_timeout().unwrap();
        assert_eq!(deadline, p.time + Duration::from_secs(30));
        p.romeo.handle_timeout(p.time + Duration::from_secs(29));
        assert_eq!(p.romeo.state(&sid), Some(State::Active));
        p.romeo.handle_timeout(deadline);
        assert_eq!(p.romeo.state(&sid), None);
        let evs: Vec<_> = std::iter::from_fn(|| p.romeo.poll_event()).collect();
        let text = verdict_timeout_text(Duration::from_secs(30));
        assert_eq!(
            verdict(&evs.last().unwrap().event),
            Some(Err(Undelivered {
                reason: Reason::Timeout,
                text: Some(text),
                by_peer: false
            }))
        );
        p.drive();
        assert_eq!(
            p.terminate_reason_from(&romeo_jid()).as_deref(),
            Some("timeout")
        );
        assert!(p
            .romeo
            .await_verdict(&sid, Duration::from_secs(1), p.time)
            .is_err());
    }
}
