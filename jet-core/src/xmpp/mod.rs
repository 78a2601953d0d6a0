//! The stanza channel over a real XMPP connection (feature `tokio-xmpp`).
//!
//! [`XmppChannel`] implements [`StanzaChannel`] for one account on an XMPP
//! server, so library users get the whole JET stack without the CLI:
//!
//! ```text
//!  request/send/subscribe        presence, caps, disco#info, roster
//!            \                         /
//!             XmppChannel  (one tokio task owns the stream)
//!                  |  raw minidom Elements both ways
//!   tokio-xmpp: XML stream + SASL     rustls: StartTLS with our trust anchors
//!                  |
//!               TCP (TCP_NODELAY)
//! ```
//!
//! What it does for its caller:
//! - **One bounded login** ([`XmppChannel::connect`]): StartTLS required
//!   (RFC 6120 §5) with the system trust store or a given CA file; plain TCP
//!   only to loopback. A wrong password, an unreachable server and an
//!   untrusted certificate are distinct [`XmppError`]s, reported within the
//!   connect timeout (tokio-xmpp's own client would retry forever).
//! - **IQ routing**: [`request`](StanzaChannel::request) matches answers by
//!   `id` *and* sender (RFC 6120 §8.2.3: a result must come from where the
//!   request went), incoming `get`/`set` go to the first
//!   [`subscribe`](StanzaChannel::subscribe)r whose filter accepts them, and
//!   the rest are answered `service-unavailable` (RFC 6120 §8.4). Each
//!   subscriber holds at most [`MAX_UNANSWERED`] requests it has not
//!   answered yet; beyond that a request is answered `resource-constraint`
//!   (type `wait`, RFC 6120 §8.3.3.18) instead of queued, so a peer that
//!   floods us with IQs cannot make the queues grow without bound.
//! - **Discovery**: `disco#info` (XEP-0030) is answered by the channel with
//!   the caller's features, which are also advertised as XEP-0115 caps in the
//!   initial presence; pings (XEP-0199) and roster pushes are answered.
//! - **Presence**: peers' available resources are tracked so that a bare JID
//!   can be turned into a full JID ([`XmppChannel::available_resources`],
//!   [`XmppChannel::wait_for_presence`]); subscription requests from an allow
//!   list are accepted (and returned) automatically.
//! - **No reconnects**: when the stream ends, pending requests fail with
//!   [`ChannelError::Closed`] and the channel stays closed. A JET session
//!   cannot survive a lost connection anyway; the caller decides whether to
//!   connect again.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use jet_core::channel::StanzaChannel;
//! use jet_core::xmpp::{XmppChannel, XmppConfig};
//!
//! let config = XmppConfig::new("romeo@jet.test".parse()?, "secret")
//!     .server("127.0.0.1:5222")
//!     .trust_ca_file("target/test-server/prosody/certs/ca.pem")
//!     .features([jet_core::ns::JET, jet_core::ns::JINGLE])
//!     .auto_accept(["juliet@jet.test".parse()?]);
//! let romeo = XmppChannel::connect(config).await?;
//! let juliet = romeo
//!     .wait_for_presence(&"juliet@jet.test".parse()?, Duration::from_secs(5))
//!     .await?;
//! println!("{} talks to {juliet}", romeo.local_jid());
//! romeo.disconnect().await?;
//! # Ok(()) }
//! ```

mod caps;
mod config;
mod connect;
mod error;
mod sasl;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use jid::{BareJid, FullJid, Jid};
use minidom::Element;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_xmpp::xmlstream::ReadError;

pub use caps::{DiscoInfo, Identity, PeerCaps, CAPS, PING};
pub use config::{Security, TlsTrust, XmppConfig};
pub use error::XmppError;

use crate::channel::{
    iq_error, iq_result, is_request_for, stanza_error_of, IqFilter, StanzaChannel,
};
use crate::error::ChannelError;
use crate::ns;
use crate::xml::{BuilderExt, ElementExt};
use connect::{describe_stream_error, RawStream, NS_ROSTER, NS_STREAMS};

