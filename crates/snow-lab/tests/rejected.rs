//! A refused file says what is wrong with it, in the file's own line
//! numbers: the first 20 errors, and how many more there are; nothing of it
//! is imported.

use snow_lab::import::{import_file, DropDir, ImportError, MAX_LISTED_ERRORS};
use snow_lab::LabSettings;
use snow_store::{LabDb, WeeklyFilter};
use time::macros::date;

const TODAY: time::Date = date!(2026 - 11 - 22);
const HEADER: &str = "sample_id,patient,sample_date,analysis,result,municipality,age_group,sex";

fn sample(i: u32) -> String {
    format!("{i:032x}")
}

fn patient(i: u32) -> String {
    format!("{:064x}", 0xabcd_0000_u64 + u64::from(i))
}

fn row(i: u32, date: &str, analysis: &str, sex: &str) -> String {
    format!("{},{},{date},{analysis},POS,5401,15-24,{sex}", sample(i), patient(i))
}

/// A file of 25 bad rows of four kinds between good ones, with a blank
/// line, CRLF line ends and a quoted field that spans two lines on the
/// way; and what each error must say, by the line an editor shows.
fn bad_file() -> (String, Vec<String>) {
    let mut text = format!("{HEADER}\n");
    let line = |text: &str| text.matches('\n').count() as u64 + 1;
    let mut expected = Vec::new();
    for k in 0..25u32 {
        text.push_str(&row(1000 + k, "2026-11-16", "INFA", "F"));
        text.push_str(if k == 4 { "\r\n" } else { "\n" });
        if k == 3 {
            text.push('\n');
        }
        let at = line(&text);
        let i = 2000 + k;
        let (bad, error) = match k % 4 {
            0 => (row(i, "2026-11-16", "INFA", "X"), format!("line {at}, column sex: must be M, F or U, not \"X\"")),
            1 if k == 9 => (
                // Two physical lines: the next row starts one line later.
                row(i, "2026-11-16", "\"IN\nFA\"", "F"),
                format!(
                    "line {at}, column analysis: must be one of INFA, INFB, RSV, SARS2, MPV, MYCPN ([lab] analyses)"
                ),
            ),
            1 => (
                row(i, "2026-11-16", "XYZ", "F"),
                format!(
                    "line {at}, column analysis: must be one of INFA, INFB, RSV, SARS2, MPV, MYCPN ([lab] analyses), \
                     not \"XYZ\""
                ),
            ),
            2 => {
                (row(i, "2026-13-01", "INFA", "F"), format!("line {at}, column sample_date: must be a date YYYY-MM-DD"))
            }
            _ => {
                let r = row(i, "2026-11-16", "INFA", "F");
                let cut = r.rfind(',').unwrap();
                (r[..cut].to_owned(), format!("line {at}: 7 fields, expected 8 ({HEADER})"))
            }
        };
        text.push_str(&bad);
        text.push_str(if k == 6 { "\r\n" } else { "\n" });
        expected.push(error);
    }
    text.push_str(&row(9999, "2026-11-17", "RSV", "M"));
    text.push('\n');
    (text, expected)
}

