//! Every suite refuses tampered, truncated and extended ciphertext; the
//! chunked suite also refuses dropped, swapped and duplicated chunks and
//! resumes at chunk boundaries.

mod common;

use common::{decrypt, one_shot, secret, suites, Rng};
use jet_ciphers::chunked::{ChunkedSuite, CHUNK_CIPHERTEXT_LEN, CHUNK_LEN};
use jet_ciphers::AES_256_GCM_CHUNKED;
use jet_core::cipher::{CipherSuite, StreamDecryptor, StreamEncryptor};
use jet_core::error::CipherError;
use jet_core::TransportSecret;

fn assert_refused(suite: &dyn CipherSuite, ts: &TransportSecret, ct: &[u8], what: &str) {
    match decrypt(suite, ts, ct) {
        Err(CipherError::Authentication | CipherError::Truncated) => {}
        other => panic!(
            "{}: {what} was not refused: {:?}",
            suite.urn(),
            other.map(|v| v.len())
        ),
    }
}

#[test]
fn tampering_anywhere_is_refused_by_every_suite() {
    let mut rng = Rng(5);
    for suite in suites() {
        let ts = secret(suite, 77);
        for len in [0usize, 1, 17, 65536, 150_000] {
            let data = rng.bytes(len);
            let ct = one_shot(suite, &ts, &data);
            assert_eq!(decrypt(suite, &ts, &ct).unwrap(), data);
            // One bit of the ciphertext body, at several places.
            if len > 0 {
                for pos in [0, len / 2, len - 1] {
                    let mut bad = ct.clone();
                    bad[pos] ^= 0x01;
                    assert_refused(suite, &ts, &bad, &format!("bit flip at {pos} of {len}"));
                }
            }
            // One bit of the (final) tag.
            let mut bad = ct.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x80;
            assert_refused(suite, &ts, &bad, "tag bit flip");
            let mut bad = ct.clone();
            bad[ct.len() - 16] ^= 0x01;
            assert_refused(suite, &ts, &bad, "tag first byte flip");
            // Truncated by one byte, and extended by one byte.
            assert_refused(suite, &ts, &ct[..ct.len() - 1], "truncation by one byte");
            let mut longer = ct.clone();
            longer.push(0);
            assert_refused(suite, &ts, &longer, "one appended byte");
            // Wrong key.
            let other = secret(suite, 78);
            assert_refused(suite, &other, &ct, "wrong key");
        }
    }
}

#[test]
fn short_input_is_truncated() {
    for suite in suites() {
        let ts = secret(suite, 1);
        for n in [0usize, 1, 15] {
            assert_eq!(
                decrypt(suite, &ts, &vec![0u8; n]),
                Err(CipherError::Truncated),
                "{}",
                suite.urn()
            );
        }
    }
}

#[test]
fn use_after_finish_and_after_failure_is_refused() {
    for suite in suites() {
        let ts = secret(suite, 2);
        let mut enc = suite.encryptor(&ts).unwrap();
        let mut out = Vec::new();
        enc.finish(&mut out).unwrap();
        assert_eq!(enc.update(b"x", &mut out), Err(CipherError::Finished));
        let mut dec = suite.decryptor(&ts).unwrap();
        let mut plain = Vec::new();
        dec.update(&[0u8; 40], &mut plain).ok();
        assert!(dec.finish(&mut plain).is_err());
        assert_eq!(dec.update(b"x", &mut plain), Err(CipherError::Finished));
        assert_eq!(dec.authenticated_len(), 0);
    }
}

fn chunks(ct: &[u8]) -> Vec<&[u8]> {
    ct.chunks(CHUNK_CIPHERTEXT_LEN).collect()
}

