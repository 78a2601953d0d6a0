//! Helpers shared by the jet-ciphers integration tests.
#![allow(dead_code)]

use aes_gcm::aead::{Aead, KeyInit};
use hkdf::Hkdf;
use jet_ciphers::CipherRegistry;
use jet_core::cipher::{CipherSuite, StreamDecryptor, StreamEncryptor};
use jet_core::error::CipherError;
use jet_core::{ns, TransportSecret};
use sha2::Sha256;

/// splitmix64: deterministic test data and split patterns.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every suite of the default registry.
pub fn suites() -> Vec<&'static dyn CipherSuite> {
    CipherRegistry::default().iter().collect()
}

/// A random secret of the suite's sizes, deterministic in `seed`.
pub fn secret(suite: &dyn CipherSuite, seed: u64) -> TransportSecret {
    let mut rng = Rng(seed);
    TransportSecret::new(rng.bytes(suite.key_len()), rng.bytes(suite.iv_len())).unwrap()
}

/// The chunked format written from its specification with the one-shot
/// `aes-gcm` crate, independently of the streaming code.
pub fn chunked_reference(key: &[u8], iv: &[u8], data: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 32];
    Hkdf::<Sha256>::new(Some(iv), key)
        .expand(b"jet aes-256-gcm chunked stream v0", &mut k)
        .unwrap();
    let aead = aes_gcm::Aes256Gcm::new(&k.into());
    let full = data.len() / 65536;
    let mut out = Vec::new();
    for i in 0..=full {
        let chunk = &data[i * 65536..((i + 1) * 65536).min(data.len())];
        let mut nonce = [0u8; 12];
        nonce[..11].copy_from_slice(&(i as u128).to_be_bytes()[5..]);
        nonce[11] = u8::from(i == full);
        out.extend(aead.encrypt(&nonce.into(), chunk).unwrap());
    }
    out
}

/// The one-shot reference output for `suite`.
pub fn one_shot(suite: &dyn CipherSuite, secret: &TransportSecret, data: &[u8]) -> Vec<u8> {
    let (key, iv) = (secret.key(), secret.iv());
    match suite.urn() {
        ns::CIPHER_AES_128_GCM => aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .encrypt(iv.try_into().unwrap(), data)
            .unwrap(),
        ns::CIPHER_AES_256_GCM => aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt(iv.try_into().unwrap(), data)
            .unwrap(),
        ns::CIPHER_CHACHA20_POLY1305 => chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
            .unwrap()
            .encrypt(iv.try_into().unwrap(), data)
            .unwrap(),
        ns::CIPHER_AES_256_GCM_CHUNKED => chunked_reference(key, iv, data),
        other => panic!("no reference for {other}"),
    }
}

/// Splits `len` bytes into pieces: fixed size, or random sizes when `split` is 0.
pub fn pieces(len: usize, split: usize, rng: &mut Rng) -> Vec<usize> {
    let mut v = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = if split == 0 {
            1 + rng.below(100_000) as usize
        } else {
            split
        }
        .min(left);
        v.push(n);
        left -= n;
    }
    v
}

/// Streams `data` through the suite's encryptor in pieces.
pub fn encrypt_pieces(
    suite: &dyn CipherSuite,
    secret: &TransportSecret,
    data: &[u8],
    pieces: &[usize],
) -> Vec<u8> {
    encrypt_with(suite.encryptor(secret).unwrap(), data, pieces)
}

/// Streams `data` through `enc` in pieces, then checks that a finished
/// encryptor stays finished.
pub fn encrypt_with(mut enc: Box<dyn StreamEncryptor>, data: &[u8], pieces: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for &n in pieces {
        enc.update(&data[at..at + n], &mut out).unwrap();
        at += n;
    }
    enc.finish(&mut out).unwrap();
    assert_eq!(enc.finish(&mut out), Err(CipherError::Finished));
    out
}

/// Streams `ct` through `dec` in pieces; the decryptor, the released
/// plaintext and the result of `finish` (or of the first failing update).
pub fn decrypt_with(
    mut dec: Box<dyn StreamDecryptor>,
    ct: &[u8],
    pieces: &[usize],
) -> (Box<dyn StreamDecryptor>, Vec<u8>, Result<(), CipherError>) {
    let mut out = Vec::new();
    let mut at = 0;
    for &n in pieces {
        if let Err(e) = dec.update(&ct[at..at + n], &mut out) {
            return (dec, out, Err(e));
        }
        at += n;
    }
    let r = dec.finish(&mut out);
    (dec, out, r)
}

/// Random piece sizes drawn from `sizes`, adding up to `len`.
pub fn pieces_of(len: usize, sizes: &[usize], rng: &mut Rng) -> Vec<usize> {
    let mut v = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = sizes[rng.below(sizes.len() as u64) as usize].min(left);
        v.push(n);
        left -= n;
    }
    v
}

/// Streams `ct` through the suite's decryptor in pieces.
pub fn decrypt_pieces(
    suite: &dyn CipherSuite,
    secret: &TransportSecret,
    ct: &[u8],
    pieces: &[usize],
) -> Result<Vec<u8>, CipherError> {
    let mut dec = suite.decryptor(secret).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    for &n in pieces {
        dec.update(&ct[at..at + n], &mut out)?;
        at += n;
    }
    dec.finish(&mut out)?;
    Ok(out)
}

/// Decrypts in one update.
pub fn decrypt(
    suite: &dyn CipherSuite,
    secret: &TransportSecret,
    ct: &[u8],
) -> Result<Vec<u8>, CipherError> {
    decrypt_pieces(suite, secret, ct, &[ct.len()])
}

pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim()).unwrap()
}

/// Damaged versions of a single-message stream `ct` (plaintext, then a
/// 16-byte tag) and the error each must give: bit flips at the start, at
/// 16 KiB, around the plaintext's end and in the tag; cuts of 1 to 17
/// bytes and of half the stream; one byte appended; fewer bytes than a tag.
pub fn damaged_single_message(ct: &[u8]) -> Vec<(String, Vec<u8>, CipherError)> {
    let body = ct.len() - 16;
    let mut cases = Vec::new();
    for at in [0, 1, 16_384.min(body - 1), body - 1, body, body + 15] {
        let mut bad = ct.to_vec();
        bad[at] ^= 0x01;
        cases.push((
            format!("bit flip at {at}"),
            bad,
            CipherError::Authentication,
        ));
    }
    for cut in [1, 15, 16, 17, ct.len() / 2] {
        let bad = ct[..ct.len() - cut].to_vec();
        cases.push((format!("{cut} bytes cut"), bad, CipherError::Authentication));
    }
    let mut longer = ct.to_vec();
    longer.push(0);
    cases.push((
        "one byte appended".into(),
        longer,
        CipherError::Authentication,
    ));
    cases.push((
        "15 bytes only".into(),
        ct[..15].to_vec(),
        CipherError::Truncated,
    ));
    cases.push(("empty".into(), Vec::new(), CipherError::Truncated));
    cases
}
