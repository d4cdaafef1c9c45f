//! The lab server's statistics store: weekly aggregates (ISO weeks) kept up
//! to date at import, so a search never scans raw rows. Raw rows are not
//! kept; only what counting needs: positive patients' pseudonyms per week
//! (for distinct persons) and sample pseudonyms (so a sample exported twice
//! is counted once).
//!
//! Cell keys (issue 21, the cell key method): every record counted — a
//! sample, and a positive person in a week's cell — carries a random
//! 32-bit record key, chosen at import by the caller and kept here, never
//! sent. Each aggregate row keeps, beside each count, the sum of its
//! records' keys modulo 2^32; a search's cell key is the sum of its rows'
//! keys modulo 2^32 (as a fraction of 2^32: the fractional part of the
//! sum of the records' keys). Integer sums make the key of a cell the
//! same however it is summed (municipalities or the county row, weeks or
//! a month), so the same cell always gets the same noise.

use std::path::Path;

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::{migrate, StoreError};

/// Record keys and their sums are taken modulo 2^32.
const KEY_MASK: i64 = 0xffff_ffff;

/// How an import adds its counts and keys to an aggregate row that exists
/// (`weekly`, `weekly_area`, `weekly_total`): counts summed, keys summed
/// modulo 2^32.
const ADD_COUNTS: &str = "ON CONFLICT DO UPDATE SET tested = tested + excluded.tested,
    positive = positive + excluded.positive, positive_persons = positive_persons + excluded.positive_persons,
    tested_key = (tested_key + excluded.tested_key) & 4294967295,
    positive_key = (positive_key + excluded.positive_key) & 4294967295,
    persons_key = (persons_key + excluded.persons_key) & 4294967295";

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
-- Searches: `yw` = year * 100 + week orders the weeks. A municipality is
-- read from `weekly` through a covering index; counties (the municipality
-- numbers' first two digits) and 'all' from `weekly_area`, the same counts
-- summed over their municipalities. Either way a search reads one row per
-- week, age group and sex, and nothing else.
ALTER TABLE weekly ADD COLUMN yw INTEGER GENERATED ALWAYS AS (year * 100 + week) VIRTUAL;
CREATE INDEX weekly_by_municipality ON weekly (analysis, municipality, yw, tested, positive, positive_persons);
CREATE TABLE weekly_area (
    analysis         TEXT NOT NULL,
    area             TEXT NOT NULL,              -- 'NN' (county) or 'all'
    yw               INTEGER NOT NULL,
    age_group        TEXT NOT NULL,
    sex              TEXT NOT NULL,
    tested           INTEGER NOT NULL,
    positive         INTEGER NOT NULL,
    positive_persons INTEGER NOT NULL,
    PRIMARY KEY (analysis, area, yw, age_group, sex)
) WITHOUT ROWID;
INSERT INTO weekly_area
    SELECT analysis, area, yw, age_group, sex, SUM(tested), SUM(positive), SUM(positive_persons) FROM (
        SELECT analysis, substr(municipality, 1, 2) AS area, yw, age_group, sex, tested, positive, positive_persons
        FROM weekly
        UNION ALL SELECT analysis, 'all', yw, age_group, sex, tested, positive, positive_persons FROM weekly)
    GROUP BY analysis, area, yw, age_group, sex;
"#,
    r#"
-- Outbreak detection: one alert per series (analysis and area: a
-- municipality or a county) and week, ever, kept across restarts.
CREATE TABLE alerts_sent (
    analysis   TEXT NOT NULL,
    area       TEXT NOT NULL,                    -- '5401' or '54'
    yw         INTEGER NOT NULL,
    algorithm  TEXT NOT NULL,
    observed   INTEGER NOT NULL,
    threshold  REAL NOT NULL,
    recipients INTEGER NOT NULL,                 -- subscribers it was encrypted to
    sent_at    INTEGER NOT NULL,
    PRIMARY KEY (analysis, area, yw)
) WITHOUT ROWID;
"#,
    r#"
-- Searches: the areas the lab has ever had a row for, in any analysis
-- (municipalities 'NNNN' and their counties 'NN'), so an area it knows
-- nothing of is refused by name; and the weeks its data covers, in any
-- analysis (first and last `yw`), so a period outside them is answered
-- "no data", not zero. Both only grow, at each import.
CREATE TABLE known_areas (
    area TEXT PRIMARY KEY
) WITHOUT ROWID;
INSERT INTO known_areas
    SELECT DISTINCT municipality FROM weekly UNION SELECT DISTINCT substr(municipality, 1, 2) FROM weekly;
CREATE TABLE coverage (
    id       INTEGER PRIMARY KEY CHECK (id = 1),  -- one row, once there is data
    first_yw INTEGER NOT NULL,
    last_yw  INTEGER NOT NULL
);
INSERT INTO coverage SELECT 1, min(yw), max(yw) FROM weekly HAVING count(*) > 0;
"#,
    r#"
-- Cell keys (issue 21). Records imported before keys existed have none:
-- each of their weekly cells gets one random key per count instead (a
-- sum of unknown uniform keys is itself uniform), and the area rows the
-- sums of their municipalities' keys, as an import would make them.
ALTER TABLE samples ADD COLUMN record_key INTEGER;
ALTER TABLE positive_persons ADD COLUMN record_key INTEGER;
ALTER TABLE weekly ADD COLUMN tested_key INTEGER NOT NULL DEFAULT 0;
ALTER TABLE weekly ADD COLUMN positive_key INTEGER NOT NULL DEFAULT 0;
ALTER TABLE weekly ADD COLUMN persons_key INTEGER NOT NULL DEFAULT 0;
UPDATE weekly SET tested_key = random() & 4294967295, positive_key = random() & 4294967295,
    persons_key = random() & 4294967295;
ALTER TABLE weekly_area ADD COLUMN tested_key INTEGER NOT NULL DEFAULT 0;
ALTER TABLE weekly_area ADD COLUMN positive_key INTEGER NOT NULL DEFAULT 0;
ALTER TABLE weekly_area ADD COLUMN persons_key INTEGER NOT NULL DEFAULT 0;
UPDATE weekly_area SET (tested_key, positive_key, persons_key) = (
    SELECT SUM(w.tested_key) & 4294967295, SUM(w.positive_key) & 4294967295, SUM(w.persons_key) & 4294967295
    FROM weekly w
    WHERE w.analysis = weekly_area.analysis AND w.yw = weekly_area.yw AND w.age_group = weekly_area.age_group
      AND w.sex = weekly_area.sex AND (weekly_area.area = 'all' OR substr(w.municipality, 1, 2) = weekly_area.area));
-- The municipality index covers the keys too: a search still reads one
-- index entry per week, age group and sex.
DROP INDEX weekly_by_municipality;
CREATE INDEX weekly_by_municipality
    ON weekly (analysis, municipality, yw, tested, positive, positive_persons, tested_key, positive_key, persons_key);
"#,
    r#"
-- Searches without an age group or sex (most of them) read one row per
-- week: every area's weekly totals over its age groups and sexes, with
-- their keys. A municipality's positive persons add up across age groups
-- and sexes (a patient has one of each).
CREATE TABLE weekly_total (
    analysis         TEXT NOT NULL,
    area             TEXT NOT NULL,              -- 'NNNN', 'NN' or 'all'
    yw               INTEGER NOT NULL,
    tested           INTEGER NOT NULL,
    positive         INTEGER NOT NULL,
    positive_persons INTEGER NOT NULL,
    tested_key       INTEGER NOT NULL,
    positive_key     INTEGER NOT NULL,
    persons_key      INTEGER NOT NULL,
    PRIMARY KEY (analysis, area, yw)
) WITHOUT ROWID;
INSERT INTO weekly_total
    SELECT analysis, municipality, yw, SUM(tested), SUM(positive), SUM(positive_persons),
           SUM(tested_key) & 4294967295, SUM(positive_key) & 4294967295, SUM(persons_key) & 4294967295
    FROM weekly GROUP BY analysis, municipality, yw
    UNION ALL
    SELECT analysis, area, yw, SUM(tested), SUM(positive), SUM(positive_persons),
           SUM(tested_key) & 4294967295, SUM(positive_key) & 4294967295, SUM(persons_key) & 4294967295
    FROM weekly_area GROUP BY analysis, area, yw;
"#,
];

