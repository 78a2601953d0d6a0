//! ChaCha20-Poly1305 on every built-in backend ([`ChaChaBackend`]): equal to
//! the one-shot `chacha20poly1305` crate, encrypt with one backend and
//! decrypt with another across odd piece boundaries, and refuse tampered,
//! truncated and extended streams on each. Run with `--features openssl` to
//! cover OpenSSL against RustCrypto (scripts/test does).

mod common;

use chacha20poly1305::aead::{Aead, KeyInit};
use common::{damaged_single_message, decrypt_with, encrypt_with, pieces_of, Rng};
use jet_ciphers::chacha::ChaChaBackend;
use jet_ciphers::CHACHA20_POLY1305;
use jet_core::cipher::StreamDecryptor;
use jet_core::error::CipherError;
use jet_core::TransportSecret;

fn one_shot(ts: &TransportSecret, data: &[u8]) -> Vec<u8> {
    chacha20poly1305::ChaCha20Poly1305::new_from_slice(ts.key())
        .unwrap()
        .encrypt(ts.iv().try_into().unwrap(), data)
        .unwrap()
}

fn encrypt(ts: &TransportSecret, backend: ChaChaBackend, data: &[u8], pieces: &[usize]) -> Vec<u8> {
    encrypt_with(
        CHACHA20_POLY1305.encryptor_with(ts, &[], backend).unwrap(),
        data,
        pieces,
    )
}

fn decrypt(
    ts: &TransportSecret,
    backend: ChaChaBackend,
    ct: &[u8],
    pieces: &[usize],
) -> (Box<dyn StreamDecryptor>, Vec<u8>, Result<(), CipherError>) {
    decrypt_with(
        CHACHA20_POLY1305.decryptor_with(ts, &[], backend).unwrap(),
        ct,
        pieces,
    )
}

/// Odd piece sizes: 1, primes, around the 64-byte block and 16 KiB.
fn odd_pieces(len: usize, rng: &mut Rng) -> Vec<usize> {
    pieces_of(len, &[1, 3, 15, 17, 63, 65, 4099, 16_385, 65_537], rng)
}

fn secret(rng: &mut Rng) -> TransportSecret {
    TransportSecret::new(rng.bytes(32), rng.bytes(12)).unwrap()
}

#[cfg(feature = "openssl")]
#[test]
fn openssl_backend_is_built_in_and_preferred() {
    assert_eq!(
        ChaChaBackend::all(),
        &[ChaChaBackend::OpenSsl, ChaChaBackend::RustCrypto]
    );
}

#[test]
fn every_backend_pair_agrees_across_odd_boundaries() {
    let mut rng = Rng(0xc4a);
    for len in [0usize, 1, 63, 64, 65, 4097, 65_536, 200_003] {
        let data = rng.bytes(len);
        let ts = secret(&mut rng);
        let reference = one_shot(&ts, &data);
        for &enc_backend in ChaChaBackend::all() {
            let ct = encrypt(&ts, enc_backend, &data, &odd_pieces(len, &mut rng));
            assert!(
                ct == reference,
                "{} differs from one-shot chacha20poly1305 (len {len})",
                enc_backend.name()
            );
            for &dec_backend in ChaChaBackend::all() {
                let pieces = odd_pieces(ct.len(), &mut rng);
                let (dec, plain, r) = decrypt(&ts, dec_backend, &ct, &pieces);
                let pair = format!("{} -> {}", enc_backend.name(), dec_backend.name());
                assert_eq!(r, Ok(()), "{pair}");
                assert!(plain == data, "{pair}");
                assert_eq!(dec.authenticated_len(), len as u64, "{pair}");
            }
        }
    }
}

#[test]
fn every_backend_refuses_tampered_truncated_and_extended_streams() {
    let mut rng = Rng(0x7463);
    let data = rng.bytes(40_000);
    let ts = secret(&mut rng);
    let ct = one_shot(&ts, &data);
    for &backend in ChaChaBackend::all() {
        let name = backend.name();
        let cases = damaged_single_message(&ct);
        for (what, bad, expected) in cases {
            let pieces = odd_pieces(bad.len(), &mut rng);
            let (dec, _, r) = decrypt(&ts, backend, &bad, &pieces);
            assert_eq!(r, Err(expected), "{name}: {what}");
            assert_eq!(dec.authenticated_len(), 0, "{name}: {what}");
        }
        let other = TransportSecret::new(rng.bytes(32), ts.iv().to_vec()).unwrap();
        let (mut dec, _, r) = decrypt(&other, backend, &ct, &[ct.len()]);
        assert_eq!(r, Err(CipherError::Authentication), "{name}: wrong key");
        assert_eq!(dec.finish(&mut Vec::new()), Err(CipherError::Finished));
    }
}
