//! Errors of jet-core and of the traits other crates implement.
//!
//! Every error knows the Jingle `<reason/>` (XEP-0166 §7.4) a peer should see
//! when it ends a session: see [`JingleReason`]. Decryption failures are
//! deliberately opaque ([`CipherError::Authentication`]): they never say which
//! byte or which check failed.

pub use crate::vocab::Reason;
use thiserror::Error;

/// Maps an error to the Jingle reason sent to the peer when it ends a session.
pub trait JingleReason {
    /// The `<reason/>` condition for `session-terminate`.
    fn jingle_reason(&self) -> Reason;
}

/// Errors of a cipher suite or of the streaming formats.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CipherError {
    /// The data did not authenticate: tampered, truncated, reordered, appended
    /// to, or the wrong key. Deliberately says nothing more.
    #[error("authentication failed: the data was tampered with, truncated, or the key is wrong")]
    Authentication,
    /// The stream ended before its final authentication tag.
    #[error("the encrypted stream is truncated: it ended before its authentication tag")]
    Truncated,
    /// More data than the format can protect under one key and IV.
    #[error("the stream exceeds the cipher's limit of {limit} bytes for one message; use the chunked mode for larger data")]
    LimitExceeded {
        /// The limit in plaintext bytes.
        limit: u64,
    },
    /// A key of the wrong length for the suite.
    #[error("wrong key length: expected {expected} bytes, got {got}")]
    KeyLength {
        /// Bytes the suite needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// An IV of a length the suite does not accept.
    #[error("wrong IV length: {got} bytes is not accepted by {suite}")]
    IvLength {
        /// The suite's URN.
        suite: &'static str,
        /// Bytes given.
        got: usize,
    },
    /// The stream was used after `finish`.
    #[error("the cipher stream is already finished")]
    Finished,
    /// A URN the registry does not know.
    #[error("unknown cipher {0:?}")]
    UnknownCipher(String),
    /// A start position that is not valid for the format (e.g. not a chunk boundary).
    #[error("invalid stream position: {0}")]
    Position(String),
    /// The cryptographic library refused an operation that is not about the
    /// data (e.g. OpenSSL could not set up a cipher context).
    #[error("the cipher backend failed: {0}")]
    Backend(String),
}

impl JingleReason for CipherError {
    fn jingle_reason(&self) -> Reason {
        Reason::SecurityError
    }
}

/// Errors about a [`TransportSecret`](crate::TransportSecret).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretError {
    /// The serialized secret has an unexpected length.
    #[error("transport secret has {got} bytes; expected a {key_len}-byte key followed by an IV of {iv_lens:?} bytes")]
    Length {
        /// Bytes received.
        got: usize,
        /// Key bytes expected.
        key_len: usize,
        /// IV lengths accepted.
        iv_lens: Vec<usize>,
    },
    /// The IV equals (a prefix of) the key, forbidden by XEP-0391 §7.
    #[error("the IV equals the key (XEP-0391 §7 forbids it)")]
    IvEqualsKey,
    /// A key or IV of length zero.
    #[error("empty key or IV")]
    Empty,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

impl JingleReason for SecretError {
    fn jingle_reason(&self) -> Reason {
        Reason::SecurityError
    }
}

/// Errors of an envelope backend (stub, OMEMO, OX).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The envelope element is not of the expected form.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The envelope could not be decrypted or verified.
    #[error("the envelope could not be opened: {0}")]
    Open(String),
    /// The envelope is valid but does not come from whom it must.
    #[error("the envelope comes from {got}, not from the session initiator {expected}")]
    WrongSender {
        /// Who it must come from.
        expected: String,
        /// Who it comes from.
        got: String,
    },
    /// The sender's key or device is not trusted under the current policy.
    #[error("untrusted key: {0}")]
    Untrusted(String),
    /// We have no session or key for the recipient.
    #[error("no key for {0}: cannot seal the transport secret for them")]
    NoKey(String),
    /// The transport secret inside is invalid.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A stanza exchange the envelope needed failed (PEP, bundles).
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// A storage failure.
    #[error("envelope store: {0}")]
    Store(String),
}

