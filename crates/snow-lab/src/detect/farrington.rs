//! Farrington-flexible exactly as the R package `surveillance` 1.20.3
//! computes it (`farringtonFlexible`), following `docs/detection-algorithms.md` §2,
//! quirks included: index-based reference weeks (one year is 52 weeks) or
//! date-based ones (`epochAsDate`, the same calendar date a year back moved
//! to the nearest Monday),
//! the dispersion after reweighting computed with the prior weights, the
//! unclamped dispersion in the prediction's standard error, the `nbPlugin`
//! score on the log scale, and `limit54`.

use super::dist::{pnorm, pt, Counts};
use super::glm::{self, Design, Fit};
use super::normal::qnorm;

/// The power transformation of the `delta` threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerTrans {
    TwoThirds,
    Half,
    None,
}

impl PowerTrans {
    fn exponent(self) -> f64 {
        match self {
            PowerTrans::TwoThirds => 2.0 / 3.0,
            PowerTrans::Half => 0.5,
            PowerTrans::None => 1.0,
        }
    }
}

/// How the threshold is computed from the prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdMethod {
    /// The original method: a normal approximation after the power
    /// transformation.
    Delta,
    /// Noufaily et al. (2013): a quantile of the negative binomial with the
    /// predicted mean.
    NbPlugin,
    /// Like `NbPlugin`, with the upper confidence limit of the mean.
    Muan,
}

impl std::str::FromStr for ThresholdMethod {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, ParamError> {
        match s {
            "delta" => Ok(ThresholdMethod::Delta),
            "nbPlugin" => Ok(ThresholdMethod::NbPlugin),
            "muan" => Ok(ThresholdMethod::Muan),
            _ => Err(ParamError::ThresholdMethod),
        }
    }
}

/// Control parameters, with the package's defaults (`Params::default()`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Past years in the baseline (default 5).
    pub b: usize,
    /// Half-width of the window around each reference week (default 3).
    pub w: usize,
    pub reweight: bool,
    /// Anscombe residuals above this are down-weighted (default 2.58).
    pub weights_threshold: f64,
    /// One-sided: z = Φ⁻¹(1 − alpha) (default 0.05).
    pub alpha: f64,
    pub trend: bool,
    pub p_threshold_trend: f64,
    /// No threshold or alarm unless at least `.0` cases in the last `.1`
    /// weeks (default 5 in 4).
    pub limit54: (f64, usize),
    pub powertrans: PowerTrans,
    /// Seasonal factor levels (1: none, the original method).
    pub no_periods: usize,
    /// Recent weeks left out of the baseline (default: `w`).
    pub past_weeks_not_included: Option<usize>,
    pub threshold_method: ThresholdMethod,
    /// Reference weeks by calendar date (`epochAsDate = TRUE`), not by 52
    /// positions; needs the weeks' dates.
    pub epoch_as_date: bool,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            b: 5,
            w: 3,
            reweight: true,
            weights_threshold: 2.58,
            alpha: 0.05,
            trend: true,
            p_threshold_trend: 0.05,
            limit54: (5.0, 4),
            powertrans: PowerTrans::TwoThirds,
            no_periods: 1,
            past_weeks_not_included: None,
            threshold_method: ThresholdMethod::Delta,
            epoch_as_date: false,
        }
    }
}

impl Params {
    /// The first monitored week (1-based): every reference window lies in
    /// the series (date-based reference weeks may lie a week further back).
    pub fn first_week(&self) -> usize {
        52 * self.b + self.w + if self.epoch_as_date { 3 } else { 1 }
    }

    fn past_weeks(&self) -> usize {
        self.past_weeks_not_included.unwrap_or(self.w)
    }
}

/// Why the parameters were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("b (past years) must be 1 to 20")]
    Years,
    #[error("w (window half-width) must be 0 to 25")]
    Window,
    #[error("alpha must be between 0 and 1")]
    Alpha,
    #[error("noPeriods must be 1 to 52")]
    Periods,
    #[error("pastWeeksNotIncluded must be at most 52·b − w")]
    PastWeeks,
    #[error("limit54 needs a count of weeks of at least 1")]
    Limit54,
    #[error("the threshold method must be delta, nbPlugin or muan")]
    ThresholdMethod,
    #[error("date-based reference weeks need one date per week")]
    Dates,
}

/// One monitored week. `None` is R's NA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Output {
    /// 1-based index into the series.
    pub t: usize,
    pub observed: f64,
    pub upperbound: Option<f64>,
    pub alarm: Option<bool>,
    pub expected: Option<f64>,
    pub phi: Option<f64>,
    pub trend_used: Option<bool>,
    pub trend_coef: Option<f64>,
    pub score: Option<f64>,
    pub pvalue: Option<f64>,
    /// The package's `mu0Vector` (a diagnostic artefact for `delta`).
    pub mu0_quantile: Option<f64>,
}

