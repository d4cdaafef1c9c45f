//! XEP-0198 stream management, the client's side: what a [`Session`]
//! counts and keeps so that no stanza is lost or doubled when its
//! connection breaks.
//!
//! The session enables it when the server offers it (`<enable
//! resume='true'/>` first thing), answers the server's `<r/>` with how
//! many stanzas it has (`<a h/>`; a stanza counts once it is in the
//! session's inbound queue), asks for acks after what it sends and keeps
//! each stanza until the server acknowledges it. After a broken connection
//! [`Session::resume`] logs in again and resumes: the server sends what we
//! had not acknowledged, we send what it had not, and neither side gets
//! anything twice.
//!
//! The reader and the writer task share one [`Shared`]; the counters are
//! mod 2^32 as the protocol says.
//!
//! [`Session`]: crate::Session
//! [`Session::resume`]: crate::Session::resume

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use snow_xml::{Element, NS_CLIENT, NS_SM};
use tokio::sync::Notify;

/// Stanzas kept for the server's ack at most; past it the server is not
/// acknowledging, and the session gives up resumption rather than grow.
const MAX_UNACKED: usize = 10_000;

/// The state the reader and writer share.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<Counters>,
    /// Wakes the writer: an ack is due.
    pub wake: Notify,
}

#[derive(Default)]
struct Counters {
    /// Our `<enable/>` (or `<resume/>`) is out: our stanzas count from it.
    outbound: bool,
    /// The server's `<enabled/>` came: its stanzas count from it.
    inbound: bool,
    /// The resumption id, when the server allows resumption.
    id: Option<String>,
    /// Stanzas of the server's handled, mod 2^32: our `h`.
    received: u32,
    /// Stanzas sent since enabling, mod 2^32: the number of the last.
    sent: u32,
    /// Sent and not acknowledged, oldest first (the last is `sent`).
    unacked: VecDeque<Element>,
    /// An `<r/>` of ours is out.
    asked: bool,
    /// The server asked for an ack that is not sent yet.
    ack_due: bool,
}

/// Whether an element is a stanza (what the protocol counts).
fn is_stanza(el: &Element) -> bool {
    el.ns() == NS_CLIENT && matches!(el.name(), "message" | "presence" | "iq")
}

/// `<a h/>`.
fn ack(h: u32) -> Element {
    Element::new(NS_SM, "a").with_attr("h", h.to_string())
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, Counters> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `<enable resume='true'/>`; our stanzas count from here.
    pub fn enable(&self) -> Element {
        let mut s = self.state();
        s.outbound = true;
        s.sent = 0;
        s.unacked.clear();
        Element::new(NS_SM, "enable").with_attr("resume", "true")
    }

    /// A stream management element from the server (the reader's): the
    /// answer to our `<enable/>`, an ack, or a request for one.
    pub fn received_nonza(&self, el: &Element) {
        let mut s = self.state();
        match el.name() {
            "enabled" => {
                s.inbound = true;
                s.received = 0;
                s.id = match el.attr("resume") {
                    Some("true" | "1") => el.attr("id").map(str::to_owned),
                    _ => None,
                };
            }
            "failed" => {
                tracing::warn!("the server refused stream management");
                *s = Counters::default();
            }
            "r" => {
                s.ack_due = true;
                drop(s);
                self.wake.notify_one();
            }
            "a" => {
                let Some(h) = el.attr("h").and_then(|h| h.trim().parse::<u32>().ok()) else {
                    tracing::warn!("an ack without a valid 'h' ignored");
                    return;
                };
                if let Err(e) = s.acknowledge(h) {
                    tracing::warn!(error = %e, "an ack that does not add up ignored");
                }
            }
            other => tracing::debug!(element = other, "a stream management element ignored"),
        }
    }

    /// One of the server's stanzas is handled (queued for the session's
    /// owner, or answered).
    pub fn handled(&self) {
        let mut s = self.state();
        if s.inbound {
            s.received = s.received.wrapping_add(1);
        }
    }

    /// `el` is about to be sent: a stanza is kept until acknowledged.
    pub fn sending(&self, el: &Element) {
        let mut s = self.state();
        if !(s.outbound && is_stanza(el)) {
            return;
        }
        if s.unacked.len() >= MAX_UNACKED {
            tracing::warn!("the server acknowledges nothing: the session can no longer be resumed");
            s.id = None;
            s.unacked.clear();
        }
        s.sent = s.sent.wrapping_add(1);
        s.unacked.push_back(el.clone());
    }

    /// The `<a/>` the server asked for, if one is due.
    pub fn due_ack(&self) -> Option<Element> {
        let mut s = self.state();
        std::mem::take(&mut s.ack_due).then(|| ack(s.received))
    }

    /// Our last `<a/>`, before we close the stream: the server then knows
    /// we had everything and routes nothing of ours again.
    pub fn final_ack(&self) -> Option<Element> {
        let s = self.state();
        s.inbound.then(|| ack(s.received))
    }

    /// An `<r/>` after a burst of sending, unless one is out already or
    /// nothing waits for an ack.
    pub fn request(&self) -> Option<Element> {
        let mut s = self.state();
        if s.outbound && !s.asked && !s.unacked.is_empty() {
            s.asked = true;
            return Some(Element::new(NS_SM, "r"));
        }
        None
    }

    /// The id and our `h` to resume with, if the server allows it.
    pub fn resumption(&self) -> Option<(String, u32)> {
        let s = self.state();
        Some((s.id.clone()?, s.received))
    }

    /// The server resumed and had the first `h` of our stanzas: the
    /// others, to send again in order (they keep their numbers).
    pub fn resumed(&self, h: u32) -> Result<Vec<Element>, String> {
        let mut s = self.state();
        s.acknowledge(h)?;
        s.asked = false;
        s.ack_due = false;
        Ok(s.unacked.iter().cloned().collect())
    }

    /// The server would not resume: stream management starts over with
    /// the next session. Returns what it never acknowledged.
    pub fn not_resumed(&self) -> Vec<Element> {
        let mut s = self.state();
        let unacked = std::mem::take(&mut s.unacked);
        *s = Counters::default();
        unacked.into()
    }

    /// What was sent and not acknowledged (yet).
    #[cfg(test)]
    pub fn unacknowledged(&self) -> Vec<Element> {
        self.state().unacked.iter().cloned().collect()
    }
}

