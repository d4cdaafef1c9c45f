//! Migrations are safe under concurrency: many connections opening the same
//! fresh database at once (threads of one process, and separate processes)
//! all succeed and all see the same fully migrated schema. Before
//! migrations ran inside `BEGIN IMMEDIATE`, two openers could both see
//! version 0 and both run migration 1 ("table imports already exists").

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use snow_store::{CaDb, LabDb, SentAlert, ServerDb};

/// Fresh databases per store type and scenario; each is a new race.
const ROUNDS: usize = 4;
const THREADS: usize = 8;
const PROCESSES: usize = 4;

/// Set in a child process of the process test: the directory of the round.
const CHILD_DIR: &str = "SNOW_STORE_MIGRATE_CHILD";
/// Set in a child process: which store it opens.
const CHILD_KIND: &str = "SNOW_STORE_MIGRATE_KIND";
/// The process test's own name, which a child runs with `--exact`.
const PROCESS_TEST: &str = "every_process_opening_a_fresh_database_at_once_sees_it_migrated";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Lab,
    Server,
    Ca,
}

const KINDS: [Kind; 3] = [Kind::Lab, Kind::Server, Kind::Ca];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Lab => "lab",
            Kind::Server => "server",
            Kind::Ca => "ca",
        }
    }

    fn parse(s: &str) -> Kind {
        KINDS.into_iter().find(|k| k.name() == s).unwrap_or_else(|| panic!("unknown store kind {s:?}"))
    }

    fn file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.db", self.name()))
    }

    /// Opens the store at `path` and writes and reads something of the
    /// newest schema through the public API; `tag` keeps openers apart.
    /// Returns the open store's handle (dropped by the caller after the
    /// schema was checked) or what went wrong.
    fn open_and_use(self, path: &Path, tag: &str) -> Result<Box<dyn std::any::Any>, String> {
        let e = |what: &'static str| move |err: snow_store::StoreError| format!("{what}: {err}");
        match self {
            Kind::Lab => {
                let db = LabDb::open(path).map_err(e("open"))?;
                // alerts_sent comes from the last migration.
                let alert = SentAlert {
                    analysis: "INFA".into(),
                    area: tag.into(),
                    yw: 202610,
                    algorithm: "farrington".into(),
                    observed: 7,
                    threshold: 3.5,
                    recipients: 2,
                    sent_at: 1,
                };
                if !db.record_alert(&alert).map_err(e("record_alert"))? {
                    return Err("record_alert: already recorded".into());
                }
                if !db.alert_sent("INFA", tag, 202610).map_err(e("alert_sent"))? {
                    return Err("alert_sent: not found".into());
                }
                if db.imported(tag).map_err(e("imported"))? {
                    return Err("imported: unexpected".into());
                }
                Ok(Box::new(db))
            }
            Kind::Server => {
                let db = ServerDb::open(path).map_err(e("open"))?;
                let jid = format!("{tag}@lab.example");
                db.add_account(&jid, 1).map_err(e("add_account"))?;
                if !db.account_exists(&jid).map_err(e("account_exists"))? {
                    return Err("account_exists: not found".into());
                }
                // pubsub_subscriptions comes from the last migration.
                if !db.subscribe("alerts/INFA/54", &jid, 1).map_err(e("subscribe"))? {
                    return Err("subscribe: already subscribed".into());
                }
                if !db.subscribers("alerts/INFA/54").map_err(e("subscribers"))?.contains(&jid) {
                    return Err("subscribers: missing".into());
                }
                Ok(Box::new(db))
            }
            Kind::Ca => {
                let db = CaDb::open(path).map_err(e("open"))?;
                db.set_meta(tag, "v").map_err(e("set_meta"))?;
                if db.meta(tag).map_err(e("meta"))?.as_deref() != Some("v") {
                    return Err("meta: not found".into());
                }
                db.users().map_err(e("users"))?;
                Ok(Box::new(db))
            }
        }
    }
}

/// What a consistent, fully migrated database looks like from outside.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    user_version: i64,
    journal_mode: String,
    integrity: String,
    /// Every table, index and trigger with its SQL.
    schema: Vec<(String, String, Option<String>)>,
}

/// Read through a connection of its own (without `CREATE`: the file must
/// already be there).
fn shape(path: &Path) -> Result<Shape, String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let get = |sql: &str| -> Result<rusqlite::types::Value, String> {
        conn.query_row(sql, [], |r| r.get(0)).map_err(|e| format!("{sql}: {e}"))
    };
    let user_version = match get("PRAGMA user_version")? {
        rusqlite::types::Value::Integer(v) => v,
        v => return Err(format!("user_version {v:?}")),
    };
    let text = |v| match v {
        rusqlite::types::Value::Text(s) => Ok(s),
        v => Err(format!("not text: {v:?}")),
    };
    let journal_mode = text(get("PRAGMA journal_mode")?)?.to_lowercase();
    let integrity = text(get("PRAGMA integrity_check")?)?;
    let mut stmt =
        conn.prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name").map_err(|e| e.to_string())?;
    let schema = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    Ok(Shape { user_version, journal_mode, integrity, schema })
}

