//! Issue 21 item 3: an alert discloses no more than a search. Detection
//! runs on the lab's true counts (the alarms are those of the exact
//! series), but the count an alert states is the one a search for the same
//! area and week publishes — the same cell, so the same perturbed count —
//! and its threshold is rounded up to a multiple of the disclosure
//! threshold, so "observed 0, threshold 3.2" no longer pins the count to 4.

use std::collections::HashMap;
use std::time::Duration;

use snow_agents::detect::{find_alarms, published_observed, published_threshold, DetectionConfig, Said};
use snow_agents::search::{answer, SearchSettings};
use snow_core::stats::{Area, Count, Granularity, Period, StatsQuery};
use snow_lab::detect::{ears, Detector};
use synthetic_lab::synthetic_lab;

mod synthetic_lab;

#[test]
fn alerts_state_the_searchs_published_count_and_a_coarse_threshold() {
    let dir = tempfile::tempdir().unwrap();
    // Two years of the synthetic region, through the export and the import.
    let db = synthetic_lab(dir.path(), 104, 11);

    // Every week evaluated, so there are alarms in small and large series.
    let cfg = DetectionConfig {
        service: "po.example".into(),
        recent_weeks: 52,
        default: Detector::Ears(ears::Params::new(ears::Method::C2)),
        per_analysis: HashMap::new(),
        poll: Duration::from_secs(1),
        said: Said::default(),
    };
    let analyses = snow_lab::LabSettings::default().analyses;
    let alarms = find_alarms(&db, &cfg, &analyses).unwrap();
    assert!(alarms.len() > 10, "too few alarms to judge: {}", alarms.len());
    let perturbed = SearchSettings::default();
    let exact = SearchSettings { perturbation: None, ..SearchSettings::default() };
    let mut moved = 0;
    for a in &alarms {
        let q = StatsQuery {
            analysis: a.analysis.clone(),
            period: Period::parse(&a.week.to_string(), &a.week.to_string()).unwrap(),
            area: a.area.clone(),
            age_group: None,
            sex: None,
            granularity: Granularity::Week,
        };
        let searched = answer(&db, &perturbed, &q).unwrap().buckets[0].counts.unwrap().positive;
        let stated = published_observed(a, &perturbed);
        assert_eq!(stated, searched, "{a:?}");
        // Exact counts (perturbation off) state the true count.
        let truth = a.observed as u64;
        assert_eq!(published_observed(a, &exact), Count::disclose(truth, 5));
        assert_eq!(answer(&db, &exact, &q).unwrap().buckets[0].counts.unwrap().positive, Count::disclose(truth, 5));
        if let Count::Exact(n) = stated {
            assert!(n == 0 || n >= 5, "a small count stated: {a:?}");
            moved += usize::from(n != truth);
        }
        let t = published_threshold(a.upperbound, &perturbed);
        assert!(t >= a.upperbound && t < a.upperbound + 5.0 + 1e-9 && t >= 5.0, "{} → {t}", a.upperbound);
        assert_eq!(t % 5.0, 0.0);
        assert_eq!(published_threshold(a.upperbound, &exact), a.upperbound);
    }
    assert!(moved > 0, "no alarm's count was perturbed");
    // Some alarms are on small series: the ones the disclosure is about.
    assert!(alarms.iter().any(|a| a.observed < 5.0 && matches!(a.area, Area::Municipality(_))), "no small alarm");
}
