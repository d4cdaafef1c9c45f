//! Importing pushed files: the whole file in one transaction or nothing,
//! a file already imported (same content hash) never counted twice, and
//! the drop directory `data/in` → `data/done` | `data/rejected` (+ `.error`).
//!
//! Errors name the file's own line numbers (`row::Records`), so a refused
//! file can be opened in an editor at the line.
//!
//! Only complete files are imported (docs/architecture.md §5): writers
//! upload `NAME.csv.part` and rename it to `NAME.csv` when done; a file
//! written in place is taken only once it has not changed for the settle
//! time and, where the caller knows it (the importer, from inotify), is no
//! longer open for writing; a file that changes while it is being imported is left for the
//! next pass; and a last line without its line break (an upload cut off)
//! rejects the file instead of becoming data.
//!
//! The drop directory is written by someone else (the lab's upload
//! account), so nothing in it is trusted to be what its name says. Only a
//! regular file is read: a symbolic link, a FIFO, a device, a socket or a
//! directory named `*.csv` is moved to `rejected/` with the reason (a link
//! is moved itself, never followed, so it cannot make the importer read or
//! move a file elsewhere). A file is opened once, without following a link
//! and without blocking (`O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`), checked to
//! be a regular file on that handle (`fstat`), and hashed and parsed from
//! that same handle: swapping the name for a FIFO or a link after the look
//! at the directory can neither block the import loop nor redirect it.
//! A file whose name is taken in `done/` or `rejected/` is kept beside the
//! other under a numbered name (`w47.csv`, then `w47.2.csv`, `w47.3.csv`,
//! …), never over it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use snow_core::site_home::{DONE_DIR, INCOMING_DIR, REJECTED_DIR};
use snow_core::SiteHome;
use snow_store::{AggRow, LabDb};
use time::Date;

use crate::row::{LabSettings, ReadError, Records, Row, RowError, HEADER};

/// Largest file accepted (a year of a big lab is far below).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// A refused file lists this many of its errors; the rest are counted.
pub const MAX_LISTED_ERRORS: usize = 20;

/// Most numbered names tried for a file whose name is taken in `done/` or
/// `rejected/` (`NAME.2.csv` … `NAME.9999.csv`); past that it stays in
/// `in/` and the log says why.
pub const MAX_NUMBERED_NAMES: u32 = 9999;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Rows with errors: the whole file is refused.
    #[error("{0}")]
    Rejected(RowErrors),
    #[error("line 1: the header must be exactly {}", HEADER.join(","))]
    BadHeader,
    #[error("the file is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("the file is empty")]
    Empty,
    /// A symbolic link, FIFO, device, socket or directory: never read, and
    /// a link never followed.
    #[error(
        "it is {kind}, not a regular file: refused without being followed or read (push plain files: NAME.csv.part, \
         then rename it to NAME.csv)"
    )]
    NotRegular { kind: &'static str },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "line {line}: the last line is incomplete (the file does not end with a line break): was the upload cut off?"
    )]
    Truncated { line: u64 },
    #[error("the file changed while it was being imported; it will be imported once it stops changing")]
    Changed,
    #[error(transparent)]
    Store(#[from] snow_store::StoreError),
    #[error("the system's random generator failed: no record keys")]
    Random,
}

/// Random record keys for the cell key method (issue 21): uniform 32-bit
/// values from the system's CSPRNG, drawn a buffer at a time. Whoever
/// could predict them could strip the noise off the published counts, so
/// they come from the same generator as the keys.
struct RecordKeys {
    buf: [u8; 4096],
    at: usize,
}

impl RecordKeys {
    fn new() -> Self {
        RecordKeys { buf: [0; 4096], at: 4096 }
    }

    fn next(&mut self) -> Result<u32, ImportError> {
        if self.at + 4 > self.buf.len() {
            aws_lc_rs::rand::fill(&mut self.buf).map_err(|_| ImportError::Random)?;
            self.at = 0;
        }
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.buf[self.at..self.at + 4]);
        self.at += 4;
        Ok(u32::from_le_bytes(b))
    }
}

/// The errors of a file: the first `MAX_LISTED_ERRORS` in file order, and
/// how many there were in all (memory stays bounded however bad the file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowErrors {
    pub listed: Vec<RowError>,
    pub total: u64,
}

