//! PostgreSQL [`RuleStore`] (sqlx, parameterised SQL only), shared by every serving replica.
//!
//! Tables (created by [`PgRuleStore::new`] under a session advisory lock, so replicas starting together
//! do not race): `serving_rules` (one row per rule: `version`, the [`RuleInput`] as `body` jsonb,
//! timestamps, `updated_by`) and `serving_rule_audit` (`seq` bigserial, one row per write, never pruned).
//!
//! Every write runs in one transaction that first takes a transaction-scoped advisory lock: writes are
//! serialised, so audit `seq`s are handed out in commit order and the revision (`max(seq)`) can never
//! skip over a write that commits late; the 10,000-rule cap is checked race-free under the same lock.
//! Rules are written rarely (by merchandisers), so serialising writes costs nothing.

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::store::{audit_entry, full, not_found, now, stale, to_json, AuditEntry, RuleStore};
use super::{Rule, RuleInput, MAX_RULES};
use crate::{Error, Result};

/// Advisory lock keys: "LUSSORLS" (schema) and "LUSSORLW" (writes) as integers.
const SCHEMA_LOCK: i64 = 0x4c55_5353_4f52_4c53;
const WRITE_LOCK: i64 = 0x4c55_5353_4f52_4c57;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS serving_rules (
        id uuid PRIMARY KEY, version bigint NOT NULL, body jsonb NOT NULL,
        created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, updated_by text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS serving_rule_audit (
        seq bigserial PRIMARY KEY, at timestamptz NOT NULL, actor text NOT NULL, action text NOT NULL,
        rule_id uuid NOT NULL, version bigint NOT NULL, changes text[] NOT NULL,
        before jsonb, after jsonb)",
    "CREATE INDEX IF NOT EXISTS serving_rule_audit_rule ON serving_rule_audit (rule_id, seq DESC)",
];

/// The PostgreSQL store.
pub struct PgRuleStore {
    pool: PgPool,
    describe: String,
}

fn rule_row(row: &PgRow) -> Result<Rule> {
    let body: serde_json::Value = row.try_get("body")?;
    Ok(Rule {
        id: row.try_get("id")?,
        input: serde_json::from_value(body)
            .map_err(|e| Error::Internal(format!("stored rule unreadable: {e}")))?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

const RULE_COLUMNS: &str = "id, version, body, created_at, updated_at, updated_by";

impl PgRuleStore {
    /// Creates the schema (idempotent) on `pool` and returns the store.
    pub async fn new(pool: PgPool) -> Result<PgRuleStore> {
        crate::pg::create_schema(&pool, SCHEMA_LOCK, SCHEMA).await?;
        let o = pool.connect_options();
        let describe = format!(
            "postgres://{}:{}/{} (serving_rules)",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        );
        Ok(PgRuleStore { pool, describe })
    }

    /// A write transaction, holding the write lock until it ends.
    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn locked(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> Result<Option<Rule>> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM serving_rules WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(rule_row).transpose()
    }
}

/// Appends one audit row in the write's transaction (`seq` from the sequence).
async fn log(tx: &mut Transaction<'_, Postgres>, a: AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO serving_rule_audit (at, actor, action, rule_id, version, changes, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(a.at)
    .bind(a.actor)
    .bind(a.action)
    .bind(a.rule_id)
    .bind(a.version)
    .bind(a.changes)
    .bind(a.before)
    .bind(a.after)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl RuleStore for PgRuleStore {
    async fn list(&self) -> Result<Vec<Rule>> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM serving_rules ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_row).collect()
    }

    async fn get(&self, id: Uuid) -> Result<Rule> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM serving_rules WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => rule_row(&r),
            None => Err(not_found(id)),
        }
    }

    async fn create(&self, input: RuleInput, actor: &str) -> Result<Rule> {
        let body = to_json(&input)?;
        let mut tx = self.begin().await?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM serving_rules")
            .fetch_one(&mut *tx)
            .await?;
        if count >= MAX_RULES as i64 {
            tx.rollback().await?;
            return Err(full());
        }
        let at = now();
        let rule = Rule {
            id: Uuid::new_v4(),
            input,
            version: 1,
            created_at: at,
            updated_at: at,
            updated_by: actor.to_string(),
        };
        sqlx::query(
            "INSERT INTO serving_rules (id, version, body, created_at, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(rule.id)
        .bind(rule.version)
        .bind(&body)
        .bind(at)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        log(
            &mut tx,
            audit_entry("create", rule.id, 1, actor, at, None, Some(body)),
        )
        .await?;
        tx.commit().await?;
        Ok(rule)
    }

    async fn update(
        &self,
        id: Uuid,
        input: RuleInput,
        expected_version: Option<i64>,
        actor: &str,
    ) -> Result<Rule> {
        let body = to_json(&input)?;
        let mut tx = self.begin().await?;
        let Some(current) = Self::locked(&mut tx, id).await? else {
            tx.rollback().await?;
            return Err(not_found(id));
        };
        if let Some(v) = expected_version.filter(|v| *v != current.version) {
            tx.rollback().await?;
            return Err(stale(id, current.version, v));
        }
        let before = to_json(&current.input)?;
        let at = now();
        let rule = Rule {
            input,
            version: current.version + 1,
            updated_at: at,
            updated_by: actor.to_string(),
            ..current
        };
        sqlx::query(
            "UPDATE serving_rules SET version = $2, body = $3, updated_at = $4, updated_by = $5
             WHERE id = $1",
        )
        .bind(id)
        .bind(rule.version)
        .bind(&body)
        .bind(at)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        log(
            &mut tx,
            audit_entry(
                "update",
                id,
                rule.version,
                actor,
                at,
                Some(before),
                Some(body),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(rule)
    }

    async fn delete(&self, id: Uuid, actor: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("DELETE FROM serving_rules WHERE id = $1 RETURNING version, body")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(not_found(id));
        };
        let version: i64 = row.try_get("version")?;
        let body: serde_json::Value = row.try_get("body")?;
        log(
            &mut tx,
            audit_entry("delete", id, version, actor, now(), Some(body), None),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit(&self, rule: Option<Uuid>, limit: usize) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, rule_id, version, changes, before, after
             FROM serving_rule_audit WHERE ($1::uuid IS NULL OR rule_id = $1)
             ORDER BY seq DESC LIMIT $2",
        )
        .bind(rule)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    rule_id: r.try_get("rule_id")?,
                    version: r.try_get("version")?,
                    changes: r.try_get("changes")?,
                    before: r.try_get("before")?,
                    after: r.try_get("after")?,
                })
            })
            .collect()
    }

    async fn revision(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT coalesce(max(seq), 0)::bigint FROM serving_rule_audit")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
