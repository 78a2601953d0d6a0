//! OpenPGP keys for JET-OX: generation, validation, import and export.
//!
//! **Key shape.** [`OxSecretKey::generate`] makes a v4 key with an Ed25519
//! primary key (certify + sign, the "legacy" EdDSA encoding) and a
//! Curve25519 ECDH encryption subkey (the "cv25519" key GnuPG shows), with
//! the single user ID `xmpp:<bare JID>` (XEP-0373 §4.1: the user ID MUST be
//! the XMPP URI of the account). Why this shape: keys are small (a few
//! hundred bytes, cheap to carry in PEP items), generation takes
//! milliseconds where RSA-3072 takes seconds, and it is exactly the v4 shape
//! GnuPG 2.2+ and every deployed OX client read. The RFC 9580 (v6/"crypto
//! refresh") Ed25519/X25519 encodings would be nicer but GnuPG 2.2 cannot
//! read them, and independent checking with `gpg` is part of our profile.
//! Messages use SEIPD v1 (with MDC) and AES-256 for the same reason.

use std::path::Path;

use jet_core::error::EnvelopeError;
use jet_core::jid::BareJid;
use pgp::composed::{
    ArmorOptions, Deserializable, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedPublicSubKey, SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::ser::Serialize;
use pgp::types::{CompressionAlgorithm, KeyDetails};

/// The XEP-0373 user ID of `jid`: `xmpp:` followed by the bare JID.
pub fn xmpp_user_id(jid: &BareJid) -> String {
    format!("xmpp:{jid}")
}

/// The OpenPGP v4 fingerprint string of XEP-0373 §4.1: upper-case hex.
pub fn fingerprint_string(key: &impl KeyDetails) -> String {
    key.fingerprint().to_string().to_ascii_uppercase()
}

pub(crate) fn pgp_err(what: &str, e: impl std::fmt::Display) -> EnvelopeError {
    EnvelopeError::Open(format!("{what}: {e}"))
}

/// Our own account key (secret). `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct OxSecretKey {
    key: SignedSecretKey,
    jid: BareJid,
    fingerprint: String,
}

impl std::fmt::Debug for OxSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OxSecretKey({} {})", self.jid, self.fingerprint)
    }
}

impl OxSecretKey {
    /// Generates a fresh Ed25519 + Curve25519 key for `jid` (see the module
    /// docs for why this shape).
    pub fn generate(jid: &BareJid) -> Result<Self, EnvelopeError> {
        let gen_err =
            |e: &dyn std::fmt::Display| EnvelopeError::Store(format!("key generation: {e}"));
        let enc = SubkeyParamsBuilder::default()
            .key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
            .can_encrypt(EncryptionCaps::All)
            .build()
            .map_err(|e| gen_err(&e))?;
        let params = SecretKeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(xmpp_user_id(jid))
            .preferred_symmetric_algorithms(
                [SymmetricKeyAlgorithm::AES256, SymmetricKeyAlgorithm::AES128]
                    .into_iter()
                    .collect(),
            )
            .preferred_hash_algorithms(
                [HashAlgorithm::Sha512, HashAlgorithm::Sha256]
                    .into_iter()
                    .collect(),
            )
            .preferred_compression_algorithms(
                [CompressionAlgorithm::ZLIB, CompressionAlgorithm::ZIP]
                    .into_iter()
                    .collect(),
            )
            .subkeys(vec![enc])
            .build()
            .map_err(|e| gen_err(&e))?;
        let key = params
            .generate(rand::rngs::OsRng)
            .map_err(|e| gen_err(&e))?;
        Self::from_pgp(key, jid)
    }

    /// Wraps an rpgp secret key, checking it is a valid key for `jid`.
    pub fn from_pgp(key: SignedSecretKey, jid: &BareJid) -> Result<Self, EnvelopeError> {
        let public = OxPublicKey::from_pgp(key.to_public_key())?;
        public.validate_for(jid)?;
        Ok(OxSecretKey {
            fingerprint: fingerprint_string(&key.primary_key),
            key,
            jid: jid.clone(),
        })
    }

    /// Reads an (unprotected) secret key, armored or binary, for `jid`.
    pub fn from_bytes(bytes: &[u8], jid: &BareJid) -> Result<Self, EnvelopeError> {
        let (key, _) = SignedSecretKey::from_reader_single(bytes)
            .map_err(|e| EnvelopeError::Store(format!("not an OpenPGP secret key: {e}")))?;
        Self::from_pgp(key, jid)
    }

    /// The account the key belongs to.
    pub fn jid(&self) -> &BareJid {
        &self.jid
    }

    /// Upper-case hex v4 fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The public half.
    pub fn public_key(&self) -> OxPublicKey {
        OxPublicKey {
            key: self.key.to_public_key(),
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// The rpgp key, for operations this module does not wrap.
    pub fn as_pgp(&self) -> &SignedSecretKey {
        &self.key
    }

    /// ASCII-armored transferable secret key (unprotected: protect the file).
    pub fn to_armored_secret(&self) -> Result<String, EnvelopeError> {
        self.key
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| EnvelopeError::Store(format!("armoring the secret key: {e}")))
    }
}

/// A public key (ours or a peer's).
#[derive(Clone)]
pub struct OxPublicKey {
    key: SignedPublicKey,
    fingerprint: String,
}

impl std::fmt::Debug for OxPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OxPublicKey({} {:?})", self.fingerprint, self.user_ids())
    }
}

