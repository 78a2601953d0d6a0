//! The Double Ratchet session, libsignal v3 flavour (Signal's Double
//! Ratchet specification, §3 with the §5.2 recommended cryptography as
//! libsignal instantiates it).
//!
//! State: root key, our current ratchet key pair with its sending chain,
//! the last few receiving chains (one per ratchet key of the peer, so late
//! messages of an older chain still decrypt), and a bounded store of skipped
//! message keys. Message bodies are AES-256-CBC with PKCS#7 padding; the
//! serialized SignalMessage carries an 8-byte truncated HMAC-SHA256 (see
//! [`super::proto`]).
//!
//! Decryption works on a copy of the state and commits it only when the MAC
//! checked and the padding was valid, so a forged or corrupted message never
//! advances a chain, evicts keys or triggers a ratchet step.

use std::collections::VecDeque;

use aes::Aes256;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use zeroize::Zeroizing;

use super::error::{OmemoError, Result};
use super::kdf::{ChainKey, MessageKeys, RootKey};
use super::keys::{KeyPair, PublicKey};
use super::proto::{verify_mac, PreKeySignalMessage, SignalMessage};

/// Most message keys one incoming message may make us skip in a chain.
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys kept per session (oldest dropped first).
pub const MAX_STORED_SKIPPED: usize = 1000;
/// Receiving chains kept per session (libsignal keeps 5).
pub const MAX_RECEIVING_CHAINS: usize = 5;

/// What the initiator must repeat in every message until the peer answers:
/// the X3DH header of a PreKeySignalMessage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingPreKey {
    /// One-time prekey used (if the bundle had one).
    pub pre_key_id: Option<u32>,
    /// Signed prekey used.
    pub signed_pre_key_id: u32,
    /// Our X3DH ephemeral key.
    pub base_key: PublicKey,
}

/// An encrypted message ready for a `<key>` element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Serialized SignalMessage or PreKeySignalMessage.
    pub bytes: Vec<u8>,
    /// True for a PreKeySignalMessage (`<key prekey='true'>`).
    pub prekey: bool,
}

/// One Double Ratchet session with one remote device.
#[derive(Clone)]
pub struct Session {
    pub(crate) local_identity: PublicKey,
    pub(crate) remote_identity: PublicKey,
    pub(crate) local_registration_id: u32,
    pub(crate) root_key: RootKey,
    pub(crate) sending_ratchet: KeyPair,
    pub(crate) sending_chain: ChainKey,
    pub(crate) previous_counter: u32,
    pub(crate) receiving_chains: VecDeque<(PublicKey, ChainKey)>,
    pub(crate) skipped: VecDeque<(PublicKey, MessageKeys)>,
    pub(crate) pending_pre_key: Option<PendingPreKey>,
    /// The initiator's X3DH base key: identifies the session a
    /// PreKeySignalMessage belongs to.
    pub(crate) base_key: PublicKey,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("remote_identity", &self.remote_identity)
            .field("sending_index", &self.sending_chain.index())
            .field("receiving_chains", &self.receiving_chains.len())
            .field("skipped", &self.skipped.len())
            .field("pending_pre_key", &self.pending_pre_key.is_some())
            .finish()
    }
}

/// AES-256-CBC with PKCS#7 padding.
pub(crate) fn cbc_encrypt(key: &[u8; 32], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    cbc::Encryptor::<Aes256>::new(key.into(), iv.into()).encrypt_padded_vec::<Pkcs7>(plaintext)
}

/// AES-256-CBC decryption; bad length or padding is [`OmemoError::Decrypt`].
pub(crate) fn cbc_decrypt(
    key: &[u8; 32],
    iv: &[u8; 16],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(OmemoError::Decrypt);
    }
    cbc::Decryptor::<Aes256>::new(key.into(), iv.into())
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| OmemoError::Decrypt)
}

impl Session {
    /// The peer's identity key this session is bound to.
    pub fn remote_identity(&self) -> &PublicKey {
        &self.remote_identity
    }

    /// Our identity key.
    pub fn local_identity(&self) -> &PublicKey {
        &self.local_identity
    }

    /// True while we started the session and have not heard back: our
    /// messages are PreKeySignalMessages.
    pub fn is_pending_pre_key(&self) -> bool {
        self.pending_pre_key.is_some()
    }

    /// The X3DH base key of the session's initiator.
    pub fn base_key(&self) -> &PublicKey {
        &self.base_key
    }

    /// Number of skipped message keys held.
    pub fn skipped_keys(&self) -> usize {
        self.skipped.len()
    }

