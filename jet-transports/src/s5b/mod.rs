//! Jingle SOCKS5 Bytestreams: XEP-0260 over XEP-0065.
//!
//! Negotiation (XEP-0260 §2):
//! 1. offer/answer: each side binds a listener per configured direct address
//!    (a minimal SOCKS5 server, see [`socks::server_handshake`]) and adds
//!    proxy candidates (configured, or discovered through the server's
//!    disco#items); both lists go into the `<transport/>` elements.
//! 2. `establish`: each side tries the peer's candidates, highest priority
//!    first, each bounded by [`S5bConfig::connect_timeout`], and sends
//!    `transport-info` with `<candidate-used cid/>` (first one that worked)
//!    or `<candidate-error/>`; then waits for the peer's.
//! 3. The nominated candidate with the higher priority wins; on equal
//!    priority the one nominated by the session initiator wins (§2.4). A
//!    winning proxy candidate is activated by the party that offered it,
//!    which then sends `<activated cid/>` (or `<proxy-error/>`) (§2.5).
//! 4. Both sides `candidate-error` → [`TransportError::NoCandidate`] on both
//!    sides. The session driver then falls back to IBB: the initiator sends
//!    `transport-replace` with [`IbbTransport::offer`](crate::IbbTransport)'s
//!    `<transport/>`, the responder answers with `transport-accept`
//!    (XEP-0260 §2.6), and both run `establish` of the IBB negotiation.
//!    [`is_fallback_error`] says when that is the right move. A failed
//!    proxy activation (`<proxy-error/>`) ends the same way.
//!
//! The SOCKS5 DST.ADDR towards a candidate is SHA-1(transport sid +
//! full JID of the party that offered the candidate + full JID of the other
//! party) ([`socks::dst_addr_hash`], XEP-0260 §2.2 and its note on
//! XEP-0065): Juliet connecting to Romeo's candidates hashes
//! `sid + romeo + juliet`, Romeo connecting to hers `sid + juliet + romeo`,
//! and both use the offerer's order at the offerer's proxy, where the
//! offerer activates with `<activate>` carrying the other party's full JID.
//! Our listeners accept exactly that hash and nothing else; the `dstaddr`
//! attribute a peer sends is informative and not used.
//!
//! Candidates from the peer may name any host and port: we only open a TCP
//! connection and speak SOCKS5 to it, at most
//! [`MAX_CANDIDATES`](element::MAX_CANDIDATES) times, each bounded by the
//! connect timeout.

pub mod element;
pub mod proxy;
pub mod socks;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jet_core::error::TransportError;
use jet_core::jid::Jid;
use jet_core::minidom::Element;
use jet_core::ns;
use jet_core::transport::{
    BoxedStream, Role, TransportAdapter, TransportContext, TransportNegotiation, TransportSignals,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::util::{random_id, within, AbortOnDrop};
use element::{protocol, Candidate, CandidateType, S5bInfo, S5bTransportElement};

/// A proxy to offer as a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The proxy's JID (e.g. `proxy.example.org`).
    pub jid: Jid,
    /// Its address; `None` asks the proxy (XEP-0065 §4 streamhost query).
    pub address: Option<(String, u16)>,
}

/// Settings of the S5B transport.
///
/// Direct candidates: we listen only on the addresses listed in
/// [`direct_addresses`](Self::direct_addresses). When the list is empty we
/// listen on `127.0.0.1` only, which works for two clients on one machine
/// and nowhere else: **set your LAN (or public) address** for real
/// transfers. The unspecified addresses `0.0.0.0` and `::` are refused, so
/// that a listener never opens on every interface by accident.
#[derive(Debug, Clone)]
pub struct S5bConfig {
    /// Addresses to listen on and offer as `direct` candidates, in order of
    /// preference (empty: 127.0.0.1, see above).
    pub direct_addresses: Vec<IpAddr>,
    /// Offer direct (and assisted) candidates at all. `false`: no listener,
    /// only proxy candidates, so the stream goes through a proxy or not at
    /// all (`jet --no-direct`). The peer's direct candidates are still
    /// tried.
    pub offer_direct: bool,
    /// Port for the listeners; 0 picks a free port per address.
    pub listen_port: u16,
    /// Host names or public addresses to offer as `assisted` candidates
    /// (XEP-0260 §2.2: e.g. a router port-forward or a dynamic DNS name),
    /// all with the port of the listener on the first direct address: forward
    /// that port (set [`listen_port`](Self::listen_port)) to it.
    pub assisted_hosts: Vec<String>,
    /// Proxies to offer as `proxy` candidates.
    pub proxies: Vec<ProxyConfig>,
    /// Also look for a proxy on our own server (disco#items of our domain).
    pub discover_proxy: bool,
    /// Per-candidate bound for TCP connect plus SOCKS5 handshake.
    pub connect_timeout: Duration,
    /// Bound for each wait on the peer's `transport-info`. The peer may try
    /// up to [`element::MAX_CANDIDATES`] of our candidates with its own
    /// connect timeout before it answers, so keep this well above that.
    pub negotiation_timeout: Duration,
    /// Bound for each IQ (disco, streamhost query, activation).
    pub iq_timeout: Duration,
}

