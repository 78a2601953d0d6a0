//! [`Backends`]: which implementation does each suite's work, as a value
//! (the shape of rustls' `CryptoProvider`).
//!
//! The library reads no environment variable and keeps no global choice:
//! the suites' statics ([`AES_128_GCM`], ...) run on the best backend built
//! in, and a [`Backends`] value gives the same suites on the backends it
//! names, for a whole [`CipherRegistry`] at once
//! ([`CipherRegistry::with_backends`]). A program that wants a switch (the
//! `jet` binary reads `JET_GCM_BACKEND`, `JET_CHACHA_BACKEND`,
//! `JET_CHUNKED_BACKEND`) builds the value itself.
//!
//! ```
//! use jet_ciphers::gcm::GcmBackend;
//! use jet_ciphers::{Backends, CipherRegistry};
//!
//! let backends = Backends {
//!     gcm: GcmBackend::RustCrypto,
//!     ..Backends::default()
//! };
//! let registry = CipherRegistry::with_backends(backends);
//! let suite = registry.get("urn:xmpp:ciphers:aes-128-gcm-nopadding").unwrap();
//! assert_eq!(suite.name(), "AES-128-GCM");
//! assert_eq!(backends.aes_128_gcm().backend(), GcmBackend::RustCrypto);
//! ```

use crate::chacha::{ChaCha20Poly1305Suite, ChaChaBackend};
use crate::chunked::{ChunkBackend, ChunkedSuite};
use crate::gcm::{AesGcmSuite, GcmBackend};
#[cfg(doc)]
use crate::CipherRegistry;
use crate::{AES_128_GCM, AES_256_GCM, AES_256_GCM_CHUNKED, CHACHA20_POLY1305};

/// The backend of each family of suites. [`Default`] is the best built in
/// (for this CPU, for the chunked suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backends {
    /// The whole-stream AES-GCM suites (XEP-0391).
    pub gcm: GcmBackend,
    /// The whole-stream ChaCha20-Poly1305 suite.
    pub chacha: ChaChaBackend,
    /// The chunked AES-256-GCM suite.
    pub chunk: ChunkBackend,
}

impl Backends {
    /// `urn:xmpp:ciphers:aes-128-gcm-nopadding:0` on [`gcm`](Self::gcm).
    pub fn aes_128_gcm(&self) -> &'static AesGcmSuite {
        AES_128_GCM.with_backend(self.gcm)
    }

    /// `urn:xmpp:ciphers:aes-256-gcm-nopadding:0` on [`gcm`](Self::gcm).
    pub fn aes_256_gcm(&self) -> &'static AesGcmSuite {
        AES_256_GCM.with_backend(self.gcm)
    }

    /// `urn:xmpp:ciphers:chacha20-poly1305:jet:0` on [`chacha`](Self::chacha).
    pub fn chacha20_poly1305(&self) -> &'static ChaCha20Poly1305Suite {
        CHACHA20_POLY1305.with_backend(self.chacha)
    }

    /// `urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0` on [`chunk`](Self::chunk).
    pub fn aes_256_gcm_chunked(&self) -> &'static ChunkedSuite {
        AES_256_GCM_CHUNKED.with_backend(self.chunk)
    }
}

/// The backend of `all` whose `name` is `wanted` (blanks around it
/// ignored): each family's `from_name`.
pub(crate) fn named<B: Copy>(all: &[B], name: fn(B) -> &'static str, wanted: &str) -> Option<B> {
    all.iter().copied().find(|b| name(*b) == wanted.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jet_core::cipher::CipherSuite;

    #[test]
    fn each_suite_runs_on_the_backend_named() {
        for &gcm in GcmBackend::all() {
            for &chacha in ChaChaBackend::all() {
                for &chunk in ChunkBackend::all() {
                    let b = Backends { gcm, chacha, chunk };
                    assert_eq!(b.aes_128_gcm().backend(), gcm);
                    assert_eq!(b.aes_128_gcm().key_len(), 16);
                    assert_eq!(b.aes_256_gcm().backend(), gcm);
                    assert_eq!(b.aes_256_gcm().key_len(), 32);
                    assert_eq!(b.chacha20_poly1305().backend(), chacha);
                    assert_eq!(b.aes_256_gcm_chunked().backend(), chunk);
                }
            }
        }
        // The statics run on the best backend built in.
        assert_eq!(AES_256_GCM.backend(), GcmBackend::best());
        assert_eq!(CHACHA20_POLY1305.backend(), ChaChaBackend::best());
        assert_eq!(AES_256_GCM_CHUNKED.backend(), ChunkBackend::best());
    }
}
