//! XEP-0198 stream management on client sessions: counting the stanzas of
//! each direction, acknowledgements (`<r/>`, `<a h/>`), and the sessions a
//! client may resume after its connection broke. This module is the
//! protocol's state; the reading and writing stay in `c2s.rs`.
//!
//! Why: a stanza written to a socket may never reach the client (the
//! connection breaks while it sits in a buffer on the way). Under stream
//! management the session keeps every stanza it wrote until the client
//! says it has it: a stored offline message leaves the database only
//! then, a client that comes back within `[server] sm_resume_secs` gets
//! what it had not acknowledged again and nothing twice (`h` counts what
//! it had), and when that window closes the messages go back to routing
//! (offline storage), so none is lost.
//!
//! A session's state is a type: [`Sm::Off`] until the client enables it,
//! then [`Sm::On`] with a [`Managed`], which holds the [`Resumption`] only
//! if the client asked to resume and the server allows it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use snow_xml::{Element, NS_SM, NS_STANZAS};
use tokio::sync::oneshot;

/// The stream feature, offered with resource binding (XEP-0198 §2): after
/// authentication a client either binds and then enables, or resumes.
pub(crate) fn feature() -> String {
    format!("<sm xmlns='{NS_SM}'/>")
}

/// `<failed/>` with a stanza error condition (XEP-0198 §3, §5).
pub(crate) fn failed(condition: &str) -> String {
    format!("<failed xmlns='{NS_SM}'><{condition} xmlns='{NS_STANZAS}'/></failed>")
}

/// An ack request.
pub(crate) fn request() -> String {
    format!("<r xmlns='{NS_SM}'/>")
}

/// `[server] sm_resume_secs` and `sm_max_unacked`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmSettings {
    /// How long a broken session may be resumed; zero: never.
    pub resume: Duration,
    /// Most stanzas written and not acknowledged (at least 1).
    pub max_unacked: usize,
}

/// A stanza written to a stream-managed session and not acknowledged.
#[derive(Debug)]
pub(crate) struct Unacked {
    pub xml: String,
    /// Its row in offline storage: deleted once acknowledged, and left
    /// there (delivered at the next login) if it never is.
    pub offline_id: Option<i64>,
    /// When routing gave it to the session.
    pub queued: Instant,
}

/// A client connection coming back to its session, with the `h` of its
/// `<resume/>`: how many of our stanzas it had.
pub(crate) struct Handover<T> {
    pub link: T,
    pub h: u32,
}

/// A session's stream management.
pub(crate) enum Sm<T> {
    /// Not enabled: nothing is counted, and a stored message is deleted
    /// once it is written to the socket.
    Off,
    On(Box<Managed<T>>),
}

/// Stream management once enabled.
pub(crate) struct Managed<T> {
    resumption: Option<Resumption<T>>,
    /// Stanzas handled from the client since it enabled, mod 2^32: the
    /// `h` we acknowledge.
    received: u32,
    /// Stanzas written since we enabled, mod 2^32: the number of the last.
    sent: u32,
    /// Written and not acknowledged, oldest first; the last is number
    /// `sent`.
    unacked: VecDeque<Unacked>,
    /// An `<r/>` is out and no `<a/>` has come since.
    asked: bool,
    max_unacked: usize,
}

/// A session the client may resume: its id in the table, and the end of
/// the channel a resuming connection arrives on.
pub(crate) struct Resumption<T> {
    id: String,
    window: Duration,
    bare: String,
    full: String,
    table: Arc<Resumable<T>>,
    handover: oneshot::Receiver<Handover<T>>,
}

impl<T> Drop for Resumption<T> {
    /// A session that ends can no longer be resumed.
    fn drop(&mut self) {
        self.table.remove(&self.id);
    }
}

/// Why an `<a/>` or `<resume/>` cannot be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AckError {
    /// XEP-0198 §4: the peer acknowledged more than was sent.
    #[error("the client acknowledged {h} stanzas, {sent} were sent")]
    TooHigh { h: u32, sent: u32 },
    #[error("'h' is not a number of 0 to 4294967295")]
    BadH,
}

