//! The `[lab]` section of `snow.toml`: what a lab server imports, what its
//! search agent answers and how its detection agent looks for outbreaks.
//!
//! It lives with the lab code, not in the server: the server only runs
//! what the configuration names, while these settings are about the lab's
//! data and algorithms (issue 15). Field names and defaults are those of
//! `snow.example.toml`, which must keep reading unchanged.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::detect::{ears, farrington, Detector};
use crate::LabSettings;

/// A `[lab]` setting that cannot work, said with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LabConfigError(pub String);

/// The `[lab]` section: a lab server imports what the lab pushes and
/// answers GPs' searches.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabServerSettings {
    /// Import files dropped in SNOW_HOME/data/in.
    pub import: bool,
    /// Seconds between full scans of the drop directory (the fallback to
    /// change notifications).
    pub scan_interval_secs: u64,
    /// Milliseconds a file must have stayed unchanged before it is
    /// imported: a file copied in place is not taken half-written.
    pub settle_ms: u64,
    /// Analysis codes the lab reports; rows and searches with others are refused.
    pub analyses: Vec<String>,
    /// Age groups (`LOW-HIGH` or `LOW+`), in order.
    pub age_groups: Vec<String>,
    /// Run the search agent (`urn:snow:stats:1`).
    pub search_agent: bool,
    /// The agent's local name: it is `NAME@domain/agent`.
    pub search_agent_name: String,
    /// Counts from 1 to threshold − 1 are answered as `<threshold`.
    pub disclosure_threshold: u32,
    /// Searches running at once.
    pub max_search_agents: usize,
    /// Searches waiting behind them; more are refused with resource-constraint.
    pub search_queue: usize,
    /// Searches one GP may have answered per hour; more are refused
    /// with policy-violation (and recorded in the audit).
    pub searches_per_hour: u32,
    /// The same per day (24 hours back from now).
    pub searches_per_day: u32,
    /// Outbreak detection by the agent after each import.
    pub detection: DetectionSettings,
    /// How published counts are perturbed (the cell key method).
    pub perturbation: PerturbationSettings,
}

/// The `[lab.perturbation]` section: every count a search (or an alert)
/// publishes is the true count plus noise from a public perturbation
/// table ([`crate::ptable`]), chosen by the cell's key, so differences of
/// answers no longer give hidden counts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerturbationSettings {
    /// On by default; off publishes exact counts (only 1 to
    /// disclosure_threshold − 1 suppressed), which differences reveal.
    pub enabled: bool,
    /// The most a count may change (D).
    pub max_noise: u32,
    /// The noise variance (V), less than max_noise².
    pub variance: f64,
    /// Counts 1..=small_count are never published (js); default:
    /// disclosure_threshold − 1.
    pub small_count: Option<u32>,
}

impl Default for PerturbationSettings {
    fn default() -> Self {
        let d = crate::ptable::PtableParams::default();
        PerturbationSettings { enabled: true, max_noise: d.max_noise, variance: d.variance, small_count: None }
    }
}

/// The `[lab.detection]` section: the agent runs an algorithm over the
/// weekly series after each import and publishes alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionSettings {
    /// Off by default: alerts reach GPs, so a site turns them on knowingly.
    pub enabled: bool,
    /// The newest weeks evaluated after an import (older alarms are
    /// history, not news).
    pub recent_weeks: usize,
    /// The pubsub service GPs subscribe at (default: the `[s2s]` master,
    /// the PO; else this server).
    pub service: Option<String>,
    /// Seconds between checks for new imports.
    pub poll_secs: u64,
    /// The algorithm for every analysis without its own entry.
    pub default: DetectionParams,
    /// Per analysis code: `[lab.detection.analyses.INFA]`.
    pub analyses: BTreeMap<String, DetectionParams>,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        DetectionSettings {
            enabled: false,
            recent_weeks: 2,
            service: None,
            poll_secs: 5,
            default: DetectionParams::default(),
            analyses: Default::default(),
        }
    }
}

