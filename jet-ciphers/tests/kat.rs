//! Known-answer tests: NIST CAVP AES-GCM (128 and 256), RFC 8439 §2.8.2,
//! 16-byte IVs against `aes-gcm`'s `AesGcm<Aes128, U16>`, and the chunked
//! format's own vectors from docs/chunked-format.md. The AES-GCM vectors run
//! on every built-in [`GcmBackend`] (RustCrypto, and OpenSSL with the
//! `openssl` feature).

mod common;

use aes_gcm::aead::{Aead, KeyInit};
use common::{unhex, Rng};
use jet_ciphers::chunked::ChunkBackend;
use jet_ciphers::gcm::GcmBackend;
use jet_ciphers::{AES_128_GCM, AES_256_GCM, AES_256_GCM_CHUNKED, CHACHA20_POLY1305};
use jet_core::cipher::{CipherSuite, StreamDecryptor, StreamEncryptor};
use jet_core::error::CipherError;
use jet_core::TransportSecret;

struct Vector {
    key: Vec<u8>,
    iv: Vec<u8>,
    pt: Vec<u8>,
    aad: Vec<u8>,
    ct: Vec<u8>,
    tag: Vec<u8>,
}

fn parse_rsp(text: &str) -> Vec<Vector> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} = ")))
                .map(unhex)
        };
        let Some(key) = field("Key") else { continue };
        out.push(Vector {
            key,
            iv: field("IV").unwrap(),
            pt: field("PT").unwrap(),
            aad: field("AAD").unwrap(),
            ct: field("CT").unwrap(),
            tag: field("Tag").unwrap(),
        });
    }
    out
}

/// Runs one vector through a streaming encryptor/decryptor pair, fed in
/// pieces of `split` bytes.
fn check_vector(
    v: &Vector,
    mut enc: Box<dyn StreamEncryptor>,
    mut dec: Box<dyn StreamDecryptor>,
    split: usize,
) {
    let mut out = Vec::new();
    for piece in v.pt.chunks(split) {
        enc.update(piece, &mut out).unwrap();
    }
    enc.finish(&mut out).unwrap();
    let mut expected = v.ct.clone();
    expected.extend_from_slice(&v.tag);
    assert_eq!(hex::encode(&out), hex::encode(&expected));

    let mut plain = Vec::new();
    for piece in expected.chunks(split) {
        dec.update(piece, &mut plain).unwrap();
    }
    dec.finish(&mut plain).unwrap();
    assert_eq!(plain, v.pt);
}

