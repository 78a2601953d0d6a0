//! X3DH session setup, libsignal v3 flavour (Signal's X3DH specification §3,
//! with libsignal's encoding choices).
//!
//! With A = initiator ("Alice"), B = the bundle owner ("Bob"):
//! ```text
//! DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)
//! DH4 = DH(EK_A, OPK_B)   (only when the bundle offered a one-time prekey)
//! RK || CK = HKDF(salt 0^32, 0xFF^32 || DH1 || DH2 || DH3 [|| DH4], "WhisperText")
//! ```
//! The `0xFF^32` prefix is X3DH §2.2's `F` for X25519. Both identity keys
//! are X25519 keys (XEdDSA signs with them). Alice then steps the DH ratchet
//! once with a fresh ratchet key against SPK_B; Bob starts with SPK_B as his
//! ratchet key and CK as his sending chain, and ratchets on Alice's first
//! message. The signed prekey signature is XEdDSA over the 33-byte
//! serialized SPK.

use std::collections::VecDeque;

use zeroize::Zeroizing;

use super::error::{random, OmemoError, Result};
use super::kdf::derive_initial;
use super::keys::{KeyPair, PublicKey};
use super::proto::PreKeySignalMessage;
use super::ratchet::{PendingPreKey, Session};

/// What a device publishes so that others can start sessions with it
/// (XEP-0384 v0.3 §4.3 bundle), in typed form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyBundle {
    /// The device's identity key.
    pub identity_key: PublicKey,
    /// Id of the signed prekey.
    pub signed_pre_key_id: u32,
    /// The signed prekey.
    pub signed_pre_key: PublicKey,
    /// XEdDSA signature of the serialized signed prekey by the identity key.
    pub signed_pre_key_signature: Vec<u8>,
    /// One-time prekeys with their ids.
    pub pre_keys: Vec<(u32, PublicKey)>,
}

impl PreKeyBundle {
    /// Checks the signed prekey's signature.
    pub fn verify(&self) -> Result<()> {
        if self.identity_key.verify(
            &self.signed_pre_key.serialize(),
            &self.signed_pre_key_signature,
        ) {
            Ok(())
        } else {
            Err(OmemoError::BadSignature(
                "signed prekey signature does not verify with the identity key".into(),
            ))
        }
    }
}

fn master_secret(parts: &[&[u8; 32]]) -> Zeroizing<Vec<u8>> {
    let mut m = Zeroizing::new(vec![0xffu8; 32]);
    for p in parts {
        m.extend_from_slice(&p[..]);
    }
    m
}

/// Starts a session from `bundle` (Alice's side): verifies the signed
/// prekey signature, picks a random one-time prekey when there is one.
pub fn initiate(
    our_identity: &KeyPair,
    registration_id: u32,
    bundle: &PreKeyBundle,
) -> Result<Session> {
    bundle.verify()?;
    let pre_key = if bundle.pre_keys.is_empty() {
        None
    } else {
        let mut r = [0u8; 4];
        random(&mut r)?;
        let i = (u32::from_le_bytes(r) as usize) % bundle.pre_keys.len();
        Some(bundle.pre_keys[i])
    };
    initiate_with(
        our_identity,
        registration_id,
        bundle,
        pre_key,
        KeyPair::generate()?,
        KeyPair::generate()?,
    )
}

/// [`initiate`] with the caller's choice of one-time prekey, base
/// (ephemeral) key and first ratchet key, and no signature check: the
/// deterministic core, for test vectors.
pub fn initiate_with(
    our_identity: &KeyPair,
    registration_id: u32,
    bundle: &PreKeyBundle,
    pre_key: Option<(u32, PublicKey)>,
    base_key: KeyPair,
    ratchet_key: KeyPair,
) -> Result<Session> {
    let dh1 = our_identity.private.dh(&bundle.signed_pre_key)?;
    let dh2 = base_key.private.dh(&bundle.identity_key)?;
    let dh3 = base_key.private.dh(&bundle.signed_pre_key)?;
    let dh4 = match &pre_key {
        Some((_, opk)) => Some(base_key.private.dh(opk)?),
        None => None,
    };
    let mut parts = vec![&*dh1, &*dh2, &*dh3];
    if let Some(d) = &dh4 {
        parts.push(d);
    }
    let (root, _bob_chain) = derive_initial(&master_secret(&parts));
    let (root, sending_chain) = root.create_chain(&bundle.signed_pre_key, &ratchet_key.private)?;
    Ok(Session {
        local_identity: our_identity.public,
        remote_identity: bundle.identity_key,
        local_registration_id: registration_id,
        root_key: root,
        sending_ratchet: ratchet_key,
        sending_chain,
        previous_counter: 0,
        receiving_chains: VecDeque::new(),
        skipped: VecDeque::new(),
        pending_pre_key: Some(PendingPreKey {
            pre_key_id: pre_key.map(|(id, _)| id),
            signed_pre_key_id: bundle.signed_pre_key_id,
            base_key: base_key.public,
        }),
        base_key: base_key.public,
    })
}

