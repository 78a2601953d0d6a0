//! The JET layer on a byte stream: any `AsyncRead + AsyncWrite` in, the
//! same out, encrypted (in the shape of a libp2p transport upgrade).
//!
//! XEP-0391 gives one transport secret per content and the content's
//! `senders` one direction, so a [`JetStream`] works one way:
//! - [`Direction::Send`]: writes are encrypted with
//!   [`StreamEncryptor`];
//!   `shutdown` appends the final tag. Any byte the peer sends back is an
//!   error (it could only be plaintext).
//! - [`Direction::Receive`]: reads are decrypted. **End of stream (`Ok(0)`)
//!   is reported only after the final tag has checked**; a failed check is
//!   an `InvalidData` error carrying the [`CipherError`]
//!   (see [`cipher_error_of`]). Bytes read before end of stream are not
//!   authenticated for single-message suites: never commit them before.
//!
//! Both directions under one key and IV would reuse the GCM nonce, so
//! `senders='both'` with JET is refused by the driver, not handled here.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::cipher::{CipherSuite, StreamDecryptor, StreamEncryptor};
use crate::error::CipherError;
use crate::secret::TransportSecret;
use crate::transport::ByteStream;

/// Which way the protected data flows for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We write (encrypt).
    Send,
    /// We read (decrypt).
    Receive,
}

/// Plaintext taken per write call; bounds the buffered ciphertext.
const MAX_WRITE: usize = 64 * 1024;
/// Ciphertext read from the inner stream per read call: room for two full
/// chunks of the chunked suite (64 KiB + tag each), so that per-call
/// overhead is amortised over large pieces and a chunk never straddles
/// more reads than it must.
const READ_CHUNK: usize = 2 * (64 * 1024 + 16);

enum Side {
    Send {
        enc: Box<dyn StreamEncryptor>,
        finished: bool,
    },
    Receive {
        dec: Box<dyn StreamDecryptor>,
        /// Set once the final tag checked (or failed).
        end: Option<Result<(), CipherError>>,
    },
}

/// A byte stream wrapped in a JET cipher, one direction.
pub struct JetStream<S> {
    inner: S,
    side: Side,
    /// Ciphertext waiting to be written to `inner`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Plaintext waiting to be read by the caller.
    rbuf: Vec<u8>,
    rpos: usize,
    scratch: Vec<u8>,
}

/// The [`CipherError`] inside an I/O error from a [`JetStream`], if any.
pub fn cipher_error_of(e: &io::Error) -> Option<&CipherError> {
    e.get_ref().and_then(|i| i.downcast_ref::<CipherError>())
}

