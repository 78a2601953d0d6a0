//! The Jingle (XEP-0166) session engine with JET (XEP-0391), as logic
//! without I/O.
//!
//! In the shape of quinn-proto: the [`Endpoint`] holds all Jingle sessions
//! of one local JID, takes stanzas in ([`Endpoint::handle_stanza`]), hands
//! stanzas out ([`Endpoint::poll_transmit`]) and reports what happened
//! ([`Endpoint::poll_event`]). It has no clock: the caller passes `now` and
//! asks [`Endpoint::poll_timeout`] when to call [`Endpoint::handle_timeout`].
//! Nothing here blocks or awaits, so every rule can be tested by passing
//! stanzas between two endpoints in memory.
//!
//! ```text
//!   stanzas in ──► handle_stanza ─┐          ┌─► poll_transmit ──► stanzas out
//!   now ─────────► handle_timeout ├─ Endpoint┤
//!   driver ──────► initiate/accept┘          └─► poll_event ─────► driver
//!                  terminate/transport_*            (IncomingSession, Accepted, ...)
//! ```
//!
//! What needs async work (sealing and opening the transport secret,
//! establishing a transport, running the application) is done by the
//! **driver**, which feeds the outcome back: [`Endpoint::accept`],
//! [`Endpoint::fail`], [`Endpoint::terminate`]. The [`jet`] module holds the
//! JET steps the driver runs ([`JetConfig::seal`], [`JetConfig::open`],
//! [`jet::verify_sender`]).
//!
//! # What the engine enforces
//! - Jingle: every IQ `set` is acknowledged with `result` or answered with an
//!   error: `item-not-found` + `<unknown-session/>` for an unknown sid or a
//!   stanza from anyone but the session's peer full JID;
//!   `unexpected-request` + `<out-of-order/>` for an action the state does
//!   not allow; `bad-request` for a malformed one; `feature-not-implemented`
//!   for actions we do not support (content-*, description-info, ...).
//! - The `initiator` attribute must be the sender of `session-initiate` (a
//!   missing one is taken from `from`): otherwise a third party could
//!   replay someone else's envelope and pass the XEP-0391 §7 sender check.
//! - JET (XEP-0391 §7, never plaintext): an unreadable `<security/>`, a
//!   cipher or envelope type not in the [`EngineConfig`], or no
//!   `<security/>` while [`EngineConfig::require_encryption`] is set: the
//!   `session-initiate` is acknowledged and answered with
//!   `session-terminate` / `security-error`. The driver does the same via
//!   [`Endpoint::fail`] when opening the envelope or the sender check fails.
//! - Time: no `session-accept` within [`EngineConfig::accept_timeout`] ends
//!   the session with `timeout`; an IQ not answered within
//!   [`EngineConfig::iq_timeout`] does too.
//!
//! ```
//! use std::time::Instant;
//! use jet_core::session::{Endpoint, EngineConfig, Event};
//! use jet_core::jingle::{ContentParts, Creator, Senders};
//! use jet_core::minidom::Element;
//!
//! let now = Instant::now();
//! let config = EngineConfig { require_encryption: false, ..EngineConfig::default() };
//! let mut romeo = Endpoint::new("romeo@montague.lit/orchard".parse().unwrap(), config.clone());
//! let mut juliet = Endpoint::new("juliet@capulet.lit/balcony".parse().unwrap(), config);
//!
//! let content = ContentParts::new(Creator::Initiator, "c")
//!     .with_senders(Senders::Initiator)
//!     .with_description(Element::builder("description", "urn:example:echo").build())
//!     .with_transport(Element::builder("transport", "urn:example:pipe").build());
//! let sid = romeo
//!     .initiate("juliet@capulet.lit/balcony".parse().unwrap(), vec![content], now)
//!     .unwrap();
//! // Carry the stanza over (a server would stamp `from`).
//! let initiate = romeo.poll_transmit().unwrap();
//! juliet.handle_stanza(initiate, now);
//! let ev = juliet.poll_event().unwrap();
//! assert!(matches!(ev.event, Event::IncomingSession { .. }));
//! assert_eq!(ev.sid, sid);
//! let ack = juliet.poll_transmit().unwrap();
//! assert_eq!(ack.attr("type"), Some("result"));
//! ```

pub mod app;
pub mod jet;
pub mod rules;

#[cfg(test)]
mod pair;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::time::{Duration, Instant};

use jid::{FullJid, Jid};
use minidom::Element;

pub use app::{Acceptor, AppContext, Application, Decision, Initiator, Offer, SessionNotes};
pub use jet::{disco_features, verify_sender, CipherChoice, JetConfig, PeerUnfit};

