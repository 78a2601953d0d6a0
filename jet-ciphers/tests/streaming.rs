//! Streaming output equals the one-shot reference for every suite, whatever
//! the sizes and the way the input is split; decryption with odd splits
//! gives the plaintext back.

mod common;

use common::{decrypt_pieces, encrypt_pieces, one_shot, pieces, secret, suites, Rng};
use jet_core::cipher::Framing;

const SIZES: &[usize] = &[0, 1, 15, 16, 17, 65535, 65536, 65537, 3 * 1024 * 1024 + 5];

#[test]
fn streaming_equals_one_shot_for_every_suite() {
    for (si, suite) in suites().into_iter().enumerate() {
        let ts = secret(suite, 100 + si as u64);
        let mut rng = Rng(7 + si as u64);
        for &len in SIZES {
            let data = rng.bytes(len);
            let reference = one_shot(suite, &ts, &data);
            assert_eq!(
                reference.len() as u64,
                suite.ciphertext_len(len as u64),
                "{} len {len}",
                suite.urn()
            );
            // One-byte updates only where they stay quick.
            let splits: &[usize] = if len <= 65537 {
                &[1, 7, 4095, 0]
            } else {
                &[7, 4095, 0, 1 << 20]
            };
            for &split in splits {
                let p = pieces(len, split, &mut rng);
                let ct = encrypt_pieces(suite, &ts, &data, &p);
                assert!(
                    ct == reference,
                    "{} len {len} split {split}: output differs from one-shot",
                    suite.urn()
                );
                let dp = pieces(ct.len(), split, &mut rng);
                let back = decrypt_pieces(suite, &ts, &ct, &dp).unwrap();
                assert!(
                    back == data,
                    "{} len {len} split {split}: round trip differs",
                    suite.urn()
                );
            }
        }
    }
}

#[test]
fn random_inputs_match_one_shot() {
    let mut rng = Rng(42);
    for suite in suites() {
        for round in 0..20 {
            let ts = secret(suite, rng.next());
            let len = rng.below(300_000) as usize;
            let data = rng.bytes(len);
            let p = pieces(len, 0, &mut rng);
            let ct = encrypt_pieces(suite, &ts, &data, &p);
            assert!(
                ct == one_shot(suite, &ts, &data),
                "{} round {round} len {len}",
                suite.urn()
            );
            let dp = pieces(ct.len(), 0, &mut rng);
            assert!(decrypt_pieces(suite, &ts, &ct, &dp).unwrap() == data);
        }
    }
}

#[test]
fn single_message_suites_authenticate_only_at_the_end() {
    let mut rng = Rng(3);
    for suite in suites() {
        let ts = secret(suite, 9);
        let data = rng.bytes(200_000);
        let ct = one_shot(suite, &ts, &data);
        let mut dec = suite.decryptor(&ts).unwrap();
        let mut out = Vec::new();
        dec.update(&ct, &mut out).unwrap();
        match suite.framing() {
            Framing::SingleMessage { .. } => {
                // Everything but the held-back tag is released, unauthenticated.
                assert_eq!(out.len(), data.len());
                assert_eq!(dec.authenticated_len(), 0);
            }
            Framing::Chunked { chunk_len } => {
                // Only whole verified chunks are released.
                assert_eq!(out.len(), 3 * chunk_len);
                assert_eq!(dec.authenticated_len(), 3 * chunk_len as u64);
            }
            _ => unreachable!(),
        }
        dec.finish(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(dec.authenticated_len(), data.len() as u64);
    }
}

#[test]
fn generated_secrets_have_the_suite_sizes_and_round_trip() {
    for suite in suites() {
        let ts = jet_core::TransportSecret::generate(suite).unwrap();
        assert_eq!(ts.key().len(), suite.key_len());
        assert_eq!(ts.iv().len(), suite.iv_len());
        let data = b"hello";
        let ct = encrypt_pieces(suite, &ts, data, &[5]);
        assert_eq!(common::decrypt(suite, &ts, &ct).unwrap(), data);
    }
}