impl Default for S5bConfig {
    fn default() -> Self {
        S5bConfig {
            direct_addresses: Vec::new(),
            offer_direct: true,
            listen_port: 0,
            assisted_hosts: Vec::new(),
            proxies: Vec::new(),
            discover_proxy: true,
            connect_timeout: Duration::from_secs(5),
            negotiation_timeout: Duration::from_secs(120),
            iq_timeout: Duration::from_secs(15),
        }
    }
}

/// The S5B [`TransportAdapter`].
#[derive(Debug, Clone, Default)]
pub struct S5bTransport {
    config: Arc<S5bConfig>,
    /// Proxies found per server domain: discovery runs once per adapter.
    discovered: Arc<tokio::sync::Mutex<HashMap<String, Vec<proxy::StreamHost>>>>,
}

impl S5bTransport {
    /// An adapter with these settings.
    pub fn new(config: S5bConfig) -> Self {
        S5bTransport {
            config: Arc::new(config),
            discovered: Arc::default(),
        }
    }

    /// The proxies of `ctx.local`'s server: cached, or discovered now
    /// (bounded by twice the IQ timeout in all). Failures mean "none".
    async fn discovered_proxies(&self, ctx: &TransportContext) -> Vec<proxy::StreamHost> {
        let domain = ctx.local.to_bare().domain().to_string();
        let mut cache = self.discovered.lock().await;
        if let Some(found) = cache.get(&domain) {
            return found.clone();
        }
        let jid = Jid::from(ctx.local.to_bare().domain().to_owned());
        let found = tokio::time::timeout(
            self.config.iq_timeout * 2,
            proxy::discover(&*ctx.channel, &jid, self.config.iq_timeout),
        )
        .await;
        match found {
            Ok(Ok(found)) => {
                cache.insert(domain, found.clone());
                found
            }
            // A server without disco or a slow one: no proxy this time,
            // try again next session.
            _ => Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &S5bConfig {
        &self.config
    }
}

/// Whether `err` from S5B `establish` means "no connection could be made":
/// the session driver should then `transport-replace` to IBB (XEP-0260 §2.6)
/// rather than end the session.
pub fn is_fallback_error(err: &TransportError) -> bool {
    matches!(err, TransportError::NoCandidate(_))
}

#[async_trait]
impl TransportAdapter for S5bTransport {
    fn namespace(&self) -> &'static str {
        ns::JINGLE_S5B
    }

    async fn offer(
        &self,
        ctx: &TransportContext,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        let sid = random_id(16)?;
        let n = S5bNegotiation::start(self, ctx.clone(), sid, None).await?;
        Ok(Box::new(n))
    }

    async fn answer(
        &self,
        ctx: &TransportContext,
        offer: &Element,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        let offer = S5bTransportElement::from_element(offer)?;
        let n = S5bNegotiation::start(self, ctx.clone(), offer.sid.clone(), Some(offer.candidates))
            .await?;
        Ok(Box::new(n))
    }
}

/// An accepted, hash-checked connection on one of our direct candidates.
type Accepted = (String, TcpStream);

/// One S5B transport being negotiated.
pub struct S5bNegotiation {
    ctx: TransportContext,
    config: Arc<S5bConfig>,
    sid: String,
    local: Vec<Candidate>,
    remote: Option<Vec<Candidate>>,
    accepted: mpsc::Receiver<Accepted>,
    /// Candidate cid → cid of the listener its connections arrive on
    /// (assisted candidates share the first direct listener).
    listener_of: HashMap<String, String>,
    _listeners: Vec<AbortOnDrop>,
}

impl S5bNegotiation {
    async fn start(
        transport: &S5bTransport,
        ctx: TransportContext,
        sid: String,
        remote: Option<Vec<Candidate>>,
    ) -> Result<Self, TransportError> {
        let config = transport.config.clone();
        let local_jid = ctx.local.to_string();
        let peer_jid = ctx.peer.to_string();
        // Peers connect to our candidates with SID + us + them.
        let expected = socks::dst_addr_hash(&sid, &local_jid, &peer_jid);
        let (tx, accepted) = mpsc::channel(16);
        let mut local = Vec::new();
        let mut listeners = Vec::new();
        let mut listener_of = HashMap::new();

        let addrs = if !config.offer_direct {
            Vec::new()
        } else if config.direct_addresses.is_empty() {
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        } else {
            config.direct_addresses.clone()
        };
        for (i, ip) in addrs.iter().enumerate() {
            if ip.is_unspecified() {
                return Err(TransportError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "refusing to listen on the unspecified address {ip}: \
                         configure the address of one interface"
                    ),
                )));
            }
            let listener = TcpListener::bind(SocketAddr::new(*ip, config.listen_port)).await?;
            let port = listener.local_addr()?.port();
            let cid = random_id(12)?;
            listener_of.insert(cid.clone(), cid.clone());
            local.push(Candidate {
                cid: cid.clone(),
                host: ip.to_string(),
                jid: ctx.local.clone().into(),
                port,
                priority: CandidateType::Direct.priority(u16::MAX - i.min(1000) as u16),
                type_: CandidateType::Direct,
            });
            listeners.push(AbortOnDrop(tokio::spawn(serve(
                listener,
                cid,
                expected.clone(),
                config.connect_timeout,
                tx.clone(),
            ))));
        }

        if let Some(first) = local.first().cloned() {
            for (i, host) in config.assisted_hosts.iter().enumerate() {
                let cid = random_id(12)?;
                listener_of.insert(cid.clone(), first.cid.clone());
                local.push(Candidate {
                    cid,
                    host: host.clone(),
                    port: first.port,
                    priority: CandidateType::Assisted.priority(u16::MAX - i.min(1000) as u16),
                    type_: CandidateType::Assisted,
                    ..first.clone()
                });
            }
        }

        // Proxies: configured ones first, then discovered ones.
        let mut hosts = Vec::new();
        for p in &config.proxies {
            match &p.address {
                Some((host, port)) => hosts.push(proxy::StreamHost {
                    jid: p.jid.clone(),
                    host: host.clone(),
                    port: *port,
                }),
                None => {
                    if let Ok(sh) =
                        proxy::query_streamhost(&*ctx.channel, &p.jid, config.iq_timeout).await
                    {
                        hosts.push(sh);
                    }
                }
            }
        }
        if config.discover_proxy {
            for sh in transport.discovered_proxies(&ctx).await {
                if !hosts.contains(&sh) {
                    hosts.push(sh);
                }
            }
        }
        for (i, sh) in hosts.into_iter().enumerate() {
            local.push(Candidate {
                cid: random_id(12)?,
                host: sh.host,
                jid: sh.jid,
                port: sh.port,
                priority: CandidateType::Proxy.priority(u16::MAX - i.min(1000) as u16),
                type_: CandidateType::Proxy,
            });
        }

        Ok(S5bNegotiation {
            ctx,
            config,
            sid,
            local,
            remote,
            accepted,
            listener_of,
            _listeners: listeners,
        })
    }

    /// The transport sid.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    async fn send_info(
        &self,
        signals: &mut dyn TransportSignals,
        info: S5bInfo,
    ) -> Result<(), TransportError> {
        within(
            self.config.iq_timeout,
            "sending S5B transport-info",
            signals.send_info(info.to_element(&self.sid)),
        )
        .await
    }

    async fn recv_info(
        &self,
        signals: &mut dyn TransportSignals,
        what: &str,
    ) -> Result<S5bInfo, TransportError> {
        within(self.config.negotiation_timeout, what, async {
            loop {
                let el = signals.recv_info().await?;
                match S5bInfo::from_element(&el, &self.sid)? {
                    S5bInfo::Other => continue,
                    info => return Ok(info),
                }
            }
        })
        .await
    }

    /// Tries the peer's candidates, highest priority first.
    async fn try_remote(&self) -> Option<(Candidate, TcpStream)> {
        let mut remote = self.remote.clone().unwrap_or_default();
        remote.sort_by_key(|c| std::cmp::Reverse(c.priority));
        // Towards the peer's candidates: SID + peer (the offerer) + us.
        let hash = socks::dst_addr_hash(
            &self.sid,
            &self.ctx.peer.to_string(),
            &self.ctx.local.to_string(),
        );
        for c in remote {
            let attempt = within(
                self.config.connect_timeout,
                "connecting to an S5B candidate",
                socks::connect(&c.host, c.port, &hash),
            )
            .await;
            if let Ok(stream) = attempt {
                return Some((c, stream));
            }
        }
        None
    }

    /// Waits for the connection the peer made to our candidate `cid`.
    async fn take_accepted(&mut self, cid: &str) -> Result<TcpStream, TransportError> {
        let cid = self
            .listener_of
            .get(cid)
            .cloned()
            .ok_or_else(|| protocol(format!("no listener behind candidate {cid:?}")))?;
        let cid = cid.as_str();
        let accepted = &mut self.accepted;
        within(
            self.config.connect_timeout,
            "the peer's connection to our candidate",
            async {
                loop {
                    match accepted.recv().await {
                        Some((c, s)) if c == cid => return Ok(s),
                        Some(_) => continue,
                        None => return Err(protocol("our S5B listener stopped")),
                    }
                }
            },
        )
        .await
    }
}

