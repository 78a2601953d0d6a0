//! Transport faults on purpose: `jet demo --interrupt-at` and the test hooks
//! of the networked commands (`JET_TEST_CUT_AFTER`, `JET_TEST_STALL_AFTER`,
//! `JET_TEST_RATE`) wrap every transport so that its streams break, hang or
//! crawl. Reading is never touched; only what this side writes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use jet_core::error::TransportError;
use jet_core::minidom::Element;
use jet_core::transport::{
    BoxedStream, TransportAdapter, TransportContext, TransportNegotiation, TransportSignals,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What goes wrong with the streams, each optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// After this many bytes written, the stream breaks (shut down, then
    /// `BrokenPipe`), as a cut cable would.
    pub cut_after: Option<u64>,
    /// After this many bytes written, writes hang for good without closing
    /// anything: a stalled peer.
    pub stall_after: Option<u64>,
    /// At most this many bytes per second are written.
    pub rate: Option<u64>,
}

impl Faults {
    fn none(&self) -> bool {
        self.cut_after.is_none() && self.stall_after.is_none() && self.rate.is_none()
    }

    /// Wraps every transport (unchanged when there is no fault).
    pub fn wrap(
        self,
        transports: Vec<Arc<dyn TransportAdapter>>,
    ) -> Vec<Arc<dyn TransportAdapter>> {
        if self.none() {
            return transports;
        }
        transports
            .into_iter()
            .map(|t| {
                Arc::new(Faulty {
                    inner: t,
                    faults: self,
                }) as Arc<dyn TransportAdapter>
            })
            .collect()
    }
}

struct Faulty {
    inner: Arc<dyn TransportAdapter>,
    faults: Faults,
}

struct FaultyNegotiation {
    inner: Box<dyn TransportNegotiation>,
    faults: Faults,
}

/// The pace of a rate-limited stream: one slice per tick.
const TICK: Duration = Duration::from_millis(50);

struct FaultyStream {
    inner: BoxedStream,
    faults: Faults,
    written: u64,
    /// Bytes still allowed in the current tick, and the next tick.
    budget: u64,
    tick: Option<Pin<Box<tokio::time::Sleep>>>,
}

#[async_trait]
impl TransportAdapter for Faulty {
    fn namespace(&self) -> &'static str {
        self.inner.namespace()
    }
    async fn offer(
        &self,
        ctx: &TransportContext,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        Ok(Box::new(FaultyNegotiation {
            inner: self.inner.offer(ctx).await?,
            faults: self.faults,
        }))
    }
    async fn answer(
        &self,
        ctx: &TransportContext,
        offer: &Element,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        Ok(Box::new(FaultyNegotiation {
            inner: self.inner.answer(ctx, offer).await?,
            faults: self.faults,
        }))
    }
}

#[async_trait]
impl TransportNegotiation for FaultyNegotiation {
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
        let inner = self.inner.establish(signals).await?;
        Ok(Box::new(FaultyStream {
            inner,
            faults: self.faults,
            written: 0,
            budget: 0,
            tick: None,
        }))
    }
}

impl AsyncRead for FaultyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let mut allowed = buf.len() as u64;
        if let Some(limit) = this.faults.cut_after {
            if this.written >= limit {
                // Break the connection for real, as a cut cable would.
                let _ = Pin::new(&mut this.inner).poll_shutdown(cx);
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "connection cut (test hook)",
                )));
            }
            allowed = allowed.min(limit - this.written);
        }
        if let Some(limit) = this.faults.stall_after {
            if this.written >= limit {
                // Never woken: the stream just stops moving.
                return Poll::Pending;
            }
            allowed = allowed.min(limit - this.written);
        }
        if let Some(rate) = this.faults.rate {
            if this.budget == 0 {
                let tick = this
                    .tick
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::ZERO)));
                if tick.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                tick.as_mut().reset(tokio::time::Instant::now() + TICK);
                this.budget = (rate * TICK.as_millis() as u64 / 1000).max(1);
            }
            allowed = allowed.min(this.budget);
        }
        match Pin::new(&mut this.inner).poll_write(cx, &buf[..allowed as usize]) {
            Poll::Ready(Ok(n)) => {
                this.written += n as u64;
                this.budget = this.budget.saturating_sub(n as u64);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn stream(faults: Faults) -> (FaultyStream, tokio::io::DuplexStream) {
        let (a, b) = tokio::io::duplex(1 << 20);
        (
            FaultyStream {
                inner: Box::new(a),
                faults,
                written: 0,
                budget: 0,
                tick: None,
            },
            b,
        )
    }

    #[tokio::test]
    async fn a_cut_stream_breaks_after_its_bytes() {
        let (mut s, mut peer) = stream(Faults {
            cut_after: Some(10),
            ..Faults::default()
        });
        let e = s.write_all(&[7u8; 32]).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, [7u8; 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_stream_hangs_and_a_slow_one_keeps_its_rate() {
        let (mut s, _peer) = stream(Faults {
            stall_after: Some(10),
            ..Faults::default()
        });
        let w = tokio::time::timeout(Duration::from_secs(3600), s.write_all(&[1u8; 32])).await;
        assert!(w.is_err(), "the write must hang");
        assert_eq!(s.written, 10);

        let (mut s, _peer) = stream(Faults {
            rate: Some(1000),
            ..Faults::default()
        });
        let t0 = tokio::time::Instant::now();
        s.write_all(&[1u8; 5000]).await.unwrap();
        let took = t0.elapsed();
        // 50 bytes per 50 ms tick: 100 ticks, the first at once.
        assert!(
            took >= Duration::from_millis(4900) && took <= Duration::from_millis(5100),
            "{took:?}"
        );
    }
}