impl RowErrors {
    pub fn push(&mut self, e: RowError) {
        self.total += 1;
        if self.listed.len() < MAX_LISTED_ERRORS {
            self.listed.push(e);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Errors counted but not listed.
    pub fn unlisted(&self) -> u64 {
        self.total - self.listed.len() as u64
    }

    /// "1 error", "2,345 errors".
    pub fn count(&self) -> String {
        errors(self.total)
    }

    /// One line for a log: the count and the first `first` errors.
    pub fn summary(&self, first: usize) -> String {
        let shown: Vec<String> = self.listed.iter().take(first).map(ToString::to_string).collect();
        let rest = self.total - shown.len() as u64;
        if rest == 0 {
            format!("{}: {}", self.count(), shown.join("; "))
        } else {
            format!("{}, first: {}; and {} more", self.count(), shown.join("; "), grouped(rest))
        }
    }
}

/// The count, then one error a line, then how many more there were:
/// what the `.error` file holds.
impl fmt::Display for RowErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; nothing in the file was imported:", self.count())?;
        for e in &self.listed {
            write!(f, "\n{e}")?;
        }
        if self.unlisted() > 0 {
            let n = self.unlisted();
            write!(f, "\n… and {} more {}", grouped(n), if n == 1 { "error" } else { "errors" })?;
        }
        Ok(())
    }
}

/// `n` with thousands separated: 1,987.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn errors(n: u64) -> String {
    format!("{} {}", grouped(n), if n == 1 { "error" } else { "errors" })
}

/// What happened to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// Imported: rows read, and rows counted (samples not seen before).
    New { rows: u64, counted: u64 },
    /// The same content was imported before; nothing changed.
    Duplicate,
}

impl fmt::Display for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Imported::New { rows, counted } => {
                write!(f, "{} rows ({} new samples)", grouped(*rows), grouped(*counted))
            }
            Imported::Duplicate => f.write_str("the same file was imported before; nothing changed"),
        }
    }
}

/// What a file looked like when its import began: a change before the
/// commit means a writer is still at work, and another file (device and
/// inode) under the name means it was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    len: u64,
    modified: Option<std::time::SystemTime>,
    /// Device and inode (unix); a link or FIFO put under the name differs.
    id: (u64, u64),
}

fn snapshot(m: &std::fs::Metadata) -> Snapshot {
    #[cfg(unix)]
    let id = {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    };
    #[cfg(not(unix))]
    let id = (0, 0);
    Snapshot { len: m.len(), modified: m.modified().ok(), id }
}

/// What kind of entry `t` is, in the words of a refusal.
fn kind_of(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading only if it is a regular file, without
/// following a link in its last component and without blocking, and
/// checks the file type on the handle itself (`fstat`): whatever is put
/// under the name between the look at the directory and the open, the
/// importer either refuses it here or reads the regular file it checked.
///
/// The look before the open (`lstat`) keeps the common case from opening
/// a device at all; the flags and the check after it close the race.
pub fn open_regular(path: &Path) -> Result<std::fs::File, ImportError> {
    let io = |source| ImportError::Io { path: path.to_owned(), source };
    let t = std::fs::symlink_metadata(path).map_err(io)?.file_type();
    if !t.is_file() {
        return Err(ImportError::NotRegular { kind: kind_of(t) });
    }
    open_checked(path)
}

/// The open and the check on the handle, for whatever is under the name
/// by now (a link or a FIFO swapped in after the look included).
fn open_checked(path: &Path) -> Result<std::fs::File, ImportError> {
    let io = |source| ImportError::Io { path: path.to_owned(), source };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO without a writer returns at once (on a
        // regular file it changes nothing); O_NOCTTY: a terminal device
        // never becomes ours.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        // O_NOFOLLOW on a link: ELOOP (Linux), EMLINK (FreeBSD).
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::EMLINK) => {
            return Err(ImportError::NotRegular { kind: "a symbolic link" })
        }
        Err(e) => return Err(io(e)),
    };
    let t = file.metadata().map_err(io)?.file_type();
    if !t.is_file() {
        return Err(ImportError::NotRegular { kind: kind_of(t) });
    }
    Ok(file)
}

/// A file's content hash and shape, from one pass over it.
struct Scanned {
    hash: String,
    len: u64,
    /// The file ends with a line break.
    whole_lines: bool,
    /// Line breaks (LF) in the file.
    line_breaks: u64,
}

/// Hashes and measures `f` from its start to its end.
fn scan_file(mut f: &std::fs::File, path: &Path) -> Result<Scanned, ImportError> {
    let io = |source| ImportError::Io { path: path.to_owned(), source };
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let (mut len, mut line_breaks, mut last) = (0u64, 0u64, None);
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        len += n as u64;
        line_breaks += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = Some(buf[n - 1]);
    }
    let hash = ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Scanned { hash, len, whole_lines: last == Some(b'\n'), line_breaks })
}

