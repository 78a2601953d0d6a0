//! Reading and writing Jingle (XEP-0166) messages without losing JET.
//!
//! # Why our own light message type
//!
//! xmpp-parsers 0.23 has a full `Jingle` type, but it does not fit JET:
//! - `jingle::Content::security` is an empty stub in `urn:xmpp:jingle:1`: a
//!   real `<security xmlns='urn:xmpp:jingle:jet:0'>` is **silently dropped**.
//!   Code that then looks for security would fall back to plaintext, the one
//!   thing XEP-0391 §7 forbids.
//! - `jingle_s5b::Transport` wants an IP address in `host`: a hostname
//!   candidate makes the **whole** `<jingle/>` fail to parse, so a session
//!   could not even be terminated properly. The transport adapters read
//!   `<transport/>` themselves and need it raw.
//! - Some clients omit `initiator` (XEP-0234 interop): the IQ's `from` must
//!   stand in, which needs the stanza around the payload.
//!
//! So [`JingleMessage`] is read straight from minidom: the envelope of the
//! message (action, sid, initiator, responder, reason) is typed, while
//! `<description/>` and `<transport/>` stay raw [`Element`]s for the
//! application and the transport adapter, and each content's JET
//! [`Security`] is read with a hard rule: a `<security/>` in the JET
//! namespace that cannot be read is [`Error::UnreadableSecurity`], never
//! "no security". The [`Action`], [`Creator`], [`Senders`] and [`Reason`]
//! vocabularies are our own ([`crate::vocab`]), with XEP-0166's wire forms.
//!
//! For code that wants xmpp-parsers' `Jingle` anyway, `split_jingle` and
//! `join_jingle` (feature `xmpp-parsers`) take the JET elements off before
//! parsing and put them back when serializing.
//!
//! ```
//! use jet_core::jingle::{Action, JingleMessage};
//! use jet_core::minidom::Element;
//!
//! let el: Element = "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1'>\
//!   <content creator='initiator' name='c1' senders='initiator'>\
//!     <description xmlns='urn:example:app'/>\
//!     <transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='t1'>\
//!       <candidate cid='x' host='host.example' port='1080' jid='a@b/c' priority='1'/>\
//!     </transport>\
//!     <security xmlns='urn:xmpp:jingle:jet:0' cipher='urn:xmpp:ciphers:aes-128-gcm-nopadding' type='urn:xmpp:encryption:stub:0'>\
//!       <encrypted xmlns='urn:xmpp:encryption:stub:0'><payload>AA==</payload></encrypted>\
//!     </security>\
//!   </content></jingle>".parse().unwrap();
//! let msg = JingleMessage::try_from(&el).unwrap();
//! assert_eq!(msg.action, Action::SessionInitiate);
//! // The hostname candidate that xmpp-parsers rejects is kept raw:
//! assert!(msg.contents[0].transport.is_some());
//! // And the security element is there, not dropped:
//! assert!(msg.contents[0].security.is_some());
//! // Missing initiator: fall back to the IQ's sender.
//! let from = "romeo@montague.lit/orchard".parse().unwrap();
//! assert_eq!(msg.initiator_or(&from), from);
//! ```

use std::str::FromStr;

use jid::Jid;
use minidom::Element;

pub use crate::vocab::{Action, Creator, Reason, Senders};
#[cfg(feature = "xmpp-parsers")]
pub use xmpp_parsers::jingle::{Jingle, ReasonElement};

use crate::error::{ElementError, Error};
use crate::ns;
use crate::security::Security;
use crate::xml::BuilderExt;

/// A `<reason/>`: the condition and an optional text.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonInfo {
    /// The condition. A condition we do not know is read as
    /// [`Reason::GeneralError`] (the text then names the original).
    pub reason: Reason,
    /// Human-readable text, if any.
    pub text: Option<String>,
}

impl ReasonInfo {
    /// A reason with an optional text.
    pub fn new(reason: Reason, text: Option<String>) -> Self {
        ReasonInfo { reason, text }
    }

    /// The element name of the condition, e.g. `security-error`.
    pub fn condition(&self) -> String {
        reason_name(&self.reason)
    }

    fn to_element(&self) -> Element {
        let mut b =
            Element::builder("reason", ns::JINGLE).append(Element::from(self.reason.clone()));
        if let Some(text) = &self.text {
            b = b.append(
                Element::builder("text", ns::JINGLE)
                    .append(text.as_str())
                    .build(),
            );
        }
        b.build()
    }

