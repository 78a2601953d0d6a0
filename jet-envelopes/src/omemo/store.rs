//! Key and session storage: the [`OmemoStore`] trait and an in-memory
//! implementation.
//!
//! The trait is synchronous and returns [`Result`] everywhere so that a
//! persistent store ([`super::sqlite::SqliteStore`]) fits behind it
//! unchanged: every method is one small read or write, and sessions are
//! handed over whole (a persistent store serializes them; the in-memory one
//! clones them). Callers that run on an async executor wrap a store in their
//! own mutex and do the work on a blocking thread when it touches a disk.

use std::collections::BTreeMap;

use super::error::{OmemoError, Result};
use super::keys::{KeyPair, PublicKey};
use super::ratchet::SessionRecord;
use super::x3dh::PreKeyBundle;

/// How many one-time prekeys a device publishes (XEP-0384 v0.3 §4.3 asks
/// for at least 20; deployed clients publish 100).
pub const PRE_KEY_COUNT: u32 = 100;

/// A remote device: bare JID and OMEMO device id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceAddress {
    /// The bare JID owning the device.
    pub jid: String,
    /// The device id (XEP-0384 v0.3 §4.2: a random 31-bit integer).
    pub device_id: u32,
}

impl DeviceAddress {
    /// An address.
    pub fn new(jid: impl Into<String>, device_id: u32) -> Self {
        DeviceAddress {
            jid: jid.into(),
            device_id,
        }
    }
}

impl std::fmt::Display for DeviceAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.jid, self.device_id)
    }
}

/// What we decided about a remote identity key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Seen, not yet verified by the user.
    Undecided,
    /// Verified (fingerprint compared) by the user.
    Trusted,
    /// Rejected by the user: never encrypt to or accept from it.
    Distrusted,
}

/// Our signed prekey with its id and signature.
#[derive(Clone, Debug)]
pub struct SignedPreKeyRecord {
    /// Its id in the bundle.
    pub id: u32,
    /// The key pair.
    pub key_pair: KeyPair,
    /// XEdDSA signature of the serialized public key by our identity key.
    pub signature: [u8; 64],
}

/// Storage of our own keys and of per-device sessions and identities.
pub trait OmemoStore: Send {
    /// Our device id.
    fn device_id(&self) -> u32;
    /// Our libsignal registration id (sent in PreKeySignalMessages).
    fn registration_id(&self) -> u32;
    /// Our identity key pair.
    fn identity_key_pair(&self) -> Result<KeyPair>;
    /// The signed prekey currently published.
    fn current_signed_pre_key(&self) -> Result<SignedPreKeyRecord>;
    /// A signed prekey by id (the current one or a recent predecessor).
    fn signed_pre_key(&self, id: u32) -> Result<Option<SignedPreKeyRecord>>;
    /// A one-time prekey by id, if not yet used.
    fn pre_key(&self, id: u32) -> Result<Option<KeyPair>>;
    /// Public halves of the unused one-time prekeys, for the bundle.
    fn pre_key_publics(&self) -> Result<Vec<(u32, PublicKey)>>;
    /// Adds a one-time prekey.
    fn store_pre_key(&mut self, id: u32, key: KeyPair) -> Result<()>;
    /// Deletes a used one-time prekey (X3DH §4.2: used once).
    fn remove_pre_key(&mut self, id: u32) -> Result<()>;
    /// Tops the one-time prekeys up to [`PRE_KEY_COUNT`], with ids never
    /// used before (a peer may still hold an old bundle). Returns whether
    /// keys were added, i.e. whether the bundle must be republished.
    fn refill_pre_keys(&mut self) -> Result<bool>;
    /// The session states with a device (empty record if none).
    fn load_session(&self, address: &DeviceAddress) -> Result<SessionRecord>;
    /// Saves the session states with a device.
    fn store_session(&mut self, address: &DeviceAddress, record: &SessionRecord) -> Result<()>;
    /// Saves the session a PreKeySignalMessage built and deletes the
    /// one-time prekey it used, as one atomic step where the store can (the
    /// SQLite store does it in one transaction). The default removes the
    /// prekey first: a crash in between loses the session (the message
    /// fails to decrypt) rather than leaving the prekey usable again.
    fn commit_session(
        &mut self,
        address: &DeviceAddress,
        record: &SessionRecord,
        used_pre_key: Option<u32>,
    ) -> Result<()> {
        if let Some(id) = used_pre_key {
            self.remove_pre_key(id)?;
        }
        self.store_session(address, record)
    }
    /// The identity key recorded for a device and our trust in it.
    fn remote_identity(&self, address: &DeviceAddress) -> Result<Option<(PublicKey, Trust)>>;
    /// Records a device's identity key and our trust in it.
    fn save_remote_identity(
        &mut self,
        address: &DeviceAddress,
        key: &PublicKey,
        trust: Trust,
    ) -> Result<()>;
    /// Whether the user verified any device (or fingerprint) of `jid`:
    /// once one is, blind trust before verification ends for that account
    /// ([`super::manager::TrustPolicy::BlindTrustBeforeVerification`]).
    fn has_verified_device(&self, jid: &str) -> Result<bool>;
}

