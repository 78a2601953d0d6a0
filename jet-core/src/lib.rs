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
//! - the JET [`security::Security`] element and [`jingle::JingleMessage`],
//!   a Jingle reader that never loses it;
//! - [`session`]: the Jingle session engine with JET, without I/O, and the
//!   [`session::Application`] trait with its halves [`session::Initiator`]
//!   and [`session::Acceptor`];
//! - [`layer::JetStream`], the one cipher layer over any byte stream (the
//!   sessions, `jet encrypt` and jet-ciphers' re-export all use it);
//! - with feature `tokio`, `driver`: the session engine over a
//!   [`channel::StanzaChannel`], with envelopes, transports and applications;
//! - [`memory::MemoryRouter`], an in-memory stanza router for tests and the demo;
//! - with feature `testkit`, `testkit`: TEST-ONLY stand-ins (a toy suite,
//!   a test envelope, a pipe transport, a wiretap) for other crates' tests;
//! - the errors, each mapped to the Jingle reason a peer sees ([`error`]);
//! - with the `tokio-xmpp` feature, [`xmpp`]: the stanza channel over a real
//!   XMPP connection (StartTLS, IQ routing, disco/caps, presence).
//!
//! JET never falls back to plaintext: every failure here is an error that
//! ends the session.
//!
//! ## Features
//!
//! None by default (13 crates): [`ns`], [`TransportSecret`], the cipher
//! traits, [`layer`], the Jingle words ([`vocab`]) and the errors: enough
//! for a cipher crate. `xml` (minidom + jid) adds the elements, the other
//! traits, the session engine, `replay`, `ft` and `memory`; `xmpp-parsers`
//! adds `jingle::split_jingle`/`join_jingle`; `tokio` (implies `xml`) the
//! driver, file I/O and the layer's pipelining; `tokio-xmpp` (implies both)
//! the XMPP binding.
//!
//! ```
//! use jet_core::jingle::JingleMessage;
//! use jet_core::{ns, Error};
//!
//! // A session-initiate whose <security/> lost its envelope element:
//! // reading it is an error (never "unencrypted"), and that error ends the
//! // session with security-error.
//! let iq: jet_core::minidom::Element = "<iq xmlns='jabber:client' type='set' id='1' \
//!     from='romeo@montague.lit/orchard' to='juliet@capulet.lit/balcony'>\
//!   <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1'>\
//!     <content creator='initiator' name='c'>\
//!       <description xmlns='urn:xmpp:jingle:apps:file-transfer:5'/>\
//!       <transport xmlns='urn:xmpp:jingle:transports:ibb:1' sid='t' block-size='4096'/>\
//!       <security xmlns='urn:xmpp:jingle:jet:0' name='c' \
//!          cipher='urn:xmpp:ciphers:aes-128-gcm-nopadding' type='urn:xmpp:encryption:stub:0'/>\
//!     </content></jingle></iq>".parse().unwrap();
//! let err = JingleMessage::from_iq(&iq).unwrap_err();
//! assert!(matches!(err, Error::UnreadableSecurity(_)));
//! use jet_core::JingleReason;
//! assert_eq!(err.jingle_reason(), jet_core::jingle::Reason::SecurityError);
//! # let _ = ns::JET;
//! ```
//!
//! [XEP-0391]: https://xmpp.org/extensions/xep-0391.html
#![warn(missing_docs)]

// Without features: the words, the secret, the cipher traits, the stream
// layer and the errors. Feature `xml`: everything that reads or writes XML.
#[cfg(feature = "xml")]
pub mod channel;
pub mod cipher;
#[cfg(feature = "tokio")]
pub mod driver;
#[cfg(feature = "xml")]
pub mod envelope;
pub mod error;
#[cfg(feature = "xml")]
pub mod ft;
#[cfg(feature = "tokio")]
pub mod ft_app;
#[cfg(feature = "tokio")]
pub mod ft_fs;
#[cfg(feature = "xml")]
pub mod jingle;
pub mod layer;
#[cfg(feature = "xml")]
pub mod memory;
pub mod ns;
#[cfg(feature = "xml")]
pub mod replay;
pub mod secret;
#[cfg(feature = "xml")]
pub mod security;
#[cfg(feature = "xml")]
pub mod session;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod transport;
pub mod vocab;
#[cfg(feature = "xml")]
pub mod xml;
#[cfg(feature = "tokio-xmpp")]
pub mod xmpp;

pub use error::{Error, JingleReason};
/// The JID types (jid 0.12, the crate xmpp-parsers 0.23 uses), re-exported so
/// users need not depend on it.
#[cfg(feature = "xml")]
pub use jid;
/// minidom 0.19 (the one xmpp-parsers 0.23 uses), re-exported so users need
/// not depend on it.
#[cfg(feature = "xml")]
pub use minidom;
pub use secret::{SecretShape, TransportSecret};
/// Re-exported for users of [`jingle::split_jingle`] and the XMPP binding.
#[cfg(feature = "xmpp-parsers")]
pub use xmpp_parsers;
