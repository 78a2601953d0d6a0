//! The XML of JET-OX: XEP-0373 `<openpgp/>` and `<signcrypt/>`, our
//! `<jet-secret/>` payload, and the XEP-0373 §4 PEP items.
//!
//! Everything here is pure (no I/O, no crypto) so that it can be unit tested
//! and fuzzed on its own. Parsers are strict: unknown children, missing or
//! repeated mandatory children and non-whitespace text are errors, never
//! silently ignored.
//!
//! Note: xmpp-parsers 0.23 names the metadata list `<public-key-list/>`;
//! XEP-0373 §4.2 says `<public-keys-list/>`. We follow the XEP.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jet_core::error::EnvelopeError;
use jet_core::jid::{BareJid, Jid};
use jet_core::minidom::{Element, Node};
use jet_core::ns;
use jet_core::xml::BuilderExt;
use zeroize::Zeroizing;

/// XEP-0060 PubSub namespace.
pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// XEP-0004 data forms namespace (publish options).
pub const DATA_FORMS: &str = "jabber:x:data";
/// XEP-0373 §4.2: the metadata node listing an account's keys.
pub const PUBLIC_KEYS_NODE: &str = "urn:xmpp:openpgp:0:public-keys";
/// The element namespace of the `<jet-secret/>` payload; equal to the disco
/// feature [`ns::JET_OX_FEATURE`].
pub const JET_OX: &str = ns::JET_OX_FEATURE;

/// Upper bound on the decoded OpenPGP message in `<openpgp/>` (a JET-OX
/// message is well under 2 KiB; this only stops memory abuse).
pub const MAX_OPENPGP_MESSAGE: usize = 64 * 1024;

/// XEP-0373 §4.1: the data node of the key with `fingerprint`.
pub fn public_key_node(fingerprint: &str) -> String {
    format!("{PUBLIC_KEYS_NODE}:{fingerprint}")
}

fn malformed(msg: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed(msg.into())
}

/// Children of `el`, refusing non-whitespace text.
fn element_children<'a>(el: &'a Element, what: &str) -> Result<Vec<&'a Element>, EnvelopeError> {
    let mut out = Vec::new();
    for node in el.nodes() {
        match node {
            Node::Element(e) => out.push(e),
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Text(_) => return Err(malformed(format!("unexpected text in <{what}/>"))),
        }
    }
    Ok(out)
}

/// Base64 text with folding whitespace removed.
fn decode_b64(text: &str, what: &str) -> Result<Vec<u8>, EnvelopeError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| malformed(format!("{what} is not valid base64: {e}")))
}

// ---------------------------------------------------------------------------
// XEP-0082 date-times

/// Formats a Unix time (seconds) as an XEP-0082 UTC DateTime,
/// `YYYY-MM-DDThh:mm:ssZ`.
pub fn format_datetime(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), after H. Hinnant's public
    // description of the algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Parses an XEP-0082 DateTime (any offset, optional fractions) into Unix
/// seconds.
pub fn parse_datetime(s: &str) -> Result<i64, EnvelopeError> {
    let dt: jet_core::xmpp_parsers::date::DateTime = s
        .trim()
        .parse()
        .map_err(|e| malformed(format!("{s:?} is not an XEP-0082 DateTime: {e}")))?;
    Ok(dt.0.timestamp())
}

/// The current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// <openpgp/>

/// XEP-0373 §3.1: `<openpgp xmlns='urn:xmpp:openpgp:0'>BASE64</openpgp>`
/// around a binary (not armored) OpenPGP message.
pub fn openpgp_element(message: &[u8]) -> Element {
    Element::builder("openpgp", ns::OX)
        .append(STANDARD.encode(message))
        .build()
}

