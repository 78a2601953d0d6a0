//! OMEMO 0.3 elements (namespace `eu.siacs.conversations.axolotl`):
//! `<encrypted>`, `<bundle>` and the device `<list>`, parsed and built with
//! `xmpp_parsers::legacy_omemo` and checked into typed values.
//!
//! ```xml
//! <encrypted xmlns='eu.siacs.conversations.axolotl'>
//!   <header sid='27183'>
//!     <key rid='31415'>BASE64</key>
//!     <key rid='12321' prekey='true'>BASE64</key>
//!     <iv>BASE64</iv>
//!   </header>
//!   <payload>BASE64</payload>   <!-- absent in a KeyTransportElement -->
//! </encrypted>
//! ```

use jet_core::minidom::rxml::Namespace;
use jet_core::minidom::Element;
use jet_core::xmpp_parsers::legacy_omemo;

use super::error::{OmemoError, Result};
use super::keys::PublicKey;
use super::x3dh::PreKeyBundle;

/// The OMEMO 0.3 namespace (also the JET `<security type>`, XEP-0396).
pub const NS: &str = "eu.siacs.conversations.axolotl";
/// PEP node of the device list.
pub const NODE_DEVICELIST: &str = "eu.siacs.conversations.axolotl.devicelist";
/// PEP node prefix of bundles: `eu.siacs.conversations.axolotl.bundles:<device id>`.
pub const NODE_BUNDLES_PREFIX: &str = "eu.siacs.conversations.axolotl.bundles:";

/// One `<key>`: the ratchet-encrypted key material for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyElement {
    /// Recipient device id.
    pub rid: u32,
    /// True when `data` is a PreKeySignalMessage.
    pub prekey: bool,
    /// Serialized SignalMessage or PreKeySignalMessage.
    pub data: Vec<u8>,
}

/// An `<encrypted>` element: a message (with payload) or a key transport
/// element (without).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedElement {
    /// Sender device id.
    pub sid: u32,
    /// One entry per recipient device.
    pub keys: Vec<KeyElement>,
    /// The IV of the payload (or, in JET, of the transport).
    pub iv: Vec<u8>,
    /// AES-128-GCM ciphertext of the body, without tag.
    pub payload: Option<Vec<u8>>,
}

impl EncryptedElement {
    /// Builds the XML element. `prekey` is written only when true, as
    /// Conversations, Dino and python-omemo do.
    pub fn to_element(&self) -> Element {
        let mut el: Element = legacy_omemo::Encrypted {
            header: legacy_omemo::Header {
                sid: self.sid,
                keys: self
                    .keys
                    .iter()
                    .map(|k| legacy_omemo::Key {
                        rid: k.rid,
                        prekey: k.prekey,
                        data: k.data.clone(),
                    })
                    .collect(),
                iv: legacy_omemo::IV {
                    data: self.iv.clone(),
                },
            },
            payload: self
                .payload
                .as_ref()
                .map(|p| legacy_omemo::Payload { data: p.clone() }),
        }
        .into();
        if let Some(header) = el.get_child_mut("header", NS) {
            for key in header.children_mut() {
                if key.attr("prekey") == Some("false") {
                    key.attrs_mut().remove(&Namespace::NONE, "prekey");
                }
            }
        }
        el
    }

    /// Parses an `<encrypted>` element.
    pub fn from_element(el: &Element) -> Result<Self> {
        if !el.is("encrypted", NS) {
            return Err(OmemoError::Malformed(format!(
                "expected <encrypted xmlns='{NS}'>, got <{} xmlns='{}'>",
                el.name(),
                el.ns()
            )));
        }
        // A payload of whitespace only (what jet sends Libervia, see
        // OmemoEnvelope::send_libervia_compatible_to) is an empty payload;
        // xmpp-parsers' base64 refuses the blank.
        let mut el = el.clone();
        let blank = el
            .get_child("payload", NS)
            .is_some_and(|p| p.children().next().is_none() && p.text().trim().is_empty());
        if blank {
            el.remove_child("payload", NS);
            el.append_child(Element::builder("payload", NS).build());
        }
        let e = legacy_omemo::Encrypted::try_from(el)
            .map_err(|e| OmemoError::Malformed(format!("<encrypted>: {e}")))?;
        Ok(EncryptedElement {
            sid: e.header.sid,
            keys: e
                .header
                .keys
                .into_iter()
                .map(|k| KeyElement {
                    rid: k.rid,
                    prekey: k.prekey,
                    data: k.data,
                })
                .collect(),
            iv: e.header.iv.data,
            payload: e.payload.map(|p| p.data),
        })
    }

