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
//!
//! Files are read as CSV (quoted fields, LF or CRLF) by `Records`, which
//! gives each record the line of the file it starts on and holds at most
//! `MAX_RECORD_BYTES` of one in memory; a `RowError` names that line.

use std::fmt;
use std::io::Read;

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

/// What was wrong with a row, where: the line of the file (1-based, as
/// an editor numbers lines; the header is line 1) and the column, when the
/// error is about one. The reason is in words and never quotes a
/// pseudonym or a whole row (only a short code, see `shown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub column: Option<&'static str>,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(column) => write!(f, "line {}, column {column}: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

impl RowError {
    /// A record on `line` longer than `MAX_RECORD_BYTES`.
    pub fn too_long(line: u64) -> RowError {
        RowError {
            line,
            column: None,
            reason: format!(
                "longer than {} KiB (a row is about 200 bytes): the rest of the file was not read",
                MAX_RECORD_BYTES / 1024
            ),
        }
    }
}

/// `, not "X"` for a value short and plain enough to show (a code: at most
/// 8 letters, digits, `-` or `+`, fewer than 6 of them digits), `, not
/// empty` for an empty one, and nothing for anything else: an error
/// message never carries a pseudonym, a date of birth or a name.
fn shown(value: &str) -> String {
    let plain = value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'+');
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    if value.is_empty() {
        ", not empty".into()
    } else if value.len() <= 8 && plain && digits < 6 {
        format!(", not \"{value}\"")
    } else {
        String::new()
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
    /// Validates the fields of the row on `line` of its file (1-based;
    /// only used in the error).
    pub fn parse(fields: &[&str], line: u64, settings: &LabSettings, today: Date) -> Result<Row, RowError> {
        let err = |column: &'static str, reason: String| RowError { line, column: Some(column), reason };
        if fields.len() != HEADER.len() {
            return Err(RowError {
                line,
                column: None,
                reason: format!("{} fields, expected {} ({})", fields.len(), HEADER.len(), HEADER.join(",")),
            });
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
        let sample_date = parse_date(date).ok_or_else(|| {
            let reason =
                if date.is_empty() { "must be a date YYYY-MM-DD, not empty" } else { "must be a date YYYY-MM-DD" };
            err("sample_date", reason.into())
        })?;
        if sample_date > today {
            return Err(err("sample_date", "is in the future".into()));
        }
        if !settings.analyses.iter().any(|a| a == analysis) {
            return Err(err(
                "analysis",
                format!("must be one of {} ([lab] analyses){}", settings.analyses.join(", "), shown(analysis)),
            ));
        }
        let result = match result {
            "POS" => Outcome::Positive,
            "NEG" => Outcome::Negative,
            "INC" => Outcome::Inconclusive,
            _ => return Err(err("result", format!("must be POS, NEG or INC{}", shown(result)))),
        };
        if municipality.len() != 4 || !municipality.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(
                "municipality",
                format!("must be a four-digit municipality number{}", shown(municipality)),
            ));
        }
        if !settings.age_groups.iter().any(|g| g == age_group) {
            return Err(err(
                "age_group",
                format!("must be one of {} ([lab] age_groups){}", settings.age_groups.join(", "), shown(age_group)),
            ));
        }
        let sex = match sex {
            "M" => 'M',
            "F" => 'F',
            "U" => 'U',
            _ => return Err(err("sex", format!("must be M, F or U{}", shown(sex)))),
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

/// Longest record read from a lab file (a line, or lines joined by a line
/// break inside quotes): a row is about 200 bytes, and nothing longer is
/// held in memory.
pub const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// The CSV reader's buffer: how far it reads ahead of the record it returns.
const CSV_BUFFER: usize = 16 * 1024;

/// Why reading records stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}", RowError::too_long(*line))]
    TooLong { line: u64 },
    #[error(transparent)]
    Io(std::io::Error),
}

/// The records of a CSV file (RFC 4180: quoted fields, CRLF or LF), each
/// with the line of the file it starts on, counted as an editor counts
/// them (1-based; a line ends with LF; blank lines count, and so do line
/// breaks inside quotes). Memory is bounded: a record longer than
/// `MAX_RECORD_BYTES` stops the reading.
pub struct Records<R: Read> {
    csv: csv::Reader<Lines<R>>,
    /// The byte offset just past the last record returned.
    end: u64,
}

impl<R: Read> Records<R> {
    pub fn new(input: R) -> Self {
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(CSV_BUFFER)
            .from_reader(Lines::new(input));
        Records { csv, end: 0 }
    }

    /// Reads the next record into `record` and returns its first line;
    /// `None` at the end of the input.
    pub fn read(&mut self, record: &mut csv::ByteRecord) -> Result<Option<u64>, ReadError> {
        match self.csv.read_byte_record(record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let (line, first) = self.csv.get_mut().start_line(self.end);
                self.end = self.csv.position().byte();
                if self.end - first > MAX_RECORD_BYTES {
                    self.csv.get_mut().too_long = true;
                    return Err(ReadError::TooLong { line });
                }
                self.csv.get_mut().record_from = self.end;
                Ok(Some(line))
            }
            Err(_) if self.csv.get_ref().too_long => {
                Err(ReadError::TooLong { line: self.csv.get_mut().start_line(self.end).0 })
            }
            Err(e) => {
                let text = e.to_string();
                match e.into_kind() {
                    csv::ErrorKind::Io(io) => Err(ReadError::Io(io)),
                    // Not produced by a flexible byte-record reader.
                    _ => Err(ReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, text))),
                }
            }
        }
    }
}

