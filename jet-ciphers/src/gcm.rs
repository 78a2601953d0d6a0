//! AES-GCM over the whole stream: `urn:xmpp:ciphers:aes-128-gcm-nopadding:0`
//! and `urn:xmpp:ciphers:aes-256-gcm-nopadding:0` (XEP-0391 §6, cipher table).
//!
//! The wire format is what every deployed JET client sends: the whole stream
//! is ONE AES-GCM message (NIST SP 800-38D) under the transport key and IV,
//! with empty additional data, followed by the 16-byte tag. It is exactly
//! `AESGCM(key).encrypt(iv, data, None)` in Python's `cryptography` and the
//! output of the one-shot `aes-gcm` crate.
//!
//! `aes-gcm` only does one-shot messages, so the streaming form is assembled
//! here from the same RustCrypto parts it uses: AES (`aes`, with AES-NI/VAES
//! when the CPU has them) in 32-bit big-endian counter mode (`ctr`, which
//! encrypts counter blocks several at a time) and GHASH (`ghash`, PCLMULQDQ).
//! SP 800-38D §7.1:
//!
//! - `H = E(K, 0^128)`;
//! - `J0 = IV || 0^31 || 1` for a 96-bit IV, else
//!   `J0 = GHASH_H(IV || 0^s || 0^64 || [len(IV)]_64)` (old Dino sent 16-byte IVs);
//! - `C = GCTR(K, inc32(J0), P)`;
//! - `T = E(K, J0) xor GHASH_H(C || 0^v || [0]_64 || [len(C)]_64)`.
//!
//! One message carries at most `2^36 - 32` bytes (SP 800-38D §5.2.1.1): the
//! encryptor and decryptor refuse more with [`CipherError::LimitExceeded`];
//! use the chunked suite ([`crate::chunked`]) for larger data.
//!
//! ## Backends
//!
//! [`GcmBackend`] lists who does the AES-GCM work: the RustCrypto parts
//! above (always built), and with the cargo feature `openssl` (off by
//! default) the system OpenSSL's incremental `EVP_CipherUpdate`, whose
//! stitched AES-NI + PCLMULQDQ assembly is faster (1.3-1.4x here, README
//! "Performance"; ring and aws-lc-rs only offer one-shot GCM, useless for a
//! stream that is one message). The backend is a value: [`AES_128_GCM`] and
//! [`AES_256_GCM`] use the best one built in ([`GcmBackend::best`]: OpenSSL
//! when built in), [`AesGcmSuite::with_backend`] gives the suite on another,
//! and [`crate::Backends`] chooses for a whole registry. The library reads no
//! environment variable (the `jet` binary maps `JET_GCM_BACKEND` to this
//! value). Both produce identical bytes: the NIST known-answer tests and
//! cross tests run on every built-in backend.
//!
//! Enabling `openssl` links libssl: building needs the OpenSSL headers and
//! pkg-config (Debian: `apt-get install libssl-dev pkg-config`), then
//! `cargo build -p jet-ciphers --features openssl` (or `-p jet-cli
//! --features openssl`).

use aes::cipher::{
    BlockCipherEncrypt, BlockSizeUser, InnerIvInit, KeyInit, StreamCipher, StreamCipherCore,
    StreamCipherCoreWrapper,
};
use aes::{Aes128, Aes256};
use ctr::flavors::Ctr32BE;
use ctr::CtrCore;
use ghash::universal_hash::consts::U16;
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use jet_core::cipher::{CipherSuite, Framing, StreamDecryptor, StreamEncryptor};
use jet_core::error::CipherError;
use jet_core::{ns, TransportSecret};
use zeroize::Zeroize;

use crate::mac::BlockMac;
use crate::whole::{Engine, WholeDecryptor, WholeEncryptor, TAG_LEN};

/// The AES-GCM implementation behind the whole-stream suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcmBackend {
    /// RustCrypto `aes` + `ctr` + `ghash` (AES-NI/VAES and PCLMULQDQ
    /// intrinsics when the CPU has them, detected at run time;
    /// constant-time software otherwise).
    RustCrypto,
    /// The system OpenSSL's incremental AES-GCM (cargo feature `openssl`).
    #[cfg(feature = "openssl")]
    OpenSsl,
}

