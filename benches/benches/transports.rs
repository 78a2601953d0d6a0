//! Raw transport throughput on loopback: S5B (direct candidate, real TCP)
//! and IBB (base64 IQs through the in-memory router). Only the transfer is
//! timed; the negotiation runs before each measured iteration.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jet_core::memory::connected_pair;
use jet_core::transport::{BoxedStream, TransportAdapter};
use jet_transports::{IbbConfig, IbbTransport, S5bConfig, S5bTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn connect(adapter: &dyn TransportAdapter) -> (BoxedStream, BoxedStream) {
    connected_pair(adapter)
        .await
        .expect("a connected transport")
}

async fn send(adapter: &dyn TransportAdapter, payload: &'static [u8]) -> Duration {
    let (mut a, mut b) = connect(adapter).await;
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for chunk in payload.chunks(64 * 1024) {
            a.write_all(chunk).await.unwrap();
        }
        a.shutdown().await.unwrap();
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = b.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    writer.await.unwrap();
    let took = start.elapsed();
    assert_eq!(total, payload.len());
    took
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s5b_payload: &'static [u8] = Box::leak(vec![0x5a; 16 << 20].into_boxed_slice());
    let ibb_payload: &'static [u8] = Box::leak(vec![0xa5; 2 << 20].into_boxed_slice());

    let s5b = S5bTransport::new(S5bConfig {
        direct_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        discover_proxy: false,
        ..S5bConfig::default()
    });
    let mut g = c.benchmark_group("transport");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(s5b_payload.len() as u64));
    g.bench_function("s5b_direct_16MiB", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += send(&s5b, s5b_payload).await;
                }
                total
            })
        })
    });
    g.throughput(Throughput::Bytes(ibb_payload.len() as u64));
    for block_size in [4096u16, 65535] {
        let ibb = IbbTransport::new(IbbConfig {
            block_size,
            ..IbbConfig::default()
        });
        g.bench_function(format!("ibb_memory_router_2MiB_block{block_size}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += send(&ibb, ibb_payload).await;
                    }
                    total
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
