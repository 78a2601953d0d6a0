//! Known-answer tests of the OMEMO core against values produced by
//! independent implementations, checked in as data (no python needed):
//!
//! * `tests/data/omemo_vectors.json`, made by `tests/python/gen_vectors.py`
//!   with python-xeddsa (libxeddsa) and python-omemo/oldmemo under a fixed
//!   random stream: XEdDSA signatures in both sign conventions, and a whole
//!   OMEMO 0.3 session start (python's PreKeySignalMessage and `<encrypted>`
//!   element) with every private key involved.
//! * A bundle from the xmpp-parsers test suite (a deployed client's), whose
//!   signature carries the sign bit in bit 511.
//!
//! RFC 7748 (X25519) and RFC 5869 (HKDF) vectors are unit tests in
//! `src/omemo/keys.rs` and `src/omemo/kdf.rs`.

use jet_core::minidom::Element;
use jet_envelopes::omemo::keys::{KeyPair, PrivateKey, PublicKey};
use jet_envelopes::omemo::proto::PreKeySignalMessage;
use jet_envelopes::omemo::store::SignedPreKeyRecord;
use jet_envelopes::omemo::x3dh::initiate_with;
use jet_envelopes::omemo::xml::bundle_from_element;
use jet_envelopes::omemo::{EncryptedElement, InMemoryStore, OmemoManager, OmemoStore};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/omemo_vectors.json")).expect("vector file is JSON")
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn h32(v: &Value) -> [u8; 32] {
    hx(v).try_into().expect("32 bytes")
}

fn key_pair(v: &Value) -> KeyPair {
    KeyPair::from_private(PrivateKey::from_bytes(h32(v)))
}

#[test]
fn xeddsa_signatures_from_libxeddsa_verify() {
    let v = vectors();
    let cases = v["xeddsa"].as_array().unwrap();
    let mut signs = [false; 2];
    for c in cases {
        let public = PublicKey::from_bytes(h32(&c["pub"]));
        let msg = hx(&c["msg"]);
        signs[c["ed25519_sign_bit"].as_u64().unwrap() as usize] = true;
        for form in ["sig_spec", "sig_sign_bit"] {
            let sig = hx(&c[form]);
            assert!(public.verify(&msg, &sig), "{form} of {}", c["pub"]);
            let mut other_sign = sig.clone();
            other_sign[63] ^= 0x80;
            assert!(
                !public.verify(&msg, &other_sign),
                "{form} with flipped sign bit"
            );
            let mut other_msg = msg.clone();
            other_msg[0] ^= 1;
            assert!(!public.verify(&other_msg, &sig));
        }
        assert_eq!(hx(&c["sig_spec"])[63] & 0x80, 0);
    }
    assert!(signs[0] && signs[1], "vectors cover both Ed25519 signs");

    for c in v["xeddsa_sign_bit"].as_array().unwrap() {
        let public = PublicKey::from_bytes(h32(&c["pub"]));
        assert!(
            public.verify(&hx(&c["msg"]), &hx(&c["sig"])),
            "oldmemo-style {}",
            c["pub"]
        );
    }
}

/// The bundle in xmpp-parsers' `legacy_omemo` tests: a deployed client's
/// signed prekey signature, with bit 511 set.
#[test]
fn deployed_client_bundle_signature_verifies() {
    let xml = r#"<bundle xmlns="eu.siacs.conversations.axolotl">
  <signedPreKeyPublic signedPreKeyId="1">BYAbACA15bPn95p7RGC2XbgQyly8aRKS4BaJ+hD8Ybhe</signedPreKeyPublic>
  <signedPreKeySignature>sIJVNDZi/NgFsry4OBdM+adyGttLEXbUh/h/5dVOZveMgyVoIdgwBUzq8Wgd2xYTQMioNzwYebTX+9p0h9eujA==</signedPreKeySignature>
  <identityKey>BQFd2p/Oq97vAAdLKA09DlcSg0x1xWn260p1jaeyIhAZ</identityKey>
  <prekeys>
    <preKeyPublic preKeyId="1">BbjHsF5ndtNV8ToRcJTYSNGePgAWsFGkSL6OG7B7LXRe</preKeyPublic>
  </prekeys>
</bundle>"#;
    let el: Element = xml.parse().unwrap();
    let bundle = bundle_from_element(&el).unwrap();
    assert_eq!(bundle.signed_pre_key_signature[63] & 0x80, 0x80);
    bundle.verify().expect("deployed bundle signature verifies");
    let mut bad = bundle.clone();
    bad.signed_pre_key_signature[10] ^= 1;
    assert!(bad.verify().is_err());
}

