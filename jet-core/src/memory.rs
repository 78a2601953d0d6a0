//! An in-memory stanza router: several [`StanzaChannel`]s in one process.
//!
//! For unit tests and the embedded demo only; the server tests use Prosody.
//! Like a server, the router stamps `from` with the sender's full JID (so a
//! test peer cannot spoof it), answers IQs to offline JIDs with
//! `service-unavailable`, and lets tests watch or tamper with traffic through
//! a tap and an interceptor.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use jet_core::channel::{iq, iq_result, is_request_for, StanzaChannel};
//! use jet_core::memory::MemoryRouter;
//! use minidom::Element;
//!
//! let router = MemoryRouter::new();
//! let romeo = router.connect("romeo@montague.lit/orchard".parse().unwrap());
//! let juliet = router.connect("juliet@capulet.lit/balcony".parse().unwrap());
//! let mut requests = juliet.subscribe(Arc::new(|iq| is_request_for(iq, "ping", "urn:xmpp:ping")));
//! tokio::spawn(async move {
//!     let req = requests.recv().await.unwrap();
//!     juliet.send(iq_result(&req, None)).await.unwrap();
//! });
//! let ping = Element::builder("ping", "urn:xmpp:ping").build();
//! let to = "juliet@capulet.lit/balcony".parse().unwrap();
//! let answer = romeo.request(iq("get", "", None, &to, Some(ping))).await.unwrap();
//! assert_eq!(answer.attr("type"), Some("result"));
//! # });
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jid::{FullJid, Jid};
use minidom::Element;
use tokio::sync::{mpsc, oneshot};

use crate::channel::{iq_error, stanza_error_of, IqFilter, StanzaChannel};
use crate::error::ChannelError;
use crate::xml::ElementExt;

/// Watches every stanza the router delivers: `(from, stanza)`.
pub type Tap = Arc<dyn Fn(&FullJid, &Element) + Send + Sync>;
/// Sees (and may change) every stanza before delivery; `false` drops it.
pub type Interceptor = Arc<dyn Fn(&FullJid, &mut Element) -> bool + Send + Sync>;

#[derive(Default)]
struct Client {
    subs: Vec<(IqFilter, mpsc::UnboundedSender<Element>)>,
    pending: HashMap<String, oneshot::Sender<Element>>,
    other: Option<mpsc::UnboundedSender<Element>>,
}

#[derive(Default)]
struct State {
    clients: HashMap<FullJid, Client>,
    tap: Option<Tap>,
    interceptor: Option<Interceptor>,
}

/// The router. Cheap to clone; all clones are the same router.
#[derive(Clone, Default)]
pub struct MemoryRouter {
    state: Arc<Mutex<State>>,
    ids: Arc<AtomicU64>,
}

/// One connected account on a [`MemoryRouter`].
pub struct MemoryChannel {
    jid: FullJid,
    router: MemoryRouter,
}

impl MemoryRouter {
    /// A router with nobody connected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects `jid` (replacing an earlier connection of the same JID).
    pub fn connect(&self, jid: FullJid) -> Arc<MemoryChannel> {
        self.state
            .lock()
            .unwrap()
            .clients
            .insert(jid.clone(), Client::default());
        Arc::new(MemoryChannel {
            jid,
            router: self.clone(),
        })
    }

    /// Disconnects `jid`: its pending requests fail with `Closed`, its
    /// subscriptions end, and IQs to it are answered `service-unavailable`.
    pub fn disconnect(&self, jid: &FullJid) {
        self.state.lock().unwrap().clients.remove(jid);
    }

    /// Whether `jid` is connected.
    pub fn is_connected(&self, jid: &FullJid) -> bool {
        self.state.lock().unwrap().clients.contains_key(jid)
    }

    /// Calls `tap` for every stanza delivered.
    pub fn set_tap(&self, tap: Tap) {
        self.state.lock().unwrap().tap = Some(tap);
    }

    /// Lets `interceptor` change or drop every stanza before delivery.
    pub fn set_interceptor(&self, interceptor: Interceptor) {
        self.state.lock().unwrap().interceptor = Some(interceptor);
    }

    /// Receives the stanzas sent to `jid` that are neither IQ requests taken
    /// by a subscription nor IQ answers (messages, presence).
    pub fn other_stanzas(&self, jid: &FullJid) -> Option<mpsc::UnboundedReceiver<Element>> {
        let mut st = self.state.lock().unwrap();
        let client = st.clients.get_mut(jid)?;
        let (tx, rx) = mpsc::unbounded_channel();
        client.other = Some(tx);
        Some(rx)
    }

