//! The stub envelope of XEP-0391: **NO SECURITY AT ALL**.
//!
//! <div class="warning">
//!
//! The stub carries the transport secret **in the clear** (base64 of
//! `key || iv`). Anyone who sees the Jingle stanza — the servers, a proxy,
//! anyone logging XMPP traffic — can decrypt the byte stream. It exists for
//! tests, interop checks and the demo, never for real data.
//! [`EnvelopeBackend::is_secure`] returns `false` so that callers can refuse
//! it by policy.
//!
//! </div>
//!
//! Form (XEP-0391 §4 listings):
//!
//! ```xml
//! <security xmlns='urn:xmpp:jingle:jet:0' name='..' cipher='..'
//!           type='urn:xmpp:encryption:stub:0'>
//!   <encrypted xmlns='urn:xmpp:encryption:stub:0'>
//!     <payload>BASE64(key || iv)</payload>
//!   </encrypted>
//! </security>
//! ```
//!
//! The disco feature is `urn:xmpp:jingle:jet-stub:0` (XEP-0391 §6), a
//! different string from the element namespace.
//!
//! Since the stub proves nothing about who made it, [`StubEnvelope::open`]
//! reports the stanza sender's bare JID as
//! [`OpenedEnvelope::sender`]: the XEP-0391 §7 sender check then only checks
//! the stanza routing.

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jet_core::envelope::{EnvelopeBackend, OpenedEnvelope};
use jet_core::error::EnvelopeError;
use jet_core::jid::Jid;
use jet_core::minidom::{Element, Node};
use jet_core::{ns, SecretShape, TransportSecret};

/// The stub envelope: the transport secret in base64, in the clear.
/// **Provides no security**; tests and the demo only.
#[derive(Debug, Clone, Copy, Default)]
pub struct StubEnvelope;

impl StubEnvelope {
    /// A stub envelope backend.
    pub fn new() -> Self {
        StubEnvelope
    }

    /// The envelope element for `secret` (synchronous form of `seal`).
    pub fn envelope_for(secret: &TransportSecret) -> Element {
        let payload = STANDARD.encode(secret.to_bytes().as_slice());
        Element::builder("encrypted", ns::ENCRYPTION_STUB)
            .append(
                Element::builder("payload", ns::ENCRYPTION_STUB)
                    .append(payload)
                    .build(),
            )
            .build()
    }

    /// Reads the secret of `shape` out of a stub envelope element.
    pub fn secret_of(
        envelope: &Element,
        shape: SecretShape,
    ) -> Result<TransportSecret, EnvelopeError> {
        if !envelope.is("encrypted", ns::ENCRYPTION_STUB) {
            return Err(EnvelopeError::Malformed(format!(
                "expected <encrypted xmlns='{}'/>, got <{} xmlns='{}'/>",
                ns::ENCRYPTION_STUB,
                envelope.name(),
                envelope.ns()
            )));
        }
        let mut payload = None;
        for node in envelope.nodes() {
            match node {
                Node::Element(e) if e.is("payload", ns::ENCRYPTION_STUB) && payload.is_none() => {
                    payload = Some(e)
                }
                Node::Element(e) => {
                    return Err(EnvelopeError::Malformed(format!(
                        "unexpected <{}/> in the stub envelope",
                        e.name()
                    )))
                }
                Node::Text(t) if t.trim().is_empty() => {}
                Node::Text(_) => {
                    return Err(EnvelopeError::Malformed(
                        "unexpected text in the stub envelope".into(),
                    ))
                }
            }
        }
        let payload = payload.ok_or_else(|| {
            EnvelopeError::Malformed("the stub envelope has no <payload/>".into())
        })?;
        let text: String = payload.text().split_whitespace().collect();
        let bytes = zeroize::Zeroizing::new(
            STANDARD
                .decode(text.as_bytes())
                .map_err(|e| EnvelopeError::Malformed(format!("payload is not base64: {e}")))?,
        );
        Ok(shape.from_bytes(&bytes)?)
    }
}

