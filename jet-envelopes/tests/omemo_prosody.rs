//! OMEMO over a real Prosody on 127.0.0.1: two accounts publish device
//! lists and bundles over PEP (XEP-0163), fetch each other's, and a JET
//! transport secret is sealed and opened through the server, with the
//! persistent SQLite store on one side.
//!
//! Start the server with `scripts/test-server start` (it writes
//! `target/test-server/env`; `JET_TEST_SERVER_DIR` moves it, and the
//! variables themselves override the file). Without a server these tests
//! skip with a message, unless `JET_REQUIRE_SERVER=1` (CI), where they fail.
//! Accounts user5..user8 are used here only.

use std::sync::Arc;
use std::time::Duration;

use jet_core::channel::StanzaChannel;
use jet_core::envelope::EnvelopeBackend;
use jet_core::error::EnvelopeError;
use jet_core::jid::{BareJid, Jid};
use jet_core::xmpp::{XmppChannel, XmppConfig};
use jet_core::{ns, SecretShape, TransportSecret};
use jet_envelopes::omemo::{
    InMemoryStore, OmemoDirectory, OmemoEnvelope, OmemoStore, PepDirectory, SqliteStore, Trust,
    TrustPolicy,
};

const TEST_BOUND: Duration = Duration::from_secs(60);

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

    async fn connect(&self, user: &str) -> Arc<XmppChannel> {
        let cfg = XmppConfig::new(self.bare(user), self.password.as_str())
            .server(self.addr.as_str())
            .trust_ca_file(&self.ca)
            .connect_timeout(Duration::from_secs(10));
        Arc::new(
            XmppChannel::connect(cfg)
                .await
                .unwrap_or_else(|e| panic!("{user} cannot connect to {}: {e}", self.addr)),
        )
    }
}

/// Sizes of an AES-128-GCM suite, for `open` (no cipher is run here).
const AES128_SIZES: SecretShape = SecretShape::new(16, 12, &[12, 16]);

/// user5 (SQLite store, reopened between steps) and user6 (in memory)
/// publish over PEP, find each other's device and bundle there, and
/// exchange sealed transport secrets in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_publish_fetch_seal_open() {
    let Some(srv) = server() else { return };
    tokio::time::timeout(TEST_BOUND, async {
        let tmp = tempfile::tempdir().unwrap();
        let a_jid = srv.bare("user5");
        let b_jid = srv.bare("user6");
        let a_ch = srv.connect("user5").await;
        let b_ch = srv.connect("user6").await;
        let a_dir: Arc<dyn OmemoDirectory> =
            Arc::new(PepDirectory::new(a_ch.clone(), Duration::from_secs(10)));
        let b_dir: Arc<dyn OmemoDirectory> =
            Arc::new(PepDirectory::new(b_ch.clone(), Duration::from_secs(10)));
        let a_path = SqliteStore::default_path(Some(tmp.path()), &a_jid.to_string()).unwrap();
        let (a_store, created) = SqliteStore::open_or_create(&a_path).unwrap();
        assert!(created);
        let a_id = a_store.device_id();
        let alice = OmemoEnvelope::new(a_store, a_jid.clone(), a_dir.clone());
        let b_id = (a_id % 1_000_000) + 7;
        let bob = OmemoEnvelope::new(
            InMemoryStore::generate(b_id).unwrap(),
            b_jid.clone(),
            b_dir.clone(),
        );
        // Earlier runs left other device ids in the lists; start clean so
        // every listed device has a bundle.
        a_dir.publish_device_list(&[]).await.unwrap();
        b_dir.publish_device_list(&[]).await.unwrap();
        alice.publish().await.unwrap();
        bob.publish().await.unwrap();

        // Each sees the other's device list and bundle through the server.
        assert_eq!(b_dir.device_list(&a_jid).await.unwrap(), vec![a_id]);
        assert_eq!(a_dir.device_list(&b_jid).await.unwrap(), vec![b_id]);
        let bundle = a_dir.bundle(&b_jid, b_id).await.unwrap();
        bundle.verify().unwrap();
        assert_eq!(bundle.pre_keys.len(), 100);

        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        alice.set_trust_observer(Some(Box::new(move |e| s2.lock().unwrap().push(e.clone()))));

        let ts = TransportSecret::generate_with(16, 12).unwrap();
        let b_full: Jid = b_ch.local_jid().clone().into();
        let a_full: Jid = a_ch.local_jid().clone().into();
        let sealed = alice.seal(&ts, &b_full).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1, "TOFU event for bob's device");
        let opened = bob.open(&sealed, &a_full, AES128_SIZES).await.unwrap();
        assert_eq!(opened.secret, ts);
        assert_eq!(opened.sender, a_jid);
        assert_eq!(
            opened.sender_key.as_deref(),
            Some(a_id.to_string().as_str())
        );
        // Bob replaced the used prekey and republished: the server has 100
        // prekeys again, none of them the used one.
        let after = a_dir.bundle(&b_jid, b_id).await.unwrap();
        assert_eq!(after.pre_keys.len(), 100);
        assert_ne!(after.pre_keys, bundle.pre_keys);
        // Another account claiming to be the sender is refused.
        let mallory: Jid = format!("user7@{}/x", srv.domain).parse().unwrap();
        let again = alice.seal(&ts, &b_full).await.unwrap();
        assert!(bob.open(&again, &mallory, AES128_SIZES).await.is_err());

        // Alice's process "dies" (store dropped) and comes back from disk;
        // Bob answers on the existing session.
        drop(alice);
        let a_store = SqliteStore::open(&a_path).unwrap();
        let alice = OmemoEnvelope::new(a_store, a_jid.clone(), a_dir.clone());
        let ts2 = TransportSecret::generate_with(16, 12).unwrap();
        let back = bob.seal(&ts2, &a_full).await.unwrap();
        assert_eq!(
            alice
                .open(&back, &b_full, AES128_SIZES)
                .await
                .unwrap()
                .secret,
            ts2
        );
        // Manual trust: Bob's device is only TOFU-recorded, so refused,
        // until trusted in the store.
        alice.set_trust_policy(TrustPolicy::Manual);
        assert!(matches!(
            alice.seal(&ts, &b_full).await,
            Err(EnvelopeError::Untrusted(_))
        ));
        let b_key = after.identity_key;
        alice
            .with_store(|s| s.trust_fingerprint(&b_jid.to_string(), &b_key))
            .unwrap();
        let sealed = alice.seal(&ts, &b_full).await.unwrap();
        assert_eq!(
            bob.open(&sealed, &a_full, AES128_SIZES)
                .await
                .unwrap()
                .secret,
            ts
        );
        alice.with_store(|s| {
            assert_eq!(
                s.known_devices(&b_jid.to_string()).unwrap()[0].trust,
                Trust::Trusted
            )
        });

        a_ch.disconnect().await.unwrap();
        b_ch.disconnect().await.unwrap();
    })
    .await
    .expect("the test did not finish in time");
}

