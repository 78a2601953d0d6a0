//! The PEP (XEP-0163) elements OMEMO 0.3 uses to publish and fetch device
//! lists and bundles (XEP-0384 v0.3 §4.2, §4.3), built and read without
//! I/O. Sending them over a [`jet_core::channel::StanzaChannel`] and
//! reacting to notifications is the caller's part (not done yet).
//!
//! * device list: node `eu.siacs.conversations.axolotl.devicelist`, item
//!   `current`, payload `<list><device id=../></list>`;
//! * bundle of device N: node `eu.siacs.conversations.axolotl.bundles:N`,
//!   item `current`, payload `<bundle>`.
//!
//! Both are published with `pubsub#access_model = open` (XEP-0060 §7.1.5
//! publish-options), as Conversations and Dino do, so contacts without a
//! presence subscription can start sessions.

use jet_core::minidom::Element;
use jet_core::xml::BuilderExt;

use super::error::{OmemoError, Result};
use super::x3dh::PreKeyBundle;
use super::xml::{
    bundle_from_element, bundle_to_element, device_list_from_element, device_list_to_element,
    NODE_BUNDLES_PREFIX, NODE_DEVICELIST,
};

/// XEP-0060 namespace.
pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// XEP-0060 event namespace (PEP notifications).
pub const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const NS_DATA: &str = "jabber:x:data";
/// Item id used by OMEMO 0.3 clients for both nodes.
pub const ITEM_ID: &str = "current";

/// The bundle node of `device_id`.
pub fn bundle_node(device_id: u32) -> String {
    format!("{NODE_BUNDLES_PREFIX}{device_id}")
}