#[async_trait]
impl EnvelopeBackend for StubEnvelope {
    fn envelope_type(&self) -> &'static str {
        ns::ENCRYPTION_STUB
    }

    fn disco_feature(&self) -> &'static str {
        ns::JET_STUB_FEATURE
    }

    /// Always `false`: the stub gives no confidentiality.
    fn is_secure(&self) -> bool {
        false
    }

    async fn seal(
        &self,
        secret: &TransportSecret,
        _recipient: &Jid,
    ) -> Result<Element, EnvelopeError> {
        Ok(Self::envelope_for(secret))
    }

    async fn open(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        shape: SecretShape,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        let secret = Self::secret_of(envelope, shape)?;
        Ok(OpenedEnvelope {
            secret,
            sender: stanza_sender.to_bare(),
            sender_key: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use jet_core::error::SecretError;

    /// AES-256-GCM's secret sizes, with 16-byte IVs accepted.
    const SIZES: SecretShape = SecretShape::new(32, 12, &[12, 16]);

    fn romeo() -> Jid {
        "romeo@montague.lit/orchard".parse().unwrap()
    }

    fn stub_with(payload: &str) -> Element {
        format!("<encrypted xmlns='urn:xmpp:encryption:stub:0'><payload>{payload}</payload></encrypted>")
            .parse()
            .unwrap()
    }

    #[tokio::test]
    async fn seal_open_round_trip() {
        let stub = StubEnvelope::new();
        assert!(!stub.is_secure());
        assert_eq!(stub.envelope_type(), "urn:xmpp:encryption:stub:0");
        assert_eq!(stub.disco_feature(), "urn:xmpp:jingle:jet-stub:0");
        let ts = SIZES.generate().unwrap();
        let juliet: Jid = "juliet@capulet.lit/balcony".parse().unwrap();
        let ee = stub.seal(&ts, &juliet).await.unwrap();
        assert!(ee.is("encrypted", ns::ENCRYPTION_STUB));
        let b64 = ee.get_child("payload", ns::ENCRYPTION_STUB).unwrap().text();
        assert_eq!(STANDARD.decode(b64).unwrap(), ts.to_bytes().as_slice());
        let opened = stub.open(&ee, &romeo(), SIZES).await.unwrap();
        assert_eq!(opened.secret, ts);
        assert_eq!(opened.sender.to_string(), "romeo@montague.lit");
        assert_eq!(opened.sender_key, None);
    }

    #[tokio::test]
    async fn sixteen_byte_iv_and_folded_base64_are_accepted() {
        let ts = TransportSecret::generate_with(32, 16).unwrap();
        let b64 = STANDARD.encode(ts.to_bytes().as_slice());
        let folded = format!("\n  {}\n  {}\n", &b64[..20], &b64[20..]);
        let opened = StubEnvelope
            .open(&stub_with(&folded), &romeo(), SIZES)
            .await
            .unwrap();
        assert_eq!(opened.secret, ts);
    }

    #[tokio::test]
    async fn malformed_envelopes_are_errors() {
        let s = StubEnvelope;
        let r = romeo();
        // Not base64.
        assert!(matches!(
            s.open(&stub_with("!!not base64!!"), &r, SIZES).await,
            Err(EnvelopeError::Malformed(_))
        ));
        // Wrong length (43 bytes).
        assert!(matches!(
            s.open(&stub_with(&STANDARD.encode([1u8; 43])), &r, SIZES)
                .await,
            Err(EnvelopeError::Secret(SecretError::Length { got: 43, .. }))
        ));
        // Empty payload.
        assert!(matches!(
            s.open(&stub_with(""), &r, SIZES).await,
            Err(EnvelopeError::Secret(SecretError::Length { got: 0, .. }))
        ));
        // No payload, wrong element, extra children.
        for xml in [
            "<encrypted xmlns='urn:xmpp:encryption:stub:0'/>",
            "<encrypted xmlns='eu.siacs.conversations.axolotl'><payload>AA==</payload></encrypted>",
            "<encrypted xmlns='urn:xmpp:encryption:stub:0'><payload>AA==</payload><payload>AA==</payload></encrypted>",
            "<encrypted xmlns='urn:xmpp:encryption:stub:0'>junk<payload>AA==</payload></encrypted>",
        ] {
            let el: Element = xml.parse().unwrap();
            assert!(
                matches!(s.open(&el, &r, SIZES).await, Err(EnvelopeError::Malformed(_))),
                "{xml}"
            );
        }
    }

    #[tokio::test]
    async fn iv_equal_to_key_is_refused() {
        let mut bytes = vec![0x42u8; 32];
        bytes.extend_from_slice(&[0x42u8; 12]);
        assert!(matches!(
            StubEnvelope
                .open(&stub_with(&STANDARD.encode(&bytes)), &romeo(), SIZES)
                .await,
            Err(EnvelopeError::Secret(SecretError::IvEqualsKey))
        ));
    }
}