/// An [`OmemoStore`] in memory: keys and sessions vanish with it.
///
/// `Clone` takes a snapshot of the whole state, private keys included
/// (tests and the fuzz targets replay inputs against one saved state).
#[derive(Clone, Debug)]
pub struct InMemoryStore {
    device_id: u32,
    registration_id: u32,
    identity: KeyPair,
    signed_pre_keys: BTreeMap<u32, SignedPreKeyRecord>,
    current_signed_pre_key: u32,
    pre_keys: BTreeMap<u32, KeyPair>,
    next_pre_key_id: u32,
    sessions: BTreeMap<DeviceAddress, SessionRecord>,
    identities: BTreeMap<DeviceAddress, (PublicKey, Trust)>,
}

impl InMemoryStore {
    /// A new device: fresh identity key, signed prekey (id 1) and
    /// [`PRE_KEY_COUNT`] one-time prekeys (ids 1..=100). `device_id` must be
    /// in 1..2^31 (XEP-0384 v0.3 §4.2).
    pub fn generate(device_id: u32) -> Result<Self> {
        if device_id == 0 || device_id > i32::MAX as u32 {
            return Err(OmemoError::Malformed(format!(
                "device id {device_id} outside 1..2^31"
            )));
        }
        let identity = KeyPair::generate()?;
        let mut reg = [0u8; 4];
        super::error::random(&mut reg)?;
        // libsignal registration ids are 14-bit, never 0.
        let registration_id = (u32::from_le_bytes(reg) % 16380) + 1;
        let mut store = InMemoryStore {
            device_id,
            registration_id,
            identity,
            signed_pre_keys: BTreeMap::new(),
            current_signed_pre_key: 0,
            pre_keys: BTreeMap::new(),
            next_pre_key_id: 1,
            sessions: BTreeMap::new(),
            identities: BTreeMap::new(),
        };
        store.rotate_signed_pre_key()?;
        store.refill_pre_keys()?;
        Ok(store)
    }

    /// A device from existing keys (a restored account, or test vectors).
    /// The signed prekey's signature is checked against the identity key.
    pub fn from_keys(
        device_id: u32,
        registration_id: u32,
        identity: KeyPair,
        signed_pre_key: SignedPreKeyRecord,
        pre_keys: Vec<(u32, KeyPair)>,
    ) -> Result<Self> {
        if !identity.public.verify(
            &signed_pre_key.key_pair.public.serialize(),
            &signed_pre_key.signature,
        ) {
            return Err(OmemoError::BadSignature(
                "signed prekey not signed by this identity key".into(),
            ));
        }
        let next_pre_key_id = pre_keys.iter().map(|(id, _)| id + 1).max().unwrap_or(1);
        Ok(InMemoryStore {
            device_id,
            registration_id,
            identity,
            current_signed_pre_key: signed_pre_key.id,
            signed_pre_keys: BTreeMap::from([(signed_pre_key.id, signed_pre_key)]),
            pre_keys: pre_keys.into_iter().collect(),
            next_pre_key_id,
            sessions: BTreeMap::new(),
            identities: BTreeMap::new(),
        })
    }

    /// Makes a new signed prekey current; the previous one stays usable for
    /// sessions its bundle started.
    pub fn rotate_signed_pre_key(&mut self) -> Result<u32> {
        let id = self.current_signed_pre_key + 1;
        let key_pair = KeyPair::generate()?;
        let signature = self.identity.private.sign(&key_pair.public.serialize())?;
        self.signed_pre_keys.insert(
            id,
            SignedPreKeyRecord {
                id,
                key_pair,
                signature,
            },
        );
        self.current_signed_pre_key = id;
        // Keep the current and the previous one.
        self.signed_pre_keys.retain(|&k, _| k + 1 >= id);
        Ok(id)
    }

    /// Sets our trust in a device's identity key (e.g. after the user
    /// compared fingerprints).
    pub fn set_trust(&mut self, address: &DeviceAddress, key: &PublicKey, trust: Trust) {
        self.identities.insert(address.clone(), (*key, trust));
    }
}

