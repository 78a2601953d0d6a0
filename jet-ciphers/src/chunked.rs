//! Chunked streaming AEAD over AES-256-GCM, a jet extension:
//! `urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0`.
//!
//! The XEP-0391 suites make the whole stream one GCM message: nothing is
//! authenticated before the last byte, and a message may not exceed 64 GiB.
//! This mode is the STREAM construction (Hoang, Reyhanitabar, Rogaway and
//! Vizár, "Online Authenticated-Encryption and its Nonce-Reuse
//! Misuse-Resistance", 2015), as used by age and Tink's streaming AEAD:
//!
//! - stream key `K = HKDF-SHA256(ikm = TK, salt = IV, info = "jet aes-256-gcm chunked stream v0")`, 32 bytes;
//! - the plaintext is cut into chunks of [`CHUNK_LEN`] = 65536 bytes;
//! - chunk `i` is sealed with AES-256-GCM under `K`, empty AAD, nonce
//!   `be88(i) || flag` (an 11-byte big-endian counter, then `0x01` for the
//!   final chunk, `0x00` otherwise), and written as `ciphertext || tag`;
//! - every full chunk is non-final; the final chunk carries 0 to 65535
//!   plaintext bytes (a stream whose length is a multiple of 64 KiB ends
//!   with an empty final chunk, 16 bytes of tag only).
//!
//! So each chunk is authenticated on its own (plaintext is released one
//! verified chunk at a time), the counter in the nonce refuses reordering,
//! dropping and duplication, the final flag refuses truncation at a chunk
//! boundary and data appended after the end. The counter has 88 bits: no
//! practical size limit. A transfer can be resumed at any chunk boundary
//! with [`ChunkedSuite::encryptor_at`] / [`ChunkedSuite::decryptor_at`].
//!
//! The full format, with a test vector, is in `docs/chunked-format.md`.
//! 64 KiB is the chunk size of age and of Tink's default: the tag overhead is
//! 0.024 %, and the memory held per stream is one chunk.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use jet_core::cipher::{CipherSuite, Framing, StreamDecryptor, StreamEncryptor};
use jet_core::error::CipherError;
use jet_core::{ns, TransportSecret};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Plaintext bytes per chunk.
pub const CHUNK_LEN: usize = 64 * 1024;
/// Tag bytes per chunk.
pub const CHUNK_TAG_LEN: usize = 16;
/// Ciphertext bytes of a full chunk (plaintext plus tag).
pub const CHUNK_CIPHERTEXT_LEN: usize = CHUNK_LEN + CHUNK_TAG_LEN;
/// HKDF `info` of the stream key.
pub const KDF_INFO: &[u8] = b"jet aes-256-gcm chunked stream v0";
/// Largest chunk counter: 88 bits.
pub const MAX_CHUNK_INDEX: u128 = (1 << 88) - 1;

const KEY_LEN: usize = 32;
const IV_LEN: usize = 12;

/// The chunked suite. Use [`AES_256_GCM_CHUNKED`].
#[derive(Debug)]
pub struct ChunkedSuite {
    _private: (),
}

/// `urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0` (jet extension): STREAM
/// over AES-256-GCM with 64 KiB chunks; 256-bit key, 96-bit IV (the IV only
/// salts the key derivation).
pub static AES_256_GCM_CHUNKED: ChunkedSuite = ChunkedSuite { _private: () };

impl ChunkedSuite {
    /// The stream key: HKDF-SHA256(ikm = TK, salt = IV, info = [`KDF_INFO`]).
    fn aead(&self, secret: &TransportSecret) -> Result<Aes256Gcm, CipherError> {
        if secret.key().len() != KEY_LEN {
            return Err(CipherError::KeyLength {
                expected: KEY_LEN,
                got: secret.key().len(),
            });
        }
        if secret.iv().len() != IV_LEN {
            return Err(CipherError::IvLength {
                suite: self.urn(),
                got: secret.iv().len(),
            });
        }
        let hk = Hkdf::<Sha256>::new(Some(secret.iv()), secret.key());
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        hk.expand(KDF_INFO, &mut key[..])
            .map_err(|_| CipherError::Position("key derivation failed".into()))?;
        Aes256Gcm::new_from_slice(&key[..]).map_err(|_| CipherError::KeyLength {
            expected: KEY_LEN,
            got: KEY_LEN,
        })
    }