/// The reference weeks r_1 … r_b of week `k` (1-based), newest first:
/// 52·i positions back, or by date (docs/detection-algorithms.md §2.2b) when `mondays`
/// (the Monday of every week of the series) are given. `None` if a date
/// falls outside the series.
fn reference_weeks(k: usize, p: &Params, mondays: Option<&[time::Date]>) -> Option<Vec<usize>> {
    let Some(mondays) = mondays else { return Some((1..=p.b).map(|i| k - 52 * i).collect()) };
    let dk = mondays[k - 1];
    let wd = |d: time::Date| i64::from(d.weekday().number_days_from_sunday());
    let mut out = Vec::with_capacity(p.b);
    for i in 1..=p.b {
        let year = dk.year() - i as i32;
        // The same month and day i years back; 29 February rolls to 1 March.
        let r = time::Date::from_calendar_date(year, dk.month(), dk.day())
            .or_else(|_| time::Date::from_calendar_date(year, time::Month::March, 1))
            .ok()?;
        let a = r - time::Duration::days(wd(r) - wd(dk));
        let b = if a > r { a - time::Duration::days(7) } else { a + time::Duration::days(7) };
        let chosen = if (a - r).abs() <= (b - r).abs() { a } else { b };
        let days = (chosen - mondays[0]).whole_days();
        let idx = usize::try_from(days / 7).ok()?;
        if days % 7 != 0 || mondays.get(idx) != Some(&chosen) {
            return None;
        }
        out.push(idx + 1);
    }
    Some(out)
}

/// The baseline of week `k` (1-based) with reference weeks `refs`: its
/// weeks (1-based, increasing) and their seasonal labels (§2.2).
fn baseline(k: usize, p: &Params, refs: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let (w, periods) = (p.w, p.no_periods);
    // f[t] for t in 1..=k; 0 is NA.
    let mut f = vec![0usize; k + 1];
    for x in &mut f[k - w..=k] {
        *x = periods;
    }
    let mut newer = k;
    for &r in refs {
        for x in &mut f[r - w..=r + w] {
            *x = periods;
        }
        if periods > 1 {
            let period = newer - 2 * w - 1 - r;
            let (len, rest) = (period / (periods - 1), period % (periods - 1));
            let mut start = r + w + 1;
            for label in 1..periods {
                let l = if label <= rest { len + 1 } else { len };
                for x in &mut f[start..start + l] {
                    *x = label;
                }
                start += l;
            }
        }
        newer = r;
    }
    for x in &mut f[k - p.past_weeks()..=k] {
        *x = 0;
    }
    (1..=k).filter(|&t| f[t] != 0).map(|t| (t, f[t])).unzip()
}

/// The design for the baseline `weeks` (and the prediction row for `k`):
/// intercept, then `wtime` if `trend`, then treatment-coded seasonal
/// levels (the lowest present level is the reference). `wtime` is the
/// week's index, or with date-based reference weeks the weeks since the
/// first baseline week.
fn design(weeks: &[usize], labels: &[usize], k: usize, p: &Params, trend: bool) -> (Design, Vec<f64>) {
    let origin = if p.epoch_as_date { weeks.first().copied().unwrap_or(0) } else { 0 };
    let mut levels: Vec<usize> = if p.no_periods > 1 { labels.to_vec() } else { Vec::new() };
    levels.sort_unstable();
    levels.dedup();
    let dummies = levels.len().saturating_sub(1);
    let q = 1 + usize::from(trend) + dummies;
    let row = |t: usize, label: usize| {
        let mut r = Vec::with_capacity(q);
        r.push(1.0);
        if trend {
            r.push(t as f64 - origin as f64);
        }
        for l in levels.iter().skip(1) {
            r.push(if *l == label { 1.0 } else { 0.0 });
        }
        r
    };
    let x: Vec<f64> = weeks.iter().zip(labels).flat_map(|(&t, &l)| row(t, l)).collect();
    (Design { n: weeks.len(), q, x }, row(k, p.no_periods))
}

/// A fitted model as the package uses it afterwards.
struct Model {
    fit: Fit,
    design: Design,
    x0: Vec<f64>,
    trend: bool,
    /// max(dispersion, 1) of the (re)fit.
    phi: f64,
    /// The dispersion `summary`/`predict` use (the quirk of §2.4 step 4).
    disp_post: f64,
}

