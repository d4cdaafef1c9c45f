//! The row format of pushed lab files (docs/architecture.md §5) and its validation:
//!
//! `sample_id,patient,sample_date,analysis,result,municipality,age_group,sex`
//!
//! * `sample_id` — 16 to 64 lower-case hex characters (a keyed pseudonym);
//! * `patient` — 64 lower-case hex characters (HMAC-SHA256 pseudonym);
//! * `sample_date` — ISO date `YYYY-MM-DD`, not in the future;
//! * `analysis` — a code from the configured list (e.g. `INFA`);
//! * `result` — `POS`, `NEG` or `INC`;
//! * `municipality` — four digits;
//! * `age_group` — one of the configured groups;
//! * `sex` — `M`, `F` or `U`.

use std::fmt;

use time::{Date, Month};

/// The header every pushed file starts with.
pub const HEADER: [&str; 8] =
    ["sample_id", "patient", "sample_date", "analysis", "result", "municipality", "age_group", "sex"];

/// The enumerations rows are checked against (the `[lab]` section).
#[derive(Debug, Clone)]
pub struct LabSettings {
    pub analyses: Vec<String>,
    /// Age groups as `LOW-HIGH` or `LOW+`, in order.
    pub age_groups: Vec<String>,
}

impl Default for LabSettings {
    fn default() -> Self {
        LabSettings {
            analyses: ["INFA", "INFB", "RSV", "SARS2", "MPV", "MYCPN"].map(String::from).to_vec(),
            age_groups: ["0-4", "5-14", "15-24", "25-44", "45-64", "65-79", "80+"].map(String::from).to_vec(),
        }
    }
}

impl LabSettings {
    /// `LOW-HIGH` (LOW ≤ HIGH) or `LOW+`.
    pub fn age_group_is_well_formed(&self, g: &str) -> bool {
        match g.split_once('-') {
            Some((lo, hi)) => matches!((lo.parse::<u32>(), hi.parse::<u32>()), (Ok(l), Ok(h)) if l <= h),
            None => g.strip_suffix('+').is_some_and(|lo| lo.parse::<u32>().is_ok()),
        }
    }

    /// The group an age in whole years falls in.
    pub fn age_group(&self, age: u32) -> Option<&str> {
        self.age_groups.iter().map(String::as_str).find(|g| match g.split_once('-') {
            Some((lo, hi)) => {
                matches!((lo.parse::<u32>(), hi.parse::<u32>()), (Ok(l), Ok(h)) if (l..=h).contains(&age))
            }
            None => g.strip_suffix('+').and_then(|lo| lo.parse::<u32>().ok()).is_some_and(|l| age >= l),
        })
    }
}

/// Test result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Positive,
    Negative,
    Inconclusive,
}

/// One validated row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub sample_id: String,
    pub patient: String,
    pub sample_date: Date,
    pub analysis: String,
    pub result: Outcome,
    pub municipality: String,
    pub age_group: String,
    pub sex: char,
}

/// What was wrong, where: row number (1 = the first data row), column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: u64,
    pub column: &'static str,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}, column {}: {}", self.row, self.column, self.reason)
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses an ISO date `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i32 = s[..4].parse().ok()?;
    let m: u8 = s[5..7].parse().ok()?;
    let d: u8 = s[8..10].parse().ok()?;
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

impl Row {
    /// Validates the fields of data row `row` (1-based).
    pub fn parse(fields: &[&str], row: u64, settings: &LabSettings, today: Date) -> Result<Row, RowError> {
        let err = |column: &'static str, reason: String| RowError { row, column, reason };
        if fields.len() != HEADER.len() {
            return Err(err("*", format!("{} fields, expected {}", fields.len(), HEADER.len())));
        }
        for (i, f) in fields.iter().enumerate() {
            // Pseudonyms are random hex, where an 11-digit run with valid
            // check digits turns up by chance (about once in a thousand
            // rows): for them only a whole-field number counts. Every other
            // column is scanned for embedded numbers.
            let pseudonym = i < 2;
            let hit = if pseudonym { crate::nin::is_valid(f.trim()) } else { crate::nin::contains_valid(f) };
            if hit {
                return Err(err(
                    HEADER[i],
                    "looks like a national identity number: the file is not pseudonymised".into(),
                ));
            }
        }
        let [sample_id, patient, date, analysis, result, municipality, age_group, sex] =
            [0, 1, 2, 3, 4, 5, 6, 7].map(|i| fields[i].trim());
        if !(16..=64).contains(&sample_id.len()) || !is_hex(sample_id) {
            return Err(err("sample_id", "must be 16 to 64 lower-case hex characters (a pseudonym)".into()));
        }
        if patient.len() != 64 || !is_hex(patient) {
            return Err(err("patient", "must be a 64-character HMAC-SHA256 pseudonym: an unhashed patient id?".into()));
        }
        let sample_date = parse_date(date).ok_or_else(|| err("sample_date", "must be a date YYYY-MM-DD".into()))?;
        if sample_date > today {
            return Err(err("sample_date", "is in the future".into()));
        }
        if !settings.analyses.iter().any(|a| a == analysis) {
            return Err(err("analysis", format!("unknown analysis code (known: {})", settings.analyses.join(", "))));
        }
        let result = match result {
            "POS" => Outcome::Positive,
            "NEG" => Outcome::Negative,
            "INC" => Outcome::Inconclusive,
            _ => return Err(err("result", "must be POS, NEG or INC".into())),
        };
        if municipality.len() != 4 || !municipality.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("municipality", "must be a four-digit municipality number".into()));
        }
        if !settings.age_groups.iter().any(|g| g == age_group) {
            return Err(err("age_group", format!("unknown age group (known: {})", settings.age_groups.join(", "))));
        }
        let sex = match sex {
            "M" => 'M',
            "F" => 'F',
            "U" => 'U',
            _ => return Err(err("sex", "must be M, F or U".into())),
        };
        Ok(Row {
            sample_id: sample_id.to_owned(),
            patient: patient.to_owned(),
            sample_date,
            analysis: analysis.to_owned(),
            result,
            municipality: municipality.to_owned(),
            age_group: age_group.to_owned(),
            sex,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_groups() {
        let s = LabSettings::default();
        assert_eq!(s.age_group(0), Some("0-4"));
        assert_eq!(s.age_group(14), Some("5-14"));
        assert_eq!(s.age_group(80), Some("80+"));
        assert_eq!(s.age_group(104), Some("80+"));
    }
}
