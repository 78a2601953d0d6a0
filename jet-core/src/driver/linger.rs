//! Closing a bytestream the way deployed peers need it: never with bytes
//! left unread.
//!
//! Closing a TCP socket whose receive buffer still holds bytes makes the
//! kernel send RST instead of FIN, and an RST destroys whatever the peer
//! had not read yet. Dino 0.4.2, as a receiver, closes its own (unused,
//! encrypting) output stream when it accepts, which writes a 16-byte GCM
//! tag back on the receive-only S5B socket; a sender that never reads it
//! and drops the socket after its last byte cuts Dino's file short
//! ("Connection reset by peer"). Deployed senders (Dino, Conversations)
//! also keep the stream open until the receiver ends the session.
//!
//! So the driver wraps every transport stream in a [`Linger`]: when the
//! session's layers drop it, it goes on reading (and discarding) in the
//! background until the peer closes its side, the session's verdict is in
//! (the driver drops the [`LingerGuard`]), or a bound passes, and only then
//! closes. What it discards was never data of ours: the application is done
//! with the stream when it drops it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use crate::transport::BoxedStream;

/// Held by the driver while the session may still need the stream open;
/// dropping it lets a dropped [`Linger`] close.
pub(crate) struct LingerGuard(#[allow(dead_code)] oneshot::Sender<()>);

/// A transport stream that, when dropped, drains the peer's bytes until the
/// guard is dropped, the peer closes, or `limit` passes.
pub(crate) struct Linger {
    inner: Option<BoxedStream>,
    until: Option<oneshot::Receiver<()>>,
    limit: Duration,
}

impl Linger {
    /// Wraps `inner`; the returned guard ends the lingering when dropped.
    pub(crate) fn new(inner: BoxedStream, limit: Duration) -> (Self, LingerGuard) {
        let (tx, rx) = oneshot::channel();
        (
            Linger {
                inner: Some(inner),
                until: Some(rx),
                limit,
            },
            LingerGuard(tx),
        )
    }

    fn inner(&mut self) -> Pin<&mut BoxedStream> {
        Pin::new(self.inner.as_mut().expect("used after drop"))
    }
}

impl Drop for Linger {
    fn drop(&mut self) {
        let (Some(mut stream), Some(until)) = (self.inner.take(), self.until.take()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let limit = self.limit;
        runtime.spawn(async move {
            let drain = async {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = drain => {}
                _ = until => {}
                _ = tokio::time::sleep(limit) => {}
            }
            // The stream (and with it the socket) closes here.
        });
    }
}

impl AsyncRead for Linger {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().inner().poll_read(cx, buf)
    }
}

impl AsyncWrite for Linger {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().inner().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().inner().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// The RST case over real loopback TCP: the peer writes a few bytes we
    /// never read, we send a lot and drop the stream; the peer, reading
    /// slowly, must still get every byte and a clean end of stream.
    #[tokio::test]
    async fn a_dropped_stream_with_unread_bytes_still_delivers_everything() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // What Dino does at accept time: 16 bytes back on the socket.
            s.write_all(&[7u8; 16]).await.unwrap();
            // Read slowly, so that most data is still in flight when the
            // sender drops its end.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut got = Vec::new();
            let r = s.read_to_end(&mut got).await;
            (r.map(|_| got.len()), s)
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut stream, guard) = Linger::new(Box::new(tcp), Duration::from_secs(10));
        // Let the 16 bytes arrive unread.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let data = vec![0x5au8; 4 << 20];
        stream.write_all(&data).await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream);
        let (got, s) = tokio::time::timeout(Duration::from_secs(10), peer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.expect("the peer's read failed (reset?)"), data.len());
        drop(guard);
        drop(s);
    }

    #[tokio::test]
    async fn the_guard_ends_the_lingering() {
        let (a, mut b) = tokio::io::duplex(64);
        let (stream, guard) = Linger::new(Box::new(a), Duration::from_secs(60));
        drop(stream);
        // The peer's side stays open: only the guard can end the drain.
        b.write_all(b"ignored").await.unwrap();
        drop(guard);
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), b.read_to_end(&mut rest))
            .await
            .expect("the lingering stream was not closed after the guard went")
            .unwrap();
    }
}
