//! # jet-transports: Jingle byte streams for JET
//!
//! Two Jingle transport methods, each negotiating its `<transport/>` and then
//! handing over a plain [`BoxedStream`](jet_core::transport::BoxedStream)
//! (`AsyncRead + AsyncWrite`). Neither knows anything about encryption: the
//! JET layer (XEP-0391) wraps the stream they return.
//!
//! - [`S5bTransport`]: Jingle SOCKS5 Bytestreams, XEP-0260 over XEP-0065
//!   (`urn:xmpp:jingle:transports:s5b:1`). Direct candidates (a small SOCKS5
//!   server on the addresses you allow, see [`S5bConfig`]) and proxy
//!   candidates (configured or discovered on your server). See [`s5b`] for
//!   the nomination rules.
//! - [`IbbTransport`]: Jingle In-Band Bytestreams, XEP-0261 over XEP-0047
//!   (`urn:xmpp:jingle:transports:ibb:1`): base64 blocks in IQs, slow but
//!   always possible. See [`ibb`] for sequence numbers and flow control.
//!
//! ## How a session driver uses them
//!
//! Both implement [`TransportAdapter`](jet_core::transport::TransportAdapter):
//!
//! ```text
//! initiator                                   responder
//! offer(ctx) -> local_transport() --session-initiate--> answer(ctx, offer)
//!            <--session-accept-- local_transport()
//! set_remote(answer)
//! establish(signals)  <--transport-info (S5B only)-->  establish(signals)
//!   = BoxedStream                                        = BoxedStream
//! ```
//!
//! The [`TransportSignals`](jet_core::transport::TransportSignals) given to
//! `establish` must queue `transport-info` that arrives before `recv_info` is
//! called: S5B tries all the peer's candidates (up to
//! [`s5b::element::MAX_CANDIDATES`], each bounded by
//! [`S5bConfig::connect_timeout`]) before it reads the peer's result.
//!
//! S5B exchanges `candidate-used`/`candidate-error` and, for proxies,
//! `activated`/`proxy-error` through the
//! [`TransportSignals`](jet_core::transport::TransportSignals). When both
//! sides fail, `establish` returns
//! [`TransportError::NoCandidate`](jet_core::error::TransportError) on both
//! ([`s5b::is_fallback_error`]); the initiator then sends `transport-replace`
//! with an IBB offer, the responder answers `transport-accept`, and both
//! establish IBB. IBB uses the [`StanzaChannel`](jet_core::channel::StanzaChannel)
//! directly and ignores the signals.
//!
//! ## Example: IBB between two accounts on the in-memory router
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use async_trait::async_trait;
//! use jet_core::error::TransportError;
//! use jet_core::memory::MemoryRouter;
//! use jet_core::minidom::Element;
//! use jet_core::transport::{Role, TransportAdapter, TransportContext, TransportSignals};
//! use jet_transports::{IbbConfig, IbbTransport};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! /// IBB needs no transport-info.
//! struct NoSignals;
//! #[async_trait]
//! impl TransportSignals for NoSignals {
//!     async fn send_info(&mut self, _: Element) -> Result<(), TransportError> { Ok(()) }
//!     async fn recv_info(&mut self) -> Result<Element, TransportError> {
//!         Err(TransportError::Closed("no signals".into()))
//!     }
//! }
//!
//! let router = MemoryRouter::new();
//! let romeo = "romeo@montague.lit/orchard".parse().unwrap();
//! let juliet = "juliet@capulet.lit/balcony".parse().unwrap();
//! let ctx = |me: &jet_core::jid::FullJid, peer: &jet_core::jid::FullJid, role| TransportContext {
//!     channel: router.connect(me.clone()),
//!     local: me.clone(),
//!     peer: peer.clone(),
//!     role,
//!     session_sid: "s1".into(),
//!     content_name: "file".into(),
//!     we_send: role == Role::Initiator,
//! };
//! let (ri, ju) = (ctx(&romeo, &juliet, Role::Initiator), ctx(&juliet, &romeo, Role::Responder));
//! let ibb = IbbTransport::new(IbbConfig::default());
//!
//! let mut offer = ibb.offer(&ri).await.unwrap();           // into session-initiate
//! let answer = ibb.answer(&ju, &offer.local_transport()).await.unwrap();
//! offer.set_remote(&answer.local_transport()).unwrap();     // from session-accept
//!
//! let sender = tokio::spawn(async move {
//!     let mut s = offer.establish(&mut NoSignals).await.unwrap();
//!     s.write_all(b"wherefore art thou").await.unwrap();
//!     s.shutdown().await.unwrap();                         // sends <close/>
//! });
//! let mut r = answer.establish(&mut NoSignals).await.unwrap();
//! let mut got = Vec::new();
//! r.read_to_end(&mut got).await.unwrap();
//! assert_eq!(got, b"wherefore art thou");
//! sender.await.unwrap();
//! # });
//! ```
#![warn(missing_docs)]

pub mod ibb;
pub mod s5b;
mod util;

pub use ibb::{IbbConfig, IbbStream, IbbTransport};
pub use s5b::{ProxyConfig, S5bConfig, S5bTransport};