impl PartialEq for OxPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl OxPublicKey {
    /// Wraps an rpgp public key.
    pub fn from_pgp(key: SignedPublicKey) -> Result<Self, EnvelopeError> {
        Ok(OxPublicKey {
            fingerprint: fingerprint_string(&key),
            key,
        })
    }

    /// Reads one transferable public key, binary (as in PEP) or armored.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let (key, _) = SignedPublicKey::from_reader_single(bytes)
            .map_err(|e| EnvelopeError::Untrusted(format!("not an OpenPGP public key: {e}")))?;
        Self::from_pgp(key)
    }

    /// Upper-case hex v4 fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The user IDs (UTF-8 ones).
    pub fn user_ids(&self) -> Vec<String> {
        self.key
            .details
            .users
            .iter()
            .filter_map(|u| u.id.as_str().map(str::to_string))
            .collect()
    }

    /// The rpgp key.
    pub fn as_pgp(&self) -> &SignedPublicKey {
        &self.key
    }

    /// Binary transferable public key (the PEP `<data/>` form).
    pub fn to_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        self.key
            .to_bytes()
            .map_err(|e| EnvelopeError::Store(format!("serializing the public key: {e}")))
    }

    /// ASCII-armored transferable public key, as `gpg --import` takes it.
    pub fn to_armored(&self) -> Result<String, EnvelopeError> {
        self.key
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| EnvelopeError::Store(format!("armoring the public key: {e}")))
    }

    /// Checks that this is a usable JET-OX key of `jid` (XEP-0373 §3.2 and
    /// §4.1): a v4 key, all self-signatures valid, not revoked, a validly
    /// self-signed user ID `xmpp:<jid>`, a signing-capable and an
    /// encryption-capable component.
    pub fn validate_for(&self, jid: &BareJid) -> Result<(), EnvelopeError> {
        let untrusted = |m: String| Err(EnvelopeError::Untrusted(m));
        if self.key.version() != pgp::types::KeyVersion::V4 {
            return untrusted(format!("key {} is not a v4 key", self.fingerprint));
        }
        if let Err(e) = self.key.verify_bindings() {
            return untrusted(format!(
                "key {} has an invalid self-signature: {e}",
                self.fingerprint
            ));
        }
        if !self.key.details.revocation_signatures.is_empty() {
            return untrusted(format!("key {} is revoked", self.fingerprint));
        }
        let want = xmpp_user_id(jid);
        let has_uid = self.key.details.users.iter().any(|u| {
            u.id.as_str() == Some(want.as_str()) && u.verify_bindings(&self.key.primary_key).is_ok()
        });
        if !has_uid {
            return untrusted(format!(
                "key {} has no user ID {want:?} (it has {:?})",
                self.fingerprint,
                self.user_ids()
            ));
        }
        if self.signing_subkeys().is_empty() && !self.primary_can_sign() {
            return untrusted(format!("key {} cannot sign", self.fingerprint));
        }
        if self.encryption_subkeys().is_empty() {
            return untrusted(format!("key {} has no encryption subkey", self.fingerprint));
        }
        Ok(())
    }

    /// Whether the primary key's self-signatures allow signing data.
    pub(crate) fn primary_can_sign(&self) -> bool {
        self.key.algorithm().can_sign()
            && self.key.details.users.iter().any(|u| {
                u.signatures.iter().any(|s| {
                    s.key_flags().sign() && u.verify_bindings(&self.key.primary_key).is_ok()
                })
            })
    }

    fn bound_subkeys(&self) -> impl Iterator<Item = &SignedPublicSubKey> {
        self.key
            .public_subkeys
            .iter()
            .filter(|sk| sk.verify_bindings(&self.key.primary_key).is_ok())
    }

    /// Subkeys whose valid binding signature allows signing.
    pub(crate) fn signing_subkeys(&self) -> Vec<&SignedPublicSubKey> {
        self.bound_subkeys()
            .filter(|sk| {
                sk.key.algorithm().can_sign() && sk.signatures.iter().any(|s| s.key_flags().sign())
            })
            .collect()
    }

    /// Subkeys whose valid binding signature allows encrypting.
    pub(crate) fn encryption_subkeys(&self) -> Vec<&SignedPublicSubKey> {
        self.bound_subkeys()
            .filter(|sk| {
                sk.key.algorithm().can_encrypt()
                    && sk.signatures.iter().any(|s| {
                        let f = s.key_flags();
                        f.encrypt_comms() || f.encrypt_storage()
                    })
            })
            .collect()
    }
}

/// Writes `key`'s armored public key to `public_path` and, when
/// `secret_path` is given, its armored (unprotected) secret key there with
/// permissions 0600. Both files are what `gpg --import` accepts. Backs
/// `jet keys export --ox [--secret]`.
pub fn export_armored(
    key: &OxSecretKey,
    public_path: &Path,
    secret_path: Option<&Path>,
) -> Result<(), EnvelopeError> {
    let public = key.public_key().to_armored()?;
    crate::ox::store::write_file_0600(public_path, public.as_bytes())?;
    if let Some(secret_path) = secret_path {
        let secret = zeroize::Zeroizing::new(key.to_armored_secret()?);
        crate::ox::store::write_file_0600(secret_path, secret.as_bytes())?;
    }
    Ok(())
}
