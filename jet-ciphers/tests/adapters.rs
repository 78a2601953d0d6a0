//! The stream layer (jet-core's `JetStream`, re-exported) and its copy
//! helpers over `tokio::io::duplex` pipes with small buffers:
//! round trips for every suite, failures surface as `io::Error`s carrying the
//! `CipherError`, and `Ok(0)` only after authentication.

mod common;

use common::{one_shot, secret, suites, Rng};
use jet_ciphers::cipher_error_of as cipher_error;
use jet_ciphers::{decrypt_stream, encrypt_stream, Direction, Error, JetStream};
use jet_core::error::CipherError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn writer_and_reader_round_trip_over_a_small_duplex() {
    rt().block_on(async {
        for suite in suites() {
            for len in [0usize, 1, 16, 65537, 300_001] {
                let ts = secret(suite, len as u64);
                let data = Rng(len as u64).bytes(len);
                // A 1 KiB pipe: the writer must cope with short writes.
                let (a, b) = tokio::io::duplex(1024);
                let send = {
                    let data = data.clone();
                    let ts = ts.clone();
                    tokio::spawn(async move {
                        let mut w = JetStream::new(a, suite, &ts, Direction::Send).unwrap();
                        for piece in data.chunks(3001) {
                            w.write_all(piece).await.unwrap();
                        }
                        w.shutdown().await.unwrap();
                    })
                };
                let mut r = JetStream::new(b, suite, &ts, Direction::Receive).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 777];
                loop {
                    let n = r.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(r.is_authenticated());
                assert_eq!(r.authenticated_len(), len as u64);
                send.await.unwrap();
                assert!(got == data, "{} len {len}", suite.urn());
            }
        }
    });
}

#[test]
fn writer_output_equals_one_shot() {
    rt().block_on(async {
        for suite in suites() {
            let ts = secret(suite, 5);
            let data = Rng(5).bytes(200_000);
            let mut w = JetStream::new(Vec::new(), suite, &ts, Direction::Send).unwrap();
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
            assert!(
                w.into_inner() == one_shot(suite, &ts, &data),
                "{}",
                suite.urn()
            );
        }
    });
}

#[test]
fn reader_fails_on_tampering_and_truncation_and_stays_failed() {
    rt().block_on(async {
        for suite in suites() {
            let ts = secret(suite, 6);
            let data = Rng(6).bytes(100_000);
            let ct = one_shot(suite, &ts, &data);
            let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
            let mut flipped = ct.clone();
            flipped[ct.len() - 3] ^= 1;
            cases.push((flipped, "tag bit"));
            cases.push((ct[..ct.len() - 1].to_vec(), "truncated"));
            let mut longer = ct.clone();
            longer.push(9);
            cases.push((longer, "appended"));
            cases.push((ct[..10].to_vec(), "short"));
            for (bad, what) in cases {
                let (mut a, b) = tokio::io::duplex(4096);
                let writer = tokio::spawn(async move {
                    // The reader may stop early; a broken pipe is fine here.
                    let _ = a.write_all(&bad).await;
                    let _ = a.shutdown().await;
                });
                let mut r = JetStream::new(b, suite, &ts, Direction::Receive).unwrap();
                let mut sink = Vec::new();
                let err = r.read_to_end(&mut sink).await.unwrap_err();
                let c = cipher_error(&err).cloned();
                assert!(
                    matches!(
                        c,
                        Some(CipherError::Authentication | CipherError::Truncated)
                    ),
                    "{} {what}: {err}",
                    suite.urn()
                );
                assert!(!r.is_authenticated());
                // Later reads keep failing; no plaintext, no Ok(0).
                let again = r.read(&mut [0u8; 10]).await.unwrap_err();
                assert_eq!(cipher_error(&again).cloned(), c);
                writer.await.unwrap();
            }
        }
    });
}

#[test]
fn stream_helpers_round_trip_and_report_cipher_errors() {
    rt().block_on(async {
        for suite in suites() {
            let ts = secret(suite, 8);
            let data = Rng(8).bytes(1_000_003);
            let mut ct = Vec::new();
            let n = encrypt_stream(suite, &ts, &data[..], &mut ct)
                .await
                .unwrap();
            assert_eq!(n, data.len() as u64);
            assert!(ct == one_shot(suite, &ts, &data));

            let (a, b) = tokio::io::duplex(512);
            let ct2 = ct.clone();
            let feeder = tokio::spawn(async move {
                let mut a = a;
                a.write_all(&ct2).await.unwrap();
                a.shutdown().await.unwrap();
            });
            let mut plain = Vec::new();
            let n = decrypt_stream(suite, &ts, b, &mut plain).await.unwrap();
            feeder.await.unwrap();
            assert_eq!(n, data.len() as u64);
            assert!(plain == data);

            let mut bad = ct.clone();
            bad[500_000] ^= 0x10;
            let err: Error = decrypt_stream(suite, &ts, &bad[..], &mut Vec::new())
                .await
                .unwrap_err()
                .into();
            assert!(
                matches!(err, Error::Cipher(CipherError::Authentication)),
                "{}: {err}",
                suite.urn()
            );
            assert_eq!(
                jet_core::JingleReason::jingle_reason(&err),
                jet_core::error::Reason::SecurityError
            );

            // A receiving JetStream inside encrypt_stream: its CipherError is
            // unwrapped from the io::Error, not reported as I/O.
            let reader = JetStream::new(&bad[..], suite, &ts, Direction::Receive).unwrap();
            let err: Error = encrypt_stream(suite, &ts, reader, &mut Vec::new())
                .await
                .unwrap_err()
                .into();
            assert!(
                matches!(err, Error::Cipher(CipherError::Authentication)),
                "{err}"
            );
        }
    });
}

#[test]
fn dropped_writer_without_shutdown_leaves_an_unauthenticatable_stream() {
    rt().block_on(async {
        for suite in suites() {
            let ts = secret(suite, 10);
            let mut w = JetStream::new(Vec::new(), suite, &ts, Direction::Send).unwrap();
            w.write_all(&[1u8; 70_000]).await.unwrap();
            w.flush().await.unwrap();
            let wire = w.into_inner();
            let mut r = JetStream::new(&wire[..], suite, &ts, Direction::Receive).unwrap();
            assert!(
                r.read_to_end(&mut Vec::new()).await.is_err(),
                "{}",
                suite.urn()
            );
        }
    });
}