/// Incoming requests a subscriber may hold unanswered (delivered, not yet
/// answered with a `result` or `error` through
/// [`send`](StanzaChannel::send)); more are refused with
/// `resource-constraint` (RFC 6120 §8.3.3.18).
pub const MAX_UNANSWERED: usize = 256;

/// How long [`XmppChannel::disconnect`] waits for the server to take our
/// goodbye before it just drops the connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

struct Pending {
    /// The `to` of the request: the answer must come from there.
    to: Option<Jid>,
    tx: oneshot::Sender<Element>,
}

/// One subscriber of incoming requests.
#[derive(Clone)]
struct Sub {
    id: u64,
    filter: IqFilter,
    tx: mpsc::UnboundedSender<Element>,
}

#[derive(Default)]
struct State {
    closed: Option<String>,
    pending: HashMap<String, Pending>,
    subs: Vec<Sub>,
    next_sub: u64,
    /// Requests delivered to a subscriber and not answered yet: (id, from)
    /// → the subscriber; and how many each subscriber holds.
    unanswered: HashMap<(String, String), u64>,
    held: HashMap<u64, usize>,
    presence: HashMap<BareJid, BTreeMap<FullJid, Option<PeerCaps>>>,
    /// Whose subscription requests we accept.
    allow: HashSet<BareJid>,
    /// Whom we asked for a subscription.
    asked: HashSet<BareJid>,
    other: Option<mpsc::UnboundedSender<Element>>,
}

struct Shared {
    jid: FullJid,
    disco: DiscoInfo,
    caps_node: String,
    caps_ver: String,
    state: Mutex<State>,
    presence_changed: watch::Sender<u64>,
    ids: AtomicU64,
    id_prefix: String,
}

enum Command {
    Send(Element, oneshot::Sender<Result<(), ChannelError>>),
    Close(oneshot::Sender<()>),
}

