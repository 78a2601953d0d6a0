//! Service discovery (XEP-0030) answers and entity capabilities (XEP-0115).
//!
//! The channel answers `disco#info` itself, with the identity and the feature
//! list its caller configured (the JET features of the cipher and envelope
//! registries, Jingle, S5B, IBB...), and advertises the same set in its
//! presence as a XEP-0115 `<c/>` element, so that peers can learn what we
//! support without asking.

use base64::Engine;
use minidom::Element;
use sha1::{Digest, Sha1};

use crate::ns;
use crate::xml::BuilderExt;

/// XEP-0115 namespace.
pub const CAPS: &str = "http://jabber.org/protocol/caps";

/// A XEP-0030 identity (`<identity category= type= name=/>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// E.g. `client`.
    pub category: String,
    /// E.g. `pc`, `bot`.
    pub type_: String,
    /// Optional `xml:lang`.
    pub lang: Option<String>,
    /// Human-readable name.
    pub name: Option<String>,
}

impl Identity {
    /// An identity without language.
    pub fn new(category: &str, type_: &str, name: Option<&str>) -> Self {
        Self {
            category: category.to_string(),
            type_: type_.to_string(),
            lang: None,
            name: name.map(str::to_string),
        }
    }
}

/// What the channel answers to `disco#info` and advertises in caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoInfo {
    /// Our identities (at least one).
    pub identities: Vec<Identity>,
    /// Feature `var`s, sorted and without duplicates.
    pub features: Vec<String>,
}

impl DiscoInfo {
    /// Builds the set; `disco#info` itself and `urn:xmpp:ping` (the channel
    /// answers pings) are always added.
    pub fn new(identities: Vec<Identity>, features: impl IntoIterator<Item = String>) -> Self {
        let mut features: Vec<String> = features.into_iter().collect();
        features.push(ns::DISCO_INFO.to_string());
        features.push(PING.to_string());
        features.sort();
        features.dedup();
        Self {
            identities,
            features,
        }
    }

    /// The XEP-0115 §5.1 verification string: identities sorted by
    /// category/type/lang, then features sorted, each followed by `<`,
    /// hashed with SHA-1 and encoded in base64.
    pub fn caps_ver(&self) -> String {
        let mut ids: Vec<String> = self
            .identities
            .iter()
            .map(|i| {
                format!(
                    "{}/{}/{}/{}",
                    i.category,
                    i.type_,
                    i.lang.as_deref().unwrap_or(""),
                    i.name.as_deref().unwrap_or("")
                )
            })
            .collect();
        ids.sort();
        let mut features = self.features.clone();
        features.sort();
        let mut s = String::new();
        for i in ids {
            s.push_str(&i);
            s.push('<');
        }
        for f in features {
            s.push_str(&f);
            s.push('<');
        }
        base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes()))
    }

    /// The `<query xmlns='disco#info'/>` payload (with `node` when asked for one).
    pub fn to_query(&self, node: Option<&str>) -> Element {
        let mut q = Element::builder("query", ns::DISCO_INFO);
        if let Some(node) = node {
            q = q.a("node", node);
        }
        for i in &self.identities {
            let mut b = Element::builder("identity", ns::DISCO_INFO)
                .a("category", i.category.as_str())
                .a("type", i.type_.as_str());
            if let Some(name) = &i.name {
                b = b.a("name", name.as_str());
            }
            let mut el = b.build();
            if let Some(lang) = &i.lang {
                el.set_attr(
                    minidom::rxml::Namespace::XML,
                    crate::xml::nc("lang"),
                    lang.as_str(),
                );
            }
            q = q.append(el);
        }
        for f in &self.features {
            q = q.append(
                Element::builder("feature", ns::DISCO_INFO)
                    .a("var", f.as_str())
                    .build(),
            );
        }
        q.build()
    }

    /// The XEP-0115 `<c/>` element for our presence.
    pub fn caps_element(&self, node: &str) -> Element {
        Element::builder("c", CAPS)
            .a("hash", "sha-1")
            .a("node", node)
            .a("ver", self.caps_ver())
            .build()
    }
}

/// XEP-0199 namespace.
pub const PING: &str = "urn:xmpp:ping";

/// A peer's advertised capabilities (the `<c/>` of its presence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCaps {
    /// The hash function (`sha-1` in practice).
    pub hash: String,
    /// The software's node URI.
    pub node: String,
    /// The verification string.
    pub ver: String,
}

impl PeerCaps {
    /// Reads the `<c/>` child of a presence, if any.
    pub fn from_presence(presence: &Element) -> Option<Self> {
        let c = presence.get_child("c", CAPS)?;
        Some(Self {
            hash: c.attr("hash").unwrap_or_default().to_string(),
            node: c.attr("node").unwrap_or_default().to_string(),
            ver: c.attr("ver")?.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0115 §5.2, the simple example.
    #[test]
    fn caps_ver_matches_the_xep_example() {
        let info = DiscoInfo {
            identities: vec![Identity::new("client", "pc", Some("Exodus 0.9.1"))],
            features: vec![
                "http://jabber.org/protocol/caps".into(),
                "http://jabber.org/protocol/disco#info".into(),
                "http://jabber.org/protocol/disco#items".into(),
                "http://jabber.org/protocol/muc".into(),
            ],
        };
        assert_eq!(info.caps_ver(), "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }

    #[test]
    fn caps_ver_ignores_feature_order_and_changes_with_features() {
        let a = DiscoInfo::new(
            vec![Identity::new("client", "pc", Some("jet"))],
            [ns::JET.to_string(), ns::JINGLE.to_string()],
        );
        let b = DiscoInfo::new(
            vec![Identity::new("client", "pc", Some("jet"))],
            [
                ns::JINGLE.to_string(),
                ns::JET.to_string(),
                ns::JET.to_string(),
            ],
        );
        assert_eq!(a, b);
        assert_eq!(a.caps_ver(), b.caps_ver());
        let c = DiscoInfo::new(
            vec![Identity::new("client", "pc", Some("jet"))],
            [ns::JINGLE.to_string()],
        );
        assert_ne!(a.caps_ver(), c.caps_ver());
    }

    #[test]
    fn query_lists_identity_and_features() {
        let info = DiscoInfo::new(
            vec![Identity::new("client", "bot", Some("jet"))],
            [ns::JET.to_string()],
        );
        let q = info.to_query(Some("n#v"));
        assert_eq!(q.attr("node"), Some("n#v"));
        let id = q.get_child("identity", ns::DISCO_INFO).unwrap();
        assert_eq!(id.attr("category"), Some("client"));
        assert_eq!(id.attr("type"), Some("bot"));
        let vars: Vec<_> = q
            .children()
            .filter(|c| c.name() == "feature")
            .filter_map(|c| c.attr("var"))
            .collect();
        assert!(vars.contains(&ns::JET));
        assert!(vars.contains(&ns::DISCO_INFO));
        let caps = info.caps_element("https://example.org/jet");
        let presence = Element::builder("presence", ns::JABBER_CLIENT)
            .append(caps)
            .build();
        let peer = PeerCaps::from_presence(&presence).unwrap();
        assert_eq!(peer.ver, info.caps_ver());
        assert_eq!(peer.hash, "sha-1");
    }
}
