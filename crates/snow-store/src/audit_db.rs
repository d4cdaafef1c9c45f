//! The lab's record of every search it was asked (issue 21): who asked,
//! what, when, how many cells were answered, and how it ended. The
//! search budget counts from it, and `snow lab audit` lists and exports
//! it for the lab's data-protection officer.
//!
//! A file of its own (`data/audit.db`, not `lab.db`): an import holds
//! `lab.db`'s write lock for seconds, and a search must not wait for it to
//! be recorded. Rows are only ever added.

use std::path::Path;

use rusqlite::{params, Connection};

use crate::{migrate, StoreError};

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE searches (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,                -- Unix seconds
    requester   TEXT NOT NULL,                   -- the asker's bare JID
    analysis    TEXT,                            -- NULL: the query was not read
    period      TEXT,                            -- FROM..TO as the query gave it
    area        TEXT,
    granularity TEXT,
    age_group   TEXT,
    sex         TEXT,
    cells       INTEGER NOT NULL,                -- buckets answered with counts
    outcome     TEXT NOT NULL                    -- 'answered' or 'refused: REASON'
);
CREATE INDEX searches_by_requester ON searches (requester, at);
CREATE INDEX searches_by_time ON searches (at);
"#];

/// The outcome of a search that was answered; anything else is a refusal.
pub const ANSWERED: &str = "answered";

/// One search as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchRecord {
    pub at: i64,
    pub requester: String,
    /// The query's parameters, when it could be read.
    pub query: Option<AuditedQuery>,
    /// Buckets answered with counts (0 for a refusal).
    pub cells: u32,
    /// [`ANSWERED`], or `refused: …` with the reason's condition.
    pub outcome: String,
}

/// A query's parameters in their wire form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditedQuery {
    pub analysis: String,
    /// `FROM..TO`.
    pub period: String,
    pub area: String,
    pub granularity: String,
    pub age_group: Option<String>,
    pub sex: Option<String>,
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter<'a> {
    /// From this time on (Unix seconds), inclusive.
    pub since: Option<i64>,
    pub requester: Option<&'a str>,
    /// The newest this many (all when `None`).
    pub limit: Option<u32>,
}

pub struct AuditDb {
    conn: Connection,
}

impl AuditDb {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(AuditDb { conn: migrate::open(path, MIGRATIONS, 30)? })
    }

    /// Adds one record (committed before this returns).
    pub fn record(&self, r: &SearchRecord) -> Result<(), StoreError> {
        let q = r.query.as_ref();
        self.conn
            .prepare_cached(
                "INSERT INTO searches (at, requester, analysis, period, area, granularity, age_group, sex, cells, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                r.at,
                r.requester,
                q.map(|q| &q.analysis),
                q.map(|q| &q.period),
                q.map(|q| &q.area),
                q.map(|q| &q.granularity),
                q.and_then(|q| q.age_group.as_ref()),
                q.and_then(|q| q.sex.as_ref()),
                r.cells,
                r.outcome,
            ])?;
        Ok(())
    }

    /// Searches `requester` had answered from `since` (Unix seconds) on:
    /// what the budget counts.
    pub fn answered_since(&self, requester: &str, since: i64) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM searches WHERE requester = ?1 AND at >= ?2 AND outcome = ?3")?
            .query_row(params![requester, since, ANSWERED], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// The oldest answered search of `requester` from `since` on: when the
    /// next becomes possible under a budget (that time plus the window).
    pub fn oldest_answered_since(&self, requester: &str, since: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT min(at) FROM searches WHERE requester = ?1 AND at >= ?2 AND outcome = ?3")?
            .query_row(params![requester, since, ANSWERED], |r| r.get(0))?)
    }

    /// The records `filter` selects, oldest first.
    pub fn list(&self, filter: &AuditFilter<'_>) -> Result<Vec<SearchRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, requester, analysis, period, area, granularity, age_group, sex, cells, outcome FROM (
                 SELECT * FROM searches
                 WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR requester = ?2)
                 ORDER BY at DESC, id DESC LIMIT ?3)
             ORDER BY at, id",
        )?;
        let limit = filter.limit.map_or(-1, i64::from);
        let rows = stmt.query_map(params![filter.since, filter.requester, limit], |r| {
            let analysis: Option<String> = r.get(2)?;
            let query = match analysis {
                Some(analysis) => Some(AuditedQuery {
                    analysis,
                    period: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    area: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    granularity: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    age_group: r.get(6)?,
                    sex: r.get(7)?,
                }),
                None => None,
            };
            Ok(SearchRecord {
                at: r.get(0)?,
                requester: r.get(1)?,
                query,
                cells: r.get::<_, i64>(8)?.clamp(0, i64::from(u32::MAX)) as u32,
                outcome: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: i64, who: &str, outcome: &str) -> SearchRecord {
        SearchRecord {
            at,
            requester: who.into(),
            query: Some(AuditedQuery {
                analysis: "INFA".into(),
                period: "2026-W01..2026-W08".into(),
                area: "municipality:5401".into(),
                granularity: "week".into(),
                age_group: None,
                sex: Some("F".into()),
            }),
            cells: 8,
            outcome: outcome.into(),
        }
    }

    #[test]
    fn records_are_kept_counted_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let db = AuditDb::open(&path).unwrap();
        for at in [100, 200, 300] {
            db.record(&record(at, "1111111@po.example", ANSWERED)).unwrap();
        }
        db.record(&record(250, "1111111@po.example", "refused: policy-violation")).unwrap();
        db.record(&SearchRecord {
            at: 260,
            requester: "2222222@po.example".into(),
            outcome: "refused: not-acceptable".into(),
            ..Default::default()
        })
        .unwrap();
        drop(db);
        // Kept across a reopen.
        let db = AuditDb::open(&path).unwrap();
        assert_eq!(db.answered_since("1111111@po.example", 150).unwrap(), 2);
        assert_eq!(db.answered_since("1111111@po.example", 0).unwrap(), 3);
        assert_eq!(db.oldest_answered_since("1111111@po.example", 150).unwrap(), Some(200));
        assert_eq!(db.answered_since("2222222@po.example", 0).unwrap(), 0);
        let all = db.list(&AuditFilter::default()).unwrap();
        assert_eq!(all.iter().map(|r| r.at).collect::<Vec<_>>(), [100, 200, 250, 260, 300]);
        assert_eq!(all[1], record(200, "1111111@po.example", ANSWERED));
        assert_eq!(all[3].query, None);
        let newest = db.list(&AuditFilter { limit: Some(2), ..Default::default() }).unwrap();
        assert_eq!(newest.iter().map(|r| r.at).collect::<Vec<_>>(), [260, 300]);
        let theirs =
            db.list(&AuditFilter { requester: Some("2222222@po.example"), since: Some(0), limit: None }).unwrap();
        assert_eq!(theirs.len(), 1);
    }
}
