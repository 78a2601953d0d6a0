//! Interoperability of our OMEMO 0.3 with python-omemo's `oldmemo`, an
//! independent implementation, in both directions.
//!
//! The python side is `tests/python/omemo_peer.py`, run in the venv that
//! `scripts/omemo-venv` creates under `target/omemo-venv` (or the
//! interpreter named by `JET_OMEMO_PYTHON`). Without it the tests skip with
//! a printed reason, unless `JET_REQUIRE_PYTHON=1`, when they fail.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use jet_core::minidom::Element;
use jet_core::xml::ElementExt;
use jet_envelopes::omemo::xml::{bundle_from_element, bundle_to_element};
use jet_envelopes::omemo::{
    DeviceAddress, EncryptedElement, InMemoryStore, OmemoManager, OmemoStore, Recipient,
};
use serde_json::{json, Value};

const RUST_JID: &str = "rust@jet.example";
const PY_JID: &str = "python@jet.example";
const RUST_DEVICE: u32 = 1_234_567;
/// Bound on every answer of the python peer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("JET_OMEMO_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/omemo-venv/bin/python");
    venv.exists().then_some(venv)
}

/// The python interpreter, or `None` after printing why the test skips.
fn python_or_skip(test: &str) -> Option<PathBuf> {
    let found = python();
    if found.is_none() {
        let msg = "python-omemo venv not found (run scripts/omemo-venv, or set JET_OMEMO_PYTHON)";
        if std::env::var("JET_REQUIRE_PYTHON").as_deref() == Ok("1") {
            panic!("{test}: {msg}; JET_REQUIRE_PYTHON=1 makes this a failure");
        }
        eprintln!("SKIPPED {test}: {msg}");
    }
    found
}

struct PyPeer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl PyPeer {
    fn start(python: &PathBuf) -> PyPeer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/omemo_peer.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the python OMEMO peer");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PyPeer {
            child,
            stdin,
            lines,
        }
    }

    fn call(&mut self, req: Value) -> Value {
        writeln!(self.stdin, "{req}").expect("writing to the python peer");
        self.stdin.flush().unwrap();
        let line = self
            .lines
            .recv_timeout(ANSWER_TIMEOUT)
            .unwrap_or_else(|e| panic!("python peer gave no answer to {}: {e}", req["cmd"]));
        let v: Value = serde_json::from_str(&line).expect("python answer is JSON");
        if let Some(err) = v.get("error") {
            panic!(
                "python peer failed on {}: {err}\n{}",
                req["cmd"],
                v["trace"].as_str().unwrap_or("")
            );
        }
        v
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let _ = self.stdin.flush();
        // Bounded wait, then kill our own child.
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().expect("base64 string"))
        .expect("valid base64")
}

fn parse(xml: &str) -> EncryptedElement {
    let el: Element = xml.parse().expect("python XML parses");
    EncryptedElement::from_element(&el).expect("python <encrypted> is valid OMEMO 0.3")
}

/// Sets up both peers; each knows the other's bundle and device list.
fn setup(python: &PathBuf) -> (PyPeer, u32, OmemoManager<InMemoryStore>, Recipient) {
    let mut py = PyPeer::start(python);
    let init = py.call(json!({"cmd": "init", "jid": PY_JID}));
    let py_device = u32::try_from(init["device_id"].as_u64().unwrap()).unwrap();
    let rust = OmemoManager::new(InMemoryStore::generate(RUST_DEVICE).unwrap(), RUST_JID);
    let our_bundle = bundle_to_element(&rust.bundle().unwrap()).to_xml_string();
    py.call(
        json!({"cmd": "add_peer", "jid": RUST_JID, "device_id": RUST_DEVICE, "bundle": our_bundle}),
    );
    // The python bundle, as it would come from PEP: its signed prekey
    // signature is checked by our XEdDSA verify when the session is built.
    let py_bundle_el: Element = init["bundle"].as_str().unwrap().parse().unwrap();
    let py_bundle = bundle_from_element(&py_bundle_el).expect("python bundle parses");
    py_bundle
        .verify()
        .expect("python's signed prekey signature verifies");
    assert_eq!(py_bundle.pre_keys.len(), 100);
    let to_py = Recipient {
        address: DeviceAddress::new(PY_JID, py_device),
        bundle: Some(py_bundle),
    };
    (py, py_device, rust, to_py)
}

