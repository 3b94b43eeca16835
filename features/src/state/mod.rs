//! Feature state blobs: one per shopper ([`user::UserState`]) and one per product ([`product::ProductState`]).
//!
//! Every blob starts with an 8-byte revision (the compare-and-set token of the store) and carries its own
//! *fences*: per input stream (topic × partition), the last offset whose effects the blob holds. A consumer
//! applies a message to a blob only when its offset is past that blob's fence, so a redelivered message (after
//! a crash, a rebalance or a replay from an older offset) changes nothing, blob by blob, without any
//! cross-key transaction (Redis-Cluster safe).

pub mod compact;
pub mod dict;
pub mod product;
pub mod user;
mod user_v1;
mod user_v2;

use crate::codec::{Reader, Writer};
use crate::Result;
use compact::Names;

/// An input stream: topic index in the high 16 bits (0 = events, 1 = commerce), partition in the low 16.
pub type StreamId = u32;

/// Stream id of a topic index and partition.
pub fn stream_id(topic: u16, partition: i32) -> StreamId {
    (u32::from(topic) << 16) | (partition as u32 & 0xffff)
}

/// Per stream, the last offset applied to a blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fences(pub Vec<(StreamId, u64)>);

impl Fences {
    /// True when the message at `offset` of `stream` is already reflected in the blob.
    pub fn covers(&self, stream: StreamId, offset: u64) -> bool {
        self.0.iter().any(|(s, o)| *s == stream && *o >= offset)
    }

    /// Records that the blob now holds the message at `offset`.
    pub fn advance(&mut self, stream: StreamId, offset: u64) {
        match self.0.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, o)) => *o = (*o).max(offset),
            None => {
                self.0.push((stream, offset));
                self.0.sort_unstable();
            }
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.usize(self.0.len());
        for (s, o) in &self.0 {
            w.u64(u64::from(*s));
            w.u64(*o);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Fences> {
        let n = r.usize()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((r.u64()? as u32, r.u64()?));
        }
        Ok(Fences(v))
    }
}

/// Blob format version, after the revision: product blobs, and shopper blobs written before the compact encoding.
pub(crate) const FORMAT_V1: u64 = 1;
/// Shopper blobs with the compact encoding ([`compact`]: attribute hash codes, product-id numbers, relative
/// times, and the recent event ids).
pub(crate) const FORMAT_V2: u64 = 2;
/// Shopper blobs of format 2 with names as [`dict`] codes, last-N times in whole seconds, affinity scores on
/// the 16-bit grid of [`score_code`], and the recent event ids moved to their own key (they expire sooner).
pub(crate) const FORMAT_V3: u64 = 3;

/// Smallest exponent of the score grid: scores below 2⁻¹⁵ (≈ 3·10⁻⁵, a weight decayed over 15 half-lives)
/// are 0.
const SCORE_MIN_EXP: i32 = -15;
/// Largest exponent: scores saturate just below 2¹⁶.
const SCORE_MAX_EXP: i32 = 15;

/// Mantissa bits of the score grid.
const SCORE_MANTISSA_BITS: u32 = 11;
/// The grid's relative step: two stored scores of about `x` differ by at least `x · SCORE_STEP`.
pub const SCORE_STEP: f64 = 1.0 / (1u32 << SCORE_MANTISSA_BITS) as f64;

/// The 16-bit code of an affinity score: a float with a 5-bit exponent and an 11-bit mantissa (relative step
/// 2⁻¹¹ ≈ 4.9·10⁻⁴), rounded to nearest, ties to even, so the rounding after each update is unbiased (a score
/// drifts by about 2⁻¹²·√n of itself over n updates); 0 for zero, negative and NaN scores. Affinities are
/// relative weights (which category, colour, line, price band a shopper leans to): three significant digits
/// rank them as well as seven, and the two bytes saved per score are a sixth of a shopper's blob.
pub(crate) fn score_code(x: f32) -> u16 {
    if x.is_nan() || x <= 0.0 {
        return 0;
    }
    let drop = 23 - SCORE_MANTISSA_BITS;
    let mantissa_mask = (1u32 << SCORE_MANTISSA_BITS) - 1;
    let bits = x.to_bits();
    // Keep the top bits of the mantissa, rounding half to even; a carry moves into the exponent.
    let half = (1u32 << (drop - 1)) - 1;
    let rounded = (bits + half + ((bits >> drop) & 1)) & !((1u32 << drop) - 1);
    let exp = (rounded >> 23) as i32 - 127;
    if exp < SCORE_MIN_EXP {
        return 0;
    }
    let code = if exp > SCORE_MAX_EXP {
        (((SCORE_MAX_EXP - SCORE_MIN_EXP + 1) as u32) << SCORE_MANTISSA_BITS) | mantissa_mask
    } else {
        (((exp - SCORE_MIN_EXP + 1) as u32) << SCORE_MANTISSA_BITS)
            | ((rounded >> drop) & mantissa_mask)
    };
    code as u16
}