/// The shape of a database of `kind` opened by one connection alone. Its
/// `user_version` is the number of the store's migrations (the migration
/// code returns only once it got there); the constants are private.
fn reference(kind: Kind) -> Shape {
    let dir = tempfile::tempdir().unwrap();
    let path = kind.file(dir.path());
    let handle = kind.open_and_use(&path, "reference").unwrap();
    let s = shape(&path).unwrap();
    drop(handle);
    assert!(s.user_version > 0, "{kind:?}: the store has migrations");
    assert_eq!(s.journal_mode, "wal");
    assert_eq!(s.integrity, "ok");
    s
}

/// Opens the store and checks it against the reference; what went wrong.
fn open_and_check(kind: Kind, path: &Path, tag: &str, expected: &Shape) -> Result<(), String> {
    let handle = kind.open_and_use(path, tag)?;
    let got = shape(path)?;
    drop(handle);
    if &got != expected {
        return Err(format!("inconsistent database: {got:#?}, expected {expected:#?}"));
    }
    Ok(())
}

#[test]
fn every_thread_opening_a_fresh_database_at_once_sees_it_migrated() {
    let started = Instant::now();
    for kind in KINDS {
        let expected = Arc::new(reference(kind));
        for round in 0..ROUNDS {
            let dir = tempfile::tempdir().unwrap();
            let path = Arc::new(kind.file(dir.path()));
            let barrier = Arc::new(Barrier::new(THREADS));
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (path, barrier, expected) = (path.clone(), barrier.clone(), expected.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        open_and_check(kind, &path, &format!("t{t}"), &expected)
                    })
                })
                .collect();
            let failures: Vec<String> = threads
                .into_iter()
                .enumerate()
                .filter_map(|(t, h)| h.join().unwrap().err().map(|e| format!("thread {t}: {e}")))
                .collect();
            assert!(
                failures.is_empty(),
                "{kind:?} round {round}: {} of {THREADS} failed:\n{}",
                failures.len(),
                failures.join("\n")
            );
        }
    }
    eprintln!("{THREADS} threads x {ROUNDS} rounds x {} stores: {:?}", KINDS.len(), started.elapsed());
}

/// Runs as the parent (spawning copies of this test binary that run only
/// this test) or, with [`CHILD_DIR`] set, as one of those children.
#[test]
fn every_process_opening_a_fresh_database_at_once_sees_it_migrated() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let kind = Kind::parse(&std::env::var(CHILD_KIND).expect(CHILD_KIND));
        child(kind, Path::new(&dir));
        return;
    }
    let started = Instant::now();
    let exe = std::env::current_exe().unwrap();
    for kind in KINDS {
        for round in 0..ROUNDS {
            let dir = tempfile::tempdir().unwrap();
            let children: Vec<Child> = (0..PROCESSES)
                .map(|_| {
                    Command::new(&exe)
                        .args(["--exact", PROCESS_TEST, "--nocapture", "--test-threads=1"])
                        .env(CHILD_DIR, dir.path())
                        .env(CHILD_KIND, kind.name())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            // Every child is up and waiting (it has computed its reference)
            // before any of them may open the shared database.
            let deadline = Instant::now() + Duration::from_secs(60);
            while ready_count(dir.path()) < PROCESSES {
                assert!(Instant::now() < deadline, "{kind:?} round {round}: children did not get ready");
                std::thread::sleep(Duration::from_millis(1));
            }
            std::fs::write(dir.path().join("go"), b"").unwrap();
            let failed: Vec<_> = children
                .into_iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let out = c.wait_with_output().unwrap();
                    (!out.status.success()).then(|| {
                        let (o, e) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                        format!("child {i}: {}\n{o}{e}", out.status)
                    })
                })
                .collect();
            assert!(
                failed.is_empty(),
                "{kind:?} round {round}: {} of {PROCESSES} processes failed:\n{}",
                failed.len(),
                failed.join("\n")
            );
        }
    }
    eprintln!("{PROCESSES} processes x {ROUNDS} rounds x {} stores: {:?}", KINDS.len(), started.elapsed());
}

fn ready_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("ready-")))
        .count()
}

/// A child: computes the reference, says it is ready, waits for the start
/// signal, then opens the shared database. Exits non-zero (panics) unless
/// it saw a migrated, consistent database.
fn child(kind: Kind, dir: &Path) {
    let expected = reference(kind);
    let me = std::process::id();
    std::fs::write(dir.join(format!("ready-{me}")), b"").unwrap();
    let go = dir.join("go");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        assert!(Instant::now() < deadline, "no start signal");
        std::thread::sleep(Duration::from_micros(200));
    }
    if let Err(e) = open_and_check(kind, &kind.file(dir), &format!("p{me}"), &expected) {
        panic!("process {me}, {kind:?}: {e}");
    }
}
