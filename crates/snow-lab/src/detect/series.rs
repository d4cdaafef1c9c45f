//! Weekly series in and detection results out, in the formats of
//! `docs/detection-algorithms.md` §3: input `series,year,week,count` (ISO weeks, in
//! time order, no gaps), output
//! `algorithm,series,year,week,t,observed,upperbound,alarm` with numbers
//! as C's `%.17g`, `NA` for missing values and `TRUE`/`FALSE`/`NA` alarms;
//! Farrington adds its diagnostics
//! `expected,phi,trend_used,trend_coef,score,pvalue,mu0_quantile`.

use std::io::{Read, Write};

use snow_core::stats::IsoWeek;

use super::ears::{self, Params};
use super::farrington;

/// Most series, and most weeks in one series, read.
pub const MAX_SERIES: usize = 100_000;
pub const MAX_WEEKS: usize = 10_000;

/// One named weekly series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub weeks: Vec<IsoWeek>,
    pub counts: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("line {line}: {reason}")]
    Line { line: u64, reason: String },
    #[error("the header must be series,year,week,count")]
    Header,
    #[error("CSV error: {0}")]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Params(#[from] ears::ParamError),
    #[error(transparent)]
    Farrington(#[from] farrington::ParamError),
    #[error("writing failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads series (in order of first appearance); each must run through
/// consecutive ISO weeks.
pub fn read_csv(input: impl Read) -> Result<Vec<Series>, SeriesError> {
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
    let header: Vec<String> = r.headers()?.iter().map(|h| h.trim().to_owned()).collect();
    if header != ["series", "year", "week", "count"] {
        return Err(SeriesError::Header);
    }
    let mut all: Vec<Series> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (i, rec) in r.records().enumerate() {
        let line = i as u64 + 2;
        let bad = |reason: &str| SeriesError::Line { line, reason: reason.to_owned() };
        let rec = rec?;
        let (Some(name), Some(year), Some(week), Some(count)) = (rec.get(0), rec.get(1), rec.get(2), rec.get(3)) else {
            return Err(bad("expected 4 fields"));
        };
        let week = match (year.trim().parse::<i32>(), week.trim().parse::<u8>()) {
            (Ok(y), Ok(w)) => IsoWeek::new(y, w).ok_or_else(|| bad("no such ISO week"))?,
            _ => return Err(bad("year and week must be numbers")),
        };
        let count: f64 = count.trim().parse().map_err(|_| bad("count must be a number"))?;
        if !(count.is_finite() && count >= 0.0) {
            return Err(bad("count must be a finite number ≥ 0"));
        }
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(bad("series name must be 1 to 200 characters"));
        }
        let k = match index.get(name) {
            Some(k) => *k,
            None => {
                if all.len() == MAX_SERIES {
                    return Err(bad("too many series"));
                }
                index.insert(name.to_owned(), all.len());
                all.push(Series { name: name.to_owned(), weeks: Vec::new(), counts: Vec::new() });
                all.len() - 1
            }
        };
        let s = &mut all[k];
        if let Some(last) = s.weeks.last() {
            if last.next() != week {
                return Err(bad(&format!(
                    "series {name}: week {week} does not follow {last} (no gaps, in time order)"
                )));
            }
        }
        if s.weeks.len() == MAX_WEEKS {
            return Err(bad("series too long"));
        }
        s.weeks.push(week);
        s.counts.push(count);
    }
    Ok(all)
}