impl Counters {
    fn acknowledge(&mut self, h: u32) -> Result<(), String> {
        let first = self.sent.wrapping_sub(self.unacked.len() as u32);
        let acked = h.wrapping_sub(first) as usize;
        if acked > self.unacked.len() {
            return Err(format!("the server acknowledged {h} stanzas, {} were sent", self.sent));
        }
        self.unacked.drain(..acked);
        self.asked = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: u32) -> Element {
        Element::new(NS_CLIENT, "message").with_attr("id", i.to_string())
    }

    #[test]
    fn counts_keeps_and_forgets_as_the_server_acknowledges() {
        let sm = Shared::default();
        sm.sending(&msg(0));
        assert!(sm.unacknowledged().is_empty(), "nothing counts before <enable/>");
        assert_eq!(sm.enable().attr("resume"), Some("true"));
        for i in 1..=3 {
            sm.sending(&msg(i));
        }
        sm.sending(&ack(0));
        assert_eq!(sm.unacknowledged().len(), 3, "only stanzas count");
        assert!(sm.request().is_some() && sm.request().is_none(), "one <r/> at a time");
        sm.received_nonza(&ack(2));
        assert_eq!(sm.unacknowledged(), vec![msg(3)]);
        sm.received_nonza(&ack(9));
        assert_eq!(sm.unacknowledged().len(), 1, "an ack past what was sent changes nothing");

        sm.handled();
        assert!(sm.final_ack().is_none(), "the server's stanzas count from <enabled/>");
        sm.received_nonza(&Element::new(NS_SM, "enabled").with_attr("id", "s1").with_attr("resume", "true"));
        sm.handled();
        sm.handled();
        assert!(sm.due_ack().is_none());
        sm.received_nonza(&Element::new(NS_SM, "r"));
        assert_eq!(sm.due_ack().unwrap().attr("h"), Some("2"));
        assert!(sm.due_ack().is_none());
        assert_eq!(sm.resumption(), Some(("s1".into(), 2)));
        assert_eq!(sm.resumed(2).unwrap(), vec![msg(3)], "what the server did not have goes again");
        assert!(sm.resumed(5).is_err());
        assert_eq!(sm.resumed(3).unwrap(), Vec::<Element>::new());
        sm.sending(&msg(4));
        assert_eq!(sm.not_resumed(), vec![msg(4)]);
        assert_eq!(sm.resumption(), None);
    }

    #[test]
    fn counters_wrap() {
        let sm = Shared::default();
        sm.enable();
        sm.state().sent = u32::MAX - 1;
        sm.sending(&msg(1));
        sm.sending(&msg(2));
        assert_eq!(sm.state().sent, 0);
        sm.received_nonza(&ack(u32::MAX));
        assert_eq!(sm.unacknowledged(), vec![msg(2)]);
        sm.received_nonza(&ack(0));
        assert!(sm.unacknowledged().is_empty());
    }
}
