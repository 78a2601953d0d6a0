//! The JET layer on a byte stream: any `AsyncRead + AsyncWrite` in, the
//! same out, encrypted (in the shape of a libp2p transport upgrade). It is
//! the one stream layer over the [`StreamEncryptor`] / [`StreamDecryptor`]
//! traits: the sessions, `jet encrypt` / `jet decrypt` and jet-ciphers
//! (which re-exports it) all use it. A sending stream needs only an
//! `AsyncWrite` inside (a file, a `Vec<u8>`), a receiving one only an
//! `AsyncRead`; [`encrypt_stream`] and [`decrypt_stream`] copy a whole
//! stream through it.
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
//!
//! # Pipeline
//!
//! Encryption and the socket overlap instead of taking turns. The cipher
//! state lives in an *engine* that is either at home or away on tokio's
//! blocking pool working on one batch (up to [`BATCH`] bytes); meanwhile
//! the stream keeps writing the previous batch's ciphertext to the socket
//! and accepting the caller's next plaintext (sending), or keeps reading
//! the next ciphertext from the socket and handing out the previous
//! batch's plaintext (receiving). Batches grow by themselves while the
//! engine is busy, so the hand-off cost is paid per large batch; pieces
//! under [`OFFLOAD_MIN`], and every piece when there is no tokio runtime
//! (or jet-core is built without its `tokio` feature), are processed
//! inline as before. The cipher state is used by one batch at a time, in
//! order, so the ciphertext is byte for byte the one of the inline path.
//!
//! Memory per stream is bounded: at most one batch of pending input, one
//! batch in the engine and two batches of output waiting.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::cipher::{CipherSuite, StreamDecryptor, StreamEncryptor};
use crate::error::CipherError;
use crate::secret::TransportSecret;

/// Which way the protected data flows for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We write (encrypt).
    Send,
    /// We read (decrypt).
    Receive,
}

/// Largest piece of input handed to the cipher engine at once.
pub const BATCH: usize = 1024 * 1024;
/// Pieces smaller than this are encrypted or decrypted inline: handing
/// them to another thread would cost more than it saves.
pub const OFFLOAD_MIN: usize = 32 * 1024;

/// Output batches that may wait for the socket (sending) or the caller
/// (receiving) before the engine is given more work.
const MAX_WAITING: usize = 2;

/// The cipher state of one direction.
enum Coder {
    Enc(Box<dyn StreamEncryptor>),
    Dec(Box<dyn StreamDecryptor>),
}

impl Coder {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        match self {
            Coder::Enc(e) => e.update(input, out),
            Coder::Dec(d) => d.update(input, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CipherError> {
        match self {
            Coder::Enc(e) => e.finish(out),
            Coder::Dec(d) => d.finish(out),
        }
    }

    fn authenticated_len(&self) -> u64 {
        match self {
            Coder::Enc(_) => 0,
            Coder::Dec(d) => d.authenticated_len(),
        }
    }
}

/// One batch: `input[..input_len]` in, `output` out; with `finish` the
/// stream ends after it.
struct Job {
    input: Vec<u8>,
    input_len: usize,
    output: Vec<u8>,
    finish: bool,
    result: Result<(), CipherError>,
    authenticated: u64,
}

impl Job {
    fn run(mut self, coder: &mut Coder) -> Self {
        let input = &self.input[..self.input_len];
        let mut r = if input.is_empty() {
            Ok(())
        } else {
            coder.update(input, &mut self.output)
        };
        if r.is_ok() && self.finish {
            r = coder.finish(&mut self.output);
        }
        self.result = r;
        self.authenticated = coder.authenticated_len();
        self
    }
}

/// Where the cipher state is: here, or away working on a batch.
enum Engine {
    Home(Coder),
    #[cfg(feature = "tokio")]
    Away(tokio::task::JoinHandle<(Coder, Job)>),
    /// Only while moving between the two.
    Moving,
}

impl Engine {
    fn is_home(&self) -> bool {
        matches!(self, Engine::Home(_))
    }

