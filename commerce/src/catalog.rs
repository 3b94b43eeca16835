//! The catalogue commerce sells from (the built-in one, indexed by SKU) and the price-list seam.
//!
//! Prices are not commerce's own: [`PriceList`] is implemented by serving's price book in the `lusso`
//! binary, so the checkout charges exactly what the storefront showed in the shopper's market (FX,
//! price points, overrides). [`CatalogPrices`] is the standalone list used by commerce alone (its tests,
//! a commerce-only deployment): every market pays the catalogue's Italian EUR price; outside Italy the
//! price includes the Italian IVA of the product's class as its VAT (origin taxation for EU distance sales
//! under the EU-wide €10,000 threshold); the tax module then removes it for exports.

use std::collections::HashMap;
use std::sync::Arc;

use pipelines::catalog::{Catalog, Product, TaxClass, Variant};

use crate::model::{Cents, RateBp};
use crate::tax;
use crate::{Error, Result};

/// The price of one unit of a product in a market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPrice {
    pub currency: String,
    /// As displayed (VAT-inclusive where the market shows VAT).
    pub gross: Cents,
    /// Without the VAT `gross` includes.
    pub net: Cents,
    /// The VAT rate `gross` includes.
    pub vat_rate_bp: RateBp,
}

/// Where checkout prices come from.
pub trait PriceList: Send + Sync + 'static {
    /// The price of `product_id` in `market`; `Error::BadInput` (`market`) for a market without a list.
    fn unit_price(&self, product: &Product, market: &str) -> Result<UnitPrice>;
}

/// The standalone price list (see the module doc).
pub struct CatalogPrices;

/// Major units (EUR, 2 decimals) to cents, rounding half away from zero.
pub fn to_cents(amount: f64) -> Cents {
    (amount * 100.0).round() as Cents
}

impl PriceList for CatalogPrices {
    fn unit_price(&self, product: &Product, market: &str) -> Result<UnitPrice> {
        if !pipelines::iso::is_country(market) {
            return Err(Error::bad(
                "market",
                format!("`{market}` is not an ISO 3166-1 alpha-2 country"),
            ));
        }
        let gross = to_cents(product.effective_price());
        let rate = tax::italian_rate_bp(product.tax_class);
        let net = round_div(gross * 10_000, 10_000 + i64::from(rate));
        Ok(UnitPrice {
            currency: "EUR".into(),
            gross,
            net,
            vat_rate_bp: rate,
        })
    }
}

/// `a / b` rounded half up, for non-negative `a` and positive `b`.
pub fn round_div(a: i64, b: i64) -> i64 {
    (2 * a + b) / (2 * b)
}

/// The catalogue with a SKU index.
pub struct CatalogIndex {
    catalog: Arc<Catalog>,
    by_sku: HashMap<String, (usize, usize)>,
}

impl CatalogIndex {
    pub fn new(catalog: Arc<Catalog>) -> CatalogIndex {
        let mut by_sku = HashMap::new();
        for (pi, p) in catalog.products().iter().enumerate() {
            for (vi, v) in p.variants.iter().enumerate() {
                by_sku.insert(v.id.clone(), (pi, vi));
            }
        }
        CatalogIndex { catalog, by_sku }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The product and variant of `sku`.
    pub fn variant(&self, sku: &str) -> Option<(&Product, &Variant)> {
        let &(pi, vi) = self.by_sku.get(sku)?;
        let p = &self.catalog.products()[pi];
        Some((p, &p.variants[vi]))
    }

    /// Whether `location` is one of the catalogue's locations.
    pub fn has_location(&self, location: &str) -> bool {
        self.catalog.locations().iter().any(|l| l.id == location)
    }

    /// The ids of the locations, comma-separated (for messages).
    pub fn location_ids(&self) -> String {
        self.catalog
            .locations()
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The tax class name as in JSON.
pub fn tax_class_name(c: TaxClass) -> &'static str {
    match c {
        TaxClass::Standard => "standard",
        TaxClass::Reduced => "reduced",
        TaxClass::SuperReduced => "super_reduced",
        TaxClass::Exempt => "exempt",
    }
}
