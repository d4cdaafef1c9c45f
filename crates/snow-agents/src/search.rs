//! The search agent's work: check a GP's query against the lab's
//! enumerations and the areas it has data for, sum the weekly aggregates
//! with prepared statements, mark what lies outside its data, and apply
//! disclosure control. No I/O but the lab store.
//!
//! Two things the lab knows about its data as a whole, in any analysis
//! (`LabDb::knows_area`, `LabDb::coverage`; docs/architecture.md §5):
//!
//! - which municipalities and counties it has ever had a row for. An
//!   area it never had one for is refused by name
//!   ([`StatsError::no_data_for`]), so a mistyped municipality does not
//!   look like a quiet one. "Known" is overall, not per analysis: the
//!   refusal then says only that the lab has no data at all for the area,
//!   and an analysis never tested in a known area answers zeros;
//! - the weeks its data covers, from the earliest to the latest week of
//!   a sample imported. A bucket entirely outside them is "no data"
//!   (`Bucket::counts` is `None`); inside them, a bucket without rows is a
//!   real zero.
//!
//! The same two, with the lab's enumerations, are its catalogue
//! ([`catalogue`]): the choices a GP's search form offers.

use std::collections::BTreeSet;
use std::sync::Arc;

use snow_client::stats::MAX_CATALOGUE_ENTRIES;
use snow_core::stats::{
    analysis_name, AnalysisChoice, Area, AreaChoice, Bucket, Catalogue, Count, Counts, Granularity, IsoWeek, Sex,
    StatsAnswer, StatsError, StatsQuery,
};
use snow_lab::ptable::Ptable;
use snow_lab::LabSettings;
use snow_store::{CellKeys, LabDb, StoreError, WeeklyFilter};

/// What the agent accepts and how much it discloses.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// The analyses and age groups the lab reports (the `[lab]` section).
    pub lab: LabSettings,
    /// Counts from 1 to `threshold - 1` are answered as `<threshold`.
    pub threshold: u32,
    /// How many searches one GP may have answered.
    pub budget: Budget,
    /// The cell key method's perturbation table (`None`: exact counts,
    /// only small ones suppressed — for tests of the sums themselves).
    pub perturbation: Option<Arc<Ptable>>,
}

impl Default for SearchSettings {
    /// The `[lab]` defaults: threshold 5, perturbation on with the
    /// default table (counts 1–4 never published, noise at most ±5).
    fn default() -> Self {
        SearchSettings {
            lab: LabSettings::default(),
            threshold: 5,
            budget: Budget::default(),
            perturbation: default_ptable(),
        }
    }
}

/// The default perturbation table, made once.
pub fn default_ptable() -> Option<Arc<Ptable>> {
    static TABLE: std::sync::OnceLock<Option<Arc<Ptable>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| Ptable::new(&snow_lab::ptable::PtableParams::default()).ok().map(Arc::new)).clone()
}

/// Searches one requester may have answered per hour and per day
/// (`[lab] searches_per_hour`, `searches_per_day`): a GP's work needs
/// tens; a script differencing its way to small counts needs thousands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub per_hour: u32,
    pub per_day: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { per_hour: 100, per_day: 500 }
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
/// zeros included, "no data" outside the weeks the lab has data for, each
/// count perturbed by the cell key method (the bucket's own cell: a month
/// or a total is perturbed as itself, not as the sum of perturbed weeks),
/// then small counts suppressed. An area the lab never had a row for is
/// refused.
pub fn answer(db: &LabDb, settings: &SearchSettings, q: &StatsQuery) -> Result<StatsAnswer, SearchError> {
    validate(settings, q)?;
    if q.area != Area::All && !db.knows_area(q.area.code())? {
        return Err(StatsError::no_data_for(&q.area).into());
    }
    let coverage = db.coverage()?;
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
        let mut keys = CellKeys::default();
        while let Some(w) = rows.peek() {
            let key = w.year * 100 + i32::from(w.week);
            if key > to.key() {
                break;
            }
            if key >= from.key() {
                tested += w.tested;
                positive += w.positive;
                persons += w.positive_persons;
                keys = keys + w.keys;
            }
            rows.next();
        }
        let inside = coverage.is_some_and(|(a, b)| from.key() <= b && to.key() >= a);
        let disclose = |n: i64, key: u32| {
            let n = n.max(0) as u64;
            let published = settings.perturbation.as_ref().map_or(n, |t| t.publish(n, key));
            Count::disclose(published, settings.threshold)
        };
        let counts = inside.then(|| Counts {
            tested: disclose(tested, keys.tested),
            positive: disclose(positive, keys.positive),
            persons: disclose(persons, keys.persons),
        });
        buckets.push(Bucket { label, counts });
    }
    let max_noise = settings.perturbation.as_ref().map_or(0, |t| t.params().max_noise);
    Ok(StatsAnswer { query: q.clone(), threshold: settings.threshold, max_noise, buckets })
}

