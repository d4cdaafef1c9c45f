//! Outbreak detection over weekly series (docs/architecture.md §5, docs/detection-algorithms.md):
//! the algorithms of the R package `surveillance`, reproduced exactly:
//! EARS C1–C3 and Farrington-flexible.

pub mod dist;
pub mod ears;
pub mod farrington;
pub mod glm;
pub mod normal;
pub mod series;

/// An algorithm with its parameters, as the detection agent runs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Detector {
    Ears(ears::Params),
    Farrington(farrington::Params),
}

/// What can run on a series of a given length ([`Detector::for_history`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Fitted {
    /// The configured detector.
    Configured,
    /// A detector that needs less history, and why it is used.
    Substitute(Detector, String),
    /// Nothing can judge the newest week yet: `needed` weeks are needed.
    TooShort { needed: usize },
}

/// A monitored week with an alarm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    /// 1-based index into the series.
    pub t: usize,
    pub observed: f64,
    pub upperbound: f64,
}

/// Why a detector could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Ears(#[from] ears::ParamError),
    #[error(transparent)]
    Farrington(#[from] farrington::ParamError),
}

impl Detector {
    /// The reference label (`EARS_C2`, `FF_default`, …).
    pub fn label(&self) -> String {
        match self {
            Detector::Ears(p) => p.label(),
            Detector::Farrington(p) => series::farrington_label(p).to_owned(),
        }
    }

    /// In words for a person (log lines, warnings): `Farrington
    /// (flexible, b = 5)`, `EARS C2`. [`Detector::label`] stays the name in
    /// machine output (`snow lab detect`'s CSV, an alert's `algorithm`),
    /// where it is the R reference's and the interop comparison reads it.
    pub fn describe(&self) -> String {
        match self {
            Detector::Ears(p) if p.alpha == p.method.default_alpha() => format!("EARS {}", p.method.name()),
            Detector::Ears(p) => format!("EARS {} (alpha = {})", p.method.name(), p.alpha),
            Detector::Farrington(p) => format!("Farrington (flexible, b = {})", p.b),
        }
    }

    /// The fewest weeks of history with which [`Detector::for_history`]
    /// finds something to run (this detector or a substitute): until then
    /// no week of the series is judged.
    pub fn history_to_start(&self) -> usize {
        let c2 = ears::Params::new(ears::Method::C2);
        match self {
            Detector::Ears(p) => p.first_week(),
            Detector::Farrington(p) => {
                farrington::Params { b: 1.min(p.b), ..*p }.first_week().min(c2.first_week()).min(self.history_needed())
            }
        }
    }

    /// Weeks of a series up to and including the first week this detector
    /// can judge (Farrington: `b` years of reference windows; EARS: the
    /// baseline and lag).
    pub fn history_needed(&self) -> usize {
        match self {
            Detector::Ears(p) => p.first_week(),
            Detector::Farrington(p) => p.first_week(),
        }
    }

    /// What to run on a series of `weeks` weeks so that its newest week is
    /// judged: this detector if the history suffices; else Farrington with
    /// as many past years as there are (at least one), else EARS C2 with
    /// its defaults; else nothing. A substitute comes with the sentence
    /// that says so, for the log.
    pub fn for_history(&self, weeks: usize) -> Fitted {
        if weeks >= self.history_needed() {
            return Fitted::Configured;
        }
        let needed = self.history_needed();
        if let Detector::Farrington(p) = self {
            let fits = (1..p.b).rev().map(|b| farrington::Params { b, ..*p }).find(|q| weeks >= q.first_week());
            if let Some(q) = fits {
                let why = format!(
                    "{} needs {needed} weeks of history and the series has {weeks}: using b = {} until enough years exist",
                    self.describe(),
                    q.b
                );
                return Fitted::Substitute(Detector::Farrington(q), why);
            }
        }
        let c2 = ears::Params::new(ears::Method::C2);
        if weeks >= c2.first_week() && !matches!(self, Detector::Ears(_)) {
            let why = format!(
                "{} needs {needed} weeks of history and the series has {weeks}: using EARS C2 until enough years exist",
                self.describe()
            );
            return Fitted::Substitute(Detector::Ears(c2), why);
        }
        Fitted::TooShort { needed }
    }

