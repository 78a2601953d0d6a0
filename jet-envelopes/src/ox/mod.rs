//! JET-OX: the JET transport secret in an OpenPGP for XMPP (XEP-0373)
//! `<signcrypt/>`. Our own small profile, specified in `docs/jet-ox.md`.
//!
//! ```text
//! <security xmlns='urn:xmpp:jingle:jet:0' type='urn:xmpp:openpgp:0' ...>
//!   <openpgp xmlns='urn:xmpp:openpgp:0'>BASE64(OpenPGP message)</openpgp>
//! </security>
//!
//! OpenPGP message = encrypted to the recipient's and the sender's keys
//!   (SEIPD v1, AES-256) around a one-pass-signed literal whose data is:
//! <signcrypt xmlns='urn:xmpp:openpgp:0'>
//!   <to jid='juliet@capulet.lit'/>           recipient's bare JID
//!   <time stamp='2026-11-26T12:00:00Z'/>     XEP-0082, checked ±10 min
//!   <rpad>random 0..200 chars</rpad>
//!   <payload>
//!     <jet-secret xmlns='urn:xmpp:jingle:jet-ox:0'>BASE64(key || iv)</jet-secret>
//!   </payload>
//! </signcrypt>
//! ```
//!
//! Opening checks, in order, each failure an [`EnvelopeError`] (which ends
//! the session with `security-error`): the message decrypts with our key
//! and its integrity check passes; it carries a valid signature by a key
//! known for the **stanza sender's bare JID** (from the [`OxKeyStore`],
//! fetched over PEP if missing, or once more if none of the known keys
//! signed, when a channel is set); only then is the
//! signed XML parsed; `<to/>` names us; `<time/>` is within
//! [`OxConfig::max_clock_skew`] of our clock; the signcrypt was not seen
//! before (replay cache); the payload is exactly one `<jet-secret/>` of the
//! suite's key and IV lengths. [`OpenedEnvelope::sender`] is the JID the
//! signing key is known for, [`OpenedEnvelope::sender_key`] its fingerprint.
//!
//! Modules: [`elements`] (the XML), [`keys`] (generation, validation,
//! export for `gpg --import`), [`store`] (memory and file key stores),
//! [`pep`] (XEP-0373 §4 publish and fetch).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use jet_core::envelope::EnvelopeBackend;
//! use jet_core::SecretShape;
//! use jet_envelopes::ox::{MemoryKeyStore, OxEnvelope, OxKeyStore, OxSecretKey};
//! // AES-256-GCM's key and IV sizes: all `open` needs of the cipher.
//! const AES256_SIZES: SecretShape = SecretShape::new(32, 12, &[12]);
//!
//! let romeo_jid = "romeo@montague.lit".parse().unwrap();
//! let juliet_jid = "juliet@capulet.lit".parse().unwrap();
//! let romeo_key = OxSecretKey::generate(&romeo_jid).unwrap();
//! let juliet_key = OxSecretKey::generate(&juliet_jid).unwrap();
//!
//! // Each side knows the other's public key (normally fetched over PEP).
//! let romeo_store = Arc::new(MemoryKeyStore::new());
//! romeo_store.add_peer_key(&juliet_jid, &juliet_key.public_key()).unwrap();
//! let juliet_store = Arc::new(MemoryKeyStore::new());
//! juliet_store.add_peer_key(&romeo_jid, &romeo_key.public_key()).unwrap();
//! let romeo = OxEnvelope::new(romeo_key.clone(), romeo_store);
//! let juliet = OxEnvelope::new(juliet_key, juliet_store);
//!
//! let ts = AES256_SIZES.generate().unwrap();
//! let ee = romeo.seal(&ts, &"juliet@capulet.lit/balcony".parse().unwrap()).await.unwrap();
//! let from = "romeo@montague.lit/orchard".parse().unwrap();
//! let opened = juliet.open(&ee, &from, AES256_SIZES).await.unwrap();
//! assert_eq!(opened.secret, ts);
//! assert_eq!(opened.sender, romeo_jid);
//! assert_eq!(opened.sender_key.as_deref(), Some(romeo_key.fingerprint()));
//! // The same envelope a second time is a replay.
//! assert!(juliet.open(&ee, &from, AES256_SIZES).await.is_err());
//! # });
//! ```

