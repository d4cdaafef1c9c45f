//! The perturbation table of the cell key method (issue 21, item 1): what
//! noise a published count gets, so that differences of answers no longer
//! reveal the counts 1–4 that `<5` hides.
//!
//! # Why a table
//!
//! Each record carries a random key; a cell's key is the fractional part of
//! the sum of its records' keys (the store keeps it as the wrapping sum of
//! `u32` record keys, a fraction of 2³², which is exact and independent of
//! the order records were added). The published count is the true count
//! plus a noise looked up in this fixed table by (true count, cell key). The
//! same cell therefore always gets the same answer, however often and in
//! whatever query it is asked, so averaging repeated answers learns
//! nothing; and two cells differing by a few records have unrelated keys, so
//! subtracting answers gives a noisy difference instead of a hidden count.
//! The method is that of ABS TableBuilder and Eurostat (Thompson, Broadfoot
//! & Elazar 2013; Giessing & Tent 2019); the table's layout and lookup follow
//! the R packages `ptable` (`create_cnt_ptable`) and `cellKey` of sdcTools.
//! The table is meant to be public: its protection is in the secret record
//! keys, not in the table, and GPs need it to judge the noise.
//!
//! # Parameters
//!
//! * `D` ([`PtableParams::max_noise`]): no count moves by more than `D`.
//! * `V` ([`PtableParams::variance`]): the noise variance aimed at.
//! * `js` ([`PtableParams::small_count`]): the counts `1..=js` are never
//!   published. With a disclosure threshold of 5, `js = 4`.
//!
//! # Rows
//!
//! Row `i` is a probability distribution over the published values `j` in
//! the support
//!
//! `S_i = { j : max(0, i − D) ≤ j ≤ i + D, j ∉ 1..=js }`,
//!
//! so that no row can publish a negative count or a small count. The rows
//! differ while `S_i` is cut, by 0 or by the small-count rule; from
//! `n_max = D + js + 1` (or `n_max = D` when `js = 0`, as `ptable`'s `ncat`)
//! every support is the full `i − D ..= i + D` and every row is row `n_max`
//! shifted, so only rows `0..=n_max` are stored and a count beyond `n_max`
//! gets row `n_max`'s noise.
//!
//! Each row is unbiased (Σ p_j·j = i) and, among the unbiased distributions
//! on `S_i` with variance `V`, the one of maximum entropy: it is of the form
//! `p_j ∝ exp(λ1·(j − i) + λ2·(j − i)²)`. The two multipliers are found by a
//! damped Newton iteration on the (convex) dual `ln Σ exp(λ1·v + λ2·(v² − V))`
//! over the deviations `v = j − i`, whose gradient is (mean, variance − V) and
//! whose Hessian is the covariance of (v, v²). It starts from the uniform
//! distribution; each Newton step is halved until the dual decreases
//! enough (Armijo) or, once that decrease is below the precision of the
//! dual's value, until the gradient shrinks. It stops when the mean is
//! within 1e−13·max|v| of 0 and the variance within 1e−13·max|v|² of `V`.
//!
//! `V` is attainable on `S_i` exactly when it lies between the smallest and
//! the largest variance of an unbiased distribution on `S_i`:
//!
//! * the smallest is `a·b` with `−a` the negative deviation nearest 0 and `b`
//!   the positive one nearest 0 (0 when `j = i` is in `S_i`);
//! * the largest is `a·b` with `−a` the most negative deviation and `b` the
//!   most positive one.
//!
//! Where `V` is not attainable the row takes the attainable variance closest
//! to `V`, which is one of these bounds; the only unbiased distribution with
//! that variance puts `b/(a+b)` on `i − a` and `a/(a+b)` on `i + b`. This
//! happens only in cut rows (`i < n_max`):
//!
//! * row 0: every `j ≥ 0 = i`, so unbiasedness forces `j = 0`: a zero is
//!   always published as 0 (as in `ptable`, whose row 0 is fixed to 1).
//!   This is not a setting: perturbing zeros would bias them upwards, and
//!   the key of an empty cell (the empty sum, 0) is known to everybody.
//! * rows `1..=js`: `j = i` is excluded, the only smaller value is 0
//!   (`a = i`) and the larger ones are `js + 1 ..= i + D`, so the variance
//!   lies in `[i·(js + 1 − i), i·D]`. No single `V` fits all these ranges
//!   when `js` is large (with `js = 4`, `D = 5` they are [4, 5], [6, 10],
//!   [6, 15], [4, 20]).
//! * rows `js + 1 ..= n_max − 1`: `j = i` is allowed, so the smallest
//!   variance is 0, and the largest is `(i − m)·D` with `m` the smallest
//!   value of `S_i` (0, or `js + 1` once `i − D > 0`); a large `V` exceeds
//!   it (with the defaults' `D = 5`, `js = 4`: 25 for row 5, then 5, 10, 15
//!   and 20 for rows 6–9, so any `V` above 5 is not reached in row 6).
//!
//! [`PtableRow::variance_attained`] says which rows reach `V`.
//!
//! A `V` within 1e−10·V of a bound is taken as that bound (the exponential
//! form would need unbounded multipliers there).
//!
//! `V` is validated below `D²`, the largest variance of the full rows, so
//! every uncut row reaches it; it may exceed the uniform distribution's
//! variance `D(D+1)/3`, where the rows become U-shaped. Rows cut from below
//! by the small-count rule but not reaching 0 (rows 6–9 of the defaults)
//! have few values below `i`, so an unbiased variance `V` needs weight far
//! above `i` and the upper tail rises again: row 6 of the defaults publishes
//! 5 with probability 0.62, 6 with 0.16, 9 with 0.028 and 11 with 0.056.
//! That is what maximum entropy gives under these constraints; `ptable`
//! would instead cap the variance at `V` and (with `mono = TRUE`) require
//! p(i − 1) ≤ p(i), see below.
//!
//! No published value is ever further than `D` from the true count: the
//! small-count rule only removes values from `[i − D, i + D]`, and it never
//! leaves a row without a value below and one above `i` because `js ≤ D`
//! is required (a blocked count `i ≤ js` can then go down to 0 and up to
//! `js + 1 ≤ i + D`).
//!
//! # Lookup
//!
//! Within a row the values `j` are in increasing order and each gets the
//! interval `[lb, ub)` of the cumulative probabilities before and after it,
//! so the intervals tile `[0, 1)`. The bounds are kept as multiples of 2⁻³²
//! (each cumulative probability rounded to the nearest), so the lookup of a
//! `u32` cell key is an exact integer comparison, the same on every machine:
//! the cell key `k` selects the first `j` with `k < ub·2³²`, by binary search.
//! Values whose probability rounds below 2⁻³² get an empty interval and are
//! never published.
//!
//! # Where this departs from `ptable`
//!
//! * `ptable` asks for variance **at most** `V` (`optim = 1`) and solves the
//!   entropy problem numerically with lower bounds of 1e−8 on each
//!   probability and, with `mono = TRUE`, probabilities non-decreasing up to
//!   `j = i`; this module asks for variance **equal** to `V` where
//!   attainable, solves the exponential form exactly, and imposes neither
//!   the lower bound nor monotonicity. Where `ptable` cannot meet its
//!   constraints it stops with an error; this module takes the closest
//!   attainable variance instead (rows `1..=js` above).
//! * `ptable`'s `pstay` (a preset probability of no change), its
//!   `modify_cnt_ptable` (split and shuffled intervals) and its tables for
//!   magnitudes are not implemented.
//! * `ptable` rounds interval bounds to 8 decimals; here they are multiples
//!   of 2⁻³², the resolution of the cell keys.