/// Bob's side: the session a PreKeySignalMessage asks for, built from our
/// identity, the signed prekey and (if named) the one-time prekey it used.
/// The inner message is not decrypted here: see
/// [`super::manager::OmemoManager::decrypt_key`] or call [`Session::decrypt`] with
/// `message.message`.
pub fn respond(
    our_identity: &KeyPair,
    registration_id: u32,
    signed_pre_key: &KeyPair,
    one_time_pre_key: Option<&KeyPair>,
    message: &PreKeySignalMessage,
) -> Result<Session> {
    let dh1 = signed_pre_key.private.dh(&message.identity_key)?;
    let dh2 = our_identity.private.dh(&message.base_key)?;
    let dh3 = signed_pre_key.private.dh(&message.base_key)?;
    let dh4 = match one_time_pre_key {
        Some(k) => Some(k.private.dh(&message.base_key)?),
        None => None,
    };
    let mut parts = vec![&*dh1, &*dh2, &*dh3];
    if let Some(d) = &dh4 {
        parts.push(d);
    }
    let (root, chain) = derive_initial(&master_secret(&parts));
    Ok(Session {
        local_identity: our_identity.public,
        remote_identity: message.identity_key,
        local_registration_id: registration_id,
        root_key: root,
        sending_ratchet: signed_pre_key.clone(),
        sending_chain: chain,
        previous_counter: 0,
        receiving_chains: VecDeque::new(),
        skipped: VecDeque::new(),
        pending_pre_key: None,
        base_key: message.base_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omemo::error::OmemoError;
    use crate::omemo::ratchet::MAX_SKIP;

    struct Bob {
        identity: KeyPair,
        spk: KeyPair,
        opk: KeyPair,
        bundle: PreKeyBundle,
    }

    fn bob(with_opk: bool) -> Bob {
        let identity = KeyPair::generate().unwrap();
        let spk = KeyPair::generate().unwrap();
        let opk = KeyPair::generate().unwrap();
        let sig = identity.private.sign(&spk.public.serialize()).unwrap();
        let bundle = PreKeyBundle {
            identity_key: identity.public,
            signed_pre_key_id: 1,
            signed_pre_key: spk.public,
            signed_pre_key_signature: sig.to_vec(),
            pre_keys: if with_opk {
                vec![(42, opk.public)]
            } else {
                vec![]
            },
        };
        Bob {
            identity,
            spk,
            opk,
            bundle,
        }
    }

    fn pair(with_opk: bool) -> (Session, Session) {
        let b = bob(with_opk);
        let alice_id = KeyPair::generate().unwrap();
        let mut alice = initiate(&alice_id, 7, &b.bundle).unwrap();
        let first = alice.encrypt(b"hello bob").unwrap();
        assert!(first.prekey);
        let pkm = PreKeySignalMessage::decode(&first.bytes).unwrap();
        assert_eq!(pkm.pre_key_id, with_opk.then_some(42));
        assert_eq!(pkm.identity_key, alice_id.public);
        let opk = pkm.pre_key_id.map(|_| &b.opk);
        let mut bob_s = respond(&b.identity, 9, &b.spk, opk, &pkm).unwrap();
        assert_eq!(&bob_s.decrypt(&pkm.message).unwrap()[..], b"hello bob");
        (alice, bob_s)
    }

    #[test]
    fn x3dh_with_and_without_one_time_prekey() {
        for with_opk in [true, false] {
            let (mut alice, mut bob_s) = pair(with_opk);
            let reply = bob_s.encrypt(b"hi alice").unwrap();
            assert!(!reply.prekey);
            assert_eq!(&alice.decrypt(&reply.bytes).unwrap()[..], b"hi alice");
            assert!(!alice.is_pending_pre_key());
            let again = alice.encrypt(b"and again").unwrap();
            assert!(!again.prekey);
            assert_eq!(&bob_s.decrypt(&again.bytes).unwrap()[..], b"and again");
        }
    }

    #[test]
    fn bad_bundle_signature_is_refused() {
        let mut b = bob(true);
        b.bundle.signed_pre_key_signature[0] ^= 1;
        let alice_id = KeyPair::generate().unwrap();
        assert!(matches!(
            initiate(&alice_id, 1, &b.bundle),
            Err(OmemoError::BadSignature(_))
        ));
    }

    #[test]
    fn out_of_order_replay_and_tamper() {
        let (mut alice, mut bob_s) = pair(true);
        // Bob answers so Alice's later messages are plain SignalMessages.
        let r = bob_s.encrypt(b"r").unwrap();
        alice.decrypt(&r.bytes).unwrap();
        let msgs: Vec<_> = (0..5).map(|i| alice.encrypt(&[i]).unwrap().bytes).collect();
        // Deliver 4, 1, 0, 3, 2.
        for i in [4usize, 1, 0, 3, 2] {
            assert_eq!(&bob_s.decrypt(&msgs[i]).unwrap()[..], &[i as u8]);
        }
        assert_eq!(bob_s.skipped_keys(), 0);
        // Replays fail and change nothing.
        assert!(matches!(
            bob_s.decrypt(&msgs[2]),
            Err(OmemoError::Duplicate)
        ));
        // Tampering anywhere fails without changing state.
        let next = alice.encrypt(b"x").unwrap().bytes;
        for i in 0..next.len() {
            let mut t = next.clone();
            t[i] ^= 0x40;
            assert!(bob_s.decrypt(&t).is_err(), "byte {i}");
        }
        assert_eq!(&bob_s.decrypt(&next).unwrap()[..], b"x");
    }

    #[test]
    fn ping_pong_across_many_ratchet_steps() {
        let (mut alice, mut bob_s) = pair(true);
        for round in 0..20u8 {
            let (a, b) = if round % 2 == 0 {
                (&mut bob_s, &mut alice)
            } else {
                (&mut alice, &mut bob_s)
            };
            let n = round % 3 + 1;
            let msgs: Vec<_> = (0..n)
                .map(|i| a.encrypt(&[round, i]).unwrap().bytes)
                .collect();
            for (i, m) in msgs.iter().enumerate().rev() {
                assert_eq!(&b.decrypt(m).unwrap()[..], &[round, i as u8]);
            }
        }
    }

    #[test]
    fn skip_bound_is_enforced() {
        let (mut alice, mut bob_s) = pair(true);
        let r = bob_s.encrypt(b"r").unwrap();
        alice.decrypt(&r.bytes).unwrap();
        for _ in 0..=MAX_SKIP {
            alice.encrypt(b"lost").unwrap();
        }
        let far = alice.encrypt(b"far").unwrap();
        assert!(matches!(
            bob_s.decrypt(&far.bytes),
            Err(OmemoError::TooManySkipped(_))
        ));
    }

    #[test]
    fn sessions_survive_serialization() {
        let (mut alice, mut bob_s) = pair(true);
        // Leave Alice pending and Bob with skipped keys, then restore both.
        let lost = alice.encrypt(b"lost").unwrap();
        let m = alice.encrypt(b"second").unwrap();
        assert_eq!(
            &bob_s
                .decrypt(&PreKeySignalMessage::decode(&m.bytes).unwrap().message)
                .unwrap()[..],
            b"second"
        );
        assert_eq!(bob_s.skipped_keys(), 1);
        let mut alice = Session::from_bytes(&alice.to_bytes()).unwrap();
        let mut bob_s = Session::from_bytes(&bob_s.to_bytes()).unwrap();
        assert!(alice.is_pending_pre_key());
        assert_eq!(bob_s.skipped_keys(), 1);
        let lost = PreKeySignalMessage::decode(&lost.bytes).unwrap().message;
        assert_eq!(&bob_s.decrypt(&lost).unwrap()[..], b"lost");
        let r = bob_s.encrypt(b"reply").unwrap();
        assert_eq!(&alice.decrypt(&r.bytes).unwrap()[..], b"reply");
        // Truncated or altered records are errors, not panics.
        let bytes = bob_s.to_bytes();
        for n in 0..bytes.len() {
            assert!(Session::from_bytes(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut extra = bytes.to_vec();
        extra.push(0);
        assert!(Session::from_bytes(&extra).is_err());
        let mut magic = bytes.to_vec();
        magic[0] ^= 1;
        assert!(Session::from_bytes(&magic).is_err());
    }

    #[test]
    fn session_record_round_trip_and_archive() {
        use crate::omemo::ratchet::{SessionRecord, MAX_ARCHIVED_SESSIONS};
        let (old_a, mut old_b) = pair(true);
        let (new_a, _new_b) = pair(false);
        let mut rec = SessionRecord::new();
        assert!(rec.current().is_none());
        rec.promote(old_a);
        rec.promote(new_a);
        assert_eq!(rec.archived_len(), 1);
        let mut back = SessionRecord::from_bytes(&rec.to_bytes()).unwrap();
        assert_eq!(back.archived_len(), 1);
        // A message on the archived session decrypts and makes it current.
        let m = old_b.encrypt(b"old").unwrap();
        let base = *back.current().unwrap().base_key();
        assert_eq!(&back.decrypt(&m.bytes).unwrap()[..], b"old");
        assert_ne!(back.current().unwrap().base_key(), &base);
        assert!(SessionRecord::from_bytes(&[]).is_err());
        assert!(SessionRecord::from_bytes(&[1, 0]).is_err());
        assert!(SessionRecord::from_bytes(&SessionRecord::new().to_bytes())
            .unwrap()
            .current()
            .is_none());
        for _ in 0..MAX_ARCHIVED_SESSIONS + 3 {
            rec.promote(pair(false).0);
        }
        assert_eq!(rec.archived_len(), MAX_ARCHIVED_SESSIONS);
    }

    #[test]
    fn wrong_prekey_gives_no_session() {
        let b = bob(true);
        let alice_id = KeyPair::generate().unwrap();
        let mut alice = initiate(&alice_id, 7, &b.bundle).unwrap();
        let pkm = PreKeySignalMessage::decode(&alice.encrypt(b"x").unwrap().bytes).unwrap();
        // Responding without the one-time prekey derives other keys.
        let mut s = respond(&b.identity, 9, &b.spk, None, &pkm).unwrap();
        assert!(matches!(s.decrypt(&pkm.message), Err(OmemoError::Decrypt)));
    }
}
