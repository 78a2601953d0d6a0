//! The one layer: async adapters that put a cipher suite on any tokio byte
//! stream (XEP-0391 §6: the transport carries the encrypted stream).
//!
//! - [`EncryptingWriter`] wraps an `AsyncWrite`: everything written is
//!   encrypted; `shutdown()` finishes the stream (writes the final tag) and
//!   then shuts the inner writer down.
//! - [`DecryptingReader`] wraps an `AsyncRead`: it yields plaintext; at the
//!   inner EOF it checks the final tag and fails with an `io::Error`
//!   carrying the [`CipherError`] if the stream does not authenticate. A
//!   reader that returned `Ok(0)` has authenticated everything.
//! - [`encrypt_stream`] and [`decrypt_stream`] copy a whole stream.
//!
//! Memory is bounded: 64 KiB buffers (plus one chunk for the chunked suite),
//! whatever the length of the stream.
//!
//! With the whole-stream suites (XEP-0391's AES-GCM, ChaCha20-Poly1305) the
//! plaintext yielded before EOF is **not authenticated yet**: write it to a
//! partial file and give it its final name only after EOF (or
//! [`decrypt_stream`]) succeeded.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use jet_core::cipher::{CipherSuite, StreamDecryptor, StreamEncryptor};
use jet_core::error::CipherError;
use jet_core::TransportSecret;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::Error;

/// Size of the adapters' buffers.
pub const BUF_LEN: usize = 64 * 1024;

/// Size of the read buffer of [`encrypt_stream`] and [`decrypt_stream`]:
/// larger than [`BUF_LEN`] because each read of a tokio file or of stdin
/// is a hop to the blocking thread pool; 256 KiB quarters those hops.
pub const COPY_BUF_LEN: usize = 256 * 1024;