pub mod elements;
pub mod keys;
pub mod pep;
pub mod store;

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jet_core::channel::StanzaChannel;
use jet_core::envelope::{EnvelopeBackend, EnvelopeContext, OpenedEnvelope};
use jet_core::error::EnvelopeError;
use jet_core::jid::{BareJid, Jid};
use jet_core::minidom::Element;
use jet_core::{ns, SecretShape, TransportSecret};
use pgp::composed::{Message, MessageBuilder};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::{Password, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub use elements::Signcrypt;
pub use keys::{export_armored, OxPublicKey, OxSecretKey};
pub use store::{FileKeyStore, MemoryKeyStore, OxKeyStore};

use elements::{
    jet_secret_element, jet_secret_element_bound, jet_secret_of, openpgp_element, openpgp_message,
    random_rpad, unix_now,
};

/// Largest signcrypt plaintext we accept (ours are under 1 KiB).
pub const MAX_SIGNCRYPT: usize = 16 * 1024;

/// Settings of [`OxEnvelope`].
#[derive(Debug, Clone)]
pub struct OxConfig {
    /// How far `<time stamp/>` may be from our clock, either way
    /// (default 10 minutes).
    pub max_clock_skew: Duration,
    /// How many signcrypt hashes the replay cache keeps (default 10 000).
    /// Entries older than the skew window are dropped first, since the
    /// time check refuses them anyway.
    pub replay_capacity: usize,
    /// Bound on each PEP request (default 10 s).
    pub pep_timeout: Duration,
    /// Where PEP requests go. `None` (default): the owner's bare JID, as
    /// XEP-0163 says; set it to route to a test service.
    pub pep_service: Option<Jid>,
    /// Whether to fetch a peer's keys over PEP when the store has none
    /// (needs a channel; default true).
    pub fetch_missing_keys: bool,
}

impl Default for OxConfig {
    fn default() -> Self {
        OxConfig {
            max_clock_skew: Duration::from_secs(600),
            replay_capacity: 10_000,
            pep_timeout: Duration::from_secs(10),
            pep_service: None,
            fetch_missing_keys: true,
        }
    }
}

/// Which peer keys JET-OX uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OxTrustPolicy {
    /// A peer's key(s) found at first contact are trusted (trust on first
    /// use) and pinned: a different or additional key that shows up later
    /// is kept as pending, neither encrypted to nor accepted, until the
    /// user marks it ([`OxKeyStore::trust_pending_key`], `jet keys trust`).
    #[default]
    PinFirstKey,
    /// No key is trusted until the user marks it.
    Manual,
}

/// What the key logic reports to the application (for the user to see).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OxKeyEvent {
    /// A key of `jid` was seen for the first time.
    NewKey {
        /// The peer.
        jid: BareJid,
        /// The key's fingerprint (40 upper-case hex digits).
        fingerprint: String,
        /// Whether it is used (first key under [`OxTrustPolicy::PinFirstKey`]).
        accepted: bool,
        /// The fingerprints already trusted for `jid` (empty at first contact).
        pinned: Vec<String>,
    },
}

/// A callback for [`OxKeyEvent`]s.
pub type OxKeyObserver = Box<dyn Fn(&OxKeyEvent) + Send + Sync>;

/// Hashes of signcrypts already opened, with their `<time/>`.
#[derive(Debug, Default)]
struct ReplayCache {
    seen: HashMap<[u8; 32], i64>,
    order: VecDeque<[u8; 32]>,
}

impl ReplayCache {
    /// Records `hash`; false if it was already there.
    fn insert(&mut self, hash: [u8; 32], time: i64, oldest_valid: i64, capacity: usize) -> bool {
        if self.seen.contains_key(&hash) {
            return false;
        }
        // Drop what the time check refuses anyway, then what exceeds capacity.
        while let Some(front) = self.order.front() {
            let expired = self.seen.get(front).is_none_or(|t| *t < oldest_valid);
            if expired || self.order.len() >= capacity.max(1) {
                let h = self.order.pop_front().expect("front exists");
                self.seen.remove(&h);
            } else {
                break;
            }
        }
        self.seen.insert(hash, time);
        self.order.push_back(hash);
        true
    }
}

