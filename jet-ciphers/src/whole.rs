//! The whole-stream shape shared by AES-GCM and ChaCha20-Poly1305: the
//! entire stream is ONE AEAD message with empty associated data, laid out as
//! `ciphertext || tag` (XEP-0391 §6: "the whole stream is encrypted"; the
//! 16-byte tag is appended after the last byte, as Dino and Conversations do).
//!
//! A [`Sealer`] encrypts and MACs, an [`Opener`] MACs and decrypts and checks
//! the tag; this module does the streaming: on the way out, seal step by
//! step and append the tag; on the way in, hold back the last 16 bytes (the
//! tag candidate), open the rest, and check the held-back tag at `finish`.
//! Memory is constant: one 16-byte hold-back buffer and the engine's state.
//!
//! The RustCrypto engines are an [`Engine`] (a keystream and a MAC, kept
//! apart): they get [`Sealer`] and [`Opener`] from the blanket impls below,
//! which encrypt-then-MAC, MAC-then-decrypt and compare tags in constant
//! time. A library that only offers the combined operation per direction
//! (OpenSSL's `EVP_CipherUpdate`, see [`crate::gcm`]) implements
//! [`Sealer`] and [`Opener`] directly.

use jet_core::cipher::{StreamDecryptor, StreamEncryptor};
use jet_core::error::CipherError;
use subtle::ConstantTimeEq;

/// Bytes processed per keystream/MAC step, so that the MAC reads data the
/// keystream pass just left in the L1/L2 cache.
const STEP: usize = 16 * 1024;

/// Tag length of both whole-stream AEADs.
pub(crate) const TAG_LEN: usize = 16;

/// The cipher-specific half of a whole-stream AEAD, as a keystream and a MAC
/// over the ciphertext.
pub(crate) trait Engine: Send {
    /// XORs the keystream into `buf` (continuing where the last call ended).
    fn apply_keystream(&mut self, buf: &mut [u8]) -> Result<(), CipherError>;
    /// Feeds ciphertext to the MAC (continuing where the last call ended).
    fn absorb(&mut self, ciphertext: &[u8]);
    /// The tag over `ciphertext_len` bytes of ciphertext and empty AAD.
    fn tag(self, ciphertext_len: u64) -> [u8; TAG_LEN];
}

/// The encrypting direction of a whole-stream AEAD.
pub(crate) trait Sealer: Send {
    /// Encrypts `buf` in place and authenticates the ciphertext (continuing
    /// where the last call ended).
    fn seal(&mut self, buf: &mut [u8]) -> Result<(), CipherError>;
    /// Appends `input`, sealed, to `out`. On error `out` may hold part of
    /// it (the caller truncates). By default: copy, then [`seal`](Self::seal)
    /// in place, [`STEP`] bytes at a time so that the MAC reads what the
    /// keystream pass left in the cache.
    fn seal_into(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        for piece in input.chunks(STEP) {
            let start = out.len();
            out.extend_from_slice(piece);
            self.seal(&mut out[start..])?;
        }
        Ok(())
    }
    /// The tag over all `ciphertext_len` bytes sealed.
    fn seal_tag(self, ciphertext_len: u64) -> Result<[u8; TAG_LEN], CipherError>;
}

/// The decrypting direction of a whole-stream AEAD.
pub(crate) trait Opener: Send {
    /// Authenticates the ciphertext in `buf` and decrypts it in place
    /// (continuing where the last call ended).
    fn open(&mut self, buf: &mut [u8]) -> Result<(), CipherError>;
    /// Appends `ciphertext`, opened, to `out` (released unauthenticated).
    /// On error `out` may hold part of it (the caller truncates). By
    /// default: copy, then [`open`](Self::open) in place, [`STEP`] bytes at
    /// a time.
    fn open_into(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        for piece in ciphertext.chunks(STEP) {
            let start = out.len();
            out.extend_from_slice(piece);
            self.open(&mut out[start..])?;
        }
        Ok(())
    }
    /// `Ok` only if `tag` is the tag over all `ciphertext_len` bytes opened,
    /// compared in constant time; [`CipherError::Authentication`] otherwise.
    fn verify(self, ciphertext_len: u64, tag: &[u8; TAG_LEN]) -> Result<(), CipherError>;
}

/// Encrypt-then-MAC.
impl<E: Engine> Sealer for E {
    fn seal(&mut self, buf: &mut [u8]) -> Result<(), CipherError> {
        self.apply_keystream(buf)?;
        self.absorb(buf);
        Ok(())
    }

