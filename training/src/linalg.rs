//! Dense `f32` kernels for the factor models: row-major factor matrices, dot/axpy written so the compiler
//! vectorises them (8 independent accumulators), the Gram matrix, a dense Cholesky solve and top-k selection.

use ndarray::ArrayView2;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A row-major `rows × k` matrix of `f32` factors: row `r` is `data[r*k .. (r+1)*k]`, contiguous, so a scan
/// over rows streams through memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    pub rows: usize,
    pub k: usize,
    pub data: Vec<f32>,
}

impl Factors {
    /// All zeros.
    pub fn zeros(rows: usize, k: usize) -> Factors {
        Factors {
            rows,
            k,
            data: vec![0.0; rows * k],
        }
    }

    /// Uniform in `[0, 1) · scale + shift`, from a ChaCha8 stream seeded with `seed` (row by row, so the same
    /// seed gives the same matrix on every machine).
    pub fn random(rows: usize, k: usize, seed: u64, scale: f32, shift: f32) -> Factors {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let data = (0..rows * k)
            .map(|_| rng.random::<f32>() * scale + shift)
            .collect();
        Factors { rows, k, data }
    }

    /// Row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.k..(r + 1) * self.k]
    }

    /// Row `r`, mutable.
    #[inline]
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        &mut self.data[r * self.k..(r + 1) * self.k]
    }

    /// The `k × k` Gram matrix `FᵀF` (row-major), plus `reg` on the diagonal.
    pub fn gram(&self, reg: f32) -> Vec<f32> {
        let view = ArrayView2::from_shape((self.rows, self.k), &self.data)
            .expect("factor data has rows × k elements");
        let mut g = view.t().dot(&view);
        for d in 0..self.k {
            g[[d, d]] += reg;
        }
        g.iter().copied().collect()
    }

    /// Sum of squared entries.
    pub fn norm2(&self) -> f64 {
        self.data
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum()
    }
}

/// `a · b`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

/// `y += a · x`.
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// `out = scale · M v` for a symmetric row-major `M` (`k × k`), accumulated as `Σⱼ (scale·vⱼ) · Mⱼ` (one axpy per
/// row: only vertical operations, no horizontal sums, so it vectorises fully).
#[inline]
pub fn matvec(m: &[f32], v: &[f32], scale: f32, out: &mut [f32]) {
    let k = v.len();
    out.fill(0.0);
    for (row, vj) in m.chunks_exact(k).zip(v) {
        axpy(scale * vj, row, out);
    }
}

/// Solves `A x = b` for a symmetric positive-definite `A` (row-major `k × k`, `f64`) by Cholesky
/// decomposition, in place: `a` is overwritten by its factor, `b` by the solution. `false` if `A` is not
/// positive definite (then `b` is left unspecified).
pub fn cholesky_solve(a: &mut [f64], b: &mut [f64]) -> bool {
    let k = b.len();
    for j in 0..k {
        let mut d = a[j * k + j];
        for p in 0..j {
            d -= a[j * k + p] * a[j * k + p];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = s / d;
        }
    }
    // L y = b, then Lᵀ x = y.
    for i in 0..k {
        let mut s = b[i];
        for p in 0..i {
            s -= a[i * k + p] * b[p];
        }
        b[i] = s / a[i * k + i];
    }
    for i in (0..k).rev() {
        let mut s = b[i];
        for p in i + 1..k {
            s -= a[p * k + i] * b[p];
        }
        b[i] = s / a[i * k + i];
    }
    true
}

/// The indices of the `k` largest scores, best first, skipping those `skip` rejects; ties go to the lower
/// index, so the result does not depend on how the scores were computed in parallel. Partial selection
/// (`select_nth_unstable`) then a sort of the `k` winners: O(n + k log k).
pub fn top_k(scores: &[f32], k: usize, skip: impl Fn(usize) -> bool) -> Vec<(u32, f32)> {
    let mut cand: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter(|(i, s)| !skip(*i) && !s.is_nan())
        .map(|(i, s)| (i as u32, *s))
        .collect();
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if cand.len() > k && k > 0 {
        cand.select_nth_unstable_by(k - 1, order);
        cand.truncate(k);
    }
    cand.sort_unstable_by(order);
    cand.truncate(k);
    cand
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_and_axpy_match_the_naive_loops() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..37).map(|i| (i % 7) as f32 - 2.0).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
        let mut y = b.clone();
        axpy(2.0, &a, &mut y);
        assert_eq!(y[5], b[5] + 2.0 * a[5]);
    }

    #[test]
    fn cholesky_solves_a_spd_system_and_rejects_an_indefinite_one() {
        // A = [[4,2],[2,3]], b = [2, 1] → x = [0.5, 0].
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![2.0, 1.0];
        assert!(cholesky_solve(&mut a, &mut b));
        assert!((b[0] - 0.5).abs() < 1e-12 && b[1].abs() < 1e-12, "{b:?}");
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky_solve(&mut a, &mut [1.0, 1.0]));
    }

    #[test]
    fn top_k_is_ordered_with_ties_to_the_lower_index_and_skips() {
        let s = [0.5, 0.9, 0.9, 0.1, 0.7];
        assert_eq!(top_k(&s, 3, |_| false), vec![(1, 0.9), (2, 0.9), (4, 0.7)]);
        assert_eq!(top_k(&s, 2, |i| i == 1), vec![(2, 0.9), (4, 0.7)]);
        assert_eq!(top_k(&s, 10, |_| false).len(), 5);
        assert!(top_k(&s, 0, |_| false).is_empty());
    }

    #[test]
    fn gram_is_ftf_plus_reg() {
        let f = Factors {
            rows: 2,
            k: 2,
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        assert_eq!(f.gram(0.5), vec![10.5, 14.0, 14.0, 20.5]);
    }
}
