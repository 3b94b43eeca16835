//! Geo pricing: what a shopper in a market sees for a product.
//!
//! # Computation
//! The catalogue holds one price per product: the Italian list price in EUR, VAT-inclusive (22 % IVA for
//! the standard class). For a market `m` and a product of tax class `c`:
//! 1. start from the catalogue price (the sale price when the product is on sale; the list price then
//!    becomes `compare_at`, computed by the same steps);
//! 2. remove Italian VAT: `net_eur = price / (1 + c.rate())` (22 % / 10 % / 0);
//! 3. convert: `net = net_eur · m.eur_rate` (units of the market currency per EUR);
//! 4. add the market's VAT for the class when the market displays VAT-inclusive prices
//!    ([`MarketPricing::display_vat_rate`]): standard → `vat_rate`, reduced → `reduced_vat_rate` (else
//!    `vat_rate`), exempt → 0; a market showing prices without tax (the US) adds nothing;
//! 5. round to the market's price point ([`Rounding`]).
//!
//! An explicit override ([`PriceOverride`], set by a merchandiser in the market's currency) replaces steps
//! 1–5 for the shopper-facing amount. The VAT split of the final amount is done in integer cents, so
//! `amount_ex_vat + vat_amount == amount` exactly. Italy (EUR, 22 %, cent rounding) reproduces the catalogue
//! price exactly.
//!
//! # Cost
//! [`PriceBook::price`] runs for every recommended item: a linear scan of the (≈ 10) markets, one catalogue
//! hash lookup, one override hash lookup under a read lock (never held across `.await`), a few float
//! operations; the only allocations are the three strings of the returned [`Price`].

pub mod postgres;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use pipelines::catalog::{Catalog, TaxClass};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub use postgres::PgOverrideStore;
pub use store::{
    validate_amount, MemoryOverrideStore, OverrideStore, PriceOverride, PriceOverrideInput,
    MAX_OVERRIDES, MAX_OVERRIDE_AMOUNT,
};

/// Fixed reporting rate: pounds per euro. A default only; deployments refresh FX through config.
pub const GBP_PER_EUR: f64 = 0.85;
/// Fixed reporting rate: Swiss francs per euro. A default only; deployments refresh FX through config.
pub const CHF_PER_EUR: f64 = 0.94;
/// Fixed reporting rate: US dollars per euro. A default only; deployments refresh FX through config.
pub const USD_PER_EUR: f64 = 1.08;

/// Price points below this amount (major units) use [`Rounding::below_100_step`].
pub const SMALL_PRICE_THRESHOLD: f64 = 100.0;
/// Largest rounding step accepted in a market's configuration (major units).
pub const MAX_ROUNDING_STEP: f64 = 1_000.0;

/// How a price point is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    /// The next price point at or above the amount.
    Up,
    /// The nearest price point; halves go up.
    Nearest,
}

/// Price-point rounding of the shopper-facing amount.
///
/// The amount is first rounded to cents; then to a multiple of `step` (or of `below_100_step` when the
/// cent amount is below [`SMALL_PRICE_THRESHOLD`]), never below one step; finally `charm` is subtracted
/// (e.g. `0.01` turns `1080` into `1079.99`; `0` keeps round numbers, the house style for luxury).
/// Steps and charm are whole cents; the arithmetic is done in integer cents, so it is exact.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rounding {
    /// Price-point step for amounts ≥ 100, major units (e.g. `10`).
    pub step: f64,
    /// Price-point step for amounts < 100, major units (e.g. `5`).
    pub below_100_step: f64,
    pub mode: RoundingMode,
    /// Subtracted after rounding, major units (`0` for none).
    #[serde(default)]
    pub charm: f64,
}

impl Rounding {
    /// Plain cents: keeps the computed amount (Italy, whose amounts are the catalogue's own price points).
    pub const CENTS: Rounding = Rounding {
        step: 0.01,
        below_100_step: 0.01,
        mode: RoundingMode::Nearest,
        charm: 0.0,
    };
    /// The house's foreign price points: nearest 10 from 100 up, nearest 5 below.
    pub const PRICE_POINTS: Rounding = Rounding {
        step: 10.0,
        below_100_step: 5.0,
        mode: RoundingMode::Nearest,
        charm: 0.0,
    };

