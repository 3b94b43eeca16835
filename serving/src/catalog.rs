//! The product attributes serving filters, rules and prices read, from the catalogue.
//!
//! Attribute names a rule may use ([`ATTRIBUTES`]): `category`, `line`, `collection`, `colour`,
//! `department` (`women|men|unisex`…), `price_band` (the features' bands of the EUR list price), `on_sale`
//! (`true|false`), `tax_class`, and `product_id`.

use std::sync::Arc;

use pipelines::catalog::{Catalog, Product};

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

/// The value of a named attribute of a product (`None` for an unknown attribute name).
pub fn attribute(p: &Product, name: &str) -> Option<String> {
    Some(match name {
        "product_id" => p.id.clone(),
        "category" => p.category_id.clone(),
        "line" => p.line_id.clone(),
        "collection" => p.collection_id.clone(),
        "colour" => p.colour_code.clone(),
        "department" => enum_name(&p.department),
        "price_band" => features::attrs::price_band(p.price).to_string(),
        "on_sale" => p.sale_price.is_some().to_string(),
        "tax_class" => enum_name(&p.tax_class),
        _ => return None,
    })
}

/// The serde (snake_case) name of a unit enum value.
fn enum_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The catalogue as serving sees it (shared, read-only).
pub type SharedCatalog = Arc<Catalog>;
