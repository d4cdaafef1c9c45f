//! `snow lab import` and `snow lab process` on refused files, as the lab
//! server's operator sees them: every error by the file's line number (the
//! first 20, then how many more), and one log line in words per file at
//! the default log level.

mod support;

use std::path::Path;

use support::Site;

impl Site {
    fn new() -> Site {
        // Files written just now are taken at once by `snow lab process`.
        let site = Site::with_config("[lab]\nsettle_ms = 0\n");
        std::fs::create_dir_all(site.home().join("data")).unwrap();
        site
    }
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A pushed row (synthetic pseudonyms) with the given sex.
fn lab_row(i: u32, sex: &str) -> String {
    format!("{i:032x},{:064x},2024-01-15,INFA,POS,5401,15-24,{sex}", 0xfeed_0000_u64 + u64::from(i))
}

const LAB_HEADER: &str = "sample_id,patient,sample_date,analysis,result,municipality,age_group,sex";

/// `snow lab import` of a file with 25 bad rows among good ones: nothing
/// imported, a non-zero exit, and the first 20 errors by the file's line
/// number (a blank line and a quoted line break on the way), then how many
/// more.
#[test]
fn lab_import_lists_the_first_20_errors_by_line() {
    let site = Site::new();
    let mut text = format!("{LAB_HEADER}\n");
    let mut expected = Vec::new();
    for k in 0..25u32 {
        text.push_str(&lab_row(100 + k, "F"));
        text.push('\n');
        if k == 2 {
            text.push('\n');
        }
        let line = text.matches('\n').count() + 1;
        let (row, error) = match k % 4 {
            0 => (lab_row(200 + k, "X"), format!("line {line}, column sex: must be M, F or U, not \"X\"")),
            1 => (
                lab_row(200 + k, "F").replace(",INFA,", ",\"IN\nFA\","),
                format!("line {line}, column analysis: must be one of INFA, INFB, RSV, SARS2, MPV, MYCPN"),
            ),
            2 => (
                lab_row(200 + k, "F").replace("2024-01-15", "2024-02-30"),
                format!("line {line}, column sample_date: must be a date YYYY-MM-DD"),
            ),
            _ => (format!("{},extra", lab_row(200 + k, "F")), format!("line {line}: 9 fields, expected 8")),
        };
        text.push_str(&row);
        text.push_str("\r\n");
        expected.push(error);
    }
    let file = site.path("w47.csv");
    std::fs::write(&file, &text).unwrap();
    let out = site.snow(&["lab", "import", arg(&file)]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].ends_with("w47.csv: 25 errors; nothing in the file was imported:"), "{err}");
    for (i, e) in expected.iter().take(20).enumerate() {
        assert!(lines[1 + i].trim_start().starts_with(e.as_str()), "error {i}: expected {e}\n{err}");
    }
    assert_eq!(lines[21].trim(), "… and 5 more errors", "{err}");
    assert!(
        lines[22].starts_with("error: ") && lines[22].ends_with("was not imported: 25 errors (listed above)"),
        "{err}"
    );
    assert_eq!(lines.len(), 23, "{err}");
    assert!(!err.contains(&format!("{:064x}", 0xfeed_0000_u64 + 200)), "no pseudonym in the errors: {err}");
    // Nothing was counted: a good file imports all its rows as new.
    let good = site.path("good.csv");
    std::fs::write(&good, format!("{LAB_HEADER}\n{}\n{}\n", lab_row(100, "F"), lab_row(101, "M"))).unwrap();
    let imported = site.ok(&["lab", "import", arg(&good)]);
    assert!(imported.contains("good.csv: 2 rows (2 new samples)"), "{imported}");
}

/// At the default log level, `snow lab process` logs one line in words
/// for each file: imported (rows, new samples) or rejected (the count and
/// the first errors).
#[test]
fn lab_process_logs_each_file_in_words_at_the_default_level() {
    let site = Site::new();
    let incoming = site.home().join("data").join("in");
    std::fs::create_dir_all(&incoming).unwrap();
    let mut good = format!("{LAB_HEADER}\n");
    for i in 0..1200 {
        good.push_str(&lab_row(i, "F"));
        good.push('\n');
    }
    std::fs::write(incoming.join("w47.csv"), &good).unwrap();
    let bad = format!("{LAB_HEADER}\n{}\n{}\n{}\n", lab_row(5000, "F"), lab_row(5001, "X"), lab_row(5002, "?"));
    std::fs::write(incoming.join("w48.csv"), bad).unwrap();
    let out = site.snow(&["lab", "process"]);
    assert!(!out.status.success(), "a file was rejected");
    let log = String::from_utf8(out.stderr).unwrap();
    let line = |needle: &str| log.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {log}"));
    let imported = line("imported w47.csv");
    assert!(
        imported.contains("INFO") && imported.ends_with("imported w47.csv: 1,200 rows (1,200 new samples)"),
        "{log}"
    );
    let rejected = line("rejected w48.csv");
    assert!(rejected.contains("WARN"), "{log}");
    assert!(
        rejected.contains(
            "rejected w48.csv: 2 errors: line 3, column sex: must be M, F or U, not \"X\"; \
             line 4, column sex: must be M, F or U (see rejected/w48.csv.error)"
        ),
        "{log}"
    );
    assert!(!log.contains("Some(") && !log.contains("Imported") && !log.contains("RowError"), "{log}");
    let report = std::fs::read_to_string(site.home().join("data/rejected/w48.csv.error")).unwrap();
    assert!(report.starts_with("2 errors; nothing in the file was imported:\nline 3, column sex:"), "{report}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("w47.csv: 1,200 rows (1,200 new samples)") && stdout.contains("w48.csv: 2 errors"),
        "{stdout}"
    );
}