    fn next_id(&self) -> String {
        format!("mem{}", self.ids.fetch_add(1, Ordering::Relaxed))
    }

    /// Routes one stanza from `from`. Answers to undeliverable requests are
    /// routed back to the sender.
    fn route(&self, from: &FullJid, mut stanza: Element) {
        stanza.set_a("from", from.to_string());
        let mut st = self.state.lock().unwrap();
        if let Some(icpt) = st.interceptor.clone() {
            if !icpt(from, &mut stanza) {
                return;
            }
        }
        if let Some(tap) = st.tap.clone() {
            tap(from, &stanza);
        }
        let to: Option<FullJid> = stanza
            .attr("to")
            .and_then(|t| t.parse::<Jid>().ok())
            .and_then(|j| j.try_into_full().ok());
        let is_iq = stanza.name() == "iq";
        let type_ = stanza.attr("type").unwrap_or("").to_string();
        let bounce = |st: &mut State, stanza: &Element| {
            // The "server" answers for an unreachable recipient.
            let mut err = iq_error(stanza, "cancel", "service-unavailable", None);
            err.set_a("from", stanza.attr("to").unwrap_or_default());
            if let Some(client) = st.clients.get_mut(from) {
                if let Some(tx) = client.pending.remove(stanza.attr("id").unwrap_or_default()) {
                    let _ = tx.send(err);
                }
            }
        };
        let Some(to) = to else {
            if is_iq && (type_ == "get" || type_ == "set") {
                bounce(&mut st, &stanza);
            }
            return;
        };
        let Some(client) = st.clients.get_mut(&to) else {
            if is_iq && (type_ == "get" || type_ == "set") {
                bounce(&mut st, &stanza);
            }
            return;
        };
        if is_iq && (type_ == "result" || type_ == "error") {
            let id = stanza.attr("id").unwrap_or_default().to_string();
            if let Some(tx) = client.pending.remove(&id) {
                let _ = tx.send(stanza);
            }
            return;
        }
        if is_iq && (type_ == "get" || type_ == "set") {
            client.subs.retain(|(_, tx)| !tx.is_closed());
            let target = client.subs.iter().find(|(f, _)| f(&stanza));
            match target {
                Some((_, tx)) => {
                    let _ = tx.send(stanza);
                }
                None => {
                    let mut err = iq_error(&stanza, "cancel", "service-unavailable", None);
                    err.set_a("from", to.to_string());
                    drop(st);
                    // Answer on the recipient's behalf.
                    self.route(&to, err);
                }
            }
            return;
        }
        if let Some(tx) = &client.other {
            let _ = tx.send(stanza);
        }
    }
}

#[async_trait]
impl StanzaChannel for MemoryChannel {
    fn local_jid(&self) -> FullJid {
        self.jid.clone()
    }

    async fn request(&self, mut iq: Element) -> Result<Element, ChannelError> {
        let id = match iq.attr("id") {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => {
                let id = self.router.next_id();
                iq.set_a("id", id.clone());
                id
            }
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.router.state.lock().unwrap();
            let client = st.clients.get_mut(&self.jid).ok_or(ChannelError::Closed)?;
            client.pending.insert(id, tx);
        }
        self.router.route(&self.jid, iq);
        let answer = rx.await.map_err(|_| ChannelError::Closed)?;
        if answer.attr("type") == Some("error") {
            return Err(stanza_error_of(&answer));
        }
        Ok(answer)
    }

    async fn send(&self, stanza: Element) -> Result<(), ChannelError> {
        if !self.router.is_connected(&self.jid) {
            return Err(ChannelError::Closed);
        }
        self.router.route(&self.jid, stanza);
        Ok(())
    }

    fn subscribe(&self, filter: IqFilter) -> mpsc::UnboundedReceiver<Element> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(client) = self.router.state.lock().unwrap().clients.get_mut(&self.jid) {
            client.subs.push((filter, tx));
        }
        rx
    }
}

/// `transport-info` passed straight between the two ends of
/// [`connected_pair`].
#[cfg(feature = "tokio")]
struct DirectSignals {
    tx: mpsc::UnboundedSender<Element>,
    rx: mpsc::UnboundedReceiver<Element>,
}

#[cfg(feature = "tokio")]
#[async_trait]
impl crate::transport::TransportSignals for DirectSignals {
    async fn send_info(&mut self, t: Element) -> Result<(), crate::error::TransportError> {
        self.tx
            .send(t)
            .map_err(|_| crate::error::TransportError::Closed("the other end is gone".into()))
    }
    async fn recv_info(&mut self) -> Result<Element, crate::error::TransportError> {
        self.rx
            .recv()
            .await
            .ok_or_else(|| crate::error::TransportError::Closed("the other end is gone".into()))
    }
}

