//! The PostgreSQL store. Stock rows are real columns (so the no-oversell invariant is also a `CHECK`
//! constraint: `0 ≤ reserved ≤ on_hand`); carts, orders and returns are JSONB documents next to the columns
//! their queries filter on. Every statement is parameterized.
//!
//! Tables (created at connect under an advisory lock, so replicas starting together do not race):
//! `commerce_stock`, `commerce_carts`, `commerce_orders` (partial index on the reservation expiry of orders
//! still holding stock), `commerce_idempotency`, `commerce_invoice_counters`, `commerce_returns`,
//! `commerce_webhooks`, `commerce_outbox` (`bigserial` id: the relay publishes in id order; two changes of one
//! order are serialized by the order's row lock, so their ids follow commit order).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pipelines::commerce::CommerceEvent;
use pipelines::pg::redact;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{encode, Claim, CommerceStore, IdempotencyRecord, OutboxRecord, StoredResponse, Tx};
use crate::inventory::StockRow;
use crate::model::{Cart, Order, Return};
use crate::{Error, Result};

/// Connections per commerce replica: each checkout holds one for two short transactions.
pub const POOL_MAX_CONNECTIONS: u32 = 16;
const SCHEMA_LOCK: i64 = 0x4c55_5353_4f43_4f4d;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS commerce_stock (
        sku text NOT NULL, location text NOT NULL, product_id text NOT NULL, size text NOT NULL,
        on_hand bigint NOT NULL, reserved bigint NOT NULL, seq bigint NOT NULL,
        PRIMARY KEY (sku, location),
        CONSTRAINT commerce_stock_no_oversell CHECK (reserved >= 0 AND reserved <= on_hand))",
    "CREATE TABLE IF NOT EXISTS commerce_carts (
        id uuid PRIMARY KEY, created_at timestamptz NOT NULL, doc jsonb NOT NULL)",
    "CREATE TABLE IF NOT EXISTS commerce_orders (
        id uuid PRIMARY KEY, status text NOT NULL, holds_reservation boolean NOT NULL,
        reservation_expires_at timestamptz NOT NULL, created_at timestamptz NOT NULL,
        payment_provider text NOT NULL, payment_reference text, doc jsonb NOT NULL)",
    "CREATE INDEX IF NOT EXISTS commerce_orders_payment ON commerce_orders (payment_provider, payment_reference)",
    "CREATE INDEX IF NOT EXISTS commerce_orders_expiry ON commerce_orders (reservation_expires_at)
        WHERE holds_reservation",
    "CREATE TABLE IF NOT EXISTS commerce_idempotency (
        key text PRIMARY KEY, request_hash text NOT NULL, order_id uuid NOT NULL, response jsonb,
        created_at timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS commerce_invoice_counters (year integer PRIMARY KEY, last bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS commerce_returns (
        id uuid PRIMARY KEY, order_id uuid NOT NULL, created_at timestamptz NOT NULL, doc jsonb NOT NULL)",
    "CREATE INDEX IF NOT EXISTS commerce_returns_order ON commerce_returns (order_id)",
    "CREATE TABLE IF NOT EXISTS commerce_webhooks (
        provider text NOT NULL, event_id text NOT NULL, received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, event_id))",
    "CREATE TABLE IF NOT EXISTS commerce_outbox (
        id bigserial PRIMARY KEY, key text NOT NULL, payload bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())",
];

/// The PostgreSQL [`CommerceStore`].
pub struct PgStore {
    pool: PgPool,
    url: String,
}

impl PgStore {
    /// Connects and creates the schema.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let pool = pipelines::pg::connect(url, POOL_MAX_CONNECTIONS).await?;
        pipelines::pg::create_schema(&pool, SCHEMA_LOCK, SCHEMA).await?;
        Ok(PgStore {
            pool,
            url: redact(url),
        })
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value, what: &str) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Internal(format!("stored {what} unreadable: {e}")))
}

fn stock_row(r: &PgRow) -> Result<StockRow> {
    Ok(StockRow {
        sku: r.try_get("sku")?,
        product_id: r.try_get("product_id")?,
        size: r.try_get("size")?,
        location: r.try_get("location")?,
        on_hand: r.try_get("on_hand")?,
        reserved: r.try_get("reserved")?,
        seq: r.try_get("seq")?,
    })
}

