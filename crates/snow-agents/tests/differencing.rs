//! Issue 21, played by the curious GP: a synthetic lab with small cells
//! planted (1 to 4 positives in one municipality and week, the rest of the
//! county large), every answer a GP can get for those weeks collected
//! (every area that holds the municipality and its neighbours, every
//! period within the weeks as a total, every week and month, each without
//! a split, by age group, by sex and by both), and an attacker who knows
//! the public perturbation table narrows every cell down.
//!
//! The attacker's knowledge: each answered cell's true count lies in the
//! set of counts the table could have published its answer from (for
//! "0": 0 to 5; for 12: 7 to 17), and every cell is the sum of the
//! elementary cells (municipality, week, age group, sex) it covers. The
//! attack propagates these bounds through every sum until nothing changes
//! (the bounds-consistency an attacker computes with interval arithmetic:
//! county minus the other municipalities, weeks 1–8 minus 1–7, a total
//! minus its splits, and all their chains). For each planted cell the
//! values left must be at least 3. Without perturbation (exact counts,
//! 1–4 shown as "<5") the same attack pins every planted cell to its true
//! value: the test fails when the protection is missing.

use snow_agents::search::{answer, SearchSettings};
use snow_core::stats::{Area, Count, Granularity, Period, Sex, StatsQuery};
use snow_store::{AggRow, LabDb};

const WEEKS: u8 = 12;
const MUNIS: [&str; 4] = ["5401", "5402", "5403", "1804"];
const GROUPS: [&str; 2] = ["0-4", "25-44"];
const SEXES: [&str; 2] = ["F", "M"];

/// (municipality, week, group, sex) → index of an elementary cell.
fn cell(m: usize, w: u8, g: usize, s: usize) -> usize {
    ((m * usize::from(WEEKS) + usize::from(w - 1)) * 2 + g) * 2 + s
}
const CELLS: usize = 4 * 12 * 2 * 2;

/// An elementary cell's part of a planted count: (group, sex, positives).
type Part = (usize, usize, u64);

/// The planted small cells: (week in 5401, its parts).
const PLANTED: [(u8, &[Part]); 3] = [(5, &[(0, 0, 1), (1, 1, 1)]), (8, &[(0, 0, 3), (1, 0, 1)]), (10, &[(1, 1, 1)])];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// True positives per elementary cell, and the lab store holding them
/// (with a few negatives per cell, which the attack does not need).
fn lab(dir: &std::path::Path) -> (LabDb, Vec<u64>) {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut truth = vec![0u64; CELLS];
    for (m, _) in MUNIS.iter().enumerate() {
        for w in 1..=WEEKS {
            for g in 0..2 {
                for s in 0..2 {
                    let planted = PLANTED.iter().find(|(pw, _)| m == 0 && *pw == w);
                    truth[cell(m, w, g, s)] = match planted {
                        Some((_, cells)) => cells.iter().find(|(pg, ps, _)| *pg == g && *ps == s).map_or(0, |c| c.2),
                        // The planted municipality's other weeks are
                        // moderate; the rest of the county large.
                        None if m == 0 => 3 + rng.next() % 5,
                        None => 8 + rng.next() % 15,
                    };
                }
            }
        }
    }
    let mut db = LabDb::open(&dir.join("lab.db")).unwrap();
    let mut imp = db.begin().unwrap();
    let mut n = 0u64;
    for (m, muni) in MUNIS.iter().enumerate() {
        for w in 1..=WEEKS {
            for (g, group) in GROUPS.iter().enumerate() {
                for (s, sex) in SEXES.iter().enumerate() {
                    let positives = truth[cell(m, w, g, s)];
                    for i in 0..positives + 2 {
                        n += 1;
                        let (sample, patient) = (format!("{n:032x}"), format!("{n:064x}"));
                        imp.add(&AggRow {
                            sample_id: &sample,
                            patient: &patient,
                            analysis: "INFA",
                            municipality: muni,
                            year: 2026,
                            week: w,
                            age_group: group,
                            sex,
                            positive: i < positives,
                            record_key: rng.next() as u32,
                        })
                        .unwrap();
                    }
                }
            }
        }
    }
    imp.commit("h", "f.csv", 0).unwrap();
    (db, truth)
}

/// One answered cell: the elementary cells it sums and what was published.
struct Answer {
    cells: Vec<usize>,
    range: (u64, u64),
}

/// Every answer a GP can get for the lab's weeks, each answered cell once
/// (the same cell asked again gets the same answer, which adds nothing).
fn collect(db: &LabDb, settings: &SearchSettings, pre: &dyn Fn(Count) -> (u64, u64)) -> Vec<Answer> {
    let areas = [
        (Area::Municipality("5401".into()), vec![0]),
        (Area::Municipality("5402".into()), vec![1]),
        (Area::Municipality("5403".into()), vec![2]),
        (Area::County("54".into()), vec![0, 1, 2]),
        (Area::All, vec![0, 1, 2, 3]),
    ];
    let week = |w: u8| format!("2026-W{w:02}");
    let mut periods: Vec<(Period, Granularity)> = Vec::new();
    for a in 1..=WEEKS {
        for b in a..=WEEKS {
            periods.push((Period::parse(&week(a), &week(b)).unwrap(), Granularity::Total));
        }
    }
    periods.push((Period::parse(&week(1), &week(WEEKS)).unwrap(), Granularity::Week));
    periods.push((Period::parse("2026-01", "2026-03").unwrap(), Granularity::Month));
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (area, munis) in &areas {
        for (period, granularity) in &periods {
            for group in [None, Some(0), Some(1)] {
                for sex in [None, Some(0), Some(1)] {
                    let q = StatsQuery {
                        analysis: "INFA".into(),
                        period: *period,
                        area: area.clone(),
                        age_group: group.map(|g| GROUPS[g].to_owned()),
                        sex: sex.map(|s| if s == 0 { Sex::Female } else { Sex::Male }),
                        granularity: *granularity,
                    };
                    let a = answer(db, settings, &q).unwrap();
                    for ((_, from, to), bucket) in q.buckets().iter().zip(&a.buckets) {
                        let Some(counts) = bucket.counts else { continue };
                        let mut cells = Vec::new();
                        for &m in munis {
                            for w in 1..=WEEKS {
                                let key = 2026 * 100 + i32::from(w);
                                if key < from.key() || key > to.key() {
                                    continue;
                                }
                                for g in 0..2 {
                                    for s in 0..2 {
                                        if group.is_none_or(|x| x == g) && sex.is_none_or(|x| x == s) {
                                            cells.push(cell(m, w, g, s));
                                        }
                                    }
                                }
                            }
                        }
                        if cells.is_empty() || !seen.insert(cells.clone()) {
                            continue;
                        }
                        out.push(Answer { cells, range: pre(counts.positive) });
                    }
                }
            }
        }
    }
    out
}

