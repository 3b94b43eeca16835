//! Bayesian Personalized Ranking (Rendle et al. 2009) by stochastic gradient descent, multi-threaded in the
//! Hogwild style, the same model as `implicit` 0.7.3's CPU `BayesianPersonalizedRanking`.
//!
//! - Factors have one extra column: an item bias (starts at 0, learned) and a constant 1 in the user's row, so
//!   `score(u, i) = xᵤ · yᵢ` includes the bias.
//! - Initialisation: uniform in `[−0.5, 0.5) / factors`.
//! - An epoch draws `nnz` samples. A sample is a uniformly drawn stored entry `(u, i)` (the positive) and the
//!   item of a second uniformly drawn stored entry `j` (the negative, so negatives follow popularity). Weights
//!   are ignored. With `verify_negative` the sample is skipped when `u` has `j` too.
//! - Update, with `z = 1 / (1 + exp(xᵤ · (yᵢ − yⱼ)))`: `xᵤ += η(z(yᵢ − yⱼ) − λxᵤ)`, `yᵢ += η(z xᵤ − λyᵢ)`,
//!   `yⱼ += η(−z xᵤ − λyⱼ)` (the user's bias column stays 1).
//!
//! Threads share the factors without locks (Hogwild): each thread draws `nnz / threads` samples from its own
//! seeded SplitMix64 stream, and the factors are `AtomicU32` cells read and written with relaxed ordering (plain moves on
//! x86-64), so racing updates may overwrite each other, as in implicit. One thread is fully deterministic.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::als::{check_common, Progress};
use crate::linalg::{dot, Factors};
use crate::matrix::Csr;
use crate::{Error, Result};

/// BPR hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BprParams {
    pub factors: usize,
    pub learning_rate: f32,
    pub regularization: f32,
    pub iterations: usize,
    pub threads: usize,
    pub seed: u64,
    pub verify_negative: bool,
}

impl Default for BprParams {
    fn default() -> Self {
        BprParams {
            factors: 64,
            learning_rate: 0.05,
            regularization: 0.01,
            iterations: 100,
            threads: 2,
            seed: 1,
            verify_negative: true,
        }
    }
}

impl BprParams {
    /// Checks the values, naming the field at fault.
    pub fn validate(&self) -> Result<()> {
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::BadInput(format!(
                "learning_rate: {} must be a finite number > 0",
                self.learning_rate
            )));
        }
        check_common(
            self.factors,
            self.regularization,
            self.iterations,
            self.threads,
        )
    }
}

/// Shared factor cells.
struct Cells {
    k: usize,
    v: Vec<AtomicU32>,
}

impl Cells {
    fn new(f: &Factors) -> Cells {
        Cells {
            k: f.k,
            v: f.data.iter().map(|x| AtomicU32::new(x.to_bits())).collect(),
        }
    }

    #[inline]
    fn get(&self, row: usize, c: usize) -> f32 {
        f32::from_bits(self.v[row * self.k + c].load(Relaxed))
    }

    #[inline]
    fn set(&self, row: usize, c: usize, x: f32) {
        self.v[row * self.k + c].store(x.to_bits(), Relaxed);
    }

    fn snapshot(&self) -> Factors {
        Factors {
            rows: self.v.len() / self.k,
            k: self.k,
            data: self
                .v
                .iter()
                .map(|c| f32::from_bits(c.load(Relaxed)))
                .collect(),
        }
    }
}