    /// Starts `job`. Small jobs, and all jobs without a runtime, run here
    /// and come back at once; the others come back through [`Self::poll_done`].
    fn start(&mut self, job: Job, offload: bool) -> Option<Job> {
        let Engine::Home(coder) = std::mem::replace(self, Engine::Moving) else {
            unreachable!("a batch was started while the engine was away");
        };
        let mut coder = coder;
        #[cfg(not(feature = "tokio"))]
        let _ = offload;
        #[cfg(feature = "tokio")]
        if offload && job.input_len >= OFFLOAD_MIN {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                *self = Engine::Away(rt.spawn_blocking(move || {
                    let job = job.run(&mut coder);
                    (coder, job)
                }));
                return None;
            }
        }
        let job = job.run(&mut coder);
        *self = Engine::Home(coder);
        Some(job)
    }

    /// The batch that was away, once done.
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Job>> {
        #[cfg(not(feature = "tokio"))]
        let _ = cx;
        match self {
            #[cfg(feature = "tokio")]
            Engine::Away(handle) => {
                use std::future::Future;
                match Pin::new(handle).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok((coder, job))) => {
                        *self = Engine::Home(coder);
                        Poll::Ready(Ok(job))
                    }
                    Poll::Ready(Err(e)) => {
                        *self = Engine::Moving;
                        Poll::Ready(Err(io::Error::other(format!(
                            "the JET cipher worker stopped: {e}"
                        ))))
                    }
                }
            }
            _ => Poll::Pending,
        }
    }

    fn is_away(&self) -> bool {
        #[cfg(feature = "tokio")]
        if matches!(self, Engine::Away(_)) {
            return true;
        }
        false
    }
}

/// Buffers kept for reuse between batches.
#[derive(Default)]
struct Pool(Vec<Vec<u8>>);

impl Pool {
    /// An empty buffer.
    fn empty(&mut self) -> Vec<u8> {
        let mut b = self.0.pop().unwrap_or_default();
        b.clear();
        b
    }

    /// A buffer of `len` bytes (contents unspecified) to read into.
    fn sized(&mut self, len: usize) -> Vec<u8> {
        let mut b = self.0.pop().unwrap_or_default();
        b.resize(len, 0);
        b
    }

    fn put(&mut self, b: Vec<u8>) {
        if self.0.len() < 4 && b.capacity() <= 2 * BATCH {
            self.0.push(b);
        }
    }
}

/// Why a stream cannot go on.
#[derive(Debug, Clone)]
enum Broken {
    Cipher(CipherError),
    Worker(String),
    Appended,
}

impl Broken {
    fn to_io(&self) -> io::Error {
        match self {
            Broken::Cipher(e) => cipher_io(e.clone()),
            Broken::Worker(m) => io::Error::other(m.clone()),
            Broken::Appended => io::Error::new(io::ErrorKind::InvalidData, Appended),
        }
    }
}

/// The error inside the I/O error of a receiving [`JetStream`] whose peer
/// sent bytes beyond the expected length
/// ([`JetStream::set_expected_len`]). Nothing of the stream is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended;

impl std::fmt::Display for Appended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the peer sent more than the announced size")
    }
}

impl std::error::Error for Appended {}

/// Whether `e` is a [`JetStream`]'s [`Appended`] error.
pub fn appended_of(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<Appended>())
}

struct Sending {
    /// Plaintext accepted from the caller, not yet given to the engine.
    pending: Vec<u8>,
    /// Ciphertext waiting for the socket, oldest first.
    out: VecDeque<Vec<u8>>,
    /// Bytes of `out.front()` already written.
    opos: usize,
    /// `shutdown` was called: no more plaintext; the final tag is due.
    finish_requested: bool,
    /// The batch carrying the final tag has been started.
    final_started: bool,
    /// ... and has come back.
    finished: bool,
}

struct Receiving {
    /// Ciphertext read from the socket, `cin[..cfill]`, not yet given to
    /// the engine.
    cin: Vec<u8>,
    cfill: usize,
    /// The socket reached end of stream.
    eof: bool,
    final_started: bool,
    /// Plaintext for the caller, oldest first.
    ready: VecDeque<Vec<u8>>,
    /// Bytes of `ready.front()` already handed out.
    rpos: usize,
    /// Set once the final tag checked (or any check failed).
    end: Option<Result<(), CipherError>>,
    /// Plaintext bytes handed to the caller.
    delivered: u64,
    /// Plaintext bytes put into `ready` so far.
    pushed: u64,
    /// Plaintext bytes the decryptor has authenticated.
    authenticated: u64,
    /// Ciphertext bytes the stream carries, when known: reaching it is the
    /// end of the stream, whether or not the sender closes it.
    expected: Option<u64>,
    /// Ciphertext bytes read from the socket.
    wire: u64,
    /// The socket ended before `expected` bytes.
    short: bool,
    /// After `expected` bytes, the socket was looked at once more for
    /// bytes beyond.
    probed: bool,
}

