//! The tokio-xmpp stanza channel against a real Prosody on 127.0.0.1, or
//! the same tests against Debian's ejabberd (`scripts/test-ejabberd start`,
//! then `JET_TEST_SERVER_DIR=target/test-ejabberd`).
//!
//! Start the server with `scripts/test-server start` (it writes
//! `target/test-server/env`; `JET_TEST_SERVER_DIR` moves it, and the
//! variables themselves override the file). Without a server these tests
//! skip with a message, unless `JET_REQUIRE_SERVER=1` (CI), where they fail.
//! Every test is bounded by a timeout.
#![cfg(feature = "tokio-xmpp")]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jet_core::channel::{iq, iq_error, iq_result, is_request_for, StanzaChannel};
use jet_core::error::ChannelError;
use jet_core::jid::{BareJid, Jid};
use jet_core::minidom::Element;
use jet_core::ns;
use jet_core::xmpp::{TlsTrust, XmppChannel, XmppConfig, XmppError};

const TEST_BOUND: Duration = Duration::from_secs(40);
const ECHO_NS: &str = "urn:jet:test:echo";

#[allow(dead_code)]
#[path = "../../test-support/prosody_env.rs"]
mod prosody_env;

/// The loopback Prosody (`test-support/prosody_env.rs`).
type Server = prosody_env::ProsodyEnv;

fn server() -> Option<Server> {
    prosody_env::load()
}

impl Server {
    fn bare(&self, user: &str) -> BareJid {
        format!("{user}@{}", self.domain).parse().unwrap()
    }

    fn config(&self, user: &str) -> XmppConfig {
        XmppConfig::new(self.bare(user), self.password.as_str())
            .server(self.addr.as_str())
            .trust_ca_file(&self.ca)
            .connect_timeout(Duration::from_secs(10))
    }

    async fn connect(&self, user: &str) -> XmppChannel {
        XmppChannel::connect(self.config(user))
            .await
            .unwrap_or_else(|e| panic!("{user} cannot connect to {}: {e}", self.addr))
    }
}

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("the test did not finish in time")
}

fn echo(text: &str) -> Element {
    Element::builder("echo", ECHO_NS).append(text).build()
}