#[test]
fn chunked_refuses_dropped_swapped_duplicated_chunks_and_trailing_data() {
    let suite = &AES_256_GCM_CHUNKED;
    let ts = secret(suite, 11);
    let data = Rng(1).bytes(3 * CHUNK_LEN + 100);
    let ct = one_shot(suite, &ts, &data);
    let c = chunks(&ct);
    assert_eq!(c.len(), 4);

    let join = |parts: &[&[u8]]| parts.concat();
    assert_refused(suite, &ts, &join(&[c[0], c[2], c[3]]), "dropped chunk 1");
    assert_refused(
        suite,
        &ts,
        &join(&[c[1], c[0], c[2], c[3]]),
        "swapped chunks 0 and 1",
    );
    assert_refused(
        suite,
        &ts,
        &join(&[c[0], c[1], c[1], c[2], c[3]]),
        "duplicated chunk 1",
    );
    assert_refused(
        suite,
        &ts,
        &join(&[c[0], c[1], c[2]]),
        "final chunk dropped",
    );
    assert_refused(
        suite,
        &ts,
        &join(&[c[0], c[1], c[2], c[3], c[3]]),
        "final chunk repeated",
    );
    assert_refused(
        suite,
        &ts,
        &join(&[c[0], c[1], c[2], c[3], b"x"]),
        "trailing byte",
    );
    assert_refused(
        suite,
        &ts,
        &join(&[c[0], c[1], c[2], c[3], c[0]]),
        "trailing chunk",
    );

    // A stream that is a multiple of the chunk size ends with an empty
    // final chunk; cutting it off is refused, as is an extra empty chunk.
    let even = Rng(2).bytes(2 * CHUNK_LEN);
    let ct = one_shot(suite, &ts, &even);
    assert_eq!(ct.len(), 2 * CHUNK_CIPHERTEXT_LEN + 16);
    assert_eq!(
        decrypt(suite, &ts, &ct[..2 * CHUNK_CIPHERTEXT_LEN]),
        Err(CipherError::Truncated)
    );
    let mut extra = ct.clone();
    extra.extend_from_slice(&ct[ct.len() - 16..]);
    assert_refused(suite, &ts, &extra, "extra empty chunk");
}

#[test]
fn chunked_releases_only_verified_chunks() {
    let suite = &AES_256_GCM_CHUNKED;
    let ts = secret(suite, 12);
    let data = Rng(3).bytes(2 * CHUNK_LEN + 10);
    let mut ct = one_shot(suite, &ts, &data);
    ct[CHUNK_CIPHERTEXT_LEN + 5] ^= 4; // inside chunk 1
    let mut dec = suite.decryptor(&ts).unwrap();
    let mut out = Vec::new();
    let err = dec.update(&ct, &mut out).unwrap_err();
    assert_eq!(err, CipherError::Authentication);
    assert_eq!(out, &data[..CHUNK_LEN], "only chunk 0 is released");
    assert_eq!(dec.authenticated_len(), CHUNK_LEN as u64);
}

#[test]
fn chunked_resumes_at_chunk_boundaries() {
    let suite = &AES_256_GCM_CHUNKED;
    let ts = secret(suite, 13);
    let data = Rng(4).bytes(5 * CHUNK_LEN + 1234);
    let ct = one_shot(suite, &ts, &data);
    for k in [0u64, 1, 3, 5] {
        let p_off = ChunkedSuite::plaintext_offset(k) as usize;
        let c_off = ChunkedSuite::ciphertext_offset(k) as usize;
        assert_eq!(ChunkedSuite::chunk_index_at(p_off as u64).unwrap(), k);

        // Encrypting from chunk k reproduces the tail of the ciphertext.
        let mut enc = suite.encryptor_at(&ts, k).unwrap();
        let mut out = Vec::new();
        for piece in data[p_off..].chunks(10_000) {
            enc.update(piece, &mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        assert!(out == ct[c_off..], "encryptor_at({k})");

        // Decrypting from chunk k gives the tail of the plaintext.
        let mut dec = suite.decryptor_at(&ts, k).unwrap();
        let mut plain = Vec::new();
        for piece in ct[c_off..].chunks(9_999) {
            dec.update(piece, &mut plain).unwrap();
        }
        dec.finish(&mut plain).unwrap();
        assert!(plain == data[p_off..], "decryptor_at({k})");

        // The tail decrypted with the wrong start index is refused.
        let mut dec = suite.decryptor_at(&ts, k + 1).unwrap();
        let mut plain = Vec::new();
        let r = dec
            .update(&ct[c_off..], &mut plain)
            .and_then(|()| dec.finish(&mut plain));
        assert!(r.is_err(), "decryptor_at({}) on chunk {k}", k + 1);
    }
    assert!(matches!(
        ChunkedSuite::chunk_index_at(100),
        Err(CipherError::Position(_))
    ));
}