impl AckError {
    /// The stream error that ends the session (XEP-0198 §4: undefined
    /// condition with `handled-count-too-high`).
    pub fn stream_error(&self) -> String {
        let detail = match self {
            AckError::TooHigh { h, sent } => {
                format!("<handled-count-too-high xmlns='{NS_SM}' h='{h}' send-count='{sent}'/>")
            }
            AckError::BadH => String::new(),
        };
        let mut xml = format!(
            "<stream:error><undefined-condition xmlns='{}'/>{detail}<text xmlns='{}'>",
            snow_xml::NS_STREAM_ERRORS,
            snow_xml::NS_STREAM_ERRORS
        );
        snow_xml::escape::push_escaped(&mut xml, &self.to_string());
        xml.push_str("</text></stream:error></stream:stream>");
        xml
    }
}

/// The `h` attribute of an `<a/>` or `<resume/>`.
pub(crate) fn h_of(el: &Element) -> Result<u32, AckError> {
    el.attr("h").and_then(|h| h.trim().parse().ok()).ok_or(AckError::BadH)
}

impl<T> Sm<T> {
    pub fn is_on(&self) -> bool {
        matches!(self, Sm::On(_))
    }

    /// Whether a broken connection leaves the session waiting for its
    /// client.
    pub fn resumable(&self) -> bool {
        matches!(self, Sm::On(m) if m.resumption.is_some())
    }

    /// How long the session waits for its client (zero when it cannot be
    /// resumed).
    pub fn window(&self) -> Duration {
        match self {
            Sm::On(m) => m.resumption.as_ref().map_or(Duration::ZERO, |r| r.window),
            Sm::Off => Duration::ZERO,
        }
    }

    /// Whether another stanza may be written now: always without stream
    /// management; under it, while fewer than `sm_max_unacked` wait for
    /// their ack.
    pub fn has_room(&self) -> bool {
        match self {
            Sm::On(m) => m.unacked.len() < m.max_unacked,
            Sm::Off => true,
        }
    }

    /// A stanza from the client was handled.
    pub fn handled(&mut self) {
        if let Sm::On(m) = self {
            m.received = m.received.wrapping_add(1);
        }
    }

    /// Enables stream management (the client's `<enable/>`); returns the
    /// answer to write. Resumption is granted when the client asks for it
    /// and `sm_resume_secs` is not zero, for the shorter of the client's
    /// `max` and ours.
    pub fn enable(
        &mut self,
        enable: &Element,
        settings: SmSettings,
        table: &Arc<Resumable<T>>,
        bare: &str,
        full: &str,
    ) -> String {
        if self.is_on() {
            return failed("unexpected-request");
        }
        let wanted = matches!(enable.attr("resume"), Some("true" | "1"));
        let mut window = settings.resume;
        if let Some(max) = enable.attr("max").and_then(|m| m.trim().parse::<u64>().ok()).filter(|m| *m > 0) {
            window = window.min(Duration::from_secs(max));
        }
        let resumption = match (wanted && !window.is_zero(), snow_crypto::one_time_password::random_hex(16)) {
            (true, Ok(id)) => {
                let handover = table.insert(&id, bare, full);
                Some(Resumption {
                    id,
                    window,
                    bare: bare.to_owned(),
                    full: full.to_owned(),
                    table: Arc::clone(table),
                    handover,
                })
            }
            (true, Err(e)) => {
                tracing::error!(error = %e, "no random resumption id: stream management without resumption");
                None
            }
            (false, _) => None,
        };
        let answer = match &resumption {
            Some(r) => {
                format!("<enabled xmlns='{NS_SM}' id='{}' resume='true' max='{}'/>", r.id, r.window.as_secs())
            }
            None => format!("<enabled xmlns='{NS_SM}'/>"),
        };
        *self = Sm::On(Box::new(Managed {
            resumption,
            received: 0,
            sent: 0,
            unacked: VecDeque::new(),
            asked: false,
            max_unacked: settings.max_unacked.max(1),
        }));
        answer
    }

