//! Immutable simulation state shared by all sessions: catalogue, embeddings,
//! shoppers and precomputed browsing pools.

use std::sync::Arc;

use super::params::ARM_IDS;
use super::shopper::{dot, Embeddings, Shopper, Vector, EMBED_DIM};
use crate::catalog::Catalog;

/// Softmax temperature for choosing which category to browse.
const CATEGORY_TEMPERATURE: f32 = 0.3;

/// Immutable simulation world shared by all sessions.
pub(crate) struct World {
    pub catalog: Arc<Catalog>,
    pub emb: Embeddings,
    pub shoppers: Vec<Shopper>,
    /// Listed (not hidden/discontinued) product positions.
    pub listed: Vec<u32>,
    /// Listed products per category position.
    pub by_category: Vec<Vec<u32>>,
    /// Mean embedding of each category's listed products (`None` if empty).
    pub centroids: Vec<Option<Vector>>,
    /// Landing-page assortment of each banner arm, in [`ARM_IDS`] order.
    pub by_arm: Vec<Vec<u32>>,
}

impl World {
    pub(crate) fn new(catalog: Arc<Catalog>, emb: Embeddings, shoppers: Vec<Shopper>) -> World {
        let cats = catalog.categories();
        let mut by_category = vec![Vec::new(); cats.len()];
        let mut listed = Vec::new();
        let mut by_arm = vec![Vec::new(); ARM_IDS.len()];
        for (i, p) in catalog.iter().enumerate() {
            if !p.is_listed() {
                continue;
            }
            let i = i as u32;
            listed.push(i);
            if let Some(c) = cats.iter().position(|c| c.id == p.category_id) {
                by_category[c].push(i);
            }
            for (a, arm) in ARM_IDS.iter().enumerate() {
                let hit = match *arm {
                    "hero_fw26_coats" => {
                        p.collection_id == "FW26" && p.category_id.starts_with("coats")
                    }
                    "hero_sale" => p.sale_price.is_some(),
                    "hero_new_in" => p.collection_id == "SS27",
                    "hero_sneakers" => p.category_id == "sneakers",
                    _ => p.line_id == "atelier",
                };
                if hit {
                    by_arm[a].push(i);
                }
            }
        }
        let centroids = by_category
            .iter()
            .map(|ps| {
                (!ps.is_empty()).then(|| {
                    let mut c = [0f32; EMBED_DIM];
                    for &p in ps {
                        c.iter_mut()
                            .zip(&emb.product[p as usize])
                            .for_each(|(a, b)| *a += b / ps.len() as f32);
                    }
                    c
                })
            })
            .collect();
        World {
            catalog,
            emb,
            shoppers,
            listed,
            by_category,
            centroids,
            by_arm,
        }
    }

    /// Category weights of a shopper: softmax of taste · centroid.
    pub(crate) fn category_weights(&self, taste: &Vector) -> Vec<f64> {
        self.centroids
            .iter()
            .map(|c| {
                c.map_or(0.0, |c| {
                    f64::from(dot(taste, &c) / CATEGORY_TEMPERATURE).exp()
                })
            })
            .collect()
    }
}
