//! XEP-0373 §4: announcing our public key and discovering a peer's over PEP.
//!
//! Publishing: first the key's data node
//! `urn:xmpp:openpgp:0:public-keys:FPR` (item id = publication date), then
//! the metadata node `urn:xmpp:openpgp:0:public-keys` listing it (§4.2: the
//! data node MUST exist before the metadata names it). Both with
//! `access_model=open` so that peers who are not in our roster can fetch.
//!
//! Fetching: the metadata node, then each listed data node
//! (`max_items='1'`). A fetched key is used only if its fingerprint is the
//! one the metadata announced and it is a valid XEP-0373 key of the account
//! ([`OxPublicKey::validate_for`]); every wait is bounded by the caller's
//! timeout.

use std::time::Duration;

use jet_core::channel::{iq, StanzaChannel};
use jet_core::error::{ChannelError, EnvelopeError};
use jet_core::jid::{BareJid, Jid};
use jet_core::minidom::Element;
use jet_core::ns;

use super::elements::{
    format_datetime, parse_pubkey, parse_public_keys_list, pubkey_element, public_key_node,
    public_keys_list, pubsub_items_payload, pubsub_items_request, pubsub_publish, unix_now,
    PubkeyMetadata, PUBLIC_KEYS_NODE,
};
use super::keys::OxPublicKey;

/// At most this many keys are fetched for one account (hostile metadata
/// could list thousands).
pub const MAX_KEYS_PER_ACCOUNT: usize = 8;

async fn request(
    channel: &dyn StanzaChannel,
    type_: &str,
    to: &Jid,
    payload: Element,
    timeout: Duration,
) -> Result<Element, EnvelopeError> {
    let stanza = iq(type_, "", None, to, Some(payload));
    match tokio::time::timeout(timeout, channel.request(stanza)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(EnvelopeError::Channel(ChannelError::Timeout(
            to.to_string(),
        ))),
    }
}

/// Publishes `key` on the PEP service `service` (normally our own bare JID)
/// as our only key: data node, then metadata node.
pub async fn publish_public_key(
    channel: &dyn StanzaChannel,
    service: &Jid,
    key: &OxPublicKey,
    timeout: Duration,
) -> Result<(), EnvelopeError> {
    let date = format_datetime(unix_now());
    let data = pubkey_element(&key.to_bytes()?, &date);
    let node = public_key_node(key.fingerprint());
    request(
        channel,
        "set",
        service,
        pubsub_publish(&node, Some(&date), data),
        timeout,
    )
    .await?;
    let list = public_keys_list(&[PubkeyMetadata {
        fingerprint: key.fingerprint().to_string(),
        date,
    }]);
    request(
        channel,
        "set",
        service,
        pubsub_publish(PUBLIC_KEYS_NODE, None, list),
        timeout,
    )
    .await?;
    Ok(())
}

/// The metadata list of `owner` from `service` (normally `owner` itself).
pub async fn fetch_key_list(
    channel: &dyn StanzaChannel,
    service: &Jid,
    timeout: Duration,
) -> Result<Vec<PubkeyMetadata>, EnvelopeError> {
    let answer = request(
        channel,
        "get",
        service,
        pubsub_items_request(PUBLIC_KEYS_NODE),
        timeout,
    )
    .await?;
    match pubsub_items_payload(&answer, PUBLIC_KEYS_NODE)? {
        Some(list) => parse_public_keys_list(&list),
        None => Ok(Vec::new()),
    }
}

/// Fetches and validates the keys `owner` announces on `service` (normally
/// `owner`'s bare JID). Keys that fail a check are skipped; if none is left,
/// the error says why the first one failed, or that none is published.
pub async fn fetch_public_keys(
    channel: &dyn StanzaChannel,
    service: &Jid,
    owner: &BareJid,
    timeout: Duration,
) -> Result<Vec<OxPublicKey>, EnvelopeError> {
    let list = fetch_key_list(channel, service, timeout).await?;
    let mut keys = Vec::new();
    let mut first_error = None;
    for meta in list.iter().take(MAX_KEYS_PER_ACCOUNT) {
        match fetch_one(channel, service, owner, &meta.fingerprint, timeout).await {
            Ok(k) => keys.push(k),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if keys.is_empty() {
        return Err(first_error.unwrap_or_else(|| {
            EnvelopeError::NoKey(format!("{owner} (no OpenPGP key published over PEP)"))
        }));
    }
    Ok(keys)
}

async fn fetch_one(
    channel: &dyn StanzaChannel,
    service: &Jid,
    owner: &BareJid,
    fingerprint: &str,
    timeout: Duration,
) -> Result<OxPublicKey, EnvelopeError> {
    let node = public_key_node(fingerprint);
    let answer = request(
        channel,
        "get",
        service,
        pubsub_items_request(&node),
        timeout,
    )
    .await?;
    let payload = pubsub_items_payload(&answer, &node)?
        .ok_or_else(|| EnvelopeError::NoKey(format!("{owner}: node {node} is empty")))?;
    let key = OxPublicKey::from_bytes(&parse_pubkey(&payload)?)?;
    if key.fingerprint() != fingerprint {
        return Err(EnvelopeError::Untrusted(format!(
            "node {node} holds key {}, not the announced one",
            key.fingerprint()
        )));
    }
    key.validate_for(owner)?;
    Ok(key)
}

/// Whether an IQ request is a PubSub request on a JET-OX key node (for test
/// PEP services and filters).
pub fn is_ox_pep_request(stanza: &Element) -> bool {
    jet_core::channel::is_request_for(stanza, "pubsub", super::elements::PUBSUB)
        && stanza
            .children()
            .next()
            .and_then(|p| p.children().next())
            .and_then(|op| op.attr("node"))
            .is_some_and(|n| n.starts_with(PUBLIC_KEYS_NODE))
        && stanza.ns() == ns::JABBER_CLIENT
}
