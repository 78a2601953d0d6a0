//! ChaCha20-Poly1305 (RFC 8439) over the whole stream, a jet extension:
//! `urn:xmpp:ciphers:chacha20-poly1305:jet:0`.
//!
//! Same shape as the XEP-0391 AES-GCM suites: the whole stream is ONE AEAD
//! message with empty AAD, `ciphertext || 16-byte tag`, 256-bit key and
//! 96-bit nonce (the transport IV). Equal byte for byte to the one-shot
//! `chacha20poly1305` crate. Built from `chacha20` and `poly1305`
//! (RFC 8439 §2.8):
//!
//! - the Poly1305 key is the first 32 bytes of the ChaCha20 block with
//!   counter 0 (§2.6);
//! - the data is XORed with the keystream from counter 1;
//! - the tag is Poly1305 over `AAD || pad16 || C || pad16 || le64(len(AAD)) || le64(len(C))`.
//!
//! With the cargo feature `openssl` there is a second backend,
//! [`ChaChaBackend::OpenSsl`]: the system OpenSSL's incremental
//! `EVP_chacha20_poly1305` (SIMD assembly, several times faster than the
//! portable crates), the best when built in ([`ChaChaBackend::best`]);
//! [`ChaCha20Poly1305Suite::with_backend`] (or [`crate::Backends`]) picks
//! another. The library reads no environment variable (the `jet` binary
//! maps `JET_CHACHA_BACKEND` to this value). Both give the same bytes.
//!
//! The 32-bit block counter limits one message to `2^38 - 64` bytes.
//! For machines without AES instructions this is the fast choice; it is not
//! in XEP-0391, so only peers running jet know it.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use jet_core::cipher::{CipherSuite, Framing, StreamDecryptor, StreamEncryptor};
use jet_core::error::CipherError;
use jet_core::{ns, TransportSecret};
use poly1305::universal_hash::KeyInit;
use poly1305::Poly1305;
use zeroize::Zeroize;

use crate::mac::BlockMac;
use crate::whole::{Engine, WholeDecryptor, WholeEncryptor, TAG_LEN};

/// The ChaCha20-Poly1305 implementation behind [`CHACHA20_POLY1305`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChaChaBackend {
    /// RustCrypto `chacha20` (AVX2/SSE2 chosen at run time) + `poly1305`.
    RustCrypto,
    /// The system OpenSSL's incremental ChaCha20-Poly1305 (cargo feature
    /// `openssl`).
    #[cfg(feature = "openssl")]
    OpenSsl,
}

impl ChaChaBackend {
    /// Every backend built into this binary, preferred first.
    pub fn all() -> &'static [ChaChaBackend] {
        &[
            #[cfg(feature = "openssl")]
            ChaChaBackend::OpenSsl,
            ChaChaBackend::RustCrypto,
        ]
    }

    /// A short name: `"openssl"` or `"rustcrypto"`.
    pub fn name(self) -> &'static str {
        match self {
            ChaChaBackend::RustCrypto => "rustcrypto",
            #[cfg(feature = "openssl")]
            ChaChaBackend::OpenSsl => "openssl",
        }
    }

    /// The best backend built in: the first of [`all`](Self::all) (OpenSSL
    /// when built in, else RustCrypto). What [`CHACHA20_POLY1305`] uses.
    pub fn best() -> ChaChaBackend {
        Self::all()[0]
    }

    /// The built-in backend called `name` ([`name`](Self::name); blanks
    /// around it ignored), or `None`.
    pub fn from_name(name: &str) -> Option<ChaChaBackend> {
        crate::backends::named(Self::all(), Self::name, name)
    }
}

impl Default for ChaChaBackend {
    /// [`ChaChaBackend::best`].
    fn default() -> Self {
        Self::best()
    }
}

/// Largest plaintext of one ChaCha20-Poly1305 message: `2^38 - 64` bytes
/// (RFC 8439 §2.8: the 32-bit counter, minus the block for the Poly1305 key).
pub const CHACHA_MAX_PLAINTEXT: u64 = (1 << 38) - 64;

