//! OMEMO 0.3 (XEP-0384 v0.3, namespace `eu.siacs.conversations.axolotl`):
//! the end-to-end layer that JET-OMEMO (XEP-0396) puts the transport
//! secret in, interoperable with the clients that ship it (Conversations,
//! Dino, Gajim, python-omemo's `oldmemo`).
//!
//! ```text
//!  backend    EnvelopeBackend (JET-OMEMO): seal/open over an OmemoDirectory (PEP)
//!   |
//!  xml        <encrypted>/<bundle>/<list>  <->  typed values
//!   |
//!  manager    per-device sessions; key transport (JET) and payload messages
//!   |           (AES-128-GCM body, key||tag per device)
//!  x3dh       session setup from a bundle / from a PreKeySignalMessage
//!  ratchet    Double Ratchet: root/sending/receiving chains, skipped keys,
//!   |           AES-256-CBC + truncated HMAC-SHA256 SignalMessages
//!  proto      SignalMessage / PreKeySignalMessage (version byte 0x33)
//!  kdf, keys  HKDF/HMAC-SHA256 ("Whisper*" infos), X25519, XEdDSA, 0x05 keys
//!  store      OmemoStore trait + InMemoryStore
//!  sqlite     SqliteStore: the persistent store (WAL, 0600 file)
//!  pep        PEP publish/fetch elements for device lists and bundles
//! ```
//!
//! # Building blocks, and why
//! No maintained Rust OMEMO crate exists, and libsignal's own Rust crate is
//! AGPL and speaks only the current Signal protocol. The protocol is small
//! once the primitives exist, so it is written here against the public
//! specifications (XEP-0384 v0.3, Signal's X3DH, Double Ratchet and XEdDSA
//! documents) on RustCrypto and dalek parts:
//! * `curve25519-dalek` 5: X25519 (`MontgomeryPoint::mul_clamped`) and the
//!   Edwards arithmetic XEdDSA needs (Montgomery-to-Edwards with a chosen
//!   sign, double-scalar multiplication). `x25519-dalek` wraps only the
//!   first half and would add nothing but a second key type.
//! * `sha2`, `hmac`, `hkdf`: SHA-512 for XEdDSA, HMAC-SHA256 for chains and
//!   MACs, HKDF-SHA256 for the Whisper derivations.
//! * `aes` + `cbc` (SignalMessage bodies), `aes-gcm` (OMEMO payloads).
//! * Protobuf by hand ([`proto`]): two messages of four to six scalar/bytes
//!   fields; `prost` would need code generation for no gain.
//! * `wacore-libsignal` (MIT, Signal v3 wire format) was evaluated and not
//!   taken: it needs Rust 1.94 (the workspace supports 1.85), follows
//!   WhatsApp's variant of the protocol, and brings its own store and
//!   runtime model; the parts OMEMO needs are a few hundred lines here.
//!
//! Interoperability is tested against python-omemo/`oldmemo` (an
//! independent implementation) in `tests/omemo_interop.rs`, both directions.
//!
//! # Tests and vectors
//! * RFC 7748 X25519 and RFC 5869 HKDF vectors (unit tests).
//! * `tests/data/omemo_vectors.json` (generator: `tests/python/gen_vectors.py`):
//!   libxeddsa signatures (ours are byte-identical in the spec form; both
//!   sign conventions verify), and python-omemo's session start recomputed
//!   byte for byte from the same private keys, then decrypted.
//! * `tests/omemo_interop.rs`: live sessions with python-omemo/oldmemo 2.1.0
//!   in both directions, out-of-order and late delivery, the envelope
//!   backend (`scripts/omemo-venv` makes the venv; `JET_REQUIRE_PYTHON=1`
//!   turns a missing venv into a failure).
//! * `tests/omemo_prosody.rs`: PEP publish/fetch and seal/open through a
//!   real Prosody, and whole JET file transfers with this envelope over S5B
//!   and IBB (`scripts/test-server`; `JET_REQUIRE_SERVER=1` makes a missing
//!   server a failure).
//! * `sqlite` (feature `omemo-sqlite`): persistence across drops, atomic session + prekey commit.
//!
//! # Not done yet
//! PEP notifications and device-list
//! maintenance on the wire, signed prekey rotation schedule, accepting a
//! changed identity key for a known device (refused loudly; no command
//! accepts the new key yet), session reset after an undecryptable message, OMEMO 2
//! (`urn:xmpp:omemo:2`).
//!
//! # Example: a JET key transport between two devices
//! ```
//! use jet_envelopes::omemo::manager::{OmemoManager, Recipient};
//! use jet_envelopes::omemo::store::{DeviceAddress, InMemoryStore};
//! use jet_envelopes::omemo::xml::EncryptedElement;
//!
//! let mut romeo = OmemoManager::new(InMemoryStore::generate(1001)?, "romeo@montague.lit");
//! let mut juliet = OmemoManager::new(InMemoryStore::generate(2002)?, "juliet@capulet.lit");
//! // Romeo fetched Juliet's bundle (PEP) and seals TK and IV for her device.
//! let to_juliet = Recipient {
//!     address: DeviceAddress::new("juliet@capulet.lit", 2002),
//!     bundle: Some(juliet.bundle()?),
//! };
//! let (tk, iv) = ([0x11u8; 16], [0x22u8; 12]);
//! let ee = romeo.encrypt_key_transport(&tk, &iv, &[to_juliet])?.to_element();
//! // Juliet opens the envelope element.
//! let opened = juliet.decrypt("romeo@montague.lit", &EncryptedElement::from_element(&ee)?)?;
//! assert_eq!(&opened.key_material[..], &tk);
//! assert_eq!(opened.iv, iv);
//! assert_eq!(opened.sender, DeviceAddress::new("romeo@montague.lit", 1001));
//! # Ok::<(), jet_envelopes::omemo::error::OmemoError>(())
//! ```
#![warn(missing_docs)]

pub mod backend;
pub mod error;
pub mod kdf;
pub mod keys;
pub mod manager;
pub mod pep;
pub mod proto;
pub mod ratchet;
#[cfg(feature = "omemo-sqlite")]
pub mod sqlite;
pub mod store;
pub mod x3dh;
pub mod xml;

pub use backend::{MemoryDirectory, OmemoDirectory, OmemoEnvelope, PepDirectory};
pub use error::{OmemoError, Result};
pub use keys::{KeyPair, PrivateKey, PublicKey};
pub use manager::{DecryptedMessage, OmemoManager, Recipient};
pub use manager::{TrustEvent, TrustPolicy};
#[cfg(feature = "omemo-sqlite")]
pub use sqlite::SqliteStore;
pub use store::{DeviceAddress, InMemoryStore, OmemoStore, Trust};
pub use x3dh::PreKeyBundle;
pub use xml::{EncryptedElement, KeyElement};
