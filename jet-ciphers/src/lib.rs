//! # jet-ciphers: cipher suites and streaming formats for JET
//!
//! [XEP-0391] Jingle Encrypted Transports encrypts a Jingle byte stream
//! (a file transfer over SOCKS5 or IBB) with a symmetric cipher whose key and
//! IV travel end-to-end encrypted. This crate is that cipher layer: it
//! implements [`jet_core::cipher::CipherSuite`] for each supported cipher,
//! keeps them in a [`CipherRegistry`], and re-exports jet-core's stream
//! layer ([`JetStream`], [`encrypt_stream`], [`decrypt_stream`]) that puts
//! a suite on any tokio byte stream. It depends on `jet-core` only, so it
//! is usable on its own.
//!
//! ```text
//!  plaintext ─▶ JetStream (Send) ─▶ transport ─▶ JetStream (Receive) ─▶ plaintext
//!                    │                                  │
//!             StreamEncryptor                    StreamDecryptor
//!                    └──────── CipherSuite (from the registry) ┘
//! ```
//!
//! ## Formats
//!
//! | URN | key | IV | layout |
//! |-----|-----|----|--------|
//! | `urn:xmpp:ciphers:aes-128-gcm-nopadding:0` (XEP-0391) | 128 | 96 (128 accepted) | one GCM message: `ciphertext ‖ tag` |
//! | `urn:xmpp:ciphers:aes-256-gcm-nopadding:0` (XEP-0391) | 256 | 96 (128 accepted) | one GCM message: `ciphertext ‖ tag` |
//! | `urn:xmpp:ciphers:aes-256-gcm-chunked:jet:0` (jet) | 256 | 96 | STREAM: 64 KiB chunks, each `ciphertext ‖ tag` |
//! | `urn:xmpp:ciphers:chacha20-poly1305:jet:0` (jet) | 256 | 96 | one RFC 8439 message: `ciphertext ‖ tag` |
//!
//! - [`gcm`]: the XEP-0391 suites. The whole stream is ONE AES-GCM message
//!   with empty AAD and the 16-byte tag at the end, byte for byte what Dino,
//!   Conversations and Python's `AESGCM(key).encrypt(iv, data, None)`
//!   produce. Streamed in constant memory (AES-CTR + GHASH), proven equal to
//!   the one-shot `aes-gcm` crate. Nothing is authenticated before the last
//!   byte, and one message is limited to `2^36 - 32` bytes (64 GiB). With
//!   the cargo feature `openssl` (off by default; needs `libssl-dev` and
//!   `pkg-config` to build) the system OpenSSL does the AES-GCM work,
//!   about 1.3-1.4x faster; see [`gcm::GcmBackend`].
//! - [`chunked`]: a jet extension without those two drawbacks: each 64 KiB
//!   chunk is authenticated on its own, truncation, reordering and appended
//!   data are refused, transfers resume at chunk boundaries, and there is no
//!   size limit. Format: `docs/chunked-format.md`.
//! - [`chacha`]: ChaCha20-Poly1305 in the whole-stream shape, for machines
//!   without AES instructions (jet extension). With the feature `openssl`
//!   the system OpenSSL does that work too, about 3-4x faster than the
//!   portable crates; see [`chacha::ChaChaBackend`].
//!
//! ## Registry
//!
//! [`CipherRegistry`] is a plain value (no global state) listing suites in
//! preference order; suites are `pub static` descriptors ([`AES_128_GCM`],
//! [`AES_256_GCM`], [`AES_256_GCM_CHUNKED`], [`CHACHA20_POLY1305`]). Lookup
//! accepts URNs with and without the `:0` suffix, as peers send both.
//!
//! Which implementation does the work (RustCrypto, OpenSSL, ring) is a
//! value too, [`Backends`] (`Default`: the best built in), given to
//! [`CipherRegistry::with_backends`]; the crate reads no environment
//! variable.
//!
//! ## Encrypting a stream
//!
//! The stream layer is jet-core's [`JetStream`], re-exported here with
//! its copy helpers, the [`TransportSecret`] and the cipher error, so this
//! crate alone (plus a tokio runtime) encrypts a stream, with one error
//! type, [`Error`]:
//!
//! ```
//! use jet_ciphers::{decrypt_stream, encrypt_stream, Error, TransportSecret, AES_256_GCM};
//!
//! async fn round_trip(plain: &[u8]) -> Result<Vec<u8>, Error> {
//!     let secret = TransportSecret::generate(&AES_256_GCM)?;
//!     let mut wire = Vec::new();
//!     encrypt_stream(&AES_256_GCM, &secret, plain, &mut wire).await?;
//!     let mut back = Vec::new();
//!     decrypt_stream(&AES_256_GCM, &secret, &wire[..], &mut back).await?;
//!     Ok(back)
//! }
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let back = round_trip(b"Romeo, Romeo, wherefore art thou Romeo?").await.unwrap();
//! assert_eq!(back, b"Romeo, Romeo, wherefore art thou Romeo?");
//! # });
//! ```
//!
//! Files and pipes need no runtime: [`encrypt_blocking`] and
//! [`decrypt_blocking`] take any `std::io::Read` and `Write`, run the
//! cipher on the calling thread and the writes on another (what `jet
//! encrypt` does):
//!
//! ```
//! use jet_ciphers::{decrypt_blocking, encrypt_blocking, TransportSecret, AES_256_GCM_CHUNKED};
//!
//! let secret = TransportSecret::generate(&AES_256_GCM_CHUNKED).unwrap();
//! let plain = vec![7u8; 200_000];
//! let mut wire = Vec::new();
//! encrypt_blocking(&AES_256_GCM_CHUNKED, &secret, &plain[..], &mut wire).unwrap();
//! let mut back = Vec::new();
//! let n = decrypt_blocking(&AES_256_GCM_CHUNKED, &secret, &wire[..], &mut back).unwrap();
//! assert_eq!((n, back), (200_000, plain));
//! // A flipped bit: an error, and the caller keeps nothing it wrote.
//! wire[100] ^= 1;
//! assert!(decrypt_blocking(&AES_256_GCM_CHUNKED, &secret, &wire[..], std::io::sink()).is_err());
//! ```
//!
//! [`JetStream`] wraps a socket (or any `AsyncRead`/`AsyncWrite`) one way;
//! the receiving side reports end of stream only after the final tag
//! checked, and a failure is an `io::Error` carrying the [`CipherError`]:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use jet_ciphers::{cipher_error_of, CipherError, CipherRegistry, Direction, JetStream, TransportSecret};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let registry = CipherRegistry::default();
//! let suite = registry.get("urn:xmpp:ciphers:aes-128-gcm-nopadding").unwrap();
//! let secret = TransportSecret::generate(suite).unwrap();
//!
//! // Sender: everything written is encrypted; shutdown() appends the tag.
//! let mut tx = JetStream::new(Vec::new(), suite, &secret, Direction::Send).unwrap();
//! tx.write_all(b"Romeo, Romeo, wherefore art thou Romeo?").await.unwrap();
//! tx.shutdown().await.unwrap();
//! let wire = tx.into_inner();
//! assert_eq!(wire.len(), 39 + 16);
//!
//! // Receiver: reaching EOF without error means the stream authenticated.
//! let mut rx = JetStream::new(&wire[..], suite, &secret, Direction::Receive).unwrap();
//! let mut plain = Vec::new();
//! rx.read_to_end(&mut plain).await.unwrap();
//! assert_eq!(plain, b"Romeo, Romeo, wherefore art thou Romeo?");
//!
//! // One flipped bit and the read fails at the end.
//! let mut bad = wire.clone();
//! bad[3] ^= 1;
//! let mut rx = JetStream::new(&bad[..], suite, &secret, Direction::Receive).unwrap();
//! let err = rx.read_to_end(&mut Vec::new()).await.unwrap_err();
//! assert_eq!(cipher_error_of(&err), Some(&CipherError::Authentication));
//! # });
//! ```
//!
//! [XEP-0391]: https://xmpp.org/extensions/xep-0391.html
#![warn(missing_docs)]

pub mod chacha;
pub mod chunked;
mod error;
pub mod gcm;
mod mac;
#[cfg(feature = "openssl")]
mod ossl;

mod backends;
mod registry;
mod whole;

pub use backends::Backends;
pub use chacha::CHACHA20_POLY1305;
pub use chunked::{ChunkedSuite, AES_256_GCM_CHUNKED};
pub use error::Error;
pub use gcm::{AES_128_GCM, AES_256_GCM};
pub use jet_core::error::{CipherError, SecretError};
pub use jet_core::layer::{
    appended_of, cipher_error_of, decrypt_blocking, decrypt_stream, encrypt_blocking,
    encrypt_stream, Direction, JetStream,
};
pub use jet_core::TransportSecret;
pub use registry::CipherRegistry;