use std::fmt;
use std::io;

/// 2³²: cell keys are `u32` fractions of it.
const KEY_SPACE: u64 = 1 << 32;

/// The largest `D` accepted: rows have up to 2D + 1 values and the table
/// is published for people to read, and the maximum noise of a sensible
/// table for counts is a few units.
pub const MAX_MAX_NOISE: u32 = 50;

/// What is asked of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PtableParams {
    /// `D`: the largest change of a count, 1 to [`MAX_MAX_NOISE`].
    pub max_noise: u32,
    /// `V`: the noise variance, greater than 0 and less than `D²`.
    pub variance: f64,
    /// `js`: the counts `1..=js` are never published, 0 to `D` (beyond, a
    /// blocked count would have no value below it within `D`, so no
    /// unbiased row); for a disclosure threshold `t`, `js = t − 1`.
    pub small_count: u32,
}

impl Default for PtableParams {
    /// `D = 5`, `V = 3`, `js = 4`, for a lab whose disclosure threshold is
    /// 5: counts 1–4 are never published, the noise has a standard deviation
    /// of about 1.7 on counts from 5 up (row 5 onwards reaches `V = 3`), and
    /// no count moves by more than 5, so a GP can still read a count of 20 as
    /// 15–25. Rows 1–4 cannot have variance 3 with 1–4 excluded; they get
    /// the closest they can, 4, 6, 6 and 4 (see the module doc).
    fn default() -> Self {
        PtableParams { max_noise: 5, variance: 3.0, small_count: 4 }
    }
}