/// One analysis's algorithm and parameters, with the R package's
/// defaults (docs/detection-algorithms.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionParams {
    /// `farrington`, `C1`, `C2` or `C3`.
    pub algorithm: String,
    /// Default: 0.05 for Farrington, 0.001 for C1/C2, 0.025 for C3.
    pub alpha: Option<f64>,
    /// EARS: baseline weeks.
    pub baseline: usize,
    /// EARS: floor for the standard deviation.
    pub min_sigma: f64,
    /// Farrington: past years.
    pub b: usize,
    /// Farrington: window half-width.
    pub w: usize,
    /// Farrington: down-weight past outbreaks in the baseline.
    pub reweight: bool,
    /// Farrington: the Anscombe residual above which a week is down-weighted.
    pub weights_threshold: f64,
    /// Farrington: fit a time trend when it is significant.
    pub trend: bool,
    /// Farrington: the significance of that trend.
    pub p_threshold_trend: f64,
    /// Farrington: at least `[cases, weeks]` for an alarm.
    pub limit54: [u32; 2],
    /// `2/3`, `1/2` or `none`.
    pub powertrans: String,
    /// Farrington: levels of the seasonal factor (1: none).
    pub no_periods: usize,
    /// Farrington: recent weeks left out of the baseline (default: `w`).
    pub past_weeks_not_included: Option<usize>,
    /// `delta`, `nbPlugin` or `muan`.
    pub threshold_method: String,
    /// Farrington: reference weeks by calendar date, not by 52 positions.
    pub epoch_as_date: bool,
}

impl Default for DetectionParams {
    fn default() -> Self {
        DetectionParams {
            algorithm: "farrington".into(),
            alpha: None,
            baseline: 7,
            min_sigma: 0.0,
            b: 5,
            w: 3,
            reweight: true,
            weights_threshold: 2.58,
            trend: true,
            p_threshold_trend: 0.05,
            limit54: [5, 4],
            powertrans: "2/3".into(),
            no_periods: 1,
            past_weeks_not_included: None,
            threshold_method: "delta".into(),
            epoch_as_date: false,
        }
    }
}

/// [`snow_core::settings::range`] as a `[lab]` configuration error.
fn range<T: PartialOrd + std::fmt::Display>(key: &str, value: T, lo: T, hi: T) -> Result<(), LabConfigError> {
    snow_core::settings::range(key, value, lo, hi).map_err(LabConfigError)
}

impl DetectionParams {
    /// Every number in range, named under `prefix`
    /// (`lab.detection.default`, `lab.detection.analyses.INFA`): NaN,
    /// infinities, negative or absurd values stop the start.
    fn check_ranges(&self, prefix: &str) -> Result<(), LabConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if let Some(alpha) = self.alpha {
            range(&key("alpha"), alpha, 1e-9, 0.5)?;
        }
        range(&key("baseline"), self.baseline, 2, 520)?;
        range(&key("min_sigma"), self.min_sigma, 0.0, 1e9)?;
        range(&key("b"), self.b, 1, 20)?;
        range(&key("w"), self.w, 0, 26)?;
        range(&key("weights_threshold"), self.weights_threshold, 1e-3, 1e3)?;
        range(&key("p_threshold_trend"), self.p_threshold_trend, 1e-9, 1.0)?;
        range(&key("limit54[0] (cases)"), self.limit54[0], 0, 1_000_000)?;
        range(&key("limit54[1] (weeks)"), self.limit54[1], 1, 52)?;
        range(&key("no_periods"), self.no_periods, 1, 52)?;
        if let Some(n) = self.past_weeks_not_included {
            range(&key("past_weeks_not_included"), n, 0, 52)?;
        }
        Ok(())
    }

    /// The detector these parameters describe, checked by a run over an
    /// empty series, so a bad parameter stops the start, not the first
    /// import.
    pub fn detector(&self) -> Result<Detector, LabConfigError> {
        let bad = |m: String| LabConfigError(format!("lab.detection: {m}"));
        let method = match self.algorithm.to_ascii_uppercase().as_str() {
            "C1" => Some(ears::Method::C1),
            "C2" => Some(ears::Method::C2),
            "C3" => Some(ears::Method::C3),
            "FARRINGTON" => None,
            other => return Err(bad(format!("unknown algorithm {other:?} (farrington, C1, C2 or C3)"))),
        };
        let d = match method {
            Some(m) => {
                let p = ears::Params {
                    alpha: self.alpha.unwrap_or(m.default_alpha()),
                    baseline: self.baseline,
                    min_sigma: self.min_sigma,
                    ..ears::Params::new(m)
                };
                // Checked by a run over an empty series.
                ears::ears(&[], &p).map_err(|e| bad(e.to_string()))?;
                Detector::Ears(p)
            }
            None => {
                let powertrans = match self.powertrans.as_str() {
                    "2/3" => farrington::PowerTrans::TwoThirds,
                    "1/2" => farrington::PowerTrans::Half,
                    "none" => farrington::PowerTrans::None,
                    _ => return Err(bad("powertrans must be 2/3, 1/2 or none".into())),
                };
                let d = farrington::Params::default();
                let p = farrington::Params {
                    b: self.b,
                    w: self.w,
                    reweight: self.reweight,
                    weights_threshold: self.weights_threshold,
                    alpha: self.alpha.unwrap_or(d.alpha),
                    trend: self.trend,
                    p_threshold_trend: self.p_threshold_trend,
                    limit54: (f64::from(self.limit54[0]), self.limit54[1] as usize),
                    powertrans,
                    no_periods: self.no_periods,
                    past_weeks_not_included: self.past_weeks_not_included,
                    threshold_method: self
                        .threshold_method
                        .parse()
                        .map_err(|e: farrington::ParamError| bad(e.to_string()))?,
                    epoch_as_date: self.epoch_as_date,
                };
                farrington::farrington_from(&[], Some(&[]), &p, 1).map_err(|e| bad(e.to_string()))?;
                Detector::Farrington(p)
            }
        };
        Ok(d)
    }
}

