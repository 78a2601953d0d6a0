//! The thin tokio driver: runs the [`Endpoint`] over a [`StanzaChannel`] and
//! does the async work the engine leaves out (feature `tokio`).
//!
//! ```text
//!  StanzaChannel ─ Jingle IQs ─►┌────────────── engine task ──────────────┐
//!        ▲                      │ Endpoint: handle_stanza / handle_timeout│
//!        └── outbox (in order) ◄│ poll_transmit, poll_event → sessions    │
//!                               └──────▲───────────────────┬──────────────┘
//!                                 jobs │                   │ events per sid
//!                  ┌───────────────────┴───────────────────▼──────────────┐
//!                  │ session task (Driver::initiate / Incoming::accept)   │
//!                  │ XEP-0391: seal or open TS, check the sender (§7)     │
//!                  │ TransportAdapter → BoxedStream → JetStream → app.run │
//!                  └──────────────────────────────────────────────────────┘
//! ```
//!
//! The rules are the engine's ([`crate::session::rules`]); the driver
//! executes them. One content per session; its `senders` gives the one
//! direction the JET layer protects (`senders='both'` with JET is refused:
//! one key and IV in both directions would reuse the nonce). The side that
//! **receives** ends the session with `success` once the stream
//! authenticated (as XEP-0234 does); the sender waits for that verdict
//! (the engine bounds the wait by [`DriverConfig::finish_timeout`]), so it
//! learns when the receiver found the data tampered (`security-error`).
//!
//! Any failure ends the session with the reason its error maps to
//! ([`JingleReason`]); there is no plaintext fallback. When the transport
//! fails, the initiator offers the next of its transports with
//! `transport-replace` (e.g. IBB after S5B) and the responder answers it with
//! `transport-accept` or `transport-reject`, as the engine decides; the JET
//! layer and secret stay the same.
//!
//! Faults and limits:
//! - **Lost connection.** When the stanza channel closes (its subscription
//!   ends: the XMPP stream died), every live session ends at once with
//!   [`ChannelError::Closed`]: a sender does not go on pushing data it can
//!   no longer get a verdict for, a receiver stops waiting. No new session
//!   starts, and the stream of [`Incoming`] sessions ends.
//! - **Stalled data** ([`DriverConfig::stall_timeout`]): a transport on
//!   which no byte moves for that long fails the session (`timeout`).
//! - **Too many sessions** ([`DriverConfig::max_sessions`], and
//!   [`DriverConfig::max_sessions_per_peer`] per bare JID): a
//!   `session-initiate` beyond the limit is ended at once with `busy`
//!   (XEP-0166 §7.4), before any envelope or transport work. A peer that
//!   [`DriverConfig::admit`] refuses is declined before any limit counts
//!   its offer, so strangers cannot take the slots.
//!
//! # Example
//!
//! Two drivers over an in-memory router: Romeo offers a greeting, Juliet
//! accepts it. The cipher suite, envelope and transport here are the
//! test kit's toys (feature `testkit`; **no security**): use jet-ciphers, jet-envelopes and
//! jet-transports for real ones, and [`crate::xmpp::XmppChannel`] (feature
//! `tokio-xmpp`) or your own [`StanzaChannel`] for a real account.
//!
//! ```
//! # use std::sync::Arc;
//! # use async_trait::async_trait;
//! # use jet_core::minidom::Element;
//! # use jet_core::testkit::{PipeAdapter, TestEnvelope, TEST_XOR};
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use jet_core::driver::{Driver, DriverConfig};
//! use jet_core::error::Error;
//! use jet_core::jid::FullJid;
//! use jet_core::jingle::Senders;
//! use jet_core::memory::MemoryRouter;
//! use jet_core::session::{
//!     Acceptor, AppContext, Application, Decision, Initiator, JetConfig, Offer,
//! };
//! use jet_core::transport::BoxedStream;
//!
//! /// The application: the initiator sends a greeting, the responder reads
//! /// it. It sees plaintext; the driver encrypts and decrypts.
//! struct Greeting;
//!
//! #[async_trait]
//! impl Application for Greeting {
//!     /// What was read (nothing, for the sender).
//!     type Output = Vec<u8>;
//!     fn expected_len(&self, _: &AppContext) -> Option<u64> {
//!         Some(26)
//!     }
//!     async fn run(&self, ctx: AppContext, mut stream: BoxedStream) -> Result<Vec<u8>, Error> {
//!         let mut got = Vec::new();
//!         if ctx.we_send {
//!             stream.write_all(b"wherefore art thou, Romeo?").await?;
//!             stream.shutdown().await?;
//!         } else {
//!             stream.read_to_end(&mut got).await?; // ends once authenticated
//!         }
//!         Ok(got)
//!     }
//! }
//!
//! // Romeo offers it...
//! impl Initiator for Greeting {
//!     fn offer(&self) -> Result<Offer, Error> {
//!         let description = Element::builder("description", "urn:example:greeting").build();
//!         Ok(Offer { description, senders: Senders::Initiator })
//!     }
//! }
//!
//! // ... and Juliet accepts it.
//! impl Acceptor for Greeting {
//!     fn namespace(&self) -> &'static str {
//!         "urn:example:greeting"
//!     }
//!     fn decide(&self, description: &Element, _: Senders) -> Decision {
//!         Decision::Accept(description.clone())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let router = MemoryRouter::new();
//! let romeo: FullJid = "romeo@montague.lit/orchard".parse().unwrap();
//! let juliet: FullJid = "juliet@capulet.lit/balcony".parse().unwrap();
//! let pipe = Arc::new(PipeAdapter::new());
//! // The JetConfig is the one list of what each side speaks.
//! let jet = |me: &str| {
//!     JetConfig::new(vec![&TEST_XOR], vec![Arc::new(TestEnvelope { author: me.parse().unwrap() })])
//! };
//! let (romeo_driver, _) = Driver::start(
//!     router.connect(romeo),
//!     jet("romeo@montague.lit"),
//!     vec![pipe.clone()],
//!     DriverConfig::default(),
//! );
//! let (_juliet_driver, mut incoming) = Driver::start(
//!     router.connect(juliet.clone()),
//!     jet("juliet@capulet.lit"),
//!     vec![pipe],
//!     DriverConfig::default(),
//! );
//! // Juliet accepts what comes (her driver checked the envelope's sender);
//! // `accept` returns what her `run` read, once it authenticated.
//! let juliet_side = tokio::spawn(async move {
//!     incoming.recv().await.unwrap().accept(Arc::new(Greeting)).await
//! });
//! // Romeo offers; `Ok` once Juliet's verdict says everything arrived.
//! let sent = romeo_driver.initiate(juliet, Arc::new(Greeting)).await.unwrap();
//! assert!(sent.is_empty());
//! let got = juliet_side.await.unwrap().unwrap();
//! assert_eq!(got, b"wherefore art thou, Romeo?");
//! # });
//! ```