    fn seal_tag(self, ciphertext_len: u64) -> Result<[u8; TAG_LEN], CipherError> {
        Ok(self.tag(ciphertext_len))
    }
}

/// MAC-then-decrypt; the tag is recomputed and compared in constant time.
impl<E: Engine> Opener for E {
    fn open(&mut self, buf: &mut [u8]) -> Result<(), CipherError> {
        self.absorb(buf);
        self.apply_keystream(buf)
    }

    fn verify(self, ciphertext_len: u64, tag: &[u8; TAG_LEN]) -> Result<(), CipherError> {
        let expected = self.tag(ciphertext_len);
        if bool::from(expected.ct_eq(tag)) {
            Ok(())
        } else {
            Err(CipherError::Authentication)
        }
    }
}

/// Streaming encryptor over a [`Sealer`].
pub(crate) struct WholeEncryptor<E: Sealer> {
    engine: Option<E>,
    len: u64,
    limit: u64,
}

impl<E: Sealer> WholeEncryptor<E> {
    pub(crate) fn new(engine: E, limit: u64) -> Self {
        WholeEncryptor {
            engine: Some(engine),
            len: 0,
            limit,
        }
    }
}

impl<E: Sealer> StreamEncryptor for WholeEncryptor<E> {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        let engine = self.engine.as_mut().ok_or(CipherError::Finished)?;
        let new_len = self.len.saturating_add(input.len() as u64);
        if new_len > self.limit {
            self.engine = None;
            return Err(CipherError::LimitExceeded { limit: self.limit });
        }
        self.len = new_len;
        out.reserve(input.len());
        let start = out.len();
        if let Err(e) = engine.seal_into(input, out) {
            self.engine = None;
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CipherError> {
        let engine = self.engine.take().ok_or(CipherError::Finished)?;
        out.extend_from_slice(&engine.seal_tag(self.len)?);
        Ok(())
    }
}

/// Streaming decryptor over an [`Opener`]: releases plaintext as it comes,
/// unauthenticated until [`finish`](StreamDecryptor::finish) succeeds.
pub(crate) struct WholeDecryptor<E: Opener> {
    engine: Option<E>,
    /// The last bytes seen, which may be the tag.
    held: [u8; TAG_LEN],
    held_len: usize,
    /// Ciphertext bytes released (decrypted) so far.
    released: u64,
    limit: u64,
    authenticated: u64,
}

impl<E: Opener> WholeDecryptor<E> {
    pub(crate) fn new(engine: E, limit: u64) -> Self {
        WholeDecryptor {
            engine: Some(engine),
            held: [0; TAG_LEN],
            held_len: 0,
            released: 0,
            limit,
            authenticated: 0,
        }
    }
}

impl<E: Opener> StreamDecryptor for WholeDecryptor<E> {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        let engine = self.engine.as_mut().ok_or(CipherError::Finished)?;
        let total = self.held_len + input.len();
        if total <= TAG_LEN {
            self.held[self.held_len..total].copy_from_slice(input);
            self.held_len = total;
            return Ok(());
        }
        let release = total - TAG_LEN;
        if self.released.saturating_add(release as u64) > self.limit {
            self.engine = None;
            return Err(CipherError::LimitExceeded { limit: self.limit });
        }
        // The released ciphertext is held[..from_held] followed by
        // input[..from_input]; the new hold-back is what remains of both.
        let from_held = release.min(self.held_len);
        let from_input = release - from_held;
        let start = out.len();
        out.reserve(release);
        out.extend_from_slice(&self.held[..from_held]);
        let mut next = [0u8; TAG_LEN];
        let rest_held = self.held_len - from_held;
        next[..rest_held].copy_from_slice(&self.held[from_held..self.held_len]);
        next[rest_held..].copy_from_slice(&input[from_input..]);
        self.held = next;
        self.held_len = TAG_LEN;
        self.released += release as u64;

        // Authenticate and decrypt the ciphertext in place, step by step.
        let head = out.len() - start;
        if head > 0 {
            if let Err(e) = engine.open(&mut out[start..]) {
                self.engine = None;
                out.truncate(start);
                return Err(e);
            }
        }
        if let Err(e) = engine.open_into(&input[..from_input], out) {
            self.engine = None;
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), CipherError> {
        let engine = self.engine.take().ok_or(CipherError::Finished)?;
        if self.held_len < TAG_LEN {
            return Err(CipherError::Truncated);
        }
        // Nothing counts as authenticated unless the held-back tag checks.
        engine.verify(self.released, &self.held)?;
        self.authenticated = self.released;
        Ok(())
    }

    fn authenticated_len(&self) -> u64 {
        self.authenticated
    }
}
