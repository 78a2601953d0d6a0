//! The record of transport secrets already used.
//!
//! A transport secret (key + IV) must never encrypt two different
//! plaintexts: with AES-GCM or ChaCha20-Poly1305 that reveals the XOR of the
//! plaintexts and lets the authentication key be recovered. A replayed
//! `session-initiate` (the server is not trusted) would hand a responder a
//! secret it already used, and a responder that sends (a host answering a
//! file request) would then encrypt other bytes under it. So
//! [`JetConfig`](crate::session::JetConfig) records a digest of every secret
//! it seals or opens in a [`UsedSecrets`] record and refuses one seen before
//! with `security-error`.
//!
//! The record must outlive the process to help against a replay after a
//! restart: jet-cli keeps one per account in its data directory.
//! [`MemoryUsedSecrets`] is for tests and short-lived tools.

use std::collections::HashSet;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::secret::TransportSecret;

/// What a record stores for one secret: SHA-256 over a domain label, the
/// key length (one byte), the key and the IV. The digest reveals nothing
/// usable about the key; the length byte keeps `key || iv` unambiguous
/// across suites.
pub fn secret_digest(secret: &TransportSecret) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"jet used transport secret v1\0");
    h.update([secret.key().len() as u8]);
    h.update(secret.key());
    h.update(secret.iv());
    h.finalize().into()
}

/// A record of transport secrets already used, by digest
/// ([`secret_digest`]).
pub trait UsedSecrets: Send + Sync {
    /// Records `digest`. `Ok(true)` if it is new, `Ok(false)` if it was
    /// recorded before (the secret must not be used); `Err` if the record
    /// cannot be read or written (the secret must not be used either).
    fn record(&self, digest: &[u8; 32]) -> Result<bool, String>;
}

/// A [`UsedSecrets`] in memory.
#[derive(Debug, Default)]
pub struct MemoryUsedSecrets {
    seen: Mutex<HashSet<[u8; 32]>>,
}

impl MemoryUsedSecrets {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many digests it holds.
    pub fn len(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl UsedSecrets for MemoryUsedSecrets {
    fn record(&self, digest: &[u8; 32]) -> Result<bool, String> {
        Ok(self
            .seen
            .lock()
            .map_err(|_| "the used-secrets record lock is poisoned".to_string())?
            .insert(*digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_differ_by_key_iv_and_split() {
        let a = TransportSecret::new(vec![1; 16], vec![2; 12]).unwrap();
        let b = TransportSecret::new(vec![1; 16], vec![3; 12]).unwrap();
        // Same bytes, split differently between key and IV.
        let mut k = vec![1; 16];
        k.extend_from_slice(&[2; 12]);
        let c = TransportSecret::new(k[..28 - 16].to_vec(), k[28 - 16..].to_vec());
        assert_ne!(secret_digest(&a), secret_digest(&b));
        if let Ok(c) = c {
            assert_ne!(secret_digest(&a), secret_digest(&c));
        }
        assert_eq!(
            secret_digest(&a),
            secret_digest(&TransportSecret::new(vec![1; 16], vec![2; 12]).unwrap())
        );
        let r = MemoryUsedSecrets::new();
        assert!(r.record(&secret_digest(&a)).unwrap());
        assert!(r.record(&secret_digest(&b)).unwrap());
        assert!(!r.record(&secret_digest(&a)).unwrap());
        assert_eq!(r.len(), 2);
    }
}