impl Default for LabServerSettings {
    fn default() -> Self {
        let lab = LabSettings::default();
        LabServerSettings {
            import: false,
            scan_interval_secs: 5,
            settle_ms: 2000,
            analyses: lab.analyses,
            age_groups: lab.age_groups,
            search_agent: false,
            search_agent_name: "search".into(),
            disclosure_threshold: 5,
            max_search_agents: 1,
            search_queue: 16,
            searches_per_hour: 100,
            searches_per_day: 500,
            detection: DetectionSettings::default(),
            perturbation: PerturbationSettings::default(),
        }
    }
}

impl LabServerSettings {
    /// The perturbation table `[lab.perturbation]` describes (`None`
    /// when it is off); its parameters were checked by [`Self::validate`].
    pub fn ptable(&self) -> Result<Option<crate::ptable::Ptable>, LabConfigError> {
        let p = &self.perturbation;
        if !p.enabled {
            return Ok(None);
        }
        let params = crate::ptable::PtableParams {
            max_noise: p.max_noise,
            variance: p.variance,
            small_count: p.small_count.unwrap_or(self.disclosure_threshold.saturating_sub(1)),
        };
        let named = |e: crate::ptable::PtableError| LabConfigError(format!("lab.perturbation: {e}"));
        params.validate().map_err(named)?;
        crate::ptable::Ptable::new(&params).map(Some).map_err(named)
    }

    /// The enumerations rows and searches are checked against.
    pub fn lab_settings(&self) -> LabSettings {
        LabSettings { analyses: self.analyses.clone(), age_groups: self.age_groups.clone() }
    }

