//! TEST-ONLY stand-ins (feature `testkit`): a toy cipher suite, a test
//! envelope, an in-process pipe transport and a wiretap, so that jet-core,
//! the other crates' tests, the benchmarks and the fuzz targets can run
//! sessions without the real ciphers, envelopes or a network. **None of
//! them gives any security.** Use them from tests only:
//!
//! ```toml
//! [dev-dependencies]
//! jet-core = { path = "../jet-core", features = ["testkit"] }
//! ```

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jid::{BareJid, Jid};
use minidom::Element;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use crate::cipher::{CipherSuite, Framing, StreamDecryptor, StreamEncryptor};
use crate::envelope::{EnvelopeBackend, OpenedEnvelope};
use crate::error::{CipherError, EnvelopeError, TransportError};
use crate::secret::{SecretShape, TransportSecret};
use crate::transport::{
    BoxedStream, TransportAdapter, TransportContext, TransportNegotiation, TransportSignals,
};
use crate::xml::BuilderExt;

/// TEST-ONLY "cipher": XOR with the key, plus a 4-byte checksum "tag" at
/// the end so that tampering and truncation are detected. Not encryption.
/// Its URN and sizes are chosen per instance, so that a test can stand it
/// in for a real suite (e.g. under AES-256-GCM's URN and sizes).
#[derive(Debug)]
pub struct ToySuite {
    urn: &'static str,
    key_len: usize,
    accepted_iv_lens: &'static [usize],
}

impl ToySuite {
    /// A toy suite announcing `urn`, with keys of `key_len` bytes, 12-byte
    /// IVs generated and `accepted_iv_lens` accepted.
    pub const fn new(
        urn: &'static str,
        key_len: usize,
        accepted_iv_lens: &'static [usize],
    ) -> Self {
        ToySuite {
            urn,
            key_len,
            accepted_iv_lens,
        }
    }
}

/// The test suite of jet-core's own tests: a URN no peer knows, 16-byte
/// keys, 12-byte IVs.
pub static TEST_XOR: ToySuite = ToySuite::new(TEST_XOR_URN, 16, &[12]);

/// The URN of [`TEST_XOR`] (deliberately not a real cipher's).
pub const TEST_XOR_URN: &str = "urn:jet:test:xor-not-a-cipher:0";

/// The toy suite's tag length.
pub const TOY_TAG_LEN: usize = 4;

const TAG: usize = TOY_TAG_LEN;

fn checksum(sum: u32, byte: u8) -> u32 {
    sum.rotate_left(5) ^ u32::from(byte)
}

impl CipherSuite for ToySuite {
    fn urn(&self) -> &'static str {
        self.urn
    }
    fn name(&self) -> &'static str {
        "test-only XOR"
    }
    fn key_len(&self) -> usize {
        self.key_len
    }
    fn iv_len(&self) -> usize {
        12
    }
    fn accepted_iv_lens(&self) -> &'static [usize] {
        self.accepted_iv_lens
    }
    fn tag_len(&self) -> usize {
        TAG
    }
    fn framing(&self) -> Framing {
        Framing::SingleMessage {
            max_plaintext: u64::MAX - TAG as u64,
        }
    }
    fn ciphertext_len(&self, plaintext_len: u64) -> u64 {
        plaintext_len + TAG as u64
    }
    fn encryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        Ok(Box::new(XorEnc {
            key: secret.key().to_vec(),
            pos: 0,
            sum: 0,
            done: false,
        }))
    }
    fn decryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        Ok(Box::new(XorDec {
            key: secret.key().to_vec(),
            pos: 0,
            sum: 0,
            held: Vec::new(),
            done: false,
            ok: false,
        }))
    }
}

struct XorEnc {
    key: Vec<u8>,
    pos: usize,
    sum: u32,
    done: bool,
}

impl StreamEncryptor for XorEnc {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        for &b in input {
            self.sum = checksum(self.sum, b);
            out.push(b ^ self.key[self.pos % self.key.len()]);
            self.pos += 1;
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        self.done = true;
        out.extend_from_slice(&self.sum.to_be_bytes());
        Ok(())
    }
}

struct XorDec {
    key: Vec<u8>,
    pos: usize,
    sum: u32,
    /// The last TAG bytes seen (they may be the tag).
    held: Vec<u8>,
    done: bool,
    ok: bool,
}

