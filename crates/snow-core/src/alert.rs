//! Outbreak alerts (`urn:snow:alert:1`): a detection agent's signal for one
//! analysis, area and week, a GP's confirmation of it, or a GP's own alert
//! (a cluster seen in the practice). Alerts travel as items on pubsub nodes
//! per analysis and area (XEP-0060), end-to-end encrypted to the node's
//! subscribers; the wire form is in `snow_client::alert`.

use std::fmt;
use std::str::FromStr;

use crate::stats::{check_analysis, Area, Count, IsoWeek, StatsError};

/// The namespace of the alert payload.
pub const NS_ALERT: &str = "urn:snow:alert:1";

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
    /// series and week), random for GPs' alerts and confirmations.
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
    }
}
