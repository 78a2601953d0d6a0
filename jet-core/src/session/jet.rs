//! JET by configuration: which ciphers and envelopes we speak, and the
//! XEP-0391 steps around the engine (seal, open, sender check).
//!
//! An application never sees any of this: the driver (or a test acting as
//! one) seals a fresh [`TransportSecret`] into each content's
//! [`Security`] before `session-initiate`, and the responder opens it and
//! checks its sender (XEP-0391 §7) before it accepts.

use std::fmt;
use std::sync::Arc;

use xmpp_parsers::jid::Jid;

use crate::cipher::CipherSuite;
use crate::envelope::{EnvelopeBackend, EnvelopeContext, OpenedEnvelope};
use crate::error::EnvelopeError;
use crate::error::Error;
use crate::ns;
use crate::replay::{secret_digest, UsedSecrets};
use crate::secret::TransportSecret;
use crate::security::Security;

/// The JET configuration: cipher suites and envelope backends, both in
/// preference order (the first of each is what we offer).
#[derive(Clone)]
pub struct JetConfig {
    /// Cipher suites we accept, preferred first (from jet-ciphers, or a
    /// caller's own). jet-core does not depend on jet-ciphers.
    pub suites: Vec<&'static dyn CipherSuite>,
    /// Envelope backends we accept, preferred first.
    pub envelopes: Vec<Arc<dyn EnvelopeBackend>>,
    /// Refuse sessions without JET (default `true`). When `false`, a peer may
    /// still offer plaintext contents; an offered JET that fails is an
    /// error either way (XEP-0391 §7: never fall back to plaintext).
    pub require_encryption: bool,
    /// Write cipher URNs without their `:0` suffix, as Dino and
    /// Conversations do (Conversations accepts only that form). Default
    /// `false`: the form of the spec's cipher table. Both forms are always
    /// accepted.
    pub unversioned_cipher_urns: bool,
    /// The record of transport secrets already used (see [`crate::replay`]):
    /// every secret sealed or opened is recorded, and one seen before is
    /// refused with `security-error`. `None` (the default of
    /// [`JetConfig::new`]) records nothing: set it wherever a replayed
    /// offer could reach a responder (jet-cli keeps one per account).
    pub used_secrets: Option<Arc<dyn UsedSecrets>>,
}

impl fmt::Debug for JetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetConfig")
            .field(
                "suites",
                &self.suites.iter().map(|s| s.urn()).collect::<Vec<_>>(),
            )
            .field(
                "envelopes",
                &self
                    .envelopes
                    .iter()
                    .map(|e| e.envelope_type())
                    .collect::<Vec<_>>(),
            )
            .field("require_encryption", &self.require_encryption)
            .field("unversioned_cipher_urns", &self.unversioned_cipher_urns)
            .field("used_secrets", &self.used_secrets.is_some())
            .finish()
    }
}

impl JetConfig {
    /// A configuration that requires encryption.
    pub fn new(
        suites: Vec<&'static dyn CipherSuite>,
        envelopes: Vec<Arc<dyn EnvelopeBackend>>,
    ) -> Self {
        JetConfig {
            suites,
            envelopes,
            require_encryption: true,
            unversioned_cipher_urns: false,
            used_secrets: None,
        }
    }

    /// The suite for `urn`, ignoring the `:0` suffix.
    pub fn suite(&self, urn: &str) -> Option<&'static dyn CipherSuite> {
        self.suites
            .iter()
            .copied()
            .find(|s| ns::same_cipher(s.urn(), urn))
    }

    /// The envelope backend for `type`.
    pub fn envelope(&self, envelope_type: &str) -> Option<&Arc<dyn EnvelopeBackend>> {
        self.envelopes
            .iter()
            .find(|e| e.envelope_type() == envelope_type.trim())
    }

    /// The cipher URNs the engine should accept.
    pub fn cipher_urns(&self) -> Vec<String> {
        self.suites.iter().map(|s| s.urn().to_string()).collect()
    }

    /// The envelope types the engine should accept.
    pub fn envelope_types(&self) -> Vec<String> {
        self.envelopes
            .iter()
            .map(|e| e.envelope_type().to_string())
            .collect()
    }

    /// Initiator side (XEP-0391 §3): generates a fresh transport secret for
    /// `suite`, records it as used, seals it with the preferred envelope for
    /// `recipient` in the session `context`, and returns the `<security/>`
    /// for the context's content and the secret.
    pub async fn seal(
        &self,
        context: &EnvelopeContext,
        suite: &'static dyn CipherSuite,
        recipient: &Jid,
    ) -> Result<(Security, TransportSecret), Error> {
        let envelope = self
            .envelopes
            .first()
            .ok_or_else(|| Error::UnsupportedEnvelope("no envelope backend configured".into()))?;
        let secret = TransportSecret::generate(suite)?;
        self.record_use(&secret)?;
        let ee = envelope.seal_for(&secret, recipient, context).await?;
        let urn = if self.unversioned_cipher_urns {
            ns::normalize_cipher_urn(suite.urn())
        } else {
            suite.urn()
        };
        Ok((
            Security::new(&context.content, urn, envelope.envelope_type(), ee),
            secret,
        ))
    }

    /// Responder side (XEP-0391 §3, §7): finds the suite and envelope,
    /// opens the envelope received in a stanza from `stanza_sender` in the
    /// session `context`, checks that it comes from `initiator`, and
    /// records the secret as used, refusing one used before (a replay).
    /// Any failure is a `security-error` for the session; there is no
    /// plaintext fallback.
    pub async fn open(
        &self,
        context: &EnvelopeContext,
        security: &Security,
        initiator: &Jid,
        stanza_sender: &Jid,
    ) -> Result<(&'static dyn CipherSuite, TransportSecret), Error> {
        let suite = self
            .suite(&security.cipher)
            .ok_or_else(|| Error::UnsupportedCipher(security.cipher.clone()))?;
        let envelope = self
            .envelope(&security.envelope_type)
            .ok_or_else(|| Error::UnsupportedEnvelope(security.envelope_type.clone()))?;
        let opened = envelope
            .open_for(
                &security.envelope,
                stanza_sender,
                suite.secret_shape(),
                context,
            )
            .await?;
        verify_sender(initiator, &opened)?;
        self.record_use(&opened.secret)?;
        Ok((suite, opened.secret))
    }

    /// Records `secret` in [`Self::used_secrets`]; an error if it was used
    /// before or the record fails.
    fn record_use(&self, secret: &TransportSecret) -> Result<(), Error> {
        let Some(record) = &self.used_secrets else {
            return Ok(());
        };
        match record.record(&secret_digest(secret)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(EnvelopeError::Open(
                "this transport secret was already used (a replayed session-initiate?): \
                 refused, a key and IV never encrypt twice"
                    .into(),
            )
            .into()),
            Err(e) => Err(EnvelopeError::Store(format!(
                "the record of used transport secrets: {e}"
            ))
            .into()),
        }
    }
}

/// XEP-0391 §7: "The responder MUST check whether the envelope element
/// belongs to the initiator". Compares the bare JID the envelope proves with
/// the initiator's bare JID.
pub fn verify_sender(initiator: &Jid, opened: &OpenedEnvelope) -> Result<(), Error> {
    let expected = initiator.to_bare();
    if opened.sender != expected {
        return Err(Error::SenderMismatch {
            expected: expected.to_string(),
            got: opened.sender.to_string(),
        });
    }
    Ok(())
}
