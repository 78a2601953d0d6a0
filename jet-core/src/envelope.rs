//! The envelope-backend trait: how the transport secret travels.
//!
//! XEP-0391 §3: the initiator encrypts TS with an established end-to-end
//! session (OMEMO, OX, or the stub for tests) and puts the resulting envelope
//! element (EE) into `<security/>`. The responder opens EE and **must check
//! that it comes from the initiator** (§7): [`OpenedEnvelope::sender`] is the
//! identity the envelope itself proves, which the session compares with the
//! initiator.

use async_trait::async_trait;
use jid::{BareJid, Jid};
use minidom::Element;

use crate::error::EnvelopeError;
use crate::secret::{SecretShape, TransportSecret};

/// What opening an envelope yields.
#[derive(Debug)]
pub struct OpenedEnvelope {
    /// The transport secret.
    pub secret: TransportSecret,
    /// The bare JID the envelope proves it comes from (for the stub, which
    /// proves nothing, the stanza sender).
    pub sender: BareJid,
    /// The sender's device or key the envelope was made with, when the
    /// envelope has one (OMEMO device id, OpenPGP fingerprint).
    pub sender_key: Option<String>,
}

/// The Jingle session an envelope is sealed for or opened in. Envelopes
/// whose format can carry it bind it into the sealed data (JET-OX: the
/// session id and content name in the signed `<jet-secret/>`), so that an
/// envelope lifted into another session is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeContext {
    /// The Jingle session id.
    pub sid: String,
    /// The content name.
    pub content: String,
    /// Whether this side encrypts the stream under the secret (the
    /// initiator of an offer, or the responder of a file request). A
    /// responder that encrypts must refuse secrets in forms that already
    /// encrypted something else (Libervia's OMEMO payload form).
    pub we_encrypt: bool,
}

impl EnvelopeContext {
    /// The context of content `content` of session `sid`.
    pub fn new(sid: impl Into<String>, content: impl Into<String>, we_encrypt: bool) -> Self {
        EnvelopeContext {
            sid: sid.into(),
            content: content.into(),
            we_encrypt,
        }
    }
}

/// An end-to-end encryption method that seals and opens a [`TransportSecret`].
#[async_trait]
pub trait EnvelopeBackend: Send + Sync {
    /// The `type` attribute of `<security/>`, e.g. `urn:xmpp:encryption:stub:0`.
    fn envelope_type(&self) -> &'static str;
    /// The disco feature announcing support, e.g. `urn:xmpp:jingle:jet-stub:0`.
    fn disco_feature(&self) -> &'static str;
    /// Whether the envelope gives any confidentiality (false for the stub).
    fn is_secure(&self) -> bool;
    /// Seals `secret` for `recipient` (a full JID when known): returns EE.
    async fn seal(
        &self,
        secret: &TransportSecret,
        recipient: &Jid,
    ) -> Result<Element, EnvelopeError>;
    /// Opens EE received in a stanza from `stanza_sender`, for a session
    /// whose cipher's secret has `shape` (its key and IV lengths say how to
    /// read the secret; [`crate::cipher::CipherSuite::secret_shape`]).
    async fn open(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        shape: SecretShape,
    ) -> Result<OpenedEnvelope, EnvelopeError>;
    /// Seals `secret` for `recipient` in the session `context`; what a
    /// session uses. The default ignores the context ([`Self::seal`]).
    async fn seal_for(
        &self,
        secret: &TransportSecret,
        recipient: &Jid,
        context: &EnvelopeContext,
    ) -> Result<Element, EnvelopeError> {
        let _ = context;
        self.seal(secret, recipient).await
    }
    /// Opens EE in the session `context`; what a session uses. The default
    /// ignores the context ([`Self::open`]).
    async fn open_for(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        shape: SecretShape,
        context: &EnvelopeContext,
    ) -> Result<OpenedEnvelope, EnvelopeError> {
        let _ = context;
        self.open(envelope, stanza_sender, shape).await
    }
}