/// A whole JET file transfer (XEP-0391 driver, AES-128-GCM, OMEMO envelope
/// over PEP) from user7 to user8 through the server: once over SOCKS5
/// Bytestreams (direct, 127.0.0.1) and once over In-Band Bytestreams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jet_file_transfer_with_omemo_over_s5b_and_ibb() {
    use jet_core::driver::{Driver, DriverConfig};
    use jet_core::ft_app::{FileOffer, FileReceiver, LocalFile, ReceivePolicy};
    use jet_core::session::JetConfig;
    use jet_core::transport::TransportAdapter;
    use jet_transports::{IbbConfig, IbbTransport, S5bConfig, S5bTransport};

    let Some(srv) = server() else { return };
    tokio::time::timeout(Duration::from_secs(120), async {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("note.bin");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let registry = jet_ciphers::CipherRegistry::default();
        let suite = registry.get(ns::CIPHER_AES_128_GCM).unwrap();
        for (round, use_ibb) in [(0, false), (1, true)] {
            let s_ch = srv.connect("user7").await;
            let r_ch = srv.connect("user8").await;
            let env = |ch: &Arc<XmppChannel>, user: &str, id: u32| {
                let dir: Arc<dyn OmemoDirectory> =
                    Arc::new(PepDirectory::new(ch.clone(), Duration::from_secs(10)));
                (
                    dir.clone(),
                    Arc::new(OmemoEnvelope::new(
                        InMemoryStore::generate(id).unwrap(),
                        srv.bare(user),
                        dir,
                    )),
                )
            };
            let (s_dir, s_env) = env(&s_ch, "user7", 7000 + round);
            let (r_dir, r_env) = env(&r_ch, "user8", 8000 + round);
            s_dir.publish_device_list(&[]).await.unwrap();
            r_dir.publish_device_list(&[]).await.unwrap();
            s_env.publish().await.unwrap();
            r_env.publish().await.unwrap();
            let transport: Arc<dyn TransportAdapter> = if use_ibb {
                Arc::new(IbbTransport::new(IbbConfig {
                    block_size: 4096,
                    ..IbbConfig::default()
                }))
            } else {
                Arc::new(S5bTransport::new(S5bConfig {
                    direct_addresses: vec![std::net::Ipv4Addr::LOCALHOST.into()],
                    discover_proxy: false,
                    ..S5bConfig::default()
                }))
            };
            let jet_s =
                JetConfig::new(vec![suite], vec![s_env.clone() as Arc<dyn EnvelopeBackend>]);
            let jet_r =
                JetConfig::new(vec![suite], vec![r_env.clone() as Arc<dyn EnvelopeBackend>]);
            let (sender, _in_s) = Driver::start(
                s_ch.clone() as Arc<dyn StanzaChannel>,
                jet_s,
                vec![transport.clone()],
                DriverConfig::default(),
            );
            let (_receiver, mut in_r) = Driver::start(
                r_ch.clone() as Arc<dyn StanzaChannel>,
                jet_r,
                vec![transport],
                DriverConfig::default(),
            );
            let out = tmp.path().join(format!("out{round}"));
            std::fs::create_dir_all(&out).unwrap();
            let local = LocalFile::describe(&src).await.unwrap();
            let offer = Arc::new(FileOffer::new(local, None));
            let recv = Arc::new(FileReceiver::new(
                out.clone(),
                ReceivePolicy::default(),
                None,
            ));
            let accept = async move {
                match tokio::time::timeout(Duration::from_secs(30), in_r.recv()).await {
                    Ok(Some(inc)) => inc.accept(recv).await,
                    _ => Err(jet_core::Error::Timeout("the incoming session".into())),
                }
            };
            let peer = r_ch.local_jid().clone();
            let (rs, rr) = tokio::join!(sender.initiate(peer, offer), accept);
            rs.unwrap_or_else(|e| panic!("sender (ibb={use_ibb}): {e}"));
            // One session, one file: `accept` returns it.
            let got = rr.unwrap_or_else(|e| panic!("receiver (ibb={use_ibb}): {e}"));
            assert_eq!(std::fs::read(&got.path).unwrap(), data, "ibb={use_ibb}");
            s_ch.disconnect().await.unwrap();
            r_ch.disconnect().await.unwrap();
        }
    })
    .await
    .expect("the test did not finish in time");
}
