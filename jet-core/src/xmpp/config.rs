//! How to connect: account, server address, TLS trust, what we advertise.

use std::path::PathBuf;
use std::time::Duration;

use jid::BareJid;
use zeroize::Zeroizing;

use super::caps::{DiscoInfo, Identity};

/// Which certificates the TLS connection accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsTrust {
    /// The operating system's trust store (via `rustls-native-certs`).
    System,
    /// Only the CA certificates in this PEM file (a self-hosted or test
    /// server with its own CA).
    CaFile(PathBuf),
    /// The system store plus the CAs in this PEM file.
    SystemAndCaFile(PathBuf),
}

/// How the bytes to the server are protected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// StartTLS (RFC 6120 §5), required: a server without it is refused.
    StartTls(TlsTrust),
    /// No TLS at all. Only allowed when every address of the server is a
    /// loopback address (tests against a server on this machine); anything
    /// else is refused with
    /// [`XmppError::InsecureNotLoopback`](super::XmppError::InsecureNotLoopback)
    /// before a connection is made.
    PlainTcpLoopbackOnly,
}

/// Everything [`XmppChannel::connect`](super::XmppChannel::connect) needs.
///
/// ```
/// use jet_core::xmpp::{XmppConfig, TlsTrust};
/// let config = XmppConfig::new("romeo@jet.test".parse().unwrap(), "secret")
///     .server("127.0.0.1:5222")
///     .trust(TlsTrust::CaFile("target/test-server/prosody/certs/ca.pem".into()))
///     .features(["urn:xmpp:jingle:jet:0"]);
/// assert_eq!(config.jid().to_string(), "romeo@jet.test");
/// ```
#[derive(Clone)]
pub struct XmppConfig {
    pub(super) jid: BareJid,
    pub(super) password: Zeroizing<String>,
    pub(super) resource: Option<String>,
    pub(super) server: Option<String>,
    pub(super) security: Security,
    pub(super) connect_timeout: Duration,
    pub(super) identities: Vec<Identity>,
    pub(super) features: Vec<String>,
    pub(super) caps_node: String,
    pub(super) auto_accept: Vec<BareJid>,
}

impl std::fmt::Debug for XmppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppConfig")
            .field("jid", &self.jid)
            .field("password", &"<hidden>")
            .field("resource", &self.resource)
            .field("server", &self.server)
            .field("security", &self.security)
            .field("connect_timeout", &self.connect_timeout)
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

impl XmppConfig {
    /// An account with StartTLS against the system's trust store, the server
    /// found from the JID's domain (SRV `_xmpp-client._tcp`, else port 5222),
    /// a 10 s connect timeout and a `client/pc` identity named `jet`.
    pub fn new(jid: BareJid, password: impl Into<String>) -> Self {
        Self {
            jid,
            password: Zeroizing::new(password.into()),
            resource: None,
            server: None,
            security: Security::StartTls(TlsTrust::System),
            connect_timeout: Duration::from_secs(10),
            identities: vec![Identity::new("client", "pc", Some("jet"))],
            features: Vec::new(),
            caps_node: "https://crates.io/crates/jet-core".to_string(),
            auto_accept: Vec::new(),
        }
    }

    /// The account.
    pub fn jid(&self) -> &BareJid {
        &self.jid
    }

    /// Asks the server for this resource (it may assign another one).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Connects to `host:port` (or `ip:port`) instead of looking up the domain.
    pub fn server(mut self, addr: impl Into<String>) -> Self {
        self.server = Some(addr.into());
        self
    }

    /// StartTLS with this trust.
    pub fn trust(mut self, trust: TlsTrust) -> Self {
        self.security = Security::StartTls(trust);
        self
    }

    /// StartTLS trusting only the CAs in `path` (shorthand for
    /// `trust(TlsTrust::CaFile(path))`).
    pub fn trust_ca_file(self, path: impl Into<PathBuf>) -> Self {
        self.trust(TlsTrust::CaFile(path.into()))
    }

    /// Plain TCP without TLS, to a loopback server only (see
    /// [`Security::PlainTcpLoopbackOnly`]).
    pub fn insecure_plain_tcp_loopback_only(mut self) -> Self {
        self.security = Security::PlainTcpLoopbackOnly;
        self
    }

    /// The bound on the whole connection (TCP, TLS, login, binding, roster).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Replaces our disco identities.
    pub fn identities(mut self, identities: Vec<Identity>) -> Self {
        self.identities = identities;
        self
    }

    /// The features we answer to `disco#info` and advertise in caps
    /// (typically the registries' JET, cipher, envelope and transport
    /// namespaces). `disco#info` and `urn:xmpp:ping` are always added.
    pub fn features<I, S>(mut self, features: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.features = features.into_iter().map(Into::into).collect();
        self
    }

    /// The XEP-0115 node URI of our software.
    pub fn caps_node(mut self, node: impl Into<String>) -> Self {
        self.caps_node = node.into();
        self
    }

    /// Accounts whose presence subscription requests are accepted
    /// automatically (and subscribed to in return).
    pub fn auto_accept<I: IntoIterator<Item = BareJid>>(mut self, jids: I) -> Self {
        self.auto_accept = jids.into_iter().collect();
        self
    }

    /// The disco#info answer this configuration produces.
    pub fn disco_info(&self) -> DiscoInfo {
        DiscoInfo::new(self.identities.clone(), self.features.iter().cloned())
    }
}