/// A parameter out of its range, or a row that could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PtableError {
    /// The parameter (by its field name), its value and what is allowed.
    #[error("perturbation table: {name} = {value} is out of range (allowed: {allowed})")]
    OutOfRange { name: &'static str, value: String, allowed: String },
    /// Row `row` could not be computed: the maximum-entropy iteration did
    /// not converge, or no unbiased row exists. Neither is expected for
    /// validated parameters (the sweep in the tests finds none); it is an
    /// error rather than a wrong table.
    #[error(
        "perturbation table: row {row} could not be computed (max_noise {max_noise}, variance {variance}, small_count {small_count})"
    )]
    Unsolved { row: u32, max_noise: u32, variance: f64, small_count: u32 },
}

impl PtableParams {
    /// Checks every parameter against its range, naming the first one out
    /// of it, so a configuration loader can say which key to fix.
    pub fn validate(&self) -> Result<(), PtableError> {
        if !(1..=MAX_MAX_NOISE).contains(&self.max_noise) {
            return Err(PtableError::OutOfRange {
                name: "max_noise",
                value: self.max_noise.to_string(),
                allowed: format!("1 to {MAX_MAX_NOISE}"),
            });
        }
        let d2 = f64::from(self.max_noise) * f64::from(self.max_noise);
        if !(self.variance.is_finite() && self.variance > 0.0 && self.variance < d2) {
            return Err(PtableError::OutOfRange {
                name: "variance",
                value: self.variance.to_string(),
                allowed: format!("greater than 0 and less than max_noise² = {d2}"),
            });
        }
        if self.small_count > self.max_noise {
            return Err(PtableError::OutOfRange {
                name: "small_count",
                value: self.small_count.to_string(),
                allowed: format!("0 to max_noise = {}", self.max_noise),
            });
        }
        Ok(())
    }

    /// The last stored row: from it on every row is the same distribution
    /// of noise (`ptable`'s `ncat`).
    pub fn n_max(&self) -> u32 {
        if self.small_count == 0 {
            self.max_noise
        } else {
            self.max_noise + self.small_count + 1
        }
    }
}

/// One published value of a row and the keys that select it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PtableEntry {
    /// The published count.
    pub j: u32,
    /// The noise `j − i`.
    pub v: i32,
    /// Its probability, as computed.
    pub p: f64,
    /// The cumulative probability before this value.
    pub p_int_lb: f64,
    /// The cumulative probability up to and including this value.
    pub p_int_ub: f64,
    /// The first cell key selecting it (`p_int_lb`·2³², rounded).
    pub key_lb: u64,
    /// One past the last cell key selecting it (`p_int_ub`·2³², rounded;
    /// 2³² for the last value of a row).
    pub key_ub: u64,
}

/// The distribution of published values for one true count.
#[derive(Debug, Clone, PartialEq)]
pub struct PtableRow {
    i: u32,
    entries: Vec<PtableEntry>,
    variance: f64,
    attained: bool,
}

impl PtableRow {
    /// The true count `i` of this row.
    pub fn count(&self) -> u32 {
        self.i
    }

    /// The values with a positive probability, by increasing `j`.
    pub fn entries(&self) -> &[PtableEntry] {
        &self.entries
    }

    /// The variance the row has (Σ p·v²).
    pub fn variance(&self) -> f64 {
        self.variance
    }

    /// Whether `V` is attainable on this row's support, so the row has it;
    /// otherwise the row has the attainable variance closest to `V`.
    pub fn variance_attained(&self) -> bool {
        self.attained
    }

    fn lookup(&self, cell_key: u32) -> i64 {
        let k = u64::from(cell_key);
        let at = self.entries.partition_point(|e| e.key_ub <= k);
        // The last bound is 2³² > every key, so `at` is always in range.
        self.entries.get(at).or(self.entries.last()).map_or(0, |e| i64::from(e.v))
    }
}

