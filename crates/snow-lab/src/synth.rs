//! Synthetic lab data for the demo and benchmarks: the lab database's raw
//! export (the input of `snow lab export`) for a region in northern Norway,
//! with realistic winter seasons — RSV peaking around New Year, influenza
//! A in February, influenza B later and smaller, SARS-CoV-2 in waves, and
//! a low endemic level of *Mycoplasma pneumoniae*; and a cluster of cases on
//! demand (the demo's outbreak).
//! Deterministic for a seed. Every person is made up: patient ids are
//! `SYN…` and can never look like a national identity number.

use std::io::Write;

use time::{Date, Duration};

use crate::export::RAW_COLUMNS;

/// Municipalities of the synthetic region and their relative sizes.
pub const MUNICIPALITIES: [(&str, f64); 8] = [
    ("5401", 1.0),  // Tromsø
    ("5402", 0.35), // Harstad
    ("5403", 0.3),  // Alta
    ("5406", 0.15), // Hammerfest
    ("5404", 0.1),  // Vardø
    ("1804", 0.7),  // Bodø
    ("1806", 0.3),  // Narvik
    ("1860", 0.15), // Vestvågøy
];

/// (analysis, peak ISO week, peak positives per week in the largest
/// municipality, season width in weeks, share of tests positive at peak).
const SEASONS: [(&str, f64, f64, f64, f64); 5] = [
    ("INFA", 6.0, 60.0, 3.5, 0.25),
    ("INFB", 11.0, 18.0, 3.0, 0.12),
    ("RSV", 52.0, 35.0, 3.0, 0.2),
    ("SARS2", 40.0, 20.0, 6.0, 0.1),
    ("MYCPN", 45.0, 0.5, 8.0, 0.03),
];

/// A small deterministic generator (SplitMix64): synthetic data only.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A Poisson draw (Knuth for small means, normal approximation above).
    fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let (mut k, mut p) = (0u64, 1.0);
            loop {
                p *= self.unit();
                if p <= limit {
                    return k;
                }
                k += 1;
            }
        }
        let (u1, u2) = (self.unit().max(1e-12), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (mean + z * mean.sqrt()).round().max(0.0) as u64
    }
}

/// Distance in weeks from `week` to the nearest `peak` (seasons wrap).
fn weeks_from_peak(week: f64, peak: f64) -> f64 {
    let d = (week - peak).abs() % 52.0;
    d.min(52.0 - d)
}

/// Writes the raw export for the `weeks` ISO weeks up to `today` (sample
/// dates never after it). Returns the number of rows.
pub fn raw_export(out: impl Write, today: Date, weeks: u32, seed: u64) -> std::io::Result<u64> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(RAW_COLUMNS)?;
    let mut rng = Rng(seed);
    let monday = today - Duration::days(i64::from(today.weekday().number_days_from_monday()));
    let mut n = 0u64;
    for back in (0..weeks).rev() {
        let start = monday - Duration::weeks(i64::from(back));
        let week = f64::from(start.iso_week());
        for (muni, size) in MUNICIPALITIES {
            for (analysis, peak, height, width, positivity) in SEASONS {
                let d = weeks_from_peak(week, peak);
                let season = (-0.5 * (d / width).powi(2)).exp();
                let positives = rng.poisson(height * size * season + 0.3 * size);
                let tested = positives + rng.poisson((height * size / positivity) * (0.3 + 0.7 * season) + 4.0 * size);
                for i in 0..tested {
                    let day = start + Duration::days(rng.below(7) as i64);
                    if day > today {
                        continue;
                    }
                    n += 1;
                    write_row(&mut w, &mut rng, seed, n, muni, size, day, analysis, i < positives)?;
                }
            }
        }
    }
    w.flush()?;
    Ok(n)
}

/// One raw row: a made-up person of the municipality's pool.
#[allow(clippy::too_many_arguments)]
fn write_row<W: Write>(
    w: &mut csv::Writer<W>,
    rng: &mut Rng,
    seed: u64,
    n: u64,
    muni: &str,
    size: f64,
    day: Date,
    analysis: &str,
    positive: bool,
) -> std::io::Result<()> {
    // Young children and the old are tested most.
    let age = match rng.below(10) {
        0..=2 => rng.below(5),
        3..=4 => 65 + rng.below(30),
        _ => 5 + rng.below(60),
    };
    let birth = day - Duration::days((age * 365 + rng.below(365)) as i64);
    let sex = if rng.below(2) == 0 { "M" } else { "K" };
    // A pool per municipality, so a person may be tested again.
    let patient = format!("SYN{muni}{:06}", rng.below((40_000.0 * size) as u64));
    let result = if positive { "POS" } else { "NEG" };
    w.write_record([
        format!("S{seed:x}-{n:09}").as_str(),
        &patient,
        &birth.to_string(),
        sex,
        muni,
        &day.to_string(),
        analysis,
        result,
    ])?;
    Ok(())
}

/// A cluster: `cases` positive tests (and as many negative) of `analysis`
/// in `municipality` during the ISO week that starts on `monday`, as a raw
/// export of its own (sample ids distinct from [`raw_export`]'s for a
/// different `seed`). Returns the number of rows.
pub fn cluster(
    out: impl Write,
    analysis: &str,
    municipality: &str,
    monday: Date,
    cases: u64,
    seed: u64,
) -> std::io::Result<u64> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(RAW_COLUMNS)?;
    let mut rng = Rng(seed);
    let size = MUNICIPALITIES.iter().find(|(m, _)| *m == municipality).map(|(_, s)| *s).unwrap_or(0.1);
    for n in 0..2 * cases {
        let day = monday + Duration::days(rng.below(7) as i64);
        write_row(&mut w, &mut rng, seed, n + 1, municipality, size, day, analysis, n < cases)?;
    }
    w.flush()?;
    Ok(2 * cases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{export, Pseudonymiser};
    use crate::LabSettings;

    #[test]
    fn the_synthetic_season_exports_cleanly_and_peaks_in_winter() {
        let today = Date::from_calendar_date(2026, time::Month::April, 1).unwrap();
        let mut raw = Vec::new();
        let rows = raw_export(&mut raw, today, 30, 7).unwrap();
        assert!(rows > 5_000, "{rows}");
        let mut again = Vec::new();
        raw_export(&mut again, today, 30, 7).unwrap();
        assert_eq!(raw, again, "not deterministic");
        let p = Pseudonymiser::new(b"demo secret, 16+ bytes").unwrap();
        let mut out = Vec::new();
        let n = export(&raw[..], &mut out, &p, &LabSettings::default(), today, |_| {}).unwrap();
        assert_eq!(n, rows);
        // Influenza A positives around week 6 outnumber those of week 13.
        let text = String::from_utf8(raw).unwrap();
        let count = |from: &str, to: &str| {
            text.lines()
                .filter(|l| l.contains(",INFA,POS") && l.split(',').nth(5).is_some_and(|d| d >= from && d <= to))
                .count()
        };
        assert!(count("2026-02-02", "2026-02-08") > 3 * count("2026-03-23", "2026-03-29"));
    }
}