    /// Rounds a positive amount (major units) to the price point, in cents.
    pub fn apply_cents(&self, amount: f64) -> i64 {
        let cents = (amount * 100.0).round() as i64;
        let step = if cents < to_cents(SMALL_PRICE_THRESHOLD) {
            to_cents(self.below_100_step)
        } else {
            to_cents(self.step)
        }
        .max(1);
        let snapped = match self.mode {
            RoundingMode::Nearest => (cents + step / 2).div_euclid(step) * step,
            RoundingMode::Up => (cents + step - 1).div_euclid(step) * step,
        }
        .max(step);
        let charm = to_cents(self.charm);
        if snapped > charm {
            snapped - charm
        } else {
            snapped
        }
    }

    /// Rounds a positive amount (major units) to the price point.
    pub fn apply(&self, amount: f64) -> f64 {
        from_cents(self.apply_cents(amount))
    }

    fn validate(&self, field: &str) -> Result<()> {
        for (name, v) in [("step", self.step), ("below_100_step", self.below_100_step)] {
            if !(0.01..=MAX_ROUNDING_STEP).contains(&v) || !whole_cents(v) {
                return Err(Error::bad(
                    format!("{field}.{name}"),
                    format!("must be whole cents in [0.01, {MAX_ROUNDING_STEP}], got {v}"),
                ));
            }
        }
        if !(self.charm >= 0.0 && self.charm < self.below_100_step && whole_cents(self.charm)) {
            return Err(Error::bad(
                format!("{field}.charm"),
                format!(
                    "must be whole cents in [0, below_100_step), got {}",
                    self.charm
                ),
            ));
        }
        Ok(())
    }
}

/// How one market displays prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketPricing {
    /// ISO 3166-1 alpha-2, e.g. `GB`.
    pub market: String,
    /// ISO 4217, e.g. `GBP`.
    pub currency: String,
    /// Units of `currency` per 1 EUR.
    pub eur_rate: f64,
    /// Standard VAT rate included in displayed prices, as a fraction (`0.20`).
    pub vat_rate: f64,
    /// VAT rate for [`TaxClass::Reduced`] products, as a fraction; `None` uses `vat_rate`.
    #[serde(default)]
    pub reduced_vat_rate: Option<f64>,
    /// VAT rate for [`TaxClass::SuperReduced`] products (Italy's 4 %); `None` uses the reduced rate.
    #[serde(default)]
    pub super_reduced_vat_rate: Option<f64>,
    /// Whether displayed prices include VAT (false in the US, where sales tax is added at checkout).
    pub vat_inclusive: bool,
    pub rounding: Rounding,
}

impl MarketPricing {
    /// The VAT rate included in the displayed price of a product of class `class` (0 when the market
    /// displays prices without tax, and for exempt products).
    pub fn display_vat_rate(&self, class: TaxClass) -> f64 {
        if !self.vat_inclusive {
            return 0.0;
        }
        match class {
            TaxClass::Standard => self.vat_rate,
            TaxClass::Reduced => self.reduced_vat_rate.unwrap_or(self.vat_rate),
            TaxClass::SuperReduced => self
                .super_reduced_vat_rate
                .or(self.reduced_vat_rate)
                .unwrap_or(self.vat_rate),
            TaxClass::Exempt => 0.0,
        }
    }

