//! Sliding-window counters as sparse time buckets.
//!
//! Each count is kept in three bucket grids: 5-minute buckets for the 1 h window, hourly buckets for 24 h, and
//! daily buckets for 7 d and 30 d. A window read at `now` sums the buckets that overlap `(now − window, now]` at
//! the grid's granularity (so "1 h" means the current 5-minute bucket and the 11 before it). Buckets older than
//! their grid's longest window, measured from the newest event the state has seen, are pruned on every write:
//! the state is a function of the *set* of events applied, not of their arrival order.

use crate::codec::{Reader, Writer};
use crate::Result;

/// The kinds of behaviour counted per user and per product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    View = 0,
    Cart = 1,
    Purchase = 2,
    Return = 3,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::View, Kind::Cart, Kind::Purchase, Kind::Return];

    /// Plural name used in feature JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::View => "views",
            Kind::Cart => "add_to_carts",
            Kind::Purchase => "purchases",
            Kind::Return => "returns",
        }
    }
}

/// A bucket grid: bucket width and how many buckets are kept.
struct Grid {
    width_ms: i64,
    keep: i64,
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

const GRIDS: [Grid; 3] = [
    Grid {
        width_ms: 5 * MINUTE_MS,
        keep: 12,
    },
    Grid {
        width_ms: HOUR_MS,
        keep: 24,
    },
    Grid {
        width_ms: DAY_MS,
        keep: 30,
    },
];

/// The windows served, with the grid each one reads and how many buckets it sums.
pub const WINDOWS: [(&str, usize, i64); 4] =
    [("1h", 0, 12), ("24h", 1, 24), ("7d", 2, 7), ("30d", 2, 30)];

/// Windowed counts of one kind: per grid, `(bucket index, count)` sorted by bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counter {
    grids: [Vec<(i64, u32)>; 3],
}

impl Counter {
    /// Adds `n` at event time `ts_ms`, then prunes relative to `newest_ms` (the newest event time seen).
    pub fn add(&mut self, ts_ms: i64, n: u32, newest_ms: i64) {
        for (g, grid) in GRIDS.iter().enumerate() {
            let b = ts_ms.div_euclid(grid.width_ms);
            let v = &mut self.grids[g];
            match v.binary_search_by_key(&b, |x| x.0) {
                Ok(i) => v[i].1 = v[i].1.saturating_add(n),
                Err(i) => v.insert(i, (b, n)),
            }
        }
        self.prune(newest_ms);
    }

    /// Drops buckets that no window can read any more once time has reached `newest_ms`.
    pub fn prune(&mut self, newest_ms: i64) {
        for (g, grid) in GRIDS.iter().enumerate() {
            let oldest = newest_ms.div_euclid(grid.width_ms) - grid.keep + 1;
            self.grids[g].retain(|(b, _)| *b >= oldest);
        }
    }

    /// Count in window `w` (an index into [`WINDOWS`]) as of `now_ms`; events after `now_ms` are not counted.
    pub fn window(&self, w: usize, now_ms: i64) -> u64 {
        let (_, g, n) = WINDOWS[w];
        let grid = &GRIDS[g];
        let last = now_ms.div_euclid(grid.width_ms);
        let first = last - n + 1;
        self.grids[g]
            .iter()
            .filter(|(b, _)| *b >= first && *b <= last)
            .map(|(_, c)| u64::from(*c))
            .sum()
    }

    /// True when nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.grids.iter().all(Vec::is_empty)
    }

    /// Encodes the buckets as differences. With `newest_ms`, each grid's first bucket is written relative to the
    /// bucket of `newest_ms` (a byte or two instead of an absolute bucket number); without, absolutely.
    pub(crate) fn encode_at(&self, w: &mut Writer, newest_ms: Option<i64>) {
        for (g, v) in self.grids.iter().enumerate() {
            encode_grid(w, g, v, newest_ms);
        }
    }

    /// Reads what [`Counter::encode_at`] wrote with the same `newest_ms`.
    pub(crate) fn decode_at(r: &mut Reader<'_>, newest_ms: Option<i64>) -> Result<Counter> {
        let mut out = Counter::default();
        for (g, v) in out.grids.iter_mut().enumerate() {
            *v = decode_grid(r, g, newest_ms)?;
        }
        Ok(out)
    }
}

/// One grid's buckets: their number, then each as a difference (the first from `newest_ms`'s bucket when given).
fn encode_grid(w: &mut Writer, g: usize, v: &[(i64, u32)], newest_ms: Option<i64>) {
    w.usize(v.len());
    let mut prev = 0i64;
    for (i, (b, c)) in v.iter().enumerate() {
        match (i, newest_ms) {
            (0, Some(t)) => w.i64(t.div_euclid(GRIDS[g].width_ms) - b),
            _ => w.i64(b - prev),
        }
        prev = *b;
        w.u64(u64::from(*c));
    }
}

fn decode_grid(r: &mut Reader<'_>, g: usize, newest_ms: Option<i64>) -> Result<Vec<(i64, u32)>> {
    let n = r.usize()?;
    if n > 64 {
        return Err(r.corrupt("bucket count"));
    }
    let mut v = Vec::with_capacity(n);
    let mut prev = 0i64;
    for i in 0..n {
        prev = match (i, newest_ms) {
            (0, Some(t)) => t.div_euclid(GRIDS[g].width_ms) - r.i64()?,
            _ => prev + r.i64()?,
        };
        v.push((prev, r.u64()? as u32));
    }
    Ok(v)
}

/// One [`Counter`] per [`Kind`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(pub [Counter; 4]);

