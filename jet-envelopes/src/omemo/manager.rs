//! The OMEMO 0.3 message layer (XEP-0384 v0.3 §4.4-§4.6): sessions per
//! device, `<encrypted>` elements with and without payload.
//!
//! * Key transport (JET-OMEMO, XEP-0396): the key material is the caller's
//!   key (the JET transport key, 16 bytes for AES-128), ratchet-encrypted
//!   for every recipient device; the IV travels in clear in `<iv>`. No
//!   `<payload>`.
//! * Message: a fresh 16-byte key and 12-byte IV; the body is AES-128-GCM;
//!   the key material is `key || 16-byte GCM tag` (32 bytes) and `<payload>`
//!   is the ciphertext without the tag, as Conversations and python-omemo's
//!   `oldmemo` do. On receipt a 16-byte key material with the tag appended
//!   to the payload (older Conversations) and 16-byte IVs are accepted too.
//!   Smack's JET puts base64(key || iv) in such a payload; Libervia uses
//!   the message's own key and IV for the file: both read through
//!   [`DecryptedMessage`].
//!
//! Trust: a device's identity key is recorded (as [`Trust::Undecided`]) once
//! it proved itself: a bundle whose signature verified, or a session start
//! that authenticated. A *different* key for the same device, or one marked
//! [`Trust::Distrusted`], is refused. The user-facing policy (blind trust
//! before verification, fingerprint UI) is not decided here.

use aes::Aes128;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::AesGcm;
use jet_core::TransportSecret;
use zeroize::Zeroizing;

use super::error::{random, OmemoError, Result};
use super::proto::PreKeySignalMessage;
use super::ratchet::SessionRecord;
use super::store::{own_bundle, DeviceAddress, OmemoStore, Trust};
use super::x3dh::{initiate, respond, PreKeyBundle};
use super::xml::{EncryptedElement, KeyElement};

/// A recipient device, with its bundle when no session may exist yet.
#[derive(Clone, Debug)]
pub struct Recipient {
    /// The device.
    pub address: DeviceAddress,
    /// Its bundle (fetched from PEP), used only when there is no session.
    pub bundle: Option<PreKeyBundle>,
}

/// What [`OmemoManager::decrypt`] yields.
#[derive(Debug)]
pub struct DecryptedMessage {
    /// The sending device.
    pub sender: DeviceAddress,
    /// The key material from our `<key>`: the transport key of a key
    /// transport element, or `key || tag` of a message.
    pub key_material: Zeroizing<Vec<u8>>,
    /// The `<iv>` of the header.
    pub iv: Vec<u8>,
    /// The decrypted `<payload>`, when there was one.
    pub payload: Option<Zeroizing<Vec<u8>>>,
    /// True when the message started a new session (a PreKeySignalMessage
    /// for a fresh session): XEP-0384 asks the receiver to answer soon so
    /// the sender stops sending prekey messages.
    pub new_session: bool,
}

impl DecryptedMessage {
    /// The JET transport secret of a JET-OMEMO envelope (XEP-0396 §3): a
    /// KeyTransportElement whose key material is TK and whose `<iv>` is the
    /// IV. A message with a payload is not such an envelope.
    pub fn key_transport_secret(&self) -> Result<TransportSecret> {
        if self.payload.is_some() {
            return Err(OmemoError::Malformed(
                "a JET-OMEMO envelope is a key transport element, this message has a payload"
                    .into(),
            ));
        }
        TransportSecret::new(self.key_material.to_vec(), self.iv.clone())
            .map_err(|e| OmemoError::Malformed(format!("transport secret: {e}")))
    }

    /// Smack's JET form: the decrypted payload is `TK || IV` (XEP-0391 v0.1
    /// serialization), read with the suite's key length and IV lengths.
    pub fn payload_secret(&self, key_len: usize, iv_lens: &[usize]) -> Result<TransportSecret> {
        let payload = self
            .payload
            .as_ref()
            .ok_or_else(|| OmemoError::Malformed("no payload to read TK || IV from".into()))?;
        TransportSecret::from_bytes(payload, key_len, iv_lens)
            .map_err(|e| OmemoError::Malformed(format!("transport secret: {e}")))
    }

    /// Libervia's form: the message's own AES-128 key (first 16 bytes of
    /// the key material) and `<iv>` encrypt the file.
    pub fn message_key_secret(&self) -> Result<TransportSecret> {
        if self.key_material.len() < 16 {
            return Err(OmemoError::Malformed(
                "key material shorter than 16 bytes".into(),
            ));
        }
        TransportSecret::new(self.key_material[..16].to_vec(), self.iv.clone())
            .map_err(|e| OmemoError::Malformed(format!("transport secret: {e}")))
    }
}

