//! Key derivation of libsignal v3 (the "Whisper" constants).
//!
//! * X3DH output: `HKDF-SHA256(salt = 0^32, ikm = 0xFF^32 || DH1..DH4,
//!   info = "WhisperText")`, 64 bytes = root key || chain key.
//! * Root chain (Double Ratchet §3.3 `KDF_RK`): `HKDF-SHA256(salt = root key,
//!   ikm = DH output, info = "WhisperRatchet")`, 64 bytes = new root key ||
//!   new chain key.
//! * Symmetric chain (`KDF_CK`, Double Ratchet §5.2 recommendation):
//!   message key seed = `HMAC-SHA256(ck, 0x01)`, next chain key =
//!   `HMAC-SHA256(ck, 0x02)`.
//! * Message keys: `HKDF-SHA256(salt = 0^32, ikm = seed, info =
//!   "WhisperMessageKeys")`, 80 bytes = AES-256 key || HMAC key || CBC IV.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::Result;
use super::keys::{PrivateKey, PublicKey};

/// HKDF info of the X3DH output.
pub const INFO_TEXT: &[u8] = b"WhisperText";
/// HKDF info of the root chain.
pub const INFO_RATCHET: &[u8] = b"WhisperRatchet";
/// HKDF info of message keys.
pub const INFO_MESSAGE_KEYS: &[u8] = b"WhisperMessageKeys";

/// HKDF-SHA256 (RFC 5869) of `len` bytes; `salt = None` is 32 zero bytes.
pub fn hkdf_sha256(salt: Option<&[u8]>, ikm: &[u8], info: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let hk = Hkdf::<Sha256>::new(salt, ikm);
    let mut okm = Zeroizing::new(vec![0u8; len]);
    // Only lengths above 255 * 32 fail; ours are 64 and 80.
    hk.expand(info, &mut okm)
        .expect("HKDF output length within 255 blocks");
    okm
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn split64(okm: &[u8]) -> ([u8; 32], [u8; 32]) {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    a.copy_from_slice(&okm[..32]);
    b.copy_from_slice(&okm[32..64]);
    (a, b)
}

/// A root key of the Double Ratchet.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct RootKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(..)")
    }
}

impl RootKey {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// One DH ratchet step (`KDF_RK`): DH of `ours` with `theirs`, mixed
    /// into the root chain; yields the next root key and a chain key.
    pub fn create_chain(
        &self,
        theirs: &PublicKey,
        ours: &PrivateKey,
    ) -> Result<(RootKey, ChainKey)> {
        let shared = ours.dh(theirs)?;
        let okm = hkdf_sha256(Some(&self.0), &shared[..], INFO_RATCHET, 64);
        let (rk, ck) = split64(&okm);
        Ok((RootKey(rk), ChainKey { key: ck, index: 0 }))
    }
}

/// Derives the initial root key and chain key from the X3DH secrets
/// (`0xFF^32 || DH1 || DH2 || DH3 [|| DH4]`).
pub fn derive_initial(master_secret: &[u8]) -> (RootKey, ChainKey) {
    let okm = hkdf_sha256(None, master_secret, INFO_TEXT, 64);
    let (rk, ck) = split64(&okm);
    (RootKey(rk), ChainKey { key: ck, index: 0 })
}

/// A sending or receiving chain key with its position in the chain.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct ChainKey {
    pub(crate) key: [u8; 32],
    pub(crate) index: u32,
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainKey(index {})", self.index)
    }
}

impl ChainKey {
    /// A chain key at `index`.
    pub fn new(key: [u8; 32], index: u32) -> Self {
        ChainKey { key, index }
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The number of message keys already taken from this chain.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The next chain key (`HMAC(ck, 0x02)`).
    pub fn next(&self) -> ChainKey {
        ChainKey {
            key: hmac_sha256(&self.key, &[&[0x02]]),
            index: self.index.wrapping_add(1),
        }
    }

    /// The message keys for this position (`HMAC(ck, 0x01)` expanded).
    pub fn message_keys(&self) -> MessageKeys {
        let mut seed = hmac_sha256(&self.key, &[&[0x01]]);
        let okm = hkdf_sha256(None, &seed, INFO_MESSAGE_KEYS, 80);
        seed.zeroize();
        let mut mk = MessageKeys {
            cipher_key: [0; 32],
            mac_key: [0; 32],
            iv: [0; 16],
            counter: self.index,
        };
        mk.cipher_key.copy_from_slice(&okm[..32]);
        mk.mac_key.copy_from_slice(&okm[32..64]);
        mk.iv.copy_from_slice(&okm[64..80]);
        mk
    }
}

/// The keys of one message: AES-256-CBC key and IV, HMAC-SHA256 key.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct MessageKeys {
    /// AES-256 key.
    pub cipher_key: [u8; 32],
    /// HMAC-SHA256 key for the 8-byte message MAC.
    pub mac_key: [u8; 32],
    /// CBC IV.
    pub iv: [u8; 16],
    /// The chain position these keys belong to.
    pub counter: u32,
}

impl std::fmt::Debug for MessageKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageKeys(counter {})", self.counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5869 Appendix A, test cases 1 to 3 (SHA-256).
    #[test]
    fn hkdf_rfc5869_vectors() {
        let h = |s: &str| hex::decode(s).unwrap();
        type Case = (Vec<u8>, Option<Vec<u8>>, Vec<u8>, usize, &'static str);
        let cases: [Case; 3] = [
            (
                h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
                Some(h("000102030405060708090a0b0c")),
                h("f0f1f2f3f4f5f6f7f8f9"),
                42,
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            ),
            (
                (0u8..=0x4f).collect(),
                Some((0x60u8..=0xaf).collect()),
                (0xb0u8..=0xff).collect(),
                82,
                "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
            ),
            (
                h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
                Some(vec![]),
                vec![],
                42,
                "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
            ),
        ];
        for (ikm, salt, info, len, okm) in cases {
            let got = hkdf_sha256(salt.as_deref(), &ikm, &info, len);
            assert_eq!(hex::encode(&got[..]), okm);
        }
        // An absent salt is HashLen zero bytes (RFC 5869 §2.2).
        let ikm = h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        assert_eq!(
            hkdf_sha256(None, &ikm, b"x", 64),
            hkdf_sha256(Some(&[0u8; 32]), &ikm, b"x", 64)
        );
    }

    #[test]
    fn chain_steps_are_distinct() {
        let ck = ChainKey::new([7; 32], 0);
        let next = ck.next();
        assert_eq!(next.index(), 1);
        assert_ne!(next.as_bytes(), ck.as_bytes());
        let mk0 = ck.message_keys();
        let mk1 = next.message_keys();
        assert_eq!(mk0.counter, 0);
        assert_ne!(mk0.cipher_key, mk1.cipher_key);
        assert_ne!(mk0.cipher_key, mk0.mac_key);
    }
}
