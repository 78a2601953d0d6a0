//! One bounded connection attempt: TCP, StartTLS with our own trust anchors,
//! SASL, resource binding, roster.
//!
//! tokio-xmpp's `Client` retries a failed login forever and only logs why,
//! and its TLS connector trusts whatever `rustls-native-certs` finds. Here we
//! use tokio-xmpp's XML stream and SASL pieces but drive the steps ourselves,
//! so that every failure comes back as one clear [`XmppError`] and the whole
//! attempt is bounded by the configured timeout.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use jid::FullJid;
use minidom::Element;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_xmpp::connect::AsyncReadAndWrite;
use tokio_xmpp::xmlstream::{
    initiate_stream, FallibleStreamElement, ReadError, StreamHeader, Timeouts, XmlStream,
    XmppStreamElement,
};
use xmpp_parsers::starttls;

use super::config::{Security, TlsTrust, XmppConfig};
use super::error::XmppError;
use super::sasl::{self, SaslFailure, TlsBinding};
use crate::channel::stanza_error_of;
use crate::ns;
use crate::xml::BuilderExt;

/// RFC 6120 §7 resource binding.
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// RFC 6120 §4.9 stream errors.
pub(super) const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// RFC 6121 roster.
pub(super) const NS_ROSTER: &str = "jabber:iq:roster";

/// The stream after login: raw elements both ways, so that nothing a parser
/// does not know is lost (JET's `<security/>` inside Jingle, say).
pub(super) type RawStream = XmlStream<Box<dyn AsyncReadAndWrite + Send + 'static>, Element>;

/// A logged-in, bound stream.
pub(super) struct Connected {
    pub stream: RawStream,
    pub jid: FullJid,
    /// Stanzas that arrived while we waited for the bind and roster answers.
    pub early: Vec<Element>,
}

/// Read timeouts of the XML stream: after 60 s of silence the channel pings
/// the server; 15 s more without data and the stream counts as dead.
pub(super) fn timeouts() -> Timeouts {
    Timeouts::tight()
}

type Stage = Arc<Mutex<&'static str>>;

fn set(stage: &Stage, now: &'static str) {
    *stage.lock().unwrap_or_else(|e| e.into_inner()) = now;
}

/// Connects and logs in, bounded by `config.connect_timeout`.
pub(super) async fn connect(config: &XmppConfig) -> Result<Connected, XmppError> {
    let stage: Stage = Arc::new(Mutex::new("resolving the server address"));
    match tokio::time::timeout(config.connect_timeout, login(config, &stage)).await {
        Ok(result) => result,
        Err(_) => Err(XmppError::Timeout {
            stage: *stage.lock().unwrap_or_else(|e| e.into_inner()),
            after: config.connect_timeout,
        }),
    }
}

fn header(domain: &str) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(domain)),
        from: None,
        id: None,
    }
}

fn stream_error(stage: &'static str, reason: impl ToString) -> XmppError {
    XmppError::Stream {
        stage,
        reason: reason.to_string(),
    }
}

async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, XmppError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|source| XmppError::Unreachable {
            server: addr.to_string(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(XmppError::Unreachable {
            server: addr.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address found"),
        });
    }
    Ok(addrs)
}

async fn connect_any(server: &str, addrs: &[SocketAddr]) -> Result<TcpStream, XmppError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(XmppError::Unreachable {
        server: server.to_string(),
        source: last.unwrap_or_else(|| std::io::Error::other("no address to connect to")),
    })
}

/// The rustls configuration for `trust`. The CA file is read before any
/// connection is made, so a bad path is reported as such.
pub(super) fn tls_config(trust: &TlsTrust) -> Result<rustls::ClientConfig, XmppError> {
    let mut roots = rustls::RootCertStore::empty();
    let (system, file) = match trust {
        TlsTrust::System => (true, None),
        TlsTrust::CaFile(p) => (false, Some(p)),
        TlsTrust::SystemAndCaFile(p) => (true, Some(p)),
    };
    if system {
        // Unreadable system certificates are skipped; an empty store simply
        // trusts nobody (and the handshake says so).
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    if let Some(path) = file {
        let ca_err = |reason: String| XmppError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no certificate in the file".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| XmppError::Config(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn classify_tls(domain: &str, e: std::io::Error) -> XmppError {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        if let rustls::Error::InvalidCertificate(cert) = tls {
            return XmppError::UntrustedCertificate {
                server: domain.to_string(),
                reason: format!("{cert:?}"),
            };
        }
        return XmppError::Tls {
            server: domain.to_string(),
            reason: tls.to_string(),
        };
    }
    XmppError::Tls {
        server: domain.to_string(),
        reason: e.to_string(),
    }
}

