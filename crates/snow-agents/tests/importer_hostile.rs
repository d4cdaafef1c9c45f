//! The running importer (`snow serve` with `[lab] import`) facing a
//! hostile drop directory: a symbolic link to a CSV elsewhere and a FIFO
//! in `data/in` are refused to `rejected/` (the link not followed, the
//! FIFO never blocking the loop), the next file is imported, and a second
//! file of a name already in `done/` is kept beside the first.

#![cfg(unix)]

use std::path::Path;
use std::time::{Duration, Instant};

use snow_agents::{Importer, ImporterConfig};
use snow_core::SiteHome;
use snow_lab::config::LabServerSettings;

/// An exported (pushed) file of `n` rows, patients from `from`.
fn pushed(from: usize, n: usize) -> Vec<u8> {
    let mut raw = String::from("sample_id,patient_id,birth_date,sex,municipality,sample_date,analysis,result\n");
    for i in from..from + n {
        raw.push_str(&format!("S{i},P{i},1990-05-05,F,5401,2026-11-16,INFA,POS\n"));
    }
    let p = snow_lab::export::Pseudonymiser::new(b"a lab secret of 16+ bytes").unwrap();
    let mut out = Vec::new();
    let today = time::OffsetDateTime::now_utc().date();
    snow_lab::export::export(raw.as_bytes(), &mut out, &p, &snow_lab::LabSettings::default(), today, |_| {}).unwrap();
    out
}

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tested(home: &SiteHome) -> i64 {
    let db = snow_store::LabDb::open(&home.lab_db()).unwrap();
    db.weekly(&snow_store::WeeklyFilter::new("INFA", "5401", (202601, 202653))).unwrap().iter().map(|w| w.tested).sum()
}

#[tokio::test]
async fn the_importer_refuses_a_symlink_and_a_fifo_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let home = SiteHome::new(dir.path().join("home"));
    let lab = LabServerSettings { import: true, scan_interval_secs: 3600, ..Default::default() };
    let incoming = home.incoming();
    std::fs::create_dir_all(&incoming).unwrap();
    // Before the start: the first pass meets them in name order.
    let made = std::process::Command::new("mkfifo").arg(incoming.join("a.csv")).status().unwrap();
    assert!(made.success());
    let elsewhere = dir.path().join("elsewhere.csv");
    let target = pushed(100, 3);
    std::fs::write(&elsewhere, &target).unwrap();
    std::os::unix::fs::symlink(&elsewhere, incoming.join("b.csv")).unwrap();
    let first = pushed(0, 2);
    std::fs::write(incoming.join("c.csv"), &first).unwrap();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let importer = Importer::start(ImporterConfig::for_home(&home, &lab), stopped);
    let rejected = |name: &str| home.rejected().join(name);
    wait_for("the pass did not get through the FIFO and the link", || {
        home.done().join("c.csv").exists() && rejected("a.csv.error").exists() && rejected("b.csv.error").exists()
    })
    .await;
    let why = |name: &str| std::fs::read_to_string(rejected(name)).unwrap();
    assert!(why("a.csv.error").starts_with("it is a FIFO (named pipe), not a regular file"), "{}", why("a.csv.error"));
    assert!(why("b.csv.error").starts_with("it is a symbolic link, not a regular file"), "{}", why("b.csv.error"));
    assert_eq!(std::fs::read_link(rejected("b.csv")).unwrap(), elsewhere, "the link itself was moved");
    assert_eq!(std::fs::read(&elsewhere).unwrap(), target, "the link's target is untouched");
    assert_eq!(tested(&home), 2, "only c.csv was imported");

    // The same name again, other rows: both files kept, both imported.
    let second = pushed(10, 3);
    std::fs::write(incoming.join("c.csv.part"), &second).unwrap();
    std::fs::rename(incoming.join("c.csv.part"), incoming.join("c.csv")).unwrap();
    wait_for("the second c.csv was not imported", || home.done().join("c.2.csv").exists()).await;
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(read(&home.done().join("c.csv")), first);
    assert_eq!(read(&home.done().join("c.2.csv")), second);
    assert_eq!(tested(&home), 5);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), importer.join()).await.expect("the importer stops on shutdown");
}
