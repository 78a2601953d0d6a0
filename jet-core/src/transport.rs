//! The transport-adapter traits: negotiate a Jingle `<transport/>`, hand over
//! a plain byte stream.
//!
//! An adapter (S5B, IBB) knows nothing about encryption: the JET layer wraps
//! the [`BoxedStream`] it returns, in the shape of a libp2p transport upgrade.
//!
//! The session driver uses an adapter like this:
//! - initiator: [`TransportAdapter::offer`] → put
//!   [`TransportNegotiation::local_transport`] into `session-initiate` → on
//!   `session-accept`, [`TransportNegotiation::set_remote`] →
//!   [`TransportNegotiation::establish`];
//! - responder: [`TransportAdapter::answer`] with the offered `<transport/>` →
//!   `local_transport` into `session-accept` → `establish`.
//!
//! During `establish` the adapter exchanges `transport-info` through
//! [`TransportSignals`] (S5B `candidate-used`, `activated`, ...) and may use
//! the [`StanzaChannel`] directly (IBB data, proxy activation).

#[cfg(feature = "xml")]
use std::sync::Arc;

#[cfg(feature = "xml")]
use async_trait::async_trait;
#[cfg(feature = "xml")]
use jid::FullJid;
#[cfg(feature = "xml")]
use minidom::Element;
use tokio::io::{AsyncRead, AsyncWrite};

#[cfg(feature = "xml")]
use crate::channel::StanzaChannel;
#[cfg(feature = "xml")]
use crate::error::TransportError;

/// A bidirectional byte stream handed over by a transport.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// A boxed [`ByteStream`].
pub type BoxedStream = Box<dyn ByteStream>;

/// Which side of the Jingle session we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent `session-initiate`.
    Initiator,
    /// We received it.
    Responder,
}

#[cfg(feature = "xml")]
/// What an adapter needs to know about the session it serves.
#[derive(Clone)]
pub struct TransportContext {
    /// The connection.
    pub channel: Arc<dyn StanzaChannel>,
    /// Our full JID.
    pub local: FullJid,
    /// The peer's full JID.
    pub peer: FullJid,
    /// Our role in the Jingle session.
    pub role: Role,
    /// The Jingle session id.
    pub session_sid: String,
    /// The content name this transport belongs to.
    pub content_name: String,
    /// Whether we send the data (file offer: initiator; request: responder).
    pub we_send: bool,
}

#[cfg(feature = "xml")]
/// The signalling path of one transport during `establish`.
#[async_trait]
pub trait TransportSignals: Send {
    /// Sends `transport-info` with this `<transport/>` for our content.
    async fn send_info(&mut self, transport: Element) -> Result<(), TransportError>;
    /// Waits for the next `transport-info` `<transport/>` of our content.
    async fn recv_info(&mut self) -> Result<Element, TransportError>;
}

#[cfg(feature = "xml")]
/// A transport method, e.g. S5B or IBB.
#[async_trait]
pub trait TransportAdapter: Send + Sync {
    /// The `<transport/>` namespace, e.g. `urn:xmpp:jingle:transports:s5b:1`.
    fn namespace(&self) -> &'static str;
    /// Initiator (or the side sending `transport-replace`): our offer.
    async fn offer(
        &self,
        ctx: &TransportContext,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError>;
    /// Responder (or the side receiving `transport-replace`): answer `offer`.
    async fn answer(
        &self,
        ctx: &TransportContext,
        offer: &Element,
    ) -> Result<Box<dyn TransportNegotiation>, TransportError>;
}

#[cfg(feature = "xml")]
/// One transport being negotiated.
#[async_trait]
pub trait TransportNegotiation: Send {
    /// Our `<transport/>` element for session-initiate, session-accept,
    /// transport-replace or transport-accept.
    fn local_transport(&self) -> Element;
    /// The offerer learns the answer (from session-accept or transport-accept).
    fn set_remote(&mut self, remote: &Element) -> Result<(), TransportError>;
    /// Runs the negotiation to an open byte stream.
    async fn establish(
        self: Box<Self>,
        signals: &mut dyn TransportSignals,
    ) -> Result<BoxedStream, TransportError>;
}