/// How identity keys of devices we have not verified are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrustPolicy {
    /// Blind trust before verification (what Dino and Conversations do):
    /// new devices of an account are used (their fingerprint reported
    /// through the [`TrustEvent`] observer) only while the user has
    /// verified none of that account's devices. Once one is verified
    /// (`jet keys trust`, [`Trust::Trusted`]), a new device of that account
    /// is neither encrypted to nor accepted from until the user marks it
    /// too. Our own account's other devices follow the same rule.
    #[default]
    BlindTrustBeforeVerification,
    /// Trust on first use: every new device's identity key is accepted the
    /// first time it is seen (from its signed bundle or an authenticated
    /// message), also after the user verified another device of the same
    /// account, reported through the observer, then pinned. A changed key
    /// is refused.
    TrustOnFirstUse,
    /// Only devices whose key the user marked [`Trust::Trusted`] (compared
    /// fingerprints, `jet keys trust`) are encrypted to or accepted from.
    Manual,
}

/// What the trust logic reports to the application (for the user to see).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustEvent {
    /// A device's identity key was seen and recorded for the first time.
    NewDevice {
        /// The device.
        address: DeviceAddress,
        /// Its identity key's fingerprint ([`super::keys::PublicKey::fingerprint`]).
        fingerprint: String,
        /// Whether it is used under the policy (blind trust before
        /// verification, TOFU, or pre-verified).
        accepted: bool,
    },
    /// A known device was left out of a seal or refused on receipt because
    /// the trust policy does not allow it (not verified while another
    /// device of its account is, or manual trust, or distrusted, or its
    /// identity key changed).
    NotUsed {
        /// The device.
        address: DeviceAddress,
        /// Why, with the fingerprint and the command that changes it.
        reason: String,
    },
    /// A device sent its JET secret in Libervia's form: the file is
    /// encrypted under the OMEMO message's own key and IV, which already
    /// encrypted the message's `<payload>`, so the two AES-GCM encryptions
    /// share (key, nonce). Accepted (deployed clients send it), but weaker:
    /// see docs/libervia.md. jet never sends this form.
    NonceReusingForm {
        /// The device.
        address: DeviceAddress,
    },
}

/// A device the trust policy left out of a message, with the reason.
pub type RefusedDevice = (DeviceAddress, String);

/// A callback for [`TrustEvent`]s.
pub type TrustObserver = Box<dyn Fn(&TrustEvent) + Send + Sync>;

/// OMEMO 0.3 encryption and decryption over a store.
pub struct OmemoManager<S: OmemoStore> {
    store: S,
    own_jid: String,
    policy: TrustPolicy,
    observer: Option<TrustObserver>,
}