/// C's `%.17g`: 17 significant digits, trailing zeros removed, exponent
/// form below 1e-4 or from 1e17.
pub fn g17(x: f64) -> String {
    if x.is_nan() {
        return "NA".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let e = format!("{x:.16e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if (-4..17).contains(&exp) {
        let decimals = (16 - exp).max(0) as usize;
        trim(format!("{x:.decimals$}"))
    } else {
        let m = trim(mantissa.to_owned());
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

fn alarm_text(a: Option<bool>) -> &'static str {
    match a {
        Some(true) => "TRUE",
        Some(false) => "FALSE",
        None => "NA",
    }
}

/// A series name as a CSV field. The name is text from the input file
/// (perhaps made elsewhere), so it goes through [`snow_core::csv::cell`]:
/// a name a spreadsheet would run gets a `'` in front. The numbers beside
/// it are our own `%.17g` output (`-1.5`, `NA`, `-Inf`), written as they
/// are: this is the reference format compared with R's output
/// (`scripts/interop`), and a number is not a formula.
fn csv_field(name: &str) -> String {
    snow_core::csv::cell(name).into_owned()
}

fn na(x: Option<f64>) -> String {
    x.map(g17).unwrap_or_else(|| "NA".into())
}

/// The reference files' label of a Farrington configuration: `FF_default`,
/// `FF_b3`, `FF_noufaily_b3`, else `FF`.
pub fn farrington_label(p: &farrington::Params) -> &'static str {
    let d = farrington::Params::default();
    let noufaily = farrington::Params {
        b: 3,
        no_periods: 10,
        past_weeks_not_included: Some(26),
        threshold_method: farrington::ThresholdMethod::NbPlugin,
        ..d
    };
    let plain = farrington::Params { past_weeks_not_included: p.past_weeks_not_included.filter(|&x| x != p.w), ..*p };
    if plain == d {
        "FF_default"
    } else if plain == (farrington::Params { epoch_as_date: true, ..d }) {
        "FF_default_dates"
    } else if plain == (farrington::Params { b: 3, ..d }) {
        "FF_b3"
    } else if *p == noufaily {
        "FF_noufaily_b3"
    } else {
        "FF"
    }
}

/// Runs Farrington-flexible over every series and writes the
/// reference-file rows with the diagnostics.
pub fn write_farrington_csv(
    out: &mut impl Write,
    series: &[Series],
    p: &farrington::Params,
) -> Result<(), SeriesError> {
    let label = farrington_label(p);
    writeln!(
        out,
        "algorithm,series,year,week,t,observed,upperbound,alarm,expected,phi,trend_used,trend_coef,score,pvalue,mu0_quantile"
    )?;
    for s in series {
        let name = csv_field(&s.name);
        let mondays: Vec<time::Date> = s.weeks.iter().map(|w| w.thursday() - time::Duration::days(3)).collect();
        for o in farrington::farrington_from(&s.counts, Some(&mondays), p, 1)? {
            let w = s.weeks[o.t - 1];
            let trend = o.trend_used.map(|t| if t { "1" } else { "0" }).unwrap_or("NA");
            writeln!(
                out,
                "{label},{name},{},{},{},{},{},{},{},{},{trend},{},{},{},{}",
                w.year(),
                w.week(),
                o.t,
                g17(o.observed),
                na(o.upperbound),
                alarm_text(o.alarm),
                na(o.expected),
                na(o.phi),
                na(o.trend_coef),
                na(o.score),
                na(o.pvalue),
                na(o.mu0_quantile),
            )?;
        }
    }
    Ok(())
}

/// Runs EARS over every series and writes the reference-file rows.
pub fn write_ears_csv(out: &mut impl Write, series: &[Series], p: &Params) -> Result<(), SeriesError> {
    let label = p.label();
    writeln!(out, "algorithm,series,year,week,t,observed,upperbound,alarm")?;
    for s in series {
        for o in ears::ears(&s.counts, p)? {
            let w = s.weeks[o.t - 1];
            let (name, alarm, ub) = (csv_field(&s.name), alarm_text(o.alarm), na(o.upperbound));
            writeln!(out, "{label},{name},{},{},{},{},{ub},{alarm}", w.year(), w.week(), o.t, g17(o.observed))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_c_percent_17g() {
        // Values printed by C's printf("%.17g").
        assert_eq!(g17(12.0), "12");
        assert_eq!(g17(0.1), "0.10000000000000001");
        assert_eq!(g17(crate::detect::normal::qnorm(0.999)), "3.0902323061678132");
        assert_eq!(g17(1e-5), "1.0000000000000001e-05");
        assert_eq!(g17(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(g17(2.5e-4), "0.00025000000000000001");
        assert_eq!(g17(1234.5), "1234.5");
        assert_eq!(g17(f64::NAN), "NA");
    }

    #[test]
    fn reads_series_and_refuses_gaps() {
        let csv = "series,year,week,count\na,2026,52,1\nb,2026,1,0\na,2026,53,2\na,2027,1,3\n";
        let s = read_csv(csv.as_bytes()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].counts, [1.0, 2.0, 3.0]);
        let gap = "series,year,week,count\na,2026,1,1\na,2026,3,2\n";
        assert!(read_csv(gap.as_bytes()).unwrap_err().to_string().starts_with("line 3: series a"));
        assert!(read_csv("x,y\n".as_bytes()).is_err());
    }

    /// A series name a spreadsheet would run is written as text; the
    /// numbers of the reference format (a negative `-1.5` included) are
    /// not touched.
    #[test]
    fn hostile_series_names_are_neutralised_and_numbers_kept() {
        let names = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(1)", "-2+3", "\tx", "\rx", "a,b", "INFA-5401"];
        let series: Vec<Series> = names
            .iter()
            .map(|n| Series {
                name: (*n).to_owned(),
                weeks: (1..=12).filter_map(|w| IsoWeek::new(2026, w)).collect(),
                counts: vec![3.0; 12],
            })
            .collect();
        let mut out = Vec::new();
        write_ears_csv(&mut out, &series, &Params::new(ears::Method::C1)).unwrap();
        let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(out.as_slice());
        let mut seen = 0;
        for rec in r.records() {
            let rec = rec.unwrap();
            let name = rec.get(1).unwrap();
            let original = names.iter().find(|n| name.ends_with(*n)).unwrap();
            let expected =
                if snow_core::csv::is_formula(original) { format!("'{original}") } else { original.to_string() };
            assert_eq!(name, expected);
            assert_eq!(rec.get(5), Some("3"), "observed");
            seen += 1;
        }
        assert!(seen >= names.len(), "{seen}");
        assert_eq!(csv_field("-1.5"), "-1.5");
    }
}
