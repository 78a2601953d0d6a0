//! Cipher throughput: every suite of the default registry, streaming
//! encryption and decryption of one message of 4 KiB, 64 KiB and 1 MiB
//! (fed in one `update`, setup and tag included), against the one-shot
//! `aes-gcm` / `chacha20poly1305` AEADs on the same sizes. The whole-stream
//! AES-GCM suites run once per built-in [`GcmBackend`] (`AES-256-GCM
//! [openssl]` next to `AES-256-GCM [rustcrypto]`; the `openssl` feature of
//! this package is on by default).
//!
//! `cargo bench -p jet-benches --bench ciphers -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use jet_ciphers::gcm::{AesGcmSuite, GcmBackend};
use jet_ciphers::{CipherRegistry, AES_128_GCM, AES_256_GCM};
use jet_core::cipher::{CipherSuite, StreamDecryptor, StreamEncryptor};
use jet_core::TransportSecret;

const SIZES: &[usize] = &[4 * 1024, 64 * 1024, 1024 * 1024];

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// One suite on one backend: its benchmark name and how to make its
/// encryptor and decryptor.
struct Variant {
    name: String,
    suite: &'static dyn CipherSuite,
    gcm: Option<(&'static AesGcmSuite, GcmBackend)>,
}

impl Variant {
    fn encryptor(&self, ts: &TransportSecret) -> Box<dyn StreamEncryptor> {
        match self.gcm {
            Some((g, backend)) => g.encryptor_with(ts, &[], backend).unwrap(),
            None => self.suite.encryptor(ts).unwrap(),
        }
    }
    fn decryptor(&self, ts: &TransportSecret) -> Box<dyn StreamDecryptor> {
        match self.gcm {
            Some((g, backend)) => g.decryptor_with(ts, &[], backend).unwrap(),
            None => self.suite.decryptor(ts).unwrap(),
        }
    }
}

/// Every suite of the default registry; the whole-stream AES-GCM suites
/// once per built-in backend.
fn variants() -> Vec<Variant> {
    let mut out = Vec::new();
    for suite in &CipherRegistry::default() {
        match [&AES_128_GCM, &AES_256_GCM]
            .into_iter()
            .find(|g| g.urn() == suite.urn())
        {
            Some(g) => {
                for &backend in GcmBackend::all() {
                    out.push(Variant {
                        name: format!("{} [{}]", suite.name(), backend.name()),
                        suite,
                        gcm: Some((g, backend)),
                    });
                }
            }
            None => out.push(Variant {
                name: suite.name().to_owned(),
                suite,
                gcm: None,
            }),
        }
    }
    out
}

fn streaming(c: &mut Criterion) {
    let variants = variants();
    for (dir, encrypt) in [("encrypt", true), ("decrypt", false)] {
        let mut group = c.benchmark_group(format!("stream-{dir}"));
        for v in &variants {
            let suite = v.suite;
            let ts = TransportSecret::generate(suite).unwrap();
            for &len in SIZES {
                let plain = data(len);
                let mut ct = Vec::new();
                let mut e = v.encryptor(&ts);
                e.update(&plain, &mut ct).unwrap();
                e.finish(&mut ct).unwrap();
                let mut out = Vec::with_capacity(len + 1024);
                group.throughput(Throughput::Bytes(len as u64));
                group.bench_with_input(BenchmarkId::new(&v.name, len), &len, |b, _| {
                    b.iter(|| {
                        out.clear();
                        if encrypt {
                            let mut e = v.encryptor(&ts);
                            e.update(black_box(&plain), &mut out).unwrap();
                            e.finish(&mut out).unwrap();
                        } else {
                            let mut d = v.decryptor(&ts);
                            d.update(black_box(&ct), &mut out).unwrap();
                            d.finish(&mut out).unwrap();
                        }
                        black_box(out.len())
                    })
                });
            }
        }
        group.finish();
    }
}

fn one_shot_pair<A: AeadInOut + KeyInit>(c: &mut Criterion, name: &str, key: &[u8]) {
    let aead = A::new_from_slice(key).unwrap();
    let nonce = aes_gcm::aead::Nonce::<A>::default();
    for (dir, encrypt) in [("encrypt", true), ("decrypt", false)] {
        let mut group = c.benchmark_group(format!("oneshot-{dir}"));
        for &len in SIZES {
            let plain = data(len);
            let mut ct = plain.clone();
            let tag = aead
                .encrypt_inout_detached(&nonce, b"", ct.as_mut_slice().into())
                .unwrap();
            let mut buf = vec![0u8; len];
            group.throughput(Throughput::Bytes(len as u64));
            group.bench_with_input(BenchmarkId::new(name, len), &len, |b, _| {
                b.iter(|| {
                    if encrypt {
                        buf.copy_from_slice(&plain);
                        let t = aead
                            .encrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into())
                            .unwrap();
                        black_box(t);
                    } else {
                        buf.copy_from_slice(&ct);
                        aead.decrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into(), &tag)
                            .unwrap();
                    }
                    black_box(buf[0])
                })
            });
        }
        group.finish();
    }
}

fn one_shot(c: &mut Criterion) {
    one_shot_pair::<aes_gcm::Aes128Gcm>(c, "AES-128-GCM (aes-gcm)", &[1; 16]);
    one_shot_pair::<aes_gcm::Aes256Gcm>(c, "AES-256-GCM (aes-gcm)", &[1; 32]);
    one_shot_pair::<chacha20poly1305::ChaCha20Poly1305>(
        c,
        "ChaCha20-Poly1305 (chacha20poly1305)",
        &[1; 32],
    );
}

criterion_group!(benches, streaming, one_shot);
criterion_main!(benches);
