//! Range checks for numeric settings, one rule for every configuration
//! section (`[server]`, `[lab]`, `[smtp]`, …): a site with a mistyped
//! number is refused at startup with the key and the allowed range, not
//! later with a panic or a silent misbehaviour.

/// Checks that the setting `key` lies in `lo..=hi`; the error names the
/// key, its value and the range. NaN lies in no range, and infinity in
/// none of ours, so neither gets past.
pub fn range<T: PartialOrd + std::fmt::Display>(key: &str, value: T, lo: T, hi: T) -> Result<(), String> {
    if value >= lo && value <= hi {
        return Ok(());
    }
    Err(format!("{key} = {value} is out of range: it must be from {lo} to {hi}"))
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn nan_infinity_and_out_of_range_values_are_refused_by_key() {
        assert!(range("a", 1.5, 0.0, 2.0).is_ok());
        assert!(range("a", 2u64, 2, 2).is_ok());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.1, 2.1] {
            let e = range("x.alpha", bad, 0.0, 2.0).unwrap_err();
            assert!(e.starts_with("x.alpha = ") && e.ends_with("it must be from 0 to 2"), "{e}");
        }
        assert_eq!(range("k", 0u64, 1, 10).unwrap_err(), "k = 0 is out of range: it must be from 1 to 10");
    }
}
