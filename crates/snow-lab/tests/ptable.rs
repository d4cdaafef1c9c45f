//! The perturbation table of the cell key method (issue 21): every property
//! the module doc states, checked for the defaults and other parameter sets
//! through the public API only. Bounds on attainable variances are
//! recomputed here by enumerating pairs, independently of the module.

use snow_lab::ptable::{Ptable, PtableError, PtableParams, PtableRow};

const KEY_SPACE: u64 = 1 << 32;

fn params(max_noise: u32, variance: f64, small_count: u32) -> PtableParams {
    PtableParams { max_noise, variance, small_count }
}

/// The defaults, `ptable`'s own examples (D5 V3 js2, D2 V1), the smallest
/// tables, a row of two points (js = D = 1), a large threshold, a variance
/// above the uniform one (U-shaped rows) and the largest D.
fn param_sets() -> Vec<PtableParams> {
    vec![
        PtableParams::default(),
        params(5, 3.0, 2),
        params(2, 1.0, 0),
        params(1, 0.5, 0),
        params(1, 0.5, 1),
        params(3, 2.0, 3),
        params(10, 8.0, 4),
        params(4, 10.0, 0),
        params(50, 400.0, 10),
    ]
}

fn table(p: &PtableParams) -> Ptable {
    Ptable::new(p).unwrap_or_else(|e| panic!("{p:?}: {e}"))
}

/// `S_i` by its definition.
fn support(p: &PtableParams, i: u32) -> Vec<u32> {
    (i.saturating_sub(p.max_noise)..=i + p.max_noise).filter(|j| *j == 0 || *j > p.small_count).collect()
}