enum Side {
    Send(Sending),
    Receive(Receiving),
}

/// A byte stream wrapped in a JET cipher, one direction.
pub struct JetStream<S> {
    inner: S,
    engine: Engine,
    side: Side,
    pool: Pool,
    broken: Option<Broken>,
    offload: bool,
    /// Batches handed to the blocking pool so far.
    offloaded: u64,
}

/// The [`CipherError`] inside an I/O error from a [`JetStream`], if any.
pub fn cipher_error_of(e: &io::Error) -> Option<&CipherError> {
    e.get_ref().and_then(|i| i.downcast_ref::<CipherError>())
}

fn cipher_io(e: CipherError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S> JetStream<S> {
    /// Wraps `inner` with `suite` under `secret`, for `direction`.
    pub fn new(
        inner: S,
        suite: &dyn CipherSuite,
        secret: &TransportSecret,
        direction: Direction,
    ) -> Result<Self, CipherError> {
        let (coder, side) = match direction {
            Direction::Send => (
                Coder::Enc(suite.encryptor(secret)?),
                Side::Send(Sending {
                    pending: Vec::new(),
                    out: VecDeque::new(),
                    opos: 0,
                    finish_requested: false,
                    final_started: false,
                    finished: false,
                }),
            ),
            Direction::Receive => (
                Coder::Dec(suite.decryptor(secret)?),
                Side::Receive(Receiving {
                    cin: Vec::new(),
                    cfill: 0,
                    eof: false,
                    final_started: false,
                    ready: VecDeque::new(),
                    rpos: 0,
                    end: None,
                    delivered: 0,
                    pushed: 0,
                    authenticated: 0,
                    expected: None,
                    wire: 0,
                    short: false,
                    probed: false,
                }),
            ),
        };
        Ok(JetStream {
            inner,
            engine: Engine::Home(coder),
            side,
            pool: Pool::default(),
            broken: None,
            offload: true,
            offloaded: 0,
        })
    }

    /// How many batches this stream has handed to the blocking pool (a
    /// statistic: 0 means every batch was processed inline).
    pub fn batches_offloaded(&self) -> u64 {
        self.offloaded
    }

    /// Turns the pipeline off (`false`: every batch is encrypted or
    /// decrypted inline, taking turns with the socket) or back on (the
    /// default). The bytes on the wire are the same either way; this is
    /// for measuring what the pipeline brings, or for callers that must
    /// not use tokio's blocking pool.
    pub fn set_pipelined(&mut self, on: bool) {
        self.offload = on;
    }

    /// Receiving: the stream carries exactly `wire_len` ciphertext bytes
    /// (with the tag(s): [`CipherSuite::ciphertext_len`] of the announced
    /// plaintext size). Once that many have arrived the final tag is
    /// checked and end of stream reported, without waiting for the sender
    /// to close the stream: deployed senders (Dino, Conversations) keep it
    /// open until the receiver ends the session. A byte beyond it is an
    /// error ([`CipherError::Authentication`]: the stream was appended to),
    /// and an end of stream short of it is [`CipherError::Truncated`].
    /// No effect on a sending stream.
    pub fn set_expected_len(&mut self, wire_len: u64) {
        if let Side::Receive(r) = &mut self.side {
            r.expected = Some(wire_len);
            if r.wire >= wire_len {
                r.eof = true;
            }
        }
    }

    /// Ciphertext bytes read from the wrapped stream so far (receiving).
    pub fn wire_len(&self) -> u64 {
        match &self.side {
            Side::Receive(r) => r.wire,
            Side::Send(_) => 0,
        }
    }

    /// Plaintext bytes received so far that are authenticated (and handed
    /// to the caller).
    pub fn authenticated_len(&self) -> u64 {
        match &self.side {
            Side::Receive(r) => r.authenticated.min(r.delivered),
            Side::Send(_) => 0,
        }
    }

    /// Receiving: whether end of stream was reached and the whole stream
    /// authenticated (the final tag checked).
    pub fn is_authenticated(&self) -> bool {
        match &self.side {
            Side::Receive(r) => matches!(r.end, Some(Ok(()))) && r.ready.is_empty(),
            Side::Send(_) => false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream. A batch still being worked on is dropped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn check_broken(&self) -> io::Result<()> {
        match &self.broken {
            Some(b) => Err(b.to_io()),
            None => Ok(()),
        }
    }

    /// Collects the batch that was away, if it is done.
    fn poll_engine(&mut self, cx: &mut Context<'_>) -> io::Result<Option<Job>> {
        if !self.engine.is_away() {
            return Ok(None);
        }
        match self.engine.poll_done(cx) {
            Poll::Pending => Ok(None),
            Poll::Ready(Ok(job)) => Ok(Some(job)),
            Poll::Ready(Err(e)) => {
                self.broken = Some(Broken::Worker(e.to_string()));
                Err(e)
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> JetStream<S> {
    /// Takes back a finished encryption batch.
    fn sent_batch(&mut self, job: Job) -> io::Result<()> {
        let Side::Send(s) = &mut self.side else {
            unreachable!("an encryption batch on a receiving stream")
        };
        self.pool.put(job.input);
        if let Err(e) = job.result {
            self.pool.put(job.output);
            self.broken = Some(Broken::Cipher(e.clone()));
            return Err(cipher_io(e));
        }
        if job.output.is_empty() {
            self.pool.put(job.output);
        } else {
            s.out.push_back(job.output);
        }
        if job.finish {
            s.finished = true;
        }
        Ok(())
    }

    /// Moves the sending pipeline as far as it goes without waiting:
    /// collects a finished batch, starts the next one, writes ciphertext.
    /// Whatever could not go on has registered `cx` to be woken.
    fn pump_send(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            let mut progress = false;
            if let Some(job) = self.poll_engine(cx)? {
                self.sent_batch(job)?;
                progress = true;
            }
            let Side::Send(s) = &mut self.side else {
                unreachable!("pump_send on a receiving stream")
            };
            if self.engine.is_home()
                && !s.final_started
                && s.out.len() < MAX_WAITING
                && (!s.pending.is_empty() || s.finish_requested)
            {
                s.final_started = s.finish_requested;
                let input = std::mem::replace(&mut s.pending, self.pool.empty());
                let job = Job {
                    input_len: input.len(),
                    input,
                    output: self.pool.empty(),
                    finish: s.final_started,
                    result: Ok(()),
                    authenticated: 0,
                };
                match self.engine.start(job, self.offload) {
                    Some(job) => self.sent_batch(job)?,
                    None => self.offloaded += 1,
                }
                progress = true;
            }
            let Side::Send(s) = &mut self.side else {
                unreachable!("pump_send on a receiving stream")
            };
            while let Some(front) = s.out.front() {
                match Pin::new(&mut self.inner).poll_write(cx, &front[s.opos..]) {
                    Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(n)) => {
                        progress = true;
                        s.opos += n;
                        if s.opos == front.len() {
                            s.opos = 0;
                            if let Some(done) = s.out.pop_front() {
                                self.pool.put(done);
                            }
                        }
                    }
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => break,
                }
            }
            if !progress {
                return Ok(());
            }
        }
    }
}

impl<S: AsyncRead + Unpin> JetStream<S> {
    /// Takes back a finished decryption batch.
    fn received_batch(&mut self, job: Job) {
        let Side::Receive(r) = &mut self.side else {
            unreachable!("a decryption batch on a sending stream")
        };
        self.pool.put(job.input);
        r.authenticated = job.authenticated;
        let mut output = job.output;
        let mut result = job.result;
        if job.finish && r.short {
            // Whatever the decryptor made of it, the stream was cut.
            result = Err(CipherError::Truncated);
        }
        if let Err(e) = result {
            // Of a failed batch only what the decryptor authenticated is
            // handed out (the whole chunks before a bad one, for a chunked
            // suite; nothing for a single-message suite), after the earlier
            // batches; then the error.
            let keep = r.authenticated.saturating_sub(r.pushed);
            output.truncate(
                usize::try_from(keep)
                    .unwrap_or(usize::MAX)
                    .min(output.len()),
            );
            r.end = Some(Err(e));
        }
        if output.is_empty() {
            self.pool.put(output);
        } else {
            r.pushed += output.len() as u64;
            r.ready.push_back(output);
        }
        if r.end.is_some() {
            return;
        }
        if job.finish {
            r.end = Some(Ok(()));
        }
    }

    /// Moves the receiving pipeline as far as it goes without waiting:
    /// collects a finished batch, starts the next one, reads ciphertext.
    fn pump_receive(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            let mut progress = false;
            if let Some(job) = self.poll_engine(cx)? {
                self.received_batch(job);
                progress = true;
            }
            let Side::Receive(r) = &mut self.side else {
                unreachable!("pump_receive on a sending stream")
            };
            if self.engine.is_home()
                && !r.final_started
                && r.end.is_none()
                && r.ready.len() < MAX_WAITING
                && (r.cfill > 0 || r.eof)
            {
                r.final_started = r.eof;
                let input = std::mem::replace(&mut r.cin, self.pool.sized(BATCH));
                let job = Job {
                    input,
                    input_len: r.cfill,
                    output: self.pool.empty(),
                    finish: r.final_started,
                    result: Ok(()),
                    authenticated: 0,
                };
                r.cfill = 0;
                match self.engine.start(job, self.offload) {
                    Some(job) => self.received_batch(job),
                    None => self.offloaded += 1,
                }
                progress = true;
            }
            let Side::Receive(r) = &mut self.side else {
                unreachable!("pump_receive on a sending stream")
            };
            if !r.eof && r.end.is_none() && r.cfill < BATCH {
                if r.cin.len() < BATCH {
                    r.cin = self.pool.sized(BATCH);
                }
                let mut rb = ReadBuf::new(&mut r.cin[r.cfill..]);
                match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        if n == 0 {
                            // Short of the announced length: cut, not
                            // tampered (which a whole-stream decryptor alone
                            // cannot tell apart). The final batch still
                            // runs, so a chunked stream hands out the chunks
                            // it authenticated before the cut.
                            r.short = r.expected.is_some_and(|e| r.wire < e);
                            r.eof = true;
                        } else {
                            r.cfill += n;
                            r.wire += n as u64;
                            if let Some(expected) = r.expected {
                                if r.wire > expected {
                                    // More than the announced size: the
                                    // stream was appended to. Nothing of it
                                    // is handed out.
                                    self.broken = Some(Broken::Appended);
                                    return Err(Broken::Appended.to_io());
                                }
                                r.eof = r.wire == expected;
                            }
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => {}
                }
            }
            if !progress {
                return Ok(());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JetStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_broken()?;
        match &this.side {
            Side::Receive(_) => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this JET stream only receives",
                )))
            }
            Side::Send(s) if s.finish_requested => {
                return Poll::Ready(Err(cipher_io(CipherError::Finished)))
            }
            Side::Send(_) => {}
        }
        let full = |this: &Self| matches!(&this.side, Side::Send(s) if s.pending.len() >= BATCH);
        if full(this) {
            this.pump_send(cx)?;
            if full(this) {
                // The engine or the socket registered the wake-up.
                return Poll::Pending;
            }
        }
        let Side::Send(s) = &mut this.side else {
            unreachable!("checked above")
        };
        let take = buf.len().min(BATCH - s.pending.len());
        s.pending.extend_from_slice(&buf[..take]);
        // Start the batch if the engine is idle, and write what is ready.
        this.pump_send(cx)?;
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_broken()?;
        if let Side::Send(_) = this.side {
            this.pump_send(cx)?;
            let Side::Send(s) = &this.side else {
                unreachable!("checked above")
            };
            let idle = s.pending.is_empty() && s.out.is_empty() && !this.engine.is_away();
            if !idle {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_broken()?;
        if let Side::Send(s) = &mut this.side {
            s.finish_requested = true;
            this.pump_send(cx)?;
            let Side::Send(s) = &this.side else {
                unreachable!("checked above")
            };
            if !(s.finished && s.out.is_empty()) {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JetStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Side::Send(_) = this.side {
            // Nothing may come back on a one-way content: it could only be
            // plaintext.
            let mut probe = [0u8; 64];
            let mut rb = ReadBuf::new(&mut probe);
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the receiving side sent data on a one-way JET stream",
            )));
        }
        this.check_broken()?;
        this.pump_receive(cx)?;
        let Side::Receive(r) = &mut this.side else {
            unreachable!("checked above")
        };
        if let Some(front) = r.ready.front() {
            let n = (front.len() - r.rpos).min(buf.remaining());
            buf.put_slice(&front[r.rpos..r.rpos + n]);
            r.rpos += n;
            r.delivered += n as u64;
            if r.rpos == front.len() {
                r.rpos = 0;
                if let Some(done) = r.ready.pop_front() {
                    this.pool.put(done);
                }
            }
            return Poll::Ready(Ok(()));
        }
        match &r.end {
            Some(Ok(())) if r.expected.is_some() && !r.short && !r.probed => {
                // The expected length was reached, not EOF: bytes that
                // already wait beyond it were appended (an error); none, or
                // none yet, is the clean end a deployed sender gives.
                r.probed = true;
                let mut probe = [0u8; 64];
                let mut rb = ReadBuf::new(&mut probe);
                if let Poll::Ready(Ok(())) = Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                    if !rb.filled().is_empty() {
                        this.broken = Some(Broken::Appended);
                        return Poll::Ready(Err(Broken::Appended.to_io()));
                    }
                }
                Poll::Ready(Ok(()))
            }
            Some(Ok(())) => Poll::Ready(Ok(())),
            Some(Err(e)) => Poll::Ready(Err(cipher_io(e.clone()))),
            // The engine or the socket registered the wake-up.
            None => Poll::Pending,
        }
    }
}

/// Read and write size of [`encrypt_stream`] and [`decrypt_stream`]: one
/// [`BATCH`], so that each read of a tokio file (a hop to the blocking
/// pool) feeds a whole batch to the cipher.
pub const COPY_BUF_LEN: usize = BATCH;

/// A writer whose `shutdown` only flushes: [`encrypt_stream`] finishes the
/// cipher stream without closing the caller's writer.
struct KeepOpen<W>(W);

impl<W: AsyncWrite + Unpin> AsyncWrite for KeepOpen<W> {
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
        Pin::new(&mut self.0).poll_flush(cx)
    }
}

/// Encrypts everything `reader` yields into `writer` with `suite` under
/// `secret` through a pipelined [`JetStream`], writes the final tag(s) and
/// flushes (`writer` is not shut down). Returns the number of plaintext
/// bytes. A [`CipherError`] comes back inside the `io::Error`
/// ([`cipher_error_of`]).
pub async fn encrypt_stream<R, W>(
    suite: &dyn CipherSuite,
    secret: &TransportSecret,
    mut reader: R,
    writer: W,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tx =
        JetStream::new(KeepOpen(writer), suite, secret, Direction::Send).map_err(cipher_io)?;
    let mut buf = vec![0u8; COPY_BUF_LEN];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        tx.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    tx.shutdown().await?;
    Ok(total)
}

/// Decrypts everything `reader` yields into `writer` with `suite` under
/// `secret` through a pipelined [`JetStream`] and flushes. Returns the
/// number of plaintext bytes once the whole stream authenticated.
///
/// On an error, `writer` may already hold plaintext that did **not**
/// authenticate (single-message suites release plaintext before the tag):
/// write into a temporary file and give it its final name only after `Ok`.
pub async fn decrypt_stream<R, W>(
    suite: &dyn CipherSuite,
    secret: &TransportSecret,
    reader: R,
    mut writer: W,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut rx = JetStream::new(reader, suite, secret, Direction::Receive).map_err(cipher_io)?;
    let mut buf = vec![0u8; COPY_BUF_LEN];
    let mut total = 0u64;
    loop {
        let n = rx.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        writer.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    writer.flush().await?;
    Ok(total)
}

/// Read size of [`encrypt_blocking`] and [`decrypt_blocking`].
pub const BLOCKING_BUF_LEN: usize = 4 * 1024 * 1024;

/// Output buffers that may wait for the writing thread.
const BLOCKING_DEPTH: usize = 2;

/// Runs `coder` over everything `reader` yields on this thread while a
/// second thread writes its output to `writer`: with both on their own
/// core, the time is that of the slower one (the cipher, or the kernel
/// creating the output file) instead of the sum. Large reads and writes,
/// no flush per piece, buffers reused. Returns the bytes read and the
/// bytes written.
fn pipe_blocking<R, W>(mut coder: Coder, mut reader: R, mut writer: W) -> io::Result<(u64, u64)>
where
    R: io::Read,
    W: io::Write + Send,
{
    use std::sync::mpsc;
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(BLOCKING_DEPTH);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let writing = std::thread::Builder::new()
            .name("jet-file-writer".into())
            .spawn_scoped(scope, move || -> io::Result<()> {
                for mut b in full_rx {
                    writer.write_all(&b)?;
                    b.clear();
                    let _ = free_tx.send(b);
                }
                writer.flush()
            })?;
        let mut input = vec![0u8; BLOCKING_BUF_LEN];
        // An output buffer the cipher left empty (a chunked suite holding
        // back a short chunk), for the next round.
        let mut unused: Option<Vec<u8>> = None;
        let mut total = 0u64;
        let mut produced = 0u64;
        let coded: io::Result<()> = (|| {
            loop {
                let n = match reader.read(&mut input) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                let mut out = unused
                    .take()
                    .or_else(|| free_rx.try_recv().ok())
                    .unwrap_or_else(|| Vec::with_capacity(BLOCKING_BUF_LEN + 4096));
                if n == 0 {
                    coder.finish(&mut out).map_err(cipher_io)?;
                } else {
                    coder.update(&input[..n], &mut out).map_err(cipher_io)?;
                    total += n as u64;
                }
                produced += out.len() as u64;
                if out.is_empty() {
                    unused = Some(out);
                } else if full_tx.send(out).is_err() {
                    // The writer stopped: its error follows.
                    return Ok(());
                }
                if n == 0 {
                    return Ok(());
                }
            }
        })();
        drop(full_tx);
        let written = writing
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the writing thread panicked")));
        coded?;
        written?;
        Ok((total, produced))
    })
}