async fn login(config: &XmppConfig, stage: &Stage) -> Result<Connected, XmppError> {
    let domain = config.jid.domain().as_str().to_string();
    if config.jid.node().is_none() {
        return Err(XmppError::Config(format!(
            "{} has no local part: an account JID looks like user@{domain}",
            config.jid
        )));
    }
    let target = config
        .server
        .clone()
        .unwrap_or_else(|| format!("{domain}:5222"));

    let (tcp, tls) = match &config.security {
        Security::PlainTcpLoopbackOnly => {
            // Checked on the resolved addresses, before any connection.
            let addrs = resolve(&target).await?;
            if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(XmppError::InsecureNotLoopback {
                    addr: format!("{target} ({bad})"),
                });
            }
            set(stage, "connecting");
            (connect_any(&target, &addrs).await?, None)
        }
        Security::StartTls(trust) => {
            let tls = tls_config(trust)?;
            let tcp = match &config.server {
                Some(server) => {
                    let addrs = resolve(server).await?;
                    set(stage, "connecting");
                    connect_any(server, &addrs).await?
                }
                None => {
                    set(stage, "connecting");
                    tokio_xmpp::connect::DnsConfig::srv_default_client(&domain)
                        .resolve()
                        .await
                        .map_err(|e| XmppError::Unreachable {
                            server: domain.clone(),
                            source: std::io::Error::other(e.to_string()),
                        })?
                }
            };
            (tcp, Some(tls))
        }
    };
    // tokio-xmpp leaves Nagle on: every IQ round trip would wait ~40 ms.
    tcp.set_nodelay(true).ok();

    set(stage, "opening the XML stream");
    let pending = initiate_stream(
        BufStream::new(tcp),
        ns::JABBER_CLIENT,
        header(&domain),
        timeouts(),
    )
    .await
    .map_err(|e| stream_error("opening the XML stream", e))?;
    let (features, mut stream) = pending
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| stream_error("reading the stream features", e))?;

    let Some(tls) = tls else {
        return authenticate(
            config,
            stream.box_stream(),
            features,
            TlsBinding::NoTls,
            stage,
        )
        .await;
    };

    // RFC 6120 §5: StartTLS.
    if !features.can_starttls() {
        return Err(XmppError::NoStartTls { server: domain });
    }
    set(stage, "starting TLS");
    stream
        .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
            starttls::Request,
        )))
        .await
        .map_err(|e| stream_error("starting TLS", e))?;
    loop {
        match stream
            .next()
            .await
            .map(|r| r.and_then(|el| el.into_read_error()))
        {
            Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
            Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Failure(_)))) => {
                return Err(XmppError::Tls {
                    server: domain,
                    reason: "the server answered <failure/> to <starttls/>".into(),
                })
            }
            Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(e)) => return Err(stream_error("starting TLS", e)),
            None => return Err(stream_error("starting TLS", "the server closed the stream")),
        }
    }
    let tcp = stream.into_inner().into_inner();
    let name = ServerName::try_from(domain.clone())
        .map_err(|e| XmppError::Config(format!("{domain} is not a valid TLS name: {e}")))?;
    set(stage, "in the TLS handshake");
    let tls_stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| classify_tls(&domain, e))?;
    // RFC 9266 tls-exporter channel binding (TLS 1.3 only; rustls has no
    // tls-unique for TLS 1.2).
    let binding = {
        let (_, conn) = tls_stream.get_ref();
        let exporter = if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
                .ok()
        } else {
            None
        };
        TlsBinding::Tls { exporter }
    };
    let io: Box<dyn AsyncReadAndWrite + Send + 'static> = Box::new(BufStream::new(tls_stream));
    set(stage, "opening the encrypted XML stream");
    let pending = initiate_stream(io, ns::JABBER_CLIENT, header(&domain), timeouts())
        .await
        .map_err(|e| stream_error("opening the encrypted XML stream", e))?;
    let (features, stream) = pending
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| stream_error("reading the encrypted stream's features", e))?;
    authenticate(config, stream, features, binding, stage).await
}

