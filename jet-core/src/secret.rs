//! The transport secret (TS): transport key (TK) and initialization vector (IV).
//!
//! XEP-0391 §2: "Transport Secret TS: tuple formed of TK and IV". Version 0.1 of
//! the spec serialized it as the plain concatenation `key || iv`, which Smack
//! still does; the envelopes that carry TS as one blob use that form.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::cipher::CipherSuite;
use crate::error::SecretError;

/// The sizes of a suite's transport secret: all an envelope needs to know
/// of the cipher to read a secret out of its payload
/// ([`crate::envelope::EnvelopeBackend::open`]).
/// [`CipherSuite::secret_shape`] gives a suite's.
///
/// ```
/// use jet_core::SecretShape;
/// const AES_256: SecretShape = SecretShape::new(32, 12, &[12]);
/// let ts = AES_256.generate().unwrap();
/// assert!(AES_256.accepts(&ts));
/// assert_eq!(AES_256.from_bytes(&ts.to_bytes()).unwrap(), ts);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretShape {
    /// Key length in bytes.
    pub key_len: usize,
    /// IV length in bytes that we generate.
    pub iv_len: usize,
    /// IV lengths accepted from peers.
    pub accepted_iv_lens: &'static [usize],
}

impl SecretShape {
    /// A shape of `key_len` key bytes and `iv_len` IV bytes, accepting IVs
    /// of `accepted_iv_lens` bytes from peers.
    pub const fn new(key_len: usize, iv_len: usize, accepted_iv_lens: &'static [usize]) -> Self {
        SecretShape {
            key_len,
            iv_len,
            accepted_iv_lens,
        }
    }

    /// A fresh secret of this shape ([`TransportSecret::generate_with`]).
    pub fn generate(&self) -> Result<TransportSecret, SecretError> {
        TransportSecret::generate_with(self.key_len, self.iv_len)
    }

    /// Reads `key || iv` of this shape ([`TransportSecret::from_bytes`]).
    pub fn from_bytes(&self, bytes: &[u8]) -> Result<TransportSecret, SecretError> {
        TransportSecret::from_bytes(bytes, self.key_len, self.accepted_iv_lens)
    }

    /// Whether `secret` has this shape's key length and an accepted IV length.
    pub fn accepts(&self, secret: &TransportSecret) -> bool {
        secret.key().len() == self.key_len && self.accepted_iv_lens.contains(&secret.iv().len())
    }
}

/// Transport key and IV for one session. Zeroized on drop; `Debug` shows only
/// the lengths.
///
/// ```
/// use jet_core::TransportSecret;
/// let ts = TransportSecret::generate_with(32, 12).unwrap();
/// assert_eq!(ts.key().len(), 32);
/// assert_ne!(ts.key()[..12], ts.iv()[..]);
/// let bytes = ts.to_bytes();
/// let back = TransportSecret::from_bytes(&bytes, 32, &[12]).unwrap();
/// assert_eq!(back, ts);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TransportSecret {
    key: Zeroizing<Vec<u8>>,
    iv: Zeroizing<Vec<u8>>,
}

impl TransportSecret {
    /// Builds a secret from its parts, refusing empty parts and an IV equal to
    /// (a prefix of) the key (XEP-0391 §7).
    pub fn new(key: Vec<u8>, iv: Vec<u8>) -> Result<Self, SecretError> {
        let key = Zeroizing::new(key);
        let iv = Zeroizing::new(iv);
        if key.is_empty() || iv.is_empty() {
            return Err(SecretError::Empty);
        }
        let n = key.len().min(iv.len());
        if key[..n] == iv[..n] {
            return Err(SecretError::IvEqualsKey);
        }
        Ok(TransportSecret { key, iv })
    }

    /// A fresh secret for `suite` from the operating system's CSPRNG.
    pub fn generate(suite: &dyn CipherSuite) -> Result<Self, SecretError> {
        suite.secret_shape().generate()
    }

