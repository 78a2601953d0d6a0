//! IBB through the MemoryRouter: seq wrap, flow control, hostile input.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::*;
use jet_core::channel::{iq, StanzaChannel};
use jet_core::error::{ChannelError, TransportError};
use jet_core::jid::Jid;
use jet_core::memory::MemoryRouter;
use jet_core::minidom::Element;
use jet_core::ns;
use jet_core::transport::{BoxedStream, TransportAdapter};
use jet_core::xml::{BuilderExt, ElementExt};
use jet_transports::{IbbConfig, IbbTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

fn ibb(block_size: u16) -> IbbTransport {
    IbbTransport::new(IbbConfig {
        block_size,
        iq_timeout: Duration::from_secs(10),
        open_timeout: Duration::from_secs(10),
        read_idle_timeout: Duration::from_secs(20),
        ..IbbConfig::default()
    })
}

/// Establishes IBB Romeo → Juliet; returns both streams and the sid.
async fn open(
    t_romeo: &IbbTransport,
    t_juliet: &IbbTransport,
) -> (Party, Party, BoxedStream, BoxedStream, String) {
    open_on(&MemoryRouter::new(), t_romeo, t_juliet).await
}

async fn open_on(
    router: &MemoryRouter,
    t_romeo: &IbbTransport,
    t_juliet: &IbbTransport,
) -> (Party, Party, BoxedStream, BoxedStream, String) {
    let (romeo, juliet) = parties(router);
    let o = negotiate(
        (t_romeo, &romeo.ctx),
        (t_juliet, &juliet.ctx),
        |_| {},
        |_| {},
    )
    .await;
    let sid = o.offer.attr("sid").unwrap().to_string();
    (
        romeo,
        juliet,
        o.initiator.unwrap(),
        o.responder.unwrap(),
        sid,
    )
}

fn data_iq(to: &str, sid: &str, seq: &str, text: &str) -> Element {
    let to: Jid = to.parse().unwrap();
    let d = Element::builder("data", ns::IBB)
        .a("sid", sid)
        .a("seq", seq)
        .append(text.to_string())
        .build();
    iq("set", "", None, &to, Some(d))
}

fn condition(r: Result<Element, ChannelError>) -> String {
    match r {
        Err(ChannelError::StanzaError { condition, .. }) => condition,
        other => panic!("expected an IQ error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_wraps_after_65535_and_data_is_intact() {
    timeout(Duration::from_secs(120), async {
        let t = ibb(16);
        let router = MemoryRouter::new();
        // Watch the seq numbers on the wire.
        let seqs = Arc::new(Mutex::new(Vec::<u16>::new()));
        let s2 = seqs.clone();
        router.set_tap(Arc::new(move |_, st| {
            if let Some(d) = st.get_child("data", ns::IBB) {
                s2.lock()
                    .unwrap()
                    .push(d.attr("seq").unwrap().parse().unwrap());
            }
        }));
        let (_r, _j, a, b, _) = open_on(&router, &t, &t).await;
        // 70,500 blocks of 16 bytes: seq goes 0..=65535, 0..=4963.
        let payload = data(16 * 70_500, 7);
        transfer(a, b, payload).await;
        let seqs = seqs.lock().unwrap();
        assert_eq!(seqs.len(), 70_500);
        let expected = (0..70_500u32).map(|i| (i % 65_536) as u16);
        assert!(seqs.iter().copied().eq(expected));
        assert_eq!(seqs[65_535], 65_535);
        assert_eq!(seqs[65_536], 0);
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_directions_at_once() {
    timeout(LIMIT, async {
        let t = ibb(1000);
        let (_r, _j, mut a, mut b, _) = open(&t, &t).await;
        let (pa, pb) = (data(150_000, 8), data(120_001, 9));
        let (ea, eb) = (sha1(&pa), sha1(&pb));
        let ta = tokio::spawn(async move {
            a.write_all(&pa).await.unwrap();
            a.flush().await.unwrap();
            let mut got = vec![0u8; 120_001];
            a.read_exact(&mut got).await.unwrap();
            a.shutdown().await.unwrap();
            got
        });
        let mut got = vec![0u8; 150_000];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(sha1(&got), ea);
        b.write_all(&pb).await.unwrap();
        b.flush().await.unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert_eq!(sha1(&ta.await.unwrap()), eb);
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answerer_may_lower_block_size_but_not_raise_it() {
    let router = MemoryRouter::new();
    let (romeo, juliet) = parties(&router);
    let (big, small) = (ibb(4096), ibb(512));
    let off = big.offer(&romeo.ctx).await.unwrap();
    let ans = small
        .answer(&juliet.ctx, &off.local_transport())
        .await
        .unwrap();
    assert_eq!(ans.local_transport().attr("block-size"), Some("512"));

    let mut off = small.offer(&romeo.ctx).await.unwrap();
    let mut answer = big
        .answer(&juliet.ctx, &off.local_transport())
        .await
        .unwrap()
        .local_transport();
    assert_eq!(answer.attr("block-size"), Some("512"));
    answer.set_a("block-size", "8192");
    assert!(matches!(
        off.set_remote(&answer),
        Err(TransportError::Protocol(_))
    ));

    // Message stanzas are not supported; zero or oversize block sizes refused.
    for (attr, value) in [
        ("stanza", "message"),
        ("block-size", "0"),
        ("block-size", "70000"),
    ] {
        let mut offer = big.offer(&romeo.ctx).await.unwrap().local_transport();
        offer.set_a(attr, value);
        assert!(matches!(
            big.answer(&juliet.ctx, &offer).await,
            Err(TransportError::Protocol(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_slows_the_sender() {
    timeout(LIMIT, async {
        let t = IbbTransport::new(IbbConfig {
            block_size: 1024,
            window: 4,
            receive_buffer: 4,
            ..IbbConfig::default()
        });
        let (_r, _j, mut a, mut b, _) = open(&t, &t).await;
        let payload = data(256 * 1024, 10);
        let expect = sha1(&payload);
        let (tx, mut progress) = tokio::sync::watch::channel(0usize);
        let writer = tokio::spawn(async move {
            for chunk in payload.chunks(512) {
                a.write_all(chunk).await.unwrap();
                tx.send_modify(|n| *n += chunk.len());
            }
            a.shutdown().await.unwrap();
        });
        // Nobody reads: the sender must stall after window + buffer blocks
        // (plus the few held by the tasks and the stream). Wait until the
        // progress stops moving for 300 ms.
        let mut stalled_at = 0;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = *progress.borrow_and_update();
            if now == stalled_at && now > 0 {
                break;
            }
            stalled_at = now;
        }
        eprintln!("sender stalled after {stalled_at} bytes");
        assert!(stalled_at > 0);
        assert!(
            stalled_at <= (4 + 4 + 2) * 1024,
            "sender ran ahead: {stalled_at} bytes"
        );
        assert!(stalled_at < 256 * 1024, "the sender never stalled");
        // Reading releases it, and every byte arrives.
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(sha1(&got), expect);
        writer.await.unwrap();
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_base64_is_refused_and_fails_the_reader() {
    timeout(LIMIT, async {
        let t = ibb(4096);
        let (_r, juliet, mut a, _b, sid) = open(&t, &t).await;
        // Juliet's account sends a block that is not base64.
        let r = juliet
            .channel
            .request(data_iq(ROMEO, &sid, "0", "not*base64!"))
            .await;
        assert_eq!(condition(r), "bad-request");
        let mut buf = [0u8; 16];
        let err = a.read(&mut buf).await.unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_gap_closes_the_stream_with_an_error() {
    timeout(LIMIT, async {
        let t = ibb(4096);
        let (_r, juliet, mut a, mut b, sid) = open(&t, &t).await;
        // seq 1 before seq 0.
        let r = juliet
            .channel
            .request(data_iq(ROMEO, &sid, "1", "aGVsbG8="))
            .await;
        assert_eq!(condition(r), "unexpected-request");
        let mut buf = [0u8; 16];
        let err = a.read(&mut buf).await.unwrap_err();
        assert!(err.to_string().contains("out of sequence"), "{err}");
        // Romeo's side sent <close/>: Juliet's reader ends.
        let mut rest = Vec::new();
        assert_eq!(b.read_to_end(&mut rest).await.unwrap(), 0);
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_seq_and_oversized_blocks_are_refused() {
    timeout(LIMIT, async {
        let t = ibb(4);
        let (_r, juliet, mut a, _b, sid) = open(&t, &t).await;
        let ok = juliet
            .channel
            .request(data_iq(ROMEO, &sid, "0", "aGk="))
            .await;
        assert_eq!(ok.unwrap().attr("type"), Some("result"));
        let mut buf = [0u8; 2];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        let r = juliet
            .channel
            .request(data_iq(ROMEO, &sid, "0", "aGk="))
            .await;
        assert_eq!(condition(r), "unexpected-request");
        assert!(a.read(&mut buf).await.is_err());

        let (_r, juliet, mut a, _b, sid) = open(&t, &t).await;
        // 5 bytes in a 4-byte block size.
        let r = juliet
            .channel
            .request(data_iq(ROMEO, &sid, "0", "aGVsbG8="))
            .await;
        assert_eq!(condition(r), "bad-request");
        let err = a.read(&mut buf).await.unwrap_err();
        assert!(err.to_string().contains("block-size"), "{err}");
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_sid_is_refused_and_the_stream_goes_on() {
    timeout(LIMIT, async {
        let t = ibb(4096);
        let (_r, juliet, a, b, _sid) = open(&t, &t).await;
        let r = juliet
            .channel
            .request(data_iq(ROMEO, "not-our-sid", "0", "aGk="))
            .await;
        assert_eq!(condition(r), "service-unavailable");
        transfer(b, a, data(50_000, 11)).await;
    })
    .await
    .expect("test hung");
}

/// A peer that acknowledges slowly but steadily (as behind a server's
/// traffic shaper: ejabberd's stock 3000 B/s) is not a stalled one: each
/// acknowledgement comes well within `iq_timeout`, although the last block
/// of the window is acknowledged long after it was sent. A peer that stops
/// acknowledging fails the writer after `iq_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_peer_is_not_a_stalled_one() {
    timeout(LIMIT, async {
        let t = IbbTransport::new(IbbConfig {
            block_size: 1024,
            window: 8,
            receive_buffer: 1,
            iq_timeout: Duration::from_secs(1),
            ..IbbConfig::default()
        });
        let (_r, _j, mut a, mut b, _) = open(&t, &t).await;
        let payload = data(24 * 1024, 13);
        let expect = sha1(&payload);
        let started = tokio::time::Instant::now();
        let writer = tokio::spawn(async move {
            a.write_all(&payload).await?;
            a.shutdown().await
        });
        // One block every 250 ms: 24 blocks take ~6 s, six times iq_timeout.
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let n = b.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(sha1(&got), expect);
        writer.await.unwrap().expect("the slow transfer failed");
        // Otherwise this test proves nothing.
        assert!(started.elapsed() > Duration::from_secs(3));

        // Now a reader that stops: the writer fails after iq_timeout
        // without an acknowledgement.
        let (_r, _j, mut a, _b, _) = open(&t, &t).await;
        let payload = data(64 * 1024, 14);
        let err = async {
            a.write_all(&payload).await?;
            a.flush().await
        }
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("acknowledged no IBB data for 1 s"),
            "{err}"
        );
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_peer_fails_the_writer_cleanly() {
    timeout(LIMIT, async {
        let t = ibb(1024);
        let (_r, _j, mut a, b, _) = open(&t, &t).await;
        drop(b);
        // Give Juliet's tasks the moment to notice and close.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let payload = data(64 * 1024, 12);
        let r = async {
            a.write_all(&payload).await?;
            a.flush().await
        }
        .await;
        let err = r.unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_before_open_and_oversized_open_are_refused() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, juliet) = parties(&router);
        let t = ibb(4096);
        let off = t.offer(&romeo.ctx).await.unwrap();
        let ans = t.answer(&juliet.ctx, &off.local_transport()).await.unwrap();
        let sid = off.local_transport().attr("sid").unwrap().to_string();
        let (_s1, mut s2) = signal_pair();
        let waiter = tokio::spawn(async move { ans.establish(&mut s2).await.map(|_| ()) });
        let r = romeo
            .channel
            .request(data_iq(JULIET, &sid, "0", "aGk="))
            .await;
        assert_eq!(condition(r), "unexpected-request");
        assert!(matches!(
            waiter.await.unwrap(),
            Err(TransportError::Protocol(_))
        ));

        let ans = t.answer(&juliet.ctx, &off.local_transport()).await.unwrap();
        let (_s1, mut s2) = signal_pair();
        let waiter = tokio::spawn(async move { ans.establish(&mut s2).await.map(|_| ()) });
        let to: Jid = JULIET.parse().unwrap();
        let open = Element::builder("open", ns::IBB)
            .a("sid", sid.as_str())
            .a("block-size", "65535")
            .a("stanza", "iq")
            .build();
        let r = romeo
            .channel
            .request(iq("set", "", None, &to, Some(open)))
            .await;
        assert_eq!(condition(r), "resource-constraint");
        assert!(matches!(
            waiter.await.unwrap(),
            Err(TransportError::Protocol(_))
        ));
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_open_times_out() {
    let router = MemoryRouter::new();
    let (romeo, juliet) = parties(&router);
    let t = IbbTransport::new(IbbConfig {
        open_timeout: Duration::from_millis(200),
        ..IbbConfig::default()
    });
    let off = t.offer(&romeo.ctx).await.unwrap();
    let ans = t.answer(&juliet.ctx, &off.local_transport()).await.unwrap();
    let (_s1, mut s2) = signal_pair();
    let r = timeout(LIMIT, ans.establish(&mut s2)).await.expect("hung");
    assert!(matches!(r, Err(TransportError::Timeout(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_makes_the_read_time_out() {
    let t = IbbTransport::new(IbbConfig {
        read_idle_timeout: Duration::from_millis(300),
        ..IbbConfig::default()
    });
    let (_r, _j, _a, mut b, _) = timeout(LIMIT, open(&t, &t)).await.unwrap();
    let mut buf = [0u8; 8];
    let err = timeout(LIMIT, b.read(&mut buf))
        .await
        .expect("hung")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_open_is_tolerated_before_data_only() {
    timeout(LIMIT, async {
        let t = ibb(4096);
        let (_r, juliet, a, b, sid) = open(&t, &t).await;
        let to: Jid = ROMEO.parse().unwrap();
        let open_el = |bs: &str| {
            Element::builder("open", ns::IBB)
                .a("sid", sid.as_str())
                .a("block-size", bs)
                .a("stanza", "iq")
                .build()
        };
        // Juliet's account opens too: accepted, nothing has flowed yet.
        let r = juliet
            .channel
            .request(iq("set", "", None, &to, Some(open_el("4096"))))
            .await;
        assert_eq!(r.unwrap().attr("type"), Some("result"));
        // Larger blocks are refused.
        let r = juliet
            .channel
            .request(iq("set", "", None, &to, Some(open_el("8192"))))
            .await;
        assert_eq!(condition(r), "unexpected-request");
        transfer(b, a, data(20_000, 16)).await;
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_blocks_is_not_acknowledged_ahead_of_the_reader() {
    // A hostile sender fires 100 data IQs without waiting for answers.
    // The receiver acknowledges a block only once its reader buffer has
    // room (IbbConfig::receive_buffer), so the flood cannot run ahead of
    // the application; everything still arrives intact and in order.
    // (The IQs themselves queue in the XMPP layer: bounding that is the
    // server's job, e.g. its rate limits.)
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let acks = Arc::new(Mutex::new(0usize));
        let a2 = acks.clone();
        router.set_tap(Arc::new(move |from, st| {
            if from.to_string() == ROMEO && st.attr("type") == Some("result") {
                *a2.lock().unwrap() += 1;
            }
        }));
        let t = IbbTransport::new(IbbConfig {
            block_size: 16,
            receive_buffer: 4,
            iq_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(10),
            read_idle_timeout: Duration::from_secs(20),
            ..IbbConfig::default()
        });
        let (_r, juliet, mut a, _b, sid) = open_on(&router, &t, &t).await;
        let before = *acks.lock().unwrap();
        let mut expected = Vec::new();
        for seq in 0..100u16 {
            let block: Vec<u8> = (0..16).map(|i| (seq as u8).wrapping_mul(7) ^ i).collect();
            expected.extend_from_slice(&block);
            let text = base64::engine::general_purpose::STANDARD.encode(&block);
            let mut req = data_iq(ROMEO, &sid, &seq.to_string(), &text);
            req.set_a("id", format!("flood{seq}"));
            juliet.channel.send(req).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let early = *acks.lock().unwrap() - before;
        assert!(
            early <= 4 + 2,
            "{early} blocks acknowledged before the reader read any"
        );
        let mut got = vec![0u8; expected.len()];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(got, expected);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*acks.lock().unwrap() - before, 100);
    })
    .await
    .expect("test hung");
}