    /// An encryptor whose first chunk is chunk `chunk_index`.
    ///
    /// To resume a transfer whose receiver already holds `n` verified
    /// chunks, call `encryptor_at(secret, n)` and feed the plaintext from
    /// byte [`plaintext_offset(n)`](Self::plaintext_offset); the output is
    /// then exactly the original ciphertext from byte
    /// [`ciphertext_offset(n)`](Self::ciphertext_offset). `0` starts a new stream.
    pub fn encryptor_at(
        &self,
        secret: &TransportSecret,
        chunk_index: u64,
    ) -> Result<ChunkedEncryptor, CipherError> {
        Ok(ChunkedEncryptor {
            aead: self.aead(secret)?,
            counter: u128::from(chunk_index),
            buf: Vec::with_capacity(CHUNK_LEN),
            done: false,
        })
    }

    /// A decryptor that expects the ciphertext from the start of chunk
    /// `chunk_index` (byte [`ciphertext_offset(chunk_index)`](Self::ciphertext_offset)
    /// of the stream). Its plaintext is the stream's plaintext from byte
    /// [`plaintext_offset(chunk_index)`](Self::plaintext_offset).
    pub fn decryptor_at(
        &self,
        secret: &TransportSecret,
        chunk_index: u64,
    ) -> Result<ChunkedDecryptor, CipherError> {
        Ok(ChunkedDecryptor {
            aead: self.aead(secret)?,
            counter: u128::from(chunk_index),
            buf: Vec::with_capacity(CHUNK_CIPHERTEXT_LEN),
            released: 0,
            done: false,
        })
    }

    /// Plaintext offset of the start of chunk `chunk_index`.
    pub fn plaintext_offset(chunk_index: u64) -> u128 {
        u128::from(chunk_index) * CHUNK_LEN as u128
    }

    /// Ciphertext offset of the start of chunk `chunk_index`.
    pub fn ciphertext_offset(chunk_index: u64) -> u128 {
        u128::from(chunk_index) * CHUNK_CIPHERTEXT_LEN as u128
    }

    /// The chunk index that starts at plaintext byte `offset`, or
    /// [`CipherError::Position`] when `offset` is not a chunk boundary.
    pub fn chunk_index_at(plaintext_offset: u64) -> Result<u64, CipherError> {
        if !plaintext_offset.is_multiple_of(CHUNK_LEN as u64) {
            return Err(CipherError::Position(format!(
                "offset {plaintext_offset} is not a multiple of the {CHUNK_LEN}-byte chunk size"
            )));
        }
        Ok(plaintext_offset / CHUNK_LEN as u64)
    }
}

impl CipherSuite for ChunkedSuite {
    fn urn(&self) -> &'static str {
        ns::CIPHER_AES_256_GCM_CHUNKED
    }
    fn name(&self) -> &'static str {
        "AES-256-GCM chunked (STREAM)"
    }
    fn key_len(&self) -> usize {
        KEY_LEN
    }
    fn iv_len(&self) -> usize {
        IV_LEN
    }
    fn accepted_iv_lens(&self) -> &'static [usize] {
        &[IV_LEN]
    }
    fn tag_len(&self) -> usize {
        CHUNK_TAG_LEN
    }
    fn framing(&self) -> Framing {
        Framing::Chunked {
            chunk_len: CHUNK_LEN,
        }
    }
    fn ciphertext_len(&self, plaintext_len: u64) -> u64 {
        // Every full chunk plus the final (possibly empty) one has a tag.
        let chunks = plaintext_len / CHUNK_LEN as u64 + 1;
        plaintext_len + chunks * CHUNK_TAG_LEN as u64
    }
    fn encryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        Ok(Box::new(self.encryptor_at(secret, 0)?))
    }
    fn decryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        Ok(Box::new(self.decryptor_at(secret, 0)?))
    }
}

/// `be88(counter) || flag`.
fn nonce(counter: u128, last: bool) -> Result<Nonce<aes_gcm::aead::consts::U12>, CipherError> {
    if counter > MAX_CHUNK_INDEX {
        // 2^88 chunks: unreachable from a u64 start index in practice.
        return Err(CipherError::Position(
            "the 88-bit chunk counter is exhausted".into(),
        ));
    }
    let mut n = [0u8; 12];
    n[..11].copy_from_slice(&counter.to_be_bytes()[5..]);
    n[11] = u8::from(last);
    Ok(n.into())
}

/// Encrypts a stream chunk by chunk; holds back at most one partial chunk.
pub struct ChunkedEncryptor {
    aead: Aes256Gcm,
    counter: u128,
    buf: Vec<u8>,
    done: bool,
}

