//! The stall guard: a transport stream on which no byte moves for too long
//! fails instead of hanging (a peer that stopped sending, or stopped reading,
//! without closing anything).
//!
//! The clock runs only while the caller waits on the transport (a read, a
//! write, a flush or a shutdown that is pending) and restarts with every
//! step that completes, so a slow application (a slow disk) is not mistaken
//! for a stalled peer. Reads and writes have their own clocks.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::transport::BoxedStream;

/// The error inside the [`io::Error`] (kind `TimedOut`) of a stalled stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    /// How long nothing moved.
    pub after: Duration,
    /// Whether we were waiting to read (else to write).
    pub reading: bool,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.reading {
            "no data arrived"
        } else {
            "the peer took no data"
        };
        write!(
            f,
            "{what} for {} s (the transfer stalled)",
            self.after.as_secs()
        )
    }
}

impl std::error::Error for Stalled {}

/// The [`Stalled`] inside `e`, if that is what it is.
pub fn stalled_of(e: &io::Error) -> Option<&Stalled> {
    e.get_ref().and_then(|i| i.downcast_ref::<Stalled>())
}

/// One direction's clock. The timer is allocated once and re-armed with
/// `reset` when a wait starts: a busy transfer goes pending again and again,
/// and a fresh boxed `Sleep` each time would be an allocation per step.
#[derive(Default)]
struct Clock {
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether a wait is being timed (the step before it was pending).
    armed: bool,
}

/// Wraps a transport stream with the stall clocks.
pub(crate) struct StallGuard {
    inner: BoxedStream,
    limit: Duration,
    read_clock: Clock,
    write_clock: Clock,
}

impl StallGuard {
    pub(crate) fn new(inner: BoxedStream, limit: Duration) -> Self {
        StallGuard {
            inner,
            limit,
            read_clock: Clock::default(),
            write_clock: Clock::default(),
        }
    }
}

/// Passes a completed step through (stopping the clock), or starts/polls
/// the clock while the step is pending.
fn guard<T>(
    clock: &mut Clock,
    limit: Duration,
    reading: bool,
    cx: &mut Context<'_>,
    step: Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    match step {
        Poll::Ready(r) => {
            clock.armed = false;
            Poll::Ready(r)
        }
        Poll::Pending => {
            if !clock.armed {
                let deadline = tokio::time::Instant::now() + limit;
                match &mut clock.sleep {
                    Some(sleep) => sleep.as_mut().reset(deadline),
                    None => clock.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                clock.armed = true;
            }
            let sleep = clock.sleep.as_mut().expect("armed above");
            match sleep.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    clock.armed = false;
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        Stalled {
                            after: limit,
                            reading,
                        },
                    )))
                }
            }
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let step = Pin::new(&mut this.inner).poll_read(cx, buf);
        guard(&mut this.read_clock, this.limit, true, cx, step)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let step = Pin::new(&mut this.inner).poll_write(cx, buf);
        guard(&mut this.write_clock, this.limit, false, cx, step)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let step = Pin::new(&mut this.inner).poll_flush(cx);
        guard(&mut this.write_clock, this.limit, false, cx, step)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let step = Pin::new(&mut this.inner).poll_shutdown(cx);
        guard(&mut this.write_clock, this.limit, false, cx, step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_fails_the_read_after_the_limit() {
        let (mut peer, ours) = tokio::io::duplex(64);
        let mut g = StallGuard::new(Box::new(ours), Duration::from_secs(5));
        // Data that keeps coming within the limit never trips the clock.
        let feeder = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                peer.write_all(b"x").await.unwrap();
            }
            peer // kept open, silent
        });
        let mut b = [0u8; 8];
        for _ in 0..4 {
            assert_eq!(g.read(&mut b).await.unwrap(), 1);
        }
        let started = tokio::time::Instant::now();
        let e = g.read(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            stalled_of(&e),
            Some(&Stalled {
                after: Duration::from_secs(5),
                reading: true
            })
        );
        assert!(e.to_string().contains("no data arrived for 5 s"), "{e}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(feeder.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_fails_the_write() {
        let (_peer, ours) = tokio::io::duplex(16);
        let mut g = StallGuard::new(Box::new(ours), Duration::from_secs(3));
        let e = g.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(stalled_of(&e).map(|s| s.reading), Some(false));
    }
}
