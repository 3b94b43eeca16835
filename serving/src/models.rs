//! The promoted model, hot-reloaded: a background task watches the registry, loads a newly promoted version
//! off the async runtime and swaps it in atomically (an `Arc` behind a lock held only to clone or replace the
//! pointer), so no request fails or waits during a swap: requests in flight finish on the model they took.
//!
//! Scoring is one pass over the item factors (row-major, contiguous, so the scan streams through memory). On a
//! large catalogue the pass reads bfloat16 copies of the factors (half the bytes, [`training::approx`]); the
//! best candidates by that approximate score are re-scored exactly in `f32`, and the result is kept only when
//! the approximation's error bound proves that no item left out could rank among them (else the exact scan
//! runs), so the answer is always the exact top-k. The best items are taken with a sampled threshold (a
//! bounded heap on small catalogues), and eligibility (filters) is checked only down that best-first list, so
//! a filter costs nothing for the bulk of the catalogue.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use pipelines::catalog::Catalog;
use training::approx::Bf16Factors;
use training::linalg::dot;
use training::model::{Algo, Model};
use training::registry::{ModelMeta, Registry};

use crate::{Error, Result};

/// A model ready to serve.
#[derive(Debug)]
pub struct LoadedModel {
    pub meta: ModelMeta,
    pub model: Model,
    /// Per model item: the product is listed in the catalogue (not hidden, not discontinued, known).
    listed: Vec<bool>,
    /// Per model item: its position in the catalogue ([`NOT_IN_CATALOGUE`] when unknown), so the request's
    /// filters are checked by position instead of by looking the id up.
    positions: Vec<u32>,
    /// Per collection of the catalogue, its products by this model's popularity (catalogue indices), built on
    /// first use; at most one entry per catalogue collection.
    rankings: Mutex<HashMap<String, Arc<[u32]>>>,
    /// bfloat16 item factors for the first pass of a scan (catalogues of [`APPROX_MIN_ITEMS`] or more with
    /// finite factors).
    approx: Option<Bf16Factors>,
}

/// An item index with its score, ordered so that a `BinaryHeap` of them is a min-heap on the score (ties: the
/// higher index is "smaller", so the lower index wins, as in `training::linalg::top_k`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry(f32, u32);

impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl LoadedModel {
    pub fn new(meta: ModelMeta, model: Model, catalog: &Catalog) -> LoadedModel {
        let positions: Vec<u32> = model
            .items
            .ids()
            .iter()
            .map(|id| {
                catalog
                    .product_index(id)
                    .map_or(NOT_IN_CATALOGUE, |i| i as u32)
            })
            .collect();
        let listed = positions
            .iter()
            .map(|&i| i != NOT_IN_CATALOGUE && catalog.products()[i as usize].is_listed())
            .collect();
        let approx = (model.algo != Algo::Pop
            && model.k() > 0
            && model.item_factors.rows >= APPROX_MIN_ITEMS)
            .then(|| Bf16Factors::new(&model.item_factors))
            .flatten();
        LoadedModel {
            meta,
            model,
            listed,
            positions,
            rankings: Mutex::new(HashMap::new()),
            approx,
        }
    }

    pub fn version(&self) -> &str {
        &self.meta.version
    }

    /// Whether the model has latent factors (not the popularity baseline).
    pub fn has_factors(&self) -> bool {
        self.model.algo != Algo::Pop && self.model.k() > 0
    }

    /// The trained vector of a user the model saw.
    pub fn user_vector(&self, user_id: &str) -> Option<&[f32]> {
        self.model.user_vector(user_id)
    }

    /// A vector for a shopper the model did not see, from `(product id, weight)` interactions.
    pub fn fold_in(&self, interactions: &[(String, f32)]) -> Option<Vec<f32>> {
        if !self.has_factors() {
            return None;
        }
        self.model.fold_in(interactions)
    }

    /// The factor row of a product.
    pub fn item_vector(&self, product_id: &str) -> Option<&[f32]> {
        if !self.has_factors() {
            return None;
        }
        let i = self.model.items.get(product_id)?;
        Some(self.model.item_factors.row(i as usize))
    }

    /// The product id of item `i`.
    pub fn product_id(&self, i: u32) -> &str {
        self.model.items.id(i)
    }

    /// The catalogue position of item `i` (`None`: not in the catalogue the model was loaded against).
    pub fn catalog_position(&self, i: u32) -> Option<usize> {
        match self.positions.get(i as usize) {
            Some(&p) if p != NOT_IN_CATALOGUE => Some(p as usize),
            _ => None,
        }
    }

    /// Training popularity of a product (0 for one the model has not seen).
    pub fn popularity(&self, product_id: &str) -> f64 {
        self.model
            .items
            .get(product_id)
            .map_or(0.0, |i| f64::from(self.model.popularity[i as usize]))
    }

    /// `collection`'s products in `catalog` (the catalogue this model was loaded against) by popularity, best
    /// first: computed once per collection and kept, so a collection pin does not rank the catalogue per request.
    pub fn collection_ranking(&self, catalog: &Catalog, collection: &str) -> Arc<[u32]> {
        let mut kept = self.rankings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = kept.get(collection) {
            return r.clone();
        }
        let r = crate::rules::engine::rank_collection(catalog, collection, &|p| self.popularity(p));
        // Only the catalogue's collections are kept, which bounds the map.
        if catalog.collections().iter().any(|c| c.id == collection) {
            kept.insert(collection.to_string(), r.clone());
        }
        r
    }

    /// The `k` best listed items for `x` (by `x · yᵢ`) that `eligible` accepts, best first.
    pub fn top(&self, x: &[f32], k: usize, eligible: impl Fn(&str) -> bool) -> Vec<(u32, f32)> {
        self.top_items(x, k, |i| eligible(self.model.items.id(i)))
    }

    /// [`LoadedModel::top`] with eligibility by model item (see [`LoadedModel::catalog_position`]).
    pub fn top_items(
        &self,
        x: &[f32],
        k: usize,
        eligible: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        // One score buffer per worker thread (items × 4 bytes), reused instead of allocated per request.
        SCORES.with(|cell| {
            let mut scores = cell.take();
            let out = match self.approx.as_ref().and_then(|a| Some((a, a.query(x)?))) {
                Some((a, q)) => {
                    a.score_rows(&q, &mut scores);
                    let bound = a.error_bound(&q);
                    self.select(k, |want| self.best_exact(x, want, &scores, bound), eligible)
                }
                None => {
                    training::simd::score_rows(x, &self.model.item_factors, &mut scores);
                    self.select(k, |want| self.best_listed(want, &|i| scores[i]), eligible)
                }
            };
            cell.replace(scores);
            out
        })
    }

    /// Whether scans start with the bfloat16 pass.
    pub fn approximate_first_pass(&self) -> bool {
        self.approx.is_some()
    }

    /// The best `want` listed items by the exact score `x · yᵢ`, from `approx` scores that are each within
    /// `bound` of the exact one: the best `2 × want + 16` by approximate score are re-scored exactly; an item
    /// left out has an approximate score at most the lowest candidate's, so an exact score at most that plus
    /// `bound`, and when that is below the `want`-th exact score among the candidates the answer is among
    /// them (same order and ties as scanning exactly). Otherwise the exact scan runs.
    fn best_exact(&self, x: &[f32], want: usize, approx: &[f32], bound: f32) -> Vec<(u32, f32)> {
        let by_score = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let pool = want.saturating_mul(2).saturating_add(16);
        let candidates = self.best_listed(pool, &|i| approx[i]);
        let rows: Vec<u32> = candidates.iter().map(|c| c.0).collect();
        let mut scores = Vec::with_capacity(rows.len());
        training::simd::score_some(x, &self.model.item_factors, &rows, &mut scores);
        let mut exact: Vec<(u32, f32)> = rows.into_iter().zip(scores).collect();
        exact.sort_unstable_by(by_score);
        let every_item = candidates.len() < pool;
        let separated = exact.len() >= want
            && candidates.last().is_some_and(|floor| {
                f64::from(floor.1) + f64::from(bound) < f64::from(exact[want - 1].1)
            });
        if every_item || separated {
            exact.truncate(want);
            return exact;
        }
        let mut full = Vec::new();
        training::simd::score_rows(x, &self.model.item_factors, &mut full);
        self.best_listed(want, &|i| full[i])
    }

    /// The `k` listed items most similar to `product_id` by factor cosine (popularity order for `pop`).
    pub fn similar(
        &self,
        product_id: &str,
        k: usize,
        eligible: impl Fn(&str) -> bool,
    ) -> Option<Vec<(u32, f32)>> {
        let item = self.model.items.get(product_id)?;
        if !self.has_factors() {
            let pop = &self.model.popularity;
            return Some(self.select(
                k,
                |want| self.best_listed(want, &|i| pop[i]),
                |i| i != item && eligible(self.model.items.id(i)),
            ));
        }
        let scores = self.model.cosine_scores(item);
        Some(self.select(
            k,
            |want| self.best_listed(want, &|j| scores[j]),
            |i| i != item && eligible(self.model.items.id(i)),
        ))
    }

    /// The `k` most popular listed items (training users per item) that `eligible` (by model item) accepts.
    pub fn popular(&self, k: usize, eligible: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        let pop = &self.model.popularity;
        self.select(k, |want| self.best_listed(want, &|i| pop[i]), eligible)
    }

    /// The `k` best listed items that `eligible` accepts, best first (ties to the lower index), where
    /// `best(want)` gives the best `want` listed items by score alone.
    ///
    /// `eligible` (a catalogue lookup and the request's filters) costs far more than a score, so the scan
    /// keeps the best `want` listed items by score alone, then checks eligibility down that list; only when
    /// fewer than `k` of them pass does it scan again with a 4× larger `want`. Same result as checking every
    /// item, because an item outside the best `want` scores no better than any item inside it.
    fn select(
        &self,
        k: usize,
        best: impl Fn(usize) -> Vec<(u32, f32)>,
        eligible: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let mut want = 2 * k + 16;
        loop {
            let best = best(want);
            let exhausted = best.len() < want;
            let out: Vec<(u32, f32)> = best
                .into_iter()
                .filter(|(i, _)| eligible(*i))
                .take(k)
                .collect();
            if out.len() == k || exhausted {
                return out;
            }
            want = want.saturating_mul(4);
        }
    }

    /// The best `want` listed items by `score`, best first (NaN scores skipped; ties to the lower index).
    ///
    /// A large catalogue is cut with a threshold first: the scores of an evenly spaced sample give a value that
    /// about `2 × want` items should beat; one branch-predictable pass keeps the listed items above it, and when
    /// at least `want` are kept the answer is among them (every item left out scores at most the threshold, below
    /// every kept one), so the result is exact. Otherwise (a skewed sample) the bounded heap over every item runs.
    fn best_listed(&self, want: usize, score: &impl Fn(usize) -> f32) -> Vec<(u32, f32)> {
        let by_score = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if let Some(t) = self.sample_threshold(want, score) {
            let mut kept: Vec<(u32, f32)> = Vec::with_capacity(4 * want);
            for (i, listed) in self.listed.iter().enumerate() {
                let s = score(i);
                if s > t && *listed {
                    kept.push((i as u32, s));
                }
            }
            if kept.len() >= want {
                if kept.len() > want {
                    kept.select_nth_unstable_by(want - 1, by_score);
                    kept.truncate(want);
                }
                kept.sort_unstable_by(by_score);
                return kept;
            }
        }
        let mut heap: BinaryHeap<Entry> = BinaryHeap::with_capacity(want + 1);
        for (i, listed) in self.listed.iter().enumerate() {
            if !listed {
                continue;
            }
            let s = score(i);
            if s.is_nan() {
                continue;
            }
            if heap.len() == want {
                let worst = heap.peek().map(|e| e.0).unwrap_or(f32::NEG_INFINITY);
                if s <= worst {
                    continue;
                }
            }
            heap.push(Entry(s, i as u32));
            if heap.len() > want {
                heap.pop();
            }
        }
        let mut out: Vec<(u32, f32)> = heap.into_iter().map(|e| (e.1, e.0)).collect();
        out.sort_unstable_by(by_score);
        out
    }

    /// A score that about `2 × want` listed items beat, from a sample of [`THRESHOLD_SAMPLE`] evenly spaced
    /// items; `None` when the catalogue is too small for a sample to pay off.
    fn sample_threshold(&self, want: usize, score: &impl Fn(usize) -> f32) -> Option<f32> {
        let n = self.listed.len();
        if n < THRESHOLD_MIN_ITEMS || want.saturating_mul(16) > n {
            return None;
        }
        let step = (n / THRESHOLD_SAMPLE).max(1);
        let mut sample: Vec<f32> = (0..n)
            .step_by(step)
            .filter(|i| self.listed[*i])
            .map(score)
            .filter(|s| !s.is_nan())
            .collect();
        // Rank (from the top) of the threshold in the sample: the share 2·want/n of it.
        let rank = (2 * want * sample.len()).div_ceil(n).max(1);
        if rank >= sample.len() {
            return None;
        }
        sample.select_nth_unstable_by(rank, |a, b| b.total_cmp(a));
        Some(sample[rank])
    }
}

