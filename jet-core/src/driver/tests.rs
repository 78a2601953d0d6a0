//! Driver tests over the in-memory router, with a TEST-ONLY transport
//! (an in-process pipe) and the test-only cipher and envelope of
//! `testkit`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::memory::MemoryRouter;
use crate::session::Offer;
use crate::testkit::{Ending, PipeAdapter, TestEnvelope, Wire, PIPE_NS, TEST_XOR};
use crate::xml::BuilderExt;

const SINK_NS: &str = "urn:jet:test:sink";

/// TEST-ONLY transport that never connects (like S5B when both sides
/// report candidate-error), to exercise the transport-replace fallback.
struct FailAdapter;

const FAIL_NS: &str = "urn:jet:test:fail-transport";

struct FailNegotiation;

#[async_trait]
impl TransportAdapter for FailAdapter {
    fn namespace(&self) -> &'static str {
        FAIL_NS
    }
    async fn offer(
        &self,
        _ctx: &TransportContext,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        Ok(Box::new(FailNegotiation))
    }
    async fn answer(
        &self,
        _ctx: &TransportContext,
        _offer: &Element,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        Ok(Box::new(FailNegotiation))
    }
}

#[async_trait]
impl TransportNegotiation for FailNegotiation {
    fn local_transport(&self) -> Element {
        Element::builder("transport", FAIL_NS).build()
    }
    fn set_remote(&mut self, _remote: &Element) -> Result<(), TransportError> {
        Ok(())
    }
    async fn establish(
        self: Box<Self>,
        _signals: &mut dyn TransportSignals,
    ) -> Result<BoxedStream, TransportError> {
        Err(TransportError::NoCandidate(
            "test transport never connects".into(),
        ))
    }
}

/// Initiator sends `payload`; responder reads it to the authenticated end.
struct Sink {
    payload: Vec<u8>,
    received: Received,
}

#[async_trait]
impl Application for Sink {
    /// The bytes it sent or read.
    type Output = usize;

    fn expected_len(&self, ctx: &AppContext) -> Option<u64> {
        ctx.description.attr("size").and_then(|s| s.parse().ok())
    }
    async fn run(&self, ctx: AppContext, mut stream: BoxedStream) -> Result<usize, Error> {
        if ctx.we_send {
            stream.write_all(&self.payload).await?;
            stream.shutdown().await?;
            Ok(self.payload.len())
        } else {
            let mut got = Vec::new();
            // Ends only once the stream authenticated.
            let n = stream.read_to_end(&mut got).await?;
            *self.received.lock().unwrap() = Some(got);
            Ok(n)
        }
    }
}

impl Initiator for Sink {
    fn offer(&self) -> Result<Offer, Error> {
        Ok(Offer {
            description: Element::builder("description", SINK_NS)
                .a("size", self.payload.len())
                .build(),
            senders: Senders::Initiator,
        })
    }
}

impl Acceptor for Sink {
    fn namespace(&self) -> &'static str {
        SINK_NS
    }

    fn decide(&self, description: &Element, _senders: Senders) -> Decision {
        match description
            .attr("size")
            .and_then(|s| s.parse::<usize>().ok())
        {
            Some(n) if n <= 1 << 20 => Decision::Accept(description.clone()),
            _ => Decision::Reject(Reason::Decline, Some("too big".into())),
        }
    }
}

struct World {
    router: MemoryRouter,
    romeo: Driver,
    romeo_incoming: mpsc::UnboundedReceiver<Incoming>,
    juliet_incoming: mpsc::UnboundedReceiver<Incoming>,
    _juliet: Driver,
    adapter: PipeAdapter,
    log: Arc<Mutex<Vec<Element>>>,
}

fn romeo() -> FullJid {
    "romeo@montague.lit/orchard".parse().unwrap()
}

fn juliet() -> FullJid {
    "juliet@capulet.lit/balcony".parse().unwrap()
}

fn jet(author: &FullJid) -> JetConfig {
    JetConfig::new(
        vec![&TEST_XOR],
        vec![Arc::new(TestEnvelope {
            author: author.to_bare(),
        })],
    )
}

