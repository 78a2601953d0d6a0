//! The JET `<security/>` element (XEP-0391 §4).
//!
//! ```xml
//! <security xmlns='urn:xmpp:jingle:jet:0'
//!           name='a-file-offer'
//!           cipher='urn:xmpp:ciphers:aes-256-gcm-nopadding:0'
//!           type='urn:xmpp:encryption:stub:0'>
//!   <encrypted xmlns='urn:xmpp:encryption:stub:0'>...</encrypted>   <!-- EE -->
//! </security>
//! ```
//!
//! It sits in each Jingle `<content/>` that is encrypted. `name` repeats the
//! content name, `cipher` names the cipher of the byte stream, `type` the
//! envelope method, and the only child is the envelope element (EE) that
//! carries the sealed transport secret.
//!
//! Deployed clients disagree on the details (see `INTEROP.md`), so we read
//! liberally and write strictly:
//! - `name` may be missing (Dino): [`Security::name`] is then `None`;
//! - `cipher` may carry the `:0` suffix or not: compare with
//!   [`Security::cipher_is`], which ignores it;
//! - attribute values are trimmed, whitespace text around EE is ignored;
//! - any `type` is read (OMEMO 0.3 uses `eu.siacs.conversations.axolotl`);
//!   whether it is supported is the session's decision, not the parser's.
//!
//! We write the spec form, with `name`, and the cipher URN exactly as the
//! caller chose it (some peers want it without `:0`).
//!
//! ```
//! use jet_core::security::Security;
//! use jet_core::minidom::Element;
//!
//! let xml = "<security xmlns='urn:xmpp:jingle:jet:0' cipher='urn:xmpp:ciphers:aes-128-gcm-nopadding' \
//!            type='urn:xmpp:encryption:stub:0'><encrypted xmlns='urn:xmpp:encryption:stub:0'>\
//!            <payload>AAAA</payload></encrypted></security>";
//! let sec = Security::try_from(xml.parse::<Element>().unwrap()).unwrap();
//! assert_eq!(sec.name, None);
//! assert!(sec.cipher_is("urn:xmpp:ciphers:aes-128-gcm-nopadding:0"));
//! assert_eq!(sec.envelope.name(), "encrypted");
//! ```

use minidom::{Element, Node};

use crate::error::ElementError;
use crate::ns;
use crate::xml::BuilderExt;

/// A JET `<security/>` element: cipher, envelope type and envelope element.
#[derive(Debug, Clone, PartialEq)]
pub struct Security {
    /// The content name this element belongs to. `None` when a peer left it
    /// out (Dino); we always write it (see [`Security::to_element_for`]).
    pub name: Option<String>,
    /// The cipher URN as written by the sender (with or without `:0`).
    pub cipher: String,
    /// The envelope type, e.g. `urn:xmpp:encryption:stub:0` or
    /// `eu.siacs.conversations.axolotl`.
    pub envelope_type: String,
    /// The envelope element (EE) carrying the sealed transport secret.
    pub envelope: Element,
}

impl Security {
    /// A `<security/>` for content `name`.
    pub fn new(
        name: impl Into<String>,
        cipher: impl Into<String>,
        envelope_type: impl Into<String>,
        envelope: Element,
    ) -> Self {
        Security {
            name: Some(name.into()),
            cipher: cipher.into(),
            envelope_type: envelope_type.into(),
            envelope,
        }
    }

    /// Whether the cipher is `urn`, ignoring the `:0` suffix on either side.
    pub fn cipher_is(&self, urn: &str) -> bool {
        ns::same_cipher(&self.cipher, urn)
    }

    /// Whether `el` is a `<security/>` in the JET namespace (readable or not).
    pub fn is_security(el: &Element) -> bool {
        el.is("security", ns::JET)
    }

    /// Serializes with `name` set to `content_name` (the spec form), whatever
    /// [`Security::name`] holds.
    pub fn to_element_for(&self, content_name: &str) -> Element {
        build(
            Some(content_name),
            &self.cipher,
            &self.envelope_type,
            &self.envelope,
        )
    }
}

fn build(name: Option<&str>, cipher: &str, type_: &str, envelope: &Element) -> Element {
    let mut b = Element::builder("security", ns::JET);
    if let Some(name) = name {
        b = b.a("name", name);
    }
    b.a("cipher", cipher)
        .a("type", type_)
        .append(envelope.clone())
        .build()
}

/// Reads an attribute, trimmed; empty counts as missing.
fn attr<'a>(el: &'a Element, name: &'a str) -> Option<&'a str> {
    el.attr(name).map(str::trim).filter(|v| !v.is_empty())
}

impl TryFrom<Element> for Security {
    type Error = ElementError;

    fn try_from(el: Element) -> Result<Self, ElementError> {
        Security::try_from(&el)
    }
}

impl TryFrom<&Element> for Security {
    type Error = ElementError;