    /// Encrypts `plaintext` as the next message of the sending chain.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<OutgoingMessage> {
        let mk = self.sending_chain.message_keys();
        let ciphertext = cbc_encrypt(&mk.cipher_key, &mk.iv, plaintext);
        let msg = SignalMessage {
            ratchet_key: self.sending_ratchet.public,
            counter: self.sending_chain.index(),
            previous_counter: self.previous_counter,
            ciphertext,
        };
        let bytes = msg.encode(&mk.mac_key, &self.local_identity, &self.remote_identity);
        self.sending_chain = self.sending_chain.next();
        Ok(match &self.pending_pre_key {
            Some(p) => OutgoingMessage {
                bytes: PreKeySignalMessage {
                    registration_id: self.local_registration_id,
                    pre_key_id: p.pre_key_id,
                    signed_pre_key_id: p.signed_pre_key_id,
                    base_key: p.base_key,
                    identity_key: self.local_identity,
                    message: bytes,
                }
                .encode(),
                prekey: true,
            },
            None => OutgoingMessage {
                bytes,
                prekey: false,
            },
        })
    }

    /// Decrypts a serialized SignalMessage. The session changes only if the
    /// message authenticates.
    pub fn decrypt(&mut self, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let msg = SignalMessage::decode(bytes)?;
        let mut next = self.clone();
        let mk = next.message_keys_for(&msg.ratchet_key, msg.counter)?;
        if !verify_mac(
            bytes,
            &mk.mac_key,
            &next.remote_identity,
            &next.local_identity,
        ) {
            return Err(OmemoError::Decrypt);
        }
        let plaintext = cbc_decrypt(&mk.cipher_key, &mk.iv, &msg.ciphertext)?;
        // The peer answered: stop sending the X3DH header.
        next.pending_pre_key = None;
        *self = next;
        Ok(plaintext)
    }

    /// The message keys for (`their ratchet key`, `counter`), stepping the
    /// DH ratchet and the receiving chain as needed.
    fn message_keys_for(&mut self, theirs: &PublicKey, counter: u32) -> Result<MessageKeys> {
        let pos = match self.receiving_chains.iter().position(|(k, _)| k == theirs) {
            Some(p) => p,
            None => {
                self.dh_ratchet(theirs)?;
                self.receiving_chains.len() - 1
            }
        };
        let chain = self.receiving_chains[pos].1.clone();
        if counter < chain.index() {
            let found = self
                .skipped
                .iter()
                .position(|(k, mk)| k == theirs && mk.counter == counter)
                .ok_or(OmemoError::Duplicate)?;
            return Ok(self.skipped.remove(found).expect("index from position").1);
        }
        let gap = counter - chain.index();
        if gap > MAX_SKIP {
            return Err(OmemoError::TooManySkipped(gap));
        }
        let mut chain = chain;
        while chain.index() < counter {
            self.skipped.push_back((*theirs, chain.message_keys()));
            if self.skipped.len() > MAX_STORED_SKIPPED {
                self.skipped.pop_front();
            }
            chain = chain.next();
        }
        let mk = chain.message_keys();
        self.receiving_chains[pos].1 = chain.next();
        Ok(mk)
    }

    /// DH ratchet step on a new ratchet key of the peer (Double Ratchet §3.5
    /// `DHRatchet`): a receiving chain for `theirs`, then a fresh key pair of
    /// ours and a new sending chain.
    fn dh_ratchet(&mut self, theirs: &PublicKey) -> Result<()> {
        let (rk, receiving) = self
            .root_key
            .create_chain(theirs, &self.sending_ratchet.private)?;
        let ours = KeyPair::generate()?;
        let (rk2, sending) = rk.create_chain(theirs, &ours.private)?;
        self.root_key = rk2;
        self.receiving_chains.push_back((*theirs, receiving));
        if self.receiving_chains.len() > MAX_RECEIVING_CHAINS {
            self.receiving_chains.pop_front();
        }
        self.previous_counter = self.sending_chain.index();
        self.sending_ratchet = ours;
        self.sending_chain = sending;
        Ok(())
    }
}