    /// The `<key>` for device `rid`, if any.
    pub fn key_for(&self, rid: u32) -> Option<&KeyElement> {
        self.keys.iter().find(|k| k.rid == rid)
    }
}

/// Builds a `<bundle>` (XEP-0384 v0.3 §4.3).
pub fn bundle_to_element(bundle: &PreKeyBundle) -> Element {
    legacy_omemo::Bundle {
        signed_pre_key_public: Some(legacy_omemo::SignedPreKeyPublic {
            signed_pre_key_id: Some(bundle.signed_pre_key_id),
            data: bundle.signed_pre_key.serialize().to_vec(),
        }),
        signed_pre_key_signature: Some(legacy_omemo::SignedPreKeySignature {
            data: bundle.signed_pre_key_signature.clone(),
        }),
        identity_key: Some(legacy_omemo::IdentityKey {
            data: bundle.identity_key.serialize().to_vec(),
        }),
        prekeys: Some(legacy_omemo::Prekeys {
            keys: bundle
                .pre_keys
                .iter()
                .map(|(id, k)| legacy_omemo::PreKeyPublic {
                    pre_key_id: *id,
                    data: k.serialize().to_vec(),
                })
                .collect(),
        }),
    }
    .into()
}

/// Parses a `<bundle>`; every part must be present and well formed. The
/// signature is not checked here (see [`PreKeyBundle::verify`]).
pub fn bundle_from_element(el: &Element) -> Result<PreKeyBundle> {
    if !el.is("bundle", NS) {
        return Err(OmemoError::Malformed(format!(
            "expected <bundle xmlns='{NS}'>"
        )));
    }
    let b = legacy_omemo::Bundle::try_from(el.clone())
        .map_err(|e| OmemoError::Malformed(format!("<bundle>: {e}")))?;
    let missing = |what: &str| OmemoError::Malformed(format!("bundle without {what}"));
    let spk = b
        .signed_pre_key_public
        .ok_or_else(|| missing("signedPreKeyPublic"))?;
    let sig = b
        .signed_pre_key_signature
        .ok_or_else(|| missing("signedPreKeySignature"))?;
    let ik = b.identity_key.ok_or_else(|| missing("identityKey"))?;
    if sig.data.len() != 64 {
        return Err(OmemoError::Malformed(format!(
            "signedPreKeySignature of {} bytes",
            sig.data.len()
        )));
    }
    let pre_keys = b
        .prekeys
        .map(|p| p.keys)
        .unwrap_or_default()
        .into_iter()
        .map(|k| Ok((k.pre_key_id, PublicKey::deserialize(&k.data)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(PreKeyBundle {
        identity_key: PublicKey::deserialize(&ik.data)?,
        // Conversations always writes the id; 0 is what an absent one means
        // to libsignal-based clients.
        signed_pre_key_id: spk.signed_pre_key_id.unwrap_or(0),
        signed_pre_key: PublicKey::deserialize(&spk.data)?,
        signed_pre_key_signature: sig.data,
        pre_keys,
    })
}

/// Builds a device `<list>` (XEP-0384 v0.3 §4.2).
pub fn device_list_to_element(devices: &[u32]) -> Element {
    legacy_omemo::DeviceList {
        devices: devices
            .iter()
            .map(|&id| legacy_omemo::Device { id })
            .collect(),
    }
    .into()
}

/// Parses a device `<list>`.
pub fn device_list_from_element(el: &Element) -> Result<Vec<u32>> {
    if !el.is("list", NS) {
        return Err(OmemoError::Malformed(format!(
            "expected <list xmlns='{NS}'>"
        )));
    }
    let l = legacy_omemo::DeviceList::try_from(el.clone())
        .map_err(|e| OmemoError::Malformed(format!("<list>: {e}")))?;
    Ok(l.devices.into_iter().map(|d| d.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omemo::keys::KeyPair;
    use jet_core::xml::ElementExt;

    #[test]
    fn encrypted_round_trip() {
        let e = EncryptedElement {
            sid: 27183,
            keys: vec![
                KeyElement {
                    rid: 31415,
                    prekey: false,
                    data: vec![1, 2, 3],
                },
                KeyElement {
                    rid: 12321,
                    prekey: true,
                    data: vec![4, 5],
                },
            ],
            iv: vec![9; 12],
            payload: None,
        };
        let el = e.to_element();
        let xml = el.to_xml_string();
        assert!(
            xml.contains("prekey=\"true\"") || xml.contains("prekey='true'"),
            "{xml}"
        );
        assert!(!xml.contains("payload"));
        assert!(!xml.contains("false"), "{xml}");
        assert_eq!(EncryptedElement::from_element(&el).unwrap(), e);
        let with_payload = EncryptedElement {
            payload: Some(vec![7; 5]),
            ..e
        };
        assert_eq!(
            EncryptedElement::from_element(&with_payload.to_element()).unwrap(),
            with_payload
        );
    }

    #[test]
    fn parses_conversations_style_xml() {
        let xml = "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='27183'>\
                   <key rid='31415'>AQID</key><key prekey='true' rid='12321'>BAU=</key>\
                   <iv>AAAAAAAAAAAAAAAA</iv></header><payload>BwcH</payload></encrypted>";
        let e = EncryptedElement::from_element(&xml.parse().unwrap()).unwrap();
        assert_eq!(e.sid, 27183);
        assert!(e.key_for(12321).unwrap().prekey);
        assert_eq!(e.key_for(31415).unwrap().data, vec![1, 2, 3]);
        assert_eq!(e.iv.len(), 12);
        assert_eq!(e.payload, Some(vec![7, 7, 7]));
    }

    #[test]
    fn malformed_elements_are_errors() {
        for xml in [
            "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'><iv>AA==</iv></header></encrypted>",
            "<encrypted xmlns='eu.siacs.conversations.axolotl'/>",
            "<encrypted xmlns='eu.siacs.conversations.axolotl'><header><iv>AA==</iv></header></encrypted>",
            "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='x'><iv>AA==</iv></header></encrypted>",
            "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><key rid='2'>!!</key><iv>AA==</iv></header></encrypted>",
        ] {
            assert!(EncryptedElement::from_element(&xml.parse().unwrap()).is_err(), "{xml}");
        }
    }

    #[test]
    fn bundle_and_device_list_round_trip() {
        let ik = KeyPair::generate().unwrap();
        let spk = KeyPair::generate().unwrap();
        let b = PreKeyBundle {
            identity_key: ik.public,
            signed_pre_key_id: 3,
            signed_pre_key: spk.public,
            signed_pre_key_signature: ik.private.sign(&spk.public.serialize()).unwrap().to_vec(),
            pre_keys: (1..=100)
                .map(|i| (i, KeyPair::generate().unwrap().public))
                .collect(),
        };
        let back = bundle_from_element(&bundle_to_element(&b)).unwrap();
        assert_eq!(back, b);
        back.verify().unwrap();
        let l = device_list_to_element(&[1, 2, 2147483647]);
        assert_eq!(
            device_list_from_element(&l).unwrap(),
            vec![1, 2, 2147483647]
        );
        let bad = "<bundle xmlns='eu.siacs.conversations.axolotl'><identityKey>BQ==</identityKey></bundle>";
        assert!(bundle_from_element(&bad.parse().unwrap()).is_err());
    }
}
