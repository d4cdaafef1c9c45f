//! The search agent's work: check a GP's query against the lab's
//! enumerations, sum the weekly aggregates with prepared statements, and
//! apply disclosure control. No I/O but the lab store.

use snow_core::stats::{Bucket, Count, StatsAnswer, StatsError, StatsQuery};
use snow_lab::LabSettings;
use snow_store::{LabDb, StoreError, WeeklyFilter};

/// What the agent accepts and how much it discloses.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// The analyses and age groups the lab reports (the `[lab]` section).
    pub lab: LabSettings,
    /// Counts from 1 to `threshold - 1` are answered as `<threshold`.
    pub threshold: u32,
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings { lab: LabSettings::default(), threshold: 5 }
    }
}

/// Why a search was not answered.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A parameter outside its enumeration or shape: the GP's mistake.
    #[error(transparent)]
    Invalid(#[from] StatsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks `q` against the lab's enumerations (its shape was checked when
/// it was parsed).
pub fn validate(settings: &SearchSettings, q: &StatsQuery) -> Result<(), StatsError> {
    q.check()?;
    if !settings.lab.analyses.contains(&q.analysis) {
        return Err(StatsError {
            field: "analysis",
            reason: format!("not an analysis of this lab (known: {})", settings.lab.analyses.join(", ")),
        });
    }
    if let Some(g) = &q.age_group {
        if !settings.lab.age_groups.contains(g) {
            return Err(StatsError {
                field: "age-group",
                reason: format!("not an age group of this lab (known: {})", settings.lab.age_groups.join(", ")),
            });
        }
    }
    Ok(())
}

/// Answers `q` from the weekly aggregates: every bucket of the period,
/// zeros included, small counts suppressed.
pub fn answer(db: &LabDb, settings: &SearchSettings, q: &StatsQuery) -> Result<StatsAnswer, SearchError> {
    validate(settings, q)?;
    let (first, last) = q.period.weeks();
    let filter = WeeklyFilter {
        analysis: &q.analysis,
        area: q.area.code(),
        weeks: (first.key(), last.key()),
        age_group: q.age_group.as_deref(),
        sex: q.sex.map(|s| s.code()),
    };
    let weeks = db.weekly(&filter)?;
    let mut rows = weeks.iter().peekable();
    let mut buckets = Vec::new();
    for (label, from, to) in q.buckets() {
        let (mut tested, mut positive, mut persons) = (0i64, 0i64, 0i64);
        while let Some(w) = rows.peek() {
            let key = w.year * 100 + i32::from(w.week);
            if key > to.key() {
                break;
            }
            if key >= from.key() {
                tested += w.tested;
                positive += w.positive;
                persons += w.positive_persons;
            }
            rows.next();
        }
        let disclose = |n: i64| Count::disclose(n.max(0) as u64, settings.threshold);
        buckets.push(Bucket {
            label,
            tested: disclose(tested),
            positive: disclose(positive),
            persons: disclose(persons),
        });
    }
    Ok(StatsAnswer { query: q.clone(), threshold: settings.threshold, buckets })
}
