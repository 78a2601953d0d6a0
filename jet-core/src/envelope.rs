//! The envelope-backend trait: how the transport secret travels.
//!
//! XEP-0391 §3: the initiator encrypts TS with an established end-to-end
//! session (OMEMO, OX, or the stub for tests) and puts the resulting envelope
//! element (EE) into `<security/>`. The responder opens EE and **must check
//! that it comes from the initiator** (§7): [`OpenedEnvelope::sender`] is the
//! identity the envelope itself proves, which the session compares with the
//! initiator.

use async_trait::async_trait;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;

use crate::cipher::CipherSuite;
use crate::error::EnvelopeError;
use crate::secret::TransportSecret;

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
    /// Opens EE received in a stanza from `stanza_sender`, for a session using
    /// `suite` (whose key and IV lengths say how to read the secret).
    async fn open(
        &self,
        envelope: &Element,
        stanza_sender: &Jid,
        suite: &dyn CipherSuite,
    ) -> Result<OpenedEnvelope, EnvelopeError>;
}