/// Bounds propagation to a fixpoint: each elementary cell's range, then
/// the range of the planted cells' sums.
fn attack(answers: &[Answer]) -> Vec<(u64, u64)> {
    let mut lo = vec![0u64; CELLS];
    let mut hi = vec![100_000u64; CELLS];
    let mut changed = true;
    let mut rounds = 0;
    while changed && rounds < 10_000 {
        changed = false;
        rounds += 1;
        for a in answers {
            let (sum_lo, sum_hi): (u64, u64) = a.cells.iter().fold((0, 0), |(l, h), &c| (l + lo[c], h + hi[c]));
            for &c in &a.cells {
                let others_lo = sum_lo - lo[c];
                let others_hi = sum_hi - hi[c];
                let new_lo = a.range.0.saturating_sub(others_hi).max(lo[c]);
                let new_hi = a.range.1.saturating_sub(others_lo).min(hi[c]);
                assert!(new_lo <= new_hi, "the answers are inconsistent with the table");
                if (new_lo, new_hi) != (lo[c], hi[c]) {
                    (lo[c], hi[c]) = (new_lo, new_hi);
                    changed = true;
                }
            }
        }
    }
    // A planted cell is itself an answered cell (5401, its week, no
    // split): its range is what its own answer and its parts allow.
    PLANTED
        .iter()
        .map(|(w, _)| {
            let parts: Vec<usize> = (0..2).flat_map(|g| (0..2).map(move |s| cell(0, *w, g, s))).collect();
            let (mut l, mut h) = parts.iter().fold((0, 0), |(l, h), &c| (l + lo[c], h + hi[c]));
            if let Some(a) = answers.iter().find(|a| a.cells == parts) {
                (l, h) = (l.max(a.range.0), h.min(a.range.1));
            }
            (l, h)
        })
        .collect()
}

#[test]
fn no_planted_small_count_can_be_narrowed_below_three_values() {
    let dir = tempfile::tempdir().unwrap();
    let (db, truth) = lab(dir.path());
    let planted: Vec<u64> = PLANTED.iter().map(|(_, cells)| cells.iter().map(|c| c.2).sum()).collect();
    for (i, (w, _)) in PLANTED.iter().enumerate() {
        let sum: u64 = (0..2).flat_map(|g| (0..2).map(move |s| (g, s))).map(|(g, s)| truth[cell(0, *w, g, s)]).sum();
        assert_eq!(sum, planted[i]);
    }

    // Perturbed (the default): the public table says which true counts
    // each published count can come from.
    let settings = SearchSettings::default();
    let table = settings.perturbation.clone().unwrap();
    let pre = |c: Count| match c {
        Count::Exact(p) => {
            let from: Vec<u64> = table
                .rows()
                .iter()
                .flat_map(|row| row.entries().iter().filter(|e| e.key_ub > e.key_lb).map(move |e| (row.count(), e.j)))
                .filter_map(|(i, j)| {
                    // Rows beyond the last stored one shift it.
                    let last = table.n_max();
                    if i < last {
                        (u64::from(j) == p).then_some(u64::from(i))
                    } else {
                        let v = i64::from(j) - i64::from(i);
                        let t = p as i64 - v;
                        (t >= i64::from(last)).then_some(t as u64)
                    }
                })
                .collect();
            (*from.iter().min().unwrap(), *from.iter().max().unwrap())
        }
        Count::Below(t) => (1, u64::from(t) - 1),
    };
    let answers = collect(&db, &settings, &pre);
    assert!(answers.len() > 1000, "{} answered cells", answers.len());
    let ranges = attack(&answers);
    println!("answered cells: {}", answers.len());
    for ((w, _), (range, true_value)) in PLANTED.iter().zip(ranges.iter().zip(&planted)) {
        let members = range.1 - range.0 + 1;
        println!("planted 5401 week {w}: true {true_value}, consistent {}..={} ({members} values)", range.0, range.1);
        assert!((range.0..=range.1).contains(true_value), "the attack is unsound");
        assert!(members >= 3, "week {w}: only {members} values consistent with all answers");
    }

    // Exact counts: the same attack finds every planted count.
    let exact = SearchSettings { perturbation: None, ..SearchSettings::default() };
    let pre = |c: Count| match c {
        Count::Exact(n) => (n, n),
        Count::Below(t) => (1, u64::from(t) - 1),
    };
    let ranges = attack(&collect(&db, &exact, &pre));
    for ((w, _), (range, true_value)) in PLANTED.iter().zip(ranges.iter().zip(&planted)) {
        assert_eq!(*range, (*true_value, *true_value), "week {w}: exact counts did not give it away");
    }
}