/// SASL (RFC 6120 §6, mechanism and channel binding chosen by
/// [`sasl::plan`]), the stream restart, resource binding (§7), and the
/// roster request (RFC 6121 §2.2: a server sends contacts' presence only to
/// sessions that asked for the roster).
async fn authenticate(
    config: &XmppConfig,
    stream: tokio_xmpp::xmlstream::XmppStream<Box<dyn AsyncReadAndWrite + Send + 'static>>,
    features: xmpp_parsers::stream_features::StreamFeatures,
    tls: TlsBinding,
    stage: &Stage,
) -> Result<Connected, XmppError> {
    let domain = config.jid.domain().as_str().to_string();
    set(stage, "authenticating");
    let advertised = features.sasl_cb.as_ref().map(|cb| cb.types.as_slice());
    let plan = sasl::plan(&features.sasl_mechanisms, advertised, &tls);
    let Some(mechanism) = plan.mechanism else {
        return Err(XmppError::NoSaslMechanism {
            offered: features.sasl_mechanisms.iter().cloned().collect(),
        });
    };
    let jid = config.jid.to_string();
    let initiating = sasl::exchange(
        stream,
        mechanism,
        &plan.binding,
        config.jid.node().map(|n| n.as_str()).unwrap_or_default(),
        config.password.as_str(),
    )
    .await
    .map_err(|e| login_error(jid, mechanism, &plan.binding, e))?;

    set(stage, "restarting the stream after login");
    let pending = initiating
        .send_header(header(&domain))
        .await
        .map_err(|e| stream_error("restarting the stream after login", e))?;
    let (features, mut stream) = pending
        .recv_features::<Element>()
        .await
        .map_err(|e| stream_error("restarting the stream after login", e))?;
    if !features.can_bind() {
        return Err(XmppError::Bind(
            "the server offers no resource binding".into(),
        ));
    }

    set(stage, "binding a resource");
    let mut early = Vec::new();
    let mut bind = Element::builder("bind", NS_BIND);
    if let Some(resource) = &config.resource {
        bind = bind.append(
            Element::builder("resource", NS_BIND)
                .append(resource.as_str())
                .build(),
        );
    }
    let iq = Element::builder("iq", ns::JABBER_CLIENT)
        .a("type", "set")
        .a("id", "jet-bind")
        .append(bind.build())
        .build();
    let answer = exchange(&mut stream, iq, "binding a resource", &mut early).await?;
    if answer.attr("type") != Some("result") {
        return Err(XmppError::Bind(stanza_error_of(&answer).to_string()));
    }
    let jid = answer
        .get_child("bind", NS_BIND)
        .and_then(|b| b.get_child("jid", NS_BIND))
        .map(|j| j.text())
        .ok_or_else(|| XmppError::Bind("the answer holds no JID".into()))?;
    let jid = FullJid::new(jid.trim())
        .map_err(|e| XmppError::Bind(format!("the server bound an invalid JID {jid:?}: {e}")))?;
    if jid.to_bare() != config.jid {
        return Err(XmppError::Bind(format!(
            "the server bound {jid}, which is not the account {}",
            config.jid
        )));
    }

    set(stage, "requesting the roster");
    let iq = Element::builder("iq", ns::JABBER_CLIENT)
        .a("type", "get")
        .a("id", "jet-roster")
        .append(Element::builder("query", NS_ROSTER).build())
        .build();
    let answer = exchange(&mut stream, iq, "requesting the roster", &mut early).await?;
    if answer.attr("type") != Some("result") {
        return Err(stream_error(
            "requesting the roster",
            stanza_error_of(&answer),
        ));
    }
    Ok(Connected { stream, jid, early })
}

