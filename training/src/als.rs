//! Implicit-feedback ALS (Hu, Koren, Volinsky 2008) with the conjugate-gradient solver (Takács, Pilászy,
//! Tikk 2011) or an exact Cholesky solve, the same model as `implicit` 0.7.3's CPU `AlternatingLeastSquares`.
//!
//! The input is the confidence matrix `C` (users × items): an entry `c > 0` means preference 1 with
//! confidence `c`; an entry `c < 0` means preference 0 with confidence `|c|` (a returned item); a missing entry
//! means preference 0 with confidence 1. Each half-iteration solves, for every user `u` (then every item),
//!
//! `(YᵀY + λI + Σᵢ (|cᵤᵢ| − 1) yᵢyᵢᵀ) xᵤ = Σᵢ max(cᵤᵢ, 0) yᵢ`
//!
//! with λ not scaled by counts. CG runs `cg_steps` steps (default 3) warm-started from the previous factors,
//! never forming the `k × k` system; Cholesky forms it in `f64` and solves exactly. Rows are independent, so
//! results are bit-identical for a seed whatever the thread count.

use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::linalg::{cholesky_solve, dot, matvec, Factors};
use crate::matrix::Csr;
use crate::simd::{Isa, Kern, KernelJob};
use crate::{Error, Result};

/// How each least-squares problem is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// Conjugate gradient, `cg_steps` steps warm-started from the previous iteration (fast, the default).
    Cg,
    /// Exact solve by Cholesky decomposition of the `k × k` system (`O(k³)` per row).
    Cholesky,
}

/// ALS hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlsParams {
    pub factors: usize,
    pub regularization: f32,
    pub iterations: usize,
    pub solver: Solver,
    pub cg_steps: usize,
    pub threads: usize,
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 64,
            regularization: 0.05,
            iterations: 15,
            solver: Solver::Cg,
            cg_steps: 3,
            threads: 2,
            seed: 1,
        }
    }
}

impl AlsParams {
    /// Checks the values, naming the field at fault.
    pub fn validate(&self) -> Result<()> {
        if self.solver == Solver::Cg && self.cg_steps == 0 {
            return Err(Error::BadInput("cg_steps: must be at least 1".into()));
        }
        check_common(
            self.factors,
            self.regularization,
            self.iterations,
            self.threads,
        )
    }
}

/// The checks every factor model shares: factors, λ, iterations, threads (the error names the field).
pub(crate) fn check_common(
    factors: usize,
    regularization: f32,
    iterations: usize,
    threads: usize,
) -> Result<()> {
    if factors == 0 || factors > 1024 {
        return Err(Error::BadInput(format!(
            "factors: {factors} is out of range (1..=1024)"
        )));
    }
    if !(regularization >= 0.0 && regularization.is_finite()) {
        return Err(Error::BadInput(format!(
            "regularization: {regularization} must be a finite number ≥ 0"
        )));
    }
    if iterations == 0 {
        return Err(Error::BadInput("iterations: must be at least 1".into()));
    }
    check_threads(threads)
}

/// Rejects 0 or absurd thread counts.
pub(crate) fn check_threads(threads: usize) -> Result<()> {
    if threads == 0 || threads > 256 {
        return Err(Error::BadInput(format!(
            "threads: {threads} is out of range (1..=256)"
        )));
    }
    Ok(())
}

/// A rayon pool of exactly `threads` threads.
pub(crate) fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))
}

/// What a training loop reports after each iteration.
#[derive(Debug)]
pub struct Progress<'a> {
    /// 1-based.
    pub iteration: usize,
    /// Wall seconds of this iteration alone.
    pub seconds: f64,
    pub user_factors: &'a Factors,
    pub item_factors: &'a Factors,
    /// A statistic the trainer computes for free (BPR: the share of sampled pairs already ranked right).
    pub train_stat: Option<(&'static str, f64)>,
}

