//! Key bytes never show in `Debug` output of what holds a
//! [`TransportSecret`]; the stub envelope, by design, puts them on the wire.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jet_core::cipher::CipherSuite;
use jet_core::envelope::EnvelopeBackend;
use jet_core::jid::Jid;
use jet_core::session::JetConfig;
use jet_core::testkit::ToySuite;
use jet_core::{Error, SecretShape, TransportSecret};
use jet_envelopes::StubEnvelope;

/// A toy suite with AES-256-GCM's URN and sizes.
static SIZES: ToySuite = ToySuite::new(jet_core::ns::CIPHER_AES_256_GCM, 32, &[12]);

/// A recognisable key and IV.
fn secret() -> TransportSecret {
    TransportSecret::new(
        (0..32).map(|i| 0xc0 ^ i).collect(),
        (0..12).map(|i| 0x5a ^ i).collect(),
    )
    .unwrap()
}

/// Every rendering of the key (and IV) we could leak by accident.
fn leaks(s: &TransportSecret) -> Vec<String> {
    let mut out = Vec::new();
    for part in [s.key(), s.iv()] {
        out.push(part.iter().map(|b| format!("{b:02x}")).collect());
        out.push(part.iter().map(|b| format!("{b:02X}")).collect());
        out.push(format!("{:?}", part));
        out.push(
            format!("{:?}", &part[..4])
                .trim_end_matches(']')
                .to_string(),
        );
        out.push(STANDARD.encode(part));
    }
    out.push(STANDARD.encode(s.to_bytes().as_slice()));
    out
}

fn assert_clean(what: &str, text: &str, s: &TransportSecret) {
    for leak in leaks(s) {
        assert!(
            !text.contains(&leak),
            "{what} shows key material {leak:?}: {text}"
        );
    }
}

#[test]
fn transport_secret_debug_is_redacted() {
    let s = secret();
    let dbg = format!("{s:?} {s:#?}");
    assert_clean("TransportSecret", &dbg, &s);
    assert!(dbg.contains("redacted"));
}

#[tokio::test]
async fn opened_envelope_and_config_debug_are_redacted() {
    let s = secret();
    let stub = StubEnvelope::new();
    let romeo: Jid = "romeo@montague.lit/orchard".parse().unwrap();
    let ee = stub.seal(&s, &romeo).await.unwrap();
    let opened = stub.open(&ee, &romeo, SIZES.secret_shape()).await.unwrap();
    assert_eq!(opened.secret.key(), s.key());
    assert_clean("OpenedEnvelope", &format!("{opened:?} {opened:#?}"), &s);
    let jet = JetConfig::new(vec![&SIZES], vec![Arc::new(stub)]);
    assert_clean("JetConfig", &format!("{jet:?}"), &s);
    // Errors about secrets name lengths, never bytes.
    let bad = StubEnvelope::secret_of(&ee, SIZES_16);
    let e: Error = bad.unwrap_err().into();
    assert_clean("an envelope error", &format!("{e} {e:?}"), &s);
}

/// A secret wanting a 16-byte key: the 44-byte stub payload does not fit.
const SIZES_16: SecretShape = SecretShape::new(16, 12, &[12]);
