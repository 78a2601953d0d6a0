//! JET-OX keys: shape, stores, export, and XEP-0373 §4 publish/fetch over a
//! tiny in-test PEP service on the in-memory router.
#![cfg(feature = "ox")]

mod ox_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jet_core::channel::{iq_error, iq_result, StanzaChannel};
use jet_core::envelope::EnvelopeBackend;
use jet_core::error::EnvelopeError;
use jet_core::jid::{FullJid, Jid};
use jet_core::memory::MemoryRouter;
use jet_core::minidom::Element;
use jet_envelopes::ox::elements::{self, PUBSUB};
use jet_envelopes::ox::keys::xmpp_user_id;
use jet_envelopes::ox::pep::{fetch_public_keys, is_ox_pep_request, publish_public_key};
use jet_envelopes::ox::{
    export_armored, FileKeyStore, MemoryKeyStore, OxConfig, OxEnvelope, OxKeyEvent, OxKeyStore,
    OxPublicKey, OxSecretKey, OxTrustPolicy,
};
use ox_support::*;
use tokio::task::JoinHandle;

#[test]
fn generated_key_has_the_xep_0373_shape() {
    let key = OxSecretKey::generate(&bare(ROMEO)).unwrap();
    let public = key.public_key();
    assert_eq!(
        public.user_ids(),
        vec!["xmpp:romeo@montague.lit".to_string()]
    );
    assert_eq!(xmpp_user_id(&bare(ROMEO)), "xmpp:romeo@montague.lit");
    assert!(
        elements::is_v4_fingerprint(key.fingerprint()),
        "{}",
        key.fingerprint()
    );
    public.validate_for(&bare(ROMEO)).unwrap();
    // Not a key of anyone else.
    assert!(matches!(
        public.validate_for(&bare(JULIET)),
        Err(EnvelopeError::Untrusted(_))
    ));
    // Binary and armored forms parse back to the same key.
    let bin = public.to_bytes().unwrap();
    assert_eq!(OxPublicKey::from_bytes(&bin).unwrap(), public);
    let armored = public.to_armored().unwrap();
    assert!(armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    assert_eq!(OxPublicKey::from_bytes(armored.as_bytes()).unwrap(), public);
    // Two generations differ.
    let other = OxSecretKey::generate(&bare(ROMEO)).unwrap();
    assert_ne!(other.fingerprint(), key.fingerprint());
    // The secret key reads back only for its own JID.
    let sec = key.to_armored_secret().unwrap();
    assert_eq!(
        OxSecretKey::from_bytes(sec.as_bytes(), &bare(ROMEO))
            .unwrap()
            .fingerprint(),
        key.fingerprint()
    );
    assert!(OxSecretKey::from_bytes(sec.as_bytes(), &bare(JULIET)).is_err());
    assert!(OxPublicKey::from_bytes(b"garbage").is_err());
}

#[test]
fn stores_refuse_keys_of_other_accounts() {
    let mallory = OxSecretKey::generate(&bare("mallory@evil.lit")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file_store = FileKeyStore::open(dir.path().join("ox")).unwrap();
    let mem_store = MemoryKeyStore::new();
    let stores: [&dyn OxKeyStore; 2] = [&mem_store, &file_store];
    for store in stores {
        assert!(matches!(
            store.add_peer_key(&bare(ROMEO), &mallory.public_key()),
            Err(EnvelopeError::Untrusted(_))
        ));
        assert!(store.peer_keys(&bare(ROMEO)).unwrap().is_empty());
    }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn file_store_keeps_keys_as_armored_0600_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ox");
    let romeo = OxSecretKey::generate(&bare(ROMEO)).unwrap();
    let juliet = OxSecretKey::generate(&bare(JULIET)).unwrap();
    {
        let store = FileKeyStore::open(&root).unwrap();
        assert!(store.own_key(&bare(ROMEO)).unwrap().is_none());
        store.set_own_key(&romeo).unwrap();
        store
            .add_peer_key(&bare(JULIET), &juliet.public_key())
            .unwrap();
        // Adding again replaces, does not duplicate.
        store
            .add_peer_key(&bare(JULIET), &juliet.public_key())
            .unwrap();
    }
    // A new store on the same directory sees the same keys.
    let store = FileKeyStore::open(&root).unwrap();
    let own = store.own_key(&bare(ROMEO)).unwrap().unwrap();
    assert_eq!(own.fingerprint(), romeo.fingerprint());
    // Not Juliet's key: an error, so nobody overwrites Romeo's key by mistake.
    assert!(matches!(
        store.own_key(&bare(JULIET)),
        Err(EnvelopeError::Store(_))
    ));
    let again: Arc<dyn OxKeyStore> = Arc::new(FileKeyStore::open(&root).unwrap());
    assert!(OxEnvelope::load_or_generate(&bare(JULIET), again).is_err());
    assert_eq!(
        store.own_key(&bare(ROMEO)).unwrap().unwrap().fingerprint(),
        romeo.fingerprint()
    );
    let peers = store.peer_keys(&bare(JULIET)).unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].fingerprint(), juliet.fingerprint());
    assert_eq!(store.peers().unwrap(), vec![bare(JULIET)]);

    let own_file = root.join("own.sec.asc");
    let text = std::fs::read_to_string(&own_file).unwrap();
    assert!(
        text.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"),
        "{text}"
    );
    let peer_file = root
        .join("peers")
        .join("juliet@capulet.lit")
        .join(format!("{}.asc", juliet.fingerprint()));
    assert!(std::fs::read_to_string(&peer_file)
        .unwrap()
        .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    #[cfg(unix)]
    {
        assert_eq!(mode(&own_file), 0o600);
        assert_eq!(mode(&peer_file), 0o600);
        assert_eq!(mode(&root), 0o700);
    }

    assert!(store
        .remove_peer_key(&bare(JULIET), juliet.fingerprint())
        .unwrap());
    assert!(!store
        .remove_peer_key(&bare(JULIET), juliet.fingerprint())
        .unwrap());
    assert!(store.peer_keys(&bare(JULIET)).unwrap().is_empty());
    assert!(store.peers().unwrap().is_empty());

    // load_or_generate: generates once, then loads the same key.
    let dir2 = tempfile::tempdir().unwrap();
    let s2: Arc<dyn OxKeyStore> = Arc::new(FileKeyStore::open(dir2.path()).unwrap());
    let a = OxEnvelope::load_or_generate(&bare(ROMEO), s2.clone()).unwrap();
    let b = OxEnvelope::load_or_generate(&bare(ROMEO), s2).unwrap();
    assert_eq!(a.own_key().fingerprint(), b.own_key().fingerprint());
}

#[test]
fn export_writes_importable_armored_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = OxSecretKey::generate(&bare(ROMEO)).unwrap();
    let public = dir.path().join("romeo.pub.asc");
    let secret = dir.path().join("romeo.sec.asc");
    export_armored(&key, &public, None).unwrap();
    assert!(!secret.exists());
    export_armored(&key, &public, Some(&secret)).unwrap();
    let p = OxPublicKey::from_bytes(&std::fs::read(&public).unwrap()).unwrap();
    assert_eq!(p.fingerprint(), key.fingerprint());
    let s = OxSecretKey::from_bytes(&std::fs::read(&secret).unwrap(), &bare(ROMEO)).unwrap();
    assert_eq!(s.fingerprint(), key.fingerprint());
    #[cfg(unix)]
    assert_eq!(mode(&secret), 0o600);
}

