//! Per-shopper state: windowed counts, last-N lists, recency, decayed affinities, sizes, RFM inputs, the event
//! ids seen recently (duplicate detection), and fences. Read into [`UserFeatures`] at any instant.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use pipelines::event::{Event, Properties};
use serde::Serialize;

use super::compact::{read_recent, write_recent, Names as _};
use super::dict::Dict;
use super::{
    push_recent, read_header, write_header, Decayed, Fences, StreamId, FORMAT_V1, FORMAT_V2,
    FORMAT_V3,
};
use crate::attrs::{attrs, eur_per_unit};
use crate::codec::{Reader, Writer};
use crate::segment::{rule_segment, Rfm};
use crate::windows::{Counters, Kind};
use crate::{Context, Result};

/// Affinity dimensions, in blob order.
pub const AFFINITY_DIMS: [&str; 4] = ["category", "line", "colour", "price_band"];
/// Names kept per affinity dimension (the catalogue has 25 categories and ~20 colours).
const AFFINITY_CAP: usize = 32;
/// (category, size) pairs kept.
const SIZES_CAP: usize = 64;
/// Affinity weight of a view, an add-to-cart and a purchased unit (implicit-feedback convention: a purchase is
/// worth a handful of views).
const W_VIEW: f64 = 1.0;
const W_CART: f64 = 3.0;
const W_PURCHASE: f64 = 5.0;

/// Everything kept about one shopper (key: `u:<user_id>` or `a:<anonymous_id>`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserState {
    pub rev: u64,
    pub fences: Fences,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub last_purchase_ms: Option<i64>,
    /// Device and market of the newest event that carried them, with that event's time.
    pub device: Option<String>,
    pub market: Option<String>,
    pub env_ms: i64,
    pub counts: Counters,
    pub totals: [u64; 4],
    pub orders: u32,
    /// Net spend in euro cents (purchases minus returns).
    pub monetary_cents: i64,
    /// Newest first, times in whole seconds (as ms).
    pub viewed: Vec<(String, i64)>,
    pub purchased: Vec<(String, i64)>,
    /// Scores on the grid of [`super::on_score_grid`].
    pub affinity: [Decayed; 4],
    /// `(category, size, count)` of sizes put in the cart or bought.
    pub sizes: Vec<(String, String, u32)>,
    /// `(fingerprint, ts)` of the event ids applied recently, `ts` in whole seconds (as ms); see
    /// [`UserState::is_duplicate`]. Not in the blob: under their own key ([`UserState::encode_recent_ids`]),
    /// which expires after the dedup horizon, so a shopper who went quiet stops paying for them.
    pub recent_ids: Vec<(u64, i64)>,
}

/// 48-bit fingerprint of an event id. With at most `dedup_max_ids` (64) remembered per shopper, a new event is
/// mistaken for a re-sent one with probability 64 / 2⁴⁸ ≈ 2·10⁻¹³.
pub fn fingerprint(id: &uuid::Uuid) -> u64 {
    let (hi, lo) = id.as_u64_pair();
    (hi ^ lo.rotate_left(17)) & 0xffff_ffff_ffff
}

impl UserState {
    /// True when a copy of this event id has been applied: a producer re-send or a client retry, which sits at
    /// another position on the bus. (A redelivery of the applied copy itself is caught by the fences, which the
    /// caller checks first, so the position is not needed here.)
    pub fn is_duplicate(&self, fp: u64) -> bool {
        self.recent_ids.iter().any(|(f, _)| *f == fp)
    }