thread_local! {
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`LoadedModel::positions`] of an item the catalogue does not have.
const NOT_IN_CATALOGUE: u32 = u32::MAX;
/// Items sampled to place the selection threshold (a 4k-element select costs far less than a heap over 50k).
const THRESHOLD_SAMPLE: usize = 4096;
/// Below this many items the bounded heap alone is cheap enough.
const THRESHOLD_MIN_ITEMS: usize = 8192;
/// Below this many items the `f32` factors fit in cache and the bfloat16 first pass does not pay off.
pub const APPROX_MIN_ITEMS: usize = 8192;

/// Cosine of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let d = dot(a, a).sqrt() * dot(b, b).sqrt();
    if d > 0.0 {
        dot(a, b) / d
    } else {
        0.0
    }
}

/// The promoted model and a few other loaded versions (experiments may route to them).
pub struct Models {
    registry: Option<Registry>,
    catalog: Arc<Catalog>,
    promoted: RwLock<Option<Arc<LoadedModel>>>,
    /// Other versions, most recently used last; at most `extra_max`.
    extra: Mutex<Vec<Arc<LoadedModel>>>,
    extra_max: usize,
}

impl Models {
    /// A holder over `registry` (`None`: no model at all, every answer comes from the fallbacks).
    pub fn new(registry: Option<Registry>, catalog: Arc<Catalog>, extra_max: usize) -> Models {
        Models {
            registry,
            catalog,
            promoted: RwLock::new(None),
            extra: Mutex::new(Vec::new()),
            extra_max,
        }
    }