    fn try_from(el: &Element) -> Result<Self, ElementError> {
        if !Security::is_security(el) {
            return Err(ElementError::WrongElement {
                expected: format!("{{{}}}security", ns::JET),
                got: format!("{{{}}}{}", el.ns(), el.name()),
            });
        }
        let cipher = attr(el, "cipher").ok_or(ElementError::MissingAttribute {
            element: "security",
            attribute: "cipher",
        })?;
        let envelope_type = attr(el, "type").ok_or(ElementError::MissingAttribute {
            element: "security",
            attribute: "type",
        })?;
        let name = attr(el, "name").map(str::to_string);
        let mut envelope = None;
        for node in el.nodes() {
            match node {
                Node::Element(child) => {
                    if envelope.is_some() {
                        return Err(ElementError::Invalid {
                            element: "security",
                            message: "more than one envelope element".into(),
                        });
                    }
                    envelope = Some(child.clone());
                }
                Node::Text(t) if t.trim().is_empty() => {}
                Node::Text(_) => {
                    return Err(ElementError::Invalid {
                        element: "security",
                        message: "unexpected text next to the envelope element".into(),
                    })
                }
            }
        }
        let envelope = envelope.ok_or(ElementError::MissingChild {
            element: "security",
            child: "envelope element",
        })?;
        Ok(Security {
            name,
            cipher: cipher.to_string(),
            envelope_type: envelope_type.to_string(),
            envelope,
        })
    }
}

impl From<&Security> for Element {
    fn from(s: &Security) -> Element {
        build(s.name.as_deref(), &s.cipher, &s.envelope_type, &s.envelope)
    }
}