    /// Applies one event (the caller has checked fences and duplicates).
    pub fn apply(&mut self, ev: &Event, stream: StreamId, offset: u64, ctx: &Context) {
        let ts = ev.ts.timestamp_millis();
        let cfg = &ctx.config;
        self.fences.advance(stream, offset);
        if self.first_seen_ms == 0 || ts < self.first_seen_ms {
            self.first_seen_ms = ts;
        }
        let newest = self.last_seen_ms.max(ts);
        self.last_seen_ms = newest;
        if ts >= self.env_ms {
            self.env_ms = ts;
            if let Some(d) = ev.device {
                self.device = Some(d.as_str().to_string());
            }
            if let Some(m) = &ev.market {
                self.market = Some(m.clone());
            }
        }
        let hl = cfg.affinity_half_life_ms();
        // The last-N lists keep whole seconds (format 3 stores them so): truncated here, so the state in memory
        // is the state stored.
        let ts_s = ts.div_euclid(1000) * 1000;
        match &ev.properties {
            Properties::ProductView(p) => {
                self.count(Kind::View, ts, 1, newest);
                push_recent(&mut self.viewed, &p.product_id, ts_s, cfg.last_n);
                self.affine(ctx, &p.product_id, None, W_VIEW, ts, hl);
            }
            Properties::AddToCart(c) => {
                self.count(Kind::Cart, ts, c.quantity.max(1), newest);
                self.affine(ctx, &c.product_id, Some(c.price), W_CART, ts, hl);
                if let Some(cat) = ctx.catalog.product(&c.product_id).map(|p| &p.category_id) {
                    self.size(cat, &c.size);
                }
            }
            Properties::Purchase(p) => {
                self.count(Kind::Purchase, ts, 1, newest);
                self.orders += 1;
                self.last_purchase_ms = Some(self.last_purchase_ms.map_or(ts, |l| l.max(ts)));
                if let Some(rate) = eur_per_unit(&p.currency) {
                    self.monetary_cents += (p.total * rate * 100.0).round() as i64;
                }
                for l in &p.lines {
                    push_recent(&mut self.purchased, &l.product_id, ts_s, cfg.last_n);
                    let w = W_PURCHASE * f64::from(l.quantity.max(1));
                    self.affine(ctx, &l.product_id, Some(l.unit_price), w, ts, hl);
                    if let Some((prod, var)) = ctx.catalog.variant(&l.variant_id) {
                        self.size(&prod.category_id, &var.size);
                    }
                }
            }
            Properties::Return(r) => {
                self.count(Kind::Return, ts, 1, newest);
                let currency = r
                    .extra
                    .get("currency")
                    .and_then(|c| c.as_str())
                    .unwrap_or("EUR");
                if let Some(rate) = eur_per_unit(currency) {
                    let refund: f64 = r
                        .lines
                        .iter()
                        .map(|l| l.unit_price * f64::from(l.quantity))
                        .sum();
                    self.monetary_cents -= (refund * rate * 100.0).round() as i64;
                }
            }
            _ => {}
        }
        self.counts.prune(newest);
    }

    /// Remembers that the event was applied (for duplicate detection), pruning ids older than the horizon.
    pub fn remember(&mut self, fp: u64, ts_ms: i64, ctx: &Context) {
        let horizon = ctx.config.dedup_horizon_minutes * 60_000;
        // Whole seconds are enough to age ids out, and encode in a byte or two.
        self.recent_ids.push((fp, ts_ms.div_euclid(1000) * 1000));
        let oldest = self.last_seen_ms - horizon;
        self.recent_ids.retain(|(_, t)| *t >= oldest);
        let cap = ctx.config.dedup_max_ids;
        if self.recent_ids.len() > cap {
            self.recent_ids
                .sort_by_key(|(f, t)| (std::cmp::Reverse(*t), *f));
            self.recent_ids.truncate(cap);
        }
    }

    fn count(&mut self, kind: Kind, ts: i64, n: u32, newest: i64) {
        self.counts.add(kind, ts, n, newest);
        self.totals[kind as usize] += u64::from(n);
    }

    fn affine(
        &mut self,
        ctx: &Context,
        product_id: &str,
        price: Option<f64>,
        w: f64,
        ts: i64,
        hl: f64,
    ) {
        let a = attrs(&ctx.catalog, product_id, price);
        let names = [
            a.category.as_deref(),
            a.line.as_deref(),
            a.colour.as_deref(),
            a.price_band,
        ];
        for (dim, name) in names.into_iter().enumerate() {
            if let Some(n) = name {
                self.affinity[dim].add(n, w, ts, hl, AFFINITY_CAP);
                self.affinity[dim].to_score_grid();
            }
        }
    }

