//! S5B through a XEP-0065 proxy: a fake server (disco) and a fake proxy (a
//! tiny SOCKS5 relay on 127.0.0.1 answering the bytestreams query and
//! `<activate/>`) on the MemoryRouter.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use jet_core::channel::{iq_error, iq_result, StanzaChannel};
use jet_core::error::TransportError;
use jet_core::memory::MemoryRouter;
use jet_core::minidom::Element;
use jet_core::ns;
use jet_core::transport::TransportAdapter;
use jet_core::xml::{BuilderExt, ElementExt};
use jet_transports::s5b::socks::dst_addr_hash;
use jet_transports::{ProxyConfig, S5bConfig, S5bTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const PROXY: &str = "proxy.montague.lit";

type Waiting = Arc<Mutex<HashMap<String, Vec<TcpStream>>>>;

/// Reads a SOCKS5 CONNECT with a domain address, answers success, and
/// parks the connection under its hash.
async fn relay_accept(mut s: TcpStream, waiting: Waiting) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    let mut methods = vec![0u8; head[1] as usize];
    s.read_exact(&mut methods).await?;
    s.write_all(&[5, 0]).await?;
    let mut req = [0u8; 5];
    s.read_exact(&mut req).await?;
    if req[..4] != [5, 1, 0, 3] {
        return Err(std::io::Error::other("not a CONNECT to a domain"));
    }
    let mut host = vec![0u8; req[4] as usize + 2];
    s.read_exact(&mut host).await?;
    let mut reply = vec![5, 0, 0, 3, req[4]];
    reply.extend_from_slice(&host);
    s.write_all(&reply).await?;
    host.truncate(req[4] as usize);
    let hash = String::from_utf8_lossy(&host).to_string();
    waiting.lock().unwrap().entry(hash).or_default().push(s);
    Ok(())
}

struct FakeServer {
    port: u16,
    activations: Arc<Mutex<Vec<Element>>>,
    disco_items_asked: Arc<Mutex<usize>>,
}

/// Makes the router deliver stanzas for the bare domains to
/// `<domain>/fake`, and answers as the server (`montague.lit`, disco) and
/// the proxy (`proxy.montague.lit`).
async fn fake_server(router: &MemoryRouter, refuse_activation: bool) -> FakeServer {
    router.set_interceptor(Arc::new(|_, st| {
        if let Some(to) = st.attr("to") {
            if !to.contains('@') && !to.contains('/') {
                let to = format!("{to}/fake");
                st.set_a("to", to);
            }
        }
        true
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let waiting: Waiting = Arc::default();
    let w = waiting.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let w = w.clone();
            tokio::spawn(async move {
                let _ = timeout(Duration::from_secs(5), relay_accept(s, w)).await;
            });
        }
    });
    let activations: Arc<Mutex<Vec<Element>>> = Arc::default();
    let disco_items_asked: Arc<Mutex<usize>> = Arc::default();
    for domain in ["montague.lit", "conference.montague.lit", PROXY] {
        let ch = router.connect(jid(&format!("{domain}/fake")));
        let mut reqs = ch.subscribe(Arc::new(|_| true));
        let (waiting, activations) = (waiting.clone(), activations.clone());
        let asked = disco_items_asked.clone();
        tokio::spawn(async move {
            while let Some(req) = reqs.recv().await {
                let q = req.children().next().cloned().unwrap();
                let answer = match (domain, q.ns().as_str()) {
                    ("montague.lit", ns::DISCO_ITEMS) => {
                        *asked.lock().unwrap() += 1;
                        let items = Element::builder("query", ns::DISCO_ITEMS)
                            .append(
                                Element::builder("item", ns::DISCO_ITEMS)
                                    .a("jid", "conference.montague.lit")
                                    .build(),
                            )
                            .append(
                                Element::builder("item", ns::DISCO_ITEMS)
                                    .a("jid", PROXY)
                                    .build(),
                            )
                            .build();
                        iq_result(&req, Some(items))
                    }
                    (d, ns::DISCO_INFO) => {
                        let (cat, typ) = if d == PROXY {
                            ("proxy", "bytestreams")
                        } else {
                            ("conference", "text")
                        };
                        let info = Element::builder("query", ns::DISCO_INFO)
                            .append(
                                Element::builder("identity", ns::DISCO_INFO)
                                    .a("category", cat)
                                    .a("type", typ)
                                    .build(),
                            )
                            .build();
                        iq_result(&req, Some(info))
                    }
                    (PROXY, ns::BYTESTREAMS) if req.attr("type") == Some("get") => {
                        let sh = Element::builder("query", ns::BYTESTREAMS)
                            .append(
                                Element::builder("streamhost", ns::BYTESTREAMS)
                                    .a("jid", PROXY)
                                    .a("host", "127.0.0.1")
                                    .a("port", port.to_string())
                                    .build(),
                            )
                            .build();
                        iq_result(&req, Some(sh))
                    }
                    (PROXY, ns::BYTESTREAMS) => {
                        activations.lock().unwrap().push(req.clone());
                        // XEP-0065 §6.3: the proxy joins the two connections
                        // made with SHA-1(sid + requester + target).
                        let sid = q.attr("sid").unwrap_or("");
                        let target = q
                            .get_child("activate", ns::BYTESTREAMS)
                            .map(|a| a.text())
                            .unwrap_or_default();
                        let hash = dst_addr_hash(sid, req.attr("from").unwrap(), &target);
                        let pair = waiting.lock().unwrap().remove(&hash);
                        match pair {
                            Some(mut v) if v.len() == 2 && !refuse_activation => {
                                let (mut a, mut b) = (v.pop().unwrap(), v.pop().unwrap());
                                tokio::spawn(async move {
                                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                                });
                                iq_result(&req, None)
                            }
                            _ => iq_error(&req, "cancel", "item-not-found", None),
                        }
                    }
                    _ => iq_error(&req, "cancel", "service-unavailable", None),
                };
                let _ = ch.send(answer).await;
            }
        });
    }
    FakeServer {
        port,
        activations,
        disco_items_asked,
    }
}