    /// Our `<a/>` for the client's `<r/>` (None: not enabled).
    pub fn ack(&self) -> Option<String> {
        match self {
            Sm::On(m) => Some(format!("<a xmlns='{NS_SM}' h='{}'/>", m.received)),
            Sm::Off => None,
        }
    }

    /// A stanza was written (or was being written when the connection
    /// failed). Under stream management it is kept until acknowledged and
    /// `None` comes back; otherwise the stanza's offline row, for the
    /// caller to delete once the socket is flushed.
    pub fn wrote(&mut self, xml: String, offline_id: Option<i64>, queued: Instant) -> Option<i64> {
        match self {
            Sm::On(m) => {
                m.sent = m.sent.wrapping_add(1);
                m.unacked.push_back(Unacked { xml, offline_id, queued });
                None
            }
            Sm::Off => offline_id,
        }
    }

    /// An `<r/>` to write after what was just written, unless one is out
    /// already or nothing waits for an ack.
    pub fn ask(&mut self) -> Option<String> {
        match self {
            Sm::On(m) if !m.asked && !m.unacked.is_empty() => {
                m.asked = true;
                Some(request())
            }
            _ => None,
        }
    }

    /// The client has the first `h` stanzas we sent (an `<a/>`, or the
    /// `h` of its `<resume/>`): they are forgotten; returns the offline
    /// rows among them, to delete. Without stream management nothing is
    /// kept and nothing comes back.
    pub fn acknowledge(&mut self, h: u32) -> Result<Vec<i64>, AckError> {
        let Sm::On(m) = self else { return Ok(Vec::new()) };
        let first = m.sent.wrapping_sub(m.unacked.len() as u32);
        let acked = h.wrapping_sub(first) as usize;
        if acked > m.unacked.len() {
            return Err(AckError::TooHigh { h, sent: m.sent });
        }
        m.asked = false;
        Ok(m.unacked.drain(..acked).filter_map(|u| u.offline_id).collect())
    }

    /// After a resumption: `<resumed/>` (our `h`, XEP-0198 §5), then every
    /// stanza the client has not acknowledged, again, in order. The `<r/>`
    /// that was out went with the old connection.
    pub fn resumed(&mut self) -> Vec<String> {
        let Sm::On(m) = self else { return Vec::new() };
        m.asked = false;
        let Some(r) = &m.resumption else { return Vec::new() };
        let mut out = vec![format!("<resumed xmlns='{NS_SM}' h='{}' previd='{}'/>", m.received, r.id)];
        out.extend(m.unacked.iter().map(|u| u.xml.clone()));
        out
    }

    /// The next connection that resumes this session; never, if it
    /// cannot be resumed. A claim whose connection went away before it
    /// handed itself over leaves the session resumable again.
    pub async fn next_handover(&mut self) -> Box<Handover<T>> {
        let Sm::On(m) = self else { return std::future::pending().await };
        let Some(r) = &mut m.resumption else { return std::future::pending().await };
        loop {
            match (&mut r.handover).await {
                Ok(h) => {
                    // Resumable again, under the same id (XEP-0198 §5).
                    r.handover = r.table.insert(&r.id, &r.bare, &r.full);
                    return Box::new(h);
                }
                Err(_) => r.handover = r.table.insert(&r.id, &r.bare, &r.full),
            }
        }
    }

    /// The stanzas written and never acknowledged, oldest first, when the
    /// session ends for good; stream management is off afterwards (and
    /// the session can no longer be resumed).
    pub fn take_unacked(&mut self) -> VecDeque<Unacked> {
        match std::mem::replace(self, Sm::Off) {
            Sm::On(mut m) => std::mem::take(&mut m.unacked),
            Sm::Off => VecDeque::new(),
        }
    }
}

/// A resuming connection's claim on a session: the session is out of the
/// table, and `hand_over` gives it the connection.
pub(crate) struct Claim<T> {
    /// The session's full JID.
    pub full: String,
    h: u32,
    tx: oneshot::Sender<Handover<T>>,
}

