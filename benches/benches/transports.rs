//! Raw transport throughput on loopback: S5B (direct candidate, real TCP)
//! and IBB (base64 IQs through the in-memory router). Only the transfer is
//! timed; the negotiation runs before each measured iteration.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jet_core::error::TransportError;
use jet_core::memory::MemoryRouter;
use jet_core::minidom::Element;
use jet_core::transport::{
    BoxedStream, Role, TransportAdapter, TransportContext, TransportSignals,
};
use jet_transports::{IbbConfig, IbbTransport, S5bConfig, S5bTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

struct Signals {
    tx: mpsc::UnboundedSender<Element>,
    rx: mpsc::UnboundedReceiver<Element>,
}

#[async_trait]
impl TransportSignals for Signals {
    async fn send_info(&mut self, t: Element) -> Result<(), TransportError> {
        self.tx
            .send(t)
            .map_err(|_| TransportError::Closed("bench".into()))
    }
    async fn recv_info(&mut self) -> Result<Element, TransportError> {
        self.rx
            .recv()
            .await
            .ok_or_else(|| TransportError::Closed("bench".into()))
    }
}

async fn connect(adapter: &dyn TransportAdapter) -> (BoxedStream, BoxedStream) {
    let router = MemoryRouter::new();
    let romeo = "romeo@montague.lit/orchard".parse().unwrap();
    let juliet = "juliet@capulet.lit/balcony".parse().unwrap();
    let ctx = |me: &jet_core::jid::FullJid, peer: &jet_core::jid::FullJid, role| TransportContext {
        channel: router.connect(me.clone()),
        local: me.clone(),
        peer: peer.clone(),
        role,
        session_sid: "bench".into(),
        content_name: "file".into(),
        we_send: role == Role::Initiator,
    };
    let (a, b) = (
        ctx(&romeo, &juliet, Role::Initiator),
        ctx(&juliet, &romeo, Role::Responder),
    );
    let mut off = adapter.offer(&a).await.unwrap();
    let ans = adapter.answer(&b, &off.local_transport()).await.unwrap();
    off.set_remote(&ans.local_transport()).unwrap();
    let (t1, r1) = mpsc::unbounded_channel();
    let (t2, r2) = mpsc::unbounded_channel();
    let (mut s1, mut s2) = (Signals { tx: t1, rx: r2 }, Signals { tx: t2, rx: r1 });
    let (x, y) = tokio::join!(off.establish(&mut s1), ans.establish(&mut s2));
    (x.unwrap(), y.unwrap())
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
