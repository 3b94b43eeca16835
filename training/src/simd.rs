//! The dense kernels of the ALS solver (dot, axpy, symmetric matvec) in two builds, chosen once per
//! process at run time:
//!
//! - [`Portable`]: the baseline x86-64 (SSE2) kernels of [`crate::linalg`], auto-vectorised;
//! - [`Wide`]: the same operations written against `pulp`'s safe SIMD types, compiled for x86-64-v3 (AVX2 +
//!   FMA) and entered through [`pulp::Arch::dispatch`], which checks the CPU once and needs no `unsafe` here.
//!
//! Callers write their loop once, generic over [`Kern`], and run it through `Isa::dispatch`: on a CPU with
//! AVX2 + FMA the whole loop body is compiled inside the v3 function, so every kernel inlines as 256-bit
//! fused multiply-adds. Everything on that path must inline: plain `for` loops and `#[inline(always)]`
//! helpers, no iterator folds (`sum`, `extend(map)`, `for_each`), which LLVM may leave out of line and
//! then compile without AVX2 (each intrinsic becoming a call; `perf` shows `_mm256_fmadd_ps` as a symbol). Results are deterministic for a given CPU (the two builds round differently: FMA
//! rounds once per multiply-add).

use pulp::{Arch, Simd, WithSimd};

use crate::linalg::{self, Factors};

/// `out[i] = x · rowᵢ(f)` for every row of `f` (`out` is cleared first), with the widest kernels this CPU
/// has: the full scan behind a recommendation.
pub fn score_rows(x: &[f32], f: &Factors, out: &mut Vec<f32>) {
    Isa::detect().dispatch(ScoreRows { x, f, out })
}

struct ScoreRows<'a> {
    x: &'a [f32],
    f: &'a Factors,
    out: &'a mut Vec<f32>,
}

impl KernelJob for ScoreRows<'_> {
    type Output = ();
    #[inline(always)]
    fn run<K: Kern>(self, kern: K) {
        let k = self.f.k;
        self.out.clear();
        self.out.resize(self.f.rows, 0.0);
        if k == 0 {
            return;
        }
        // A plain loop, not `extend(map(…))`: iterator folds are not always inlined, and a kernel that is
        // not inlined into the dispatched function loses its AVX2 code (every intrinsic becomes a call).
        for (o, r) in self.out.iter_mut().zip(self.f.data.chunks_exact(k)) {
            *o = kern.dot(self.x, r);
        }
    }
}

/// `out[j] = x · row_{rows[j]}(f)` for the given rows, with the same kernels (and so the same rounding) as
/// [`score_rows`]: the exact re-scoring of an approximate pass's candidates.
pub fn score_some(x: &[f32], f: &Factors, rows: &[u32], out: &mut Vec<f32>) {
    Isa::detect().dispatch(ScoreSome { x, f, rows, out })
}

struct ScoreSome<'a> {
    x: &'a [f32],
    f: &'a Factors,
    rows: &'a [u32],
    out: &'a mut Vec<f32>,
}

impl KernelJob for ScoreSome<'_> {
    type Output = ();
    #[inline(always)]
    fn run<K: Kern>(self, kern: K) {
        self.out.clear();
        for r in self.rows {
            self.out.push(kern.dot(self.x, self.f.row(*r as usize)));
        }
    }
}

/// The kernels a solver needs.
pub(crate) trait Kern: Copy {
    /// `a · b`.
    fn dot(self, a: &[f32], b: &[f32]) -> f32;
    /// `y += a · x`.
    fn axpy(self, a: f32, x: &[f32], y: &mut [f32]);
    /// `out = scale · M v` for a symmetric row-major `k × k` matrix `M`.
    fn matvec(self, m: &[f32], v: &[f32], scale: f32, out: &mut [f32]);
    /// The scores of one block of [`BLOCK_ROWS`] rows stored as bfloat16 pairs (see [`crate::approx`]):
    /// `out[r] = Σₚ hi(w[p][r])·x[2p] + lo(w[p][r])·x[2p+1]`, `x` of even length, `w` of `x.len() / 2` groups of
    /// [`BLOCK_ROWS`] words.
    fn score_block(self, x: &[f32], w: &[u32], out: &mut [f32]);
}

/// The baseline kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Kern for Portable {
    #[inline(always)]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        linalg::dot(a, b)
    }
    #[inline(always)]
    fn axpy(self, a: f32, x: &[f32], y: &mut [f32]) {
        linalg::axpy(a, x, y)
    }
    #[inline(always)]
    fn matvec(self, m: &[f32], v: &[f32], scale: f32, out: &mut [f32]) {
        linalg::matvec(m, v, scale, out)
    }
    #[inline(always)]
    fn score_block(self, x: &[f32], w: &[u32], out: &mut [f32]) {
        score_block_scalar(x, w, out)
    }
}

/// The high half of a word of two bfloat16 values.
const HI: u32 = 0xFFFF_0000;