/// Magic and version of [`Session::to_bytes`].
const SESSION_MAGIC: &[u8; 8] = b"JETOMS\x00\x01";

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(OmemoError::Store("truncated session record".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn b32(&mut self) -> Result<[u8; 32]> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
}

impl Session {
    /// Serializes the whole state for a persistent store. The bytes hold
    /// private keys and chain keys: store them as secrets.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(512));
        out.extend_from_slice(SESSION_MAGIC);
        out.extend_from_slice(self.local_identity.as_bytes());
        out.extend_from_slice(self.remote_identity.as_bytes());
        out.extend_from_slice(&self.local_registration_id.to_be_bytes());
        out.extend_from_slice(self.root_key.as_bytes());
        out.extend_from_slice(&self.sending_ratchet.private.to_bytes()[..]);
        out.extend_from_slice(self.sending_chain.as_bytes());
        out.extend_from_slice(&self.sending_chain.index().to_be_bytes());
        out.extend_from_slice(&self.previous_counter.to_be_bytes());
        out.push(self.receiving_chains.len() as u8);
        for (k, c) in &self.receiving_chains {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(c.as_bytes());
            out.extend_from_slice(&c.index().to_be_bytes());
        }
        out.extend_from_slice(&(self.skipped.len() as u32).to_be_bytes());
        for (k, mk) in &self.skipped {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&mk.cipher_key);
            out.extend_from_slice(&mk.mac_key);
            out.extend_from_slice(&mk.iv);
            out.extend_from_slice(&mk.counter.to_be_bytes());
        }
        match &self.pending_pre_key {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                out.push(u8::from(p.pre_key_id.is_some()));
                out.extend_from_slice(&p.pre_key_id.unwrap_or(0).to_be_bytes());
                out.extend_from_slice(&p.signed_pre_key_id.to_be_bytes());
                out.extend_from_slice(p.base_key.as_bytes());
            }
        }
        out.extend_from_slice(self.base_key.as_bytes());
        out
    }

    /// Restores a state written by [`Session::to_bytes`]; anything else is
    /// an [`OmemoError::Store`] error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Session> {
        let bad = |what: &str| OmemoError::Store(format!("session record: {what}"));
        let mut c = Cursor(bytes);
        if c.take(SESSION_MAGIC.len())? != SESSION_MAGIC {
            return Err(bad("unknown format"));
        }
        let local_identity = PublicKey::from_bytes(c.b32()?);
        let remote_identity = PublicKey::from_bytes(c.b32()?);
        let local_registration_id = c.u32()?;
        let root_key = RootKey(c.b32()?);
        let sending_ratchet = KeyPair::from_private(super::keys::PrivateKey::from_bytes(c.b32()?));
        let sending_chain = ChainKey::new(c.b32()?, c.u32()?);
        let previous_counter = c.u32()?;
        let n = usize::from(c.u8()?);
        if n > MAX_RECEIVING_CHAINS {
            return Err(bad("too many receiving chains"));
        }
        let mut receiving_chains = VecDeque::with_capacity(n);
        for _ in 0..n {
            let k = PublicKey::from_bytes(c.b32()?);
            receiving_chains.push_back((k, ChainKey::new(c.b32()?, c.u32()?)));
        }
        let n = c.u32()? as usize;
        if n > MAX_STORED_SKIPPED {
            return Err(bad("too many skipped keys"));
        }
        let mut skipped = VecDeque::with_capacity(n);
        for _ in 0..n {
            let k = PublicKey::from_bytes(c.b32()?);
            let cipher_key = c.b32()?;
            let mac_key = c.b32()?;
            let iv: [u8; 16] = c.take(16)?.try_into().expect("16 bytes");
            let counter = c.u32()?;
            skipped.push_back((
                k,
                MessageKeys {
                    cipher_key,
                    mac_key,
                    iv,
                    counter,
                },
            ));
        }
        let pending_pre_key = match c.u8()? {
            0 => None,
            1 => {
                let has_pk = c.u8()?;
                let pk = c.u32()?;
                let spk = c.u32()?;
                Some(PendingPreKey {
                    pre_key_id: (has_pk == 1).then_some(pk),
                    signed_pre_key_id: spk,
                    base_key: PublicKey::from_bytes(c.b32()?),
                })
            }
            _ => return Err(bad("pending prekey flag")),
        };
        let base_key = PublicKey::from_bytes(c.b32()?);
        if !c.0.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Session {
            local_identity,
            remote_identity,
            local_registration_id,
            root_key,
            sending_ratchet,
            sending_chain,
            previous_counter,
            receiving_chains,
            skipped,
            pending_pre_key,
            base_key,
        })
    }
}

/// Archived session states kept per device (libsignal keeps 40; OMEMO
/// clients rarely need more than a few).
pub const MAX_ARCHIVED_SESSIONS: usize = 10;

