//! The cipher registry: a plain value listing the suites one endpoint
//! supports, in preference order (the shape of rustls' `CryptoProvider`).
//! There is no global registry: pass one to whoever negotiates.

use jet_core::cipher::{CipherSuite, Framing};
use jet_core::error::CipherError;
use jet_core::ns;

use crate::{Backends, Error, AES_128_GCM, AES_256_GCM};

/// Suites in preference order, looked up by URN.
///
/// ```
/// use jet_ciphers::CipherRegistry;
/// let registry = CipherRegistry::default();
/// registry.consistency_check().unwrap();
/// // Dino and Conversations write the URN without its `:0` suffix.
/// let suite = registry.get("urn:xmpp:ciphers:aes-128-gcm-nopadding").unwrap();
/// assert_eq!(suite.urn(), "urn:xmpp:ciphers:aes-128-gcm-nopadding:0");
/// assert_eq!(suite.key_len(), 16);
/// ```
#[derive(Debug, Clone)]
pub struct CipherRegistry {
    suites: Vec<&'static dyn CipherSuite>,
}

impl Default for CipherRegistry {
    /// Every suite of this crate. The XEP-0391 suites come first, AES-128-GCM
    /// leading because it is the one cipher Conversations and Dino accept;
    /// the jet extensions (chunked AES-256-GCM, ChaCha20-Poly1305) follow,
    /// for peers known to run jet.
    /// Each on the best backend built in ([`Backends::default`]).
    fn default() -> Self {
        Self::with_backends(Backends::default())
    }
}

impl CipherRegistry {
    /// A registry of exactly `suites`, first preferred.
    pub fn new(suites: Vec<&'static dyn CipherSuite>) -> Self {
        CipherRegistry { suites }
    }

    /// The suites of [`default`](Self::default), in the same order, each on
    /// the backend `backends` names for it: the one list of suites.
    pub fn with_backends(backends: Backends) -> Self {
        CipherRegistry {
            suites: vec![
                backends.aes_128_gcm(),
                backends.aes_256_gcm(),
                backends.aes_256_gcm_chunked(),
                backends.chacha20_poly1305(),
            ],
        }
    }

    /// Only the two suites of the XEP-0391 cipher table.
    pub fn xep0391() -> Self {
        CipherRegistry {
            suites: vec![&AES_128_GCM, &AES_256_GCM],
        }
    }

    /// The suite for `urn`, with or without its `:0` suffix
    /// ([`ns::same_cipher`]).
    pub fn get(&self, urn: &str) -> Option<&'static dyn CipherSuite> {
        self.suites
            .iter()
            .copied()
            .find(|s| ns::same_cipher(s.urn(), urn))
    }

    /// Like [`get`](Self::get), failing with [`CipherError::UnknownCipher`].
    pub fn require(&self, urn: &str) -> Result<&'static dyn CipherSuite, CipherError> {
        self.get(urn)
            .ok_or_else(|| CipherError::UnknownCipher(urn.trim().to_owned()))
    }

    /// The suites in preference order.
    pub fn iter(&self) -> impl Iterator<Item = &'static dyn CipherSuite> + '_ {
        self.suites.iter().copied()
    }

    /// The number of suites.
    pub fn len(&self) -> usize {
        self.suites.len()
    }

    /// Whether the registry has no suite.
    pub fn is_empty(&self) -> bool {
        self.suites.is_empty()
    }

    /// Checks what a negotiation relies on: at least one suite, URNs unique
    /// (also without `:0`) and of the form `urn:xmpp:ciphers:…:0`, key of
    /// 16 or 32 bytes, a generated IV length that is also accepted, a
    /// 16-byte tag, sizes consistent with the framing.
    pub fn consistency_check(&self) -> Result<(), Error> {
        if self.suites.is_empty() {
            return Err(Error::Registry("no cipher suite".into()));
        }
        for (i, s) in self.suites.iter().enumerate() {
            let urn = s.urn();
            let bad = |what: &str| Err(Error::Registry(format!("{urn}: {what}")));
            if !urn.starts_with("urn:xmpp:ciphers:") || !urn.ends_with(":0") {
                return bad("URN is not of the form urn:xmpp:ciphers:…:0");
            }
            if self.suites[..i]
                .iter()
                .any(|t| ns::same_cipher(t.urn(), urn))
            {
                return bad("URN listed twice");
            }
            if s.name().is_empty() {
                return bad("empty name");
            }
            if ![16, 32].contains(&s.key_len()) {
                return bad("key length is neither 16 nor 32 bytes");
            }
            if s.iv_len() < 12 || !s.accepted_iv_lens().contains(&s.iv_len()) {
                return bad("generated IV length is shorter than 12 bytes or not accepted");
            }
            if s.tag_len() != 16 {
                return bad("tag length is not 16 bytes");
            }
            match s.framing() {
                Framing::SingleMessage { max_plaintext } => {
                    if max_plaintext == 0 || s.ciphertext_len(1000) != 1000 + s.tag_len() as u64 {
                        return bad("single-message sizes are inconsistent");
                    }
                }
                Framing::Chunked { chunk_len } => {
                    if chunk_len == 0 || s.ciphertext_len(0) != s.tag_len() as u64 {
                        return bad("chunked sizes are inconsistent");
                    }
                }
                _ => return bad("unknown framing"),
            }
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a CipherRegistry {
    type Item = &'static dyn CipherSuite;
    type IntoIter = std::iter::Copied<std::slice::Iter<'a, &'static dyn CipherSuite>>;
    fn into_iter(self) -> Self::IntoIter {
        self.suites.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_registry_is_consistent_and_finds_urns() {
        let r = CipherRegistry::default();
        r.consistency_check().unwrap();
        assert_eq!(r.len(), 4);
        for s in &r {
            assert!(std::ptr::addr_eq(r.get(s.urn()).unwrap(), s));
            let bare = s.urn().strip_suffix(":0").unwrap();
            assert_eq!(r.get(bare).unwrap().urn(), s.urn());
        }
        assert!(r.get("urn:xmpp:ciphers:aes-512-gcm-nopadding:0").is_none());
        assert!(matches!(
            r.require("urn:x"),
            Err(CipherError::UnknownCipher(u)) if u == "urn:x"
        ));
        assert_eq!(CipherRegistry::xep0391().len(), 2);
    }

    #[test]
    fn a_registry_on_chosen_backends_lists_the_same_suites() {
        use crate::chacha::ChaChaBackend;
        use crate::chunked::ChunkBackend;
        use crate::gcm::GcmBackend;
        let rust = Backends {
            gcm: GcmBackend::RustCrypto,
            chacha: ChaChaBackend::RustCrypto,
            chunk: ChunkBackend::RustCrypto,
        };
        let chosen = CipherRegistry::with_backends(rust);
        chosen.consistency_check().unwrap();
        let urns = |r: &CipherRegistry| r.iter().map(|s| s.urn()).collect::<Vec<_>>();
        assert_eq!(urns(&chosen), urns(&CipherRegistry::default()));
        let gcm = CipherRegistry::with_backends(rust)
            .get(ns::CIPHER_AES_256_GCM)
            .unwrap();
        assert!(std::ptr::addr_eq(gcm, rust.aes_256_gcm()));
    }

    #[test]
    fn duplicates_and_empty_fail_the_check() {
        assert!(CipherRegistry::new(vec![]).consistency_check().is_err());
        let dup = CipherRegistry::new(vec![&AES_128_GCM, &AES_256_GCM, &AES_128_GCM]);
        let err = dup.consistency_check().unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
    }
}