fn cipher_io(e: CipherError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S: ByteStream> JetStream<S> {
    /// Wraps `inner` with `suite` under `secret`, for `direction`.
    pub fn new(
        inner: S,
        suite: &dyn CipherSuite,
        secret: &TransportSecret,
        direction: Direction,
    ) -> Result<Self, CipherError> {
        let side = match direction {
            Direction::Send => Side::Send {
                enc: suite.encryptor(secret)?,
                finished: false,
            },
            Direction::Receive => Side::Receive {
                dec: suite.decryptor(secret)?,
                end: None,
            },
        };
        Ok(JetStream {
            inner,
            side,
            wbuf: Vec::new(),
            wpos: 0,
            rbuf: Vec::new(),
            rpos: 0,
            scratch: vec![0u8; READ_CHUNK],
        })
    }

    /// Plaintext bytes received so far that are authenticated.
    pub fn authenticated_len(&self) -> u64 {
        match &self.side {
            Side::Receive { dec, .. } => dec.authenticated_len(),
            Side::Send { .. } => 0,
        }
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn poll_flush_wbuf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.wbuf[self.wpos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: ByteStream> AsyncWrite for JetStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &this.side {
            Side::Receive { .. } => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this JET stream only receives",
                )))
            }
            Side::Send { finished: true, .. } => {
                return Poll::Ready(Err(cipher_io(CipherError::Finished)))
            }
            Side::Send { .. } => {}
        }
        ready!(this.poll_flush_wbuf(cx))?;
        let take = buf.len().min(MAX_WRITE);
        if let Side::Send { enc, .. } = &mut this.side {
            enc.update(&buf[..take], &mut this.wbuf)
                .map_err(cipher_io)?;
        }
        // Start writing; whatever is left goes out on the next call or flush.
        if let Poll::Ready(Err(e)) = this.poll_flush_wbuf(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_wbuf(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(
            this.side,
            Side::Send {
                finished: false,
                ..
            }
        ) {
            ready!(this.poll_flush_wbuf(cx))?;
            if let Side::Send { enc, finished } = &mut this.side {
                *finished = true;
                enc.finish(&mut this.wbuf).map_err(cipher_io)?;
            }
        }
        ready!(this.poll_flush_wbuf(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: ByteStream> AsyncRead for JetStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.rpos < this.rbuf.len() {
                let n = (this.rbuf.len() - this.rpos).min(buf.remaining());
                buf.put_slice(&this.rbuf[this.rpos..this.rpos + n]);
                this.rpos += n;
                if this.rpos == this.rbuf.len() {
                    this.rbuf.clear();
                    this.rpos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut this.scratch);
            match &mut this.side {
                Side::Send { .. } => {
                    // Nothing may come back on a one-way content: it could
                    // only be plaintext.
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                    if rb.filled().is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the receiving side sent data on a one-way JET stream",
                    )));
                }
                Side::Receive {
                    end: Some(Ok(())), ..
                } => return Poll::Ready(Ok(())),
                Side::Receive {
                    end: Some(Err(e)), ..
                } => return Poll::Ready(Err(cipher_io(e.clone()))),
                Side::Receive { dec, end } => {
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                    let filled = rb.filled().len();
                    let res = if filled == 0 {
                        // End of the transport: only now is the stream
                        // authenticated (or not).
                        let r = dec.finish(&mut this.rbuf);
                        *end = Some(r.clone());
                        r
                    } else {
                        dec.update(&this.scratch[..filled], &mut this.rbuf)
                    };
                    if let Err(e) = res {
                        *end = Some(Err(e.clone()));
                        this.rbuf.clear();
                        this.rpos = 0;
                        return Poll::Ready(Err(cipher_io(e)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::testkit::TEST_XOR;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn secret() -> TransportSecret {
        TransportSecret::generate_with(16, 12).unwrap()
    }

    #[tokio::test]
    async fn round_trip_and_ciphertext_differs() {
        let ts = secret();
        let (a, mut mid) = tokio::io::duplex(1 << 20);
        let mut tx = JetStream::new(a, &TEST_XOR, &ts, Direction::Send).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        tx.write_all(&data).await.unwrap();
        tx.shutdown().await.unwrap();
        let mut wire = Vec::new();
        mid.read_to_end(&mut wire).await.unwrap();
        assert_eq!(wire.len(), data.len() + 4);
        assert_ne!(&wire[..data.len()], &data[..]);

        let (mut c, d) = tokio::io::duplex(1 << 20);
        let feeder = tokio::spawn({
            let wire = wire.clone();
            async move {
                c.write_all(&wire).await.unwrap();
                c.shutdown().await.unwrap();
            }
        });
        let mut rx = JetStream::new(d, &TEST_XOR, &ts, Direction::Receive).unwrap();
        let mut got = Vec::new();
        rx.read_to_end(&mut got).await.unwrap();
        feeder.await.unwrap();
        assert_eq!(got, data);
        assert_eq!(rx.authenticated_len(), data.len() as u64);
    }

    async fn receive(wire: Vec<u8>, ts: &TransportSecret) -> io::Result<Vec<u8>> {
        let (mut c, d) = tokio::io::duplex(1 << 16);
        let feeder = tokio::spawn(async move {
            c.write_all(&wire).await.unwrap();
            c.shutdown().await.unwrap();
        });
        let mut rx = JetStream::new(d, &TEST_XOR, ts, Direction::Receive).unwrap();
        let mut got = Vec::new();
        let r = rx.read_to_end(&mut got).await.map(|_| got);
        feeder.await.unwrap();
        // Reading again repeats the verdict; it never turns into a clean EOF.
        if r.is_err() {
            let mut more = Vec::new();
            assert!(rx.read_to_end(&mut more).await.is_err());
        }
        r
    }

    #[tokio::test]
    async fn tampered_and_truncated_streams_fail_at_the_end() {
        let ts = secret();
        let mut wire = Vec::new();
        let mut enc = TEST_XOR.encryptor(&ts).unwrap();
        enc.update(b"hello, this is the plaintext", &mut wire)
            .unwrap();
        enc.finish(&mut wire).unwrap();

        let mut tampered = wire.clone();
        tampered[3] ^= 1;
        let e = receive(tampered, &ts).await.unwrap_err();
        assert_eq!(cipher_error_of(&e), Some(&CipherError::Authentication));

        let truncated = wire[..wire.len() - 2].to_vec();
        let e = receive(truncated, &ts).await.unwrap_err();
        assert!(cipher_error_of(&e).is_some());

        let e = receive(Vec::new(), &ts).await.unwrap_err();
        assert_eq!(cipher_error_of(&e), Some(&CipherError::Truncated));

        assert_eq!(
            receive(wire, &ts).await.unwrap(),
            b"hello, this is the plaintext"
        );
    }

    #[tokio::test]
    async fn one_way_streams_refuse_the_other_way() {
        let ts = secret();
        let (a, mut b) = tokio::io::duplex(64);
        let mut rx = JetStream::new(a, &TEST_XOR, &ts, Direction::Receive).unwrap();
        assert!(rx.write_all(b"x").await.is_err());
        let (a, _keep) = tokio::io::duplex(64);
        let mut tx = JetStream::new(a, &TEST_XOR, &ts, Direction::Send).unwrap();
        tx.shutdown().await.unwrap();
        assert!(tx.write_all(b"late").await.is_err());
        // Plaintext coming back on a send-only stream is an error.
        let (a, mut peer) = tokio::io::duplex(64);
        let mut tx = JetStream::new(a, &TEST_XOR, &ts, Direction::Send).unwrap();
        peer.write_all(b"plaintext!").await.unwrap();
        let mut buf = [0u8; 8];
        assert!(tx.read(&mut buf).await.is_err());
        drop(b.shutdown().await);
    }
}