impl JingleReason for EnvelopeError {
    fn jingle_reason(&self) -> Reason {
        Reason::SecurityError
    }
}

/// Errors of a transport adapter (S5B, IBB).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No candidate worked on either side.
    #[error("no transport candidate could be connected: {0}")]
    NoCandidate(String),
    /// The peer sent something we cannot accept.
    #[error("transport protocol error: {0}")]
    Protocol(String),
    /// A wait ran out.
    #[error("transport timed out: {0}")]
    Timeout(String),
    /// The connection broke.
    #[error("transport I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A stanza exchange failed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The peer closed or aborted the transport.
    #[error("the transport was closed by the peer: {0}")]
    Closed(String),
}

impl JingleReason for TransportError {
    fn jingle_reason(&self) -> Reason {
        match self {
            TransportError::NoCandidate(_) => Reason::ConnectivityError,
            TransportError::Timeout(_) => Reason::Timeout,
            TransportError::Protocol(_) => Reason::FailedTransport,
            _ => Reason::FailedTransport,
        }
    }
}

/// Errors of a stanza channel (the XMPP connection or the in-memory router).
#[derive(Debug, Error, Clone)]
#[non_exhaustive]
pub enum ChannelError {
    /// The peer answered an IQ with an error; `condition` is the RFC 6120
    /// condition (e.g. `service-unavailable`), `text` the optional text.
    #[error("the peer answered with an error: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    StanzaError {
        /// The error type (`cancel`, `modify`, `auth`, `wait`).
        error_type: String,
        /// The defined condition.
        condition: String,
        /// Optional human-readable text.
        text: Option<String>,
    },
    /// The channel is closed (disconnected).
    #[error("the XMPP connection is closed")]
    Closed,
    /// No answer within the caller's deadline.
    #[error("no answer from {0} in time")]
    Timeout(String),
    /// The recipient is not reachable (offline, unknown).
    #[error("recipient unavailable: {0}")]
    Unavailable(String),
    /// A stanza that cannot be sent or that made no sense.
    #[error("invalid stanza: {0}")]
    Invalid(String),
}

impl JingleReason for ChannelError {
    fn jingle_reason(&self) -> Reason {
        match self {
            ChannelError::Timeout(_) => Reason::Timeout,
            _ => Reason::ConnectivityError,
        }
    }
}