    /// Checks one market's configuration; `field` prefixes the error's field (e.g. `markets[3]`).
    pub fn validate(&self, field: &str) -> Result<()> {
        if !pipelines::iso::is_country(&self.market) {
            return Err(Error::bad(
                format!("{field}.market"),
                format!("`{}` is not an ISO 3166-1 alpha-2 code", self.market),
            ));
        }
        if !pipelines::iso::is_currency(&self.currency) {
            return Err(Error::bad(
                format!("{field}.currency"),
                format!("`{}` is not an ISO 4217 code", self.currency),
            ));
        }
        if !(self.eur_rate.is_finite() && self.eur_rate > 0.0) {
            return Err(Error::bad(
                format!("{field}.eur_rate"),
                format!("must be finite and > 0, got {}", self.eur_rate),
            ));
        }
        for (name, v) in [
            ("vat_rate", Some(self.vat_rate)),
            ("reduced_vat_rate", self.reduced_vat_rate),
            ("super_reduced_vat_rate", self.super_reduced_vat_rate),
        ] {
            if let Some(v) = v {
                if !(0.0..1.0).contains(&v) {
                    return Err(Error::bad(
                        format!("{field}.{name}"),
                        format!("must be a fraction in [0, 1), got {v}"),
                    ));
                }
            }
        }
        self.rounding.validate(&format!("{field}.rounding"))
    }
}

/// Default markets: `(market, currency, units per EUR, standard VAT, reduced VAT, VAT-inclusive display)`.
///
/// VAT rates are the national rates in force in 2025 (European Commission "VAT rates applied in the
/// Member States"; HMRC for GB; the Swiss FTA for CH, 8.1 % / 2.6 % since 1 January 2024). The reduced
/// rate is each country's main reduced rate; the generated catalogue has only standard-rate products.
/// The US shows prices without sales tax (it depends on the ship-to state and is added at checkout).
const DEFAULT_MARKETS: &[(&str, &str, f64, f64, f64, bool)] = &[
    ("IT", "EUR", 1.0, 0.22, 0.10, true),
    ("FR", "EUR", 1.0, 0.20, 0.055, true),
    ("DE", "EUR", 1.0, 0.19, 0.07, true),
    ("ES", "EUR", 1.0, 0.21, 0.10, true),
    ("NL", "EUR", 1.0, 0.21, 0.09, true),
    ("AT", "EUR", 1.0, 0.20, 0.10, true),
    ("BE", "EUR", 1.0, 0.21, 0.06, true),
    ("GB", "GBP", GBP_PER_EUR, 0.20, 0.05, true),
    ("CH", "CHF", CHF_PER_EUR, 0.081, 0.026, true),
    ("US", "USD", USD_PER_EUR, 0.0, 0.0, false),
];

/// Whether a price is the computed list price or a merchandiser's override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    List,
    Override,
}

/// The price of a product in a market, amounts in the market's currency rounded to cents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Price {
    pub product_id: String,
    pub market: String,
    pub currency: String,
    /// What the shopper sees (VAT-inclusive where the market displays so).
    pub amount: f64,
    /// `amount` without the VAT it includes.
    pub amount_ex_vat: f64,
    /// VAT rate included in `amount` (0 for markets displaying prices without tax, and exempt products).
    pub vat_rate: f64,
    /// VAT included in `amount`; `amount_ex_vat + vat_amount == amount` to the cent.
    pub vat_amount: f64,
    pub vat_inclusive: bool,
    /// The full (list) price in this market when the product is on sale and it is above `amount`.
    pub compare_at: Option<f64>,
    pub source: PriceSource,
}

/// Overrides by market position in [`PriceBook::markets`], then product id: amount in cents.
type OverrideMap = Vec<HashMap<String, i64>>;

/// The price lists of all markets over one catalogue, with the current overrides.
pub struct PriceBook {
    catalog: Arc<Catalog>,
    markets: Vec<MarketPricing>,
    overrides: RwLock<Arc<OverrideMap>>,
}

impl PriceBook {
    /// A price book over `catalog` for `markets` (each validated; market codes must be unique).
    pub fn new(catalog: Arc<Catalog>, markets: Vec<MarketPricing>) -> Result<PriceBook> {
        for (i, m) in markets.iter().enumerate() {
            m.validate(&format!("markets[{i}]"))?;
            if markets[..i].iter().any(|o| o.market == m.market) {
                return Err(Error::bad(
                    format!("markets[{i}].market"),
                    format!("`{}` is configured twice", m.market),
                ));
            }
        }
        let empty = vec![HashMap::new(); markets.len()];
        Ok(PriceBook {
            catalog,
            markets,
            overrides: RwLock::new(Arc::new(empty)),
        })
    }

