//! Importing pushed files: the whole file in one transaction or nothing,
//! a file already imported (same content hash) never counted twice, and
//! the drop directory `data/in` → `data/done` | `data/rejected` (+ `.error`).

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

fn hash_file(path: &Path) -> Result<String, ImportError> {
    let io = |source| ImportError::Io { path: path.to_owned(), source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    if f.metadata().map_err(io)?.len() > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge);
    }
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
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
    let hash = hash_file(path)?;
    if db.imported(&hash)? {
        return Ok(Imported::Duplicate);
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
}

impl DropDir {
    /// The drop directory under `data_dir`, wherever that is (tests and
    /// tools use directories outside a site home).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        DropDir { root: data_dir.into() }
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

    /// Imports every complete `*.csv` in `in/` (writers upload `*.part`
    /// and rename), oldest name first, and moves each to `done/` or to
    /// `rejected/` with a `.error` file. A crash between commit and move
    /// is harmless: the next pass sees the hash and moves it to `done/`.
    pub fn process(
        &self,
        db: &mut LabDb,
        settings: &LabSettings,
        today: Date,
    ) -> Vec<(PathBuf, Result<Imported, String>)> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(self.incoming()) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "csv"))
                .collect(),
            Err(_) => return Vec::new(),
        };
        files.sort();
        let mut out = Vec::new();
        for path in files {
            let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
            let result = import_file(db, &path, settings, today, |_| {});
            let outcome = match result {
                Ok(imported) => {
                    let _ = std::fs::create_dir_all(self.done());
                    let _ = std::fs::rename(&path, self.done().join(&name));
                    tracing::info!(file = ?name, ?imported, "lab file imported");
                    Ok(imported)
                }
                Err(ImportError::Store(e)) => {
                    // Not the file's fault: leave it for the next pass.
                    tracing::error!(file = ?name, error = %e, "import failed; will retry");
                    Err(e.to_string())
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
                    tracing::warn!(file = ?name, reason = %e, "lab file rejected");
                    Err(e.to_string())
                }
            };
            out.push((path, outcome));
        }
        out
    }
}