/// The row on `line` from its CSV fields.
fn parse_record(record: &csv::ByteRecord, line: u64, settings: &LabSettings, today: Date) -> Result<Row, RowError> {
    let mut fields = Vec::with_capacity(HEADER.len());
    for (i, f) in record.iter().enumerate() {
        match std::str::from_utf8(f) {
            Ok(f) => fields.push(f),
            // The field count comes first: with the wrong count, the
            // column name would be a guess.
            Err(_) if record.len() == HEADER.len() => {
                return Err(RowError { line, column: HEADER.get(i).copied(), reason: "is not UTF-8 text".into() })
            }
            Err(_) => fields.push(""),
        }
    }
    Row::parse(&fields, line, settings, today)
}

/// Imports one file. Every row is validated; a file with any bad row is
/// refused whole, with the first `MAX_LISTED_ERRORS` errors (by line) and
/// the count of all. `progress` gets rows read every 10,000 rows.
///
/// The file is opened once ([`open_regular`]: a regular file only, a link
/// never followed, also for `snow lab import FILE`), and hashed and parsed
/// from that handle, so the hash recorded is the hash of the rows counted.
/// If the file changed meanwhile, or the name now holds another file, the
/// import is rolled back ([`ImportError::Changed`]).
pub fn import_file(
    db: &mut LabDb,
    path: &Path,
    settings: &LabSettings,
    today: Date,
    mut progress: impl FnMut(u64),
) -> Result<Imported, ImportError> {
    let io = |source| ImportError::Io { path: path.to_owned(), source };
    let file = open_regular(path)?;
    let before = snapshot(&file.metadata().map_err(io)?);
    if before.len > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge);
    }
    let scanned = scan_file(&file, path)?;
    if db.imported(&scanned.hash)? {
        return Ok(Imported::Duplicate);
    }
    if scanned.len == 0 {
        return Err(ImportError::Empty);
    }
    if !scanned.whole_lines {
        return Err(ImportError::Truncated { line: scanned.line_breaks + 1 });
    }
    (&file).seek(SeekFrom::Start(0)).map_err(io)?;
    let mut records = Records::new(&file);
    let mut record = csv::ByteRecord::new();
    match records.read(&mut record) {
        Ok(Some(_)) => {}
        Ok(None) | Err(ReadError::TooLong { .. }) => return Err(ImportError::BadHeader),
        Err(ReadError::Io(e)) => return Err(io(e)),
    }
    let header_ok = record.len() == HEADER.len()
        && record.iter().zip(HEADER).all(|(f, h)| std::str::from_utf8(f).is_ok_and(|f| f.trim() == h));
    if !header_ok {
        return Err(ImportError::BadHeader);
    }
    // Rows are added until the first error; after it, the transaction is
    // rolled back and the rest of the file only checked.
    let mut tx = Some(db.begin()?);
    let mut keys = RecordKeys::new();
    let mut errors = RowErrors::default();
    let mut n = 0u64;
    loop {
        let line = match records.read(&mut record) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(ReadError::TooLong { line }) => {
                errors.push(RowError::too_long(line));
                break;
            }
            Err(ReadError::Io(e)) => return Err(io(e)),
        };
        n += 1;
        match parse_record(&record, line, settings, today) {
            Ok(row) => {
                if let Some(tx) = tx.as_mut() {
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
                        record_key: keys.next()?,
                    })?;
                }
            }
            Err(e) => {
                errors.push(e);
                tx = None;
            }
        }
        if n.is_multiple_of(10_000) {
            progress(n);
        }
    }
    // The handle's file unchanged, and still the one under the name.
    let now = snapshot(&file.metadata().map_err(io)?);
    let named = std::fs::symlink_metadata(path).map(|m| snapshot(&m)).ok();
    if now != before || named != Some(before) {
        // Rolled back with `tx`: a writer is still at work.
        return Err(ImportError::Changed);
    }
    let Some(tx) = tx.filter(|_| errors.is_empty()) else {
        return Err(ImportError::Rejected(errors));
    };
    let (rows, counted) = tx.counts();
    let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    tx.commit(&scanned.hash, &name, time::OffsetDateTime::now_utc().unix_timestamp())?;
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

    /// The `*.csv` entries in `in/`, each with how much longer it must
    /// stay unchanged before it is taken (zero: ready). Every kind of entry
    /// is listed (looked at with `lstat`, never followed): one that is not
    /// a regular file is refused when taken, not left to pile up.
    /// An entry `writing` names (a writer still holds it open) is not
    /// listed at all: it is not ready, however long ago it last changed.
    fn candidates(&self, writing: &dyn Fn(&OsStr) -> bool) -> Vec<(PathBuf, std::time::Duration)> {
        let Ok(rd) = std::fs::read_dir(self.incoming()) else { return Vec::new() };
        let now = std::time::SystemTime::now();
        rd.filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "csv"))
            .filter(|e| !writing(&e.file_name()))
            .filter_map(|e| {
                // `DirEntry::metadata` does not follow a link.
                let m = e.metadata().ok()?;
                // A clock set back counts as "just changed".
                let age = m.modified().ok().and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
                Some((e.path(), self.settle.saturating_sub(age)))
            })
            .collect()
    }

    /// How long until a file in `in/` that is still settling becomes
    /// ready, if there is one: the importer looks again then.
    pub fn next_ready(&self) -> Option<std::time::Duration> {
        self.next_ready_unless(&|_| false)
    }

    /// [`DropDir::next_ready`], leaving out the names `writing` says a
    /// writer still holds open (they become ready when closed, not by the
    /// clock).
    pub fn next_ready_unless(&self, writing: &dyn Fn(&OsStr) -> bool) -> Option<std::time::Duration> {
        self.candidates(writing).into_iter().map(|(_, wait)| wait).filter(|w| !w.is_zero()).min()
    }

    /// Imports every complete `*.csv` in `in/` (writers upload `*.part`
    /// and rename; a file written in place waits until it has not changed
    /// for the settle time), oldest name first, and moves each to `done/`
    /// or to `rejected/` with `NAME.error`: the reason, or for bad rows the
    /// count, then up to `MAX_LISTED_ERRORS` errors a line (`line N,
    /// column C: reason`), then `… and M more errors`. Each file gets one
    /// line in the log (info when imported, warning when rejected). A
    /// crash between commit and move is harmless: the next pass sees the
    /// hash and moves it to `done/`. A symbolic link, FIFO, device, socket
    /// or directory is moved (the link itself) to `rejected/` unread. A
    /// name already taken in `done/` or `rejected/` is not overwritten: the
    /// file gets the first free numbered name (`NAME.2.csv`, …; see
    /// [`numbered`]), its `.error` beside it.
    ///
    /// Where nothing tells which files are still open (`snow lab process`,
    /// a file system without notifications), the settle time is the only
    /// rule: see [`DropDir::process_unless`] for the importer's.
    pub fn process(
        &self,
        db: &mut LabDb,
        settings: &LabSettings,
        today: Date,
    ) -> Vec<(PathBuf, Result<Imported, String>)> {
        self.process_unless(db, settings, today, &|_| false)
    }

    /// [`DropDir::process`], except that a file whose name `writing`
    /// reports as still open for writing is not taken, however long ago it
    /// last changed: a writer that pauses longer than the settle time (a
    /// slow copy, a program writing as it goes) would otherwise lose the
    /// rows it writes after the pause. The running importer knows this from
    /// the kernel's change notifications (a write with no close yet); it
    /// is the settle time that still holds for a file that was closed, and
    /// for one already open before the importer started watching.
    pub fn process_unless(
        &self,
        db: &mut LabDb,
        settings: &LabSettings,
        today: Date,
        writing: &dyn Fn(&OsStr) -> bool,
    ) -> Vec<(PathBuf, Result<Imported, String>)> {
        let mut files: Vec<PathBuf> =
            self.candidates(writing).into_iter().filter(|(_, wait)| wait.is_zero()).map(|(p, _)| p).collect();
        files.sort();
        let mut out = Vec::new();
        for path in files {
            let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
            let shown = name.to_string_lossy().into_owned();
            let result = import_file(db, &path, settings, today, |_| {});
            // One line a file at the default log level (docs/architecture.md §5).
            let outcome = match result {
                Ok(imported) => {
                    let kept = match place(&path, &self.done(), &name, false) {
                        Ok(to) if to.file_name() == Some(name.as_os_str()) => String::new(),
                        Ok(to) => format!(" (kept as {DONE_DIR}/{}: the name was taken)", display(&to)),
                        Err(e) => format!(" (it stays in {INCOMING_DIR}/: cannot move it to {DONE_DIR}/: {e})"),
                    };
                    match &imported {
                        Imported::New { .. } => tracing::info!("imported {shown}: {imported}{kept}"),
                        Imported::Duplicate => tracing::info!("skipped {shown}: {imported}{kept}"),
                    }
                    Ok(imported)
                }
                Err(ImportError::Store(e)) => {
                    // Not the file's fault: leave it for the next pass.
                    tracing::error!("cannot import {shown} now (it stays in {INCOMING_DIR}/ for the next pass): {e}");
                    Err(e.to_string())
                }
                Err(ImportError::Changed) => {
                    tracing::info!("left {shown} for the next pass: it is still being written");
                    Err(ImportError::Changed.to_string())
                }
                Err(e) => {
                    let why = match &e {
                        ImportError::Rejected(errors) => errors.summary(3),
                        other => other.to_string(),
                    };
                    match place(&path, &self.rejected(), &name, true) {
                        Ok(to) => {
                            let mut err_name = to.file_name().map(OsStr::to_owned).unwrap_or_default();
                            err_name.push(".error");
                            let _ = snow_core::files::write(
                                &self.rejected().join(&err_name),
                                format!("{e}\n").as_bytes(),
                                snow_core::files::Mode::Private,
                            );
                            let kept = if to.file_name() == Some(name.as_os_str()) {
                                String::new()
                            } else {
                                format!(", kept as {REJECTED_DIR}/{}: the name was taken", display(&to))
                            };
                            tracing::warn!(
                                "rejected {shown}: {why} (see {REJECTED_DIR}/{}{kept})",
                                err_name.to_string_lossy()
                            );
                        }
                        Err(m) => tracing::error!(
                            "rejected {shown}: {why} (it stays in {INCOMING_DIR}/: cannot move it to {REJECTED_DIR}/: {m})"
                        ),
                    }
                    Err(e.to_string())
                }
            };
            out.push((path, outcome));
        }
        out
    }
}