#[test]
fn a_rejected_file_lists_its_first_20_errors_by_line_and_counts_the_rest() {
    let (text, expected) = bad_file();
    let dir = tempfile::tempdir().unwrap();
    let drop = DropDir::new(dir.path().join("data"));
    std::fs::create_dir_all(drop.incoming()).unwrap();
    std::fs::write(drop.incoming().join("w47.csv"), &text).unwrap();
    let mut db = LabDb::open(&dir.path().join("lab.db")).unwrap();

    let results = drop.process(&mut db, &LabSettings::default(), TODAY);
    assert_eq!(results.len(), 1);
    assert!(results[0].1.is_err());
    assert!(drop.rejected().join("w47.csv").exists());
    let report = std::fs::read_to_string(drop.rejected().join("w47.csv.error")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "25 errors; nothing in the file was imported:", "{report}");
    assert_eq!(lines[1..=MAX_LISTED_ERRORS], expected[..MAX_LISTED_ERRORS], "{report}");
    assert_eq!(lines[MAX_LISTED_ERRORS + 1], "… and 5 more errors", "{report}");
    assert_eq!(lines.len(), MAX_LISTED_ERRORS + 2, "{report}");
    // Spot checks against the file itself: the lines named hold the rows.
    let physical: Vec<&str> = text.split('\n').collect();
    assert!(physical[2].ends_with(",X"), "line 3 is the first bad row");
    assert!(lines[1].starts_with("line 3, column sex"));
    assert_eq!(physical[8], "", "line 9 is blank");
    assert!(physical[9].ends_with(",15-24"), "line 10 is short of a field");
    assert!(lines[4].starts_with("line 10: 7 fields"));
    // No pseudonym, no whole row.
    assert!(!report.contains(&patient(2000)) && !report.contains(&sample(2000)), "{report}");
    assert!(!report.contains("5401,15-24"), "{report}");

    // Nothing was imported, not even the good rows before the first error.
    for analysis in ["INFA", "RSV"] {
        assert!(db.weekly(&WeeklyFilter::new(analysis, "all", (202601, 202653))).unwrap().is_empty());
    }

    // The same file by hand: the same errors, all of them counted.
    let path = dir.path().join("again.csv");
    std::fs::write(&path, &text).unwrap();
    match import_file(&mut db, &path, &LabSettings::default(), TODAY, |_| {}) {
        Err(ImportError::Rejected(errors)) => {
            assert_eq!(errors.total, 25);
            assert_eq!(errors.listed.iter().map(ToString::to_string).collect::<Vec<_>>(), expected[..20]);
            assert_eq!(errors.listed[5].line, expected[5].split(',').next().unwrap()[5..].parse::<u64>().unwrap());
            assert!(errors.summary(3).starts_with(&format!(
                "25 errors, first: {}; {}; {}; and 22 more",
                expected[0], expected[1], expected[2]
            )));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_error_list_stays_small_however_bad_the_file() {
    let mut text = format!("{HEADER}\n");
    for i in 0..100_000u32 {
        text.push_str(&row(i, "2026-11-16", "INFA", "X"));
        text.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, &text).unwrap();
    let mut db = LabDb::open(&dir.path().join("lab.db")).unwrap();
    match import_file(&mut db, &path, &LabSettings::default(), TODAY, |_| {}) {
        Err(ImportError::Rejected(errors)) => {
            assert_eq!((errors.total, errors.listed.len()), (100_000, MAX_LISTED_ERRORS));
            assert_eq!(errors.listed[19].line, 21);
            assert!(errors.to_string().ends_with("\n… and 99,980 more errors"), "{errors}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn file_level_refusals_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = LabDb::open(&dir.path().join("lab.db")).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cut = write("cut.csv", &format!("{HEADER}\n{}\n{}", row(1, "2026-11-16", "INFA", "F"), "0123"));
    let e = import_file(&mut db, &cut, &LabSettings::default(), TODAY, |_| {}).unwrap_err();
    assert!(matches!(e, ImportError::Truncated { line: 3 }), "{e}");
    assert!(e.to_string().starts_with("line 3: the last line is incomplete"), "{e}");
    let empty = write("empty.csv", "");
    assert_eq!(
        import_file(&mut db, &empty, &LabSettings::default(), TODAY, |_| {}).unwrap_err().to_string(),
        "the file is empty"
    );
    let header = write("header.csv", "sample_id,patient_id\n");
    let e = import_file(&mut db, &header, &LabSettings::default(), TODAY, |_| {}).unwrap_err();
    assert!(e.to_string().starts_with("line 1: the header must be exactly sample_id,patient,"), "{e}");
    // A line far too long is an error at its line; the reading stops there.
    let long =
        write("long.csv", &format!("{HEADER}\n{}\n{}\n", row(1, "2026-11-16", "INFA", "X"), "x".repeat(100_000)));
    match import_file(&mut db, &long, &LabSettings::default(), TODAY, |_| {}) {
        Err(ImportError::Rejected(errors)) => {
            assert_eq!(errors.total, 2);
            assert!(errors.listed[1].to_string().starts_with("line 3: longer than 64 KiB"), "{errors}");
        }
        other => panic!("{other:?}"),
    }
    // A field that is not UTF-8 is named by its column.
    let mut bytes = format!("{HEADER}\n").into_bytes();
    bytes.extend_from_slice(row(1, "2026-11-16", "INFA", "F").replace("INFA", "INF\u{1}").as_bytes());
    let at = bytes.iter().position(|&b| b == 1).unwrap();
    bytes[at] = 0xff;
    bytes.push(b'\n');
    let latin = dir.path().join("latin.csv");
    std::fs::write(&latin, &bytes).unwrap();
    let e = import_file(&mut db, &latin, &LabSettings::default(), TODAY, |_| {}).unwrap_err();
    assert!(e.to_string().ends_with("\nline 2, column analysis: is not UTF-8 text"), "{e}");
}