fn nist(file: &str, suite: &jet_ciphers::gcm::AesGcmSuite, expected_count: usize) {
    let text = std::fs::read_to_string(format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    let vectors = parse_rsp(&text);
    assert_eq!(vectors.len(), expected_count);
    let mut with_empty_aad = 0;
    for v in &vectors {
        assert_eq!(v.key.len(), suite.key_len());
        let ts = TransportSecret::new(v.key.clone(), v.iv.clone()).unwrap();
        for &backend in GcmBackend::all() {
            for split in [1, 7, 16, 1000] {
                check_vector(
                    v,
                    suite.encryptor_with(&ts, &v.aad, backend).unwrap(),
                    suite.decryptor_with(&ts, &v.aad, backend).unwrap(),
                    split,
                );
            }
        }
        if v.aad.is_empty() {
            // The JET form (empty AAD) through the plain trait methods.
            with_empty_aad += 1;
            check_vector(
                v,
                suite.encryptor(&ts).unwrap(),
                suite.decryptor(&ts).unwrap(),
                5,
            );
        }
    }
    assert_eq!(with_empty_aad, 75);
}

#[test]
fn nist_gcm_128() {
    nist("gcmEncryptExtIV128.txt", &AES_128_GCM, 375);
}

#[test]
fn nist_gcm_256() {
    nist("gcmEncryptExtIV256.txt", &AES_256_GCM, 375);
}

#[test]
fn nist_tampered_tag_is_refused() {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/gcmEncryptExtIV128.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for v in parse_rsp(&text).iter().take(40) {
        let ts = TransportSecret::new(v.key.clone(), v.iv.clone()).unwrap();
        let mut wire = v.ct.clone();
        wire.extend_from_slice(&v.tag);
        let last = wire.len() - 1;
        wire[last] ^= 0x80;
        for &backend in GcmBackend::all() {
            let mut dec = AES_128_GCM.decryptor_with(&ts, &v.aad, backend).unwrap();
            let mut out = Vec::new();
            dec.update(&wire, &mut out).unwrap();
            assert_eq!(
                dec.finish(&mut out),
                Err(CipherError::Authentication),
                "{}",
                backend.name()
            );
            assert_eq!(dec.authenticated_len(), 0);
        }
    }
}

/// RFC 8439 §2.8.2: the AEAD_CHACHA20_POLY1305 example.
#[test]
fn rfc8439_section_2_8_2() {
    let key: Vec<u8> = (0x80..=0x9f).collect();
    let nonce = unhex("070000004041424344454647");
    let aad = unhex("50515253c0c1c2c3c4c5c6c7");
    let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    let ct = unhex(
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6\
         3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36\
         92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc\
         3ff4def08e4b7a9de576d26586cec64b6116",
    );
    let tag = unhex("1ae10b594f09e26a7e902ecbd0600691");
    let ts = TransportSecret::new(key, nonce).unwrap();
    let v = Vector {
        key: vec![],
        iv: vec![],
        pt: pt.to_vec(),
        aad,
        ct,
        tag,
    };
    for split in [1, 13, 64, 200] {
        check_vector(
            &v,
            CHACHA20_POLY1305.encryptor_with_aad(&ts, &v.aad).unwrap(),
            CHACHA20_POLY1305.decryptor_with_aad(&ts, &v.aad).unwrap(),
            split,
        );
        // Every built-in backend (RustCrypto; OpenSSL with `--features openssl`).
        for &backend in jet_ciphers::chacha::ChaChaBackend::all() {
            check_vector(
                &v,
                CHACHA20_POLY1305
                    .encryptor_with(&ts, &v.aad, backend)
                    .unwrap(),
                CHACHA20_POLY1305
                    .decryptor_with(&ts, &v.aad, backend)
                    .unwrap(),
                split,
            );
        }
    }
}

/// Old Dino sent 16-byte IVs: J0 comes from GHASH. Our stream must equal
/// the one-shot `AesGcm<Aes128, U16>` (and the 256-bit analogue).
#[test]
fn sixteen_byte_iv_matches_aes_gcm_u16() {
    type Aes128Gcm16 = aes_gcm::AesGcm<aes::Aes128, aes_gcm::aead::consts::U16>;
    type Aes256Gcm16 = aes_gcm::AesGcm<aes::Aes256, aes_gcm::aead::consts::U16>;
    let mut rng = Rng(16);
    for len in [0usize, 1, 15, 16, 17, 1000, 70_000] {
        let data = rng.bytes(len);
        let iv = rng.bytes(16);
        let k128 = rng.bytes(16);
        let k256 = rng.bytes(32);
        let one_128 = Aes128Gcm16::new_from_slice(&k128)
            .unwrap()
            .encrypt(iv.as_slice().try_into().unwrap(), &data[..])
            .unwrap();
        let one_256 = Aes256Gcm16::new_from_slice(&k256)
            .unwrap()
            .encrypt(iv.as_slice().try_into().unwrap(), &data[..])
            .unwrap();
        for (suite, key, expected) in [(&AES_128_GCM, k128, one_128), (&AES_256_GCM, k256, one_256)]
        {
            let ts = TransportSecret::new(key, iv.clone()).unwrap();
            let pieces = common::pieces(len, 7, &mut rng);
            let ours = common::encrypt_pieces(suite, &ts, &data, &pieces);
            assert_eq!(ours, expected, "len {len}");
            assert_eq!(common::decrypt(suite, &ts, &ours).unwrap(), data);
            for &backend in GcmBackend::all() {
                let mut enc = suite.encryptor_with(&ts, &[], backend).unwrap();
                let mut out = Vec::new();
                for piece in data.chunks(1000) {
                    enc.update(piece, &mut out).unwrap();
                }
                enc.finish(&mut out).unwrap();
                assert!(out == expected, "{} len {len}", backend.name());
                let mut dec = suite.decryptor_with(&ts, &[], backend).unwrap();
                let mut back = Vec::new();
                for piece in out.chunks(999) {
                    dec.update(piece, &mut back).unwrap();
                }
                dec.finish(&mut back).unwrap();
                assert!(back == data, "{} len {len}", backend.name());
            }
        }
    }
}

/// The vectors published in docs/chunked-format.md.
#[test]
fn chunked_format_vectors() {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/chunked-vectors.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut checked = 0;
    for block in text.split("\n\n") {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} = ")))
                .map(|s| s.trim().to_owned())
        };
        let Some(key) = field("Key") else { continue };
        let ts = TransportSecret::new(unhex(&key), unhex(&field("IV").unwrap())).unwrap();
        let pt: Vec<u8> = match field("PT") {
            Some(hex) => unhex(&hex),
            None => {
                // "PTGen = N": N bytes, byte i = i mod 251.
                let n: usize = field("PTGen").unwrap().parse().unwrap();
                (0..n).map(|i| (i % 251) as u8).collect()
            }
        };
        let mut ct = Vec::new();
        let mut enc = AES_256_GCM_CHUNKED.encryptor(&ts).unwrap();
        enc.update(&pt, &mut ct).unwrap();
        enc.finish(&mut ct).unwrap();
        // Every built-in backend writes the same bytes and reads them back.
        for &backend in ChunkBackend::all() {
            let mut other = Vec::new();
            let mut enc = AES_256_GCM_CHUNKED.encryptor_with(&ts, 0, backend).unwrap();
            enc.update(&pt, &mut other).unwrap();
            enc.finish(&mut other).unwrap();
            assert!(other == ct, "backend {} differs", backend.name());
            let mut dec = AES_256_GCM_CHUNKED.decryptor_with(&ts, 0, backend).unwrap();
            let mut back = Vec::new();
            dec.update(&ct, &mut back).unwrap();
            dec.finish(&mut back).unwrap();
            assert!(back == pt, "backend {} decrypts wrongly", backend.name());
            // A flipped bit in the last byte (a tag) is refused by each.
            let mut bad = ct.clone();
            *bad.last_mut().unwrap() ^= 1;
            let mut dec = AES_256_GCM_CHUNKED.decryptor_with(&ts, 0, backend).unwrap();
            let mut sink = Vec::new();
            let r = dec
                .update(&bad, &mut sink)
                .and_then(|_| dec.finish(&mut sink));
            assert_eq!(r, Err(CipherError::Authentication), "{}", backend.name());
        }
        if let Some(expected) = field("CT") {
            assert_eq!(hex::encode(&ct), expected);
        }
        if let Some(expected) = field("CTSHA256") {
            use sha2::Digest;
            assert_eq!(hex::encode(sha2::Sha256::digest(&ct)), expected);
        }
        if let Some(expected) = field("CTTail") {
            let tail = unhex(&expected);
            assert!(ct.ends_with(&tail));
        }
        if let Some(expected) = field("FirstChunkTag") {
            assert_eq!(hex::encode(&ct[65536..65552]), expected);
        }
        if let Some(expected) = field("CTLen") {
            assert_eq!(ct.len().to_string(), expected);
        }
        assert_eq!(
            ct.len() as u64,
            AES_256_GCM_CHUNKED.ciphertext_len(pt.len() as u64)
        );
        assert_eq!(common::decrypt(&AES_256_GCM_CHUNKED, &ts, &ct).unwrap(), pt);
        checked += 1;
    }
    assert_eq!(checked, 4);
}
