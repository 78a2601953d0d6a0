//! JET-OX envelope: round trip, element forms, and every receive check
//! failing the right way.
#![cfg(feature = "ox")]

mod ox_support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jet_core::envelope::EnvelopeBackend;
use jet_core::error::{EnvelopeError, SecretError};
use jet_core::jid::Jid;
use jet_core::minidom::Element;
use jet_core::{ns, TransportSecret};
use jet_envelopes::ox::elements::{
    format_datetime, jet_secret_element, jet_secret_of, openpgp_element, openpgp_message,
    random_rpad, unix_now,
};
use jet_envelopes::ox::{OxConfig, OxEnvelope, OxKeyStore, OxSecretKey, Signcrypt};
use ox_support::*;

fn jid(s: &str) -> Jid {
    s.parse().unwrap()
}

/// Romeo and Juliet who know each other's keys.
fn couple() -> (Party, Party) {
    let romeo = Party::new(ROMEO);
    let juliet = Party::new(JULIET);
    romeo.knows(&juliet);
    juliet.knows(&romeo);
    (romeo, juliet)
}

fn signcrypt_for(to: &str, time: i64, secret: &TransportSecret) -> Signcrypt {
    Signcrypt {
        to: vec![bare(to)],
        time,
        rpad: Some(random_rpad()),
        payload: vec![jet_secret_element(&secret.to_bytes())],
    }
}

fn err_text(r: Result<impl std::fmt::Debug, EnvelopeError>) -> (EnvelopeError, String) {
    let e = r.expect_err("the envelope must be refused");
    let text = e.to_string();
    (e, text)
}

#[tokio::test]
async fn seal_open_round_trip_between_two_parties() {
    let (romeo, juliet) = couple();
    assert_eq!(romeo.env.envelope_type(), "urn:xmpp:openpgp:0");
    assert_eq!(romeo.env.disco_feature(), "urn:xmpp:jingle:jet-ox:0");
    assert!(romeo.env.is_secure());

    let ts = AES256_SIZES.generate().unwrap();
    let ee = romeo.env.seal(&ts, &jid(JULIET_FULL)).await.unwrap();
    assert!(ee.is("openpgp", ns::OX));
    // The secret is not visible in the envelope.
    let wire = String::from_utf8(openpgp_message(&ee).unwrap()).unwrap_or_default();
    assert!(!wire.contains(&STANDARD.encode(ts.to_bytes().as_slice())));

    let opened = juliet
        .env
        .open(&ee, &jid(ROMEO_FULL), AES256_SIZES)
        .await
        .unwrap();
    assert_eq!(opened.secret, ts);
    assert_eq!(opened.sender, bare(ROMEO));
    assert_eq!(opened.sender_key.as_deref(), Some(romeo.key.fingerprint()));

    // And back the other way.
    let ts2 = AES256_SIZES.generate().unwrap();
    let ee2 = juliet.env.seal(&ts2, &jid(ROMEO_FULL)).await.unwrap();
    let opened2 = romeo
        .env
        .open(&ee2, &jid(JULIET_FULL), AES256_SIZES)
        .await
        .unwrap();
    assert_eq!(opened2.secret, ts2);
    assert_eq!(opened2.sender, bare(JULIET));
}

#[tokio::test]
async fn sender_can_read_its_own_envelope_it_is_encrypted_to_self() {
    let (romeo, juliet) = couple();
    let ts = AES256_SIZES.generate().unwrap();
    let ee = romeo.env.seal(&ts, &jid(JULIET_FULL)).await.unwrap();
    // Romeo's other device (same key) can decrypt; the content says "to juliet",
    // so the envelope check refuses it for Romeo, after decryption worked.
    romeo.knows(&romeo);
    let (_, text) = err_text(romeo.env.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await);
    assert!(text.contains("addressed to juliet@capulet.lit"), "{text}");
    let _ = juliet;
}