mod linger;
mod stall;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;

use crate::channel::{is_request_for, StanzaChannel};
use crate::cipher::CipherSuite;
use crate::envelope::EnvelopeContext;
use crate::error::{ChannelError, Error, JingleReason, TransportError};
use crate::ft::ChecksumKey;
use crate::jingle::{reason_name, ContentParts, Creator, Reason, Senders};
use crate::layer::{cipher_error_of, Direction, JetStream};
use crate::ns;
use crate::secret::TransportSecret;
use crate::session::{
    rules, Acceptor, AppContext, Application, Decision, Endpoint, EngineConfig, Event, Initiator,
    JetConfig, SessionEvent, SessionNotes,
};
use crate::transport::{
    BoxedStream, Role, TransportAdapter, TransportContext, TransportNegotiation, TransportSignals,
};

pub use stall::{stalled_of, Stalled};

/// How long a receiver may go on reading after the peer ended the session.
const RECEIVER_DRAIN: Duration = Duration::from_secs(2);

/// The text of the `session-terminate` (never delivered) that ends the
/// sessions of a channel that closed.
const LOST_TEXT: &str = "the XMPP connection was lost";

/// Driver settings.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// How long the initiator waits for `session-accept` (default 120 s;
    /// [`EngineConfig::accept_timeout`]).
    pub accept_timeout: Duration,
    /// How long we wait for the answer to an IQ we sent (default 30 s;
    /// [`EngineConfig::iq_timeout`]).
    pub iq_timeout: Duration,
    /// Bound on transport establishment (default 60 s).
    pub establish_timeout: Duration,
    /// Bound on the application's run, if any (default none: big files).
    pub run_timeout: Option<Duration>,
    /// How long a sender waits for the receiver's `session-terminate`
    /// after its last byte (default 30 s).
    pub finish_timeout: Duration,
    /// The content name we offer (default `"jet"`).
    pub content_name: String,
    /// Fail a session whose transport moves no byte for this long (default
    /// 60 s; `None`: wait forever). Only waits on the transport count, not
    /// a slow application.
    pub stall_timeout: Option<Duration>,
    /// Live sessions at most (both directions, offers not yet answered
    /// included); a `session-initiate` beyond it is ended with `busy`
    /// (default 16).
    pub max_sessions: usize,
    /// Live sessions offered by one peer (bare JID) at most; beyond it,
    /// `busy` (default 4).
    pub max_sessions_per_peer: usize,
    /// Who may offer sessions at all: an offer from a peer it refuses is
    /// declined at once, before the limits count it (default: everyone).
    pub admit: Option<AdmitHook>,
    /// Told about every `session-initiate` the engine refused before any
    /// application saw it (malformed Jingle, no or bad `<security/>`,
    /// unknown cipher or envelope, an envelope that does not open...), so
    /// that a receiver can tell its user. Default: none.
    pub on_refused: Option<RefusedHook>,
}

/// A callback for offers the engine refused: the peer, the Jingle reason
/// and the text sent to the peer.
#[derive(Clone)]
pub struct RefusedHook(pub Arc<RefusedFn>);

/// A predicate on the peer of a `session-initiate`: see [`DriverConfig::admit`].
#[derive(Clone)]
pub struct AdmitHook(pub Arc<dyn Fn(&FullJid) -> bool + Send + Sync>);

impl std::fmt::Debug for AdmitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmitHook")
    }
}

/// The function inside a [`RefusedHook`].
pub type RefusedFn = dyn Fn(&FullJid, &str, &str) + Send + Sync;

impl std::fmt::Debug for RefusedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefusedHook")
    }
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            accept_timeout: EngineConfig::default().accept_timeout,
            iq_timeout: EngineConfig::default().iq_timeout,
            establish_timeout: Duration::from_secs(60),
            run_timeout: None,
            finish_timeout: Duration::from_secs(30),
            content_name: "jet".into(),
            stall_timeout: Some(Duration::from_secs(60)),
            max_sessions: 16,
            max_sessions_per_peer: 4,
            admit: None,
            on_refused: None,
        }
    }
}

type Job = Box<dyn FnOnce(&mut LoopState, std::time::Instant) + Send>;

struct LoopState {
    endpoint: Endpoint,
    sessions: HashMap<String, mpsc::UnboundedSender<Event>>,
    /// The peers of incoming sessions (for the per-peer limit); entries of
    /// ended sessions are dropped when counted.
    offered_by: HashMap<String, BareJid>,
    /// The stanzas for the outbox task, in order (and flush marks).
    outbox: mpsc::UnboundedSender<Outgoing>,
}

/// What the engine hands the outbox task.
enum Outgoing {
    Stanza(Element),
    /// Answered once every stanza before it was handed to the channel.
    Flushed(oneshot::Sender<()>),
}

struct Shared {
    channel: Arc<dyn StanzaChannel>,
    jet: JetConfig,
    transports: Vec<Arc<dyn TransportAdapter>>,
    config: DriverConfig,
    local: FullJid,
    /// Set once the channel closed: every session ended, none starts.
    lost: AtomicBool,
}

impl Shared {
    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

/// A handle on the running engine. Cheap to clone; the engine task ends when
/// the last handle (and every [`Incoming`]) is dropped.
#[derive(Clone)]
pub struct Driver {
    jobs: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
}

/// A session a peer offered, which passed the Jingle and JET checks of the
/// engine: [`accept`](Incoming::accept) it with an application or
/// [`decline`](Incoming::decline) it. Dropping it declines it.
pub struct Incoming {
    /// The session id.
    pub sid: String,
    /// The peer (and initiator).
    pub peer: FullJid,
    /// The offered contents.
    pub contents: Vec<ContentParts>,
    live: Live,
}

fn closed() -> Error {
    Error::Channel(ChannelError::Closed)
}

fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

impl Driver {
    /// Starts the engine task on the current tokio runtime. Returns the
    /// handle and the stream of incoming sessions.
    ///
    /// The `jet` configuration is the one source of what the engine
    /// accepts: its [`EngineConfig`] is [`EngineConfig::from`] it (cipher
    /// URNs, envelope types, the encryption policy) with the timeouts of
    /// `config`.
    pub fn start(
        channel: Arc<dyn StanzaChannel>,
        jet: JetConfig,
        transports: Vec<Arc<dyn TransportAdapter>>,
        config: DriverConfig,
    ) -> (Driver, mpsc::UnboundedReceiver<Incoming>) {
        let local = channel.local_jid();
        let engine = EngineConfig {
            accept_timeout: config.accept_timeout,
            iq_timeout: config.iq_timeout,
            ..EngineConfig::from(&jet)
        };
        let shared = Arc::new(Shared {
            channel: channel.clone(),
            jet,
            transports,
            config,
            local: local.clone(),
            lost: AtomicBool::new(false),
        });
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let requests = channel.subscribe(Arc::new(|iq| is_request_for(iq, "jingle", ns::JINGLE)));
        let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
        let state = LoopState {
            endpoint: Endpoint::new(local, engine),
            sessions: HashMap::new(),
            offered_by: HashMap::new(),
            outbox: outbox_tx,
        };
        tokio::spawn(engine_task(
            state,
            shared.clone(),
            jobs_tx.downgrade(),
            jobs_rx,
            requests,
            incoming_tx,
            outbox_rx,
        ));
        (
            Driver {
                jobs: jobs_tx,
                shared,
            },
            incoming_rx,
        )
    }