/// The smallest and largest variance of an unbiased distribution on `S_i`,
/// by enumerating its two-point distributions (the vertices of the set of
/// unbiased distributions) and the point mass at i.
fn variance_range(p: &PtableParams, i: u32) -> (f64, f64) {
    let v: Vec<f64> = support(p, i).iter().map(|&j| f64::from(j) - f64::from(i)).collect();
    let mut vars = Vec::new();
    if v.contains(&0.0) {
        vars.push(0.0);
    }
    for a in v.iter().filter(|x| **x < 0.0) {
        for b in v.iter().filter(|x| **x > 0.0) {
            vars.push(-a * b);
        }
    }
    (vars.iter().copied().fold(f64::INFINITY, f64::min), vars.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

/// Keys every 2¹⁶, both ends, and each interval's first key, last key and
/// the key past it.
fn keys_for(row: &PtableRow) -> Vec<u32> {
    let mut keys: Vec<u32> = (0..=u32::MAX).step_by(1 << 16).collect();
    keys.push(u32::MAX);
    for e in row.entries() {
        for k in [e.key_lb, e.key_ub.saturating_sub(1), e.key_ub] {
            if let Ok(k) = u32::try_from(k) {
                keys.push(k);
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Counts 0..=n_max + 5 and some far beyond (the row used is the last).
fn counts_for(t: &Ptable) -> Vec<u64> {
    let mut c: Vec<u64> = (0..=u64::from(t.n_max()) + 5).collect();
    c.extend([1_000, 123_456_789, u64::MAX - 3, u64::MAX]);
    c
}

fn row_for(t: &Ptable, count: u64) -> &PtableRow {
    let i = count.min(u64::from(t.n_max())) as usize;
    &t.rows()[i]
}

/// A tiny xorshift64* for reproducible "random" keys without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}

/// The defaults and the row-by-row variances the module doc and the
/// report state: rows 1–4 cannot have V = 3 with 1–4 never published and
/// take the closest attainable variance; rows 5 onwards have V.
#[test]
fn defaults_are_d5_v3_js4_with_the_stated_row_variances() {
    let p = PtableParams::default();
    assert_eq!(p, params(5, 3.0, 4));
    p.validate().unwrap();
    assert_eq!(p.n_max(), 10);
    let t = table(&p);
    assert_eq!(t.rows().len(), 11);
    let expected = [0.0, 4.0, 6.0, 6.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0];
    for (row, want) in t.rows().iter().zip(expected) {
        assert!((row.variance() - want).abs() < 1e-6, "row {}: {}", row.count(), row.variance());
        assert_eq!(row.variance_attained(), row.count() >= 5, "row {}", row.count());
    }
    // Rows 1–4 publish only 0 or 5: the unbiased two-point distributions.
    for (i, p0) in [(1u32, 0.8), (2, 0.6), (3, 0.4), (4, 0.2)] {
        let e = t.rows()[i as usize].entries();
        assert_eq!(e.iter().map(|e| e.j).collect::<Vec<_>>(), [0, 5], "row {i}");
        assert!((e[0].p - p0).abs() < 1e-12, "row {i}");
    }
}

/// n_max is the first row whose support is cut neither by 0 nor by the
/// small-count rule, as `ptable`'s `ncat`; every later support is row
/// n_max's shifted.
#[test]
fn n_max_is_the_first_uncut_row() {
    for p in param_sets() {
        let d = p.max_noise;
        let full = |i: u32| support(&p, i).len() == 2 * d as usize + 1;
        let n = p.n_max();
        assert!(full(n), "{p:?}");
        assert!((0..n).all(|i| !full(i)), "{p:?}");
        assert!((n..n + 3 * d).all(full), "{p:?}");
    }
}

/// Each row is a distribution: probabilities positive, summing to 1; the
/// intervals, in increasing j, tile [0, 1) and the key bounds tile
/// [0, 2³²), each within 2⁻³² of its probability.
#[test]
fn rows_are_distributions_whose_intervals_tile_the_keys() {
    for p in param_sets() {
        let t = table(&p);
        for row in t.rows() {
            let e = row.entries();
            let sum: f64 = e.iter().map(|e| e.p).sum();
            assert!((sum - 1.0).abs() < 1e-9, "{p:?} row {}: sum {sum}", row.count());
            assert!(e.iter().all(|e| e.p > 0.0 && e.p <= 1.0));
            assert_eq!(e.first().map(|e| (e.p_int_lb, e.key_lb)), Some((0.0, 0)));
            assert_eq!(e.last().map(|e| (e.p_int_ub, e.key_ub)), Some((1.0, KEY_SPACE)));
            for w in e.windows(2) {
                assert!(w[0].j < w[1].j, "{p:?} row {}: j not increasing", row.count());
                assert_eq!(w[0].p_int_ub, w[1].p_int_lb);
                assert_eq!(w[0].key_ub, w[1].key_lb);
            }
            for e in e {
                assert!(e.key_lb <= e.key_ub);
                assert!((e.p_int_ub - e.p_int_lb - e.p).abs() < 1e-12);
                let quantised = (e.key_ub - e.key_lb) as f64 / KEY_SPACE as f64;
                assert!((quantised - e.p).abs() <= 1.0 / KEY_SPACE as f64 + 1e-12, "{p:?} row {}", row.count());
                assert_eq!(e.v, e.j as i32 - row.count() as i32);
            }
        }
    }
}

/// Unbiased: Σ p·j = i within 1e-9, and within 1e-8 for the probabilities
/// the lookup actually applies (the quantised key intervals).
#[test]
fn rows_are_unbiased() {
    for p in param_sets() {
        let t = table(&p);
        for row in t.rows() {
            let i = f64::from(row.count());
            let mean: f64 = row.entries().iter().map(|e| e.p * f64::from(e.j)).sum();
            assert!((mean - i).abs() < 1e-9, "{p:?} row {}: E[j] = {mean}", row.count());
            let applied: f64 =
                row.entries().iter().map(|e| (e.key_ub - e.key_lb) as f64 / KEY_SPACE as f64 * f64::from(e.v)).sum();
            assert!(applied.abs() < 1e-8, "{p:?} row {}: applied bias {applied}", row.count());
        }
    }
}

/// Variance V within 1e-6 on every row where V is attainable (between
/// the bounds enumerated here), and otherwise the bound closest to V.
#[test]
fn variance_is_v_where_attainable_else_the_closest_attainable() {
    for p in param_sets() {
        let t = table(&p);
        for row in t.rows() {
            let i = f64::from(row.count());
            let var: f64 = row.entries().iter().map(|e| e.p * (f64::from(e.j) - i).powi(2)).sum();
            assert!((var - row.variance()).abs() < 1e-9);
            let (lo, hi) = variance_range(&p, row.count());
            let attainable = lo <= p.variance && p.variance <= hi;
            assert_eq!(row.variance_attained(), attainable, "{p:?} row {}", row.count());
            let want = p.variance.clamp(lo, hi);
            assert!((var - want).abs() < 1e-6, "{p:?} row {}: variance {var}, want {want}", row.count());
        }
        // Every uncut row reaches V (V < D² is validated).
        assert!(t.rows().last().is_some_and(|r| r.variance_attained()), "{p:?}");
    }
}

/// No published value is further than D from the count: the small-count
/// rule only removes values, and js ≤ D keeps one below and one above.
#[test]
fn noise_is_bounded_by_max_noise() {
    for p in param_sets() {
        let t = table(&p);
        let d = i64::from(p.max_noise);
        for row in t.rows() {
            assert!(row.entries().iter().all(|e| i64::from(e.v).abs() <= d), "{p:?} row {}", row.count());
        }
        for count in counts_for(&t) {
            for k in keys_for(row_for(&t, count)) {
                assert!(t.noise(count, k).abs() <= d, "{p:?}: count {count}, key {k}");
            }
        }
    }
}

/// The counts 1..=js are never published, whatever the count and key:
/// every key on a 2¹⁶ grid and on every interval bound.
#[test]
fn small_counts_are_never_published() {
    for p in param_sets() {
        let t = table(&p);
        let small = 1..=u64::from(p.small_count);
        for count in counts_for(&t) {
            for k in keys_for(row_for(&t, count)) {
                let out = t.publish(count, k);
                assert!(!small.contains(&out), "{p:?}: count {count}, key {k} published as {out}");
            }
        }
    }
}

/// A zero is published as zero, whatever the key: unbiased noise cannot
/// move it (every j ≥ 0), so there is no setting for it.
#[test]
fn zero_is_always_published_as_zero() {
    for p in param_sets() {
        let t = table(&p);
        let row0 = &t.rows()[0];
        assert_eq!(row0.entries().len(), 1);
        assert_eq!((row0.entries()[0].j, row0.entries()[0].p), (0, 1.0));
        assert_eq!(row0.variance(), 0.0);
        for k in keys_for(row0) {
            assert_eq!(t.publish(0, k), 0, "{p:?}: key {k}");
        }
    }
}

/// Within a row the lookup is monotone in the key (intervals ordered by
/// j), and each interval's first and last key select its value.
#[test]
fn lookup_is_monotone_in_the_key_and_hits_each_interval() {
    for p in param_sets() {
        let t = table(&p);
        for count in counts_for(&t) {
            let row = row_for(&t, count);
            let mut last = i64::MIN;
            for k in keys_for(row) {
                let v = t.noise(count, k);
                assert!(v >= last, "{p:?}: count {count}, key {k}: {v} after {last}");
                last = v;
            }
            for e in row.entries().iter().filter(|e| e.key_lb < e.key_ub) {
                for k in [e.key_lb, e.key_ub - 1] {
                    assert_eq!(t.noise(count, k as u32), i64::from(e.v), "{p:?}: count {count}, key {k}");
                }
            }
        }
    }
}

/// Counts beyond n_max use row n_max shifted; u64::MAX does not panic and
/// saturates.
#[test]
fn counts_beyond_n_max_use_the_last_row_shifted_and_saturate() {
    for p in param_sets() {
        let t = table(&p);
        let n = u64::from(t.n_max());
        let mut rng = XorShift(0x5eed_0001);
        for _ in 0..2_000 {
            let k = rng.next_u32();
            let v = t.noise(n, k);
            for count in [n + 1, n + 7, 10_000, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
                assert_eq!(t.noise(count, k), v, "{p:?}: count {count}, key {k}");
                assert_eq!(t.publish(count, k), count.saturating_add_signed(v));
            }
        }
        assert!((0..=u32::MAX).step_by(1 << 20).all(|k| t.publish(u64::MAX, k) >= u64::MAX - u64::from(p.max_noise)));
    }
}

/// Over uniformly random keys the published values follow the table: a
/// chi-square statistic per row, with a fixed seed so the test is
/// reproducible, and the sample mean of the noise near 0.
#[test]
fn published_distribution_over_random_keys_matches_the_table() {
    const N: usize = 200_000;
    for p in [PtableParams::default(), params(2, 1.0, 0), params(10, 8.0, 4)] {
        let t = table(&p);
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for row in t.rows() {
            let count = u64::from(row.count());
            let mut seen = vec![0usize; row.entries().len()];
            let mut sum = 0i64;
            for _ in 0..N {
                let v = t.noise(count, rng.next_u32());
                sum += v;
                let at = row.entries().iter().position(|e| i64::from(e.v) == v);
                seen[at.unwrap_or_else(|| panic!("{p:?} row {count}: noise {v} not in the row"))] += 1;
            }
            // Bins expected fewer than 5 times are pooled.
            let (mut chi2, mut bins, mut pooled_e, mut pooled_o) = (0.0, 0usize, 0.0, 0.0);
            for (e, o) in row.entries().iter().zip(&seen) {
                let expected = e.p * N as f64;
                if expected < 5.0 {
                    pooled_e += expected;
                    pooled_o += *o as f64;
                } else {
                    chi2 += (*o as f64 - expected).powi(2) / expected;
                    bins += 1;
                }
            }
            if pooled_e > 0.0 {
                chi2 += (pooled_o - pooled_e).powi(2) / pooled_e.max(1.0);
                bins += 1;
            }
            let df = bins.saturating_sub(1) as f64;
            assert!(chi2 <= df + 6.0 * (2.0 * df).sqrt() + 10.0, "{p:?} row {count}: chi² {chi2} on {df} df");
            let mean = sum as f64 / N as f64;
            let se = (row.variance() / N as f64).sqrt();
            assert!(mean.abs() <= 5.0 * se + 1e-12, "{p:?} row {count}: mean noise {mean}");
        }
    }
}

/// The same cell always gets the same answer: the table is a pure function
/// of its parameters, the lookup of (count, key), and the cell key of a
/// wrapping sum of record keys does not depend on their order.
#[test]
fn the_same_cell_always_gets_the_same_answer() {
    let a = table(&PtableParams::default());
    let b = table(&PtableParams::default());
    assert_eq!(a, b);
    assert_eq!(a.to_csv(), b.to_csv());
    let mut rng = XorShift(42);
    for n in 1..40u64 {
        let mut records: Vec<u32> = (0..n).map(|_| rng.next_u32()).collect();
        let key = records.iter().fold(0u32, |s, k| s.wrapping_add(*k));
        let first = a.publish(n, key);
        for _ in 0..5 {
            // Another order (a rotation and a reversal) gives the same key.
            records.rotate_left(1);
            records.reverse();
            let again = records.iter().fold(0u32, |s, k| s.wrapping_add(*k));
            assert_eq!(again, key);
            assert_eq!(a.publish(n, again), first);
            assert_eq!(b.publish(n, again), first);
        }
    }
}

/// `ptable`'s vignette (D = 2, V = 1) gives the full row a probability of
/// no change of 0.383; the maximum-entropy row has it in closed form:
/// p_v ∝ x^(v²) with 6x⁴ = 1.
#[test]
fn full_row_matches_ptable_and_the_closed_form() {
    let t = table(&params(2, 1.0, 0));
    let row = &t.rows()[2];
    let x = 6f64.powf(-0.25);
    let z = 1.0 + 2.0 * x + 2.0 * x.powi(4);
    for e in row.entries() {
        let want = x.powi(e.v * e.v) / z;
        assert!((e.p - want).abs() < 1e-12, "v {}: {} vs {want}", e.v, e.p);
    }
    let stay = row.entries().iter().find(|e| e.v == 0).map(|e| e.p);
    assert!(stay.is_some_and(|p| (p - 0.383).abs() < 5e-4), "{stay:?}");
}

/// Every parameter out of range is refused with its name and what is
/// allowed, by `validate` and by `Ptable::new`.
#[test]
fn parameters_out_of_range_are_refused_by_name() {
    let cases = [
        (params(0, 3.0, 0), "max_noise"),
        (params(51, 3.0, 4), "max_noise"),
        (params(u32::MAX, 3.0, 4), "max_noise"),
        (params(5, 0.0, 4), "variance"),
        (params(5, -1.0, 4), "variance"),
        (params(5, f64::NAN, 4), "variance"),
        (params(5, f64::INFINITY, 4), "variance"),
        (params(5, 25.0, 4), "variance"),
        (params(5, 3.0, 6), "small_count"),
        (params(2, 1.0, u32::MAX), "small_count"),
    ];
    for (p, name) in cases {
        let e = p.validate().unwrap_err();
        match &e {
            PtableError::OutOfRange { name: n, allowed, .. } => {
                assert_eq!(*n, name, "{p:?}");
                assert!(!allowed.is_empty());
            }
            other => panic!("{p:?}: {other}"),
        }
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.contains("allowed"), "{msg}");
        assert_eq!(Ptable::new(&p).unwrap_err(), e);
    }
    assert!(params(50, 2499.0, 50).validate().is_ok());
    assert!(params(1, 0.999, 1).validate().is_ok());
}

/// Every valid combination on a grid builds, near-boundary variances
/// included, and keeps the properties above (no convergence failure).
#[test]
fn parameter_sweep_builds_and_keeps_the_properties() {
    let mut built = 0;
    for d in 1..=8u32 {
        let d2 = f64::from(d * d);
        let mut vs = vec![1e-9, 1e-4, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.5, d2 * 0.5, d2 - 1e-3, d2 - 1e-7];
        vs.retain(|v| *v > 0.0 && *v < d2);
        for js in 0..=d {
            for &v in &vs {
                let p = params(d, v, js);
                let t = table(&p);
                for row in t.rows() {
                    let i = f64::from(row.count());
                    let e = row.entries();
                    let sum: f64 = e.iter().map(|e| e.p).sum();
                    let mean: f64 = e.iter().map(|e| e.p * f64::from(e.j)).sum();
                    let var: f64 = e.iter().map(|e| e.p * (f64::from(e.j) - i).powi(2)).sum();
                    let (lo, hi) = variance_range(&p, row.count());
                    assert!((sum - 1.0).abs() < 1e-9, "{p:?} row {i}");
                    assert!((mean - i).abs() < 1e-9, "{p:?} row {i}: mean {mean}");
                    assert!((var - v.clamp(lo, hi)).abs() < 1e-6, "{p:?} row {i}: var {var}");
                    assert!(e.iter().all(|e| e.j == 0 || e.j > js), "{p:?} row {i}");
                    assert!(e.iter().all(|e| e.v.unsigned_abs() <= d), "{p:?} row {i}");
                }
                built += 1;
            }
        }
    }
    assert!(built > 400);
}

/// The published forms: the text names the parameters and every row
/// (the last as "i >= n_max"), and the CSV has one line per value whose
/// numbers read back exactly.
#[test]
fn describe_and_csv_publish_every_value() {
    let t = table(&PtableParams::default());
    let text = t.describe();
    assert_eq!(text, t.to_string());
    assert!(text.contains("max_noise D = 5, variance V = 3, small_count js = 4"), "{text}");
    assert!(text.contains("i = 4: variance 4.000000 (closest to V)"), "{text}");
    assert!(text.contains("i >= 10: variance 3.000000 (V)"), "{text}");

    let csv = t.to_csv();
    let mut written = Vec::new();
    t.write_csv(&mut written).unwrap();
    assert_eq!(written, csv.as_bytes());
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("i,j,p,v,p_int_lb,p_int_ub,key_lb,key_ub"));
    let entries: Vec<(u32, _)> =
        t.rows().iter().flat_map(|r| r.entries().iter().map(move |e| (r.count(), *e))).collect();
    let lines: Vec<&str> = lines.collect();
    assert_eq!(lines.len(), entries.len());
    for (line, (i, e)) in lines.iter().zip(entries) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 8, "{line}");
        assert_eq!(f[0].parse::<u32>().unwrap(), i);
        assert_eq!(f[1].parse::<u32>().unwrap(), e.j);
        assert_eq!(f[2].parse::<f64>().unwrap(), e.p);
        assert_eq!(f[3].parse::<i32>().unwrap(), e.v);
        assert_eq!(f[4].parse::<f64>().unwrap(), e.p_int_lb);
        assert_eq!(f[5].parse::<f64>().unwrap(), e.p_int_ub);
        assert_eq!(f[6].parse::<u64>().unwrap(), e.key_lb);
        assert_eq!(f[7].parse::<u64>().unwrap(), e.key_ub);
    }
}
/// The sweep above over every D up to 50, with variances at, just inside
/// and just outside every bound a·b of a row (±1e−11 to ±1e−6). About
/// 330 000 tables: a minute or two in release, so not run by default
/// (`cargo test --release -p snow-lab --test ptable -- --ignored`).
#[test]
#[ignore]
fn wide_parameter_sweep() {
    let mut n = 0;
    for d in 1..=50u32 {
        let d2 = f64::from(d * d);
        let mut vs: Vec<f64> = vec![1e-12, 1e-6, 0.3, 1.0, 2.5, d2 / 3.0, d2 - 1e-9, d2 - 1e-6, d2 - 1e-3];
        for a in 1..=d {
            for b in 1..=d {
                let x = f64::from(a * b);
                for e in [-1e-6, -1e-8, -1e-9, -3e-10, -1e-10, -1e-11, 0.0, 1e-11, 1e-10, 3e-10, 1e-9, 1e-8, 1e-6] {
                    vs.push(x + e);
                }
            }
        }
        vs.retain(|v| *v > 0.0 && *v < d2);
        vs.sort_by(f64::total_cmp);
        vs.dedup();
        let jss: Vec<u32> = if d <= 8 { (0..=d).collect() } else { vec![0, 1, 4, d / 2, d] };
        let vs: Vec<f64> = if d > 12 { vs.into_iter().step_by(3).collect() } else { vs };
        for &js in &jss {
            for &v in &vs {
                let p = params(d, v, js);
                let t = Ptable::new(&p).unwrap_or_else(|e| panic!("{e}"));
                for row in t.rows() {
                    let i = f64::from(row.count());
                    let e = row.entries();
                    let mean: f64 = e.iter().map(|e| e.p * f64::from(e.j)).sum();
                    let var: f64 = e.iter().map(|e| e.p * (f64::from(e.j) - i).powi(2)).sum();
                    let (lo, hi) = variance_range(&p, row.count());
                    let sum: f64 = e.iter().map(|e| e.p).sum();
                    assert!((sum - 1.0).abs() < 1e-9, "{p:?} row {i}: sum {sum}");
                    assert!((mean - i).abs() < 1e-9, "{p:?} row {i}: mean {mean}");
                    assert!((var - v.clamp(lo, hi)).abs() < 1e-6, "{p:?} row {i}: var {var}");
                }
                n += 1;
            }
        }
    }
    assert!(n > 300_000, "{n} tables");
}