fn publish(node: &str, payload: Element) -> Element {
    let field = |var: &str, value: &str, hidden: bool| {
        let mut f = Element::builder("field", NS_DATA).a("var", var);
        if hidden {
            f = f.a("type", "hidden");
        }
        f.append(Element::builder("value", NS_DATA).append(value).build())
            .build()
    };
    Element::builder("pubsub", NS_PUBSUB)
        .append(
            Element::builder("publish", NS_PUBSUB)
                .a("node", node)
                .append(
                    Element::builder("item", NS_PUBSUB)
                        .a("id", ITEM_ID)
                        .append(payload)
                        .build(),
                )
                .build(),
        )
        .append(
            Element::builder("publish-options", NS_PUBSUB)
                .append(
                    Element::builder("x", NS_DATA)
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

/// `<pubsub>` payload of the IQ `set` publishing our device list.
pub fn publish_device_list(devices: &[u32]) -> Element {
    publish(NODE_DEVICELIST, device_list_to_element(devices))
}

/// `<pubsub>` payload of the IQ `set` publishing the bundle of `device_id`.
pub fn publish_bundle(device_id: u32, bundle: &PreKeyBundle) -> Element {
    publish(&bundle_node(device_id), bundle_to_element(bundle))
}

/// `<pubsub>` payload of the IQ `get` (to a bare JID) fetching `node`.
pub fn fetch(node: &str) -> Element {
    Element::builder("pubsub", NS_PUBSUB)
        .append(
            Element::builder("items", NS_PUBSUB)
                .a("node", node)
                .a("max_items", "1")
                .build(),
        )
        .build()
}

/// The payload of the first item of `node` in an IQ result (or a PEP
/// event `<message>`); `None` when the node has no item.
pub fn first_item_payload<'a>(stanza: &'a Element, node: &str) -> Result<Option<&'a Element>> {
    let items = if let Some(ps) = stanza.get_child("pubsub", NS_PUBSUB) {
        ps.get_child("items", NS_PUBSUB)
    } else if let Some(ev) = stanza.get_child("event", NS_PUBSUB_EVENT) {
        ev.get_child("items", NS_PUBSUB_EVENT)
    } else {
        None
    };
    let Some(items) = items else {
        return Err(OmemoError::Malformed(
            "no <pubsub><items> or <event><items> in the stanza".into(),
        ));
    };
    if items.attr("node") != Some(node) {
        return Err(OmemoError::Malformed(format!(
            "items of node {:?}, expected {node:?}",
            items.attr("node")
        )));
    }
    Ok(items
        .children()
        .find(|c| c.name() == "item")
        .and_then(|item| item.children().next()))
}

/// The device list in a fetch result or PEP notification (empty when the
/// node has no item).
pub fn device_list_from_stanza(stanza: &Element) -> Result<Vec<u32>> {
    match first_item_payload(stanza, NODE_DEVICELIST)? {
        Some(list) => device_list_from_element(list),
        None => Ok(Vec::new()),
    }
}

/// The bundle of `device_id` in a fetch result.
pub fn bundle_from_stanza(stanza: &Element, device_id: u32) -> Result<PreKeyBundle> {
    match first_item_payload(stanza, &bundle_node(device_id))? {
        Some(b) => bundle_from_element(b),
        None => Err(OmemoError::Malformed(format!(
            "no bundle published for device {device_id}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omemo::store::{own_bundle, InMemoryStore};

    fn as_result(pubsub_set: &Element) -> Element {
        // What a server returns to a fetch: the published items.
        let publish = pubsub_set.get_child("publish", NS_PUBSUB).unwrap();
        let items = Element::builder("items", NS_PUBSUB)
            .a("node", publish.attr("node").unwrap())
            .append(publish.get_child("item", NS_PUBSUB).unwrap().clone())
            .build();
        Element::builder("iq", "jabber:client")
            .a("type", "result")
            .append(Element::builder("pubsub", NS_PUBSUB).append(items).build())
            .build()
    }

    #[test]
    fn publish_then_fetch_round_trip() {
        let p = publish_device_list(&[7, 9]);
        assert_eq!(
            p.get_child("publish", NS_PUBSUB).unwrap().attr("node"),
            Some(NODE_DEVICELIST)
        );
        assert!(p.get_child("publish-options", NS_PUBSUB).is_some());
        assert_eq!(device_list_from_stanza(&as_result(&p)).unwrap(), vec![7, 9]);

        let store = InMemoryStore::generate(7).unwrap();
        let bundle = own_bundle(&store).unwrap();
        let p = publish_bundle(7, &bundle);
        let back = bundle_from_stanza(&as_result(&p), 7).unwrap();
        assert_eq!(back, bundle);
        // Asking for another device's node is an error, not a wrong bundle.
        assert!(bundle_from_stanza(&as_result(&p), 8).is_err());
        let f = fetch(&bundle_node(7));
        assert_eq!(
            f.get_child("items", NS_PUBSUB).unwrap().attr("node"),
            Some("eu.siacs.conversations.axolotl.bundles:7")
        );
    }

    #[test]
    fn pep_notification_and_empty_node() {
        let xml = "<message xmlns='jabber:client' from='juliet@capulet.lit'>\
                   <event xmlns='http://jabber.org/protocol/pubsub#event'>\
                   <items node='eu.siacs.conversations.axolotl.devicelist'><item id='current'>\
                   <list xmlns='eu.siacs.conversations.axolotl'><device id='12345'/><device id='4223'/></list>\
                   </item></items></event></message>";
        let m: Element = xml.parse().unwrap();
        assert_eq!(device_list_from_stanza(&m).unwrap(), vec![12345, 4223]);
        let empty: Element = "<iq xmlns='jabber:client' type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
                              <items node='eu.siacs.conversations.axolotl.devicelist'/></pubsub></iq>"
            .parse()
            .unwrap();
        assert!(device_list_from_stanza(&empty).unwrap().is_empty());
        let nothing: Element = "<iq xmlns='jabber:client' type='result'/>".parse().unwrap();
        assert!(device_list_from_stanza(&nothing).is_err());
    }
}