fn world(romeo_author: FullJid, flip_at: Option<usize>) -> World {
    world_with(romeo_author, flip_at, false, false)
}

/// `romeo_fail_first` / `juliet_fail_first`: put the never-connecting
/// transport first (Juliet then has ONLY that one, to test rejection).
fn world_with(
    romeo_author: FullJid,
    flip_at: Option<usize>,
    romeo_fail_first: bool,
    juliet_only_fail: bool,
) -> World {
    world_configured(
        romeo_author,
        flip_at,
        romeo_fail_first,
        juliet_only_fail,
        |_| {},
    )
}

/// `world_with`, and `juliet_config` adjusts Juliet's driver settings.
fn world_configured(
    romeo_author: FullJid,
    flip_at: Option<usize>,
    romeo_fail_first: bool,
    juliet_only_fail: bool,
    juliet_config: impl FnOnce(&mut DriverConfig),
) -> World {
    let router = MemoryRouter::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    router.set_tap(Arc::new(move |_, st| l.lock().unwrap().push(st.clone())));
    let adapter = PipeAdapter::new().with_wire(flip_at.map_or(Wire::Honest, Wire::Flip));
    let config = DriverConfig {
        establish_timeout: Duration::from_secs(5),
        finish_timeout: Duration::from_secs(5),
        ..DriverConfig::default()
    };
    let pipe: Arc<dyn TransportAdapter> = Arc::new(adapter.clone());
    let fail: Arc<dyn TransportAdapter> = Arc::new(FailAdapter);
    let romeo_transports = if romeo_fail_first {
        vec![fail.clone(), pipe.clone()]
    } else {
        vec![pipe.clone()]
    };
    let juliet_transports = if juliet_only_fail {
        vec![fail]
    } else {
        vec![fail, pipe]
    };
    let (romeo_driver, romeo_incoming) = Driver::start(
        router.connect(romeo()),
        jet(&romeo_author),
        romeo_transports,
        config.clone(),
    );
    let mut config = config;
    juliet_config(&mut config);
    let (juliet_driver, juliet_incoming) = Driver::start(
        router.connect(juliet()),
        jet(&juliet()),
        juliet_transports,
        config,
    );
    World {
        router,
        romeo: romeo_driver,
        romeo_incoming,
        juliet_incoming,
        _juliet: juliet_driver,
        adapter,
        log,
    }
}

/// What the receiving application got (set only once the stream authenticated).
type Received = Arc<Mutex<Option<Vec<u8>>>>;

fn sink(payload: &[u8]) -> (Arc<Sink>, Received) {
    let received = Arc::new(Mutex::new(None));
    (
        Arc::new(Sink {
            payload: payload.to_vec(),
            received: received.clone(),
        }),
        received,
    )
}

/// Runs both sides, bounded in time.
async fn run_both(w: &mut World, app: Arc<Sink>) -> (Result<usize, Error>, Result<usize, Error>) {
    let mut incoming = std::mem::replace(&mut w.juliet_incoming, mpsc::unbounded_channel().1);
    let app2 = app.clone();
    let juliet_side = tokio::spawn(async move {
        let inc = incoming.recv().await.expect("an incoming session");
        assert_eq!(inc.peer, romeo());
        inc.accept(app2).await
    });
    let romeo_side = w.romeo.initiate(juliet(), app);
    let both = async { (romeo_side.await, juliet_side.await.unwrap()) };
    tokio::time::timeout(Duration::from_secs(20), both)
        .await
        .expect("the session must end by itself")
}

fn terminate_reasons(log: &Arc<Mutex<Vec<Element>>>, from: &FullJid) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|s| s.attr("from") == Some(from.to_string().as_str()))
        .filter_map(|s| s.get_child("jingle", ns::JINGLE))
        .filter(|j| j.attr("action") == Some("session-terminate"))
        .filter_map(|j| j.get_child("reason", ns::JINGLE))
        .filter_map(|r| r.children().find(|c| c.name() != "text"))
        .map(|c| c.name().to_string())
        .collect()
}

