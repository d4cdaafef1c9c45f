//! A lab store holding `weeks` weeks of the synthetic region up to today
//! (`snow_lab::synth`), through the real pseudonymising export and import.

use std::path::Path;

pub fn synthetic_lab(dir: &Path, weeks: u32, seed: u64) -> snow_store::LabDb {
    let today = time::OffsetDateTime::now_utc().date();
    let mut raw = Vec::new();
    snow_lab::synth::raw_export(&mut raw, today, weeks, seed).unwrap();
    let p = snow_lab::export::Pseudonymiser::new(b"a lab secret of 16+ bytes").unwrap();
    let mut out = Vec::new();
    snow_lab::export::export(&raw[..], &mut out, &p, &snow_lab::LabSettings::default(), today, |_| {}).unwrap();
    let file = dir.join("w.csv");
    std::fs::write(&file, &out).unwrap();
    let mut db = snow_store::LabDb::open(&dir.join("lab.db")).unwrap();
    snow_lab::import::import_file(&mut db, &file, &snow_lab::LabSettings::default(), today, |_| {}).unwrap();
    db
}
