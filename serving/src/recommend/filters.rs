//! The request's filters, which nothing (not even a rule's pin) may bypass: listed (not hidden, not
//! discontinued), not excluded by the caller, not already bought (per placement), not a context product,
//! and, when `size` is asked, in stock in that size somewhere.
//!
//! Stock by size: a product whose sizes do not include the requested one is filtered, except one-size (`TU`)
//! products, which fit everyone. Stock comes from the features' stock view (`stock_level` messages on
//! `lusso.commerce.v1`, summed over the 4 locations) when the product has stock messages for that size, else
//! from the catalogue's stock. When the feature store is unreachable the catalogue's stock is used.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pipelines::catalog::{Catalog, Product};

use crate::lookups::{Lookups, ProductView};
use crate::rules::engine::Candidate;

/// One-size products' size label.
pub const ONE_SIZE: &str = "TU";

/// The filters of one request.
pub struct Filters<'a> {
    pub catalog: &'a Catalog,
    pub exclude: HashSet<String>,
    pub size: Option<String>,
    /// Stock views read so far.
    pub views: HashMap<String, Arc<ProductView>>,
}

impl<'a> Filters<'a> {
    pub fn new(
        catalog: &'a Catalog,
        exclude: HashSet<String>,
        size: Option<String>,
    ) -> Filters<'a> {
        Filters {
            catalog,
            exclude,
            size,
            views: HashMap::new(),
        }
    }

    /// Everything but stock: known, listed, not excluded.
    pub fn ok(&self, product_id: &str) -> bool {
        self.catalog.product(product_id).is_some_and(|p| {
            p.is_listed() && !self.exclude.contains(product_id) && self.has_size(p)
        })
    }

    fn has_size(&self, p: &Product) -> bool {
        match &self.size {
            None => true,
            Some(s) => p
                .variants
                .iter()
                .any(|v| &v.size == s || v.size == ONE_SIZE),
        }
    }

    /// Stock in the requested size, from what is known now (views read so far, else the catalogue).
    pub fn in_stock(&self, product_id: &str) -> bool {
        let Some(size) = &self.size else {
            return true;
        };
        let Some(p) = self.catalog.product(product_id) else {
            return false;
        };
        let Some(variant) = p
            .variants
            .iter()
            .find(|v| &v.size == size)
            .or_else(|| p.variants.iter().find(|v| v.size == ONE_SIZE))
        else {
            return false;
        };
        match self.views.get(product_id) {
            Some(view) if view.sizes_tracked.contains(&variant.size) => view
                .sizes_in_stock
                .as_ref()
                .is_some_and(|s| s.contains(&variant.size)),
            _ => variant.total_stock() > 0,
        }
    }

    /// Everything: what pins and fills must pass.
    pub fn eligible(&self, product_id: &str) -> bool {
        self.ok(product_id) && self.in_stock(product_id)
    }

    /// Reads the stock views of `list`'s products not read yet (one round trip) when a size is asked, then
    /// drops the ones out of stock.
    pub async fn keep_in_stock(
        &mut self,
        lookups: &Lookups,
        list: Vec<Candidate>,
    ) -> Vec<Candidate> {
        if self.size.is_none() {
            return list;
        }
        self.read_views(lookups, list.iter().map(|c| c.product_id.as_str()))
            .await;
        list.into_iter()
            .filter(|c| self.in_stock(&c.product_id))
            .collect()
    }

    /// Reads views for the ids not read yet.
    pub async fn read_views<'i>(&mut self, lookups: &Lookups, ids: impl Iterator<Item = &'i str>) {
        let missing: Vec<&str> = ids.filter(|id| !self.views.contains_key(*id)).collect();
        if !missing.is_empty() {
            let got = lookups.products(&missing).await;
            self.views.extend(got);
        }
    }
}