    /// The documented default markets ([`DEFAULT_MARKETS`]): euro-area markets at nearest-10/5 price
    /// points except Italy (cents, so the catalogue's prices come out unchanged), GB, CH, US.
    pub fn default_markets() -> Vec<MarketPricing> {
        DEFAULT_MARKETS
            .iter()
            .map(
                |&(market, currency, eur_rate, vat, reduced, inclusive)| MarketPricing {
                    market: market.to_string(),
                    currency: currency.to_string(),
                    eur_rate,
                    vat_rate: vat,
                    reduced_vat_rate: Some(reduced),
                    super_reduced_vat_rate: (market == "IT").then_some(0.04),
                    vat_inclusive: inclusive,
                    rounding: if market == "IT" {
                        Rounding::CENTS
                    } else {
                        Rounding::PRICE_POINTS
                    },
                },
            )
            .collect()
    }

    /// The configured markets.
    pub fn markets(&self) -> &[MarketPricing] {
        &self.markets
    }

    /// The configuration of `market`, if supported.
    pub fn market(&self, market: &str) -> Option<&MarketPricing> {
        self.markets.iter().find(|m| m.market == market)
    }

    fn market_index(&self, market: &str) -> Result<usize> {
        self.markets
            .iter()
            .position(|m| m.market == market)
            .ok_or_else(|| {
                let known: Vec<&str> = self.markets.iter().map(|m| m.market.as_str()).collect();
                Error::bad(
                    "market",
                    format!(
                        "`{market}` is not a supported market (supported: {})",
                        known.join(", ")
                    ),
                )
            })
    }

    /// The price of `product_id` in `market`: [`Error::NotFound`] for an unknown product,
    /// [`Error::BadInput`] (`market`) for a market without a price list.
    pub fn price(&self, product_id: &str, market: &str) -> Result<Price> {
        let mi = self.market_index(market)?;
        let m = &self.markets[mi];
        let p = self
            .catalog
            .product(product_id)
            .ok_or_else(|| Error::NotFound(format!("product `{product_id}` does not exist")))?;
        let list = list_cents(p.price, p.tax_class, m);
        let sale = p.sale_price.map(|s| list_cents(s, p.tax_class, m));
        let overridden = {
            let map = self.overrides.read().unwrap_or_else(|e| e.into_inner());
            map.get(mi)
                .and_then(|by_product| by_product.get(product_id).copied())
        };
        let (amount, source) = match overridden {
            Some(cents) => (cents, PriceSource::Override),
            None => (sale.unwrap_or(list), PriceSource::List),
        };
        let rate = m.display_vat_rate(p.tax_class);
        let ex = ((amount as f64) / (1.0 + rate)).round() as i64;
        Ok(Price {
            product_id: p.id.clone(),
            market: m.market.clone(),
            currency: m.currency.clone(),
            amount: from_cents(amount),
            amount_ex_vat: from_cents(ex),
            vat_rate: rate,
            vat_amount: from_cents(amount - ex),
            vat_inclusive: m.vat_inclusive,
            compare_at: (p.sale_price.is_some() && list > amount).then(|| from_cents(list)),
            source,
        })
    }

    /// Checks an override against the catalogue and the markets: product exists, market supported, the
    /// currency is the market's, the amount is finite, in (0, 1,000,000] and has at most 2 decimals.
    pub fn validate_override(&self, o: &PriceOverrideInput) -> Result<()> {
        if self.catalog.product(&o.product_id).is_none() {
            return Err(Error::bad(
                "product_id",
                format!("product `{}` does not exist", o.product_id),
            ));
        }
        let m = &self.markets[self.market_index(&o.market)?];
        if o.currency != m.currency {
            return Err(Error::bad(
                "currency",
                format!(
                    "market {} prices in {}, not `{}`",
                    m.market, m.currency, o.currency
                ),
            ));
        }
        validate_amount(o.amount)
    }

