//! Candidate generation: the model for shoppers it knows, fold-in for shoppers it does not, session and
//! item-to-item candidates from viewed or context products, and the popularity fallbacks.
//!
//! Every generator returns candidates best first, already passing the request's static filters (`ok`);
//! stock by size is checked by the caller once the candidates' stock views are read.

use std::collections::HashMap;
use std::sync::Arc;

use pipelines::catalog::Catalog;

use crate::lookups::ProductView;
use crate::models::LoadedModel;
use crate::rules::engine::Candidate;

/// Where the head of the list came from (the response's `fallback` is `None` for the first three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The shopper's trained vector.
    Model,
    /// A vector folded in from the shopper's recent interactions.
    FoldIn,
    /// Viewed or context products: item factors and co-view neighbours.
    Session,
    SegmentPopularity,
    GlobalPopularity,
    /// Listed products in catalogue order: the last resort when no popularity is known.
    Catalogue,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Model => "model",
            Source::FoldIn => "fold_in",
            Source::Session => "session",
            Source::SegmentPopularity => "segment_popularity",
            Source::GlobalPopularity => "global_popularity",
            Source::Catalogue => "catalogue",
        }
    }

    /// The response's `fallback` value.
    pub fn fallback(self) -> Option<&'static str> {
        match self {
            Source::Model | Source::FoldIn | Source::Session => None,
            other => Some(other.as_str()),
        }
    }
}

/// Weight of a purchased item relative to a viewed one when folding a shopper in.
pub const FOLD_IN_PURCHASE_WEIGHT: f32 = 3.0;
/// Recent items a fold-in or session vector is built from.
pub const FOLD_IN_ITEMS: usize = 20;
/// Share of the model (item factors) in a merged session list; the rest is co-view counts.
pub const SESSION_MODEL_SHARE: f32 = 0.6;

/// The request's filters, asked by product id (lists, co-views) or by catalogue position (model scans,
/// the catalogue walk): the same answer either way, the second without looking the id up.
#[derive(Clone, Copy)]
pub struct Eligible<'a> {
    pub id: &'a (dyn Fn(&str) -> bool + Sync),
    pub at: &'a (dyn Fn(usize) -> bool + Sync),
}

impl Eligible<'_> {
    /// For item `i` of `model`.
    fn item(&self, model: &LoadedModel, i: u32) -> bool {
        model.catalog_position(i).is_some_and(|p| (self.at)(p))
    }
}

fn candidates_of(model: &LoadedModel, top: Vec<(u32, f32)>, reason: &str) -> Vec<Candidate> {
    top.into_iter()
        .map(|(i, s)| Candidate {
            product_id: model.product_id(i).to_string(),
            score: s,
            reasons: vec![reason.to_string()],
        })
        .collect()
}

/// From the trained vector of `user_id`.
pub fn from_user(
    model: &LoadedModel,
    user_id: &str,
    k: usize,
    ok: Eligible,
) -> Option<Vec<Candidate>> {
    let x = model.user_vector(user_id)?;
    let top = model.top_items(x, k, |i| ok.item(model, i));
    Some(candidates_of(model, top, "model"))
}

/// From a vector folded in from viewed (weight 1) and purchased (weight 3) products.
pub fn from_history(
    model: &LoadedModel,
    viewed: &[String],
    purchased: &[String],
    k: usize,
    ok: Eligible,
) -> Option<Vec<Candidate>> {
    let mut items: Vec<(String, f32)> = purchased
        .iter()
        .take(FOLD_IN_ITEMS)
        .map(|p| (p.clone(), FOLD_IN_PURCHASE_WEIGHT))
        .collect();
    items.extend(viewed.iter().take(FOLD_IN_ITEMS).map(|p| (p.clone(), 1.0)));
    let x = model.fold_in(&items)?;
    let top = model.top_items(&x, k, |i| ok.item(model, i));
    Some(candidates_of(model, top, "fold_in"))
}

/// Item-to-item: the mean factor vector of `products` scored by dot product (normalised item vectors, so
/// no single product dominates), merged with their co-view neighbours.
pub fn from_products(
    model: Option<&LoadedModel>,
    products: &[String],
    views: &HashMap<String, Arc<ProductView>>,
    k: usize,
    ok: Eligible,
) -> Vec<Candidate> {
    let by_model = model
        .and_then(|m| {
            let vecs: Vec<&[f32]> = products.iter().filter_map(|p| m.item_vector(p)).collect();
            if vecs.is_empty() {
                return None;
            }
            let mut x = vec![0f32; vecs[0].len()];
            for v in &vecs {
                let norm = training::linalg::dot(v, v).sqrt().max(f32::MIN_POSITIVE);
                for (xi, vi) in x.iter_mut().zip(v.iter()) {
                    *xi += vi / norm;
                }
            }
            let top = m.top_items(&x, k, |i| ok.item(m, i));
            Some(candidates_of(m, top, "similar"))
        })
        .unwrap_or_default();
    let mut co: HashMap<&str, f32> = HashMap::new();
    for (rank, p) in products.iter().enumerate() {
        // More recent (earlier) context products weigh more: 1, 1/2, 1/3…
        let w = 1.0 / (rank as f32 + 1.0);
        if let Some(v) = views.get(p) {
            for (n, count) in &v.co_viewed {
                if !products.contains(n) && (ok.id)(n) {
                    *co.entry(n.as_str()).or_default() += w * *count as f32;
                }
            }
        }
    }
    let mut co: Vec<Candidate> = co
        .into_iter()
        .map(|(p, s)| Candidate {
            product_id: p.to_string(),
            score: s,
            reasons: vec!["co_view".to_string()],
        })
        .collect();
    co.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.product_id.cmp(&b.product_id))
    });
    co.truncate(k);
    merge(by_model, co, SESSION_MODEL_SHARE, k)
}

