//! Training data: timestamped `(user, item, weight)` interactions from the event log, the built-in shopper
//! simulator or a CSV file, and the confidence matrices built from them.
//!
//! From events, each event gives one interaction per product it names (views, carts, purchase lines, return
//! lines), weighted by [`EventWeights`]; returns have a negative weight, so they subtract. The shopper is the
//! event's bus key (`user_id`, else `anonymous_id`). Only events in `(as_of − window, as_of]` are read: a model
//! trained "as of T" sees nothing after T.
//!
//! Memory: an interaction is 20 bytes (user, item, weight, timestamp), so 10M of them take ≈ 200 MB before the
//! (user, item) aggregation into a [`Csr`] (≈ 8 bytes per distinct pair per orientation).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use pipelines::event::{Event, Properties};
use pipelines::log::EventLog;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::matrix::{sort_ids, Csr, IdIndex};
use crate::{Error, Result};

/// The weight each event type adds to a (shopper, product) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventWeights {
    /// `product_view` (default 1).
    pub view: f32,
    /// `add_to_cart` (default 4).
    pub add_to_cart: f32,
    /// Each purchased line (default 10).
    pub purchase: f32,
    /// Each returned line; negative so a return cancels its purchase (default −10).
    pub return_: f32,
}

impl Default for EventWeights {
    fn default() -> Self {
        EventWeights {
            view: 1.0,
            add_to_cart: 4.0,
            purchase: 10.0,
            return_: -10.0,
        }
    }
}

/// How an aggregated weight `w` becomes an ALS confidence (the sign is kept: a negative total is "disliked").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Confidence {
    /// `α·w`, as implicit does (the default, α = 10 here for the Online Retail comparison).
    Alpha { alpha: f32 },
    /// `1 + α·w`, as in Hu, Koren & Volinsky.
    OnePlusAlpha { alpha: f32 },
    /// `1 + α·ln(1 + w/ε)`, for heavy-tailed counts (Hu et al. §4).
    Log { alpha: f32, epsilon: f32 },
}

impl Confidence {
    /// Parses `alpha`, `one-plus-alpha` or `log[:EPSILON]` with the given α.
    pub fn parse(kind: &str, alpha: f32) -> Result<Confidence> {
        if !(alpha > 0.0 && alpha.is_finite()) {
            return Err(Error::BadInput(format!(
                "alpha: {alpha} must be a finite number > 0"
            )));
        }
        match kind.split_once(':').unwrap_or((kind, "")) {
            ("alpha", "") => Ok(Confidence::Alpha { alpha }),
            ("one-plus-alpha", "") => Ok(Confidence::OnePlusAlpha { alpha }),
            ("log", eps) => {
                let epsilon = if eps.is_empty() {
                    1.0
                } else {
                    eps.parse::<f32>()
                        .ok()
                        .filter(|e| *e > 0.0)
                        .ok_or_else(|| {
                            Error::BadInput(format!(
                                "confidence: log epsilon {eps:?} must be a number > 0"
                            ))
                        })?
                };
                Ok(Confidence::Log { alpha, epsilon })
            }
            _ => Err(Error::BadInput(format!(
                "confidence: {kind:?} is not one of alpha, one-plus-alpha, log[:EPSILON]"
            ))),
        }
    }

    /// The confidence of an aggregated weight.
    pub fn apply(&self, w: f32) -> f32 {
        let (sign, w) = (w.signum(), w.abs());
        sign * match *self {
            Confidence::Alpha { alpha } => alpha * w,
            Confidence::OnePlusAlpha { alpha } => 1.0 + alpha * w,
            Confidence::Log { alpha, epsilon } => 1.0 + alpha * (1.0 + w / epsilon).ln(),
        }
    }
}

/// One interaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    pub user: u32,
    pub item: u32,
    pub weight: f32,
    /// Milliseconds since the epoch (the row number for CSV data without a `ts` column).
    pub ts_ms: i64,
}

/// Interactions with their id maps.
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    pub users: IdIndex,
    pub items: IdIndex,
    pub rows: Vec<Interaction>,
    /// Whether `ts_ms` are real times (CSV without `ts`: row numbers).
    pub timed: bool,
}

/// Which events are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Nothing after this instant is read ("as of").
    pub as_of: DateTime<Utc>,
    /// Nothing older than `as_of − days` is read (default 548 ≈ 18 months).
    pub days: u32,
}

impl Window {
    pub fn from(&self) -> DateTime<Utc> {
        self.as_of - Duration::days(i64::from(self.days))
    }
}

impl Interactions {
    /// Adds one interaction.
    pub fn push(&mut self, user: &str, item: &str, weight: f32, ts_ms: i64) {
        let user = self.users.intern(user);
        let item = self.items.intern(item);
        self.rows.push(Interaction {
            user,
            item,
            weight,
            ts_ms,
        });
    }