/// `snow lab process` on a hostile drop directory: a symbolic link to a
/// CSV outside `data/in` is moved to `rejected/` itself (never followed;
/// its target untouched and not imported), and a second file of a name
/// already in `done/` is kept beside the first, both imported.
#[cfg(unix)]
#[test]
fn lab_process_refuses_a_symlink_and_keeps_a_taken_name() {
    let site = Site::new();
    let incoming = site.home().join("data").join("in");
    std::fs::create_dir_all(&incoming).unwrap();
    let outside = site.path("outside.csv");
    let target = format!("{LAB_HEADER}\n{}\n", lab_row(900, "F"));
    std::fs::write(&outside, &target).unwrap();
    std::os::unix::fs::symlink(&outside, incoming.join("link.csv")).unwrap();
    let first = format!("{LAB_HEADER}\n{}\n", lab_row(1, "F"));
    std::fs::write(incoming.join("w47.csv"), &first).unwrap();

    let out = site.snow(&["lab", "process"]);
    assert!(!out.status.success(), "the link was rejected");
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(log.contains("rejected link.csv: it is a symbolic link, not a regular file"), "{log}");
    let rejected = site.home().join("data/rejected");
    assert_eq!(std::fs::read_link(rejected.join("link.csv")).unwrap(), outside);
    assert!(std::fs::read_to_string(rejected.join("link.csv.error")).unwrap().contains("without being followed"));
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), target, "the target is untouched");

    let second = format!("{LAB_HEADER}\n{}\n{}\n", lab_row(2, "F"), lab_row(3, "M"));
    std::fs::write(incoming.join("w47.csv"), &second).unwrap();
    let out = site.snow(&["lab", "process"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(
        log.contains("imported w47.csv: 2 rows (2 new samples) (kept as done/w47.2.csv: the name was taken)"),
        "{log}"
    );
    let done = site.home().join("data/done");
    assert_eq!(std::fs::read_to_string(done.join("w47.csv")).unwrap(), first);
    assert_eq!(std::fs::read_to_string(done.join("w47.2.csv")).unwrap(), second);
    // Three rows imported: the target of the link was not.
    let again = site.path("again.csv");
    std::fs::write(&again, &target).unwrap();
    let imported = site.ok(&["lab", "import", again.to_str().unwrap()]);
    assert!(imported.contains("1 rows (1 new samples)"), "the link's row was never counted: {imported}");
}

/// `snow lab audit` lists what the agent recorded: as a table with a
/// count of answered and refused, as CSV with a spreadsheet-safe cell for
/// a hostile requester name, as JSON; filtered by requester, day and
/// number; and says so plainly when nothing was recorded yet.
#[test]
fn lab_audit_lists_and_exports_the_searches() {
    let site = Site::new();
    let empty = site.ok(&["lab", "audit"]);
    assert!(empty.contains("No searches recorded yet"), "{empty}");
    let db = snow_store::AuditDb::open(&site.home().join("data/audit.db")).unwrap();
    let query = snow_store::AuditedQuery {
        analysis: "INFA".into(),
        period: "2026-W01..2026-W08".into(),
        area: "municipality:5401".into(),
        granularity: "week".into(),
        age_group: None,
        sex: Some("F".into()),
    };
    let day = 1_764_720_000; // 2025-12-03 00:00:00Z
    for (at, who, outcome) in [
        (day + 60, "1111111@po.example", "answered"),
        (day + 120, "=cmd|' /C calc'!A0@po.example", "refused: not-acceptable"),
        (day + 86_400 + 5, "1111111@po.example", "refused: policy-violation (searches per hour)"),
    ] {
        let r = snow_store::SearchRecord {
            at,
            requester: who.into(),
            query: (outcome != "refused: not-acceptable").then(|| query.clone()),
            cells: if outcome == "answered" { 8 } else { 0 },
            outcome: outcome.into(),
        };
        db.record(&r).unwrap();
    }
    let table = site.ok(&["lab", "audit"]);
    assert!(table.starts_with("time"), "{table}");
    let first = table.lines().nth(1).unwrap();
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words[..5], ["2025-12-03", "00:01:00Z", "1111111@po.example", "INFA", "2026-W01..2026-W08"], "{table}");
    assert!(table.contains("3 searches: 1 answered, 2 refused."), "{table}");
    let csv = site.ok(&["lab", "audit", "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "time,requester,analysis,period,area,granularity,age_group,sex,cells,outcome");
    assert_eq!(
        lines[1],
        "2025-12-03 00:01:00Z,1111111@po.example,INFA,2026-W01..2026-W08,municipality:5401,week,,F,8,answered"
    );
    assert!(lines[2].contains(",'=cmd|"), "a formula reached the CSV: {}", lines[2]);
    let json: serde_json::Value =
        serde_json::from_str(&site.ok(&["lab", "audit", "--format", "json", "--last", "1"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["outcome"], "refused: policy-violation (searches per hour)");
    assert_eq!(json[0]["cells"], 0);
    let theirs =
        site.ok(&["lab", "audit", "--requester", "1111111@po.example", "--since", "2025-12-04", "--format", "csv"]);
    assert_eq!(theirs.lines().count(), 2, "{theirs}");
    let wrong = site.fails(&["lab", "audit", "--since", "yesterday"]);
    assert!(wrong.contains("--since must be a date like 2026-12-01"), "{wrong}");
}