/// Accepts connections on one of our direct candidates, checks the SOCKS5
/// handshake and hands good ones over. Bad clients only cost a task bounded
/// by `handshake_timeout`.
async fn serve(
    listener: TcpListener,
    cid: String,
    expected: String,
    handshake_timeout: Duration,
    tx: mpsc::Sender<Accepted>,
) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut stream, _)) = accepted else {
                    // Out of file descriptors or similar: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (cid, expected, tx) = (cid.clone(), expected.clone(), tx.clone());
                // Keep at most a few handshakes in progress.
                if handshakes.len() >= 8 {
                    continue;
                }
                handshakes.spawn(async move {
                    let ok = tokio::time::timeout(
                        handshake_timeout,
                        socks::server_handshake(&mut stream, &expected),
                    )
                    .await;
                    if let Ok(Ok(())) = ok {
                        let _ = tx.try_send((cid, stream));
                    }
                });
            }
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
        }
    }
}

/// XEP-0260 §2.4, when both sides sent `candidate-used`: the nominated
/// candidate with the higher priority wins; on equal priorities the one
/// nominated by the session initiator. `ours` is the priority of the peer's
/// candidate we nominated, `theirs` that of our candidate the peer
/// nominated.
pub fn our_nomination_wins(ours: u32, theirs: u32, role: Role) -> bool {
    ours > theirs || (ours == theirs && role == Role::Initiator)
}

