//! The distribution functions Farrington-flexible needs, to the accuracy
//! that makes its decisions agree with R: the normal CDF, Student's t CDF
//! (the trend test), and quantiles and upper tails of the Poisson and
//! negative binomial distributions (the `nbPlugin` threshold).

/// Φ(x), the standard normal CDF.
pub fn pnorm(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// ln Γ(x) for x > 0.
fn lgamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// The regularized incomplete beta function I_x(a, b), by the continued
/// fraction (modified Lentz), using the symmetry for fast convergence.
pub fn pbeta(x: f64, a: f64, b: f64) -> f64 {
    if x.is_nan() || a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = lgamma(a + b) - lgamma(a) - lgamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(1.0 - x, b, a) / b
    }
}

fn beta_cf(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let nonzero = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / nonzero(1.0 - qab * x / qap);
    let mut h = d;
    // One modified-Lentz step with coefficient `aa`; returns its factor.
    let step = |aa: f64, c: &mut f64, d: &mut f64| {
        *d = 1.0 / nonzero(1.0 + aa * *d);
        *c = nonzero(1.0 + aa / *c);
        *d * *c
    };
    for m in 1..=10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)), &mut c, &mut d);
        let del = step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)), &mut c, &mut d);
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub fn pt(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 1.0 } else { 0.0 };
    }
    let tail = 0.5 * pbeta(df / (df + t * t), df / 2.0, 0.5);
    if t < 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

/// A count distribution for the `nbPlugin` threshold: negative binomial
/// with mean `mean` and variance `phi·mean` when phi > 1, else Poisson.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    mean: f64,
    /// `size` of the negative binomial; `None` for Poisson.
    size: Option<f64>,
    phi: f64,
}

impl Counts {
    pub fn new(mean: f64, phi: f64) -> Counts {
        // R: size = μ/(φ − 1), prob = 1/φ.
        let size = (phi > 1.0).then(|| mean / (phi - 1.0));
        Counts { mean, size, phi }
    }

    /// ln P(Y = k).
    fn ln_pmf(&self, k: f64) -> f64 {
        match self.size {
            Some(size) => {
                let prob = 1.0 / self.phi;
                lgamma(k + size) - lgamma(size) - lgamma(k + 1.0) + size * prob.ln() + k * (1.0 - prob).ln()
            }
            None if self.mean == 0.0 => {
                if k == 0.0 {
                    0.0
                } else {
                    f64::NEG_INFINITY
                }
            }
            None => k * self.mean.ln() - self.mean - lgamma(k + 1.0),
        }
    }

    /// The counts whose probabilities are summed: from far below the mean
    /// (what lies under it is below 1e-300) to far above. `None` when that
    /// span is absurdly wide (a weekly count beyond any laboratory's).
    fn span(&self) -> Option<(f64, f64)> {
        if !self.mean.is_finite() || self.mean < 0.0 {
            return None;
        }
        let sd = (self.mean * self.phi.max(1.0)).sqrt();
        let (lo, hi) = ((self.mean - 40.0 * sd).floor().max(0.0), (self.mean + 100.0 * sd + 100.0).ceil());
        (hi - lo <= MAX_TERMS).then_some((lo, hi))
    }

    /// The (1 − alpha) quantile as R's `qnbinom`/`qpois` give it: the
    /// smallest x with F(x) ≥ p·(1 − 64·eps). The CDF is summed from the
    /// bottom, smallest terms first.
    pub fn quantile(&self, p: f64) -> Option<f64> {
        let (lo, hi) = self.span()?;
        let target = p * (1.0 - 64.0 * f64::EPSILON);
        let mut cdf = 0.0;
        let mut k = lo;
        while k < hi {
            cdf += self.ln_pmf(k).exp();
            if cdf >= target {
                return Some(k);
            }
            k += 1.0;
        }
        Some(hi)
    }

    /// P(Y ≥ y); NaN where the distribution is out of reach.
    pub fn upper_tail(&self, y: f64) -> f64 {
        let Some((lo, hi)) = self.span() else { return f64::NAN };
        if y <= lo {
            return 1.0;
        }
        if y > hi {
            return 0.0;
        }
        let mut below = 0.0;
        let mut k = lo;
        while k < y {
            below += self.ln_pmf(k).exp();
            k += 1.0;
        }
        (1.0 - below).max(0.0)
    }
}

/// Most terms summed for one quantile or tail (a mean of about 10⁹).
const MAX_TERMS: f64 = 1e7;

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    /// Values from R 4.2.2.
    #[test]
    fn agree_with_r() {
        assert!(close(pnorm(1.6448536269514715), 0.95, 1e-15));
        assert!(close(pnorm(-3.0), 0.0013498980316300946, 1e-13));
        // pt(-2.1, 33) and pt(0.7, 5)
        assert!(close(pt(-2.1, 33.0), 0.021727309805133453, 1e-10), "{}", pt(-2.1, 33.0));
        assert!(close(pt(0.7, 5.0), 0.7424255258425918, 1e-10), "{}", pt(0.7, 5.0));
        // qpois(0.95, 3.2) = 6; qnbinom(0.95, size = 2.5, prob = 0.4) = 10
        assert_eq!(Counts::new(3.2, 1.0).quantile(0.95), Some(6.0));
        // size = mean/(phi-1) = 2.5 with prob = 1/phi = 0.4: phi = 2.5, mean = 3.75
        assert_eq!(Counts::new(3.75, 2.5).quantile(0.95), Some(10.0));
        // ppois(4, 3.2, lower = FALSE) = P(Y >= 5) = 0.21939
        assert!(close(Counts::new(3.2, 1.0).upper_tail(5.0), 0.21938748893269563, 1e-12));
        assert_eq!(Counts::new(0.0, 1.0).quantile(0.95), Some(0.0));
    }
}