    /// Adds one event's interactions (if it is inside `window`).
    pub fn push_event(&mut self, e: &Event, weights: &EventWeights, window: &Window) {
        if e.ts > window.as_of || e.ts <= window.from() {
            return;
        }
        let ts_ms = e.ts.timestamp_millis();
        let add = |this: &mut Interactions, product: &str, weight: f32| {
            if weight != 0.0 && !product.is_empty() {
                this.push(e.key(), product, weight, ts_ms);
            }
        };
        match &e.properties {
            Properties::ProductView(p) => add(self, &p.product_id, weights.view),
            Properties::AddToCart(p) => add(self, &p.product_id, weights.add_to_cart),
            Properties::Purchase(p) => {
                for l in &p.lines {
                    add(self, &l.product_id, weights.purchase);
                }
            }
            Properties::Return(r) => {
                for l in &r.lines {
                    add(self, &l.product_id, weights.return_);
                }
            }
            _ => {}
        }
        self.timed = true;
    }

    /// Reads the event log page by page (in `(ts, event_id)` order, so the result does not depend on the
    /// backend); `progress` gets the number of events read so far.
    pub async fn from_log(
        log: &Arc<dyn EventLog>,
        weights: &EventWeights,
        window: &Window,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Interactions> {
        let mut data = Interactions::default();
        let mut after = None;
        let mut read = 0u64;
        loop {
            let page = log.scan(window.as_of, after, 50_000).await?;
            for e in &page {
                data.push_event(e, weights, window);
            }
            read += page.len() as u64;
            progress(read);
            match page.last() {
                Some(last) if page.len() == 50_000 => {
                    after = Some(pipelines::log::ScanCursor::of(last))
                }
                _ => break,
            }
        }
        data.timed = true;
        Ok(data)
    }

    /// Reads `user,item,weight[,ts]` CSV (header required; `.gz` is decompressed; `ts` is RFC 3339 or
    /// milliseconds since the epoch). Without `ts`, the row number stands in for time (leave-last-out still
    /// works, a time split does not). Errors name the line and the field.
    pub fn from_csv(path: &Path) -> Result<Interactions> {
        let mut csv = csv::Reader::from_reader(open_maybe_gzip(path)?);
        let at = |what: &str, line: u64, why: String| {
            Error::BadInput(format!("{}: line {line}: {what}: {why}", path.display()))
        };
        let headers = csv
            .headers()
            .map_err(|e| at("header", 1, e.to_string()))?
            .clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let (Some(cu), Some(ci), Some(cw)) = (col("user"), col("item"), col("weight")) else {
            return Err(at(
                "header",
                1,
                format!(
                    "needs columns user,item,weight (found {:?})",
                    headers.iter().collect::<Vec<_>>()
                ),
            ));
        };
        let cts = col("ts");
        let mut data = Interactions {
            timed: cts.is_some(),
            ..Interactions::default()
        };
        for (n, rec) in csv.records().enumerate() {
            let line = n as u64 + 2;
            let rec = rec.map_err(|e| at("row", line, e.to_string()))?;
            let field = |c: usize, name: &str| -> Result<&str> {
                rec.get(c)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| at(name, line, "is empty".into()))
            };
            let user = field(cu, "user")?;
            let item = field(ci, "item")?;
            let weight: f32 = field(cw, "weight")?
                .parse()
                .ok()
                .filter(|w: &f32| w.is_finite())
                .ok_or_else(|| at("weight", line, "is not a finite number".into()))?;
            let ts_ms = match cts {
                Some(c) => {
                    let s = field(c, "ts")?;
                    s.parse::<i64>()
                        .ok()
                        .or_else(|| {
                            DateTime::parse_from_rfc3339(s)
                                .ok()
                                .map(|t| t.timestamp_millis())
                        })
                        .ok_or_else(|| {
                            at(
                                "ts",
                                line,
                                "is neither RFC 3339 nor milliseconds since the epoch".into(),
                            )
                        })?
                }
                None => n as i64,
            };
            data.push(user, item, weight, ts_ms);
        }
        Ok(data)
    }