/// An alert the detection agent sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SentAlert {
    pub analysis: String,
    pub area: String,
    pub yw: i32,
    pub algorithm: String,
    pub observed: i64,
    pub threshold: f64,
    pub recipients: i64,
    pub sent_at: i64,
}

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
    /// The record's random key (uniform over u32, from a CSPRNG): also
    /// the key of the positive person it makes, if it is their first
    /// positive sample in the week's cell.
    pub record_key: u32,
}

/// A weekly aggregate row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weekly {
    pub year: i32,
    pub week: u8,
    pub tested: i64,
    pub positive: i64,
    pub positive_persons: i64,
    /// The cell keys of the three counts: sums of record keys mod 2^32.
    pub keys: CellKeys,
}

/// The cell keys of tested, positive and positive persons: sums of their
/// records' keys modulo 2^32 (module doc). The keys of the union of two
/// disjoint cells are their sum (`+`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CellKeys {
    pub tested: u32,
    pub positive: u32,
    pub persons: u32,
}

impl std::ops::Add for CellKeys {
    type Output = CellKeys;

    fn add(self, other: CellKeys) -> CellKeys {
        CellKeys {
            tested: self.tested.wrapping_add(other.tested),
            positive: self.positive.wrapping_add(other.positive),
            persons: self.persons.wrapping_add(other.persons),
        }
    }
}