    fn parse(el: &Element) -> ReasonInfo {
        let mut text = el
            .children()
            .find(|c| c.is("text", ns::JINGLE))
            .map(|t| t.text());
        let cond = el
            .children()
            .find(|c| c.ns() == ns::JINGLE && c.name() != "text");
        let reason = match cond {
            // Dino writes `<failed_transport/>`: read underscores as the
            // hyphens of XEP-0166's condition names.
            Some(c) => match Reason::try_from(c.clone()).or_else(|e| {
                if c.name().contains('_') {
                    c.name().replace('_', "-").parse::<Reason>()
                } else {
                    Err(e)
                }
            }) {
                Ok(r) => r,
                Err(_) => {
                    // Be liberal: an unknown condition still ends the session.
                    let orig = c.name().to_string();
                    text = Some(match text {
                        Some(t) => format!("{orig}: {t}"),
                        None => orig,
                    });
                    Reason::GeneralError
                }
            },
            None => Reason::GeneralError,
        };
        ReasonInfo { reason, text }
    }
}

/// The element name of a Jingle reason condition, e.g. `"decline"`.
pub fn reason_name(reason: &Reason) -> String {
    reason.as_str().to_string()
}

/// One `<content/>` of a Jingle message.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentParts {
    /// Who created the content (default `initiator` when a peer leaves it out).
    pub creator: Creator,
    /// The content name.
    pub name: String,
    /// Who sends data (default `both`, XEP-0166).
    pub senders: Senders,
    /// The application's `<description/>`, raw.
    pub description: Option<Element>,
    /// The `<transport/>`, raw: the transport adapter reads it.
    pub transport: Option<Element>,
    /// The JET `<security/>` of this content (XEP-0391 §4).
    pub security: Option<Security>,
    /// Other children we do not interpret, kept for round trips.
    pub other: Vec<Element>,
}

impl ContentParts {
    /// A content with only creator and name set, `senders='both'`.
    pub fn new(creator: Creator, name: impl Into<String>) -> Self {
        ContentParts {
            creator,
            name: name.into(),
            senders: Senders::Both,
            description: None,
            transport: None,
            security: None,
            other: Vec::new(),
        }
    }

    /// Sets `senders`.
    pub fn with_senders(mut self, senders: Senders) -> Self {
        self.senders = senders;
        self
    }

    /// Sets the description.
    pub fn with_description(mut self, description: Element) -> Self {
        self.description = Some(description);
        self
    }

    /// Sets the transport.
    pub fn with_transport(mut self, transport: Element) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Sets the JET security element.
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = Some(security);
        self
    }

    fn parse(el: &Element) -> Result<Self, Error> {
        let name = attr(el, "name").ok_or(ElementError::MissingAttribute {
            element: "content",
            attribute: "name",
        })?;
        let creator = match attr(el, "creator") {
            Some(c) => {
                Creator::from_str(c).map_err(|_| invalid("content", format!("creator {c:?}")))?
            }
            None => Creator::Initiator,
        };
        let senders = match attr(el, "senders") {
            Some(s) => {
                Senders::from_str(s).map_err(|_| invalid("content", format!("senders {s:?}")))?
            }
            None => Senders::Both,
        };
        let mut content = ContentParts::new(creator, name).with_senders(senders);
        for child in el.children() {
            if Security::is_security(child) {
                // XEP-0391 §7: never fall back to plaintext. A JET element
                // we cannot read is an error, not an absent one.
                if content.security.is_some() {
                    return Err(Error::UnreadableSecurity(format!(
                        "content {name:?} carries more than one <security/>"
                    )));
                }
                let sec = Security::try_from(child)
                    .map_err(|e| Error::UnreadableSecurity(format!("content {name:?}: {e}")))?;
                if let Some(sec_name) = &sec.name {
                    if sec_name != name {
                        return Err(Error::UnreadableSecurity(format!(
                            "content {name:?} carries a <security/> for content {sec_name:?}"
                        )));
                    }
                }
                content.security = Some(sec);
            } else if child.name() == "description" && content.description.is_none() {
                content.description = Some(child.clone());
            } else if child.name() == "transport" && child.ns() != ns::JET {
                if content.transport.is_some() {
                    return Err(invalid("content", "more than one <transport/>".into()).into());
                }
                content.transport = Some(child.clone());
            } else {
                content.other.push(child.clone());
            }
        }
        Ok(content)
    }

    /// Serializes the content; `<security/>` gets `name` = the content name.
    pub fn to_element(&self) -> Element {
        let mut b = Element::builder("content", ns::JINGLE)
            .a("creator", self.creator.clone())
            .a("name", self.name.as_str())
            .a("senders", self.senders.clone());
        if let Some(d) = &self.description {
            b = b.append(d.clone());
        }
        if let Some(t) = &self.transport {
            b = b.append(t.clone());
        }
        if let Some(s) = &self.security {
            b = b.append(s.to_element_for(&self.name));
        }
        for o in &self.other {
            b = b.append(o.clone());
        }
        b.build()
    }
}