/// Errors reading XML elements (`<security/>`, Jingle, file descriptions).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElementError {
    /// A required attribute is missing.
    #[error("<{element}/> lacks the required attribute {attribute:?}")]
    MissingAttribute {
        /// Element name.
        element: &'static str,
        /// Attribute name.
        attribute: &'static str,
    },
    /// A required child is missing.
    #[error("<{element}/> lacks its {child} child")]
    MissingChild {
        /// Element name.
        element: &'static str,
        /// What was expected.
        child: &'static str,
    },
    /// The element is not the one expected.
    #[error("expected <{expected}/>, got <{got}/>")]
    WrongElement {
        /// Expected `{ns}name`.
        expected: String,
        /// Got `{ns}name`.
        got: String,
    },
    /// Anything else that makes the element unreadable.
    #[error("invalid <{element}/>: {message}")]
    Invalid {
        /// Element name.
        element: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl JingleReason for ElementError {
    fn jingle_reason(&self) -> Reason {
        Reason::FailedApplication
    }
}

/// The top-level error of jet-core: anything that ends a session.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Cipher or streaming format failure.
    #[error(transparent)]
    Cipher(#[from] CipherError),
    /// Bad transport secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Envelope failure.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// Transport failure.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Stanza channel failure.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// Unreadable element.
    #[error(transparent)]
    Element(#[from] ElementError),
    /// A `<security/>` element was present but could not be read. JET never
    /// treats this as "no encryption".
    #[error("the peer offered JET encryption that cannot be read: {0}")]
    UnreadableSecurity(String),
    /// Encryption is required by policy but the peer offered a content
    /// without JET `<security/>`.
    #[error("encryption is required but the peer offered content {0:?} without JET")]
    MissingSecurity(String),
    /// The peer wants a cipher we do not support.
    #[error("unsupported cipher {0:?}")]
    UnsupportedCipher(String),
    /// The peer wants an envelope type we do not support.
    #[error("unsupported envelope type {0:?}")]
    UnsupportedEnvelope(String),
    /// The envelope does not come from the session initiator (XEP-0391 §7).
    #[error("the transport secret does not come from the session initiator: expected {expected}, got {got}")]
    SenderMismatch {
        /// The initiator.
        expected: String,
        /// Who sealed the envelope.
        got: String,
    },
    /// The peer does not support JET (or our envelope) according to disco.
    #[error("the peer does not support {0}")]
    PeerUnsupported(String),
    /// The peer declined.
    #[error("the peer declined the session")]
    Declined,
    /// Our application refused the peer's offer (its decision, e.g. a file
    /// over the size limit); the session ended with `reason`.
    #[error("refused the offer ({reason}){}", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    Refused {
        /// The reason element name sent to the peer.
        reason: String,
        /// The text sent with it.
        text: Option<String>,
    },
    /// The peer ended the session with a reason.
    #[error("the peer ended the session: {reason}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Terminated {
        /// The reason element name.
        reason: String,
        /// Optional text.
        text: Option<String>,
    },
    /// A Jingle protocol violation by the peer.
    #[error("Jingle protocol error: {0}")]
    Protocol(String),
    /// A wait ran out.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// Local I/O (files).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The application (e.g. file transfer) failed.
    #[error("application error: {0}")]
    Application(String),
}

impl JingleReason for Error {
    fn jingle_reason(&self) -> Reason {
        match self {
            Error::Cipher(e) => e.jingle_reason(),
            Error::Secret(e) => e.jingle_reason(),
            Error::Envelope(e) => e.jingle_reason(),
            Error::Transport(e) => e.jingle_reason(),
            Error::Channel(e) => e.jingle_reason(),
            Error::Element(e) => e.jingle_reason(),
            Error::UnreadableSecurity(_)
            | Error::MissingSecurity(_)
            | Error::UnsupportedCipher(_)
            | Error::UnsupportedEnvelope(_)
            | Error::SenderMismatch { .. }
            | Error::PeerUnsupported(_) => Reason::SecurityError,
            Error::Declined | Error::Refused { .. } => Reason::Decline,
            Error::Terminated { .. } => Reason::Cancel,
            Error::Protocol(_) => Reason::GeneralError,
            Error::Timeout(_) => Reason::Timeout,
            Error::Io(_) | Error::Application(_) => Reason::FailedApplication,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_failures_map_to_security_error() {
        assert_eq!(
            Error::from(CipherError::Authentication).jingle_reason(),
            Reason::SecurityError
        );
        assert_eq!(
            Error::SenderMismatch {
                expected: "a@x".into(),
                got: "b@y".into()
            }
            .jingle_reason(),
            Reason::SecurityError
        );
        assert_eq!(
            Error::UnreadableSecurity("x".into()).jingle_reason(),
            Reason::SecurityError
        );
        assert_eq!(
            Error::from(TransportError::NoCandidate("none".into())).jingle_reason(),
            Reason::ConnectivityError
        );
        assert_eq!(Error::Declined.jingle_reason(), Reason::Decline);
    }

    #[test]
    fn authentication_error_is_opaque() {
        let msg = CipherError::Authentication.to_string();
        assert!(msg.contains("authentication failed"));
        assert!(!msg.chars().any(|c| c.is_ascii_digit()));
    }
}