/// The score of a [`score_code`].
pub(crate) fn score_of_code(c: u16) -> f32 {
    if c == 0 {
        return 0.0;
    }
    let c = u32::from(c);
    let exp = (c >> SCORE_MANTISSA_BITS) as i32 + SCORE_MIN_EXP - 1;
    let mantissa = c & ((1u32 << SCORE_MANTISSA_BITS) - 1);
    f32::from_bits((((exp + 127) as u32) << 23) | (mantissa << (23 - SCORE_MANTISSA_BITS)))
}

/// `x` on the score grid (what format 3 stores): shopper affinities are kept on it after every update, so the
/// stored blob holds exactly the state in memory.
pub fn on_score_grid(x: f32) -> f32 {
    score_of_code(score_code(x))
}

/// Reads the revision of a blob (0 for a missing one).
pub fn revision_of(blob: Option<&[u8]>) -> u64 {
    blob.and_then(|b| b.get(..8))
        .map(|b| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .unwrap_or(0)
}

/// Writes the revision header (big-endian, so the store can compare the first 8 bytes as a string) and format.
pub(crate) fn write_header(w: &mut Writer, rev: u64, format: u64) {
    w.buf.extend_from_slice(&rev.to_be_bytes());
    w.u64(format);
}

/// Reads the header; returns the revision and the format, which must be one of `accepted`.
pub(crate) fn read_header(r: &mut Reader<'_>, accepted: &[u64]) -> Result<(u64, u64)> {
    // `fixed_u64` reads little-endian; the header is big-endian.
    let rev = r.fixed_u64()?.swap_bytes();
    let v = r.u64()?;
    if !accepted.contains(&v) {
        return Err(crate::Error::Internal(format!(
            "feature blob format {v} is not supported (expected one of {accepted:?})"
        )));
    }
    Ok((rev, v))
}

/// Exponential decay factor over `dt_ms` for a half-life of `half_life_ms`.
pub fn decay(dt_ms: f64, half_life_ms: f64) -> f64 {
    (-(dt_ms / half_life_ms) * std::f64::consts::LN_2).exp()
}

/// Decayed scores by name, kept relative to a reference time (the newest event that touched them), so adding an
/// event is O(entries) and the result does not depend on arrival order beyond float rounding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decayed {
    pub ref_ms: i64,
    pub scores: Vec<(String, f32)>,
}

