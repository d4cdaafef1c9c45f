//! Export → drop directory → import → aggregates, and every refusal.

use snow_lab::export::{export, Pseudonymiser};
use snow_lab::import::{import_file, DropDir, Imported};
use snow_lab::LabSettings;
use snow_store::{LabDb, WeeklyFilter};
use time::macros::date;

const TODAY: time::Date = date!(2026 - 11 - 22);

fn raw() -> String {
    // Synthetic people. 01010710029 has valid check digits, like a real
    // national id would; it must never appear in the output.
    "sample_id,patient_id,birth_date,sex,municipality,sample_date,analysis,result,name\n\
     S1,01010710029,2007-01-01,K,5401,2026-11-16,INFA,POS,Kari Nordmann\n\
     S2,01010710029,2007-01-01,K,5401,2026-11-17,INFA,POS,Kari Nordmann\n\
     S3,P-77,1950-06-30,M,301,2026-11-18,INFA,NEG,Ola Nordmann\n\
     S4,P-78,2024-02-29,U,5401,2026-11-18,RSV,INC,\n"
        .to_owned()
}

fn exported() -> String {
    let p = Pseudonymiser::new(b"lab secret of at least 16 bytes").unwrap();
    let mut out = Vec::new();
    let n = export(raw().as_bytes(), &mut out, &p, &LabSettings::default(), TODAY, |_| {}).unwrap();
    assert_eq!(n, 4);
    String::from_utf8(out).unwrap()
}

/// The pushed file is a machine format, written without neutralising
/// (the importer reads it back): every cell has a shape no spreadsheet
/// runs, and a hostile code in the lab's export is refused, not written.
#[test]
fn export_writes_no_cell_a_spreadsheet_would_run() {
    let out = exported();
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(out.as_bytes());
    for rec in r.records() {
        for cell in rec.unwrap().iter() {
            assert!(!snow_core::csv::is_formula(cell), "{cell:?} in {out}");
        }
    }
    let p = Pseudonymiser::new(b"lab secret of at least 16 bytes").unwrap();
    for hostile in ["=cmd|' /C calc'!A0", "+1+1", "@SUM(1)", "-2+3"] {
        let raw = format!(
            "sample_id,patient_id,birth_date,sex,municipality,sample_date,analysis,result\n\
             S1,P1,2007-01-01,K,5401,2026-11-16,{hostile},POS\n"
        );
        let mut out = Vec::new();
        assert!(export(raw.as_bytes(), &mut out, &p, &LabSettings::default(), TODAY, |_| {}).is_err(), "{hostile}");
        assert!(!String::from_utf8_lossy(&out).contains(hostile), "{hostile}");
    }
}

#[test]
fn export_pseudonymises_and_drops_identifying_columns() {
    let out = exported();
    assert!(out.starts_with("sample_id,patient,sample_date,analysis,result,municipality,age_group,sex\n"));
    for secret in ["01010710029", "Kari", "Nordmann", "P-77", "2007-01-01", "S1,"] {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }
    let lines: Vec<&str> = out.lines().collect();
    let f: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(f[1].len(), 64);
    assert_eq!(&f[2..], ["2026-11-16", "INFA", "POS", "5401", "15-24", "F"]);
    // Same patient, same pseudonym; the municipality 301 is padded.
    assert_eq!(lines[1].split(',').nth(1), lines[2].split(',').nth(1));
    assert!(lines[3].ends_with("0301,65-79,M"), "{}", lines[3]);
    assert!(lines[4].ends_with(",0-4,U"), "{}", lines[4]);
    // A different secret gives different pseudonyms (keyed, not a bare hash).
    let other = Pseudonymiser::new(b"another lab secret, 16+ bytes").unwrap();
    let p = Pseudonymiser::new(b"lab secret of at least 16 bytes").unwrap();
    assert_ne!(other.pseudonym("patient", "01010710029"), p.pseudonym("patient", "01010710029"));
    assert!(Pseudonymiser::new(b"short").is_err());
}

#[test]
fn import_counts_weekly_aggregates_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("week47.csv");
    std::fs::write(&file, exported()).unwrap();
    let mut db = LabDb::open(&dir.path().join("lab.db")).unwrap();
    let s = LabSettings::default();
    assert_eq!(import_file(&mut db, &file, &s, TODAY, |_| {}).unwrap(), Imported::New { rows: 4, counted: 4 });
    assert_eq!(import_file(&mut db, &file, &s, TODAY, |_| {}).unwrap(), Imported::Duplicate);
    let w = db.weekly(&WeeklyFilter::new("INFA", "5401", (202601, 202653))).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].year, w[0].week, w[0].tested, w[0].positive, w[0].positive_persons), (2026, 47, 2, 2, 1));
    let all = db.weekly(&WeeklyFilter::new("INFA", "all", (202647, 202647))).unwrap();
    assert_eq!(all[0].tested, 3);
    // The same samples in another file (other bytes) are not counted again.
    let again = dir.path().join("week47-again.csv");
    std::fs::write(&again, format!("{}\n", exported())).unwrap();
    assert_eq!(import_file(&mut db, &again, &s, TODAY, |_| {}).unwrap(), Imported::New { rows: 4, counted: 0 });
    assert_eq!(db.weekly(&WeeklyFilter::new("INFA", "all", (202647, 202647))).unwrap()[0].tested, 3);
}