impl std::fmt::Debug for ChunkedEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedEncryptor")
            .field("next_chunk", &self.counter)
            .finish_non_exhaustive()
    }
}

impl ChunkedEncryptor {
    /// Index of the next chunk this encryptor will seal.
    pub fn next_chunk_index(&self) -> u128 {
        self.counter
    }

    fn seal(
        &mut self,
        plaintext: Option<&[u8]>,
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), CipherError> {
        let nonce = match nonce(self.counter, last) {
            Ok(n) => n,
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        let start = out.len();
        out.extend_from_slice(plaintext.unwrap_or(&self.buf));
        match self
            .aead
            .encrypt_inout_detached(&nonce, b"", (&mut out[start..]).into())
        {
            Ok(tag) => out.extend_from_slice(&tag),
            Err(_) => {
                out.truncate(start);
                self.done = true;
                return Err(CipherError::LimitExceeded {
                    limit: CHUNK_LEN as u64,
                });
            }
        }
        self.counter += 1;
        Ok(())
    }
}

impl StreamEncryptor for ChunkedEncryptor {
    fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        while !input.is_empty() {
            if self.buf.is_empty() && input.len() >= CHUNK_LEN {
                // A full chunk straight from the input, without buffering.
                let (chunk, rest) = input.split_at(CHUNK_LEN);
                self.seal(Some(chunk), false, out)?;
                input = rest;
                continue;
            }
            let take = (CHUNK_LEN - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() == CHUNK_LEN {
                self.seal(None, false, out)?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        self.seal(None, true, out)?;
        self.buf.clear();
        self.done = true;
        Ok(())
    }
}

/// Decrypts a chunked stream, releasing each chunk only after its tag checks.
pub struct ChunkedDecryptor {
    aead: Aes256Gcm,
    counter: u128,
    buf: Vec<u8>,
    released: u64,
    done: bool,
}

impl std::fmt::Debug for ChunkedDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedDecryptor")
            .field("next_chunk", &self.counter)
            .field("released", &self.released)
            .finish_non_exhaustive()
    }
}

impl ChunkedDecryptor {
    /// Index of the next chunk this decryptor expects.
    pub fn next_chunk_index(&self) -> u128 {
        self.counter
    }

    fn open(
        &mut self,
        ciphertext: Option<&[u8]>,
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), CipherError> {
        let fail = |this: &mut Self, e| {
            this.done = true;
            Err(e)
        };
        let nonce = match nonce(self.counter, last) {
            Ok(n) => n,
            Err(e) => return fail(self, e),
        };
        let ct = ciphertext.unwrap_or(&self.buf);
        let Some(body_len) = ct.len().checked_sub(CHUNK_TAG_LEN) else {
            return fail(self, CipherError::Truncated);
        };
        let (body, tag) = ct.split_at(body_len);
        let tag = Tag::try_from(tag).map_err(|_| CipherError::Truncated)?;
        let start = out.len();
        out.extend_from_slice(body);
        if self
            .aead
            .decrypt_inout_detached(&nonce, b"", (&mut out[start..]).into(), &tag)
            .is_err()
        {
            out.truncate(start);
            return fail(self, CipherError::Authentication);
        }
        self.released += body_len as u64;
        self.counter += 1;
        Ok(())
    }
}

impl StreamDecryptor for ChunkedDecryptor {
    fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        // A full-size ciphertext chunk is never the final one, so it can be
        // opened as soon as it is complete.
        while !input.is_empty() {
            if self.buf.is_empty() && input.len() >= CHUNK_CIPHERTEXT_LEN {
                let (chunk, rest) = input.split_at(CHUNK_CIPHERTEXT_LEN);
                self.open(Some(chunk), false, out)?;
                input = rest;
                continue;
            }
            let take = (CHUNK_CIPHERTEXT_LEN - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() == CHUNK_CIPHERTEXT_LEN {
                self.open(None, false, out)?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.done {
            return Err(CipherError::Finished);
        }
        // What is left is the final chunk: 16 to 65551 bytes. Nothing left
        // means the stream stopped at a chunk boundary before its final chunk.
        if self.buf.len() < CHUNK_TAG_LEN {
            self.done = true;
            return Err(CipherError::Truncated);
        }
        self.open(None, true, out)?;
        self.buf.clear();
        self.done = true;
        Ok(())
    }

    fn authenticated_len(&self) -> u64 {
        self.released
    }
}
