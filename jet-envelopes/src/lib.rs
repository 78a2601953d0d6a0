//! # jet-envelopes: how the JET transport secret travels
//!
//! XEP-0391 §3: before a Jingle session, the initiator seals the transport
//! secret (TS = key and IV) with an end-to-end encryption session it already
//! has with the responder. The result, the envelope element (EE), goes into
//! `<security type='..'>`. Each backend here implements
//! [`jet_core::envelope::EnvelopeBackend`] for one `type`:
//!
//! | module  | `type` / EE namespace              | disco feature                 | secure? | status |
//! |---------|------------------------------------|-------------------------------|---------|--------|
//! | [`stub`]| `urn:xmpp:encryption:stub:0`       | `urn:xmpp:jingle:jet-stub:0`  | **no**  | here, always built |
//! | `omemo` | `eu.siacs.conversations.axolotl`   | `urn:xmpp:jingle:jet-omemo:0` | yes     | feature `omemo` (default): X3DH, Double Ratchet, key transport; its SQLite store is feature `omemo-sqlite` (default) |
//! | `ox`    | `urn:xmpp:openpgp:0`               | `urn:xmpp:jingle:jet-ox:0`    | yes     | feature `ox` (default) |
//!
//! `ox` (feature `ox`) is our JET-OX profile (`docs/jet-ox.md`): TS in an
//! XEP-0373 `<signcrypt/>`, signed by the sender's and encrypted to the
//! recipient's OpenPGP key (rpgp, Ed25519 + Curve25519 keys published over
//! PEP), checkable with GnuPG.
//!
//! The responder opens EE and gets an
//! [`OpenedEnvelope`](jet_core::envelope::OpenedEnvelope) whose `sender` the
//! session compares with the initiator (XEP-0391 §7).
//!
//! **The stub envelope provides NO security**: it carries the secret in
//! base64, readable by every server on the way. Use it for tests and the
//! demo only; [`EnvelopeBackend::is_secure`](jet_core::envelope::EnvelopeBackend::is_secure)
//! is `false` for it so applications can refuse it by policy.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use jet_core::envelope::EnvelopeBackend;
//! use jet_core::SecretShape;
//! use jet_envelopes::stub::StubEnvelope;
//!
//! // The stub needs only the cipher's key and IV sizes to read the secret
//! // back (a real suite's `secret_shape()`).
//! const AES256_SIZES: SecretShape = SecretShape::new(32, 12, &[12]);
//!
//! let stub = StubEnvelope::new();
//! let secret = AES256_SIZES.generate().unwrap();
//! let juliet = "juliet@capulet.lit/balcony".parse().unwrap();
//! let ee = stub.seal(&secret, &juliet).await.unwrap();
//!
//! let romeo = "romeo@montague.lit/orchard".parse().unwrap();
//! let opened = stub.open(&ee, &romeo, AES256_SIZES).await.unwrap();
//! assert_eq!(opened.secret, secret);
//! assert_eq!(opened.sender.to_string(), "romeo@montague.lit");
//! assert!(!stub.is_secure());
//! # });
//! ```
#![warn(missing_docs)]

#[cfg(feature = "ox")]
pub mod ox;
pub mod stub;

#[cfg(feature = "omemo")]
pub mod omemo;

pub use stub::StubEnvelope;

// The README's Rust examples ("Using jet-ciphers alone", "Using the
// engine with your own XMPP library") are compiled and run as doc tests
// here, the crate whose dev-dependencies have every piece they use.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