/// The perturbation table: rows `0..=n_max` and their lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct Ptable {
    params: PtableParams,
    rows: Vec<PtableRow>,
}

impl Ptable {
    /// Validates `params` and computes every row.
    pub fn new(params: &PtableParams) -> Result<Ptable, PtableError> {
        params.validate()?;
        let rows = (0..=params.n_max()).map(|i| build_row(params, i)).collect::<Result<Vec<_>, _>>()?;
        Ok(Ptable { params: *params, rows })
    }

    pub fn params(&self) -> &PtableParams {
        &self.params
    }

    /// Rows `0..=n_max`; counts beyond `n_max` use the last one shifted.
    pub fn rows(&self) -> &[PtableRow] {
        &self.rows
    }

    /// The last stored row (see [`PtableParams::n_max`]).
    pub fn n_max(&self) -> u32 {
        self.params.n_max()
    }

    /// The noise for a cell of `count` records whose key is `cell_key`
    /// (the wrapping sum of its records' `u32` keys, a fraction of 2³²).
    /// Depends on nothing else, so the same cell always gets the same noise.
    pub fn noise(&self, count: u64, cell_key: u32) -> i64 {
        let row = usize::try_from(count.min(u64::from(self.n_max()))).unwrap_or(usize::MAX);
        self.rows.get(row).or(self.rows.last()).map_or(0, |r| r.lookup(cell_key))
    }

    /// The count to publish: `count` plus its [`Ptable::noise`], saturating
    /// at `u64::MAX` (a count that large is not a lab count, but no input
    /// may panic).
    pub fn publish(&self, count: u64, cell_key: u32) -> u64 {
        count.saturating_add_signed(self.noise(count, cell_key))
    }

    /// The table as text for an administrator to publish: the parameters,
    /// each row's variance, and one line per value.
    pub fn describe(&self) -> String {
        self.to_string()
    }

    /// The table as CSV, one line per value, with `ptable`'s column names
    /// (`i,j,p,v,p_int_lb,p_int_ub`) and the integer key bounds the lookup
    /// uses; the last row stands for every larger count. Numbers are
    /// written so that they read back exactly.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("i,j,p,v,p_int_lb,p_int_ub,key_lb,key_ub\n");
        for row in &self.rows {
            for e in &row.entries {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{},{}\n",
                    row.i, e.j, e.p, e.v, e.p_int_lb, e.p_int_ub, e.key_lb, e.key_ub
                ));
            }
        }
        out
    }

    /// Writes [`Ptable::to_csv`] to `out`.
    pub fn write_csv<W: io::Write>(&self, mut out: W) -> io::Result<()> {
        out.write_all(self.to_csv().as_bytes())
    }
}

impl fmt::Display for Ptable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        writeln!(f, "Perturbation table (cell key method)")?;
        writeln!(
            f,
            "max_noise D = {}, variance V = {}, small_count js = {} (counts 1 to {} are never published)",
            p.max_noise, p.variance, p.small_count, p.small_count
        )?;
        writeln!(
            f,
            "A count i is published as j with probability p; the cell key k (a fraction of 2^32) selects j when \
             key_lb <= k < key_ub. Counts above {n} use row {n}: j = i + v.",
            n = self.n_max()
        )?;
        for row in &self.rows {
            let how = if row.attained { "V" } else { "closest to V" };
            writeln!(f)?;
            let i = if row.i == self.n_max() { format!("i >= {}", row.i) } else { format!("i = {}", row.i) };
            writeln!(f, "{i}: variance {:.6} ({how})", row.variance)?;
            writeln!(
                f,
                "{:>6} {:>4} {:>14} {:>14} {:>14} {:>11} {:>11}",
                "j", "v", "p", "p_int_lb", "p_int_ub", "key_lb", "key_ub"
            )?;
            for e in &row.entries {
                writeln!(
                    f,
                    "{:>6} {:>4} {:>14.10} {:>14.10} {:>14.10} {:>11} {:>11}",
                    e.j, e.v, e.p, e.p_int_lb, e.p_int_ub, e.key_lb, e.key_ub
                )?;
            }
        }
        Ok(())
    }
}

