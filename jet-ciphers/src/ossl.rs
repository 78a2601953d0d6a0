//! The system OpenSSL's incremental AEADs (cargo feature `openssl`): one
//! `EVP_CIPHER_CTX` per stream, fed through `EVP_CipherUpdate` as the data
//! comes, tag at `EVP_CipherFinal`. Used for the whole-stream AES-GCM
//! suites ([`crate::gcm`]) and ChaCha20-Poly1305 ([`crate::chacha`]): the
//! stream stays ONE AEAD message, byte for byte what the RustCrypto
//! engines and the one-shot crates produce.

use jet_core::error::CipherError;
use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;

use crate::whole::{Opener, Sealer, TAG_LEN};

/// Largest piece handed to one `EVP_CipherUpdate` (its length is a C `int`).
const MAX_UPDATE: usize = 1 << 30;

/// One AEAD message in progress. The context is freed (and cleansed, key
/// schedule included) by `EVP_CIPHER_CTX_free` on drop.
pub(crate) struct OsslAead {
    ctx: CipherCtx,
    /// The message limit, named when OpenSSL refuses to go on.
    limit: u64,
}

fn setup(e: ErrorStack) -> CipherError {
    CipherError::Backend(format!("OpenSSL AEAD set-up failed: {e}"))
}

impl OsslAead {
    /// AES-128-GCM or AES-256-GCM by the key length; 12- or 16-byte IVs.
    pub(crate) fn aes_gcm(
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        encrypt: bool,
    ) -> Result<Self, CipherError> {
        let cipher = match key.len() {
            16 => Cipher::aes_128_gcm(),
            32 => Cipher::aes_256_gcm(),
            got => return Err(CipherError::KeyLength { expected: 32, got }),
        };
        Self::new(cipher, key, iv, aad, encrypt, crate::gcm::GCM_MAX_PLAINTEXT)
    }

    /// ChaCha20-Poly1305 (RFC 8439): 32-byte key, 12-byte nonce.
    pub(crate) fn chacha20_poly1305(
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        encrypt: bool,
    ) -> Result<Self, CipherError> {
        Self::new(
            Cipher::chacha20_poly1305(),
            key,
            nonce,
            aad,
            encrypt,
            crate::chacha::CHACHA_MAX_PLAINTEXT,
        )
    }

    fn new(
        cipher: &CipherRef,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        encrypt: bool,
        limit: u64,
    ) -> Result<Self, CipherError> {
        let mut ctx = CipherCtx::new().map_err(setup)?;
        // Cipher first, then the IV length if it is not the default 12
        // (GCM with 16-byte IVs: J0 = GHASH(IV…), SP 800-38D §7.1 step 2),
        // then key and IV.
        if encrypt {
            ctx.encrypt_init(Some(cipher), None, None).map_err(setup)?;
        } else {
            ctx.decrypt_init(Some(cipher), None, None).map_err(setup)?;
        }
        if iv.len() != 12 {
            ctx.set_iv_length(iv.len()).map_err(setup)?;
        }
        if encrypt {
            ctx.encrypt_init(None, Some(key), Some(iv)).map_err(setup)?;
        } else {
            ctx.decrypt_init(None, Some(key), Some(iv)).map_err(setup)?;
        }
        if !aad.is_empty() {
            // No output buffer: the input is additional data.
            ctx.cipher_update(aad, None).map_err(setup)?;
        }
        Ok(OsslAead { ctx, limit })
    }

    fn limit_error(&self) -> CipherError {
        CipherError::LimitExceeded { limit: self.limit }
    }

    /// Runs `buf` through the context in place. Both AEADs are stream
    /// modes (block size 1): every input byte comes out at once.
    fn update(&mut self, buf: &mut [u8]) -> Result<(), CipherError> {
        for piece in buf.chunks_mut(MAX_UPDATE) {
            let n = self
                .ctx
                .cipher_update_inplace(piece, piece.len())
                .map_err(|_| self.limit_error())?;
            debug_assert_eq!(n, piece.len());
        }
        Ok(())
    }

    /// Appends `input` run through the context to `out`, written
    /// directly by OpenSSL into `out`'s spare capacity: no copy, no
    /// zero-filling first (that memset alone cost a few percent at 64
    /// KiB), one call for the whole piece (the stitched assembly keeps the
    /// data in cache by itself).
    fn update_into(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        use foreign_types::ForeignType;
        for piece in input.chunks(MAX_UPDATE) {
            out.reserve(piece.len());
            let spare = out.spare_capacity_mut();
            debug_assert!(spare.len() >= piece.len());
            let inlen =
                std::os::raw::c_int::try_from(piece.len()).expect("MAX_UPDATE fits a C int");
            let mut written: std::os::raw::c_int = 0;
            // SAFETY: `ctx` is a live, initialised AEAD context. Both
            // ciphers are stream modes (block size 1): EVP_CipherUpdate
            // writes exactly `inlen` bytes, and `spare` has at least that
            // many (reserved above). `piece` is borrowed shared and `out`
            // exclusively, so the two do not overlap.
            let ok = unsafe {
                openssl_sys::EVP_CipherUpdate(
                    self.ctx.as_ptr(),
                    spare.as_mut_ptr().cast::<u8>(),
                    &mut written,
                    piece.as_ptr(),
                    inlen,
                )
            };
            if ok != 1 {
                // Clear OpenSSL's error queue for this thread.
                drop(ErrorStack::get());
                return Err(self.limit_error());
            }
            let written = usize::try_from(written).unwrap_or(usize::MAX);
            assert!(
                written <= spare.len(),
                "EVP_CipherUpdate reported more output than it was given room for"
            );
            // SAFETY: OpenSSL initialised the first `written` bytes of the
            // spare capacity, and `written` fits in it.
            unsafe { out.set_len(out.len() + written) };
            debug_assert_eq!(written, piece.len());
        }
        Ok(())
    }
}

impl Sealer for OsslAead {
    fn seal(&mut self, buf: &mut [u8]) -> Result<(), CipherError> {
        // OpenSSL refuses to go past the message limit; ours is checked first.
        self.update(buf)
    }

    fn seal_into(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        self.update_into(input, out)
    }

    fn seal_tag(mut self, _ciphertext_len: u64) -> Result<[u8; TAG_LEN], CipherError> {
        let fail = |e: ErrorStack| CipherError::Backend(format!("OpenSSL AEAD tag: {e}"));
        self.ctx.cipher_final(&mut []).map_err(fail)?;
        let mut tag = [0u8; TAG_LEN];
        self.ctx.tag(&mut tag).map_err(fail)?;
        Ok(tag)
    }
}

impl Opener for OsslAead {
    fn open(&mut self, buf: &mut [u8]) -> Result<(), CipherError> {
        self.update(buf)
    }

    fn open_into(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<(), CipherError> {
        self.update_into(ciphertext, out)
    }

    /// OpenSSL compares the expected tag with `tag` in its decrypting
    /// `EVP_CipherFinal` (with `CRYPTO_memcmp`, constant time) and fails on
    /// a mismatch; any failure here is an authentication failure.
    fn verify(mut self, _ciphertext_len: u64, tag: &[u8; TAG_LEN]) -> Result<(), CipherError> {
        self.ctx
            .set_tag(tag)
            .map_err(|_| CipherError::Authentication)?;
        self.ctx
            .cipher_final(&mut [])
            .map_err(|_| CipherError::Authentication)?;
        Ok(())
    }
}
