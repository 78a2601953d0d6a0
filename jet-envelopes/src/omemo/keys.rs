//! Curve25519 keys as libsignal v3 uses them: X25519 Diffie-Hellman and
//! XEdDSA signatures over the *same* Montgomery key pair.
//!
//! * Public keys travel as 33 bytes: the type byte `0x05` ("DJB") followed
//!   by the 32-byte little-endian Montgomery u-coordinate.
//! * Private keys are 32-byte X25519 scalars, clamped (RFC 7748 §5).
//! * Signatures are XEdDSA (Signal's XEdDSA and VXEdDSA specification, §2.3
//!   and §3): the Montgomery private key `k` is read as a twisted Edwards
//!   scalar; as the Montgomery form loses the sign of the Edwards x
//!   coordinate, the signer negates `k` when `kB` has sign bit 1, so the
//!   verifier can rebuild the Edwards key with sign 0.
//!
//! Deployed OMEMO 0.3 clients also use the older libsignal "curve25519
//! signature" convention, where the signer keeps `k` as it is and stores the
//! Edwards key's sign bit in the otherwise unused top bit of `s` (byte 63).
//! python-omemo's `oldmemo` publishes bundles that way. [`PublicKey::verify`]
//! therefore takes the sign from bit 7 of byte 63 (0 for spec XEdDSA
//! signatures), clears it, and checks an ordinary Ed25519 equation, which
//! accepts both conventions; [`PrivateKey::sign`] writes spec XEdDSA
//! signatures, whose top bit is always 0 and which both kinds of verifier
//! accept.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::error::{random, OmemoError, Result};

/// The libsignal key type byte for Curve25519 ("DJB") public keys.
pub const DJB_TYPE: u8 = 0x05;

/// A Curve25519 public key (Montgomery u-coordinate).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

impl PublicKey {
    /// The key from its 32 raw bytes (no type byte).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PublicKey(bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The fingerprint users compare: the 32 key bytes in lowercase hex,
    /// in groups of eight (the form Conversations, Dino and Gajim show,
    /// without the `05` type byte).
    pub fn fingerprint(&self) -> String {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        hex.as_bytes()
            .chunks(8)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Parses a fingerprint as users paste it: 64 hex digits, or 66 with
    /// the leading `05` type byte; spaces, colons and case are ignored.
    pub fn from_fingerprint(text: &str) -> Result<Self> {
        let hex: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        // Byte-indexed slicing below: anything but ASCII would split a
        // multi-byte character and panic (found while writing the
        // omemo_element fuzz target, which now feeds this function).
        if !hex.is_ascii() {
            return Err(OmemoError::Malformed("fingerprint is not hex".into()));
        }
        let hex = match hex.len() {
            64 => hex.as_str(),
            66 if hex.starts_with("05") => &hex[2..],
            n => {
                return Err(OmemoError::Malformed(format!(
                    "an OMEMO fingerprint has 64 hex digits, not {n}"
                )))
            }
        };
        let mut k = [0u8; 32];
        for (i, byte) in k.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| OmemoError::Malformed("fingerprint is not hex".into()))?;
        }
        Ok(PublicKey(k))
    }

    /// libsignal serialization: `0x05 || u`.
    pub fn serialize(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[0] = DJB_TYPE;
        out[1..].copy_from_slice(&self.0);
        out
    }

    /// Parses the libsignal serialization (33 bytes with type `0x05`).
    pub fn deserialize(bytes: &[u8]) -> Result<Self> {
        match bytes {
            [DJB_TYPE, rest @ ..] if rest.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(rest);
                Ok(PublicKey(k))
            }
            [DJB_TYPE, ..] => Err(OmemoError::Malformed(format!(
                "public key of {} bytes, expected 33",
                bytes.len()
            ))),
            [t, ..] => Err(OmemoError::Malformed(format!(
                "public key type {t:#04x}, expected 0x05"
            ))),
            [] => Err(OmemoError::Malformed("empty public key".into())),
        }
    }

    /// Verifies a 64-byte XEdDSA signature over `message` (see the module
    /// doc for the sign-bit convention). Returns false on any failure.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = <&[u8; 64]>::try_from(signature) else {
            return false;
        };
        // XEdDSA §2.4: reject u >= p. Honest keys are reduced, so a set top
        // bit or any value in [p, 2^255) is an attack or garbage.
        if !is_canonical_field_element(&self.0) {
            return false;
        }
        let sign = sig[63] >> 7;
        let Some(a_point) = MontgomeryPoint(self.0).to_edwards(sign) else {
            return false;
        };
        let mut s_bytes = [0u8; 32];
        s_bytes.copy_from_slice(&sig[32..]);
        s_bytes[31] &= 0x7f;
        // s must be a reduced scalar (also rules out s >= 2^253).
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let r_bytes: [u8; 32] = sig[..32].try_into().expect("32 bytes");
        // R must decode; a non-canonical R can never equal a compressed
        // point below, so decoding is the only check needed.
        if CompressedEdwardsY(r_bytes).decompress().is_none() {
            return false;
        }
        let a_compressed = a_point.compress();
        let h = hash_scalar(&[&r_bytes, a_compressed.as_bytes(), message]);
        // R' = sB - hA
        let r_check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&h, &-a_point, &s);
        bool::from(r_check.compress().as_bytes().ct_eq(&r_bytes))
    }
}

