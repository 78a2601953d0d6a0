//! The one error type of the OMEMO module.

use thiserror::Error;

/// Everything that can go wrong in the OMEMO layer. Decryption failures are
/// deliberately coarse ([`OmemoError::Decrypt`]): a peer learns nothing from
/// which check failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OmemoError {
    /// A key, message or element is not of the expected form.
    #[error("malformed OMEMO data: {0}")]
    Malformed(String),
    /// A signature (signed prekey in a bundle) does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// A ciphertext did not authenticate or decrypt.
    #[error("OMEMO decryption failed")]
    Decrypt,
    /// The message is a duplicate or its message key was already used.
    #[error("duplicate or replayed OMEMO message")]
    Duplicate,
    /// The message needs more skipped message keys than allowed.
    #[error("too many skipped messages ({0})")]
    TooManySkipped(u32),
    /// A prekey or signed prekey referenced by a message is not in the store.
    #[error("unknown {kind} id {id}")]
    UnknownKey {
        /// Which kind of key.
        kind: &'static str,
        /// Its id.
        id: u32,
    },
    /// No session with a device and no way to build one.
    #[error("no OMEMO session with {0}")]
    NoSession(String),
    /// The message carries no `<key>` for our device.
    #[error("the message is not encrypted for device {0}")]
    NotForUs(u32),
    /// An identity key is not trusted for the device it claims.
    #[error("untrusted identity key for {0}")]
    Untrusted(String),
    /// The X25519 result was all zeros (a low-order point from the peer).
    #[error("invalid Diffie-Hellman result (low-order public key)")]
    WeakKey,
    /// The operating system's random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
    /// The key store failed.
    #[error("key store: {0}")]
    Store(String),
}

/// Results of the OMEMO module.
pub type Result<T> = std::result::Result<T, OmemoError>;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| OmemoError::Random(e.to_string()))
}
