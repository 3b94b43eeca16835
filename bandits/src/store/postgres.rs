//! PostgreSQL [`BanditStore`] (sqlx, parameterised SQL only).
//!
//! Tables (created at connect under an advisory lock, so replicas starting together do not race):
//! `bandit_slots` (current version of each slot as JSON), `bandit_audit`, `bandit_decisions` (the decision
//! log: the decision and its outcome as JSON plus the columns reports filter and group on),
//! `bandit_signals` (applied signal ids), `bandit_orders` (order → decision attribution) and
//! `bandit_ledger` (the learning steps; `seq` is assigned as `max + 1` under a transaction-scoped advisory
//! lock, so sequence order is commit order and has no gaps).
//!
//! Lock order everywhere: decision rows first, then the ledger lock, so signal application and window
//! expiry cannot deadlock. The pool holds at most 8 connections; a request waits up to 5 s for one, then
//! fails with [`Error::Unavailable`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pipelines::pg::redact;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{AggRow, BanditStore, Logged};
use crate::policy::LedgerEntry;
use crate::reward::{self, Applied, Decision, Outcome, Signal, SignalKind, Step};
use crate::slot::{AuditEntry, Slot};
use crate::{Error, Result};

/// Advisory lock keys ("LUSSOBND" / "LUSSOLGR" as integers).
/// Decisions are written on every request: a few more connections than the admin-only stores.
const POOL_MAX_CONNECTIONS: u32 = 8;
const SCHEMA_LOCK: i64 = 0x4c55_5353_4f42_4e44;
const LEDGER_LOCK: i64 = 0x4c55_5353_4f4c_4752;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS bandit_slots (
        slot text PRIMARY KEY, version bigint NOT NULL, spec jsonb NOT NULL, updated_at timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bandit_audit (
        id bigserial PRIMARY KEY, slot text NOT NULL, at timestamptz NOT NULL, actor text NOT NULL,
        action text NOT NULL, detail jsonb NOT NULL, version bigint NOT NULL)",
    "CREATE INDEX IF NOT EXISTS bandit_audit_slot ON bandit_audit (slot, id DESC)",
    "CREATE TABLE IF NOT EXISTS bandit_decisions (
        decision_id uuid PRIMARY KEY, slot text NOT NULL, ts timestamptz NOT NULL, arm_id text NOT NULL,
        segment text NOT NULL, user_id text, anonymous_id text, session_id text,
        propensity double precision NOT NULL, sticky boolean NOT NULL, forced boolean NOT NULL,
        body jsonb NOT NULL, outcome jsonb NOT NULL,
        window_end timestamptz NOT NULL, attribution_end timestamptz NOT NULL,
        clicked_at timestamptz, learned double precision, converted boolean NOT NULL DEFAULT false,
        revenue double precision NOT NULL DEFAULT 0, published boolean NOT NULL DEFAULT false)",
    "CREATE INDEX IF NOT EXISTS bandit_decisions_open ON bandit_decisions (window_end) WHERE learned IS NULL",
    "CREATE INDEX IF NOT EXISTS bandit_decisions_unpublished ON bandit_decisions (ts) WHERE NOT published",
    "CREATE INDEX IF NOT EXISTS bandit_decisions_slot_ts ON bandit_decisions (slot, ts)",
    "CREATE INDEX IF NOT EXISTS bandit_decisions_session ON bandit_decisions (slot, session_id, ts)",
    "CREATE INDEX IF NOT EXISTS bandit_decisions_user ON bandit_decisions (user_id, ts) WHERE clicked_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS bandit_decisions_anon ON bandit_decisions (anonymous_id, ts) WHERE clicked_at IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS bandit_signals (
        decision_id uuid NOT NULL, signal_id text NOT NULL, at timestamptz NOT NULL,
        PRIMARY KEY (decision_id, signal_id))",
    "CREATE TABLE IF NOT EXISTS bandit_orders (order_id text PRIMARY KEY, decision_id uuid NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bandit_ledger (
        seq bigint PRIMARY KEY, slot text NOT NULL, decision_id uuid NOT NULL, arm_id text NOT NULL,
        segment text NOT NULL, features real[] NOT NULL, delta double precision NOT NULL, first boolean NOT NULL)",
];

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    url: String,
}

