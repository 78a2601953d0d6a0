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
//! ## Backends
//!
//! Each chunk is one one-shot AES-256-GCM seal or open, so any AEAD library
//! can do the work. [`ChunkBackend`] lists them: RustCrypto's `aes-gcm`
//! (always built) and, with the cargo feature `ring` (off by default in the
//! library, on in jet-cli and the benches), ring's
//! assembly AES-GCM, several times faster on x86-64 and ARMv8. The backend
//! is a value: [`AES_256_GCM_CHUNKED`] uses the best for this CPU
//! ([`ChunkBackend::best`]: ring when it is built in and the CPU has AES
//! and carry-less multiply instructions, RustCrypto otherwise), and
//! [`ChunkedSuite::with_backend`] (or [`crate::Backends`]) picks another;
//! the library reads no environment variable. Both produce identical bytes
//! (the known-answer tests run against every backend).
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
    /// `None`: the best built in for this CPU, [`ChunkBackend::best`].
    backend: Option<ChunkBackend>,
}

/// `urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0` (jet extension): STREAM
/// over AES-256-GCM with 64 KiB chunks; 256-bit key, 96-bit IV (the IV only
/// salts the key derivation). On the best backend built in for this CPU.
pub static AES_256_GCM_CHUNKED: ChunkedSuite = ChunkedSuite { backend: None };

static AES_256_GCM_CHUNKED_RUSTCRYPTO: ChunkedSuite = ChunkedSuite {
    backend: Some(ChunkBackend::RustCrypto),
};
#[cfg(feature = "ring")]
static AES_256_GCM_CHUNKED_RING: ChunkedSuite = ChunkedSuite {
    backend: Some(ChunkBackend::Ring),
};

impl ChunkedSuite {
    /// This suite on `backend`: what [`encryptor_at`](Self::encryptor_at),
    /// [`decryptor_at`](Self::decryptor_at) and the [`CipherSuite`] methods
    /// then use.
    pub fn with_backend(&self, backend: ChunkBackend) -> &'static ChunkedSuite {
        match backend {
            ChunkBackend::RustCrypto => &AES_256_GCM_CHUNKED_RUSTCRYPTO,
            #[cfg(feature = "ring")]
            ChunkBackend::Ring => &AES_256_GCM_CHUNKED_RING,
        }
    }

    /// The backend this suite's encryptors and decryptors use.
    pub fn backend(&self) -> ChunkBackend {
        self.backend.unwrap_or_else(ChunkBackend::best)
    }

    /// The stream key: HKDF-SHA256(ikm = TK, salt = IV, info = [`KDF_INFO`]).
    fn aead(
        &self,
        secret: &TransportSecret,
        backend: ChunkBackend,
    ) -> Result<ChunkAead, CipherError> {
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
        ChunkAead::new(&key[..], backend)
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
        self.encryptor_with(secret, chunk_index, self.backend())
    }

    /// [`encryptor_at`](Self::encryptor_at) on a given backend (benchmarks,
    /// cross-checks). The output does not depend on the backend.
    pub fn encryptor_with(
        &self,
        secret: &TransportSecret,
        chunk_index: u64,
        backend: ChunkBackend,
    ) -> Result<ChunkedEncryptor, CipherError> {
        Ok(ChunkedEncryptor {
            aead: self.aead(secret, backend)?,
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
        self.decryptor_with(secret, chunk_index, self.backend())
    }

    /// [`decryptor_at`](Self::decryptor_at) on a given backend.
    pub fn decryptor_with(
        &self,
        secret: &TransportSecret,
        chunk_index: u64,
        backend: ChunkBackend,
    ) -> Result<ChunkedDecryptor, CipherError> {
        Ok(ChunkedDecryptor {
            aead: self.aead(secret, backend)?,
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

/// The AES-256-GCM implementation that seals and opens the chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkBackend {
    /// RustCrypto `aes-gcm` (AES-NI and PCLMULQDQ intrinsics when the CPU
    /// has them, detected at run time; constant-time software otherwise).
    RustCrypto,
    /// ring's assembly AES-GCM (cargo feature `ring`).
    #[cfg(feature = "ring")]
    Ring,
}

impl ChunkBackend {
    /// Every backend built into this binary.
    pub fn all() -> &'static [ChunkBackend] {
        &[
            #[cfg(feature = "ring")]
            ChunkBackend::Ring,
            ChunkBackend::RustCrypto,
        ]
    }

    /// A short name: `"ring"` or `"rustcrypto"`.
    pub fn name(self) -> &'static str {
        match self {
            ChunkBackend::RustCrypto => "rustcrypto",
            #[cfg(feature = "ring")]
            ChunkBackend::Ring => "ring",
        }
    }

    /// The best backend built in for this CPU: ring when it is built in and
    /// the CPU has AES and carry-less multiply instructions, else
    /// RustCrypto. What [`AES_256_GCM_CHUNKED`] uses.
    pub fn best() -> ChunkBackend {
        #[cfg(feature = "ring")]
        if cpu_has_aes_clmul() {
            return ChunkBackend::Ring;
        }
        ChunkBackend::RustCrypto
    }

    /// The built-in backend called `name` ([`name`](Self::name); blanks
    /// around it ignored), or `None`.
    pub fn from_name(name: &str) -> Option<ChunkBackend> {
        crate::backends::named(Self::all(), Self::name, name)
    }
}

impl Default for ChunkBackend {
    /// [`ChunkBackend::best`].
    fn default() -> Self {
        Self::best()
    }
}

/// Whether the CPU has AES rounds and carry-less multiplication in hardware.
#[cfg(feature = "ring")]
fn cpu_has_aes_clmul() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(all(target_arch = "aarch64", target_os = "linux"))]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "x86",
        all(target_arch = "aarch64", target_os = "linux")
    )))]
    {
        false
    }
}