#[test]
fn signcrypt_parse_and_serialize() {
    // XEP-0373 §3.1's example, with our payload.
    let xml = "<signcrypt xmlns='urn:xmpp:openpgp:0'>\
        <to jid='juliet@capulet.lit'/>\
        <time stamp='2014-07-10T17:06:00+02:00'/>\
        <rpad>f0rm1l4n4-mT8y33j!Y%fRSrcd^ZE4Q7VDt1L%WEgR!kv</rpad>\
        <payload><jet-secret xmlns='urn:xmpp:jingle:jet-ox:0'>AAECAw==</jet-secret></payload>\
        </signcrypt>";
    let sc = Signcrypt::from_xml(xml).unwrap();
    assert_eq!(sc.to, vec![bare(JULIET)]);
    assert_eq!(format_datetime(sc.time), "2014-07-10T15:06:00Z");
    assert_eq!(
        sc.rpad.as_deref(),
        Some("f0rm1l4n4-mT8y33j!Y%fRSrcd^ZE4Q7VDt1L%WEgR!kv")
    );
    assert_eq!(
        jet_secret_of(&sc.payload).unwrap().as_slice(),
        &[0, 1, 2, 3]
    );
    // Round trip through our serialization.
    let back = Signcrypt::from_xml(&sc.to_xml()).unwrap();
    assert_eq!(back, sc);
    let el = sc.to_element();
    assert!(el.is("signcrypt", ns::OX));
    assert_eq!(
        el.get_child("time", ns::OX).unwrap().attr("stamp"),
        Some("2014-07-10T15:06:00Z")
    );
    // Full JIDs in <to/> are reduced to bare JIDs; several recipients allowed.
    let multi = Signcrypt::from_xml(
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='juliet@capulet.lit/balcony'/>\
         <to jid='nurse@capulet.lit'/><time stamp='2020-01-01T00:00:00Z'/><payload/></signcrypt>",
    )
    .unwrap();
    assert_eq!(multi.to, vec![bare(JULIET), bare("nurse@capulet.lit")]);
    assert_eq!(multi.rpad, None);

    // Everything the XEP's table forbids.
    for bad in [
        // no <to/>
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><time stamp='2020-01-01T00:00:00Z'/><payload/></signcrypt>",
        // no <time/>
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='a@b'/><payload/></signcrypt>",
        // two <time/>
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='a@b'/><time stamp='2020-01-01T00:00:00Z'/><time stamp='2020-01-01T00:00:00Z'/><payload/></signcrypt>",
        // no <payload/>
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='a@b'/><time stamp='2020-01-01T00:00:00Z'/></signcrypt>",
        // bad stamp, bad jid, missing attrs
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='a@b'/><time stamp='soon'/><payload/></signcrypt>",
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='@@'/><time stamp='2020-01-01T00:00:00Z'/><payload/></signcrypt>",
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><to/><time stamp='2020-01-01T00:00:00Z'/><payload/></signcrypt>",
        // unknown child, stray text, <sign/> instead of <signcrypt/>
        "<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='a@b'/><time stamp='2020-01-01T00:00:00Z'/><payload/><extra/></signcrypt>",
        "<signcrypt xmlns='urn:xmpp:openpgp:0'>hi<to jid='a@b'/><time stamp='2020-01-01T00:00:00Z'/><payload/></signcrypt>",
        "<sign xmlns='urn:xmpp:openpgp:0'><time stamp='2020-01-01T00:00:00Z'/><payload/></sign>",
        "not xml at all",
    ] {
        assert!(
            matches!(Signcrypt::from_xml(bad), Err(EnvelopeError::Malformed(_))),
            "{bad}"
        );
    }

    // The payload holds exactly one <jet-secret/>.
    let two = vec![jet_secret_element(&[1]), jet_secret_element(&[2])];
    assert!(jet_secret_of(&two).is_err());
    assert!(jet_secret_of(&[]).is_err());
    let body: Element = "<body xmlns='jabber:client'>hi</body>".parse().unwrap();
    assert!(jet_secret_of(&[body]).is_err());
}