impl<T> std::fmt::Debug for Claim<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim").field("full", &self.full).field("h", &self.h).finish_non_exhaustive()
    }
}

impl<T> Claim<T> {
    /// Gives the connection to the session; back if the session ended in
    /// the meantime.
    pub fn hand_over(self, link: T) -> Result<(), T> {
        self.tx.send(Handover { link, h: self.h }).map_err(|h| h.link)
    }
}

/// The sessions that may be resumed, by resumption id.
pub(crate) struct Resumable<T> {
    waiting: Mutex<HashMap<String, Waiting<T>>>,
}

struct Waiting<T> {
    bare: String,
    full: String,
    tx: oneshot::Sender<Handover<T>>,
}

impl<T> Default for Resumable<T> {
    fn default() -> Self {
        Resumable { waiting: Mutex::new(HashMap::new()) }
    }
}

impl<T> Resumable<T> {
    fn insert(&self, id: &str, bare: &str, full: &str) -> oneshot::Receiver<Handover<T>> {
        let (tx, rx) = oneshot::channel();
        let w = Waiting { bare: bare.to_owned(), full: full.to_owned(), tx };
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned(), w);
        rx
    }

    fn remove(&self, id: &str) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// A `<resume/>` from a connection authenticated as `bare`: the
    /// session it names, if there is one and it is `bare`'s, else the
    /// `<failed/>` to answer (the client may bind instead). The same
    /// answer whether the id is unknown or another account's: an id says
    /// nothing about who holds it.
    pub fn claim(&self, resume: &Element, bare: &str) -> Result<Claim<T>, String> {
        let h = h_of(resume).map_err(|_| failed("bad-request"))?;
        let previd = resume.attr("previd").unwrap_or_default();
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        match waiting.get(previd) {
            Some(w) if w.bare == bare => {}
            _ => return Err(failed("item-not-found")),
        }
        let w = waiting.remove(previd).ok_or_else(|| failed("item-not-found"))?;
        Ok(Claim { full: w.full, h, tx: w.tx })
    }

    /// How many sessions may be resumed now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        snow_xml::parse_document(xml.as_bytes(), snow_xml::Limits::default()).unwrap()
    }

    const SETTINGS: SmSettings = SmSettings { resume: Duration::from_secs(300), max_unacked: 3 };

    fn enabled(table: &Arc<Resumable<&'static str>>) -> (Sm<&'static str>, String) {
        let mut sm = Sm::Off;
        let answer = sm.enable(&el("<enable xmlns='urn:xmpp:sm:3' resume='true'/>"), SETTINGS, table, "a@x", "a@x/r");
        (sm, answer)
    }

    #[test]
    fn acks_count_modulo_2_32_and_return_offline_rows() {
        let table = Arc::default();
        let (mut sm, answer) = enabled(&table);
        assert!(answer.contains("resume='true'") && answer.contains("max='300'"), "{answer}");
        assert_eq!(sm.ask(), None, "nothing to acknowledge");
        assert_eq!(sm.wrote("<message id='1'/>".into(), Some(11), Instant::now()), None);
        sm.wrote("<message id='2'/>".into(), None, Instant::now());
        assert!(sm.has_room());
        sm.wrote("<message id='3'/>".into(), Some(13), Instant::now());
        assert!(!sm.has_room(), "sm_max_unacked reached: nothing more is written");
        assert_eq!(sm.ask(), Some(request()));
        assert_eq!(sm.ask(), None, "one <r/> at a time");
        assert_eq!(sm.acknowledge(2).unwrap(), vec![11]);
        assert!(matches!(sm.acknowledge(4), Err(AckError::TooHigh { h: 4, sent: 3 })));
        assert_eq!(sm.acknowledge(2).unwrap(), Vec::<i64>::new(), "the same ack again changes nothing");
        let resumed = sm.resumed();
        assert_eq!(resumed.len(), 2);
        assert!(resumed[0].starts_with("<resumed ") && resumed[1] == "<message id='3'/>", "{resumed:?}");
        assert_eq!(sm.acknowledge(3).unwrap(), vec![13]);
        // Around the wrap of the counter.
        if let Sm::On(m) = &mut sm {
            m.sent = u32::MAX;
        }
        sm.wrote("<message id='4'/>".into(), Some(14), Instant::now());
        assert_eq!(sm.acknowledge(0).unwrap(), vec![14]);
        sm.handled();
        sm.handled();
        assert_eq!(sm.ack().unwrap(), "<a xmlns='urn:xmpp:sm:3' h='2'/>");
    }

    #[test]
    fn off_keeps_nothing_and_enable_twice_fails() {
        let table = Arc::default();
        let mut sm: Sm<&str> = Sm::Off;
        assert_eq!(sm.wrote("<message/>".into(), Some(7), Instant::now()), Some(7), "deleted after the flush");
        assert!(sm.has_room() && sm.ack().is_none() && sm.acknowledge(5).unwrap().is_empty());
        let (mut sm, _) = enabled(&table);
        let again = sm.enable(&el("<enable xmlns='urn:xmpp:sm:3'/>"), SETTINGS, &table, "a@x", "a@x/r");
        assert!(again.contains("unexpected-request"), "{again}");
    }

    #[tokio::test]
    async fn only_the_same_account_resumes_and_the_session_waits_again() {
        let table: Arc<Resumable<&'static str>> = Arc::default();
        let (mut sm, answer) = enabled(&table);
        let id = answer.split("id='").nth(1).unwrap().split('\'').next().unwrap().to_owned();
        assert_eq!(table.len(), 1);
        let resume = |previd: &str, h: &str| el(&format!("<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='{h}'/>"));
        assert!(table.claim(&resume(&id, "0"), "b@x").unwrap_err().contains("item-not-found"));
        assert!(table.claim(&resume("nope", "0"), "a@x").unwrap_err().contains("item-not-found"));
        assert!(table.claim(&resume(&id, "-1"), "a@x").unwrap_err().contains("bad-request"));
        // A claim whose connection went away: resumable again.
        drop(table.claim(&resume(&id, "0"), "a@x").unwrap());
        let claim = table.claim(&resume(&id, "0"), "a@x");
        assert!(claim.is_err(), "claimed already");
        let waiting = tokio::time::timeout(Duration::from_millis(50), sm.next_handover()).await;
        assert!(waiting.is_err(), "no connection came");
        let claim = table.claim(&resume(&id, "5"), "a@x").unwrap();
        assert_eq!(claim.full, "a@x/r");
        claim.hand_over("new link").unwrap();
        let h = sm.next_handover().await;
        assert_eq!((h.link, h.h), ("new link", 5));
        assert_eq!(table.len(), 1, "resumable again under the same id");
        sm.take_unacked();
        assert_eq!(table.len(), 0, "an ended session cannot be resumed");
    }

    #[test]
    fn no_resumption_when_not_asked_or_not_allowed() {
        let table: Arc<Resumable<()>> = Arc::default();
        let mut sm = Sm::Off;
        let answer = sm.enable(&el("<enable xmlns='urn:xmpp:sm:3'/>"), SETTINGS, &table, "a@x", "a@x/r");
        assert_eq!(answer, "<enabled xmlns='urn:xmpp:sm:3'/>");
        assert!(sm.is_on() && !sm.resumable() && table.len() == 0);
        let off = SmSettings { resume: Duration::ZERO, ..SETTINGS };
        let mut sm = Sm::Off;
        sm.enable(&el("<enable xmlns='urn:xmpp:sm:3' resume='true'/>"), off, &table, "a@x", "a@x/r");
        assert!(!sm.resumable());
        let mut sm = Sm::Off;
        let answer =
            sm.enable(&el("<enable xmlns='urn:xmpp:sm:3' resume='1' max='60'/>"), SETTINGS, &table, "a@x", "a@x/r");
        assert!(answer.contains("max='60'") && sm.window() == Duration::from_secs(60), "{answer}");
    }
}