    /// Runs `f` on the engine task and returns its result.
    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut LoopState, std::time::Instant) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |st, now| {
                let _ = tx.send(f(st, now));
            }))
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())
    }

    /// Returns once every stanza the engine produced so far (a session's
    /// final `session-terminate`, the answer to the peer's) was handed to
    /// the stanza channel, in order. Sessions end by handing their last
    /// stanza to an outbox task and returning; call this before closing
    /// the channel, whose close then writes what it was handed first
    /// (e.g. [`XmppChannel::disconnect`](crate::xmpp::XmppChannel::disconnect)).
    pub async fn flush(&self) -> Result<(), Error> {
        let done = self
            .call(|st, _| {
                let (tx, rx) = oneshot::channel();
                let _ = st.outbox.send(Outgoing::Flushed(tx));
                rx
            })
            .await?;
        done.await.map_err(|_| closed())
    }

    /// Offers `app` to `peer` (XEP-0166 §6.2 with XEP-0391 §3): seals a fresh
    /// transport secret for the preferred suite, offers the first transport,
    /// waits for `session-accept`, establishes the transport, wraps it in the
    /// cipher and runs the application. Once the session ended well,
    /// returns what the application's `run` returned.
    pub async fn initiate<A: Initiator>(
        &self,
        peer: FullJid,
        app: Arc<A>,
    ) -> Result<A::Output, Error> {
        self.initiate_over(peer, app, None).await
    }

    /// [`initiate`](Self::initiate), offering only the configured
    /// transports whose namespace is in `peer_transports` (what the peer's
    /// disco#info lists, e.g. IBB alone for a peer without S5B), in our
    /// order of preference; the fallback with `transport-replace` stays
    /// within them too. `None`: every configured transport.
    pub async fn initiate_over<A: Initiator>(
        &self,
        peer: FullJid,
        app: Arc<A>,
        peer_transports: Option<&[String]>,
    ) -> Result<A::Output, Error> {
        let shared = self.shared.clone();
        let transports: Vec<Arc<dyn TransportAdapter>> = shared
            .transports
            .iter()
            .filter(|a| peer_transports.is_none_or(|p| p.iter().any(|n| n == a.namespace())))
            .cloned()
            .collect();
        let offer = app.offer()?;
        let name = shared.config.content_name.clone();
        let jet_on = !shared.jet.suites.is_empty() && !shared.jet.envelopes.is_empty();
        if !jet_on && shared.jet.require_encryption {
            return Err(Error::MissingSecurity(name));
        }
        // Before any transport or envelope work (the engine refuses it too).
        rules::check_senders(&offer.senders, jet_on)?;
        let adapter = match transports.first() {
            Some(a) => a.clone(),
            None if shared.transports.is_empty() => {
                return Err(Error::Protocol("no transport configured".into()))
            }
            None => {
                let ours: Vec<&str> = shared.transports.iter().map(|a| a.namespace()).collect();
                return Err(Error::Protocol(format!(
                    "{peer} supports none of the transports we may use ({})",
                    ours.join(", ")
                )));
            }
        };
        if shared.is_lost() {
            return Err(closed());
        }
        let sid = self.call(|st, _| st.endpoint.new_sid()).await?;
        let (we_send, we_receive) = directions(Role::Initiator, &offer.senders);
        let tctx = TransportContext {
            channel: shared.channel.clone(),
            local: shared.local.clone(),
            peer: peer.clone(),
            role: Role::Initiator,
            session_sid: sid.clone(),
            content_name: name.clone(),
            we_send,
        };
        let mut negotiation = adapter.offer(&tctx).await?;
        let mut content = ContentParts::new(Creator::Initiator, name.clone())
            .with_senders(offer.senders.clone())
            .with_description(offer.description.clone())
            .with_transport(negotiation.local_transport());
        let secret = if jet_on {
            let suite = shared.jet.suites[0];
            let context = EnvelopeContext::new(sid.clone(), name.clone(), we_send);
            let (security, ts) = shared
                .jet
                .seal(&context, suite, &peer.clone().into())
                .await?;
            content.security = Some(security);
            Some((suite, ts))
        } else {
            None
        };
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let (peer, sid) = (peer.clone(), sid.clone());
            let lost = shared.clone();
            self.call(move |st, now| {
                if lost.is_lost() {
                    return Err(closed());
                }
                st.endpoint
                    .initiate_with_sid(peer, sid.clone(), vec![content], now)?;
                st.sessions.insert(sid, tx);
                Ok::<(), Error>(())
            })
            .await??;
        }
        let mut live = Live::new(self.clone(), sid.clone(), rx);
        live.transports = transports;
        let accepted = loop {
            match live.next_event().await {
                Some(Event::Accepted { contents }) => break contents,
                Some(Event::Terminated {
                    reason,
                    text,
                    by_peer,
                }) => return Err(live.ended_error(reason, text, by_peer)),
                Some(other) => live.deferred.push_back(other),
                None => return Err(closed()),
            }
        };
        live.requeue();
        let accepted = accepted.into_iter().find(|c| c.name == name);
        let remote = accepted.as_ref().and_then(|c| c.transport.clone());
        let Some(remote) = remote else {
            return live
                .finish(Err(Error::Protocol(
                    "session-accept without our content".into(),
                )))
                .await;
        };
        if let Err(e) = negotiation.set_remote(&remote) {
            return live.finish(Err(e.into())).await;
        }
        let description = accepted
            .and_then(|c| c.description)
            .unwrap_or(offer.description);
        let ctx = AppContext {
            role: Role::Initiator,
            peer,
            sid,
            content: name.clone(),
            description,
            we_send,
            we_receive,
            framing: secret.as_ref().map(|(suite, _)| suite.framing()),
            notes: Arc::new(SessionNotes::default()),
            checksum_key: secret.as_ref().map(|(_, ts)| ChecksumKey::derive(ts)),
        };
        live.notes = Some(ctx.notes.clone());
        live.establish_and_run(negotiation, &tctx, secret, app, ctx)
            .await
    }
}