enum Winner {
    /// The peer's candidate we connected to.
    Ours(Candidate, TcpStream),
    /// Our candidate the peer connected to.
    Theirs(Candidate),
}

#[async_trait]
impl TransportNegotiation for S5bNegotiation {
    fn local_transport(&self) -> Element {
        S5bTransportElement {
            sid: self.sid.clone(),
            dstaddr: Some(socks::dst_addr_hash(
                &self.sid,
                &self.ctx.local.to_string(),
                &self.ctx.peer.to_string(),
            )),
            candidates: self.local.clone(),
        }
        .to_element()
    }

    fn set_remote(&mut self, remote: &Element) -> Result<(), TransportError> {
        let t = S5bTransportElement::from_element(remote)?;
        if t.sid != self.sid {
            return Err(protocol(format!(
                "the peer answered S5B sid {:?}, we offered {:?}",
                t.sid, self.sid
            )));
        }
        self.remote = Some(t.candidates);
        Ok(())
    }

    async fn establish(
        mut self: Box<Self>,
        signals: &mut dyn TransportSignals,
    ) -> Result<BoxedStream, TransportError> {
        if self.remote.is_none() {
            return Err(protocol(
                "S5B establish before the peer's <transport/> was known",
            ));
        }
        // §2.3: try the peer's candidates and tell the peer what we found.
        let ours = self.try_remote().await;
        let info = match &ours {
            Some((c, _)) => S5bInfo::CandidateUsed(c.cid.clone()),
            None => S5bInfo::CandidateError,
        };
        self.send_info(signals, info).await?;

        let theirs = match self.recv_info(signals, "the peer's candidate-used").await? {
            S5bInfo::CandidateUsed(cid) => Some(
                self.local
                    .iter()
                    .find(|c| c.cid == cid)
                    .cloned()
                    .ok_or_else(|| {
                        protocol(format!(
                            "the peer used candidate {cid:?}, which we never offered"
                        ))
                    })?,
            ),
            S5bInfo::CandidateError => None,
            other => {
                return Err(protocol(format!(
                    "expected candidate-used or candidate-error, got {other:?}"
                )))
            }
        };

        // §2.4: higher priority wins, the initiator's nomination on a tie.
        let winner = match (ours, theirs) {
            (None, None) => {
                return Err(TransportError::NoCandidate(
                    "neither side could connect to the other's S5B candidates".into(),
                ))
            }
            (Some((c, s)), None) => Winner::Ours(c, s),
            (None, Some(c)) => Winner::Theirs(c),
            (Some((ours, s)), Some(theirs)) => {
                if our_nomination_wins(ours.priority, theirs.priority, self.ctx.role) {
                    Winner::Ours(ours, s)
                } else {
                    Winner::Theirs(theirs)
                }
            }
        };

        match winner {
            Winner::Ours(c, stream) => {
                if c.type_ == CandidateType::Proxy {
                    // The peer offered the proxy: it connects and activates.
                    match self
                        .recv_info(signals, "the peer's proxy activation")
                        .await?
                    {
                        S5bInfo::Activated(cid) if cid == c.cid => {}
                        S5bInfo::ProxyError => {
                            return Err(TransportError::NoCandidate(
                                "the peer could not activate its proxy".into(),
                            ))
                        }
                        other => {
                            return Err(protocol(format!(
                                "expected activated for {:?}, got {other:?}",
                                c.cid
                            )))
                        }
                    }
                }
                Ok(Box::new(stream))
            }
            Winner::Theirs(c) if c.type_ == CandidateType::Proxy => {
                // §2.5: we offered the proxy, so we connect and activate.
                let hash = socks::dst_addr_hash(
                    &self.sid,
                    &self.ctx.local.to_string(),
                    &self.ctx.peer.to_string(),
                );
                let activated = async {
                    let stream = within(
                        self.config.connect_timeout,
                        "connecting to our proxy",
                        socks::connect(&c.host, c.port, &hash),
                    )
                    .await?;
                    proxy::activate(
                        &*self.ctx.channel,
                        &c.jid,
                        &self.sid,
                        &self.ctx.peer,
                        self.config.iq_timeout,
                    )
                    .await?;
                    Ok::<_, TransportError>(stream)
                }
                .await;
                match activated {
                    Ok(stream) => {
                        self.send_info(signals, S5bInfo::Activated(c.cid.clone()))
                            .await?;
                        Ok(Box::new(stream))
                    }
                    Err(e) => {
                        let _ = self.send_info(signals, S5bInfo::ProxyError).await;
                        Err(TransportError::NoCandidate(format!(
                            "could not activate proxy {}: {e}",
                            c.jid
                        )))
                    }
                }
            }
            Winner::Theirs(c) => {
                let stream = self.take_accepted(&c.cid).await?;
                Ok(Box::new(stream))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nomination_rules_of_xep_0260() {
        let (hi, lo) = (
            CandidateType::Direct.priority(2),
            CandidateType::Direct.priority(1),
        );
        for role in [Role::Initiator, Role::Responder] {
            assert!(our_nomination_wins(hi, lo, role));
            assert!(!our_nomination_wins(lo, hi, role));
        }
        assert!(our_nomination_wins(hi, hi, Role::Initiator));
        assert!(!our_nomination_wins(hi, hi, Role::Responder));
        // Both sides always agree on one winner.
        for (a, b) in [(hi, lo), (lo, hi), (hi, hi)] {
            assert_ne!(
                our_nomination_wins(a, b, Role::Initiator),
                our_nomination_wins(b, a, Role::Responder)
            );
        }
        // A direct candidate beats a proxy whatever the local preference.
        assert!(our_nomination_wins(
            CandidateType::Direct.priority(0),
            CandidateType::Proxy.priority(u16::MAX),
            Role::Responder
        ));
    }
}