/// Rows per block of the bfloat16 layout (one AVX2 vector of scores).
pub(crate) const BLOCK_ROWS: usize = 8;

#[inline(always)]
fn score_block_scalar(x: &[f32], w: &[u32], out: &mut [f32]) {
    out.fill(0.0);
    for (p, group) in w.chunks_exact(BLOCK_ROWS).enumerate() {
        let (a, b) = (x[2 * p], x[2 * p + 1]);
        for (o, w) in out.iter_mut().zip(group) {
            *o += f32::from_bits(w & HI) * a + f32::from_bits(w << 16) * b;
        }
    }
}

/// The kernels on an instruction set `S` detected at run time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wide<S: Simd>(pub(crate) S);

impl<S: Simd> Kern for Wide<S> {
    #[inline(always)]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        let s = self.0;
        debug_assert_eq!(a.len(), b.len());
        let (ah, at) = S::as_simd_f32s(a);
        let (bh, bt) = S::as_simd_f32s(b);
        // Four independent accumulators hide the FMA latency.
        let zero = s.splat_f32s(0.0);
        let mut acc = [zero; 4];
        let mut ac = ah.chunks_exact(4);
        let mut bc = bh.chunks_exact(4);
        for (x, y) in (&mut ac).zip(&mut bc) {
            for l in 0..4 {
                acc[l] = s.mul_add_e_f32s(x[l], y[l], acc[l]);
            }
        }
        for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
            acc[0] = s.mul_add_e_f32s(*x, *y, acc[0]);
        }
        let v = s.add_f32s(s.add_f32s(acc[0], acc[1]), s.add_f32s(acc[2], acc[3]));
        let mut r = s.reduce_sum_f32s(v);
        for (x, y) in at.iter().zip(bt) {
            r += x * y;
        }
        r
    }

    #[inline(always)]
    fn axpy(self, a: f32, x: &[f32], y: &mut [f32]) {
        let s = self.0;
        debug_assert_eq!(x.len(), y.len());
        let (xh, xt) = S::as_simd_f32s(x);
        let (yh, yt) = S::as_mut_simd_f32s(y);
        let av = s.splat_f32s(a);
        for (yv, xv) in yh.iter_mut().zip(xh) {
            *yv = s.mul_add_e_f32s(av, *xv, *yv);
        }
        for (yv, xv) in yt.iter_mut().zip(xt) {
            *yv += a * xv;
        }
    }

    #[inline(always)]
    fn matvec(self, m: &[f32], v: &[f32], scale: f32, out: &mut [f32]) {
        let s = self.0;
        let k = v.len();
        debug_assert_eq!(m.len(), k * k);
        debug_assert_eq!(out.len(), k);
        let lanes = core::mem::size_of::<S::f32s>() / core::mem::size_of::<f32>();
        let (_, out_tail) = S::as_simd_f32s(out);
        let head = k - out_tail.len();
        // `out = Σⱼ (scale·vⱼ) · Mⱼ`, a block of four vectors of `out` at a time kept in registers while
        // every row streams past: one load and one FMA per vector of `M`, no stores in the inner loop.
        let block = 4 * lanes;
        let mut start = 0;
        while start < head {
            let width = block.min(head - start);
            let n = width / lanes;
            let zero = s.splat_f32s(0.0);
            let mut acc = [zero; 4];
            for (row, vj) in m.chunks_exact(k).zip(v) {
                let a = s.splat_f32s(scale * vj);
                let (rv, _) = S::as_simd_f32s(&row[start..start + width]);
                for l in 0..n {
                    acc[l] = s.mul_add_e_f32s(a, rv[l], acc[l]);
                }
            }
            let (ov, _) = S::as_mut_simd_f32s(&mut out[start..start + width]);
            ov.copy_from_slice(&acc[..n]);
            start += width;
        }
        for c in head..k {
            let mut sum = 0.0;
            for (row, vj) in m.chunks_exact(k).zip(v) {
                sum += scale * vj * row[c];
            }
            out[c] = sum;
        }
    }

    #[inline(always)]
    fn score_block(self, x: &[f32], w: &[u32], out: &mut [f32]) {
        let s = self.0;
        // One vector holds the scores of a block: 8 `f32` lanes (AVX2). Other widths take the scalar loop.
        if core::mem::size_of::<S::f32s>() != BLOCK_ROWS * 4 {
            return score_block_scalar(x, w, out);
        }
        let (groups, _) = S::as_simd_u32s(w);
        let mask = s.splat_u32s(HI);
        let shift = s.splat_u32s(16);
        let zero = s.splat_f32s(0.0);
        // Four accumulators (two pairs of dimensions per step) hide the FMA latency; no horizontal sums: each
        // lane is one row's score.
        let mut acc = [zero; 4];
        let mut pairs = groups.chunks_exact(2);
        let mut xs = x.chunks_exact(4);
        for (g, xv) in (&mut pairs).zip(&mut xs) {
            for h in 0..2 {
                let hi = s.transmute_f32s_u32s(s.and_u32s(g[h], mask));
                let lo = s.transmute_f32s_u32s(s.wrapping_dyn_shl_u32s(g[h], shift));
                acc[2 * h] = s.mul_add_e_f32s(hi, s.splat_f32s(xv[2 * h]), acc[2 * h]);
                acc[2 * h + 1] = s.mul_add_e_f32s(lo, s.splat_f32s(xv[2 * h + 1]), acc[2 * h + 1]);
            }
        }
        for (g, xv) in pairs.remainder().iter().zip(xs.remainder().chunks_exact(2)) {
            let hi = s.transmute_f32s_u32s(s.and_u32s(*g, mask));
            let lo = s.transmute_f32s_u32s(s.wrapping_dyn_shl_u32s(*g, shift));
            acc[0] = s.mul_add_e_f32s(hi, s.splat_f32s(xv[0]), acc[0]);
            acc[1] = s.mul_add_e_f32s(lo, s.splat_f32s(xv[1]), acc[1]);
        }
        let sum = s.add_f32s(s.add_f32s(acc[0], acc[1]), s.add_f32s(acc[2], acc[3]));
        let (o, _) = S::as_mut_simd_f32s(out);
        o[0] = sum;
    }
}

