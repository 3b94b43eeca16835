//! The commerce service: the state every request reads ([`Commerce`]) and the operations that do not move
//! money (carts, inventory). Checkout and payments are in [`crate::checkout`], returns and invoices in
//! [`crate::aftersale`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::catalog::{CatalogIndex, PriceList};
use crate::config::CommerceConfig;
use crate::inventory::{StockRow, MAX_UNITS_PER_LOCATION};
use crate::metrics::Metrics;
use crate::model::{Cart, CartLine, Cents};
use crate::payments::Providers;
use crate::store::CommerceStore;
use crate::{Error, Result};

/// Where the service's time comes from (a seam for tests of reservation expiry).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What a [`Commerce`] is built from.
pub struct CommerceParts {
    pub config: CommerceConfig,
    pub store: Arc<dyn CommerceStore>,
    pub catalog: Arc<pipelines::catalog::Catalog>,
    pub prices: Arc<dyn PriceList>,
    pub providers: Providers,
    pub clock: Arc<dyn Clock>,
}

/// The commerce service.
pub struct Commerce {
    pub(crate) config: CommerceConfig,
    pub(crate) store: Arc<dyn CommerceStore>,
    pub(crate) catalog: CatalogIndex,
    pub(crate) prices: Arc<dyn PriceList>,
    pub(crate) providers: Providers,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Metrics,
    pub(crate) checkouts: Semaphore,
    pub(crate) order_tokens: crate::order_token::OrderTokens,
}

/// Request body of `POST /v1/carts`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCart {
    /// ISO 3166-1 alpha-2 market whose prices apply (default `IT`).
    #[serde(default)]
    pub market: Option<String>,
    /// Lines to start with.
    #[serde(default)]
    pub lines: Vec<CartLine>,
}

/// A cart line as shown: the catalogue's data and the market's price.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CartLineView {
    pub sku: String,
    pub product_id: String,
    pub name: String,
    pub size: String,
    pub quantity: u32,
    pub currency: String,
    /// Per unit, as the market displays it.
    pub unit_price: Cents,
    pub line_total: Cents,
}

/// A cart as shown.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CartView {
    pub id: Uuid,
    pub market: String,
    pub currency: Option<String>,
    pub lines: Vec<CartLineView>,
    /// Sum of the lines as displayed (the checkout's tax regime may change it, e.g. exports pay no IVA).
    pub subtotal: Cents,
    pub order_id: Option<Uuid>,
}

/// One location's stock of a SKU.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LocationStock {
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

/// `GET /v1/inventory/{sku}`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InventoryView {
    pub sku: String,
    pub product_id: String,
    pub size: String,
    /// Total sellable units (Σ available).
    pub available: i64,
    pub locations: BTreeMap<String, LocationStock>,
}

/// Body of `PUT /v1/inventory/{sku}`: units on hand per location (absolute counts, e.g. after a stock take).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetInventory {
    pub locations: BTreeMap<String, i64>,
}

impl Commerce {
    /// Builds the service and seeds the store with the catalogue's opening stock for every (SKU, location)
    /// it does not hold yet (a restart never resets stock).
    pub async fn new(parts: CommerceParts) -> Result<Commerce> {
        let config = parts.config.validated()?;
        let catalog = CatalogIndex::new(parts.catalog);
        let mut rows = Vec::new();
        for p in catalog.catalog().products() {
            for v in &p.variants {
                for (location, &units) in &v.stock {
                    rows.push(StockRow {
                        sku: v.id.clone(),
                        product_id: p.id.clone(),
                        size: v.size.clone(),
                        location: location.to_string(),
                        on_hand: i64::from(units),
                        reserved: 0,
                        seq: 0,
                    });
                }
            }
        }
        let seeded = parts.store.seed_stock(&rows).await?;
        tracing::info!(
            seeded,
            rows = rows.len(),
            store = %parts.store.describe(),
            "commerce: opening stock"
        );
        let checkouts = Semaphore::new(config.max_concurrent_checkouts);
        Ok(Commerce {
            config,
            store: parts.store,
            catalog,
            prices: parts.prices,
            providers: parts.providers,
            clock: parts.clock,
            metrics: Metrics::new(),
            checkouts,
            order_tokens: crate::order_token::OrderTokens::random(),
        })
    }

