//! JET-OMEMO (XEP-0396) as a [`jet_core::envelope::EnvelopeBackend`]: a
//! first cut over the OMEMO core.
//!
//! `seal` fetches the recipient's device list (and ours, XEP-0396 §3:
//! encrypt for every device of the recipient and our own other devices),
//! fetches the bundle of each device without a session, and returns a
//! KeyTransportElement whose `<key>`s carry TK and whose `<iv>` is the IV.
//! `open` decrypts our `<key>`, reads TK and IV with the suite's lengths,
//! and reports the stanza's bare JID and the OMEMO device id as the sender:
//! the ratchet message authenticates under that device's session, so the
//! envelope proves it comes from that account's device (XEP-0391 §7).
//!
//! Device lists and bundles come from an [`OmemoDirectory`]: PEP over a
//! [`StanzaChannel`] ([`PepDirectory`]) or a map in tests
//! ([`MemoryDirectory`]). Not done yet: PEP notifications (device list
//! updates pushed by the server), answering a new session with an empty
//! message, a signed prekey rotation schedule. Used one-time prekeys are
//! replaced and the bundle republished after each new session.
//! Trust ([`super::manager::TrustPolicy`]): by default a device's identity
//! key is taken from its published bundle the first time (a session start
//! must name that same key), reported to the trust observer with its
//! fingerprint, then pinned; under `Manual` only devices the user trusted
//! are used. A changed key is refused, naming the JID, device and both
//! fingerprints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jet_core::channel::{iq, StanzaChannel};
use jet_core::envelope::{EnvelopeBackend, EnvelopeContext, OpenedEnvelope};
use jet_core::error::{ChannelError, EnvelopeError};
use jet_core::jid::{BareJid, Jid};
use jet_core::minidom::Element;
use jet_core::{ns, SecretShape, TransportSecret};

use super::error::OmemoError;
use super::manager::{OmemoManager, Recipient, TrustEvent};
use super::pep;
use super::proto::PreKeySignalMessage;
use super::store::{DeviceAddress, OmemoStore};
use super::x3dh::PreKeyBundle;
use super::xml::{EncryptedElement, NODE_DEVICELIST};

/// Where device lists and bundles are published and fetched.
#[async_trait]
pub trait OmemoDirectory: Send + Sync {
    /// The device ids `jid` announces (empty if none).
    async fn device_list(&self, jid: &BareJid) -> Result<Vec<u32>, EnvelopeError>;
    /// The bundle of one device.
    async fn bundle(&self, jid: &BareJid, device_id: u32) -> Result<PreKeyBundle, EnvelopeError>;
    /// Publishes our device list.
    async fn publish_device_list(&self, devices: &[u32]) -> Result<(), EnvelopeError>;
    /// Publishes the bundle of our device.
    async fn publish_bundle(
        &self,
        device_id: u32,
        bundle: &PreKeyBundle,
    ) -> Result<(), EnvelopeError>;
}

fn to_envelope_error(e: OmemoError) -> EnvelopeError {
    match e {
        OmemoError::Malformed(m) => EnvelopeError::Malformed(m),
        OmemoError::Untrusted(m) => EnvelopeError::Untrusted(m),
        OmemoError::NoSession(m) => EnvelopeError::NoKey(m),
        OmemoError::Store(m) => EnvelopeError::Store(m),
        other => EnvelopeError::Open(other.to_string()),
    }
}

/// [`OmemoDirectory`] over PEP (XEP-0163) on a stanza channel; every
/// request is bounded by `timeout`.
pub struct PepDirectory {
    channel: Arc<dyn StanzaChannel>,
    timeout: Duration,
}

impl PepDirectory {
    /// A directory using `channel`, waiting at most `timeout` per request.
    pub fn new(channel: Arc<dyn StanzaChannel>, timeout: Duration) -> Self {
        PepDirectory { channel, timeout }
    }

    async fn request(
        &self,
        type_: &str,
        to: Option<&BareJid>,
        payload: Element,
    ) -> Result<Element, EnvelopeError> {
        // PEP requests to our own account go to our bare JID.
        let own = self.channel.local_jid().to_bare();
        let to = Jid::from(to.cloned().unwrap_or(own));
        let req = iq(type_, "", None, &to, Some(payload));
        match tokio::time::timeout(self.timeout, self.channel.request(req)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ChannelError::Timeout(to.to_string()).into()),
        }
    }
}