/// Which candidate signed: index into the candidate list, key fingerprint.
type SignerMatch = (usize, String);

/// What [`OxEnvelope::open_signcrypt`] proves.
#[derive(Debug, Clone)]
pub struct CheckedSigncrypt {
    /// The verified content.
    pub content: Signcrypt,
    /// The bare JID for which the signing key is known.
    pub signer: BareJid,
    /// Fingerprint of the signing key (primary key, upper-case hex).
    pub fingerprint: String,
}

/// The JET-OX envelope backend. See the [module docs](self).
pub struct OxEnvelope {
    key: OxSecretKey,
    store: Arc<dyn OxKeyStore>,
    channel: Option<Arc<dyn StanzaChannel>>,
    config: OxConfig,
    seen: Mutex<ReplayCache>,
    policy: OxTrustPolicy,
    observer: Option<OxKeyObserver>,
}

impl std::fmt::Debug for OxEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OxEnvelope")
            .field("key", &self.key)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn open_err(msg: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Open(msg.into())
}

impl OxEnvelope {
    /// An envelope sealing with `key` and trusting the keys in `store`.
    pub fn new(key: OxSecretKey, store: Arc<dyn OxKeyStore>) -> Self {
        OxEnvelope {
            key,
            store,
            channel: None,
            config: OxConfig::default(),
            seen: Mutex::new(ReplayCache::default()),
            policy: OxTrustPolicy::default(),
            observer: None,
        }
    }

    /// Loads our key for `jid` from `store`, generating and saving one if
    /// there is none.
    pub fn load_or_generate(
        jid: &BareJid,
        store: Arc<dyn OxKeyStore>,
    ) -> Result<Self, EnvelopeError> {
        let key = match store.own_key(jid)? {
            Some(k) => k,
            None => {
                let k = OxSecretKey::generate(jid)?;
                store.set_own_key(&k)?;
                k
            }
        };
        Ok(Self::new(key, store))
    }

    /// Uses `channel` for PEP (publishing our key, fetching missing keys).
    pub fn with_channel(mut self, channel: Arc<dyn StanzaChannel>) -> Self {
        self.channel = Some(channel);
        self
    }