/// The ChaCha20-Poly1305 whole-stream suite. Use [`CHACHA20_POLY1305`].
#[derive(Debug)]
pub struct ChaCha20Poly1305Suite {
    /// `None`: the best built in, [`ChaChaBackend::best`].
    backend: Option<ChaChaBackend>,
}

/// `urn:xmpp:ciphers:chacha20-poly1305:jet:0` (jet extension): RFC 8439,
/// 256-bit key, 96-bit nonce, whole stream as one message. On the best
/// backend built in.
pub static CHACHA20_POLY1305: ChaCha20Poly1305Suite = ChaCha20Poly1305Suite { backend: None };

static CHACHA20_POLY1305_RUSTCRYPTO: ChaCha20Poly1305Suite = ChaCha20Poly1305Suite {
    backend: Some(ChaChaBackend::RustCrypto),
};
#[cfg(feature = "openssl")]
static CHACHA20_POLY1305_OPENSSL: ChaCha20Poly1305Suite = ChaCha20Poly1305Suite {
    backend: Some(ChaChaBackend::OpenSsl),
};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

impl ChaCha20Poly1305Suite {
    /// This suite on `backend`: what its [`CipherSuite::encryptor`],
    /// [`CipherSuite::decryptor`] and `_with_aad` methods then use.
    pub fn with_backend(&self, backend: ChaChaBackend) -> &'static ChaCha20Poly1305Suite {
        match backend {
            ChaChaBackend::RustCrypto => &CHACHA20_POLY1305_RUSTCRYPTO,
            #[cfg(feature = "openssl")]
            ChaChaBackend::OpenSsl => &CHACHA20_POLY1305_OPENSSL,
        }
    }

    /// The backend this suite's encryptors and decryptors use.
    pub fn backend(&self) -> ChaChaBackend {
        self.backend.unwrap_or_else(ChaChaBackend::best)
    }

    fn check(&self, secret: &TransportSecret) -> Result<(), CipherError> {
        if secret.key().len() != KEY_LEN {
            return Err(CipherError::KeyLength {
                expected: KEY_LEN,
                got: secret.key().len(),
            });
        }
        if secret.iv().len() != NONCE_LEN {
            return Err(CipherError::IvLength {
                suite: self.urn(),
                got: secret.iv().len(),
            });
        }
        Ok(())
    }

    fn engine(&self, secret: &TransportSecret, aad: &[u8]) -> Result<ChaChaEngine, CipherError> {
        self.check(secret)?;
        let mut cipher = ChaCha20::new_from_slices(secret.key(), secret.iv()).map_err(|_| {
            CipherError::KeyLength {
                expected: KEY_LEN,
                got: secret.key().len(),
            }
        })?;
        // RFC 8439 §2.6: one-time Poly1305 key from block 0.
        let mut mac_key = poly1305::Key::default();
        cipher.apply_keystream(&mut mac_key);
        let mac = Poly1305::new(&mac_key);
        mac_key.zeroize();
        // §2.8: the plaintext starts at block counter 1.
        cipher.seek(64u64);
        let mut mac = BlockMac::new(mac);
        mac.absorb(aad);
        mac.pad();
        Ok(ChaChaEngine {
            cipher,
            mac,
            aad_len: aad.len() as u64,
        })
    }

    /// A streaming encryptor with additional authenticated data `aad`.
    /// JET uses empty AAD ([`CipherSuite::encryptor`]); this is for other
    /// protocols and for the RFC 8439 known-answer test.
    pub fn encryptor_with_aad(
        &self,
        secret: &TransportSecret,
        aad: &[u8],
    ) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        self.encryptor_with(secret, aad, self.backend())
    }

    /// A streaming decryptor with additional authenticated data `aad`.
    pub fn decryptor_with_aad(
        &self,
        secret: &TransportSecret,
        aad: &[u8],
    ) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        self.decryptor_with(secret, aad, self.backend())
    }

    /// [`encryptor_with_aad`](Self::encryptor_with_aad) on a given backend
    /// (benchmarks, cross-checks). The output does not depend on the backend.
    pub fn encryptor_with(
        &self,
        secret: &TransportSecret,
        aad: &[u8],
        backend: ChaChaBackend,
    ) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        Ok(match backend {
            ChaChaBackend::RustCrypto => Box::new(WholeEncryptor::new(
                self.engine(secret, aad)?,
                CHACHA_MAX_PLAINTEXT,
            )),
            #[cfg(feature = "openssl")]
            ChaChaBackend::OpenSsl => {
                self.check(secret)?;
                Box::new(WholeEncryptor::new(
                    crate::ossl::OsslAead::chacha20_poly1305(secret.key(), secret.iv(), aad, true)?,
                    CHACHA_MAX_PLAINTEXT,
                ))
            }
        })
    }

    /// [`decryptor_with_aad`](Self::decryptor_with_aad) on a given backend.
    pub fn decryptor_with(
        &self,
        secret: &TransportSecret,
        aad: &[u8],
        backend: ChaChaBackend,
    ) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        Ok(match backend {
            ChaChaBackend::RustCrypto => Box::new(WholeDecryptor::new(
                self.engine(secret, aad)?,
                CHACHA_MAX_PLAINTEXT,
            )),
            #[cfg(feature = "openssl")]
            ChaChaBackend::OpenSsl => {
                self.check(secret)?;
                Box::new(WholeDecryptor::new(
                    crate::ossl::OsslAead::chacha20_poly1305(
                        secret.key(),
                        secret.iv(),
                        aad,
                        false,
                    )?,
                    CHACHA_MAX_PLAINTEXT,
                ))
            }
        })
    }
}

