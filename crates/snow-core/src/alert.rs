//! Outbreak alerts (`urn:snow:alert:1`): a detection agent's signal for one
//! analysis, area and week, a GP's confirmation of it, or a GP's own alert
//! (a cluster seen in the practice). Alerts travel as items on pubsub nodes
//! per analysis and area (XEP-0060), end-to-end encrypted to the node's
//! subscribers; the wire form is in `snow_client::alert`.
//!
//! Who publishes what (docs/architecture.md §3, §6): only a lab's
//! detection agent publishes signals; a GP publishes confirmations and
//! its own alerts. The kind travels twice: in clear on the `<alert/>`
//! element ([`KIND_ATTR`]), where the pubsub service checks it against
//! the publisher, and inside the encrypted detail, where the reader checks
//! it against the clear one, the author against the item's publisher and
//! the analysis and area against the node. The detail is signed by its
//! author before it is encrypted (issue 20, `snow_client::signed`), and the
//! reader shows it only once the signature and signer hold.

use std::fmt;
use std::str::FromStr;

use crate::stats::{check_analysis, Area, Count, IsoWeek, StatsError};

/// The namespace of the alert payload.
pub const NS_ALERT: &str = "urn:snow:alert:1";

/// The attribute of the `<alert/>` element, outside its encrypted content,
/// that names the alert's kind (`signal`, `confirmation`, `gp`).
pub const KIND_ATTR: &str = "kind";

/// Longest free text (a GP's alert or a confirmation's comment), in bytes.
pub const MAX_TEXT: usize = 2000;

/// What an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// A detection algorithm's alarm on the lab's weekly series.
    Signal,
    /// A GP confirms an alert (`confirms` names it).
    Confirmation,
    /// A GP's own outbreak alert.
    Gp,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Signal => "signal",
            AlertKind::Confirmation => "confirmation",
            AlertKind::Gp => "gp",
        }
    }

    /// The prefix of the item ids the pubsub service assigns to a GP's
    /// alerts (`gp-…`) and confirmations (`c-…`); a signal's id is the
    /// agent's ([`Alert::signal_id`]), which starts with an upper-case
    /// analysis code, so the two never meet.
    pub fn id_prefix(self) -> &'static str {
        match self {
            AlertKind::Signal => "s",
            AlertKind::Confirmation => "c",
            AlertKind::Gp => "gp",
        }
    }
}