#[async_trait]
impl OmemoDirectory for PepDirectory {
    async fn device_list(&self, jid: &BareJid) -> Result<Vec<u32>, EnvelopeError> {
        match self
            .request("get", Some(jid), pep::fetch(NODE_DEVICELIST))
            .await
        {
            Ok(r) => pep::device_list_from_stanza(&r).map_err(to_envelope_error),
            // No node yet: no devices.
            Err(EnvelopeError::Channel(ChannelError::StanzaError { condition, .. }))
                if condition == "item-not-found" =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    async fn bundle(&self, jid: &BareJid, device_id: u32) -> Result<PreKeyBundle, EnvelopeError> {
        let r = self
            .request("get", Some(jid), pep::fetch(&pep::bundle_node(device_id)))
            .await?;
        pep::bundle_from_stanza(&r, device_id).map_err(to_envelope_error)
    }

    async fn publish_device_list(&self, devices: &[u32]) -> Result<(), EnvelopeError> {
        self.request("set", None, pep::publish_device_list(devices))
            .await?;
        Ok(())
    }

    async fn publish_bundle(
        &self,
        device_id: u32,
        bundle: &PreKeyBundle,
    ) -> Result<(), EnvelopeError> {
        self.request("set", None, pep::publish_bundle(device_id, bundle))
            .await?;
        Ok(())
    }
}

/// [`OmemoDirectory`] in memory, shared by the devices of a test; each
/// clone of it sees the same data, and publishes as `owner`.
#[derive(Clone)]
pub struct MemoryDirectory {
    owner: BareJid,
    data: Arc<Mutex<MemoryData>>,
}

#[derive(Default)]
struct MemoryData {
    lists: HashMap<BareJid, Vec<u32>>,
    bundles: HashMap<(BareJid, u32), PreKeyBundle>,
}

impl MemoryDirectory {
    /// A new, empty directory; `owner` is the account publishing through it.
    pub fn new(owner: BareJid) -> Self {
        MemoryDirectory {
            owner,
            data: Arc::default(),
        }
    }

    /// A view of the same directory publishing as `owner`.
    pub fn as_account(&self, owner: BareJid) -> Self {
        MemoryDirectory {
            owner,
            data: self.data.clone(),
        }
    }
}

#[async_trait]
impl OmemoDirectory for MemoryDirectory {
    async fn device_list(&self, jid: &BareJid) -> Result<Vec<u32>, EnvelopeError> {
        Ok(self
            .data
            .lock()
            .unwrap()
            .lists
            .get(jid)
            .cloned()
            .unwrap_or_default())
    }
    async fn bundle(&self, jid: &BareJid, device_id: u32) -> Result<PreKeyBundle, EnvelopeError> {
        self.data
            .lock()
            .unwrap()
            .bundles
            .get(&(jid.clone(), device_id))
            .cloned()
            .ok_or_else(|| EnvelopeError::NoKey(format!("{jid}/{device_id}: no bundle")))
    }
    async fn publish_device_list(&self, devices: &[u32]) -> Result<(), EnvelopeError> {
        self.data
            .lock()
            .unwrap()
            .lists
            .insert(self.owner.clone(), devices.to_vec());
        Ok(())
    }
    async fn publish_bundle(
        &self,
        device_id: u32,
        bundle: &PreKeyBundle,
    ) -> Result<(), EnvelopeError> {
        self.data
            .lock()
            .unwrap()
            .bundles
            .insert((self.owner.clone(), device_id), bundle.clone());
        Ok(())
    }
}

/// The JET-OMEMO envelope backend (`type` = `eu.siacs.conversations.axolotl`,
/// disco feature `urn:xmpp:jingle:jet-omemo:0`).
pub struct OmemoEnvelope<S: OmemoStore> {
    manager: Mutex<OmemoManager<S>>,
    directory: Arc<dyn OmemoDirectory>,
    own_jid: BareJid,
    blank_payload_peers: Mutex<std::collections::HashSet<BareJid>>,
    libervia_senders: Mutex<std::collections::HashSet<BareJid>>,
}

impl<S: OmemoStore> OmemoEnvelope<S> {
    /// A backend for account `own_jid` with keys in `store`.
    pub fn new(store: S, own_jid: BareJid, directory: Arc<dyn OmemoDirectory>) -> Self {
        OmemoEnvelope {
            manager: Mutex::new(OmemoManager::new(store, own_jid.to_string())),
            directory,
            own_jid,
            blank_payload_peers: Mutex::new(Default::default()),
            libervia_senders: Mutex::new(Default::default()),
        }
    }

    /// Accepts Libervia's nonce-reusing form from `peer` (recognised as
    /// Libervia by the application, e.g. from its disco identity): the file
    /// is encrypted under the OMEMO message's own key and nonce, which
    /// already encrypted the message's `<payload>`. Refused from anyone
    /// else, and always refused when we would encrypt the file under it
    /// ([`EnvelopeContext::we_encrypt`]): a key and nonce never encrypt
    /// two plaintexts on our side.
    pub fn accept_libervia_form_from(&self, peer: BareJid) {
        self.libervia_senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer);
    }

    /// Seals for `peer` in a form Libervia 0.9 can open: XEP-0396's key
    /// transport element plus a `<payload>` holding only whitespace (no
    /// ciphertext).
    ///
    /// Libervia's receiver (python-omemo's oldmemo) replaces the `<iv>` of
    /// an element without `<payload>` by a random one, so it cannot decrypt
    /// a file sent with XEP-0396's form. With a blank payload it keeps our
    /// `<iv>` and, the payload being empty, decrypts nothing with it: the
    /// file key TK and the IV are used for the file only, as in XEP-0396.
    /// (Libervia's own sender instead reuses its message's key and nonce:
    /// jet never sends that.) Receivers that read XEP-0396 strictly may
    /// treat the blank payload as an empty message, so this is only for
    /// peers known to be Libervia.
    pub fn send_libervia_compatible_to(&self, peer: BareJid) {
        self.blank_payload_peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer);
    }

    fn manager(&self) -> std::sync::MutexGuard<'_, OmemoManager<S>> {
        // A panic while holding the lock would be a bug elsewhere; the state
        // itself is only changed after successful operations.
        self.manager.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Our device id.
    pub fn device_id(&self) -> u32 {
        self.manager().device_id()
    }

    /// Sets the trust policy (default: trust on first use).
    pub fn set_trust_policy(&self, policy: super::manager::TrustPolicy) {
        self.manager().set_trust_policy(policy);
    }

    /// Sets the callback told about newly seen devices and their
    /// fingerprints (the CLI prints them).
    pub fn set_trust_observer(&self, observer: Option<super::manager::TrustObserver>) {
        self.manager().set_trust_observer(observer);
    }

