//! The Poisson (and quasi-Poisson) GLM with log link, fitted by iteratively
//! reweighted least squares exactly as R's `glm.fit` does it
//! (docs/detection-algorithms.md §2.3): start at `μ = y + 0.1`, at most 25 iterations,
//! the relative deviance change below 1e-8 for convergence, and the
//! working weights of the *last* iteration kept for the dispersion, the
//! covariance and the hat values. Replicating that path, rather than
//! solving the likelihood to the last digit, is what makes the thresholds
//! agree with the reference to about 1e-11.

/// Iterations before giving up (`glm.control()$maxit`).
const MAX_ITER: usize = 25;
/// `glm.control()$epsilon`.
const EPSILON: f64 = 1e-8;

/// A design matrix: `n` rows of `q` covariates, row-major.
#[derive(Debug, Clone)]
pub struct Design {
    pub n: usize,
    pub q: usize,
    pub x: Vec<f64>,
}

impl Design {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.q..(i + 1) * self.q]
    }
}

/// A fitted model.
#[derive(Debug, Clone)]
pub struct Fit {
    pub converged: bool,
    pub beta: Vec<f64>,
    pub mu: Vec<f64>,
    /// The working weights of the last least-squares step (prior weight
    /// times the μ before that step).
    pub w_last: Vec<f64>,
    /// `(Xᵀ diag(w_last) X)⁻¹`, q×q row-major (R's `cov.unscaled`).
    pub cov_unscaled: Vec<f64>,
    /// Residual degrees of freedom, n − q.
    pub df: usize,
}

impl Fit {
    /// Pearson dispersion with weights `w`: Σ wᵢ((yᵢ − μᵢ)/μᵢ)² / df. With
    /// the last working weights this is `summary.glm`'s dispersion.
    pub fn dispersion_with(&self, y: &[f64], w: &[f64]) -> f64 {
        let s: f64 = y.iter().zip(&self.mu).zip(w).map(|((y, m), w)| w * ((y - m) / m).powi(2)).sum();
        s / self.df as f64
    }

    /// `xᵀ C x` for a row of covariates.
    pub fn quad(&self, x: &[f64]) -> f64 {
        let q = x.len();
        let mut s = 0.0;
        for i in 0..q {
            for j in 0..q {
                s += x[i] * self.cov_unscaled[i * q + j] * x[j];
            }
        }
        s
    }

    /// The hat value of observation `i`: wᵢ · xᵢᵀ C xᵢ.
    pub fn hat(&self, d: &Design, i: usize) -> f64 {
        self.w_last[i] * self.quad(d.row(i))
    }
}

/// `pmax(exp(η), .Machine$double.eps)`: R's log-link inverse.
fn linkinv(eta: f64) -> f64 {
    eta.exp().max(f64::EPSILON)
}

/// The Poisson deviance with prior weights.
fn deviance(y: &[f64], mu: &[f64], prior: &[f64]) -> f64 {
    let mut d = 0.0;
    for ((&y, &m), &w) in y.iter().zip(mu).zip(prior) {
        d += if y > 0.0 { w * (y * (y / m).ln() - (y - m)) } else { w * m };
    }
    2.0 * d
}

/// Weighted least squares by Householder QR of `sqrt(W)·X`: the
/// coefficients and `(XᵀWX)⁻¹`. `None` if the design is rank deficient.
fn wls(d: &Design, z: &[f64], w: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let (n, q) = (d.n, d.q);
    // Column-major copy of sqrt(W)·X, and sqrt(W)·z.
    let mut a = vec![0.0; n * q];
    let mut b = vec![0.0; n];
    for i in 0..n {
        let s = w[i].sqrt();
        for j in 0..q {
            a[j * n + i] = d.x[i * q + j] * s;
        }
        b[i] = z[i] * s;
    }
    let mut diag = vec![0.0; q];
    for j in 0..q {
        let col = &mut a[j * n..(j + 1) * n];
        let norm = col[j..].iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return None;
        }
        let alpha = if col[j] > 0.0 { -norm } else { norm };
        col[j] -= alpha;
        let vnorm2: f64 = col[j..].iter().map(|v| v * v).sum();
        diag[j] = alpha;
        if vnorm2 == 0.0 {
            continue;
        }
        // Apply H = I − 2vvᵀ/(vᵀv) to the remaining columns and to b.
        let (left, right) = a.split_at_mut((j + 1) * n);
        let v = &left[j * n + j..(j + 1) * n];
        for k in j + 1..q {
            let c = &mut right[(k - j - 1) * n + j..(k - j) * n];
            let f = 2.0 * v.iter().zip(c.iter()).map(|(v, c)| v * c).sum::<f64>() / vnorm2;
            for (c, v) in c.iter_mut().zip(v) {
                *c -= f * v;
            }
        }
        let f = 2.0 * v.iter().zip(&b[j..]).map(|(v, b)| v * b).sum::<f64>() / vnorm2;
        for (b, v) in b[j..].iter_mut().zip(v) {
            *b -= f * v;
        }
    }
    // R: diagonal `diag`, above it the transformed columns.
    let r = |i: usize, j: usize| if i == j { diag[i] } else { a[j * n + i] };
    if (0..q).any(|i| r(i, i).abs() < 1e-11 * r(0, 0).abs().max(f64::MIN_POSITIVE)) {
        return None;
    }
    let mut beta = vec![0.0; q];
    for i in (0..q).rev() {
        let s: f64 = (i + 1..q).map(|j| r(i, j) * beta[j]).sum();
        beta[i] = (b[i] - s) / r(i, i);
    }
    // R⁻¹ (upper triangular), then C = R⁻¹ R⁻ᵀ.
    let mut rinv = vec![0.0; q * q];
    for j in 0..q {
        rinv[j * q + j] = 1.0 / r(j, j);
        for i in (0..j).rev() {
            let s: f64 = (i + 1..=j).map(|k| r(i, k) * rinv[k * q + j]).sum();
            rinv[i * q + j] = -s / r(i, i);
        }
    }
    let mut c = vec![0.0; q * q];
    for i in 0..q {
        for j in 0..q {
            c[i * q + j] = (i.max(j)..q).map(|k| rinv[i * q + k] * rinv[j * q + k]).sum();
        }
    }
    Some((beta, c))
}