    /// The alarms among the last `recent` weeks of `y` (whose weeks start
    /// on `mondays`): weeks whose alarm is TRUE (NA is no alarm) and whose
    /// upper bound is a number.
    pub fn alarms(&self, y: &[f64], mondays: &[time::Date], recent: usize) -> Result<Vec<Signal>, DetectError> {
        let from = (y.len() + 1).saturating_sub(recent).max(1);
        let rows: Vec<(usize, f64, Option<f64>, Option<bool>)> = match self {
            Detector::Ears(p) => {
                ears::ears(y, p)?.into_iter().map(|o| (o.t, o.observed, o.upperbound, o.alarm)).collect()
            }
            Detector::Farrington(p) => farrington::farrington_from(y, Some(mondays), p, from)?
                .into_iter()
                .map(|o| (o.t, o.observed, o.upperbound, o.alarm))
                .collect(),
        };
        Ok(rows
            .into_iter()
            .filter(|&(t, _, _, alarm)| t >= from && alarm == Some(true))
            .filter_map(|(t, observed, ub, _)| ub.map(|upperbound| Signal { t, observed, upperbound }))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_history_gets_a_detector_that_fits_and_says_so() {
        let ff = Detector::Farrington(farrington::Params::default());
        assert_eq!(ff.history_needed(), 52 * 5 + 3 + 1);
        assert_eq!(ff.for_history(300), Fitted::Configured);
        match ff.for_history(2 * 52) {
            Fitted::Substitute(Detector::Farrington(p), why) => {
                assert_eq!(p.b, 1, "two years hold one past year and its window, not two");
                assert!(why.contains("264 weeks") && why.contains("has 104"), "{why}");
                // Words for people; the R label stays in machine output.
                assert!(why.starts_with("Farrington (flexible, b = 5) needs") && !why.contains("FF_"), "{why}");
                assert_eq!(ff.label(), "FF_default");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(ff.for_history(20), Fitted::Substitute(Detector::Ears(_), _)));
        assert_eq!(ff.for_history(5), Fitted::TooShort { needed: 264 });
        let c3 = Detector::Ears(ears::Params::new(ears::Method::C3));
        assert_eq!(c3.for_history(11), Fitted::TooShort { needed: 12 });
        assert_eq!(c3.for_history(12), Fitted::Configured);
    }

    #[test]
    fn alarms_only_in_the_recent_weeks() {
        let mut y = vec![2.0; 30];
        y[10] = 40.0;
        y[29] = 40.0;
        let d = Detector::Ears(ears::Params::new(ears::Method::C1));
        let start = time::Date::from_calendar_date(2024, time::Month::January, 1).unwrap();
        let mondays: Vec<time::Date> = (0..70).map(|i| start + time::Duration::weeks(i)).collect();
        let all = d.alarms(&y, &mondays[..30], 30).unwrap();
        assert!(all.iter().any(|s| s.t == 11) && all.iter().any(|s| s.t == 30));
        let recent = d.alarms(&y, &mondays[..30], 2).unwrap();
        assert_eq!(recent.iter().map(|s| s.t).collect::<Vec<_>>(), [30]);
        assert_eq!(d.label(), "EARS_C1");
        let f = Detector::Farrington(farrington::Params { b: 1, ..Default::default() });
        let mut y = vec![3.0; 70];
        y[69] = 30.0;
        assert_eq!(f.alarms(&y, &mondays, 1).unwrap().len(), 1);
        let dated = Detector::Farrington(farrington::Params { b: 1, epoch_as_date: true, ..Default::default() });
        assert_eq!(dated.alarms(&y, &mondays, 1).unwrap().len(), 1);
        assert!(dated.alarms(&y, &mondays[..3], 1).is_err(), "one date per week");
    }
}
