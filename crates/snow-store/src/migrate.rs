//! Schema migrations, tracked with SQLite's `user_version`.
//!
//! Several connections may open the same database at once (the lab
//! server's agents each open `lab.db`; a fresh clone creates it then).
//! Each migration therefore runs in a `BEGIN IMMEDIATE` transaction that
//! reads `user_version` itself: whoever holds the write lock applies the
//! next step, the others wait on the busy timeout and then find it done.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::StoreError;

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

fn check_known(current: i64, known: i64) -> Result<(), StoreError> {
    if current > known {
        return Err(StoreError::TooNew { found: current, known });
    }
    Ok(())
}

/// Applies every migration after the database's current version, each in
/// its own `BEGIN IMMEDIATE` transaction that re-reads the version, so
/// concurrent openers never apply a step twice. Foreign keys are off while
/// a migration runs (so a table can be rebuilt, SQLite's documented
/// procedure; the pragma cannot change inside a transaction) and checked
/// before it commits. A database already up to date costs one read.
pub(crate) fn run(conn: &mut Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let known = migrations.len() as i64;
    let current = user_version(conn)?;
    check_known(current, known)?;
    if current == known {
        return Ok(());
    }
    let fk: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = (|| loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read under the write lock: another connection may have migrated
        // since the read above.
        let current = user_version(&tx)?;
        check_known(current, known)?;
        let Some(sql) = migrations.get(current as usize) else {
            tx.commit()?;
            return Ok(());
        };
        tx.execute_batch(sql)?;
        let broken: i64 = tx.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0))?;
        if broken > 0 {
            return Err(StoreError::Invalid(format!(
                "migration {} would break {broken} foreign key(s); the database is unchanged",
                current + 1
            )));
        }
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
    })();
    conn.pragma_update(None, "foreign_keys", fk)?;
    result
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// Switches the database to WAL. Changing the journal mode of a fresh file
/// needs its exclusive lock, and when several connections try at once
/// SQLite may report it busy without waiting (to avoid a deadlock), so this
/// retries until `deadline`.
fn set_wal(conn: &Connection, deadline: Instant) -> Result<(), StoreError> {
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            // A file system without WAL support keeps the old mode; so did
            // Snow before, so that is not an error.
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Opens (creating the directory and file if needed) a database the way
/// every Snow store wants it: WAL, fully synchronous commits, foreign keys,
/// a busy timeout, and the migrations applied. Safe when other connections
/// (threads or processes) open the same file at the same time.
pub(crate) fn open(path: &Path, migrations: &[&str], busy_secs: u64) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.display().to_string(), e))?;
    }
    let busy = Duration::from_secs(busy_secs);
    let mut conn = Connection::open(path)?;
    // Before anything that takes a lock.
    conn.busy_timeout(busy)?;
    set_wal(&conn, Instant::now() + busy)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    run(&mut conn, migrations)?;
    Ok(conn)
}