impl FromStr for AlertKind {
    type Err = StatsError;
    fn from_str(s: &str) -> Result<Self, StatsError> {
        match s {
            "signal" => Ok(AlertKind::Signal),
            "confirmation" => Ok(AlertKind::Confirmation),
            "gp" => Ok(AlertKind::Gp),
            _ => Err(StatsError { field: "kind", reason: "must be signal, confirmation or gp".into() }),
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The pubsub item id: `INFA-5401-2026W47` for a signal (one per
    /// series and week, chosen by the agent); for GPs' alerts and
    /// confirmations the id the service assigned (`gp-…`, `c-…`), empty
    /// before the first publication.
    pub id: String,
    pub kind: AlertKind,
    pub analysis: String,
    pub area: Area,
    pub week: IsoWeek,
    /// Signals: the week's positive tests, under disclosure control.
    pub observed: Option<Count>,
    /// Signals: the algorithm's upper bound.
    pub threshold: Option<f64>,
    /// Signals: the reference label (`EARS_C2`, `FF_default`, …).
    pub algorithm: Option<String>,
    /// Signals: the search agent that holds the series (the link back:
    /// `snow search --agent JID --analysis … --area …`).
    pub series: Option<String>,
    /// Who issued it (bare JID).
    pub author: String,
    /// Unix seconds.
    pub issued: i64,
    /// Confirmations: the alert confirmed.
    pub confirms: Option<String>,
    /// A GP's text or comment.
    pub text: Option<String>,
}

impl Alert {
    /// The pubsub node of an analysis and area: `alerts/INFA/5401`.
    pub fn node(analysis: &str, area: &Area) -> String {
        format!("alerts/{analysis}/{}", area.code())
    }

    /// The id of the signal for a series and week.
    pub fn signal_id(analysis: &str, area: &Area, week: IsoWeek) -> String {
        format!("{analysis}-{}-{}W{:02}", area.code(), week.year(), week.week())
    }

    /// The analysis and area of a node name `alerts/ANALYSIS/AREA` (the
    /// analysis a code, the area 2 digits, 4 digits or `all`, exactly as
    /// [`Alert::node`] writes them), or `None`.
    pub fn parse_node(node: &str) -> Option<(&str, Area)> {
        let (analysis, code) = node.strip_prefix("alerts/")?.split_once('/')?;
        check_analysis(analysis).ok()?;
        let digits = |len: usize| code.len() == len && code.bytes().all(|b| b.is_ascii_digit());
        let area = match code {
            "all" => Area::All,
            _ if digits(4) => Area::Municipality(code.to_owned()),
            _ if digits(2) => Area::County(code.to_owned()),
            _ => return None,
        };
        Some((analysis, area))
    }

    /// True if `id` is the signal id ([`Alert::signal_id`]) of some week
    /// for this analysis and area.
    pub fn is_signal_id(id: &str, analysis: &str, area: &Area) -> bool {
        let Some(week) = id.strip_prefix(analysis).and_then(|r| r.strip_prefix('-')) else { return false };
        let Some(week) = week.strip_prefix(area.code()).and_then(|r| r.strip_prefix('-')) else { return false };
        let b = week.as_bytes();
        let number = |s: &[u8]| -> Option<u32> { std::str::from_utf8(s).ok()?.parse().ok() };
        b.len() == 7
            && b[4] == b'W'
            && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
            && matches!((number(&b[..4]), number(&b[5..])),
                (Some(y), Some(w)) if IsoWeek::new(y as i32, w as u8).is_some())
    }

    /// Checks what a peer may have sent: known forms, bounded text.
    pub fn validate(&self) -> Result<(), StatsError> {
        check_analysis(&self.analysis)?;
        let bad = |field: &'static str, reason: &str| Err(StatsError { field, reason: reason.into() });
        if !valid_id(&self.id) {
            return bad("id", "must be 1 to 64 of A-Z a-z 0-9 - _");
        }
        if self.confirms.as_deref().is_some_and(|c| !valid_id(c)) {
            return bad("confirms", "must be an alert id");
        }
        if self.text.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
            return bad("text", "is too long");
        }
        if self.threshold.is_some_and(|t| !t.is_finite()) {
            return bad("threshold", "must be a number");
        }
        match self.kind {
            AlertKind::Confirmation if self.confirms.is_none() => bad("confirms", "a confirmation names its alert"),
            _ => Ok(()),
        }
    }
}

/// An alert id: 1 to 64 of `A-Za-z0-9-_`.
pub fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_ids() {
        let area = Area::Municipality("5401".into());
        let week = IsoWeek::new(2026, 7).unwrap();
        assert_eq!(Alert::node("INFA", &area), "alerts/INFA/5401");
        assert_eq!(Alert::signal_id("INFA", &area, week), "INFA-5401-2026W07");
        assert!(valid_id("INFA-5401-2026W07") && !valid_id("a b") && !valid_id(""));
        assert!(Alert::is_signal_id("INFA-5401-2026W07", "INFA", &area));
        for bad in ["INFA-5402-2026W07", "INFB-5401-2026W07", "INFA-5401-2026W54", "INFA-5401-2026W7", "gp-1234"] {
            assert!(!Alert::is_signal_id(bad, "INFA", &area), "{bad}");
        }
        assert!(Alert::is_signal_id("RSV-all-2025W01", "RSV", &Area::All));
    }

    #[test]
    fn node_names() {
        assert_eq!(Alert::parse_node("alerts/INFA/5401"), Some(("INFA", Area::Municipality("5401".into()))));
        assert_eq!(Alert::parse_node("alerts/SARS2/54"), Some(("SARS2", Area::County("54".into()))));
        assert_eq!(Alert::parse_node("alerts/RSV/all"), Some(("RSV", Area::All)));
        for bad in [
            "alerts/",
            "alerts/INFA/540",
            "alerts/infa/5401",
            "alerts/INFA/5401/x",
            "other/INFA/5401",
            "alerts/INFA 5401",
            "alerts/INFA/ALL",
            "alerts/INFA/county:54",
        ] {
            assert_eq!(Alert::parse_node(bad), None, "{bad}");
        }
        for (analysis, area) in [("INFA", Area::County("54".into())), ("MPV", Area::All)] {
            let node = Alert::node(analysis, &area);
            assert_eq!(Alert::parse_node(&node), Some((analysis, area)));
        }
    }
}