impl Counters {
    pub fn add(&mut self, kind: Kind, ts_ms: i64, n: u32, newest_ms: i64) {
        self.0[kind as usize].add(ts_ms, n, newest_ms);
    }

    pub fn prune(&mut self, newest_ms: i64) {
        self.0.iter_mut().for_each(|c| c.prune(newest_ms));
    }

    pub fn get(&self, kind: Kind) -> &Counter {
        &self.0[kind as usize]
    }

    /// `{"1h":…, "24h":…, "7d":…, "30d":…}` per kind, as of `now_ms`.
    pub fn to_json(&self, now_ms: i64) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for k in Kind::ALL {
            let c = self.get(k);
            let mut m = serde_json::Map::new();
            for (w, (name, _, _)) in WINDOWS.iter().enumerate() {
                m.insert((*name).into(), c.window(w, now_ms).into());
            }
            out.insert(k.name().into(), m.into());
        }
        out.into()
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        self.encode_at(w, None);
    }

    /// See [`Counter::encode_at`].
    pub(crate) fn encode_at(&self, w: &mut Writer, newest_ms: Option<i64>) {
        self.0.iter().for_each(|c| c.encode_at(w, newest_ms));
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Counters> {
        Counters::decode_at(r, None)
    }

    /// The shopper form (format 3): a bit mask of the non-empty (kind, grid) lists, then only those, each
    /// relative to `newest_ms` (most shoppers never return anything: their empty lists cost nothing).
    pub(crate) fn encode_masked(&self, w: &mut Writer, newest_ms: i64) {
        let mut mask = 0u64;
        for (k, c) in self.0.iter().enumerate() {
            for (g, v) in c.grids.iter().enumerate() {
                if !v.is_empty() {
                    mask |= 1 << (k * 3 + g);
                }
            }
        }
        w.u64(mask);
        for c in &self.0 {
            for (g, v) in c.grids.iter().enumerate() {
                if !v.is_empty() {
                    encode_grid(w, g, v, Some(newest_ms));
                }
            }
        }
    }

    /// Reads what [`Counters::encode_masked`] wrote with the same `newest_ms`.
    pub(crate) fn decode_masked(r: &mut Reader<'_>, newest_ms: i64) -> Result<Counters> {
        let mask = r.u64()?;
        if mask >> 12 != 0 {
            return Err(r.corrupt("window mask"));
        }
        let mut out = Counters::default();
        for (k, c) in out.0.iter_mut().enumerate() {
            for (g, v) in c.grids.iter_mut().enumerate() {
                if mask & (1 << (k * 3 + g)) != 0 {
                    *v = decode_grid(r, g, Some(newest_ms))?;
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn decode_at(r: &mut Reader<'_>, newest_ms: Option<i64>) -> Result<Counters> {
        Ok(Counters([
            Counter::decode_at(r, newest_ms)?,
            Counter::decode_at(r, newest_ms)?,
            Counter::decode_at(r, newest_ms)?,
            Counter::decode_at(r, newest_ms)?,
        ]))
    }
}

/// Index of a window by name (`1h`, `24h`, `7d`, `30d`).
pub fn window_index(name: &str) -> Option<usize> {
    WINDOWS.iter().position(|w| w.0 == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn windows_count_what_falls_inside_them() {
        let mut c = Counter::default();
        // Hand-placed events: now, 30 min ago, 2 h ago, 3 days ago, 20 days ago, 40 days ago.
        let ages = [
            0,
            30 * MINUTE_MS,
            2 * HOUR_MS,
            3 * DAY_MS,
            20 * DAY_MS,
            40 * DAY_MS,
        ];
        for a in ages {
            c.add(T0 - a, 1, T0);
        }
        // Align "now" to the end of its buckets so the expectation does not depend on bucket phase.
        assert_eq!(c.window(0, T0), 2);
        assert_eq!(c.window(1, T0), 3);
        assert_eq!(c.window(2, T0), 4);
        assert_eq!(
            c.window(3, T0),
            5,
            "the 40-day-old event is outside 30 d and pruned"
        );
        // Read a day later: the 1 h and 24 h windows are empty.
        assert_eq!(c.window(0, T0 + DAY_MS + HOUR_MS), 0);
        assert_eq!(c.window(1, T0 + 2 * DAY_MS), 0);
        // Read before the newest events: those do not count (no leak from the future).
        assert_eq!(
            c.window(3, T0 - 10 * DAY_MS),
            1,
            "only the 20-day-old event is at or before the read time"
        );
    }

    #[test]
    fn order_of_arrival_does_not_matter() {
        let ts: Vec<i64> = (0..200)
            .map(|i| T0 - (i * 7919 * 1000) % (45 * DAY_MS))
            .collect();
        let newest = *ts.iter().max().unwrap();
        let mut a = Counter::default();
        let mut running = i64::MIN;
        for t in &ts {
            running = running.max(*t);
            a.add(*t, 1, running);
        }
        a.prune(newest);
        let mut b = Counter::default();
        let mut running = i64::MIN;
        for t in ts.iter().rev() {
            running = running.max(*t);
            b.add(*t, 1, running);
        }
        b.prune(newest);
        assert_eq!(a, b);
        let mut w = Writer::default();
        a.encode_at(&mut w, None);
        assert_eq!(
            Counter::decode_at(&mut Reader::new(&w.buf), None).unwrap(),
            a
        );
        let mut rel = Writer::default();
        a.encode_at(&mut rel, Some(newest));
        assert!(rel.buf.len() < w.buf.len(), "relative buckets are shorter");
        let back = Counter::decode_at(&mut Reader::new(&rel.buf), Some(newest)).unwrap();
        assert_eq!(back, a);
    }
}