/// A minimal PEP service: stores the newest item of each node it is sent,
/// answers item requests, `item-not-found` for unknown nodes. `tamper`
/// may rewrite a stored payload (hostile server).
type Nodes = Arc<Mutex<HashMap<String, (String, Element)>>>;

fn spawn_pep_service(router: &MemoryRouter, jid: &str) -> (Nodes, JoinHandle<()>) {
    let service = router.connect(jid.parse::<FullJid>().unwrap());
    let nodes: Nodes = Arc::default();
    let mut requests = service.subscribe(Arc::new(is_ox_pep_request));
    let store = nodes.clone();
    let task = tokio::spawn(async move {
        while let Some(req) = requests.recv().await {
            let pubsub = req.get_child("pubsub", PUBSUB).unwrap();
            let answer = if let Some(publish) = pubsub.get_child("publish", PUBSUB) {
                let node = publish.attr("node").unwrap().to_string();
                let item = publish.get_child("item", PUBSUB).unwrap();
                let payload = item.children().next().unwrap().clone();
                let id = item.attr("id").unwrap_or("current").to_string();
                store.lock().unwrap().insert(node, (id, payload));
                iq_result(&req, None)
            } else {
                let items = pubsub.get_child("items", PUBSUB).unwrap();
                let node = items.attr("node").unwrap().to_string();
                match store.lock().unwrap().get(&node) {
                    Some((id, payload)) => {
                        let mut item = Element::builder("item", PUBSUB).append(payload.clone());
                        item = jet_core::xml::BuilderExt::a(item, "id", id.as_str());
                        let el = Element::builder("pubsub", PUBSUB)
                            .append(
                                jet_core::xml::BuilderExt::a(
                                    Element::builder("items", PUBSUB),
                                    "node",
                                    node.as_str(),
                                )
                                .append(item.build())
                                .build(),
                            )
                            .build();
                        iq_result(&req, Some(el))
                    }
                    None => iq_error(&req, "cancel", "item-not-found", None),
                }
            };
            if service.send(answer).await.is_err() {
                break;
            }
        }
    });
    (nodes, task)
}