/// Fits `log μ = Xβ` to counts `y` with prior weights `prior`. `None` when
/// the fit breaks down (a rank-deficient design, a deviance that cannot be
/// made finite); otherwise the fit, converged or not.
pub fn fit(d: &Design, y: &[f64], prior: &[f64]) -> Option<Fit> {
    let n = d.n;
    let mut mu: Vec<f64> = y.iter().map(|y| y + 0.1).collect();
    let mut eta: Vec<f64> = mu.iter().map(|m| m.ln()).collect();
    let mut dev_old = deviance(y, &mu, prior);
    // The coefficients and covariance of the last step.
    let mut last: Option<(Vec<f64>, Vec<f64>)> = None;
    let mut z = vec![0.0; n];
    let mut w = vec![0.0; n];
    let predict = |beta: &[f64], eta: &mut [f64], mu: &mut [f64]| {
        for i in 0..n {
            eta[i] = d.row(i).iter().zip(beta).map(|(x, b)| x * b).sum();
            mu[i] = linkinv(eta[i]);
        }
    };
    for _ in 0..MAX_ITER {
        for i in 0..n {
            // mu.eta(η) = pmax(exp(η), eps), which is μ for the log link.
            let me = linkinv(eta[i]);
            z[i] = eta[i] + (y[i] - mu[i]) / me;
            w[i] = prior[i] * me * me / mu[i];
        }
        // The covariance stays the one of this least-squares step even if
        // the step is halved below (R keeps the step's QR).
        let (mut beta, cov) = wls(d, &z, &w)?;
        predict(&beta, &mut eta, &mut mu);
        let mut dev = deviance(y, &mu, prior);
        // R halves the step until the deviance is finite.
        let mut halvings = 0;
        while !dev.is_finite() {
            let (old, _) = last.as_ref()?;
            halvings += 1;
            if halvings > MAX_ITER {
                return None;
            }
            for (b, o) in beta.iter_mut().zip(old) {
                *b = (*b + o) / 2.0;
            }
            predict(&beta, &mut eta, &mut mu);
            dev = deviance(y, &mu, prior);
        }
        if (dev - dev_old).abs() / (dev.abs() + 0.1) < EPSILON {
            return Some(Fit { converged: true, beta, mu, w_last: w, cov_unscaled: cov, df: n - d.q });
        }
        dev_old = dev;
        last = Some((beta, cov));
    }
    let (beta, cov) = last?;
    Some(Fit { converged: false, beta, mu, w_last: w, cov_unscaled: cov, df: n - d.q })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An intercept-only Poisson model is the mean; with a trend it is the
    /// log-linear fit through exact data.
    #[test]
    fn fits_what_it_should() {
        let y = [3.0, 5.0, 4.0, 6.0, 2.0];
        let d = Design { n: 5, q: 1, x: vec![1.0; 5] };
        let f = fit(&d, &y, &[1.0; 5]).unwrap();
        assert!(f.converged);
        assert!((f.beta[0].exp() - 4.0).abs() < 1e-9, "{}", f.beta[0].exp());
        // Exact exponential growth, doubled each step: β1 = ln 2.
        let y: Vec<f64> = (0..8).map(|t| 3.0 * 2f64.powi(t)).collect();
        let x: Vec<f64> = (0..8).flat_map(|t| [1.0, t as f64]).collect();
        let d = Design { n: 8, q: 2, x };
        let f = fit(&d, &y, &[1.0; 8]).unwrap();
        assert!((f.beta[1] - 2f64.ln()).abs() < 1e-7 && (f.beta[0] - 3f64.ln()).abs() < 1e-7, "{:?}", f.beta);
        // A constant covariate next to the intercept: rank deficient.
        let d = Design { n: 3, q: 2, x: vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0] };
        assert!(fit(&d, &[1.0, 2.0, 3.0], &[1.0; 3]).is_none());
    }
}
