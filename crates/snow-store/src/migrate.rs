//! Schema migrations, tracked with SQLite's `user_version`.

use std::path::Path;

use rusqlite::Connection;

use crate::StoreError;

/// Applies every migration after the database's current version, each in
/// its own transaction. Foreign keys are off while a migration runs (so a
/// table can be rebuilt, SQLite's documented procedure) and checked before
/// it commits.
pub(crate) fn run(conn: &mut Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = migrations.len() as i64;
    if current > known {
        return Err(StoreError::TooNew { found: current, known });
    }
    if current == known {
        return Ok(());
    }
    let fk: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = (|| {
        for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            let broken: i64 = tx.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0))?;
            if broken > 0 {
                return Err(StoreError::Invalid(format!(
                    "migration {} would break {broken} foreign key(s); the database is unchanged",
                    i + 1
                )));
            }
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    })();
    conn.pragma_update(None, "foreign_keys", fk)?;
    result
}

/// Opens (creating the directory and file if needed) a database the way
/// every Snow store wants it: WAL, fully synchronous commits, foreign keys,
/// a busy timeout, and the migrations applied.
pub(crate) fn open(path: &Path, migrations: &[&str], busy_secs: u64) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.display().to_string(), e))?;
    }
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(std::time::Duration::from_secs(busy_secs))?;
    run(&mut conn, migrations)?;
    Ok(conn)
}
