//! S5B over real loopback sockets, transport-info through the harness.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::*;
use jet_core::error::TransportError;
use jet_core::memory::MemoryRouter;
use jet_core::minidom::Element;
use jet_core::ns;
use jet_core::transport::TransportAdapter;
use jet_core::xml::{BuilderExt, ElementExt};
use jet_transports::s5b::is_fallback_error;
use jet_transports::{IbbConfig, IbbTransport, S5bConfig, S5bTransport};
use tokio::time::timeout;

fn s5b() -> S5bTransport {
    S5bTransport::new(S5bConfig {
        direct_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        discover_proxy: false,
        connect_timeout: Duration::from_secs(2),
        negotiation_timeout: Duration::from_secs(10),
        ..S5bConfig::default()
    })
}

fn candidates(t: &Element) -> Vec<&Element> {
    t.children().filter(|c| c.name() == "candidate").collect()
}

fn used_cid(sent: &[Element]) -> Option<String> {
    sent.iter()
        .flat_map(|t| t.children())
        .find(|c| c.name() == "candidate-used")
        .and_then(|c| c.attr("cid").map(str::to_string))
}

fn sent_error(sent: &[Element]) -> bool {
    sent.iter()
        .flat_map(|t| t.children())
        .any(|c| c.name() == "candidate-error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_initiator_sends() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, juliet) = parties(&router);
        let t = s5b();
        let o = negotiate((&t, &romeo.ctx), (&t, &juliet.ctx), |_| {}, |_| {}).await;
        // Both connected; equal priorities: the initiator's nomination wins.
        assert!(used_cid(&o.initiator_sent).is_some());
        assert!(used_cid(&o.responder_sent).is_some());
        transfer(o.initiator.unwrap(), o.responder.unwrap(), data(3 << 20, 1)).await;
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_responder_sends() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, juliet) = parties(&router);
        let t = s5b();
        let o = negotiate((&t, &romeo.ctx), (&t, &juliet.ctx), |_| {}, |_| {}).await;
        transfer(o.responder.unwrap(), o.initiator.unwrap(), data(3 << 20, 2)).await;
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_side_can_connect() {
    // Romeo's candidates are unreachable for Juliet; Juliet's work for
    // Romeo: the stream is Romeo's outgoing connection / Juliet's accepted one.
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, juliet) = parties(&router);
        let t = s5b();
        let dead = dead_port().await;
        let o = negotiate(
            (&t, &romeo.ctx),
            (&t, &juliet.ctx),
            |offer| {
                for c in offer.children_mut() {
                    c.set_a("port", dead.to_string());
                }
            },
            |_| {},
        )
        .await;
        assert!(sent_error(&o.responder_sent));
        assert!(used_cid(&o.initiator_sent).is_some());
        transfer(o.responder.unwrap(), o.initiator.unwrap(), data(100_000, 3)).await;
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_higher_priority_candidates_are_skipped() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, juliet) = parties(&router);
        let t = s5b();
        let dead = dead_port().await;
        // Each side advertises two extra candidates above its live one,
        // pointing at a closed port.
        let add_dead = move |t: &mut Element, who: &str| {
            for (i, pri) in [(0, u32::MAX), (1, (126 << 16) + 65535 + 1)] {
                t.append_child(
                    Element::builder("candidate", ns::JINGLE_S5B)
                        .a("cid", format!("dead{i}"))
                        .a("host", "127.0.0.1")
                        .a("jid", who)
                        .a("port", dead.to_string())
                        .a("priority", pri.to_string())
                        .a("type", "direct")
                        .build(),
                );
            }
        };
        let o = negotiate(
            (&t, &romeo.ctx),
            (&t, &juliet.ctx),
            |e| add_dead(e, ROMEO),
            |e| add_dead(e, JULIET),
        )
        .await;
        assert_eq!(candidates(&o.offer).len(), 3);
        let live_offer = candidates(&o.offer)[0].attr("cid").unwrap().to_string();
        let live_answer = candidates(&o.answer)[0].attr("cid").unwrap().to_string();
        assert_eq!(used_cid(&o.responder_sent), Some(live_offer));
        assert_eq!(used_cid(&o.initiator_sent), Some(live_answer));
        transfer(o.initiator.unwrap(), o.responder.unwrap(), data(200_000, 4)).await;
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_fail_then_ibb_replaces_the_transport() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, juliet) = parties(&router);
        let t = s5b();
        let dead = dead_port().await;
        let kill = move |t: &mut Element| {
            for c in t.children_mut() {
                c.set_a("port", dead.to_string());
            }
        };
        let o = negotiate((&t, &romeo.ctx), (&t, &juliet.ctx), kill, kill).await;
        for r in [&o.initiator, &o.responder] {
            match r {
                Err(e) => {
                    assert!(matches!(e, TransportError::NoCandidate(_)), "{e:?}");
                    assert!(is_fallback_error(e));
                }
                Ok(_) => panic!("a dead candidate connected"),
            }
        }
        assert!(sent_error(&o.initiator_sent) && sent_error(&o.responder_sent));

        // XEP-0260 §2.6: the initiator sends transport-replace with IBB, the
        // responder answers transport-accept.
        let ibb = IbbTransport::new(IbbConfig::default());
        assert_eq!(ibb.namespace(), ns::JINGLE_IBB);
        let o = negotiate((&ibb, &romeo.ctx), (&ibb, &juliet.ctx), |_| {}, |_| {}).await;
        transfer(o.initiator.unwrap(), o.responder.unwrap(), data(300_000, 5)).await;
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_wrong_hash_clients_do_not_disturb_the_negotiation() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, juliet) = parties(&router);
        let t = s5b();
        let off = t.offer(&romeo.ctx).await.unwrap();
        let offer = off.local_transport();
        let port: u16 = candidates(&offer)[0].attr("port").unwrap().parse().unwrap();

        // A client speaking HTTP: the server drops it.
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let n = timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
        assert!(n.is_ok(), "server kept a garbage client open");

        // A SOCKS5 client with the wrong hash (the other JID order).
        let sid = offer.attr("sid").unwrap();
        let wrong = jet_transports::s5b::socks::dst_addr_hash(sid, JULIET, ROMEO);
        let r = jet_transports::s5b::socks::connect("127.0.0.1", port, &wrong).await;
        assert!(matches!(r, Err(TransportError::Protocol(_))), "{r:?}");

        // The real peer still gets through.
        drop(off);
        let o = negotiate((&t, &romeo.ctx), (&t, &juliet.ctx), |_| {}, |_| {}).await;
        transfer(o.initiator.unwrap(), o.responder.unwrap(), data(10_000, 6)).await;
    })
    .await
    .expect("test hung");
}