fn json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("encoding: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value, what: &str) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Internal(format!("stored {what} unreadable: {e}")))
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

    async fn append_ledger(
        tx: &mut Transaction<'_, Postgres>,
        d: &Decision,
        step: Step,
    ) -> Result<u64> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LEDGER_LOCK)
            .execute(&mut **tx)
            .await?;
        let seq: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) + 1 FROM bandit_ledger")
            .fetch_one(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO bandit_ledger (seq, slot, decision_id, arm_id, segment, features, delta, first)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(&d.slot)
        .bind(d.decision_id)
        .bind(&d.arm_id)
        .bind(&d.segment)
        .bind(&d.features)
        .bind(step.0)
        .bind(step.1)
        .execute(&mut **tx)
        .await?;
        Ok(seq as u64)
    }

    async fn save_outcome(tx: &mut Transaction<'_, Postgres>, id: Uuid, o: &Outcome) -> Result<()> {
        sqlx::query(
            "UPDATE bandit_decisions SET outcome = $2, clicked_at = $3, learned = $4, converted = $5,
             revenue = $6 WHERE decision_id = $1",
        )
        .bind(id)
        .bind(json(o)?)
        .bind(o.clicked_at)
        .bind(o.learned)
        .bind(o.converted())
        .bind(o.net_revenue())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

fn decision_row(row: &PgRow) -> Result<(Decision, Outcome)> {
    Ok((
        from_json(row.try_get("body")?, "decision")?,
        from_json(row.try_get("outcome")?, "outcome")?,
    ))
}

#[async_trait]
impl BanditStore for PgStore {
    async fn put_slot(&self, slot: &Slot, expected: u64, audit: &AuditEntry) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM bandit_slots WHERE slot = $1 FOR UPDATE")
                .bind(&slot.slot)
                .fetch_optional(&mut *tx)
                .await?;
        let current = current.unwrap_or(0) as u64;
        if current != expected {
            tx.rollback().await?;
            return Err(Error::Conflict(format!(
                "slot `{}` is at version {current}, not {expected}: reload and retry",
                slot.slot
            )));
        }
        let mut s = slot.clone();
        s.version = expected + 1;
        sqlx::query(
            "INSERT INTO bandit_slots (slot, version, spec, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (slot) DO UPDATE SET version = $2, spec = $3, updated_at = $4",
        )
        .bind(&s.slot)
        .bind(s.version as i64)
        .bind(json(&s)?)
        .bind(audit.at)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_slot(&self, slot: &str, audit: &AuditEntry) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM bandit_slots WHERE slot = $1")
            .bind(slot)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(Error::NotFound(format!("slot `{slot}` does not exist")));
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn slots(&self) -> Result<Vec<Slot>> {
        let rows = sqlx::query("SELECT spec FROM bandit_slots ORDER BY slot")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| from_json(r.try_get("spec")?, "slot"))
            .collect()
    }

    async fn audit(&self, slot: &str, limit: usize) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT slot, at, actor, action, detail, version FROM bandit_audit WHERE slot = $1
             ORDER BY id DESC LIMIT $2",
        )
        .bind(slot)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    slot: r.try_get("slot")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    detail: r.try_get("detail")?,
                    version: r.try_get::<i64, _>("version")? as u64,
                })
            })
            .collect()
    }

    async fn insert_decision(&self, d: &Decision) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO bandit_decisions (decision_id, slot, ts, arm_id, segment, user_id, anonymous_id,
             session_id, propensity, sticky, forced, body, outcome, window_end, attribution_end)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (decision_id) DO NOTHING",
        )
        .bind(d.decision_id)
        .bind(&d.slot)
        .bind(d.ts)
        .bind(&d.arm_id)
        .bind(&d.segment)
        .bind(&d.user_id)
        .bind(&d.anonymous_id)
        .bind(&d.context.session_id)
        .bind(d.propensity)
        .bind(d.sticky)
        .bind(d.forced)
        .bind(json(d)?)
        .bind(json(&Outcome::default())?)
        .bind(d.window_end())
        .bind(d.attribution_end())
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "decision {} already exists",
                d.decision_id
            )));
        }
        Ok(())
    }

    async fn decision(&self, id: Uuid) -> Result<Option<(Decision, Outcome)>> {
        let row = sqlx::query("SELECT body, outcome FROM bandit_decisions WHERE decision_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decision_row).transpose()
    }

    async fn sticky_arm(
        &self,
        slot: &str,
        session_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<(String, f64)>> {
        let row = sqlx::query(
            "SELECT arm_id, propensity FROM bandit_decisions WHERE slot = $1 AND session_id = $2 AND ts >= $3
             ORDER BY ts DESC LIMIT 1",
        )
        .bind(slot)
        .bind(session_id)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("arm_id")?, r.try_get("propensity")?)))
            .transpose()
    }

    async fn attribute(
        &self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        ts: DateTime<Utc>,
    ) -> Result<Option<Uuid>> {
        let id: Option<Uuid> = sqlx::query_scalar(
            "SELECT decision_id FROM bandit_decisions
             WHERE ((user_id IS NOT NULL AND user_id = $1) OR (anonymous_id IS NOT NULL AND anonymous_id = $2))
               AND clicked_at IS NOT NULL AND clicked_at <= $3 AND attribution_end >= $3
             ORDER BY ts DESC LIMIT 1",
        )
        .bind(user_id.filter(|s| !s.is_empty()))
        .bind(anonymous_id.filter(|s| !s.is_empty()))
        .bind(ts)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id)
    }

    async fn decision_for_order(&self, order_id: &str) -> Result<Option<Uuid>> {
        Ok(
            sqlx::query_scalar("SELECT decision_id FROM bandit_orders WHERE order_id = $1")
                .bind(order_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn apply_signal(&self, signal: &Signal) -> Result<Option<Applied>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT body, outcome FROM bandit_decisions WHERE decision_id = $1 FOR UPDATE",
        )
        .bind(signal.decision_id)
        .fetch_optional(&mut *tx)
        .await?;
        // Early returns roll back explicitly: a dropped transaction is rolled back only when its connection
        // is next used, and meanwhile its row lock would make `expire` (SKIP LOCKED) pass the row over.
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let (d, o) = decision_row(&row)?;
        let fresh = sqlx::query(
            "INSERT INTO bandit_signals (decision_id, signal_id, at) VALUES ($1, $2, now())
             ON CONFLICT DO NOTHING",
        )
        .bind(signal.decision_id)
        .bind(&signal.signal_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.rollback().await?;
            return Ok(Some(reward::on_duplicate(&o, signal)));
        }
        let (next, step) = match reward::transition(&d, &o, signal) {
            Ok(t) => t,
            Err(why) => {
                tx.rollback().await?;
                return Ok(Some(why));
            }
        };
        if let SignalKind::Purchase(p) = &signal.kind {
            sqlx::query(
                "INSERT INTO bandit_orders (order_id, decision_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&p.order_id)
            .bind(d.decision_id)
            .execute(&mut *tx)
            .await?;
        }
        let seq = match step {
            Some(s) => Some(Self::append_ledger(&mut tx, &d, s).await?),
            None => None,
        };
        Self::save_outcome(&mut tx, d.decision_id, &next).await?;
        tx.commit().await?;
        Ok(Some(Applied::Recorded { ledger_seq: seq }))
    }

    async fn expire(&self, now: DateTime<Utc>, limit: usize) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT body, outcome FROM bandit_decisions WHERE learned IS NULL AND window_end <= $1
             ORDER BY window_end, decision_id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let (d, o) = decision_row(row)?;
            let (next, step) = reward::expire(&d, &o);
            Self::append_ledger(&mut tx, &d, step).await?;
            Self::save_outcome(&mut tx, d.decision_id, &next).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    async fn ledger_since(&self, after: u64, limit: usize) -> Result<Vec<LedgerEntry>> {
        let rows = sqlx::query(
            "SELECT seq, slot, decision_id, arm_id, segment, features, delta, first FROM bandit_ledger
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(LedgerEntry {
                    seq: r.try_get::<i64, _>("seq")? as u64,
                    slot: r.try_get("slot")?,
                    decision_id: r.try_get("decision_id")?,
                    arm_id: r.try_get("arm_id")?,
                    segment: r.try_get("segment")?,
                    features: r.try_get("features")?,
                    delta: r.try_get("delta")?,
                    first: r.try_get("first")?,
                })
            })
            .collect()
    }

    async fn unpublished(&self, limit: usize) -> Result<Vec<Decision>> {
        let rows = sqlx::query(
            "SELECT body FROM bandit_decisions WHERE NOT published ORDER BY ts, decision_id LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| from_json(r.try_get("body")?, "decision"))
            .collect()
    }

    async fn mark_published(&self, ids: &[Uuid]) -> Result<()> {
        sqlx::query("UPDATE bandit_decisions SET published = true WHERE decision_id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn aggregate(
        &self,
        slot: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        bucket_secs: i64,
    ) -> Result<Vec<AggRow>> {
        let rows = sqlx::query(
            "SELECT segment, arm_id,
                    to_timestamp(floor(extract(epoch FROM ts) / $4) * $4) AS bucket,
                    count(*) AS decisions, count(clicked_at) AS clicks,
                    count(*) FILTER (WHERE converted) AS conversions,
                    coalesce(sum(revenue), 0)::double precision AS revenue
             FROM bandit_decisions WHERE slot = $1 AND ts >= $2 AND ts < $3
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(slot)
        .bind(since)
        .bind(until)
        .bind(bucket_secs.max(1) as f64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AggRow {
                    segment: r.try_get("segment")?,
                    arm_id: r.try_get("arm_id")?,
                    bucket: r.try_get("bucket")?,
                    decisions: r.try_get::<i64, _>("decisions")? as u64,
                    clicks: r.try_get::<i64, _>("clicks")? as u64,
                    conversions: r.try_get::<i64, _>("conversions")? as u64,
                    revenue: r.try_get("revenue")?,
                })
            })
            .collect()
    }

    async fn logged(
        &self,
        slot: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Logged>> {
        let rows = sqlx::query(
            "SELECT decision_id, ts, segment, arm_id, propensity, learned, sticky, forced
             FROM bandit_decisions WHERE slot = $1 AND ts >= $2 AND ts < $3 AND learned IS NOT NULL
             ORDER BY ts, decision_id",
        )
        .bind(slot)
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Logged {
                    decision_id: r.try_get("decision_id")?,
                    ts: r.try_get("ts")?,
                    segment: r.try_get("segment")?,
                    arm_id: r.try_get("arm_id")?,
                    propensity: r.try_get("propensity")?,
                    reward: r.try_get("learned")?,
                    sticky: r.try_get("sticky")?,
                    forced: r.try_get("forced")?,
                })
            })
            .collect()
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

async fn insert_audit(tx: &mut Transaction<'_, Postgres>, a: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO bandit_audit (slot, at, actor, action, detail, version) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&a.slot)
    .bind(a.at)
    .bind(&a.actor)
    .bind(&a.action)
    .bind(&a.detail)
    .bind(a.version as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates a fresh database next to `base_url`'s and returns its URL (tests).
pub async fn fresh_database(base_url: &str, prefix: &str) -> Result<String> {
    Ok(pipelines::pg::fresh_database(base_url, prefix).await?)
}