/// One logged-in account; see the [module docs](self).
///
/// Dropping it closes the connection in the background; prefer
/// [`disconnect`](Self::disconnect), which waits for the goodbye.
pub struct XmppChannel {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the channel down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl XmppChannel {
    /// Connects, logs in, binds a resource, fetches the roster and sends the
    /// initial presence (with caps). All of it is bounded by the config's
    /// connect timeout.
    pub async fn connect(config: XmppConfig) -> Result<Self, XmppError> {
        let connected = connect::connect(&config).await?;
        let disco = config.disco_info();
        let caps_ver = disco.caps_ver();
        let mut prefix = [0u8; 4];
        getrandom::fill(&mut prefix).map_err(|e| XmppError::Config(e.to_string()))?;
        let state = State {
            allow: config.auto_accept.iter().cloned().collect(),
            ..State::default()
        };
        let shared = Arc::new(Shared {
            jid: connected.jid,
            caps_node: config.caps_node.clone(),
            caps_ver,
            disco,
            state: Mutex::new(state),
            presence_changed: watch::Sender::new(0),
            ids: AtomicU64::new(0),
            id_prefix: prefix.iter().map(|b| format!("{b:02x}")).collect(),
        });

        // RFC 6121 §4.2: initial presence, with XEP-0115 caps.
        let mut stream = connected.stream;
        let presence = Element::builder("presence", ns::JABBER_CLIENT)
            .append(shared.disco.caps_element(&shared.caps_node))
            .build();
        match tokio::time::timeout(config.connect_timeout, stream.send(&presence)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(XmppError::Stream {
                    stage: "sending the initial presence",
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(XmppError::Timeout {
                    stage: "sending the initial presence",
                    after: config.connect_timeout,
                })
            }
        }

        let (commands, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(stream, shared.clone(), rx, connected.early));
        Ok(Self {
            shared,
            commands,
            task: Mutex::new(Some(task)),
        })
    }

    /// Whether the stream is still up.
    pub fn is_connected(&self) -> bool {
        lock(&self.shared.state).closed.is_none()
    }

    /// Why the channel closed, once it has.
    pub fn close_reason(&self) -> Option<String> {
        lock(&self.shared.state).closed.clone()
    }

    /// Our XEP-0115 verification string (the `ver` in our presence).
    pub fn caps_ver(&self) -> &str {
        &self.shared.caps_ver
    }

    /// What we answer to `disco#info`.
    pub fn disco_info(&self) -> &DiscoInfo {
        &self.shared.disco
    }

    /// The full JIDs under which `bare` is available now (from presence), sorted.
    pub fn available_resources(&self, bare: &BareJid) -> Vec<FullJid> {
        lock(&self.shared.state)
            .presence
            .get(bare)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The caps a peer's resource advertised in its last presence.
    pub fn peer_caps(&self, full: &FullJid) -> Option<PeerCaps> {
        lock(&self.shared.state)
            .presence
            .get(&full.to_bare())
            .and_then(|m| m.get(full).cloned())
            .flatten()
    }

    /// Waits until `bare` has an available resource and returns it (the
    /// first in order if there are several). Needs a presence subscription
    /// to `bare` (or `bare` being our own account).
    pub async fn wait_for_presence(
        &self,
        bare: &BareJid,
        timeout: Duration,
    ) -> Result<FullJid, ChannelError> {
        let mut changes = self.shared.presence_changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(full) = self.available_resources(bare).into_iter().next() {
                return Ok(full);
            }
            if !self.is_connected() {
                return Err(ChannelError::Closed);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(ChannelError::Closed),
                Err(_) => return Err(ChannelError::Timeout(format!("presence of {bare}"))),
            }
        }
    }

    /// Accepts `bare`'s presence subscription requests from now on (and
    /// subscribes back).
    pub fn allow_subscription(&self, bare: BareJid) {
        lock(&self.shared.state).allow.insert(bare);
    }

    /// Pre-approves `bare`'s subscription (RFC 6121 §3.4) and accepts its
    /// requests from now on.
    pub async fn pre_approve(&self, bare: BareJid) -> Result<(), ChannelError> {
        self.allow_subscription(bare.clone());
        self.send(presence_of_type("subscribed", &bare)).await
    }

    /// Asks `bare` for a presence subscription (RFC 6121 §3.1) and accepts its
    /// request in return. Once `bare` approves, its presence arrives and
    /// [`available_resources`](Self::available_resources) lists it.
    pub async fn subscribe_to_presence(&self, bare: BareJid) -> Result<(), ChannelError> {
        {
            let mut st = lock(&self.shared.state);
            st.allow.insert(bare.clone());
            st.asked.insert(bare.clone());
        }
        self.send(presence_of_type("subscribe", &bare)).await
    }

    /// Receives the messages and presence stanzas that arrive from now on
    /// (after the channel's own processing). Only one receiver at a time: a
    /// new call replaces the previous one. Before the first call they are
    /// not kept.
    pub fn other_stanzas(&self) -> mpsc::UnboundedReceiver<Element> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = lock(&self.shared.state);
        if st.closed.is_none() {
            st.other = Some(tx);
        }
        rx
    }

    /// Ends the session cleanly: unavailable presence, stream footer, TLS
    /// close, and waits (bounded) for the connection task. Every stanza
    /// handed to the channel before (a [`send`](StanzaChannel::send) or
    /// [`request`](StanzaChannel::request) polled once) is written first,
    /// in order, so a caller closes right after its last stanzas, without
    /// sleeping (with a [`Driver`](crate::driver::Driver): after its
    /// `flush`). Pending requests fail with [`ChannelError::Closed`].
    /// Calling it again is harmless.
    pub async fn disconnect(&self) -> Result<(), XmppError> {
        let (done_tx, done_rx) = oneshot::channel();
        if self.commands.send(Command::Close(done_tx)).is_ok() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT * 2, done_rx).await;
        }
        let task = lock(&self.task).take();
        if let Some(task) = task {
            if tokio::time::timeout(CLOSE_TIMEOUT * 2, task).await.is_err() {
                return Err(XmppError::Timeout {
                    stage: "closing the stream",
                    after: CLOSE_TIMEOUT * 2,
                });
            }
        }
        Ok(())
    }

    fn next_id(&self) -> String {
        let n = self.shared.ids.fetch_add(1, Ordering::Relaxed);
        format!("jet-{}-{n}", self.shared.id_prefix)
    }
}