impl Incoming {
    /// Accepts with `app` (XEP-0391 §3, §7): opens the transport secret,
    /// checks that it comes from the initiator, lets the application decide,
    /// answers the transport, sends `session-accept`, establishes the
    /// transport, wraps it in the cipher and runs the application.
    /// A refusal by the application ends the session with its reason and
    /// returns [`Error::Refused`] with it. Once the session ended well,
    /// returns what the application's `run` returned.
    pub async fn accept<A: Acceptor>(self, app: Arc<A>) -> Result<A::Output, Error> {
        let Incoming {
            sid,
            peer,
            contents,
            mut live,
        } = self;
        let shared = live.driver.shared.clone();
        live.drop_reason = Reason::Cancel;
        let [offered] = contents.as_slice() else {
            return live
                .end(
                    Reason::FailedApplication,
                    Some("only one content per session is supported".into()),
                    Error::Application("more than one content offered".into()),
                )
                .await;
        };
        let name = offered.name.clone();
        // XEP-0391 §3 and §7: open TS, check that the initiator sealed it.
        let secret = match &offered.security {
            Some(sec) => {
                let peer_jid: Jid = peer.clone().into();
                let (we_send, _) = directions(Role::Responder, &offered.senders);
                let context = EnvelopeContext::new(sid.clone(), name.clone(), we_send);
                match shared.jet.open(&context, sec, &peer_jid, &peer_jid).await {
                    Ok(s) => Some(s),
                    Err(e) => return live.finish(Err(e)).await,
                }
            }
            None if shared.jet.require_encryption => {
                return live.finish(Err(Error::MissingSecurity(name))).await
            }
            None => None,
        };
        let description = offered
            .description
            .clone()
            .unwrap_or_else(|| Element::builder("description", "urn:jet:missing").build());
        if description.ns() != app.namespace() {
            return live
                .end(
                    Reason::UnsupportedApplications,
                    None,
                    Error::Application(format!("unsupported application {}", description.ns())),
                )
                .await;
        }
        let description = match app.decide(&description, offered.senders.clone()) {
            Decision::Accept(d) => d,
            Decision::Reject(reason, text) => {
                let refused = Error::Refused {
                    reason: reason_name(&reason),
                    text: text.clone(),
                };
                return live.end(reason, text, refused).await;
            }
        };
        let offer_transport = offered
            .transport
            .clone()
            .unwrap_or_else(|| Element::builder("transport", "urn:jet:missing").build());
        let Some(adapter) = shared
            .transports
            .iter()
            .find(|a| a.namespace() == offer_transport.ns())
            .cloned()
        else {
            return live
                .end(
                    Reason::UnsupportedTransports,
                    None,
                    Error::Protocol(format!("unsupported transport {}", offer_transport.ns())),
                )
                .await;
        };
        let (we_send, we_receive) = directions(Role::Responder, &offered.senders);
        let tctx = TransportContext {
            channel: shared.channel.clone(),
            local: shared.local.clone(),
            peer: peer.clone(),
            role: Role::Responder,
            session_sid: sid.clone(),
            content_name: name.clone(),
            we_send,
        };
        let negotiation = match adapter.answer(&tctx, &offer_transport).await {
            Ok(n) => n,
            Err(e) => return live.finish(Err(e.into())).await,
        };
        let local_transport = negotiation.local_transport();
        let accept = {
            let (sid, name, desc) = (sid.clone(), name.clone(), description.clone());
            live.driver
                .call(move |st, now| {
                    st.endpoint.accept(
                        &sid,
                        vec![(name.clone(), local_transport)],
                        vec![(name, desc)],
                        now,
                    )
                })
                .await
        };
        match accept {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => return live.finish(Err(e)).await,
        }
        let ctx = AppContext {
            role: Role::Responder,
            peer,
            sid,
            content: name.clone(),
            description,
            we_send,
            we_receive,
            framing: secret.as_ref().map(|(suite, _)| suite.framing()),
            notes: Arc::new(SessionNotes::default()),
            checksum_key: secret.as_ref().map(|(_, ts)| ChecksumKey::derive(ts)),
        };
        live.notes = Some(ctx.notes.clone());
        live.establish_and_run(negotiation, &tctx, secret, app, ctx)
            .await
    }

    /// Declines (`session-terminate` with `decline`).
    pub async fn decline(self) -> Result<(), Error> {
        self.decline_with(None).await
    }

    /// Declines the offer with `text` in the reason (said to the peer, so
    /// it names files, never our directories).
    pub async fn decline_because(self, text: String) -> Result<(), Error> {
        self.decline_with(Some(text)).await
    }

    async fn decline_with(self, text: Option<String>) -> Result<(), Error> {
        let mut live = self.live;
        // Ending always gives back the error it was given: here, ours.
        let _ = live.end::<()>(Reason::Decline, text, Error::Declined).await;
        Ok(())
    }
}

/// Who sends and who receives on a content, for us.
fn directions(role: Role, senders: &Senders) -> (bool, bool) {
    let initiator_sends = matches!(senders, Senders::Initiator | Senders::Both);
    let responder_sends = matches!(senders, Senders::Responder | Senders::Both);
    match role {
        Role::Initiator => (initiator_sends, responder_sends),
        Role::Responder => (responder_sends, initiator_sends),
    }
}

/// How a session ended, as its task saw it.
#[derive(Debug, Clone)]
struct Ended {
    reason: Reason,
    text: Option<String>,
    /// Whether the peer ended it (else our engine or this task did).
    by_peer: bool,
}

fn terminated_error(reason: Reason, text: Option<String>) -> Error {
    match reason {
        // A decline that says why keeps its text for the user.
        Reason::Decline if text.is_none() => Error::Declined,
        reason => Error::Terminated {
            reason: reason_name(&reason),
            text,
        },
    }
}

/// Turns an I/O error that carries a cipher failure back into
/// [`Error::Cipher`], so that it ends the session with `security-error`,
/// and a stalled transport into [`Error::Timeout`] (`timeout`).
fn classify(e: Error) -> Error {
    let (io, transport) = match e {
        Error::Io(io) => (io, false),
        Error::Transport(TransportError::Io(io)) => (io, true),
        e => return e,
    };
    match (cipher_error_of(&io), stalled_of(&io)) {
        (Some(c), _) => Error::Cipher(c.clone()),
        (None, Some(s)) => Error::Timeout(format!("the data: {s}")),
        (None, None) if transport => Error::Transport(TransportError::Io(io)),
        (None, None) => Error::Io(io),
    }
}

