//! The real envelopes: OMEMO 0.3 (JET-OMEMO, XEP-0396) and our JET-OX
//! profile (XEP-0373 `<signcrypt/>`).
//!
//! * [`omemo_element`]: the OMEMO XML readers and the hand-written protobuf
//!   and session-record decoders; what parses must round-trip.
//! * [`omemo_open`]: `OmemoEnvelope::open` of a receiver device that holds a
//!   saved state, fed mutations of genuine envelopes (chosen by the input)
//!   and raw bytes. Property: `Err`, or exactly the genuine transport key
//!   from the genuine sender device.
//! * [`ox_open`]: `OxEnvelope::open` fed mutations of a genuine `<openpgp/>`
//!   element, of its OpenPGP message, of its signcrypt XML (re-sealed with a
//!   real key), and raw bytes. Property: `Err`, or exactly the secret and
//!   signer that the authenticated content names.
//!
//! Keys and sessions are made once per thread (OMEMO: a handful of X25519
//! operations; OX: three OpenPGP keys); every input then starts from the
//! same saved state (a cloned `InMemoryStore`, a fresh `OxEnvelope` with an
//! empty replay cache), so a run does not depend on the inputs before it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Unstructured;
use jet_core::envelope::{EnvelopeBackend, OpenedEnvelope};
use jet_core::error::EnvelopeError;
use jet_core::jid::{BareJid, Jid};
use jet_core::minidom::Element;
use jet_core::TransportSecret;
use jet_envelopes::omemo::proto::{verify_mac, PreKeySignalMessage, SignalMessage};
use jet_envelopes::omemo::ratchet::Session;
use jet_envelopes::omemo::xml::{
    bundle_from_element, bundle_to_element, device_list_from_element, device_list_to_element,
};
use jet_envelopes::omemo::{
    EncryptedElement, InMemoryStore, KeyElement, MemoryDirectory, OmemoDirectory, OmemoEnvelope,
    PreKeyBundle, PublicKey,
};
use jet_envelopes::ox::elements::{jet_secret_element, jet_secret_of, openpgp_element};
use jet_envelopes::ox::{MemoryKeyStore, OxConfig, OxEnvelope, OxKeyStore, OxSecretKey, Signcrypt};

use crate::{block_on, deep, reparse, xml, TOY};
use jet_core::cipher::CipherSuite;

// ---------------------------------------------------------------------------
// byte-level edits chosen by the input

/// Applies 1..=4 edits chosen by `u` to `v`: bit flip, byte set, truncation,
/// deletion, insertion of input bytes, duplication of a slice.
fn edit_bytes(u: &mut Unstructured, v: &mut Vec<u8>) {
    let n = u.int_in_range(1..=4u8).unwrap_or(1);
    for _ in 0..n {
        let len = v.len();
        let at = |u: &mut Unstructured, n: usize| u.choose_index(n.max(1)).unwrap_or(0).min(n);
        match u.int_in_range(0..=5u8).unwrap_or(0) {
            0 if len > 0 => {
                let i = at(u, len);
                v[i.min(len - 1)] ^= 1 << u.int_in_range(0..=7u8).unwrap_or(0);
            }
            1 if len > 0 => {
                let i = at(u, len);
                v[i.min(len - 1)] = u.arbitrary().unwrap_or(0);
            }
            2 => {
                let i = at(u, len);
                v.truncate(i);
            }
            3 if len > 0 => {
                let i = at(u, len).min(len - 1);
                let k = u.int_in_range(1..=16usize).unwrap_or(1).min(len - i);
                v.drain(i..i + k);
            }
            4 => {
                let i = at(u, len + 1);
                let k = u.int_in_range(0..=16usize).unwrap_or(1);
                let bytes = u.bytes(k).unwrap_or_default().to_vec();
                v.splice(i..i, bytes);
            }
            _ if len > 0 => {
                let a = at(u, len).min(len - 1);
                let b = a + u.int_in_range(0..=32usize).unwrap_or(0).min(len - a);
                let piece = v[a..b].to_vec();
                let i = at(u, len + 1);
                v.splice(i..i, piece);
            }
            _ => v.push(u.arbitrary().unwrap_or(0)),
        }
    }
}

/// Outcome counts per mode of [`omemo_open`] (0..6) and [`ox_open`]
/// (6..13): `[opened, refused]`, printed by the replay runner so that a
/// mode whose inputs never get past the parser is noticed.
static OUTCOMES: [[AtomicU64; 2]; 13] = [const { [const { AtomicU64::new(0) }; 2] }; 13];

