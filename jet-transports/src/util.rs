//! Small helpers shared by both transports.

use std::future::Future;
use std::time::Duration;

use jet_core::error::TransportError;
use tokio::task::JoinHandle;

/// A random identifier (transport sid, candidate cid) of `len` characters
/// from `[a-z0-9]`.
pub(crate) fn random_id(len: usize) -> Result<String, TransportError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| {
        TransportError::Io(std::io::Error::other(format!(
            "the system random number generator failed: {e}"
        )))
    })?;
    // 256 % 36 != 0: the bias is irrelevant for identifiers that only need
    // to be unique, not secret.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// Runs `fut` with a deadline; `what` names the wait in the error.
pub(crate) async fn within<T, F>(dur: Duration, what: &str, fut: F) -> Result<T, TransportError>
where
    F: Future<Output = Result<T, TransportError>>,
{
    match tokio::time::timeout(dur, fut).await {
        Ok(r) => r,
        Err(_) => Err(TransportError::Timeout(format!(
            "{what} (after {} ms)",
            dur.as_millis()
        ))),
    }
}

/// Aborts a background task when dropped, so that listeners and IBB helpers
/// never outlive the negotiation or the stream that owns them.
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
