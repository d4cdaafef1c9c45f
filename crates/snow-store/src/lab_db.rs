//! The lab server's statistics store: weekly aggregates (ISO weeks) kept up
//! to date at import, so a search never scans raw rows. Raw rows are not
//! kept; only what counting needs: positive patients' pseudonyms per week
//! (for distinct persons) and sample pseudonyms (so a sample exported twice
//! is counted once).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::{migrate, StoreError};

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE imports (
    hash        TEXT PRIMARY KEY,                -- SHA-256 of the file
    file        TEXT NOT NULL,
    rows        INTEGER NOT NULL,
    imported_at INTEGER NOT NULL
);
CREATE TABLE weekly (
    analysis         TEXT NOT NULL,
    municipality     TEXT NOT NULL,
    year             INTEGER NOT NULL,           -- ISO week-numbering year
    week             INTEGER NOT NULL,
    age_group        TEXT NOT NULL,
    sex              TEXT NOT NULL,
    tested           INTEGER NOT NULL DEFAULT 0,
    positive         INTEGER NOT NULL DEFAULT 0,
    positive_persons INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (analysis, municipality, year, week, age_group, sex)
) WITHOUT ROWID;
CREATE TABLE positive_persons (
    analysis     TEXT NOT NULL,
    year         INTEGER NOT NULL,
    week         INTEGER NOT NULL,
    municipality TEXT NOT NULL,
    age_group    TEXT NOT NULL,
    sex          TEXT NOT NULL,
    patient      TEXT NOT NULL,
    PRIMARY KEY (analysis, year, week, municipality, age_group, sex, patient)
) WITHOUT ROWID;
CREATE TABLE samples (
    sample_id TEXT PRIMARY KEY
) WITHOUT ROWID;
"#,
    r#"
-- Searches: `yw` = year * 100 + week orders the weeks; one index per way
-- in (a single municipality, or a range of them for a county or all).
ALTER TABLE weekly ADD COLUMN yw INTEGER GENERATED ALWAYS AS (year * 100 + week) VIRTUAL;
CREATE INDEX weekly_by_municipality ON weekly (analysis, municipality, yw);
CREATE INDEX weekly_by_week ON weekly (analysis, yw, municipality);
"#,
];

/// One validated row, reduced to what the aggregates need.
#[derive(Debug, Clone)]
pub struct AggRow<'a> {
    pub sample_id: &'a str,
    pub patient: &'a str,
    pub analysis: &'a str,
    pub municipality: &'a str,
    pub year: i32,
    pub week: u8,
    pub age_group: &'a str,
    pub sex: &'a str,
    pub positive: bool,
}

/// A weekly aggregate row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weekly {
    pub year: i32,
    pub week: u8,
    pub tested: i64,
    pub positive: i64,
    pub positive_persons: i64,
}

pub struct LabDb {
    conn: Connection,
}

/// Key of one weekly aggregate row.
type WeekKey = (String, String, i32, u8, String, String);

/// An import in progress: one transaction for the whole file. Weekly
/// counts are summed in memory (their number is bounded by the
/// enumerations, not by the rows) and written once at commit.
pub struct LabImport<'a> {
    tx: Transaction<'a>,
    rows: u64,
    counted: u64,
    weekly: std::collections::HashMap<WeekKey, (i64, i64, i64)>,
}