/// The input as the CSV reader reads it, noting where the line breaks are
/// until the records they belong to have been read, and refusing to read
/// on once a record is longer than `MAX_RECORD_BYTES`. (The CSV reader's
/// own line count is off after CRLF and blank lines.)
struct Lines<R> {
    inner: R,
    /// Bytes handed to the CSV reader.
    read: u64,
    /// Offsets of the CR and LF bytes not yet accounted for, and whether
    /// each is an LF (only LF ends a line).
    breaks: std::collections::VecDeque<(u64, bool)>,
    /// The line of the first offset not yet accounted for.
    line: u64,
    /// Where the record being read began.
    record_from: u64,
    too_long: bool,
}

impl<R> Lines<R> {
    fn new(inner: R) -> Self {
        Lines { inner, read: 0, breaks: Default::default(), line: 1, record_from: 0, too_long: false }
    }

    /// The line and offset of the first byte from `from` on that is not a
    /// line break (records may be preceded by the rest of a CRLF and by
    /// blank lines).
    fn start_line(&mut self, from: u64) -> (u64, u64) {
        let mut first = from;
        while let Some(&(at, lf)) = self.breaks.front() {
            if at > first {
                break;
            }
            if at == first {
                first += 1;
            }
            self.line += u64::from(lf);
            self.breaks.pop_front();
        }
        (self.line, first)
    }
}

impl<R: Read> Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // The CSV reader asks for more only once it has used all it has:
        // the record under way is then longer than what was read since
        // it began. (This bounds memory; `Records::read` checks the exact
        // length of each record.)
        if self.too_long || self.read - self.record_from > MAX_RECORD_BYTES {
            self.too_long = true;
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "record too long"));
        }
        let n = self.inner.read(buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            if b <= b'\r' && (b == b'\n' || b == b'\r') {
                self.breaks.push_back((self.read + i as u64, b == b'\n'));
            }
        }
        self.read += n as u64;
        Ok(n)
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

    fn lines_of(input: &str) -> Vec<(u64, String)> {
        let mut r = Records::new(input.as_bytes());
        let mut rec = csv::ByteRecord::new();
        let mut out = Vec::new();
        while let Some(line) = r.read(&mut rec).unwrap() {
            out.push((line, String::from_utf8_lossy(&rec[0]).into_owned()));
        }
        out
    }

    #[test]
    fn records_know_their_lines() {
        let lines = |input| lines_of(input).into_iter().map(|(l, _)| l).collect::<Vec<_>>();
        assert_eq!(lines("h\na\nb\n"), [1, 2, 3]);
        assert_eq!(lines("h\r\na\r\nb\r\n"), [1, 2, 3]);
        assert_eq!(lines("\nh\n\n\na\r\n\r\nb\n\n"), [2, 5, 7]);
        // A line break inside quotes: the next record starts lines later.
        assert_eq!(lines("h\n\"a\nx\r\ny\",1\nb\n\"c\"\n"), [1, 2, 5, 6]);
        assert_eq!(lines("\u{feff}h\na\n"), [1, 2]);
        assert_eq!(lines("h\na"), [1, 2]);
        assert_eq!(lines_of("\u{feff}h\n")[0].1, "h");
    }

    #[test]
    fn a_record_too_long_stops_the_reading() {
        let long = "x".repeat(MAX_RECORD_BYTES as usize + 1);
        let input = format!("h\nshort\n\n{long}\nafter\n");
        let mut r = Records::new(input.as_bytes());
        let mut rec = csv::ByteRecord::new();
        assert_eq!(r.read(&mut rec).unwrap(), Some(1));
        assert_eq!(r.read(&mut rec).unwrap(), Some(2));
        assert!(matches!(r.read(&mut rec), Err(ReadError::TooLong { line: 4 })));
        // Just below the limit is read.
        let fits = "x".repeat(MAX_RECORD_BYTES as usize - 1);
        assert_eq!(lines_of(&format!("h\n{fits}\nafter\n")).into_iter().map(|(l, _)| l).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn errors_show_codes_but_never_pseudonyms() {
        let s = LabSettings::default();
        let today = Date::from_calendar_date(2026, Month::November, 22).unwrap();
        let good = [&"a".repeat(32), &"b".repeat(64), "2026-11-16", "INFA", "POS", "5401", "15-24", "F"];
        let with = |i: usize, v: &str| {
            let mut f: Vec<&str> = good.iter().map(|s| s.as_ref()).collect();
            f[i] = v;
            Row::parse(&f, 12, &s, today).unwrap_err().to_string()
        };
        assert_eq!(with(7, "X"), "line 12, column sex: must be M, F or U, not \"X\"");
        assert_eq!(with(7, ""), "line 12, column sex: must be M, F or U, not empty");
        assert!(with(3, "XYZ").ends_with("([lab] analyses), not \"XYZ\""), "{}", with(3, "XYZ"));
        let pseudonym = "c".repeat(64);
        assert!(!with(3, &pseudonym).contains("ccc"));
        assert!(!with(7, "Kari Nordmann").contains("Kari"));
        assert!(!with(5, "010107").contains("010107"), "six digits may be a birth date");
        assert_eq!(
            Row::parse(&good[..7], 3, &s, today).unwrap_err().to_string(),
            format!("line 3: 7 fields, expected 8 ({})", HEADER.join(","))
        );
    }
}
