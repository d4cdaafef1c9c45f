//! The drop directory is written by someone else: what is in `data/in` is
//! not trusted to be a plain file, and nothing already in `done/` or
//! `rejected/` is overwritten (docs/architecture.md §5).

#![cfg(unix)]

use std::path::Path;
use std::time::Duration;

use snow_lab::import::{DropDir, Imported};
use snow_lab::LabSettings;
use snow_store::{LabDb, WeeklyFilter};
use time::macros::date;

const TODAY: time::Date = date!(2026 - 11 - 22);
const HEADER: &str = "sample_id,patient,sample_date,analysis,result,municipality,age_group,sex";

/// A pushed file of `n` good rows, samples numbered from `from`.
fn good(from: u32, n: u32) -> String {
    let mut text = format!("{HEADER}\n");
    for i in from..from + n {
        text.push_str(&format!("{i:032x},{:064x},2026-11-16,INFA,POS,5401,15-24,F\n", 0xabcd_0000_u64 + u64::from(i)));
    }
    text
}

fn tested(db: &LabDb) -> i64 {
    db.weekly(&WeeklyFilter::new("INFA", "5401", (202601, 202653))).unwrap().iter().map(|w| w.tested).sum()
}

fn mkfifo(p: &Path) {
    let made = std::process::Command::new("mkfifo").arg(p).status().unwrap();
    assert!(made.success(), "mkfifo");
}

/// `process` on a thread, so a pass that blocks fails the test instead of
/// hanging it.
fn process_within(
    drop: &DropDir,
    db_path: &Path,
    limit: Duration,
) -> Vec<(std::path::PathBuf, Result<Imported, String>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (drop, db_path) = (drop.clone(), db_path.to_owned());
    std::thread::spawn(move || {
        let mut db = LabDb::open(&db_path).unwrap();
        let _ = tx.send(drop.process(&mut db, &LabSettings::default(), TODAY));
    });
    rx.recv_timeout(limit).expect("the drop directory pass blocked")
}

/// A symbolic link in `in/` to a readable CSV elsewhere is refused: the
/// link itself goes to `rejected/` with the reason, the file it points to
/// is neither read, nor imported, nor moved, nor changed.
#[test]
fn a_symlink_in_in_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let drop = DropDir::new(dir.path().join("data"));
    std::fs::create_dir_all(drop.incoming()).unwrap();
    let elsewhere = dir.path().join("secret-elsewhere.csv");
    let text = good(1, 3);
    std::fs::write(&elsewhere, &text).unwrap();
    std::os::unix::fs::symlink(&elsewhere, drop.incoming().join("w47.csv")).unwrap();
    let db_path = dir.path().join("lab.db");

    let results = process_within(&drop, &db_path, Duration::from_secs(20));
    assert_eq!(results.len(), 1);
    let why = results[0].1.as_ref().unwrap_err();
    assert!(why.starts_with("it is a symbolic link, not a regular file"), "{why}");
    let moved = drop.rejected().join("w47.csv");
    assert!(std::fs::symlink_metadata(&moved).unwrap().file_type().is_symlink(), "the link itself was moved");
    assert_eq!(std::fs::read_link(&moved).unwrap(), elsewhere);
    let report = std::fs::read_to_string(drop.rejected().join("w47.csv.error")).unwrap();
    assert!(report.contains("symbolic link") && report.contains("without being followed or read"), "{report}");
    assert!(!drop.incoming().join("w47.csv").exists());
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), text, "the target is untouched");
    let db = LabDb::open(&db_path).unwrap();
    assert_eq!(tested(&db), 0, "nothing of the target was imported");
}