/// The OpenPGP message bytes of an `<openpgp/>` element.
pub fn openpgp_message(el: &Element) -> Result<Vec<u8>, EnvelopeError> {
    if !el.is("openpgp", ns::OX) {
        return Err(malformed(format!(
            "expected <openpgp xmlns='{}'/>, got <{} xmlns='{}'/>",
            ns::OX,
            el.name(),
            el.ns()
        )));
    }
    if el.children().next().is_some() {
        return Err(malformed("unexpected child element in <openpgp/>"));
    }
    let text = el.text();
    // Base64 expands by 4/3: refuse before decoding anything huge.
    if text.len() > MAX_OPENPGP_MESSAGE / 3 * 4 + 4096 {
        return Err(malformed("the OpenPGP message in <openpgp/> is too large"));
    }
    let bytes = decode_b64(&text, "<openpgp/>")?;
    if bytes.is_empty() {
        return Err(malformed("<openpgp/> is empty"));
    }
    if bytes.len() > MAX_OPENPGP_MESSAGE {
        return Err(malformed("the OpenPGP message in <openpgp/> is too large"));
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------
// <signcrypt/>

/// XEP-0373 §3.1 `<signcrypt/>`: the content element that JET-OX signs and
/// encrypts.
///
/// ```xml
/// <signcrypt xmlns='urn:xmpp:openpgp:0'>
///   <to jid='juliet@capulet.lit'/>
///   <time stamp='2026-11-26T12:00:00Z'/>
///   <rpad>random padding</rpad>
///   <payload>...</payload>
/// </signcrypt>
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Signcrypt {
    /// The intended recipients (`<to jid/>`, at least one, bare JIDs).
    pub to: Vec<BareJid>,
    /// `<time stamp/>` as Unix seconds.
    pub time: i64,
    /// `<rpad/>` random-length padding (XEP-0373: SHOULD be present).
    pub rpad: Option<String>,
    /// The children of `<payload/>`.
    pub payload: Vec<Element>,
}

impl Signcrypt {
    /// Serializes to the element.
    pub fn to_element(&self) -> Element {
        let mut b = Element::builder("signcrypt", ns::OX);
        for to in &self.to {
            b = b.append(
                Element::builder("to", ns::OX)
                    .a("jid", to.to_string())
                    .build(),
            );
        }
        b = b.append(
            Element::builder("time", ns::OX)
                .a("stamp", format_datetime(self.time))
                .build(),
        );
        if let Some(rpad) = &self.rpad {
            b = b.append(
                Element::builder("rpad", ns::OX)
                    .append(rpad.clone())
                    .build(),
            );
        }
        let mut payload = Element::builder("payload", ns::OX);
        for child in &self.payload {
            payload = payload.append(child.clone());
        }
        b.append(payload.build()).build()
    }

    /// Serializes to UTF-8 XML, the plaintext of the OpenPGP message.
    pub fn to_xml(&self) -> String {
        use jet_core::xml::ElementExt;
        self.to_element().to_xml_string()
    }

    /// Parses the XML plaintext of an OpenPGP message.
    pub fn from_xml(xml: &str) -> Result<Self, EnvelopeError> {
        let el: Element = xml
            .parse()
            .map_err(|e| malformed(format!("the decrypted content is not XML: {e}")))?;
        Self::from_element(&el)
    }

    /// Parses a `<signcrypt/>` element (XEP-0373 §3.1 table: at least one
    /// `<to/>`, exactly one `<time/>`, at most one `<rpad/>`, exactly one
    /// `<payload/>`).
    pub fn from_element(el: &Element) -> Result<Self, EnvelopeError> {
        if !el.is("signcrypt", ns::OX) {
            return Err(malformed(format!(
                "expected <signcrypt xmlns='{}'/>, got <{} xmlns='{}'/>",
                ns::OX,
                el.name(),
                el.ns()
            )));
        }
        let mut to = Vec::new();
        let mut time = None;
        let mut rpad = None;
        let mut payload = None;
        for child in element_children(el, "signcrypt")? {
            if child.ns() != ns::OX {
                return Err(malformed(format!(
                    "unexpected <{} xmlns='{}'/> in <signcrypt/>",
                    child.name(),
                    child.ns()
                )));
            }
            match child.name() {
                "to" => {
                    let jid = child
                        .attr("jid")
                        .ok_or_else(|| malformed("<to/> without 'jid'"))?;
                    let jid: Jid = jid
                        .parse()
                        .map_err(|e| malformed(format!("<to jid={jid:?}/>: {e}")))?;
                    to.push(jid.to_bare());
                }
                "time" if time.is_none() => {
                    let stamp = child
                        .attr("stamp")
                        .ok_or_else(|| malformed("<time/> without 'stamp'"))?;
                    time = Some(parse_datetime(stamp)?);
                }
                "rpad" if rpad.is_none() => {
                    if child.children().next().is_some() {
                        return Err(malformed("<rpad/> has child elements"));
                    }
                    rpad = Some(child.text());
                }
                "payload" if payload.is_none() => {
                    payload = Some(
                        element_children(child, "payload")?
                            .into_iter()
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                }
                other => {
                    return Err(malformed(format!(
                        "unexpected or repeated <{other}/> in <signcrypt/>"
                    )))
                }
            }
        }
        if to.is_empty() {
            return Err(malformed("<signcrypt/> has no <to/>"));
        }
        Ok(Signcrypt {
            to,
            time: time.ok_or_else(|| malformed("<signcrypt/> has no <time/>"))?,
            rpad,
            payload: payload.ok_or_else(|| malformed("<signcrypt/> has no <payload/>"))?,
        })
    }
}

/// Random padding for `<rpad/>`: 0 to 200 characters (XEP-0373 example
/// lengths) from a URL-safe alphabet, so the ciphertext length does not give
/// away the exact content length.
pub fn random_rpad() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rngs::OsRng;
    let len = rng.gen_range(0..=200usize);
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

// ---------------------------------------------------------------------------
// <jet-secret/>

/// JET-OX payload: `<jet-secret xmlns='urn:xmpp:jingle:jet-ox:0'>BASE64(key || iv)</jet-secret>`.
pub fn jet_secret_element(secret_bytes: &[u8]) -> Element {
    Element::builder("jet-secret", JET_OX)
        .append(STANDARD.encode(secret_bytes))
        .build()
}

/// JET-OX payload bound to a Jingle session (profile version 0, with
/// binding): `<jet-secret xmlns='urn:xmpp:jingle:jet-ox:0' sid='SID'
/// content='NAME'>BASE64(key || iv)</jet-secret>`. The attributes are signed
/// and encrypted with the secret, so an envelope lifted into another session
/// or content is refused ([`jet_secret_binding`]).
pub fn jet_secret_element_bound(secret_bytes: &[u8], sid: &str, content: &str) -> Element {
    Element::builder("jet-secret", JET_OX)
        .a("sid", sid)
        .a("content", content)
        .append(STANDARD.encode(secret_bytes))
        .build()
}

/// The session binding of a `<payload/>`'s `<jet-secret/>`: `Some((sid,
/// content))` when both attributes are present, `None` when neither is (an
/// unbound envelope), an error when only one is.
pub fn jet_secret_binding(payload: &[Element]) -> Result<Option<(String, String)>, EnvelopeError> {
    let Some(el) = payload.iter().find(|e| e.is("jet-secret", JET_OX)) else {
        return Err(malformed("no <jet-secret/> in <payload/>"));
    };
    match (el.attr("sid"), el.attr("content")) {
        (Some(sid), Some(content)) => Ok(Some((sid.to_string(), content.to_string()))),
        (None, None) => Ok(None),
        _ => Err(malformed(
            "<jet-secret/> carries only one of 'sid' and 'content'",
        )),
    }
}

/// The `key || iv` bytes out of a `<payload/>` that must hold exactly one
/// `<jet-secret/>` and nothing else.
pub fn jet_secret_of(payload: &[Element]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let [el] = payload else {
        return Err(malformed(format!(
            "the JET-OX <payload/> must hold exactly one <jet-secret/>, it holds {} elements",
            payload.len()
        )));
    };
    if !el.is("jet-secret", JET_OX) {
        return Err(malformed(format!(
            "expected <jet-secret xmlns='{JET_OX}'/> in <payload/>, got <{} xmlns='{}'/>",
            el.name(),
            el.ns()
        )));
    }
    if el.children().next().is_some() {
        return Err(malformed("<jet-secret/> has child elements"));
    }
    Ok(Zeroizing::new(decode_b64(&el.text(), "<jet-secret/>")?))
}

// ---------------------------------------------------------------------------
// XEP-0373 §4 PEP items

/// One `<pubkey-metadata/>` of the metadata node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubkeyMetadata {
    /// Upper-case hex v4 fingerprint.
    pub fingerprint: String,
    /// XEP-0082 date of publication.
    pub date: String,
}

/// `<public-keys-list><pubkey-metadata v4-fingerprint date/>...</public-keys-list>`.
pub fn public_keys_list(keys: &[PubkeyMetadata]) -> Element {
    let mut b = Element::builder("public-keys-list", ns::OX);
    for k in keys {
        b = b.append(
            Element::builder("pubkey-metadata", ns::OX)
                .a("v4-fingerprint", k.fingerprint.as_str())
                .a("date", k.date.as_str())
                .build(),
        );
    }
    b.build()
}

/// Whether `s` is a v4 fingerprint string (40 upper-case hex digits).
pub fn is_v4_fingerprint(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// Parses `<public-keys-list/>`. Fingerprints are normalized to upper case;
/// entries that are not v4 fingerprints or are repeated are errors.
pub fn parse_public_keys_list(el: &Element) -> Result<Vec<PubkeyMetadata>, EnvelopeError> {
    if !el.is("public-keys-list", ns::OX) {
        return Err(malformed(format!(
            "expected <public-keys-list xmlns='{}'/>, got <{} xmlns='{}'/>",
            ns::OX,
            el.name(),
            el.ns()
        )));
    }
    let mut out: Vec<PubkeyMetadata> = Vec::new();
    for child in element_children(el, "public-keys-list")? {
        if !child.is("pubkey-metadata", ns::OX) {
            return Err(malformed(format!(
                "unexpected <{}/> in <public-keys-list/>",
                child.name()
            )));
        }
        let fpr = child
            .attr("v4-fingerprint")
            .ok_or_else(|| malformed("<pubkey-metadata/> without 'v4-fingerprint'"))?
            .to_ascii_uppercase();
        if !is_v4_fingerprint(&fpr) {
            return Err(malformed(format!("{fpr:?} is not a v4 fingerprint")));
        }
        let date = child
            .attr("date")
            .ok_or_else(|| malformed("<pubkey-metadata/> without 'date'"))?;
        parse_datetime(date)?;
        if out.iter().any(|k| k.fingerprint == fpr) {
            return Err(malformed(format!("fingerprint {fpr} listed twice")));
        }
        out.push(PubkeyMetadata {
            fingerprint: fpr,
            date: date.to_string(),
        });
    }
    Ok(out)
}

/// `<pubkey date><data>BASE64</data></pubkey>` for a binary public key.
pub fn pubkey_element(key: &[u8], date: &str) -> Element {
    Element::builder("pubkey", ns::OX)
        .a("date", date)
        .append(
            Element::builder("data", ns::OX)
                .append(STANDARD.encode(key))
                .build(),
        )
        .build()
}

/// The binary key out of `<pubkey/>`.
pub fn parse_pubkey(el: &Element) -> Result<Vec<u8>, EnvelopeError> {
    if !el.is("pubkey", ns::OX) {
        return Err(malformed(format!(
            "expected <pubkey xmlns='{}'/>, got <{} xmlns='{}'/>",
            ns::OX,
            el.name(),
            el.ns()
        )));
    }
    let children = element_children(el, "pubkey")?;
    let [data] = children.as_slice() else {
        return Err(malformed("<pubkey/> must hold exactly one <data/>"));
    };
    if !data.is("data", ns::OX) {
        return Err(malformed(format!(
            "unexpected <{}/> in <pubkey/>",
            data.name()
        )));
    }
    let bytes = decode_b64(&data.text(), "<pubkey><data/>")?;
    if bytes.is_empty() {
        return Err(malformed("<pubkey><data/> is empty"));
    }
    Ok(bytes)
}

/// XEP-0060 publish with XEP-0223-style publish options (`access_model` =
/// `open`, as XEP-0373 0.7 recommends for both key nodes), as the payload of
/// an IQ set.
pub fn pubsub_publish(node: &str, item_id: Option<&str>, payload: Element) -> Element {
    let mut item = Element::builder("item", PUBSUB);
    if let Some(id) = item_id {
        item = item.a("id", id);
    }
    let field = |var: &str, value: &str, hidden: bool| {
        let mut f = Element::builder("field", DATA_FORMS).a("var", var);
        if hidden {
            f = f.a("type", "hidden");
        }
        f.append(
            Element::builder("value", DATA_FORMS)
                .append(value.to_string())
                .build(),
        )
        .build()
    };
    Element::builder("pubsub", PUBSUB)
        .append(
            Element::builder("publish", PUBSUB)
                .a("node", node)
                .append(item.append(payload).build())
                .build(),
        )
        .append(
            Element::builder("publish-options", PUBSUB)
                .append(
                    Element::builder("x", DATA_FORMS)
                        .a("type", "submit")
                        .append(field(
                            "FORM_TYPE",
                            "http://jabber.org/protocol/pubsub#publish-options",
                            true,
                        ))
                        .append(field("pubsub#access_model", "open", false))
                        .build(),
                )
                .build(),
        )
        .build()
}

/// XEP-0060 items request (`max_items='1'`: only the newest item counts,
/// XEP-0373 §4.4), as the payload of an IQ get.
pub fn pubsub_items_request(node: &str) -> Element {
    Element::builder("pubsub", PUBSUB)
        .append(
            Element::builder("items", PUBSUB)
                .a("node", node)
                .a("max_items", "1")
                .build(),
        )
        .build()
}

/// The payload of the newest item in an items result (`<pubsub><items
/// node><item>PAYLOAD</item></items></pubsub>`): the last item, which is the
/// newest in XEP-0060 order. `None` when the node has no item.
pub fn pubsub_items_payload(
    result_iq: &Element,
    node: &str,
) -> Result<Option<Element>, EnvelopeError> {
    let pubsub = result_iq
        .get_child("pubsub", PUBSUB)
        .ok_or_else(|| malformed("the PEP answer has no <pubsub/>"))?;
    let items = pubsub
        .get_child("items", PUBSUB)
        .ok_or_else(|| malformed("the PEP answer has no <items/>"))?;
    if items.attr("node") != Some(node) {
        return Err(malformed(format!(
            "the PEP answer is for node {:?}, not {node:?}",
            items.attr("node")
        )));
    }
    let Some(item) = items.children().filter(|c| c.is("item", PUBSUB)).last() else {
        return Ok(None);
    };
    let children = element_children(item, "item")?;
    match children.as_slice() {
        [payload] => Ok(Some((*payload).clone())),
        [] => Ok(None),
        _ => Err(malformed("a PEP item holds more than one payload")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_round_trips() {
        for (unix, s) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_694_461, "2026-11-26T12:01:01Z"),
            (-86_400, "1969-12-31T00:00:00Z"),
        ] {
            assert_eq!(format_datetime(unix), s);
            assert_eq!(parse_datetime(s).unwrap(), unix);
        }
        // Offsets and fractions (XEP-0373's own example uses +02:00).
        assert_eq!(
            parse_datetime("2014-07-10T17:06:00+02:00").unwrap(),
            parse_datetime("2014-07-10T15:06:00Z").unwrap()
        );
        assert_eq!(
            parse_datetime("2014-07-10T15:06:00.123Z").unwrap(),
            parse_datetime("2014-07-10T15:06:00Z").unwrap()
        );
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn openpgp_element_round_trip_and_refusals() {
        let el = openpgp_element(&[1, 2, 3, 250]);
        assert_eq!(openpgp_message(&el).unwrap(), vec![1, 2, 3, 250]);
        let folded: Element = "<openpgp xmlns='urn:xmpp:openpgp:0'>\n AQID\n +g==\n</openpgp>"
            .parse()
            .unwrap();
        assert_eq!(openpgp_message(&folded).unwrap(), vec![1, 2, 3, 250]);
        for bad in [
            "<openpgp xmlns='urn:xmpp:openpgp:0'/>",
            "<openpgp xmlns='urn:xmpp:openpgp:0'>!!</openpgp>",
            "<openpgp xmlns='urn:xmpp:openpgp:1'>AQID</openpgp>",
            "<openpgp xmlns='urn:xmpp:openpgp:0'>AQID<x/></openpgp>",
        ] {
            let el: Element = bad.parse().unwrap();
            assert!(
                matches!(openpgp_message(&el), Err(EnvelopeError::Malformed(_))),
                "{bad}"
            );
        }
        let huge = openpgp_element(&vec![0u8; MAX_OPENPGP_MESSAGE + 1]);
        assert!(openpgp_message(&huge).is_err());
    }

    #[test]
    fn pubkey_and_list_round_trip() {
        let fpr = "1357B01865B2503C18453D208CAC2A9678548E35";
        let list = public_keys_list(&[PubkeyMetadata {
            fingerprint: fpr.into(),
            date: "2018-03-01T15:26:12Z".into(),
        }]);
        let parsed = parse_public_keys_list(&list).unwrap();
        assert_eq!(parsed[0].fingerprint, fpr);
        assert_eq!(parsed[0].date, "2018-03-01T15:26:12Z");
        // The XEP's example, lower case accepted and normalized.
        let xml = format!(
            "<public-keys-list xmlns='urn:xmpp:openpgp:0'>\
               <pubkey-metadata v4-fingerprint='{}' date='1953-05-16T12:00:00Z'/>\
             </public-keys-list>",
            fpr.to_lowercase()
        );
        let parsed = parse_public_keys_list(&xml.parse().unwrap()).unwrap();
        assert_eq!(parsed[0].fingerprint, fpr);
        // Repeated, malformed fingerprints and xmpp-parsers' misspelling.
        for bad in [
            format!("<public-keys-list xmlns='urn:xmpp:openpgp:0'><pubkey-metadata v4-fingerprint='{fpr}' date='2018-03-01T15:26:12Z'/><pubkey-metadata v4-fingerprint='{fpr}' date='2018-03-01T15:26:12Z'/></public-keys-list>"),
            "<public-keys-list xmlns='urn:xmpp:openpgp:0'><pubkey-metadata v4-fingerprint='ABC' date='2018-03-01T15:26:12Z'/></public-keys-list>".into(),
            format!("<public-keys-list xmlns='urn:xmpp:openpgp:0'><pubkey-metadata v4-fingerprint='{fpr}'/></public-keys-list>"),
            "<public-key-list xmlns='urn:xmpp:openpgp:0'/>".into(),
        ] {
            assert!(parse_public_keys_list(&bad.parse().unwrap()).is_err(), "{bad}");
        }
        let pk = pubkey_element(b"key bytes", "2020-01-21T10:46:21Z");
        assert_eq!(pk.attr("date"), Some("2020-01-21T10:46:21Z"));
        assert_eq!(parse_pubkey(&pk).unwrap(), b"key bytes");
        let xep: Element = "<pubkey xmlns='urn:xmpp:openpgp:0'><data>\n a2V5\n</data></pubkey>"
            .parse()
            .unwrap();
        assert_eq!(parse_pubkey(&xep).unwrap(), b"key");
        let empty: Element = "<pubkey xmlns='urn:xmpp:openpgp:0'/>".parse().unwrap();
        assert!(parse_pubkey(&empty).is_err());
    }

    #[test]
    fn items_payload_takes_the_newest_item() {
        let node = public_key_node("AB");
        let iq: Element = format!(
            "<iq xmlns='jabber:client' type='result' id='1'>\
              <pubsub xmlns='{PUBSUB}'><items node='{node}'>\
                <item id='a'><pubkey xmlns='urn:xmpp:openpgp:0' date='1'/></item>\
                <item id='b'><pubkey xmlns='urn:xmpp:openpgp:0' date='2'/></item>\
              </items></pubsub></iq>"
        )
        .parse()
        .unwrap();
        let p = pubsub_items_payload(&iq, &node).unwrap().unwrap();
        assert_eq!(p.attr("date"), Some("2"));
        assert!(pubsub_items_payload(&iq, "other").is_err());
        let empty: Element = format!(
            "<iq xmlns='jabber:client' type='result' id='1'><pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub></iq>"
        )
        .parse()
        .unwrap();
        assert_eq!(pubsub_items_payload(&empty, &node).unwrap(), None);
    }

    #[test]
    fn publish_request_shape() {
        let p = pubsub_publish(PUBLIC_KEYS_NODE, None, public_keys_list(&[]));
        let publish = p.get_child("publish", PUBSUB).unwrap();
        assert_eq!(publish.attr("node"), Some(PUBLIC_KEYS_NODE));
        let item = publish.get_child("item", PUBSUB).unwrap();
        assert!(item.get_child("public-keys-list", ns::OX).is_some());
        let form = p
            .get_child("publish-options", PUBSUB)
            .unwrap()
            .get_child("x", DATA_FORMS)
            .unwrap();
        assert!(form
            .children()
            .any(|f| f.attr("var") == Some("pubsub#access_model")
                && f.get_child("value", DATA_FORMS)
                    .map(|v| v.text())
                    .as_deref()
                    == Some("open")));
    }
}