impl StreamDecryptor for XorDec {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        self.held.extend_from_slice(input);
        if self.held.len() > TAG {
            let release = self.held.len() - TAG;
            for b in self.held.drain(..release) {
                let p = b ^ self.key[self.pos % self.key.len()];
                self.pos += 1;
                self.sum = checksum(self.sum, p);
                out.push(p);
            }
        }
        Ok(())
    }
    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        self.done = true;
        if self.held.len() < TAG {
            return Err(CipherError::Truncated);
        }
        if self.held[..] != self.sum.to_be_bytes() {
            return Err(CipherError::Authentication);
        }
        self.ok = true;
        Ok(())
    }
    fn authenticated_len(&self) -> u64 {
        if self.ok {
            self.pos as u64
        } else {
            0
        }
    }
}

/// Namespace and `type` of the test envelope.
pub const TEST_ENVELOPE: &str = "urn:jet:test:envelope-not-secure:0";

/// TEST-ONLY envelope: the secret in base64 plus a `by` attribute naming who
/// sealed it, which `open` reports as the proven sender (the way OMEMO or OX
/// would prove it). Lets tests play a third party whose envelope is replayed.
#[derive(Debug, Clone)]
pub struct TestEnvelope {
    /// Who we claim to be when sealing.
    pub author: BareJid,
}

#[async_trait]
impl EnvelopeBackend for TestEnvelope {
    fn envelope_type(&self) -> &'static str {
        TEST_ENVELOPE
    }
    fn disco_feature(&self) -> &'static str {
        "urn:jet:test:envelope-feature"
    }
    fn is_secure(&self) -> bool {
        false
    }
    async fn seal(
        &self,
        secret: &TransportSecret,
        _recipient: &Jid,
    ) -> Result<Element, EnvelopeError> {
        Ok(Element::builder("sealed", TEST_ENVELOPE)
            .a("by", self.author.to_string())
            .append(STANDARD.encode(secret.to_bytes().as_slice()))
            .build())
    }
    async fn open(
        &self,
        envelope: &Element,
        _stanza_sender: &Jid,
        shape: SecretShape,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        if !envelope.is("sealed", TEST_ENVELOPE) {
            return Err(EnvelopeError::Malformed("not a test envelope".into()));
        }
        let by: BareJid = envelope
            .attr("by")
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| EnvelopeError::Malformed("no author".into()))?;
        let bytes = STANDARD
            .decode(envelope.text().trim())
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let secret = shape.from_bytes(&bytes)?;
        Ok(OpenedEnvelope {
            secret,
            sender: by,
            sender_key: None,
        })
    }
}

/// What a [`Wiretap`] (a man in the middle) does to the bytes the
/// receiving end reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wire {
    /// Passes them on.
    #[default]
    Honest,
    /// Flips the lowest bit of byte `n`.
    Flip(usize),
    /// Ends the stream after `n` bytes.
    Truncate(usize),
    /// Adds `n` bytes after the sender's end.
    Append(usize),
}

/// A stream that records what is read through it and tampers with it as
/// its [`Wire`] says. Writes pass through untouched.
pub struct Wiretap<S> {
    inner: S,
    wire: Wire,
    seen: Arc<Mutex<Vec<u8>>>,
    pos: usize,
    appended: bool,
}