#[tokio::test]
async fn wrong_signer_is_refused() {
    // Mallory is known to Juliet (under mallory's own JID) and seals for her,
    // but the stanza comes from Romeo: the signer is not the stanza sender.
    let (_romeo, juliet) = couple();
    let mallory = Party::new("mallory@evil.lit");
    mallory.knows(&juliet);
    juliet.knows(&mallory);
    let ts = AES256_SIZES.generate().unwrap();
    let ee = mallory.env.seal(&ts, &jid(JULIET_FULL)).await.unwrap();
    let (e, _) = err_text(juliet.env.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await);
    match e {
        EnvelopeError::WrongSender { expected, got } => {
            assert_eq!(expected, ROMEO);
            assert_eq!(got, "mallory@evil.lit");
        }
        other => panic!("expected WrongSender, got {other:?}"),
    }
    // From Mallory's own JID, the same envelope is fine.
    let opened = juliet
        .env
        .open(&ee, &jid("mallory@evil.lit/x"), AES256_SIZES)
        .await
        .unwrap();
    assert_eq!(opened.sender, bare("mallory@evil.lit"));
}

#[tokio::test]
async fn unknown_sender_key_is_refused() {
    let (_romeo, juliet) = couple();
    // Eve has Juliet's public key, but Juliet knows nothing of Eve.
    let eve = Party::new("eve@evil.lit");
    eve.knows(&juliet);
    let ts = AES256_SIZES.generate().unwrap();
    let ee = eve.env.seal(&ts, &jid(JULIET_FULL)).await.unwrap();
    // Claiming to be Romeo: Romeo's key did not sign it.
    let (e, text) = err_text(juliet.env.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await);
    assert!(matches!(e, EnvelopeError::Untrusted(_)), "{e:?}");
    assert!(
        text.contains("not signed by a key known for romeo@montague.lit"),
        "{text}"
    );
    // As herself: no key is known for eve (and no channel to fetch one).
    let (e, text) = err_text(
        juliet
            .env
            .open(&ee, &jid("eve@evil.lit/x"), AES256_SIZES)
            .await,
    );
    assert!(matches!(e, EnvelopeError::Untrusted(_)), "{e:?}");
    assert!(
        text.contains("no OpenPGP key is known for eve@evil.lit"),
        "{text}"
    );

    // A new key of Romeo that Juliet has not seen is just as unknown.
    let new_romeo_key = OxSecretKey::generate(&bare(ROMEO)).unwrap();
    let store = std::sync::Arc::new(jet_envelopes::ox::MemoryKeyStore::new());
    store
        .add_peer_key(&bare(JULIET), &juliet.key.public_key())
        .unwrap();
    let new_romeo = OxEnvelope::new(new_romeo_key, store);
    let ee = new_romeo.seal(&ts, &jid(JULIET_FULL)).await.unwrap();
    let (e, _) = err_text(juliet.env.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await);
    assert!(matches!(e, EnvelopeError::Untrusted(_)), "{e:?}");
}