/// A Jingle message: the payload of a Jingle IQ `set`.
#[derive(Debug, Clone, PartialEq)]
pub struct JingleMessage {
    /// The action.
    pub action: Action,
    /// The session id.
    pub sid: String,
    /// The initiator, when given (see [`JingleMessage::initiator_or`]).
    pub initiator: Option<Jid>,
    /// The responder, when given.
    pub responder: Option<Jid>,
    /// The contents.
    pub contents: Vec<ContentParts>,
    /// The reason (session-terminate, transport-reject, ...).
    pub reason: Option<ReasonInfo>,
    /// Other children, e.g. session-info payloads.
    pub other: Vec<Element>,
}

impl JingleMessage {
    /// A message with no contents.
    pub fn new(action: Action, sid: impl Into<String>) -> Self {
        JingleMessage {
            action,
            sid: sid.into(),
            initiator: None,
            responder: None,
            contents: Vec::new(),
            reason: None,
            other: Vec::new(),
        }
    }

    /// The initiator, or `iq_from` when the peer left the attribute out
    /// (some clients do; XEP-0166 says the IQ's sender is the initiator of a
    /// `session-initiate`).
    pub fn initiator_or(&self, iq_from: &Jid) -> Jid {
        self.initiator.clone().unwrap_or_else(|| iq_from.clone())
    }

    /// The content named `name`.
    pub fn content(&self, name: &str) -> Option<&ContentParts> {
        self.contents.iter().find(|c| c.name == name)
    }

    /// Reads the `<jingle/>` child of an IQ. For a `session-initiate` without
    /// `initiator`, the IQ's `from` is filled in.
    pub fn from_iq(iq: &Element) -> Result<Self, Error> {
        let jingle = iq
            .get_child("jingle", ns::JINGLE)
            .ok_or(ElementError::MissingChild {
                element: "iq",
                child: "jingle",
            })?;
        let mut msg = JingleMessage::try_from(jingle)?;
        if msg.initiator.is_none() && msg.action == Action::SessionInitiate {
            msg.initiator = iq.attr("from").and_then(|f| Jid::from_str(f).ok());
        }
        Ok(msg)
    }

    /// Serializes to a `<jingle/>` element.
    pub fn to_element(&self) -> Element {
        let mut b = Element::builder("jingle", ns::JINGLE)
            .a("action", self.action.clone())
            .a("sid", self.sid.as_str());
        if let Some(i) = &self.initiator {
            b = b.a("initiator", i.to_string());
        }
        if let Some(r) = &self.responder {
            b = b.a("responder", r.to_string());
        }
        for c in &self.contents {
            b = b.append(c.to_element());
        }
        if let Some(r) = &self.reason {
            b = b.append(r.to_element());
        }
        for o in &self.other {
            b = b.append(o.clone());
        }
        b.build()
    }
}

fn attr<'a>(el: &'a Element, name: &'a str) -> Option<&'a str> {
    el.attr(name).map(str::trim).filter(|v| !v.is_empty())
}

fn invalid(element: &'static str, message: String) -> ElementError {
    ElementError::Invalid { element, message }
}

fn jid_attr(el: &Element, name: &str) -> Result<Option<Jid>, ElementError> {
    attr(el, name)
        .map(|v| Jid::from_str(v).map_err(|e| invalid("jingle", format!("{name} {v:?}: {e}"))))
        .transpose()
}

impl TryFrom<&Element> for JingleMessage {
    type Error = Error;