impl<S: OmemoStore + std::fmt::Debug> std::fmt::Debug for OmemoManager<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OmemoManager")
            .field("store", &self.store)
            .field("own_jid", &self.own_jid)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S: OmemoStore> OmemoManager<S> {
    /// A manager for our account `own_jid` (bare) over `store`, with the
    /// default policy (trust on first use) and no observer.
    pub fn new(store: S, own_jid: impl Into<String>) -> Self {
        OmemoManager {
            store,
            own_jid: own_jid.into(),
            policy: TrustPolicy::default(),
            observer: None,
        }
    }

    /// Sets the trust policy.
    pub fn set_trust_policy(&mut self, policy: TrustPolicy) {
        self.policy = policy;
    }

    /// The trust policy.
    pub fn trust_policy(&self) -> TrustPolicy {
        self.policy
    }

    /// Sets the callback told about newly seen devices.
    pub fn set_trust_observer(&mut self, observer: Option<TrustObserver>) {
        self.observer = observer;
    }

    /// Refuses a device that is distrusted, or not trusted under the
    /// policy, with a message the user can act on: the device, its
    /// fingerprint and the exact command.
    fn ensure_trusted(&self, address: &DeviceAddress) -> Result<()> {
        let known = self.store.remote_identity(address)?;
        let key = match known {
            Some((key, Trust::Distrusted)) => {
                return Err(OmemoError::Untrusted(format!(
                    "{} device {} (fingerprint {}) is distrusted",
                    address.jid,
                    address.device_id,
                    key.fingerprint()
                )))
            }
            Some((_, Trust::Trusted)) => return Ok(()),
            Some((key, Trust::Undecided)) => Some(key),
            None => None,
        };
        let why = match self.policy {
            TrustPolicy::TrustOnFirstUse => return Ok(()),
            TrustPolicy::BlindTrustBeforeVerification => {
                if !self.store.has_verified_device(&address.jid)? {
                    return Ok(());
                }
                format!(
                    "is not verified, and another device of {} is: a new device is neither \
                     encrypted to nor accepted from until you verify it",
                    address.jid
                )
            }
            TrustPolicy::Manual => "is not trusted (manual trust)".to_string(),
        };
        Err(OmemoError::Untrusted(match key {
            Some(key) => format!(
                "OMEMO device {} of {}, fingerprint {}, {why}; compare the fingerprint with \
                 the one {} shows, then run `jet keys trust {} {}`",
                address.device_id,
                address.jid,
                key.fingerprint(),
                address.jid,
                address.jid,
                key.fingerprint().replace(' ', "")
            ),
            None => format!(
                "OMEMO device {} of {} is unknown (no identity key seen yet) and {why}",
                address.device_id, address.jid
            ),
        }))
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (rotation, refill, trust decisions).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Our bare JID.
    pub fn own_jid(&self) -> &str {
        &self.own_jid
    }

    /// Our device id.
    pub fn device_id(&self) -> u32 {
        self.store.device_id()
    }

    /// Our bundle to publish.
    pub fn bundle(&self) -> Result<PreKeyBundle> {
        own_bundle(&self.store)
    }

    /// Refuses `key` for `address` if another key is recorded for that
    /// device or this one is distrusted. Records nothing: an identity key is
    /// recorded only once a message authenticated under it, or a bundle
    /// signature verified with it ([`Self::record_identity`]).
    fn check_identity(&self, address: &DeviceAddress, key: &super::keys::PublicKey) -> Result<()> {
        match self.store.remote_identity(address)? {
            None => Ok(()),
            Some((known, _)) if known != *key => Err(OmemoError::Untrusted(format!(
                "IDENTITY KEY CHANGED for {} device {}: recorded fingerprint {}, now presented {}; \
                 refused (someone may be impersonating this device; if the peer really \
                 reinstalled, verify the new fingerprint with them)",
                address.jid,
                address.device_id,
                known.fingerprint(),
                key.fingerprint()
            ))),
            Some(_) => self.ensure_trusted(address),
        }
    }

    /// Reports `event` to the observer, if any.
    pub fn notify(&self, event: &TrustEvent) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }

    /// Records a first-seen identity key as [`Trust::Undecided`] and
    /// reports it; returns whether it was new.
    fn record_identity(
        &mut self,
        address: &DeviceAddress,
        key: &super::keys::PublicKey,
    ) -> Result<bool> {
        if self.store.remote_identity(address)?.is_none() {
            self.store
                .save_remote_identity(address, key, Trust::Undecided)?;
            if let Some(observer) = &self.observer {
                observer(&TrustEvent::NewDevice {
                    address: address.clone(),
                    fingerprint: key.fingerprint(),
                    accepted: self.ensure_trusted(address).is_ok(),
                });
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Ratchet-encrypts `material` for each recipient (session from the
    /// store, or a new one from its bundle). Fails as a whole if any
    /// recipient fails: JET never sends to a subset silently.
    pub fn encrypt_key_material(
        &mut self,
        material: &[u8],
        recipients: &[Recipient],
    ) -> Result<Vec<KeyElement>> {
        Ok(self
            .encrypt_key_material_for(material, recipients, false)?
            .0)
    }

    /// [`Self::encrypt_key_material`], but with `skip_untrusted` a device
    /// the trust policy refuses is left out (and reported to the observer
    /// as [`TrustEvent::NotUsed`]) instead of failing the whole message;
    /// returns the keys and the refused devices with the reason. Any other
    /// failure still fails as a whole.
    pub fn encrypt_key_material_for(
        &mut self,
        material: &[u8],
        recipients: &[Recipient],
        skip_untrusted: bool,
    ) -> Result<(Vec<KeyElement>, Vec<RefusedDevice>)> {
        if recipients.is_empty() {
            return Err(OmemoError::NoSession("no recipient devices".into()));
        }
        let identity = self.store.identity_key_pair()?;
        let mut staged: Vec<(DeviceAddress, SessionRecord, KeyElement)> =
            Vec::with_capacity(recipients.len());
        let mut refused = Vec::new();
        for r in recipients {
            let mut record = self.store.load_session(&r.address)?;
            // Whether this call recorded the device's key (and so already
            // reported it as a new device, with whether it is used).
            let mut reported = false;
            let checked = (|| {
                if record.current().is_none() {
                    let b = r
                        .bundle
                        .as_ref()
                        .ok_or_else(|| OmemoError::NoSession(r.address.to_string()))?;
                    self.check_identity(&r.address, &b.identity_key)?;
                    // initiate() verifies the bundle signature first.
                    record.promote(initiate(&identity, self.store.registration_id(), b)?);
                    reported = self.record_identity(&r.address, &b.identity_key)?;
                }
                self.ensure_trusted(&r.address)
            })();
            match checked {
                Ok(()) => {}
                Err(OmemoError::Untrusted(why)) if skip_untrusted => {
                    if !reported {
                        self.notify(&TrustEvent::NotUsed {
                            address: r.address.clone(),
                            reason: why.clone(),
                        });
                    }
                    refused.push((r.address.clone(), why));
                    continue;
                }
                Err(e) => return Err(e),
            }
            let out = record
                .current_mut()
                .expect("a current session was just ensured")
                .encrypt(material)?;
            staged.push((
                r.address.clone(),
                record,
                KeyElement {
                    rid: r.address.device_id,
                    prekey: out.prekey,
                    data: out.bytes,
                },
            ));
        }
        let mut keys = Vec::with_capacity(staged.len());
        for (addr, record, key) in staged {
            self.store.store_session(&addr, &record)?;
            keys.push(key);
        }
        Ok((keys, refused))
    }

    /// A KeyTransportElement carrying `key` (ratchet-encrypted per device)
    /// and `iv` (in clear): the JET-OMEMO envelope (XEP-0396 §3).
    pub fn encrypt_key_transport(
        &mut self,
        key: &[u8],
        iv: &[u8],
        recipients: &[Recipient],
    ) -> Result<EncryptedElement> {
        if key.is_empty() || iv.is_empty() {
            return Err(OmemoError::Malformed("empty key or IV".into()));
        }
        Ok(EncryptedElement {
            sid: self.device_id(),
            keys: self.encrypt_key_material(key, recipients)?,
            iv: iv.to_vec(),
            payload: None,
        })
    }

    /// The JET-OMEMO envelope for `secret` (XEP-0396 §3): TK ratchet-encrypted
    /// per device, IV in `<iv>`.
    pub fn seal_transport_secret(
        &mut self,
        secret: &TransportSecret,
        recipients: &[Recipient],
    ) -> Result<EncryptedElement> {
        self.encrypt_key_transport(secret.key(), secret.iv(), recipients)
    }

    /// An OMEMO message with `plaintext` as AES-128-GCM payload.
    pub fn encrypt_message(
        &mut self,
        plaintext: &[u8],
        recipients: &[Recipient],
    ) -> Result<EncryptedElement> {
        let mut key = Zeroizing::new([0u8; 16]);
        let mut iv = [0u8; 12];
        random(&mut key[..])?;
        random(&mut iv)?;
        let cipher = AesGcm::<Aes128, U12>::new((&*key).into());
        let mut ct = cipher
            .encrypt((&iv).into(), plaintext)
            .map_err(|_| OmemoError::Malformed("payload too long for AES-GCM".into()))?;
        let tag = ct.split_off(ct.len() - 16);
        let mut material = Zeroizing::new(Vec::with_capacity(32));
        material.extend_from_slice(&key[..]);
        material.extend_from_slice(&tag);
        Ok(EncryptedElement {
            sid: self.device_id(),
            keys: self.encrypt_key_material(&material, recipients)?,
            iv: iv.to_vec(),
            payload: Some(ct),
        })
    }

    /// Decrypts the key material of one `<key>` from `sender`, building the
    /// session if it is a PreKeySignalMessage. Returns the material and
    /// whether a new session was built.
    pub fn decrypt_key(
        &mut self,
        sender: &DeviceAddress,
        key: &KeyElement,
    ) -> Result<(Zeroizing<Vec<u8>>, bool)> {
        let mut record = self.store.load_session(sender)?;
        if !key.prekey {
            if record.current().is_none() {
                return Err(OmemoError::NoSession(sender.to_string()));
            }
            self.ensure_trusted(sender)?;
            let pt = record.decrypt(&key.data)?;
            self.store.store_session(sender, &record)?;
            return Ok((pt, false));
        }
        let pkm = PreKeySignalMessage::decode(&key.data)?;
        self.check_identity(sender, &pkm.identity_key)?;
        // A repeated PreKeySignalMessage of a session we already built (the
        // sender has not heard from us yet) continues that session.
        if record.has_base_key(&pkm.base_key) {
            let pt = record.decrypt_with_base_key(&pkm.base_key, &pkm.message)?;
            self.store.store_session(sender, &record)?;
            return Ok((pt, false));
        }
        let identity = self.store.identity_key_pair()?;
        let spk =
            self.store
                .signed_pre_key(pkm.signed_pre_key_id)?
                .ok_or(OmemoError::UnknownKey {
                    kind: "signed prekey",
                    id: pkm.signed_pre_key_id,
                })?;
        let opk = match pkm.pre_key_id {
            Some(id) => Some(
                self.store
                    .pre_key(id)?
                    .ok_or(OmemoError::UnknownKey { kind: "prekey", id })?,
            ),
            None => None,
        };
        let mut session = respond(
            &identity,
            self.store.registration_id(),
            &spk.key_pair,
            opk.as_ref(),
            &pkm,
        )?;
        let pt = session.decrypt(&pkm.message)?;
        // Authenticated: the identity key is genuine for this session.
        self.record_identity(sender, &pkm.identity_key)?;
        // The new session becomes current; one we started stays archived
        // so messages already sent on it still decrypt.
        self.ensure_trusted(sender)?;
        record.promote(session);
        // X3DH §4.2: a one-time prekey is used once. Session save and
        // prekey removal are one atomic step (see OmemoStore::commit_session).
        self.store.commit_session(sender, &record, pkm.pre_key_id)?;
        Ok((pt, true))
    }

    /// Decrypts an `<encrypted>` element sent by device `element.sid` of
    /// `sender_jid`.
    pub fn decrypt(
        &mut self,
        sender_jid: &str,
        element: &EncryptedElement,
    ) -> Result<DecryptedMessage> {
        let own = self.device_id();
        // OMEMO 0.3 keys name only the device id: a message to several
        // accounts can hold two <key rid> equal to ours (same device id on
        // another account). Try each; a failed try changes no state.
        let ours: Vec<&KeyElement> = element.keys.iter().filter(|k| k.rid == own).collect();
        if ours.is_empty() {
            return Err(OmemoError::NotForUs(own));
        }
        let sender = DeviceAddress::new(sender_jid, element.sid);
        if sender.jid == self.own_jid && sender.device_id == own {
            return Err(OmemoError::Malformed(
                "message claims to come from this device".into(),
            ));
        }
        if element.iv.len() != 12 && element.iv.len() != 16 {
            return Err(OmemoError::Malformed(format!(
                "IV of {} bytes",
                element.iv.len()
            )));
        }
        let mut result = Err(OmemoError::Decrypt);
        for key in ours {
            result = self.decrypt_key(&sender, key);
            if result.is_ok() {
                break;
            }
        }
        let (material, new_session) = result?;
        let payload = match &element.payload {
            // An empty payload is no payload (as in python-omemo): Libervia
            // needs one to keep the IV of a key transport element.
            None => None,
            Some(ct) if ct.is_empty() => None,
            Some(ct) => Some(decrypt_payload(&material, &element.iv, ct)?),
        };
        Ok(DecryptedMessage {
            sender,
            key_material: material,
            iv: element.iv.clone(),
            payload,
            new_session,
        })
    }
}

/// AES-128-GCM decryption of a `<payload>` with the key material of a
/// `<key>`: `key || tag` (32 bytes), or a bare key with the tag at the end
/// of the payload (16 bytes); IV of 12 or 16 bytes.
pub fn decrypt_payload(material: &[u8], iv: &[u8], payload: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let (key, data) = match material.len() {
        32 => {
            let mut d = payload.to_vec();
            d.extend_from_slice(&material[16..]);
            (&material[..16], d)
        }
        16 if payload.len() >= 16 => (material, payload.to_vec()),
        n => {
            return Err(OmemoError::Malformed(format!(
                "key material of {n} bytes for a payload of {} bytes",
                payload.len()
            )))
        }
    };
    fn bad_len<E>(_: E) -> OmemoError {
        OmemoError::Malformed("AES-128-GCM key or IV length".into())
    }
    let msg = Payload {
        msg: &data,
        aad: &[],
    };
    let pt = match iv.len() {
        12 => AesGcm::<Aes128, U12>::new_from_slice(key)
            .map_err(bad_len)?
            .decrypt(<&aes_gcm::Nonce<U12>>::try_from(iv).map_err(bad_len)?, msg),
        16 => AesGcm::<Aes128, U16>::new_from_slice(key)
            .map_err(bad_len)?
            .decrypt(<&aes_gcm::Nonce<U16>>::try_from(iv).map_err(bad_len)?, msg),
        n => return Err(OmemoError::Malformed(format!("IV of {n} bytes"))),
    };
    pt.map(Zeroizing::new).map_err(|_| OmemoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omemo::store::InMemoryStore;

    fn manager(jid: &str, id: u32) -> OmemoManager<InMemoryStore> {
        OmemoManager::new(InMemoryStore::generate(id).unwrap(), jid)
    }

    fn to(m: &OmemoManager<InMemoryStore>, with_bundle: bool) -> Recipient {
        Recipient {
            address: DeviceAddress::new(m.own_jid(), m.device_id()),
            bundle: with_bundle.then(|| m.bundle().unwrap()),
        }
    }

    #[test]
    fn key_transport_both_ways_and_prekey_consumed() {
        let mut alice = manager("alice@example.org", 11);
        let mut bob = manager("bob@example.org", 22);
        let tk = [0x42u8; 16];
        let iv = [0x24u8; 12];
        let ee = alice
            .encrypt_key_transport(&tk, &iv, &[to(&bob, true)])
            .unwrap();
        assert!(ee.keys[0].prekey);
        let el = ee.to_element();
        let parsed = EncryptedElement::from_element(&el).unwrap();
        let before = bob.store().pre_key_publics().unwrap().len();
        let d = bob.decrypt("alice@example.org", &parsed).unwrap();
        assert_eq!(&d.key_material[..], &tk);
        assert_eq!(d.iv, iv);
        assert!(d.payload.is_none());
        assert!(d.new_session);
        assert_eq!(bob.store().pre_key_publics().unwrap().len(), before - 1);
        // A second key transport before Bob answers is still a prekey
        // message of the same session.
        let ee2 = alice
            .encrypt_key_transport(&[1; 16], &iv, &[to(&bob, false)])
            .unwrap();
        assert!(ee2.keys[0].prekey);
        let d2 = bob.decrypt("alice@example.org", &ee2).unwrap();
        assert!(!d2.new_session);
        assert_eq!(&d2.key_material[..], &[1; 16]);
        // Bob answers with a message; Alice stops sending prekey messages.
        let reply = bob
            .encrypt_message(b"got it", &[to(&alice, false)])
            .unwrap();
        assert!(!reply.keys[0].prekey);
        let r = alice.decrypt("bob@example.org", &reply).unwrap();
        assert_eq!(&r.payload.unwrap()[..], b"got it");
        assert_eq!(r.key_material.len(), 32);
        let ee3 = alice
            .encrypt_key_transport(&[2; 16], &iv, &[to(&bob, false)])
            .unwrap();
        assert!(!ee3.keys[0].prekey);
        assert_eq!(
            &bob.decrypt("alice@example.org", &ee3).unwrap().key_material[..],
            &[2; 16]
        );
    }

    #[test]
    fn several_recipients_and_not_for_us() {
        let mut alice = manager("alice@example.org", 11);
        let mut bob1 = manager("bob@example.org", 21);
        let mut bob2 = manager("bob@example.org", 22);
        let carol = manager("carol@example.org", 31);
        let ee = alice
            .encrypt_message(b"hi all", &[to(&bob1, true), to(&bob2, true)])
            .unwrap();
        assert_eq!(ee.keys.len(), 2);
        for b in [&mut bob1, &mut bob2] {
            assert_eq!(
                &b.decrypt("alice@example.org", &ee)
                    .unwrap()
                    .payload
                    .unwrap()[..],
                b"hi all"
            );
        }
        let mut carol = carol;
        assert!(matches!(
            carol.decrypt("alice@example.org", &ee),
            Err(OmemoError::NotForUs(31))
        ));
        assert!(matches!(
            alice.encrypt_key_transport(&[1; 16], &[2; 12], &[to(&carol, false)]),
            Err(OmemoError::NoSession(_))
        ));
    }

    #[test]
    fn identity_change_and_distrust_are_refused() {
        let mut alice = manager("alice@example.org", 11);
        let bob = manager("bob@example.org", 22);
        // Another key pair claiming the same device.
        let impostor = manager("bob@example.org", 22);
        let addr = DeviceAddress::new("bob@example.org", 22);
        let bob_ik = bob.bundle().unwrap().identity_key;
        alice
            .store_mut()
            .save_remote_identity(&addr, &bob_ik, Trust::Undecided)
            .unwrap();
        assert!(matches!(
            alice.encrypt_key_transport(&[1; 16], &[2; 12], &[to(&impostor, true)]),
            Err(OmemoError::Untrusted(_))
        ));
        alice
            .store_mut()
            .set_trust(&addr, &bob_ik, Trust::Distrusted);
        assert!(matches!(
            alice.encrypt_key_transport(&[1; 16], &[2; 12], &[to(&bob, true)]),
            Err(OmemoError::Untrusted(_))
        ));
        alice.store_mut().set_trust(&addr, &bob_ik, Trust::Trusted);
        alice
            .encrypt_key_transport(&[1; 16], &[2; 12], &[to(&bob, true)])
            .unwrap();
    }

    #[test]
    fn tampered_key_transport_fails_cleanly() {
        let mut alice = manager("alice@example.org", 11);
        let mut bob = manager("bob@example.org", 22);
        let ee = alice
            .encrypt_key_transport(&[7; 16], &[8; 12], &[to(&bob, true)])
            .unwrap();
        let original = PreKeySignalMessage::decode(&ee.keys[0].data).unwrap();
        for i in 0..ee.keys[0].data.len() {
            let mut t = ee.clone();
            t.keys[0].data[i] ^= 1;
            // libsignal's registrationId is neither authenticated nor used
            // (OMEMO has device ids): a flip there changes nothing.
            if let Ok(p) = PreKeySignalMessage::decode(&t.keys[0].data) {
                if p.registration_id != original.registration_id
                    && p == (PreKeySignalMessage {
                        registration_id: p.registration_id,
                        ..original.clone()
                    })
                {
                    continue;
                }
            }
            assert!(bob.decrypt("alice@example.org", &t).is_err(), "byte {i}");
        }
        // Nothing was consumed by the failures: the real one still opens.
        assert_eq!(
            &bob.decrypt("alice@example.org", &ee).unwrap().key_material[..],
            &[7; 16]
        );
        // Wrong sender JID: the session is per (JID, device).
        let ee2 = alice
            .encrypt_key_transport(&[7; 16], &[8; 12], &[to(&bob, false)])
            .unwrap();
        assert!(bob.decrypt("mallory@example.org", &ee2).is_err());
    }

    /// Both sides start a session at the same moment (both send a
    /// PreKeySignalMessage): everything sent still decrypts, and the two
    /// converge on working sessions.
    #[test]
    fn simultaneous_session_start() {
        let mut alice = manager("alice@example.org", 11);
        let mut bob = manager("bob@example.org", 22);
        let a1 = alice.encrypt_message(b"a1", &[to(&bob, true)]).unwrap();
        let b1 = bob.encrypt_message(b"b1", &[to(&alice, true)]).unwrap();
        assert!(a1.keys[0].prekey && b1.keys[0].prekey);
        // Each receives the other's prekey message: a new current session,
        // its own archived.
        assert_eq!(
            &bob.decrypt("alice@example.org", &a1)
                .unwrap()
                .payload
                .unwrap()[..],
            b"a1"
        );
        assert_eq!(
            &alice
                .decrypt("bob@example.org", &b1)
                .unwrap()
                .payload
                .unwrap()[..],
            b"b1"
        );
        // Messages keep flowing both ways, many rounds.
        for i in 0..4u8 {
            let m = alice.encrypt_message(&[i], &[to(&bob, false)]).unwrap();
            assert_eq!(
                &bob.decrypt("alice@example.org", &m)
                    .unwrap()
                    .payload
                    .unwrap()[..],
                &[i]
            );
            let m = bob.encrypt_message(&[i, i], &[to(&alice, false)]).unwrap();
            assert_eq!(
                &alice
                    .decrypt("bob@example.org", &m)
                    .unwrap()
                    .payload
                    .unwrap()[..],
                &[i, i]
            );
        }
        let addr = DeviceAddress::new("bob@example.org", 22);
        assert!(alice.store().load_session(&addr).unwrap().archived_len() <= 1);
    }

    #[test]
    fn jet_secret_forms() {
        let mut alice = manager("alice@example.org", 11);
        let mut bob = manager("bob@example.org", 22);
        let ts = TransportSecret::generate_with(16, 12).unwrap();
        let ee = alice.seal_transport_secret(&ts, &[to(&bob, true)]).unwrap();
        let d = bob.decrypt("alice@example.org", &ee).unwrap();
        assert_eq!(d.key_transport_secret().unwrap(), ts);
        assert!(d.payload_secret(16, &[12]).is_err());
        // Smack: TK || IV as payload of an ordinary message.
        let mut blob = ts.key().to_vec();
        blob.extend_from_slice(ts.iv());
        let m = alice.encrypt_message(&blob, &[to(&bob, false)]).unwrap();
        let d = bob.decrypt("alice@example.org", &m).unwrap();
        assert_eq!(d.payload_secret(16, &[12, 16]).unwrap(), ts);
        assert!(d.key_transport_secret().is_err());
        // Libervia: the message's own key and IV.
        let lib = d.message_key_secret().unwrap();
        assert_eq!(lib.key(), &d.key_material[..16]);
        assert_eq!(lib.iv(), &m.iv[..]);
    }

    /// Thousands of random mutations of valid wire data: every outcome is a
    /// value or an error, never a panic, and the real message still opens.
    #[test]
    fn hostile_mutations_never_panic() {
        use crate::omemo::proto::SignalMessage;
        use crate::omemo::ratchet::SessionRecord;
        let mut alice = manager("alice@example.org", 11);
        let mut bob = manager("bob@example.org", 22);
        let first = alice
            .encrypt_key_transport(&[7; 16], &[8; 12], &[to(&bob, true)])
            .unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let original = first.keys[0].data.clone();
        for _ in 0..3000 {
            let mut data = original.clone();
            match next() % 4 {
                0 => data.truncate((next() as usize) % data.len()),
                1 => data.extend((0..next() % 8).map(|_| next() as u8)),
                _ => {
                    for _ in 0..1 + next() % 4 {
                        let i = (next() as usize) % data.len();
                        data[i] ^= 1 << (next() % 8);
                    }
                }
            }
            let _ = PreKeySignalMessage::decode(&data);
            let _ = SignalMessage::decode(&data);
            let _ = SessionRecord::from_bytes(&data);
            let mut el = first.clone();
            el.keys[0].data = data;
            let _ = bob.decrypt("alice@example.org", &el);
        }
        // No mutation may have consumed state the real message needs unless
        // it was an equivalent message (only the unauthenticated
        // registration id differs): then the session exists already.
        let d = bob.decrypt("alice@example.org", &first);
        assert!(
            d.is_ok() || matches!(d, Err(OmemoError::Duplicate)),
            "{d:?}"
        );
    }

    /// A forged PreKeySignalMessage naming another identity key fails and
    /// records nothing: the genuine sender is not locked out afterwards.
    #[test]
    fn forged_identity_does_not_poison_the_store() {
        let mut alice = manager("alice@example.org", 11);
        let mut bob = manager("bob@example.org", 22);
        let real = alice
            .encrypt_key_transport(&[7; 16], &[8; 12], &[to(&bob, true)])
            .unwrap();
        let mut pkm = PreKeySignalMessage::decode(&real.keys[0].data).unwrap();
        pkm.identity_key = crate::omemo::keys::KeyPair::generate().unwrap().public;
        let mut forged = real.clone();
        forged.keys[0].data = pkm.encode();
        assert!(matches!(
            bob.decrypt("alice@example.org", &forged),
            Err(OmemoError::Decrypt)
        ));
        let addr = DeviceAddress::new("alice@example.org", 11);
        assert!(bob.store().remote_identity(&addr).unwrap().is_none());
        assert_eq!(
            &bob.decrypt("alice@example.org", &real)
                .unwrap()
                .key_material[..],
            &[7; 16]
        );
        assert!(bob.store().remote_identity(&addr).unwrap().is_some());
    }

    #[test]
    fn colliding_device_ids_in_one_message() {
        let mut alice = manager("alice@example.org", 11);
        let mut bob = manager("bob@example.org", 22);
        let carol = manager("carol@example.org", 22);
        // Carol's device has Bob's id; her <key> comes first.
        let ee = alice
            .encrypt_key_transport(&[5; 16], &[6; 12], &[to(&carol, true), to(&bob, true)])
            .unwrap();
        assert_eq!(ee.keys.len(), 2);
        assert!(ee.keys.iter().all(|k| k.rid == 22));
        assert_eq!(
            &bob.decrypt("alice@example.org", &ee).unwrap().key_material[..],
            &[5; 16]
        );
    }

    #[test]
    fn payload_forms() {
        let key = [3u8; 16];
        let iv = [4u8; 12];
        let c = AesGcm::<Aes128, U12>::new((&key).into());
        let ct = c.encrypt((&iv).into(), &b"body"[..]).unwrap();
        // Tag appended to payload, 16-byte material.
        assert_eq!(&decrypt_payload(&key, &iv, &ct).unwrap()[..], b"body");
        // Tag in the key material.
        let mut m = key.to_vec();
        m.extend_from_slice(&ct[4..]);
        assert_eq!(&decrypt_payload(&m, &iv, &ct[..4]).unwrap()[..], b"body");
        // 16-byte IV.
        let iv16 = [5u8; 16];
        let ct16 = AesGcm::<Aes128, U16>::new((&key).into())
            .encrypt((&iv16).into(), &b"old"[..])
            .unwrap();
        assert_eq!(&decrypt_payload(&key, &iv16, &ct16).unwrap()[..], b"old");
        assert!(decrypt_payload(&key, &iv, &ct[..10]).is_err());
        assert!(decrypt_payload(&[0; 20], &iv, &ct).is_err());
        assert!(matches!(
            decrypt_payload(&[9; 16], &iv, &ct),
            Err(OmemoError::Decrypt)
        ));
    }
}