/// `fit(trend)` of docs/detection-algorithms.md §2.4.
fn fit_model(y: &[f64], weeks: &[usize], labels: &[usize], k: usize, p: &Params, trend: bool) -> Option<Model> {
    let ones = vec![1.0; y.len()];
    let mut trend = trend;
    let (mut d, mut x0) = design(weeks, labels, k, p, trend);
    let mut f = glm::fit(&d, y, &ones).filter(|f| f.converged);
    if f.is_none() && trend {
        trend = false;
        (d, x0) = design(weeks, labels, k, p, trend);
        f = glm::fit(&d, y, &ones).filter(|f| f.converged);
    }
    let f = f?;
    let disp = f.dispersion_with(y, &f.w_last);
    let mut phi = disp.max(1.0);
    if !p.reweight {
        return Some(Model { fit: f, design: d, x0, trend, phi, disp_post: disp });
    }
    let s: Vec<f64> = (0..y.len())
        .map(|i| {
            let (yi, mi) = (y[i], f.mu[i]);
            1.5 * (yi.powf(2.0 / 3.0) * mi.powf(-1.0 / 6.0) - mi.sqrt()) / (phi * (1.0 - f.hat(&d, i))).sqrt()
        })
        .collect();
    let thr = p.weights_threshold;
    let denom: f64 = s.iter().map(|&s| if s > thr { s.powi(-2) } else { 1.0 }).sum();
    let gamma = y.len() as f64 / denom;
    let omega: Vec<f64> = s.iter().map(|&s| if s > thr { gamma * s.powi(-2) } else { gamma }).collect();
    // Convergence of the refit is not checked (the package does not).
    let refit = glm::fit(&d, y, &omega)?;
    phi = refit.dispersion_with(y, &refit.w_last).max(1.0);
    let disp_post = refit.dispersion_with(y, &omega);
    Some(Model { fit: refit, design: d, x0, trend, phi, disp_post })
}

/// Runs Farrington-flexible over `y` (weekly counts, oldest first, no
/// gaps). Series shorter than the first monitored week give no rows.
pub fn farrington(y: &[f64], p: &Params) -> Result<Vec<Output>, ParamError> {
    farrington_from(y, None, p, 1)
}

/// Like [`farrington`], for the monitored weeks from `from` (1-based) on;
/// `mondays` (one per week) are needed for date-based reference weeks.
pub fn farrington_from(
    y: &[f64],
    mondays: Option<&[time::Date]>,
    p: &Params,
    from: usize,
) -> Result<Vec<Output>, ParamError> {
    let mondays = if p.epoch_as_date {
        match mondays {
            Some(m) if m.len() == y.len() => Some(m),
            _ => return Err(ParamError::Dates),
        }
    } else {
        None
    };
    if !(1..=20).contains(&p.b) {
        return Err(ParamError::Years);
    }
    if p.w > 25 {
        return Err(ParamError::Window);
    }
    if !(p.alpha > 0.0 && p.alpha < 1.0) {
        return Err(ParamError::Alpha);
    }
    if !(1..=52).contains(&p.no_periods) {
        return Err(ParamError::Periods);
    }
    if p.past_weeks() + p.w > 52 * p.b {
        return Err(ParamError::PastWeeks);
    }
    if p.limit54.1 == 0 {
        return Err(ParamError::Limit54);
    }
    let z = qnorm(1.0 - p.alpha);
    let mut out = Vec::new();
    for k in p.first_week().max(from)..=y.len() {
        out.push(week(y, k, p, z, mondays));
    }
    Ok(out)
}