impl CipherSuite for ChaCha20Poly1305Suite {
    fn urn(&self) -> &'static str {
        ns::CIPHER_CHACHA20_POLY1305
    }
    fn name(&self) -> &'static str {
        "ChaCha20-Poly1305"
    }
    fn key_len(&self) -> usize {
        KEY_LEN
    }
    fn iv_len(&self) -> usize {
        NONCE_LEN
    }
    fn accepted_iv_lens(&self) -> &'static [usize] {
        &[NONCE_LEN]
    }
    fn tag_len(&self) -> usize {
        TAG_LEN
    }
    fn framing(&self) -> Framing {
        Framing::SingleMessage {
            max_plaintext: CHACHA_MAX_PLAINTEXT,
        }
    }
    fn ciphertext_len(&self, plaintext_len: u64) -> u64 {
        plaintext_len + TAG_LEN as u64
    }
    fn encryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        self.encryptor_with_aad(secret, &[])
    }
    fn decryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        self.decryptor_with_aad(secret, &[])
    }
}

struct ChaChaEngine {
    cipher: ChaCha20,
    mac: BlockMac<Poly1305>,
    aad_len: u64,
}

impl Engine for ChaChaEngine {
    fn apply_keystream(&mut self, buf: &mut [u8]) -> Result<(), CipherError> {
        self.cipher
            .try_apply_keystream(buf)
            .map_err(|_| CipherError::LimitExceeded {
                limit: CHACHA_MAX_PLAINTEXT,
            })
    }

    fn absorb(&mut self, ciphertext: &[u8]) {
        self.mac.absorb(ciphertext);
    }

    fn tag(mut self, ciphertext_len: u64) -> [u8; TAG_LEN] {
        self.mac.pad();
        // le64(len(AAD)) || le64(len(C)), in bytes.
        let mut len_block = [0u8; 16];
        len_block[..8].copy_from_slice(&self.aad_len.to_le_bytes());
        len_block[8..].copy_from_slice(&ciphertext_len.to_le_bytes());
        self.mac.block(len_block);
        self.mac.finalize()
    }
}
