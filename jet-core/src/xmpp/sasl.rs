//! SASL (RFC 6120 §6): which mechanism and which channel binding, and the
//! exchange itself.
//!
//! The channel binding is chosen the way deployed clients choose it
//! (Conversations' `ChannelBinding.best`, Dino's xmpp-vala):
//!
//! - a `-PLUS` mechanism with `tls-exporter` (RFC 9266) when the server
//!   lists `tls-exporter` in XEP-0440's `<sasl-channel-binding/>` and the
//!   connection is TLS 1.3. Then only `-PLUS` mechanisms are candidates:
//!   never a weaker mechanism when the server advertised a binding we can do.
//! - `tls-unique` would be the choice on TLS 1.2 when the server says
//!   nothing, but rustls does not expose the TLS Finished message that
//!   tls-unique (RFC 5929) is made of, so jet has no tls-unique data at all.
//! - otherwise plain SCRAM, with the RFC 5802 §6 GS2 flag:
//!   - `n` ("the client does not support channel binding") when the server
//!     offers `-PLUS` but no binding type we can use: a `-PLUS` server that
//!     reads `y` must conclude that somebody stripped `-PLUS` from its
//!     offer, and refuse (RFC 5802 §6). ejabberd 23.01 as shipped is this
//!     case: it offers `SCRAM-SHA-1-PLUS` on TLS 1.3, checks only
//!     tls-unique and advertises no XEP-0440 types. It accepts `n` (and, not
//!     enforcing §6, `y` too: `tests/sasl_servers.rs` shows both); `n` is
//!     what a conforming server accepts, and what Conversations
//!     (`ScramMechanism`: `n,,` without binding, with a note that `y` risks
//!     servers supporting a binding it does not) and Dino (xmpp-vala:
//!     `n,,` for every non-PLUS mechanism) send.
//!   - `y` ("the client supports binding, the server does not") when we have
//!     TLS 1.3 exporter data and the server offers no `-PLUS` at all (Prosody
//!     0.12 with LuaSec lacking channel binding): a server that did offer
//!     `-PLUS` and had it stripped by an attacker then refuses us.
//!   - `n` without TLS (plain TCP to loopback) or without exporter data.
//!
//! The exchange is ours rather than tokio-xmpp's `client_login` so that the
//! server's `<text/>` reaches the error and the server's final SCRAM message
//! (its proof that it knows the password) is checked.

use std::collections::BTreeSet;
use std::str::FromStr;

use futures_util::{SinkExt, StreamExt};
use sasl::client::mechanisms::{Plain, Scram};
use sasl::client::Mechanism;
use sasl::common::scram::{Sha1, Sha256};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio_xmpp::xmlstream::{InitiatingStream, ReadError, XmppStream, XmppStreamElement};
use xmpp_parsers::sasl::{Auth, Mechanism as XmppMechanism, Nonza, Response};
use xmpp_parsers::sasl_cb::Type as CbType;

/// What the TLS layer can bind a login to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TlsBinding {
    /// No TLS (plain TCP to loopback, for tests).
    NoTls,
    /// TLS, with RFC 9266 `tls-exporter` data when it is TLS 1.3 (`None`
    /// on TLS 1.2: rustls offers no tls-unique, and we do not use the
    /// exporter on TLS 1.2).
    Tls {
        /// `EXPORTER-Channel-Binding`, 32 bytes.
        exporter: Option<Vec<u8>>,
    },
}

/// The GS2 channel-binding flag and data we send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Binding {
    /// `n`: the client does not support channel binding (for this server).
    No,
    /// `y`: the client supports it but thinks the server does not.
    ClientOnly,
    /// `p=tls-exporter` with the data.
    TlsExporter(Vec<u8>),
}

impl Binding {
    fn to_sasl(&self) -> ChannelBinding {
        match self {
            Binding::No => ChannelBinding::None,
            Binding::ClientOnly => ChannelBinding::Unsupported,
            Binding::TlsExporter(d) => ChannelBinding::TlsExporter(d.clone()),
        }
    }

    /// For messages: `tls-exporter`, or the GS2 flag.
    pub(super) fn describe(&self) -> &'static str {
        match self {
            Binding::No => "no channel binding (GS2 flag n)",
            Binding::ClientOnly => "no channel binding (GS2 flag y)",
            Binding::TlsExporter(_) => "channel binding tls-exporter",
        }
    }
}

/// The mechanism and binding for one login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    /// The mechanism to use, `None` when there is no acceptable one.
    pub mechanism: Option<&'static str>,
    /// The channel binding.
    pub binding: Binding,
}

/// Mechanisms we can do, strongest first, with and without channel binding.
const PLUS: [&str; 2] = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"];
const PLAIN_SCRAM: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"];

