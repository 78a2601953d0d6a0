//! Key bytes never show in `Debug` output of what holds a
//! [`TransportSecret`]; the stub envelope, by design, puts them on the wire.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jet_core::cipher::{CipherSuite, Framing, StreamDecryptor, StreamEncryptor};
use jet_core::envelope::EnvelopeBackend;
use jet_core::error::CipherError;
use jet_core::jid::Jid;
use jet_core::session::JetConfig;
use jet_core::{Error, TransportSecret};
use jet_envelopes::StubEnvelope;

#[derive(Debug)]
struct Sizes;
impl CipherSuite for Sizes {
    fn urn(&self) -> &'static str {
        jet_core::ns::CIPHER_AES_256_GCM
    }
    fn name(&self) -> &'static str {
        "sizes"
    }
    fn key_len(&self) -> usize {
        32
    }
    fn iv_len(&self) -> usize {
        12
    }
    fn accepted_iv_lens(&self) -> &'static [usize] {
        &[12]
    }
    fn tag_len(&self) -> usize {
        16
    }
    fn framing(&self) -> Framing {
        Framing::SingleMessage { max_plaintext: 1 }
    }
    fn ciphertext_len(&self, n: u64) -> u64 {
        n + 16
    }
    fn encryptor(&self, _: &TransportSecret) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        Err(CipherError::UnknownCipher("sizes".into()))
    }
    fn decryptor(&self, _: &TransportSecret) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        Err(CipherError::UnknownCipher("sizes".into()))
    }
}
static SIZES: Sizes = Sizes;

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
    let opened = stub.open(&ee, &romeo, &SIZES).await.unwrap();
    assert_eq!(opened.secret.key(), s.key());
    assert_clean("OpenedEnvelope", &format!("{opened:?} {opened:#?}"), &s);
    let jet = JetConfig::new(vec![&SIZES], vec![Arc::new(stub)]);
    assert_clean("JetConfig", &format!("{jet:?}"), &s);
    // Errors about secrets name lengths, never bytes.
    let bad = StubEnvelope::secret_of(&ee, &jet_core_sizes_16());
    let e: Error = bad.unwrap_err().into();
    assert_clean("an envelope error", &format!("{e} {e:?}"), &s);
}

/// A suite wanting a 16-byte key: the 44-byte stub payload does not fit.
fn jet_core_sizes_16() -> impl CipherSuite {
    #[derive(Debug)]
    struct S16;
    impl CipherSuite for S16 {
        fn urn(&self) -> &'static str {
            jet_core::ns::CIPHER_AES_128_GCM
        }
        fn name(&self) -> &'static str {
            "s16"
        }
        fn key_len(&self) -> usize {
            16
        }
        fn iv_len(&self) -> usize {
            12
        }
        fn accepted_iv_lens(&self) -> &'static [usize] {
            &[12]
        }
        fn tag_len(&self) -> usize {
            16
        }
        fn framing(&self) -> Framing {
            Framing::SingleMessage { max_plaintext: 1 }
        }
        fn ciphertext_len(&self, n: u64) -> u64 {
            n
        }
        fn encryptor(&self, _: &TransportSecret) -> Result<Box<dyn StreamEncryptor>, CipherError> {
            Err(CipherError::UnknownCipher("s16".into()))
        }
        fn decryptor(&self, _: &TransportSecret) -> Result<Box<dyn StreamDecryptor>, CipherError> {
            Err(CipherError::UnknownCipher("s16".into()))
        }
    }
    S16
}

#[test]
fn the_stub_puts_the_secret_on_the_wire_by_design() {
    // DOCUMENTED, NOT A BUG: the stub envelope (XEP-0391 §4 listings) is
    // base64(key || iv) in the clear, so any stanza log (the router tap,
    // a server, `jet --verbose`) holds the key. That is why
    // `is_secure()` is false and the stub is for tests and the demo only.
    let s = secret();
    let ee = StubEnvelope::envelope_for(&s);
    let wire = String::from(&ee);
    assert!(wire.contains(&STANDARD.encode(s.to_bytes().as_slice())));
    assert!(!StubEnvelope::new().is_secure());
}
