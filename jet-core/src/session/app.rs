//! How a Jingle application (file transfer, an echo test, ...) plugs into a
//! session.
//!
//! The application knows its `<description/>` and what to do with bytes; it
//! knows nothing of JET, transports or stanzas. JET is added by
//! configuration ([`JetConfig`](super::JetConfig)): the stream handed to
//! [`Application::run`] is already wrapped in the negotiated cipher, like a
//! libp2p transport upgrade.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jid::FullJid;
use minidom::Element;

use crate::error::Error;
use crate::ft::{FileHash, HashAlgo, Hasher};
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
    /// What the driver learns while the session runs (`session-info`
    /// payloads, ciphertext hashes).
    pub notes: Arc<SessionNotes>,
    /// The session's checksum key, derived from its transport secret
    /// (`None` without JET): what a resumed transfer's checksum is keyed
    /// with, so the server can neither read nor forge it.
    pub checksum_key: Option<crate::ft::ChecksumKey>,
}

/// What the driver learns about a session while its application runs:
/// the `session-info` payloads the peer sends (XEP-0234 `<checksum/>`
/// after the data, ...) and, when the application asks for them
/// ([`Application::wants_wire_hashes`]), SHA-256 and SHA-1 of the
/// ciphertext read off the transport (Conversations' checksum is over
/// the bytes it wrote, not the file).
#[derive(Default)]
pub struct SessionNotes {
    infos: Mutex<Vec<Element>>,
    wire: Mutex<Option<[Hasher; 2]>>,
    /// Woken when a payload is recorded.
    added: tokio::sync::Notify,
}

impl std::fmt::Debug for SessionNotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionNotes")
            .field("infos", &self.infos.lock().map(|i| i.len()).unwrap_or(0))
            .finish()
    }
}

impl SessionNotes {
    /// Records a `session-info` payload.
    pub fn add_info(&self, payload: Element) {
        if let Ok(mut i) = self.infos.lock() {
            i.push(payload);
        }
        self.added.notify_waiters();
    }

    /// Completes at the next [`add_info`](Self::add_info) after the
    /// future is enabled (`Notified::enable`) or first polled: enable it,
    /// then look at [`infos`](Self::infos), then await it, and no payload
    /// is missed.
    pub fn info_added(&self) -> tokio::sync::futures::Notified<'_> {
        self.added.notified()
    }

    /// The `session-info` payloads so far, oldest first.
    pub fn infos(&self) -> Vec<Element> {
        self.infos.lock().map(|i| i.clone()).unwrap_or_default()
    }

    /// Starts hashing the ciphertext (SHA-256 and SHA-1).
    pub fn hash_wire(&self) {
        if let Ok(mut w) = self.wire.lock() {
            w.get_or_insert_with(|| [Hasher::new(HashAlgo::Sha256), Hasher::new(HashAlgo::Sha1)]);
        }
    }

    /// Adds ciphertext bytes read (a no-op unless [`hash_wire`](Self::hash_wire)).
    pub fn update_wire(&self, data: &[u8]) {
        if let Ok(mut w) = self.wire.lock() {
            if let Some(hs) = w.as_mut() {
                for h in hs.iter_mut() {
                    h.update(data);
                }
            }
        }
    }

    /// The hash of the ciphertext read so far in `algo`, if it was hashed.
    pub fn wire_hash(&self, algo: HashAlgo) -> Option<FileHash> {
        let w = self.wire.lock().ok()?;
        w.as_ref()?
            .iter()
            .find(|h| h.algo() == algo)
            .map(|h| h.clone().finish())
    }
}

/// A Jingle application: what runs over the established stream, and what
/// it returns. The side that offers adds [`Initiator`], the side that
/// answers adds [`Acceptor`]; an application implements only the halves it
/// plays. The driver hands back [`Output`](Self::Output) from
/// [`Driver::initiate`](crate::driver::Driver::initiate) and
/// [`Incoming::accept`](crate::driver::Incoming::accept) once the session
/// ended well.
#[async_trait]
pub trait Application: Send + Sync + 'static {
    /// What a session that ended well yields (bytes sent, the file
    /// received, ...).
    type Output: Send + 'static;

    /// Runs over the established byte stream, which the JET layer already
    /// encrypts (writes) and decrypts (reads). For single-message ciphers a
    /// read of end-of-stream (`Ok(0)`) comes only after the final tag has
    /// checked; a failed check is a read error. Received bytes are not
    /// authenticated before that: never commit them before end-of-stream.
    ///
    /// A sender's `shutdown` that fails (the receiver, which has
    /// everything, already dropped its side) returns `Ok` here: the driver
    /// holds that error back and lets the receiver's verdict decide.
    async fn run(&self, ctx: AppContext, stream: BoxedStream) -> Result<Self::Output, Error>;

    /// Receiving side: the plaintext bytes this session carries, when the
    /// application knows (XEP-0234: the `<size>` less the range offset).
    /// The JET layer then ends the stream at exactly that many bytes and
    /// the tag, without waiting for the sender to close it, as deployed
    /// receivers do; a byte more is an error. Default: unknown (the stream
    /// ends when the sender closes it).
    fn expected_len(&self, _ctx: &AppContext) -> Option<u64> {
        None
    }

    /// Receiving side: whether the driver should hash the ciphertext read
    /// ([`SessionNotes::wire_hash`]), for a peer whose checksum covers the
    /// bytes on the wire. Default: no.
    fn wants_wire_hashes(&self, _ctx: &AppContext) -> bool {
        false
    }

    /// The `session-info` payload the receiving side sends once all data is
    /// in and authenticated, just before it ends the session with `success`
    /// (XEP-0234 `<received/>`). Default: none.
    fn on_received(&self, _ctx: &AppContext) -> Option<Element> {
        None
    }

    /// The `session-info` payload the sending side sends once
    /// [`run`](Self::run) wrote all its data, before it waits for the
    /// receiver's verdict (XEP-0234 `<checksum/>` of a file hashed while
    /// it was sent). Default: none.
    fn on_sent(&self, _ctx: &AppContext) -> Option<Element> {
        None
    }

    /// Time the receiver may need for its verdict beyond the driver's
    /// `finish_timeout`, once [`run`](Self::run) wrote all its data (a
    /// receiver that resumed a large file hashes all of it at the end).
    /// Default: none.
    fn verdict_grace(&self, _ctx: &AppContext) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// The initiating half of an [`Application`]: what it offers.
pub trait Initiator: Application {
    /// The description to offer, and who sends data.
    fn offer(&self) -> Result<Offer, Error>;
}

/// The accepting half of an [`Application`]: which offers it takes.
pub trait Acceptor: Application {
    /// The namespace of the `<description/>` it answers, e.g.
    /// `urn:xmpp:jingle:apps:file-transfer:5`; other offers are refused
    /// with `unsupported-applications` before [`decide`](Self::decide).
    fn namespace(&self) -> &'static str;

    /// Accept or refuse an offered description.
    fn decide(&self, description: &Element, senders: Senders) -> Decision;
}