#[tokio::test]
async fn encrypted_transfer_end_to_end() {
    let mut w = world(romeo(), None);
    let payload: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let (app, received) = sink(&payload);
    let (r, j) = run_both(&mut w, app).await;
    r.unwrap();
    j.unwrap();
    assert_eq!(received.lock().unwrap().as_deref(), Some(&payload[..]));
    // What travelled was not the plaintext, and carried the tag.
    let wire = w.adapter.seen.lock().unwrap().clone();
    assert_eq!(wire.len(), payload.len() + TEST_XOR.tag_len());
    assert_ne!(&wire[..payload.len()], &payload[..]);
    // The receiver ended the session with success; the initiate carried JET.
    assert_eq!(terminate_reasons(&w.log, &juliet()), ["success"]);
    assert!(terminate_reasons(&w.log, &romeo()).is_empty());
    let log = w.log.lock().unwrap();
    let initiate = log
        .iter()
        .filter_map(|s| s.get_child("jingle", ns::JINGLE))
        .find(|j| j.attr("action") == Some("session-initiate"))
        .unwrap();
    let sec = initiate
        .get_child("content", ns::JINGLE)
        .and_then(|c| c.get_child("security", ns::JET))
        .expect("the offer carries <security/>");
    assert_eq!(sec.attr("name"), Some("jet"));
    // The transport signalled through transport-info.
    assert!(log.iter().any(|s| s
        .get_child("jingle", ns::JINGLE)
        .is_some_and(|j| j.attr("action") == Some("transport-info"))));
    drop(log);
    assert!(w.router.is_connected(&romeo()));
}

/// A sender that never closes the stream (as Dino and Conversations do):
/// the receiver ends at the announced size and the tag, says `success`,
/// and the sender gets that verdict; nobody waits out a timeout.
#[tokio::test]
async fn a_sender_that_keeps_the_stream_open_still_finishes() {
    let mut w = world(romeo(), None);
    w.adapter.set_ending(Ending::NeverCloses);
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let (app, received) = sink(&payload);
    let (r, j) = run_both(&mut w, app).await;
    j.unwrap();
    r.unwrap();
    assert_eq!(received.lock().unwrap().as_deref(), Some(&payload[..]));
    assert_eq!(terminate_reasons(&w.log, &juliet()), ["success"]);
}

/// The receiver has everything, ends the session with `success` and
/// drops its side; the sender's last transport step (an IBB `<close/>`)
/// is then refused. The receiver's verdict is what counts: success.
#[tokio::test]
async fn a_refused_close_after_the_receivers_success_is_success() {
    let mut w = world(romeo(), None);
    w.adapter.set_ending(Ending::CloseRefused);
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 17 % 256) as u8).collect();
    let (app, received) = sink(&payload);
    let (r, j) = run_both(&mut w, app).await;
    j.unwrap();
    // The close error was held back: `run` returned its value, and the
    // driver returns it on the receiver's `success`.
    assert_eq!(r.unwrap(), payload.len());
    assert_eq!(received.lock().unwrap().as_deref(), Some(&payload[..]));
}