impl Decayed {
    /// Adds `weight` at `ts_ms`; keeps at most `cap` names (the weakest is dropped when full).
    pub fn add(&mut self, name: &str, weight: f64, ts_ms: i64, half_life_ms: f64, cap: usize) {
        if ts_ms > self.ref_ms {
            if !self.scores.is_empty() {
                let f = decay((ts_ms - self.ref_ms) as f64, half_life_ms) as f32;
                self.scores.iter_mut().for_each(|(_, s)| *s *= f);
            }
            self.ref_ms = ts_ms;
        }
        let w = (weight * decay((self.ref_ms - ts_ms) as f64, half_life_ms)) as f32;
        match self.scores.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => *s += w,
            None => self.scores.push((name.to_string(), w)),
        }
        if self.scores.len() > cap {
            self.scores
                .sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            self.scores.truncate(cap);
        }
    }

    /// Scores decayed to `now_ms`, strongest first.
    pub fn at(&self, now_ms: i64, half_life_ms: f64) -> Vec<(String, f64)> {
        let f = decay((now_ms - self.ref_ms).max(0) as f64, half_life_ms);
        let mut v: Vec<(String, f64)> = self
            .scores
            .iter()
            .map(|(n, s)| (n.clone(), f64::from(*s) * f))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.i64(self.ref_ms);
        w.usize(self.scores.len());
        for (n, s) in &self.scores {
            w.str(n);
            w.f32(*s);
        }
    }

    /// Puts every score on the grid of [`score_code`] (what format 3 stores).
    pub fn to_score_grid(&mut self) {
        self.scores
            .iter_mut()
            .for_each(|(_, s)| *s = on_score_grid(*s));
    }

    /// The compact form, names through `names`. Format 2 (`grid` false): reference time relative to `base_ms`,
    /// count, scores as 4-byte floats. Format 3: count, then (only when there are scores) the reference time
    /// relative to `base_ms`, scores as 2-byte grid codes; a shopper's four groups are usually updated by the
    /// same event, so format 3 passes the previous group's reference as `base_ms` and the later ones take a
    /// byte each.
    pub(crate) fn encode_compact(
        &self,
        w: &mut Writer,
        names: &impl Names,
        base_ms: i64,
        grid: bool,
    ) {
        if grid {
            w.usize(self.scores.len());
            if !self.scores.is_empty() {
                w.i64(base_ms - self.ref_ms);
            }
        } else {
            w.i64(base_ms - self.ref_ms);
            w.usize(self.scores.len());
        }
        for (n, s) in &self.scores {
            names.write(w, n);
            if grid {
                w.fixed_u16(score_code(*s));
            } else {
                w.f32(*s);
            }
        }
    }

    pub(crate) fn decode_compact(
        r: &mut Reader<'_>,
        names: &impl Names,
        base_ms: i64,
        grid: bool,
    ) -> Result<Decayed> {
        let (ref_ms, n) = if grid {
            let n = r.usize()?;
            (if n > 0 { base_ms - r.i64()? } else { 0 }, n)
        } else {
            (base_ms - r.i64()?, r.usize()?)
        };
        let mut scores = Vec::with_capacity(n);
        for _ in 0..n {
            let name = names.read(r)?;
            let s = if grid {
                score_of_code(r.fixed_u16()?)
            } else {
                r.f32()?
            };
            scores.push((name, s));
        }
        Ok(Decayed { ref_ms, scores })
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Decayed> {
        let ref_ms = r.i64()?;
        let n = r.usize()?;
        let mut scores = Vec::with_capacity(n);
        for _ in 0..n {
            scores.push((r.string()?, r.f32()?));
        }
        Ok(Decayed { ref_ms, scores })
    }
}

/// Inserts `(id, ts)` into a newest-first list of distinct ids capped at `cap` (a repeat moves the id to its
/// newest time). Ties on time order by id, so the list is the same whatever the arrival order.
pub(crate) fn push_recent(list: &mut Vec<(String, i64)>, id: &str, ts_ms: i64, cap: usize) {
    if let Some(i) = list.iter().position(|(p, _)| p == id) {
        if list[i].1 >= ts_ms {
            return;
        }
        list.remove(i);
    }
    let key = |e: &(String, i64)| (std::cmp::Reverse(e.1), e.0.clone());
    let item = (id.to_string(), ts_ms);
    let pos = list.partition_point(|e| key(e) < key(&item));
    list.insert(pos, item);
    list.truncate(cap);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_to_the_nearest_point_of_the_grid() {
        let mut x = 2f32.powi(SCORE_MIN_EXP);
        let mut last = 0u16;
        while x < 2f32.powi(SCORE_MAX_EXP + 1) * 0.999 {
            let c = score_code(x);
            let back = score_of_code(c);
            assert!((back - x).abs() <= x * 2f32.powi(-12), "{x} → {c} → {back}");
            assert!(c >= last, "codes follow the scores");
            assert_eq!(score_code(back), c, "grid points are fixed points");
            last = c;
            x *= 1.000_37;
        }
        for nothing in [0.0, -1.0, f32::NAN, 2f32.powi(SCORE_MIN_EXP) * 0.49] {
            assert_eq!(score_code(nothing), 0, "{nothing}");
        }
        assert_eq!(score_of_code(0), 0.0);
        // Above the range: the largest score, not a wrap-around.
        assert_eq!(score_code(1e9), u16::MAX);
        assert!(score_of_code(u16::MAX) > 65_000.0);
        // Ties go to the even mantissa.
        let one = score_code(1.0);
        assert_eq!(score_code(1.0 + 2f32.powi(-12)), one);
        assert_eq!(score_code(1.0 + 3.0 * 2f32.powi(-12)), one + 2);
    }
}
