//! The XEP-0260 `<transport/>` element, parsed and written by hand.
//!
//! xmpp-parsers' `jingle_s5b::Candidate::host` is an `IpAddr`, so a
//! candidate with a host name (a proxy's `proxy.example.org`) would not
//! parse. Here `host` is a `String`.

use jet_core::error::TransportError;
use jet_core::jid::Jid;
use jet_core::minidom::Element;
use jet_core::ns;
use jet_core::xml::BuilderExt;

/// The most candidates we read from one peer `<transport/>`: every one
/// costs a connection attempt with its own timeout.
pub const MAX_CANDIDATES: usize = 16;

/// XEP-0260 §2.2 candidate types with their type preferences (§2.4:
/// priority = type preference × 2^16 + local preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateType {
    /// A direct connection to the offerer (preference 126).
    Direct,
    /// A NAT-assisted address (preference 120).
    Assisted,
    /// A tunnel such as Teredo (preference 110).
    Tunnel,
    /// A SOCKS5 proxy, XEP-0065 (preference 10).
    Proxy,
}

impl CandidateType {
    /// The XEP-0260 type preference.
    pub fn type_preference(self) -> u32 {
        match self {
            CandidateType::Direct => 126,
            CandidateType::Assisted => 120,
            CandidateType::Tunnel => 110,
            CandidateType::Proxy => 10,
        }
    }

    /// The `type` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateType::Direct => "direct",
            CandidateType::Assisted => "assisted",
            CandidateType::Tunnel => "tunnel",
            CandidateType::Proxy => "proxy",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "direct" => CandidateType::Direct,
            "assisted" => CandidateType::Assisted,
            "tunnel" => CandidateType::Tunnel,
            "proxy" => CandidateType::Proxy,
            _ => return None,
        })
    }

    /// XEP-0260 §2.4: type preference × 2^16 + local preference.
    pub fn priority(self, local_preference: u16) -> u32 {
        (self.type_preference() << 16) | u32::from(local_preference)
    }
}

/// One `<candidate/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Candidate id, unique within the session.
    pub cid: String,
    /// IP address or host name.
    pub host: String,
    /// The streamhost JID: the offerer's full JID, or the proxy's JID.
    pub jid: Jid,
    /// TCP port.
    pub port: u16,
    /// XEP-0260 priority.
    pub priority: u32,
    /// Candidate type.
    pub type_: CandidateType,
}

impl Candidate {
    fn to_element(&self) -> Element {
        Element::builder("candidate", ns::JINGLE_S5B)
            .a("cid", self.cid.as_str())
            .a("host", self.host.as_str())
            .a("jid", self.jid.to_string())
            .a("port", self.port.to_string())
            .a("priority", self.priority.to_string())
            .a("type", self.type_.as_str())
            .build()
    }

    fn from_element(el: &Element) -> Result<Self, TransportError> {
        let attr = |name: &'static str| {
            el.attr(name)
                .ok_or_else(|| protocol(format!("S5B <candidate/> lacks {name:?}")))
        };
        let cid = attr("cid")?.to_string();
        let host = attr("host")?.trim().to_string();
        if host.is_empty() || host.len() > 255 {
            return Err(protocol("S5B <candidate/> has an empty or overlong host"));
        }
        let jid: Jid = attr("jid")?
            .parse()
            .map_err(|e| protocol(format!("S5B <candidate/> has an invalid jid: {e}")))?;
        // XEP-0260: the port defaults to 1080 when absent.
        let port = match el.attr("port") {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| protocol(format!("S5B <candidate/> has an invalid port {p:?}")))?,
            None => 1080,
        };
        if port == 0 {
            return Err(protocol("S5B <candidate/> has port 0"));
        }
        let priority = attr("priority")?
            .parse::<u32>()
            .map_err(|_| protocol("S5B <candidate/> has an invalid priority"))?;
        let type_ = match el.attr("type") {
            Some(t) => CandidateType::parse(t)
                .ok_or_else(|| protocol(format!("S5B <candidate/> has an unknown type {t:?}")))?,
            None => CandidateType::Direct,
        };
        Ok(Candidate {
            cid,
            host,
            jid,
            port,
            priority,
            type_,
        })
    }
}