/// Trains on the interaction matrix `cui` (users × items; only the pattern is used). Returns (user factors,
/// item factors), both with `factors + 1` columns.
pub fn fit(
    cui: &Csr,
    params: &BprParams,
    on_iteration: &mut dyn FnMut(&Progress<'_>),
) -> Result<(Factors, Factors)> {
    params.validate()?;
    if cui.nnz() == 0 {
        return Err(Error::BadInput(
            "training data: no interactions to learn from".into(),
        ));
    }
    let k = params.factors + 1;
    let scale = 1.0 / params.factors as f32;
    let mut users = Factors::random(cui.rows, k, params.seed, scale, -0.5 * scale);
    let mut items = Factors::random(
        cui.cols,
        k,
        params.seed ^ 0x9E37_79B9_7F4A_7C15,
        scale,
        -0.5 * scale,
    );
    for u in 0..users.rows {
        users.row_mut(u)[k - 1] = 1.0;
    }
    for i in 0..items.rows {
        items.row_mut(i)[k - 1] = 0.0;
    }
    let (uc, ic) = (Cells::new(&users), Cells::new(&items));
    let mut user_of = Vec::with_capacity(cui.nnz());
    for u in 0..cui.rows {
        user_of.extend(std::iter::repeat_n(
            u as u32,
            cui.indptr[u + 1] - cui.indptr[u],
        ));
    }
    for iteration in 1..=params.iterations {
        let started = Instant::now();
        let (correct, skipped) = (AtomicU64::new(0), AtomicU64::new(0));
        std::thread::scope(|scope| {
            for t in 0..params.threads {
                let samples =
                    cui.nnz() / params.threads + usize::from(t < cui.nnz() % params.threads);
                let seed = params
                    .seed
                    .wrapping_mul(0x100_0000_01B3)
                    .wrapping_add((iteration as u64) << 16 | t as u64);
                let (uc, ic, user_of, correct, skipped) = (&uc, &ic, &user_of, &correct, &skipped);
                scope.spawn(move || {
                    let (c, s) = epoch(cui, user_of, uc, ic, params, samples, seed);
                    correct.fetch_add(c, Relaxed);
                    skipped.fetch_add(s, Relaxed);
                });
            }
        });
        let seconds = started.elapsed().as_secs_f64();
        users = uc.snapshot();
        items = ic.snapshot();
        let drawn = cui.nnz() as f64;
        let used = drawn - skipped.load(Relaxed) as f64;
        on_iteration(&Progress {
            iteration,
            seconds,
            user_factors: &users,
            item_factors: &items,
            train_stat: Some(("correct", correct.load(Relaxed) as f64 / used.max(1.0))),
        });
    }
    Ok((users, items))
}

/// SplitMix64: a small, fast, seedable stream for sampling (each thread has its own).
struct SplitMix(u64);

impl SplitMix {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` by Lemire's multiply-shift (bias below 2⁻³² for any index range here).
    #[inline]
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// One thread's share of an epoch; returns (correctly ordered samples, skipped samples). Each sample copies
/// the three rows into local buffers, updates them with vectorisable loops, and stores them back.
fn epoch(
    cui: &Csr,
    user_of: &[u32],
    uc: &Cells,
    ic: &Cells,
    p: &BprParams,
    samples: usize,
    seed: u64,
) -> (u64, u64) {
    let mut rng = SplitMix(seed);
    let nnz = cui.nnz();
    let k = uc.k;
    let (lr, reg) = (p.learning_rate, p.regularization);
    let (mut correct, mut skipped) = (0u64, 0u64);
    let (mut xu, mut yi, mut yj) = (vec![0f32; k], vec![0f32; k], vec![0f32; k]);
    for _ in 0..samples {
        let liked_at = rng.below(nnz);
        let u = user_of[liked_at] as usize;
        let liked = cui.indices[liked_at] as usize;
        let disliked = cui.indices[rng.below(nnz)] as usize;
        if liked == disliked || (p.verify_negative && cui.contains(u, disliked as u32)) {
            skipped += 1;
            continue;
        }
        for c in 0..k {
            xu[c] = uc.get(u, c);
            yi[c] = ic.get(liked, c);
            yj[c] = ic.get(disliked, c);
        }
        let score = dot(&xu, &yi) - dot(&xu, &yj);
        let z = 1.0 / (1.0 + score.exp());
        if z < 0.5 {
            correct += 1;
        }
        for c in 0..k {
            let (x, a, b) = (xu[c], yi[c], yj[c]);
            xu[c] = x + lr * (z * (a - b) - reg * x);
            yi[c] = a + lr * (z * x - reg * a);
            yj[c] = b + lr * (-z * x - reg * b);
        }
        // The user's bias column stays 1.
        for (c, x) in xu[..k - 1].iter().enumerate() {
            uc.set(u, c, *x);
        }
        for (c, (a, b)) in yi.iter().zip(&yj).enumerate() {
            ic.set(liked, c, *a);
            ic.set(disliked, c, *b);
        }
    }
    (correct, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Users 0-19 like items 0-9, users 20-39 items 10-19; each misses those with (u + i) % 3 == 0.
    fn toy() -> Csr {
        crate::matrix::two_groups(40, 20, 3, 1.0)
    }

    fn params(threads: usize) -> BprParams {
        BprParams {
            factors: 8,
            learning_rate: 0.05,
            regularization: 0.01,
            iterations: 60,
            threads,
            seed: 5,
            verify_negative: true,
        }
    }

    #[test]
    fn learns_the_groups_and_keeps_the_user_bias_column_at_one() {
        let c = toy();
        let mut stats = Vec::new();
        let (u, i) = fit(&c, &params(2), &mut |p| stats.push(p.train_stat.unwrap().1)).unwrap();
        assert_eq!(u.k, 9);
        assert!((0..u.rows).all(|r| u.row(r)[8] == 1.0));
        assert!(stats.last().unwrap() > &0.8, "{stats:?}");
        // User 0 never saw item 0 ((0+0)%3==0): it ranks above every item of the other group.
        let s0 = dot(u.row(0), i.row(0));
        assert!((10..20).all(|j| s0 > dot(u.row(0), i.row(j))));
    }

    #[test]
    fn one_thread_is_deterministic() {
        let c = toy();
        let a = fit(&c, &params(1), &mut |_| {}).unwrap();
        let b = fit(&c, &params(1), &mut |_| {}).unwrap();
        assert_eq!(a, b);
    }
}
