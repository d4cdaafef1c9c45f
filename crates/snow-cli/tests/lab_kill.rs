//! `snow serve` on a lab server killed with SIGKILL in the middle of an
//! import: after a restart the file is imported exactly once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CA_PASS: &str = "admin passphrase 1";

fn snow(home: &Path, config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snow"));
    c.args(args).env("SNOW_HOME", home).env("SNOW_CONFIG", config).stdin(Stdio::null());
    c
}

fn serve(home: &Path, config: &Path) -> Child {
    let mut child = snow(home, config, &["serve"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("listening"), "{first}");
    std::thread::spawn(move || lines.for_each(drop));
    child
}

#[test]
fn a_kill_mid_import_leaves_the_file_to_be_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    let site = snow_core::SiteHome::new(dir.path().join("home"));
    let home = site.home();
    let config = dir.path().join("snow.toml");
    std::fs::write(
        &config,
        "[pki]\nca_key_bits = 2048\n[server]\nc2s_bind = \"127.0.0.1:0\"\ndirect_tls_bind = \"\"\n\
         [s2s]\nbind = \"\"\n[lab]\nimport = true\nscan_interval_secs = 1\n",
    )
    .unwrap();
    let pass = dir.path().join("ca.pass");
    std::fs::write(&pass, CA_PASS).unwrap();
    let pass = pass.to_str().unwrap();
    for args in [
        &["ca", "init", "--domain", "lab.example", "--ca-passphrase-file", pass][..],
        &["server", "cert", "--ca-passphrase-file", pass],
    ] {
        assert!(snow(home, &config, args).status().unwrap().success());
    }

    // A season of synthetic results, pseudonymised as the lab would.
    let today = time::OffsetDateTime::now_utc().date();
    let mut raw = Vec::new();
    let rows = snow_lab::synth::raw_export(&mut raw, today, 156, 3).unwrap();
    let p = snow_lab::export::Pseudonymiser::new(b"a lab secret of 16+ bytes").unwrap();
    let mut pushed = Vec::new();
    snow_lab::export::export(&raw[..], &mut pushed, &p, &snow_lab::LabSettings::default(), today, |_| {}).unwrap();
    let incoming = site.incoming();
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::write(incoming.join("big.csv"), &pushed).unwrap();

    // Kill it once the import is under way (its transaction has written
    // to the WAL), before it could finish.
    let mut server = serve(home, &config);
    let wal = site.lab_db().with_extension("db-wal");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) < 1 << 20 {
        assert!(Instant::now() < deadline, "the import never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(incoming.join("big.csv").exists(), "the import finished before the kill: use a bigger file");
    assert!(!site.done().join("big.csv").exists());

    // Restarted, it imports the file once, whole.
    let mut server = serve(home, &config);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !site.done().join("big.csv").exists() {
        assert!(Instant::now() < deadline, "the file was not imported after the restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let db = snow_store::LabDb::open(&site.lab_db()).unwrap();
    // Every analysis the synthetic data hold.
    let tested: i64 = ["INFA", "INFB", "RSV", "SARS2", "MYCPN"]
        .iter()
        .flat_map(|a| db.weekly(&snow_store::WeeklyFilter::new(a, "all", (190001, 220053))).unwrap())
        .map(|w| w.tested)
        .sum();
    assert_eq!(tested as u64, rows, "every row counted exactly once");
}
