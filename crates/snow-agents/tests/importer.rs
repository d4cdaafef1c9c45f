//! The lab server's importer picks up pushed files from data/in while it
//! runs (moved here from snow-server with the importer, issue 15).

use std::time::{Duration, Instant};

use snow_agents::{Importer, ImporterConfig};
use snow_core::SiteHome;
use snow_lab::config::LabServerSettings;

#[tokio::test]
async fn the_importer_imports_dropped_files() {
    let dir = tempfile::tempdir().unwrap();
    let home = SiteHome::new(dir.path().join("home"));
    // No periodic rescan within the test: files are found through change
    // notifications (and the scan at start).
    let lab = LabServerSettings { import: true, scan_interval_secs: 3600, ..Default::default() };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let importer = Importer::start(ImporterConfig::for_home(&home, &lab), stopped);

    let raw = "sample_id,patient_id,birth_date,sex,municipality,sample_date,analysis,result\n\
               S1,P1,1990-05-05,F,5401,2026-11-16,INFA,POS\n\
               S2,P2,1960-01-01,M,5401,2026-11-17,INFA,NEG\n";
    let p = snow_lab::export::Pseudonymiser::new(b"a lab secret of 16+ bytes").unwrap();
    let mut out = Vec::new();
    let today = time::OffsetDateTime::now_utc().date();
    snow_lab::export::export(raw.as_bytes(), &mut out, &p, &snow_lab::LabSettings::default(), today, |_| {}).unwrap();
    let incoming = home.incoming();
    std::fs::create_dir_all(&incoming).unwrap();
    // Uploaded as .part, then renamed: only the complete file is taken.
    std::fs::write(incoming.join("w47.csv.part"), &out).unwrap();
    std::fs::rename(incoming.join("w47.csv.part"), incoming.join("w47.csv")).unwrap();
    std::fs::write(incoming.join("bad.csv"), "sample_id,patient\nx,y\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(home.done().join("w47.csv").exists() && home.rejected().join("bad.csv.error").exists()) {
        assert!(Instant::now() < deadline, "the files were not processed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let db = snow_store::LabDb::open(&home.lab_db()).unwrap();
    let w = db.weekly(&snow_store::WeeklyFilter::new("INFA", "5401", (202601, 202653))).unwrap();
    assert_eq!((w[0].tested, w[0].positive, w[0].positive_persons), (2, 1, 1));

    // Long after the start-up scan, only a notification can find this one.
    let raw2 = "sample_id,patient_id,birth_date,sex,municipality,sample_date,analysis,result\n\
                S3,P3,1990-05-05,F,5401,2026-11-16,INFA,POS\n";
    let mut out2 = Vec::new();
    snow_lab::export::export(raw2.as_bytes(), &mut out2, &p, &snow_lab::LabSettings::default(), today, |_| {}).unwrap();
    std::fs::write(incoming.join("w47b.csv.part"), &out2).unwrap();
    std::fs::rename(incoming.join("w47b.csv.part"), incoming.join("w47b.csv")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !home.done().join("w47b.csv").exists() {
        assert!(Instant::now() < deadline, "the change notification did not lead to an import");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), importer.join()).await.expect("the importer stops on shutdown");
}

/// An exported file of `n` synthetic rows (patients P0…, all INFA in 5401).
fn export_rows(n: usize) -> Vec<u8> {
    let mut raw = String::from("sample_id,patient_id,birth_date,sex,municipality,sample_date,analysis,result\n");
    for i in 0..n {
        raw.push_str(&format!(
            "S{i},P{i},1990-05-05,F,5401,2026-11-16,INFA,{}\n",
            if i % 2 == 0 { "POS" } else { "NEG" }
        ));
    }
    let p = snow_lab::export::Pseudonymiser::new(b"a lab secret of 16+ bytes").unwrap();
    let mut out = Vec::new();
    let today = time::OffsetDateTime::now_utc().date();
    snow_lab::export::export(raw.as_bytes(), &mut out, &p, &snow_lab::LabSettings::default(), today, |_| {}).unwrap();
    out
}

/// A file written in place (no `.part`), with a pause mid-file longer than
/// the importer's reaction to change notifications: nothing is imported
/// while it is being written, then the whole file once. A file cut off
/// mid-line (a writer that crashed) is rejected, never read as data.
#[tokio::test]
async fn a_file_written_in_place_with_a_pause_is_imported_once_and_whole() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let home = SiteHome::new(dir.path().join("home"));
    let lab = LabServerSettings { import: true, scan_interval_secs: 3600, settle_ms: 1500, ..Default::default() };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let importer = Importer::start(ImporterConfig::for_home(&home, &lab), stopped);
    let incoming = home.incoming();
    std::fs::create_dir_all(&incoming).unwrap();

    let whole = export_rows(2000);
    let cut = whole.len() / 3;
    let mut f = std::fs::File::create(incoming.join("w48.csv")).unwrap();
    f.write_all(&whole[..cut]).unwrap();
    f.flush().unwrap();
    // The writer pauses: change notifications have fired, the file is there.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(incoming.join("w48.csv").exists(), "taken while still being written");
    f.write_all(&whole[cut..]).unwrap();
    drop(f);

    // A writer that dies mid-line.
    let mut crashed = export_rows(10);
    crashed.truncate(crashed.len() - 7);
    std::fs::write(incoming.join("crashed.csv"), &crashed).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    while !(home.done().join("w48.csv").exists() && home.rejected().join("crashed.csv.error").exists()) {
        assert!(Instant::now() < deadline, "the files were not processed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db = snow_store::LabDb::open(&home.lab_db()).unwrap();
    let w = db.weekly(&snow_store::WeeklyFilter::new("INFA", "5401", (202601, 202653))).unwrap();
    assert_eq!((w[0].tested, w[0].positive), (2000, 1000), "every row of the paused file, once");
    let why = std::fs::read_to_string(home.rejected().join("crashed.csv.error")).unwrap();
    assert!(why.contains("last line is incomplete"), "{why}");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), importer.join()).await.expect("the importer stops on shutdown");
}

/// A writer that keeps the file open and pauses for longer than
/// `[lab] settle_ms` (a slow copy, a program writing as it goes): while
/// the importer runs, a file still open for writing is never taken, so
/// nothing is lost and the file is imported once, whole, after it is
/// closed. The same name written again later (a new week under an old
/// name) is a new file, held back in the same way.
#[tokio::test]
async fn a_writer_that_keeps_the_file_open_past_the_settle_time_loses_nothing() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let home = SiteHome::new(dir.path().join("home"));
    let lab = LabServerSettings { import: true, scan_interval_secs: 3600, settle_ms: 300, ..Default::default() };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let importer = Importer::start(ImporterConfig::for_home(&home, &lab), stopped);
    let incoming = home.incoming();
    std::fs::create_dir_all(&incoming).unwrap();
    // Let the importer's first pass and its watcher start.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Writes the header and `first` rows, pauses with the file open, writes
    // the rest, closes.
    async fn write_slowly(path: std::path::PathBuf, whole: &[u8], first: usize) {
        let cut = whole.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(first).map(|(i, _)| i + 1).unwrap();
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&whole[..cut]).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        f.write_all(&whole[cut..]).unwrap();
        drop(f);
    }
    async fn done_after(home: &SiteHome, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !home.done().join(name).exists() {
            assert!(Instant::now() < deadline, "{name} was not imported");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Any second pass over a part of it would have happened by now.
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let tested = |home: &SiteHome| {
        let db = snow_store::LabDb::open(&home.lab_db()).unwrap();
        let w = db.weekly(&snow_store::WeeklyFilter::new("INFA", "5401", (202601, 202653))).unwrap();
        w.iter().map(|r| r.tested).sum::<i64>()
    };

    write_slowly(incoming.join("slow.csv"), &export_rows(48), 19).await;
    done_after(&home, "slow.csv").await;
    assert_eq!(tested(&home), 48, "every row of the file written with a pause, once");
    assert!(!home.rejected().exists() || std::fs::read_dir(home.rejected()).unwrap().next().is_none());

    // The name again, with other rows (other patients and samples).
    let mut again = String::from_utf8(export_rows(60)).unwrap();
    let header_end = again.find('\n').unwrap() + 1;
    let rest: Vec<&str> = again[header_end..].lines().skip(48).collect();
    again = format!("{}{}\n", &again[..header_end], rest.join("\n"));
    write_slowly(incoming.join("slow.csv"), again.as_bytes(), 5).await;
    done_after(&home, "slow.2.csv").await;
    assert_eq!(tested(&home), 60, "the second file under the same name, whole and once");
    assert!(!home.done().join("slow.3.csv").exists());

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), importer.join()).await.expect("the importer stops on shutdown");
}
