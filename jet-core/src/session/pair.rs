//! Test harness: two [`Endpoint`]s and a tiny "server" between them, in the
//! shape of quinn-proto's `tests/util.rs` `Pair`.
//!
//! The server stamps `from` with the sender's JID (so nothing can be spoofed
//! through it), bounces IQ requests to JIDs that are not connected with
//! `service-unavailable`, lets a test tamper with or drop stanzas in flight,
//! and keeps a log of everything it carried. Time only moves when the test
//! says so.

use std::time::{Duration, Instant};

use jid::FullJid;
use minidom::Element;

use super::{Endpoint, EngineConfig, SessionEvent};
use crate::channel::iq_error;
use crate::ns;
use crate::xml::ElementExt;

/// Changes (or drops, by returning `false`) a stanza in flight.
pub type Tamper = Box<dyn FnMut(&FullJid, &mut Element) -> bool>;

pub struct Pair {
    pub romeo: Endpoint,
    pub juliet: Endpoint,
    pub time: Instant,
    /// Everything carried, as `(from, stanza)`, in order.
    pub log: Vec<(FullJid, Element)>,
    /// Stanzas addressed to anyone else (third parties), as delivered.
    pub others: Vec<Element>,
    pub tamper: Option<Tamper>,
}

pub fn romeo_jid() -> FullJid {
    "romeo@montague.lit/orchard".parse().unwrap()
}

pub fn juliet_jid() -> FullJid {
    "juliet@capulet.lit/balcony".parse().unwrap()
}

impl Pair {
    pub fn new(romeo: EngineConfig, juliet: EngineConfig) -> Self {
        Pair {
            romeo: Endpoint::new(romeo_jid(), romeo),
            juliet: Endpoint::new(juliet_jid(), juliet),
            time: Instant::now(),
            log: Vec::new(),
            others: Vec::new(),
            tamper: None,
        }
    }

    /// Delivers `stanza` as sent by `from`, like a server would.
    pub fn deliver(&mut self, from: &FullJid, mut stanza: Element) {
        stanza.set_a("from", from.to_string());
        if let Some(t) = self.tamper.as_mut() {
            if !t(from, &mut stanza) {
                return;
            }
        }
        self.log.push((from.clone(), stanza.clone()));
        let to: Option<FullJid> = stanza.attr("to").and_then(|t| t.parse().ok());
        let now = self.time;
        if to.as_ref() == Some(&romeo_jid()) {
            self.romeo.handle_stanza(stanza, now);
        } else if to.as_ref() == Some(&juliet_jid()) {
            self.juliet.handle_stanza(stanza, now);
        } else {
            let is_request = matches!(stanza.attr("type"), Some("get") | Some("set"));
            if is_request && (from == &romeo_jid() || from == &juliet_jid()) {
                // The server answers for an offline recipient.
                let mut err = iq_error(&stanza, "cancel", "service-unavailable", None);
                err.set_a("from", stanza.attr("to").unwrap_or_default());
                err.set_a("to", from.to_string());
                let now = self.time;
                if from == &romeo_jid() {
                    self.romeo.handle_stanza(err, now);
                } else {
                    self.juliet.handle_stanza(err, now);
                }
            }
            self.others.push(stanza);
        }
    }

    /// Carries stanzas both ways until both endpoints are quiet.
    pub fn drive(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(s) = self.romeo.poll_transmit() {
                self.deliver(&romeo_jid(), s);
                moved = true;
            }
            while let Some(s) = self.juliet.poll_transmit() {
                self.deliver(&juliet_jid(), s);
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("the endpoints never went quiet");
    }

    /// Moves time forward by `d` and lets both endpoints handle due timeouts.
    pub fn advance(&mut self, d: Duration) {
        self.time += d;
        let now = self.time;
        if self.romeo.poll_timeout().is_some_and(|t| t <= now) {
            self.romeo.handle_timeout(now);
        }
        if self.juliet.poll_timeout().is_some_and(|t| t <= now) {
            self.juliet.handle_timeout(now);
        }
        self.drive();
    }

    pub fn romeo_events(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.romeo.poll_event()).collect()
    }

    pub fn juliet_events(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.juliet.poll_event()).collect()
    }

    /// The Jingle actions carried from `from`, in order.
    pub fn actions_from(&self, from: &FullJid) -> Vec<String> {
        self.log
            .iter()
            .filter(|(f, _)| f == from)
            .filter_map(|(_, s)| s.get_child("jingle", ns::JINGLE))
            .map(|j| j.attr("action").unwrap_or_default().to_string())
            .collect()
    }

    /// The reason condition of the last session-terminate sent by `from`.
    pub fn terminate_reason_from(&self, from: &FullJid) -> Option<String> {
        self.log
            .iter()
            .rev()
            .filter(|(f, _)| f == from)
            .filter_map(|(_, s)| s.get_child("jingle", ns::JINGLE))
            .find(|j| j.attr("action") == Some("session-terminate"))
            .and_then(|j| j.get_child("reason", ns::JINGLE))
            .and_then(|r| r.children().find(|c| c.name() != "text"))
            .map(|c| c.name().to_string())
    }

    /// Every IQ `set` carried got exactly one `result` or `error` back.
    pub fn all_requests_answered(&self) -> bool {
        self.log
            .iter()
            .filter(|(_, s)| s.attr("type") == Some("set"))
            .all(|(from, set)| {
                let id = set.attr("id");
                let to = set.attr("to");
                self.log
                    .iter()
                    .filter(|(f, a)| {
                        matches!(a.attr("type"), Some("result") | Some("error"))
                            && a.attr("id") == id
                            && Some(f.to_string().as_str()) == to
                            && a.attr("to") == Some(from.to_string().as_str())
                    })
                    .count()
                    == 1
            })
    }
}