const PEP: &str = "pep.montague.lit/service";

#[tokio::test]
async fn publish_and_fetch_over_pep() {
    let router = MemoryRouter::new();
    let (nodes, task) = spawn_pep_service(&router, PEP);
    let romeo_ch = router.connect(ROMEO_FULL.parse().unwrap());
    let juliet_ch = router.connect(JULIET_FULL.parse().unwrap());
    let service: Jid = PEP.parse().unwrap();
    let t = Duration::from_secs(5);

    let romeo = OxSecretKey::generate(&bare(ROMEO)).unwrap();
    publish_public_key(romeo_ch.as_ref(), &service, &romeo.public_key(), t)
        .await
        .unwrap();
    {
        let n = nodes.lock().unwrap();
        let (_, list) = &n[elements::PUBLIC_KEYS_NODE];
        let parsed = elements::parse_public_keys_list(list).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].fingerprint, romeo.fingerprint());
        let (item_id, pubkey) = &n[&elements::public_key_node(romeo.fingerprint())];
        // Item id is the publication date (XEP-0373 §4.1), as is 'date'.
        assert_eq!(Some(item_id.as_str()), pubkey.attr("date"));
        elements::parse_datetime(item_id).unwrap();
    }

    let fetched = fetch_public_keys(juliet_ch.as_ref(), &service, &bare(ROMEO), t)
        .await
        .unwrap();
    assert_eq!(fetched, vec![romeo.public_key()]);

    // Fetching the keys as somebody else's fails the user-ID check.
    let err = fetch_public_keys(juliet_ch.as_ref(), &service, &bare("nurse@capulet.lit"), t)
        .await
        .unwrap_err();
    assert!(matches!(err, EnvelopeError::Untrusted(_)), "{err:?}");

    // A hostile server puts Mallory's key under Romeo's announced fingerprint.
    let mallory = OxSecretKey::generate(&bare(ROMEO)).unwrap();
    {
        let mut n = nodes.lock().unwrap();
        let node = elements::public_key_node(romeo.fingerprint());
        let bytes = mallory.public_key().to_bytes().unwrap();
        n.insert(
            node,
            (
                "x".into(),
                elements::pubkey_element(&bytes, "2020-01-01T00:00:00Z"),
            ),
        );
    }
    let err = fetch_public_keys(juliet_ch.as_ref(), &service, &bare(ROMEO), t)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not the announced one"), "{err}");

    // No PEP service at all: a stanza error, not a hang.
    let err = fetch_public_keys(
        juliet_ch.as_ref(),
        &"nobody.lit/x".parse().unwrap(),
        &bare(ROMEO),
        t,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EnvelopeError::Channel(_)), "{err:?}");
    task.abort();
}