impl GcmBackend {
    /// Every backend built into this binary, preferred first.
    pub fn all() -> &'static [GcmBackend] {
        &[
            #[cfg(feature = "openssl")]
            GcmBackend::OpenSsl,
            GcmBackend::RustCrypto,
        ]
    }

    /// A short name: `"openssl"` or `"rustcrypto"`.
    pub fn name(self) -> &'static str {
        match self {
            GcmBackend::RustCrypto => "rustcrypto",
            #[cfg(feature = "openssl")]
            GcmBackend::OpenSsl => "openssl",
        }
    }

    /// The best backend built in: the first of [`all`](Self::all) (OpenSSL
    /// when built in, else RustCrypto). What [`AES_128_GCM`] and
    /// [`AES_256_GCM`] use.
    pub fn best() -> GcmBackend {
        Self::all()[0]
    }

    /// The built-in backend called `name` ([`name`](Self::name); blanks
    /// around it ignored), or `None`.
    pub fn from_name(name: &str) -> Option<GcmBackend> {
        crate::backends::named(Self::all(), Self::name, name)
    }
}

impl Default for GcmBackend {
    /// [`GcmBackend::best`].
    fn default() -> Self {
        Self::best()
    }
}

/// Largest plaintext of one GCM message: `2^36 - 32` bytes (SP 800-38D §5.2.1.1).
pub const GCM_MAX_PLAINTEXT: u64 = (1 << 36) - 32;

/// IV lengths accepted from peers: 12 bytes (XEP-0391 table, what we send)
/// and 16 bytes (Dino before 2020-09).
pub const GCM_IV_LENS: &[usize] = &[12, 16];

/// A whole-stream AES-GCM suite (XEP-0391 §6). Use the statics
/// [`AES_128_GCM`] and [`AES_256_GCM`].
#[derive(Debug)]
pub struct AesGcmSuite {
    urn: &'static str,
    name: &'static str,
    key_len: usize,
    /// `None`: the best built in, [`GcmBackend::best`].
    backend: Option<GcmBackend>,
}

impl AesGcmSuite {
    const fn new(key_len: usize, backend: Option<GcmBackend>) -> AesGcmSuite {
        let (urn, name) = if key_len == 16 {
            (ns::CIPHER_AES_128_GCM, "AES-128-GCM")
        } else {
            (ns::CIPHER_AES_256_GCM, "AES-256-GCM")
        };
        AesGcmSuite {
            urn,
            name,
            key_len,
            backend,
        }
    }
}

/// `urn:xmpp:ciphers:aes-128-gcm-nopadding:0`: 128-bit key, 96-bit IV. The
/// cipher Conversations and Dino use. On the best backend built in.
pub static AES_128_GCM: AesGcmSuite = AesGcmSuite::new(16, None);

/// `urn:xmpp:ciphers:aes-256-gcm-nopadding:0`: 256-bit key, 96-bit IV. On
/// the best backend built in.
pub static AES_256_GCM: AesGcmSuite = AesGcmSuite::new(32, None);

static AES_128_GCM_RUSTCRYPTO: AesGcmSuite = AesGcmSuite::new(16, Some(GcmBackend::RustCrypto));
static AES_256_GCM_RUSTCRYPTO: AesGcmSuite = AesGcmSuite::new(32, Some(GcmBackend::RustCrypto));
#[cfg(feature = "openssl")]
static AES_128_GCM_OPENSSL: AesGcmSuite = AesGcmSuite::new(16, Some(GcmBackend::OpenSsl));
#[cfg(feature = "openssl")]
static AES_256_GCM_OPENSSL: AesGcmSuite = AesGcmSuite::new(32, Some(GcmBackend::OpenSsl));

impl AesGcmSuite {
    /// This suite (same URN and key size) on `backend`: what its
    /// [`CipherSuite::encryptor`], [`CipherSuite::decryptor`] and `_with_aad`
    /// methods then use.
    ///
    /// ```
    /// use jet_ciphers::gcm::GcmBackend;
    /// use jet_ciphers::AES_128_GCM;
    /// let suite = AES_128_GCM.with_backend(GcmBackend::RustCrypto);
    /// assert_eq!(suite.backend(), GcmBackend::RustCrypto);
    /// assert_eq!(AES_128_GCM.backend(), GcmBackend::best());
    /// ```
    pub fn with_backend(&self, backend: GcmBackend) -> &'static AesGcmSuite {
        match (backend, self.key_len) {
            (GcmBackend::RustCrypto, 16) => &AES_128_GCM_RUSTCRYPTO,
            (GcmBackend::RustCrypto, _) => &AES_256_GCM_RUSTCRYPTO,
            #[cfg(feature = "openssl")]
            (GcmBackend::OpenSsl, 16) => &AES_128_GCM_OPENSSL,
            #[cfg(feature = "openssl")]
            (GcmBackend::OpenSsl, _) => &AES_256_GCM_OPENSSL,
        }
    }

    /// The backend this suite's encryptors and decryptors use.
    pub fn backend(&self) -> GcmBackend {
        self.backend.unwrap_or_else(GcmBackend::best)
    }

    fn check(&self, secret: &TransportSecret) -> Result<(), CipherError> {
        if secret.key().len() != self.key_len {
            return Err(CipherError::KeyLength {
                expected: self.key_len,
                got: secret.key().len(),
            });
        }
        if !GCM_IV_LENS.contains(&secret.iv().len()) {
            return Err(CipherError::IvLength {
                suite: self.urn,
                got: secret.iv().len(),
            });
        }
        Ok(())
    }
}