    /// Runs `f` on the store (trust decisions, listing).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(self.manager().store_mut())
    }

    /// Publishes our bundle and adds our device to our device list (XEP-0384
    /// v0.3 §4.2, §4.3).
    pub async fn publish(&self) -> Result<(), EnvelopeError> {
        let (id, bundle) = {
            let m = self.manager();
            (m.device_id(), m.bundle().map_err(to_envelope_error)?)
        };
        self.directory.publish_bundle(id, &bundle).await?;
        let mut list = self.directory.device_list(&self.own_jid).await?;
        if !list.contains(&id) {
            list.push(id);
            self.directory.publish_device_list(&list).await?;
        }
        Ok(())
    }

    /// A PreKeySignalMessage from a device we have no identity key for yet
    /// must name the identity key that device publishes in its bundle
    /// (python-omemo checks the same); otherwise anyone able to send as the
    /// account could slip in a key of their own for one of its device ids.
    async fn check_new_device(
        &self,
        sender: &BareJid,
        ee: &EncryptedElement,
    ) -> Result<(), EnvelopeError> {
        let own = self.device_id();
        let claimed: Vec<_> = ee
            .keys
            .iter()
            .filter(|k| k.rid == own && k.prekey)
            .filter_map(|k| PreKeySignalMessage::decode(&k.data).ok())
            .map(|p| p.identity_key)
            .collect();
        if claimed.is_empty() {
            return Ok(());
        }
        let address = DeviceAddress::new(sender.to_string(), ee.sid);
        let known = self
            .manager()
            .store()
            .remote_identity(&address)
            .map_err(to_envelope_error)?;
        if known.is_some() {
            // The manager compares with the recorded key.
            return Ok(());
        }
        let bundle = self.directory.bundle(sender, ee.sid).await.map_err(|e| {
            EnvelopeError::Untrusted(format!(
                "{address}: cannot fetch its bundle to check its identity key: {e}"
            ))
        })?;
        if claimed.iter().any(|k| *k != bundle.identity_key) {
            return Err(EnvelopeError::Untrusted(format!(
                "{address}: the message's identity key is not the one the device publishes"
            )));
        }
        Ok(())
    }

    /// The devices to seal for: all of `peer`'s, and our own other ones.
    async fn recipients(&self, peer: &BareJid) -> Result<Vec<Recipient>, EnvelopeError> {
        let own_id = self.device_id();
        let mut addresses: Vec<(BareJid, u32)> = Vec::new();
        let mut peer_devices = self.directory.device_list(peer).await?;
        if peer == &self.own_jid {
            peer_devices.retain(|&d| d != own_id);
        }
        if peer_devices.is_empty() {
            return Err(EnvelopeError::NoKey(format!(
                "{peer} announces no OMEMO device"
            )));
        }
        addresses.extend(peer_devices.into_iter().map(|d| (peer.clone(), d)));
        if peer != &self.own_jid {
            let own = self.directory.device_list(&self.own_jid).await?;
            addresses.extend(
                own.into_iter()
                    .filter(|&d| d != own_id)
                    .map(|d| (self.own_jid.clone(), d)),
            );
        }
        let need_bundle: Vec<bool> = {
            let m = self.manager();
            addresses
                .iter()
                .map(|(j, d)| {
                    m.store()
                        .load_session(&DeviceAddress::new(j.to_string(), *d))
                        .map(|r| r.current().is_none())
                })
                .collect::<Result<_, _>>()
                .map_err(to_envelope_error)?
        };
        let mut out = Vec::new();
        for ((jid, device), need) in addresses.into_iter().zip(need_bundle) {
            let bundle = if need {
                match self.directory.bundle(&jid, device).await {
                    Ok(b) => Some(b),
                    // A listed device without a usable bundle is stale;
                    // deployed clients skip those too. At least one device
                    // of the peer must remain (checked below).
                    Err(_) => continue,
                }
            } else {
                None
            };
            out.push(Recipient {
                address: DeviceAddress::new(jid.to_string(), device),
                bundle,
            });
        }
        if !out.iter().any(|r| r.address.jid == peer.to_string()) {
            return Err(EnvelopeError::NoKey(format!(
                "no usable OMEMO device of {peer}"
            )));
        }
        Ok(out)
    }
}

#[async_trait]
impl<S: OmemoStore + 'static> EnvelopeBackend for OmemoEnvelope<S> {
    fn envelope_type(&self) -> &'static str {
        ns::OMEMO_LEGACY
    }

    fn disco_feature(&self) -> &'static str {
        ns::JET_OMEMO_FEATURE
    }

    fn is_secure(&self) -> bool {
        true
    }

    async fn seal(
        &self,
        secret: &TransportSecret,
        recipient: &Jid,
    ) -> Result<Element, EnvelopeError> {
        let peer = recipient.to_bare();
        let recipients = self.recipients(&peer).await?;
        let ee = {
            let mut m = self.manager();
            let (keys, refused) = m
                .encrypt_key_material_for(secret.key(), &recipients, true)
                .map_err(to_envelope_error)?;
            // Devices the trust policy refuses are left out (the observer
            // was told which, with their fingerprints); at least one device
            // of the peer must remain.
            let peer_text = peer.to_string();
            let reached = recipients
                .iter()
                .filter(|r| r.address.jid == peer_text)
                .any(|r| !refused.iter().any(|(a, _)| *a == r.address));
            if !reached {
                let why: Vec<&str> = refused.iter().map(|(_, w)| w.as_str()).collect();
                return Err(EnvelopeError::Untrusted(format!(
                    "no OMEMO device of {peer} may be used: {}",
                    why.join("; ")
                )));
            }
            EncryptedElement {
                sid: m.device_id(),
                keys,
                iv: secret.iv().to_vec(),
                payload: None,
            }
        };
        let mut el = ee.to_element();
        let blank = self
            .blank_payload_peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&peer);
        if blank {
            el.append_child(
                Element::builder("payload", ns::OMEMO_LEGACY)
                    .append(" ")
                    .build(),
            );
        }
        Ok(el)
    }

    /// Outside a session this is the receiving side: Libervia's form is
    /// accepted only from peers marked with
    /// [`OmemoEnvelope::accept_libervia_form_from`].
    async fn open(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        shape: SecretShape,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        self.open_in(envelope, stanza_sender, shape, false).await
    }

    async fn open_for(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        shape: SecretShape,
        context: &EnvelopeContext,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        self.open_in(envelope, stanza_sender, shape, context.we_encrypt)
            .await
    }
}