#[tokio::test]
async fn envelope_fetches_the_senders_key_over_pep_and_caches_it() {
    let router = MemoryRouter::new();
    let (_nodes, task) = spawn_pep_service(&router, PEP);
    let romeo_ch: Arc<dyn StanzaChannel> = router.connect(ROMEO_FULL.parse().unwrap());
    let juliet_ch: Arc<dyn StanzaChannel> = router.connect(JULIET_FULL.parse().unwrap());
    let config = OxConfig {
        pep_service: Some(PEP.parse().unwrap()),
        pep_timeout: Duration::from_secs(5),
        ..OxConfig::default()
    };

    let juliet_store = Arc::new(MemoryKeyStore::new());
    let juliet = OxEnvelope::load_or_generate(&bare(JULIET), juliet_store.clone())
        .unwrap()
        .with_channel(juliet_ch)
        .with_config(config.clone());
    let romeo_store = Arc::new(MemoryKeyStore::new());
    romeo_store
        .add_peer_key(&bare(JULIET), &juliet.own_key().public_key())
        .unwrap();
    let romeo = OxEnvelope::load_or_generate(&bare(ROMEO), romeo_store)
        .unwrap()
        .with_channel(romeo_ch)
        .with_config(config);
    romeo.publish_own_key().await.unwrap();

    // Juliet knows nothing of Romeo: opening fetches his key over PEP.
    assert!(juliet_store.peer_keys(&bare(ROMEO)).unwrap().is_empty());
    let ts = AES256_SIZES.generate().unwrap();
    let ee = romeo
        .seal(&ts, &JULIET_FULL.parse().unwrap())
        .await
        .unwrap();
    let opened = juliet
        .open(&ee, &ROMEO_FULL.parse().unwrap(), AES256_SIZES)
        .await
        .unwrap();
    assert_eq!(opened.secret, ts);
    assert_eq!(
        opened.sender_key.as_deref(),
        Some(romeo.own_key().fingerprint())
    );
    // Cached: the store has it now, and a second envelope opens without PEP.
    assert_eq!(
        juliet_store.peer_keys(&bare(ROMEO)).unwrap(),
        vec![romeo.own_key().public_key()]
    );
    task.abort();
    let ee2 = romeo
        .seal(&ts, &JULIET_FULL.parse().unwrap())
        .await
        .unwrap();
    juliet
        .open(&ee2, &ROMEO_FULL.parse().unwrap(), AES256_SIZES)
        .await
        .unwrap();
}

