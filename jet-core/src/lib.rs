//! # jet-core: the words and the rules of Jingle Encrypted Transports
//!
//! [XEP-0391] JET adds end-to-end encryption to any Jingle byte stream: the
//! initiator picks a cipher, generates a [`TransportSecret`] (key + IV), seals
//! it with an end-to-end envelope (OMEMO, OX, or the test-only stub) and puts
//! the result into a `<security/>` element of each Jingle content. The
//! responder opens it, checks who sealed it, and both wrap the transport's
//! byte stream in the cipher.
//!
//! ```text
//!             jet-cli (binary `jet`)        benches
//!               |                              |
//!   jet-ciphers    jet-envelopes    jet-transports
//!   (CipherSuite)  (EnvelopeBackend) (TransportAdapter)
//!        \              |              /
//!                    jet-core
//!   ns · TransportSecret · <security/> · traits · errors · in-memory router
//! ```
//!
//! This crate has no I/O of its own. It holds:
//! - [`ns`]: every namespace and URN;
//! - [`TransportSecret`] and its `key || iv` serialization;
//! - the traits the other crates implement: [`cipher::CipherSuite`],
//!   [`envelope::EnvelopeBackend`], [`transport::TransportAdapter`], and
//!   [`channel::StanzaChannel`];
//! - [`memory::MemoryRouter`], an in-memory stanza router for tests and the demo;
//! - the errors, each mapped to the Jingle reason a peer sees ([`error`]);
//! - with the `tokio-xmpp` feature, [`xmpp`]: the stanza channel over a real
//!   XMPP connection (StartTLS, IQ routing, disco/caps, presence).
//!
//! JET never falls back to plaintext: every failure here is an error that
//! ends the session.
//!
//! [XEP-0391]: https://xmpp.org/extensions/xep-0391.html
#![warn(missing_docs)]

pub mod channel;
pub mod cipher;
pub mod envelope;
pub mod error;
pub mod memory;
pub mod ns;
pub mod secret;
pub mod transport;
pub mod xml;
#[cfg(feature = "tokio-xmpp")]
pub mod xmpp;

pub use error::{Error, JingleReason};
pub use secret::TransportSecret;
/// Re-exported so users need not depend on xmpp-parsers for the basic types.
pub use xmpp_parsers;
pub use xmpp_parsers::jid;
pub use xmpp_parsers::minidom;