impl<S: OmemoStore + 'static> OmemoEnvelope<S> {
    /// Opens EE; `we_encrypt`: whether we will encrypt the stream under
    /// the secret (Libervia's form is then refused).
    async fn open_in(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        shape: SecretShape,
        we_encrypt: bool,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        let ee = EncryptedElement::from_element(envelope).map_err(to_envelope_error)?;
        let sender = stanza_sender.to_bare();
        self.check_new_device(&sender, &ee).await?;
        let d = self
            .manager()
            .decrypt(&sender.to_string(), &ee)
            .map_err(to_envelope_error)?;
        if d.new_session {
            // A one-time prekey was used: replace it and republish.
            let (changed, id, bundle) = {
                let mut m = self.manager();
                let changed = m.store_mut().refill_pre_keys().map_err(to_envelope_error)?;
                (
                    changed,
                    m.device_id(),
                    m.bundle().map_err(to_envelope_error)?,
                )
            };
            if changed {
                self.directory.publish_bundle(id, &bundle).await?;
            }
        }
        let secret = match &d.payload {
            // XEP-0396: a key transport element; the key material is TK.
            None => d.key_transport_secret().map_err(to_envelope_error)?,
            Some(payload) => match payload_form_secret(payload, shape) {
                // Smack: the (authenticated) payload carries TK || IV,
                // independent of the message's own key and IV.
                Some(secret) => secret,
                // Libervia: the message's own key and IV. Only for a suite
                // whose key is the OMEMO 0.3 message key (AES-128).
                None => {
                    if shape.key_len != 16 {
                        return Err(EnvelopeError::Malformed(format!(
                            "an OMEMO message with a payload that holds no transport \
                             secret, and the cipher needs a {}-byte key, not the \
                             message's 16-byte key",
                            shape.key_len
                        )));
                    }
                    let libervia = self
                        .libervia_senders
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains(&sender);
                    if we_encrypt {
                        return Err(EnvelopeError::Untrusted(format!(
                            "{} sent the transport secret in Libervia's form (its OMEMO \
                             message's own key and nonce, which already encrypted the \
                             message's payload), and we would encrypt the file under it: \
                             refused, a key and nonce never encrypt two plaintexts here",
                            d.sender
                        )));
                    }
                    if !libervia {
                        return Err(EnvelopeError::Untrusted(format!(
                            "{} sent the transport secret in Libervia's nonce-reusing form, \
                             but {sender} is not recognised as Libervia (by its disco \
                             identity): refused",
                            d.sender
                        )));
                    }
                    let s = d.message_key_secret().map_err(to_envelope_error)?;
                    self.manager().notify(&TrustEvent::NonceReusingForm {
                        address: d.sender.clone(),
                    });
                    s
                }
            },
        };
        if !shape.accepts(&secret) {
            return Err(EnvelopeError::Malformed(format!(
                "a transport key of {} bytes and an IV of {}: the cipher needs a {}-byte key \
                 and an IV of {:?} bytes",
                secret.key().len(),
                secret.iv().len(),
                shape.key_len,
                shape.accepted_iv_lens
            )));
        }
        Ok(OpenedEnvelope {
            secret,
            sender,
            sender_key: Some(d.sender.device_id.to_string()),
        })
    }
}