/// Chooses the mechanism and channel binding (see the module docs).
/// `offered`: the server's `<mechanisms/>` (ANONYMOUS is never used);
/// `advertised`: its XEP-0440 types, `None` when it sent no
/// `<sasl-channel-binding/>`.
pub(super) fn plan(
    offered: &BTreeSet<String>,
    advertised: Option<&[CbType]>,
    tls: &TlsBinding,
) -> Plan {
    let server_plus = offered.iter().any(|m| m.ends_with("-PLUS"));
    let exporter_advertised = advertised.is_some_and(|t| t.contains(&CbType::TlsExporter));
    let binding = match tls {
        TlsBinding::NoTls => Binding::No,
        TlsBinding::Tls {
            exporter: Some(data),
        } if server_plus && exporter_advertised => Binding::TlsExporter(data.clone()),
        TlsBinding::Tls { exporter: Some(_) } if !server_plus => Binding::ClientOnly,
        TlsBinding::Tls { .. } => Binding::No,
    };
    let candidates: &[&'static str] = match binding {
        // Never fall back to a mechanism without binding: a server that
        // advertised tls-exporter and offers -PLUS gets -PLUS or nothing.
        Binding::TlsExporter(_) => &PLUS,
        _ => &PLAIN_SCRAM,
    };
    let mechanism = candidates.iter().copied().find(|m| offered.contains(*m));
    Plan { mechanism, binding }
}

/// How a SASL exchange failed.
#[derive(Debug)]
pub(super) enum SaslFailure {
    /// The server answered `<failure/>`.
    Refused {
        /// The RFC 6120 §6.5 condition, e.g. `not-authorized`.
        condition: String,
        /// Its `<text/>`, if any.
        text: Option<String>,
    },
    /// The server's final SCRAM message did not prove it knows the password.
    BadServerProof(String),
    /// Our mechanism could not answer the server's challenge.
    Mechanism(String),
    /// The stream broke or carried something unexpected.
    Stream(String),
}

fn mechanism_for(name: &str, creds: Credentials) -> Result<Box<dyn Mechanism + Send>, String> {
    let e = |e: sasl::client::MechanismError| e.to_string();
    Ok(match name {
        "SCRAM-SHA-256" | "SCRAM-SHA-256-PLUS" => {
            Box::new(Scram::<Sha256>::from_credentials(creds).map_err(e)?)
        }
        "SCRAM-SHA-1" | "SCRAM-SHA-1-PLUS" => {
            Box::new(Scram::<Sha1>::from_credentials(creds).map_err(e)?)
        }
        "PLAIN" => Box::new(Plain::from_credentials(creds).map_err(e)?),
        other => return Err(format!("no implementation of {other}")),
    })
}

