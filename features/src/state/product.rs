//! Per-product state: windowed counts, lifetime totals, decayed popularity per market and per segment, co-view
//! and co-purchase neighbours, and stock per variant per location (from commerce events).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{read_header, write_header, Decayed, Fences, StreamId, FORMAT_V1};
use crate::codec::{Reader, Writer};
use crate::windows::{Counters, Kind};
use crate::{Context, Result};

/// Markets / segments kept per product.
const POPULARITY_CAP: usize = 64;
/// Popularity weight of a view, an add-to-cart unit and a purchased unit.
pub const POP_VIEW: f64 = 1.0;
pub const POP_CART: f64 = 3.0;
pub const POP_PURCHASE: f64 = 5.0;

/// One change a message makes to a product.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// `n` of `kind` at `ts_ms`.
    Count { kind: Kind, ts_ms: i64, n: u32 },
    /// Popularity in a market (when the event has one) and in the shopper's segment at that moment.
    Popularity {
        market: Option<String>,
        segment: String,
        weight: f64,
        ts_ms: i64,
    },
    /// Viewed by one shopper within the co-view window of `other`.
    CoView { other: String },
    /// Bought in the same order as (or within the co-purchase window of) `other`.
    CoPurchase { other: String },
    /// Absolute stock level of a variant at a location; last writer by `seq` wins.
    Stock(StockLevel),
}

/// A stock level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    pub variant_id: String,
    pub size: String,
    pub location: String,
    pub available: i64,
    pub seq: u64,
}

/// Everything kept about one product (key `p:<product_id>`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductState {
    pub rev: u64,
    pub fences: Fences,
    pub newest_ms: i64,
    pub counts: Counters,
    pub totals: [u64; 4],
    pub markets: Decayed,
    pub segments: Decayed,
    /// `(neighbour, co-views, co-purchases)`, at most `2 × top_k` entries.
    pub neighbours: Vec<(String, u32, u32)>,
    pub stock: Vec<StockLevel>,
}

impl ProductState {
    /// Applies one effect of the message at (`stream`, `offset`); the caller has checked the fence.
    pub fn apply(&mut self, effect: &Effect, ctx: &Context) {
        match effect {
            Effect::Count { kind, ts_ms, n } => {
                self.newest_ms = self.newest_ms.max(*ts_ms);
                self.counts.add(*kind, *ts_ms, *n, self.newest_ms);
                self.totals[*kind as usize] += u64::from(*n);
                self.counts.prune(self.newest_ms);
            }
            Effect::Popularity {
                market,
                segment,
                weight,
                ts_ms,
            } => {
                let hl = ctx.config.popularity_half_life_ms();
                if let Some(m) = market {
                    self.markets.add(m, *weight, *ts_ms, hl, POPULARITY_CAP);
                }
                self.segments
                    .add(segment, *weight, *ts_ms, hl, POPULARITY_CAP);
            }
            Effect::CoView { other } => self.neighbour(other, 1, 0, ctx.config.top_k_neighbours),
            Effect::CoPurchase { other } => {
                self.neighbour(other, 0, 1, ctx.config.top_k_neighbours)
            }
            Effect::Stock(level) => {
                match self
                    .stock
                    .iter_mut()
                    .find(|s| s.variant_id == level.variant_id && s.location == level.location)
                {
                    Some(s) if s.seq >= level.seq => {}
                    Some(s) => s.clone_from(level),
                    None => {
                        self.stock.push(level.clone());
                        self.stock.sort_by(|a, b| {
                            (&a.variant_id, &a.location).cmp(&(&b.variant_id, &b.location))
                        });
                    }
                }
            }
        }
    }

    /// Marks the message as applied.
    pub fn advance(&mut self, stream: StreamId, offset: u64) {
        self.fences.advance(stream, offset);
    }

    fn neighbour(&mut self, other: &str, views: u32, buys: u32, top_k: usize) {
        match self.neighbours.iter_mut().find(|(p, _, _)| p == other) {
            Some(e) => {
                e.1 += views;
                e.2 += buys;
            }
            None => self.neighbours.push((other.to_string(), views, buys)),
        }
        if self.neighbours.len() > 2 * top_k {
            // Keep the strongest half plus room to grow: a space-bounded heavy-hitters list. Exact while a
            // product has ≤ 2·top_k neighbours; beyond that the weakest (new, rare) pairs restart from zero.
            self.neighbours
                .sort_by(|a, b| score(b).cmp(&score(a)).then_with(|| a.0.cmp(&b.0)));
            self.neighbours.truncate(top_k + top_k / 2);
        }
    }

