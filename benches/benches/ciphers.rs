//! Cipher throughput: every suite of the default registry, streaming
//! encryption and decryption of one message of 4 KiB, 64 KiB and 1 MiB
//! (fed in one `update`, setup and tag included), against the one-shot
//! `aes-gcm` / `chacha20poly1305` AEADs on the same sizes.
//!
//! `cargo bench -p jet-benches --bench ciphers -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use jet_ciphers::CipherRegistry;
use jet_core::TransportSecret;

const SIZES: &[usize] = &[4 * 1024, 64 * 1024, 1024 * 1024];

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn streaming(c: &mut Criterion) {
    let registry = CipherRegistry::default();
    for (dir, encrypt) in [("encrypt", true), ("decrypt", false)] {
        let mut group = c.benchmark_group(format!("stream-{dir}"));
        for suite in &registry {
            let ts = TransportSecret::generate(suite).unwrap();
            for &len in SIZES {
                let plain = data(len);
                let mut ct = Vec::new();
                let mut e = suite.encryptor(&ts).unwrap();
                e.update(&plain, &mut ct).unwrap();
                e.finish(&mut ct).unwrap();
                let mut out = Vec::with_capacity(len + 1024);
                group.throughput(Throughput::Bytes(len as u64));
                group.bench_with_input(BenchmarkId::new(suite.name(), len), &len, |b, _| {
                    b.iter(|| {
                        out.clear();
                        if encrypt {
                            let mut e = suite.encryptor(&ts).unwrap();
                            e.update(black_box(&plain), &mut out).unwrap();
                            e.finish(&mut out).unwrap();
                        } else {
                            let mut d = suite.decryptor(&ts).unwrap();
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