fn presence_of_type(type_: &str, to: &BareJid) -> Element {
    Element::builder("presence", ns::JABBER_CLIENT)
        .a("type", type_)
        .a("to", to.to_string())
        .build()
}

/// Removes a pending request when its caller stops waiting (timeout, drop).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.state).pending.remove(&self.id);
    }
}

#[async_trait]
impl StanzaChannel for XmppChannel {
    fn local_jid(&self) -> FullJid {
        self.shared.jid.clone()
    }

    async fn request(&self, mut iq: Element) -> Result<Element, ChannelError> {
        if iq.name() != "iq" || !matches!(iq.attr("type"), Some("get") | Some("set")) {
            return Err(ChannelError::Invalid(
                "request() takes an <iq/> of type get or set".into(),
            ));
        }
        let id = match iq.attr("id") {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => {
                let id = self.next_id();
                iq.set_a("id", id.as_str());
                id
            }
        };
        let to = match iq.attr("to") {
            Some(to) => Some(
                Jid::new(to).map_err(|e| ChannelError::Invalid(format!("bad 'to' {to:?}: {e}")))?,
            ),
            None => None,
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut st = lock(&self.shared.state);
            if st.closed.is_some() {
                return Err(ChannelError::Closed);
            }
            if st.pending.contains_key(&id) {
                return Err(ChannelError::Invalid(format!(
                    "a request with id {id:?} is already waiting"
                )));
            }
            st.pending.insert(id.clone(), Pending { to, tx });
        }
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        self.send(iq).await?;
        let answer = rx.await.map_err(|_| ChannelError::Closed)?;
        match answer.attr("type") {
            Some("result") => Ok(answer),
            _ => Err(stanza_error_of(&answer)),
        }
    }

    async fn send(&self, stanza: Element) -> Result<(), ChannelError> {
        if !matches!(stanza.name(), "iq" | "message" | "presence")
            || stanza.ns() != ns::JABBER_CLIENT
        {
            return Err(ChannelError::Invalid(format!(
                "not a jabber:client stanza: <{}/> in {}",
                stanza.name(),
                stanza.ns()
            )));
        }
        self.shared.answered(&stanza);
        let (ack_tx, ack_rx) = oneshot::channel();
        self.commands
            .send(Command::Send(stanza, ack_tx))
            .map_err(|_| ChannelError::Closed)?;
        ack_rx.await.map_err(|_| ChannelError::Closed)?
    }

    fn subscribe(&self, filter: IqFilter) -> mpsc::UnboundedReceiver<Element> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = lock(&self.shared.state);
        if st.closed.is_none() {
            st.next_sub += 1;
            let id = st.next_sub;
            st.subs.push(Sub { id, filter, tx });
        }
        rx
    }
}

/// RFC 6120 §8.1.2.1 / §10.3.3: an answer must come from the entity the
/// request was sent to; a request without `to` (or to our own bare JID) is
/// answered by our server on behalf of our account (no `from`, or our bare
/// or full JID).
fn answer_from_ok(to: Option<&Jid>, from: Option<&str>, me: &FullJid) -> bool {
    let from = match from {
        None => None,
        Some(f) => match Jid::new(f) {
            Ok(j) => Some(j),
            Err(_) => return false,
        },
    };
    let own_account = |j: &Jid| *j == me.to_bare() || *j == *me;
    match (to, from) {
        (None, None) => true,
        (None, Some(f)) => own_account(&f),
        (Some(t), None) => own_account(t),
        (Some(t), Some(f)) => *t == f || (own_account(t) && own_account(&f)),
    }
}