impl<S> Wiretap<S> {
    /// Taps `inner`: what is read is appended to `seen`, after `wire`'s
    /// tampering.
    pub fn new(inner: S, wire: Wire, seen: Arc<Mutex<Vec<u8>>>) -> Self {
        Wiretap {
            inner,
            wire,
            seen,
            pos: 0,
            appended: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Wiretap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Wire::Truncate(n) = self.wire {
            if self.pos >= n {
                return Poll::Ready(Ok(()));
            }
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let got = buf.filled().len() - before;
            let start = self.pos;
            match self.wire {
                Wire::Flip(at) if at >= start && at < start + got => {
                    buf.filled_mut()[before + at - start] ^= 0x01;
                }
                Wire::Truncate(n) if start + got > n => {
                    buf.set_filled(before + (n - start));
                }
                Wire::Append(extra) if got == 0 && !self.appended => {
                    self.appended = true;
                    buf.put_slice(&vec![0x42; extra]);
                }
                _ => {}
            }
            self.pos += buf.filled().len() - before;
            self.seen
                .lock()
                .expect("the wiretap record")
                .extend_from_slice(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wiretap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The namespace of [`PipeAdapter`]'s `<transport/>`.
pub const PIPE_NS: &str = "urn:jet:test:pipe-transport";

/// How the offerer's half of a [`PipeAdapter`] pipe ends when its
/// `shutdown` is called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ending {
    /// It closes (end of stream for the reader).
    #[default]
    Closes,
    /// It flushes but does not close: what a deployed sender (Dino,
    /// Conversations) looks like from the receiving end.
    NeverCloses,
    /// It flushes, then the close is refused (the receiver already ended
    /// the session and refuses an IBB `<close/>`).
    CloseRefused,
}

/// The offerer's half of the pipe with an [`Ending`].
struct Ends(DuplexStream, Ending);

impl AsyncRead for Ends {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Ends {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.1 {
            Ending::Closes => Pin::new(&mut self.0).poll_shutdown(cx),
            Ending::NeverCloses => Pin::new(&mut self.0).poll_flush(cx),
            Ending::CloseRefused => {
                std::task::ready!(Pin::new(&mut self.0).poll_flush(cx))?;
                Poll::Ready(Err(io::Error::other("the peer refused IBB close")))
            }
        }
    }
}

/// TEST-ONLY transport: an in-process pipe (a tokio duplex) shared by both
/// parties' drivers; clone one value for both. The answerer signals
/// readiness with a transport-info, so the signalling path is exercised;
/// the answerer's half reads through a [`Wiretap`].
#[derive(Clone)]
pub struct PipeAdapter {
    halves: Arc<Mutex<HashMap<String, DuplexStream>>>,
    next: Arc<AtomicU64>,
    /// What the receiving (answering) end reads, after the tampering.
    pub seen: Arc<Mutex<Vec<u8>>>,
    /// What the man in the middle does to the answerer's reads.
    pub wire: Wire,
    /// How the offerer's half ends.
    pub ending: Arc<Mutex<Ending>>,
    /// Bytes the pipe buffers in each direction.
    pub capacity: usize,
}

impl Default for PipeAdapter {
    fn default() -> Self {
        PipeAdapter {
            halves: Arc::default(),
            next: Arc::default(),
            seen: Arc::default(),
            wire: Wire::Honest,
            ending: Arc::default(),
            capacity: 4096,
        }
    }
}

impl PipeAdapter {
    /// An honest pipe of 4 KiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same pipe with a man in the middle doing `wire`.
    pub fn with_wire(mut self, wire: Wire) -> Self {
        self.wire = wire;
        self
    }

    /// The same pipe buffering `capacity` bytes.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// From now on, offerers' halves end as `ending` says.
    pub fn set_ending(&self, ending: Ending) {
        *self.ending.lock().expect("the pipe's ending") = ending;
    }
}

struct PipeNegotiation {
    id: String,
    half: Option<BoxedStream>,
    offerer: bool,
}

#[async_trait]
impl TransportAdapter for PipeAdapter {
    fn namespace(&self) -> &'static str {
        PIPE_NS
    }
    async fn offer(
        &self,
        _ctx: &TransportContext,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        let id = format!("pipe{}", self.next.fetch_add(1, Ordering::Relaxed));
        let (a, b) = tokio::io::duplex(self.capacity);
        self.halves
            .lock()
            .expect("the pipe table")
            .insert(id.clone(), b);
        let ending = *self.ending.lock().expect("the pipe's ending");
        Ok(Box::new(PipeNegotiation {
            id,
            half: Some(Box::new(Ends(a, ending))),
            offerer: true,
        }))
    }
    async fn answer(
        &self,
        _ctx: &TransportContext,
        offer: &Element,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError> {
        let id = offer.attr("id").unwrap_or_default().to_string();
        let half = self
            .halves
            .lock()
            .expect("the pipe table")
            .remove(&id)
            .ok_or_else(|| TransportError::Protocol(format!("no pipe {id}")))?;
        Ok(Box::new(PipeNegotiation {
            id,
            half: Some(Box::new(Wiretap::new(half, self.wire, self.seen.clone()))),
            offerer: false,
        }))
    }
}

#[async_trait]
impl TransportNegotiation for PipeNegotiation {
    fn local_transport(&self) -> Element {
        Element::builder("transport", PIPE_NS)
            .a("id", self.id.as_str())
            .build()
    }
    fn set_remote(&mut self, remote: &Element) -> Result<(), TransportError> {
        if remote.attr("id") != Some(self.id.as_str()) {
            return Err(TransportError::Protocol("wrong pipe".into()));
        }
        Ok(())
    }
    async fn establish(
        mut self: Box<Self>,
        signals: &mut dyn TransportSignals,
    ) -> Result<BoxedStream, TransportError> {
        if self.offerer {
            let info = signals.recv_info().await?;
            if info.get_child("ready", PIPE_NS).is_none() {
                return Err(TransportError::Protocol("expected <ready/>".into()));
            }
        } else {
            let ready = Element::builder("transport", PIPE_NS)
                .a("id", self.id.as_str())
                .append(Element::builder("ready", PIPE_NS).build())
                .build();
            signals.send_info(ready).await?;
        }
        self.half
            .take()
            .ok_or_else(|| TransportError::Protocol("used twice".into()))
    }
}
