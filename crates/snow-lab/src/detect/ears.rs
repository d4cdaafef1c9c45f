//! EARS C1, C2 and C3 exactly as the R package `surveillance` 1.20.3
//! computes them (`earsC`), following `docs/detection-algorithms.md` §1, quirks
//! included: C3 is the package's own construction, NaN propagates through
//! `max(0, ·)` like R's `pmax`, and the alarm is a strict comparison.

use super::normal::qnorm;

/// Which EARS method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    C1,
    C2,
    C3,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::C1 => "C1",
            Method::C2 => "C2",
            Method::C3 => "C3",
        }
    }

    /// The alpha the package uses when the caller's control list leaves it
    /// out: 0.001, except 0.025 for C3 (the "alpha default trap").
    pub fn default_alpha(self) -> f64 {
        match self {
            Method::C3 => 0.025,
            _ => 0.001,
        }
    }
}

/// Control parameters (`earsC`'s `control`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub method: Method,
    /// Weeks in the baseline window (≥ 3; default 7).
    pub baseline: usize,
    pub alpha: f64,
    /// Floor for the standard deviation (≥ 0; default 0).
    pub min_sigma: f64,
}

impl Params {
    pub fn new(method: Method) -> Params {
        Params { method, baseline: 7, alpha: method.default_alpha(), min_sigma: 0.0 }
    }
}

impl Params {
    /// The reference files' label: `EARS_C1`, `EARS_C2`, `EARS_C3`, and
    /// `EARS_C3_alpha0.025` for C3 at the package's default alpha.
    /// The first week (1-based) the method can judge: the baseline (and
    /// C2's and C3's lag) must lie in the series.
    pub fn first_week(&self) -> usize {
        match self.method {
            Method::C1 => self.baseline + 1,
            Method::C2 => self.baseline + 3,
            Method::C3 => self.baseline + 5,
        }
    }

    pub fn label(&self) -> String {
        match self.method {
            Method::C3 if self.alpha == 0.025 => "EARS_C3_alpha0.025".to_owned(),
            m => format!("EARS_{}", m.name()),
        }
    }
}

/// Why the parameters were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("baseline must be at least 3 weeks")]
    Baseline,
    #[error("alpha must be between 0 and 1")]
    Alpha,
    #[error("minSigma must be 0 or more")]
    MinSigma,
}

/// One monitored week.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Output {
    /// 1-based index into the series.
    pub t: usize,
    pub observed: f64,
    /// None where R gives NA (a NaN threshold).
    pub upperbound: Option<f64>,
    pub alarm: Option<bool>,
}

fn mean(w: &[f64]) -> f64 {
    w.iter().sum::<f64>() / w.len() as f64
}

/// Sample standard deviation (divisor m − 1), two-pass like R's `sd`.
fn sd(w: &[f64]) -> f64 {
    let m = mean(w);
    (w.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (w.len() - 1) as f64).sqrt()
}

/// R's `pmax(0, x)`: NaN stays NaN (`f64::max` would give 0).
fn pmax0(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else {
        x.max(0.0)
    }
}

/// Runs the method over `y` (weekly counts, oldest first, no gaps).
pub fn ears(y: &[f64], p: &Params) -> Result<Vec<Output>, ParamError> {
    if p.baseline < 3 {
        return Err(ParamError::Baseline);
    }
    if !(p.alpha > 0.0 && p.alpha < 1.0) {
        return Err(ParamError::Alpha);
    }
    if p.min_sigma.is_nan() || p.min_sigma < 0.0 {
        return Err(ParamError::MinSigma);
    }
    let b = p.baseline;
    let z = qnorm(1.0 - p.alpha);
    let n = y.len();
    // 1-based t: B1(t) = y[t−b..=t−1], B2(t) = y[t−b−2..=t−3].
    let window1 = |t: usize| &y[t - 1 - b..t - 1];
    let window2 = |t: usize| &y[t - 3 - b..t - 3];
    let stats = |w: &[f64]| (mean(w), sd(w).max(p.min_sigma));
    // C2's statistic for week u (defined for u ≥ b + 3).
    let c2_stat = |u: usize| {
        let (m, s) = stats(window2(u));
        (y[u - 1] - m) / s
    };
    let first = p.first_week();
    let mut out = Vec::with_capacity(n.saturating_sub(first - 1));
    for t in first..=n {
        let obs = y[t - 1];
        let u = match p.method {
            Method::C1 => {
                let (m, s) = stats(window1(t));
                m + z * s
            }
            Method::C2 => {
                let (m, s) = stats(window2(t));
                m + z * s
            }
            Method::C3 => {
                let (_, s) = stats(window2(t));
                let pp = |u: usize| pmax0(c2_stat(u) - 1.0);
                pmax0(obs + s * (z - pp(t - 2) - pp(t - 1)))
            }
        };
        let (upperbound, alarm) = if u.is_nan() { (None, None) } else { (Some(u), Some(obs > u)) };
        out.push(Output { t, observed: obs, upperbound, alarm });
    }
    Ok(out)
}