/// SHA-512 of the concatenated parts, reduced modulo the group order q.
fn hash_scalar(parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&h.finalize());
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    s
}

/// True when the 32 little-endian bytes encode a value below p = 2^255 - 19.
fn is_canonical_field_element(u: &[u8; 32]) -> bool {
    if u[31] & 0x80 != 0 {
        return false;
    }
    // Values in [p, 2^255): top byte 0x7f, bytes 1..=30 all 0xff, low byte >= 0xed.
    !(u[31] == 0x7f && u[1..31].iter().all(|&b| b == 0xff) && u[0] >= 0xed)
}

/// A Curve25519 private key (a clamped X25519 scalar). Zeroized on drop.
#[derive(Clone)]
pub struct PrivateKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&*other.0))
    }
}
impl Eq for PrivateKey {}

impl PrivateKey {
    /// A private key from 32 bytes, clamped as RFC 7748 §5 does.
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        let k = PrivateKey(Zeroizing::new(clamp_integer(bytes)));
        bytes.zeroize();
        k
    }

    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut b = Zeroizing::new([0u8; 32]);
        random(&mut b[..])?;
        Ok(Self::from_bytes(*b))
    }

    /// The 32 (clamped) bytes.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    /// The matching public key, `k·9` on Curve25519.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(MontgomeryPoint::mul_base_clamped(*self.0).to_bytes())
    }

    /// X25519 (RFC 7748 §5) with `their` public key. An all-zero result (the
    /// peer sent a low-order point) is refused, so a peer cannot force a
    /// known shared secret.
    pub fn dh(&self, their: &PublicKey) -> Result<Zeroizing<[u8; 32]>> {
        let shared = Zeroizing::new(MontgomeryPoint(their.0).mul_clamped(*self.0).to_bytes());
        if bool::from(shared.ct_eq(&[0u8; 32])) {
            return Err(OmemoError::WeakKey);
        }
        Ok(shared)
    }

    /// XEdDSA signature of `message` with fresh randomness from the OS.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        let mut z = Zeroizing::new([0u8; 64]);
        random(&mut z[..])?;
        Ok(self.sign_with_random(message, &z))
    }

    /// XEdDSA signature of `message` with the caller's 64 random bytes `z`
    /// (XEdDSA §2.5 `xeddsa_sign(k, M, Z)`); deterministic, for test vectors.
    pub fn sign_with_random(&self, message: &[u8], z: &[u8; 64]) -> [u8; 64] {
        // calculate_key_pair(k) (XEdDSA §2.3): E = kB; the Edwards public key
        // A is E with sign bit forced to 0, and a is k or -k to match.
        let k = Scalar::from_bytes_mod_order(*self.0);
        let e = EdwardsPoint::mul_base(&k);
        let e_compressed = e.compress();
        // The bytes of `a` hashed into the nonce are those of Signal's
        // reference code (and libxeddsa): the clamped key as it is, or the
        // reduced -k. Any unpredictable r is valid; matching the reference
        // makes signatures byte-identical for the same Z (known answers).
        let (a, a_compressed, mut a_bytes) = if e_compressed.as_bytes()[31] & 0x80 != 0 {
            (-k, (-e).compress(), Zeroizing::new((-k).to_bytes()))
        } else {
            (k, e_compressed, self.0.clone())
        };
        // r = hash_1(a || M || Z) mod q, hash_1 = SHA-512 of
        // (2^256 - 2) as 32 little-endian bytes, then the input (§2.5, §2.2).
        let mut prefix = [0xffu8; 32];
        prefix[0] = 0xfe;
        let r = hash_scalar(&[&prefix, &a_bytes[..], message, &z[..]]);
        a_bytes.zeroize();
        let r_point = EdwardsPoint::mul_base(&r).compress();
        let h = hash_scalar(&[r_point.as_bytes(), a_compressed.as_bytes(), message]);
        let s = r + h * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(r_point.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }
}

