//! The whole-stream shape shared by AES-GCM and ChaCha20-Poly1305: the
//! entire stream is ONE AEAD message with empty associated data, laid out as
//! `ciphertext || tag` (XEP-0391 §6: "the whole stream is encrypted"; the
//! 16-byte tag is appended after the last byte, as Dino and Conversations do).
//!
//! An [`Engine`] supplies the keystream and the MAC over the ciphertext; this
//! module does the streaming: encrypt-then-MAC on the way out; on the way in,
//! hold back the last 16 bytes (the tag candidate), MAC-then-decrypt the rest,
//! and compare tags in constant time at `finish`. Memory is constant: one
//! 16-byte hold-back buffer and one partial MAC block.

use jet_core::cipher::{StreamDecryptor, StreamEncryptor};
use jet_core::error::CipherError;
use subtle::ConstantTimeEq;

/// Bytes processed per keystream/MAC step, so that the MAC reads data the
/// keystream pass just left in the L1/L2 cache.
const STEP: usize = 16 * 1024;

/// Tag length of both whole-stream AEADs.
pub(crate) const TAG_LEN: usize = 16;

/// The cipher-specific half of a whole-stream AEAD.
pub(crate) trait Engine: Send {
    /// XORs the keystream into `buf` (continuing where the last call ended).
    fn apply_keystream(&mut self, buf: &mut [u8]) -> Result<(), CipherError>;
    /// Feeds ciphertext to the MAC (continuing where the last call ended).
    fn absorb(&mut self, ciphertext: &[u8]);
    /// The tag over `ciphertext_len` bytes of ciphertext and empty AAD.
    fn tag(self, ciphertext_len: u64) -> [u8; TAG_LEN];
}

/// Streaming encryptor over an [`Engine`].
pub(crate) struct WholeEncryptor<E: Engine> {
    engine: Option<E>,
    len: u64,
    limit: u64,
}

impl<E: Engine> WholeEncryptor<E> {
    pub(crate) fn new(engine: E, limit: u64) -> Self {
        WholeEncryptor {
            engine: Some(engine),
            len: 0,
            limit,
        }
    }
}

impl<E: Engine> StreamEncryptor for WholeEncryptor<E> {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        let engine = self.engine.as_mut().ok_or(CipherError::Finished)?;
        let new_len = self.len.saturating_add(input.len() as u64);
        if new_len > self.limit {
            self.engine = None;
            return Err(CipherError::LimitExceeded { limit: self.limit });
        }
        self.len = new_len;
        out.reserve(input.len());
        for piece in input.chunks(STEP) {
            let start = out.len();
            out.extend_from_slice(piece);
            let ct = &mut out[start..];
            if let Err(e) = engine.apply_keystream(ct) {
                self.engine = None;
                out.truncate(start);
                return Err(e);
            }
            engine.absorb(ct);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CipherError> {
        let engine = self.engine.take().ok_or(CipherError::Finished)?;
        out.extend_from_slice(&engine.tag(self.len));
        Ok(())
    }
}

/// Streaming decryptor over an [`Engine`]: releases plaintext as it comes,
/// unauthenticated until [`finish`](StreamDecryptor::finish) succeeds.
pub(crate) struct WholeDecryptor<E: Engine> {
    engine: Option<E>,
    /// The last bytes seen, which may be the tag.
    held: [u8; TAG_LEN],
    held_len: usize,
    /// Ciphertext bytes released (decrypted) so far.
    released: u64,
    limit: u64,
    authenticated: u64,
}

impl<E: Engine> WholeDecryptor<E> {
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

impl<E: Engine> StreamDecryptor for WholeDecryptor<E> {
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

        // MAC the ciphertext, then decrypt it in place, step by step.
        let head = out.len() - start;
        if head > 0 {
            let ct = &mut out[start..];
            engine.absorb(ct);
            if let Err(e) = engine.apply_keystream(ct) {
                self.engine = None;
                out.truncate(start);
                return Err(e);
            }
        }
        for piece in input[..from_input].chunks(STEP) {
            let at = out.len();
            out.extend_from_slice(piece);
            let ct = &mut out[at..];
            engine.absorb(ct);
            if let Err(e) = engine.apply_keystream(ct) {
                self.engine = None;
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), CipherError> {
        let engine = self.engine.take().ok_or(CipherError::Finished)?;
        if self.held_len < TAG_LEN {
            return Err(CipherError::Truncated);
        }
        let expected = engine.tag(self.released);
        if bool::from(expected.ct_eq(&self.held)) {
            self.authenticated = self.released;
            Ok(())
        } else {
            Err(CipherError::Authentication)
        }
    }

    fn authenticated_len(&self) -> u64 {
        self.authenticated
    }
}