/// One session seen from its task.
struct Live {
    driver: Driver,
    sid: String,
    events: mpsc::UnboundedReceiver<Event>,
    pending: VecDeque<Event>,
    deferred: VecDeque<Event>,
    ended: Option<Ended>,
    /// The transports this session may use, in order (initiator: those the
    /// peer supports; responder: all of ours).
    transports: Vec<Arc<dyn TransportAdapter>>,
    /// Where `session-info` payloads go once the application runs.
    notes: Option<Arc<SessionNotes>>,
    /// Sent if this handle is dropped while the session may still be live
    /// (an `Incoming` nobody answered: `decline`; a cancelled task: `cancel`).
    drop_reason: Reason,
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.ended.is_some() {
            return;
        }
        let (sid, reason) = (self.sid.clone(), self.drop_reason.clone());
        // Fire and forget; a no-op when the session has already ended.
        let _ = self.driver.jobs.send(Box::new(move |st, now| {
            let _ = st.endpoint.terminate(&sid, reason, None, now);
        }));
    }
}

impl Live {
    fn new(driver: Driver, sid: String, events: mpsc::UnboundedReceiver<Event>) -> Self {
        let transports = driver.shared.transports.clone();
        Live {
            driver,
            sid,
            events,
            pending: VecDeque::new(),
            deferred: VecDeque::new(),
            ended: None,
            transports,
            notes: None,
            drop_reason: Reason::Cancel,
        }
    }

    async fn next_event(&mut self) -> Option<Event> {
        let ev = match self.pending.pop_front() {
            Some(ev) => Some(ev),
            None => self.events.recv().await,
        };
        if let (Some(Event::SessionInfo(payload)), Some(notes)) = (&ev, &self.notes) {
            notes.add_info(payload.clone());
        }
        if let Some(Event::Terminated {
            reason,
            text,
            by_peer,
        }) = &ev
        {
            self.ended = Some(Ended {
                reason: reason.clone(),
                text: text.clone(),
                by_peer: *by_peer,
            });
        }
        ev
    }

    /// The error for a session that ended with `reason`: the peer's reason,
    /// or [`ChannelError::Closed`] when our engine ended it because the
    /// channel closed.
    fn ended_error(&self, reason: Reason, text: Option<String>, by_peer: bool) -> Error {
        if !by_peer && self.driver.shared.is_lost() {
            return closed();
        }
        terminated_error(reason, text)
    }

    fn error_of(&self, ended: Ended) -> Error {
        self.ended_error(ended.reason, ended.text, ended.by_peer)
    }

    /// Puts set-aside events back in front of the queue.
    fn requeue(&mut self) {
        let mut d = std::mem::take(&mut self.deferred);
        d.append(&mut self.pending);
        self.pending = d;
    }

    /// Ends the session with `reason` (if still live) and returns `error`.
    async fn end<T>(
        &mut self,
        reason: Reason,
        text: Option<String>,
        error: Error,
    ) -> Result<T, Error> {
        if self.ended.is_none() {
            let sid = self.sid.clone();
            let _ = self
                .driver
                .call(move |st, now| st.endpoint.terminate(&sid, reason, text, now))
                .await;
        }
        Err(error)
    }