impl AesGcmSuite {
    /// A streaming encryptor with additional authenticated data `aad`.
    /// JET uses empty AAD ([`CipherSuite::encryptor`]); this is for other
    /// protocols and for the NIST known-answer tests.
    pub fn encryptor_with_aad(
        &self,
        secret: &TransportSecret,
        aad: &[u8],
    ) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        self.encryptor_with(secret, aad, self.backend())
    }

    /// A streaming decryptor with additional authenticated data `aad`
    /// (see [`encryptor_with_aad`](Self::encryptor_with_aad)).
    pub fn decryptor_with_aad(
        &self,
        secret: &TransportSecret,
        aad: &[u8],
    ) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        self.decryptor_with(secret, aad, self.backend())
    }

    /// [`encryptor_with_aad`](Self::encryptor_with_aad) on a given backend
    /// (benchmarks, cross-checks). The output does not depend on the backend.
    pub fn encryptor_with(
        &self,
        secret: &TransportSecret,
        aad: &[u8],
        backend: GcmBackend,
    ) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        self.check(secret)?;
        let (key, iv) = (secret.key(), secret.iv());
        Ok(match (backend, self.key_len) {
            (GcmBackend::RustCrypto, 16) => Box::new(WholeEncryptor::new(
                GcmEngine::<Aes128>::new(key, iv, aad)?,
                GCM_MAX_PLAINTEXT,
            )),
            (GcmBackend::RustCrypto, _) => Box::new(WholeEncryptor::new(
                GcmEngine::<Aes256>::new(key, iv, aad)?,
                GCM_MAX_PLAINTEXT,
            )),
            #[cfg(feature = "openssl")]
            (GcmBackend::OpenSsl, _) => Box::new(WholeEncryptor::new(
                crate::ossl::OsslAead::aes_gcm(key, iv, aad, true)?,
                GCM_MAX_PLAINTEXT,
            )),
        })
    }

    /// [`decryptor_with_aad`](Self::decryptor_with_aad) on a given backend.
    pub fn decryptor_with(
        &self,
        secret: &TransportSecret,
        aad: &[u8],
        backend: GcmBackend,
    ) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        self.check(secret)?;
        let (key, iv) = (secret.key(), secret.iv());
        Ok(match (backend, self.key_len) {
            (GcmBackend::RustCrypto, 16) => Box::new(WholeDecryptor::new(
                GcmEngine::<Aes128>::new(key, iv, aad)?,
                GCM_MAX_PLAINTEXT,
            )),
            (GcmBackend::RustCrypto, _) => Box::new(WholeDecryptor::new(
                GcmEngine::<Aes256>::new(key, iv, aad)?,
                GCM_MAX_PLAINTEXT,
            )),
            #[cfg(feature = "openssl")]
            (GcmBackend::OpenSsl, _) => Box::new(WholeDecryptor::new(
                crate::ossl::OsslAead::aes_gcm(key, iv, aad, false)?,
                GCM_MAX_PLAINTEXT,
            )),
        })
    }
}

impl CipherSuite for AesGcmSuite {
    fn urn(&self) -> &'static str {
        self.urn
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn key_len(&self) -> usize {
        self.key_len
    }
    fn iv_len(&self) -> usize {
        12
    }
    fn accepted_iv_lens(&self) -> &'static [usize] {
        GCM_IV_LENS
    }
    fn tag_len(&self) -> usize {
        TAG_LEN
    }
    fn framing(&self) -> Framing {
        Framing::SingleMessage {
            max_plaintext: GCM_MAX_PLAINTEXT,
        }
    }
    fn ciphertext_len(&self, plaintext_len: u64) -> u64 {
        plaintext_len + TAG_LEN as u64
    }
    fn encryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamEncryptor>, CipherError> {
        self.encryptor_with_aad(secret, &[])
    }
    fn decryptor(&self, secret: &TransportSecret) -> Result<Box<dyn StreamDecryptor>, CipherError> {
        self.decryptor_with_aad(secret, &[])
    }
}