#[tokio::test]
async fn envelope_from_a_third_party_is_refused() {
    let mut w = world("mallory@evil.lit/x".parse().unwrap(), None);
    let (app, received) = sink(b"secret plans");
    let (r, j) = run_both(&mut w, app).await;
    assert!(matches!(j, Err(Error::SenderMismatch { .. })), "{j:?}");
    match r {
        Err(Error::Terminated { reason, .. }) => assert_eq!(reason, "security-error"),
        other => panic!("expected security-error, got {other:?}"),
    }
    assert_eq!(terminate_reasons(&w.log, &juliet()), ["security-error"]);
    assert!(received.lock().unwrap().is_none());
    // No byte went over the transport.
    assert!(w.adapter.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn tampered_ciphertext_ends_with_security_error() {
    let mut w = world(romeo(), Some(10));
    let (app, received) = sink(&[0x5a; 1000]);
    let (r, j) = run_both(&mut w, app).await;
    assert!(
        matches!(
            j,
            Err(Error::Cipher(crate::error::CipherError::Authentication))
        ),
        "{j:?}"
    );
    // The sender learns it from the receiver's session-terminate.
    match r {
        Err(Error::Terminated { reason, .. }) => assert_eq!(reason, "security-error"),
        other => panic!("expected security-error, got {other:?}"),
    }
    assert_eq!(terminate_reasons(&w.log, &juliet()), ["security-error"]);
    // The application never got the (unauthenticated) bytes as a result.
    assert!(received.lock().unwrap().is_none());
}

#[tokio::test]
async fn application_decline_reaches_the_initiator() {
    let mut w = world(romeo(), None);
    let (app, _) = sink(&vec![1u8; (1 << 20) + 1]);
    let (r, j) = run_both(&mut w, app).await;
    match j {
        Err(Error::Refused { reason, text }) => {
            assert_eq!(reason, "decline");
            assert_eq!(text.as_deref(), Some("too big"));
        }
        other => panic!("expected our refusal, got {other:?}"),
    }
    // The initiator hears why.
    match r {
        Err(Error::Terminated { reason, text }) => {
            assert_eq!(reason, "decline");
            assert_eq!(text.as_deref(), Some("too big"));
        }
        other => panic!("expected the peer's decline with its text, got {other:?}"),
    }
    assert_eq!(terminate_reasons(&w.log, &juliet()), ["decline"]);
}

#[tokio::test]
async fn offline_peer_fails_cleanly() {
    let w = world(romeo(), None);
    let (app, _) = sink(b"x");
    let gone: FullJid = "juliet@capulet.lit/gone".parse().unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), w.romeo.initiate(gone, app))
        .await
        .expect("bounded");
    match r {
        Err(Error::Terminated { reason, text }) => {
            assert_eq!(reason, "connectivity-error");
            assert!(text.unwrap().contains("service-unavailable"));
        }
        other => panic!("{other:?}"),
    }
}

fn actions(log: &Arc<Mutex<Vec<Element>>>, from: &FullJid) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|s| s.attr("from") == Some(from.to_string().as_str()))
        .filter_map(|s| s.get_child("jingle", ns::JINGLE))
        .map(|j| j.attr("action").unwrap_or_default().to_string())
        .collect()
}

/// Offering only what the peer lists: Romeo prefers the never-connecting
/// transport, but the peer lists only the pipe, so the pipe is offered
/// first and no fallback is needed; a peer with none of ours gets no
/// session at all.
#[tokio::test]
async fn the_initiator_offers_only_the_peers_transports() {
    let mut w = world_with(romeo(), None, true, false);
    let payload = b"straight over the transport the peer has".to_vec();
    let (app, received) = sink(&payload);
    let mut incoming = std::mem::replace(&mut w.juliet_incoming, mpsc::unbounded_channel().1);
    let app2 = app.clone();
    let juliet_side =
        tokio::spawn(async move { incoming.recv().await.unwrap().accept(app2).await });
    let peer_has = vec![PIPE_NS.to_string()];
    tokio::time::timeout(
        Duration::from_secs(20),
        w.romeo
            .initiate_over(juliet(), app.clone(), Some(&peer_has)),
    )
    .await
    .unwrap()
    .unwrap();
    juliet_side.await.unwrap().unwrap();
    assert_eq!(received.lock().unwrap().as_deref(), Some(&payload[..]));
    assert_eq!(actions(&w.log, &romeo()), ["session-initiate"]);

    let none: Vec<String> = vec!["urn:xmpp:jingle:transports:other:0".into()];
    let e = w
        .romeo
        .initiate_over(juliet(), app, Some(&none))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("supports none of the transports"),
        "{e}"
    );
    assert_eq!(actions(&w.log, &romeo()), ["session-initiate"]);
}