/// Row `i`: its support, its distribution and its key intervals.
fn build_row(params: &PtableParams, i: u32) -> Result<PtableRow, PtableError> {
    let d = params.max_noise;
    let js = params.small_count;
    let support: Vec<u32> = (i.saturating_sub(d)..=i + d).filter(|j| *j == 0 || *j > js).collect();
    let v: Vec<f64> = support.iter().map(|&j| f64::from(j) - f64::from(i)).collect();
    let target = params.variance;
    let unsolved = || PtableError::Unsolved { row: i, max_noise: d, variance: target, small_count: js };

    let (p, attained) = match bounds(&v) {
        // Only j = i can be unbiased (row 0).
        Bounds::Point => (v.iter().map(|x| if *x == 0.0 { 1.0 } else { 0.0 }).collect(), false),
        Bounds::Range { min, max } => {
            // Within a hair of a bound the exponential form needs huge
            // multipliers; the two-point distribution there is exact, and
            // its variance within 1e-10·V of the one asked.
            let slack = 1e-10 * target.max(1.0);
            if target <= min.var + slack {
                (two_point(&v, min), target >= min.var - slack)
            } else if target >= max.var - slack {
                (two_point(&v, max), target <= max.var + slack)
            } else {
                (max_entropy(&v, target).ok_or_else(unsolved)?, true)
            }
        }
        Bounds::Infeasible => return Err(unsolved()),
    };

    let variance = p.iter().zip(&v).map(|(p, v)| p * v * v).sum();
    let mut entries = Vec::with_capacity(support.len());
    let mut cumulative = 0.0;
    let mut key_lb = 0u64;
    let last = support.iter().zip(&p).rposition(|(_, p)| *p > 0.0).unwrap_or(0);
    for (k, (&j, &p)) in support.iter().zip(&p).enumerate() {
        if p <= 0.0 {
            continue;
        }
        let p_int_lb = cumulative;
        cumulative = if k == last { 1.0 } else { (cumulative + p).min(1.0) };
        let key_ub = if k == last { KEY_SPACE } else { quantise(cumulative).max(key_lb) };
        entries.push(PtableEntry { j, v: j as i32 - i as i32, p, p_int_lb, p_int_ub: cumulative, key_lb, key_ub });
        key_lb = key_ub;
    }
    Ok(PtableRow { i, entries, variance, attained })
}

/// A cumulative probability as a key bound: the nearest multiple of 2⁻³².
fn quantise(x: f64) -> u64 {
    // In [0, 2³²] after the clamp, so the cast is exact.
    (x.clamp(0.0, 1.0) * KEY_SPACE as f64).round() as u64
}

/// An unbiased two-point distribution: deviations `-a` and `b`.
#[derive(Debug, Clone, Copy)]
struct Pair {
    a: f64,
    b: f64,
    var: f64,
}

enum Bounds {
    /// Only the point mass at v = 0 is unbiased.
    Point,
    /// The smallest and largest variance of an unbiased distribution.
    Range { min: Pair, max: Pair },
    /// No unbiased distribution (excluded by validation: js ≤ D).
    Infeasible,
}

fn bounds(v: &[f64]) -> Bounds {
    let nearest_neg = v.iter().copied().filter(|x| *x < 0.0).fold(f64::NEG_INFINITY, f64::max);
    let farthest_neg = v.iter().copied().filter(|x| *x < 0.0).fold(f64::INFINITY, f64::min);
    let nearest_pos = v.iter().copied().filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min);
    let farthest_pos = v.iter().copied().filter(|x| *x > 0.0).fold(f64::NEG_INFINITY, f64::max);
    let has_zero = v.contains(&0.0);
    if !nearest_neg.is_finite() || !nearest_pos.is_finite() {
        return if has_zero { Bounds::Point } else { Bounds::Infeasible };
    }
    let pair = |neg: f64, pos: f64| Pair { a: -neg, b: pos, var: -neg * pos };
    let mut min = pair(nearest_neg, nearest_pos);
    if has_zero {
        min.var = 0.0;
    }
    Bounds::Range { min, max: pair(farthest_neg, farthest_pos) }
}