#[tokio::test]
async fn unspecified_listen_address_is_refused() {
    let router = MemoryRouter::new();
    let (romeo, _juliet) = parties(&router);
    let t = S5bTransport::new(S5bConfig {
        direct_addresses: vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
        discover_proxy: false,
        ..S5bConfig::default()
    });
    assert!(t.offer(&romeo.ctx).await.is_err());
}

#[tokio::test]
async fn default_config_listens_on_loopback_only_and_survives_failed_discovery() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, _juliet) = parties(&router);
        // discover_proxy is on by default; the router has no server
        // component, so discovery fails and only the direct candidate stays.
        let t = S5bTransport::default();
        let off = t.offer(&romeo.ctx).await.unwrap();
        let offer = off.local_transport();
        let cands = candidates(&offer);
        assert_eq!(cands.len(), 1);
        assert_eq!(cands[0].attr("host"), Some("127.0.0.1"));
        assert_eq!(cands[0].attr("type"), Some("direct"));
        assert_eq!(cands[0].attr("jid"), Some(ROMEO));
        assert_eq!(
            cands[0].attr("priority"),
            Some(((126u32 << 16) + 65535).to_string().as_str())
        );
    })
    .await
    .expect("test hung");
}

#[tokio::test]
async fn answer_with_other_sid_is_refused() {
    let router = MemoryRouter::new();
    let (romeo, juliet) = parties(&router);
    let t = s5b();
    let mut off = t.offer(&romeo.ctx).await.unwrap();
    let mut offer = off.local_transport();
    offer.set_a("sid", "other");
    let ans = t.answer(&juliet.ctx, &offer).await.unwrap();
    assert!(matches!(
        off.set_remote(&ans.local_transport()),
        Err(TransportError::Protocol(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assisted_host_name_candidate_connects() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, juliet) = parties(&router);
        let with_name = S5bTransport::new(S5bConfig {
            direct_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            assisted_hosts: vec!["localhost".into()],
            discover_proxy: false,
            connect_timeout: Duration::from_secs(2),
            ..S5bConfig::default()
        });
        let dead = dead_port().await;
        let o = negotiate(
            (&with_name, &romeo.ctx),
            (&s5b(), &juliet.ctx),
            |offer| {
                // Only the host-name candidate is left for Juliet.
                let assisted: Vec<Element> = offer
                    .children()
                    .filter(|c| c.attr("type") == Some("assisted"))
                    .cloned()
                    .collect();
                assert_eq!(assisted.len(), 1);
                assert_eq!(assisted[0].attr("host"), Some("localhost"));
                let mut t = Element::builder("transport", ns::JINGLE_S5B)
                    .a("sid", offer.attr("sid").unwrap())
                    .build();
                for c in assisted {
                    t.append_child(c);
                }
                *offer = t;
            },
            |answer| {
                for c in answer.children_mut() {
                    c.set_a("port", dead.to_string());
                }
            },
        )
        .await;
        let cid = candidates(&o.offer)[0].attr("cid").unwrap().to_string();
        assert_eq!(used_cid(&o.responder_sent), Some(cid));
        transfer(o.initiator.unwrap(), o.responder.unwrap(), data(50_000, 13)).await;
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_over_ipv6_loopback() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, juliet) = parties(&router);
        let t = S5bTransport::new(S5bConfig {
            direct_addresses: vec![IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)],
            discover_proxy: false,
            connect_timeout: Duration::from_secs(2),
            ..S5bConfig::default()
        });
        let o = negotiate((&t, &romeo.ctx), (&t, &juliet.ctx), |_| {}, |_| {}).await;
        assert_eq!(candidates(&o.offer)[0].attr("host"), Some("::1"));
        transfer(
            o.initiator.unwrap(),
            o.responder.unwrap(),
            data(100_000, 14),
        )
        .await;
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_nomination_beats_the_initiators() {
    // Juliet's first candidate is unreachable, so Romeo nominates her second
    // one (local preference 65534) while Juliet nominates Romeo's first
    // (65535): Juliet's nomination wins although Romeo is the initiator.
    // Data only flows if both sides pick the same connection.
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let (romeo, juliet) = parties(&router);
        let two = S5bTransport::new(S5bConfig {
            direct_addresses: vec![
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            ],
            discover_proxy: false,
            connect_timeout: Duration::from_secs(2),
            ..S5bConfig::default()
        });
        let dead = dead_port().await;
        let o = negotiate(
            (&s5b(), &romeo.ctx),
            (&two, &juliet.ctx),
            |_| {},
            |answer| {
                let first = answer.children_mut().next().unwrap();
                first.set_a("port", dead.to_string());
            },
        )
        .await;
        let second = candidates(&o.answer)[1];
        assert_eq!(
            second.attr("priority"),
            Some(((126u32 << 16) + 65534).to_string().as_str())
        );
        assert_eq!(used_cid(&o.initiator_sent).as_deref(), second.attr("cid"));
        assert_eq!(
            used_cid(&o.responder_sent).as_deref(),
            candidates(&o.offer)[0].attr("cid")
        );
        let (a, b) = (o.initiator.unwrap(), o.responder.unwrap());
        transfer(a, b, data(100_000, 15)).await;
    })
    .await
    .expect("test hung");
}
