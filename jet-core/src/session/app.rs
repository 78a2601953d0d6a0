//! How a Jingle application (file transfer, an echo test, ...) plugs into a
//! session.
//!
//! The application knows its `<description/>` and what to do with bytes; it
//! knows nothing of JET, transports or stanzas. JET is added by
//! configuration ([`JetConfig`](super::JetConfig)): the stream handed to
//! [`Application::run`] is already wrapped in the negotiated cipher, like a
//! libp2p transport upgrade.

use async_trait::async_trait;
use xmpp_parsers::jid::FullJid;
use xmpp_parsers::minidom::Element;

use crate::error::Error;
use crate::jingle::{Reason, Senders};
use crate::transport::{BoxedStream, Role};

/// What the initiator offers for one content.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The `<description/>`.
    pub description: Element,
    /// Who sends data (file offer: initiator; file request: responder).
    pub senders: Senders,
}

/// The responder application's answer to an offered description.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Accept; the description to put into `session-accept` (usually the
    /// offered one, possibly narrowed, e.g. a `<range/>`).
    Accept(Element),
    /// Refuse with a Jingle reason (e.g. `decline`,
    /// `unsupported-applications`) and an optional text.
    Reject(Reason, Option<String>),
}

/// What the application learns about its session when it runs.
#[derive(Debug, Clone)]
pub struct AppContext {
    /// Our role in the Jingle session.
    pub role: Role,
    /// The peer.
    pub peer: FullJid,
    /// The session id.
    pub sid: String,
    /// The content name.
    pub content: String,
    /// The description as accepted (the responder's answer).
    pub description: Element,
    /// Whether we send data on this content.
    pub we_send: bool,
    /// Whether we receive data on this content.
    pub we_receive: bool,
    /// The negotiated cipher's framing (`None` without JET): tells a
    /// receiver whether bytes it reads are authenticated before the end of
    /// the stream (chunked) or only at the end (single message).
    pub framing: Option<crate::cipher::Framing>,
}

/// A Jingle application. Object safe: sessions hold `Arc<dyn Application>`.
#[async_trait]
pub trait Application: Send + Sync {
    /// The namespace of its `<description/>`, e.g.
    /// `urn:xmpp:jingle:apps:file-transfer:5`.
    fn namespace(&self) -> &'static str;

    /// Initiator: the description to offer.
    fn offer(&self) -> Result<Offer, Error>;

    /// Responder: accept or refuse an offered description.
    fn decide(&self, description: &Element, senders: Senders) -> Decision;

    /// Runs over the established byte stream, which the JET layer already
    /// encrypts (writes) and decrypts (reads). For single-message ciphers a
    /// read of end-of-stream (`Ok(0)`) comes only after the final tag has
    /// checked; a failed check is a read error. Received bytes are not
    /// authenticated before that: never commit them before end-of-stream.
    async fn run(&self, ctx: AppContext, stream: BoxedStream) -> Result<(), Error>;

    /// Receiving side: the plaintext bytes this session carries, when the
    /// application knows (XEP-0234: the `<size>` less the range offset).
    /// The JET layer then ends the stream at exactly that many bytes and
    /// the tag, without waiting for the sender to close it, as deployed
    /// receivers do; a byte more is an error. Default: unknown (the stream
    /// ends when the sender closes it).
    fn expected_len(&self, _ctx: &AppContext) -> Option<u64> {
        None
    }

    /// The `session-info` payload the receiving side sends once all data is
    /// in and authenticated, just before it ends the session with `success`
    /// (XEP-0234 `<received/>`). Default: none.
    fn on_received(&self, _ctx: &AppContext) -> Option<Element> {
        None
    }
}