/// python starts the session (X3DH from OUR bundle); we decrypt its
/// message, its JET key transport, answer, and keep talking.
#[test]
fn python_initiates_rust_decrypts() {
    let Some(python) = python_or_skip("python_initiates_rust_decrypts") else {
        return;
    };
    let (mut py, py_device, mut rust, to_py) = setup(&python);
    let before = rust.store().pre_key_publics().unwrap().len();

    // 1. An OMEMO message with payload (PreKeySignalMessage in <key>).
    let m = py.call(
        json!({"cmd": "encrypt", "to": RUST_JID, "plaintext": B64.encode("hello from python")}),
    );
    let el = parse(m["xml"].as_str().unwrap());
    assert_eq!(el.sid, py_device);
    assert!(el.key_for(RUST_DEVICE).unwrap().prekey);
    let d = rust
        .decrypt(PY_JID, &el)
        .expect("we decrypt python's first message");
    assert!(d.new_session);
    assert_eq!(&d.payload.unwrap()[..], b"hello from python");
    assert_eq!(&d.key_material[..], &b64(&m["key_material"])[..]);
    assert_eq!(
        d.key_material.len(),
        32,
        "OMEMO 0.3 key material is key || GCM tag"
    );
    assert_eq!(d.sender, DeviceAddress::new(PY_JID, py_device));
    assert_eq!(
        rust.store().pre_key_publics().unwrap().len(),
        before - 1,
        "one-time prekey consumed"
    );

    // 2. A JET-OMEMO KeyTransportElement with a chosen TK and IV, still a
    //    prekey message of the same session.
    let tk = [0x5au8; 16];
    let iv = [0xa5u8; 12];
    let kt = py.call(
        json!({"cmd": "key_transport", "to": RUST_JID, "device_id": RUST_DEVICE,
                            "key": B64.encode(tk), "iv": B64.encode(iv)}),
    );
    assert_eq!(kt["prekey"], json!(true));
    let el = parse(kt["xml"].as_str().unwrap());
    assert!(el.payload.is_none());
    let d = rust
        .decrypt(PY_JID, &el)
        .expect("we open python's key transport");
    assert!(!d.new_session);
    assert_eq!(&d.key_material[..], &tk);
    assert_eq!(d.iv, iv);

    // 3. Our answer: a key transport on the established session (a plain
    //    SignalMessage after our DH ratchet step).
    let tk2 = [0x11u8; 16];
    let iv2 = [0x22u8; 12];
    let ee = rust
        .encrypt_key_transport(
            &tk2,
            &iv2,
            &[Recipient {
                bundle: None,
                ..to_py.clone()
            }],
        )
        .unwrap();
    assert!(!ee.keys[0].prekey);
    let r = py
        .call(json!({"cmd": "decrypt", "from": RUST_JID, "xml": ee.to_element().to_xml_string()}));
    assert_eq!(r["plaintext"], Value::Null);
    assert_eq!(b64(&r["key"]), tk2);
    assert_eq!(b64(&r["iv"]), iv2);
    assert_eq!(r["sender_device"], json!(RUST_DEVICE));

    // 4. Several more turns in both directions: python's session is now
    //    confirmed, so no more prekey messages.
    for round in 0..3 {
        let text = format!("python round {round}");
        let m = py.call(json!({"cmd": "encrypt", "to": RUST_JID, "plaintext": B64.encode(&text)}));
        let el = parse(m["xml"].as_str().unwrap());
        assert!(!el.key_for(RUST_DEVICE).unwrap().prekey);
        assert_eq!(
            &rust.decrypt(PY_JID, &el).unwrap().payload.unwrap()[..],
            text.as_bytes()
        );
        let text = format!("rust round {round}");
        let ee = rust
            .encrypt_message(
                text.as_bytes(),
                &[Recipient {
                    bundle: None,
                    ..to_py.clone()
                }],
            )
            .unwrap();
        let r = py.call(
            json!({"cmd": "decrypt", "from": RUST_JID, "xml": ee.to_element().to_xml_string()}),
        );
        assert_eq!(b64(&r["plaintext"]), text.as_bytes());
    }
}