/// The choices a search may use: the lab's analyses (named when Snow
/// knows the code) and age groups, every sex and granularity, the
/// municipalities and counties with data in any of its analyses, and the
/// weeks its data covers. Every area listed is one a search is not
/// refused for. The lab store knows no area names, so areas come by code.
///
/// At most [`MAX_CATALOGUE_ENTRIES`] entries, what a GP's client takes:
/// a lab with more areas (far more than a country has municipalities)
/// has the rest left out, with a warning in the log.
pub fn catalogue(db: &LabDb, settings: &SearchSettings) -> Result<Catalogue, StoreError> {
    let mut codes = BTreeSet::new();
    for analysis in &settings.lab.analyses {
        codes.extend(db.areas(analysis)?);
    }
    let week = |yw: i32| u8::try_from(yw % 100).ok().and_then(|w| IsoWeek::new(yw / 100, w));
    let coverage = db.coverage()?.and_then(|(first, last)| week(first).zip(week(last)));
    let mut c = Catalogue {
        analyses: settings
            .lab
            .analyses
            .iter()
            .map(|code| AnalysisChoice { code: code.clone(), name: analysis_name(code).map(str::to_owned) })
            .collect(),
        areas: Vec::new(),
        age_groups: settings.lab.age_groups.clone(),
        sexes: Sex::ALL.to_vec(),
        granularities: Granularity::ALL.to_vec(),
        coverage,
    };
    // Only well-formed codes (the store holds nothing else).
    let areas = codes.iter().filter_map(|code| Area::parse_loose(code).ok()).filter(|a| *a != Area::All);
    let room = MAX_CATALOGUE_ENTRIES.saturating_sub(c.entries());
    c.areas = areas.take(room).map(|area| AreaChoice { area, name: None }).collect();
    if codes.len() > c.areas.len() {
        tracing::warn!(
            listed = c.areas.len(),
            areas = codes.len(),
            "the catalogue lists only the first areas with data: it would not fit in one answer"
        );
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use snow_core::stats::{Granularity, Period};
    use snow_store::AggRow;

    /// INFA in 5401 in 2026-W10 (3 tests) and W13 (6); RSV in 1804 in W12.
    fn lab() -> (tempfile::TempDir, LabDb) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = LabDb::open(&dir.path().join("lab.db")).unwrap();
        let mut imp = db.begin().unwrap();
        let mut n = 0;
        for (analysis, muni, week, tests) in [("INFA", "5401", 10, 3), ("INFA", "5401", 13, 6), ("RSV", "1804", 12, 9)]
        {
            for i in 0..tests {
                n += 1;
                let sample = format!("{n:032x}");
                imp.add(&AggRow {
                    sample_id: &sample,
                    patient: "p",
                    analysis,
                    municipality: muni,
                    year: 2026,
                    week,
                    age_group: "0-4",
                    sex: "F",
                    positive: i == 0,
                    record_key: 0x9e37_79b9u32.wrapping_mul(sample.len() as u32 + i as u32),
                })
                .unwrap();
            }
        }
        imp.commit("h", "f.csv", 0).unwrap();
        (dir, db)
    }

    fn query(area: Area, from: &str, to: &str, granularity: Granularity) -> StatsQuery {
        StatsQuery {
            analysis: "INFA".into(),
            period: Period::parse(from, to).unwrap(),
            area,
            age_group: None,
            sex: None,
            granularity,
        }
    }

    fn shown(a: &StatsAnswer) -> Vec<(String, Option<String>)> {
        a.buckets.iter().map(|b| (b.label.clone(), b.counts.map(|c| c.tested.to_string()))).collect()
    }

    #[test]
    fn unknown_areas_are_refused_by_name() {
        let (_dir, db) = lab();
        let settings = SearchSettings::default();
        for (area, words) in [
            (Area::Municipality("9999".into()), "area: no data for municipality 9999"),
            (Area::County("99".into()), "area: no data for county 99"),
            (Area::Municipality("5402".into()), "area: no data for municipality 5402"),
        ] {
            match answer(&db, &settings, &query(area, "2026-W10", "2026-W13", Granularity::Week)) {
                Err(SearchError::Invalid(e)) => assert_eq!(e.to_string(), words),
                other => panic!("{words}: {other:?}"),
            }
        }
        // Known overall: 1804 and 18 have RSV rows only; INFA there is zero.
        for area in [Area::Municipality("1804".into()), Area::County("18".into()), Area::County("54".into())] {
            let a = answer(&db, &settings, &query(area.clone(), "2026-W12", "2026-W12", Granularity::Week)).unwrap();
            assert_eq!(shown(&a), [("2026-W12".to_owned(), Some("0".to_owned()))], "{area:?}");
        }
    }

    #[test]
    fn periods_outside_the_data_are_no_data() {
        let (_dir, db) = lab();
        let settings = SearchSettings { perturbation: None, ..SearchSettings::default() };
        let muni = || Area::Municipality("5401".into());
        let a = answer(&db, &settings, &query(muni(), "2026-W08", "2026-W15", Granularity::Week)).unwrap();
        let some = |s: &str| Some(s.to_owned());
        let want: Vec<(String, Option<String>)> = [
            ("2026-W08", None),
            ("2026-W09", None),
            ("2026-W10", some("<5")),
            // Inside the lab's weeks, no INFA rows: a real zero.
            ("2026-W11", some("0")),
            ("2026-W12", some("0")),
            ("2026-W13", some("6")),
            ("2026-W14", None),
            ("2026-W15", None),
        ]
        .into_iter()
        .map(|(l, c)| (l.to_owned(), c))
        .collect();
        assert_eq!(shown(&a), want);
        // Months: February (W06–W09) is outside, March (W10–W13) inside;
        // a total over both counts what there is.
        let a = answer(&db, &settings, &query(muni(), "2026-02", "2026-04", Granularity::Month)).unwrap();
        assert_eq!(shown(&a), [("2026-02".into(), None), ("2026-03".into(), some("9")), ("2026-04".into(), None)]);
        let a = answer(&db, &settings, &query(muni(), "2025-01", "2026-02", Granularity::Total)).unwrap();
        assert_eq!(shown(&a), [("2025-01/2026-02".to_owned(), None)]);
        let a = answer(&db, &settings, &query(Area::All, "2026-02", "2026-03", Granularity::Total)).unwrap();
        assert_eq!(shown(&a), [("2026-02/2026-03".to_owned(), some("9"))]);
    }

    /// Issue 21: by default every count is the true one plus the table's
    /// noise for its cell's key: the same cell gives the same count
    /// whichever query asks for it, zero stays zero, 1–4 are never
    /// published, no count moves by more than the table's maximum.
    #[test]
    fn counts_are_perturbed_per_cell_the_same_every_time() {
        let (_dir, db) = lab();
        let exact = SearchSettings { perturbation: None, ..SearchSettings::default() };
        let settings = SearchSettings::default();
        let muni = || Area::Municipality("5401".into());
        let q = query(muni(), "2026-W08", "2026-W15", Granularity::Week);
        let a = answer(&db, &settings, &q).unwrap();
        assert_eq!(a.max_noise, 5);
        assert_eq!(a, answer(&db, &settings, &q).unwrap(), "the same query, another answer");
        // Week 13 alone: the same cell as week 13 of the longer period.
        let w13 = answer(&db, &settings, &query(muni(), "2026-W13", "2026-W13", Granularity::Week)).unwrap();
        assert_eq!(w13.buckets[0], a.buckets[5]);
        let truth = answer(&db, &exact, &q).unwrap();
        assert_eq!(truth.max_noise, 0);
        for (b, t) in a.buckets.iter().zip(&truth.buckets) {
            let (Some(c), Some(t)) = (b.counts, t.counts) else {
                assert_eq!(b.counts.is_none(), t.counts.is_none());
                continue;
            };
            for ((name, published), (_, true_count)) in c.named().into_iter().zip(t.named()) {
                match (published, true_count) {
                    (Count::Exact(p), Count::Exact(t)) => {
                        assert!(p == 0 || p >= 5, "{name} {p}");
                        assert!(p.abs_diff(t) <= 5, "{name}: {t} published as {p}");
                        if t == 0 {
                            assert_eq!(p, 0, "{name}: a zero perturbed");
                        }
                    }
                    (Count::Exact(p), Count::Below(_)) => assert!(p == 0 || (5..=9).contains(&p), "{name} {p}"),
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn an_empty_lab_has_no_data_anywhere() {
        let dir = tempfile::tempdir().unwrap();
        let db = LabDb::open(&dir.path().join("lab.db")).unwrap();
        let settings = SearchSettings::default();
        let a = answer(&db, &settings, &query(Area::All, "2026-W01", "2026-W02", Granularity::Week)).unwrap();
        assert!(a.buckets.len() == 2 && a.buckets.iter().all(Bucket::no_data));
        let q = query(Area::Municipality("5401".into()), "2026-W01", "2026-W02", Granularity::Week);
        assert!(matches!(answer(&db, &settings, &q), Err(SearchError::Invalid(e)) if e.field == "area"));
    }

    #[test]
    fn the_catalogue_lists_the_labs_choices_and_the_areas_with_data() {
        let (_dir, db) = lab();
        let settings = SearchSettings::default();
        let c = catalogue(&db, &settings).unwrap();
        let codes: Vec<&str> = c.analyses.iter().map(|a| a.code.as_str()).collect();
        assert_eq!(codes, settings.lab.analyses);
        assert_eq!(c.analyses[0].name.as_deref(), Some("Influensa A"));
        let areas: Vec<&str> = c.areas.iter().map(|a| a.area.code()).collect();
        assert_eq!(areas, ["18", "1804", "54", "5401"]);
        assert_eq!(c.age_groups, settings.lab.age_groups);
        assert_eq!((c.sexes.len(), c.granularities.len()), (3, 3));
        let week = |w| snow_core::stats::IsoWeek::new(2026, w).unwrap();
        assert_eq!(c.coverage, Some((week(10), week(13))));
        // Every area listed is one a search answers.
        for a in &c.areas {
            assert!(answer(&db, &settings, &query(a.area.clone(), "2026-W10", "2026-W10", Granularity::Week)).is_ok());
        }
        // An analysis the lab no longer reports does not bring its areas.
        let rsv_gone = SearchSettings {
            lab: snow_lab::LabSettings { analyses: vec!["INFA".into()], ..Default::default() },
            ..Default::default()
        };
        let areas: Vec<String> =
            catalogue(&db, &rsv_gone).unwrap().areas.iter().map(|a| a.area.code().to_owned()).collect();
        assert_eq!(areas, ["54", "5401"]);
    }

    #[test]
    fn an_empty_labs_catalogue_has_no_areas_and_no_coverage() {
        let dir = tempfile::tempdir().unwrap();
        let db = LabDb::open(&dir.path().join("lab.db")).unwrap();
        let c = catalogue(&db, &SearchSettings::default()).unwrap();
        assert!(c.areas.is_empty() && c.coverage.is_none() && !c.analyses.is_empty());
    }
}