    /// Keeps users with at least `min_user_items` distinct items and items with at least
    /// `min_item_users` distinct users (one pass each, users first), then renumbers both in natural id
    /// order ([`sort_ids`]) so the same data always gives the same matrices.
    pub fn filtered(self, min_user_items: usize, min_item_users: usize) -> Interactions {
        let distinct = |key: fn(&Interaction) -> (u32, u32), n: usize, rows: &[Interaction]| {
            let mut pairs: Vec<(u32, u32)> = rows.iter().map(key).collect();
            pairs.sort_unstable();
            pairs.dedup();
            let mut counts = vec![0usize; n];
            for (a, _) in pairs {
                counts[a as usize] += 1;
            }
            counts
        };
        let mut rows = self.rows;
        if min_user_items > 1 {
            let c = distinct(|r| (r.user, r.item), self.users.len(), &rows);
            rows.retain(|r| c[r.user as usize] >= min_user_items);
        }
        if min_item_users > 1 {
            let c = distinct(|r| (r.item, r.user), self.items.len(), &rows);
            rows.retain(|r| c[r.item as usize] >= min_item_users);
        }
        let renumber = |old: &IdIndex, used: Vec<bool>| {
            let mut ids: Vec<String> = (0..old.len())
                .filter(|&p| used[p])
                .map(|p| old.id(p as u32).to_string())
                .collect();
            sort_ids(&mut ids);
            let new = IdIndex::new(ids);
            let map: Vec<u32> = (0..old.len())
                .map(|p| new.get(old.id(p as u32)).unwrap_or(u32::MAX))
                .collect();
            (new, map)
        };
        let mut used_u = vec![false; self.users.len()];
        let mut used_i = vec![false; self.items.len()];
        for r in &rows {
            used_u[r.user as usize] = true;
            used_i[r.item as usize] = true;
        }
        let (users, mu) = renumber(&self.users, used_u);
        let (items, mi) = renumber(&self.items, used_i);
        for r in &mut rows {
            r.user = mu[r.user as usize];
            r.item = mi[r.item as usize];
        }
        Interactions {
            users,
            items,
            rows,
            timed: self.timed,
        }
    }

    /// The aggregated weight matrix (users × items) of the rows `keep` accepts.
    pub fn matrix(&self, keep: impl Fn(&Interaction) -> bool) -> Csr {
        let triples: Vec<(u32, u32, f32)> = self
            .rows
            .iter()
            .filter(|r| keep(r))
            .map(|r| (r.user, r.item, r.weight))
            .collect();
        Csr::from_triples(self.users.len(), self.items.len(), &triples)
    }

    /// First and last interaction times.
    pub fn span(&self) -> Option<(i64, i64)> {
        let min = self.rows.iter().map(|r| r.ts_ms).min()?;
        let max = self.rows.iter().map(|r| r.ts_ms).max()?;
        Some((min, max))
    }
}

/// Opens a file for reading, decompressing it when its name ends in `.gz`.
pub fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(if path.extension().is_some_and(|x| x == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// SHA-256 of a training matrix with its ids (hex): what the registry records as the training-data hash.
pub fn matrix_hash(m: &Csr, users: &IdIndex, items: &IdIndex) -> String {
    let mut h = Sha256::new();
    for id in users.ids() {
        h.update(id.as_bytes());
        h.update([0]);
    }
    h.update([1]);
    for id in items.ids() {
        h.update(id.as_bytes());
        h.update([0]);
    }
    for p in &m.indptr {
        h.update((*p as u64).to_le_bytes());
    }
    for (c, v) in m.indices.iter().zip(&m.data) {
        h.update(c.to_le_bytes());
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_kinds_keep_the_sign() {
        let a = Confidence::parse("alpha", 10.0).unwrap();
        assert_eq!(a.apply(2.0), 20.0);
        assert_eq!(a.apply(-1.0), -10.0);
        assert_eq!(
            Confidence::parse("one-plus-alpha", 2.0).unwrap().apply(3.0),
            7.0
        );
        let l = Confidence::parse("log:0.5", 1.0).unwrap();
        assert!((l.apply(1.0) - (1.0 + 3f32.ln())).abs() < 1e-6);
        assert!(Confidence::parse("cubic", 1.0)
            .unwrap_err()
            .to_string()
            .starts_with("confidence"));
        assert!(Confidence::parse("alpha", 0.0)
            .unwrap_err()
            .to_string()
            .starts_with("alpha"));
    }

    #[test]
    fn csv_errors_name_the_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "user,item,weight\n1,a,2\n2,b,x\n").unwrap();
        let e = Interactions::from_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 3: weight"), "{e}");
        std::fs::write(&p, "u,i\n").unwrap();
        assert!(Interactions::from_csv(&p)
            .unwrap_err()
            .to_string()
            .contains("header"));
        std::fs::write(&p, "user,item,weight\n10,b,2\n2,a,1\n2,a,1\n3,c,1\n").unwrap();
        let d = Interactions::from_csv(&p).unwrap().filtered(1, 2);
        // Only item a has ≥ 2 users? No: a has one user (2) twice; every item has one user → empty.
        assert!(d.rows.is_empty());
        let d = Interactions::from_csv(&p).unwrap().filtered(1, 1);
        assert_eq!(d.users.ids(), ["2", "3", "10"]);
        let m = d.matrix(|_| true);
        assert_eq!(m.row(0), (&[0u32][..], &[2.0f32][..]));
    }
}
