//! PostgreSQL [`ExperimentStore`] (sqlx, parameterised SQL only).
//!
//! Tables (created by [`PgExperimentStore::new`] under an advisory lock, so replicas starting together do
//! not race): `serving_experiments` (one row per experiment: the key and version as columns for the
//! checks, the whole [`Experiment`] as JSON) and `serving_experiments_revision` (a single row whose
//! counter every write bumps first, in its transaction: the row lock serialises writers, which makes the
//! [`MAX_EXPERIMENTS`](super::MAX_EXPERIMENTS) count check race-free, and readers poll it to reload).

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};

use super::store::{
    check_update, duplicate, full, missing, now_micros, stale, ExperimentStore, MAX_EXPERIMENTS,
};
use super::{validate, Experiment, ExperimentInput};
use crate::{Error, Result};

/// Advisory lock key for the DDL ("LUSSOEXP" as an integer; distinct from the other stores' keys).
const SCHEMA_LOCK: i64 = 0x4c55_5353_4f45_5850;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS serving_experiments (
        key text PRIMARY KEY, version bigint NOT NULL, body jsonb NOT NULL,
        created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, updated_by text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS serving_experiments_revision (
        id integer PRIMARY KEY CHECK (id = 1), revision bigint NOT NULL)",
    "INSERT INTO serving_experiments_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
];

/// Experiments in PostgreSQL.
pub struct PgExperimentStore {
    pool: PgPool,
    max: usize,
}

fn to_json(e: &Experiment) -> Result<serde_json::Value> {
    serde_json::to_value(e).map_err(|err| Error::Internal(format!("encoding experiment: {err}")))
}

fn from_json(v: serde_json::Value) -> Result<Experiment> {
    serde_json::from_value(v)
        .map_err(|err| Error::Internal(format!("stored experiment unreadable: {err}")))
}

impl PgExperimentStore {
    /// Creates the schema (idempotent) and returns the store, bounded at
    /// [`MAX_EXPERIMENTS`](super::MAX_EXPERIMENTS).
    pub async fn new(pool: PgPool) -> Result<PgExperimentStore> {
        crate::pg::create_schema(&pool, SCHEMA_LOCK, SCHEMA).await?;
        Ok(PgExperimentStore {
            pool,
            max: MAX_EXPERIMENTS,
        })
    }

    /// The same store with another bound (tests use small bounds).
    pub fn with_max(self, max: usize) -> PgExperimentStore {
        PgExperimentStore { max, ..self }
    }

    /// Bumps the revision, taking the row lock that serialises writers until the transaction ends.
    async fn bump(tx: &mut Transaction<'_, Postgres>) -> Result<()> {
        sqlx::query("UPDATE serving_experiments_revision SET revision = revision + 1 WHERE id = 1")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn save(tx: &mut Transaction<'_, Postgres>, e: &Experiment) -> Result<()> {
        sqlx::query(
            "INSERT INTO serving_experiments (key, version, body, created_at, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (key) DO UPDATE SET version = $2, body = $3, updated_at = $5, updated_by = $6",
        )
        .bind(&e.key)
        .bind(e.version)
        .bind(to_json(e)?)
        .bind(e.created_at)
        .bind(e.updated_at)
        .bind(&e.updated_by)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl ExperimentStore for PgExperimentStore {
    async fn list(&self) -> Result<Vec<Experiment>> {
        let rows = sqlx::query("SELECT body FROM serving_experiments ORDER BY key")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| from_json(r.try_get("body")?))
            .collect()
    }

    async fn get(&self, key: &str) -> Result<Experiment> {
        let row = sqlx::query("SELECT body FROM serving_experiments WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => from_json(r.try_get("body")?),
            None => Err(missing(key)),
        }
    }

    async fn create(&self, input: ExperimentInput, actor: &str) -> Result<Experiment> {
        validate(&input)?;
        let mut tx = self.pool.begin().await?;
        Self::bump(&mut tx).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM serving_experiments WHERE key = $1)")
                .bind(&input.key)
                .fetch_one(&mut *tx)
                .await?;
        if exists {
            tx.rollback().await?;
            return Err(duplicate(&input.key));
        }
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM serving_experiments")
            .fetch_one(&mut *tx)
            .await?;
        if count as usize >= self.max {
            tx.rollback().await?;
            return Err(full(self.max));
        }
        let now = now_micros();
        let exp = Experiment::from_input(input, 1, now, now, actor);
        Self::save(&mut tx, &exp).await?;
        tx.commit().await?;
        tracing::info!(experiment = %exp.key, actor, "experiment created");
        Ok(exp)
    }

    async fn update(
        &self,
        key: &str,
        input: ExperimentInput,
        expected_version: Option<i64>,
        actor: &str,
    ) -> Result<Experiment> {
        check_update(key, &input)?;
        let mut tx = self.pool.begin().await?;
        Self::bump(&mut tx).await?;
        let row = sqlx::query(
            "SELECT version, created_at FROM serving_experiments WHERE key = $1 FOR UPDATE",
        )
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(missing(key));
        };
        let current: i64 = row.try_get("version")?;
        if let Some(expected) = expected_version.filter(|&v| v != current) {
            tx.rollback().await?;
            return Err(stale(key, current, expected));
        }
        let exp = Experiment::from_input(
            input,
            current + 1,
            row.try_get("created_at")?,
            now_micros(),
            actor,
        );
        Self::save(&mut tx, &exp).await?;
        tx.commit().await?;
        tracing::info!(experiment = %exp.key, version = exp.version, actor, "experiment updated");
        Ok(exp)
    }

    async fn revision(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT revision FROM serving_experiments_revision WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    fn describe(&self) -> String {
        let o = self.pool.connect_options();
        format!(
            "postgres {}:{}/{} (serving_experiments, at most {})",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("?"),
            self.max
        )
    }
}
