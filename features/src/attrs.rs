//! What the features need to know about a product and about money: catalogue attributes, price bands, and the
//! EUR conversion used for RFM monetary values.

use pipelines::catalog::Catalog;

/// Attributes of a product that shopper affinities are kept over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductAttrs {
    pub category: Option<String>,
    pub line: Option<String>,
    pub colour: Option<String>,
    pub price_band: Option<&'static str>,
}

/// Price bands, EUR list price: entry < 250 ≤ core < 600 ≤ premium < 1200 ≤ luxury (cut at the catalogue's
/// category price quartiles, rounded to merchandising price points).
pub fn price_band(price_eur: f64) -> &'static str {
    match price_eur {
        p if p < 250.0 => "entry",
        p if p < 600.0 => "core",
        p if p < 1200.0 => "premium",
        _ => "luxury",
    }
}

/// Catalogue attributes of `product_id`; a product outside the catalogue (e.g. an imported log) gets only the
/// price band of the price seen in the event, when there is one.
pub fn attrs(catalog: &Catalog, product_id: &str, event_price: Option<f64>) -> ProductAttrs {
    match catalog.product(product_id) {
        Some(p) => ProductAttrs {
            category: Some(p.category_id.clone()),
            line: Some(p.line_id.clone()),
            colour: Some(p.colour_code.clone()),
            price_band: Some(price_band(p.price)),
        },
        None => ProductAttrs {
            price_band: event_price.filter(|p| *p > 0.0).map(price_band),
            ..ProductAttrs::default()
        },
    }
}

/// EUR per unit of `currency` (reference rates; the serving price lists carry their own FX). `None` for a
/// currency we do not convert: the amount is then left out of monetary values and counted in metrics.
pub fn eur_per_unit(currency: &str) -> Option<f64> {
    Some(match currency {
        "EUR" => 1.0,
        "GBP" => 1.17,
        "CHF" => 1.05,
        "USD" => 0.92,
        "SEK" => 0.087,
        "DKK" => 0.134,
        "NOK" => 0.085,
        "PLN" => 0.23,
        "CZK" => 0.04,
        "JPY" => 0.0062,
        _ => return None,
    })
}
