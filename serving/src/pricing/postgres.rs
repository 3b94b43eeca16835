//! PostgreSQL [`OverrideStore`] (sqlx, parameterised SQL only).
//!
//! Tables (created by [`PgOverrideStore::new`] under an advisory lock, so replicas starting together do
//! not race): `serving_price_overrides` (one row per (product, market), the amount in integer cents so it
//! reads back exactly) and `serving_price_overrides_revision` (a single row whose counter every write
//! bumps first, in its transaction: the row lock serialises writers, which makes the
//! [`MAX_OVERRIDES`](super::MAX_OVERRIDES) count check race-free, and readers poll it to reload).

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};

use super::store::{absent, check_input, full, now_micros, OverrideStore, MAX_OVERRIDES};
use super::{PriceOverride, PriceOverrideInput};
use crate::Result;

/// Advisory lock key for the DDL ("LUSSOPRC" as an integer; distinct from the other stores' keys).
const SCHEMA_LOCK: i64 = 0x4c55_5353_4f50_5243;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS serving_price_overrides (
        product_id text NOT NULL, market text NOT NULL, amount_cents bigint NOT NULL CHECK (amount_cents > 0),
        currency text NOT NULL, updated_at timestamptz NOT NULL, updated_by text NOT NULL,
        PRIMARY KEY (product_id, market))",
    "CREATE TABLE IF NOT EXISTS serving_price_overrides_revision (
        id integer PRIMARY KEY CHECK (id = 1), revision bigint NOT NULL)",
    "INSERT INTO serving_price_overrides_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
];

/// Price overrides in PostgreSQL.
pub struct PgOverrideStore {
    pool: PgPool,
    max: usize,
}

impl PgOverrideStore {
    /// Creates the schema (idempotent) and returns the store, bounded at
    /// [`MAX_OVERRIDES`](super::MAX_OVERRIDES).
    pub async fn new(pool: PgPool) -> Result<PgOverrideStore> {
        crate::pg::create_schema(&pool, SCHEMA_LOCK, SCHEMA).await?;
        Ok(PgOverrideStore {
            pool,
            max: MAX_OVERRIDES,
        })
    }

    /// The same store with another bound (tests use small bounds).
    pub fn with_max(self, max: usize) -> PgOverrideStore {
        PgOverrideStore { max, ..self }
    }

    /// Bumps the revision, taking the row lock that serialises writers until the transaction ends.
    async fn bump(tx: &mut Transaction<'_, Postgres>) -> Result<()> {
        sqlx::query(
            "UPDATE serving_price_overrides_revision SET revision = revision + 1 WHERE id = 1",
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

fn row_to_override(r: &PgRow) -> Result<PriceOverride> {
    Ok(PriceOverride {
        product_id: r.try_get("product_id")?,
        market: r.try_get("market")?,
        amount: r.try_get::<i64, _>("amount_cents")? as f64 / 100.0,
        currency: r.try_get("currency")?,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

#[async_trait]
impl OverrideStore for PgOverrideStore {
    async fn list(&self) -> Result<Vec<PriceOverride>> {
        let rows = sqlx::query(
            "SELECT product_id, market, amount_cents, currency, updated_at, updated_by
             FROM serving_price_overrides ORDER BY product_id, market",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_override).collect()
    }

    async fn put(&self, input: PriceOverrideInput, actor: &str) -> Result<PriceOverride> {
        check_input(&input)?;
        let mut tx = self.pool.begin().await?;
        Self::bump(&mut tx).await?;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM serving_price_overrides WHERE product_id = $1 AND market = $2)",
        )
        .bind(&input.product_id)
        .bind(&input.market)
        .fetch_one(&mut *tx)
        .await?;
        if !exists {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM serving_price_overrides")
                .fetch_one(&mut *tx)
                .await?;
            if count as usize >= self.max {
                tx.rollback().await?;
                return Err(full(self.max));
            }
        }
        let cents = (input.amount * 100.0).round() as i64;
        let updated_at = now_micros();
        sqlx::query(
            "INSERT INTO serving_price_overrides (product_id, market, amount_cents, currency, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (product_id, market) DO UPDATE
             SET amount_cents = $3, currency = $4, updated_at = $5, updated_by = $6",
        )
        .bind(&input.product_id)
        .bind(&input.market)
        .bind(cents)
        .bind(&input.currency)
        .bind(updated_at)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(product_id = %input.product_id, market = %input.market, cents, actor, "price override set");
        Ok(PriceOverride {
            product_id: input.product_id,
            market: input.market,
            amount: cents as f64 / 100.0,
            currency: input.currency,
            updated_at,
            updated_by: actor.to_string(),
        })
    }

    async fn delete(&self, product_id: &str, market: &str, actor: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        Self::bump(&mut tx).await?;
        let n = sqlx::query(
            "DELETE FROM serving_price_overrides WHERE product_id = $1 AND market = $2",
        )
        .bind(product_id)
        .bind(market)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(absent(product_id, market));
        }
        tx.commit().await?;
        tracing::info!(product_id, market, actor, "price override deleted");
        Ok(())
    }

    async fn revision(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar(
                "SELECT revision FROM serving_price_overrides_revision WHERE id = 1",
            )
            .fetch_one(&self.pool)
            .await?,
        )
    }

    fn describe(&self) -> String {
        let o = self.pool.connect_options();
        format!(
            "postgres {}:{}/{} (serving_price_overrides, at most {})",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("?"),
            self.max
        )
    }
}