fn outcome(slot: usize, opened: bool) {
    OUTCOMES[slot][usize::from(!opened)].fetch_add(1, Ordering::Relaxed);
}

/// `mode: opened/refused` counts of the envelope-opening targets so far
/// (`None` for the other targets).
pub fn outcome_stats(target: &str) -> Option<String> {
    let range = match target {
        "omemo_open" => 0..6,
        "ox_open" => 6..13,
        _ => return None,
    };
    let base = range.start;
    Some(
        range
            .map(|i| {
                format!(
                    "mode {}: {} opened / {} refused",
                    i - base,
                    OUTCOMES[i][0].load(Ordering::Relaxed),
                    OUTCOMES[i][1].load(Ordering::Relaxed)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn bare(s: &str) -> BareJid {
    s.parse().expect("a bare JID")
}

// ---------------------------------------------------------------------------
// OMEMO element and protobuf readers

/// OMEMO 0.3 parsers: `<encrypted>`, `<bundle>`, `<list>` (also inside PEP
/// results), `PreKeySignalMessage`/`SignalMessage` (the raw input and
/// every `<key>` of a parsed `<encrypted>`), and the session record of the
/// persistent store. Whatever parses must serialize and parse back equal.
pub fn omemo_element(data: &[u8]) {
    omemo_proto(data);
    if let Ok(s) = Session::from_bytes(data) {
        deep();
        let bytes = s.to_bytes();
        let again = Session::from_bytes(&bytes).expect("a session record we wrote must load");
        assert_eq!(*again.to_bytes(), *bytes, "session record round trip");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = PublicKey::from_fingerprint(text) {
            assert_eq!(PublicKey::from_fingerprint(&k.fingerprint()).ok(), Some(k));
        }
    }
    let Some(el) = xml(data) else { return };
    if let Ok(e) = EncryptedElement::from_element(&el) {
        deep();
        let again = EncryptedElement::from_element(&reparse(&e.to_element()))
            .unwrap_or_else(|err| panic!("an <encrypted> we wrote does not parse back: {err}"));
        assert_eq!(again, e);
        for k in &e.keys {
            omemo_proto(&k.data);
        }
    }
    if let Ok(b) = bundle_from_element(&el) {
        deep();
        check_bundle(&b);
    }
    if let Ok(l) = device_list_from_element(&el) {
        deep();
        let again = device_list_from_element(&reparse(&device_list_to_element(&l)))
            .expect("a device <list> we wrote must parse back");
        assert_eq!(again, l);
    }
    // The PEP wrappers (fetch results and notifications).
    if let Ok(l) = jet_envelopes::omemo::pep::device_list_from_stanza(&el) {
        let again = device_list_from_element(&reparse(&device_list_to_element(&l)))
            .expect("a device <list> we wrote must parse back");
        assert_eq!(again, l);
    }
    for id in [1, 101, 201, 27183] {
        if let Ok(b) = jet_envelopes::omemo::pep::bundle_from_stanza(&el, id) {
            deep();
            check_bundle(&b);
        }
    }
}

fn check_bundle(b: &PreKeyBundle) {
    let again = bundle_from_element(&reparse(&bundle_to_element(b)))
        .unwrap_or_else(|e| panic!("a <bundle> we wrote does not parse back: {e}"));
    assert_eq!(&again, b);
    // A forged signature is an error, not a panic.
    let _ = b.verify();
}

fn omemo_proto(data: &[u8]) {
    if let Ok(m) = PreKeySignalMessage::decode(data) {
        deep();
        let again = PreKeySignalMessage::decode(&m.encode())
            .expect("a PreKeySignalMessage we wrote must parse back");
        assert_eq!(again, m);
        let _ = SignalMessage::decode(&m.message);
    }
    if let Ok(m) = SignalMessage::decode(data) {
        deep();
        let (a, b) = (
            PublicKey::from_bytes([1; 32]),
            PublicKey::from_bytes([2; 32]),
        );
        let bytes = m.encode(&[7; 32], &a, &b);
        let again =
            SignalMessage::decode(&bytes).expect("a SignalMessage we wrote must parse back");
        assert_eq!(again, m);
        assert!(verify_mac(&bytes, &[7; 32], &a, &b));
        assert!(!verify_mac(&bytes, &[7; 32], &b, &a));
    }
}

// ---------------------------------------------------------------------------
// OMEMO open

/// Counted as deep (and kept by the replay runner): a changed input that
/// opened or got past the element parsers into the cryptography.
fn past_parser<T>(r: &Result<T, EnvelopeError>) -> bool {
    !matches!(
        r,
        Err(EnvelopeError::Malformed(_)) | Err(EnvelopeError::NoKey(_))
    )
}

const ROMEO_DEV: u32 = 101;
const JULIET_DEV: u32 = 201;
const ROMEO: &str = "romeo@montague.lit";
const JULIET: &str = "juliet@capulet.lit";

/// One genuine envelope and the receiver state it must open in.
struct OmemoCase {
    store: InMemoryStore,
    element: Element,
    secret: TransportSecret,
    /// Already opened in `store`'s state: opening it again is a replay and
    /// must fail.
    replay: bool,
}

struct OmemoWorld {
    romeo_bundle: PreKeyBundle,
    cases: Vec<OmemoCase>,
}

fn juliet_envelope(
    store: InMemoryStore,
    romeo_bundle: &PreKeyBundle,
) -> OmemoEnvelope<InMemoryStore> {
    // A fresh directory each time: what `open` publishes (a refilled
    // bundle) must not leak into the next input.
    let dir = MemoryDirectory::new(bare(ROMEO));
    block_on(dir.publish_bundle(ROMEO_DEV, romeo_bundle)).expect("memory directory");
    block_on(dir.publish_device_list(&[ROMEO_DEV])).expect("memory directory");
    OmemoEnvelope::new(store, bare(JULIET), Arc::new(dir.as_account(bare(JULIET))))
}

fn omemo_world() -> OmemoWorld {
    block_on(async {
        let dir = MemoryDirectory::new(bare("nobody@example.org"));
        let romeo = OmemoEnvelope::new(
            InMemoryStore::generate(ROMEO_DEV).expect("keys"),
            bare(ROMEO),
            Arc::new(dir.as_account(bare(ROMEO))),
        );
        romeo.publish().await.expect("publish");
        let juliet = OmemoEnvelope::new(
            InMemoryStore::generate(JULIET_DEV).expect("keys"),
            bare(JULIET),
            Arc::new(dir.as_account(bare(JULIET))),
        );
        juliet.publish().await.expect("publish");
        let romeo_bundle = dir
            .bundle(&bare(ROMEO), ROMEO_DEV)
            .await
            .expect("romeo's bundle");
        let to_juliet: Jid = "juliet@capulet.lit/balcony".parse().unwrap();
        let to_romeo: Jid = "romeo@montague.lit/orchard".parse().unwrap();
        let secret = |n: u8| {
            TransportSecret::new(vec![n; 32], (0..12).map(|i| n ^ i).collect()).expect("secret")
        };
        let mut cases = Vec::new();
        // 1. A session start (PreKeySignalMessage) to a fresh receiver.
        let fresh = juliet.with_store(|s| s.clone());
        let (s1, e1) = (
            secret(1),
            romeo.seal(&secret(1), &to_juliet).await.expect("seal"),
        );
        let opened = juliet
            .open(&e1, &to_romeo, TOY.secret_shape())
            .await
            .expect("open e1");
        assert_eq!(opened.secret, s1);
        cases.push(OmemoCase {
            store: fresh,
            element: e1.clone(),
            secret: s1.clone(),
            replay: false,
        });
        // Juliet answers: Romeo stops sending prekey messages.
        let back = juliet.seal(&secret(9), &to_romeo).await.expect("seal back");
        romeo
            .open(&back, &to_juliet, TOY.secret_shape())
            .await
            .expect("open back");
        let established = juliet.with_store(|s| s.clone());
        // 2. A SignalMessage on the established session; 3. the one after
        // it (the receiver must derive and keep a skipped key).
        let (s2, e2) = (
            secret(2),
            romeo.seal(&secret(2), &to_juliet).await.expect("seal"),
        );
        let (s3, e3) = (
            secret(3),
            romeo.seal(&secret(3), &to_juliet).await.expect("seal"),
        );
        for (s, e) in [(s2, e2), (s3, e3)] {
            let k = EncryptedElement::from_element(&e).expect("parse");
            assert!(!k.keys[0].prekey, "expected a SignalMessage");
            cases.push(OmemoCase {
                store: established.clone(),
                element: e,
                secret: s,
                replay: false,
            });
        }
        // 4. The session start again, after it was used: a replay.
        cases.push(OmemoCase {
            store: established,
            element: e1,
            secret: s1,
            replay: true,
        });
        OmemoWorld {
            romeo_bundle,
            cases,
        }
    })
}

thread_local! {
    static OMEMO: RefCell<Option<Arc<OmemoWorld>>> = const { RefCell::new(None) };
    static OX: RefCell<Option<Arc<OxWorld>>> = const { RefCell::new(None) };
}

fn omemo() -> Arc<OmemoWorld> {
    OMEMO.with(|w| {
        w.borrow_mut()
            .get_or_insert_with(|| Arc::new(omemo_world()))
            .clone()
    })
}

/// Structured edits of a parsed `<encrypted>`.
fn edit_encrypted(u: &mut Unstructured, e: &mut EncryptedElement) {
    let n = u.int_in_range(1..=3u8).unwrap_or(1);
    for _ in 0..n {
        let k = if e.keys.is_empty() {
            None
        } else {
            Some(u.choose_index(e.keys.len()).unwrap_or(0))
        };
        match (u.int_in_range(0..=11u8).unwrap_or(0), k) {
            (0..=2, Some(k)) => edit_bytes(u, &mut e.keys[k].data),
            (3, Some(k)) => e.keys[k].prekey ^= true,
            (4, Some(k)) => {
                e.keys[k].rid = *u
                    .choose(&[0, ROMEO_DEV, JULIET_DEV + 1, u32::MAX])
                    .unwrap_or(&0)
            }
            (5, Some(k)) => {
                // A second key for us: a decoy before or after the real one.
                let mut decoy = e.keys[k].clone();
                edit_bytes(u, &mut decoy.data);
                let at = if u.arbitrary().unwrap_or(false) {
                    0
                } else {
                    e.keys.len()
                };
                e.keys.insert(at, decoy);
            }
            (6, Some(k)) => {
                e.keys.remove(k);
            }
            (7, Some(k)) => edit_protobuf(u, &mut e.keys[k]),
            (8, _) => {
                e.sid = *u
                    .choose(&[0, JULIET_DEV, ROMEO_DEV + 1, u32::MAX])
                    .unwrap_or(&0)
            }
            (9, _) => edit_bytes(u, &mut e.iv),
            (10, _) => {
                let len = u.int_in_range(0..=48usize).unwrap_or(0);
                e.payload = Some(u.bytes(len).unwrap_or_default().to_vec());
            }
            _ => e.keys.push(KeyElement {
                rid: JULIET_DEV,
                prekey: u.arbitrary().unwrap_or(false),
                data: {
                    let len = u.int_in_range(0..=200usize).unwrap_or(0);
                    u.bytes(len).unwrap_or_default().to_vec()
                },
            }),
        }
    }
}

/// Edits one field of a decoded (PreKey)SignalMessage and encodes it again
/// (the outer PreKeySignalMessage has no MAC of its own: only what the inner
/// MAC and the X3DH derivation cover may protect it).
fn edit_protobuf(u: &mut Unstructured, k: &mut KeyElement) {
    let other_key = PublicKey::from_bytes(u.arbitrary().unwrap_or([9; 32]));
    if let Ok(mut m) = PreKeySignalMessage::decode(&k.data) {
        match u.int_in_range(0..=6u8).unwrap_or(0) {
            0 => m.registration_id = u.arbitrary().unwrap_or(0),
            1 => m.pre_key_id = None,
            2 => m.pre_key_id = m.pre_key_id.map(|i| i.wrapping_add(1)),
            3 => m.signed_pre_key_id = m.signed_pre_key_id.wrapping_add(1),
            4 => m.base_key = other_key,
            5 => m.identity_key = other_key,
            _ => edit_bytes(u, &mut m.message),
        }
        k.data = m.encode();
    } else if let Ok(m) = SignalMessage::decode(&k.data) {
        // Re-encoding needs the MAC key we do not have: keep the genuine
        // MAC over the changed fields.
        let mac = k.data[k.data.len() - 8..].to_vec();
        let mut m2 = m.clone();
        match u.int_in_range(0..=3u8).unwrap_or(0) {
            0 => {
                m2.counter = m2
                    .counter
                    .wrapping_add(u.int_in_range(1..=3000u32).unwrap_or(1))
            }
            1 => m2.previous_counter = u.arbitrary().unwrap_or(0),
            2 => m2.ratchet_key = other_key,
            _ => edit_bytes(u, &mut m2.ciphertext),
        }
        let zero = PublicKey::from_bytes([0; 32]);
        let mut bytes = m2.encode(&[0; 32], &zero, &zero);
        let l = bytes.len();
        bytes[l - 8..].copy_from_slice(&mac);
        k.data = bytes;
    }
}

/// JET-OMEMO `open` on a receiver with a saved state, fed a mutated genuine
/// envelope (structured edits, protobuf field edits, XML text edits) or raw
/// bytes. Properties: never a panic; a result is `Err` or exactly the
/// genuine transport key from Romeo's device 101; the untouched envelope
/// opens, and opens once.
///
/// The `<iv>` of an OMEMO 0.3 key transport element is not covered by the
/// ratchet message (XEP-0384 v0.3 puts it in the clear header): an edited
/// IV comes back as edited (the transfer then fails the cipher's tag
/// check). The key, the sender and the device are authenticated.
pub fn omemo_open(data: &[u8]) {
    let world = omemo();
    let mut u = Unstructured::new(data);
    let case = &world.cases[u.choose_index(world.cases.len()).unwrap_or(0)];
    let genuine = EncryptedElement::from_element(&case.element).expect("genuine parses");
    let mode = u.int_in_range(0..=5u8).unwrap_or(0);
    // Mostly from Romeo (also when the input has run out).
    let from: Jid = if u.ratio(15, 16).unwrap_or(true) {
        "romeo@montague.lit/orchard".parse().unwrap()
    } else {
        "mallory@evil.example/x".parse().unwrap()
    };
    let envelope: Element = match mode {
        // Untouched.
        0 => case.element.clone(),
        // Structured edits.
        1 | 2 => {
            let mut e = genuine.clone();
            edit_encrypted(&mut u, &mut e);
            e.to_element()
        }
        // Edits of the XML text.
        3 => {
            let mut text = String::from(&case.element).into_bytes();
            edit_bytes(&mut u, &mut text);
            match xml(&text) {
                Some(el) => el,
                None => return,
            }
        }
        // Raw bytes as our key's message, in a genuine header.
        4 => {
            let mut e = genuine.clone();
            let prekey = u.arbitrary().unwrap_or(false);
            let raw = u.take_rest().to_vec();
            if let Some(k) = e.keys.iter_mut().find(|k| k.rid == JULIET_DEV) {
                k.prekey = prekey;
                k.data = raw;
            }
            e.to_element()
        }
        // Raw bytes as the envelope XML.
        _ => match xml(u.take_rest()) {
            Some(el) => el,
            None => return,
        },
    };
    let juliet = juliet_envelope(case.store.clone(), &world.romeo_bundle);
    let r = block_on(juliet.open(&envelope, &from, TOY.secret_shape()));
    outcome(usize::from(mode), r.is_ok());
    let untouched = envelope == case.element && from.to_bare() == bare(ROMEO);
    if !untouched && past_parser(&r) {
        deep();
    }
    match r {
        Ok(OpenedEnvelope {
            secret,
            sender,
            sender_key,
        }) => {
            assert!(!case.replay, "a used key transport opened a second time");
            assert_eq!(secret.key(), case.secret.key(), "opened a different key");
            let iv = EncryptedElement::from_element(&envelope)
                .expect("an envelope that opened parses")
                .iv;
            assert_eq!(
                secret.iv(),
                &iv[..],
                "the IV is not the <iv> of the element"
            );
            assert_eq!(sender, bare(ROMEO), "opened as from another account");
            assert_eq!(
                sender_key.as_deref(),
                Some("101"),
                "opened as from another device"
            );
        }
        Err(e) => {
            assert!(
                !untouched || case.replay,
                "the untouched envelope did not open: {e}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// OX open

struct OxWorld {
    juliet_key: OxSecretKey,
    juliet_store: Arc<MemoryKeyStore>,
    romeo: OxEnvelope,
    mallory: OxEnvelope,
    romeo_fpr: String,
    mallory_fpr: String,
    secret: TransportSecret,
    /// The genuine envelope from Romeo, its OpenPGP message and signcrypt.
    element: Element,
    message: Vec<u8>,
    signcrypt: String,
    /// The same secret signed by Mallory (whose key Juliet knows, for
    /// Mallory's JID).
    by_mallory: Element,
}

/// Juliet's settings: no PEP, and a clock window wide enough that the
/// genuine envelope made at start stays fresh through a long campaign
/// (30 days; the default is 10 minutes).
fn ox_config() -> OxConfig {
    OxConfig {
        max_clock_skew: Duration::from_secs(30 * 86_400),
        fetch_missing_keys: false,
        ..OxConfig::default()
    }
}

fn ox_world() -> OxWorld {
    let (rj, jj, mj) = (bare(ROMEO), bare(JULIET), bare("mallory@evil.example"));
    let romeo_key = OxSecretKey::generate(&rj).expect("keygen");
    let juliet_key = OxSecretKey::generate(&jj).expect("keygen");
    let mallory_key = OxSecretKey::generate(&mj).expect("keygen");
    let sender_store = |peer: &OxSecretKey| {
        let s = Arc::new(MemoryKeyStore::new());
        s.add_peer_key(peer.jid(), &peer.public_key()).expect("add");
        s
    };
    let romeo = OxEnvelope::new(romeo_key.clone(), sender_store(&juliet_key));
    let mallory = OxEnvelope::new(mallory_key.clone(), sender_store(&juliet_key));
    let juliet_store = Arc::new(MemoryKeyStore::new());
    juliet_store
        .add_peer_key(&rj, &romeo_key.public_key())
        .expect("add");
    juliet_store
        .add_peer_key(&mj, &mallory_key.public_key())
        .expect("add");
    let secret = TransportSecret::new(vec![0x5a; 32], vec![0xa5; 12]).expect("secret");
    let content = Signcrypt {
        to: vec![jj.clone()],
        time: jet_envelopes::ox::elements::unix_now(),
        rpad: Some("padding".into()),
        payload: vec![jet_secret_element(&secret.to_bytes())],
    };
    let signcrypt = content.to_xml();
    let message = romeo
        .sign_and_encrypt(signcrypt.as_bytes(), &[juliet_key.public_key()])
        .expect("sign and encrypt");
    let element = openpgp_element(&message);
    let by_mallory = block_on(mallory.seal_signcrypt(&content, &jj)).expect("seal");
    let world = OxWorld {
        romeo_fpr: romeo_key.fingerprint().to_string(),
        mallory_fpr: mallory_key.fingerprint().to_string(),
        juliet_key,
        juliet_store,
        romeo,
        mallory,
        secret,
        element,
        message,
        signcrypt,
        by_mallory,
    };
    // The harness is live: the genuine envelope opens (once).
    let j = ox_juliet(&world);
    let from: Jid = "romeo@montague.lit/orchard".parse().unwrap();
    let opened = block_on(j.open(&world.element, &from, TOY.secret_shape()))
        .expect("the genuine envelope opens");
    assert_eq!(opened.secret, world.secret);
    assert!(
        block_on(j.open(&world.element, &from, TOY.secret_shape())).is_err(),
        "replay"
    );
    world
}

fn ox_juliet(w: &OxWorld) -> OxEnvelope {
    let store: Arc<dyn OxKeyStore> = w.juliet_store.clone();
    OxEnvelope::new(w.juliet_key.clone(), store).with_config(ox_config())
}

fn ox() -> Arc<OxWorld> {
    OX.with(|w| {
        w.borrow_mut()
            .get_or_insert_with(|| Arc::new(ox_world()))
            .clone()
    })
}

/// JET-OX `open` (Juliet, knowing Romeo's and Mallory's keys, fresh replay
/// cache per input) fed: the genuine `<openpgp/>` from Romeo with its
/// OpenPGP message edited, its XML text edited, its signcrypt XML edited
/// and signed-and-encrypted again by Romeo or Mallory, raw bytes as the
/// OpenPGP message or as the element; with Romeo, Mallory or a stranger as
/// the stanza sender. Properties: never a panic; a result is `Err` or the
/// secret and signer that the authenticated signcrypt names: the signer is
/// the stanza sender's account and key, the signcrypt is addressed to
/// Juliet, and (unless the signcrypt itself was re-signed with edits) the
/// secret is exactly the genuine one. The untouched envelope opens.
pub fn ox_open(data: &[u8]) {
    let w = ox();
    let mut u = Unstructured::new(data);
    let senders = [
        ROMEO,
        ROMEO,
        ROMEO,
        "mallory@evil.example",
        "eve@evil.example",
    ];
    let from_bare = *u.choose(&senders).unwrap_or(&ROMEO);
    let from: Jid = format!("{from_bare}/res").parse().unwrap();
    let mode = u.int_in_range(0..=6u8).unwrap_or(0);
    // Who signed what Juliet gets, when known (edits cannot change it
    // without the key; raw bytes have no known signer).
    let mut signed_by = Some(ROMEO);
    // The plaintext of a re-sealed edited signcrypt.
    let mut resealed: Option<Vec<u8>> = None;
    let envelope: Element = match mode {
        0 => w.element.clone(),
        1 => {
            signed_by = Some("mallory@evil.example");
            w.by_mallory.clone()
        }
        // Edits of the OpenPGP message.
        2 | 3 => {
            let mut m = w.message.clone();
            edit_bytes(&mut u, &mut m);
            if m.is_empty() {
                return;
            }
            openpgp_element(&m)
        }
        // Edits of the element's XML text.
        4 => {
            let mut text = String::from(&w.element).into_bytes();
            edit_bytes(&mut u, &mut text);
            match xml(&text) {
                Some(el) => el,
                None => return,
            }
        }
        // Edits of the signcrypt XML, signed and encrypted again.
        5 => {
            let mut text = w.signcrypt.clone().into_bytes();
            edit_bytes(&mut u, &mut text);
            signcrypt_round_trip(&text);
            let by_mallory = !u.ratio(3, 4).unwrap_or(true);
            let (sender, who) = if by_mallory {
                (&w.mallory, "mallory@evil.example")
            } else {
                (&w.romeo, ROMEO)
            };
            let m = sender
                .sign_and_encrypt(&text, &[w.juliet_key.public_key()])
                .expect("sign and encrypt");
            resealed = Some(text);
            signed_by = Some(who);
            openpgp_element(&m)
        }
        // Raw bytes: the OpenPGP message, or the element.
        _ => {
            signed_by = None;
            let as_xml = u.arbitrary().unwrap_or(false);
            let rest = u.take_rest();
            if as_xml {
                match xml(rest) {
                    Some(el) => el,
                    None => return,
                }
            } else if rest.is_empty() {
                return;
            } else {
                openpgp_element(rest)
            }
        }
    };
    let juliet = ox_juliet(&w);
    let r = block_on(juliet.open(&envelope, &from, TOY.secret_shape()));
    outcome(6 + usize::from(mode), r.is_ok());
    let untouched = (envelope == w.element && from_bare == ROMEO)
        || (envelope == w.by_mallory && from_bare == "mallory@evil.example");
    // A re-sealed signcrypt always reaches the authenticated parse.
    if !untouched && (past_parser(&r) || resealed.is_some()) {
        deep();
    }
    let opened = match r {
        Ok(o) => o,
        Err(e) => {
            assert!(!untouched, "the untouched envelope did not open: {e}");
            return;
        }
    };
    // The signer is the stanza sender, with that account's key.
    assert_eq!(
        opened.sender,
        bare(from_bare),
        "signer is not the stanza sender"
    );
    let fpr = match from_bare {
        ROMEO => &w.romeo_fpr,
        "mallory@evil.example" => &w.mallory_fpr,
        other => panic!("opened an envelope from {other}, whose key Juliet does not know"),
    };
    assert_eq!(opened.sender_key.as_deref(), Some(fpr.as_str()));
    if let Some(who) = signed_by {
        assert_eq!(
            who, from_bare,
            "opened as from {from_bare}, signed by {who}"
        );
    }
    match resealed {
        None => assert_eq!(opened.secret, w.secret, "opened a different secret"),
        Some(text) => {
            // Exactly what the signed content says, addressed to Juliet.
            let content = Signcrypt::from_xml(std::str::from_utf8(&text).expect("opened: UTF-8"))
                .expect("opened: a signcrypt");
            assert!(
                content.to.contains(&bare(JULIET)),
                "not addressed to Juliet"
            );
            let bytes = jet_secret_of(&content.payload).expect("opened: one <jet-secret/>");
            assert_eq!(*opened.secret.to_bytes(), *bytes, "not the signed secret");
        }
    }
}

/// `Signcrypt::from_xml` on edited XML: what parses must round-trip.
fn signcrypt_round_trip(text: &[u8]) {
    let Ok(s) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(sc) = Signcrypt::from_xml(s) else {
        return;
    };
    let again = Signcrypt::from_xml(&sc.to_xml())
        .unwrap_or_else(|e| panic!("a <signcrypt/> we wrote does not parse back: {e}"));
    assert_eq!(again.to, sc.to);
    assert_eq!(again.time, sc.time);
    assert_eq!(again.rpad, sc.rpad);
    assert_eq!(again.payload.len(), sc.payload.len());
    let _ = Signcrypt::from_element(&sc.to_element()).expect("the element form parses too");
    let _ = jet_secret_of(&sc.payload);
}

// ---------------------------------------------------------------------------
// seeds

/// Writes seed inputs for the envelope targets into `dir` (the replay
/// runner's `--gen-seeds`): genuine elements and messages from this
/// process's keys for `omemo_element`, and mode-selecting inputs for
/// `omemo_open` and `ox_open` (whose genuine envelopes are made in process).
pub fn gen_seeds(target: &str, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let put = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes);
    match target {
        "omemo_element" => {
            let w = omemo();
            for (i, c) in w.cases.iter().take(3).enumerate() {
                put(
                    &format!("encrypted-{i}.xml"),
                    String::from(&c.element).as_bytes(),
                )?;
                let e = EncryptedElement::from_element(&c.element).expect("parse");
                put(&format!("key-{i}.bin"), &e.keys[0].data)?;
            }
            let mut b = w.romeo_bundle.clone();
            b.pre_keys.truncate(3);
            put(
                "bundle.xml",
                String::from(&bundle_to_element(&b)).as_bytes(),
            )?;
            put(
                "list.xml",
                String::from(&device_list_to_element(&[ROMEO_DEV, 2147483647])).as_bytes(),
            )?;
            // A PEP fetch result, as bundle_from_stanza reads it.
            let items = Element::builder("items", "http://jabber.org/protocol/pubsub")
                .attr(
                    jet_core::xml::nc("node"),
                    jet_envelopes::omemo::pep::bundle_node(ROMEO_DEV),
                )
                .append(
                    Element::builder("item", "http://jabber.org/protocol/pubsub")
                        .append(bundle_to_element(&b))
                        .build(),
                )
                .build();
            let result = Element::builder("iq", "jabber:client")
                .attr(jet_core::xml::nc("type"), "result")
                .append(
                    Element::builder("pubsub", "http://jabber.org/protocol/pubsub")
                        .append(items)
                        .build(),
                )
                .build();
            put("pep-bundle-result.xml", String::from(&result).as_bytes())?;
            put("fingerprint.txt", b.identity_key.fingerprint().as_bytes())?;
        }
        "omemo_open" => {
            // case, mode, then edit choices (the rest of the input).
            let w = omemo();
            for c in 0..w.cases.len() as u8 {
                for mode in 0..=5u8 {
                    let mut s = vec![c, mode, 1];
                    s.extend((0..24u8).map(|i| i.wrapping_mul(37).wrapping_add(c ^ mode)));
                    put(&format!("case{c}-mode{mode}.bin"), &s)?;
                }
            }
            // Raw modes with genuine-shaped data (this process's keys:
            // parses, does not decrypt in another process).
            for (c, case) in w.cases.iter().enumerate().take(2) {
                let e = EncryptedElement::from_element(&case.element).expect("parse");
                let mut s = vec![c as u8, 4, 1, u8::from(e.keys[0].prekey)];
                s.extend_from_slice(&e.keys[0].data);
                put(&format!("case{c}-mode4-key.bin"), &s)?;
                let mut s = vec![c as u8, 5, 1];
                s.extend_from_slice(String::from(&case.element).as_bytes());
                put(&format!("case{c}-mode5-element.bin"), &s)?;
            }
        }
        "ox_open" => {
            let w = ox();
            for mode in 0..=6u8 {
                let mut s = vec![0, mode];
                s.extend((0..24u8).map(|i| i.wrapping_mul(53).wrapping_add(mode)));
                put(&format!("mode{mode}.bin"), &s)?;
            }
            // Raw mode with an OpenPGP message of the right shape (made
            // for other keys: parses, does not decrypt).
            let mut s = vec![0, 6, 0];
            s.extend_from_slice(&w.message);
            put("mode6-message.bin", &s)?;
            let mut s = vec![0, 6, 1];
            s.extend_from_slice(String::from(&w.element).as_bytes());
            put("mode6-element.bin", &s)?;
        }
        other => {
            return Err(std::io::Error::other(format!(
                "no seed generator for {other}"
            )));
        }
    }
    Ok(())
}