/// Negotiates and establishes `adapter`'s transport between two parties of
/// a fresh [`MemoryRouter`] (`romeo@montague.lit/orchard`, the initiator and
/// sender, and `juliet@capulet.lit/balcony`) the way a session does: offer,
/// answer, then both ends establish at once, their `transport-info` passed
/// directly. No Jingle session and no JET: the raw byte streams, as
/// `(initiator's end, responder's end)`. For benchmarks and tests of
/// transports (`jet bench --transfer`, the criterion benches); wrap the ends
/// in [`crate::layer::JetStream`] to measure a cipher over them.
#[cfg(feature = "tokio")]
pub async fn connected_pair(
    adapter: &dyn crate::transport::TransportAdapter,
) -> Result<
    (crate::transport::BoxedStream, crate::transport::BoxedStream),
    crate::error::TransportError,
> {
    use crate::transport::{Role, TransportContext};
    let router = MemoryRouter::new();
    let romeo: FullJid = "romeo@montague.lit/orchard".parse().expect("a full JID");
    let juliet: FullJid = "juliet@capulet.lit/balcony".parse().expect("a full JID");
    let ctx = |me: &FullJid, peer: &FullJid, role| TransportContext {
        channel: router.connect(me.clone()),
        local: me.clone(),
        peer: peer.clone(),
        role,
        session_sid: "pair".into(),
        content_name: "file".into(),
        we_send: role == Role::Initiator,
    };
    let (a, b) = (
        ctx(&romeo, &juliet, Role::Initiator),
        ctx(&juliet, &romeo, Role::Responder),
    );
    let mut offer = adapter.offer(&a).await?;
    let answer = adapter.answer(&b, &offer.local_transport()).await?;
    offer.set_remote(&answer.local_transport())?;
    let (t1, r1) = mpsc::unbounded_channel();
    let (t2, r2) = mpsc::unbounded_channel();
    let mut s1 = DirectSignals { tx: t1, rx: r2 };
    let mut s2 = DirectSignals { tx: t2, rx: r1 };
    let (x, y) = tokio::join!(offer.establish(&mut s1), answer.establish(&mut s2));
    Ok((x?, y?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{iq, iq_result, is_request_for};

    fn jid(s: &str) -> FullJid {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn request_reaches_subscriber_and_answer_returns() {
        let router = MemoryRouter::new();
        let a = router.connect(jid("a@x/1"));
        let b = router.connect(jid("b@y/2"));
        let mut sub = b.subscribe(Arc::new(|e| is_request_for(e, "q", "urn:test")));
        let to: Jid = jid("b@y/2").into();
        let req = iq(
            "get",
            "",
            None,
            &to,
            Some(Element::builder("q", "urn:test").build()),
        );
        let task = tokio::spawn(async move {
            let got = sub.recv().await.unwrap();
            // The router stamped the real sender.
            assert_eq!(got.attr("from"), Some("a@x/1"));
            b.send(iq_result(&got, None)).await.unwrap();
        });
        let ans = a.request(req).await.unwrap();
        assert_eq!(ans.attr("type"), Some("result"));
        assert_eq!(ans.attr("from"), Some("b@y/2"));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn unhandled_and_offline_requests_get_service_unavailable() {
        let router = MemoryRouter::new();
        let a = router.connect(jid("a@x/1"));
        let _b = router.connect(jid("b@y/2"));
        for to in ["b@y/2", "c@z/3"] {
            let to: Jid = to.parse().unwrap();
            let req = iq(
                "get",
                "",
                None,
                &to,
                Some(Element::builder("q", "urn:test").build()),
            );
            match a.request(req).await {
                Err(ChannelError::StanzaError { condition, .. }) => {
                    assert_eq!(condition, "service-unavailable")
                }
                other => panic!("expected service-unavailable, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn spoofed_from_is_overwritten_and_disconnect_closes() {
        let router = MemoryRouter::new();
        let a = router.connect(jid("a@x/1"));
        let b = router.connect(jid("b@y/2"));
        let mut sub = b.subscribe(Arc::new(|_| true));
        let to: Jid = jid("b@y/2").into();
        let from: Jid = jid("mallory@evil/1").into();
        let req = iq("set", "x1", Some(&from), &to, None);
        a.send(req).await.unwrap();
        assert_eq!(sub.recv().await.unwrap().attr("from"), Some("a@x/1"));
        router.disconnect(&jid("b@y/2"));
        assert!(sub.recv().await.is_none());
        assert!(b.send(iq("get", "y", None, &from, None)).await.is_err());
    }
}