    fn size(&mut self, category: &str, size: &str) {
        match self
            .sizes
            .iter_mut()
            .find(|(c, s, _)| c == category && s == size)
        {
            Some(e) => e.2 += 1,
            None => {
                self.sizes.push((category.to_string(), size.to_string(), 1));
                if self.sizes.len() > SIZES_CAP {
                    self.sizes.sort_by(|a, b| {
                        b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1)))
                    });
                    self.sizes.truncate(SIZES_CAP);
                }
            }
        }
    }

    /// RFM inputs as of `now_ms`.
    pub fn rfm(&self, now_ms: i64) -> Rfm {
        Rfm {
            recency_days: self
                .last_purchase_ms
                .map(|t| ((now_ms - t).max(0) as f64) / 86_400_000.0),
            frequency: self.orders,
            monetary_eur: self.monetary_cents as f64 / 100.0,
        }
    }

    /// The rule-based segment at `now_ms` ("New" for a shopper never seen).
    pub fn segment_at(&self, now_ms: i64, ctx: &Context) -> &'static str {
        if self.first_seen_ms == 0 {
            return "New";
        }
        let days = |t: i64| ((now_ms - t).max(0) as f64) / 86_400_000.0;
        let views_7d = self.counts.get(Kind::View).window(2, now_ms);
        rule_segment(
            &ctx.config.segments,
            &self.rfm(now_ms),
            days(self.first_seen_ms),
            days(self.last_seen_ms),
            views_7d,
        )
    }

    /// The features served and exported, evaluated at `now`.
    pub fn features(&self, id: &str, now: DateTime<Utc>, ctx: &Context) -> UserFeatures {
        let now_ms = now.timestamp_millis();
        let hl = ctx.config.affinity_half_life_ms();
        let ms = |t: i64| Utc.timestamp_millis_opt(t).single();
        let mut affinities = BTreeMap::new();
        for (dim, d) in AFFINITY_DIMS.iter().zip(&self.affinity) {
            let top: BTreeMap<String, f64> = d
                .at(now_ms, hl)
                .into_iter()
                .take(10)
                .map(|(n, s)| (n, (s * 1e4).round() / 1e4))
                .collect();
            affinities.insert((*dim).to_string(), top);
        }
        let mut preferred_sizes: BTreeMap<String, (u32, String)> = BTreeMap::new();
        for (c, s, n) in &self.sizes {
            let e = preferred_sizes
                .entry(c.clone())
                .or_insert((0, String::new()));
            if *n > e.0 || (*n == e.0 && *s < e.1) {
                *e = (*n, s.clone());
            }
        }
        let rfm = self.rfm(now_ms);
        let segment = self.segment_at(now_ms, ctx);
        UserFeatures {
            user: id.to_string(),
            as_of: now,
            first_seen: ms(self.first_seen_ms),
            last_seen: ms(self.last_seen_ms),
            counts: self.counts.to_json(now_ms),
            totals: Kind::ALL
                .iter()
                .map(|k| (k.name().to_string(), self.totals[*k as usize]))
                .collect(),
            last_viewed: self.viewed.iter().map(|(p, _)| p.clone()).collect(),
            last_purchased: self.purchased.iter().map(|(p, _)| p.clone()).collect(),
            seconds_since_last_visit: (now_ms - self.last_seen_ms).max(0) / 1000,
            seconds_since_last_purchase: self.last_purchase_ms.map(|t| (now_ms - t).max(0) / 1000),
            affinities,
            preferred_sizes: preferred_sizes
                .into_iter()
                .map(|(c, (_, s))| (c, s))
                .collect(),
            device: self.device.clone(),
            market: self.market.clone(),
            rfm,
            segment: segment.to_string(),
            cluster: None,
        }
    }

    /// Encodes the blob with revision `rev` (format 3: every time relative to `last_seen_ms`, attribute names as
    /// `dict` codes, product ids as numbers, scores as grid codes; no recent event ids: see
    /// [`UserState::encode_recent_ids`]).
    pub fn encode(&self, rev: u64, dict: &Dict) -> Vec<u8> {
        self.encode_marked(rev, dict, &mut |_, _| {})
    }

    /// Bytes per part of the encoded blob, in blob order (for the memory budget's accounting).
    pub fn encoded_parts(&self, dict: &Dict) -> Vec<(&'static str, usize)> {
        let mut marks = Vec::new();
        let blob = self.encode_marked(0, dict, &mut |part, end| marks.push((part, end)));
        let mut start = 0;
        let out: Vec<(&'static str, usize)> = marks
            .into_iter()
            .map(|(part, end)| {
                let n = end - start;
                start = end;
                (part, n)
            })
            .collect();
        debug_assert_eq!(start, blob.len());
        out
    }

    fn encode_marked(
        &self,
        rev: u64,
        dict: &Dict,
        mark: &mut dyn FnMut(&'static str, usize),
    ) -> Vec<u8> {
        let mut w = Writer::default();
        let newest = self.last_seen_ms;
        write_header(&mut w, rev, FORMAT_V3);
        self.fences.encode(&mut w);
        mark("header and fences", w.buf.len());
        w.i64(self.first_seen_ms);
        w.i64(newest - self.first_seen_ms);
        w.i64(self.last_purchase_ms.map_or(-1, |t| newest - t));
        dict.write_opt(&mut w, self.device.as_deref());
        dict.write_opt(&mut w, self.market.as_deref());
        w.i64(newest - self.env_ms);
        self.totals.iter().for_each(|t| w.u64(*t));
        w.u64(u64::from(self.orders));
        w.i64(self.monetary_cents);
        mark("times, device, market, totals, RFM", w.buf.len());
        self.counts.encode_masked(&mut w, newest);
        mark("windowed counts", w.buf.len());
        write_recent(&mut w, &self.viewed, newest, 1000);
        mark("last viewed", w.buf.len());
        write_recent(&mut w, &self.purchased, newest, 1000);
        mark("last purchased", w.buf.len());
        // Each group's reference time relative to the previous non-empty group's (the first: the newest event).
        let mut base = newest;
        for a in &self.affinity {
            a.encode_compact(&mut w, dict, base, true);
            if !a.scores.is_empty() {
                base = a.ref_ms;
            }
        }
        mark("affinities", w.buf.len());
        w.usize(self.sizes.len());
        for (c, s, n) in &self.sizes {
            dict.write(&mut w, c);
            dict.write(&mut w, s);
            w.u64(u64::from(*n));
        }
        mark("sizes", w.buf.len());
        w.buf
    }

    /// Decodes a blob written by [`UserState::encode`], or by the format-1 or format-2 encoders of earlier
    /// releases (whose last-N times and scores are then put in the form format 3 keeps, and whose recent event
    /// ids come with the state; a format-3 blob has none: they are under their own key).
    pub fn decode(blob: &[u8], dict: &Dict) -> Result<UserState> {
        let mut r = Reader::new(blob);
        let (rev, format) = read_header(&mut r, &[FORMAT_V1, FORMAT_V2, FORMAT_V3])?;
        if format != FORMAT_V3 {
            let mut s = if format == FORMAT_V1 {
                super::user_v1::decode(&mut r, rev)?
            } else {
                super::user_v2::decode(&mut r, rev, dict.legacy())?
            };
            s.upgrade();
            return Ok(s);
        }
        let fences = Fences::decode(&mut r)?;
        let first_seen_ms = r.i64()?;
        let newest = first_seen_ms + r.i64()?;
        let lp = r.i64()?;
        let last_purchase_ms = (lp >= 0).then(|| newest - lp);
        let device = dict.read_opt(&mut r)?;
        let market = dict.read_opt(&mut r)?;
        let env_ms = newest - r.i64()?;
        let mut totals = [0u64; 4];
        for t in &mut totals {
            *t = r.u64()?;
        }
        let orders = r.u64()? as u32;
        let monetary_cents = r.i64()?;
        let counts = Counters::decode_masked(&mut r, newest)?;
        let viewed = read_recent(&mut r, newest, 1000)?;
        let purchased = read_recent(&mut r, newest, 1000)?;
        let mut affinity: [Decayed; 4] = Default::default();
        let mut base = newest;
        for a in &mut affinity {
            *a = Decayed::decode_compact(&mut r, dict, base, true)?;
            if !a.scores.is_empty() {
                base = a.ref_ms;
            }
        }
        let n = r.usize()?;
        let mut sizes = Vec::with_capacity(n);
        for _ in 0..n {
            sizes.push((dict.read(&mut r)?, dict.read(&mut r)?, r.u64()? as u32));
        }
        if !r.done() {
            return Err(r.corrupt("bytes after the last part"));
        }
        Ok(UserState {
            rev,
            fences,
            first_seen_ms,
            last_seen_ms: newest,
            last_purchase_ms,
            device,
            market,
            env_ms,
            counts,
            totals,
            orders,
            monetary_cents,
            viewed,
            purchased,
            affinity,
            sizes,
            recent_ids: Vec::new(),
        })
    }

    /// Puts a state read from an older format in the form format 3 keeps: last-N times in whole seconds (in
    /// the list order [`push_recent`] gives them) and scores on the grid.
    fn upgrade(&mut self) {
        for list in [&mut self.viewed, &mut self.purchased] {
            list.iter_mut()
                .for_each(|(_, t)| *t = t.div_euclid(1000) * 1000);
            list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        self.affinity.iter_mut().for_each(Decayed::to_score_grid);
    }

    /// The recent event ids as the value of their own key (`None` when there are none: the key is deleted).
    /// Times in whole seconds, the first absolute, then each from the one before.
    pub fn encode_recent_ids(&self) -> Option<Vec<u8>> {
        if self.recent_ids.is_empty() {
            return None;
        }
        let mut w = Writer::default();
        w.u64(RECENT_IDS_FORMAT);
        w.usize(self.recent_ids.len());
        let mut prev = 0;
        for (f, t) in &self.recent_ids {
            let t = t.div_euclid(1000);
            w.fixed_u48(*f);
            w.i64(t - prev);
            prev = t;
        }
        Some(w.buf)
    }

    /// Reads what [`UserState::encode_recent_ids`] wrote.
    pub fn decode_recent_ids(blob: &[u8]) -> Result<Vec<(u64, i64)>> {
        let mut r = Reader::new(blob);
        if r.u64()? != RECENT_IDS_FORMAT {
            return Err(r.corrupt("recent event ids format"));
        }
        let n = r.usize()?;
        if n > 4096 {
            return Err(r.corrupt("recent event ids count"));
        }
        let mut out = Vec::with_capacity(n);
        let mut prev = 0;
        for _ in 0..n {
            let f = r.fixed_u48()?;
            prev += r.i64()?;
            out.push((f, prev * 1000));
        }
        Ok(out)
    }
}

/// Format of the recent-event-ids value.
const RECENT_IDS_FORMAT: u64 = 1;

/// A shopper's features at one instant (online API and offline export share this shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserFeatures {
    /// State key: `u:<user_id>` for registered shoppers, `a:<anonymous_id>` otherwise.
    pub user: String,
    pub as_of: DateTime<Utc>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// `{kind: {"1h","24h","7d","30d"}}` for views, add_to_carts, purchases, returns.
    pub counts: serde_json::Value,
    /// Lifetime totals per kind (add-to-cart counts units, purchases count orders).
    pub totals: BTreeMap<String, u64>,
    /// Newest first, distinct.
    pub last_viewed: Vec<String>,
    pub last_purchased: Vec<String>,
    pub seconds_since_last_visit: i64,
    pub seconds_since_last_purchase: Option<i64>,
    /// Per dimension (category, line, colour, price_band), the ten strongest decayed scores.
    pub affinities: BTreeMap<String, BTreeMap<String, f64>>,
    /// Most frequent size per category.
    pub preferred_sizes: BTreeMap<String, String>,
    pub device: Option<String>,
    pub market: Option<String>,
    pub rfm: Rfm,
    /// Rule-based segment (readable name).
    pub segment: String,
    /// Learned cluster, when a k-means model has been trained.
    pub cluster: Option<usize>,
}