/// [`encrypt_stream`] for blocking I/O (files, pipes): encrypts everything
/// `reader` yields into `writer` with `suite` under `secret`, the cipher on
/// this thread and the writes on another, then flushes. Returns the number
/// of plaintext bytes. This is what `jet encrypt` runs; the async layer
/// adds a hop to tokio's blocking pool per file read and write.
pub fn encrypt_blocking<R, W>(
    suite: &dyn CipherSuite,
    secret: &TransportSecret,
    reader: R,
    writer: W,
) -> io::Result<u64>
where
    R: io::Read,
    W: io::Write + Send,
{
    let enc = suite.encryptor(secret).map_err(cipher_io)?;
    Ok(pipe_blocking(Coder::Enc(enc), reader, writer)?.0)
}

/// [`decrypt_stream`] for blocking I/O: decrypts everything `reader`
/// yields into `writer`, the cipher on this thread and the writes on
/// another. Returns the number of plaintext bytes once the whole stream
/// authenticated. As with [`decrypt_stream`], `writer` may hold
/// unauthenticated plaintext when this fails: write into a temporary file.
pub fn decrypt_blocking<R, W>(
    suite: &dyn CipherSuite,
    secret: &TransportSecret,
    reader: R,
    writer: W,
) -> io::Result<u64>
where
    R: io::Read,
    W: io::Write + Send,
{
    let dec = suite.decryptor(secret).map_err(cipher_io)?;
    Ok(pipe_blocking(Coder::Dec(dec), reader, writer)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TEST_XOR;
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

    /// A writer that fails after `left` bytes.
    struct FailingWriter {
        left: usize,
    }

    impl io::Write for FailingWriter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = b.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The blocking pipeline (`jet encrypt` / `jet decrypt`) gives the
    /// one-shot wire bytes over several buffers, refuses tampered and cut
    /// streams, and reports a failing writer instead of hanging.
    #[test]
    fn blocking_pipeline_matches_one_shot_and_fails_cleanly() {
        let ts = secret();
        let plain: Vec<u8> = (0..3 * BLOCKING_BUF_LEN + 12_345)
            .map(|i| (i % 253) as u8)
            .collect();
        let mut wire = Vec::new();
        let n = encrypt_blocking(&TEST_XOR, &ts, &plain[..], &mut wire).unwrap();
        assert_eq!(n, plain.len() as u64);
        assert_eq!(wire, sealed(&ts, &plain));
        let mut back = Vec::new();
        let n = decrypt_blocking(&TEST_XOR, &ts, &wire[..], &mut back).unwrap();
        assert_eq!(n, plain.len() as u64);
        assert!(back == plain);

        let mut tampered = wire.clone();
        tampered[BLOCKING_BUF_LEN + 7] ^= 1;
        let e = decrypt_blocking(&TEST_XOR, &ts, &tampered[..], io::sink()).unwrap_err();
        assert_eq!(cipher_error_of(&e), Some(&CipherError::Authentication));
        let cut = &wire[..wire.len() - 3];
        let e = decrypt_blocking(&TEST_XOR, &ts, cut, io::sink()).unwrap_err();
        assert!(cipher_error_of(&e).is_some(), "{e}");

        let e =
            encrypt_blocking(&TEST_XOR, &ts, &plain[..], FailingWriter { left: 5000 }).unwrap_err();
        assert_eq!(e.to_string(), "disk full");
    }

    fn sealed(ts: &TransportSecret, plain: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut enc = TEST_XOR.encryptor(ts).unwrap();
        enc.update(plain, &mut wire).unwrap();
        enc.finish(&mut wire).unwrap();
        wire
    }

    #[tokio::test]
    async fn a_known_length_ends_the_stream_without_eof() {
        // Deployed senders keep the stream open after the tag: the receiver
        // must finish at the announced length, not wait for EOF.
        let ts = secret();
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let wire = sealed(&ts, &plain);
        for pipelined in [true, false] {
            let (mut c, d) = tokio::io::duplex(1 << 16);
            let feeder = tokio::spawn({
                let wire = wire.clone();
                async move {
                    c.write_all(&wire).await.unwrap();
                    // Kept open (returned, not dropped) until the reader is done.
                    c
                }
            });
            let mut rx = JetStream::new(d, &TEST_XOR, &ts, Direction::Receive).unwrap();
            rx.set_pipelined(pipelined);
            rx.set_expected_len(TEST_XOR.ciphertext_len(plain.len() as u64));
            let mut got = Vec::new();
            tokio::time::timeout(std::time::Duration::from_secs(10), rx.read_to_end(&mut got))
                .await
                .expect("the reader waited for EOF")
                .unwrap();
            assert_eq!(got, plain);
            assert_eq!(rx.wire_len(), wire.len() as u64);
            assert_eq!(rx.authenticated_len(), plain.len() as u64);
            drop(feeder.await.unwrap());
        }
    }

    #[tokio::test]
    async fn bytes_beyond_the_known_length_are_an_error() {
        let ts = secret();
        let mut wire = sealed(&ts, b"exactly this much");
        let expected = wire.len() as u64;
        wire.extend_from_slice(b"and more");
        let (mut c, d) = tokio::io::duplex(1 << 16);
        c.write_all(&wire).await.unwrap();
        let mut rx = JetStream::new(d, &TEST_XOR, &ts, Direction::Receive).unwrap();
        rx.set_expected_len(expected);
        let mut got = Vec::new();
        let e = rx.read_to_end(&mut got).await.unwrap_err();
        assert!(appended_of(&e), "{e}");
        assert!(got.is_empty(), "nothing unauthenticated is handed out");
        // A tampered stream of the right length still fails at its end.
        let mut bad = sealed(&ts, b"exactly this much");
        bad[0] ^= 1;
        let (mut c, d) = tokio::io::duplex(1 << 16);
        c.write_all(&bad).await.unwrap();
        let mut rx = JetStream::new(d, &TEST_XOR, &ts, Direction::Receive).unwrap();
        rx.set_expected_len(bad.len() as u64);
        let e = rx.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert_eq!(cipher_error_of(&e), Some(&CipherError::Authentication));
        drop(c);
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
