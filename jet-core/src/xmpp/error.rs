//! Why connecting (or staying connected) to an XMPP server failed.

use std::time::Duration;

use thiserror::Error;

use crate::error::{ChannelError, JingleReason, Reason};

/// Errors of the tokio-xmpp stanza channel.
///
/// tokio-xmpp itself retries a failed login forever and only logs why;
/// [`XmppChannel::connect`](super::XmppChannel::connect) makes one bounded
/// attempt and tells the cases a user must tell apart: a wrong password
/// ([`Authentication`](Self::Authentication)), a server that cannot be
/// reached ([`Unreachable`](Self::Unreachable)), and a certificate we do not
/// trust ([`UntrustedCertificate`](Self::UntrustedCertificate)).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum XmppError {
    /// The configuration cannot work (e.g. a JID without a local part).
    #[error("invalid XMPP configuration: {0}")]
    Config(String),
    /// Plain TCP (no TLS) was asked for a server that is not on this machine.
    #[error("plain TCP without TLS is only allowed to loopback addresses; {addr} is not loopback (use StartTLS)")]
    InsecureNotLoopback {
        /// The address that was refused.
        addr: String,
    },
    /// The CA file to trust could not be read.
    #[error("cannot read the CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// No TCP connection to the server (refused, no route, no such host).
    #[error("cannot reach the XMPP server {server}: {source}")]
    Unreachable {
        /// Where we tried to connect.
        server: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The server's certificate is not trusted (unknown issuer, wrong name,
    /// expired...). Never ignored: JET does not fall back to plaintext.
    #[error("the TLS certificate of {server} is not trusted: {reason}")]
    UntrustedCertificate {
        /// The domain we expected the certificate for.
        server: String,
        /// Why the certificate was refused.
        reason: String,
    },
    /// Another TLS failure (handshake, protocol version).
    #[error("TLS with {server} failed: {reason}")]
    Tls {
        /// The domain.
        server: String,
        /// What failed.
        reason: String,
    },
    /// The server does not offer StartTLS; we do not log in without TLS.
    #[error("the XMPP server {server} does not offer StartTLS; refusing to log in without TLS")]
    NoStartTls {
        /// The domain.
        server: String,
    },
    /// The server refused our credentials: wrong password or unknown account.
    #[error(
        "login as {jid} refused by the server ({condition}{}): wrong password or unknown account",
        text.as_deref().map(|t| format!(": \"{t}\"")).unwrap_or_default()
    )]
    Authentication {
        /// The account.
        jid: String,
        /// The SASL condition the server gave (e.g. `not-authorized`).
        condition: String,
        /// The server's `<text/>`, if any.
        text: Option<String>,
    },
    /// The server refused the login because of its channel binding (its
    /// `<text/>` says so), not because of the password.
    #[error(
        "login as {jid} with {mechanism} and {binding} refused by the server \
         ({condition}: \"{text}\"): the server does not accept this channel binding"
    )]
    ChannelBinding {
        /// The account.
        jid: String,
        /// The SASL mechanism we used.
        mechanism: String,
        /// The channel binding we used.
        binding: &'static str,
        /// The SASL condition.
        condition: String,
        /// The server's `<text/>`.
        text: String,
    },
    /// Server and client have no SASL mechanism in common.
    #[error("no common SASL mechanism with the server (it offers {offered:?})")]
    NoSaslMechanism {
        /// What the server offered.
        offered: Vec<String>,
    },
    /// Resource binding failed.
    #[error("resource binding failed: {0}")]
    Bind(String),
    /// The server did not get through a connection step in time.
    #[error("the XMPP server did not answer within {after:?} while {stage}")]
    Timeout {
        /// What we were doing.
        stage: &'static str,
        /// The configured connect timeout.
        after: Duration,
    },
    /// The XML stream broke or the server sent something unexpected.
    #[error("XMPP stream error while {stage}: {reason}")]
    Stream {
        /// What we were doing.
        stage: &'static str,
        /// What happened.
        reason: String,
    },
    /// The connection is closed.
    #[error("the XMPP connection is closed")]
    Closed,
}

impl JingleReason for XmppError {
    fn jingle_reason(&self) -> Reason {
        Reason::ConnectivityError
    }
}

impl From<XmppError> for ChannelError {
    fn from(e: XmppError) -> Self {
        match e {
            XmppError::Closed => ChannelError::Closed,
            other => ChannelError::Unavailable(other.to_string()),
        }
    }
}