impl State {
    /// Drops ended subscriptions and what they held.
    fn forget_closed_subs(&mut self) {
        let before = self.subs.len();
        self.subs.retain(|s| !s.tx.is_closed());
        if self.subs.len() != before {
            let live: HashSet<u64> = self.subs.iter().map(|s| s.id).collect();
            self.unanswered.retain(|_, sub| live.contains(sub));
            self.held.retain(|sub, _| live.contains(sub));
        }
    }
}

impl Shared {
    /// Notes that an outgoing stanza answers a request a subscriber held.
    fn answered(&self, stanza: &Element) {
        if stanza.name() != "iq" || !matches!(stanza.attr("type"), Some("result" | "error")) {
            return;
        }
        let key = (
            stanza.attr("id").unwrap_or_default().to_string(),
            stanza.attr("to").unwrap_or_default().to_string(),
        );
        let mut st = lock(&self.state);
        if let Some(sub) = st.unanswered.remove(&key) {
            if let Some(n) = st.held.get_mut(&sub) {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn is_own_account(&self, from: Option<&str>) -> bool {
        match from {
            None => true,
            Some(f) => Jid::new(f).is_ok_and(|j| j == self.jid.to_bare() || j == self.jid),
        }
    }

    /// Marks the channel closed and wakes everyone waiting on it.
    fn close(&self, reason: String) {
        let mut st = lock(&self.state);
        if st.closed.is_none() {
            st.closed = Some(reason);
        }
        // Dropping the senders fails pending requests with Closed and ends
        // the subscriptions.
        st.pending.clear();
        st.subs.clear();
        st.unanswered.clear();
        st.held.clear();
        st.other = None;
        st.presence.clear();
        drop(st);
        self.presence_changed.send_modify(|n| *n += 1);
    }

    fn dispatch(&self, el: Element, out: &mut VecDeque<Element>) {
        if el.ns() != ns::JABBER_CLIENT {
            return;
        }
        match el.name() {
            "iq" => self.on_iq(el, out),
            "presence" => {
                self.on_presence(&el, out);
                self.forward_other(el);
            }
            "message" => self.forward_other(el),
            _ => {}
        }
    }

    fn forward_other(&self, el: Element) {
        let mut st = lock(&self.state);
        if let Some(tx) = &st.other {
            if tx.send(el).is_err() {
                st.other = None;
            }
        }
    }

    fn on_iq(&self, el: Element, out: &mut VecDeque<Element>) {
        match el.attr("type") {
            Some("result") | Some("error") => {
                let id = el.attr("id").unwrap_or_default();
                let mut st = lock(&self.state);
                let matches = st
                    .pending
                    .get(id)
                    .is_some_and(|p| answer_from_ok(p.to.as_ref(), el.attr("from"), &self.jid));
                // An answer from anyone else is ignored: a spoofed result
                // never completes a request.
                if matches {
                    if let Some(p) = st.pending.remove(id) {
                        let _ = p.tx.send(el);
                    }
                }
            }
            Some("get") | Some("set") => {
                if let Some(answer) = self.builtin_answer(&el) {
                    out.push_back(answer);
                    return;
                }
                // Filters are the caller's code: call them without the lock.
                let subs: Vec<Sub> = {
                    let mut st = lock(&self.state);
                    st.forget_closed_subs();
                    st.subs.clone()
                };
                let key = (
                    el.attr("id").unwrap_or_default().to_string(),
                    el.attr("from").unwrap_or_default().to_string(),
                );
                let mut el = el;
                for sub in subs {
                    if !(sub.filter)(&el) {
                        continue;
                    }
                    let mut st = lock(&self.state);
                    if st.held.get(&sub.id).copied().unwrap_or(0) >= MAX_UNANSWERED {
                        // RFC 6120 §8.3.3.18: try again later.
                        out.push_back(iq_error(&el, "wait", "resource-constraint", None));
                        return;
                    }
                    match sub.tx.send(el) {
                        Ok(()) => {
                            if st.unanswered.insert(key, sub.id).is_none() {
                                *st.held.entry(sub.id).or_default() += 1;
                            }
                            return;
                        }
                        Err(e) => el = e.0,
                    }
                }
                out.push_back(iq_error(&el, "cancel", "service-unavailable", None));
            }
            // An IQ without a valid type (RFC 6120 §8.2.3): bad-request,
            // unless it is itself an error.
            _ => out.push_back(iq_error(&el, "modify", "bad-request", None)),
        }
    }

    /// What the channel answers itself: disco#info (XEP-0030, also for our
    /// XEP-0115 node), ping (XEP-0199), roster pushes (RFC 6121 §2.1.6).
    fn builtin_answer(&self, iq: &Element) -> Option<Element> {
        if iq.attr("type") == Some("get") && is_request_for(iq, "query", ns::DISCO_INFO) {
            let node = iq.children().next().and_then(|q| q.attr("node"));
            let our_node = format!("{}#{}", self.caps_node, self.caps_ver);
            return Some(match node {
                None => iq_result(iq, Some(self.disco.to_query(None))),
                Some(n) if n == our_node => iq_result(iq, Some(self.disco.to_query(Some(n)))),
                Some(_) => iq_error(iq, "cancel", "item-not-found", None),
            });
        }
        if iq.attr("type") == Some("get") && is_request_for(iq, "ping", PING) {
            return Some(iq_result(iq, None));
        }
        if iq.attr("type") == Some("set")
            && is_request_for(iq, "query", NS_ROSTER)
            && self.is_own_account(iq.attr("from"))
        {
            return Some(iq_result(iq, None));
        }
        None
    }

    fn on_presence(&self, el: &Element, out: &mut VecDeque<Element>) {
        let Some(from) = el.attr("from").and_then(|f| Jid::new(f).ok()) else {
            return;
        };
        let bare = from.to_bare();
        let mut changed = false;
        let mut st = lock(&self.state);
        match el.attr("type") {
            None => {
                if let Ok(full) = from.try_into_full() {
                    if full != self.jid {
                        st.presence
                            .entry(bare)
                            .or_default()
                            .insert(full, PeerCaps::from_presence(el));
                        changed = true;
                    }
                }
            }
            Some("unavailable") | Some("error") => match from.try_into_full() {
                Ok(full) => {
                    if let Some(m) = st.presence.get_mut(&bare) {
                        changed = m.remove(&full).is_some();
                        if m.is_empty() {
                            st.presence.remove(&bare);
                        }
                    }
                }
                Err(bare) => changed = st.presence.remove(&bare).is_some(),
            },
            // RFC 6121 §3.1.3: approve requests from the allow list, and ask
            // back so that presence flows both ways.
            Some("subscribe") if st.allow.contains(&bare) => {
                out.push_back(presence_of_type("subscribed", &bare));
                if st.asked.insert(bare.clone()) {
                    out.push_back(presence_of_type("subscribe", &bare));
                }
            }
            _ => {}
        }
        drop(st);
        if changed {
            self.presence_changed.send_modify(|n| *n += 1);
        }
    }
}

/// Why the stream broke, for a user: the usual ways a connection dies in
/// plain words, anything else as it is.
fn describe_read_error(e: &ReadError) -> String {
    match e {
        ReadError::HardError(io) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "the connection to the server broke off (closed without a goodbye)".into()
            }
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                "the connection to the server was reset".into()
            }
            std::io::ErrorKind::TimedOut => {
                "the server stopped answering (keepalive timed out)".into()
            }
            _ => format!("the connection to the server failed: {io}"),
        },
        e => format!("stream failed: {e}"),
    }
}