/// The file name of `p`, for a log line.
fn display(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The `n`th name for `name` in a directory where it is taken: `name`
/// itself for 1, else the number before the extension (`w47.csv` →
/// `w47.2.csv`; without an extension, `NAME.2`).
pub fn numbered(name: &OsStr, n: u32) -> OsString {
    if n <= 1 {
        return name.to_owned();
    }
    let p = Path::new(name);
    let mut out = p.file_stem().map(OsStr::to_owned).unwrap_or_else(|| name.to_owned());
    out.push(format!(".{n}"));
    if let Some(ext) = p.extension() {
        out.push(".");
        out.push(ext);
    }
    out
}

/// Whether anything (a dangling link too) is at `p`.
fn taken(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Moves the entry at `from` (a link itself, never its target) into `dir`
/// under the first of [`numbered`]`(name, 1, 2, …)` that is free there —
/// with `companion`, its `NAME.error` free too — and returns where it went.
///
/// Nothing in `dir` is ever replaced: the entry is hard-linked under the
/// new name (which fails if the name exists, atomically) and then removed
/// from `in/`. What cannot be hard-linked (a directory; a file system or a
/// kernel policy without hard links for it) is renamed after a look that
/// the name is free: only the importer writes in `dir`.
fn place(from: &Path, dir: &Path, name: &OsStr, companion: bool) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for n in 1..=MAX_NUMBERED_NAMES {
        let to = dir.join(numbered(name, n));
        if companion {
            let mut error = to.clone().into_os_string();
            error.push(".error");
            if taken(Path::new(&error)) {
                continue;
            }
        }
        match std::fs::hard_link(from, &to) {
            Ok(()) => {
                std::fs::remove_file(from)?;
                return Ok(to);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) if taken(&to) => continue,
            Err(_) => {
                std::fs::rename(from, &to)?;
                return Ok(to);
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{} numbered names are taken", MAX_NUMBERED_NAMES),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the look at the directory cannot stop, the open does: a link
    /// swapped in is not followed, a FIFO swapped in does not block (no
    /// writer ever comes) and is refused on its handle.
    #[cfg(unix)]
    #[test]
    fn a_link_or_fifo_swapped_in_after_the_look_is_refused_at_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.csv");
        std::fs::write(&target, "x\n").unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(open_checked(&link), Err(ImportError::NotRegular { kind: "a symbolic link" })));
        let fifo = dir.path().join("fifo.csv");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || tx.send(open_checked(&f).map(|_| ())).unwrap());
        let r = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the open of a FIFO blocked");
        assert!(matches!(r, Err(ImportError::NotRegular { kind: "a FIFO (named pipe)" })), "{r:?}");
        assert!(matches!(open_checked(dir.path()), Err(ImportError::NotRegular { kind: "a directory" })));
        assert!(open_checked(&target).is_ok());
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        let n = |name: &str, i| numbered(OsStr::new(name), i).into_string().unwrap();
        assert_eq!(n("w47.csv", 1), "w47.csv");
        assert_eq!(n("w47.csv", 2), "w47.2.csv");
        assert_eq!(n("lab.w47.csv", 10), "lab.w47.10.csv");
        assert_eq!(n("noext", 3), "noext.3");
    }
}
