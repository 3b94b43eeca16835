//! Diversification of a ranked candidate list before the rules run.
//!
//! - Per attribute: walk the list best first and keep at most `max` items per value (`category`, `line`…);
//!   the items over the cap move behind the kept ones (in their order), so the list still has enough items
//!   when the catalogue is narrow.
//! - MMR (Carbonell & Goldstein 1998): pick greedily `argmax λ·rel(i) − (1−λ)·max_{j picked} cos(yᵢ, yⱼ)`,
//!   with `rel` the min-max normalised score and cosine over item factors (items without factors count 0).

use pipelines::catalog::Catalog;

use crate::catalog::attribute;
use crate::models::{cosine, LoadedModel};
use crate::rules::engine::Candidate;

/// At most `max` per value of `attribute` first; the rest after, in order.
pub fn per_attribute(
    list: Vec<Candidate>,
    catalog: &Catalog,
    name: &str,
    max: usize,
) -> Vec<Candidate> {
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    let (mut kept, mut over) = (Vec::with_capacity(list.len()), Vec::new());
    for c in list {
        let value = catalog
            .product(&c.product_id)
            .and_then(|p| attribute(p, name))
            .unwrap_or_default();
        let n = counts.entry(value).or_default();
        *n += 1;
        if *n <= max {
            kept.push(c);
        } else {
            over.push(c);
        }
    }
    kept.extend(over);
    kept
}

/// Re-ranks the first `n` by maximal marginal relevance (the rest follow in their order).
pub fn mmr(
    mut list: Vec<Candidate>,
    model: Option<&LoadedModel>,
    lambda: f32,
    n: usize,
) -> Vec<Candidate> {
    let Some(model) = model.filter(|m| m.has_factors()) else {
        return list;
    };
    if list.len() < 2 {
        return list;
    }
    let (lo, hi) = list
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), c| {
            (lo.min(c.score), hi.max(c.score))
        });
    let rel = |s: f32| if hi > lo { (s - lo) / (hi - lo) } else { 1.0 };
    let vecs: Vec<Option<Vec<f32>>> = list
        .iter()
        .map(|c| model.item_vector(&c.product_id).map(<[f32]>::to_vec))
        .collect();
    let mut remaining: Vec<usize> = (0..list.len()).collect();
    let mut picked: Vec<usize> = Vec::with_capacity(n);
    // Max similarity of each remaining item to the picked ones, updated incrementally (O(n·m) overall).
    let mut max_sim = vec![f32::NEG_INFINITY; list.len()];
    while picked.len() < n && !remaining.is_empty() {
        let mut best = (0usize, f32::NEG_INFINITY);
        for (pos, &i) in remaining.iter().enumerate() {
            let penalty = if picked.is_empty() {
                0.0
            } else {
                max_sim[i].max(0.0)
            };
            let v = lambda * rel(list[i].score) - (1.0 - lambda) * penalty;
            if v > best.1 {
                best = (pos, v);
            }
        }
        let i = remaining.remove(best.0);
        picked.push(i);
        if let Some(vi) = &vecs[i] {
            for &j in &remaining {
                if let Some(vj) = &vecs[j] {
                    max_sim[j] = max_sim[j].max(cosine(vi, vj));
                }
            }
        }
    }
    picked.extend(remaining);
    let mut slots: Vec<Option<Candidate>> = list.drain(..).map(Some).collect();
    picked.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str, score: f32) -> Candidate {
        Candidate {
            product_id: id.into(),
            score,
            reasons: vec![],
        }
    }

    #[test]
    fn per_category_cap_moves_the_surplus_behind() {
        let catalog = Catalog::generate(7);
        let mut same = catalog
            .products()
            .iter()
            .filter(|p| p.category_id == catalog.products()[0].category_id)
            .map(|p| p.id.clone());
        let a: Vec<String> = (0..3).filter_map(|_| same.next()).collect();
        let other = catalog
            .products()
            .iter()
            .find(|p| p.category_id != catalog.products()[0].category_id)
            .unwrap()
            .id
            .clone();
        let list = vec![
            cand(&a[0], 4.0),
            cand(&a[1], 3.0),
            cand(&a[2], 2.0),
            cand(&other, 1.0),
        ];
        let out = per_attribute(list, &catalog, "category", 2);
        let ids: Vec<&str> = out.iter().map(|c| c.product_id.as_str()).collect();
        assert_eq!(
            ids,
            vec![a[0].as_str(), a[1].as_str(), other.as_str(), a[2].as_str()]
        );
    }
}