/// The error for a failed SASL exchange: a refusal whose `<text/>` names
/// the channel binding is not reported as a wrong password.
fn login_error(
    jid: String,
    mechanism: &str,
    binding: &sasl::Binding,
    failure: SaslFailure,
) -> XmppError {
    match failure {
        SaslFailure::Refused { condition, text }
            if text
                .as_deref()
                .is_some_and(|t| t.to_ascii_lowercase().contains("channel binding")) =>
        {
            XmppError::ChannelBinding {
                jid,
                mechanism: mechanism.to_string(),
                binding: binding.describe(),
                condition,
                text: text.unwrap_or_default(),
            }
        }
        SaslFailure::Refused { condition, text } => XmppError::Authentication {
            jid,
            condition,
            text,
        },
        SaslFailure::BadServerProof(why) => XmppError::Stream {
            stage: "authenticating",
            reason: format!(
                "the server's final {mechanism} message does not prove that it knows the \
                 password ({why}); not trusting this server"
            ),
        },
        SaslFailure::Mechanism(why) => {
            stream_error("authenticating", format!("{mechanism}: {why}"))
        }
        SaslFailure::Stream(why) => stream_error("authenticating", why),
    }
}

/// Sends `iq` and reads until its answer; other stanzas go to `early`.
async fn exchange(
    stream: &mut RawStream,
    iq: Element,
    stage: &'static str,
    early: &mut Vec<Element>,
) -> Result<Element, XmppError> {
    let id = iq.attr("id").unwrap_or_default().to_string();
    stream.send(&iq).await.map_err(|e| stream_error(stage, e))?;
    loop {
        match stream.next().await {
            Some(Ok(el)) if el.name() == "iq" && el.attr("id") == Some(id.as_str()) => {
                if matches!(el.attr("type"), Some("result") | Some("error")) {
                    return Ok(el);
                }
                early.push(el);
            }
            Some(Ok(el)) if el.ns() == NS_STREAMS && el.name() == "error" => {
                return Err(stream_error(stage, describe_stream_error(&el)));
            }
            Some(Ok(el)) => early.push(el),
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(e)) => return Err(stream_error(stage, e)),
            None => return Err(stream_error(stage, "the server closed the stream")),
        }
    }
}

/// `<stream:error>`'s condition and text, for messages.
pub(super) fn describe_stream_error(el: &Element) -> String {
    let condition = el
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| "undefined-condition".into());
    match el.children().find(|c| c.name() == "text") {
        Some(t) => format!("stream error {condition}: {}", t.text()),
        None => format!("stream error {condition}"),
    }
}

/// `NotAuthorized` -> `not-authorized` (the RFC 6120 §6.5 condition name).
pub(super) fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What jet said to ejabberd 23.01 before issue 19: its answer to a
    /// tls-exporter binding is a channel-binding error with its text, not
    /// "wrong password".
    #[test]
    fn a_refused_channel_binding_is_not_a_wrong_password() {
        let e = login_error(
            "romeo@jet.test".into(),
            "SCRAM-SHA-1-PLUS",
            &sasl::Binding::TlsExporter(vec![0; 32]),
            SaslFailure::Refused {
                condition: "not-authorized".into(),
                text: Some("Invalid channel binding".into()),
            },
        );
        assert!(matches!(e, XmppError::ChannelBinding { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("\"Invalid channel binding\""), "{msg}");
        assert!(msg.contains("SCRAM-SHA-1-PLUS"), "{msg}");
        assert!(msg.contains("tls-exporter"), "{msg}");
        assert!(!msg.contains("wrong password"), "{msg}");
    }

    #[test]
    fn a_refused_password_says_so_with_the_servers_text() {
        let e = login_error(
            "romeo@jet.test".into(),
            "SCRAM-SHA-1",
            &sasl::Binding::No,
            SaslFailure::Refused {
                condition: "not-authorized".into(),
                text: Some("Invalid username or password".into()),
            },
        );
        let msg = e.to_string();
        assert!(msg.contains("wrong password"), "{msg}");
        assert!(msg.contains("\"Invalid username or password\""), "{msg}");
        let e = login_error(
            "romeo@jet.test".into(),
            "SCRAM-SHA-1",
            &sasl::Binding::No,
            SaslFailure::Refused {
                condition: "not-authorized".into(),
                text: None,
            },
        );
        assert_eq!(
            e.to_string(),
            "login as romeo@jet.test refused by the server (not-authorized): \
             wrong password or unknown account"
        );
    }
}