use crate::channel::{iq, iq_error, iq_result, stanza_error_of};
use crate::error::{ChannelError, Error, JingleReason};
use crate::jingle::{Action, ContentParts, JingleMessage, Reason, ReasonInfo};
use crate::ns;
use crate::transport::Role;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Cipher URNs we accept (compared without the `:0` suffix).
    pub supported_ciphers: Vec<String>,
    /// Envelope `type`s we accept.
    pub supported_envelopes: Vec<String>,
    /// Refuse incoming contents without JET `<security/>` (default `true`).
    pub require_encryption: bool,
    /// How long the initiator waits for `session-accept` (default 120 s).
    pub accept_timeout: Duration,
    /// How long we wait for the answer to an IQ we sent (default 30 s).
    pub iq_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            supported_ciphers: Vec::new(),
            supported_envelopes: Vec::new(),
            require_encryption: true,
            accept_timeout: Duration::from_secs(120),
            iq_timeout: Duration::from_secs(30),
        }
    }
}

/// The engine config of a JET configuration: its cipher URNs, envelope
/// types and encryption policy, default timeouts. The tokio `Driver`
/// builds its engine this way, so the lists exist once, in the
/// [`JetConfig`].
impl From<&JetConfig> for EngineConfig {
    fn from(jet: &JetConfig) -> Self {
        EngineConfig {
            supported_ciphers: jet.cipher_urns(),
            supported_envelopes: jet.envelope_types(),
            require_encryption: jet.require_encryption,
            ..EngineConfig::default()
        }
    }
}

/// The state of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `session-initiate` sent or received, no `session-accept` yet.
    Pending,
    /// Accepted.
    Active,
    /// Terminated (the endpoint forgets ended sessions; [`Endpoint::state`]
    /// then returns `None`).
    Ended,
}

/// Something that happened in a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A peer initiated a session that passed the Jingle and JET checks. The
    /// driver opens each content's security (XEP-0391 §3, §7), lets the
    /// application decide, then calls [`Endpoint::accept`] or
    /// [`Endpoint::fail`] / [`Endpoint::terminate`].
    IncomingSession {
        /// The initiator (equal to the peer, see the module docs).
        initiator: Jid,
        /// The offered contents: description, transport and security each.
        contents: Vec<ContentParts>,
    },
    /// The responder accepted our session; the contents carry its transports.
    Accepted {
        /// The accepted contents.
        contents: Vec<ContentParts>,
    },
    /// A `session-info` payload (XEP-0234 `<checksum/>`, `<received/>`, ...).
    SessionInfo(Element),
    /// A `transport-info` for a content.
    TransportInfo {
        /// Content name.
        content: String,
        /// The `<transport/>`.
        transport: Element,
    },
    /// The peer wants to replace a content's transport; answer with
    /// [`Endpoint::transport_accept`] or [`Endpoint::transport_reject`].
    TransportReplace {
        /// Content name.
        content: String,
        /// The new `<transport/>`.
        transport: Element,
    },
    /// The peer accepted our transport-replace.
    TransportAccepted {
        /// Content name.
        content: String,
        /// The peer's `<transport/>`.
        transport: Element,
    },
    /// The peer rejected our transport-replace.
    TransportRejected {
        /// Content name.
        content: String,
    },
    /// The peer answered a non-critical request (session-info,
    /// transport-info) with an error; the session goes on.
    RequestFailed {
        /// The action of the request.
        action: Action,
        /// The RFC 6120 condition, e.g. `feature-not-implemented`.
        condition: String,
    },
    /// The session ended.
    Terminated {
        /// The reason (sent or received).
        reason: Reason,
        /// Its text, if any.
        text: Option<String>,
        /// Whether the peer ended it (otherwise we did: by the driver's
        /// call, a JET check, a timeout or a failed request).
        by_peer: bool,
    },
}

/// An [`Event`] with the session it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    /// The session id.
    pub sid: String,
    /// The peer's full JID.
    pub peer: FullJid,
    /// What happened.
    pub event: Event,
}

/// What the caller can read about a live session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// Our role.
    pub role: Role,
    /// The peer.
    pub peer: FullJid,
    /// The state.
    pub state: State,
    /// The contents as offered (initiator: as sent; responder: as received)
    /// with transports updated by session-accept and transport-accept.
    pub contents: Vec<ContentParts>,
}

struct Session {
    role: Role,
    peer: FullJid,
    initiator: Jid,
    state: State,
    contents: Vec<ContentParts>,
    accept_sent: bool,
    accept_deadline: Option<Instant>,
    /// Contents for which we sent transport-replace and await an answer.
    replace_out: HashSet<String>,
    /// Contents for which the peer sent transport-replace we have not
    /// answered, with the offered transport.
    replace_in: HashMap<String, Element>,
    /// Sender: when the receiver's verdict is due, and the bound it was
    /// given ([`Endpoint::await_verdict`]).
    verdict_deadline: Option<(Instant, Duration)>,
}

struct PendingIq {
    sid: String,
    to: FullJid,
    action: Action,
    deadline: Instant,
}

/// The Jingle endpoint of one local full JID: all its sessions.
pub struct Endpoint {
    local: FullJid,
    config: EngineConfig,
    sessions: HashMap<String, Session>,
    pending: HashMap<String, PendingIq>,
    transmits: VecDeque<Element>,
    events: VecDeque<SessionEvent>,
    /// Malformed requests refused with an IQ error: `(from, why)`.
    refused: VecDeque<(String, String)>,
    next_id: u64,
    id_prefix: String,
}