impl From<Security> for Element {
    fn from(s: Security) -> Element {
        Element::from(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `<security/>` of XEP-0391 Listing 1 (file offer), with the PDF
    /// extraction's stray spaces removed.
    const LISTING_1: &str = "<security xmlns='urn:xmpp:jingle:jet:0'
              name='a-file-offer'
              cipher='urn:xmpp:ciphers:aes-256-gcm-nopadding'
              type='urn:xmpp:encryption:stub:0'>
            <encrypted xmlns='urn:xmpp:encryption:stub:0'>
              <payload>BASE64-ENCODED-ENCRYPTED-SECRET</payload>
            </encrypted>
          </security>";
    /// Listing 2 (file request).
    const LISTING_2: &str = "<security xmlns='urn:xmpp:jingle:jet:0'
              name='a-file-request'
              cipher='urn:xmpp:ciphers:aes-256-gcm-nopadding'
              type='urn:xmpp:encryption:stub:0'>
            <encrypted xmlns='urn:xmpp:encryption:stub:0'>
              <payload>BASE64-ENCODED-ENCRYPTED-SECRET</payload>
            </encrypted>
          </security>";
    /// Listing 3 (ranged restart).
    const LISTING_3: &str = "<security xmlns='urn:xmpp:jingle:jet:0'
              name='restart'
              cipher='urn:xmpp:ciphers:aes-256-gcm-nopadding'
              type='urn:xmpp:encryption:stub:0'>
            <encrypted xmlns='urn:xmpp:encryption:stub:0'>
              <payload>BASE64-ENCODED-ENCRYPTED-SECRET</payload>
            </encrypted>
          </security>";
    /// Dino (xmpp-vala): no `name`, cipher without `:0`, OMEMO 0.3 key
    /// transport element.
    const DINO: &str = "<security xmlns='urn:xmpp:jingle:jet:0'
              cipher='urn:xmpp:ciphers:aes-128-gcm-nopadding'
              type='eu.siacs.conversations.axolotl'>
            <encrypted xmlns='eu.siacs.conversations.axolotl'>
              <header sid='1234'>
                <key rid='5678'>a2V5</key>
                <iv>aXZpdml2aXZpdml2</iv>
              </header>
            </encrypted>
          </security>";
    /// Conversations: `name` equal to the content name, OMEMO type, cipher
    /// without `:0`.
    const CONVERSATIONS: &str = "<security xmlns='urn:xmpp:jingle:jet:0' name='1' \
         cipher='urn:xmpp:ciphers:aes-128-gcm-nopadding' type='eu.siacs.conversations.axolotl'>\
         <encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='99'>\
         <key prekey='true' rid='42'>MwgB</key><iv>AAECAwQFBgcICQoL</iv></header></encrypted>\
         </security>";

    fn parse(xml: &str) -> Result<Security, ElementError> {
        Security::try_from(xml.parse::<Element>().unwrap())
    }

    #[test]
    fn spec_listings_parse_and_round_trip() {
        for (xml, name) in [
            (LISTING_1, "a-file-offer"),
            (LISTING_2, "a-file-request"),
            (LISTING_3, "restart"),
        ] {
            let sec = parse(xml).unwrap();
            assert_eq!(sec.name.as_deref(), Some(name));
            assert_eq!(sec.cipher, "urn:xmpp:ciphers:aes-256-gcm-nopadding");
            assert!(sec.cipher_is(ns::CIPHER_AES_256_GCM));
            assert!(!sec.cipher_is(ns::CIPHER_AES_128_GCM));
            assert_eq!(sec.envelope_type, ns::ENCRYPTION_STUB);
            assert!(sec.envelope.is("encrypted", ns::ENCRYPTION_STUB));
            let payload = sec
                .envelope
                .get_child("payload", ns::ENCRYPTION_STUB)
                .unwrap();
            assert_eq!(payload.text(), "BASE64-ENCODED-ENCRYPTED-SECRET");
            let el = Element::from(&sec);
            assert_eq!(el.attr("name"), Some(name));
            let back = Security::try_from(el).unwrap();
            assert_eq!(back, sec);
        }
    }

    #[test]
    fn dino_form_without_name_and_version() {
        let sec = parse(DINO).unwrap();
        assert_eq!(sec.name, None);
        assert!(sec.cipher_is(ns::CIPHER_AES_128_GCM));
        assert_eq!(sec.envelope_type, ns::OMEMO_LEGACY);
        assert!(sec.envelope.is("encrypted", ns::OMEMO_LEGACY));
        // Round trip keeps it nameless; writing it for a content adds the name.
        let back = Security::try_from(Element::from(&sec)).unwrap();
        assert_eq!(back, sec);
        let named = sec.to_element_for("file0");
        assert_eq!(named.attr("name"), Some("file0"));
        assert_eq!(
            named.attr("cipher"),
            Some("urn:xmpp:ciphers:aes-128-gcm-nopadding")
        );
        assert_eq!(
            Security::try_from(named).unwrap().name.as_deref(),
            Some("file0")
        );
    }

    #[test]
    fn conversations_form() {
        let sec = parse(CONVERSATIONS).unwrap();
        assert_eq!(sec.name.as_deref(), Some("1"));
        assert_eq!(sec.cipher, "urn:xmpp:ciphers:aes-128-gcm-nopadding");
        assert_eq!(sec.envelope_type, ns::OMEMO_LEGACY);
        let key = sec
            .envelope
            .get_child("header", ns::OMEMO_LEGACY)
            .and_then(|h| h.get_child("key", ns::OMEMO_LEGACY))
            .unwrap();
        assert_eq!(key.attr("rid"), Some("42"));
        assert_eq!(Security::try_from(Element::from(&sec)).unwrap(), sec);
    }

    #[test]
    fn whitespace_in_attributes_is_trimmed() {
        let sec = parse(
            "<security xmlns='urn:xmpp:jingle:jet:0' name=' c1 ' \
             cipher=' urn:xmpp:ciphers:aes-256-gcm-nopadding:0 ' type=' urn:xmpp:encryption:stub:0 '>\
             <encrypted xmlns='urn:xmpp:encryption:stub:0'/></security>",
        )
        .unwrap();
        assert_eq!(sec.name.as_deref(), Some("c1"));
        assert_eq!(sec.cipher, ns::CIPHER_AES_256_GCM);
        assert_eq!(sec.envelope_type, ns::ENCRYPTION_STUB);
    }

    #[test]
    fn unreadable_forms_are_errors() {
        let no_cipher =
            "<security xmlns='urn:xmpp:jingle:jet:0' type='t'><e xmlns='t'/></security>";
        assert_eq!(
            parse(no_cipher),
            Err(ElementError::MissingAttribute {
                element: "security",
                attribute: "cipher"
            })
        );
        let empty_type = "<security xmlns='urn:xmpp:jingle:jet:0' cipher='c' type='  '><e xmlns='t'/></security>";
        assert_eq!(
            parse(empty_type),
            Err(ElementError::MissingAttribute {
                element: "security",
                attribute: "type"
            })
        );
        let no_envelope =
            "<security xmlns='urn:xmpp:jingle:jet:0' cipher='c' type='t'>  </security>";
        assert!(matches!(
            parse(no_envelope),
            Err(ElementError::MissingChild { .. })
        ));
        let two = "<security xmlns='urn:xmpp:jingle:jet:0' cipher='c' type='t'><e xmlns='t'/><e xmlns='t'/></security>";
        assert!(matches!(parse(two), Err(ElementError::Invalid { .. })));
        let text = "<security xmlns='urn:xmpp:jingle:jet:0' cipher='c' type='t'>junk<e xmlns='t'/></security>";
        assert!(matches!(parse(text), Err(ElementError::Invalid { .. })));
        let wrong_ns =
            "<security xmlns='urn:xmpp:jingle:1' cipher='c' type='t'><e xmlns='t'/></security>";
        assert!(matches!(
            parse(wrong_ns),
            Err(ElementError::WrongElement { .. })
        ));
    }
}
