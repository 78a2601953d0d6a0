//! Shared helpers for the JET-OX integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use jet_core::jid::BareJid;
use jet_core::SecretShape;
use jet_envelopes::ox::{MemoryKeyStore, OxEnvelope, OxKeyStore, OxSecretKey};

/// AES-256-GCM sizes (the envelope only needs the key and IV lengths).
pub const AES256_SIZES: SecretShape = SecretShape::new(32, 12, &[12]);

pub fn bare(s: &str) -> BareJid {
    s.parse().unwrap()
}

/// One account: its key, its store and its envelope.
pub struct Party {
    pub jid: BareJid,
    pub key: OxSecretKey,
    pub store: Arc<MemoryKeyStore>,
    pub env: OxEnvelope,
}

impl Party {
    pub fn new(jid: &str) -> Party {
        let jid = bare(jid);
        let key = OxSecretKey::generate(&jid).unwrap();
        let store = Arc::new(MemoryKeyStore::new());
        let env = OxEnvelope::new(key.clone(), store.clone());
        Party {
            jid,
            key,
            store,
            env,
        }
    }

    /// Makes `other`'s public key known to this party.
    pub fn knows(&self, other: &Party) {
        self.store
            .add_peer_key(&other.jid, &other.key.public_key())
            .unwrap();
    }
}

pub const ROMEO: &str = "romeo@montague.lit";
pub const JULIET: &str = "juliet@capulet.lit";
pub const ROMEO_FULL: &str = "romeo@montague.lit/orchard";
pub const JULIET_FULL: &str = "juliet@capulet.lit/balcony";
