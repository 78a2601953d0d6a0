//! jet-core's `JetStream` with every real suite: its encryption and
//! decryption run on tokio's blocking pool while the socket is served
//! (the pipeline), and what goes over the wire must still be exactly the
//! one-shot reference, whatever the write and read sizes, on both runtime
//! flavours; tampering and truncation still end in an error, never `Ok(0)`.

mod common;

use common::{one_shot, secret, suites, Rng};
use jet_core::cipher::{CipherSuite, Framing};
use jet_core::error::CipherError;
use jet_core::layer::{cipher_error_of, Direction, JetStream, BATCH};
use jet_core::TransportSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtimes() -> Vec<(&'static str, tokio::runtime::Runtime)> {
    vec![
        (
            "current-thread",
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        ),
        (
            "multi-thread",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap(),
        ),
    ]
}

/// Encrypts `data` through a `JetStream` over a pipe of `pipe` bytes,
/// written in pieces of random sizes; returns the wire bytes and how many
/// batches the stream offloaded.
async fn seal(
    suite: &'static dyn CipherSuite,
    ts: &TransportSecret,
    data: &[u8],
    pipe: usize,
    seed: u64,
    pipelined: bool,
) -> (Vec<u8>, u64) {
    let (a, mut b) = tokio::io::duplex(pipe);
    let reader = tokio::spawn(async move {
        let mut wire = Vec::new();
        b.read_to_end(&mut wire).await.unwrap();
        wire
    });
    let mut tx = JetStream::new(a, suite, ts, Direction::Send).unwrap();
    tx.set_pipelined(pipelined);
    let mut rng = Rng(seed);
    let mut at = 0;
    while at < data.len() {
        let n = (1 + rng.below(3 * BATCH as u64 / 2) as usize).min(data.len() - at);
        tx.write_all(&data[at..at + n]).await.unwrap();
        at += n;
        if rng.below(8) == 0 {
            tx.flush().await.unwrap();
        }
    }
    tx.shutdown().await.unwrap();
    let offloaded = tx.batches_offloaded();
    drop(tx);
    (reader.await.unwrap(), offloaded)
}

/// Decrypts `wire` through a `JetStream`, read in pieces of random sizes;
/// the plaintext read before the result.
async fn open(
    suite: &'static dyn CipherSuite,
    ts: &TransportSecret,
    wire: Vec<u8>,
    pipe: usize,
    seed: u64,
) -> (Vec<u8>, std::io::Result<u64>, u64) {
    let (mut a, b) = tokio::io::duplex(pipe);
    let feeder = tokio::spawn(async move {
        // The receiver may stop reading after an error.
        let _ = a.write_all(&wire).await;
        let _ = a.shutdown().await;
    });
    let mut rx = JetStream::new(b, suite, ts, Direction::Receive).unwrap();
    let mut rng = Rng(seed);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2 * BATCH];
    let verdict = loop {
        let want = 1 + rng.below(buf.len() as u64) as usize;
        match rx.read(&mut buf[..want]).await {
            Ok(0) => break Ok(rx.authenticated_len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                // The verdict sticks: reading again never turns into EOF.
                assert!(rx.read(&mut buf).await.is_err());
                break Err(e);
            }
        }
    };
    let offloaded = rx.batches_offloaded();
    drop(rx);
    feeder.await.unwrap();
    (got, verdict, offloaded)
}

#[test]
fn pipelined_stream_equals_one_shot_for_every_suite() {
    for (flavour, rt) in runtimes() {
        rt.block_on(async {
            for suite in suites() {
                for (i, len) in [0usize, 1, 40_000, 3 * BATCH + 12_345]
                    .into_iter()
                    .enumerate()
                {
                    let ts = secret(suite, len as u64 + 7);
                    let data = Rng(i as u64).bytes(len);
                    let pipe = if i % 2 == 0 { 4096 } else { 1 << 20 };
                    // Pipelined, except every third case: inline.
                    let pipelined = i % 3 != 2;
                    let (wire, sent_off) = seal(suite, &ts, &data, pipe, i as u64, pipelined).await;
                    assert!(
                        wire == one_shot(suite, &ts, &data),
                        "{flavour} {} len {len}: wire differs from one-shot",
                        suite.urn()
                    );
                    let (got, verdict, recv_off) =
                        open(suite, &ts, wire, pipe, 99 + i as u64).await;
                    assert_eq!(verdict.unwrap(), len as u64, "{flavour} {}", suite.urn());
                    assert!(got == data, "{flavour} {} len {len}", suite.urn());
                    // Large streams really went through the blocking pool
                    // (and an inline one never did).
                    if len > BATCH {
                        assert!(
                            recv_off > 0,
                            "{flavour} len {len}: receiver offloaded nothing"
                        );
                        if pipelined {
                            assert!(
                                sent_off > 0,
                                "{flavour} len {len}: sender offloaded nothing"
                            );
                        }
                    }
                    if !pipelined {
                        assert_eq!(sent_off, 0, "{flavour} len {len}: inline stream offloaded");
                    }
                }
            }
        });
    }
}

#[test]
fn pipelined_stream_refuses_tampered_and_truncated_data() {
    for (flavour, rt) in runtimes() {
        rt.block_on(async {
            for suite in suites() {
                let len = 3 * BATCH + 999;
                let ts = secret(suite, 5);
                let data = Rng(3).bytes(len);
                let wire = one_shot(suite, &ts, &data);

                let mut tampered = wire.clone();
                tampered[len / 2] ^= 0x40;
                let (got, verdict, _) = open(suite, &ts, tampered, 65536, 1).await;
                let e = verdict.unwrap_err();
                assert_eq!(
                    cipher_error_of(&e),
                    Some(&CipherError::Authentication),
                    "{flavour} {}",
                    suite.urn()
                );
                // A chunked suite hands out only the whole chunks before the
                // tampered one; a single-message suite's bytes are all
                // unauthenticated until the error (the caller must not
                // commit them), but never more than were sent.
                if let Framing::Chunked { chunk_len, .. } = suite.framing() {
                    // Every chunk before the tampered one, not one more.
                    let before = len / 2 / (chunk_len + suite.tag_len());
                    assert_eq!(got.len(), before * chunk_len, "{flavour}");
                    assert!(got == data[..got.len()], "{flavour}");
                } else {
                    assert!(got.len() <= len);
                }

                for cut in [1usize, 16, wire.len() / 3] {
                    let short = wire[..wire.len() - cut].to_vec();
                    let short_len = short.len();
                    let (got, verdict, _) = open(suite, &ts, short, 65536, 2).await;
                    let e = verdict.unwrap_err();
                    assert!(
                        cipher_error_of(&e).is_some(),
                        "{flavour} {} cut {cut}: {e}",
                        suite.urn()
                    );
                    if let Framing::Chunked { chunk_len, .. } = suite.framing() {
                        // Every complete chunk that arrived is kept (what a
                        // resume starts from).
                        let whole = short_len / (chunk_len + suite.tag_len());
                        assert_eq!(got.len(), whole * chunk_len, "{flavour} cut {cut}");
                        assert!(got == data[..got.len()], "{flavour} cut {cut}");
                    }
                }
            }
        });
    }
}