/// Key pinning: Romeo's first key is trusted on first use (and reported
/// with its fingerprint); when a different key shows up on his PEP node,
/// it is refused for opening and never encrypted to, and the refusal names
/// it and the command, until the user trusts it (what `jet keys trust`
/// does); then it opens. A key that was never published stays unknown.
#[tokio::test]
async fn a_new_key_of_the_sender_is_refused_until_trusted() {
    let router = MemoryRouter::new();
    let (_nodes, task) = spawn_pep_service(&router, PEP);
    let romeo_ch: Arc<dyn StanzaChannel> = router.connect(ROMEO_FULL.parse().unwrap());
    let juliet_ch: Arc<dyn StanzaChannel> = router.connect(JULIET_FULL.parse().unwrap());
    let config = OxConfig {
        pep_service: Some(PEP.parse().unwrap()),
        pep_timeout: Duration::from_secs(5),
        ..OxConfig::default()
    };
    let juliet_key = OxSecretKey::generate(&bare(JULIET)).unwrap();
    let juliet_store = Arc::new(MemoryKeyStore::new());
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let juliet = OxEnvelope::new(juliet_key.clone(), juliet_store.clone())
        .with_channel(juliet_ch)
        .with_config(config.clone())
        .with_key_observer(Box::new(move |e: &OxKeyEvent| {
            ev.lock().unwrap().push(e.clone())
        }));
    let romeo_with = |key: OxSecretKey| {
        let store = Arc::new(MemoryKeyStore::new());
        store
            .add_peer_key(&bare(JULIET), &juliet_key.public_key())
            .unwrap();
        OxEnvelope::new(key, store)
            .with_channel(romeo_ch.clone())
            .with_config(config.clone())
    };
    let old = romeo_with(OxSecretKey::generate(&bare(ROMEO)).unwrap());
    old.publish_own_key().await.unwrap();
    let ts = AES256_SIZES.generate().unwrap();
    let ee = old.seal(&ts, &JULIET_FULL.parse().unwrap()).await.unwrap();
    juliet
        .open(&ee, &ROMEO_FULL.parse().unwrap(), AES256_SIZES)
        .await
        .unwrap();
    assert_eq!(
        events.lock().unwrap().as_slice(),
        &[OxKeyEvent::NewKey {
            jid: bare(ROMEO),
            fingerprint: old.own_key().fingerprint().to_string(),
            accepted: true,
            pinned: vec![],
        }]
    );

    // Romeo (or the server) publishes a new key: refused, and named.
    let new = romeo_with(OxSecretKey::generate(&bare(ROMEO)).unwrap());
    new.publish_own_key().await.unwrap();
    let new_fpr = new.own_key().fingerprint().to_string();
    let ee = new.seal(&ts, &JULIET_FULL.parse().unwrap()).await.unwrap();
    let err = juliet
        .open(&ee, &ROMEO_FULL.parse().unwrap(), AES256_SIZES)
        .await
        .unwrap_err();
    assert!(matches!(err, EnvelopeError::Untrusted(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&new_fpr), "{msg}");
    assert!(msg.contains(old.own_key().fingerprint()), "{msg}");
    assert!(
        msg.contains(&format!("jet keys trust {ROMEO} {new_fpr}")),
        "{msg}"
    );
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(OxKeyEvent::NewKey { fingerprint, accepted: false, .. }) if *fingerprint == new_fpr
    ));
    // Still only the old key is trusted; the new one is pending.
    assert_eq!(
        juliet_store.peer_keys(&bare(ROMEO)).unwrap(),
        vec![old.own_key().public_key()]
    );
    assert_eq!(
        juliet_store.pending_keys(&bare(ROMEO)).unwrap(),
        vec![new.own_key().public_key()]
    );
    // A second try is refused the same way (no silent acceptance later).
    let ee2 = new.seal(&ts, &JULIET_FULL.parse().unwrap()).await.unwrap();
    assert!(matches!(
        juliet
            .open(&ee2, &ROMEO_FULL.parse().unwrap(), AES256_SIZES)
            .await,
        Err(EnvelopeError::Untrusted(_))
    ));
    // Nor sealed to: Juliet's envelope for Romeo opens with the pinned key
    // only.
    let reply = juliet
        .seal(&ts, &ROMEO_FULL.parse().unwrap())
        .await
        .unwrap();
    let juliet_full: Jid = JULIET_FULL.parse().unwrap();
    assert!(new.open(&reply, &juliet_full, AES256_SIZES).await.is_err());
    assert_eq!(
        old.open(&reply, &juliet_full, AES256_SIZES)
            .await
            .unwrap()
            .secret,
        ts
    );

    // The user compared fingerprints and trusts the new key: it opens.
    assert!(juliet_store
        .trust_pending_key(&bare(ROMEO), &new_fpr.to_ascii_lowercase())
        .unwrap());
    let ee = new.seal(&ts, &JULIET_FULL.parse().unwrap()).await.unwrap();
    let opened = juliet
        .open(&ee, &ROMEO_FULL.parse().unwrap(), AES256_SIZES)
        .await
        .unwrap();
    assert_eq!(opened.sender_key.as_deref(), Some(new_fpr.as_str()));
    assert_eq!(juliet_store.peer_keys(&bare(ROMEO)).unwrap().len(), 2);
    assert!(juliet_store.pending_keys(&bare(ROMEO)).unwrap().is_empty());

    // A key that was never published stays unknown, even after the refetch.
    let rogue = romeo_with(OxSecretKey::generate(&bare(ROMEO)).unwrap());
    let ee = rogue
        .seal(&ts, &JULIET_FULL.parse().unwrap())
        .await
        .unwrap();
    let err = juliet
        .open(&ee, &ROMEO_FULL.parse().unwrap(), AES256_SIZES)
        .await
        .unwrap_err();
    assert!(matches!(err, EnvelopeError::Untrusted(_)), "{err:?}");
    task.abort();
}