/// Reasons for refusing an incoming request, as an IQ error.
enum Refusal {
    UnknownSession,
    OutOfOrder,
    TieBreak,
    BadRequest(String),
    NotImplemented,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        // Only uniqueness matters for ids; fall back to the address of the
        // buffer and the time, never panic.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        return format!("{t:x}{:p}", buf.as_ptr());
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Endpoint {
    /// An endpoint for `local` with no sessions.
    pub fn new(local: FullJid, config: EngineConfig) -> Self {
        Endpoint {
            local,
            config,
            sessions: HashMap::new(),
            pending: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            refused: VecDeque::new(),
            next_id: 0,
            id_prefix: format!("jet-{}-", random_hex(4)),
        }
    }

    /// Our full JID.
    pub fn local(&self) -> &FullJid {
        &self.local
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The state of session `sid`; `None` when unknown or ended.
    pub fn state(&self, sid: &str) -> Option<State> {
        self.sessions.get(sid).map(|s| s.state)
    }

    /// What we know about session `sid`.
    pub fn session(&self, sid: &str) -> Option<SessionInfo> {
        self.sessions.get(sid).map(|s| SessionInfo {
            role: s.role,
            peer: s.peer.clone(),
            state: s.state,
            contents: s.contents.clone(),
        })
    }

    /// The next stanza to send.
    pub fn poll_transmit(&mut self) -> Option<Element> {
        self.transmits.pop_front()
    }

    /// The next request refused as malformed (`bad-request`, e.g. a
    /// `session-initiate` whose `initiator` is not its sender): the
    /// sender's address and why, so the user can be told; no session
    /// exists for it.
    pub fn poll_refused(&mut self) -> Option<(String, String)> {
        self.refused.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let accept = self.sessions.values().filter_map(|s| s.accept_deadline);
        let verdict = self
            .sessions
            .values()
            .filter_map(|s| s.verdict_deadline.map(|(d, _)| d));
        let iqs = self.pending.values().map(|p| p.deadline);
        accept.chain(verdict).chain(iqs).min()
    }

    /// Ends what has run out of time at `now`: sessions without
    /// `session-accept`, senders without the receiver's verdict and
    /// unanswered requests (reason `timeout`).
    pub fn handle_timeout(&mut self, now: Instant) {
        let no_verdict: Vec<(String, Duration)> = self
            .sessions
            .iter()
            .filter_map(|(sid, s)| match s.verdict_deadline {
                Some((d, within)) if d <= now => Some((sid.clone(), within)),
                _ => None,
            })
            .collect();
        for (sid, within) in no_verdict {
            let text = rules::verdict_timeout_text(within);
            self.end_local(&sid, Reason::Timeout, Some(text), now);
        }
        let expired: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.accept_deadline.is_some_and(|d| d <= now))
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in expired {
            self.end_local(
                &sid,
                Reason::Timeout,
                Some("no session-accept in time".into()),
                now,
            );
        }
        let late: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            if p.action == Action::SessionTerminate || !self.sessions.contains_key(&p.sid) {
                continue;
            }
            self.end_local(
                &p.sid,
                Reason::Timeout,
                Some(format!("no answer to {} in time", p.action)),
                now,
            );
        }
    }

    // ----- commands from the driver -------------------------------------

    /// Starts a session with `peer` (XEP-0166 §6.2): sends `session-initiate`
    /// with `contents` (each with description and transport; with
    /// [`EngineConfig::require_encryption`], each with its JET
    /// `<security/>` too, sealed by the driver). Returns the new sid.
    pub fn initiate(
        &mut self,
        peer: FullJid,
        contents: Vec<ContentParts>,
        now: Instant,
    ) -> Result<String, Error> {
        let sid = self.new_sid();
        self.initiate_with_sid(peer, sid.clone(), contents, now)?;
        Ok(sid)
    }

    /// A fresh random session id not in use here (for
    /// [`initiate_with_sid`](Self::initiate_with_sid), when the transport
    /// must know the sid before the session starts).
    pub fn new_sid(&self) -> String {
        loop {
            let sid = random_hex(8);
            if !self.sessions.contains_key(&sid) {
                return sid;
            }
        }
    }