/// The unbiased distribution on `-a` and `b` (with `a = 0`, or when the
/// row contains 0 and the smallest variance 0 is asked, the point mass at
/// 0; validation keeps V > 0 so that does not occur).
fn two_point(v: &[f64], pair: Pair) -> Vec<f64> {
    if pair.var == 0.0 {
        return v.iter().map(|x| if *x == 0.0 { 1.0 } else { 0.0 }).collect();
    }
    let (pa, pb) = (pair.b / (pair.a + pair.b), pair.a / (pair.a + pair.b));
    v.iter()
        .map(|x| {
            if *x == -pair.a {
                pa
            } else if *x == pair.b {
                pb
            } else {
                0.0
            }
        })
        .collect()
}

/// The distribution and its moments at multipliers (λ1, λ2).
struct Dual {
    /// ln Σ exp(λ1·v + λ2·(v² − V)): the dual objective.
    value: f64,
    p: Vec<f64>,
    /// Mean of v, and variance minus V: the gradient.
    g: [f64; 2],
    /// Covariance of (v, v²): the Hessian.
    h: [f64; 3],
}

fn dual(v: &[f64], target: f64, l: [f64; 2]) -> Dual {
    let s: Vec<f64> = v.iter().map(|x| l[0] * x + l[1] * (x * x - target)).collect();
    let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|s| (s - m).exp()).collect();
    let z: f64 = e.iter().sum();
    let p: Vec<f64> = e.iter().map(|e| e / z).collect();
    let mean: f64 = p.iter().zip(v).map(|(p, x)| p * x).sum();
    let second: f64 = p.iter().zip(v).map(|(p, x)| p * (x * x - target)).sum();
    let (mut h11, mut h12, mut h22) = (0.0, 0.0, 0.0);
    for (p, x) in p.iter().zip(v) {
        let (d1, d2) = (x - mean, x * x - target - second);
        h11 += p * d1 * d1;
        h12 += p * d1 * d2;
        h22 += p * d2 * d2;
    }
    Dual { value: m + z.ln(), p, g: [mean, second], h: [h11, h12, h22] }
}

/// The maximum-entropy distribution on `v` with mean 0 and variance
/// `target`, which must lie strictly between the row's bounds. `None` if
/// the damped Newton iteration does not get there.
fn max_entropy(v: &[f64], target: f64) -> Option<Vec<f64>> {
    // Tolerances relative to the size of v and v², the floor of the
    // rounding errors of the sums.
    let scale = v.iter().fold(1.0, |m: f64, x| m.max(x.abs()));
    let done = |g: [f64; 2], tol: f64| g[0].abs() <= tol * scale && g[1].abs() <= tol * scale * scale;
    let norm = |g: [f64; 2]| g[0].abs() / scale + g[1].abs() / (scale * scale);
    let mut l = [0.0, 0.0];
    let mut cur = dual(v, target, l);
    for _ in 0..500 {
        if done(cur.g, 1e-13) {
            break;
        }
        // Newton direction, with a ridge in case the Hessian is near singular.
        let ridge = 1e-15 * (cur.h[0] + cur.h[2]);
        let (h11, h12, h22) = (cur.h[0] + ridge, cur.h[1], cur.h[2] + ridge);
        let det = h11 * h22 - h12 * h12;
        if !(det.is_finite() && det > 0.0) {
            break;
        }
        let d = [-(h22 * cur.g[0] - h12 * cur.g[1]) / det, -(h11 * cur.g[1] - h12 * cur.g[0]) / det];
        let slope = d[0] * cur.g[0] + d[1] * cur.g[1];
        let mut t = 1.0;
        let mut next = None;
        while t > 1e-12 {
            let trial = [l[0] + t * d[0], l[1] + t * d[1]];
            let cand = dual(v, target, trial);
            // Armijo on the dual, or, once its decrease is below the
            // precision of its value near the optimum, a smaller gradient.
            let armijo = cand.value <= cur.value + 1e-4 * t * slope && cand.value < cur.value;
            let flat = cand.value <= cur.value + 1e-14 * (1.0 + cur.value.abs());
            if cand.value.is_finite() && (armijo || flat && norm(cand.g) < (1.0 - 1e-4 * t) * norm(cur.g)) {
                next = Some((trial, cand));
                break;
            }
            t *= 0.5;
        }
        match next {
            Some((trial, cand)) => {
                l = trial;
                cur = cand;
            }
            None => break,
        }
    }
    if done(cur.g, 1e-11) && cur.p.iter().all(|p| p.is_finite()) {
        Some(cur.p)
    } else {
        None
    }
}
