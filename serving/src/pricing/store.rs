//! Durable price overrides: the [`OverrideStore`] trait and its in-memory implementation.
//!
//! The store checks what it can on its own (ISO codes, the amount); the catalogue-dependent checks
//! (product exists, market supported, the market's currency) are [`super::PriceBook::validate_override`],
//! which the HTTP layer runs before [`OverrideStore::put`]. Every [`super::PriceBook`] replica keeps all
//! overrides in memory, hence the bound [`MAX_OVERRIDES`] in every implementation.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::whole_cents;
use crate::{Error, Result};

/// Most overrides a store holds (≈ 40 markets' worth of the whole 2,400-product catalogue; ≈ 150 B each
/// in a price book, so ≈ 15 MB per replica at the bound). A put that would exceed it is a
/// [`Error::Conflict`].
pub const MAX_OVERRIDES: usize = 100_000;
/// Longest product id accepted (catalogue ids are 7 characters; the bound only stops abuse).
pub const MAX_PRODUCT_ID_CHARS: usize = 64;

/// Largest amount (major units) an override may set: a sanity bound well above the dearest couture piece.
pub const MAX_OVERRIDE_AMOUNT: f64 = 1_000_000.0;
/// A merchandiser's request to set the shopper-facing amount of a product in a market.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceOverrideInput {
    /// Catalogue id, e.g. `P000123`.
    pub product_id: String,
    /// ISO 3166-1 alpha-2 market.
    pub market: String,
    /// Shopper-facing amount in `currency`, major units, at most 2 decimals, in (0, 1,000,000].
    pub amount: f64,
    /// ISO 4217; must be the market's currency.
    pub currency: String,
}

/// A stored override: it replaces the FX-computed price of (product, market).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PriceOverride {
    pub product_id: String,
    pub market: String,
    /// Shopper-facing amount in `currency`, major units.
    pub amount: f64,
    pub currency: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// Checks an override amount: finite, in (0, [`MAX_OVERRIDE_AMOUNT`]], at most 2 decimals.
pub fn validate_amount(amount: f64) -> Result<()> {
    if !(amount.is_finite() && amount > 0.0 && amount <= MAX_OVERRIDE_AMOUNT) {
        return Err(Error::bad(
            "amount",
            format!("must be finite, > 0 and ≤ {MAX_OVERRIDE_AMOUNT}, got {amount}"),
        ));
    }
    if !whole_cents(amount) {
        return Err(Error::bad(
            "amount",
            format!("at most 2 decimals, got {amount}"),
        ));
    }
    Ok(())
}

/// Where price overrides live.
#[async_trait]
pub trait OverrideStore: Send + Sync {
    /// Every override, ordered by product id then market.
    async fn list(&self) -> Result<Vec<PriceOverride>>;
    /// Creates or replaces the override of (product, market); returns it as stored.
    async fn put(&self, input: PriceOverrideInput, actor: &str) -> Result<PriceOverride>;
    /// Removes the override of (product, market); [`Error::NotFound`] when there is none.
    async fn delete(&self, product_id: &str, market: &str, actor: &str) -> Result<()>;
    /// A counter that moves on every successful write (readers reload when it changes).
    async fn revision(&self) -> Result<i64>;
    /// Human description (backend, table).
    fn describe(&self) -> String;
}

/// The checks a store runs on its own: product id present and short, ISO market and currency, amount.
pub(crate) fn check_input(o: &PriceOverrideInput) -> Result<()> {
    if o.product_id.is_empty() || o.product_id.chars().count() > MAX_PRODUCT_ID_CHARS {
        return Err(Error::bad(
            "product_id",
            format!("must be 1–{MAX_PRODUCT_ID_CHARS} characters"),
        ));
    }
    if !pipelines::iso::is_country(&o.market) {
        return Err(Error::bad(
            "market",
            format!("`{}` is not an ISO 3166-1 alpha-2 code", o.market),
        ));
    }
    if !pipelines::iso::is_currency(&o.currency) {
        return Err(Error::bad(
            "currency",
            format!("`{}` is not an ISO 4217 code", o.currency),
        ));
    }
    validate_amount(o.amount)
}

/// The error for a put beyond the bound.
pub(crate) fn full(max: usize) -> Error {
    Error::Conflict(format!(
        "price overrides are capped at {max} (MAX_OVERRIDES): delete some before adding more"
    ))
}

/// The error for deleting an absent override.
pub(crate) fn absent(product_id: &str, market: &str) -> Error {
    Error::NotFound(format!(
        "no price override for product `{product_id}` in market `{market}`"
    ))
}

/// `now` at PostgreSQL's microsecond precision, so a stored timestamp reads back equal.
pub(crate) fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

struct Inner {
    /// By (product id, market).
    overrides: BTreeMap<(String, String), PriceOverride>,
    revision: i64,
}

/// In-memory overrides for the embedded demo and tests: one process, nothing survives a restart.
pub struct MemoryOverrideStore {
    max: usize,
    inner: Mutex<Inner>,
}

impl Default for MemoryOverrideStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryOverrideStore {
    /// An empty store bounded at [`MAX_OVERRIDES`].
    pub fn new() -> MemoryOverrideStore {
        Self::with_max(MAX_OVERRIDES)
    }

    /// An empty store bounded at `max` overrides (tests use small bounds).
    pub fn with_max(max: usize) -> MemoryOverrideStore {
        MemoryOverrideStore {
            max,
            inner: Mutex::new(Inner {
                overrides: BTreeMap::new(),
                revision: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl OverrideStore for MemoryOverrideStore {
    async fn list(&self) -> Result<Vec<PriceOverride>> {
        Ok(self.lock().overrides.values().cloned().collect())
    }

    async fn put(&self, input: PriceOverrideInput, actor: &str) -> Result<PriceOverride> {
        check_input(&input)?;
        let mut inner = self.lock();
        let key = (input.product_id.clone(), input.market.clone());
        if !inner.overrides.contains_key(&key) && inner.overrides.len() >= self.max {
            return Err(full(self.max));
        }
        let stored = PriceOverride {
            product_id: input.product_id,
            market: input.market,
            amount: (input.amount * 100.0).round() / 100.0,
            currency: input.currency,
            updated_at: now_micros(),
            updated_by: actor.to_string(),
        };
        inner.overrides.insert(key, stored.clone());
        inner.revision += 1;
        tracing::info!(product_id = %stored.product_id, market = %stored.market, amount = stored.amount, actor, "price override set");
        Ok(stored)
    }

    async fn delete(&self, product_id: &str, market: &str, actor: &str) -> Result<()> {
        let mut inner = self.lock();
        let key = (product_id.to_string(), market.to_string());
        if inner.overrides.remove(&key).is_none() {
            return Err(absent(product_id, market));
        }
        inner.revision += 1;
        tracing::info!(product_id, market, actor, "price override deleted");
        Ok(())
    }

    async fn revision(&self) -> Result<i64> {
        Ok(self.lock().revision)
    }

    fn describe(&self) -> String {
        format!("memory (at most {} price overrides)", self.max)
    }
}