fn idempotency_row(r: &PgRow) -> Result<IdempotencyRecord> {
    let response: Option<serde_json::Value> = r.try_get("response")?;
    Ok(IdempotencyRecord {
        key: r.try_get("key")?,
        request_hash: r.try_get("request_hash")?,
        order_id: r.try_get("order_id")?,
        response: response
            .map(|v| from_json::<StoredResponse>(v, "idempotent response"))
            .transpose()?,
        created_at: r.try_get("created_at")?,
    })
}

const STOCK_COLUMNS: &str = "sku, location, product_id, size, on_hand, reserved, seq";

#[async_trait]
impl CommerceStore for PgStore {
    async fn begin(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(PgTx {
            tx: self.pool.begin().await?,
        }))
    }

    async fn cart(&self, id: Uuid) -> Result<Option<Cart>> {
        let doc: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT doc FROM commerce_carts WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        doc.map(|d| from_json(d, "cart")).transpose()
    }

    async fn order(&self, id: Uuid) -> Result<Option<Order>> {
        let doc: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT doc FROM commerce_orders WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        doc.map(|d| from_json(d, "order")).transpose()
    }

    async fn stock(&self, sku: &str) -> Result<Vec<StockRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {STOCK_COLUMNS} FROM commerce_stock WHERE sku = $1 ORDER BY location"
        ))
        .bind(sku)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stock_row).collect()
    }

    async fn returns_of(&self, order_id: Uuid) -> Result<Vec<Return>> {
        let docs: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT doc FROM commerce_returns WHERE order_id = $1 ORDER BY created_at, id",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await?;
        docs.into_iter().map(|d| from_json(d, "return")).collect()
    }

    async fn order_by_payment(&self, provider: &str, reference: &str) -> Result<Option<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM commerce_orders WHERE payment_provider = $1 AND payment_reference = $2",
        )
        .bind(provider)
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn seed_stock(&self, rows: &[StockRow]) -> Result<u64> {
        let mut inserted = 0;
        // Batches of 5,000 rows: one round trip each, well under the bind-parameter limit (7 arrays).
        for chunk in rows.chunks(5_000) {
            let col = |f: fn(&StockRow) -> String| chunk.iter().map(f).collect::<Vec<String>>();
            let num = |f: fn(&StockRow) -> i64| chunk.iter().map(f).collect::<Vec<i64>>();
            let done = sqlx::query(
                "INSERT INTO commerce_stock (sku, location, product_id, size, on_hand, reserved, seq)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                                      $6::bigint[], $7::bigint[])
                 ON CONFLICT (sku, location) DO NOTHING",
            )
            .bind(col(|r| r.sku.clone()))
            .bind(col(|r| r.location.clone()))
            .bind(col(|r| r.product_id.clone()))
            .bind(col(|r| r.size.clone()))
            .bind(num(|r| r.on_hand))
            .bind(num(|r| r.reserved))
            .bind(num(|r| r.seq))
            .execute(&self.pool)
            .await?;
            inserted += done.rows_affected();
        }
        Ok(inserted)
    }

    async fn expired_orders(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM commerce_orders WHERE holds_reservation AND reservation_expires_at < $1
             ORDER BY reservation_expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM commerce_idempotency WHERE created_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn outbox_batch(&self, limit: usize) -> Result<Vec<OutboxRecord>> {
        let rows = sqlx::query("SELECT id, key, payload FROM commerce_outbox ORDER BY id LIMIT $1")
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRecord {
                    id: r.try_get("id")?,
                    key: r.try_get("key")?,
                    payload: r.try_get("payload")?,
                })
            })
            .collect()
    }

    async fn outbox_ack(&self, ids: &[i64]) -> Result<()> {
        sqlx::query("DELETE FROM commerce_outbox WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn outbox_len(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM commerce_outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

struct PgTx {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl Tx for PgTx {
    async fn lock_stock(&mut self, skus: &[String]) -> Result<Vec<StockRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {STOCK_COLUMNS} FROM commerce_stock WHERE sku = ANY($1)
             ORDER BY sku, location FOR UPDATE"
        ))
        .bind(skus)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(stock_row).collect()
    }

    async fn put_stock(&mut self, row: &StockRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO commerce_stock (sku, location, product_id, size, on_hand, reserved, seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (sku, location) DO UPDATE
             SET on_hand = EXCLUDED.on_hand, reserved = EXCLUDED.reserved, seq = EXCLUDED.seq",
        )
        .bind(&row.sku)
        .bind(&row.location)
        .bind(&row.product_id)
        .bind(&row.size)
        .bind(row.on_hand)
        .bind(row.reserved)
        .bind(row.seq)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn cart_for_update(&mut self, id: Uuid) -> Result<Option<Cart>> {
        let doc: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT doc FROM commerce_carts WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
        doc.map(|d| from_json(d, "cart")).transpose()
    }

    async fn put_cart(&mut self, cart: &Cart) -> Result<()> {
        sqlx::query(
            "INSERT INTO commerce_carts (id, created_at, doc) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
        )
        .bind(cart.id)
        .bind(cart.created_at)
        .bind(to_json(cart)?)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn order_for_update(&mut self, id: Uuid) -> Result<Option<Order>> {
        let doc: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT doc FROM commerce_orders WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
        doc.map(|d| from_json(d, "order")).transpose()
    }

    async fn put_order(&mut self, order: &Order) -> Result<()> {
        sqlx::query(
            "INSERT INTO commerce_orders
                (id, status, holds_reservation, reservation_expires_at, created_at, payment_provider,
                 payment_reference, doc)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status,
                holds_reservation = EXCLUDED.holds_reservation,
                reservation_expires_at = EXCLUDED.reservation_expires_at,
                payment_reference = EXCLUDED.payment_reference, doc = EXCLUDED.doc",
        )
        .bind(order.id)
        .bind(order.status.as_str())
        .bind(order.status.holds_reservation())
        .bind(order.reservation_expires_at)
        .bind(order.created_at)
        .bind(&order.payment.provider)
        .bind(&order.payment.reference)
        .bind(to_json(order)?)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn claim_idempotency(&mut self, record: &IdempotencyRecord) -> Result<Claim> {
        // A concurrent insert of the same key waits here until the other transaction ends.
        let inserted = sqlx::query(
            "INSERT INTO commerce_idempotency (key, request_hash, order_id, response, created_at)
             VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&record.key)
        .bind(&record.request_hash)
        .bind(record.order_id)
        .bind(record.created_at)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::New);
        }
        let row = sqlx::query(
            "SELECT key, request_hash, order_id, response, created_at FROM commerce_idempotency
             WHERE key = $1",
        )
        .bind(&record.key)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(Claim::Existing(idempotency_row(&row)?))
    }

    async fn finish_idempotency(&mut self, key: &str, response: &StoredResponse) -> Result<()> {
        sqlx::query("UPDATE commerce_idempotency SET response = $2 WHERE key = $1")
            .bind(key)
            .bind(to_json(response)?)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn next_invoice_progressive(&mut self, year: i32) -> Result<u64> {
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO commerce_invoice_counters (year, last) VALUES ($1, 1)
             ON CONFLICT (year) DO UPDATE SET last = commerce_invoice_counters.last + 1
             RETURNING last",
        )
        .bind(year)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(last as u64)
    }

    async fn return_for_update(&mut self, id: Uuid) -> Result<Option<Return>> {
        let doc: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT doc FROM commerce_returns WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
        doc.map(|d| from_json(d, "return")).transpose()
    }

    async fn put_return(&mut self, ret: &Return) -> Result<()> {
        sqlx::query(
            "INSERT INTO commerce_returns (id, order_id, created_at, doc) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
        )
        .bind(ret.id)
        .bind(ret.order_id)
        .bind(ret.created_at)
        .bind(to_json(ret)?)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn returns_of(&mut self, order_id: Uuid) -> Result<Vec<Return>> {
        let docs: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT doc FROM commerce_returns WHERE order_id = $1 ORDER BY created_at, id",
        )
        .bind(order_id)
        .fetch_all(&mut *self.tx)
        .await?;
        docs.into_iter().map(|d| from_json(d, "return")).collect()
    }

    async fn first_webhook(&mut self, provider: &str, event_id: &str) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO commerce_webhooks (provider, event_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(provider)
        .bind(event_id)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn push_outbox(&mut self, key: &str, event: &CommerceEvent) -> Result<()> {
        sqlx::query("INSERT INTO commerce_outbox (key, payload) VALUES ($1, $2)")
            .bind(key)
            .bind(encode(event)?)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}