impl LabDb {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(LabDb { conn: migrate::open(path, MIGRATIONS, 30)? })
    }

    /// The file with this content hash was imported before.
    pub fn imported(&self, hash: &str) -> Result<bool, StoreError> {
        Ok(self.conn.query_row("SELECT 1 FROM imports WHERE hash = ?1", [hash], |_| Ok(())).optional()?.is_some())
    }

    pub fn begin(&mut self) -> Result<LabImport<'_>, StoreError> {
        Ok(LabImport { tx: self.conn.transaction()?, rows: 0, counted: 0, weekly: Default::default() })
    }

    /// Weekly sums over the rows `filter` selects, one per week that has
    /// any, in order. Prepared statements only; each area kind has the
    /// index that fits it.
    pub fn weekly(&self, filter: &WeeklyFilter<'_>) -> Result<Vec<Weekly>, StoreError> {
        let (lo, hi) = filter.municipalities;
        let index = if lo == hi { "weekly_by_municipality" } else { "weekly_by_week" };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT year, week, SUM(tested), SUM(positive), SUM(positive_persons) FROM weekly INDEXED BY {index}
             WHERE analysis = ?1 AND municipality BETWEEN ?2 AND ?3 AND yw BETWEEN ?4 AND ?5
               AND (?6 IS NULL OR age_group = ?6) AND (?7 IS NULL OR sex = ?7)
             GROUP BY yw ORDER BY yw"
        ))?;
        let rows = stmt.query_map(
            params![filter.analysis, lo, hi, filter.weeks.0, filter.weeks.1, filter.age_group, filter.sex],
            |r| {
                Ok(Weekly {
                    year: r.get(0)?,
                    week: r.get(1)?,
                    tested: r.get(2)?,
                    positive: r.get(3)?,
                    positive_persons: r.get(4)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Which weekly aggregates to sum.
#[derive(Debug, Clone)]
pub struct WeeklyFilter<'a> {
    pub analysis: &'a str,
    /// Municipality numbers, an inclusive range (one, a county's, or all).
    pub municipalities: (&'a str, &'a str),
    /// Weeks as `year * 100 + week`, an inclusive range.
    pub weeks: (i32, i32),
    pub age_group: Option<&'a str>,
    pub sex: Option<&'a str>,
}

impl<'a> WeeklyFilter<'a> {
    /// Every age group and sex of one analysis in an area and week range.
    pub fn new(analysis: &'a str, municipalities: (&'a str, &'a str), weeks: (i32, i32)) -> Self {
        WeeklyFilter { analysis, municipalities, weeks, age_group: None, sex: None }
    }
}

impl LabImport<'_> {
    /// Adds one row; a sample seen before (in this or an earlier file) is
    /// not counted again.
    pub fn add(&mut self, r: &AggRow<'_>) -> Result<(), StoreError> {
        self.rows += 1;
        let new_sample =
            self.tx.prepare_cached("INSERT OR IGNORE INTO samples (sample_id) VALUES (?1)")?.execute([r.sample_id])?
                == 1;
        if !new_sample {
            return Ok(());
        }
        self.counted += 1;
        let new_person = r.positive
            && self
                .tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO positive_persons
                     (analysis, year, week, municipality, age_group, sex, patient) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![r.analysis, r.year, r.week, r.municipality, r.age_group, r.sex, r.patient])?
                == 1;
        let key = (
            r.analysis.to_owned(),
            r.municipality.to_owned(),
            r.year,
            r.week,
            r.age_group.to_owned(),
            r.sex.to_owned(),
        );
        let e = self.weekly.entry(key).or_insert((0, 0, 0));
        e.0 += 1;
        e.1 += i64::from(r.positive);
        e.2 += i64::from(new_person);
        Ok(())
    }

    /// Rows seen and rows counted (new samples) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.rows, self.counted)
    }

    /// Records the file as imported and commits everything at once.
    pub fn commit(self, hash: &str, file: &str, now: i64) -> Result<(), StoreError> {
        {
            let mut stmt = self.tx.prepare_cached(
                "INSERT INTO weekly (analysis, municipality, year, week, age_group, sex, tested, positive, positive_persons)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT DO UPDATE SET tested = tested + excluded.tested, positive = positive + excluded.positive,
                     positive_persons = positive_persons + excluded.positive_persons",
            )?;
            for ((a, m, y, w, g, s), (t, p, pp)) in &self.weekly {
                stmt.execute(params![a, m, y, w, g, s, t, p, pp])?;
            }
        }
        self.tx.execute(
            "INSERT INTO imports (hash, file, rows, imported_at) VALUES (?1, ?2, ?3, ?4)",
            params![hash, file, self.rows as i64, now],
        )?;
        self.tx.commit()?;
        Ok(())
    }
}