    /// [`initiate`](Self::initiate) with a sid chosen by the caller.
    pub fn initiate_with_sid(
        &mut self,
        peer: FullJid,
        sid: String,
        contents: Vec<ContentParts>,
        now: Instant,
    ) -> Result<(), Error> {
        if sid.trim().is_empty() || self.sessions.contains_key(&sid) {
            return Err(Error::Protocol(format!(
                "session id {sid:?} is empty or in use"
            )));
        }
        if contents.is_empty() {
            return Err(Error::Protocol(
                "a session needs at least one content".into(),
            ));
        }
        let mut names = HashSet::new();
        for c in &contents {
            if !names.insert(c.name.as_str()) {
                return Err(Error::Protocol(format!(
                    "content name {:?} used twice",
                    c.name
                )));
            }
            if c.description.is_none() || c.transport.is_none() {
                return Err(Error::Protocol(format!(
                    "content {:?} needs a description and a transport",
                    c.name
                )));
            }
            if self.config.require_encryption && c.security.is_none() {
                // Never send plaintext when encryption is required.
                return Err(Error::MissingSecurity(c.name.clone()));
            }
            rules::check_senders(&c.senders, c.security.is_some())?;
        }
        let mut msg = JingleMessage::new(Action::SessionInitiate, sid.clone());
        msg.initiator = Some(Jid::from(self.local.clone()));
        msg.contents = contents.clone();
        self.sessions.insert(
            sid.clone(),
            Session {
                role: Role::Initiator,
                peer: peer.clone(),
                initiator: Jid::from(self.local.clone()),
                state: State::Pending,
                contents,
                accept_sent: false,
                accept_deadline: Some(now + self.config.accept_timeout),
                replace_out: HashSet::new(),
                replace_in: HashMap::new(),
                verdict_deadline: None,
            },
        );
        self.send_request(&sid, msg, now);
        Ok(())
    }