    /// The same service issuing order access tokens under `tokens` (the shop's shared secret; the default
    /// is a random one for this process).
    pub fn with_order_tokens(mut self, tokens: crate::order_token::OrderTokens) -> Commerce {
        self.order_tokens = tokens;
        self
    }

    pub fn order_tokens(&self) -> &crate::order_token::OrderTokens {
        &self.order_tokens
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn store(&self) -> &Arc<dyn CommerceStore> {
        &self.store
    }

    pub fn catalog(&self) -> &CatalogIndex {
        &self.catalog
    }

    pub fn config(&self) -> &CommerceConfig {
        &self.config
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Checks one cart line against the catalogue and the bounds; `field` prefixes errors.
    fn check_line(&self, line: &CartLine, field: &str) -> Result<()> {
        let (product, _) = self.catalog.variant(&line.sku).ok_or_else(|| {
            Error::bad(
                format!("{field}.sku"),
                format!("`{}` is not a SKU of the catalogue", line.sku),
            )
        })?;
        if !product.is_listed() {
            return Err(Error::bad(
                format!("{field}.sku"),
                format!("`{}` is not on sale (hidden or discontinued)", line.sku),
            ));
        }
        if line.quantity == 0 || line.quantity > self.config.max_line_quantity {
            return Err(Error::bad(
                format!("{field}.quantity"),
                format!(
                    "must be 1–{}, got {}",
                    self.config.max_line_quantity, line.quantity
                ),
            ));
        }
        Ok(())
    }

    fn check_market(&self, market: &str) -> Result<()> {
        if !pipelines::iso::is_country(market) {
            return Err(Error::bad(
                "market",
                format!("`{market}` is not an ISO 3166-1 alpha-2 country"),
            ));
        }
        // A market the price list cannot price is refused now, not at checkout.
        if let Some(p) = self.catalog.catalog().products().first() {
            self.prices.unit_price(p, market)?;
        }
        Ok(())
    }

    /// `POST /v1/carts`.
    pub async fn create_cart(&self, input: NewCart) -> Result<CartView> {
        let market = input
            .market
            .as_deref()
            .unwrap_or("IT")
            .trim()
            .to_ascii_uppercase();
        self.check_market(&market)?;
        let mut cart = Cart {
            id: Uuid::new_v4(),
            market,
            lines: Vec::new(),
            created_at: self.now(),
            order_id: None,
        };
        for (i, line) in input.lines.into_iter().enumerate() {
            self.check_line(&line, &format!("lines[{i}]"))?;
            merge_line(&mut cart, line, &self.config)?;
        }
        let mut tx = self.store.begin().await?;
        tx.put_cart(&cart).await?;
        tx.commit().await?;
        self.cart_view(&cart)
    }

    /// `GET /v1/carts/{id}`.
    pub async fn cart(&self, id: Uuid) -> Result<CartView> {
        let cart = self
            .store
            .cart(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("cart `{id}` does not exist")))?;
        self.cart_view(&cart)
    }

    /// `POST /v1/carts/{id}/lines`: adds units of a SKU (merged with an existing line of it).
    pub async fn add_line(&self, id: Uuid, line: CartLine) -> Result<CartView> {
        self.check_line(&line, "line")?;
        let mut tx = self.store.begin().await?;
        let mut cart = tx
            .cart_for_update(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("cart `{id}` does not exist")))?;
        if let Some(order) = cart.order_id {
            return Err(Error::Conflict(format!(
                "cart `{id}` was checked out as order `{order}`; start a new cart"
            )));
        }
        merge_line(&mut cart, line, &self.config)?;
        tx.put_cart(&cart).await?;
        tx.commit().await?;
        self.cart_view(&cart)
    }

    pub(crate) fn cart_view(&self, cart: &Cart) -> Result<CartView> {
        let mut lines = Vec::with_capacity(cart.lines.len());
        let mut currency = None;
        for l in &cart.lines {
            let (p, v) = self
                .catalog
                .variant(&l.sku)
                .ok_or_else(|| Error::Conflict(format!("`{}` left the catalogue", l.sku)))?;
            let price = self.prices.unit_price(p, &cart.market)?;
            lines.push(CartLineView {
                sku: l.sku.clone(),
                product_id: p.id.clone(),
                name: p.name.clone(),
                size: v.size.clone(),
                quantity: l.quantity,
                currency: price.currency.clone(),
                unit_price: price.gross,
                line_total: price.gross * i64::from(l.quantity),
            });
            currency = Some(price.currency);
        }
        Ok(CartView {
            id: cart.id,
            market: cart.market.clone(),
            currency,
            subtotal: lines.iter().map(|l| l.line_total).sum(),
            lines,
            order_id: cart.order_id,
        })
    }