/// The transport secret of Smack's form, if `payload` holds one: TK || IV
/// of `shape`, raw or in base64 (XEP-0391 v0.1 serialization).
fn payload_form_secret(payload: &[u8], shape: SecretShape) -> Option<TransportSecret> {
    use base64::Engine;
    let parse = |bytes: &[u8]| shape.from_bytes(bytes).ok();
    let text = std::str::from_utf8(payload).ok().map(str::trim);
    let decoded = text.and_then(|t| {
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .ok()
            .map(zeroize::Zeroizing::new)
    });
    decoded
        .as_deref()
        .and_then(|b| parse(b))
        .or_else(|| parse(payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omemo::store::InMemoryStore;

    /// Only the sizes matter to an envelope.
    const AES128_SIZES: SecretShape = SecretShape::new(16, 12, &[12, 16]);

    fn bare(s: &str) -> BareJid {
        s.parse().unwrap()
    }

    fn opened_account(dev: u32) -> BareJid {
        bare(if dev < 200 {
            "romeo@montague.lit"
        } else {
            "juliet@capulet.lit"
        })
    }

    async fn device(dir: &MemoryDirectory, jid: &str, id: u32) -> OmemoEnvelope<InMemoryStore> {
        let e = OmemoEnvelope::new(
            InMemoryStore::generate(id).unwrap(),
            bare(jid),
            Arc::new(dir.as_account(bare(jid))),
        );
        e.publish().await.unwrap();
        e
    }

    #[tokio::test]
    async fn seal_and_open_across_devices() {
        let dir = MemoryDirectory::new(bare("nobody@example.org"));
        let romeo = device(&dir, "romeo@montague.lit", 101).await;
        let romeo_phone = device(&dir, "romeo@montague.lit", 102).await;
        let juliet = device(&dir, "juliet@capulet.lit", 201).await;
        let juliet_tablet = device(&dir, "juliet@capulet.lit", 202).await;
        let ts = TransportSecret::generate_with(16, 12).unwrap();
        let to: Jid = "juliet@capulet.lit/balcony".parse().unwrap();
        let ee = romeo.seal(&ts, &to).await.unwrap();
        assert_eq!(ee.ns(), ns::OMEMO_LEGACY);
        assert!(ee.get_child("payload", ns::OMEMO_LEGACY).is_none());
        let from: Jid = "romeo@montague.lit/orchard".parse().unwrap();
        for (who, dev) in [(&juliet, 201), (&juliet_tablet, 202), (&romeo_phone, 102)] {
            let before = dir.bundle(&opened_account(dev), dev).await.unwrap();
            let opened = who.open(&ee, &from, AES128_SIZES).await.unwrap();
            assert_eq!(opened.secret, ts, "device {dev}");
            // The used one-time prekey was replaced and the bundle republished.
            let after = dir.bundle(&opened_account(dev), dev).await.unwrap();
            assert_ne!(before.pre_keys, after.pre_keys);
            assert_eq!(after.pre_keys.len(), 100);
            assert_eq!(after, who.manager().bundle().unwrap());
            assert_eq!(opened.sender, bare("romeo@montague.lit"));
            assert_eq!(opened.sender_key.as_deref(), Some("101"));
        }
        // Claiming another sender JID fails: the session is per account.
        let mallory: Jid = "mallory@evil.example/x".parse().unwrap();
        let ee2 = romeo.seal(&ts, &to).await.unwrap();
        assert!(juliet.open(&ee2, &mallory, AES128_SIZES).await.is_err());
        // The answer direction works on the same sessions.
        let back = juliet.seal(&ts, &from).await.unwrap();
        assert_eq!(
            romeo.open(&back, &to, AES128_SIZES).await.unwrap().secret,
            ts
        );
    }

    /// The two payload forms deployed senders use instead of XEP-0396's key
    /// transport element are accepted on receipt: Smack's (the payload is
    /// base64 of TK || IV) and Libervia's (the message's own key and IV,
    /// reported as a nonce-reusing form, and only from a peer recognised as
    /// Libervia and never when we would encrypt the file under it).
    /// Libervia's form needs the suite's key to be the 16-byte message key;
    /// a tampered payload is refused.
    #[tokio::test]
    async fn payload_forms_of_deployed_senders_are_accepted() {
        use crate::omemo::manager::TrustEvent;
        use base64::Engine;
        let dir = MemoryDirectory::new(bare("nobody@example.org"));
        let romeo = device(&dir, "romeo@montague.lit", 101).await;
        let juliet = device(&dir, "juliet@capulet.lit", 201).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        juliet.set_trust_observer(Some(Box::new(move |e: &TrustEvent| {
            s2.lock().unwrap().push(e.clone())
        })));
        let from: Jid = "romeo@montague.lit/o".parse().unwrap();
        let to = romeo.recipients(&bare("juliet@capulet.lit")).await.unwrap();

        // Smack: base64(TK || IV) in the payload.
        let ts = TransportSecret::generate_with(16, 12).unwrap();
        let mut tk_iv = ts.key().to_vec();
        tk_iv.extend_from_slice(ts.iv());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&tk_iv);
        let ee = romeo
            .manager()
            .encrypt_message(b64.as_bytes(), &to)
            .unwrap();
        let opened = juliet
            .open(&ee.to_element(), &from, AES128_SIZES)
            .await
            .unwrap();
        assert_eq!(opened.secret, ts);
        assert!(seen
            .lock()
            .unwrap()
            .iter()
            .all(|e| !matches!(e, TrustEvent::NonceReusingForm { .. })));

        // Libervia's form from a peer not recognised as Libervia: refused.
        let to = romeo.recipients(&bare("juliet@capulet.lit")).await.unwrap();
        let ee = romeo.manager().encrypt_message(b" ", &to).unwrap();
        let err = juliet
            .open(&ee.to_element(), &from, AES128_SIZES)
            .await
            .unwrap_err();
        assert!(matches!(err, EnvelopeError::Untrusted(_)), "{err}");
        assert!(err.to_string().contains("Libervia"), "{err}");
        // Recognised as Libervia, but we would encrypt the file (a host
        // answering a request): refused.
        juliet.accept_libervia_form_from(bare("romeo@montague.lit"));
        let to = romeo.recipients(&bare("juliet@capulet.lit")).await.unwrap();
        let ee = romeo.manager().encrypt_message(b" ", &to).unwrap();
        let serving = EnvelopeContext::new("s1", "c1", true);
        let err = juliet
            .open_for(&ee.to_element(), &from, AES128_SIZES, &serving)
            .await
            .unwrap_err();
        assert!(matches!(err, EnvelopeError::Untrusted(_)), "{err}");

        // Libervia: a one-space payload; the file key is the message key.
        let to = romeo.recipients(&bare("juliet@capulet.lit")).await.unwrap();
        let ee = romeo.manager().encrypt_message(b" ", &to).unwrap();
        let receiving = EnvelopeContext::new("s1", "c1", false);
        let opened = juliet
            .open_for(&ee.to_element(), &from, AES128_SIZES, &receiving)
            .await
            .unwrap();
        assert_eq!(opened.secret.iv(), &ee.iv[..]);
        assert_eq!(opened.secret.key().len(), 16);
        // The key and IV are the ones that encrypted the payload.
        {
            use aes_gcm::aead::{Aead, KeyInit};
            let c = aes_gcm::Aes128Gcm::new_from_slice(opened.secret.key()).unwrap();
            let nonce: &aes_gcm::Nonce<aes_gcm::aead::consts::U12> =
                opened.secret.iv().try_into().unwrap();
            let ct = c.encrypt(nonce, &b" "[..]).unwrap();
            assert_eq!(&ct[..1], &ee.payload.as_ref().unwrap()[..]);
        }
        assert!(seen.lock().unwrap().iter().any(|e| matches!(
            e,
            TrustEvent::NonceReusingForm { address } if address.device_id == 101
        )));

        // A tampered payload is refused (its GCM tag fails).
        let to = romeo.recipients(&bare("juliet@capulet.lit")).await.unwrap();
        let mut ee = romeo.manager().encrypt_message(b" ", &to).unwrap();
        ee.payload.as_mut().unwrap()[0] ^= 1;
        assert!(juliet
            .open(&ee.to_element(), &from, AES128_SIZES)
            .await
            .is_err());
    }

    /// The Libervia-compatible form: a blank `<payload>` beside the key
    /// transport; it opens to the same secret (TK and our IV), and only
    /// peers marked for it get it.
    #[tokio::test]
    async fn libervia_compatible_form_carries_the_same_secret() {
        let dir = MemoryDirectory::new(bare("nobody@example.org"));
        let romeo = device(&dir, "romeo@montague.lit", 101).await;
        let juliet = device(&dir, "juliet@capulet.lit", 201).await;
        let from: Jid = "romeo@montague.lit/o".parse().unwrap();
        let to: Jid = "juliet@capulet.lit/b".parse().unwrap();
        let ts = TransportSecret::generate_with(16, 12).unwrap();
        let plain = romeo.seal(&ts, &to).await.unwrap();
        assert!(plain.get_child("payload", ns::OMEMO_LEGACY).is_none());
        romeo.send_libervia_compatible_to(bare("juliet@capulet.lit"));
        let el = romeo.seal(&ts, &to).await.unwrap();
        let p = el
            .get_child("payload", ns::OMEMO_LEGACY)
            .expect("a payload");
        assert_eq!(p.text(), " ");
        // Over the wire and back.
        let el: Element = String::from(&el).parse().unwrap();
        juliet.open(&plain, &from, AES128_SIZES).await.unwrap();
        let opened = juliet.open(&el, &from, AES128_SIZES).await.unwrap();
        assert_eq!(opened.secret, ts);
    }

    /// Manual trust refuses unknown devices in both directions until the
    /// user trusts the fingerprint; TOFU reports the fingerprint; a changed
    /// identity key is refused with both fingerprints named.
    #[tokio::test]
    async fn trust_policies_and_changed_identity_keys() {
        use crate::omemo::manager::{TrustEvent, TrustPolicy};
        use crate::omemo::store::Trust;
        let dir = MemoryDirectory::new(bare("nobody@example.org"));
        let romeo = device(&dir, "romeo@montague.lit", 101).await;
        let juliet = device(&dir, "juliet@capulet.lit", 201).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        romeo.set_trust_observer(Some(Box::new(move |e: &TrustEvent| {
            s2.lock().unwrap().push(e.clone())
        })));
        let ts = TransportSecret::generate_with(16, 12).unwrap();
        let to: Jid = "juliet@capulet.lit/b".parse().unwrap();
        let from: Jid = "romeo@montague.lit/o".parse().unwrap();
        let juliet_fpr = juliet
            .manager()
            .bundle()
            .unwrap()
            .identity_key
            .fingerprint();

        // Manual: sealing to an unverified device fails and names it.
        romeo.set_trust_policy(TrustPolicy::Manual);
        let err = romeo.seal(&ts, &to).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, EnvelopeError::Untrusted(_)), "{msg}");
        assert!(
            msg.contains("juliet@capulet.lit") && msg.contains("201"),
            "{msg}"
        );
        assert!(msg.contains(&juliet_fpr), "{msg}");
        // The observer saw the fingerprint, not accepted.
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            &[TrustEvent::NewDevice {
                address: DeviceAddress::new("juliet@capulet.lit", 201),
                fingerprint: juliet_fpr.clone(),
                accepted: false,
            }]
        );
        // Juliet in manual mode refuses Romeo's messages too.
        juliet.set_trust_policy(TrustPolicy::Manual);
        romeo.set_trust_policy(TrustPolicy::TrustOnFirstUse);
        let ee = romeo.seal(&ts, &to).await.unwrap();
        assert!(matches!(
            juliet.open(&ee, &from, AES128_SIZES).await,
            Err(EnvelopeError::Untrusted(_))
        ));
        // After trusting, the same message opens.
        let romeo_addr = DeviceAddress::new("romeo@montague.lit", 101);
        let romeo_key = romeo.manager().bundle().unwrap().identity_key;
        juliet.with_store(|s| s.set_trust(&romeo_addr, &romeo_key, Trust::Trusted));
        assert_eq!(
            juliet.open(&ee, &from, AES128_SIZES).await.unwrap().secret,
            ts
        );

        // Romeo's device 101 comes back with a new identity key.
        let reborn = device(&dir, "romeo@montague.lit", 101).await;
        let new_key = reborn.manager().bundle().unwrap().identity_key;
        let ee = reborn.seal(&ts, &to).await.unwrap();
        let err = juliet.open(&ee, &from, AES128_SIZES).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, EnvelopeError::Untrusted(_)), "{msg}");
        assert!(msg.contains("IDENTITY KEY CHANGED"), "{msg}");
        assert!(
            msg.contains("romeo@montague.lit") && msg.contains("101"),
            "{msg}"
        );
        assert!(msg.contains(&romeo_key.fingerprint()), "{msg}");
        assert!(msg.contains(&new_key.fingerprint()), "{msg}");
        // Also under TOFU.
        juliet.set_trust_policy(TrustPolicy::TrustOnFirstUse);
        assert!(matches!(
            juliet.open(&ee, &from, AES128_SIZES).await,
            Err(EnvelopeError::Untrusted(_))
        ));
    }

    /// Blind trust before verification (the default): new devices are used
    /// while none of the account's devices is verified; once one is, a
    /// device the server adds to the list is neither sealed to nor accepted
    /// from until the user trusts it, and the messages name the device, its
    /// fingerprint and the command. The same for our own account.
    #[tokio::test]
    async fn blind_trust_ends_with_the_first_verification() {
        use crate::omemo::manager::{TrustEvent, TrustPolicy};
        use crate::omemo::store::Trust;
        let dir = MemoryDirectory::new(bare("nobody@example.org"));
        let romeo = device(&dir, "romeo@montague.lit", 101).await;
        let romeo_phone = device(&dir, "romeo@montague.lit", 102).await;
        let juliet = device(&dir, "juliet@capulet.lit", 201).await;
        assert_eq!(
            romeo.manager().trust_policy(),
            TrustPolicy::BlindTrustBeforeVerification
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        romeo.set_trust_observer(Some(Box::new(move |e: &TrustEvent| {
            s2.lock().unwrap().push(e.clone())
        })));
        let ts = TransportSecret::generate_with(16, 12).unwrap();
        let to: Jid = "juliet@capulet.lit/b".parse().unwrap();
        let from_juliet: Jid = "juliet@capulet.lit/b".parse().unwrap();
        let me: Jid = "romeo@montague.lit/o".parse().unwrap();
        let rids = |el: &Element| {
            let mut r: Vec<u32> = EncryptedElement::from_element(el)
                .unwrap()
                .keys
                .iter()
                .map(|k| k.rid)
                .collect();
            r.sort();
            r
        };

        // Nothing verified yet: every device is used (blind trust).
        let ee = romeo.seal(&ts, &to).await.unwrap();
        assert_eq!(rids(&ee), vec![102, 201]);
        assert!(seen.lock().unwrap().iter().any(|e| matches!(e,
            TrustEvent::NewDevice { address, accepted: true, .. } if address.device_id == 201)));

        // Romeo verifies Juliet's device and his own phone.
        let juliet_key = juliet.manager().bundle().unwrap().identity_key;
        let phone_key = romeo_phone.manager().bundle().unwrap().identity_key;
        romeo.with_store(|s| {
            s.set_trust(
                &DeviceAddress::new("juliet@capulet.lit", 201),
                &juliet_key,
                Trust::Trusted,
            );
            s.set_trust(
                &DeviceAddress::new("romeo@montague.lit", 102),
                &phone_key,
                Trust::Trusted,
            );
        });

        // The server adds a device to Juliet's list and one to Romeo's.
        let rogue = device(&dir, "juliet@capulet.lit", 666).await;
        let own_rogue = device(&dir, "romeo@montague.lit", 777).await;
        let rogue_fpr = rogue.manager().bundle().unwrap().identity_key.fingerprint();
        seen.lock().unwrap().clear();
        let ee = romeo.seal(&ts, &to).await.unwrap();
        assert_eq!(rids(&ee), vec![102, 201], "sealed to a rogue device");
        assert!(rogue.open(&ee, &me, AES128_SIZES).await.is_err());
        assert!(own_rogue.open(&ee, &me, AES128_SIZES).await.is_err());
        assert_eq!(
            juliet.open(&ee, &me, AES128_SIZES).await.unwrap().secret,
            ts
        );
        {
            let seen = seen.lock().unwrap();
            assert!(
                seen.iter().any(|e| matches!(e,
                TrustEvent::NewDevice { address, fingerprint, accepted: false }
                    if address.device_id == 666 && *fingerprint == rogue_fpr)),
                "{seen:?}"
            );
            assert!(
                seen.iter().any(|e| matches!(e,
                TrustEvent::NewDevice { address, accepted: false, .. }
                    if address.device_id == 777)),
                "{seen:?}"
            );
        }
        // Sealing again: the known, unverified devices are reported as not
        // used, with their fingerprint and the command.
        seen.lock().unwrap().clear();
        let ee = romeo.seal(&ts, &to).await.unwrap();
        assert_eq!(rids(&ee), vec![102, 201], "sealed to a rogue device");
        {
            let seen = seen.lock().unwrap();
            let reason = seen
                .iter()
                .find_map(|e| match e {
                    TrustEvent::NotUsed { address, reason } if address.device_id == 666 => {
                        Some(reason.clone())
                    }
                    _ => None,
                })
                .expect("a not-used notice for the rogue device");
            assert!(
                reason.contains("666") && reason.contains(&rogue_fpr),
                "{reason}"
            );
            assert!(
                reason.contains(&format!(
                    "jet keys trust juliet@capulet.lit {}",
                    rogue_fpr.replace(' ', "")
                )),
                "{reason}"
            );
        }

        // Nor accepted from: the rogue devices' envelopes are refused.
        let forged = rogue.seal(&ts, &me).await.unwrap();
        let err = romeo
            .open(&forged, &from_juliet, AES128_SIZES)
            .await
            .unwrap_err();
        assert!(matches!(err, EnvelopeError::Untrusted(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("666") && msg.contains(&rogue_fpr), "{msg}");
        assert!(msg.contains("jet keys trust juliet@capulet.lit"), "{msg}");
        let own_forged = own_rogue.seal(&ts, &to).await.unwrap();
        assert!(matches!(
            romeo.open(&own_forged, &me, AES128_SIZES).await,
            Err(EnvelopeError::Untrusted(_))
        ));

        // A device list with only unverified new devices: refused as a whole.
        let carol = device(&dir, "carol@example.org", 301).await;
        let carol_key = carol.manager().bundle().unwrap().identity_key;
        romeo.with_store(|s| {
            s.save_remote_identity(
                &DeviceAddress::new("carol@example.org", 300),
                &carol_key,
                Trust::Trusted,
            )
            .unwrap()
        });
        let err = romeo
            .seal(&ts, &"carol@example.org".parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, EnvelopeError::Untrusted(_)), "{err}");
        assert!(err.to_string().contains("301"), "{err}");

        // The user trusts the rogue device's fingerprint: now it is used.
        let rogue_key = rogue.manager().bundle().unwrap().identity_key;
        romeo.with_store(|s| {
            s.set_trust(
                &DeviceAddress::new("juliet@capulet.lit", 666),
                &rogue_key,
                Trust::Trusted,
            )
        });
        let ee = romeo.seal(&ts, &to).await.unwrap();
        assert_eq!(rids(&ee), vec![102, 201, 666]);
        assert_eq!(
            romeo
                .open(
                    &rogue.seal(&ts, &me).await.unwrap(),
                    &from_juliet,
                    AES128_SIZES
                )
                .await
                .unwrap()
                .secret,
            ts
        );

        // `--trust tofu` (explicit) keeps the old behaviour: the own rogue
        // device is used although another own device is verified.
        romeo.set_trust_policy(TrustPolicy::TrustOnFirstUse);
        let ee = romeo.seal(&ts, &to).await.unwrap();
        assert_eq!(rids(&ee), vec![102, 201, 666, 777]);
    }

    /// A device that publishes one identity key but sends a session start
    /// under another is refused; so is one with no bundle at all.
    #[tokio::test]
    async fn new_device_must_match_its_published_identity() {
        let dir = MemoryDirectory::new(bare("nobody@example.org"));
        let juliet = device(&dir, "juliet@capulet.lit", 201).await;
        // An impostor with Romeo's device id 101, but Romeo's real bundle
        // is what the directory serves.
        let _romeo = device(&dir, "romeo@montague.lit", 101).await;
        let impostor = OmemoEnvelope::new(
            InMemoryStore::generate(101).unwrap(),
            bare("romeo@montague.lit"),
            Arc::new(dir.as_account(bare("romeo@montague.lit"))),
        );
        let ts = TransportSecret::generate_with(16, 12).unwrap();
        let to: Jid = "juliet@capulet.lit".parse().unwrap();
        let from: Jid = "romeo@montague.lit/x".parse().unwrap();
        let forged = impostor.seal(&ts, &to).await.unwrap();
        assert!(matches!(
            juliet.open(&forged, &from, AES128_SIZES).await,
            Err(EnvelopeError::Untrusted(_))
        ));
        // A device id with no bundle at all.
        let ghost = OmemoEnvelope::new(
            InMemoryStore::generate(999).unwrap(),
            bare("romeo@montague.lit"),
            Arc::new(dir.as_account(bare("romeo@montague.lit"))),
        );
        let ee = ghost.seal(&ts, &to).await.unwrap();
        assert!(matches!(
            juliet.open(&ee, &from, AES128_SIZES).await,
            Err(EnvelopeError::Untrusted(_))
        ));
    }

    #[tokio::test]
    async fn sealing_for_own_account_skips_this_device() {
        let dir = MemoryDirectory::new(bare("nobody@example.org"));
        let laptop = device(&dir, "romeo@montague.lit", 101).await;
        let phone = device(&dir, "romeo@montague.lit", 102).await;
        let ts = TransportSecret::generate_with(16, 12).unwrap();
        let me: Jid = "romeo@montague.lit".parse().unwrap();
        let ee = laptop.seal(&ts, &me).await.unwrap();
        let parsed = EncryptedElement::from_element(&ee).unwrap();
        assert_eq!(
            parsed.keys.iter().map(|k| k.rid).collect::<Vec<_>>(),
            vec![102]
        );
        assert_eq!(phone.open(&ee, &me, AES128_SIZES).await.unwrap().secret, ts);
    }

    #[tokio::test]
    async fn wrong_sizes_and_unknown_peers_are_errors() {
        let dir = MemoryDirectory::new(bare("nobody@example.org"));
        let romeo = device(&dir, "romeo@montague.lit", 101).await;
        let juliet = device(&dir, "juliet@capulet.lit", 201).await;
        let to: Jid = "juliet@capulet.lit".parse().unwrap();
        let from: Jid = "romeo@montague.lit".parse().unwrap();
        // A 32-byte TK does not fit a 16-byte-key suite.
        let big = TransportSecret::generate_with(32, 12).unwrap();
        let ee = romeo.seal(&big, &to).await.unwrap();
        assert!(matches!(
            juliet.open(&ee, &from, AES128_SIZES).await,
            Err(EnvelopeError::Malformed(_))
        ));
        let nobody: Jid = "nobody@example.org".parse().unwrap();
        assert!(matches!(
            romeo.seal(&big, &nobody).await,
            Err(EnvelopeError::NoKey(_))
        ));
        let junk: Element = "<encrypted xmlns='eu.siacs.conversations.axolotl'/>"
            .parse()
            .unwrap();
        assert!(juliet.open(&junk, &from, AES128_SIZES).await.is_err());
    }

    /// A PEP service in a stanza channel: stores what is published under
    /// (own bare JID, node) and answers `items` requests, like a server.
    struct FakePep {
        jid: jet_core::jid::FullJid,
        nodes: Arc<Mutex<HashMap<(String, String), Element>>>,
        requests: Arc<Mutex<Vec<Element>>>,
    }

    #[async_trait]
    impl StanzaChannel for FakePep {
        fn local_jid(&self) -> jet_core::jid::FullJid {
            self.jid.clone()
        }
        async fn request(&self, iq: Element) -> Result<Element, ChannelError> {
            self.requests.lock().unwrap().push(iq.clone());
            let ps = iq.get_child("pubsub", pep::NS_PUBSUB).unwrap();
            let to = iq.attr("to").unwrap().to_string();
            if let Some(publish) = ps.get_child("publish", pep::NS_PUBSUB) {
                assert_eq!(
                    to,
                    self.jid.to_bare().to_string(),
                    "PEP publishes go to our bare JID"
                );
                let node = publish.attr("node").unwrap().to_string();
                let item = publish.get_child("item", pep::NS_PUBSUB).unwrap().clone();
                self.nodes.lock().unwrap().insert((to, node), item);
                return Ok(jet_core::channel::iq_result(&iq, None));
            }
            let node = ps
                .get_child("items", pep::NS_PUBSUB)
                .unwrap()
                .attr("node")
                .unwrap();
            match self.nodes.lock().unwrap().get(&(to, node.to_string())) {
                Some(item) => Ok(jet_core::channel::iq_result(
                    &iq,
                    Some(
                        Element::builder("pubsub", pep::NS_PUBSUB)
                            .append(
                                Element::builder("items", pep::NS_PUBSUB)
                                    .attr(jet_core::xml::nc("node"), node)
                                    .append(item.clone())
                                    .build(),
                            )
                            .build(),
                    ),
                )),
                None => Err(jet_core::channel::stanza_error_of(
                    &jet_core::channel::iq_error(&iq, "cancel", "item-not-found", None),
                )),
            }
        }
        async fn send(&self, _: Element) -> Result<(), ChannelError> {
            Ok(())
        }
        fn subscribe(
            &self,
            _: jet_core::channel::IqFilter,
        ) -> tokio::sync::mpsc::UnboundedReceiver<Element> {
            tokio::sync::mpsc::unbounded_channel().1
        }
    }

    #[tokio::test]
    async fn pep_directory_publishes_and_fetches() {
        let nodes = Arc::new(Mutex::new(HashMap::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let chan = |jid: &str| -> Arc<dyn StanzaChannel> {
            Arc::new(FakePep {
                jid: jid.parse().unwrap(),
                nodes: nodes.clone(),
                requests: requests.clone(),
            })
        };
        let t = Duration::from_secs(5);
        let romeo = OmemoEnvelope::new(
            InMemoryStore::generate(101).unwrap(),
            bare("romeo@montague.lit"),
            Arc::new(PepDirectory::new(chan("romeo@montague.lit/orchard"), t)),
        );
        let juliet = OmemoEnvelope::new(
            InMemoryStore::generate(201).unwrap(),
            bare("juliet@capulet.lit"),
            Arc::new(PepDirectory::new(chan("juliet@capulet.lit/balcony"), t)),
        );
        // Before publishing, a fetch of a missing node means "no devices".
        let to: Jid = "juliet@capulet.lit/balcony".parse().unwrap();
        let ts = TransportSecret::generate_with(16, 12).unwrap();
        assert!(matches!(
            romeo.seal(&ts, &to).await,
            Err(EnvelopeError::NoKey(_))
        ));
        romeo.publish().await.unwrap();
        juliet.publish().await.unwrap();
        let ee = romeo.seal(&ts, &to).await.unwrap();
        let from: Jid = "romeo@montague.lit/orchard".parse().unwrap();
        assert_eq!(
            juliet.open(&ee, &from, AES128_SIZES).await.unwrap().secret,
            ts
        );
        // Bundles and lists were fetched from the peer's bare JID.
        let reqs = requests.lock().unwrap();
        assert!(reqs
            .iter()
            .any(|r| r.attr("to") == Some("juliet@capulet.lit") && r.attr("type") == Some("get")));
    }
}