/// Trains on the confidence matrix `cui` (users × items); returns (user factors, item factors).
pub fn fit(
    cui: &Csr,
    params: &AlsParams,
    on_iteration: &mut dyn FnMut(&Progress<'_>),
) -> Result<(Factors, Factors)> {
    params.validate()?;
    let k = params.factors;
    // implicit's initialisation: uniform [0, 1) · 0.01.
    let mut users = Factors::random(cui.rows, k, params.seed, 0.01, 0.0);
    let mut items = Factors::random(cui.cols, k, params.seed ^ 0x9E37_79B9_7F4A_7C15, 0.01, 0.0);
    let ciu = cui.transpose();
    let pool = pool(params.threads)?;
    let kernels = if Isa::detect().is_wide() {
        "x86-64-v3 (AVX2 + FMA)"
    } else {
        "portable"
    };
    tracing::debug!(kernels, "ALS kernels");
    for iteration in 1..=params.iterations {
        let started = Instant::now();
        pool.install(|| {
            solve_rows(cui, &mut users, &items, params);
            solve_rows(&ciu, &mut items, &users, params);
        });
        on_iteration(&Progress {
            iteration,
            seconds: started.elapsed().as_secs_f64(),
            user_factors: &users,
            item_factors: &items,
            train_stat: None,
        });
    }
    Ok((users, items))
}

/// Rows solved per rayon task (and per entry into the SIMD-dispatched code): enough to amortise the
/// dispatch, few enough to balance rows of very different lengths over the threads.
const ROWS_PER_TASK: usize = 32;

/// One half-iteration: every row of `x` re-solved against the fixed `y` (in the current rayon pool), with
/// the widest kernels this CPU has ([`crate::simd`]).
pub fn solve_rows(c: &Csr, x: &mut Factors, y: &Factors, params: &AlsParams) {
    let k = x.k;
    let yty = y.gram(params.regularization);
    let isa = Isa::detect();
    x.data
        .par_chunks_mut(k * ROWS_PER_TASK)
        .enumerate()
        .for_each_init(
            || Scratch::new(k),
            |scratch, (b, block)| {
                isa.dispatch(RowBlock {
                    c,
                    y,
                    yty: &yty,
                    params,
                    first: b * ROWS_PER_TASK,
                    block,
                    scratch,
                })
            },
        );
}

/// Consecutive rows of `x` (`block`, starting at row `first`) to re-solve.
struct RowBlock<'a> {
    c: &'a Csr,
    y: &'a Factors,
    yty: &'a [f32],
    params: &'a AlsParams,
    first: usize,
    block: &'a mut [f32],
    scratch: &'a mut Scratch,
}

impl KernelJob for RowBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn run<K: Kern>(self, kern: K) {
        let k = self.y.k;
        for (j, xr) in self.block.chunks_exact_mut(k).enumerate() {
            let (cols, conf) = self.c.row(self.first + j);
            match self.params.solver {
                Solver::Cg => cg_row(
                    kern,
                    self.yty,
                    self.y,
                    cols,
                    conf,
                    xr,
                    self.params.cg_steps,
                    self.scratch,
                ),
                Solver::Cholesky => cholesky_row(self.yty, self.y, cols, conf, xr, self.scratch),
            }
        }
    }
}

/// Per-thread work vectors.
pub(crate) struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
    a: Vec<f64>,
    b: Vec<f64>,
}

impl Scratch {
    pub(crate) fn new(k: usize) -> Scratch {
        Scratch {
            r: vec![0.0; k],
            p: vec![0.0; k],
            ap: vec![0.0; k],
            a: vec![0.0; k * k],
            b: vec![0.0; k],
        }
    }
}