/// An S5B `<transport/>` carrying candidates (session-initiate/accept,
/// transport-replace/accept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S5bTransportElement {
    /// The transport sid (the XEP-0065 SID, used in the hash and in activation).
    pub sid: String,
    /// `dstaddr`: the hash a peer uses towards our candidates (informative).
    pub dstaddr: Option<String>,
    /// Our candidates.
    pub candidates: Vec<Candidate>,
}

impl S5bTransportElement {
    /// Writes the element (`mode='tcp'`).
    pub fn to_element(&self) -> Element {
        let mut b = Element::builder("transport", ns::JINGLE_S5B)
            .a("sid", self.sid.as_str())
            .a("mode", "tcp");
        if let Some(d) = &self.dstaddr {
            b = b.a("dstaddr", d.as_str());
        }
        b.append_all(self.candidates.iter().map(Candidate::to_element))
            .build()
    }

    /// Reads the element. Refuses `mode='udp'`, more than
    /// [`MAX_CANDIDATES`] candidates and malformed candidates.
    pub fn from_element(el: &Element) -> Result<Self, TransportError> {
        if !el.is("transport", ns::JINGLE_S5B) {
            return Err(protocol(format!(
                "expected an S5B <transport/>, got <{}/> in {}",
                el.name(),
                el.ns()
            )));
        }
        let sid = el
            .attr("sid")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| protocol("S5B <transport/> lacks its sid"))?
            .to_string();
        if let Some(mode) = el.attr("mode") {
            if mode != "tcp" {
                return Err(protocol(format!("S5B mode {mode:?} is not supported")));
            }
        }
        let mut candidates = Vec::new();
        for c in el.children().filter(|c| c.is("candidate", ns::JINGLE_S5B)) {
            if candidates.len() == MAX_CANDIDATES {
                return Err(protocol(format!(
                    "the peer offered more than {MAX_CANDIDATES} S5B candidates"
                )));
            }
            candidates.push(Candidate::from_element(c)?);
        }
        Ok(S5bTransportElement {
            sid,
            dstaddr: el.attr("dstaddr").map(str::to_string),
            candidates,
        })
    }
}

/// The `transport-info` payloads of XEP-0260 §2.3–§2.5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S5bInfo {
    /// We connected to the peer's candidate `cid`.
    CandidateUsed(String),
    /// We could connect to none of the peer's candidates.
    CandidateError,
    /// The offerer activated the proxy candidate `cid`.
    Activated(String),
    /// The offerer could not activate the proxy.
    ProxyError,
    /// Candidates added later (trickle) or anything else: ignored.
    Other,
}

impl S5bInfo {
    /// The `<transport sid>` element carrying this info.
    pub fn to_element(&self, sid: &str) -> Element {
        let child = match self {
            S5bInfo::CandidateUsed(cid) => Some(
                Element::builder("candidate-used", ns::JINGLE_S5B)
                    .a("cid", cid.as_str())
                    .build(),
            ),
            S5bInfo::CandidateError => {
                Some(Element::builder("candidate-error", ns::JINGLE_S5B).build())
            }
            S5bInfo::Activated(cid) => Some(
                Element::builder("activated", ns::JINGLE_S5B)
                    .a("cid", cid.as_str())
                    .build(),
            ),
            S5bInfo::ProxyError => Some(Element::builder("proxy-error", ns::JINGLE_S5B).build()),
            S5bInfo::Other => None,
        };
        let mut b = Element::builder("transport", ns::JINGLE_S5B).a("sid", sid);
        if let Some(c) = child {
            b = b.append(c);
        }
        b.build()
    }