    /// A fresh secret with the given key and IV lengths from the OS CSPRNG.
    pub fn generate_with(key_len: usize, iv_len: usize) -> Result<Self, SecretError> {
        if key_len == 0 || iv_len == 0 {
            return Err(SecretError::Empty);
        }
        let mut key = Zeroizing::new(vec![0u8; key_len]);
        let mut iv = Zeroizing::new(vec![0u8; iv_len]);
        loop {
            getrandom::fill(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
            getrandom::fill(&mut iv).map_err(|e| SecretError::Random(e.to_string()))?;
            let n = key_len.min(iv_len);
            // Equal only with probability 2^-96 or less; loop rather than hope.
            if key[..n] != iv[..n] {
                break;
            }
        }
        Ok(TransportSecret { key, iv })
    }

    /// The transport key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The initialization vector.
    pub fn iv(&self) -> &[u8] {
        &self.iv
    }

    /// `key || iv`, as XEP-0391 0.1 and Smack serialize TS. Zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.key.len() + self.iv.len()));
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.iv);
        out
    }

    /// Parses `key || iv` with a `key_len`-byte key and an IV of one of
    /// `iv_lens` bytes (e.g. `&[12, 16]`: Dino sent 16-byte IVs before 2020).
    pub fn from_bytes(
        bytes: &[u8],
        key_len: usize,
        iv_lens: &[usize],
    ) -> Result<Self, SecretError> {
        let length_error = || SecretError::Length {
            got: bytes.len(),
            key_len,
            iv_lens: iv_lens.to_vec(),
        };
        if bytes.len() <= key_len {
            return Err(length_error());
        }
        let iv_len = bytes.len() - key_len;
        if !iv_lens.contains(&iv_len) {
            return Err(length_error());
        }
        Self::new(bytes[..key_len].to_vec(), bytes[key_len..].to_vec())
    }
}

impl fmt::Debug for TransportSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TransportSecret {{ key: <{} bytes redacted>, iv: <{} bytes redacted> }}",
            self.key.len(),
            self.iv.len()
        )
    }
}

impl Zeroize for TransportSecret {
    fn zeroize(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_round_trips_and_differs() {
        let a = TransportSecret::generate_with(32, 12).unwrap();
        let b = TransportSecret::generate_with(32, 12).unwrap();
        assert_ne!(a, b, "two fresh secrets must differ");
        assert_eq!(a.to_bytes().len(), 44);
        let back = TransportSecret::from_bytes(&a.to_bytes(), 32, &[12]).unwrap();
        assert_eq!(back, a);
        let short = TransportSecret::generate_with(16, 12).unwrap();
        assert_eq!(short.to_bytes().len(), 28);
    }

    #[test]
    fn length_checks() {
        assert!(matches!(
            TransportSecret::from_bytes(&[1u8; 43], 32, &[12]),
            Err(SecretError::Length { got: 43, .. })
        ));
        assert!(TransportSecret::from_bytes(&[1u8; 32], 32, &[12]).is_err());
        assert!(TransportSecret::from_bytes(&[], 32, &[12]).is_err());
        let mut v: Vec<u8> = (0..48).collect();
        v[0] = 99;
        let ts = TransportSecret::from_bytes(&v, 32, &[12, 16]).unwrap();
        assert_eq!(ts.iv().len(), 16);
    }

    #[test]
    fn iv_equal_to_key_is_refused() {
        let key = vec![7u8; 16];
        assert_eq!(
            TransportSecret::new(key.clone(), key[..12].to_vec()),
            Err(SecretError::IvEqualsKey)
        );
        assert_eq!(
            TransportSecret::new(key.clone(), key.clone()),
            Err(SecretError::IvEqualsKey)
        );
        assert_eq!(
            TransportSecret::new(vec![], vec![1]),
            Err(SecretError::Empty)
        );
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let ts = TransportSecret::new(vec![0xab; 32], vec![0xcd; 12]).unwrap();
        let dbg = format!("{ts:?}");
        assert!(dbg.contains("32 bytes redacted"), "{dbg}");
        assert!(!dbg.to_lowercase().contains("ab"), "{dbg}");
        assert!(!dbg.contains("171"), "{dbg}");
        assert!(!dbg.to_lowercase().contains("cd"), "{dbg}");
        assert!(!dbg.contains("205"), "{dbg}");
    }
}
