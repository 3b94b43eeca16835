//! Item factors at half size for the first pass of an exact top-k scan.
//!
//! Each value is rounded to bfloat16 (the top 16 bits of an `f32`: same range, 8 bits of mantissa) and two
//! values share a 32-bit word, so a scan of the whole catalogue streams half the bytes of the `f32` factors;
//! decoding is a mask and a shift, then fused multiply-adds. Every approximate score is within
//! [`Bf16Factors::error_bound`] of the exact `f32` score (Cauchy–Schwarz over the rounding error of the row,
//! plus the floating-point error of both sums), which is what lets a caller take the best candidates by the
//! approximate score, re-score only those exactly, and prove that no item left out could have ranked among them.
//!
//! Layout: rows in blocks of 8 (the last block padded with zero rows), each block dimension-pair-major: word
//! `8p + r` of a block holds values `2p` (high half) and `2p + 1` (low half) of the block's row `r` (`k` padded
//! to even). A block's 8 scores are then one vector of 8 lanes, each lane one row: the scan needs no horizontal
//! sum per row (which cost more than the multiply-adds in a row-major scan of 64 values).

use crate::linalg::{self, Factors};
use crate::simd::{Isa, Kern, KernelJob, BLOCK_ROWS};

/// bfloat16 item factors with the bound of their rounding error.
#[derive(Debug, Clone)]
pub struct Bf16Factors {
    rows: usize,
    k: usize,
    /// Value pairs per row (`k` rounded up to even, halved).
    pairs: usize,
    data: Vec<u32>,
    /// Largest `‖yᵢ − ŷᵢ‖` over the rows (`ŷ` the rounded row).
    max_error: f32,
    /// Largest `‖yᵢ‖` over the rows.
    max_norm: f32,
}

/// A query for [`Bf16Factors::score_rows`]: the vector padded to even length, and its norm.
#[derive(Debug, Clone)]
pub struct Query {
    x: Vec<f32>,
    norm: f32,
}

/// Rounds to the nearest bfloat16 (ties to even), as the high 16 bits of a word.
fn round_bf16(v: f32) -> u32 {
    let bits = v.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1));
    rounded & 0xFFFF_0000
}

