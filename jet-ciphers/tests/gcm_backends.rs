//! The whole-stream AES-GCM suites on every built-in backend
//! ([`GcmBackend`]): encrypt with one backend and decrypt with another across
//! odd piece boundaries, and refuse tampered, truncated and extended streams
//! on each. Run with `--features openssl` to cover OpenSSL against
//! RustCrypto (scripts/test does).

mod common;

use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::AesGcm;
use common::{damaged_single_message, decrypt_with, encrypt_with, pieces_of, Rng};
use jet_ciphers::gcm::{AesGcmSuite, GcmBackend};
use jet_ciphers::{AES_128_GCM, AES_256_GCM};
use jet_core::cipher::{CipherSuite, StreamDecryptor};
use jet_core::error::CipherError;
use jet_core::TransportSecret;

/// The one-shot `aes-gcm` crate, for the key and IV lengths of `ts`.
fn one_shot(ts: &TransportSecret, data: &[u8]) -> Vec<u8> {
    fn seal<
        C: aes::cipher::BlockCipherEncrypt + aes::cipher::BlockSizeUser<BlockSize = U16> + KeyInit,
        N: aes_gcm::aead::array::ArraySize,
    >(
        ts: &TransportSecret,
        data: &[u8],
    ) -> Vec<u8> {
        AesGcm::<C, N>::new_from_slice(ts.key())
            .unwrap()
            .encrypt(ts.iv().try_into().unwrap(), data)
            .unwrap()
    }
    match (ts.key().len(), ts.iv().len()) {
        (16, 12) => seal::<aes::Aes128, U12>(ts, data),
        (16, 16) => seal::<aes::Aes128, U16>(ts, data),
        (32, 12) => seal::<aes::Aes256, U12>(ts, data),
        (32, 16) => seal::<aes::Aes256, U16>(ts, data),
        other => panic!("no reference for {other:?}"),
    }
}

fn encrypt(
    suite: &AesGcmSuite,
    ts: &TransportSecret,
    backend: GcmBackend,
    data: &[u8],
    pieces: &[usize],
) -> Vec<u8> {
    encrypt_with(
        suite.encryptor_with(ts, &[], backend).unwrap(),
        data,
        pieces,
    )
}

/// Decrypts in `pieces`; returns the released plaintext and the result of
/// `finish` (or of the first failing update).
fn decrypt(
    suite: &AesGcmSuite,
    ts: &TransportSecret,
    backend: GcmBackend,
    ct: &[u8],
    pieces: &[usize],
) -> (Box<dyn StreamDecryptor>, Vec<u8>, Result<(), CipherError>) {
    decrypt_with(suite.decryptor_with(ts, &[], backend).unwrap(), ct, pieces)
}

/// Odd piece sizes: 1, primes, around the 16-byte block and the 16 KiB step.
fn odd_pieces(len: usize, rng: &mut Rng) -> Vec<usize> {
    pieces_of(len, &[1, 3, 15, 17, 31, 4099, 16_383, 16_385, 65_537], rng)
}

#[cfg(feature = "openssl")]
#[test]
fn openssl_backend_is_built_in_and_preferred() {
    assert_eq!(
        GcmBackend::all(),
        &[GcmBackend::OpenSsl, GcmBackend::RustCrypto]
    );
}

#[test]
fn every_backend_pair_agrees_across_odd_boundaries() {
    let mut rng = Rng(0x6c6d);
    for suite in [&AES_128_GCM, &AES_256_GCM] {
        for iv_len in [12, 16] {
            for len in [0usize, 1, 15, 16, 17, 4097, 65_536, 200_003] {
                let data = rng.bytes(len);
                let ts =
                    TransportSecret::new(rng.bytes(suite.key_len()), rng.bytes(iv_len)).unwrap();
                let reference = one_shot(&ts, &data);
                for &enc_backend in GcmBackend::all() {
                    let ct = encrypt(suite, &ts, enc_backend, &data, &odd_pieces(len, &mut rng));
                    assert!(
                        ct == reference,
                        "{} differs from one-shot aes-gcm (len {len}, iv {iv_len})",
                        enc_backend.name()
                    );
                    for &dec_backend in GcmBackend::all() {
                        let pieces = odd_pieces(ct.len(), &mut rng);
                        let (dec, plain, r) = decrypt(suite, &ts, dec_backend, &ct, &pieces);
                        assert_eq!(
                            r,
                            Ok(()),
                            "{} -> {}",
                            enc_backend.name(),
                            dec_backend.name()
                        );
                        assert!(
                            plain == data,
                            "{} -> {}",
                            enc_backend.name(),
                            dec_backend.name()
                        );
                        assert_eq!(dec.authenticated_len(), len as u64);
                    }
                }
            }
        }
    }
}

#[test]
fn every_backend_refuses_tampered_truncated_and_extended_streams() {
    let mut rng = Rng(0x7461);
    for suite in [&AES_128_GCM, &AES_256_GCM] {
        let data = rng.bytes(40_000);
        let ts = TransportSecret::new(rng.bytes(suite.key_len()), rng.bytes(12)).unwrap();
        let ct = encrypt(suite, &ts, GcmBackend::RustCrypto, &data, &[data.len()]);
        for &backend in GcmBackend::all() {
            let name = backend.name();
            let cases = damaged_single_message(&ct);
            for (what, bad, expected) in cases {
                let pieces = odd_pieces(bad.len(), &mut rng);
                let (dec, _, r) = decrypt(suite, &ts, backend, &bad, &pieces);
                assert_eq!(r, Err(expected), "{name}: {what}");
                assert_eq!(dec.authenticated_len(), 0, "{name}: {what}");
            }
            // A wrong key fails too, and a finished decryptor stays finished.
            let other = TransportSecret::new(rng.bytes(suite.key_len()), ts.iv().to_vec()).unwrap();
            let (mut dec, _, r) = decrypt(suite, &other, backend, &ct, &[ct.len()]);
            assert_eq!(r, Err(CipherError::Authentication), "{name}: wrong key");
            assert_eq!(dec.finish(&mut Vec::new()), Err(CipherError::Finished));
        }
    }
}
