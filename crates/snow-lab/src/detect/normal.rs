//! The standard normal quantile Φ⁻¹, by Wichura's algorithm AS 241
//! (PPND16, Applied Statistics 37, 1988): the algorithm R's `qnorm` uses,
//! accurate to about 1e-16, so thresholds agree with the reference.

/// Φ⁻¹(p) for 0 < p < 1; ±∞ at 0 and 1, NaN outside.
// The coefficients are written as AS 241 publishes them, so they can be
// checked against the paper digit by digit.
#[allow(clippy::excessive_precision)]
pub fn qnorm(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q
            * (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r + 67265.770927008700853) * r
                + 45921.953931549871457)
                * r
                + 13731.693765509461125)
                * r
                + 1971.5909503065514427)
                * r
                + 133.14166789178437745)
                * r
                + 3.387132872796366608)
            / (((((((r * 5226.495278852545925 + 28729.085735721942674) * r + 39307.89580009271061) * r
                + 21213.794301586595867)
                * r
                + 5394.1960214247511077)
                * r
                + 687.1870074920579083)
                * r
                + 42.313330701600911252)
                * r
                + 1.0);
    }
    let mut r = if q < 0.0 { p } else { 1.0 - p };
    r = (-r.ln()).sqrt();
    let val = if r <= 5.0 {
        r -= 1.6;
        (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r + 0.24178072517745061177) * r
            + 1.27045825245236838258)
            * r
            + 3.64784832476320460504)
            * r
            + 5.7694972214606914055)
            * r
            + 4.6303378461565452959)
            * r
            + 1.42343711074968357734)
            / (((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r
                + 0.14810397642748007459)
                * r
                + 0.68976733498510000455)
                * r
                + 1.6763848301838038494)
                * r
                + 2.05319162663775882187)
                * r
                + 1.0)
    } else {
        r -= 5.0;
        (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r
            + 0.026532189526576123093)
            * r
            + 0.29656057182850489123)
            * r
            + 1.7848265399172913358)
            * r
            + 5.4637849111641143699)
            * r
            + 6.6579046435011037772)
            / (((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r
                + 7.868691311456132591e-4)
                * r
                + 0.0148753612908506148525)
                * r
                + 0.13692988092273580531)
                * r
                + 0.59983220655588793769)
                * r
                + 1.0)
    };
    if q < 0.0 {
        -val
    } else {
        val
    }
}

// docs/detection-algorithms.md quotes z with 17 digits; the tests use them as written.
#[allow(clippy::excessive_precision)]
#[cfg(test)]
mod tests {
    use super::qnorm;

    #[test]
    fn the_values_surveillance_md_quotes() {
        // docs/detection-algorithms.md §1: z for alpha 0.001 and 0.025 (R's qnorm).
        assert_eq!(qnorm(1.0 - 0.001), 3.0902323061678132);
        assert_eq!(qnorm(1.0 - 0.025), 1.9599639845400536);
        assert_eq!(qnorm(0.5), 0.0);
        assert!((qnorm(0.975) + qnorm(0.025)).abs() < 1e-15);
        assert!((qnorm(1e-300) + 37.0470962993612).abs() < 1e-9, "Python statistics.NormalDist (also AS 241)");
        assert!(qnorm(1.5).is_nan() && qnorm(0.0) == f64::NEG_INFINITY);
    }
}