// docs/detection-algorithms.md quotes z with 17 digits; the tests use them as written.
#[allow(clippy::excessive_precision)]
#[cfg(test)]
mod tests {
    use super::*;

    fn run(method: Method, y: &[f64]) -> Vec<Output> {
        ears(y, &Params { alpha: 0.001, ..Params::new(method) }).unwrap()
    }

    #[test]
    fn monitored_ranges_and_c1_by_hand() {
        let y: Vec<f64> = (1..=20).map(|i| f64::from(i % 5)).collect();
        assert_eq!(run(Method::C1, &y)[0].t, 8);
        assert_eq!(run(Method::C2, &y)[0].t, 10);
        assert_eq!(run(Method::C3, &y)[0].t, 12);
        assert_eq!(run(Method::C1, &y).len(), 13);
        // t = 8: baseline y[1..=7] = 1,2,3,4,0,1,2.
        let w = [1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 2.0];
        let want = mean(&w) + 3.0902323061678132 * sd(&w);
        assert_eq!(run(Method::C1, &y)[0].upperbound, Some(want));
    }

    #[test]
    fn sd_zero_gives_the_mean_and_the_alarm_is_strict() {
        let mut y = vec![2.0; 12];
        y[7] = 2.0; // equal to the mean: no alarm
        y[8] = 3.0; // above it: alarm
        let r = run(Method::C1, &y);
        assert_eq!((r[0].upperbound, r[0].alarm), (Some(2.0), Some(false)));
        assert_eq!(r[1].alarm, Some(true));
    }

    #[test]
    fn c3_propagates_nan_through_zero_stretches() {
        // All zeros: every C2 statistic is 0/0, so C3's bound is NA.
        let r = run(Method::C3, &[0.0; 16]);
        assert!(r.iter().all(|o| o.upperbound.is_none() && o.alarm.is_none()));
        // With minSigma the same series is finite and quiet.
        let p = Params { min_sigma: 1.0, ..Params::new(Method::C3) };
        let r = ears(&[0.0; 16], &p).unwrap();
        assert!(r.iter().all(|o| o.alarm == Some(false)));
    }

    #[test]
    fn c3_is_the_packages_construction() {
        // Two high weeks before t raise P(t−1) + P(t−2) above z; the bound
        // starts from y[t], so any y[t] > 0 alarms once that happens.
        let mut y = vec![10.0, 12.0, 9.0, 11.0, 10.0, 13.0, 9.0, 11.0, 10.0, 12.0, 40.0, 45.0, 5.0];
        let r = run(Method::C3, &y);
        let last = r.last().unwrap();
        assert_eq!(last.t, 13);
        let s = sd(&y[3..10]).max(0.0);
        let pp = |u: usize| {
            let w = &y[u - 10..u - 3];
            pmax0((y[u - 1] - mean(w)) / sd(w) - 1.0)
        };
        let want = pmax0(5.0 + s * (3.0902323061678132 - pp(11) - pp(12)));
        assert_eq!(last.upperbound, Some(want));
        assert_eq!(last.alarm, Some(5.0 > want));
        y[12] = 0.0;
        assert_eq!(run(Method::C3, &y).last().unwrap().alarm, Some(false));
    }

    #[test]
    fn the_alpha_default_trap_and_bad_parameters() {
        assert_eq!(Params::new(Method::C3).alpha, 0.025);
        assert_eq!(Params::new(Method::C2).alpha, 0.001);
        assert_eq!(ears(&[1.0; 9], &Params { baseline: 2, ..Params::new(Method::C1) }), Err(ParamError::Baseline));
        assert_eq!(ears(&[1.0; 9], &Params { alpha: 1.0, ..Params::new(Method::C1) }), Err(ParamError::Alpha));
        // Too short for any monitored week: no rows, no panic.
        assert!(run(Method::C3, &[1.0; 5]).is_empty());
    }
}