#[tokio::test]
async fn signcrypt_to_someone_else_is_refused() {
    let (romeo, juliet) = couple();
    let ts = AES256_SIZES.generate().unwrap();
    // Encrypted to Juliet, but the signed content names the nurse
    // (a surreptitious forward: the nurse re-encrypting Romeo's signcrypt
    // for Juliet looks exactly like this).
    let content = signcrypt_for("nurse@capulet.lit", unix_now(), &ts);
    let ee = romeo
        .env
        .seal_signcrypt(&content, &bare(JULIET))
        .await
        .unwrap();
    let (e, text) = err_text(juliet.env.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await);
    assert!(matches!(e, EnvelopeError::Open(_)), "{e:?}");
    assert!(
        text.contains("addressed to nurse@capulet.lit, not to us (juliet@capulet.lit)"),
        "{text}"
    );
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() {
    let (romeo, juliet) = couple();
    let ts = AES256_SIZES.generate().unwrap();
    let now = unix_now();
    for offset in [-11 * 60, 11 * 60, -86_400 * 365] {
        let content = signcrypt_for(JULIET, now + offset, &ts);
        let ee = romeo
            .env
            .seal_signcrypt(&content, &bare(JULIET))
            .await
            .unwrap();
        let (e, text) = err_text(juliet.env.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await);
        assert!(matches!(e, EnvelopeError::Open(_)), "{e:?}");
        assert!(
            text.contains("outside the allowed window of ±600 s"),
            "{offset}: {text}"
        );
    }
    // Five minutes of skew is inside the default window...
    let content = signcrypt_for(JULIET, now - 5 * 60, &ts);
    let ee = romeo
        .env
        .seal_signcrypt(&content, &bare(JULIET))
        .await
        .unwrap();
    assert_eq!(
        juliet
            .env
            .open(&ee, &jid(ROMEO_FULL), AES256_SIZES)
            .await
            .unwrap()
            .secret,
        ts
    );
    // ...and outside a configured one-minute window.
    let strict = OxEnvelope::new(juliet.key.clone(), juliet.store.clone()).with_config(OxConfig {
        max_clock_skew: std::time::Duration::from_secs(60),
        ..OxConfig::default()
    });
    let content = signcrypt_for(JULIET, now - 5 * 60, &ts);
    let ee = romeo
        .env
        .seal_signcrypt(&content, &bare(JULIET))
        .await
        .unwrap();
    let (_, text) = err_text(strict.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await);
    assert!(text.contains("±60 s"), "{text}");
}

#[tokio::test]
async fn replayed_envelope_is_refused() {
    let (romeo, juliet) = couple();
    let ts = AES256_SIZES.generate().unwrap();
    let ee = romeo.env.seal(&ts, &jid(JULIET_FULL)).await.unwrap();
    juliet
        .env
        .open(&ee, &jid(ROMEO_FULL), AES256_SIZES)
        .await
        .unwrap();
    let (e, text) = err_text(juliet.env.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await);
    assert!(matches!(e, EnvelopeError::Open(_)), "{e:?}");
    assert!(text.contains("replayed"), "{text}");
    // The same signcrypt re-encrypted (a new OpenPGP message, same content)
    // is the same replay.
    let content = signcrypt_for(JULIET, unix_now(), &ts);
    let a = romeo
        .env
        .seal_signcrypt(&content, &bare(JULIET))
        .await
        .unwrap();
    let b = romeo
        .env
        .seal_signcrypt(&content, &bare(JULIET))
        .await
        .unwrap();
    assert_ne!(a, b, "two encryptions differ");
    juliet
        .env
        .open(&a, &jid(ROMEO_FULL), AES256_SIZES)
        .await
        .unwrap();
    let (_, text) = err_text(juliet.env.open(&b, &jid(ROMEO_FULL), AES256_SIZES).await);
    assert!(text.contains("replayed"), "{text}");
    // A fresh seal of the same secret has new time/rpad: accepted.
    let c = romeo.env.seal(&ts, &jid(JULIET_FULL)).await.unwrap();
    juliet
        .env
        .open(&c, &jid(ROMEO_FULL), AES256_SIZES)
        .await
        .unwrap();
}

/// The top-level OpenPGP packets of `msg`: (tag, start, end) byte ranges.
/// Stops at a partial-length packet (only the last one, SEIPD, may be).
fn packets(msg: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < msg.len() {
        let start = i;
        let ctb = msg[i];
        assert!(ctb & 0x80 != 0, "not a packet header at {i}");
        i += 1;
        let (tag, len) = if ctb & 0x40 != 0 {
            let o1 = msg[i] as usize;
            i += 1;
            let len = match o1 {
                0..=191 => Some(o1),
                192..=223 => {
                    i += 1;
                    Some(((o1 - 192) << 8) + msg[i - 1] as usize + 192)
                }
                255 => {
                    i += 4;
                    Some(u32::from_be_bytes(msg[i - 4..i].try_into().unwrap()) as usize)
                }
                _ => None,
            };
            (ctb & 0x3f, len)
        } else {
            let n = [1usize, 2, 4, 0][(ctb & 3) as usize];
            let len = (n > 0).then(|| {
                msg[i..i + n]
                    .iter()
                    .fold(0usize, |a, b| (a << 8) | *b as usize)
            });
            i += n;
            ((ctb >> 2) & 0x0f, len)
        };
        match len {
            Some(len) => {
                i += len;
                out.push((tag, start, i));
            }
            None => {
                out.push((tag, start, msg.len()));
                break;
            }
        }
    }
    out
}

#[tokio::test]
async fn tampered_message_is_refused() {
    use pgp::types::KeyDetails;
    let (romeo, juliet) = couple();
    let ts = AES256_SIZES.generate().unwrap();
    let ee = romeo.env.seal(&ts, &jid(JULIET_FULL)).await.unwrap();
    let bytes = openpgp_message(&ee).unwrap();
    let n = bytes.len();
    // Layout: PKESK for Juliet, PKESK for Romeo (encrypt-to-self), SEIPD.
    let layout = packets(&bytes);
    let tags: Vec<u8> = layout.iter().map(|p| p.0).collect();
    assert_eq!(tags, vec![1, 1, 18], "{layout:?}");
    let romeo_subkey_id = romeo.key.public_key().as_pgp().public_subkeys[0].legacy_key_id();
    let (_, self_start, self_end) = layout[1];
    assert_eq!(
        &bytes[self_start + 3..self_start + 11],
        romeo_subkey_id.as_ref()
    );
    // Flip each byte in turn. Any change to the encrypted, integrity-
    // protected data (SEIPD) must be refused. In the session-key packets
    // (PKESKs) OpenPGP binds nothing but the session key itself: Romeo's
    // encrypt-to-self packet is not Juliet's business, and some encodings
    // are not canonical (e.g. an MPI's bit count). There a flip may be
    // refused or may still open, but only to the very same content.
    let (_, seipd_start, _) = layout[2];
    let mut refused = 0;
    let mut harmless = 0;
    for pos in 0..n {
        let mut t = bytes.clone();
        t[pos] ^= 0x01;
        // A fresh replay cache each time: a refusal must come from the
        // tampering itself, never from having seen the content before.
        let fresh = OxEnvelope::new(juliet.key.clone(), juliet.store.clone());
        let res = fresh
            .open(&openpgp_element(&t), &jid(ROMEO_FULL), AES256_SIZES)
            .await;
        match res {
            Err(e @ (EnvelopeError::Open(_) | EnvelopeError::Malformed(_))) => {
                assert!(!e.to_string().contains("replayed"), "{e}");
                refused += 1
            }
            Ok(opened) if pos < seipd_start => {
                assert_eq!(opened.secret, ts, "byte {pos}");
                assert_eq!(opened.sender, bare(ROMEO));
                harmless += 1;
            }
            other => panic!("flipping byte {pos} of {n}: expected a refusal, got {other:?}"),
        }
    }
    eprintln!(
        "flipped each of {n} bytes: {refused} refused, {harmless} opened unchanged (PKESK region)"
    );
    assert_eq!(refused + harmless, n);
    assert!(
        refused >= n - (self_end - self_start) - 8,
        "{refused} of {n}"
    );
    // Truncated and extended messages too.
    for t in [
        bytes[..n - 1].to_vec(),
        bytes[..n / 2].to_vec(),
        [bytes.clone(), vec![0]].concat(),
    ] {
        let fresh = OxEnvelope::new(juliet.key.clone(), juliet.store.clone());
        assert!(fresh
            .open(&openpgp_element(&t), &jid(ROMEO_FULL), AES256_SIZES)
            .await
            .is_err());
    }
    // The untouched message opens (so the refusals above were the tampering).
    let fresh = OxEnvelope::new(juliet.key.clone(), juliet.store.clone());
    assert_eq!(
        fresh
            .open(&ee, &jid(ROMEO_FULL), AES256_SIZES)
            .await
            .unwrap()
            .secret,
        ts
    );
}

#[tokio::test]
async fn random_mutations_and_garbage_never_open_or_panic() {
    use rand::{Rng, SeedableRng};
    let (romeo, juliet) = couple();
    let ts = AES256_SIZES.generate().unwrap();
    let ee = romeo.env.seal(&ts, &jid(JULIET_FULL)).await.unwrap();
    let bytes = openpgp_message(&ee).unwrap();
    let (_, seipd_start, _) = packets(&bytes)[2];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0A_0373);
    for round in 0..150 {
        let mut t = bytes.clone();
        for _ in 0..rng.gen_range(1..6) {
            let pos = rng.gen_range(0..t.len());
            t[pos] = rng.gen();
        }
        let touched_seipd = t[seipd_start..] != bytes[seipd_start..];
        let fresh = OxEnvelope::new(juliet.key.clone(), juliet.store.clone());
        let res = fresh
            .open(&openpgp_element(&t), &jid(ROMEO_FULL), AES256_SIZES)
            .await;
        match res {
            Err(_) => {}
            Ok(opened) => {
                assert!(!touched_seipd, "round {round}: a mutated message opened");
                assert_eq!(opened.secret, ts, "round {round}");
            }
        }
    }
    for len in [1usize, 2, 10, 100, 1000] {
        let garbage: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        assert!(juliet
            .env
            .open(&openpgp_element(&garbage), &jid(ROMEO_FULL), AES256_SIZES)
            .await
            .is_err());
    }
}