    /// A holder serving `model` (tests and benchmarks).
    pub fn fixed(model: LoadedModel, catalog: Arc<Catalog>) -> Models {
        let m = Models::new(None, catalog, 0);
        *m.promoted.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(model));
        m
    }

    /// The promoted model now (`None` before the first promotion or load).
    pub fn current(&self) -> Option<Arc<LoadedModel>> {
        self.promoted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A loaded version: the promoted one or one of the extra versions already loaded (never loads on the
    /// request path; see [`Models::preload`]).
    pub fn loaded(&self, version: &str) -> Option<Arc<LoadedModel>> {
        if let Some(m) = self.current().filter(|m| m.version() == version) {
            return Some(m);
        }
        let mut extra = self.extra.lock().unwrap_or_else(|e| e.into_inner());
        let pos = extra.iter().position(|m| m.version() == version)?;
        let m = extra.remove(pos);
        extra.push(m.clone());
        Some(m)
    }

    /// Loads versions experiments route to (off the runtime), keeping at most `extra_max`.
    pub async fn preload(&self, versions: &[String]) -> Result<()> {
        for v in versions {
            if self.loaded(v).is_some() || self.extra_max == 0 {
                continue;
            }
            let m = Arc::new(self.load(v).await?);
            let mut extra = self.extra.lock().unwrap_or_else(|e| e.into_inner());
            extra.push(m);
            while extra.len() > self.extra_max {
                extra.remove(0);
            }
        }
        Ok(())
    }

    async fn load(&self, version: &str) -> Result<LoadedModel> {
        let Some(registry) = self.registry.clone() else {
            return Err(Error::NotFound(format!(
                "model version {version}: no registry"
            )));
        };
        let (catalog, version) = (self.catalog.clone(), version.to_string());
        tokio::task::spawn_blocking(move || {
            let meta = registry.meta(&version)?;
            let model = registry.load(&version)?;
            Ok(LoadedModel::new(meta, model, &catalog))
        })
        .await
        .map_err(|e| Error::Internal(format!("model load task: {e}")))?
    }

    /// Checks the registry once; loads and swaps in a newly promoted version. `Ok(true)` when it swapped.
    pub async fn refresh(&self) -> Result<bool> {
        let Some(registry) = self.registry.clone() else {
            return Ok(false);
        };
        let state = tokio::task::spawn_blocking(move || registry.state())
            .await
            .map_err(|e| Error::Internal(format!("registry task: {e}")))??;
        let current = self.current().map(|m| m.version().to_string());
        match state.promoted {
            Some(v) if Some(&v) != current.as_ref() => {
                let m = match self.loaded(&v) {
                    Some(m) => m,
                    None => Arc::new(self.load(&v).await?),
                };
                *self.promoted.write().unwrap_or_else(|e| e.into_inner()) = Some(m);
                tracing::info!(version = %v, previous = ?current, "promoted model swapped in");
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