/// CG for one row, the same arithmetic as implicit's `_least_squares_cg`: residual from the warm start,
/// then up to `steps` steps, stopping early when the residual norm² falls under 1e-20.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn cg_row<K: Kern>(
    kern: K,
    yty: &[f32],
    y: &Factors,
    cols: &[u32],
    conf: &[f32],
    x: &mut [f32],
    steps: usize,
    s: &mut Scratch,
) {
    if cols.is_empty() {
        x.fill(0.0);
        return;
    }
    // r = YᵀCᵤpᵤ − (YᵀCᵤY + λI) x
    kern.matvec(yty, x, -1.0, &mut s.r);
    for (&i, &c) in cols.iter().zip(conf) {
        let yi = y.row(i as usize);
        let (pref, c) = if c > 0.0 { (c, c) } else { (0.0, -c) };
        let t = pref - (c - 1.0) * kern.dot(yi, x);
        kern.axpy(t, yi, &mut s.r);
    }
    s.p.copy_from_slice(&s.r);
    let mut rsold = kern.dot(&s.r, &s.r);
    if rsold < 1e-20 {
        return;
    }
    for _ in 0..steps {
        // Ap = (YᵀCᵤY + λI) p without forming YᵀCᵤY.
        kern.matvec(yty, &s.p, 1.0, &mut s.ap);
        for (&i, &c) in cols.iter().zip(conf) {
            let yi = y.row(i as usize);
            let t = (c.abs() - 1.0) * kern.dot(yi, &s.p);
            kern.axpy(t, yi, &mut s.ap);
        }
        let alpha = rsold / kern.dot(&s.p, &s.ap);
        kern.axpy(alpha, &s.p, x);
        kern.axpy(-alpha, &s.ap, &mut s.r);
        let rsnew = kern.dot(&s.r, &s.r);
        if rsnew < 1e-20 {
            break;
        }
        let beta = rsnew / rsold;
        for (p, r) in s.p.iter_mut().zip(&s.r) {
            *p = r + beta * *p;
        }
        rsold = rsnew;
    }
}

/// The exact solve for one row (in `f64`); a row whose system is not positive definite keeps its factors.
pub(crate) fn cholesky_row(
    yty: &[f32],
    y: &Factors,
    cols: &[u32],
    conf: &[f32],
    x: &mut [f32],
    s: &mut Scratch,
) {
    if cols.is_empty() {
        x.fill(0.0);
        return;
    }
    let k = x.len();
    for (a, v) in s.a.iter_mut().zip(yty) {
        *a = f64::from(*v);
    }
    s.b.fill(0.0);
    for (&i, &c) in cols.iter().zip(conf) {
        let yi = y.row(i as usize);
        let (pref, c) = if c > 0.0 { (c, c) } else { (0.0, -c) };
        let w = f64::from(c) - 1.0;
        for a in 0..k {
            let wa = w * f64::from(yi[a]);
            let row = &mut s.a[a * k..(a + 1) * k];
            for (cell, yb) in row.iter_mut().zip(yi) {
                *cell += wa * f64::from(*yb);
            }
            s.b[a] += f64::from(pref) * f64::from(yi[a]);
        }
    }
    if cholesky_solve(&mut s.a, &mut s.b) {
        for (xv, bv) in x.iter_mut().zip(&s.b) {
            *xv = *bv as f32;
        }
    }
}

/// implicit's training loss: `(Σ cᵤᵢ(pᵤᵢ − xᵤ·yᵢ)² over all pairs + λ(‖X‖² + ‖Y‖²)) / (Σ|c| + users·items − nnz)`.
pub fn loss(cui: &Csr, users: &Factors, items: &Factors, regularization: f32) -> f64 {
    let yty = items.gram(0.0);
    let k = users.k;
    let mut r = vec![0f32; k];
    let (mut loss, mut total_conf) = (0f64, 0f64);
    for u in 0..cui.rows {
        let xu = users.row(u);
        matvec(&yty, xu, 1.0, &mut r);
        loss += f64::from(dot(xu, &r));
        let (cols, conf) = cui.row(u);
        for (&i, &c) in cols.iter().zip(conf) {
            let s = f64::from(dot(items.row(i as usize), xu));
            let (pref, c) = if c > 0.0 {
                (1.0, f64::from(c))
            } else {
                (0.0, f64::from(-c))
            };
            loss += c * (s - pref) * (s - pref) - s * s;
            total_conf += c;
        }
    }
    loss += f64::from(regularization) * (users.norm2() + items.norm2());
    let denom = total_conf + (cui.rows * cui.cols) as f64 - cui.nnz() as f64;
    if denom > 0.0 {
        loss / denom
    } else {
        0.0
    }
}

