//! The commerce store: carts, orders, stock, idempotency keys, invoice counters, returns, processed webhooks and
//! the outbox, behind one seam with a PostgreSQL and an in-memory implementation.
//!
//! # Transactions
//! Every state change runs in one [`Tx`]: the business logic (in [`crate::service`]) reads the rows it needs
//! *for update*, decides, writes, appends its outbox messages and commits, so a change and the messages
//! announcing it are durable together or not at all (the outbox contract). PostgreSQL gives row locks
//! (`SELECT … FOR UPDATE`, stock rows always locked in `(sku, location)` order so concurrent checkouts cannot
//! deadlock); the memory store holds one mutex for the whole transaction and applies the staged writes at
//! commit (dropping a `Tx` without `commit` discards them, as a rollback does).
//!
//! # Bounds
//! The store holds what the business must keep (orders, invoices) without a bound. Transient state is bounded
//! by its lifetime: idempotency keys are kept [`IDEMPOTENCY_TTL_HOURS`] hours, outbox rows until relayed.

pub mod memory;
pub mod postgres;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pipelines::commerce::CommerceEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::inventory::StockRow;
use crate::model::{Cart, Order, Return};
use crate::Result;

pub use memory::MemoryStore;
pub use postgres::PgStore;

/// How long a checkout's `Idempotency-Key` is remembered (Stripe keeps keys 24 h).
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// What a checkout's `Idempotency-Key` maps to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub key: String,
    /// SHA-256 of the canonical request body: the same key with another body is refused.
    pub request_hash: String,
    pub order_id: Uuid,
    /// The HTTP status and JSON body first answered, once the checkout finished; `None` while in progress.
    pub response: Option<StoredResponse>,
    pub created_at: DateTime<Utc>,
}

/// A response replayed for a repeated `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

/// One message waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    /// Increasing in commit order within a key (PostgreSQL: a sequence; memory: a counter).
    pub id: i64,
    /// The bus key (order id or product id).
    pub key: String,
    pub payload: Vec<u8>,
}

/// What a claim of an idempotency key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key is new; it is now held by this transaction.
    New,
    /// The key was used before (the other transaction has committed).
    Existing(IdempotencyRecord),
}

/// The store seam.
#[async_trait]
pub trait CommerceStore: Send + Sync + 'static {
    /// Starts a transaction.
    async fn begin(&self) -> Result<Box<dyn Tx>>;
    async fn cart(&self, id: Uuid) -> Result<Option<Cart>>;
    async fn order(&self, id: Uuid) -> Result<Option<Order>>;
    /// The rows of one SKU, by location.
    async fn stock(&self, sku: &str) -> Result<Vec<StockRow>>;
    async fn returns_of(&self, order_id: Uuid) -> Result<Vec<Return>>;
    /// The order whose payment at `provider` has the provider's id `reference` (webhooks name payments,
    /// not orders).
    async fn order_by_payment(&self, provider: &str, reference: &str) -> Result<Option<Uuid>>;
    /// Inserts the rows whose (sku, location) is not stored yet (the catalogue's opening stock); existing
    /// rows are left alone. Returns how many were inserted.
    async fn seed_stock(&self, rows: &[StockRow]) -> Result<u64>;
    /// Orders still holding reservations whose `reservation_expires_at` is before `now`, oldest first.
    async fn expired_orders(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Uuid>>;
    /// Idempotency keys older than `before` are forgotten; returns how many.
    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64>;
    /// The oldest unrelayed messages, in id order.
    async fn outbox_batch(&self, limit: usize) -> Result<Vec<OutboxRecord>>;
    /// Marks messages relayed (deletes them).
    async fn outbox_ack(&self, ids: &[i64]) -> Result<()>;
    /// Messages waiting in the outbox.
    async fn outbox_len(&self) -> Result<u64>;
    async fn ping(&self) -> Result<()>;
    fn describe(&self) -> String;
}

/// One transaction (see the module doc).
#[async_trait]
pub trait Tx: Send {
    /// Locks and returns the rows of `skus` (all locations), ordered by `(sku, location)`.
    async fn lock_stock(&mut self, skus: &[String]) -> Result<Vec<StockRow>>;
    /// Inserts or replaces a stock row.
    async fn put_stock(&mut self, row: &StockRow) -> Result<()>;
    async fn cart_for_update(&mut self, id: Uuid) -> Result<Option<Cart>>;
    async fn put_cart(&mut self, cart: &Cart) -> Result<()>;
    async fn order_for_update(&mut self, id: Uuid) -> Result<Option<Order>>;
    async fn put_order(&mut self, order: &Order) -> Result<()>;
    /// Claims `key`: [`Claim::New`] inserts a record (held until commit); a concurrent claim of the same key
    /// waits for this transaction and then sees [`Claim::Existing`].
    async fn claim_idempotency(&mut self, record: &IdempotencyRecord) -> Result<Claim>;
    /// Stores the final response of a claimed key.
    async fn finish_idempotency(&mut self, key: &str, response: &StoredResponse) -> Result<()>;
    /// The next progressive invoice number of `year` (1, 2, … without gaps: the counter row is locked until
    /// commit).
    async fn next_invoice_progressive(&mut self, year: i32) -> Result<u64>;
    async fn return_for_update(&mut self, id: Uuid) -> Result<Option<Return>>;
    async fn put_return(&mut self, ret: &Return) -> Result<()>;
    async fn returns_of(&mut self, order_id: Uuid) -> Result<Vec<Return>>;
    /// Records a provider's webhook event id; false when it was processed before.
    async fn first_webhook(&mut self, provider: &str, event_id: &str) -> Result<bool>;
    /// Appends a message to the outbox, published after commit under `key`.
    async fn push_outbox(&mut self, key: &str, event: &CommerceEvent) -> Result<()>;
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// Opens the store named by `database_url`: `memory://` (or empty) for the in-memory store, `postgres://…`
/// for PostgreSQL (schema created if missing).
pub async fn open(database_url: &str) -> Result<Arc<dyn CommerceStore>> {
    if database_url.is_empty() || database_url.starts_with("memory:") {
        return Ok(Arc::new(MemoryStore::default()));
    }
    Ok(Arc::new(PgStore::connect(database_url).await?))
}

/// The outbox payload of a message.
pub(crate) fn encode(event: &CommerceEvent) -> Result<Vec<u8>> {
    serde_json::to_vec(event)
        .map_err(|e| crate::Error::Internal(format!("encode outbox message: {e}")))
}
