//! The crate's error type.

use jet_core::error::{CipherError, Reason, SecretError};
use jet_core::JingleReason;
use thiserror::Error;

/// Errors of jet-ciphers: the cipher and secret errors of jet-core plus
/// I/O (from the stream layer) and registry problems.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The cipher refused: authentication failure, truncation, limits,
    /// lengths, unknown URN.
    #[error(transparent)]
    Cipher(#[from] CipherError),
    /// A transport secret could not be made or read (lengths, IV equal to
    /// the key, no randomness).
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Reading or writing the underlying stream failed.
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    /// A registry that fails [`consistency_check`](crate::CipherRegistry::consistency_check).
    #[error("inconsistent cipher registry: {0}")]
    Registry(String),
}

impl From<std::io::Error> for Error {
    /// Unwraps a [`CipherError`] carried inside an `io::Error` (as the
    /// stream layer, [`crate::JetStream`], produces) so it is not mistaken
    /// for I/O.
    fn from(e: std::io::Error) -> Self {
        match jet_core::layer::cipher_error_of(&e) {
            Some(c) => Error::Cipher(c.clone()),
            None => Error::Io(e),
        }
    }
}

impl JingleReason for Error {
    /// `security-error` for anything the cipher refused (XEP-0391 §7: abort,
    /// never fall back), `failed-transport` for I/O, `failed-application`
    /// for a broken registry.
    fn jingle_reason(&self) -> Reason {
        match self {
            Error::Cipher(e) => e.jingle_reason(),
            Error::Secret(e) => e.jingle_reason(),
            Error::Io(_) => Reason::FailedTransport,
            Error::Registry(_) => Reason::FailedApplication,
        }
    }
}