fn config(discover: bool, proxies: Vec<ProxyConfig>) -> S5bTransport {
    S5bTransport::new(S5bConfig {
        direct_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        proxies,
        discover_proxy: discover,
        connect_timeout: Duration::from_secs(2),
        negotiation_timeout: Duration::from_secs(10),
        iq_timeout: Duration::from_secs(5),
        ..S5bConfig::default()
    })
}

fn keep_only_proxies(t: &mut Element) {
    let proxies: Vec<Element> = t
        .children()
        .filter(|c| c.attr("type") == Some("proxy"))
        .cloned()
        .collect();
    *t = Element::builder("transport", ns::JINGLE_S5B)
        .a("sid", t.attr("sid").unwrap())
        .a("mode", "tcp")
        .append_all(proxies)
        .build();
}

fn kill_all(port: u16) -> impl Fn(&mut Element) {
    move |t: &mut Element| {
        for c in t.children_mut() {
            c.set_a("port", port.to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_proxy_is_offered_activated_and_carries_data() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let fake = fake_server(&router, false).await;
        let (romeo, juliet) = parties(&router);
        let dead = dead_port().await;
        let discovering = config(true, vec![]);
        let o = negotiate(
            (&discovering, &romeo.ctx),
            (&config(false, vec![]), &juliet.ctx),
            keep_only_proxies,
            kill_all(dead),
        )
        .await;
        // A second session reuses what the first discovery found.
        let again = discovering
            .offer(&romeo.ctx)
            .await
            .unwrap()
            .local_transport();
        assert!(again.children().any(|c| c.attr("jid") == Some(PROXY)));
        assert_eq!(*fake.disco_items_asked.lock().unwrap(), 1);
        // Discovery found the proxy, not the conference service.
        let cands: Vec<&Element> = o.offer.children().collect();
        assert_eq!(cands.len(), 1);
        assert_eq!(cands[0].attr("type"), Some("proxy"));
        assert_eq!(cands[0].attr("jid"), Some(PROXY));
        assert_eq!(cands[0].attr("host"), Some("127.0.0.1"));
        assert_eq!(cands[0].attr("port"), Some(fake.port.to_string().as_str()));
        assert_eq!(
            cands[0].attr("priority"),
            Some(((10u32 << 16) + 65535).to_string().as_str())
        );
        // Romeo activated with the transport sid and Juliet's full JID, and
        // told Juliet.
        let acts = fake.activations.lock().unwrap().clone();
        assert_eq!(acts.len(), 1);
        let q = acts[0].get_child("query", ns::BYTESTREAMS).unwrap();
        assert_eq!(q.attr("sid"), o.offer.attr("sid"));
        assert_eq!(
            q.get_child("activate", ns::BYTESTREAMS).unwrap().text(),
            JULIET
        );
        assert_eq!(acts[0].attr("from"), Some(ROMEO));
        assert!(o
            .initiator_sent
            .iter()
            .flat_map(|t| t.children())
            .any(|c| c.name() == "activated" && c.attr("cid") == cands[0].attr("cid")));
        let (a, b) = (o.initiator.unwrap(), o.responder.unwrap());
        transfer(a, b, data(500_000, 20)).await;
    })
    .await
    .expect("test hung");
}

/// `offer_direct: false` on both sides (`jet --no-direct`): no listener and
/// no direct candidate in either transport, untampered, so the proxy is
/// nominated, activated and carries the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_direct_candidates_only_the_proxy_is_offered_and_used() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let fake = fake_server(&router, false).await;
        let (romeo, juliet) = parties(&router);
        let no_direct = |discover| {
            S5bTransport::new(S5bConfig {
                offer_direct: false,
                assisted_hosts: vec!["jet.example".into()],
                discover_proxy: discover,
                connect_timeout: Duration::from_secs(2),
                negotiation_timeout: Duration::from_secs(10),
                iq_timeout: Duration::from_secs(5),
                ..S5bConfig::default()
            })
        };
        let o = negotiate(
            (&no_direct(true), &romeo.ctx),
            (&no_direct(true), &juliet.ctx),
            |_| {},
            |_| {},
        )
        .await;
        // The fake server has a proxy for Romeo's domain only: Juliet's
        // answer has no candidate at all, and certainly no direct one.
        let types = |t: &Element| -> Vec<Option<String>> {
            t.children()
                .map(|c| c.attr("type").map(String::from))
                .collect()
        };
        assert_eq!(types(&o.offer), vec![Some("proxy".to_string())]);
        assert_eq!(types(&o.answer), Vec::<Option<String>>::new());
        assert_eq!(fake.activations.lock().unwrap().len(), 1);
        let (a, b) = (o.initiator.unwrap(), o.responder.unwrap());
        transfer(a, b, data(300_000, 22)).await;
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responder_offered_proxy_is_activated_by_the_responder() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let _fake = fake_server(&router, false).await;
        let (romeo, juliet) = parties(&router);
        let dead = dead_port().await;
        let proxy = ProxyConfig {
            jid: PROXY.parse().unwrap(),
            address: None,
        };
        let o = negotiate(
            (&config(false, vec![]), &romeo.ctx),
            (&config(false, vec![proxy]), &juliet.ctx),
            kill_all(dead),
            keep_only_proxies,
        )
        .await;
        assert!(o
            .responder_sent
            .iter()
            .flat_map(|t| t.children())
            .any(|c| c.name() == "activated"));
        transfer(
            o.responder.unwrap(),
            o.initiator.unwrap(),
            data(200_000, 21),
        )
        .await;
    })
    .await
    .expect("test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_activation_is_a_proxy_error_on_both_sides() {
    timeout(LIMIT, async {
        let router = MemoryRouter::new();
        let _fake = fake_server(&router, true).await;
        let (romeo, juliet) = parties(&router);
        let dead = dead_port().await;
        let o = negotiate(
            (&config(true, vec![]), &romeo.ctx),
            (&config(false, vec![]), &juliet.ctx),
            keep_only_proxies,
            kill_all(dead),
        )
        .await;
        assert!(o
            .initiator_sent
            .iter()
            .flat_map(|t| t.children())
            .any(|c| c.name() == "proxy-error"));
        for r in [o.initiator, o.responder] {
            assert!(matches!(r, Err(TransportError::NoCandidate(_))));
        }
    })
    .await
    .expect("test hung");
}