#[test]
fn every_rule_rejects_the_whole_file_with_an_error_file() {
    let good = exported();
    let lines: Vec<&str> = good.lines().collect();
    let header = lines[0];
    let first = lines[1];
    let fields: Vec<&str> = first.split(',').collect();
    let with = |i: usize, v: &str| {
        let mut f = fields.clone();
        f[i] = v;
        format!("{header}\n{}\n{}\n", lines[2], f.join(","))
    };
    let cases = [
        ("short-sample", with(0, "abc"), "sample_id"),
        ("unhashed-patient", with(1, "P-77"), "patient"),
        ("nin", with(1, "01010710029"), "national identity number"),
        ("nin-embedded", with(3, "INFA01010710029"), "national identity number"),
        ("nin-as-municipality", with(5, "01010710029"), "national identity number"),
        ("bad-date", with(2, "2026-13-01"), "sample_date"),
        ("future", with(2, "2027-01-01"), "future"),
        ("analysis", with(3, "DROP TABLE"), "analysis"),
        ("result", with(4, "MAYBE"), "result"),
        ("municipality", with(5, "54a1"), "municipality"),
        ("age", with(6, "15-25"), "age_group"),
        ("sex", with(7, "X"), "sex"),
        ("fields", format!("{header}\n{first},extra\n"), "fields"),
        ("header", good.replacen("patient", "patient_id", 1), "header"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let drop = DropDir::new(dir.path().join("data"));
    std::fs::create_dir_all(drop.incoming()).unwrap();
    for (name, content, _) in &cases {
        std::fs::write(drop.incoming().join(format!("{name}.csv")), content).unwrap();
    }
    std::fs::write(drop.incoming().join("uploading.csv.part"), &good).unwrap();
    let mut db = LabDb::open(&dir.path().join("lab.db")).unwrap();
    let results = drop.process(&mut db, &LabSettings::default(), TODAY);
    assert_eq!(results.len(), cases.len(), "the .part file is not touched");
    for (name, _, expect) in &cases {
        let err = std::fs::read_to_string(drop.rejected().join(format!("{name}.csv.error"))).unwrap();
        assert!(err.contains(expect), "{name}: {err}");
        if *name != "header" && *name != "fields" {
            // The bad row is the file's third line (after the header and a good row).
            assert!(err.starts_with("1 error; nothing in the file was imported:\nline 3, column"), "{name}: {err}");
        }
        assert!(drop.rejected().join(format!("{name}.csv")).exists());
    }
    // Nothing of any rejected file was counted (row 1 of each was valid).
    assert!(db.weekly(&WeeklyFilter::new("INFA", "all", (202601, 202653))).unwrap().is_empty());
    assert!(drop.incoming().join("uploading.csv.part").exists());
}

#[test]
fn a_crash_mid_import_leaves_nothing_and_the_file_is_imported_once_after() {
    let dir = tempfile::tempdir().unwrap();
    let drop = DropDir::new(dir.path().join("data"));
    std::fs::create_dir_all(drop.incoming()).unwrap();
    std::fs::write(drop.incoming().join("a.csv"), exported()).unwrap();
    let path = dir.path().join("lab.db");
    {
        // A transaction that never commits: what a kill mid-import leaves.
        let mut db = LabDb::open(&path).unwrap();
        let mut tx = db.begin().unwrap();
        tx.add(&snow_store::AggRow {
            sample_id: "00000000000000000000000000000000",
            patient: &"a".repeat(64),
            analysis: "INFA",
            municipality: "5401",
            year: 2026,
            week: 47,
            age_group: "15-24",
            sex: "F",
            positive: true,
            record_key: 7,
        })
        .unwrap();
        std::mem::forget(tx); // no rollback, no commit: as if the process died
    }
    let mut db = LabDb::open(&path).unwrap();
    assert!(db.weekly(&WeeklyFilter::new("INFA", "all", (202601, 202653))).unwrap().is_empty());
    let r = drop.process(&mut db, &LabSettings::default(), TODAY);
    assert_eq!(r[0].1, Ok(Imported::New { rows: 4, counted: 4 }));
    // Killed after the commit but before the move: the next pass only moves it.
    std::fs::copy(drop.done().join("a.csv"), drop.incoming().join("a.csv")).unwrap();
    let r = drop.process(&mut db, &LabSettings::default(), TODAY);
    assert_eq!(r[0].1, Ok(Imported::Duplicate));
    assert_eq!(db.weekly(&WeeklyFilter::new("INFA", "all", (202647, 202647))).unwrap()[0].tested, 3);
}