    /// Reads a `transport-info` `<transport/>`; checks the sid.
    pub fn from_element(el: &Element, sid: &str) -> Result<Self, TransportError> {
        if !el.is("transport", ns::JINGLE_S5B) {
            return Err(protocol(format!(
                "expected an S5B transport-info, got <{}/> in {}",
                el.name(),
                el.ns()
            )));
        }
        if el.attr("sid") != Some(sid) {
            return Err(protocol(format!(
                "S5B transport-info for sid {:?}, expected {sid:?}",
                el.attr("sid").unwrap_or("")
            )));
        }
        for c in el.children().filter(|c| c.ns() == ns::JINGLE_S5B) {
            let cid = || {
                c.attr("cid")
                    .map(str::to_string)
                    .ok_or_else(|| protocol(format!("S5B <{}/> lacks its cid", c.name())))
            };
            return Ok(match c.name() {
                "candidate-used" => S5bInfo::CandidateUsed(cid()?),
                "candidate-error" => S5bInfo::CandidateError,
                "activated" => S5bInfo::Activated(cid()?),
                "proxy-error" => S5bInfo::ProxyError,
                _ => continue,
            });
        }
        Ok(S5bInfo::Other)
    }
}

pub(crate) fn protocol(msg: impl Into<String>) -> TransportError {
    TransportError::Protocol(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jet_core::xml::parse;

    #[test]
    fn priorities_follow_xep_0260() {
        assert_eq!(CandidateType::Direct.priority(0), 126 << 16);
        assert_eq!(CandidateType::Proxy.priority(5), (10 << 16) + 5);
        assert!(CandidateType::Tunnel.priority(65535) < CandidateType::Assisted.priority(0));
    }

    #[test]
    fn host_names_survive_a_round_trip() {
        let xml = "<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='vj3hs98y' mode='tcp'>\
            <candidate cid='hft54dqy' host='proxy.example.org' jid='proxy.example.org' port='7777' priority='655360' type='proxy'/>\
            <candidate cid='hutr46fe' host='::1' jid='romeo@montague.lit/orchard' priority='8257536'/>\
            </transport>";
        let t = S5bTransportElement::from_element(&parse(xml).unwrap()).unwrap();
        assert_eq!(t.candidates[0].host, "proxy.example.org");
        assert_eq!(t.candidates[0].type_, CandidateType::Proxy);
        assert_eq!(t.candidates[1].port, 1080);
        assert_eq!(t.candidates[1].type_, CandidateType::Direct);
        let again = S5bTransportElement::from_element(&t.to_element()).unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn bad_transports_are_refused() {
        for xml in [
            "<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='a' mode='udp'/>",
            "<transport xmlns='urn:xmpp:jingle:transports:s5b:1'/>",
            "<transport xmlns='urn:xmpp:jingle:transports:ibb:1' sid='a'/>",
            "<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='a'><candidate cid='c' host='h' jid='a@b/c' port='99999' priority='1'/></transport>",
            "<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='a'><candidate cid='c' host='h' jid='a@b/c' port='1' priority='x'/></transport>",
            "<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='a'><candidate cid='c' jid='a@b/c' port='1' priority='1'/></transport>",
        ] {
            let r = S5bTransportElement::from_element(&parse(xml).unwrap());
            assert!(matches!(r, Err(TransportError::Protocol(_))), "{xml}: {r:?}");
        }
    }

    #[test]
    fn info_round_trip_and_sid_check() {
        for info in [
            S5bInfo::CandidateUsed("c1".into()),
            S5bInfo::CandidateError,
            S5bInfo::Activated("c2".into()),
            S5bInfo::ProxyError,
        ] {
            let el = info.to_element("sid1");
            assert_eq!(S5bInfo::from_element(&el, "sid1").unwrap(), info);
            assert!(S5bInfo::from_element(&el, "other").is_err());
        }
    }
}
