//! Outbreak detection over weekly series (docs/architecture.md §5, SURVEILLANCE.md):
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