/// We start the session (X3DH from python's bundle, its XEdDSA signature
/// verified by us); python decrypts our JET key transport and message, and
/// its automatic session-completion message decrypts on our side.
#[test]
fn rust_initiates_python_decrypts() {
    let Some(python) = python_or_skip("rust_initiates_python_decrypts") else {
        return;
    };
    let (mut py, py_device, mut rust, to_py) = setup(&python);

    // 1. The JET envelope: a KeyTransportElement, PreKeySignalMessage inside.
    let tk = [0x42u8; 16];
    let iv = [0x24u8; 12];
    let ee = rust
        .encrypt_key_transport(&tk, &iv, std::slice::from_ref(&to_py))
        .unwrap();
    assert!(ee.keys[0].prekey);
    assert_eq!(ee.keys[0].rid, py_device);
    let r = py
        .call(json!({"cmd": "decrypt", "from": RUST_JID, "xml": ee.to_element().to_xml_string()}));
    assert_eq!(
        r["plaintext"],
        Value::Null,
        "a key transport has no payload"
    );
    assert_eq!(b64(&r["key"]), tk, "python recovers the transport key");
    assert_eq!(b64(&r["iv"]), iv);
    assert_eq!(r["sender_device"], json!(RUST_DEVICE));

    // 2. python answered the key exchange with an empty message (its own
    //    KeyTransportElement with a fresh 16-byte key): we open it.
    let outbox = r["outbox"].as_array().unwrap();
    assert_eq!(
        outbox.len(),
        1,
        "python completes the handshake with one empty message"
    );
    let el = parse(outbox[0]["xml"].as_str().unwrap());
    assert!(el.payload.is_none());
    assert!(!el.key_for(RUST_DEVICE).unwrap().prekey);
    let d = rust
        .decrypt(PY_JID, &el)
        .expect("we open python's empty message");
    assert_eq!(&d.key_material[..], &b64(&outbox[0]["key"])[..]);
    assert_eq!(d.key_material.len(), 16);
    let addr = DeviceAddress::new(PY_JID, py_device);
    assert!(!rust
        .store()
        .load_session(&addr)
        .unwrap()
        .current()
        .unwrap()
        .is_pending_pre_key());

    // 3. A message with payload, now a plain SignalMessage.
    let ee = rust
        .encrypt_message(
            "grüße aus Rust".as_bytes(),
            &[Recipient {
                bundle: None,
                ..to_py.clone()
            }],
        )
        .unwrap();
    assert!(!ee.keys[0].prekey);
    let r = py
        .call(json!({"cmd": "decrypt", "from": RUST_JID, "xml": ee.to_element().to_xml_string()}));
    assert_eq!(b64(&r["plaintext"]), "grüße aus Rust".as_bytes());
    assert_eq!(b64(&r["auth_tag"]).len(), 16);

    // 4. python writes back; several of ours in a row before it reads them
    //    out of order is not possible through its API, so alternate.
    for round in 0..3 {
        let text = format!("python says {round}");
        let m = py.call(json!({"cmd": "encrypt", "to": RUST_JID, "plaintext": B64.encode(&text)}));
        let d = rust
            .decrypt(PY_JID, &parse(m["xml"].as_str().unwrap()))
            .unwrap();
        assert_eq!(&d.payload.unwrap()[..], text.as_bytes());
        let tk = [round as u8; 16];
        let ee = rust
            .encrypt_key_transport(
                &tk,
                &[9; 12],
                &[Recipient {
                    bundle: None,
                    ..to_py.clone()
                }],
            )
            .unwrap();
        let r = py.call(
            json!({"cmd": "decrypt", "from": RUST_JID, "xml": ee.to_element().to_xml_string()}),
        );
        assert_eq!(b64(&r["key"]), tk);
    }
}

