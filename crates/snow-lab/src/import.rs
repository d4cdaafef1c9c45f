//! Importing pushed files: the whole file in one transaction or nothing,
//! a file already imported (same content hash) never counted twice, and
//! the drop directory `data/in` → `data/done` | `data/rejected` (+ `.error`).
//!
//! Only complete files are imported (docs/architecture.md §5): writers
//! upload `NAME.csv.part` and rename it to `NAME.csv` when done; a file
//! written in place is taken only once it has not changed for the settle
//! time; a file that changes while it is being imported is left for the
//! next pass; and a last line without its line break (an upload cut off)
//! rejects the file instead of becoming data.

use std::io::Read;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use snow_core::site_home::{DONE_DIR, INCOMING_DIR, REJECTED_DIR};
use snow_core::SiteHome;
use snow_store::{AggRow, LabDb};
use time::Date;

use crate::row::{LabSettings, Row, RowError, HEADER};

/// Largest file accepted (a year of a big lab is far below).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Rejected(RowError),
    #[error("the header must be exactly {}", HEADER.join(","))]
    BadHeader,
    #[error("the file is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("CSV error: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the last line is incomplete (the file does not end with a line break): was the upload cut off?")]
    Truncated,
    #[error("the file changed while it was being imported; it will be imported once it stops changing")]
    Changed,
    #[error(transparent)]
    Store(#[from] snow_store::StoreError),
}

/// What happened to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// Imported: rows read, and rows counted (samples not seen before).
    New { rows: u64, counted: u64 },
    /// The same content was imported before; nothing changed.
    Duplicate,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Imported::New { rows, counted } => write!(f, "{rows} rows, {counted} new samples"),
            Imported::Duplicate => f.write_str("the same file was imported before; nothing changed"),
        }
    }
}

/// What a file looked like when its import began: a change before the
/// commit means a writer is still at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

fn snapshot(path: &Path) -> Result<Snapshot, ImportError> {
    let m = std::fs::metadata(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
    Ok(Snapshot { len: m.len(), modified: m.modified().ok() })
}

/// The content hash, and whether the file ends with a line break.
fn hash_file(path: &Path) -> Result<(String, bool), ImportError> {
    let io = |source| ImportError::Io { path: path.to_owned(), source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    if f.metadata().map_err(io)?.len() > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge);
    }
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut last = None;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        last = Some(buf[n - 1]);
    }
    let hex = ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, last == Some(b'\n')))
}

/// Imports one file. Every row is validated; the first bad one rolls the
/// whole file back. `progress` gets rows read every 10,000 rows.
pub fn import_file(
    db: &mut LabDb,
    path: &Path,
    settings: &LabSettings,
    today: Date,
    mut progress: impl FnMut(u64),
) -> Result<Imported, ImportError> {
    let before = snapshot(path)?;
    let (hash, whole_lines) = hash_file(path)?;
    if db.imported(&hash)? {
        return Ok(Imported::Duplicate);
    }
    if !whole_lines {
        return Err(ImportError::Truncated);
    }
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(file);
    let header: Vec<String> = reader.headers()?.iter().map(|h| h.trim().to_owned()).collect();
    if header != HEADER {
        return Err(ImportError::BadHeader);
    }
    let mut tx = db.begin()?;
    let mut record = csv::StringRecord::new();
    let mut n = 0u64;
    while reader.read_record(&mut record)? {
        n += 1;
        let fields: Vec<&str> = record.iter().collect();
        let row = Row::parse(&fields, n, settings, today).map_err(ImportError::Rejected)?;
        let (year, week, _) = row.sample_date.to_iso_week_date();
        let sex = row.sex.to_string();
        tx.add(&AggRow {
            sample_id: &row.sample_id,
            patient: &row.patient,
            analysis: &row.analysis,
            municipality: &row.municipality,
            year,
            week,
            age_group: &row.age_group,
            sex: &sex,
            positive: row.result == crate::row::Outcome::Positive,
        })?;
        if n % 10_000 == 0 {
            progress(n);
        }
    }
    if snapshot(path)? != before {
        // Rolled back with `tx`: a writer is still at work.
        return Err(ImportError::Changed);
    }
    let (rows, counted) = tx.counts();
    let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    tx.commit(&hash, &name, time::OffsetDateTime::now_utc().unix_timestamp())?;
    progress(n);
    Ok(Imported::New { rows, counted })
}

