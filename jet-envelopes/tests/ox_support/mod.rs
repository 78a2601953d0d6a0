//! Shared helpers for the JET-OX integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use jet_core::cipher::{CipherSuite, Framing, StreamDecryptor, StreamEncryptor};
use jet_core::error::CipherError;
use jet_core::jid::BareJid;
use jet_core::TransportSecret;
use jet_envelopes::ox::{MemoryKeyStore, OxEnvelope, OxKeyStore, OxSecretKey};

/// AES-256-GCM sizes (the envelope only needs the key and IV lengths).
#[derive(Debug)]
pub struct Aes256Sizes;

impl CipherSuite for Aes256Sizes {
    fn urn(&self) -> &'static str {
        jet_core::ns::CIPHER_AES_256_GCM
    }
    fn name(&self) -> &'static str {
        "AES-256-GCM (sizes only)"
    }
    fn key_len(&self) -> usize {
        32
    }
    fn iv_len(&self) -> usize {
        12
    }
    fn accepted_iv_lens(&self) -> &'static [usize] {
        &[12]
    }
    fn tag_len(&self) -> usize {
        16
    }
    fn framing(&self) -> Framing {
        Framing::SingleMessage { max_plaintext: 0 }
    }
    fn ciphertext_len(&self, p: u64) -> u64 {
        p + 16
    }
    fn encryptor(&self, _: &TransportSecret) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        Err(CipherError::UnknownCipher("sizes only".into()))
    }
    fn decryptor(&self, _: &TransportSecret) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        Err(CipherError::UnknownCipher("sizes only".into()))
    }
}

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
