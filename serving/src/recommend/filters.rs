//! The request's filters, which nothing (not even a rule's pin) may bypass: listed (not hidden, not
//! discontinued), not excluded by the caller, not already bought (per placement), not a context product,
//! and, when `size` is asked, in stock in that size somewhere.
//!
//! Stock by size: a product whose sizes do not include the requested one is filtered, except one-size (`TU`)
//! products, which fit everyone. Stock comes from the features' stock view (`stock_level` messages on
//! `lusso.commerce.v1`, summed over the 4 locations) when the product has stock messages for that size, else
//! from the catalogue's stock. When the feature store is unreachable the catalogue's stock is used.

use std::collections::HashMap;
use std::sync::Arc;

use pipelines::catalog::{Catalog, Product};

use crate::catalog::CatalogIndex;
use crate::lookups::{Lookups, ProductView};
use crate::rules::engine::Candidate;

/// One-size products' size label.
pub const ONE_SIZE: &str = "TU";

/// The filters of one request.
pub struct Filters<'a> {
    pub catalog: &'a Catalog,
    pub index: &'a CatalogIndex,
    /// Catalogue positions of the excluded products, sorted.
    excluded: Vec<u32>,
    pub size: Option<String>,
    /// Size bits a product must have one of (see [`CatalogIndex::size_mask`]).
    size_mask: Option<u64>,
    /// Stock views read so far.
    pub views: HashMap<String, Arc<ProductView>>,
}

impl<'a> Filters<'a> {
    pub fn new(
        catalog: &'a Catalog,
        index: &'a CatalogIndex,
        exclude: impl IntoIterator<Item = String>,
        size: Option<String>,
    ) -> Filters<'a> {
        let mut excluded: Vec<u32> = exclude
            .into_iter()
            .filter_map(|id| catalog.product_index(&id))
            .map(|i| i as u32)
            .collect();
        excluded.sort_unstable();
        excluded.dedup();
        let size_mask = size.as_deref().and_then(|s| index.size_mask(s, ONE_SIZE));
        Filters {
            catalog,
            index,
            excluded,
            size,
            size_mask,
            views: HashMap::new(),
        }
    }

    /// Everything but stock: known, listed, not excluded.
    pub fn ok(&self, product_id: &str) -> bool {
        self.catalog
            .product_index(product_id)
            .is_some_and(|pos| self.ok_at(pos))
    }

    /// [`Filters::ok`] for the product at catalogue position `pos` (no id lookup: what scans check).
    pub fn ok_at(&self, pos: usize) -> bool {
        self.index.listed(pos)
            && self.excluded.binary_search(&(pos as u32)).is_err()
            && match (self.size_mask, &self.size) {
                (_, None) => true,
                (Some(mask), Some(_)) => self.index.size_bits(pos) & mask != 0,
                (None, Some(_)) => self.has_size(&self.catalog.products()[pos]),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// By position and by id, the filters answer as the plain reading of the product does: listed, not
    /// excluded, and (when asked) made in the size or one-size.
    #[test]
    fn position_and_id_checks_agree_with_the_products() {
        let catalog = Catalog::generate_with(3, 3_000);
        let index = CatalogIndex::new(&catalog);
        let products = catalog.products();
        let excluded = [
            products[5].id.clone(),
            products[77].id.clone(),
            "P999999".into(),
        ];
        let mut sizes: Vec<Option<&str>> =
            vec![None, Some("M"), Some("42"), Some(ONE_SIZE), Some("99")];
        sizes.push(Some(products[9].variants[0].size.as_str()));
        let mut passed = 0;
        for size in sizes {
            let f = Filters::new(&catalog, &index, excluded.clone(), size.map(str::to_string));
            for (pos, p) in products.iter().enumerate() {
                let want = p.is_listed()
                    && !excluded.contains(&p.id)
                    && size.is_none_or(|s| {
                        p.variants.iter().any(|v| v.size == s || v.size == ONE_SIZE)
                    });
                assert_eq!(f.ok_at(pos), want, "{} size {size:?}", p.id);
                assert_eq!(f.ok(&p.id), want, "{} size {size:?}", p.id);
                passed += usize::from(want);
            }
            assert!(!f.ok("P999999"));
        }
        // Each size case keeps some products and drops others.
        assert!(passed > 3_000 && passed < 6 * 3_000, "{passed}");
    }

    #[test]
    fn the_catalogue_fallback_order_is_newest_first_then_by_id() {
        let catalog = Catalog::generate_with(3, 2_000);
        let order = CatalogIndex::new(&catalog).newest_first().to_vec();
        let products = catalog.products();
        assert_eq!(
            order.len(),
            products.iter().filter(|p| p.is_listed()).count()
        );
        for w in order.windows(2) {
            let (a, b) = (&products[w[0] as usize], &products[w[1] as usize]);
            assert!(
                a.created_at > b.created_at || (a.created_at == b.created_at && a.id < b.id),
                "{} before {}",
                a.id,
                b.id
            );
        }
    }
}