    /// Responder: accepts session `sid` (XEP-0166 §6.2). `transports` gives
    /// our `<transport/>` per content name; the accepted contents repeat the
    /// offered creator, senders and description (or the one given in
    /// `descriptions`, e.g. a narrowed file range).
    pub fn accept(
        &mut self,
        sid: &str,
        transports: Vec<(String, Element)>,
        descriptions: Vec<(String, Element)>,
        now: Instant,
    ) -> Result<(), Error> {
        let local = Jid::from(self.local.clone());
        let s = self.live(sid)?;
        if s.role != Role::Responder || s.state != State::Pending || s.accept_sent {
            return Err(Error::Protocol(format!(
                "session {sid} cannot be accepted in its state"
            )));
        }
        let mut contents = Vec::new();
        for offered in &s.contents {
            let transport = transports
                .iter()
                .find(|(n, _)| *n == offered.name)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| {
                    Error::Protocol(format!("no transport for content {:?}", offered.name))
                })?;
            let description = descriptions
                .iter()
                .find(|(n, _)| *n == offered.name)
                .map(|(_, d)| d.clone())
                .or_else(|| offered.description.clone());
            let mut c = ContentParts::new(offered.creator.clone(), offered.name.clone())
                .with_senders(offered.senders.clone())
                .with_transport(transport);
            c.description = description;
            contents.push(c);
        }
        if let Some((name, _)) = transports
            .iter()
            .find(|(n, _)| !s.contents.iter().any(|c| c.name == *n))
        {
            return Err(Error::Protocol(format!("no offered content {name:?}")));
        }
        let mut msg = JingleMessage::new(Action::SessionAccept, sid);
        msg.initiator = Some(s.initiator.clone());
        msg.responder = Some(local);
        msg.contents = contents.clone();
        let s = self.sessions.get_mut(sid).expect("checked above");
        s.accept_sent = true;
        s.state = State::Active;
        for c in &mut s.contents {
            if let Some(a) = contents.iter().find(|a| a.name == c.name) {
                c.transport = a.transport.clone();
                c.description = a.description.clone();
            }
        }
        self.send_request(sid, msg, now);
        Ok(())
    }

    /// Ends session `sid` with `reason` (XEP-0166 §6.7). Ending an unknown
    /// or ended session is an error.
    pub fn terminate(
        &mut self,
        sid: &str,
        reason: Reason,
        text: Option<String>,
        now: Instant,
    ) -> Result<(), Error> {
        self.live(sid)?;
        self.end_local(sid, reason, text, now);
        Ok(())
    }

    /// Ends session `sid` because of `error`, with the reason the error maps
    /// to ([`JingleReason`]): a failed envelope or sender check is
    /// `security-error`, a failed transport `failed-transport`, ...
    pub fn fail(&mut self, sid: &str, error: &Error, now: Instant) -> Result<(), Error> {
        self.terminate(sid, error.jingle_reason(), Some(error.to_string()), now)
    }

    /// Sends `session-info` with `payload` (or an empty ping with `None`).
    pub fn session_info(
        &mut self,
        sid: &str,
        payload: Option<Element>,
        now: Instant,
    ) -> Result<(), Error> {
        self.live(sid)?;
        let mut msg = JingleMessage::new(Action::SessionInfo, sid);
        msg.other.extend(payload);
        self.send_request(sid, msg, now);
        Ok(())
    }

    /// Sends `transport-info` for `content`.
    pub fn transport_info(
        &mut self,
        sid: &str,
        content: &str,
        transport: Element,
        now: Instant,
    ) -> Result<(), Error> {
        let msg = self.content_message(sid, Action::TransportInfo, content, Some(transport))?;
        self.send_request(sid, msg, now);
        Ok(())
    }

    /// Offers a new transport for `content` (XEP-0166 §6.8), e.g. IBB after
    /// S5B failed; the answer comes as [`Event::TransportAccepted`] or
    /// [`Event::TransportRejected`].
    pub fn transport_replace(
        &mut self,
        sid: &str,
        content: &str,
        transport: Element,
        now: Instant,
    ) -> Result<(), Error> {
        let msg = self.content_message(sid, Action::TransportReplace, content, Some(transport))?;
        let s = self
            .sessions
            .get_mut(sid)
            .expect("checked by content_message");
        if !s.replace_out.insert(content.to_string()) {
            return Err(Error::Protocol(format!(
                "a transport-replace for {content:?} is already pending"
            )));
        }
        self.send_request(sid, msg, now);
        Ok(())
    }

    /// Accepts the peer's transport-replace for `content` with our
    /// `<transport/>`.
    pub fn transport_accept(
        &mut self,
        sid: &str,
        content: &str,
        transport: Element,
        now: Instant,
    ) -> Result<(), Error> {
        let msg = self.content_message(
            sid,
            Action::TransportAccept,
            content,
            Some(transport.clone()),
        )?;
        let s = self
            .sessions
            .get_mut(sid)
            .expect("checked by content_message");
        if s.replace_in.remove(content).is_none() {
            return Err(Error::Protocol(format!(
                "no transport-replace for {content:?} to accept"
            )));
        }
        if let Some(c) = s.contents.iter_mut().find(|c| c.name == content) {
            c.transport = Some(transport);
        }
        self.send_request(sid, msg, now);
        Ok(())
    }

    /// Rejects the peer's transport-replace for `content`.
    pub fn transport_reject(
        &mut self,
        sid: &str,
        content: &str,
        now: Instant,
    ) -> Result<(), Error> {
        let msg = self.content_message(sid, Action::TransportReject, content, None)?;
        let s = self
            .sessions
            .get_mut(sid)
            .expect("checked by content_message");
        if s.replace_in.remove(content).is_none() {
            return Err(Error::Protocol(format!(
                "no transport-replace for {content:?} to reject"
            )));
        }
        self.send_request(sid, msg, now);
        Ok(())
    }

    // ----- stanzas in ---------------------------------------------------

    /// Handles one incoming stanza: a Jingle IQ `set`, or the answer to one
    /// of our requests. Anything else is ignored. Never panics on bad input.
    pub fn handle_stanza(&mut self, stanza: Element, now: Instant) {
        if stanza.name() != "iq" {
            return;
        }
        match stanza.attr("type") {
            Some("result") | Some("error") => self.handle_answer(&stanza, now),
            Some("set") if stanza.get_child("jingle", ns::JINGLE).is_some() => {
                self.handle_request(&stanza, now)
            }
            _ => {}
        }
    }

    fn handle_answer(&mut self, answer: &Element, now: Instant) {
        let id = answer.attr("id").unwrap_or_default();
        let Some(p) = self.pending.get(id) else {
            return;
        };
        // Only the peer we asked may answer.
        let from = answer.attr("from").and_then(|f| FullJid::from_str(f).ok());
        if from.as_ref() != Some(&p.to) {
            return;
        }
        let p = self.pending.remove(id).expect("present above");
        if answer.attr("type") == Some("result") {
            return;
        }
        if !self.sessions.contains_key(&p.sid) {
            return;
        }
        let condition = match stanza_error_of(answer) {
            ChannelError::StanzaError { condition, .. } => condition,
            other => other.to_string(),
        };
        match p.action {
            Action::SessionTerminate => {}
            Action::SessionInfo | Action::TransportInfo => {
                let peer = p.to.clone();
                self.events.push_back(SessionEvent {
                    sid: p.sid,
                    peer,
                    event: Event::RequestFailed {
                        action: p.action,
                        condition,
                    },
                });
            }
            Action::SessionInitiate => {
                // The peer never had the session: end it here, send nothing.
                let reason = match condition.as_str() {
                    "service-unavailable"
                    | "recipient-unavailable"
                    | "remote-server-not-found"
                    | "remote-server-timeout" => Reason::ConnectivityError,
                    _ => Reason::GeneralError,
                };
                self.forget(
                    &p.sid,
                    reason,
                    Some(format!("session-initiate refused: {condition}")),
                    false,
                );
            }
            action => {
                let reason = match action {
                    Action::TransportReplace
                    | Action::TransportAccept
                    | Action::TransportReject => Reason::FailedTransport,
                    _ => Reason::GeneralError,
                };
                self.end_local(
                    &p.sid,
                    reason,
                    Some(format!("{action} refused: {condition}")),
                    now,
                );
            }
        }
    }

    fn handle_request(&mut self, req: &Element, now: Instant) {
        let jingle = req
            .get_child("jingle", ns::JINGLE)
            .expect("checked by caller");
        let raw_sid = jingle.attr("sid").unwrap_or_default().trim().to_string();
        let raw_action = jingle.attr("action").unwrap_or_default().trim().to_string();
        let from = req.attr("from").and_then(|f| FullJid::from_str(f).ok());
        let Some(from) = from else {
            self.refuse(req, Refusal::BadRequest("from is not a full JID".into()));
            return;
        };
        let known_from_peer = self.sessions.get(&raw_sid).is_some_and(|s| s.peer == from);
        let msg = match JingleMessage::from_iq(req) {
            Ok(m) => m,
            Err(Error::UnreadableSecurity(why)) => {
                // XEP-0391 §7: JET offered but unreadable ends the session,
                // never a plaintext fallback.
                let is_new = raw_action == "session-initiate"
                    && !raw_sid.is_empty()
                    && !self.sessions.contains_key(&raw_sid);
                if is_new {
                    self.ack(req);
                    let e = Error::UnreadableSecurity(why);
                    let (reason, text) = (e.jingle_reason(), e.to_string());
                    self.reject_initiate(&raw_sid, &from, reason, text, now);
                } else if known_from_peer {
                    self.ack(req);
                    let e = Error::UnreadableSecurity(why);
                    self.end_local(&raw_sid, e.jingle_reason(), Some(e.to_string()), now);
                } else {
                    self.refuse(req, Refusal::UnknownSession);
                }
                return;
            }
            Err(e) => {
                self.refuse(req, Refusal::BadRequest(e.to_string()));
                return;
            }
        };
        if msg.action == Action::SessionInitiate {
            self.incoming_initiate(req, msg, from, now);
            return;
        }
        if !known_from_peer {
            // Unknown sid, or a known sid from anyone but the peer.
            self.refuse(req, Refusal::UnknownSession);
            return;
        }
        let sid = msg.sid.clone();
        let (role, state) = {
            let s = &self.sessions[&sid];
            (s.role, s.state)
        };
        match msg.action {
            Action::SessionTerminate => {
                self.ack(req);
                let (reason, text) = msg
                    .reason
                    .map(|r| (r.reason, r.text))
                    .unwrap_or((Reason::Success, None));
                self.forget(&sid, reason, text, true);
            }
            Action::SessionAccept => {
                if role != Role::Initiator || state != State::Pending {
                    self.refuse(req, Refusal::OutOfOrder);
                    return;
                }
                let s = &self.sessions[&sid];
                if msg.contents.is_empty() {
                    self.refuse(
                        req,
                        Refusal::BadRequest("session-accept without content".into()),
                    );
                    return;
                }
                if let Some(c) = msg
                    .contents
                    .iter()
                    .find(|c| !s.contents.iter().any(|o| o.name == c.name))
                {
                    let why = format!("session-accept for content {:?} we did not offer", c.name);
                    self.refuse(req, Refusal::BadRequest(why));
                    return;
                }
                if let Some(c) = msg.contents.iter().find(|c| c.transport.is_none()) {
                    let why = format!("session-accept without transport for {:?}", c.name);
                    self.refuse(req, Refusal::BadRequest(why));
                    return;
                }
                self.ack(req);
                let s = self.sessions.get_mut(&sid).expect("known");
                s.state = State::Active;
                s.accept_deadline = None;
                for c in &mut s.contents {
                    if let Some(a) = msg.contents.iter().find(|a| a.name == c.name) {
                        c.transport = a.transport.clone();
                        if a.description.is_some() {
                            c.description = a.description.clone();
                        }
                    }
                }
                self.emit(
                    &sid,
                    Event::Accepted {
                        contents: msg.contents,
                    },
                );
            }
            Action::SessionInfo => {
                self.ack(req);
                for payload in msg.other {
                    self.emit(&sid, Event::SessionInfo(payload));
                }
            }
            Action::TransportInfo
            | Action::TransportReplace
            | Action::TransportAccept
            | Action::TransportReject => {
                self.incoming_transport_action(req, msg);
            }
            _ => self.refuse(req, Refusal::NotImplemented),
        }
    }

    fn incoming_transport_action(&mut self, req: &Element, msg: JingleMessage) {
        let sid = msg.sid.clone();
        let [content] = msg.contents.as_slice() else {
            self.refuse(
                req,
                Refusal::BadRequest(format!("{} needs exactly one content", msg.action)),
            );
            return;
        };
        let name = content.name.clone();
        let s = &self.sessions[&sid];
        if !s.contents.iter().any(|c| c.name == name) {
            self.refuse(
                req,
                Refusal::BadRequest(format!("unknown content {name:?}")),
            );
            return;
        }
        let needs_transport = msg.action != Action::TransportReject;
        if needs_transport && content.transport.is_none() {
            self.refuse(
                req,
                Refusal::BadRequest(format!("{} without transport", msg.action)),
            );
            return;
        }
        let transport = content.transport.clone();
        match msg.action {
            Action::TransportInfo => {
                self.ack(req);
                self.emit(
                    &sid,
                    Event::TransportInfo {
                        content: name,
                        transport: transport.expect("checked"),
                    },
                );
            }
            Action::TransportReplace => {
                let s = self.sessions.get_mut(&sid).expect("known");
                if s.replace_out.contains(&name) {
                    // Both sides replacing at once: the initiator's wins
                    // (like XEP-0166 tie-breaks).
                    if s.role == Role::Initiator {
                        self.refuse(req, Refusal::TieBreak);
                        return;
                    }
                    s.replace_out.remove(&name);
                }
                let transport = transport.expect("checked");
                s.replace_in.insert(name.clone(), transport.clone());
                self.ack(req);
                self.emit(
                    &sid,
                    Event::TransportReplace {
                        content: name,
                        transport,
                    },
                );
            }
            Action::TransportAccept => {
                let s = self.sessions.get_mut(&sid).expect("known");
                if !s.replace_out.remove(&name) {
                    self.refuse(req, Refusal::OutOfOrder);
                    return;
                }
                if let Some(c) = s.contents.iter_mut().find(|c| c.name == name) {
                    c.transport = transport.clone();
                }
                self.ack(req);
                self.emit(
                    &sid,
                    Event::TransportAccepted {
                        content: name,
                        transport: transport.expect("checked"),
                    },
                );
            }
            Action::TransportReject => {
                let s = self.sessions.get_mut(&sid).expect("known");
                if !s.replace_out.remove(&name) {
                    self.refuse(req, Refusal::OutOfOrder);
                    return;
                }
                self.ack(req);
                self.emit(&sid, Event::TransportRejected { content: name });
            }
            _ => self.refuse(req, Refusal::NotImplemented),
        }
    }

    fn incoming_initiate(
        &mut self,
        req: &Element,
        msg: JingleMessage,
        from: FullJid,
        now: Instant,
    ) {
        let sid = msg.sid.clone();
        if self.sessions.contains_key(&sid) {
            self.refuse(req, Refusal::TieBreak);
            return;
        }
        // The initiator must be the sender (see the module docs): the JET
        // sender check compares the envelope with it.
        let initiator = msg.initiator.clone().unwrap_or_else(|| from.clone().into());
        if initiator != from {
            self.refuse(
                req,
                Refusal::BadRequest(format!("initiator {initiator} is not the sender {from}")),
            );
            return;
        }
        if msg.contents.is_empty() {
            self.refuse(
                req,
                Refusal::BadRequest("session-initiate without content".into()),
            );
            return;
        }
        let mut names = HashSet::new();
        for c in &msg.contents {
            if !names.insert(c.name.as_str()) {
                let why = format!("content name {:?} used twice", c.name);
                self.refuse(req, Refusal::BadRequest(why));
                return;
            }
            if c.description.is_none() || c.transport.is_none() {
                let why = format!("content {:?} lacks description or transport", c.name);
                self.refuse(req, Refusal::BadRequest(why));
                return;
            }
        }
        // The stanza is valid Jingle: acknowledge it, then apply JET policy.
        self.ack(req);
        if let Err(e) = self.check_jet(&msg.contents) {
            self.reject_initiate(&sid, &from, e.jingle_reason(), e.to_string(), now);
            return;
        }
        // One transport secret protects one direction (see `rules`).
        if msg
            .contents
            .iter()
            .any(|c| rules::both_ways(&c.senders, c.security.is_some()))
        {
            let (reason, text) = (Reason::IncompatibleParameters, rules::BOTH_WAYS_REFUSED);
            self.reject_initiate(&sid, &from, reason, text.to_string(), now);
            return;
        }
        self.sessions.insert(
            sid.clone(),
            Session {
                role: Role::Responder,
                peer: from,
                initiator: initiator.clone(),
                state: State::Pending,
                contents: msg.contents.clone(),
                accept_sent: false,
                accept_deadline: None,
                replace_out: HashSet::new(),
                replace_in: HashMap::new(),
                verdict_deadline: None,
            },
        );
        self.emit(
            &sid,
            Event::IncomingSession {
                initiator,
                contents: msg.contents,
            },
        );
    }

    /// XEP-0391 §7 checks the engine can do without opening the envelope.
    fn check_jet(&self, contents: &[ContentParts]) -> Result<(), Error> {
        for c in contents {
            match &c.security {
                None if self.config.require_encryption => {
                    return Err(Error::MissingSecurity(c.name.clone()))
                }
                None => {}
                Some(sec) => {
                    if !self
                        .config
                        .supported_ciphers
                        .iter()
                        .any(|u| sec.cipher_is(u))
                    {
                        return Err(Error::UnsupportedCipher(sec.cipher.clone()));
                    }
                    if !self
                        .config
                        .supported_envelopes
                        .iter()
                        .any(|t| t.trim() == sec.envelope_type)
                    {
                        return Err(Error::UnsupportedEnvelope(sec.envelope_type.clone()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Answers a session-initiate we will not run with session-terminate,
    /// without ever creating the session.
    fn reject_initiate(
        &mut self,
        sid: &str,
        peer: &FullJid,
        reason: Reason,
        text: String,
        now: Instant,
    ) {
        let mut msg = JingleMessage::new(Action::SessionTerminate, sid);
        msg.reason = Some(ReasonInfo::new(reason.clone(), Some(text.clone())));
        self.send_to(peer.clone(), sid, msg, now);
        self.events.push_back(SessionEvent {
            sid: sid.to_string(),
            peer: peer.clone(),
            event: Event::Terminated {
                reason,
                text: Some(text),
                by_peer: false,
            },
        });
    }

    // ----- helpers ------------------------------------------------------

    fn live(&self, sid: &str) -> Result<&Session, Error> {
        self.sessions
            .get(sid)
            .ok_or_else(|| Error::Protocol(format!("no live session {sid}")))
    }

    fn content_message(
        &self,
        sid: &str,
        action: Action,
        content: &str,
        transport: Option<Element>,
    ) -> Result<JingleMessage, Error> {
        let s = self.live(sid)?;
        let offered = s
            .contents
            .iter()
            .find(|c| c.name == content)
            .ok_or_else(|| Error::Protocol(format!("no content {content:?} in session {sid}")))?;
        let mut c = ContentParts::new(offered.creator.clone(), content)
            .with_senders(offered.senders.clone());
        c.transport = transport;
        let mut msg = JingleMessage::new(action, sid);
        msg.contents.push(c);
        Ok(msg)
    }

    fn emit(&mut self, sid: &str, event: Event) {
        let peer = match self.sessions.get(sid) {
            Some(s) => s.peer.clone(),
            None => return,
        };
        self.events.push_back(SessionEvent {
            sid: sid.to_string(),
            peer,
            event,
        });
    }

    fn send_request(&mut self, sid: &str, msg: JingleMessage, now: Instant) {
        let Some(peer) = self.sessions.get(sid).map(|s| s.peer.clone()) else {
            return;
        };
        self.send_to(peer, sid, msg, now);
    }

    fn send_to(&mut self, peer: FullJid, sid: &str, msg: JingleMessage, now: Instant) {
        self.next_id += 1;
        let id = format!("{}{}", self.id_prefix, self.next_id);
        let to = Jid::from(peer.clone());
        let from = Jid::from(self.local.clone());
        let stanza = iq("set", &id, Some(&from), &to, Some(msg.to_element()));
        self.pending.insert(
            id,
            PendingIq {
                sid: sid.to_string(),
                to: peer,
                action: msg.action,
                deadline: now + self.config.iq_timeout,
            },
        );
        self.transmits.push_back(stanza);
    }

    /// Sends session-terminate, then forgets the session.
    fn end_local(&mut self, sid: &str, reason: Reason, text: Option<String>, now: Instant) {
        if !self.sessions.contains_key(sid) {
            return;
        }
        let mut msg = JingleMessage::new(Action::SessionTerminate, sid);
        msg.reason = Some(ReasonInfo::new(reason.clone(), text.clone()));
        self.send_request(sid, msg, now);
        self.forget(sid, reason, text, false);
    }

    /// Removes the session and reports its end.
    fn forget(&mut self, sid: &str, reason: Reason, text: Option<String>, by_peer: bool) {
        let Some(s) = self.sessions.remove(sid) else {
            return;
        };
        // Unanswered requests of this session no longer matter, except our
        // session-terminate (kept so its answer is recognised, then dropped).
        self.pending
            .retain(|_, p| p.sid != sid || p.action == Action::SessionTerminate);
        self.events.push_back(SessionEvent {
            sid: sid.to_string(),
            peer: s.peer,
            event: Event::Terminated {
                reason,
                text,
                by_peer,
            },
        });
    }

    fn ack(&mut self, req: &Element) {
        self.transmits.push_back(iq_result(req, None));
    }

    fn refuse(&mut self, req: &Element, refusal: Refusal) {
        let jingle_error = |name: &str| Some(Element::builder(name, ns::JINGLE_ERRORS).build());
        let stanza = match refusal {
            // XEP-0166 §7.3 error conditions.
            Refusal::UnknownSession => iq_error(
                req,
                "cancel",
                "item-not-found",
                jingle_error("unknown-session"),
            ),
            Refusal::OutOfOrder => iq_error(
                req,
                "wait",
                "unexpected-request",
                jingle_error("out-of-order"),
            ),
            Refusal::TieBreak => iq_error(req, "cancel", "conflict", jingle_error("tie-break")),
            Refusal::BadRequest(why) => {
                self.refused.push_back((
                    req.attr("from").unwrap_or_default().to_string(),
                    why.clone(),
                ));
                let mut e = iq_error(req, "modify", "bad-request", None);
                if let Some(err) = e.get_child_mut("error", ns::JABBER_CLIENT) {
                    err.append_child(
                        Element::builder("text", ns::XMPP_STANZAS)
                            .append(why)
                            .build(),
                    );
                }
                e
            }
            Refusal::NotImplemented => iq_error(req, "cancel", "feature-not-implemented", None),
        };
        self.transmits.push_back(stanza);
    }
}