impl Bf16Factors {
    /// The rounded factors; `None` when a value is not finite (no error bound holds then) or rounds to an
    /// infinity.
    pub fn new(f: &Factors) -> Option<Bf16Factors> {
        let pairs = f.k.div_ceil(2);
        let block_words = pairs * BLOCK_ROWS;
        let mut data = vec![0u32; f.rows.div_ceil(BLOCK_ROWS) * block_words];
        let (mut max_error, mut max_norm) = (0f64, 0f64);
        for r in 0..f.rows {
            let block = &mut data[(r / BLOCK_ROWS) * block_words..][..block_words];
            let lane = r % BLOCK_ROWS;
            let (mut err, mut norm) = (0f64, 0f64);
            for (j, v) in f.row(r).iter().enumerate() {
                if !v.is_finite() {
                    return None;
                }
                let h = round_bf16(*v);
                let back = f32::from_bits(h);
                if !back.is_finite() {
                    return None;
                }
                err += (f64::from(*v) - f64::from(back)).powi(2);
                norm += f64::from(*v).powi(2);
                block[(j / 2) * BLOCK_ROWS + lane] |= if j % 2 == 0 { h } else { h >> 16 };
            }
            max_error = max_error.max(err.sqrt());
            max_norm = max_norm.max(norm.sqrt());
        }
        Some(Bf16Factors {
            rows: f.rows,
            k: f.k,
            pairs,
            data,
            // Rounded up so that the bound stays a bound after the conversion to `f32`.
            max_error: (max_error * (1.0 + 1e-6)) as f32,
            max_norm: (max_norm * (1.0 + 1e-6)) as f32,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }

    /// `x` ready for a scan (`None` when `x` has the wrong length or a value that is not finite).
    pub fn query(&self, x: &[f32]) -> Option<Query> {
        if x.len() != self.k || x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut padded = x.to_vec();
        padded.resize(2 * self.pairs, 0.0);
        Some(Query {
            x: padded,
            norm: linalg::dot(x, x).sqrt(),
        })
    }

    /// How far an approximate score of `q` can be from the `f32` score [`crate::simd::score_rows`] computes:
    /// `‖x‖·max‖yᵢ − ŷᵢ‖` for the rounding, plus a floating-point allowance of `2(k + 16)·ε·‖x‖·max‖yᵢ‖` for
    /// the two sums (each off by at most `k·ε` of `Σ|xⱼyⱼ| ≤ ‖x‖‖y‖`, with margin).
    pub fn error_bound(&self, q: &Query) -> f32 {
        let fp = 2.0 * (self.k + 16) as f32 * f32::EPSILON;
        q.norm * self.max_error + fp * q.norm * (self.max_norm + self.max_error)
    }

    /// `out[i]` = the approximate score of row `i` (`out` is cleared first).
    pub fn score_rows(&self, q: &Query, out: &mut Vec<f32>) {
        Isa::detect().dispatch(ScoreBlocks { f: self, q, out })
    }
}

struct ScoreBlocks<'a> {
    f: &'a Bf16Factors,
    q: &'a Query,
    out: &'a mut Vec<f32>,
}

impl KernelJob for ScoreBlocks<'_> {
    type Output = ();
    #[inline(always)]
    fn run<K: Kern>(self, kern: K) {
        self.out.clear();
        self.out
            .resize(self.f.rows.div_ceil(BLOCK_ROWS) * BLOCK_ROWS, 0.0);
        if self.f.pairs > 0 {
            let block_words = self.f.pairs * BLOCK_ROWS;
            // A plain loop (see `simd`): the kernel must inline into the dispatched function.
            for (o, w) in self
                .out
                .chunks_exact_mut(BLOCK_ROWS)
                .zip(self.f.data.chunks_exact(block_words))
            {
                kern.score_block(&self.q.x, w, o);
            }
        }
        self.out.truncate(self.f.rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approximate_scores_stay_within_the_bound_for_every_length() {
        for k in [1usize, 7, 8, 15, 16, 17, 32, 63, 64, 100] {
            let f = Factors::random(500, k, 9, 2.0, -1.0);
            let a = Bf16Factors::new(&f).expect("finite");
            let x: Vec<f32> = (0..k)
                .map(|i| ((i as f32) * 0.7 + 0.5).sin() * 3.0)
                .collect();
            let q = a.query(&x).expect("finite query");
            let bound = a.error_bound(&q);
            let (mut approx, mut exact) = (Vec::new(), Vec::new());
            a.score_rows(&q, &mut approx);
            crate::simd::score_rows(&x, &f, &mut exact);
            let mut worst = 0f32;
            for (i, (s, e)) in approx.iter().zip(&exact).enumerate() {
                let d = (s - e).abs();
                assert!(d <= bound, "k={k} row {i}: {s} vs {e}, bound {bound}");
                worst = worst.max(d);
            }
            // The portable kernels (CPUs without AVX2) give the same scores within the bound.
            let mut portable = Vec::new();
            Isa::portable().dispatch(ScoreBlocks {
                f: &a,
                q: &q,
                out: &mut portable,
            });
            assert_eq!(portable.len(), exact.len());
            for (p, e) in portable.iter().zip(&exact) {
                assert!((p - e).abs() <= bound, "k={k}: portable {p} vs {e}");
            }
            // The rounding really happened (the bound is not met by scoring in f32).
            assert!(worst > 0.0, "k={k}");
            // And the bound is not vacuous: a small fraction of the score spread.
            assert!(bound < 0.05 * q.norm * a.max_norm, "k={k}: bound {bound}");
        }
    }

    #[test]
    fn rounding_is_to_nearest() {
        assert_eq!(f32::from_bits(round_bf16(1.0)), 1.0);
        assert_eq!(f32::from_bits(round_bf16(-2.5)), -2.5);
        let v = 1.0 + 3.0 * f32::EPSILON * 1024.0; // between two bfloat16 values, nearer the upper one
        let r = f32::from_bits(round_bf16(v));
        assert!((r - v).abs() <= v * 2f32.powi(-9), "{v} → {r}");
    }

    #[test]
    fn rows_with_a_value_that_is_not_finite_have_no_approximation() {
        let mut f = Factors::random(10, 8, 1, 1.0, -0.5);
        f.data[13] = f32::NAN;
        assert!(Bf16Factors::new(&f).is_none());
        f.data[13] = f32::INFINITY;
        assert!(Bf16Factors::new(&f).is_none());
        let ok = Bf16Factors::new(&Factors::random(10, 8, 1, 1.0, -0.5)).expect("finite");
        assert!(ok.query(&[f32::NAN; 8]).is_none());
        assert!(ok.query(&[1.0; 7]).is_none());
    }
}