    /// Replaces all overrides at once (readers see the old map or the new one, never a mix). Overrides
    /// for a market without a price list, in another currency than the market's, or for a product not
    /// in the catalogue are skipped with a warning. Returns how many were applied.
    pub fn set_overrides(&self, overrides: Vec<PriceOverride>) -> usize {
        let mut map: OverrideMap = vec![HashMap::new(); self.markets.len()];
        let mut applied = 0;
        for o in overrides {
            let target = self
                .markets
                .iter()
                .position(|m| m.market == o.market && m.currency == o.currency);
            match target {
                Some(mi) if self.catalog.product(&o.product_id).is_some() => {
                    map[mi].insert(o.product_id, to_cents(o.amount));
                    applied += 1;
                }
                _ => tracing::warn!(
                    product_id = %o.product_id, market = %o.market, currency = %o.currency,
                    "price override skipped: unknown product, unsupported market or wrong currency"
                ),
            }
        }
        *self.overrides.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        applied
    }

    /// Number of overrides in effect.
    pub fn override_count(&self) -> usize {
        let map = self.overrides.read().unwrap_or_else(|e| e.into_inner());
        map.iter().map(HashMap::len).sum()
    }
}

/// Steps 2–5 of the module doc, in cents of the market currency.
fn list_cents(italian_gross_eur: f64, class: TaxClass, m: &MarketPricing) -> i64 {
    let net_eur = italian_gross_eur / (1.0 + class.rate());
    let gross = net_eur * m.eur_rate * (1.0 + m.display_vat_rate(class));
    m.rounding.apply_cents(gross)
}

pub(crate) fn whole_cents(v: f64) -> bool {
    let c = v * 100.0;
    (c - c.round()).abs() < 1e-6
}

