//! Encrypted versus plain transfer on loopback, through the JET layer
//! (`jet_core::layer::JetStream`, the wrapper the session driver uses):
//! S5B direct (real TCP on 127.0.0.1), 64 MiB, plain and through every
//! suite of the default registry; IBB over the in-memory router, 2 MiB,
//! plain and AES-256-GCM. Sender and receiver are separate tasks on a
//! two-thread runtime. Each S5B suite runs twice: `pipelined` (the default:
//! the JET layer encrypts/decrypts on tokio's blocking pool while it serves
//! the socket) and `inline` (`JetStream::set_pipelined(false)`: cipher and
//! socket take turns). Only the transfer is timed; the negotiation runs
//! before it.
//!
//! `cargo bench -p jet-benches --bench transfer -- --warm-up-time 1 --measurement-time 5`

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jet_ciphers::{CipherRegistry, AES_256_GCM};
use jet_core::cipher::CipherSuite;
use jet_core::layer::{Direction, JetStream};
use jet_core::memory::connected_pair;
use jet_core::transport::{BoxedStream, TransportAdapter};
use jet_core::TransportSecret;
use jet_transports::{IbbConfig, IbbTransport, S5bConfig, S5bTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn connect(adapter: &dyn TransportAdapter) -> (BoxedStream, BoxedStream) {
    connected_pair(adapter)
        .await
        .expect("a connected transport")
}

/// Sends `size` bytes (64 KiB writes) from one end to the other, through
/// `suite` when given; returns the time from first write to last read.
async fn send(
    adapter: &dyn TransportAdapter,
    suite: Option<&'static dyn CipherSuite>,
    pipelined: bool,
    size: usize,
) -> Duration {
    let (a, b) = connect(adapter).await;
    let (mut tx, mut rx): (BoxedStream, BoxedStream) = match suite {
        None => (a, b),
        Some(suite) => {
            let secret = TransportSecret::generate(suite).unwrap();
            let mut tx = JetStream::new(a, suite, &secret, Direction::Send).unwrap();
            let mut rx = JetStream::new(b, suite, &secret, Direction::Receive).unwrap();
            tx.set_pipelined(pipelined);
            rx.set_pipelined(pipelined);
            (Box::new(tx), Box::new(rx))
        }
    };
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let piece = vec![0x5au8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(piece.len());
            tx.write_all(&piece[..n]).await.unwrap();
            left -= n;
        }
        tx.shutdown().await.unwrap();
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = rx.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    writer.await.unwrap();
    let took = start.elapsed();
    assert_eq!(total, size);
    took
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = |adapter: &dyn TransportAdapter,
               suite: Option<&'static dyn CipherSuite>,
               pipelined: bool,
               size: usize,
               iters: u64| {
        rt.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += send(adapter, suite, pipelined, size).await;
            }
            total
        })
    };

    let s5b = S5bTransport::new(S5bConfig {
        direct_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        discover_proxy: false,
        ..S5bConfig::default()
    });
    const S5B_SIZE: usize = 64 << 20;
    let mut g = c.benchmark_group("transfer-s5b-64MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(S5B_SIZE as u64));
    g.bench_function("plain", |b| {
        b.iter_custom(|iters| run(&s5b, None, false, S5B_SIZE, iters))
    });
    for suite in &CipherRegistry::default() {
        for (how, pipelined) in [("pipelined", true), ("inline", false)] {
            g.bench_function(format!("{} {how}", suite.name()), |b| {
                b.iter_custom(|iters| run(&s5b, Some(suite), pipelined, S5B_SIZE, iters))
            });
        }
    }
    g.finish();

    let ibb = IbbTransport::new(IbbConfig {
        block_size: 65535,
        ..IbbConfig::default()
    });
    const IBB_SIZE: usize = 2 << 20;
    let mut g = c.benchmark_group("transfer-ibb-memory-router-2MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(IBB_SIZE as u64));
    g.bench_function("plain", |b| {
        b.iter_custom(|iters| run(&ibb, None, false, IBB_SIZE, iters))
    });
    g.bench_function(AES_256_GCM.name(), |b| {
        b.iter_custom(|iters| run(&ibb, Some(&AES_256_GCM), true, IBB_SIZE, iters))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