    /// Ends the session according to `result`: an error ends it with its
    /// reason, unless the peer already ended it.
    async fn finish<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                let e = classify(e);
                if let Some(ended) = self.ended.clone() {
                    if !rules::delivered(&ended.reason) {
                        // The peer's reason (or the lost connection)
                        // explains more than our symptom.
                        return Err(self.error_of(ended));
                    }
                }
                let (reason, text) = (e.jingle_reason(), Some(e.to_string()));
                self.end(reason, text, e).await
            }
        }
    }

    /// Runs one negotiation to a stream, bounded by the establish timeout.
    async fn try_establish(
        &mut self,
        negotiation: Box<dyn TransportNegotiation>,
        content: &str,
    ) -> Result<BoxedStream, TransportError> {
        let limit = self.driver.shared.config.establish_timeout;
        let result = {
            let mut signals = Signals {
                live: self,
                content: content.to_string(),
            };
            tokio::time::timeout(limit, negotiation.establish(&mut signals)).await
        };
        self.requeue();
        result.unwrap_or_else(|_| Err(TransportError::Timeout("transport establishment".into())))
    }

    /// Establishes the transport; when it fails, falls back to the next
    /// configured transport with transport-replace (XEP-0166 §6.8, e.g. IBB
    /// after S5B): the initiator offers it, the responder waits for the offer
    /// and answers it.
    async fn establish(
        &mut self,
        mut negotiation: Box<dyn TransportNegotiation>,
        tctx: &TransportContext,
    ) -> Result<BoxedStream, Error> {
        let content = tctx.content_name.clone();
        loop {
            let error = match self.try_establish(negotiation, &content).await {
                Ok(stream) => return Ok(stream),
                Err(e) => Error::from(e),
            };
            if self.ended.is_some() {
                return Err(error);
            }
            negotiation = match tctx.role {
                Role::Initiator => {
                    // The engine says which transport follows the one that
                    // failed (`rules`).
                    let ours: Vec<&'static str> =
                        self.transports.iter().map(|a| a.namespace()).collect();
                    let (sid, c) = (self.sid.clone(), content.clone());
                    // A session that ended meanwhile has no fallback: the
                    // transport's error (or the peer's reason) stands.
                    let next = self
                        .driver
                        .call(move |st, _| st.endpoint.fallback_transport(&sid, &c, &ours))
                        .await?
                        .unwrap_or(None);
                    let Some(next) = next.map(|i| self.transports[i].clone()) else {
                        return Err(error);
                    };
                    let mut neg = next.offer(tctx).await?;
                    let (sid, c, t) = (self.sid.clone(), content.clone(), neg.local_transport());
                    self.driver
                        .call(move |st, now| st.endpoint.transport_replace(&sid, &c, t, now))
                        .await??;
                    let remote = self.wait_replace_answer(&content).await?;
                    neg.set_remote(&remote)?;
                    neg
                }
                Role::Responder => {
                    let offered = self.wait_replace_offer(&content, error).await?;
                    // The engine accepts an offer we have a transport for
                    // and rejects any other (`rules`).
                    let ours: Vec<&'static str> =
                        self.transports.iter().map(|a| a.namespace()).collect();
                    let (sid, c) = (self.sid.clone(), content.clone());
                    let answer = self
                        .driver
                        .call(move |st, now| st.endpoint.answer_replace(&sid, &c, &ours, now))
                        .await??;
                    let Some((i, offer)) = answer else {
                        return Err(Error::Protocol(format!(
                            "the peer replaced the transport with {}, which we lack",
                            offered.ns()
                        )));
                    };
                    let adapter = self.transports[i].clone();
                    let (sid, c) = (self.sid.clone(), content.clone());
                    let neg = adapter.answer(tctx, &offer).await?;
                    let t = neg.local_transport();
                    self.driver
                        .call(move |st, now| st.endpoint.transport_accept(&sid, &c, t, now))
                        .await??;
                    neg
                }
            };
        }
    }

    /// Initiator: the answer to our transport-replace.
    async fn wait_replace_answer(&mut self, content: &str) -> Result<Element, Error> {
        loop {
            match self.next_event().await {
                Some(Event::TransportAccepted {
                    content: c,
                    transport,
                }) if c == content => {
                    self.requeue();
                    return Ok(transport);
                }
                Some(Event::TransportRejected { content: c }) if c == content => {
                    self.requeue();
                    return Err(TransportError::NoCandidate(
                        "the peer rejected the fallback transport".into(),
                    )
                    .into());
                }
                Some(Event::Terminated {
                    reason,
                    text,
                    by_peer,
                }) => return Err(self.ended_error(reason, text, by_peer)),
                Some(other) => self.deferred.push_back(other),
                None => return Err(closed()),
            }
        }
    }

    /// Responder: the initiator's transport-replace after our transport
    /// failed, within the establish timeout; otherwise `error`.
    async fn wait_replace_offer(&mut self, content: &str, error: Error) -> Result<Element, Error> {
        let limit = self.driver.shared.config.establish_timeout;
        let waited = tokio::time::timeout(limit, async {
            loop {
                match self.next_event().await {
                    Some(Event::TransportReplace {
                        content: c,
                        transport,
                    }) if c == content => return Ok(transport),
                    Some(Event::Terminated {
                        reason,
                        text,
                        by_peer,
                    }) => return Err(self.ended_error(reason, text, by_peer)),
                    Some(other) => self.deferred.push_back(other),
                    None => return Err(closed()),
                }
            }
        })
        .await;
        self.requeue();
        waited.unwrap_or(Err(error))
    }

    async fn establish_and_run<A: Application>(
        &mut self,
        negotiation: Box<dyn TransportNegotiation>,
        tctx: &TransportContext,
        secret: Option<(&'static dyn CipherSuite, TransportSecret)>,
        app: Arc<A>,
        ctx: AppContext,
    ) -> Result<A::Output, Error> {
        let cfg = self.driver.shared.config.clone();
        let stream = match self.establish(negotiation, tctx).await {
            Ok(s) => s,
            Err(e) => return self.finish(Err(e)).await,
        };
        // Whoever drops the stream, it closes only once the peer closed, the
        // verdict is in (this function returns) or the finish bound passed:
        // never with the peer's bytes unread (see `linger`).
        let (stream, _linger) = linger::Linger::new(stream, cfg.finish_timeout);
        let stream: BoxedStream = Box::new(stream);
        // Under the cipher layer: what it measures is the peer's bytes.
        let stream: BoxedStream = match cfg.stall_timeout {
            Some(limit) => Box::new(stall::StallGuard::new(stream, limit)),
            None => stream,
        };
        let (we_send, we_receive) = (ctx.we_send, ctx.we_receive);
        // The ciphertext's hashes, for a peer whose checksum covers them.
        let stream: BoxedStream = if we_receive && app.wants_wire_hashes(&ctx) {
            ctx.notes.hash_wire();
            Box::new(WireHashing {
                inner: stream,
                notes: ctx.notes.clone(),
            })
        } else {
            stream
        };
        let stream: BoxedStream = match secret {
            Some((suite, ts)) => {
                let direction = if we_send {
                    Direction::Send
                } else {
                    Direction::Receive
                };
                match JetStream::new(stream, suite, &ts, direction) {
                    Ok(mut s) => {
                        // A receiver that knows how much is coming ends at
                        // that many bytes and the tag (XEP-0391 deployed
                        // senders never close the stream themselves).
                        if we_receive {
                            if let Some(plain) = app.expected_len(&ctx) {
                                s.set_expected_len(suite.ciphertext_len(plain));
                            }
                        }
                        Box::new(s)
                    }
                    Err(e) => return self.finish(Err(e.into())).await,
                }
            }
            None => stream,
        };
        // A sender's close that fails (a receiver with everything may drop
        // its side first) is held back from the application, so that `run`
        // returns its value; the receiver's verdict decides below.
        let held = Arc::new(std::sync::Mutex::new(None));
        let stream: BoxedStream = if we_send {
            Box::new(HoldClose {
                inner: stream,
                held: held.clone(),
            })
        } else {
            stream
        };
        // Run, abort if the peer ends the session with anything but success.
        let info_ctx = ctx.clone();
        let info_app = app.clone();
        let run = app.run(ctx, stream);
        let run = async {
            match cfg.run_timeout {
                Some(t) => tokio::time::timeout(t, run)
                    .await
                    .unwrap_or_else(|_| Err(Error::Timeout("the application".into()))),
                None => run.await,
            }
        };
        let mut run = std::pin::pin!(run);
        let result = tokio::select! {
            r = &mut run => r,
            error = self.peer_failure() => {
                if we_receive {
                    // Let a receiver consume what already arrived, briefly:
                    // in chunked mode every chunk it authenticates is kept
                    // for a resume. Nothing is committed (the stream cannot
                    // end well without the sender's final tag).
                    let _ = tokio::time::timeout(RECEIVER_DRAIN, &mut run).await;
                }
                Err(error)
            }
        };
        // A receiver that refuses the data (tampered, truncated) drops the
        // stream and ends the session: the sender's write may fail before
        // that session-terminate arrives. Its reason tells the user more
        // than "broken pipe", so wait for it, briefly.
        // A receiver that has everything may also end the session and drop
        // its side before our last transport step (an IBB <close/> it no
        // longer knows): its `success` is the verdict that counts.
        // The close error held back counts only once `run` has its value.
        let result = match result {
            Ok(value) => match held.lock().ok().and_then(|mut h| h.take()) {
                // As the file applications report a failed close.
                Some(e) => match cipher_error_of(&e) {
                    Some(c) => Err((Some(value), Error::Cipher(c.clone()))),
                    None => Err((Some(value), Error::Transport(TransportError::Io(e)))),
                },
                None => Ok(value),
            },
            Err(e) => Err((None, e)),
        };
        let result = match result {
            Ok(value) => Ok(value),
            Err((value, Error::Io(e))) if we_send => {
                let grace = cfg.finish_timeout.min(Duration::from_secs(2));
                match tokio::time::timeout(grace, self.peer_verdict()).await {
                    Ok(verdict) => verdict.and_then(|()| value.ok_or(Error::Io(e))),
                    Err(_) => Err(Error::Io(e)),
                }
            }
            Err((value, Error::Transport(TransportError::Io(e)))) if we_send => {
                let grace = cfg.finish_timeout.min(Duration::from_secs(2));
                match tokio::time::timeout(grace, self.peer_verdict()).await {
                    Ok(verdict) => {
                        verdict.and_then(|()| value.ok_or(Error::Transport(TransportError::Io(e))))
                    }
                    // No word from the receiver: its signalling is gone too
                    // (offline), or it never sent one.
                    Err(_) if stalled_of(&e).is_none() && cipher_error_of(&e).is_none() => {
                        let why = format!(
                            "the bytestream broke: {e}; no reason came from the receiver \
                             (gone offline?)"
                        );
                        Err(TransportError::Io(std::io::Error::new(e.kind(), why)).into())
                    }
                    Err(_) => Err(TransportError::Io(e).into()),
                }
            }
            Err((_, e)) => Err(e),
        };
        let value = match result {
            Ok(value) => value,
            Err(e) => return self.finish(Err(e)).await,
        };
        if we_receive {
            // The receiver has authenticated everything: it says so to the
            // application's liking (XEP-0234 <received/>) and ends the session.
            if let Some(info) = info_app.on_received(&info_ctx) {
                let sid = self.sid.clone();
                let _ = self
                    .driver
                    .call(move |st, now| st.endpoint.session_info(&sid, Some(info), now))
                    .await;
            }
            let _ = self.end::<()>(Reason::Success, None, closed()).await;
            return Ok(value);
        }
        if let Some(info) = info_app.on_sent(&info_ctx) {
            // After the data (XEP-0234 allows a checksum there): the
            // receiver holds its verdict until it arrives, briefly.
            let sid = self.sid.clone();
            let _ = self
                .driver
                .call(move |st, now| st.endpoint.session_info(&sid, Some(info), now))
                .await;
        }
        // The sender waits for the receiver's verdict, which the engine
        // bounds (`rules`: it ends the session with `timeout` without one).
        let within = cfg
            .finish_timeout
            .saturating_add(info_app.verdict_grace(&info_ctx));
        let sid = self.sid.clone();
        if self.ended.is_none() {
            let _ = self
                .driver
                .call(move |st, now| st.endpoint.await_verdict(&sid, within, now))
                .await;
        }
        loop {
            if let Some(ended) = self.ended.clone() {
                let timed_out = !ended.by_peer
                    && ended.reason == Reason::Timeout
                    && ended.text == Some(rules::verdict_timeout_text(within));
                if timed_out && !self.driver.shared.is_lost() {
                    return Err(Error::Timeout(rules::verdict_wait(within)));
                }
                return self.outcome(ended).map(|()| value);
            }
            if self.next_event().await.is_none() && self.ended.is_none() {
                return Err(self.error_of(Ended {
                    reason: Reason::ConnectivityError,
                    text: Some("engine stopped".into()),
                    by_peer: false,
                }));
            }
        }
    }

    /// The result of a session that ended (`rules::delivered`): `Ok` for
    /// `success`, else the error to report.
    fn outcome(&self, ended: Ended) -> Result<(), Error> {
        if rules::delivered(&ended.reason) {
            Ok(())
        } else {
            Err(self.error_of(ended))
        }
    }

    /// Completes when the session ends: `Ok` when the peer ended it with
    /// `success`, else the error to report.
    async fn peer_verdict(&mut self) -> Result<(), Error> {
        loop {
            if let Some(ended) = self.ended.clone() {
                return self.outcome(ended);
            }
            if self.next_event().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Completes when the session ends with a failure reason (the peer
    /// ended it, or the connection was lost), with the error to report.
    async fn peer_failure(&mut self) -> Error {
        loop {
            match &self.ended {
                Some(e) if e.reason != Reason::Success => return self.error_of(e.clone()),
                _ => {}
            }
            if self.next_event().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// A sender's stream whose failed `shutdown` is kept in `held` and
/// reported to the application as done (see `establish_and_run`).
struct HoldClose {
    inner: BoxedStream,
    held: Arc<std::sync::Mutex<Option<std::io::Error>>>,
}

impl tokio::io::AsyncRead for HoldClose {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for HoldClose {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_shutdown(cx) {
            std::task::Poll::Ready(Err(e)) => {
                if let Ok(mut h) = this.held.lock() {
                    h.get_or_insert(e);
                }
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// Hashes what is read (the ciphertext) into the session's notes.
struct WireHashing {
    inner: BoxedStream,
    notes: Arc<SessionNotes>,
}

impl tokio::io::AsyncRead for WireHashing {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = r {
            this.notes.update_wire(&buf.filled()[before..]);
        }
        r
    }
}

impl tokio::io::AsyncWrite for WireHashing {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The signalling path a transport uses while it establishes.
struct Signals<'a> {
    live: &'a mut Live,
    content: String,
}

#[async_trait]
impl TransportSignals for Signals<'_> {
    async fn send_info(&mut self, transport: Element) -> Result<(), TransportError> {
        let (sid, content) = (self.live.sid.clone(), self.content.clone());
        self.live
            .driver
            .call(move |st, now| st.endpoint.transport_info(&sid, &content, transport, now))
            .await
            .and_then(|r| r)
            .map_err(|e| TransportError::Protocol(e.to_string()))
    }

    async fn recv_info(&mut self) -> Result<Element, TransportError> {
        loop {
            match self.live.next_event().await {
                Some(Event::TransportInfo { content, transport }) if content == self.content => {
                    return Ok(transport)
                }
                Some(ev @ Event::TransportReplace { .. }) => {
                    // The peer gave up on this transport: stop waiting, keep
                    // the offer for the fallback.
                    self.live.deferred.push_back(ev);
                    return Err(TransportError::Closed(
                        "the peer replaces the transport".into(),
                    ));
                }
                Some(Event::Terminated { reason, text, .. }) => {
                    return Err(TransportError::Closed(format!(
                        "{}{}",
                        reason_name(&reason),
                        text.map(|t| format!(": {t}")).unwrap_or_default()
                    )))
                }
                Some(other) => self.live.deferred.push_back(other),
                None => return Err(TransportError::Closed("engine stopped".into())),
            }
        }
    }
}

// ----- the engine task ----------------------------------------------------

async fn engine_task(
    mut st: LoopState,
    shared: Arc<Shared>,
    weak_jobs: mpsc::WeakUnboundedSender<Job>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    mut requests: mpsc::UnboundedReceiver<Element>,
    incoming: mpsc::UnboundedSender<Incoming>,
    outbox_rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    // Dropped when the channel closes: the stream of incoming sessions ends.
    let mut incoming = Some(incoming);
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<Element>();
    tokio::spawn(outbox_task(shared.channel.clone(), outbox_rx, answers_tx));
    loop {
        let deadline = st.endpoint.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(TokioInstant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => job(&mut st, now()),
                None => break,
            },
            req = requests.recv(), if !shared.is_lost() => match req {
                Some(req) => st.endpoint.handle_stanza(req, now()),
                // The channel closed: no stanza will come or go any more.
                None => {
                    shared.lost.store(true, Ordering::Release);
                    incoming = None;
                    let sids: Vec<String> = st.sessions.keys().cloned().collect();
                    for sid in sids {
                        let text = Some(LOST_TEXT.to_string());
                        let _ = st.endpoint.terminate(&sid, Reason::ConnectivityError, text, now());
                    }
                }
            },
            Some(answer) = answers.recv() => st.endpoint.handle_stanza(answer, now()),
            _ = sleep => st.endpoint.handle_timeout(now()),
        }
        // Flush until quiet: dispatching may itself end sessions.
        loop {
            let mut busy = false;
            while let Some(stanza) = st.endpoint.poll_transmit() {
                busy = true;
                let _ = st.outbox.send(Outgoing::Stanza(stanza));
            }
            while let Some((from, why)) = st.endpoint.poll_refused() {
                if let (Ok(peer), Some(hook)) = (from.parse::<FullJid>(), &shared.config.on_refused)
                {
                    (hook.0)(&peer, "bad-request", &why);
                }
            }
            while let Some(SessionEvent { sid, peer, event }) = st.endpoint.poll_event() {
                busy = true;
                dispatch(
                    &mut st,
                    &shared,
                    &weak_jobs,
                    incoming.as_ref(),
                    sid,
                    peer,
                    event,
                );
            }
            if !busy {
                break;
            }
        }
    }
}

fn dispatch(
    st: &mut LoopState,
    shared: &Arc<Shared>,
    weak_jobs: &mpsc::WeakUnboundedSender<Job>,
    incoming: Option<&mpsc::UnboundedSender<Incoming>>,
    sid: String,
    peer: FullJid,
    event: Event,
) {
    match event {
        Event::IncomingSession { contents, .. } => {
            let Some(jobs) = weak_jobs.upgrade() else {
                let _ = st.endpoint.terminate(&sid, Reason::Gone, None, now());
                return;
            };
            let Some(incoming) = incoming else {
                let text = Some(LOST_TEXT.to_string());
                let _ = st
                    .endpoint
                    .terminate(&sid, Reason::ConnectivityError, text, now());
                return;
            };
            if let Some(admit) = &shared.config.admit {
                if !(admit.0)(&peer) {
                    // Before the limits: a stranger's offer takes no slot.
                    let text = Some("offers from you are not accepted here".to_string());
                    let _ = st.endpoint.terminate(&sid, Reason::Decline, text, now());
                    return;
                }
            }
            let max = shared.config.max_sessions;
            if st.sessions.len() >= max {
                // XEP-0166 §7.4 <busy/>: before any envelope or transport
                // work, so a flood of offers costs little.
                let text = Some(format!("too many sessions at once (limit {max})"));
                let _ = st.endpoint.terminate(&sid, Reason::Busy, text, now());
                return;
            }
            let LoopState {
                sessions,
                offered_by,
                ..
            } = &mut *st;
            offered_by.retain(|sid, _| sessions.contains_key(sid));
            let bare = peer.to_bare();
            let per_peer = shared.config.max_sessions_per_peer;
            if offered_by.values().filter(|p| **p == bare).count() >= per_peer {
                let text = Some(format!(
                    "too many sessions from you at once (limit {per_peer} per peer)"
                ));
                let _ = st.endpoint.terminate(&sid, Reason::Busy, text, now());
                return;
            }
            st.offered_by.insert(sid.clone(), bare);
            let (tx, rx) = mpsc::unbounded_channel();
            st.sessions.insert(sid.clone(), tx);
            let driver = Driver {
                jobs,
                shared: shared.clone(),
            };
            let mut live = Live::new(driver, sid.clone(), rx);
            live.drop_reason = Reason::Decline;
            let inc = Incoming {
                sid: sid.clone(),
                peer,
                contents,
                live,
            };
            if incoming.send(inc).is_err() {
                // Nobody listens for sessions: decline.
                st.sessions.remove(&sid);
                let _ = st.endpoint.terminate(&sid, Reason::Decline, None, now());
            }
        }
        event => {
            let ended = matches!(event, Event::Terminated { .. });
            if let Some(tx) = st.sessions.get(&sid) {
                let _ = tx.send(event);
            } else if let (
                Event::Terminated {
                    reason,
                    text,
                    by_peer: false,
                },
                Some(hook),
            ) = (&event, &shared.config.on_refused)
            {
                // A session-initiate refused by the engine itself.
                (hook.0)(&peer, &reason_name(reason), text.as_deref().unwrap_or(""));
            }
            if ended {
                st.sessions.remove(&sid);
            }
        }
    }
}

/// Sends stanzas in order. An IQ request is polled once here (which hands
/// it to the channel) and then awaits its answer on its own task, so a slow
/// answer never holds up the next stanza.
async fn outbox_task(
    channel: Arc<dyn StanzaChannel>,
    mut outbox: mpsc::UnboundedReceiver<Outgoing>,
    answers: mpsc::UnboundedSender<Element>,
) {
    while let Some(out) = outbox.recv().await {
        let stanza = match out {
            Outgoing::Stanza(stanza) => stanza,
            Outgoing::Flushed(done) => {
                let _ = done.send(());
                continue;
            }
        };
        if stanza.attr("type") != Some("set") {
            let _ = channel.send(stanza).await;
            continue;
        }
        let channel = channel.clone();
        let answers = answers.clone();
        let mut request = Box::pin(async move {
            let answer = match channel.request(stanza.clone()).await {
                Ok(a) => a,
                Err(ChannelError::StanzaError {
                    error_type,
                    condition,
                    ..
                }) => synthetic_error(&stanza, &error_type, &condition),
                Err(ChannelError::Unavailable(_)) => {
                    synthetic_error(&stanza, "cancel", "service-unavailable")
                }
                // Closed or timed out: the engine's own IQ timeout decides.
                Err(_) => return,
            };
            let _ = answers.send(answer);
        });
        tokio::select! {
            biased;
            _ = &mut request => {}
            _ = std::future::ready(()) => { tokio::spawn(request); }
        }
    }
}

/// An IQ error answer to our `request`, as if its recipient had sent it
/// (`iq_error` swaps `from` and `to`).
fn synthetic_error(request: &Element, error_type: &str, condition: &str) -> Element {
    crate::channel::iq_error(request, error_type, condition, None)
}

#[cfg(test)]
mod tests;