fn to_cents(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

fn from_cents(c: i64) -> f64 {
    c as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn product(id: &str, price: f64, sale: Option<f64>, class: &str) -> serde_json::Value {
        json!({"id": id, "name": id, "line_id": "milano", "category_id": "dresses", "department": "donna",
            "collection_id": "FW26", "colour_code": "NER", "price": price, "sale_price": sale,
            "tax_class": class, "discontinued": false, "hidden": false,
            "created_at": "2026-01-01T00:00:00Z", "variants": []})
    }

    /// A hand-made catalogue: a standard 1,290 coat, a standard 79 T-shirt, a reduced-rate 110 book, an
    /// exempt 250 gift card, a standard 1,000 bag on sale at 600.
    fn book() -> PriceBook {
        let catalog: Catalog = serde_json::from_value(json!({
            "seed": 0, "lines": [], "categories": [], "collections": [], "colours": [], "locations": [],
            "products": [product("COAT", 1290.0, None, "standard"), product("TEE", 79.0, None, "standard"),
                product("BOOK", 110.0, None, "reduced"), product("GIFT", 250.0, None, "exempt"),
                product("BAG", 1000.0, Some(600.0), "standard")]
        }))
        .unwrap();
        PriceBook::new(Arc::new(catalog), PriceBook::default_markets()).unwrap()
    }

    fn amounts(p: &Price) -> (f64, f64, f64) {
        (p.amount, p.amount_ex_vat, p.vat_amount)
    }

    #[test]
    fn italy_is_the_catalogue() {
        let b = book();
        let p = b.price("COAT", "IT").unwrap();
        // 1290 / 1.22 = 1057.38 ex VAT, 232.62 VAT.
        assert_eq!(amounts(&p), (1290.0, 1057.38, 232.62));
        assert_eq!(
            (p.currency.as_str(), p.vat_rate, p.source),
            ("EUR", 0.22, PriceSource::List)
        );
        assert_eq!(b.price("TEE", "IT").unwrap().amount, 79.0);
    }

    #[test]
    fn foreign_markets_by_hand() {
        let b = book();
        // Net of IVA: 1290 / 1.22 = 1057.377049 EUR.
        // GB: × 0.85 = 898.770492 GBP; × 1.20 = 1078.524590 → nearest 10 = 1080; 1080 / 1.2 = 900.00.
        let gb = b.price("COAT", "GB").unwrap();
        assert_eq!(amounts(&gb), (1080.0, 900.0, 180.0));
        assert_eq!((gb.currency.as_str(), gb.vat_inclusive), ("GBP", true));
        // CH: × 0.94 = 993.934426 CHF; × 1.081 = 1074.443115 → 1070; 1070 / 1.081 = 989.824237 → 989.82.
        assert_eq!(
            amounts(&b.price("COAT", "CH").unwrap()),
            (1070.0, 989.82, 80.18)
        );
        // US: × 1.08 = 1141.967213 USD, no tax in the shown price → 1140.
        let us = b.price("COAT", "US").unwrap();
        assert_eq!(amounts(&us), (1140.0, 1140.0, 0.0));
        assert_eq!((us.vat_rate, us.vat_inclusive), (0.0, false));
        // FR: × 1.20 = 1268.852459 → 1270; 1270 / 1.2 = 1058.333 → 1058.33.
        assert_eq!(
            amounts(&b.price("COAT", "FR").unwrap()),
            (1270.0, 1058.33, 211.67)
        );
        // Below 100: 79 / 1.22 × 0.85 × 1.2 = 66.049180 → nearest 5 = 65.
        assert_eq!(b.price("TEE", "GB").unwrap().amount, 65.0);
    }

    #[test]
    fn reduced_and_exempt_classes() {
        let b = book();
        // Reduced: 110 / 1.10 = 100 EUR net. IT 10 % → 110 (100 + 10).
        assert_eq!(
            amounts(&b.price("BOOK", "IT").unwrap()),
            (110.0, 100.0, 10.0)
        );
        // DE 7 % → 107 → nearest 10 = 110; GB 5 %: 100 × 0.85 × 1.05 = 89.25 → 90, 90 / 1.05 = 85.71.
        let de = b.price("BOOK", "DE").unwrap();
        assert_eq!((de.amount, de.vat_rate), (110.0, 0.07));
        assert_eq!(
            amounts(&b.price("BOOK", "GB").unwrap()),
            (90.0, 85.71, 4.29)
        );
        // Exempt: no VAT anywhere. GB 250 × 0.85 = 212.5 → 210; US 250 × 1.08 = 270.
        let gift = b.price("GIFT", "GB").unwrap();
        assert_eq!((amounts(&gift), gift.vat_rate), ((210.0, 210.0, 0.0), 0.0));
        assert_eq!(b.price("GIFT", "IT").unwrap().amount, 250.0);
        assert_eq!(b.price("GIFT", "US").unwrap().amount, 270.0);
    }

    #[test]
    fn sale_price_shows_compare_at() {
        let b = book();
        let it = b.price("BAG", "IT").unwrap();
        assert_eq!((it.amount, it.compare_at), (600.0, Some(1000.0)));
        // GB: 600 / 1.22 × 0.85 × 1.2 = 501.64 → 500; list 1000 / 1.22 × 0.85 × 1.2 = 836.07 → 840.
        let gb = b.price("BAG", "GB").unwrap();
        assert_eq!((gb.amount, gb.compare_at), (500.0, Some(840.0)));
        assert_eq!(b.price("COAT", "GB").unwrap().compare_at, None);
    }

    #[test]
    fn override_wins_and_swaps_atomically() {
        let b = book();
        let o = |id: &str, market: &str, amount: f64, currency: &str| PriceOverride {
            product_id: id.into(),
            market: market.into(),
            amount,
            currency: currency.into(),
            updated_at: Utc::now(),
            updated_by: "test".into(),
        };
        let applied = b.set_overrides(vec![
            o("COAT", "GB", 1050.0, "GBP"),
            o("BAG", "GB", 900.0, "GBP"),
            o("COAT", "CH", 1.0, "EUR"),  // wrong currency: skipped
            o("NOPE", "GB", 10.0, "GBP"), // unknown product: skipped
            o("COAT", "JP", 10.0, "JPY"), // unsupported market: skipped
        ]);
        assert_eq!((applied, b.override_count()), (2, 2));
        let gb = b.price("COAT", "GB").unwrap();
        // 1050 / 1.2 = 875.00 ex VAT.
        assert_eq!(
            (amounts(&gb), gb.source),
            ((1050.0, 875.0, 175.0), PriceSource::Override)
        );
        // An override above the list price hides compare_at.
        assert_eq!(b.price("BAG", "GB").unwrap().compare_at, None);
        assert_eq!(b.price("COAT", "CH").unwrap().source, PriceSource::List);
        b.set_overrides(Vec::new());
        assert_eq!(b.price("COAT", "GB").unwrap().amount, 1080.0);
    }

    #[test]
    fn unknown_product_and_market() {
        let b = book();
        assert!(matches!(b.price("NOPE", "IT"), Err(Error::NotFound(_))));
        assert!(
            matches!(b.price("COAT", "JP"), Err(Error::BadInput { field, .. }) if field == "market")
        );
    }

    #[test]
    fn override_validation() {
        let b = book();
        let input = |product: &str, market: &str, amount: f64, currency: &str| PriceOverrideInput {
            product_id: product.into(),
            market: market.into(),
            amount,
            currency: currency.into(),
        };
        assert!(b
            .validate_override(&input("COAT", "GB", 999.99, "GBP"))
            .is_ok());
        for (bad, field) in [
            (input("NOPE", "GB", 10.0, "GBP"), "product_id"),
            (input("COAT", "JP", 10.0, "JPY"), "market"),
            (input("COAT", "GB", 10.0, "EUR"), "currency"),
            (input("COAT", "GB", 0.0, "GBP"), "amount"),
            (input("COAT", "GB", f64::NAN, "GBP"), "amount"),
            (input("COAT", "GB", 1_000_000.01, "GBP"), "amount"),
            (input("COAT", "GB", 10.001, "GBP"), "amount"),
        ] {
            match b.validate_override(&bad) {
                Err(Error::BadInput { field: f, .. }) => assert_eq!(f, field, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn rounding_steps() {
        let r = Rounding::PRICE_POINTS;
        for (x, want) in [
            (104.99, 100.0),
            (105.0, 110.0), // halves go up
            (99.99, 100.0), // below 100: nearest 5
            (97.49, 95.0),
            (97.5, 100.0),
            (2.0, 5.0), // never below one step
            (1234.56, 1230.0),
        ] {
            assert_eq!(r.apply(x), want, "{x}");
        }
        let up = Rounding {
            mode: RoundingMode::Up,
            ..r
        };
        assert_eq!(
            (up.apply(100.01), up.apply(95.01), up.apply(110.0)),
            (110.0, 100.0, 110.0)
        );
        let charm = Rounding { charm: 0.01, ..r };
        assert_eq!(charm.apply(1078.52), 1079.99);
        assert_eq!(Rounding::CENTS.apply(129.904), 129.9);
        let bad = MarketPricing {
            rounding: Rounding { step: 0.001, ..r },
            ..PriceBook::default_markets()[7].clone()
        };
        assert!(
            matches!(bad.validate("m"), Err(Error::BadInput { field, .. }) if field == "m.rounding.step")
        );
        let twice = [PriceBook::default_markets(), PriceBook::default_markets()].concat();
        assert!(PriceBook::new(Arc::new(Catalog::generate_with(1, 5)), twice).is_err());
    }

    #[test]
    fn every_product_in_every_market_reconciles_to_the_cent() {
        let catalog = Arc::new(Catalog::generate(42));
        let b = PriceBook::new(catalog.clone(), PriceBook::default_markets()).unwrap();
        let cents = |v: f64| {
            let c = v * 100.0;
            assert!((c - c.round()).abs() < 1e-6, "{v} is not whole cents");
            c.round() as i64
        };
        for p in catalog.iter() {
            for m in b.markets() {
                let price = b.price(&p.id, &m.market).unwrap();
                assert!(price.amount > 0.0, "{price:?}");
                assert_eq!(
                    cents(price.amount_ex_vat) + cents(price.vat_amount),
                    cents(price.amount),
                    "{price:?}"
                );
                if let Some(c) = price.compare_at {
                    assert!(p.sale_price.is_some() && c > price.amount, "{price:?}");
                }
                if m.market == "IT" {
                    assert_eq!(price.amount, p.effective_price(), "{price:?}");
                    assert_eq!(price.compare_at, p.sale_price.map(|_| p.price));
                }
            }
        }
    }
}
