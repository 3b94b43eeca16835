//! Serving's price book as commerce's [`PriceList`]: the checkout charges exactly what the storefront showed
//! in the shopper's market (FX, price points, VAT display, merchandisers' overrides). Amounts are converted
//! from major units to cents by rounding; the price book already rounds to cents, so nothing is lost.

use std::sync::Arc;

use commerce::catalog::{PriceList, UnitPrice};
use pipelines::catalog::Product;

use crate::pricing::{Price, PriceBook};
use crate::service::Serving;
use crate::Error;

fn unit(p: Price) -> UnitPrice {
    UnitPrice {
        currency: p.currency,
        gross: (p.amount * 100.0).round() as i64,
        net: (p.amount_ex_vat * 100.0).round() as i64,
        vat_rate_bp: (p.vat_rate * 10_000.0).round() as u32,
    }
}

fn to_commerce(e: Error) -> commerce::Error {
    match e {
        Error::BadInput { field, reason } => commerce::Error::BadInput { field, reason },
        Error::NotFound(m) => commerce::Error::NotFound(m),
        Error::Conflict(m) => commerce::Error::Conflict(m),
        Error::Unavailable(m) => commerce::Error::Unavailable(m),
        Error::Internal(m) => commerce::Error::Internal(m),
    }
}

/// The price book of a running serving role (overrides kept current by its reloader).
pub struct ServingPrices(pub Serving);

impl PriceList for ServingPrices {
    fn unit_price(&self, product: &Product, market: &str) -> commerce::Result<UnitPrice> {
        self.0
            .prices()
            .price(&product.id, market)
            .map(unit)
            .map_err(to_commerce)
    }
}

/// A price book on its own (a commerce-only process refreshes its overrides itself).
pub struct BookPrices(pub Arc<PriceBook>);

impl PriceList for BookPrices {
    fn unit_price(&self, product: &Product, market: &str) -> commerce::Result<UnitPrice> {
        self.0
            .price(&product.id, market)
            .map(unit)
            .map_err(to_commerce)
    }
}