/// All session states with one device: the current one and a few archived
/// ones. When both sides start a session at the same time, each ends up
/// with the other's as current; messages on the archived one must still
/// decrypt (libsignal's SessionRecord does the same).
#[derive(Clone, Debug, Default)]
pub struct SessionRecord {
    current: Option<Session>,
    archived: VecDeque<Session>,
}

impl SessionRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current session, used for sending.
    pub fn current(&self) -> Option<&Session> {
        self.current.as_ref()
    }

    /// The current session, mutably.
    pub fn current_mut(&mut self) -> Option<&mut Session> {
        self.current.as_mut()
    }

    /// Number of archived states.
    pub fn archived_len(&self) -> usize {
        self.archived.len()
    }

    /// Makes `session` current, archiving the previous current one.
    pub fn promote(&mut self, session: Session) {
        if let Some(old) = self.current.replace(session) {
            self.archived.push_front(old);
            self.archived.truncate(MAX_ARCHIVED_SESSIONS);
        }
    }

    /// True if any state (current or archived) was started with `base_key`.
    pub fn has_base_key(&self, base_key: &PublicKey) -> bool {
        self.current
            .iter()
            .chain(self.archived.iter())
            .any(|s| s.base_key() == base_key)
    }

    /// Decrypts a SignalMessage with the current state, else with the
    /// archived ones (newest first); a state that works becomes current.
    pub fn decrypt(&mut self, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let first_err = match self.current.as_mut().map(|s| s.decrypt(bytes)) {
            Some(Ok(pt)) => return Ok(pt),
            Some(Err(e)) => Some(e),
            None => None,
        };
        for i in 0..self.archived.len() {
            if let Ok(pt) = self.archived[i].decrypt(bytes) {
                let s = self.archived.remove(i).expect("index in range");
                self.promote(s);
                return Ok(pt);
            }
        }
        Err(first_err.unwrap_or(OmemoError::Decrypt))
    }

    /// Decrypts a SignalMessage with the state started by `base_key` (a
    /// repeated PreKeySignalMessage), making it current on success.
    pub fn decrypt_with_base_key(
        &mut self,
        base_key: &PublicKey,
        bytes: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        if let Some(cur) = self.current.as_mut().filter(|s| s.base_key() == base_key) {
            return cur.decrypt(bytes);
        }
        let i = self
            .archived
            .iter()
            .position(|s| s.base_key() == base_key)
            .ok_or(OmemoError::Decrypt)?;
        let pt = self.archived[i].decrypt(bytes)?;
        let s = self.archived.remove(i).expect("index in range");
        self.promote(s);
        Ok(pt)
    }

    /// Serializes all states (see [`Session::to_bytes`]).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        let states: Vec<&Session> = self.current.iter().chain(self.archived.iter()).collect();
        out.push(u8::from(self.current.is_some()));
        out.push(states.len() as u8);
        for s in states {
            let b = s.to_bytes();
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(&b);
        }
        out
    }

    /// Restores [`SessionRecord::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<SessionRecord> {
        let mut c = Cursor(bytes);
        let has_current = match c.u8()? {
            0 => false,
            1 => true,
            _ => return Err(OmemoError::Store("session record: current flag".into())),
        };
        let n = usize::from(c.u8()?);
        if n > MAX_ARCHIVED_SESSIONS + 1 || (has_current && n == 0) {
            return Err(OmemoError::Store("session record: state count".into()));
        }
        let mut states = VecDeque::with_capacity(n);
        for _ in 0..n {
            let len = c.u32()? as usize;
            states.push_back(Session::from_bytes(c.take(len)?)?);
        }
        if !c.0.is_empty() {
            return Err(OmemoError::Store("session record: trailing bytes".into()));
        }
        let current = if has_current {
            states.pop_front()
        } else {
            None
        };
        Ok(SessionRecord {
            current,
            archived: states,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbc_round_trip_and_bad_padding() {
        let key = [1u8; 32];
        let iv = [2u8; 16];
        for n in [0usize, 1, 15, 16, 17, 32] {
            let pt = vec![0xabu8; n];
            let ct = cbc_encrypt(&key, &iv, &pt);
            assert_eq!(ct.len(), (n / 16 + 1) * 16);
            assert_eq!(&cbc_decrypt(&key, &iv, &ct).unwrap()[..], &pt[..]);
        }
        assert!(cbc_decrypt(&key, &iv, &[0u8; 15]).is_err());
        assert!(cbc_decrypt(&key, &iv, &[]).is_err());
    }
}