#[tokio::test]
async fn failed_transport_falls_back_with_transport_replace() {
    let mut w = world_with(romeo(), None, true, false);
    let payload = b"over the fallback transport".to_vec();
    let (app, received) = sink(&payload);
    let (r, j) = run_both(&mut w, app).await;
    r.unwrap();
    j.unwrap();
    assert_eq!(received.lock().unwrap().as_deref(), Some(&payload[..]));
    assert_eq!(
        actions(&w.log, &romeo()),
        ["session-initiate", "transport-replace"]
    );
    assert_eq!(
        actions(&w.log, &juliet()),
        [
            "session-accept",
            "transport-accept",
            "transport-info",
            "session-terminate"
        ]
    );
    assert_eq!(terminate_reasons(&w.log, &juliet()), ["success"]);
    // Still encrypted after the switch.
    let wire = w.adapter.seen.lock().unwrap().clone();
    assert_eq!(wire.len(), payload.len() + TEST_XOR.tag_len());
    assert_ne!(&wire[..payload.len()], &payload[..]);
}

#[tokio::test]
async fn rejected_fallback_ends_with_an_error_on_both_sides() {
    let mut w = world_with(romeo(), None, true, true);
    let (app, received) = sink(b"nowhere to go");
    let (r, j) = run_both(&mut w, app).await;
    assert!(r.is_err(), "{r:?}");
    assert!(j.is_err(), "{j:?}");
    assert!(received.lock().unwrap().is_none());
    assert!(actions(&w.log, &juliet()).contains(&"transport-reject".to_string()));
    let mut reasons = terminate_reasons(&w.log, &romeo());
    reasons.extend(terminate_reasons(&w.log, &juliet()));
    assert!(
        reasons
            .iter()
            .all(|r| r == "connectivity-error" || r == "failed-transport" || r == "general-error"),
        "{reasons:?}"
    );
    assert!(!reasons.is_empty());
}

#[tokio::test]
async fn dropping_an_incoming_session_declines_it() {
    let mut w = world(romeo(), None);
    let (app, _) = sink(b"anyone?");
    let mut incoming = std::mem::replace(&mut w.juliet_incoming, mpsc::unbounded_channel().1);
    let juliet_side = tokio::spawn(async move {
        let inc = incoming.recv().await.expect("an incoming session");
        drop(inc);
        incoming
    });
    let r = tokio::time::timeout(Duration::from_secs(10), w.romeo.initiate(juliet(), app))
        .await
        .expect("bounded");
    assert!(matches!(r, Err(Error::Declined)), "{r:?}");
    assert_eq!(terminate_reasons(&w.log, &juliet()), ["decline"]);
    drop(juliet_side.await.unwrap());
}

#[tokio::test]
async fn cancelled_initiate_sends_cancel() {
    let mut w = world(romeo(), None);
    let (app, _) = sink(b"never mind");
    let mut incoming = std::mem::replace(&mut w.juliet_incoming, mpsc::unbounded_channel().1);
    // Juliet holds the offer without answering; Romeo gives up after 200 ms.
    let held = tokio::spawn(async move { incoming.recv().await });
    let r = tokio::time::timeout(Duration::from_millis(200), w.romeo.initiate(juliet(), app)).await;
    assert!(r.is_err(), "the initiate must still be waiting");
    let inc = held.await.unwrap().expect("an incoming session");
    // Juliet's side learns of the cancel.
    let mut live = inc.live;
    let ev = tokio::time::timeout(Duration::from_secs(5), live.next_event())
        .await
        .expect("bounded");
    assert!(
        matches!(
            ev,
            Some(Event::Terminated {
                reason: Reason::Cancel,
                by_peer: true,
                ..
            })
        ),
        "{ev:?}"
    );
    assert_eq!(terminate_reasons(&w.log, &romeo()), ["cancel"]);
}

/// Sends `pieces` KiB, one per `pause`, then finishes, or (with `hang`)
/// waits forever without closing; the receiving side counts what it reads.
struct Trickle {
    pieces: usize,
    pause: Duration,
    hang: bool,
    got: Arc<AtomicU64>,
}

impl Trickle {
    fn new(pieces: usize, pause: Duration, hang: bool) -> Arc<Self> {
        Arc::new(Trickle {
            pieces,
            pause,
            hang,
            got: Arc::new(AtomicU64::new(0)),
        })
    }
}