    /// Checks the whole section when the configuration is read, so a lab
    /// server never starts with settings its importer, search agent or
    /// detection would refuse later.
    pub fn validate(&self) -> Result<(), LabConfigError> {
        let bad = |m: String| Err(LabConfigError(m));
        if self.analyses.is_empty() || self.age_groups.is_empty() {
            return bad("lab.analyses and lab.age_groups must not be empty".into());
        }
        for a in &self.analyses {
            if let Err(e) = snow_core::stats::check_analysis(a) {
                return bad(format!("lab.analyses: {e}"));
            }
        }
        let lab = self.lab_settings();
        for g in &self.age_groups {
            if snow_core::stats::check_age_group(g).is_err() || !lab.age_group_is_well_formed(g) {
                return bad(format!("lab.age_groups: {g:?} is not LOW-HIGH or LOW+"));
            }
        }
        if !(1..=1000).contains(&self.disclosure_threshold) {
            return bad("lab.disclosure_threshold must be 1 to 1000".into());
        }
        if self.max_search_agents == 0 || self.search_queue == 0 {
            return bad("lab.max_search_agents and lab.search_queue must be positive".into());
        }
        if self.search_agent_name.parse::<snow_core::BareJid>().is_ok()
            || format!("{}@x.example", self.search_agent_name).parse::<snow_core::BareJid>().is_err()
        {
            return bad("lab.search_agent_name must be a JID's local part, like \"search\"".into());
        }
        range("lab.scan_interval_secs", self.scan_interval_secs, 1, 86_400)?;
        self.ptable()?;
        range("lab.searches_per_hour", self.searches_per_hour, 1, 1_000_000)?;
        range("lab.searches_per_day", self.searches_per_day, self.searches_per_hour, 24_000_000)?;
        // 0: a file is taken at once (fine when every upload is NAME.part,
        // then renamed); at most an hour.
        range("lab.settle_ms", self.settle_ms, 0, 3_600_000)?;
        let d = &self.detection;
        range("lab.detection.recent_weeks", d.recent_weeks, 1, 52)?;
        range("lab.detection.poll_secs", d.poll_secs, 1, 86_400)?;
        d.default.check_ranges("lab.detection.default")?;
        d.default.detector()?;
        for (code, p) in &d.analyses {
            if !self.analyses.contains(code) {
                return bad(format!("lab.detection.analyses.{code}: not one of lab.analyses"));
            }
            p.check_ranges(&format!("lab.detection.analyses.{code}"))?;
            p.detector()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        LabServerSettings::default().validate().unwrap();
        assert!(matches!(DetectionParams::default().detector(), Ok(Detector::Farrington(_))));
    }

    #[test]
    fn every_lab_number_is_range_checked_naming_the_key() {
        let refused = |f: &dyn Fn(&mut LabServerSettings), key: &str| {
            let mut lab = LabServerSettings::default();
            f(&mut lab);
            let e = lab.validate().unwrap_err().0;
            assert!(e.starts_with(&format!("{key} = ")) && e.contains("out of range"), "{key}: {e}");
        };
        refused(&|l| l.scan_interval_secs = 0, "lab.scan_interval_secs");
        refused(&|l| l.settle_ms = 7_200_000, "lab.settle_ms");
        refused(&|l| l.detection.poll_secs = 0, "lab.detection.poll_secs");
        refused(&|l| l.detection.recent_weeks = 53, "lab.detection.recent_weeks");
        refused(&|l| l.detection.default.alpha = Some(f64::NAN), "lab.detection.default.alpha");
        refused(&|l| l.detection.default.alpha = Some(-0.05), "lab.detection.default.alpha");
        refused(&|l| l.detection.default.min_sigma = f64::INFINITY, "lab.detection.default.min_sigma");
        refused(&|l| l.detection.default.weights_threshold = f64::NAN, "lab.detection.default.weights_threshold");
        refused(&|l| l.detection.default.p_threshold_trend = 0.0, "lab.detection.default.p_threshold_trend");
        refused(&|l| l.detection.default.b = 0, "lab.detection.default.b");
        refused(&|l| l.detection.default.no_periods = 0, "lab.detection.default.no_periods");
        refused(&|l| l.detection.default.limit54 = [5, 0], "lab.detection.default.limit54[1] (weeks)");
        refused(
            &|l| {
                let p = DetectionParams { algorithm: "C2".into(), alpha: Some(1.5), ..Default::default() };
                l.detection.analyses.insert("INFA".into(), p);
            },
            "lab.detection.analyses.INFA.alpha",
        );
        // The edges pass.
        let mut lab = LabServerSettings { settle_ms: 0, ..Default::default() };
        lab.detection.default.alpha = Some(0.5);
        lab.validate().unwrap();
    }

    #[test]
    fn bad_detection_settings_are_refused_with_their_key() {
        let mut lab = LabServerSettings::default();
        lab.detection.default.algorithm = "C4".into();
        assert!(lab.validate().unwrap_err().0.starts_with("lab.detection: unknown algorithm"));
        let mut lab = LabServerSettings::default();
        lab.detection.analyses.insert("XYZ".into(), DetectionParams { algorithm: "C2".into(), ..Default::default() });
        assert!(lab.validate().unwrap_err().0.contains("lab.detection.analyses.XYZ"));
        let mut lab = LabServerSettings::default();
        lab.detection.analyses.insert("RSV".into(), DetectionParams { algorithm: "c2".into(), ..Default::default() });
        lab.validate().unwrap();
        assert!(matches!(lab.detection.analyses["RSV"].detector(), Ok(Detector::Ears(_))));
    }
}