/// A private key with its public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPair {
    /// The private half.
    pub private: PrivateKey,
    /// The public half.
    pub public: PublicKey,
}

impl KeyPair {
    /// A fresh key pair from the OS CSPRNG.
    pub fn generate() -> Result<Self> {
        Ok(Self::from_private(PrivateKey::generate()?))
    }

    /// The pair for a private key.
    pub fn from_private(private: PrivateKey) -> Self {
        let public = private.public_key();
        KeyPair { private, public }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (found with the omemo_element fuzz target): 64 bytes of
    /// text whose non-ASCII characters straddle the two-digit boundaries
    /// panicked instead of being refused.
    #[test]
    fn non_ascii_fingerprints_are_errors() {
        for text in [
            format!("\u{20ac}{}", "0".repeat(61)),
            format!("0\u{e9}{}", "0".repeat(61)),
            format!("05\u{20ac}{}", "a".repeat(61)),
            "\u{1f600}".repeat(16),
        ] {
            assert!(
                matches!(
                    PublicKey::from_fingerprint(&text),
                    Err(OmemoError::Malformed(_))
                ),
                "{text:?}"
            );
        }
        // Still accepted: spaces, colons, upper case, the 05 prefix.
        let k = PublicKey::from_bytes([0xab; 32]);
        let text = format!("05:{}", k.fingerprint().to_uppercase());
        assert_eq!(PublicKey::from_fingerprint(&text).unwrap(), k);
    }

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// RFC 7748 §5.2, the two single-step X25519 vectors.
    #[test]
    fn x25519_rfc7748_function_vectors() {
        let cases = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
            ),
        ];
        for (k, u, out) in cases {
            let got = PrivateKey::from_bytes(h32(k))
                .dh(&PublicKey::from_bytes(h32(u)))
                .unwrap();
            assert_eq!(*got, h32(out));
        }
    }

    /// RFC 7748 §6.1: Alice's and Bob's key pairs and their shared secret.
    #[test]
    fn x25519_rfc7748_dh_vectors() {
        let alice = PrivateKey::from_bytes(h32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let bob = PrivateKey::from_bytes(h32(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        assert_eq!(
            alice.public_key().as_bytes(),
            &h32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            bob.public_key().as_bytes(),
            &h32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let shared = h32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(*alice.dh(&bob.public_key()).unwrap(), shared);
        assert_eq!(*bob.dh(&alice.public_key()).unwrap(), shared);
    }

    #[test]
    fn low_order_point_is_refused() {
        let k = PrivateKey::generate().unwrap();
        // u = 0 and u = 1 are low-order points: the result is all zeros.
        assert!(matches!(
            k.dh(&PublicKey::from_bytes([0; 32])),
            Err(OmemoError::WeakKey)
        ));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(matches!(
            k.dh(&PublicKey::from_bytes(one)),
            Err(OmemoError::WeakKey)
        ));
    }

    #[test]
    fn serialization_round_trip_and_errors() {
        let k = KeyPair::generate().unwrap();
        let ser = k.public.serialize();
        assert_eq!(ser[0], 0x05);
        assert_eq!(PublicKey::deserialize(&ser).unwrap(), k.public);
        assert!(PublicKey::deserialize(&ser[..32]).is_err());
        let mut wrong = ser;
        wrong[0] = 0x04;
        assert!(PublicKey::deserialize(&wrong).is_err());
        assert!(PublicKey::deserialize(&[]).is_err());
    }

    #[test]
    fn sign_verify_and_tamper() {
        for _ in 0..16 {
            let k = KeyPair::generate().unwrap();
            let sig = k.private.sign(b"message").unwrap();
            assert_eq!(
                sig[63] & 0x80,
                0,
                "spec XEdDSA signatures keep bit 511 clear"
            );
            assert!(k.public.verify(b"message", &sig));
            assert!(!k.public.verify(b"messagf", &sig));
            let mut bad = sig;
            bad[5] ^= 1;
            assert!(!k.public.verify(b"message", &bad));
            let mut flipped_sign = sig;
            flipped_sign[63] |= 0x80;
            assert!(!k.public.verify(b"message", &flipped_sign));
            assert!(!KeyPair::generate().unwrap().public.verify(b"message", &sig));
            assert!(!k.public.verify(b"message", &sig[..63]));
        }
    }

    /// The libsignal convention (keep k, store E's sign in bit 511) must
    /// verify too: build such signatures by hand and check both signs occur.
    #[test]
    fn verify_accepts_sign_bit_convention() {
        let mut seen = [false; 2];
        for i in 0..64u8 {
            let k = PrivateKey::from_bytes([i.wrapping_mul(37).wrapping_add(1); 32]);
            let a = Scalar::from_bytes_mod_order(*k.to_bytes());
            let e = EdwardsPoint::mul_base(&a).compress();
            let sign = e.as_bytes()[31] >> 7;
            seen[sign as usize] = true;
            let r = Scalar::from_bytes_mod_order_wide(&[i; 64]);
            let r_point = EdwardsPoint::mul_base(&r).compress();
            let h = hash_scalar(&[r_point.as_bytes(), e.as_bytes(), b"msg"]);
            let s = r + h * a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(r_point.as_bytes());
            sig[32..].copy_from_slice(s.as_bytes());
            sig[63] |= sign << 7;
            assert!(k.public_key().verify(b"msg", &sig), "key {i}");
        }
        assert!(seen[0] && seen[1]);
    }

    /// s + q is the same scalar but a second encoding: refused, so
    /// signatures are not malleable.
    #[test]
    fn non_reduced_s_is_refused() {
        let k = KeyPair::generate().unwrap();
        let sig = k.private.sign(b"m").unwrap();
        // q = 2^252 + 27742317777372353535851937790883648493, little endian.
        let q: [u8; 32] =
            hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
                .unwrap()
                .try_into()
                .unwrap();
        let mut s = [0u8; 33];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(sig[32 + i]) + u16::from(q[i]) + carry;
            s[i] = v as u8;
            carry = v >> 8;
        }
        s[32] = carry as u8;
        let mut forged = sig;
        forged[32..].copy_from_slice(&s[..32]);
        assert_eq!(s[32], 0);
        assert!(forged[63] & 0x80 == 0, "s + q stays below 2^255");
        assert!(!k.public.verify(b"m", &forged));
        assert!(k.public.verify(b"m", &sig));
    }

    #[test]
    fn non_canonical_u_is_refused() {
        let mut u = [0xffu8; 32];
        u[31] = 0x7f;
        assert!(!is_canonical_field_element(&u));
        u[0] = 0xec; // p - 1
        assert!(is_canonical_field_element(&u));
        assert!(!is_canonical_field_element(&[0xff; 32]));
    }
}