    fn try_from(el: &Element) -> Result<Self, Error> {
        if !el.is("jingle", ns::JINGLE) {
            return Err(ElementError::WrongElement {
                expected: format!("{{{}}}jingle", ns::JINGLE),
                got: format!("{{{}}}{}", el.ns(), el.name()),
            }
            .into());
        }
        let action = attr(el, "action").ok_or(ElementError::MissingAttribute {
            element: "jingle",
            attribute: "action",
        })?;
        let action = Action::from_str(action)
            .map_err(|_| invalid("jingle", format!("action {action:?}")))?;
        let sid = attr(el, "sid").ok_or(ElementError::MissingAttribute {
            element: "jingle",
            attribute: "sid",
        })?;
        let mut msg = JingleMessage::new(action, sid);
        msg.initiator = jid_attr(el, "initiator")?;
        msg.responder = jid_attr(el, "responder")?;
        for child in el.children() {
            if child.is("content", ns::JINGLE) {
                msg.contents.push(ContentParts::parse(child)?);
            } else if child.is("reason", ns::JINGLE) && msg.reason.is_none() {
                msg.reason = Some(ReasonInfo::parse(child));
            } else {
                msg.other.push(child.clone());
            }
        }
        Ok(msg)
    }
}

impl TryFrom<Element> for JingleMessage {
    type Error = Error;

    fn try_from(el: Element) -> Result<Self, Error> {
        JingleMessage::try_from(&el)
    }
}

impl From<&JingleMessage> for Element {
    fn from(m: &JingleMessage) -> Element {
        m.to_element()
    }
}

/// Splits a raw `<jingle/>` into xmpp-parsers' [`Jingle`] plus the JET
/// [`Security`] of each content, by content name. The JET elements are taken
/// off before xmpp-parsers sees them (it would drop them silently); an
/// unreadable one is [`Error::UnreadableSecurity`]. Note that xmpp-parsers
/// still rejects S5B hostname candidates; [`JingleMessage`] does not.
#[cfg(feature = "xmpp-parsers")]
pub fn split_jingle(el: &Element) -> Result<(Jingle, Vec<(String, Security)>), Error> {
    let mut el = el.clone();
    let mut securities = Vec::new();
    for content in el.children_mut().filter(|c| c.is("content", ns::JINGLE)) {
        let name = attr(content, "name").unwrap_or_default().to_string();
        let mut found = None;
        while let Some(sec) = content.remove_child("security", ns::JET) {
            if found.is_some() {
                return Err(Error::UnreadableSecurity(format!(
                    "content {name:?} carries more than one <security/>"
                )));
            }
            found = Some(
                Security::try_from(&sec)
                    .map_err(|e| Error::UnreadableSecurity(format!("content {name:?}: {e}")))?,
            );
        }
        if let Some(sec) = found {
            securities.push((name, sec));
        }
    }
    let jingle = Jingle::try_from(el).map_err(|e| invalid("jingle", e.to_string()))?;
    Ok((jingle, securities))
}

