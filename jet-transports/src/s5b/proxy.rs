//! XEP-0065 proxies: discovery (§4), the streamhost query, and activation
//! (§5.3.3 / XEP-0260 §2.5).

use std::time::Duration;

use jet_core::channel::{iq, StanzaChannel};
use jet_core::error::TransportError;
use jet_core::jid::{FullJid, Jid};
use jet_core::minidom::Element;
use jet_core::ns;
use jet_core::xml::BuilderExt;

use super::element::protocol;
use crate::util::within;

/// The most disco items we ask about when looking for a proxy.
const MAX_DISCO_ITEMS: usize = 20;

/// A SOCKS5 bytestreams proxy as the server announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHost {
    /// The proxy's JID (e.g. `proxy.example.org`).
    pub jid: Jid,
    /// Host name or IP address to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

async fn request(
    channel: &dyn StanzaChannel,
    type_: &str,
    to: &Jid,
    payload: Element,
    timeout: Duration,
    what: &str,
) -> Result<Element, TransportError> {
    within(timeout, what, async {
        Ok(channel
            .request(iq(type_, "", None, to, Some(payload)))
            .await?)
    })
    .await
}

/// Asks `proxy` for its `<streamhost/>` (XEP-0065 §4, example 7).
pub async fn query_streamhost(
    channel: &dyn StanzaChannel,
    proxy: &Jid,
    timeout: Duration,
) -> Result<StreamHost, TransportError> {
    let q = Element::builder("query", ns::BYTESTREAMS).build();
    let answer = request(
        channel,
        "get",
        proxy,
        q,
        timeout,
        "the proxy's streamhost address",
    )
    .await?;
    let sh = answer
        .children()
        .find(|c| c.is("query", ns::BYTESTREAMS))
        .and_then(|q| q.children().find(|c| c.is("streamhost", ns::BYTESTREAMS)))
        .ok_or_else(|| protocol(format!("proxy {proxy} sent no <streamhost/>")))?;
    let host = sh
        .attr("host")
        .filter(|h| !h.is_empty() && h.len() <= 255)
        .ok_or_else(|| protocol(format!("proxy {proxy} sent a <streamhost/> without host")))?;
    let port = sh
        .attr("port")
        .unwrap_or("1080")
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| protocol(format!("proxy {proxy} sent an invalid port")))?;
    let jid = match sh.attr("jid") {
        Some(j) => j
            .parse()
            .map_err(|e| protocol(format!("proxy {proxy} sent an invalid jid: {e}")))?,
        None => proxy.clone(),
    };
    Ok(StreamHost {
        jid,
        host: host.to_string(),
        port,
    })
}

/// XEP-0065 §4: disco#items of `domain`, then disco#info of each item; the
/// items with identity category `proxy`, type `bytestreams` are asked for
/// their streamhost. Errors of single items are skipped; each request has
/// `timeout`.
pub async fn discover(
    channel: &dyn StanzaChannel,
    domain: &Jid,
    timeout: Duration,
) -> Result<Vec<StreamHost>, TransportError> {
    let items = request(
        channel,
        "get",
        domain,
        Element::builder("query", ns::DISCO_ITEMS).build(),
        timeout,
        "disco#items of the server",
    )
    .await?;
    let jids: Vec<Jid> = items
        .children()
        .filter(|c| c.is("query", ns::DISCO_ITEMS))
        .flat_map(|q| q.children())
        .filter(|c| c.is("item", ns::DISCO_ITEMS))
        .filter_map(|i| i.attr("jid")?.parse().ok())
        .take(MAX_DISCO_ITEMS)
        .collect();
    let mut found = Vec::new();
    for jid in jids {
        let info = match request(
            channel,
            "get",
            &jid,
            Element::builder("query", ns::DISCO_INFO).build(),
            timeout,
            "disco#info of a server component",
        )
        .await
        {
            Ok(i) => i,
            Err(_) => continue,
        };
        let is_proxy = info
            .children()
            .filter(|c| c.is("query", ns::DISCO_INFO))
            .flat_map(|q| q.children())
            .any(|c| {
                c.is("identity", ns::DISCO_INFO)
                    && c.attr("category") == Some("proxy")
                    && c.attr("type") == Some("bytestreams")
            });
        if !is_proxy {
            continue;
        }
        if let Ok(sh) = query_streamhost(channel, &jid, timeout).await {
            found.push(sh);
        }
    }
    Ok(found)
}

/// XEP-0065 §5.3.3 / XEP-0260 §2.5: asks `proxy` to join our connection and
/// the peer's, both made with `dst_addr_hash(sid, us, peer)`.
/// `<query sid=TRANSPORT_SID><activate>PEER_FULL_JID</activate></query>`.
pub async fn activate(
    channel: &dyn StanzaChannel,
    proxy: &Jid,
    sid: &str,
    peer: &FullJid,
    timeout: Duration,
) -> Result<(), TransportError> {
    let q = Element::builder("query", ns::BYTESTREAMS)
        .a("sid", sid)
        .append(
            Element::builder("activate", ns::BYTESTREAMS)
                .append(peer.to_string())
                .build(),
        )
        .build();
    request(channel, "set", proxy, q, timeout, "proxy activation").await?;
    Ok(())
}
