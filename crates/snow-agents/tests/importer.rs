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