/// `--trust manual` for OX: even the first key is refused (for sealing and
/// opening) until the user trusts it.
#[tokio::test]
async fn manual_trust_refuses_even_the_first_key() {
    let router = MemoryRouter::new();
    let (_nodes, task) = spawn_pep_service(&router, PEP);
    let romeo_ch: Arc<dyn StanzaChannel> = router.connect(ROMEO_FULL.parse().unwrap());
    let juliet_ch: Arc<dyn StanzaChannel> = router.connect(JULIET_FULL.parse().unwrap());
    let config = OxConfig {
        pep_service: Some(PEP.parse().unwrap()),
        pep_timeout: Duration::from_secs(5),
        ..OxConfig::default()
    };
    let juliet_store = Arc::new(MemoryKeyStore::new());
    let juliet = OxEnvelope::load_or_generate(&bare(JULIET), juliet_store.clone())
        .unwrap()
        .with_channel(juliet_ch)
        .with_config(config.clone())
        .with_trust_policy(OxTrustPolicy::Manual);
    let romeo_store = Arc::new(MemoryKeyStore::new());
    romeo_store
        .add_peer_key(&bare(JULIET), &juliet.own_key().public_key())
        .unwrap();
    let romeo = OxEnvelope::load_or_generate(&bare(ROMEO), romeo_store)
        .unwrap()
        .with_channel(romeo_ch)
        .with_config(config);
    romeo.publish_own_key().await.unwrap();
    let romeo_fpr = romeo.own_key().fingerprint().to_string();
    let ts = AES256_SIZES.generate().unwrap();
    let err = juliet
        .seal(&ts, &ROMEO_FULL.parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, EnvelopeError::Untrusted(_)), "{err:?}");
    assert!(err.to_string().contains(&romeo_fpr), "{err}");
    assert!(err.to_string().contains("jet keys trust"), "{err}");
    let ee = romeo
        .seal(&ts, &JULIET_FULL.parse().unwrap())
        .await
        .unwrap();
    let err = juliet
        .open(&ee, &ROMEO_FULL.parse().unwrap(), AES256_SIZES)
        .await
        .unwrap_err();
    assert!(matches!(err, EnvelopeError::Untrusted(_)), "{err:?}");
    assert!(err.to_string().contains(&romeo_fpr), "{err}");
    assert!(juliet_store
        .trust_pending_key(&bare(ROMEO), &romeo_fpr)
        .unwrap());
    juliet
        .seal(&ts, &ROMEO_FULL.parse().unwrap())
        .await
        .unwrap();
    let ee = romeo
        .seal(&ts, &JULIET_FULL.parse().unwrap())
        .await
        .unwrap();
    juliet
        .open(&ee, &ROMEO_FULL.parse().unwrap(), AES256_SIZES)
        .await
        .unwrap();
    task.abort();
}

/// Pending keys in the file store survive a reopen, stay apart from the
/// trusted ones, and become trusted by fingerprint.
#[test]
fn file_store_keeps_pending_keys_apart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ox");
    let old = OxSecretKey::generate(&bare(ROMEO)).unwrap();
    let new = OxSecretKey::generate(&bare(ROMEO)).unwrap();
    let mallory = OxSecretKey::generate(&bare("mallory@evil.lit")).unwrap();
    {
        let store = FileKeyStore::open(&root).unwrap();
        store.add_peer_key(&bare(ROMEO), &old.public_key()).unwrap();
        store
            .add_pending_key(&bare(ROMEO), &new.public_key())
            .unwrap();
        assert!(store
            .add_pending_key(&bare(ROMEO), &mallory.public_key())
            .is_err());
    }
    let store = FileKeyStore::open(&root).unwrap();
    assert_eq!(
        store.peer_keys(&bare(ROMEO)).unwrap(),
        vec![old.public_key()]
    );
    assert_eq!(
        store.pending_keys(&bare(ROMEO)).unwrap(),
        vec![new.public_key()]
    );
    assert!(!store
        .trust_pending_key(&bare(ROMEO), mallory.fingerprint())
        .unwrap());
    assert!(store
        .trust_pending_key(&bare(ROMEO), new.fingerprint())
        .unwrap());
    assert_eq!(store.peer_keys(&bare(ROMEO)).unwrap().len(), 2);
    assert!(store.pending_keys(&bare(ROMEO)).unwrap().is_empty());
}