/// Our messages delivered out of order still decrypt on python's side
/// (skipped message keys across the two implementations).
#[test]
fn out_of_order_delivery_to_python() {
    let Some(python) = python_or_skip("out_of_order_delivery_to_python") else {
        return;
    };
    let (mut py, _py_device, mut rust, to_py) = setup(&python);
    let first = rust
        .encrypt_key_transport(&[1; 16], &[2; 12], std::slice::from_ref(&to_py))
        .unwrap();
    let r = py.call(
        json!({"cmd": "decrypt", "from": RUST_JID, "xml": first.to_element().to_xml_string()}),
    );
    let el = parse(r["outbox"][0]["xml"].as_str().unwrap());
    rust.decrypt(PY_JID, &el).unwrap();
    let to = [Recipient {
        bundle: None,
        ..to_py
    }];
    let msgs: Vec<_> = (0..4u8)
        .map(|i| rust.encrypt_message(&[b'm', i], &to).unwrap())
        .collect();
    for i in [3usize, 0, 2, 1] {
        let r = py.call(json!({"cmd": "decrypt", "from": RUST_JID, "xml": msgs[i].to_element().to_xml_string()}));
        assert_eq!(b64(&r["plaintext"]), vec![b'm', i as u8]);
    }
}

/// python's messages arriving late, across a DH ratchet step (they belong
/// to an older receiving chain), still decrypt on our side.
#[test]
fn late_delivery_from_python_across_ratchet_steps() {
    let Some(python) = python_or_skip("late_delivery_from_python_across_ratchet_steps") else {
        return;
    };
    let (mut py, _py_device, mut rust, to_py) = setup(&python);
    let to = [Recipient {
        bundle: None,
        ..to_py
    }];
    let send = |py: &mut PyPeer, text: &str| {
        let m = py.call(json!({"cmd": "encrypt", "to": RUST_JID, "plaintext": B64.encode(text)}));
        parse(m["xml"].as_str().unwrap())
    };
    let first = send(&mut py, "p0");
    assert_eq!(
        &rust.decrypt(PY_JID, &first).unwrap().payload.unwrap()[..],
        b"p0"
    );
    let reply = rust.encrypt_key_transport(&[3; 16], &[4; 12], &to).unwrap();
    py.call(json!({"cmd": "decrypt", "from": RUST_JID, "xml": reply.to_element().to_xml_string()}));
    // Two messages on python's second chain; p1 is held back.
    let p1 = send(&mut py, "p1");
    let p2 = send(&mut py, "p2");
    assert_eq!(
        &rust.decrypt(PY_JID, &p2).unwrap().payload.unwrap()[..],
        b"p2"
    );
    // Our answer carries our next ratchet key: python steps its DH ratchet
    // and p3 is on its third chain.
    let reply = rust.encrypt_message(b"r", &to).unwrap();
    py.call(json!({"cmd": "decrypt", "from": RUST_JID, "xml": reply.to_element().to_xml_string()}));
    let p3 = send(&mut py, "p3");
    let p4 = send(&mut py, "p4");
    for (el, text) in [(&p4, "p4"), (&p1, "p1"), (&p3, "p3")] {
        let d = rust
            .decrypt(PY_JID, el)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&d.payload.unwrap()[..], text.as_bytes());
    }
    // Replays are refused.
    assert!(rust.decrypt(PY_JID, &p2).is_err());
}

/// Only the sizes of a suite matter to an envelope: a `key_len`-byte key,
/// 12- or 16-byte IVs.
fn sizes(key_len: usize) -> jet_core::SecretShape {
    jet_core::SecretShape::new(key_len, 12, &[12, 16])
}