/// One AES-256-GCM key on one backend.
enum ChunkAead {
    RustCrypto(Box<Aes256Gcm>),
    #[cfg(feature = "ring")]
    Ring(Box<ring::aead::LessSafeKey>),
}

impl ChunkAead {
    fn new(key: &[u8], backend: ChunkBackend) -> Result<Self, CipherError> {
        let bad_key = CipherError::KeyLength {
            expected: KEY_LEN,
            got: key.len(),
        };
        Ok(match backend {
            ChunkBackend::RustCrypto => ChunkAead::RustCrypto(Box::new(
                Aes256Gcm::new_from_slice(key).map_err(|_| bad_key)?,
            )),
            #[cfg(feature = "ring")]
            ChunkBackend::Ring => ChunkAead::Ring(Box::new(ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key).map_err(|_| bad_key)?,
            ))),
        })
    }

    /// Encrypts `buf` in place, returns the tag.
    fn seal(&self, nonce: [u8; 12], buf: &mut [u8]) -> Result<[u8; CHUNK_TAG_LEN], ()> {
        match self {
            ChunkAead::RustCrypto(a) => {
                let tag = a
                    .encrypt_inout_detached(&Nonce::from(nonce), b"", buf.into())
                    .map_err(|_| ())?;
                Ok(tag.into())
            }
            #[cfg(feature = "ring")]
            ChunkAead::Ring(k) => {
                let tag = k
                    .seal_in_place_separate_tag(
                        ring::aead::Nonce::assume_unique_for_key(nonce),
                        ring::aead::Aad::empty(),
                        buf,
                    )
                    .map_err(|_| ())?;
                let mut t = [0u8; CHUNK_TAG_LEN];
                t.copy_from_slice(tag.as_ref());
                Ok(t)
            }
        }
    }

    /// Decrypts `buf` in place if `tag` authenticates it; on failure the
    /// contents of `buf` are unspecified (the caller discards them).
    fn open(&self, nonce: [u8; 12], buf: &mut [u8], tag: &[u8; CHUNK_TAG_LEN]) -> Result<(), ()> {
        match self {
            ChunkAead::RustCrypto(a) => a
                .decrypt_inout_detached(&Nonce::from(nonce), b"", buf.into(), &Tag::from(*tag))
                .map_err(|_| ()),
            #[cfg(feature = "ring")]
            ChunkAead::Ring(k) => k
                .open_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::empty(),
                    ring::aead::Tag::from(*tag),
                    buf,
                    0..,
                )
                .map(|_| ())
                .map_err(|_| ()),
        }
    }
}

/// `be88(counter) || flag`.
fn nonce(counter: u128, last: bool) -> Result<[u8; 12], CipherError> {
    if counter > MAX_CHUNK_INDEX {
        // 2^88 chunks: unreachable from a u64 start index in practice.
        return Err(CipherError::Position(
            "the 88-bit chunk counter is exhausted".into(),
        ));
    }
    let mut n = [0u8; 12];
    n[..11].copy_from_slice(&counter.to_be_bytes()[5..]);
    n[11] = u8::from(last);
    Ok(n)
}

/// Encrypts a stream chunk by chunk; holds back at most one partial chunk.
pub struct ChunkedEncryptor {
    aead: ChunkAead,
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
        match self.aead.seal(nonce, &mut out[start..]) {
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
    aead: ChunkAead,
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
        let tag: [u8; CHUNK_TAG_LEN] = tag.try_into().map_err(|_| CipherError::Truncated)?;
        let start = out.len();
        out.extend_from_slice(body);
        if self.aead.open(nonce, &mut out[start..], &tag).is_err() {
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