/// Factors for a user the model never saw, from their interactions (`(item index, confidence)`), without
/// retraining: one exact least-squares solve against the fixed item factors (`yty` = `YᵀY + λI`).
pub fn fold_in(yty: &[f32], items: &Factors, interactions: &[(u32, f32)]) -> Vec<f32> {
    let mut merged: Vec<(u32, f32)> = interactions.to_vec();
    merged.sort_by_key(|(i, _)| *i);
    merged.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 += b.1;
            true
        } else {
            false
        }
    });
    let cols: Vec<u32> = merged.iter().map(|(i, _)| *i).collect();
    let conf: Vec<f32> = merged.iter().map(|(_, c)| *c).collect();
    let mut x = vec![0f32; items.k];
    let mut s = Scratch::new(items.k);
    cholesky_row(yty, items, &cols, &conf, &mut x, &mut s);
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two taste groups: users 0-9 like items 0-5, users 10-19 like items 6-11; each user misses the
    /// own-group items with (u + i) % 5 == 0.
    fn toy() -> Csr {
        crate::matrix::two_groups(20, 12, 5, 5.0)
    }

    /// Every user ranks each unseen item of their own group above every item of the other group.
    fn groups_recovered(u: &Factors, i: &Factors) -> bool {
        (0..20usize).all(|uu| {
            let own = |ii: usize| (uu < 10) == (ii < 6);
            let s = |ii: usize| dot(u.row(uu), i.row(ii));
            let worst_own = (0..12)
                .filter(|&ii| own(ii) && (uu + ii) % 5 == 0)
                .map(s)
                .fold(f32::MAX, f32::min);
            let best_other = (0..12)
                .filter(|&ii| !own(ii))
                .map(s)
                .fold(f32::MIN, f32::max);
            worst_own > best_other
        })
    }

    fn params(solver: Solver, threads: usize) -> AlsParams {
        AlsParams {
            factors: 2,
            regularization: 1.0,
            iterations: 10,
            solver,
            cg_steps: 3,
            threads,
            seed: 3,
        }
    }

    #[test]
    fn both_solvers_recover_the_two_groups_and_lower_the_loss() {
        let c = toy();
        for solver in [Solver::Cg, Solver::Cholesky] {
            let mut losses = Vec::new();
            let (u, i) = fit(&c, &params(solver, 2), &mut |p| {
                losses.push(loss(&c, p.user_factors, p.item_factors, 1.0));
            })
            .unwrap();
            assert!(losses.last() < losses.first(), "{solver:?}: {losses:?}");
            assert!(groups_recovered(&u, &i), "{solver:?}");
        }
    }

    #[test]
    fn cg_with_as_many_steps_as_factors_matches_the_exact_solve() {
        // With k = 2, three CG steps solve each 2 × 2 system exactly (up to rounding).
        let c = toy();
        let run = |solver| {
            let mut last = 0.0;
            fit(&c, &params(solver, 1), &mut |p| {
                last = loss(&c, p.user_factors, p.item_factors, 1.0)
            })
            .unwrap();
            last
        };
        let (cg, exact) = (run(Solver::Cg), run(Solver::Cholesky));
        assert!((cg - exact).abs() < 1e-6 * exact, "{cg} vs {exact}");
    }

    #[test]
    fn same_seed_gives_bit_identical_factors_whatever_the_thread_count() {
        let c = toy();
        let a = fit(&c, &params(Solver::Cg, 1), &mut |_| {}).unwrap();
        let b = fit(&c, &params(Solver::Cg, 2), &mut |_| {}).unwrap();
        assert_eq!(a, b);
        let mut other = params(Solver::Cg, 2);
        other.seed = 4;
        assert_ne!(fit(&c, &other, &mut |_| {}).unwrap(), a);
    }

    #[test]
    fn fold_in_puts_a_new_user_in_the_right_group() {
        let c = toy();
        let p = params(Solver::Cholesky, 1);
        let (_, items) = fit(&c, &p, &mut |_| {}).unwrap();
        let x = fold_in(&items.gram(p.regularization), &items, &[(7, 5.0), (8, 5.0)]);
        assert!(dot(&x, items.row(9)) > dot(&x, items.row(0)));
    }

    #[test]
    fn bad_params_name_the_field() {
        let mut p = AlsParams {
            factors: 0,
            ..AlsParams::default()
        };
        assert!(p.validate().unwrap_err().to_string().starts_with("factors"));
        p.factors = 8;
        p.threads = 0;
        assert!(p.validate().unwrap_err().to_string().starts_with("threads"));
    }
}