/// Serializes xmpp-parsers' [`Jingle`] and puts each JET [`Security`] back
/// into the content of the same name. A security for a content that does not
/// exist is an error (it would otherwise be lost, and the content sent in
/// plaintext).
#[cfg(feature = "xmpp-parsers")]
pub fn join_jingle(jingle: &Jingle, securities: &[(String, Security)]) -> Result<Element, Error> {
    let mut el = Element::from(jingle.clone());
    for (name, sec) in securities {
        let content = el
            .children_mut()
            .find(|c| c.is("content", ns::JINGLE) && c.attr("name") == Some(name.as_str()))
            .ok_or_else(|| invalid("jingle", format!("no content {name:?} for its <security/>")))?;
        content.append_child(sec.to_element_for(name));
    }
    Ok(el)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::ElementExt;

    /// XEP-0391 Listing 1, cleaned of the PDF extraction's stray spaces.
    const LISTING_1: &str =
        "<iq xmlns='jabber:client' from='romeo@montague.example/dr4hcr0st3lup4c'
    id='nzu25s8' to='juliet@capulet.example/yn0cl4bnw0yr3vym' type='set'>
  <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate'
      initiator='romeo@montague.example/dr4hcr0st3lup4c' sid='851ba2'>
    <content creator='initiator' name='a-file-offer' senders='initiator'>
      <description xmlns='urn:xmpp:jingle:apps:file-transfer:5'>
        <file>
          <date>1969-07-21T02:56:15Z</date>
          <desc>This is a test. If this were a real file...</desc>
          <media-type>text/plain</media-type>
          <name>test.txt</name>
          <range/>
          <size>6144</size>
          <hash xmlns='urn:xmpp:hashes:2' algo='sha-1'>w0mcJylzCn+AfvuGdqkty2+KP48=</hash>
        </file>
      </description>
      <transport xmlns='urn:xmpp:jingle:transports:s5b:1' mode='tcp' sid='vj3hs98y'>
        <candidate cid='hft54dqy' host='192.168.4.1' jid='romeo@montague.example/dr4hcr0st3lup4c'
            port='5086' priority='8257636' type='direct'/>
      </transport>
      <security xmlns='urn:xmpp:jingle:jet:0' name='a-file-offer'
          cipher='urn:xmpp:ciphers:aes-256-gcm-nopadding' type='urn:xmpp:encryption:stub:0'>
        <encrypted xmlns='urn:xmpp:encryption:stub:0'>
          <payload>BASE64-ENCODED-ENCRYPTED-SECRET</payload>
        </encrypted>
      </security>
    </content>
  </jingle>
</iq>";

    fn iq(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn listing_1_keeps_security_and_transport() {
        let msg = JingleMessage::from_iq(&iq(LISTING_1)).unwrap();
        assert_eq!(msg.action, Action::SessionInitiate);
        assert_eq!(msg.sid, "851ba2");
        let c = msg.content("a-file-offer").unwrap();
        assert_eq!(c.senders, Senders::Initiator);
        let sec = c.security.as_ref().unwrap();
        assert!(sec.cipher_is(ns::CIPHER_AES_256_GCM));
        assert_eq!(c.transport.as_ref().unwrap().attr("sid"), Some("vj3hs98y"));
        assert!(c
            .description
            .as_ref()
            .unwrap()
            .is("description", ns::JINGLE_FT));
        // Round trip through our serializer.
        let back = JingleMessage::try_from(msg.to_element()).unwrap();
        assert_eq!(back, msg);
    }

    #[cfg(feature = "xmpp-parsers")]
    #[test]
    fn xmpp_parsers_would_drop_security_but_split_keeps_it() {
        let el = iq(LISTING_1);
        let jingle_el = el.get_child("jingle", ns::JINGLE).unwrap();
        // The trap: xmpp-parsers parses it fine and the JET element is gone.
        let plain = Jingle::try_from(jingle_el.clone()).unwrap();
        assert!(!Element::from(plain).to_xml_string().contains(ns::JET));
        // split/join keep it.
        let (jingle, secs) = split_jingle(jingle_el).unwrap();
        assert_eq!(secs.len(), 1);
        assert_eq!(secs[0].0, "a-file-offer");
        let joined = join_jingle(&jingle, &secs).unwrap();
        let again = JingleMessage::try_from(&joined).unwrap();
        assert_eq!(
            again.contents[0].security,
            JingleMessage::from_iq(&el).unwrap().contents[0].security
        );
        // A security for a content that is not there is refused.
        let stray = vec![("nope".to_string(), secs[0].1.clone())];
        assert!(join_jingle(&jingle, &stray).is_err());
    }

    #[test]
    fn unreadable_security_is_an_error_not_absent() {
        let broken = LISTING_1.replace("cipher='urn:xmpp:ciphers:aes-256-gcm-nopadding' ", "");
        let err = JingleMessage::from_iq(&iq(&broken)).unwrap_err();
        assert!(matches!(err, Error::UnreadableSecurity(_)), "{err:?}");
        #[cfg(feature = "xmpp-parsers")]
        {
            let jingle_el = iq(&broken).get_child("jingle", ns::JINGLE).unwrap().clone();
            assert!(matches!(
                split_jingle(&jingle_el),
                Err(Error::UnreadableSecurity(_))
            ));
        }

        let no_envelope = LISTING_1
            .replace("<encrypted xmlns='urn:xmpp:encryption:stub:0'>", "")
            .replace("<payload>BASE64-ENCODED-ENCRYPTED-SECRET</payload>", "")
            .replace("</encrypted>", "");
        assert!(matches!(
            JingleMessage::from_iq(&iq(&no_envelope)),
            Err(Error::UnreadableSecurity(_))
        ));

        let wrong_name = LISTING_1.replace(
            "name='a-file-offer'\n          cipher",
            "name='other'\n          cipher",
        );
        assert_ne!(wrong_name, LISTING_1);
        assert!(matches!(
            JingleMessage::from_iq(&iq(&wrong_name)),
            Err(Error::UnreadableSecurity(_))
        ));

        let twice = LISTING_1.replace(
            "</security>",
            "</security><security xmlns='urn:xmpp:jingle:jet:0' cipher='c' type='t'><x xmlns='t'/></security>",
        );
        assert!(matches!(
            JingleMessage::from_iq(&iq(&twice)),
            Err(Error::UnreadableSecurity(_))
        ));
    }

    #[test]
    fn missing_initiator_falls_back_to_from_and_hostname_candidates_pass() {
        let xml = LISTING_1
            .replace(
                "initiator='romeo@montague.example/dr4hcr0st3lup4c' sid",
                "sid",
            )
            .replace("host='192.168.4.1'", "host='proxy.montague.example'");
        let el = iq(&xml);
        // xmpp-parsers fails the whole message on the hostname candidate.
        #[cfg(feature = "xmpp-parsers")]
        assert!(Jingle::try_from(el.get_child("jingle", ns::JINGLE).unwrap().clone()).is_err());
        let msg = JingleMessage::from_iq(&el).unwrap();
        assert_eq!(
            msg.initiator.unwrap().to_string(),
            "romeo@montague.example/dr4hcr0st3lup4c"
        );
        let t = msg.contents[0].transport.as_ref().unwrap();
        let cand = t.children().next().unwrap();
        assert_eq!(cand.attr("host"), Some("proxy.montague.example"));
    }

    #[test]
    fn content_attributes_as_xmpp_parsers_wrote_them() {
        let both = ContentParts::new(Creator::Initiator, "c").to_element();
        assert_eq!(both.attr("creator"), Some("initiator"));
        assert_eq!(both.attr("senders"), None, "senders='both' is left out");
        let one = ContentParts::new(Creator::Responder, "c")
            .with_senders(Senders::Initiator)
            .to_element();
        assert_eq!(one.attr("creator"), Some("responder"));
        assert_eq!(one.attr("senders"), Some("initiator"));
        let m = JingleMessage::new(Action::TransportReplace, "s").to_element();
        assert_eq!(m.attr("action"), Some("transport-replace"));
    }

    #[test]
    fn reasons_parse_and_serialize() {
        let mut m = JingleMessage::new(Action::SessionTerminate, "s");
        m.reason = Some(ReasonInfo::new(
            Reason::SecurityError,
            Some("bad EE".into()),
        ));
        let el = m.to_element();
        let back = JingleMessage::try_from(&el).unwrap();
        assert_eq!(back.reason, m.reason);
        assert_eq!(back.reason.unwrap().condition(), "security-error");

        let odd: Element = "<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='s'>\
            <reason><made-up/></reason></jingle>"
            .parse()
            .unwrap();
        let r = JingleMessage::try_from(&odd).unwrap().reason.unwrap();
        assert_eq!(r.reason, Reason::GeneralError);
        assert_eq!(r.text.as_deref(), Some("made-up"));

        // Dino's spelling.
        let dino: Element = "<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='s'>\
            <reason><failed_transport/><text>no</text></reason></jingle>"
            .parse()
            .unwrap();
        let r = JingleMessage::try_from(&dino).unwrap().reason.unwrap();
        assert_eq!(r.reason, Reason::FailedTransport);
        assert_eq!(r.text.as_deref(), Some("no"));
    }

    #[test]
    fn malformed_jingle_is_an_element_error() {
        for xml in [
            "<jingle xmlns='urn:xmpp:jingle:1' sid='s'/>",
            "<jingle xmlns='urn:xmpp:jingle:1' action='fly' sid='s'/>",
            "<jingle xmlns='urn:xmpp:jingle:1' action='session-info'/>",
            "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s' initiator='@@'/>",
            "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'><content creator='x' name='n'/></jingle>",
            "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'><content creator='initiator'/></jingle>",
            "<jingle xmlns='urn:other' action='session-info' sid='s'/>",
        ] {
            let el: Element = xml.parse().unwrap();
            assert!(
                matches!(JingleMessage::try_from(&el), Err(Error::Element(_))),
                "{xml}"
            );
        }
    }
}