/// A FIFO named `*.csv` (no writer ever comes) is refused at once, and the
/// pass goes on to import the next file; a directory named `*.csv` too.
#[test]
fn a_fifo_is_refused_and_the_pass_goes_on_to_the_next_file() {
    let dir = tempfile::tempdir().unwrap();
    let drop = DropDir::new(dir.path().join("data"));
    std::fs::create_dir_all(drop.incoming()).unwrap();
    mkfifo(&drop.incoming().join("a.csv"));
    std::fs::create_dir(drop.incoming().join("b.csv")).unwrap();
    std::fs::write(drop.incoming().join("c.csv"), good(1, 2)).unwrap();
    let db_path = dir.path().join("lab.db");

    let results = process_within(&drop, &db_path, Duration::from_secs(20));
    let names: Vec<String> =
        results.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["a.csv", "b.csv", "c.csv"]);
    assert!(results[0].1.as_ref().unwrap_err().starts_with("it is a FIFO (named pipe), not a regular file"));
    assert!(results[1].1.as_ref().unwrap_err().starts_with("it is a directory, not a regular file"));
    assert_eq!(results[2].1, Ok(Imported::New { rows: 2, counted: 2 }));
    let fifo = std::fs::symlink_metadata(drop.rejected().join("a.csv")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
    assert!(std::fs::read_to_string(drop.rejected().join("a.csv.error")).unwrap().contains("FIFO"));
    assert!(drop.rejected().join("b.csv").is_dir());
    assert!(drop.done().join("c.csv").exists());
    assert_eq!(tested(&LabDb::open(&db_path).unwrap()), 2);
    assert_eq!(std::fs::read_dir(drop.incoming()).unwrap().count(), 0, "in/ is empty");
}

/// A file whose name is already in `done/` (or `rejected/`) is kept beside
/// the earlier one under a numbered name; nothing is overwritten.
#[test]
fn a_second_file_of_the_same_name_keeps_both() {
    let dir = tempfile::tempdir().unwrap();
    let drop = DropDir::new(dir.path().join("data"));
    std::fs::create_dir_all(drop.incoming()).unwrap();
    let db_path = dir.path().join("lab.db");
    let push = |name: &str, text: &str| std::fs::write(drop.incoming().join(name), text).unwrap();
    let (first, second) = (good(1, 2), good(100, 3));

    push("w47.csv", &first);
    push("bad.csv", "sample_id,patient\n");
    process_within(&drop, &db_path, Duration::from_secs(20));
    push("w47.csv", &second);
    push("bad.csv", "not even a header\n");
    let results = process_within(&drop, &db_path, Duration::from_secs(20));
    assert_eq!(results.len(), 2);
    // The same content a third time: a duplicate, kept too.
    push("w47.csv", &first);
    let again = process_within(&drop, &db_path, Duration::from_secs(20));
    assert_eq!(again[0].1, Ok(Imported::Duplicate));

    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(&drop.done().join("w47.csv")), first);
    assert_eq!(read(&drop.done().join("w47.2.csv")), second);
    assert_eq!(read(&drop.done().join("w47.3.csv")), first);
    assert_eq!(read(&drop.rejected().join("bad.csv")), "sample_id,patient\n");
    assert_eq!(read(&drop.rejected().join("bad.2.csv")), "not even a header\n");
    assert!(read(&drop.rejected().join("bad.csv.error")).starts_with("line 1: the header"));
    assert!(read(&drop.rejected().join("bad.2.csv.error")).starts_with("line 1: the header"));
    assert_eq!(tested(&LabDb::open(&db_path).unwrap()), 5, "both files of the name were imported");

    // An `.error` left alone in rejected/ also keeps its name taken.
    std::fs::write(drop.rejected().join("old.csv.error"), "an earlier reason\n").unwrap();
    push("old.csv", "x\n");
    process_within(&drop, &db_path, Duration::from_secs(20));
    assert_eq!(read(&drop.rejected().join("old.csv.error")), "an earlier reason\n");
    assert_eq!(read(&drop.rejected().join("old.2.csv")), "x\n");
    assert!(drop.rejected().join("old.2.csv.error").exists());
}