type Ctr<C> = StreamCipherCoreWrapper<CtrCore<C, Ctr32BE>>;

/// `E(K, J0)`, XORed into the GHASH output to form the tag: with it and one
/// tag, anyone could forge tags for the stream. Zeroized when dropped, so
/// also when a stream fails (an authentication or limit error) or is
/// abandoned before its tag, not only after [`Engine::tag`].
struct TagMask([u8; 16]);

impl Drop for TagMask {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// AES-CTR keystream plus GHASH over the ciphertext.
struct GcmEngine<C>
where
    C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16>,
{
    ctr: Ctr<C>,
    mac: BlockMac<GHash>,
    mask: TagMask,
    aad_len: u64,
}

impl<C> GcmEngine<C>
where
    C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16> + KeyInit,
{
    fn new(key: &[u8], iv: &[u8], aad: &[u8]) -> Result<Self, CipherError> {
        let cipher = C::new_from_slice(key).map_err(|_| CipherError::KeyLength {
            expected: C::key_size(),
            got: key.len(),
        })?;
        // H = E(K, 0^128)
        let mut h = ghash::Key::default();
        cipher.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        h.zeroize();

        // J0 (SP 800-38D §7.1 step 2)
        let mut j0 = ghash::Block::default();
        if iv.len() == 12 {
            j0[..12].copy_from_slice(iv);
            j0[15] = 1;
        } else {
            let mut g = ghash.clone();
            g.update_padded(iv);
            let mut len_block = ghash::Block::default();
            len_block[8..].copy_from_slice(&((iv.len() as u64) * 8).to_be_bytes());
            g.update(&[len_block]);
            j0 = g.finalize();
        }

        let mut core = CtrCore::<C, Ctr32BE>::inner_iv_init(cipher, &j0);
        // The first counter block, J0 itself, masks the tag; the data uses
        // inc32(J0) onwards, which is where the core now stands.
        let mut mask_block = ghash::Block::default();
        core.write_keystream_block(&mut mask_block);
        let mut mask = TagMask([0u8; 16]);
        mask.0.copy_from_slice(&mask_block);
        mask_block.zeroize();
        j0.zeroize();

        let mut mac = BlockMac::new(ghash);
        mac.absorb(aad);
        mac.pad();
        Ok(GcmEngine {
            ctr: StreamCipherCoreWrapper::from_core(core),
            mac,
            mask,
            aad_len: aad.len() as u64,
        })
    }
}

impl<C> Engine for GcmEngine<C>
where
    C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16> + Send,
{
    fn apply_keystream(&mut self, buf: &mut [u8]) -> Result<(), CipherError> {
        self.ctr
            .try_apply_keystream(buf)
            .map_err(|_| CipherError::LimitExceeded {
                limit: GCM_MAX_PLAINTEXT,
            })
    }

    fn absorb(&mut self, ciphertext: &[u8]) {
        self.mac.absorb(ciphertext);
    }

    fn tag(mut self, ciphertext_len: u64) -> [u8; TAG_LEN] {
        self.mac.pad();
        // [len(A)]_64 || [len(C)]_64 in bits, big endian.
        let mut len_block = [0u8; 16];
        len_block[..8].copy_from_slice(&(self.aad_len * 8).to_be_bytes());
        len_block[8..].copy_from_slice(&(ciphertext_len * 8).to_be_bytes());
        self.mac.block(len_block);
        let mut tag = self.mac.finalize();
        for (t, m) in tag.iter_mut().zip(self.mask.0.iter()) {
            *t ^= m;
        }
        self.mask.0.zeroize();
        tag
    }
}

/// The OpenSSL backend: one `EVP_CIPHER_CTX` per stream, in encrypt or
/// decrypt mode.
///
/// OpenSSL does not split keystream and GHASH: `EVP_CipherUpdate` does both
/// (GHASH over its output when encrypting, over its input when decrypting),
/// and the tag can only be read after an encrypting `EVP_CipherFinal`, or
/// checked by a decrypting one. So this is not an [`Engine`] but a
/// [`Sealer`](crate::whole::Sealer) and an
/// [`Opener`](crate::whole::Opener) directly; the streaming around it (the
/// 16-byte hold-back, the limit, nothing authenticated before the tag
/// checks) is the same [`WholeEncryptor`]/[`WholeDecryptor`] code as for
/// RustCrypto.
#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::Aead;