/// One monitored week `k` (1-based).
fn week(y: &[f64], k: usize, p: &Params, z: f64, mondays: Option<&[time::Date]>) -> Output {
    let observed = y[k - 1];
    let none = Output {
        t: k,
        observed,
        upperbound: None,
        alarm: None,
        expected: None,
        phi: None,
        trend_used: None,
        trend_coef: None,
        score: None,
        pvalue: None,
        mu0_quantile: None,
    };
    let Some(refs) = reference_weeks(k, p, mondays) else { return none };
    let (weeks, labels) = baseline(k, p, &refs);
    let yb: Vec<f64> = weeks.iter().map(|&t| y[t - 1]).collect();
    let Some(mut m) = fit_model(&yb, &weeks, &labels, k, p, p.trend) else { return none };
    if m.trend {
        // Keep the trend only if significant and not extrapolating.
        let mu0 = dot(&m.x0, &m.fit.beta).exp();
        let tstat = m.fit.beta[1] / (m.disp_post * m.fit.cov_unscaled[m.design.q + 1]).sqrt();
        let pval = 2.0 * pt(-tstat.abs(), m.fit.df as f64);
        let max_y = yb.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !(p.b >= 3 && pval < p.p_threshold_trend && mu0 <= max_y) {
            match fit_model(&yb, &weeks, &labels, k, p, false) {
                Some(m2) => m = m2,
                None => return none,
            }
        }
    }
    let eta0 = dot(&m.x0, &m.fit.beta);
    let se_eta = (m.disp_post * m.fit.quad(&m.x0)).sqrt();
    let mu0 = eta0.exp();
    let phi = m.phi;
    let (u, score, pvalue, expected, mu0_quantile) = match p.threshold_method {
        ThresholdMethod::Delta => {
            let se_mu = se_eta * mu0;
            let tau = phi + se_mu * se_mu / mu0;
            let e = p.powertrans.exponent();
            let (se, u) = match p.powertrans {
                PowerTrans::TwoThirds => {
                    let se = (4.0 / 9.0 * mu0.powf(1.0 / 3.0) * tau).sqrt();
                    (se, (mu0.powf(2.0 / 3.0) + z * se).powf(1.5))
                }
                PowerTrans::Half => {
                    let se = (tau / 4.0).sqrt();
                    (se, (mu0.sqrt() + z * se).powi(2))
                }
                PowerTrans::None => {
                    let se = (mu0 * tau).sqrt();
                    (se, mu0 + z * se)
                }
            };
            let score = (observed - mu0) / (u - mu0);
            let pvalue = 1.0 - pnorm((observed.powf(e) - mu0.powf(e)) / se);
            (Some(u), score, pvalue, mu0, (mu0 + z * se_mu).exp())
        }
        ThresholdMethod::NbPlugin | ThresholdMethod::Muan => {
            let mu_q =
                if p.threshold_method == ThresholdMethod::NbPlugin { eta0.exp() } else { (eta0 + z * se_eta).exp() };
            let dist = Counts::new(mu_q, phi);
            let u = if mu_q.is_finite() { dist.quantile(1.0 - p.alpha) } else { None };
            let score = u.map(|u| (observed - eta0) / (u - eta0)).unwrap_or(f64::NAN);
            (u, score, dist.upper_tail(observed), eta0.exp(), mu_q)
        }
    };
    let window = p.limit54.1.min(k);
    let enough = y[k - window..k].iter().sum::<f64>() >= p.limit54.0;
    // R's three-valued AND: FALSE wins over NA.
    let alarm = if !enough || observed == 0.0 {
        Some(false)
    } else if score.is_nan() {
        None
    } else {
        Some(score > 1.0)
    };
    let finite = |x: f64| (!x.is_nan()).then_some(x);
    Output {
        t: k,
        observed,
        upperbound: if enough { u.and_then(finite) } else { None },
        alarm,
        expected: if enough { finite(expected) } else { None },
        phi: finite(phi),
        trend_used: Some(m.trend),
        trend_coef: m.trend.then(|| m.fit.beta[1]),
        score: finite(score),
        pvalue: finite(pvalue),
        mu0_quantile: finite(mu0_quantile),
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_is_b_windows_of_2w_plus_1_weeks() {
        let p = Params::default();
        let k = p.first_week();
        let (weeks, labels) = baseline(k, &p, &reference_weeks(k, &p, None).unwrap());
        assert_eq!(weeks.len(), 35);
        assert!(labels.iter().all(|&l| l == 1));
        assert_eq!(weeks[0], k - 5 * 52 - 3);
        assert_eq!(*weeks.last().unwrap(), k - 52 + 3);
        // b = 3: 21 weeks. pastWeeksNotIncluded < w lets recent weeks in.
        let p3 = Params { b: 3, ..p };
        assert_eq!(baseline(p3.first_week(), &p3, &reference_weeks(p3.first_week(), &p3, None).unwrap()).0.len(), 21);
        let recent = Params { b: 3, past_weeks_not_included: Some(1), ..p };
        let (w, _) = baseline(200, &recent, &reference_weeks(200, &recent, None).unwrap());
        assert!(w.contains(&197) && w.contains(&198) && !w.contains(&199));
    }

    #[test]
    fn noufaily_blocks_fill_the_year_between_windows() {
        let p = Params { b: 3, no_periods: 10, past_weeks_not_included: Some(26), ..Params::default() };
        let k = 300;
        let (weeks, labels) = baseline(k, &p, &reference_weeks(k, &p, None).unwrap());
        // Every week from the oldest window on is in, except the last 27.
        assert_eq!(weeks.first(), Some(&(k - 156 - 3)));
        assert_eq!(weeks.last(), Some(&(k - 27)));
        assert_eq!(weeks.len(), (k - 27) - (k - 159) + 1);
        // Gaps of 45 weeks in 9 blocks of 5, labelled 1..9 in time order.
        let r1 = k - 52;
        let after = |t: usize| labels[weeks.iter().position(|&x| x == t).unwrap()];
        assert_eq!((after(r1 - 4), after(r1 - 3), after(r1 + 3)), (9, 10, 10));
        assert_eq!((after(r1 + 4), after(r1 + 8), after(r1 + 9)), (1, 1, 2));
    }

    #[test]
    fn the_trend_is_kept_only_when_significant_not_extrapolating_and_b_at_least_3() {
        // Steady growth with a little wobble: a significant trend, and the
        // prediction stays under the baseline maximum only if growth is slow.
        let n = 52 * 5 + 4;
        let y: Vec<f64> = (0..n).map(|t| (10.0 * (0.004 * t as f64).exp() + [0.0, 2.0, -1.0][t % 3]).round()).collect();
        let last = *farrington(&y, &Params::default()).unwrap().last().unwrap();
        assert_eq!(last.trend_used, Some(false), "the prediction extrapolates beyond the baseline: no trend");
        // A slow steady trend with one past outbreak at a window's edge: the
        // trend is significant and the prediction stays under that peak.
        let mut spiky: Vec<f64> = (0..n).map(|t| (10.0 + 0.05 * t as f64 + [0.0, 1.0, -1.0][t % 3]).round()).collect();
        spiky[n - 1 - 49] += 15.0;
        let last = *farrington(&spiky, &Params { reweight: false, ..Params::default() }).unwrap().last().unwrap();
        assert_eq!(last.trend_used, Some(true));
        assert!(last.trend_coef.unwrap() > 0.0);
        // Without the peak the prediction extrapolates: no trend.
        let plain: Vec<f64> = (0..n).map(|t| (10.0 + 0.05 * t as f64 + [0.0, 1.0, -1.0][t % 3]).round()).collect();
        let last = *farrington(&plain, &Params { reweight: false, ..Params::default() }).unwrap().last().unwrap();
        assert_eq!(last.trend_used, Some(false));
        // b < 3: never a trend.
        let p2 = Params { b: 2, reweight: false, ..Params::default() };
        assert!(farrington(&spiky, &p2).unwrap().iter().all(|o| o.trend_used == Some(false)));
    }

    #[test]
    fn date_based_reference_weeks_follow_the_calendar() {
        // Mondays from 2015-01-05 (2015-W02); 2015 and 2020 have 53 ISO weeks.
        let start = time::Date::from_calendar_date(2015, time::Month::January, 5).unwrap();
        let mondays: Vec<time::Date> = (0..400).map(|i| start + time::Duration::weeks(i)).collect();
        let p = Params { epoch_as_date: true, ..Params::default() };
        let k = 330;
        let refs = reference_weeks(k, &p, Some(&mondays)).unwrap();
        let offsets: Vec<usize> = refs.iter().map(|r| k - r).collect();
        // 52·i or 52·i + 1 weeks back, and not all 52·i.
        assert!(offsets.iter().zip(1..).all(|(o, i)| *o == 52 * i || *o == 52 * i + 1), "{offsets:?}");
        assert_ne!(offsets, [52, 104, 156, 208, 260]);
        assert_eq!(reference_weeks(k, &Params::default(), None).unwrap(), [278, 226, 174, 122, 70]);
        // A date before the series: no reference week.
        assert!(reference_weeks(200, &p, Some(&mondays)).is_none());
    }

    #[test]
    fn limit54_and_short_series() {
        let p = Params::default();
        // Too short: no rows.
        assert!(farrington(&vec![3.0; 200], &p).unwrap().is_empty());
        // A flat series with 1 case a week: 4 in the last 4 weeks < 5.
        let y = vec![1.0; p.first_week() + 2];
        let out = farrington(&y, &p).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|o| o.upperbound.is_none() && o.alarm == Some(false)));
        // A big outbreak on a flat series of 2 a week raises the alarm.
        let mut y = vec![2.0; p.first_week() + 1];
        *y.last_mut().unwrap() = 30.0;
        let last = *farrington(&y, &p).unwrap().last().unwrap();
        assert_eq!(last.alarm, Some(true));
        assert!(last.upperbound.unwrap() > 2.0 && last.upperbound.unwrap() < 30.0);
        assert!(farrington(&y, &Params { alpha: 0.0, ..p }).is_err());
    }
}
