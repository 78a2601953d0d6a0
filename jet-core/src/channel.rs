//! The stanza channel: how envelopes, IBB and the session driver talk XMPP.
//!
//! Implemented over tokio-xmpp for real accounts, and by
//! [`MemoryRouter`](crate::memory::MemoryRouter) for unit tests and the demo.
//! Stanzas are raw [`Element`]s in the `jabber:client` namespace so that no
//! child the parsers do not know (JET's `<security/>`!) is lost on the way.

use std::sync::Arc;

use async_trait::async_trait;
use jid::{FullJid, Jid};
use minidom::Element;
use tokio::sync::mpsc;

use crate::error::ChannelError;
use crate::ns;
use crate::xml::BuilderExt;

/// Decides which incoming IQ requests a [`StanzaChannel::subscribe`] gets.
pub type IqFilter = Arc<dyn Fn(&Element) -> bool + Send + Sync>;

/// An XMPP connection as the rest of jet sees it.
#[async_trait]
pub trait StanzaChannel: Send + Sync {
    /// Our own full JID.
    fn local_jid(&self) -> FullJid;

    /// Sends an IQ `get` or `set` (an `id` is added when empty) and waits for
    /// the answer: `Ok(result IQ)` or `Err(ChannelError::StanzaError)`. The
    /// caller bounds the wait with its own timeout.
    async fn request(&self, iq: Element) -> Result<Element, ChannelError>;

    /// Sends a stanza without waiting (IQ results and errors, messages, presence).
    async fn send(&self, stanza: Element) -> Result<(), ChannelError>;

    /// Delivers incoming IQ requests (`get`/`set`) that `filter` accepts. The
    /// subscriber must answer each with [`send`](Self::send). Requests no
    /// subscriber takes are answered `service-unavailable` by the channel.
    /// Dropping the receiver ends the subscription.
    fn subscribe(&self, filter: IqFilter) -> mpsc::UnboundedReceiver<Element>;
}

/// Builds an IQ stanza element.
pub fn iq(
    type_: &str,
    id: &str,
    from: Option<&Jid>,
    to: &Jid,
    payload: Option<Element>,
) -> Element {
    let mut b = Element::builder("iq", ns::JABBER_CLIENT)
        .a("type", type_)
        .a("id", id)
        .a("to", to.to_string());
    if let Some(from) = from {
        b = b.a("from", from.to_string());
    }
    if let Some(p) = payload {
        b = b.append(p);
    }
    b.build()
}

/// The `result` answer to an IQ request, with an optional payload.
pub fn iq_result(request: &Element, payload: Option<Element>) -> Element {
    let mut b = Element::builder("iq", ns::JABBER_CLIENT)
        .a("type", "result")
        .a("id", request.attr("id").unwrap_or_default());
    if let Some(from) = request.attr("from") {
        b = b.a("to", from);
    }
    if let Some(to) = request.attr("to") {
        b = b.a("from", to);
    }
    if let Some(p) = payload {
        b = b.append(p);
    }
    b.build()
}

/// The `error` answer to an IQ request with an RFC 6120 condition
/// (`error_type`: `cancel`, `modify`, `auth`, `wait`) and an optional
/// application-specific child (e.g. a Jingle error).
pub fn iq_error(
    request: &Element,
    error_type: &str,
    condition: &str,
    app: Option<Element>,
) -> Element {
    let mut err = Element::builder("error", ns::JABBER_CLIENT)
        .a("type", error_type)
        .append(Element::builder(condition, ns::XMPP_STANZAS).build());
    if let Some(app) = app {
        err = err.append(app);
    }
    let mut b = Element::builder("iq", ns::JABBER_CLIENT)
        .a("type", "error")
        .a("id", request.attr("id").unwrap_or_default());
    if let Some(from) = request.attr("from") {
        b = b.a("to", from);
    }
    if let Some(to) = request.attr("to") {
        b = b.a("from", to);
    }
    b.append(err.build()).build()
}

/// Reads the condition out of an IQ of type `error`.
pub fn stanza_error_of(iq: &Element) -> ChannelError {
    let err = iq.children().find(|c| c.name() == "error");
    let error_type = err
        .and_then(|e| e.attr("type"))
        .unwrap_or("cancel")
        .to_string();
    let condition = err
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == ns::XMPP_STANZAS && c.name() != "text")
        })
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| "undefined-condition".to_string());
    let text = err
        .and_then(|e| e.children().find(|c| c.name() == "text"))
        .map(|t| t.text());
    ChannelError::StanzaError {
        error_type,
        condition,
        text,
    }
}

/// Whether `iq` is an IQ request (`get` or `set`) whose first child is
/// `<name xmlns=namespace>`.
pub fn is_request_for(iq: &Element, name: &str, namespace: &str) -> bool {
    iq.name() == "iq"
        && matches!(iq.attr("type"), Some("get") | Some("set"))
        && iq.children().next().is_some_and(|c| c.is(name, namespace))
}