/// The JET-OMEMO EnvelopeBackend against python-omemo: it opens python's
/// key transports (checking the sender's identity against its published
/// bundle) and seals transport secrets python opens.
#[tokio::test]
async fn envelope_backend_with_python() {
    use jet_core::envelope::EnvelopeBackend;
    use jet_core::jid::{BareJid, Jid};
    use jet_envelopes::omemo::{MemoryDirectory, OmemoDirectory, OmemoEnvelope};
    use std::sync::Arc;

    let Some(python) = python_or_skip("envelope_backend_with_python") else {
        return;
    };
    let mut py = PyPeer::start(&python);
    let init = py.call(json!({"cmd": "init", "jid": PY_JID}));
    let py_device = u32::try_from(init["device_id"].as_u64().unwrap()).unwrap();
    let py_bare: BareJid = PY_JID.parse().unwrap();
    let rust_bare: BareJid = RUST_JID.parse().unwrap();

    // The "server": python's list and bundle, and whatever we publish.
    let dir = MemoryDirectory::new(py_bare.clone());
    dir.publish_device_list(&[py_device]).await.unwrap();
    let py_bundle_el: Element = init["bundle"].as_str().unwrap().parse().unwrap();
    dir.publish_bundle(py_device, &bundle_from_element(&py_bundle_el).unwrap())
        .await
        .unwrap();
    let env = OmemoEnvelope::new(
        InMemoryStore::generate(RUST_DEVICE).unwrap(),
        rust_bare.clone(),
        Arc::new(dir.as_account(rust_bare.clone())),
    );
    env.publish().await.unwrap();
    let our_bundle = dir.bundle(&rust_bare, RUST_DEVICE).await.unwrap();
    py.call(
        json!({"cmd": "add_peer", "jid": RUST_JID, "device_id": RUST_DEVICE,
                   "bundle": bundle_to_element(&our_bundle).to_xml_string()}),
    );

    let from: Jid = format!("{PY_JID}/laptop").parse().unwrap();
    // python's empty message starts the session: no payload, 32 bytes of
    // key material (key || tag), which fits a 32-byte-key suite.
    let m = py.call(json!({"cmd": "encrypt", "to": RUST_JID, "plaintext": ""}));
    let el: Element = m["xml"].as_str().unwrap().parse().unwrap();
    assert!(el
        .get_child("payload", "eu.siacs.conversations.axolotl")
        .is_none());
    let opened = env
        .open(&el, &from, sizes(32))
        .await
        .expect("open python's session start");
    assert_eq!(opened.secret.key(), &b64(&m["key_material"])[..]);
    assert_eq!(opened.sender, py_bare);
    assert_eq!(opened.sender_key, Some(py_device.to_string()));

    // A JET key transport with a 16-byte TK for AES-128-GCM.
    let tk = [0x3cu8; 16];
    let iv = [0xc3u8; 12];
    let kt = py.call(
        json!({"cmd": "key_transport", "to": RUST_JID, "device_id": RUST_DEVICE,
                            "key": B64.encode(tk), "iv": B64.encode(iv)}),
    );
    let el: Element = kt["xml"].as_str().unwrap().parse().unwrap();
    let opened = env
        .open(&el, &from, sizes(16))
        .await
        .expect("open python's key transport");
    assert_eq!(opened.secret.key(), &tk);
    assert_eq!(opened.secret.iv(), &iv);
    // The wrong suite size is refused.
    let kt = py.call(
        json!({"cmd": "key_transport", "to": RUST_JID, "device_id": RUST_DEVICE,
                            "key": B64.encode(tk), "iv": B64.encode(iv)}),
    );
    let el: Element = kt["xml"].as_str().unwrap().parse().unwrap();
    assert!(env.open(&el, &from, sizes(32)).await.is_err());

    // And the other way: we seal, python opens.
    let ts = jet_core::TransportSecret::generate_with(16, 12).unwrap();
    let ee = env.seal(&ts, &from).await.unwrap();
    let r = py.call(json!({"cmd": "decrypt", "from": RUST_JID, "xml": ee.to_xml_string()}));
    assert_eq!(b64(&r["key"]), ts.key());
    assert_eq!(b64(&r["iv"]), ts.iv());
}