#[async_trait]
impl Application for Trickle {
    type Output = ();

    async fn run(&self, ctx: AppContext, mut stream: BoxedStream) -> Result<(), Error> {
        if ctx.we_send {
            for _ in 0..self.pieces {
                stream.write_all(&[0x42; 1024]).await?;
                stream.flush().await?;
                tokio::time::sleep(self.pause).await;
            }
            if self.hang {
                std::future::pending::<()>().await;
            }
            stream.shutdown().await?;
        } else {
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                self.got.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

impl Initiator for Trickle {
    fn offer(&self) -> Result<Offer, Error> {
        Ok(Offer {
            description: Element::builder("description", SINK_NS).build(),
            senders: Senders::Initiator,
        })
    }
}

impl Acceptor for Trickle {
    fn namespace(&self) -> &'static str {
        SINK_NS
    }

    fn decide(&self, description: &Element, _senders: Senders) -> Decision {
        Decision::Accept(description.clone())
    }
}

/// Waits (bounded) until `got` reaches `n`.
async fn until_received(got: &AtomicU64, n: u64) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while got.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("data must flow");
}

/// The sender's stanza channel closes mid-transfer while the data goes on
/// a transport of its own (like S5B): the sender stops at once with
/// `ChannelError::Closed` instead of pushing data it can never get a
/// verdict for; the receiver sees the stream end early and fails. Romeo's
/// driver starts nothing new and its stream of incoming sessions ends.
#[tokio::test]
async fn a_lost_channel_ends_the_running_session_at_once() {
    let mut w = world(romeo(), None);
    // 100 s of data unless something stops it.
    let app = Trickle::new(10_000, Duration::from_millis(10), false);
    let mut incoming = std::mem::replace(&mut w.juliet_incoming, mpsc::unbounded_channel().1);
    let app2 = app.clone();
    let juliet_side = tokio::spawn(async move {
        let inc = incoming.recv().await.expect("an incoming session");
        inc.accept(app2).await
    });
    let romeo_side = {
        let (driver, app) = (w.romeo.clone(), app.clone());
        tokio::spawn(async move { driver.initiate(juliet(), app).await })
    };
    until_received(&app.got, 8 * 1024).await;
    w.router.disconnect(&romeo());
    let r = tokio::time::timeout(Duration::from_secs(5), romeo_side)
        .await
        .expect("the sender must stop at once")
        .unwrap();
    assert!(
        matches!(r, Err(Error::Channel(ChannelError::Closed))),
        "{r:?}"
    );
    let j = tokio::time::timeout(Duration::from_secs(10), juliet_side)
        .await
        .expect("the receiver must end by itself")
        .unwrap();
    assert!(j.is_err(), "a cut stream cannot end well: {j:?}");
    assert!(app.got.load(Ordering::Relaxed) < 10_000 * 1024);
    // Nothing new starts; the incoming sessions end.
    let again = tokio::time::timeout(
        Duration::from_secs(5),
        w.romeo
            .initiate(juliet(), Trickle::new(1, Duration::ZERO, false)),
    )
    .await
    .expect("bounded");
    assert!(
        matches!(again, Err(Error::Channel(ChannelError::Closed))),
        "{again:?}"
    );
    let next = tokio::time::timeout(Duration::from_secs(5), w.romeo_incoming.recv())
        .await
        .expect("the incoming stream must end");
    assert!(next.is_none());
}

/// A peer that stops sending without closing anything: the receiver gives
/// up after the stall timeout with `timeout`, and the sender learns it.
#[tokio::test]
async fn a_stalled_transfer_ends_with_timeout() {
    let mut w = world_configured(romeo(), None, false, false, |c| {
        c.stall_timeout = Some(Duration::from_millis(500));
    });
    let app = Trickle::new(4, Duration::from_millis(10), true);
    let mut incoming = std::mem::replace(&mut w.juliet_incoming, mpsc::unbounded_channel().1);
    let app2 = app.clone();
    let juliet_side = tokio::spawn(async move {
        let inc = incoming.recv().await.expect("an incoming session");
        inc.accept(app2).await
    });
    let both = async {
        (
            w.romeo.initiate(juliet(), app.clone()).await,
            juliet_side.await,
        )
    };
    let (r, j) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("the stall timeout must end the session");
    match j.unwrap() {
        Err(Error::Timeout(what)) => assert!(what.contains("no data arrived"), "{what}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    match r {
        Err(Error::Terminated { reason, text }) => {
            assert_eq!(reason, "timeout");
            assert!(text.unwrap_or_default().contains("stalled"));
        }
        other => panic!("expected the receiver's timeout, got {other:?}"),
    }
    assert_eq!(terminate_reasons(&w.log, &juliet()), ["timeout"]);
}

/// Offers beyond `max_sessions` are ended with `busy` before any envelope
/// or transport work; once a session ends, a new offer gets through.
#[tokio::test]
async fn offers_beyond_the_session_limit_are_busy() {
    let mut w = world_configured(romeo(), None, false, false, |c| c.max_sessions = 2);
    let mut held = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..2 {
        let (driver, app) = (w.romeo.clone(), Trickle::new(1, Duration::ZERO, false));
        pending.push(tokio::spawn(
            async move { driver.initiate(juliet(), app).await },
        ));
        let inc = tokio::time::timeout(Duration::from_secs(5), w.juliet_incoming.recv())
            .await
            .expect("bounded")
            .expect("an incoming session");
        held.push(inc);
    }
    let third = tokio::time::timeout(
        Duration::from_secs(5),
        w.romeo
            .initiate(juliet(), Trickle::new(1, Duration::ZERO, false)),
    )
    .await
    .expect("the refusal must come at once");
    match third {
        Err(Error::Terminated { reason, text }) => {
            assert_eq!(reason, "busy");
            assert!(text.unwrap_or_default().contains("limit 2"));
        }
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(w.juliet_incoming.try_recv().is_err(), "no third Incoming");
    // One held offer is declined: there is room again.
    held.pop().unwrap().decline().await.unwrap();
    let declined = tokio::time::timeout(Duration::from_secs(5), pending.pop().unwrap())
        .await
        .expect("bounded")
        .unwrap();
    assert!(matches!(declined, Err(Error::Declined)), "{declined:?}");
    let driver = w.romeo.clone();
    let fourth = tokio::spawn(async move {
        driver
            .initiate(juliet(), Trickle::new(1, Duration::ZERO, false))
            .await
    });
    let inc = tokio::time::timeout(Duration::from_secs(5), w.juliet_incoming.recv())
        .await
        .expect("bounded")
        .expect("the fourth offer gets through");
    drop(inc);
    drop(held);
    let _ = tokio::time::timeout(Duration::from_secs(5), fourth).await;
}

/// A receiver that reads everything and then never answers: no verdict.
struct Mute;

#[async_trait]
impl Application for Mute {
    type Output = ();

    async fn run(&self, _ctx: AppContext, mut stream: BoxedStream) -> Result<(), Error> {
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await?;
        std::future::pending().await
    }
}

impl Acceptor for Mute {
    fn namespace(&self) -> &'static str {
        SINK_NS
    }

    fn decide(&self, description: &Element, _senders: Senders) -> Decision {
        Decision::Accept(description.clone())
    }
}

/// The sender sent everything but the receiver never ends the session:
/// after `finish_timeout` (5 s here) the sender's engine ends it with
/// `timeout` (`session::rules`), and the sender reports that whether the
/// data arrived is unknown.
#[tokio::test]
async fn a_sender_without_the_receivers_verdict_ends_with_timeout() {
    let mut w = world(romeo(), None);
    let mut incoming = std::mem::replace(&mut w.juliet_incoming, mpsc::unbounded_channel().1);
    let juliet_side = tokio::spawn(async move {
        let inc = incoming.recv().await.expect("an incoming session");
        inc.accept(Arc::new(Mute)).await
    });
    let app = Trickle::new(3, Duration::from_millis(1), false);
    let r = tokio::time::timeout(Duration::from_secs(20), w.romeo.initiate(juliet(), app))
        .await
        .expect("the verdict wait is bounded");
    match r {
        Err(Error::Timeout(what)) => assert!(
            what.contains("no session-terminate came within 5 s"),
            "{what}"
        ),
        other => panic!("expected the verdict timeout, got {other:?}"),
    }
    assert_eq!(terminate_reasons(&w.log, &romeo()), ["timeout"]);
    // The receiver learns it: its session ends too.
    let j = tokio::time::timeout(Duration::from_secs(10), juliet_side)
        .await
        .expect("the receiver's session ends")
        .unwrap();
    assert!(j.is_err(), "{j:?}");
}

/// A stanza channel whose `send` takes a while, as over a slow connection
/// (its `request` hands the stanza over at once, as `XmppChannel`'s does).
struct SlowSend {
    inner: Arc<dyn StanzaChannel>,
    delay: Duration,
}

#[async_trait]
impl StanzaChannel for SlowSend {
    fn local_jid(&self) -> FullJid {
        self.inner.local_jid()
    }
    async fn request(&self, iq: Element) -> Result<Element, ChannelError> {
        self.inner.request(iq).await
    }
    async fn send(&self, stanza: Element) -> Result<(), ChannelError> {
        tokio::time::sleep(self.delay).await;
        self.inner.send(stanza).await
    }
    fn subscribe(&self, filter: crate::channel::IqFilter) -> mpsc::UnboundedReceiver<Element> {
        self.inner.subscribe(filter)
    }
}

/// A session ends by handing its last stanza (here the sender's answer to
/// the receiver's session-terminate) to the outbox; `flush` returns only
/// once the channel took it, so closing the channel after it loses nothing.
#[tokio::test]
async fn flush_waits_for_the_last_stanzas() {
    let router = MemoryRouter::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    router.set_tap(Arc::new(move |_, st| l.lock().unwrap().push(st.clone())));
    let pipe: Arc<dyn TransportAdapter> = Arc::new(PipeAdapter::default());
    let config = DriverConfig {
        establish_timeout: Duration::from_secs(5),
        finish_timeout: Duration::from_secs(10),
        ..DriverConfig::default()
    };
    let slow = Arc::new(SlowSend {
        inner: router.connect(romeo()),
        delay: Duration::from_millis(300),
    });
    let (romeo_driver, _romeo_incoming) =
        Driver::start(slow, jet(&romeo()), vec![pipe.clone()], config.clone());
    let (_juliet_driver, mut juliet_incoming) =
        Driver::start(router.connect(juliet()), jet(&juliet()), vec![pipe], config);
    let (app, received) = sink(b"the last word");
    let app2 = app.clone();
    let juliet_side = tokio::spawn(async move {
        let inc = juliet_incoming.recv().await.expect("an incoming session");
        inc.accept(app2).await
    });
    let both = async {
        let r = romeo_driver.initiate(juliet(), app).await;
        (r, juliet_side.await.unwrap())
    };
    let (r, j) = tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .expect("the session must end by itself");
    r.unwrap();
    j.unwrap();
    assert_eq!(
        received.lock().unwrap().as_deref(),
        Some(&b"the last word"[..])
    );
    tokio::time::timeout(Duration::from_secs(5), romeo_driver.flush())
        .await
        .expect("flush is bounded")
        .unwrap();
    // Juliet's session-terminate, and Romeo's answer to it in the log.
    let log = log.lock().unwrap();
    let terminate_id = log
        .iter()
        .filter(|s| s.attr("from") == Some(juliet().to_string().as_str()))
        .find(|s| {
            s.get_child("jingle", ns::JINGLE)
                .is_some_and(|j| j.attr("action") == Some("session-terminate"))
        })
        .and_then(|s| s.attr("id").map(str::to_string))
        .expect("Juliet ended the session");
    assert!(
        log.iter()
            .any(|s| s.attr("from") == Some(romeo().to_string().as_str())
                && s.attr("type") == Some("result")
                && s.attr("id") == Some(terminate_id.as_str())),
        "Romeo's answer to the session-terminate must be handed over when flush returns"
    );
}