    /// `GET /v1/inventory/{sku}`.
    pub async fn inventory(&self, sku: &str) -> Result<InventoryView> {
        let (p, v) = self
            .catalog
            .variant(sku)
            .ok_or_else(|| Error::NotFound(format!("SKU `{sku}` does not exist")))?;
        let rows = self.store.stock(sku).await?;
        Ok(inventory_view(sku, &p.id, &v.size, &rows))
    }

    /// `PUT /v1/inventory/{sku}`: sets units on hand per location. A count below what is reserved for
    /// unpaid orders is refused (`409`): reserved units are promised.
    pub async fn set_inventory(&self, sku: &str, input: SetInventory) -> Result<InventoryView> {
        let (p, v) = self
            .catalog
            .variant(sku)
            .ok_or_else(|| Error::NotFound(format!("SKU `{sku}` does not exist")))?;
        if input.locations.is_empty() {
            return Err(Error::bad("locations", "name at least one location"));
        }
        for (loc, &qty) in &input.locations {
            if !self.catalog.has_location(loc) {
                return Err(Error::bad(
                    format!("locations.{loc}"),
                    format!("unknown location; one of {}", self.catalog.location_ids()),
                ));
            }
            if !(0..=MAX_UNITS_PER_LOCATION).contains(&qty) {
                return Err(Error::bad(
                    format!("locations.{loc}"),
                    format!("must be 0–{MAX_UNITS_PER_LOCATION}, got {qty}"),
                ));
            }
        }
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut rows = tx.lock_stock(&[sku.to_string()]).await?;
        for (loc, &qty) in &input.locations {
            let i = match rows.iter().position(|r| &r.location == loc) {
                Some(i) => i,
                None => {
                    rows.push(StockRow {
                        sku: sku.to_string(),
                        product_id: p.id.clone(),
                        size: v.size.clone(),
                        location: loc.clone(),
                        on_hand: 0,
                        reserved: 0,
                        seq: 0,
                    });
                    rows.len() - 1
                }
            };
            let row = &mut rows[i];
            if qty < row.reserved {
                return Err(Error::Conflict(format!(
                    "locations.{loc}: {qty} on hand is less than the {} units reserved for unpaid orders",
                    row.reserved
                )));
            }
            if row.on_hand == qty && row.seq > 0 {
                continue;
            }
            row.on_hand = qty;
            row.seq += 1;
            tx.put_stock(row).await?;
            tx.push_outbox(&row.product_id, &row.event(now)).await?;
        }
        tx.commit().await?;
        rows.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(inventory_view(sku, &p.id, &v.size, &rows))
    }
}

fn merge_line(cart: &mut Cart, line: CartLine, config: &CommerceConfig) -> Result<()> {
    if let Some(existing) = cart.lines.iter_mut().find(|l| l.sku == line.sku) {
        let total = existing.quantity + line.quantity;
        if total > config.max_line_quantity {
            return Err(Error::bad(
                "quantity",
                format!(
                    "the cart would hold {total} of `{}`; at most {} per SKU",
                    line.sku, config.max_line_quantity
                ),
            ));
        }
        existing.quantity = total;
        return Ok(());
    }
    if cart.lines.len() >= config.max_cart_lines {
        return Err(Error::bad(
            "lines",
            format!("a cart holds at most {} lines", config.max_cart_lines),
        ));
    }
    cart.lines.push(line);
    Ok(())
}

fn inventory_view(sku: &str, product_id: &str, size: &str, rows: &[StockRow]) -> InventoryView {
    let mut seen = HashSet::new();
    let locations: BTreeMap<String, LocationStock> = rows
        .iter()
        .filter(|r| seen.insert(r.location.clone()))
        .map(|r| {
            (
                r.location.clone(),
                LocationStock {
                    on_hand: r.on_hand,
                    reserved: r.reserved,
                    available: r.available(),
                },
            )
        })
        .collect();
    InventoryView {
        sku: sku.to_string(),
        product_id: product_id.to_string(),
        size: size.to_string(),
        available: locations.values().map(|l| l.available).sum(),
        locations,
    }
}