/// The connection task: the only owner of the stream.
async fn run(
    mut stream: RawStream,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    early: Vec<Element>,
) {
    let mut out = VecDeque::new();
    for el in early {
        shared.dispatch(el, &mut out);
    }
    let mut keepalive = 0u64;
    let mut closer = None;
    let mut local = false;
    let reason: String = 'conn: loop {
        while let Some(el) = out.pop_front() {
            if let Err(e) = stream.send(&el).await {
                break 'conn format!("write failed: {e}");
            }
        }
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Send(el, ack)) => {
                    let result = stream.send(&el).await;
                    let failed = result.as_ref().err().map(|e| format!("write failed: {e}"));
                    let _ = ack.send(result.map_err(|_| ChannelError::Closed));
                    if let Some(reason) = failed {
                        break 'conn reason;
                    }
                }
                Some(Command::Close(done)) => {
                    closer = Some(done);
                    local = true;
                    break 'conn "disconnected by us".to_string();
                }
                None => {
                    local = true;
                    break 'conn "the channel was dropped".to_string();
                }
            },
            item = stream.next() => match item {
                Some(Ok(el)) if el.ns() == NS_STREAMS && el.name() == "error" => {
                    break 'conn describe_stream_error(&el);
                }
                Some(Ok(el)) => shared.dispatch(el, &mut out),
                Some(Err(ReadError::SoftTimeout)) => {
                    // Silence: ask the server something (XEP-0199) before
                    // the hard timeout declares the stream dead.
                    keepalive += 1;
                    out.push_back(
                        Element::builder("iq", ns::JABBER_CLIENT)
                            .a("type", "get")
                            .a("id", format!("jet-keepalive-{keepalive}"))
                            .append(Element::builder("ping", PING).build())
                            .build(),
                    );
                }
                Some(Err(ReadError::StreamFooterReceived)) | None => {
                    break 'conn "the server closed the stream".to_string();
                }
                Some(Err(e)) => break 'conn describe_read_error(&e),
            },
        }
    };
    shared.close(reason);
    commands.close();
    while let Ok(cmd) = commands.try_recv() {
        match cmd {
            Command::Send(_, ack) => {
                let _ = ack.send(Err(ChannelError::Closed));
            }
            Command::Close(done) => {
                let _ = done.send(());
            }
        }
    }
    // Goodbye: unavailable presence (RFC 6121 §4.5), our stream footer and
    // TLS close_notify, then the server's footer (RFC 6120 §4.4). Bounded: a
    // dead server does not hold us.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if local {
            let bye = Element::builder("presence", ns::JABBER_CLIENT)
                .a("type", "unavailable")
                .build();
            let _ = stream.send(&bye).await;
        }
        if stream.shutdown().await.is_ok() {
            while let Some(item) = stream.next().await {
                match item {
                    Err(ReadError::StreamFooterReceived) | Err(ReadError::HardError(_)) => break,
                    _ => continue,
                }
            }
        }
    })
    .await;
    if let Some(done) = closer {
        let _ = done.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> FullJid {
        "romeo@jet.test/orchard".parse().unwrap()
    }

    #[test]
    fn answers_must_come_from_where_the_request_went() {
        let juliet: Jid = "juliet@jet.test/balcony".parse().unwrap();
        assert!(answer_from_ok(
            Some(&juliet),
            Some("juliet@jet.test/balcony"),
            &me()
        ));
        assert!(!answer_from_ok(
            Some(&juliet),
            Some("mallory@jet.test/x"),
            &me()
        ));
        assert!(!answer_from_ok(Some(&juliet), None, &me()));
        assert!(!answer_from_ok(Some(&juliet), Some("not a jid@@"), &me()));
        // To our server on our behalf.
        assert!(answer_from_ok(None, None, &me()));
        assert!(answer_from_ok(None, Some("romeo@jet.test"), &me()));
        assert!(!answer_from_ok(None, Some("juliet@jet.test"), &me()));
        let own: Jid = "romeo@jet.test".parse().unwrap();
        assert!(answer_from_ok(Some(&own), None, &me()));
        assert!(answer_from_ok(
            Some(&own),
            Some("romeo@jet.test/orchard"),
            &me()
        ));
        let server: Jid = "jet.test".parse().unwrap();
        assert!(answer_from_ok(Some(&server), Some("jet.test"), &me()));
        assert!(!answer_from_ok(Some(&server), None, &me()));
    }

    fn shared() -> Shared {
        let config = XmppConfig::new("romeo@jet.test".parse().unwrap(), "pw");
        let disco = config.disco_info();
        Shared {
            jid: me(),
            caps_ver: disco.caps_ver(),
            caps_node: "n".into(),
            disco,
            state: Mutex::new(State::default()),
            presence_changed: watch::Sender::new(0),
            ids: AtomicU64::new(0),
            id_prefix: "t".into(),
        }
    }

    fn request(n: usize) -> Element {
        Element::builder("iq", ns::JABBER_CLIENT)
            .a("type", "set")
            .a("id", format!("flood{n}"))
            .a("from", "mallory@jet.test/x")
            .a("to", "romeo@jet.test/orchard")
            .append(Element::builder("data", ns::IBB).build())
            .build()
    }

    /// A flood of IQs a subscriber does not answer stays bounded: beyond
    /// MAX_UNANSWERED they are refused (`wait`/`resource-constraint`), and
    /// every answer makes room for one more.
    #[test]
    fn unanswered_requests_are_bounded() {
        let sh = shared();
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&sh.state).subs.push(Sub {
            id: 1,
            filter: Arc::new(|iq: &Element| is_request_for(iq, "data", ns::IBB)),
            tx,
        });
        let mut out = VecDeque::new();
        let flood = MAX_UNANSWERED + 50;
        for n in 0..flood {
            sh.dispatch(request(n), &mut out);
        }
        let mut delivered = Vec::new();
        while let Ok(el) = rx.try_recv() {
            delivered.push(el);
        }
        assert_eq!(delivered.len(), MAX_UNANSWERED);
        assert_eq!(out.len(), 50);
        for e in &out {
            assert_eq!(e.attr("type"), Some("error"));
            let err = e.get_child("error", ns::JABBER_CLIENT).unwrap();
            assert_eq!(err.attr("type"), Some("wait"));
            assert!(err.children().any(|c| c.name() == "resource-constraint"));
        }
        // One answer, one more delivery; still refused after that.
        sh.answered(&iq_result(&delivered[0], None));
        out.clear();
        sh.dispatch(request(flood), &mut out);
        sh.dispatch(request(flood + 1), &mut out);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
        assert_eq!(out.len(), 1);
        // A subscription that ends frees what it held.
        drop(rx);
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&sh.state).subs.push(Sub {
            id: 2,
            filter: Arc::new(|_: &Element| true),
            tx,
        });
        out.clear();
        sh.dispatch(request(flood + 2), &mut out);
        assert!(rx.try_recv().is_ok(), "{out:?}");
        assert!(lock(&sh.state).unanswered.len() == 1);
    }

    #[test]
    fn broken_connections_are_described_plainly() {
        use std::io::{Error as IoError, ErrorKind};
        let eof = ReadError::HardError(IoError::new(
            ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: https://docs.rs/x",
        ));
        let d = describe_read_error(&eof);
        assert!(d.contains("broke off") && !d.contains("https://"), "{d}");
        let reset = ReadError::HardError(IoError::from(ErrorKind::ConnectionReset));
        assert!(describe_read_error(&reset).contains("reset"));
        let timeout = ReadError::HardError(IoError::from(ErrorKind::TimedOut));
        assert!(describe_read_error(&timeout).contains("stopped answering"));
        let other = ReadError::HardError(IoError::other("odd"));
        assert!(describe_read_error(&other).ends_with("odd"));
    }

    #[test]
    fn config_debug_hides_the_password() {
        let c = XmppConfig::new("romeo@jet.test".parse().unwrap(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn stanza_xml_is_serializable() {
        let p = presence_of_type("subscribe", &"juliet@jet.test".parse().unwrap());
        let s = p.to_xml_string();
        assert!(s.contains("type=\"subscribe\"") || s.contains("type='subscribe'"));
    }
}