#[tokio::test]
async fn unsigned_or_not_for_us_messages_are_refused() {
    let (romeo, juliet) = couple();
    let ts = AES256_SIZES.generate().unwrap();
    // Encrypted for the nurse only: Juliet cannot decrypt.
    let nurse = Party::new("nurse@capulet.lit");
    romeo.knows(&nurse);
    let ee = romeo
        .env
        .seal(&ts, &jid("nurse@capulet.lit/x"))
        .await
        .unwrap();
    let (e, text) = err_text(juliet.env.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await);
    assert!(matches!(e, EnvelopeError::Open(_)), "{e:?}");
    assert!(text.contains("cannot decrypt"), "{text}");
    // Wrong element.
    let stub: Element = "<encrypted xmlns='urn:xmpp:encryption:stub:0'/>"
        .parse()
        .unwrap();
    assert!(matches!(
        juliet.env.open(&stub, &jid(ROMEO_FULL), AES256_SIZES).await,
        Err(EnvelopeError::Malformed(_))
    ));
    // Garbage base64 content.
    let junk = openpgp_element(b"this is not an OpenPGP message");
    assert!(juliet
        .env
        .open(&junk, &jid(ROMEO_FULL), AES256_SIZES)
        .await
        .is_err());
}

#[tokio::test]
async fn secret_of_the_wrong_size_is_refused() {
    let (romeo, juliet) = couple();
    let short = TransportSecret::generate_with(16, 12).unwrap();
    let ee = romeo.env.seal(&short, &jid(JULIET_FULL)).await.unwrap();
    assert!(matches!(
        juliet.env.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await,
        Err(EnvelopeError::Secret(SecretError::Length { got: 28, .. }))
    ));
    // A payload that is not a <jet-secret/>.
    let content = Signcrypt {
        to: vec![bare(JULIET)],
        time: unix_now(),
        rpad: None,
        payload: vec!["<body xmlns='jabber:client'>hi</body>".parse().unwrap()],
    };
    let ee = romeo
        .env
        .seal_signcrypt(&content, &bare(JULIET))
        .await
        .unwrap();
    assert!(matches!(
        juliet.env.open(&ee, &jid(ROMEO_FULL), AES256_SIZES).await,
        Err(EnvelopeError::Malformed(_))
    ));
}

#[tokio::test]
async fn sealing_for_an_unknown_recipient_fails() {
    let romeo = Party::new(ROMEO);
    let ts = AES256_SIZES.generate().unwrap();
    assert!(matches!(
        romeo.env.seal(&ts, &jid(JULIET_FULL)).await,
        Err(EnvelopeError::NoKey(_))
    ));
}