pub struct LabDb {
    conn: Connection,
}

/// Key of one weekly aggregate row.
type WeekKey = (String, String, i32, u8, String, String);
/// Key of one `weekly_area` row: analysis, area, yw, age group, sex.
type AreaKey<'a> = (&'a str, &'a str, i32, &'a str, &'a str);
/// Tested, positive, positive persons, and their cell keys.
type Counts = (i64, i64, i64, CellKeys);

/// An import in progress: one transaction for the whole file. Weekly
/// counts are summed in memory (their number is bounded by the
/// enumerations, not by the rows) and written once at commit.
pub struct LabImport<'a> {
    tx: Transaction<'a>,
    rows: u64,
    counted: u64,
    weekly: HashMap<WeekKey, Counts>,
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

    /// The newest import (its row number), if any: the detection agent
    /// runs when it changes.
    pub fn latest_import(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row("SELECT max(rowid) FROM imports", [], |r| r.get(0))?)
    }

    /// The first and last week (`year * 100 + week`) with data for `analysis`.
    pub fn week_span(&self, analysis: &str) -> Result<Option<(i32, i32)>, StoreError> {
        let r: (Option<i32>, Option<i32>) = self.conn.query_row(
            "SELECT min(yw), max(yw) FROM weekly_area WHERE analysis = ?1 AND area = 'all'",
            [analysis],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(r.0.zip(r.1))
    }

    /// The municipalities and counties with data for `analysis`.
    pub fn areas(&self, analysis: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT municipality FROM weekly INDEXED BY weekly_by_municipality WHERE analysis = ?1
             UNION SELECT DISTINCT area FROM weekly_area WHERE analysis = ?1 AND area != 'all' ORDER BY 1",
        )?;
        let rows = stmt.query_map([analysis], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The lab has had a row for this municipality (`5401`) or county
    /// (`54`), in any analysis; `all` is always known.
    pub fn knows_area(&self, area: &str) -> Result<bool, StoreError> {
        if area == "all" {
            return Ok(true);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM known_areas WHERE area = ?1")?
            .query_row([area], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The first and last week (`year * 100 + week`) the lab has data for,
    /// in any analysis and area; `None` before the first import with rows.
    pub fn coverage(&self) -> Result<Option<(i32, i32)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT first_yw, last_yw FROM coverage WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    pub fn alert_sent(&self, analysis: &str, area: &str, yw: i32) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM alerts_sent WHERE analysis = ?1 AND area = ?2 AND yw = ?3",
                params![analysis, area, yw],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records a sent alert; false if one was already recorded for that
    /// series and week.
    pub fn record_alert(&self, a: &SentAlert) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO alerts_sent (analysis, area, yw, algorithm, observed, threshold, recipients, sent_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![a.analysis, a.area, a.yw, a.algorithm, a.observed, a.threshold, a.recipients, a.sent_at],
        )? == 1)
    }

    /// Every alert sent, oldest first.
    pub fn sent_alerts(&self) -> Result<Vec<SentAlert>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT analysis, area, yw, algorithm, observed, threshold, recipients, sent_at FROM alerts_sent
             ORDER BY sent_at, analysis, area, yw",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SentAlert {
                analysis: r.get(0)?,
                area: r.get(1)?,
                yw: r.get(2)?,
                algorithm: r.get(3)?,
                observed: r.get(4)?,
                threshold: r.get(5)?,
                recipients: r.get(6)?,
                sent_at: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Weekly sums over the rows `filter` selects, one per week that has
    /// any, in order. Prepared statements only, each with the index that
    /// answers it without touching rows it does not return.
    pub fn weekly(&self, filter: &WeeklyFilter<'_>) -> Result<Vec<Weekly>, StoreError> {
        let weeks = (filter.weeks.0, filter.weeks.1);
        let map = |r: &rusqlite::Row<'_>| {
            let yw: i32 = r.get(0)?;
            let key = |i| r.get::<_, i64>(i).map(|k| (k & KEY_MASK) as u32);
            Ok(Weekly {
                year: yw / 100,
                week: (yw % 100) as u8,
                tested: r.get(1)?,
                positive: r.get(2)?,
                positive_persons: r.get(3)?,
                keys: CellKeys { tested: key(4)?, positive: key(5)?, persons: key(6)? },
            })
        };
        // Key sums: at most one row per age group and sex is added (far
        // below 2^31 rows), so SUM cannot overflow before the mask.
        let sql = if filter.age_group.is_none() && filter.sex.is_none() {
            "SELECT yw, tested, positive, positive_persons, tested_key, positive_key, persons_key
             FROM weekly_total
             WHERE analysis = ?1 AND area = ?2 AND yw BETWEEN ?3 AND ?4 AND ?5 IS NULL AND ?6 IS NULL
             ORDER BY yw"
        } else if filter.area.len() == 4 {
            "SELECT yw, SUM(tested), SUM(positive), SUM(positive_persons),
                    SUM(tested_key), SUM(positive_key), SUM(persons_key)
             FROM weekly INDEXED BY weekly_by_municipality
             WHERE analysis = ?1 AND municipality = ?2 AND yw BETWEEN ?3 AND ?4
               AND (?5 IS NULL OR age_group = ?5) AND (?6 IS NULL OR sex = ?6)
             GROUP BY yw ORDER BY yw"
        } else {
            "SELECT yw, SUM(tested), SUM(positive), SUM(positive_persons),
                    SUM(tested_key), SUM(positive_key), SUM(persons_key)
             FROM weekly_area
             WHERE analysis = ?1 AND area = ?2 AND yw BETWEEN ?3 AND ?4
               AND (?5 IS NULL OR age_group = ?5) AND (?6 IS NULL OR sex = ?6)
             GROUP BY yw ORDER BY yw"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows =
            stmt.query_map(params![filter.analysis, filter.area, weeks.0, weeks.1, filter.age_group, filter.sex], map)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Which weekly aggregates to sum.
#[derive(Debug, Clone)]
pub struct WeeklyFilter<'a> {
    pub analysis: &'a str,
    /// A municipality (`5401`), a county (`54`, the municipality numbers'
    /// first two digits) or `all`.
    pub area: &'a str,
    /// Weeks as `year * 100 + week`, an inclusive range.
    pub weeks: (i32, i32),
    pub age_group: Option<&'a str>,
    pub sex: Option<&'a str>,
}

impl<'a> WeeklyFilter<'a> {
    /// Every age group and sex of one analysis in an area and week range.
    pub fn new(analysis: &'a str, area: &'a str, weeks: (i32, i32)) -> Self {
        WeeklyFilter { analysis, area, weeks, age_group: None, sex: None }
    }
}

impl LabImport<'_> {
    /// Adds one row; a sample seen before (in this or an earlier file) is
    /// not counted again.
    pub fn add(&mut self, r: &AggRow<'_>) -> Result<(), StoreError> {
        self.rows += 1;
        let new_sample = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO samples (sample_id, record_key) VALUES (?1, ?2)")?
            .execute(params![r.sample_id, r.record_key])?
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
                     (analysis, year, week, municipality, age_group, sex, patient, record_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    r.analysis,
                    r.year,
                    r.week,
                    r.municipality,
                    r.age_group,
                    r.sex,
                    r.patient,
                    r.record_key
                ])?
                == 1;
        let key = (
            r.analysis.to_owned(),
            r.municipality.to_owned(),
            r.year,
            r.week,
            r.age_group.to_owned(),
            r.sex.to_owned(),
        );
        let e = self.weekly.entry(key).or_insert((0, 0, 0, CellKeys::default()));
        e.0 += 1;
        e.1 += i64::from(r.positive);
        e.2 += i64::from(new_person);
        let k = r.record_key;
        e.3 = e.3
            + CellKeys { tested: k, positive: if r.positive { k } else { 0 }, persons: if new_person { k } else { 0 } };
        Ok(())
    }

    /// Rows seen and rows counted (new samples) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.rows, self.counted)
    }

    /// Records the file as imported and commits everything at once.
    pub fn commit(self, hash: &str, file: &str, now: i64) -> Result<(), StoreError> {
        {
            let mut stmt = self.tx.prepare_cached(&format!(
                "INSERT INTO weekly (analysis, municipality, year, week, age_group, sex, tested, positive, positive_persons,
                                     tested_key, positive_key, persons_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) {ADD_COUNTS}"
            ))?;
            for ((a, m, y, w, g, s), (t, p, pp, k)) in &self.weekly {
                stmt.execute(params![a, m, y, w, g, s, t, p, pp, k.tested, k.positive, k.persons])?;
            }
            // The same counts summed per county and for all.
            let mut areas: HashMap<AreaKey<'_>, Counts> = HashMap::new();
            for ((a, m, y, w, g, s), (t, p, pp, k)) in &self.weekly {
                let yw = y * 100 + i32::from(*w);
                for area in [m.get(..2).unwrap_or(m), "all"] {
                    let e = areas.entry((a, area, yw, g, s)).or_insert((0, 0, 0, CellKeys::default()));
                    (e.0, e.1, e.2, e.3) = (e.0 + t, e.1 + p, e.2 + pp, e.3 + *k);
                }
            }
            let mut stmt = self.tx.prepare_cached(&format!(
                "INSERT INTO weekly_area (analysis, area, yw, age_group, sex, tested, positive, positive_persons,
                                          tested_key, positive_key, persons_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) {ADD_COUNTS}"
            ))?;
            let mut totals: HashMap<(&str, &str, i32), Counts> = HashMap::new();
            for ((a, area, yw, g, s), (t, p, pp, k)) in areas {
                stmt.execute(params![a, area, yw, g, s, t, p, pp, k.tested, k.positive, k.persons])?;
                let e = totals.entry((a, area, yw)).or_insert((0, 0, 0, CellKeys::default()));
                (e.0, e.1, e.2, e.3) = (e.0 + t, e.1 + p, e.2 + pp, e.3 + k);
            }
            for ((a, m, y, w, _, _), (t, p, pp, k)) in &self.weekly {
                let e = totals.entry((a, m, y * 100 + i32::from(*w))).or_insert((0, 0, 0, CellKeys::default()));
                (e.0, e.1, e.2, e.3) = (e.0 + t, e.1 + p, e.2 + pp, e.3 + *k);
            }
            let mut stmt = self.tx.prepare_cached(&format!(
                "INSERT INTO weekly_total (analysis, area, yw, tested, positive, positive_persons,
                                           tested_key, positive_key, persons_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) {ADD_COUNTS}"
            ))?;
            for ((a, area, yw), (t, p, pp, k)) in totals {
                stmt.execute(params![a, area, yw, t, p, pp, k.tested, k.positive, k.persons])?;
            }
            // The areas and weeks the lab now has data for.
            let mut known = std::collections::HashSet::new();
            let mut span: Option<(i32, i32)> = None;
            for (_, m, y, w, _, _) in self.weekly.keys() {
                known.extend([m.as_str(), m.get(..2).unwrap_or(m)]);
                let yw = y * 100 + i32::from(*w);
                span = Some(span.map_or((yw, yw), |(a, b)| (a.min(yw), b.max(yw))));
            }
            let mut stmt = self.tx.prepare_cached("INSERT OR IGNORE INTO known_areas (area) VALUES (?1)")?;
            for area in known {
                stmt.execute([area])?;
            }
            if let Some((first, last)) = span {
                self.tx.execute(
                    "INSERT INTO coverage (id, first_yw, last_yw) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET first_yw = min(first_yw, excluded.first_yw),
                         last_yw = max(last_yw, excluded.last_yw)",
                    params![first, last],
                )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_migration_fills_the_area_sums() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.db");
        let old = migrate::open(&path, &MIGRATIONS[..1], 10).unwrap();
        old.execute_batch(
            "INSERT INTO weekly VALUES ('INFA', '5401', 2026, 3, '0-4', 'F', 10, 4, 3);
             INSERT INTO weekly VALUES ('INFA', '5402', 2026, 3, '0-4', 'F', 5, 1, 1);
             INSERT INTO weekly VALUES ('INFA', '1804', 2026, 3, '0-4', 'M', 7, 2, 2);",
        )
        .unwrap();
        drop(old);
        let db = LabDb::open(&path).unwrap();
        let sums = |area| {
            let w = db.weekly(&WeeklyFilter::new("INFA", area, (202601, 202610))).unwrap();
            w.iter().map(|w| (w.week, w.tested, w.positive, w.positive_persons)).collect::<Vec<_>>()
        };
        assert_eq!(sums("54"), [(3, 15, 5, 4)]);
        assert_eq!(sums("all"), [(3, 22, 7, 6)]);
        assert_eq!(sums("1804"), [(3, 7, 2, 2)]);
        // The later migration knows the areas and weeks of the old rows.
        for (area, known) in [("5401", true), ("54", true), ("18", true), ("all", true), ("5403", false), ("55", false)]
        {
            assert_eq!(db.knows_area(area).unwrap(), known, "{area}");
        }
        assert_eq!(db.coverage().unwrap(), Some((202603, 202603)));
        // Rows from before cell keys got random keys, and the county's are
        // the sums of its municipalities'.
        let keys = |area| db.weekly(&WeeklyFilter::new("INFA", area, (202601, 202610))).unwrap()[0].keys;
        assert_eq!(keys("54"), keys("5401") + keys("5402"));
        assert_eq!(keys("all"), keys("54") + keys("1804"));
        assert_ne!(keys("5401"), CellKeys::default());
    }

    /// Imports grow the known areas (of any analysis) and the weeks the
    /// data covers; a file of samples seen before changes neither.
    #[test]
    fn imports_record_known_areas_and_coverage() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = LabDb::open(&dir.path().join("lab.db")).unwrap();
        assert_eq!(db.coverage().unwrap(), None);
        assert!(!db.knows_area("5401").unwrap() && db.knows_area("all").unwrap());
        let row = |sample: &'static str, analysis: &'static str, municipality: &'static str, year, week| AggRow {
            sample_id: sample,
            patient: "p",
            analysis,
            municipality,
            year,
            week,
            age_group: "0-4",
            sex: "F",
            positive: false,
            record_key: 7,
        };
        let mut import = |hash: &str, rows: &[AggRow<'_>]| {
            let mut imp = db.begin().unwrap();
            for r in rows {
                imp.add(r).unwrap();
            }
            imp.commit(hash, "f.csv", 0).unwrap();
        };
        import("a", &[row("s1", "INFA", "5401", 2026, 10), row("s2", "RSV", "1804", 2026, 12)]);
        import("b", &[row("s3", "INFA", "5402", 2025, 50)]);
        // Samples seen before: nothing new is counted, nothing changes.
        import("c", &[row("s1", "INFA", "1860", 2027, 2)]);
        for (area, known) in
            [("5401", true), ("5402", true), ("54", true), ("1804", true), ("18", true), ("1860", false), ("99", false)]
        {
            assert_eq!(db.knows_area(area).unwrap(), known, "{area}");
        }
        assert_eq!(db.coverage().unwrap(), Some((202550, 202612)));
    }

    /// The per-area sums and the detailed rows give the same answers.
    #[test]
    fn area_sums_agree_with_the_detail() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = LabDb::open(&dir.path().join("lab.db")).unwrap();
        let mut imp = db.begin().unwrap();
        let groups = ["0-4", "25-44"];
        for i in 0..200u32 {
            let (sample, patient) = (format!("{i:032x}"), format!("{:064x}", i % 37));
            let muni = ["5401", "5402", "1804"][(i % 3) as usize];
            imp.add(&AggRow {
                sample_id: &sample,
                patient: &patient,
                analysis: "INFA",
                municipality: muni,
                year: 2026,
                week: (1 + i % 5) as u8,
                age_group: groups[(i % 2) as usize],
                sex: if i % 7 < 3 { "M" } else { "F" },
                positive: i % 4 == 0,
                record_key: i.wrapping_mul(0x9e37_79b9),
            })
            .unwrap();
        }
        imp.commit("h", "f.csv", 0).unwrap();
        let weeks = (202601, 202653);
        for area in ["5401", "54", "all"] {
            let total = db.weekly(&WeeklyFilter::new("INFA", area, weeks)).unwrap();
            let mut by_group: HashMap<(i32, u8), (i64, i64, i64)> = HashMap::new();
            for g in groups {
                for s in ["M", "F"] {
                    let f = WeeklyFilter { age_group: Some(g), sex: Some(s), ..WeeklyFilter::new("INFA", area, weeks) };
                    for w in db.weekly(&f).unwrap() {
                        let e = by_group.entry((w.year, w.week)).or_default();
                        (e.0, e.1, e.2) = (e.0 + w.tested, e.1 + w.positive, e.2 + w.positive_persons);
                    }
                }
            }
            assert_eq!(total.len(), 5, "{area}");
            for w in &total {
                assert_eq!(by_group[&(w.year, w.week)], (w.tested, w.positive, w.positive_persons), "{area} {w:?}");
            }
        }
        let all: i64 = db.weekly(&WeeklyFilter::new("INFA", "all", weeks)).unwrap().iter().map(|w| w.tested).sum();
        assert_eq!(all, 200);
        let county: i64 = db.weekly(&WeeklyFilter::new("INFA", "54", weeks)).unwrap().iter().map(|w| w.tested).sum();
        assert_eq!(county, 134);
    }

    /// Issue 21: a cell's key is the sum (mod 2^32) of its records' keys,
    /// whichever rows it is summed from and across two imports: tested
    /// from every sample, positive from the positive ones, persons from a
    /// patient's first positive sample in the week's cell only.
    #[test]
    fn cell_keys_are_the_sums_of_their_records_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = LabDb::open(&dir.path().join("lab.db")).unwrap();
        let groups = ["0-4", "25-44"];
        // (municipality, week, group, sex, positive, patient, key)
        let mut records = Vec::new();
        for i in 0..300u32 {
            let key = i.wrapping_mul(0x9e37_79b9) ^ 0x5bd1_e995;
            let muni = ["5401", "5402", "1804"][(i % 3) as usize];
            records.push((
                muni,
                (1 + i % 4) as u8,
                groups[(i % 2) as usize],
                ["M", "F"][(i % 5 % 2) as usize],
                i % 3 != 1,
                i % 11,
                key,
            ));
        }
        for (n, part) in records.chunks(150).enumerate() {
            let mut imp = db.begin().unwrap();
            for (j, (m, w, g, s, pos, patient, key)) in part.iter().enumerate() {
                let (sample, patient) = (format!("{n}-{j:030}"), format!("{patient:064x}"));
                imp.add(&AggRow {
                    sample_id: &sample,
                    patient: &patient,
                    analysis: "INFA",
                    municipality: m,
                    year: 2026,
                    week: *w,
                    age_group: g,
                    sex: s,
                    positive: *pos,
                    record_key: *key,
                })
                .unwrap();
            }
            imp.commit(&format!("h{n}"), "f.csv", 0).unwrap();
        }
        let expected = |area: &str, week: u8, group: Option<&str>| {
            let mut k = CellKeys::default();
            let mut seen = std::collections::HashSet::new();
            for (m, w, g, s, pos, patient, key) in &records {
                let in_area = area == "all" || m.starts_with(area);
                if !in_area || *w != week || group.is_some_and(|x| x != *g) {
                    continue;
                }
                let first = *pos && seen.insert((*m, *g, *s, *patient));
                k = k + CellKeys {
                    tested: *key,
                    positive: if *pos { *key } else { 0 },
                    persons: if first { *key } else { 0 },
                };
            }
            k
        };
        for area in ["5401", "1804", "54", "all"] {
            for group in [None, Some("0-4")] {
                let f = WeeklyFilter { age_group: group, ..WeeklyFilter::new("INFA", area, (202601, 202653)) };
                let rows = db.weekly(&f).unwrap();
                assert!(!rows.is_empty());
                for w in rows {
                    assert_eq!(w.keys, expected(area, w.week, group), "{area} {group:?} week {}", w.week);
                }
            }
        }
    }
}