/// A loop body that runs with whichever kernels the CPU allows.
pub(crate) trait KernelJob {
    type Output;
    fn run<K: Kern>(self, kern: K) -> Self::Output;
}

/// Adapts a [`KernelJob`] to `pulp`'s dispatch.
struct Dispatched<J>(J);

impl<J: KernelJob> WithSimd for Dispatched<J> {
    type Output = J::Output;
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> J::Output {
        self.0.run(Wide(simd))
    }
}

/// The instruction set found on this CPU (detected once; the check is a load and a branch afterwards).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Isa(Option<Arch>);

impl Isa {
    /// Wide kernels when the CPU has them, portable ones otherwise.
    pub(crate) fn detect() -> Isa {
        let arch = Arch::new();
        Isa((!matches!(arch, Arch::Scalar)).then_some(arch))
    }

    /// The portable kernels whatever the CPU (for comparisons and tests).
    #[cfg(test)]
    pub(crate) fn portable() -> Isa {
        Isa(None)
    }

    /// Whether the wide kernels are in use.
    pub(crate) fn is_wide(self) -> bool {
        self.0.is_some()
    }

    /// Runs `job` with the best kernels.
    #[inline]
    pub(crate) fn dispatch<J: KernelJob>(self, job: J) -> J::Output {
        match self.0 {
            Some(arch) => arch.dispatch(Dispatched(job)),
            None => job.run(Portable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Compare<'a> {
        m: &'a [f32],
        a: &'a [f32],
        b: &'a [f32],
    }

    impl KernelJob for Compare<'_> {
        type Output = (f32, Vec<f32>, Vec<f32>);
        fn run<K: Kern>(self, kern: K) -> Self::Output {
            let mut y = self.b.to_vec();
            kern.axpy(0.5, self.a, &mut y);
            let mut out = vec![9.0; self.a.len()];
            kern.matvec(self.m, self.a, -2.0, &mut out);
            (kern.dot(self.a, self.b), y, out)
        }
    }

    #[test]
    fn score_rows_matches_the_portable_dot() {
        let f = Factors::random(1000, 64, 5, 1.0, -0.5);
        let x: Vec<f32> = (0..64).map(|i| (i as f32).sin()).collect();
        let mut out = Vec::new();
        score_rows(&x, &f, &mut out);
        assert_eq!(out.len(), 1000);
        for (i, s) in out.iter().enumerate() {
            let want = linalg::dot(&x, f.row(i));
            assert!(
                (s - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "{i}: {s} vs {want}"
            );
        }
    }

    #[test]
    fn wide_and_portable_kernels_agree_for_every_length() {
        // Lengths around the vector width and the 4-vector blocks, including ones with a scalar tail.
        for k in [1usize, 3, 7, 8, 9, 16, 31, 32, 33, 40, 64, 65, 100] {
            let a: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut m = vec![0f32; k * k];
            for i in 0..k {
                for j in 0..k {
                    m[i * k + j] = ((i + j) as f32 * 0.05).sin();
                }
            }
            let job = || Compare {
                m: &m,
                a: &a,
                b: &b,
            };
            let (d0, y0, o0) = Isa::portable().dispatch(job());
            let (d1, y1, o1) = Isa::detect().dispatch(job());
            let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * (1.0 + x.abs());
            assert!(close(d0, d1), "dot, k={k}: {d0} vs {d1}");
            for (x, y) in y0.iter().zip(&y1).chain(o0.iter().zip(&o1)) {
                assert!(close(*x, *y), "k={k}: {x} vs {y}");
            }
            // The exact reference for the matvec.
            for (i, o) in o0.iter().enumerate() {
                let want: f32 = (0..k).map(|j| -2.0 * m[i * k + j] * a[j]).sum();
                assert!(close(*o, want), "k={k} row {i}: {o} vs {want}");
            }
        }
    }
}