    fn roundtrip_one_shot(suite: &AesGcmSuite, key: &[u8], iv: &[u8], data: &[u8]) -> Vec<u8> {
        let ts = TransportSecret::new(key.to_vec(), iv.to_vec()).unwrap();
        let mut enc = suite.encryptor(&ts).unwrap();
        let mut out = Vec::new();
        for piece in data.chunks(5) {
            enc.update(piece, &mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn matches_one_shot_aes_gcm() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let key = [9u8; 16];
        let iv = [1u8; 12];
        let ours = roundtrip_one_shot(&AES_128_GCM, &key, &iv, &data);
        let theirs = aes_gcm::Aes128Gcm::new(&key.into())
            .encrypt(&iv.into(), &data[..])
            .unwrap();
        assert_eq!(ours, theirs);
    }

    /// The tag mask E(K, J0) does not outlive its engine: dropping an engine
    /// that never made its tag (a failed or abandoned stream) wipes it.
    #[test]
    fn the_tag_mask_is_zeroized_when_the_engine_is_dropped() {
        let engine = GcmEngine::<aes::Aes128>::new(&[9u8; 16], &[1u8; 12], b"").unwrap();
        let mut expected = [0u8; 16];
        {
            // E(K, J0) computed independently.
            use aes::cipher::BlockCipherEncrypt as _;
            let c = <aes::Aes128 as KeyInit>::new_from_slice(&[9u8; 16]).unwrap();
            let mut j0 = ghash::Block::default();
            j0[..12].copy_from_slice(&[1u8; 12]);
            j0[15] = 1;
            c.encrypt_block(&mut j0);
            expected.copy_from_slice(&j0);
        }
        assert_eq!(engine.mask.0, expected, "the mask is E(K, J0)");
        let mut engine = std::mem::ManuallyDrop::new(engine);
        // SAFETY: dropped once, never used again except to read the bytes
        // of the plain array the drop just overwrote, which stay in place.
        unsafe { std::mem::ManuallyDrop::drop(&mut engine) };
        assert_eq!(engine.mask.0, [0u8; 16]);
    }

    #[test]
    fn wrong_lengths_are_refused() {
        let ts = TransportSecret::new(vec![1; 16], vec![2; 12]).unwrap();
        assert_eq!(
            AES_256_GCM.encryptor(&ts).err(),
            Some(CipherError::KeyLength {
                expected: 32,
                got: 16
            })
        );
        let ts = TransportSecret::new(vec![1; 16], vec![2; 8]).unwrap();
        assert!(matches!(
            AES_128_GCM.decryptor(&ts).err(),
            Some(CipherError::IvLength { got: 8, .. })
        ));
    }

    /// The limit check, with a small limit so that it can be reached.
    #[test]
    fn limit_is_enforced_by_encryptor_and_decryptor() {
        let engine = || GcmEngine::<Aes128>::new(&[3; 16], &[4; 12], &[]).unwrap();
        let mut enc = WholeEncryptor::new(engine(), 100);
        let mut out = Vec::new();
        enc.update(&[0; 60], &mut out).unwrap();
        enc.update(&[0; 40], &mut out).unwrap();
        assert_eq!(
            enc.update(&[0; 1], &mut out),
            Err(CipherError::LimitExceeded { limit: 100 })
        );
        assert_eq!(enc.finish(&mut out), Err(CipherError::Finished));
        assert_eq!(out.len(), 100);

        // 100 bytes of plaintext plus the tag pass; one more byte does not.
        let mut ok = WholeEncryptor::new(engine(), 100);
        let mut ct = Vec::new();
        ok.update(&[7; 100], &mut ct).unwrap();
        ok.finish(&mut ct).unwrap();
        let mut dec = WholeDecryptor::new(engine(), 100);
        let mut plain = Vec::new();
        dec.update(&ct, &mut plain).unwrap();
        dec.finish(&mut plain).unwrap();
        assert_eq!(plain, [7; 100]);
        let mut dec = WholeDecryptor::new(engine(), 100);
        let mut plain = Vec::new();
        dec.update(&ct, &mut plain).unwrap();
        assert_eq!(
            dec.update(&[0], &mut plain),
            Err(CipherError::LimitExceeded { limit: 100 })
        );
    }
}