/// Wraps a [`CipherError`] into an `io::Error` of kind `InvalidData`.
pub fn io_error(e: CipherError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The [`CipherError`] inside an `io::Error` made by [`io_error`] (or by the
/// adapters), if any.
pub fn cipher_error(e: &io::Error) -> Option<&CipherError> {
    e.get_ref()?.downcast_ref::<CipherError>()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    Open,
    /// `finish` ran; its output may still be in the buffer.
    Finished,
    Failed,
}

/// Encrypts everything written to it into the inner writer.
///
/// Call `shutdown()` (tokio's `AsyncWriteExt::shutdown`) at the end: it
/// writes the final tag, then shuts the inner writer down. Dropping the
/// writer without shutdown leaves the stream without its tag, which the
/// receiver refuses.
pub struct EncryptingWriter<W> {
    inner: W,
    enc: Box<dyn StreamEncryptor>,
    out: Vec<u8>,
    pos: usize,
    state: WriteState,
}

impl<W> std::fmt::Debug for EncryptingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptingWriter")
            .field("pending", &(self.out.len() - self.pos))
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> EncryptingWriter<W> {
    /// Encrypts with `suite` under `secret` into `inner`.
    pub fn new(
        suite: &dyn CipherSuite,
        secret: &TransportSecret,
        inner: W,
    ) -> Result<Self, CipherError> {
        Ok(Self::from_encryptor(suite.encryptor(secret)?, inner))
    }

    /// Wraps an encryptor made elsewhere (e.g. a resumed chunked stream).
    pub fn from_encryptor(enc: Box<dyn StreamEncryptor>, inner: W) -> Self {
        EncryptingWriter {
            inner,
            enc,
            out: Vec::with_capacity(BUF_LEN + 2 * crate::chunked::CHUNK_CIPHERTEXT_LEN),
            pos: 0,
            state: WriteState::Open,
        }
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer. Writing to it directly corrupts the stream.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Gives the inner writer back (pending ciphertext is lost).
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Writes the pending ciphertext to the inner writer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.out.clear();
        self.pos = 0;
        Poll::Ready(Ok(()))
    }

    fn check_open(&self) -> io::Result<()> {
        match self.state {
            WriteState::Open => Ok(()),
            WriteState::Finished => Err(io_error(CipherError::Finished)),
            WriteState::Failed => Err(io::Error::other("the encrypting writer failed earlier")),
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for EncryptingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_open()?;
        // Accept new data only once the previous ciphertext is out: bounded memory.
        ready!(this.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(BUF_LEN);
        if let Err(e) = this.enc.update(&buf[..n], &mut this.out) {
            this.state = WriteState::Failed;
            return Poll::Ready(Err(io_error(e)));
        }
        // Push it on now if the writer is ready; otherwise the next call does.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            this.state = WriteState::Failed;
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.state == WriteState::Open {
            ready!(this.poll_drain(cx))?;
            if let Err(e) = this.enc.finish(&mut this.out) {
                this.state = WriteState::Failed;
                return Poll::Ready(Err(io_error(e)));
            }
            this.state = WriteState::Finished;
        }
        if this.state == WriteState::Failed {
            return Poll::Ready(Err(io::Error::other(
                "the encrypting writer failed earlier",
            )));
        }
        ready!(this.poll_drain(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadState {
    Reading,
    Done,
    Failed(CipherError),
}

/// Decrypts what it reads from the inner reader.
///
/// At the inner reader's EOF it calls `finish`: `Ok(0)` then means the whole
/// stream authenticated; otherwise the read fails with an `io::Error`
/// (kind `InvalidData`) carrying the [`CipherError`] ([`cipher_error`]
/// gets it back), and every later read fails the same way.
pub struct DecryptingReader<R> {
    inner: R,
    dec: Box<dyn StreamDecryptor>,
    inbuf: Box<[u8]>,
    out: Vec<u8>,
    pos: usize,
    state: ReadState,
}

impl<R> std::fmt::Debug for DecryptingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptingReader")
            .field("pending", &(self.out.len() - self.pos))
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> DecryptingReader<R> {
    /// Decrypts `inner` with `suite` under `secret`.
    pub fn new(
        suite: &dyn CipherSuite,
        secret: &TransportSecret,
        inner: R,
    ) -> Result<Self, CipherError> {
        Ok(Self::from_decryptor(suite.decryptor(secret)?, inner))
    }

    /// Wraps a decryptor made elsewhere (e.g. a resumed chunked stream).
    pub fn from_decryptor(dec: Box<dyn StreamDecryptor>, inner: R) -> Self {
        DecryptingReader {
            inner,
            dec,
            inbuf: vec![0u8; BUF_LEN].into_boxed_slice(),
            out: Vec::with_capacity(BUF_LEN + 2 * crate::chunked::CHUNK_CIPHERTEXT_LEN),
            pos: 0,
            state: ReadState::Reading,
        }
    }

    /// Plaintext bytes yielded so far that are authenticated (see
    /// [`StreamDecryptor::authenticated_len`]).
    pub fn authenticated_len(&self) -> u64 {
        self.dec.authenticated_len()
    }

    /// Whether the whole stream has been read and authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.state == ReadState::Done
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Gives the inner reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for DecryptingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.pos);
                buf.put_slice(&this.out[this.pos..this.pos + n]);
                this.pos += n;
                if this.pos == this.out.len() {
                    this.out.clear();
                    this.pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            match &this.state {
                ReadState::Done => return Poll::Ready(Ok(())),
                ReadState::Failed(e) => return Poll::Ready(Err(io_error(e.clone()))),
                ReadState::Reading => {}
            }
            let mut rb = ReadBuf::new(&mut this.inbuf);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let result = if rb.filled().is_empty() {
                this.dec
                    .finish(&mut this.out)
                    .map(|()| this.state = ReadState::Done)
            } else {
                this.dec.update(rb.filled(), &mut this.out)
            };
            if let Err(e) = result {
                this.state = ReadState::Failed(e.clone());
                this.out.clear();
                this.pos = 0;
                return Poll::Ready(Err(io_error(e)));
            }
        }
    }
}

/// Encrypts everything `reader` yields into `writer` with `suite` under
/// `secret`, writes the final tag(s) and flushes (it does not shut `writer`
/// down). Returns the number of plaintext bytes. Memory: two buffers of
/// about [`COPY_BUF_LEN`] bytes.
pub async fn encrypt_stream<R, W>(
    suite: &dyn CipherSuite,
    secret: &TransportSecret,
    mut reader: R,
    mut writer: W,
) -> Result<u64, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut enc = suite.encryptor(secret)?;
    let mut inbuf = vec![0u8; COPY_BUF_LEN];
    let mut out = Vec::with_capacity(COPY_BUF_LEN + 2 * crate::chunked::CHUNK_CIPHERTEXT_LEN);
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut inbuf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
        out.clear();
        enc.update(&inbuf[..n], &mut out)?;
        writer.write_all(&out).await.map_err(Error::Io)?;
    }
    out.clear();
    enc.finish(&mut out)?;
    writer.write_all(&out).await.map_err(Error::Io)?;
    writer.flush().await.map_err(Error::Io)?;
    Ok(total)
}

/// Decrypts everything `reader` yields into `writer` with `suite` under
/// `secret` and flushes. Returns the number of plaintext bytes once the
/// whole stream authenticated.
///
/// On an error, `writer` may already hold plaintext that did **not**
/// authenticate (the whole-stream suites release plaintext before the tag):
/// write into a temporary file and rename it only after `Ok`.
pub async fn decrypt_stream<R, W>(
    suite: &dyn CipherSuite,
    secret: &TransportSecret,
    mut reader: R,
    mut writer: W,
) -> Result<u64, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut dec = suite.decryptor(secret)?;
    let mut inbuf = vec![0u8; COPY_BUF_LEN];
    let mut out = Vec::with_capacity(COPY_BUF_LEN + 2 * crate::chunked::CHUNK_CIPHERTEXT_LEN);
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut inbuf).await?;
        out.clear();
        if n == 0 {
            dec.finish(&mut out)?;
        } else {
            dec.update(&inbuf[..n], &mut out)?;
        }
        total += out.len() as u64;
        writer.write_all(&out).await.map_err(Error::Io)?;
        if n == 0 {
            break;
        }
    }
    writer.flush().await.map_err(Error::Io)?;
    Ok(total)
}