/// Merges two ranked lists: each list's scores min-max normalised to [0, 1], weighted `share` and
/// `1 − share`, summed per product (reasons joined), best first.
pub fn merge(a: Vec<Candidate>, b: Vec<Candidate>, share: f32, k: usize) -> Vec<Candidate> {
    fn norm(list: &[Candidate]) -> impl Fn(f32) -> f32 {
        let (lo, hi) = list
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), c| {
                (lo.min(c.score), hi.max(c.score))
            });
        move |s| if hi > lo { (s - lo) / (hi - lo) } else { 1.0 }
    }
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let (na, nb) = (norm(&a), norm(&b));
    let mut merged: Vec<Candidate> = Vec::with_capacity(a.len() + b.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for (list, f, w) in [
        (a, &na as &dyn Fn(f32) -> f32, share),
        (b, &nb, 1.0 - share),
    ] {
        for c in list {
            let s = w * f(c.score);
            match index.get(&c.product_id) {
                Some(&i) => {
                    merged[i].score += s;
                    for r in c.reasons {
                        if !merged[i].reasons.contains(&r) {
                            merged[i].reasons.push(r);
                        }
                    }
                }
                None => {
                    index.insert(c.product_id.clone(), merged.len());
                    merged.push(Candidate { score: s, ..c });
                }
            }
        }
    }
    merged.sort_by(|x, y| {
        y.score
            .total_cmp(&x.score)
            .then_with(|| x.product_id.cmp(&y.product_id))
    });
    merged.truncate(k);
    merged
}

/// From a popularity list (`reason` names it).
pub fn from_list(
    list: &[(String, f32)],
    k: usize,
    reason: &str,
    ok: &dyn Fn(&str) -> bool,
) -> Vec<Candidate> {
    list.iter()
        .filter(|(p, _)| ok(p))
        .take(k)
        .map(|(p, s)| Candidate {
            product_id: p.clone(),
            score: *s,
            reasons: vec![reason.to_string()],
        })
        .collect()
}

/// The model's own popularity (training users per item).
pub fn from_model_popularity(model: &LoadedModel, k: usize, ok: Eligible) -> Vec<Candidate> {
    let top = model.popular(k, |i| ok.item(model, i));
    candidates_of(model, top, "global_popularity")
}

/// The listed products of `catalog` (catalogue indices), newest first then by id: the order of
/// [`from_catalogue`], computed once per catalogue.
pub fn catalogue_order(catalog: &Catalog) -> Vec<u32> {
    let products = catalog.products();
    let mut order: Vec<u32> = (0..products.len() as u32)
        .filter(|&i| products[i as usize].is_listed())
        .collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&products[a as usize], &products[b as usize]);
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    order
}

/// Listed products, newest collection first then by id: deterministic, and only used when nothing else is
/// known (an empty store and no model) or to top up a short list. `order` is [`catalogue_order`]; the walk
/// stops at the `k`-th product `ok` accepts.
pub fn from_catalogue(catalog: &Catalog, order: &[u32], k: usize, ok: Eligible) -> Vec<Candidate> {
    order
        .iter()
        .filter(|&&i| (ok.at)(i as usize))
        .map(|&i| &catalog.products()[i as usize])
        .take(k)
        .enumerate()
        .map(|(rank, p)| Candidate {
            product_id: p.id.clone(),
            score: -(rank as f32),
            reasons: vec!["catalogue".to_string()],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, s: f32, r: &str) -> Candidate {
        Candidate {
            product_id: id.into(),
            score: s,
            reasons: vec![r.into()],
        }
    }

    #[test]
    fn merge_normalises_and_sums_shared_products() {
        // a: P1 → 1, P2 → 0 (normalised); b: P2 → 1, P3 → 0. share 0.6:
        // P1 = 0.6, P2 = 0 + 0.4 = 0.4, P3 = 0.
        let out = merge(
            vec![c("P1", 5.0, "similar"), c("P2", -1.0, "similar")],
            vec![c("P2", 9.0, "co_view"), c("P3", 3.0, "co_view")],
            0.6,
            10,
        );
        let want = [("P1", 0.6f32), ("P2", 0.4), ("P3", 0.0)];
        assert_eq!(out.len(), want.len());
        for (c, (id, score)) in out.iter().zip(want) {
            assert_eq!(c.product_id, id);
            assert!((c.score - score).abs() < 1e-6, "{}: {}", id, c.score);
        }
        assert_eq!(out[1].reasons, vec!["similar", "co_view"]);
    }
}