    /// The product's features at `now`.
    pub fn features(&self, id: &str, now: DateTime<Utc>, ctx: &Context) -> ProductFeatures {
        let now_ms = now.timestamp_millis();
        let c = &ctx.config;
        let w30 = |k: Kind| self.counts.get(k).window(3, now_ms) as f64;
        let conversion = (w30(Kind::Purchase) + c.rate_prior_weight * c.prior_conversion)
            / (w30(Kind::View) + c.rate_prior_weight);
        let returns = (w30(Kind::Return) + c.rate_prior_weight * c.prior_return_rate)
            / (w30(Kind::Purchase) + c.rate_prior_weight);
        let hl = c.popularity_half_life_ms();
        let round = |v: f64| (v * 1e4).round() / 1e4;
        let pop = |d: &Decayed| -> BTreeMap<String, f64> {
            d.at(now_ms, hl)
                .into_iter()
                .map(|(n, s)| (n, round(s)))
                .collect()
        };
        let top = |key: fn(&(String, u32, u32)) -> u32| -> Vec<Neighbour> {
            let mut v: Vec<&(String, u32, u32)> =
                self.neighbours.iter().filter(|n| key(n) > 0).collect();
            v.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.0.cmp(&b.0)));
            v.into_iter()
                .take(c.top_k_neighbours)
                .map(|n| Neighbour {
                    product_id: n.0.clone(),
                    count: key(n),
                })
                .collect()
        };
        let mut stock: BTreeMap<String, VariantStock> = BTreeMap::new();
        for s in &self.stock {
            let v = stock
                .entry(s.variant_id.clone())
                .or_insert_with(|| VariantStock {
                    size: s.size.clone(),
                    available: 0,
                    locations: BTreeMap::new(),
                });
            v.available += s.available.max(0);
            v.locations.insert(s.location.clone(), s.available);
        }
        ProductFeatures {
            product_id: id.to_string(),
            as_of: now,
            counts: self.counts.to_json(now_ms),
            totals: Kind::ALL
                .iter()
                .map(|k| (k.name().to_string(), self.totals[*k as usize]))
                .collect(),
            conversion_rate_30d: round(conversion),
            return_rate_30d: round(returns),
            popularity_by_market: pop(&self.markets),
            popularity_by_segment: pop(&self.segments),
            co_viewed: top(|n| n.1),
            co_purchased: top(|n| n.2),
            stock,
        }
    }

    /// Encodes the blob with revision `rev`.
    pub fn encode(&self, rev: u64) -> Vec<u8> {
        let mut w = Writer::default();
        write_header(&mut w, rev, FORMAT_V1);
        self.fences.encode(&mut w);
        w.i64(self.newest_ms);
        self.counts.encode(&mut w);
        self.totals.iter().for_each(|t| w.u64(*t));
        self.markets.encode(&mut w);
        self.segments.encode(&mut w);
        w.usize(self.neighbours.len());
        for (p, v, b) in &self.neighbours {
            w.str(p);
            w.u64(u64::from(*v));
            w.u64(u64::from(*b));
        }
        w.usize(self.stock.len());
        for s in &self.stock {
            w.str(&s.variant_id);
            w.str(&s.size);
            w.str(&s.location);
            w.i64(s.available);
            w.u64(s.seq);
        }
        w.buf
    }

    /// Decodes a blob written by [`ProductState::encode`].
    pub fn decode(blob: &[u8]) -> Result<ProductState> {
        let mut r = Reader::new(blob);
        let (rev, _) = read_header(&mut r, &[FORMAT_V1])?;
        let fences = Fences::decode(&mut r)?;
        let newest_ms = r.i64()?;
        let counts = Counters::decode(&mut r)?;
        let mut totals = [0u64; 4];
        for t in &mut totals {
            *t = r.u64()?;
        }
        let markets = Decayed::decode(&mut r)?;
        let segments = Decayed::decode(&mut r)?;
        let n = r.usize()?;
        let mut neighbours = Vec::with_capacity(n);
        for _ in 0..n {
            neighbours.push((r.string()?, r.u64()? as u32, r.u64()? as u32));
        }
        let n = r.usize()?;
        let mut stock = Vec::with_capacity(n);
        for _ in 0..n {
            stock.push(StockLevel {
                variant_id: r.string()?,
                size: r.string()?,
                location: r.string()?,
                available: r.i64()?,
                seq: r.u64()?,
            });
        }
        Ok(ProductState {
            rev,
            fences,
            newest_ms,
            counts,
            totals,
            markets,
            segments,
            neighbours,
            stock,
        })
    }
}

fn score(n: &(String, u32, u32)) -> u64 {
    u64::from(n.1) + 5 * u64::from(n.2)
}

/// A neighbour and its pair count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    pub product_id: String,
    pub count: u32,
}

/// Stock of one variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantStock {
    pub size: String,
    /// Sellable units over all locations.
    pub available: i64,
    pub locations: BTreeMap<String, i64>,
}

/// A product's features at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductFeatures {
    pub product_id: String,
    pub as_of: DateTime<Utc>,
    pub counts: serde_json::Value,
    pub totals: BTreeMap<String, u64>,
    /// Purchased units per view over 30 days, smoothed toward the configured prior.
    pub conversion_rate_30d: f64,
    /// Returned units per purchased unit over 30 days, smoothed toward the configured prior.
    pub return_rate_30d: f64,
    pub popularity_by_market: BTreeMap<String, f64>,
    pub popularity_by_segment: BTreeMap<String, f64>,
    pub co_viewed: Vec<Neighbour>,
    pub co_purchased: Vec<Neighbour>,
    /// Per variant id; empty when no stock event has been seen (serving then treats the product as available).
    pub stock: BTreeMap<String, VariantStock>,
}
