//! The product attributes serving filters, rules and prices read, from the catalogue.
//!
//! Attribute names a rule may use ([`ATTRIBUTES`]): `category`, `line`, `collection`, `colour`,
//! `department` (`women|men|unisex`…), `price_band` (the features' bands of the EUR list price), `on_sale`
//! (`true|false`), `tax_class`, and `product_id`.

use std::collections::HashMap;
use std::sync::Arc;

use pipelines::catalog::{Catalog, Department, Product, TaxClass};

/// Attributes rules can match on.
pub const ATTRIBUTES: &[&str] = &[
    "product_id",
    "category",
    "line",
    "collection",
    "colour",
    "department",
    "price_band",
    "on_sale",
    "tax_class",
];

/// The value of a named attribute of a product (`None` for an unknown attribute name), borrowed: rules read
/// several attributes of every candidate on each request.
pub fn attribute<'p>(p: &'p Product, name: &str) -> Option<&'p str> {
    Some(match name {
        "product_id" => &p.id,
        "category" => &p.category_id,
        "line" => &p.line_id,
        "collection" => &p.collection_id,
        "colour" => &p.colour_code,
        "department" => department_name(p.department),
        "price_band" => features::attrs::price_band(p.price),
        "on_sale" => {
            if p.sale_price.is_some() {
                "true"
            } else {
                "false"
            }
        }
        "tax_class" => tax_class_name(p.tax_class),
        _ => return None,
    })
}

/// The serde (snake_case) name of a department.
fn department_name(d: Department) -> &'static str {
    match d {
        Department::Donna => "donna",
        Department::Uomo => "uomo",
        Department::Unisex => "unisex",
        Department::Bambino => "bambino",
    }
}

/// The serde (snake_case) name of a tax class.
fn tax_class_name(t: TaxClass) -> &'static str {
    match t {
        TaxClass::Standard => "standard",
        TaxClass::Reduced => "reduced",
        TaxClass::SuperReduced => "super_reduced",
        TaxClass::Exempt => "exempt",
    }
}

/// The catalogue as serving sees it (shared, read-only).
pub type SharedCatalog = Arc<Catalog>;

/// Per-product facts the request's filters check for every candidate, by catalogue position (no id lookup),
/// built once per catalogue: about 13 bytes per product.
#[derive(Debug, Default)]
pub struct CatalogIndex {
    /// Not hidden, not discontinued.
    listed: Vec<bool>,
    /// The sizes a product comes in: bit `b` for the `b`-th label of `sizes`.
    size_bits: Vec<u64>,
    /// Size labels with a bit (the first 64 distinct labels met; the catalogue has about 50).
    sizes: HashMap<String, u32>,
    /// Some product has a size label beyond the 64 bits: the filters read variants instead.
    sizes_overflow: bool,
    /// Listed products newest first, then by id (the catalogue fallback's order).
    newest_first: Vec<u32>,
}

impl CatalogIndex {
    pub fn new(catalog: &Catalog) -> CatalogIndex {
        let mut index = CatalogIndex::default();
        for p in catalog.products() {
            let mut bits = 0u64;
            for v in &p.variants {
                let next = index.sizes.len() as u32;
                let b = match index.sizes.get(&v.size) {
                    Some(&b) => Some(b),
                    None if next < 64 => {
                        index.sizes.insert(v.size.clone(), next);
                        Some(next)
                    }
                    None => None,
                };
                match b {
                    Some(b) => bits |= 1 << b,
                    None => index.sizes_overflow = true,
                }
            }
            index.listed.push(p.is_listed());
            index.size_bits.push(bits);
        }
        index.newest_first = crate::recommend::candidates::catalogue_order(catalog);
        index
    }

    /// Whether the product at `pos` is listed.
    pub fn listed(&self, pos: usize) -> bool {
        self.listed.get(pos).copied().unwrap_or(false)
    }

    /// The bits of a product in `size` or one-size (`None`: sizes must be read from the variants).
    pub fn size_mask(&self, size: &str, one_size: &str) -> Option<u64> {
        if self.sizes_overflow {
            return None;
        }
        let bit = |s: &str| self.sizes.get(s).map_or(0, |&b| 1u64 << b);
        Some(bit(size) | bit(one_size))
    }

    /// The sizes of the product at `pos`, as bits.
    pub fn size_bits(&self, pos: usize) -> u64 {
        self.size_bits.get(pos).copied().unwrap_or(0)
    }

    /// Listed products, newest first.
    pub fn newest_first(&self) -> &[u32] {
        &self.newest_first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rules name enum values as the catalogue's JSON does.
    #[test]
    fn enum_attributes_are_the_serde_names() {
        let json = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
        for d in [
            Department::Donna,
            Department::Uomo,
            Department::Unisex,
            Department::Bambino,
        ] {
            assert_eq!(department_name(d), json(serde_json::to_value(d).unwrap()));
        }
        for t in [
            TaxClass::Standard,
            TaxClass::Reduced,
            TaxClass::SuperReduced,
            TaxClass::Exempt,
        ] {
            assert_eq!(tax_class_name(t), json(serde_json::to_value(t).unwrap()));
        }
    }
}
