//! What the detection agent says in the server's log about a series too
//! short for its algorithm: the series by name (analysis and area as the
//! GP writes them), the algorithm in words, once per series.

use std::collections::HashMap;
use std::time::Duration;

mod log_capture;
mod synthetic_lab;

use log_capture::Log;
use snow_agents::detect::{find_alarms, DetectionConfig, Said};
use snow_lab::detect::{farrington, Detector};
use synthetic_lab::synthetic_lab;

#[test]
fn a_series_too_short_is_named_in_words_once() {
    let dir = tempfile::tempdir().unwrap();
    // Four weeks of synthetic data, through the export and the import.
    let db = synthetic_lab(dir.path(), 4, 7);

    let cfg = DetectionConfig {
        service: "po.example".into(),
        recent_weeks: 1,
        default: Detector::Farrington(farrington::Params::default()),
        per_analysis: HashMap::new(),
        poll: Duration::from_secs(1),
        said: Said::default(),
    };
    let analyses = vec!["INFA".to_owned()];
    let log = Log::during(|| {
        // Two polls: the second says nothing new.
        for _ in 0..2 {
            assert!(find_alarms(&db, &cfg, &analyses).unwrap().is_empty());
        }
    });
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("cannot run yet")).collect();
    let series = db.areas("INFA").unwrap();
    assert!(series.len() > 1, "{series:?}");
    assert_eq!(lines.len(), series.len(), "one line per series, once: {log}");
    let line = lines
        .iter()
        .find(|l| l.contains("on INFA in municipality 5401:"))
        .unwrap_or_else(|| panic!("the series INFA in 5401 is not named: {log}"));
    assert!(line.contains("Farrington (flexible, b = 5) needs 264 weeks of history and the series has"), "{line}");
    assert!(line.contains("detection starts, with a substitute, at"), "{line}");
    assert!(lines.iter().any(|l| l.contains("on INFA in county 54:")), "{log}");
    for l in &lines {
        assert!(!l.contains("FF_default") && !l.contains("analysis="), "{l}");
    }
}
