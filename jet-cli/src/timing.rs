//! Where the fixed cost of a transfer goes: `--json` `timing` events.
//!
//! Each phase, once it ends, is one line
//! `{"event":"timing","phase":P,"ms":F}` on stdout (nothing without
//! `--json`). The phases, in the order they end:
//!
//! - `login`: TCP, StartTLS, SASL, resource binding, roster, presence;
//! - `keys`: the envelope on the new connection (OMEMO/OX: our keys
//!   loaded and published over PEP);
//! - `disco` (sender): the peer's full JID (presence) and its disco#info;
//! - then per session, when it ends: `envelope` (sealing the transport
//!   secret for the peer, with the fetch of its keys; or opening it),
//!   `session` (from the offer or the accept to the first data byte,
//!   without the envelope: Jingle, transport negotiation and connection)
//!   and `transfer` (from the first data byte to the end of the session,
//!   the receiver's verdict included);
//! - `close`: handing the last stanzas over and closing the stream.
//!
//! One process runs one session at a time (`send` offers its files one
//! after the other, `receive` accepts one after the other), so the marks
//! of the running session are process-wide.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jet_core::envelope::{EnvelopeBackend, EnvelopeContext, OpenedEnvelope};
use jet_core::error::EnvelopeError;
use jet_core::jid::Jid;
use jet_core::minidom::Element;
use jet_core::secret::{SecretShape, TransportSecret};
use serde_json::json;

/// The running session's first data byte and envelope time.
static MARKS: Mutex<Marks> = Mutex::new(Marks {
    first_byte: None,
    envelope: Duration::ZERO,
});

struct Marks {
    first_byte: Option<Instant>,
    envelope: Duration,
}

fn marks() -> std::sync::MutexGuard<'static, Marks> {
    MARKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds of `took`, to a tenth (as the JSON events print them).
pub fn ms(took: Duration) -> f64 {
    (took.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Prints one `timing` event (with `--json`).
pub fn emit(json: bool, phase: &str, took: Duration) {
    if json {
        let ms = ms(took);
        println!("{}", json!({"event": "timing", "phase": phase, "ms": ms}));
    }
}

/// A phase that started now; [`end`](Self::end) emits it.
pub struct Phase {
    json: bool,
    name: &'static str,
    start: Instant,
}

impl Phase {
    pub fn start(json: bool, name: &'static str) -> Self {
        Self {
            json,
            name,
            start: Instant::now(),
        }
    }

    pub fn end(self) {
        emit(self.json, self.name, self.start.elapsed());
    }
}

/// Notes the first data byte of the running session (the first call
/// counts).
pub fn first_byte() {
    let mut m = marks();
    if m.first_byte.is_none() {
        m.first_byte = Some(Instant::now());
    }
}

/// A progress callback that only notes the first data byte ([`first_byte`]),
/// for sessions without a progress bar (`jet serve`): without it their
/// data time would count as session set-up.
pub fn first_byte_marker() -> jet_core::ft_app::ProgressFn {
    let first = std::sync::atomic::AtomicBool::new(true);
    std::sync::Arc::new(move |done, _| {
        if done > 0 && first.swap(false, std::sync::atomic::Ordering::Relaxed) {
            first_byte();
        }
    })
}

/// One session: starts now (offer or accept), forgets the previous
/// session's marks.
pub struct SessionClock {
    json: bool,
    start: Instant,
}

impl SessionClock {
    pub fn start(json: bool) -> Self {
        let mut m = marks();
        m.first_byte = None;
        m.envelope = Duration::ZERO;
        Self {
            json,
            start: Instant::now(),
        }
    }

    /// Emits `envelope`, `session` and `transfer` for the session that
    /// ended now (a session without data byte: all of it is `session`).
    pub fn end(self) {
        let end = Instant::now();
        let (first, envelope) = {
            let m = marks();
            (m.first_byte, m.envelope)
        };
        let first = first.unwrap_or(end).clamp(self.start, end);
        emit(self.json, "envelope", envelope);
        emit(
            self.json,
            "session",
            (first - self.start).saturating_sub(envelope),
        );
        emit(self.json, "transfer", end - first);
    }
}

/// An envelope that adds the time of its seals and opens to the running
/// session's `envelope` phase.
pub struct TimedEnvelope(pub std::sync::Arc<dyn EnvelopeBackend>);

fn count(since: Instant) {
    marks().envelope += since.elapsed();
}

#[async_trait]
impl EnvelopeBackend for TimedEnvelope {
    fn envelope_type(&self) -> &'static str {
        self.0.envelope_type()
    }
    fn disco_feature(&self) -> &'static str {
        self.0.disco_feature()
    }
    fn is_secure(&self) -> bool {
        self.0.is_secure()
    }
    async fn seal(
        &self,
        secret: &TransportSecret,
        recipient: &Jid,
    ) -> Result<Element, EnvelopeError> {
        let t = Instant::now();
        let r = self.0.seal(secret, recipient).await;
        count(t);
        r
    }
    async fn open(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        shape: SecretShape,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        let t = Instant::now();
        let r = self.0.open(envelope, stanza_sender, shape).await;
        count(t);
        r
    }
    async fn seal_for(
        &self,
        secret: &TransportSecret,
        recipient: &Jid,
        context: &EnvelopeContext,
    ) -> Result<Element, EnvelopeError> {
        let t = Instant::now();
        let r = self.0.seal_for(secret, recipient, context).await;
        count(t);
        r
    }
    async fn open_for(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        shape: SecretShape,
        context: &EnvelopeContext,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        let t = Instant::now();
        let r = self
            .0
            .open_for(envelope, stanza_sender, shape, context)
            .await;
        count(t);
        r
    }
}