/// Runs the exchange with `mechanism` and `binding`. On success the stream
/// is ready for the restart (RFC 6120 §6.4.6).
pub(super) async fn exchange<S: AsyncBufRead + AsyncWrite + Unpin>(
    mut stream: XmppStream<S>,
    mechanism: &str,
    binding: &Binding,
    username: &str,
    password: &str,
) -> Result<InitiatingStream<S>, SaslFailure> {
    let creds = Credentials::default()
        .with_username(username)
        .with_password(password)
        .with_channel_binding(binding.to_sasl());
    let mut mech = mechanism_for(mechanism, creds).map_err(SaslFailure::Mechanism)?;
    debug_assert_eq!(mech.name(), mechanism, "binding and mechanism disagree");
    let name = XmppMechanism::from_str(mechanism)
        .map_err(|e| SaslFailure::Mechanism(format!("{mechanism}: {e}")))?;
    let stream_err = |e: std::io::Error| SaslFailure::Stream(e.to_string());
    stream
        .send(&XmppStreamElement::Sasl(Nonza::Auth(Auth {
            mechanism: name,
            data: mech.initial(),
        })))
        .await
        .map_err(stream_err)?;
    loop {
        let next = stream
            .next()
            .await
            .map(|r| r.and_then(|el| el.into_read_error()));
        match next {
            Some(Ok(XmppStreamElement::Sasl(Nonza::Challenge(c)))) => {
                let data = mech
                    .response(&c.data)
                    .map_err(|e| SaslFailure::Mechanism(e.to_string()))?;
                stream
                    .send(&XmppStreamElement::Sasl(Nonza::Response(Response { data })))
                    .await
                    .map_err(stream_err)?;
            }
            Some(Ok(XmppStreamElement::Sasl(Nonza::Success(s)))) => {
                mech.success(&s.data)
                    .map_err(|e| SaslFailure::BadServerProof(e.to_string()))?;
                return Ok(stream.initiate_reset());
            }
            Some(Ok(XmppStreamElement::Sasl(Nonza::Failure(f)))) => {
                let text = f
                    .texts
                    .get("en")
                    .or_else(|| f.texts.get(""))
                    .or_else(|| f.texts.values().next())
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty());
                return Err(SaslFailure::Refused {
                    condition: super::connect::kebab(&format!("{:?}", f.defined_condition)),
                    text,
                });
            }
            Some(Ok(other)) => {
                return Err(SaslFailure::Stream(format!(
                    "unexpected element during SASL: {other:?}"
                )))
            }
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(e)) => return Err(SaslFailure::Stream(e.to_string())),
            None => {
                return Err(SaslFailure::Stream(
                    "the server closed the stream during SASL".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(m: &[&str]) -> BTreeSet<String> {
        m.iter().map(|s| s.to_string()).collect()
    }

    fn tls13() -> TlsBinding {
        TlsBinding::Tls {
            exporter: Some(vec![7; 32]),
        }
    }

    const EJABBERD_23: [&str; 3] = ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"];

    #[test]
    fn ejabberd_23_as_shipped_gets_plain_scram_with_n() {
        // -PLUS offered, no XEP-0440: tls-exporter is not assumed (ejabberd
        // before 24.02 checks only tls-unique), and "y" would make a -PLUS
        // server refuse.
        let p = plan(&offered(&EJABBERD_23), None, &tls13());
        assert_eq!(p.mechanism, Some("SCRAM-SHA-1"));
        assert_eq!(p.binding, Binding::No);
    }

    #[test]
    fn advertised_tls_exporter_gets_plus() {
        let adv = [CbType::TlsServerEndPoint, CbType::TlsExporter];
        let p = plan(&offered(&EJABBERD_23), Some(&adv), &tls13());
        assert_eq!(p.mechanism, Some("SCRAM-SHA-1-PLUS"));
        assert_eq!(p.binding, Binding::TlsExporter(vec![7; 32]));
        // The strongest -PLUS first.
        let both = offered(&[
            "SCRAM-SHA-1",
            "SCRAM-SHA-1-PLUS",
            "SCRAM-SHA-256",
            "SCRAM-SHA-256-PLUS",
        ]);
        let p = plan(&both, Some(&adv), &tls13());
        assert_eq!(p.mechanism, Some("SCRAM-SHA-256-PLUS"));
    }

    #[test]
    fn never_downgrades_when_a_supported_binding_was_advertised() {
        // tls-exporter advertised, but the only -PLUS mechanism is one we
        // cannot do: no SCRAM-SHA-1 or PLAIN instead, no mechanism at all.
        let adv = [CbType::TlsExporter];
        let m = offered(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-512-PLUS"]);
        let p = plan(&m, Some(&adv), &tls13());
        assert_eq!(p.mechanism, None);
        assert!(matches!(p.binding, Binding::TlsExporter(_)));
    }

    #[test]
    fn advertised_types_we_cannot_do_get_plain_scram_with_n() {
        // tls-unique (no data from rustls) and tls-server-end-point.
        let adv = [CbType::TlsUnique, CbType::TlsServerEndPoint];
        let p = plan(&offered(&EJABBERD_23), Some(&adv), &tls13());
        assert_eq!(p.mechanism, Some("SCRAM-SHA-1"));
        assert_eq!(p.binding, Binding::No);
        // tls-exporter advertised but we are on TLS 1.2 (no exporter data).
        let adv = [CbType::TlsExporter];
        let tls12 = TlsBinding::Tls { exporter: None };
        let p = plan(&offered(&EJABBERD_23), Some(&adv), &tls12);
        assert_eq!(p.mechanism, Some("SCRAM-SHA-1"));
        assert_eq!(p.binding, Binding::No);
    }

    #[test]
    fn a_server_without_plus_gets_y_when_we_could_bind() {
        // Prosody 0.12 on Debian: PLAIN and SCRAM-SHA-1, no -PLUS.
        let m = offered(&["PLAIN", "SCRAM-SHA-1"]);
        let p = plan(&m, None, &tls13());
        assert_eq!(p.mechanism, Some("SCRAM-SHA-1"));
        assert_eq!(p.binding, Binding::ClientOnly);
        // Without exporter data we cannot bind: "n".
        let p = plan(&m, None, &TlsBinding::Tls { exporter: None });
        assert_eq!(p.binding, Binding::No);
        // Without TLS: "n".
        let p = plan(&m, None, &TlsBinding::NoTls);
        assert_eq!(p.binding, Binding::No);
    }

    #[test]
    fn scram_is_preferred_to_plain_and_anonymous_is_never_chosen() {
        let p = plan(
            &offered(&["ANONYMOUS", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-1"]),
            None,
            &tls13(),
        );
        assert_eq!(p.mechanism, Some("SCRAM-SHA-256"));
        let p = plan(&offered(&["PLAIN"]), None, &tls13());
        assert_eq!(p.mechanism, Some("PLAIN"));
        let p = plan(&offered(&["ANONYMOUS"]), None, &tls13());
        assert_eq!(p.mechanism, None);
    }

    #[test]
    fn the_gs2_header_matches_the_binding() {
        for (b, header, name) in [
            (Binding::No, "n,,", "SCRAM-SHA-1"),
            (Binding::ClientOnly, "y,,", "SCRAM-SHA-1"),
            (
                Binding::TlsExporter(vec![1; 32]),
                "p=tls-exporter,,",
                "SCRAM-SHA-1-PLUS",
            ),
        ] {
            let creds = Credentials::default()
                .with_username("u")
                .with_password("p")
                .with_channel_binding(b.to_sasl());
            let mut m = mechanism_for(name, creds).unwrap();
            assert_eq!(m.name(), name);
            let first = String::from_utf8(m.initial()).unwrap();
            assert!(first.starts_with(header), "{first}");
        }
    }
}