    /// Replaces the settings.
    pub fn with_config(mut self, config: OxConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the key trust policy (default: pin the first key).
    pub fn with_trust_policy(mut self, policy: OxTrustPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the callback told about newly seen peer keys.
    pub fn with_key_observer(mut self, observer: OxKeyObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The refusal of `jid`'s untrusted key(s) `fingerprints`, naming them,
    /// the pinned ones and the command that trusts one.
    fn untrusted_key_error(
        &self,
        jid: &BareJid,
        fingerprints: &[String],
        pinned: &[OxPublicKey],
    ) -> EnvelopeError {
        let which = fingerprints.join(", ");
        let first = fingerprints.first().map(String::as_str).unwrap_or("FPR");
        let state = if pinned.is_empty() {
            "is not trusted (manual trust)".to_string()
        } else {
            format!(
                "is not the key pinned for {jid} ({}): neither encrypted to nor accepted, \
                 the server may have planted it",
                pinned
                    .iter()
                    .map(|k| k.fingerprint().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        EnvelopeError::Untrusted(format!(
            "OX key {which} of {jid} {state}; if it is really {jid}'s, compare the \
             fingerprint with the one {jid} shows, then run `jet keys trust {jid} {first}`"
        ))
    }

    /// Our key.
    pub fn own_key(&self) -> &OxSecretKey {
        &self.key
    }

    /// The key store.
    pub fn store(&self) -> &Arc<dyn OxKeyStore> {
        &self.store
    }

    fn pep_service_for(&self, owner: &BareJid) -> Jid {
        self.config
            .pep_service
            .clone()
            .unwrap_or_else(|| owner.clone().into())
    }

    /// XEP-0373 §4: publishes our public key over PEP (needs a channel).
    pub async fn publish_own_key(&self) -> Result<(), EnvelopeError> {
        let channel = self
            .channel
            .as_ref()
            .ok_or_else(|| EnvelopeError::Store("no XMPP channel to publish on".into()))?;
        let service = self.pep_service_for(self.key.jid());
        pep::publish_public_key(
            channel.as_ref(),
            &service,
            &self.key.public_key(),
            self.config.pep_timeout,
        )
        .await
    }

    /// The keys known for `jid`; if none, fetched over PEP (when a channel
    /// is set and fetching is on), validated and saved in the store.
    pub async fn keys_for(&self, jid: &BareJid) -> Result<Vec<OxPublicKey>, EnvelopeError> {
        let known = self.store.peer_keys(jid)?;
        if !known.is_empty() {
            return Ok(known);
        }
        self.refresh_keys(jid).await
    }

    /// Fetches `jid`'s currently published keys over PEP and files the
    /// new ones: at first contact (no key of `jid` trusted or pending) under
    /// [`OxTrustPolicy::PinFirstKey`] they are trusted; otherwise they are
    /// kept as pending (refused until the user trusts them). Each new key
    /// is reported to the observer. Returns the trusted keys (unchanged
    /// without a channel or with fetching off). Used when a peer's key is
    /// missing, and once when an envelope is signed by none of the trusted
    /// keys (to name the new key in the refusal).
    pub async fn refresh_keys(&self, jid: &BareJid) -> Result<Vec<OxPublicKey>, EnvelopeError> {
        let Some(channel) = self
            .channel
            .as_ref()
            .filter(|_| self.config.fetch_missing_keys)
        else {
            return self.store.peer_keys(jid);
        };
        let service = self.pep_service_for(jid);
        let fetched =
            pep::fetch_public_keys(channel.as_ref(), &service, jid, self.config.pep_timeout)
                .await?;
        let trusted = self.store.peer_keys(jid)?;
        let pending = self.store.pending_keys(jid)?;
        let first_contact = trusted.is_empty() && pending.is_empty();
        let pinned: Vec<String> = trusted
            .iter()
            .map(|k| k.fingerprint().to_string())
            .collect();
        for k in &fetched {
            let fpr = k.fingerprint();
            if trusted
                .iter()
                .chain(&pending)
                .any(|t| t.fingerprint() == fpr)
            {
                continue;
            }
            let accepted = first_contact && self.policy == OxTrustPolicy::PinFirstKey;
            if accepted {
                self.store.add_peer_key(jid, k)?;
            } else {
                self.store.add_pending_key(jid, k)?;
            }
            if let Some(observer) = &self.observer {
                observer(&OxKeyEvent::NewKey {
                    jid: jid.clone(),
                    fingerprint: fpr.to_string(),
                    accepted,
                    pinned: pinned.clone(),
                });
            }
        }
        self.store.peer_keys(jid)
    }

    /// Encrypts `plaintext` to the encryption subkeys of `recipients` and of
    /// our own key, signed with our primary key (one-pass signature,
    /// SHA-512, SEIPD v1 with AES-256). Returns the binary OpenPGP message.
    pub fn sign_and_encrypt(
        &self,
        plaintext: &[u8],
        recipients: &[OxPublicKey],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let own_public = self.key.public_key();
        let mut rng = rand::rngs::OsRng;
        let mut builder = MessageBuilder::from_bytes("", plaintext.to_vec())
            .seipd_v1(rng, SymmetricKeyAlgorithm::AES256);
        let mut encrypted_to_peer = false;
        for (i, k) in recipients
            .iter()
            .chain(std::iter::once(&own_public))
            .enumerate()
        {
            for sub in k.encryption_subkeys() {
                builder
                    .encrypt_to_key(&mut rng, sub)
                    .map_err(|e| keys::pgp_err("encrypting the session key", e))?;
                encrypted_to_peer |= i < recipients.len();
            }
        }
        if !encrypted_to_peer {
            return Err(EnvelopeError::NoKey(
                "the recipient has no usable encryption subkey".into(),
            ));
        }
        builder.sign(
            &self.key.as_pgp().primary_key,
            Password::empty(),
            HashAlgorithm::Sha512,
        );
        builder
            .to_vec(rng)
            .map_err(|e| keys::pgp_err("building the OpenPGP message", e))
    }

    /// Seals an arbitrary signcrypt for `recipient` (whose keys come from
    /// the store or PEP). [`EnvelopeBackend::seal`] uses this with a fresh
    /// signcrypt; tests use it to craft ones that must be refused.
    pub async fn seal_signcrypt(
        &self,
        content: &Signcrypt,
        recipient: &BareJid,
    ) -> Result<Element, EnvelopeError> {
        let keys = self.keys_for(recipient).await?;
        if keys.is_empty() {
            let pending: Vec<String> = self
                .store
                .pending_keys(recipient)?
                .iter()
                .map(|k| k.fingerprint().to_string())
                .collect();
            if !pending.is_empty() {
                return Err(self.untrusted_key_error(recipient, &pending, &[]));
            }
            return Err(EnvelopeError::NoKey(recipient.to_string()));
        }
        let xml = Zeroizing::new(content.to_xml());
        let message = self.sign_and_encrypt(xml.as_bytes(), &keys)?;
        Ok(openpgp_element(&message))
    }

    /// Decrypts `bytes`, reads the signed data and finds which candidate
    /// (index into `candidates`, key fingerprint) made a valid signature.
    fn decrypt_and_identify(
        &self,
        bytes: &[u8],
        candidates: &[(BareJid, Vec<OxPublicKey>)],
    ) -> Result<(Zeroizing<Vec<u8>>, Option<SignerMatch>), EnvelopeError> {
        let msg = Message::from_bytes(bytes)
            .map_err(|e| open_err(format!("not an OpenPGP message: {e}")))?;
        if !msg.is_encrypted() {
            return Err(open_err("the OpenPGP message is not encrypted"));
        }
        let mut msg = msg
            .decrypt(&Password::empty(), self.key.as_pgp())
            .map_err(|e| open_err(format!("cannot decrypt the OpenPGP message: {e}")))?;
        // GnuPG compresses before signing-and-encrypting by default.
        for _ in 0..2 {
            msg = msg
                .decompress()
                .map_err(|e| open_err(format!("cannot decompress the OpenPGP message: {e}")))?;
        }
        if !msg.is_signed() {
            return Err(open_err("the OpenPGP message is not signed"));
        }
        let mut plain = Zeroizing::new(Vec::new());
        (&mut msg)
            .take(MAX_SIGNCRYPT as u64 + 1)
            .read_to_end(&mut plain)
            .map_err(|e| {
                open_err(format!(
                    "the OpenPGP message failed its integrity check or is malformed: {e}"
                ))
            })?;
        if plain.len() > MAX_SIGNCRYPT {
            return Err(EnvelopeError::Malformed(format!(
                "the signed content exceeds {MAX_SIGNCRYPT} bytes"
            )));
        }
        let Message::Signed { reader, .. } = &msg else {
            return Err(open_err("the OpenPGP message is not signed"));
        };
        let n = reader.num_signatures();
        let verifies =
            |k: &dyn VerifyingKey| (0..n).any(|i| msg.verify_nested_explicit(i, k).is_ok());
        for (ci, (_, keys)) in candidates.iter().enumerate() {
            for key in keys {
                let by_primary = key.primary_can_sign() && verifies(&key.as_pgp().primary_key);
                let by_subkey = || key.signing_subkeys().into_iter().any(|sk| verifies(sk));
                if by_primary || by_subkey() {
                    return Ok((plain, Some((ci, key.fingerprint().to_string()))));
                }
            }
        }
        Ok((plain, None))
    }

    /// Opens `<openpgp/>` received from `stanza_sender` and runs every
    /// JET-OX check except reading the payload (see the module docs).
    pub async fn open_signcrypt(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
    ) -> Result<CheckedSigncrypt, EnvelopeError> {
        self.open_signcrypt_in(envelope, stanza_sender, None).await
    }

    /// [`Self::open_signcrypt`], checking the session binding of the
    /// `<jet-secret/>` against `context` (when given) before the replay
    /// cache records the envelope, so that an envelope first shown in a
    /// wrong session still opens in its own.
    async fn open_signcrypt_in(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        context: Option<&EnvelopeContext>,
    ) -> Result<CheckedSigncrypt, EnvelopeError> {
        let bytes = openpgp_message(envelope)?;
        let sender = stanza_sender.to_bare();
        let (sender_keys, lookup_error) = match self.keys_for(&sender).await {
            Ok(k) => (k, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let mut candidates = vec![(sender.clone(), sender_keys)];
        for other in self.store.peers()? {
            if other != sender {
                let keys = self.store.peer_keys(&other)?;
                candidates.push((other, keys));
            }
        }
        // The sender's keys that are not trusted (yet): a signature by one
        // is refused, with the fingerprint and the command that trusts it.
        let pending_at = candidates.len();
        candidates.push((sender.clone(), self.store.pending_keys(&sender)?));
        let (mut plain, mut signer) = self.decrypt_and_identify(&bytes, &candidates)?;
        let known_signer = matches!(signer, Some((i, _)) if i == 0 || i == pending_at);
        if !known_signer && !candidates[0].1.is_empty() {
            // Signed by none of the sender's known keys: they may have
            // published a new one. Fetch once (new keys become pending) and
            // look again, to say which key it was.
            if self.refresh_keys(&sender).await.is_ok() {
                let pending = self.store.pending_keys(&sender)?;
                if pending.len() > candidates[pending_at].1.len() {
                    candidates[pending_at].1 = pending;
                    (plain, signer) = self.decrypt_and_identify(&bytes, &candidates)?;
                }
            }
        }
        let fingerprint = match signer {
            Some((0, fpr)) => fpr,
            Some((i, fpr)) if i == pending_at => {
                return Err(self.untrusted_key_error(&sender, &[fpr], &candidates[0].1))
            }
            Some((i, _)) => {
                return Err(EnvelopeError::WrongSender {
                    expected: sender.to_string(),
                    got: candidates[i].0.to_string(),
                })
            }
            None if candidates[0].1.is_empty() => {
                return Err(EnvelopeError::Untrusted(format!(
                    "no OpenPGP key is known for {sender}, the stanza sender{}",
                    lookup_error.map(|e| format!(" ({e})")).unwrap_or_default()
                )))
            }
            None => {
                return Err(EnvelopeError::Untrusted(format!(
                    "the envelope is not signed by a key known for {sender}, the stanza sender"
                )))
            }
        };
        // Authenticated from here on: parse.
        let xml = std::str::from_utf8(&plain)
            .map_err(|_| EnvelopeError::Malformed("the signed content is not UTF-8".into()))?;
        let content = Signcrypt::from_xml(xml)?;
        let me = self.key.jid();
        if !content.to.iter().any(|t| t == me) {
            return Err(open_err(format!(
                "the signcrypt is addressed to {}, not to us ({me})",
                content
                    .to
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let now = unix_now();
        let skew = self.config.max_clock_skew.as_secs() as i64;
        if (content.time - now).abs() > skew {
            return Err(open_err(format!(
                "the signcrypt timestamp {} is outside the allowed window of ±{skew} s around {}",
                elements::format_datetime(content.time),
                elements::format_datetime(now)
            )));
        }
        if let Some(context) = context {
            check_binding(&content, context)?;
        }
        let hash: [u8; 32] = Sha256::digest(plain.as_slice()).into();
        let fresh = self
            .seen
            .lock()
            .map_err(|_| EnvelopeError::Store("replay cache lock poisoned".into()))?
            .insert(hash, content.time, now - skew, self.config.replay_capacity);
        if !fresh {
            return Err(open_err(
                "this signcrypt was already received: replayed envelope",
            ));
        }
        Ok(CheckedSigncrypt {
            content,
            signer: sender,
            fingerprint,
        })
    }
}

#[async_trait]
impl EnvelopeBackend for OxEnvelope {
    fn envelope_type(&self) -> &'static str {
        ns::OX
    }

    fn disco_feature(&self) -> &'static str {
        ns::JET_OX_FEATURE
    }

    fn is_secure(&self) -> bool {
        true
    }

    async fn seal(
        &self,
        secret: &TransportSecret,
        recipient: &Jid,
    ) -> Result<Element, EnvelopeError> {
        let to = recipient.to_bare();
        let content = Signcrypt {
            to: vec![to.clone()],
            time: unix_now(),
            rpad: Some(random_rpad()),
            payload: vec![jet_secret_element(&secret.to_bytes())],
        };
        self.seal_signcrypt(&content, &to).await
    }

    /// Outside a session: accepts bound and unbound envelopes alike (there
    /// is no session to compare with). Sessions use [`Self::open_for`].
    async fn open(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        shape: SecretShape,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        let checked = self.open_signcrypt(envelope, stanza_sender).await?;
        self.opened(checked, shape)
    }

    /// Binds the secret to the session: `<jet-secret sid content>`.
    async fn seal_for(
        &self,
        secret: &TransportSecret,
        recipient: &Jid,
        context: &EnvelopeContext,
    ) -> Result<Element, EnvelopeError> {
        let to = recipient.to_bare();
        let content = Signcrypt {
            to: vec![to.clone()],
            time: unix_now(),
            rpad: Some(random_rpad()),
            payload: vec![jet_secret_element_bound(
                &secret.to_bytes(),
                &context.sid,
                &context.content,
            )],
        };
        self.seal_signcrypt(&content, &to).await
    }

    /// In a session, the `<jet-secret/>` must be bound to this session's id
    /// and content name; an unbound one (jet before the binding) is refused:
    /// it could be replayed into any session within the time window.
    async fn open_for(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        shape: SecretShape,
        context: &EnvelopeContext,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        let checked = self
            .open_signcrypt_in(envelope, stanza_sender, Some(context))
            .await?;
        self.opened(checked, shape)
    }
}

/// The `<jet-secret/>` of `content` must be bound to `context`'s session id
/// and content name; an unbound one (jet before the binding) is refused.
fn check_binding(content: &Signcrypt, context: &EnvelopeContext) -> Result<(), EnvelopeError> {
    match elements::jet_secret_binding(&content.payload)? {
        Some((sid, name)) if sid == context.sid && name == context.content => Ok(()),
        Some((sid, name)) => Err(open_err(format!(
            "the envelope was sealed for session {sid:?} content {name:?}, not for this one \
             ({:?}, {:?}): replayed into another session",
            context.sid, context.content
        ))),
        None => Err(open_err(
            "the envelope is not bound to a session (no sid/content on <jet-secret/>, as jet \
             sent before the binding): refused, it could be replayed into any session",
        )),
    }
}

impl OxEnvelope {
    fn opened(
        &self,
        checked: CheckedSigncrypt,
        shape: SecretShape,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        let bytes = jet_secret_of(&checked.content.payload)?;
        let secret = shape.from_bytes(&bytes)?;
        Ok(OpenedEnvelope {
            secret,
            sender: checked.signer,
            sender_key: Some(checked.fingerprint),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cache_refuses_repeats_and_expires_old_entries() {
        let mut c = ReplayCache::default();
        assert!(c.insert([1; 32], 100, 0, 10));
        assert!(!c.insert([1; 32], 100, 0, 10));
        assert!(c.insert([2; 32], 200, 0, 10));
        // Entry 1 (time 100) falls out of the window at oldest_valid 150.
        assert!(c.insert([3; 32], 300, 150, 10));
        assert!(!c.seen.contains_key(&[1; 32]));
        assert!(!c.insert([2; 32], 200, 150, 10));
        // Capacity bounds memory.
        for i in 10..40u8 {
            assert!(c.insert([i; 32], 300, 0, 5));
        }
        assert!(c.seen.len() <= 5 && c.order.len() <= 5);
    }
}
