//! Test harness: two parties on a MemoryRouter, transport-info over tokio
//! channels, offer/answer/establish run the way a session driver runs them.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jet_core::error::TransportError;
use jet_core::jid::FullJid;
use jet_core::memory::{MemoryChannel, MemoryRouter};
use jet_core::minidom::Element;
use jet_core::transport::{
    BoxedStream, Role, TransportAdapter, TransportContext, TransportNegotiation, TransportSignals,
};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

pub const ROMEO: &str = "romeo@montague.lit/orchard";
pub const JULIET: &str = "juliet@capulet.lit/balcony";

/// Every test is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(60);

pub struct Party {
    pub ctx: TransportContext,
    pub channel: Arc<MemoryChannel>,
}

pub fn jid(s: &str) -> FullJid {
    s.parse().unwrap()
}

/// Romeo (initiator, sender) and Juliet (responder) on `router`.
pub fn parties(router: &MemoryRouter) -> (Party, Party) {
    let mk = |me: &str, peer: &str, role: Role| {
        let channel = router.connect(jid(me));
        Party {
            ctx: TransportContext {
                channel: channel.clone(),
                local: jid(me),
                peer: jid(peer),
                role,
                session_sid: "sess1".into(),
                content_name: "file".into(),
                we_send: role == Role::Initiator,
            },
            channel,
        }
    };
    (
        mk(ROMEO, JULIET, Role::Initiator),
        mk(JULIET, ROMEO, Role::Responder),
    )
}

/// transport-info over tokio channels; remembers what was sent.
pub struct ChanSignals {
    tx: mpsc::UnboundedSender<Element>,
    rx: mpsc::UnboundedReceiver<Element>,
    pub sent: Arc<Mutex<Vec<Element>>>,
}

#[async_trait]
impl TransportSignals for ChanSignals {
    async fn send_info(&mut self, transport: Element) -> Result<(), TransportError> {
        self.sent.lock().unwrap().push(transport.clone());
        self.tx
            .send(transport)
            .map_err(|_| TransportError::Closed("signals".into()))
    }
    async fn recv_info(&mut self) -> Result<Element, TransportError> {
        self.rx
            .recv()
            .await
            .ok_or_else(|| TransportError::Closed("signals".into()))
    }
}

pub fn signal_pair() -> (ChanSignals, ChanSignals) {
    let (atx, arx) = mpsc::unbounded_channel();
    let (btx, brx) = mpsc::unbounded_channel();
    (
        ChanSignals {
            tx: atx,
            rx: brx,
            sent: Arc::default(),
        },
        ChanSignals {
            tx: btx,
            rx: arx,
            sent: Arc::default(),
        },
    )
}

pub struct Outcome {
    pub initiator: Result<BoxedStream, TransportError>,
    pub responder: Result<BoxedStream, TransportError>,
    /// transport-info sent by the initiator and by the responder.
    pub initiator_sent: Vec<Element>,
    pub responder_sent: Vec<Element>,
    /// The `<transport/>` elements as exchanged (after tampering).
    pub offer: Element,
    pub answer: Element,
}

/// Runs offer → answer → set_remote → both establish, like a session
/// driver (session-initiate/accept, or transport-replace/accept).
pub async fn negotiate(
    offerer: (&dyn TransportAdapter, &TransportContext),
    answerer: (&dyn TransportAdapter, &TransportContext),
    tamper_offer: impl FnOnce(&mut Element),
    tamper_answer: impl FnOnce(&mut Element),
) -> Outcome {
    let (ini_is_offerer, _) = (offerer.1.role == Role::Initiator, ());
    let mut off: Box<dyn TransportNegotiation> = offerer.0.offer(offerer.1).await.unwrap();
    let mut offer = off.local_transport();
    tamper_offer(&mut offer);
    let ans = answerer.0.answer(answerer.1, &offer).await.unwrap();
    let mut answer = ans.local_transport();
    tamper_answer(&mut answer);
    off.set_remote(&answer).unwrap();
    let (mut so, mut sa) = signal_pair();
    let (o_sent, a_sent) = (so.sent.clone(), sa.sent.clone());
    let (ro, ra) = tokio::join!(off.establish(&mut so), ans.establish(&mut sa));
    let (o_sent, a_sent) = (
        o_sent.lock().unwrap().clone(),
        a_sent.lock().unwrap().clone(),
    );
    if ini_is_offerer {
        Outcome {
            initiator: ro,
            responder: ra,
            initiator_sent: o_sent,
            responder_sent: a_sent,
            offer,
            answer,
        }
    } else {
        Outcome {
            initiator: ra,
            responder: ro,
            initiator_sent: a_sent,
            responder_sent: o_sent,
            offer,
            answer,
        }
    }
}

/// Deterministic test data.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = seed as u32 | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn sha1(b: &[u8]) -> Vec<u8> {
    Sha1::digest(b).to_vec()
}

/// Writes `payload` into `from` (then shuts it down), reads `to` to the
/// end, and checks the bytes by hash.
pub async fn transfer(mut from: BoxedStream, mut to: BoxedStream, payload: Vec<u8>) {
    let expect = sha1(&payload);
    let len = payload.len();
    let writer = tokio::spawn(async move {
        from.write_all(&payload).await.unwrap();
        from.shutdown().await.unwrap();
        from
    });
    let mut got = Vec::with_capacity(len);
    to.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), len);
    assert_eq!(sha1(&got), expect);
    writer.await.unwrap();
}

/// A loopback port nobody listens on.
pub async fn dead_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}
