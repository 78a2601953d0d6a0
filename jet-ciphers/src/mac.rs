//! Feeding a 16-byte-block universal hash (GHASH, Poly1305) from arbitrary
//! slices.
//!
//! Both AES-GCM (NIST SP 800-38D §7.1) and ChaCha20-Poly1305 (RFC 8439 §2.8)
//! authenticate `AAD || pad || C || pad || lengths`, where each part is
//! zero-padded to a whole 16-byte block. A stream hands us the ciphertext in
//! pieces of any length, so this keeps at most one partial block and passes
//! every run of whole blocks to the hash in one call (the backends process
//! several blocks in parallel).

use ghash::universal_hash::array::Array;
use ghash::universal_hash::consts::U16;
use ghash::universal_hash::UniversalHash;
use zeroize::Zeroize;

/// A universal hash with a one-block buffer for the partial tail.
pub(crate) struct BlockMac<U: UniversalHash<BlockSize = U16>> {
    mac: U,
    buf: [u8; 16],
    buf_len: usize,
}

impl<U: UniversalHash<BlockSize = U16>> BlockMac<U> {
    pub(crate) fn new(mac: U) -> Self {
        BlockMac {
            mac,
            buf: [0; 16],
            buf_len: 0,
        }
    }

    /// Absorbs `data` as the continuation of the current padded segment.
    pub(crate) fn absorb(&mut self, mut data: &[u8]) {
        if self.buf_len > 0 {
            let take = (16 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 16 {
                return;
            }
            let block = Array::from(self.buf);
            self.mac.update(core::slice::from_ref(&block));
            self.buf_len = 0;
        }
        let (blocks, tail) = Array::<u8, U16>::slice_as_chunks(data);
        if !blocks.is_empty() {
            self.mac.update(blocks);
        }
        self.buf[..tail.len()].copy_from_slice(tail);
        self.buf_len = tail.len();
    }

    /// Ends the current segment: zero-pads a partial block and absorbs it.
    pub(crate) fn pad(&mut self) {
        if self.buf_len > 0 {
            self.mac.update_padded(&self.buf[..self.buf_len]);
            self.buf_len = 0;
        }
    }

    /// Absorbs one whole block (the lengths block). Call [`pad`](Self::pad) first.
    pub(crate) fn block(&mut self, block: [u8; 16]) {
        debug_assert_eq!(self.buf_len, 0);
        self.mac.update(&[Array::from(block)]);
    }

    /// The hash output.
    pub(crate) fn finalize(self) -> [u8; 16] {
        let BlockMac { mac, mut buf, .. } = self;
        buf.zeroize();
        let out = mac.finalize();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&out);
        tag
    }
}
