//! `snow lab export`: runs inside the lab. Reads the lab database's CSV
//! export and writes the pushed row format: patient and sample ids replaced
//! by keyed pseudonyms (HMAC-SHA256 with a secret that never leaves the
//! lab — a bare hash of an id is reversible by trying every id), birth date
//! reduced to an age group, every other identifying column dropped.
//!
//! Input columns (header required, any order, extra columns ignored):
//! `sample_id, patient_id, birth_date, sex, municipality, sample_date,
//! analysis, result`. Sex may be `M`, `F` (or `K`, Norwegian) or `U`.

use std::io::{Read, Write};

use aws_lc_rs::hmac;
use time::Date;

use crate::row::{parse_date, LabSettings, ReadError, Records, Row, RowError, HEADER};

/// The input columns, in the order the exporter uses them.
pub const RAW_COLUMNS: [&str; 8] =
    ["sample_id", "patient_id", "birth_date", "sex", "municipality", "sample_date", "analysis", "result"];

/// Shortest acceptable secret.
pub const MIN_SECRET_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the secret is too short: at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
    #[error("the input has no {0:?} column")]
    MissingColumn(&'static str),
    #[error("the input is empty: it needs a header")]
    NoHeader,
    /// `line` is the line of the input file (1-based; the header is line 1).
    #[error("input line {line}: {reason}")]
    Input { line: u64, reason: String },
    /// The row exported from an input line would be refused by the lab
    /// server (the error names the input line).
    #[error("the exported row would be refused: {0}")]
    Invalid(RowError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("CSV error: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The lab's pseudonymisation key.
pub struct Pseudonymiser {
    key: hmac::Key,
}

impl Pseudonymiser {
    pub fn new(secret: &[u8]) -> Result<Self, ExportError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ExportError::WeakSecret);
        }
        Ok(Pseudonymiser { key: hmac::Key::new(hmac::HMAC_SHA256, secret) })
    }

    /// HMAC-SHA256(secret, kind ‖ 0 ‖ id) in hex; `kind` keeps patient and
    /// sample pseudonyms apart.
    pub fn pseudonym(&self, kind: &str, id: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(kind.as_bytes());
        ctx.update(&[0]);
        ctx.update(id.trim().as_bytes());
        ctx.sign().as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Whole years from `birth` to `on`.
fn age(birth: Date, on: Date) -> Option<u32> {
    if birth > on {
        return None;
    }
    let mut years = on.year() - birth.year();
    if (on.month() as u8, on.day()) < (birth.month() as u8, birth.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

/// Streams `input` to `output` (constant memory); `progress` gets the
/// number of rows written so far every 10,000 rows. Returns the row count.
///
/// The output is a machine format read back by the importer, so its cells
/// are not passed through [`snow_core::csv::cell`] (a `'` in front would
/// make the importer refuse the row). None needs it: every row is first
/// checked by [`Row::parse`], whose shapes — hex pseudonyms, ISO dates,
/// analysis codes of letters and digits, `POS`/`NEG`/`INC`, four digits,
/// an age group starting with a digit, `M`/`F`/`U` — cannot begin with a
/// character a spreadsheet runs (`tests/lab.rs`
/// `export_writes_no_cell_a_spreadsheet_would_run`).
pub fn export(
    input: impl Read,
    output: impl Write,
    pseudonymiser: &Pseudonymiser,
    settings: &LabSettings,
    today: Date,
    mut progress: impl FnMut(u64),
) -> Result<u64, ExportError> {
    let mut records = Records::new(input);
    let mut headers = csv::ByteRecord::new();
    if records.read(&mut headers)?.is_none() {
        return Err(ExportError::NoHeader);
    }
    let mut idx = [0usize; 8];
    for (i, name) in RAW_COLUMNS.iter().enumerate() {
        idx[i] = headers
            .iter()
            .position(|h| std::str::from_utf8(h).is_ok_and(|h| h.trim().eq_ignore_ascii_case(name)))
            .ok_or(ExportError::MissingColumn(name))?;
    }
    let mut writer = csv::Writer::from_writer(output);
    writer.write_record(HEADER)?;
    let mut record = csv::ByteRecord::new();
    let mut n = 0u64;
    while let Some(line) = records.read(&mut record)? {
        n += 1;
        let bad = |reason: &str| ExportError::Input { line, reason: reason.to_owned() };
        if record.len() != headers.len() {
            return Err(bad(&format!("{} fields, the header has {}", record.len(), headers.len())));
        }
        let mut fields = [""; 8];
        for (i, &at) in idx.iter().enumerate() {
            let field = record.get(at).unwrap_or_default();
            fields[i] = std::str::from_utf8(field)
                .map_err(|_| bad(&format!("column {} is not UTF-8 text", RAW_COLUMNS[i])))?
                .trim();
        }
        let f = |i: usize| fields[i];
        let birth = parse_date(f(2)).ok_or_else(|| bad("birth_date is not YYYY-MM-DD"))?;
        let sampled = parse_date(f(5)).ok_or_else(|| bad("sample_date is not YYYY-MM-DD"))?;
        let age = age(birth, sampled).ok_or_else(|| bad("birth_date is after sample_date"))?;
        let group = settings.age_group(age).ok_or_else(|| bad("no age group for this age"))?.to_owned();
        let sex = match f(3).to_ascii_uppercase().as_str() {
            "M" => "M",
            "F" | "K" => "F",
            "U" | "" => "U",
            _ => return Err(bad("sex must be M, F/K or U")),
        };
        let muni = f(4);
        let municipality = if muni.len() == 3 { format!("0{muni}") } else { muni.to_owned() };
        let out = [
            pseudonymiser.pseudonym("sample", f(0))[..32].to_owned(),
            pseudonymiser.pseudonym("patient", f(1)),
            f(5).to_owned(),
            f(6).to_ascii_uppercase(),
            f(7).to_ascii_uppercase(),
            municipality,
            group,
            sex.to_owned(),
        ];
        // Exactly what the lab server will accept, or nothing.
        let refs: Vec<&str> = out.iter().map(String::as_str).collect();
        Row::parse(&refs, line, settings, today).map_err(ExportError::Invalid)?;
        writer.write_record(&out)?;
        if n.is_multiple_of(10_000) {
            progress(n);
        }
    }
    writer.flush()?;
    progress(n);
    Ok(n)
}