/// python-omemo (Alice) started a session with our fixed bundle (Bob):
/// we recompute its PreKeySignalMessage from the same private keys (X3DH,
/// root and chain KDFs, message keys, AES-CBC, MAC: all must agree byte for
/// byte) and decrypt its `<encrypted>` element as Bob.
#[test]
fn python_session_start_recomputed_and_decrypted() {
    let v = vectors();
    let s = &v["session"];
    let bob = &s["bob"];

    // Our parse of the bundle python used (its signature: bit 511 form).
    let bundle = bundle_from_element(&s["bob_bundle"].as_str().unwrap().parse().unwrap()).unwrap();
    bundle.verify().unwrap();
    let bob_identity = key_pair(&bob["identity_priv"]);
    let bob_spk = key_pair(&bob["spk_priv"]);
    let bob_opk = key_pair(&bob["opk_priv"]);
    assert_eq!(bundle.identity_key, bob_identity.public);
    assert_eq!(bundle.signed_pre_key, bob_spk.public);

    // Alice's side, recomputed.
    let python_pkm = PreKeySignalMessage::decode(&hx(&s["prekey_message"])).unwrap();
    let alice_identity = key_pair(&s["alice"]["identity_priv"]);
    assert_eq!(python_pkm.identity_key, alice_identity.public);
    let opk_id = u32::try_from(bob["opk_id"].as_u64().unwrap()).unwrap();
    let mut session = initiate_with(
        &alice_identity,
        python_pkm.registration_id,
        &bundle,
        Some((opk_id, bob_opk.public)),
        key_pair(&s["alice"]["base_priv"]),
        key_pair(&s["alice"]["ratchet_priv"]),
    )
    .unwrap();
    let ours = session.encrypt(&hx(&s["key_material"])).unwrap();
    assert!(ours.prekey);
    let ours = PreKeySignalMessage::decode(&ours.bytes).unwrap();
    assert_eq!(ours.base_key, python_pkm.base_key);
    assert_eq!(ours.pre_key_id, Some(opk_id));
    assert_eq!(ours.pre_key_id, python_pkm.pre_key_id);
    assert_eq!(ours.signed_pre_key_id, python_pkm.signed_pre_key_id);
    assert_eq!(
        hex::encode(&ours.message),
        s["inner_signal_message"].as_str().unwrap(),
        "inner SignalMessage (ciphertext and MAC) identical to python-omemo's"
    );
    assert_eq!(ours.message, python_pkm.message);

    // Bob's side: decrypt python's element with the fixed keys.
    let spk_id = u32::try_from(bob["spk_id"].as_u64().unwrap()).unwrap();
    let spk_sig: [u8; 64] = bundle.signed_pre_key_signature.clone().try_into().unwrap();
    let store = InMemoryStore::from_keys(
        u32::try_from(bob["device_id"].as_u64().unwrap()).unwrap(),
        1,
        bob_identity,
        SignedPreKeyRecord {
            id: spk_id,
            key_pair: bob_spk,
            signature: spk_sig,
        },
        vec![(opk_id, bob_opk)],
    )
    .unwrap();
    let mut bob_manager = OmemoManager::new(store, bob["jid"].as_str().unwrap());
    let el: Element = s["xml"].as_str().unwrap().parse().unwrap();
    let d = bob_manager
        .decrypt(
            s["alice"]["jid"].as_str().unwrap(),
            &EncryptedElement::from_element(&el).unwrap(),
        )
        .unwrap();
    assert_eq!(&d.payload.unwrap()[..], &hx(&s["plaintext"])[..]);
    assert_eq!(&d.key_material[..], &hx(&s["key_material"])[..]);
    assert!(d.new_session);
    assert!(
        bob_manager.store().pre_key(opk_id).unwrap().is_none(),
        "one-time prekey consumed"
    );
}

/// Our XEdDSA signer against libxeddsa's (XEdDSA spec form, same key and
/// nonce Z): byte-identical signatures, for keys of both Edwards signs.
#[test]
fn xeddsa_signing_matches_libxeddsa() {
    let v = vectors();
    for c in v["xeddsa"].as_array().unwrap() {
        let k = PrivateKey::from_bytes(h32(&c["priv"]));
        assert_eq!(k.public_key().as_bytes(), &h32(&c["pub"]));
        let nonce: [u8; 64] = hx(&c["nonce"]).try_into().unwrap();
        let ours = k.sign_with_random(&hx(&c["msg"]), &nonce);
        assert_eq!(hex::encode(ours), c["sig_spec"].as_str().unwrap());
    }
}
