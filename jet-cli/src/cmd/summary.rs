//! The one line that ends a transfer: size, time, throughput, transport,
//! cipher, and where it resumed. The transport is the one that actually
//! carried the bytes (S5B, or IBB after a fallback): every transport is
//! wrapped so that the session whose stream it opened is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jet_core::error::TransportError;
use jet_core::jid::FullJid;
use jet_core::minidom::Element;
use jet_core::transport::{
    BoxedStream, TransportAdapter, TransportContext, TransportNegotiation, TransportSignals,
};

/// Which transport opened the stream of each session (by session id, and
/// the latest one by peer).
#[derive(Clone, Default)]
pub struct Used(Arc<Mutex<UsedInner>>);

#[derive(Default)]
struct UsedInner {
    by_sid: HashMap<String, &'static str>,
    by_peer: HashMap<FullJid, &'static str>,
}

impl Used {
    /// Wraps every transport so that the one that opens a stream is recorded.
    pub fn wrap(
        &self,
        transports: Vec<Arc<dyn TransportAdapter>>,
    ) -> Vec<Arc<dyn TransportAdapter>> {
        transports
            .into_iter()
            .map(|inner| {
                Arc::new(Recorded {
                    inner,
                    used: self.clone(),
                }) as Arc<dyn TransportAdapter>
            })
            .collect()
    }

    fn record(&self, sid: &str, peer: &FullJid, ns: &'static str) {
        let mut u = self.0.lock().unwrap_or_else(|e| e.into_inner());
        u.by_sid.insert(sid.to_string(), ns);
        u.by_peer.insert(peer.clone(), ns);
    }

    /// The short name of the transport of session `sid`.
    pub fn by_sid(&self, sid: &str) -> Option<&'static str> {
        let u = self.0.lock().unwrap_or_else(|e| e.into_inner());
        u.by_sid.get(sid).map(|ns| transport_name(ns))
    }

    /// The short name of the transport of the latest session with `peer`.
    pub fn by_peer(&self, peer: &FullJid) -> Option<&'static str> {
        let u = self.0.lock().unwrap_or_else(|e| e.into_inner());
        u.by_peer.get(peer).map(|ns| transport_name(ns))
    }
}

/// The short name of a transport namespace.
pub fn transport_name(ns: &str) -> &'static str {
    match ns {
        jet_core::ns::JINGLE_S5B => "s5b",
        jet_core::ns::JINGLE_IBB => "ibb",
        _ => "other",
    }
}

struct Recorded {
    inner: Arc<dyn TransportAdapter>,
    used: Used,
}

struct RecordedNegotiation {
    inner: Box<dyn TransportNegotiation>,
    used: Used,
    ns: &'static str,
    sid: String,
    peer: FullJid,
}

impl Recorded {
    fn negotiation(
        &self,
        ctx: &TransportContext,
        inner: Box<dyn TransportNegotiation>,
    ) -> Box<dyn TransportNegotiation> {
        Box::new(RecordedNegotiation {
            inner,
            used: self.used.clone(),
            ns: self.inner.namespace(),
            sid: ctx.session_sid.clone(),
            peer: ctx.peer.clone(),
        })
    }
}

#[async_trait]
impl TransportAdapter for Recorded {
    fn namespace(&self) -> &'static str {
        self.inner.namespace()
    }
    async fn offer(
        &self,
        ctx: &TransportContext,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        let inner = self.inner.offer(ctx).await?;
        Ok(self.negotiation(ctx, inner))
    }
    async fn answer(
        &self,
        ctx: &TransportContext,
        offer: &Element,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        let inner = self.inner.answer(ctx, offer).await?;
        Ok(self.negotiation(ctx, inner))
    }
}

#[async_trait]
impl TransportNegotiation for RecordedNegotiation {
    fn local_transport(&self) -> Element {
        self.inner.local_transport()
    }
    fn set_remote(&mut self, remote: &Element) -> Result<(), TransportError> {
        self.inner.set_remote(remote)
    }
    async fn establish(
        self: Box<Self>,
        signals: &mut dyn TransportSignals,
    ) -> Result<BoxedStream, TransportError> {
        let stream = self.inner.establish(signals).await?;
        self.used.record(&self.sid, &self.peer, self.ns);
        Ok(stream)
    }
}

/// What the summary line says about one finished transfer.
pub struct Summary {
    /// The file's size.
    pub size: u64,
    /// Where this session started (resume), 0 otherwise.
    pub resumed_from: u64,
    /// From the offer (or acceptance) to the end.
    pub elapsed: Duration,
    /// `s5b`, `ibb`, or `None` when unknown.
    pub transport: Option<&'static str>,
    /// The cipher's short name (or its URN when unknown).
    pub cipher: String,
}

impl Summary {
    /// Bytes per second over the bytes this session carried.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        self.size.saturating_sub(self.resumed_from) as f64 / secs
    }

    /// `300.00 KiB in 0.42 s (714.29 KiB/s) · s5b · aes-128-gcm`, and
    /// ` · resumed at 100.00 KiB` when it resumed.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} in {:.2} s ({}/s) · {} · {}",
            indicatif::HumanBytes(self.size),
            self.elapsed.as_secs_f64(),
            indicatif::HumanBytes(self.rate() as u64),
            self.transport.unwrap_or("transport unknown"),
            self.cipher
        );
        if self.resumed_from > 0 {
            s += &format!(" · resumed at {}", indicatif::HumanBytes(self.resumed_from));
        }
        s
    }

    /// The same numbers for the JSON `done` event.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "seconds": (self.elapsed.as_secs_f64() * 1e6).round() / 1e6,
            "bytes_per_second": self.rate().round() as u64,
            "transport": self.transport,
            "cipher": self.cipher,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_every_number_and_the_resume_point() {
        let s = Summary {
            size: 2 * 1024 * 1024,
            resumed_from: 1024 * 1024,
            elapsed: Duration::from_secs(2),
            transport: Some("ibb"),
            cipher: "chacha20".into(),
        };
        assert_eq!(
            s.line(),
            "2.00 MiB in 2.00 s (512.00 KiB/s) · ibb · chacha20 · resumed at 1.00 MiB"
        );
        let j = s.json();
        assert_eq!(j["bytes_per_second"], 512 * 1024);
        assert_eq!(j["transport"], "ibb");
        let fresh = Summary {
            resumed_from: 0,
            ..s
        };
        assert!(!fresh.line().contains("resumed"));
    }
}
