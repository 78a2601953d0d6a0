//! The cipher-suite trait and the streaming interfaces it hands out.
//!
//! A suite is a descriptor (URN, sizes) plus factories for a streaming
//! encryptor and decryptor, in the shape of rustls' `CryptoProvider`. The
//! traits work on byte slices so they are object safe (RustCrypto's `aead`
//! traits are not); `jet-ciphers` implements them.
//!
//! The JET layer on a byte stream is: bytes in → [`StreamEncryptor::update`] →
//! ciphertext out, then [`StreamEncryptor::finish`] for the tag(s). The
//! receiver feeds what arrives to [`StreamDecryptor::update`] and must call
//! [`StreamDecryptor::finish`] at the end of the stream: only then is the
//! whole stream authenticated.

use std::fmt;

use crate::error::CipherError;
use crate::secret::{SecretShape, TransportSecret};

/// How a suite lays out its ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// The whole stream is ONE AEAD message: ciphertext then one tag at the
    /// end. Nothing is authenticated before the end; at most
    /// `max_plaintext` bytes.
    SingleMessage {
        /// Largest plaintext one message may carry.
        max_plaintext: u64,
    },
    /// The stream is cut into chunks of `chunk_len` plaintext bytes, each
    /// with its own tag; each chunk is authenticated on its own.
    Chunked {
        /// Plaintext bytes per chunk (the last may be shorter).
        chunk_len: usize,
    },
}

/// A cipher suite: identifier, sizes, and the factories for the streaming
/// encryptor and decryptor. Used as `&'static dyn CipherSuite`.
pub trait CipherSuite: Send + Sync + fmt::Debug {
    /// The URN, with its `:0` suffix, e.g. `urn:xmpp:ciphers:aes-256-gcm-nopadding:0`.
    fn urn(&self) -> &'static str;
    /// A short human name, e.g. `AES-256-GCM`.
    fn name(&self) -> &'static str;
    /// Key length in bytes.
    fn key_len(&self) -> usize;
    /// IV length in bytes that we generate.
    fn iv_len(&self) -> usize;
    /// IV lengths we accept from peers (default: only [`iv_len`](Self::iv_len)).
    fn accepted_iv_lens(&self) -> &'static [usize];
    /// The sizes of its transport secret, what an envelope needs to read
    /// one ([`crate::envelope::EnvelopeBackend::open`]).
    fn secret_shape(&self) -> SecretShape {
        SecretShape::new(self.key_len(), self.iv_len(), self.accepted_iv_lens())
    }
    /// Tag length in bytes.
    fn tag_len(&self) -> usize;
    /// The ciphertext layout.
    fn framing(&self) -> Framing;
    /// Ciphertext length for `plaintext_len` bytes of plaintext.
    fn ciphertext_len(&self, plaintext_len: u64) -> u64;
    /// A streaming encryptor for one stream under `secret`.
    fn encryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamEncryptor>, CipherError>;
    /// A streaming decryptor for one stream under `secret`.
    fn decryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamDecryptor>, CipherError>;
}

/// Encrypts one stream incrementally.
pub trait StreamEncryptor: Send {
    /// Encrypts `input` and appends the ciphertext available so far to `out`
    /// (a chunked suite may hold back an incomplete chunk).
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError>;
    /// Ends the stream: appends the held-back ciphertext and the final tag.
    /// Calling `update` or `finish` afterwards gives [`CipherError::Finished`].
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CipherError>;
}

/// Decrypts one stream incrementally.
///
/// For [`Framing::SingleMessage`] suites the plaintext released by `update`
/// is **not authenticated** until `finish` returns `Ok`: write it to a
/// partial file, never to its final name.
pub trait StreamDecryptor: Send {
    /// Feeds ciphertext and appends the plaintext it can release to `out`.
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError>;
    /// Ends the stream: checks the final tag, appends any remaining plaintext.
    /// Fails with [`CipherError::Authentication`] or [`CipherError::Truncated`].
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CipherError>;
    /// Plaintext bytes released so far that are authenticated (chunked:
    /// whole chunks; single message: 0 until `finish` succeeds).
    fn authenticated_len(&self) -> u64;
}