#[tokio::test]
async fn connects_with_the_ca_file_and_disconnects_cleanly() {
    let Some(srv) = server() else { return };
    bounded(async {
        let ch = srv.connect("user1").await;
        assert_eq!(ch.local_jid().to_bare(), srv.bare("user1"));
        assert!(ch.is_connected());
        // A request to our own server: XEP-0199 ping.
        let ping = Element::builder("ping", "urn:xmpp:ping").build();
        let to: Jid = srv.domain.parse().unwrap();
        let answer = ch
            .request(iq("get", "", None, &to, Some(ping)))
            .await
            .unwrap();
        assert_eq!(answer.attr("type"), Some("result"));

        ch.disconnect().await.unwrap();
        assert!(!ch.is_connected());
        let ping = Element::builder("ping", "urn:xmpp:ping").build();
        let err = ch
            .request(iq("get", "", None, &to, Some(ping)))
            .await
            .unwrap_err();
        assert!(matches!(err, ChannelError::Closed), "{err:?}");
        // Harmless twice.
        ch.disconnect().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn iq_round_trip_romeo_to_juliet() {
    let Some(srv) = server() else { return };
    bounded(async {
        let romeo = srv.connect("romeo").await;
        let juliet = Arc::new(srv.connect("juliet").await);
        let mut requests = juliet.subscribe(Arc::new(|iq| is_request_for(iq, "echo", ECHO_NS)));
        let answering = juliet.clone();
        let server_task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(req) = requests.recv().await {
                let text = req.children().next().unwrap().text();
                seen.push(req.attr("from").unwrap_or_default().to_string());
                let answer = if text == "refuse" {
                    iq_error(&req, "cancel", "not-acceptable", None)
                } else {
                    iq_result(&req, Some(echo(&text.to_uppercase())))
                };
                answering.send(answer).await.unwrap();
                if seen.len() == 2 {
                    break;
                }
            }
            seen
        });

        let to: Jid = juliet.local_jid().into();
        let answer = romeo
            .request(iq("set", "", None, &to, Some(echo("wherefore"))))
            .await
            .unwrap();
        assert_eq!(answer.attr("type"), Some("result"));
        assert_eq!(
            answer.get_child("echo", ECHO_NS).unwrap().text(),
            "WHEREFORE"
        );
        assert_eq!(answer.attr("from"), Some(to.to_string().as_str()));

        let err = romeo
            .request(iq("set", "", None, &to, Some(echo("refuse"))))
            .await
            .unwrap_err();
        match err {
            ChannelError::StanzaError { condition, .. } => assert_eq!(condition, "not-acceptable"),
            other => panic!("expected a stanza error, got {other:?}"),
        }

        // The server saw romeo's full JID as the sender (stamped by Prosody).
        let seen = server_task.await.unwrap();
        assert_eq!(seen, vec![romeo.local_jid().to_string(); 2]);

        // Nobody subscribed to this: the channel answers service-unavailable.
        let other = Element::builder("query", "urn:jet:test:nobody").build();
        let err = romeo
            .request(iq("get", "", None, &to, Some(other)))
            .await
            .unwrap_err();
        match err {
            ChannelError::StanzaError { condition, .. } => {
                assert_eq!(condition, "service-unavailable")
            }
            other => panic!("expected service-unavailable, got {other:?}"),
        }
        romeo.disconnect().await.unwrap();
        juliet.disconnect().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn disco_info_is_answered_with_the_given_features() {
    let Some(srv) = server() else { return };
    bounded(async {
        let features = [ns::JET, ns::JINGLE, ns::JINGLE_S5B, ns::CIPHER_AES_256_GCM];
        let asked = XmppChannel::connect(srv.config("user2").features(features))
            .await
            .unwrap();
        let asking = srv.connect("user3").await;
        let to: Jid = asked.local_jid().into();

        let query = Element::builder("query", ns::DISCO_INFO).build();
        let answer = asking
            .request(iq("get", "", None, &to, Some(query)))
            .await
            .unwrap();
        let q = answer.get_child("query", ns::DISCO_INFO).unwrap();
        let vars: Vec<&str> = q
            .children()
            .filter(|c| c.name() == "feature")
            .filter_map(|c| c.attr("var"))
            .collect();
        for f in features {
            assert!(vars.contains(&f), "{f} missing from {vars:?}");
        }
        assert!(vars.contains(&ns::DISCO_INFO));
        let identity = q.get_child("identity", ns::DISCO_INFO).unwrap();
        assert_eq!(identity.attr("category"), Some("client"));

        // The same for the caps node, and the caps hash matches what we got.
        let info = jet_core::xmpp::DiscoInfo::new(
            asked.disco_info().identities.clone(),
            vars.iter().map(|v| v.to_string()),
        );
        assert_eq!(info.caps_ver(), asked.caps_ver());
        let node = format!("https://crates.io/crates/jet-core#{}", asked.caps_ver());
        let mut query = Element::builder("query", ns::DISCO_INFO).build();
        jet_core::xml::ElementExt::set_a(&mut query, "node", node.as_str());
        let answer = asking
            .request(iq("get", "", None, &to, Some(query)))
            .await
            .unwrap();
        let q = answer.get_child("query", ns::DISCO_INFO).unwrap();
        assert_eq!(q.attr("node"), Some(node.as_str()));
        assert!(q.children().any(|c| c.attr("var") == Some(ns::JET)));

        asked.disconnect().await.unwrap();
        asking.disconnect().await.unwrap();
    })
    .await;
}

/// Waits until `bare` shows `full` (other sessions of the same account may
/// be online from parallel tests).
async fn wait_for_resource(ch: &XmppChannel, bare: &BareJid, full: &jet_core::jid::FullJid) {
    for _ in 0..200 {
        if ch.available_resources(bare).contains(full) {
            return;
        }
        let _ = ch.wait_for_presence(bare, Duration::from_millis(50)).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{} never saw the presence of {full} (has {:?})",
        ch.local_jid(),
        ch.available_resources(bare)
    );
}

#[tokio::test]
async fn bare_jid_resolves_to_full_jid_through_presence() {
    let Some(srv) = server() else { return };
    bounded(async {
        let (romeo_bare, juliet_bare) = (srv.bare("romeo"), srv.bare("juliet"));
        let romeo = XmppChannel::connect(
            srv.config("romeo")
                .resource("presence-test")
                .auto_accept([juliet_bare.clone()]),
        )
        .await
        .unwrap();
        let juliet = XmppChannel::connect(
            srv.config("juliet")
                .resource("presence-test")
                .features([ns::JET])
                .auto_accept([romeo_bare.clone()]),
        )
        .await
        .unwrap();
        // romeo asks; juliet's channel approves and asks back; romeo's approves.
        romeo
            .subscribe_to_presence(juliet_bare.clone())
            .await
            .unwrap();

        wait_for_resource(&romeo, &juliet_bare, &juliet.local_jid()).await;
        wait_for_resource(&juliet, &romeo_bare, &romeo.local_jid()).await;
        let found = romeo
            .wait_for_presence(&juliet_bare, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(found.to_bare(), juliet_bare);
        // Caps came with the presence.
        let caps = romeo
            .peer_caps(&juliet.local_jid())
            .expect("caps in presence");
        assert_eq!(caps.ver, juliet.caps_ver());

        // Going offline removes the resource.
        let gone = juliet.local_jid();
        juliet.disconnect().await.unwrap();
        for _ in 0..200 {
            if !romeo.available_resources(&juliet_bare).contains(&gone) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(!romeo.available_resources(&juliet_bare).contains(&gone));
        romeo.disconnect().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn waiting_for_an_absent_peer_times_out() {
    let Some(srv) = server() else { return };
    bounded(async {
        let ch = srv.connect("user4").await;
        let err = ch
            .wait_for_presence(&srv.bare("nobody"), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, ChannelError::Timeout(_)), "{err:?}");
        ch.disconnect().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error() {
    let Some(srv) = server() else { return };
    bounded(async {
        let config = XmppConfig::new(srv.bare("user6"), "not-the-password")
            .server(srv.addr.as_str())
            .trust_ca_file(&srv.ca)
            .connect_timeout(Duration::from_secs(10));
        let err = XmppChannel::connect(config)
            .await
            .err()
            .expect("login must fail");
        match &err {
            XmppError::Authentication { jid, condition, .. } => {
                assert_eq!(jid, "user6@jet.test");
                assert_eq!(condition, "not-authorized");
            }
            other => panic!("expected an authentication error, got {other:?}"),
        }
        assert!(err.to_string().contains("wrong password"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    // Needs no server: a port we just closed on 127.0.0.1.
    bounded(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let config = XmppConfig::new("romeo@jet.test".parse().unwrap(), "pw")
            .server(addr.to_string())
            .trust(TlsTrust::System)
            .connect_timeout(Duration::from_secs(5));
        let err = XmppChannel::connect(config).await.err().expect("must fail");
        match err {
            XmppError::Unreachable { server, source } => {
                assert_eq!(server, addr.to_string());
                assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn server_certificate_without_its_ca_is_untrusted() {
    let Some(srv) = server() else { return };
    bounded(async {
        let config = XmppConfig::new(srv.bare("user1"), srv.password.as_str())
            .server(srv.addr.as_str())
            .trust(TlsTrust::System)
            .connect_timeout(Duration::from_secs(10));
        let err = XmppChannel::connect(config).await.err().expect("must fail");
        match &err {
            XmppError::UntrustedCertificate { server, reason } => {
                assert_eq!(server, "jet.test");
                assert!(reason.contains("UnknownIssuer"), "{reason}");
            }
            other => panic!("expected UntrustedCertificate, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn plain_tcp_is_refused_for_non_loopback_addresses() {
    // 192.0.2.1 is TEST-NET-1: refused before any packet is sent.
    bounded(async {
        let config = XmppConfig::new("romeo@jet.test".parse().unwrap(), "pw")
            .server("192.0.2.1:5222")
            .insecure_plain_tcp_loopback_only()
            .connect_timeout(Duration::from_secs(5));
        let started = std::time::Instant::now();
        let err = XmppChannel::connect(config)
            .await
            .err()
            .expect("must be refused");
        assert!(
            matches!(err, XmppError::InsecureNotLoopback { .. }),
            "expected InsecureNotLoopback, got {err:?}"
        );
        // Refused, not timed out: a connection attempt to TEST-NET would hang.
        assert!(started.elapsed() < Duration::from_secs(5));
    })
    .await;
}

#[tokio::test]
async fn plain_tcp_to_loopback_is_attempted() {
    let Some(srv) = server() else { return };
    bounded(async {
        // The test server requires TLS, so the login fails, but past the
        // loopback guard and without offering credentials in the clear.
        let config = XmppConfig::new(srv.bare("user7"), srv.password.as_str())
            .server(srv.addr.as_str())
            .insecure_plain_tcp_loopback_only()
            .connect_timeout(Duration::from_secs(10));
        let err = XmppChannel::connect(config)
            .await
            .err()
            .expect("Prosody requires TLS");
        assert!(
            !matches!(err, XmppError::InsecureNotLoopback { .. }),
            "loopback must pass the guard: {err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn unreadable_ca_file_is_reported() {
    bounded(async {
        let config = XmppConfig::new("romeo@jet.test".parse().unwrap(), "pw")
            .server("127.0.0.1:1")
            .trust_ca_file("/nonexistent/jet-ca.pem");
        let err = XmppChannel::connect(config).await.err().expect("must fail");
        assert!(matches!(err, XmppError::CaFile { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn proxy65_is_discoverable_and_on_loopback() {
    let Some(srv) = server() else { return };
    bounded(async {
        let ch = srv.connect("user7").await;
        let to: Jid = srv.domain.parse().unwrap();
        let items = ch
            .request(iq(
                "get",
                "",
                None,
                &to,
                Some(Element::builder("query", ns::DISCO_ITEMS).build()),
            ))
            .await
            .unwrap();
        let jids: Vec<&str> = items
            .get_child("query", ns::DISCO_ITEMS)
            .unwrap()
            .children()
            .filter_map(|c| c.attr("jid"))
            .collect();
        assert!(jids.contains(&srv.proxy.as_str()), "{jids:?}");

        let proxy: Jid = srv.proxy.parse().unwrap();
        let answer = ch
            .request(iq(
                "get",
                "",
                None,
                &proxy,
                Some(Element::builder("query", ns::BYTESTREAMS).build()),
            ))
            .await
            .unwrap();
        let host = answer
            .get_child("query", ns::BYTESTREAMS)
            .and_then(|q| q.get_child("streamhost", ns::BYTESTREAMS))
            .expect("a streamhost");
        assert_eq!(host.attr("host"), Some("127.0.0.1"));
        if !srv.proxy_addr.is_empty() {
            assert_eq!(
                format!("127.0.0.1:{}", host.attr("port").unwrap()),
                srv.proxy_addr
            );
        }
        ch.disconnect().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn pending_request_fails_with_closed_on_disconnect() {
    let Some(srv) = server() else { return };
    bounded(async {
        let asker = Arc::new(srv.connect("user8").await);
        let silent = srv.connect("user5").await;
        // Subscribed but never answered.
        let mut requests = silent.subscribe(Arc::new(|iq| is_request_for(iq, "echo", ECHO_NS)));
        let to: Jid = silent.local_jid().into();
        let a = asker.clone();
        let pending = tokio::spawn(async move {
            a.request(iq("get", "", None, &to, Some(echo("hello"))))
                .await
        });
        let req = tokio::time::timeout(Duration::from_secs(10), requests.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            req.attr("from"),
            Some(asker.local_jid().to_string().as_str())
        );
        asker.disconnect().await.unwrap();
        let result = pending.await.unwrap();
        assert!(matches!(result, Err(ChannelError::Closed)), "{result:?}");
        silent.disconnect().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_silent_server_is_a_timeout_not_a_hang() {
    // Needs no server: a loopback listener that never accepts nor speaks.
    bounded(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = XmppConfig::new("romeo@jet.test".parse().unwrap(), "pw")
            .server(listener.local_addr().unwrap().to_string())
            .trust(TlsTrust::System)
            .connect_timeout(Duration::from_millis(500));
        let err = XmppChannel::connect(config).await.err().expect("must fail");
        match err {
            XmppError::Timeout { stage, after } => {
                assert_eq!(stage, "opening the XML stream");
                assert_eq!(after, Duration::from_millis(500));
            }
            other => panic!("expected Timeout, got {other:?}"),
        }
        drop(listener);
    })
    .await;
}

#[tokio::test]
async fn a_result_from_someone_else_does_not_answer_a_request() {
    let Some(srv) = server() else { return };
    bounded(async {
        let asker = Arc::new(srv.connect("user6").await);
        let peer = srv.connect("user7").await;
        let mallory = srv.connect("mallory").await;
        let mut requests = peer.subscribe(Arc::new(|iq| is_request_for(iq, "echo", ECHO_NS)));
        let to: Jid = peer.local_jid().into();
        let a = asker.clone();
        let pending =
            tokio::spawn(
                async move { a.request(iq("get", "", None, &to, Some(echo("hi")))).await },
            );
        let req = tokio::time::timeout(Duration::from_secs(10), requests.recv())
            .await
            .unwrap()
            .unwrap();

        // Mallory saw (or guessed) the id and answers first.
        let asker_jid: Jid = asker.local_jid().into();
        let spoof = iq(
            "result",
            req.attr("id").unwrap(),
            None,
            &asker_jid,
            Some(echo("SPOOFED")),
        );
        mallory.send(spoof).await.unwrap();
        // A round trip mallory -> asker after the spoof: once it is back, the
        // spoof has been delivered to (and ignored by) the asker.
        let disco = Element::builder("query", ns::DISCO_INFO).build();
        mallory
            .request(iq("get", "", None, &asker_jid, Some(disco)))
            .await
            .unwrap();
        assert!(!pending.is_finished(), "the spoofed result was accepted");

        peer.send(iq_result(&req, Some(echo("REAL"))))
            .await
            .unwrap();
        let answer = pending.await.unwrap().unwrap();
        assert_eq!(answer.get_child("echo", ECHO_NS).unwrap().text(), "REAL");
        assert_eq!(
            answer.attr("from"),
            Some(peer.local_jid().to_string().as_str())
        );

        for ch in [&*asker, &peer, &mallory] {
            ch.disconnect().await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn a_request_to_an_offline_resource_fails_fast() {
    let Some(srv) = server() else { return };
    bounded(async {
        let ch = srv.connect("user3").await;
        let to: Jid = format!("user4@{}/no-such-resource", srv.domain)
            .parse()
            .unwrap();
        let err = ch
            .request(iq("get", "", None, &to, Some(echo("anyone?"))))
            .await
            .unwrap_err();
        match err {
            ChannelError::StanzaError { condition, .. } => {
                assert_eq!(condition, "service-unavailable")
            }
            other => panic!("expected a stanza error, got {other:?}"),
        }
        ch.disconnect().await.unwrap();
    })
    .await;
}

/// RFC 6121 §2.5: removes `jid` from the account's roster (and with it any
/// subscription), so the test starts from the same state on every run.
async fn remove_from_roster(ch: &XmppChannel, jid: &BareJid) {
    use jet_core::xml::BuilderExt;
    let item = Element::builder("item", "jabber:iq:roster")
        .a("jid", jid.to_string())
        .a("subscription", "remove")
        .build();
    let query = Element::builder("query", "jabber:iq:roster")
        .append(item)
        .build();
    let own: Jid = ch.local_jid().to_bare().into();
    match ch.request(iq("set", "", None, &own, Some(query))).await {
        Ok(_) => {}
        Err(ChannelError::StanzaError { condition, .. }) if condition == "item-not-found" => {}
        Err(e) => panic!("cannot clean the roster: {e}"),
    }
}

/// RFC 6121 §3.4. Not on ejabberd 23.01: it does not implement
/// pre-approval (processone/ejabberd#3196; added in 2026 by PR #4512) and
/// does not advertise `urn:xmpp:features:pre-approval`. Only this test
/// uses `XmppChannel::pre_approve`; `jet` itself does not.
#[tokio::test]
async fn pre_approved_subscription_works_while_the_contact_is_offline() {
    let Some(srv) = server() else { return };
    if srv.kind == "ejabberd" {
        eprintln!("skipping: ejabberd 23.01 has no subscription pre-approval");
        return;
    }
    bounded(async {
        let (a_bare, b_bare) = (srv.bare("user2"), srv.bare("user3"));
        let a = XmppChannel::connect(srv.config("user2").resource("pre-approval"))
            .await
            .unwrap();
        let b = XmppChannel::connect(srv.config("user3").resource("pre-approval"))
            .await
            .unwrap();
        remove_from_roster(&a, &b_bare).await;
        remove_from_roster(&b, &a_bare).await;

        // b pre-approves a and goes offline; a's request is approved by the
        // server alone.
        b.pre_approve(a_bare.clone()).await.unwrap();
        b.disconnect().await.unwrap();
        a.subscribe_to_presence(b_bare.clone()).await.unwrap();

        // b comes back with a channel that accepts nobody: a sees it anyway.
        let b = XmppChannel::connect(srv.config("user3").resource("pre-approval-2"))
            .await
            .unwrap();
        wait_for_resource(&a, &b_bare, &b.local_jid()).await;
        a.disconnect().await.unwrap();
        b.disconnect().await.unwrap();
    })
    .await;
}

/// `disconnect` writes every stanza handed to the channel before it (in
/// order), then closes: a caller can queue its last stanzas and close at
/// once, without sleeping. Each send is polled once (which hands it over,
/// as the driver's outbox does) and dropped, then the channel closes.
#[tokio::test]
async fn disconnect_writes_what_was_handed_over_first() {
    use jet_core::xml::BuilderExt;
    let Some(srv) = server() else { return };
    bounded(async {
        let romeo = srv.connect("user6").await;
        let juliet = srv.connect("user7").await;
        let mut inbox = juliet.other_stanzas();
        let to = juliet.local_jid().to_string();
        let count = 50;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for i in 0..count {
            let msg = Element::builder("message", ns::JABBER_CLIENT)
                .a("to", to.as_str())
                .a("type", "chat")
                .append(
                    Element::builder("body", ns::JABBER_CLIENT)
                        .append(format!("line {i}"))
                        .build(),
                )
                .build();
            let mut send = std::pin::pin!(romeo.send(msg));
            assert!(
                send.as_mut().poll(&mut cx).is_pending(),
                "a send waits for its write"
            );
        }
        romeo.disconnect().await.unwrap();
        let mut got = Vec::new();
        while got.len() < count {
            let el = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {count} messages arrived", got.len()))
                .expect("juliet's channel is open");
            if el.name() == "message" {
                if let Some(body) = el.get_child("body", ns::JABBER_CLIENT) {
                    got.push(body.text());
                }
            }
        }
        let want: Vec<String> = (0..count).map(|i| format!("line {i}")).collect();
        assert_eq!(got, want, "every message, in order");
        juliet.disconnect().await.unwrap();
    })
    .await;
}