impl OmemoStore for InMemoryStore {
    fn device_id(&self) -> u32 {
        self.device_id
    }
    fn registration_id(&self) -> u32 {
        self.registration_id
    }
    fn identity_key_pair(&self) -> Result<KeyPair> {
        Ok(self.identity.clone())
    }
    fn current_signed_pre_key(&self) -> Result<SignedPreKeyRecord> {
        self.signed_pre_keys
            .get(&self.current_signed_pre_key)
            .cloned()
            .ok_or_else(|| OmemoError::Store("no signed prekey".into()))
    }
    fn signed_pre_key(&self, id: u32) -> Result<Option<SignedPreKeyRecord>> {
        Ok(self.signed_pre_keys.get(&id).cloned())
    }
    fn pre_key(&self, id: u32) -> Result<Option<KeyPair>> {
        Ok(self.pre_keys.get(&id).cloned())
    }
    fn pre_key_publics(&self) -> Result<Vec<(u32, PublicKey)>> {
        Ok(self
            .pre_keys
            .iter()
            .map(|(&id, k)| (id, k.public))
            .collect())
    }
    fn store_pre_key(&mut self, id: u32, key: KeyPair) -> Result<()> {
        self.pre_keys.insert(id, key);
        self.next_pre_key_id = self.next_pre_key_id.max(id + 1);
        Ok(())
    }
    fn remove_pre_key(&mut self, id: u32) -> Result<()> {
        self.pre_keys.remove(&id);
        Ok(())
    }
    fn refill_pre_keys(&mut self) -> Result<bool> {
        let mut added = false;
        while (self.pre_keys.len() as u32) < PRE_KEY_COUNT {
            let id = self.next_pre_key_id;
            // Ids are u31 in practice; wrap well before overflow.
            self.next_pre_key_id = if id >= 0x7fff_fffe { 1 } else { id + 1 };
            self.pre_keys.insert(id, KeyPair::generate()?);
            added = true;
        }
        Ok(added)
    }
    fn load_session(&self, address: &DeviceAddress) -> Result<SessionRecord> {
        Ok(self.sessions.get(address).cloned().unwrap_or_default())
    }
    fn store_session(&mut self, address: &DeviceAddress, record: &SessionRecord) -> Result<()> {
        self.sessions.insert(address.clone(), record.clone());
        Ok(())
    }
    fn remote_identity(&self, address: &DeviceAddress) -> Result<Option<(PublicKey, Trust)>> {
        Ok(self.identities.get(address).copied())
    }
    fn save_remote_identity(
        &mut self,
        address: &DeviceAddress,
        key: &PublicKey,
        trust: Trust,
    ) -> Result<()> {
        self.identities.insert(address.clone(), (*key, trust));
        Ok(())
    }
    fn has_verified_device(&self, jid: &str) -> Result<bool> {
        Ok(self
            .identities
            .iter()
            .any(|(a, (_, t))| a.jid == jid && *t == Trust::Trusted))
    }
}

/// Our bundle as published (XEP-0384 v0.3 §4.3), from a store.
pub fn own_bundle(store: &dyn OmemoStore) -> Result<PreKeyBundle> {
    let spk = store.current_signed_pre_key()?;
    Ok(PreKeyBundle {
        identity_key: store.identity_key_pair()?.public,
        signed_pre_key_id: spk.id,
        signed_pre_key: spk.key_pair.public,
        signed_pre_key_signature: spk.signature.to_vec(),
        pre_keys: store.pre_key_publics()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_store_publishes_a_valid_bundle() {
        let s = InMemoryStore::generate(1234).unwrap();
        let b = own_bundle(&s).unwrap();
        b.verify().unwrap();
        assert_eq!(b.pre_keys.len(), 100);
        assert_eq!(b.signed_pre_key_id, 1);
        assert!(InMemoryStore::generate(0).is_err());
        assert!(InMemoryStore::generate(1 << 31).is_err());
    }

    #[test]
    fn rotation_keeps_previous_signed_pre_key() {
        let mut s = InMemoryStore::generate(5).unwrap();
        assert_eq!(s.rotate_signed_pre_key().unwrap(), 2);
        assert!(s.signed_pre_key(1).unwrap().is_some());
        assert_eq!(s.rotate_signed_pre_key().unwrap(), 3);
        assert!(s.signed_pre_key(1).unwrap().is_none());
        own_bundle(&s).unwrap().verify().unwrap();
    }

    #[test]
    fn refill_uses_fresh_ids() {
        let mut s = InMemoryStore::generate(5).unwrap();
        s.remove_pre_key(3).unwrap();
        s.refill_pre_keys().unwrap();
        let ids: Vec<u32> = s.pre_key_publics().unwrap().iter().map(|p| p.0).collect();
        assert_eq!(ids.len(), 100);
        assert!(!ids.contains(&3));
        assert!(ids.contains(&101));
    }
}