/// The drop directory of a lab server: `in`, `done`, `rejected` under a
/// data directory (see `snow_core::SiteHome`).
#[derive(Debug, Clone)]
pub struct DropDir {
    pub root: PathBuf,
    /// How long a file must have been unchanged before it is taken.
    pub settle: std::time::Duration,
}

impl DropDir {
    /// The drop directory under `data_dir`, wherever that is (tests and
    /// tools use directories outside a site home).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        DropDir { root: data_dir.into(), settle: std::time::Duration::ZERO }
    }
    /// The same directory, taking only files unchanged for `settle`.
    pub fn with_settle(mut self, settle: std::time::Duration) -> Self {
        self.settle = settle;
        self
    }
    /// The drop directory of the site in `home`: `data/in`, `data/done`,
    /// `data/rejected`.
    pub fn of(home: &SiteHome) -> Self {
        DropDir::new(home.data_dir())
    }
    pub fn incoming(&self) -> PathBuf {
        self.root.join(INCOMING_DIR)
    }
    pub fn done(&self) -> PathBuf {
        self.root.join(DONE_DIR)
    }
    pub fn rejected(&self) -> PathBuf {
        self.root.join(REJECTED_DIR)
    }

    /// The `*.csv` files in `in/`, each with how much longer it must stay
    /// unchanged before it is taken (zero: ready).
    fn candidates(&self) -> Vec<(PathBuf, std::time::Duration)> {
        let Ok(rd) = std::fs::read_dir(self.incoming()) else { return Vec::new() };
        let now = std::time::SystemTime::now();
        rd.filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "csv"))
            .filter_map(|e| {
                let m = e.metadata().ok().filter(|m| m.is_file())?;
                // A clock set back counts as "just changed".
                let age = m.modified().ok().and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
                Some((e.path(), self.settle.saturating_sub(age)))
            })
            .collect()
    }

    /// How long until a file in `in/` that is still settling becomes
    /// ready, if there is one: the importer looks again then.
    pub fn next_ready(&self) -> Option<std::time::Duration> {
        self.candidates().into_iter().map(|(_, wait)| wait).filter(|w| !w.is_zero()).min()
    }

    /// Imports every complete `*.csv` in `in/` (writers upload `*.part`
    /// and rename; a file written in place waits until it has not changed
    /// for the settle time), oldest name first, and moves each to `done/`
    /// or to `rejected/` with a `.error` file. A crash between commit and
    /// move is harmless: the next pass sees the hash and moves it to
    /// `done/`.
    pub fn process(
        &self,
        db: &mut LabDb,
        settings: &LabSettings,
        today: Date,
    ) -> Vec<(PathBuf, Result<Imported, String>)> {
        let mut files: Vec<PathBuf> =
            self.candidates().into_iter().filter(|(_, wait)| wait.is_zero()).map(|(p, _)| p).collect();
        files.sort();
        let mut out = Vec::new();
        for path in files {
            let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
            let result = import_file(db, &path, settings, today, |_| {});
            let outcome = match result {
                Ok(imported) => {
                    let _ = std::fs::create_dir_all(self.done());
                    let _ = std::fs::rename(&path, self.done().join(&name));
                    tracing::info!(file = %name.to_string_lossy(), result = %imported, "lab file imported");
                    Ok(imported)
                }
                Err(ImportError::Store(e)) => {
                    // Not the file's fault: leave it for the next pass.
                    tracing::error!(file = %name.to_string_lossy(), error = %e, "import failed; will retry");
                    Err(e.to_string())
                }
                Err(ImportError::Changed) => {
                    tracing::info!(file = %name.to_string_lossy(), "lab file still being written; left for the next pass");
                    Err(ImportError::Changed.to_string())
                }
                Err(e) => {
                    let _ = std::fs::create_dir_all(self.rejected());
                    let target = self.rejected().join(&name);
                    let _ = std::fs::rename(&path, &target);
                    let mut err_name = name.clone();
                    err_name.push(".error");
                    let _ = snow_core::files::write(
                        &self.rejected().join(err_name),
                        format!("{e}\n").as_bytes(),
                        snow_core::files::Mode::Private,
                    );
                    tracing::warn!(file = %name.to_string_lossy(), reason = %e, "lab file rejected");
                    Err(e.to_string())
                }
            };
            out.push((path, outcome));
        }
        out
    }
}
