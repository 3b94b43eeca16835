//! Durable bandit state: slots with their audit trail, the decision log, reward signals and the ledger.
//!
//! Two implementations behind [`BanditStore`], chosen by [`open`]: PostgreSQL ([`postgres`], every service
//! replica shares it; restart and `kill -9` lose nothing that was acknowledged) and in-memory ([`memory`],
//! the embedded demo and unit tests; bounded, see [`memory::MemoryStoreConfig`]).
//!
//! The contract both keep:
//! - [`BanditStore::apply_signal`] is atomic: the signal id is recorded, the outcome updated and the ledger
//!   entry appended together, or nothing is; applying a signal id twice changes nothing
//!   ([`Applied::Duplicate`]).
//! - Ledger sequence numbers are dense and in commit order, so a replica that has applied up to `seq`
//!   never misses an entry by reading `> seq` later.
//! - [`BanditStore::put_slot`] is a compare-and-set on the slot version.

pub mod memory;
pub mod postgres;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::policy::LedgerEntry;
use crate::reward::{Applied, Decision, Outcome, Signal};
use crate::slot::{AuditEntry, Slot};
use crate::Result;

/// Counts per (segment, arm, time bucket) for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggRow {
    pub segment: String,
    pub arm_id: String,
    /// Start of the bucket.
    pub bucket: DateTime<Utc>,
    pub decisions: u64,
    pub clicks: u64,
    pub conversions: u64,
    /// Net attributed revenue, EUR.
    pub revenue: f64,
}

/// A learned decision as off-policy evaluation reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Logged {
    pub decision_id: Uuid,
    pub ts: DateTime<Utc>,
    pub segment: String,
    pub arm_id: String,
    pub propensity: f64,
    pub reward: f64,
    pub sticky: bool,
    pub forced: bool,
}

/// The durable state of the bandit service.
#[async_trait]
pub trait BanditStore: Send + Sync + 'static {
    /// Stores `slot` as version `expected + 1` (`expected` = 0 creates it) and appends `audit`; a
    /// [`crate::Error::Conflict`] when the stored version is not `expected`.
    async fn put_slot(&self, slot: &Slot, expected: u64, audit: &AuditEntry) -> Result<()>;
    /// Deletes a slot (its decisions stay in the log); [`crate::Error::NotFound`] when absent.
    async fn delete_slot(&self, slot: &str, audit: &AuditEntry) -> Result<()>;
    /// Every slot, current versions.
    async fn slots(&self) -> Result<Vec<Slot>>;
    /// The latest `limit` audit entries of a slot, newest first.
    async fn audit(&self, slot: &str, limit: usize) -> Result<Vec<AuditEntry>>;

    /// Logs a decision (durable on `Ok`); a duplicate id is a [`crate::Error::Conflict`].
    async fn insert_decision(&self, d: &Decision) -> Result<()>;
    /// A decision and its outcome.
    async fn decision(&self, id: Uuid) -> Result<Option<(Decision, Outcome)>>;
    /// The arm and propensity of the session's latest decision in `slot` at or after `since` (stickiness).
    async fn sticky_arm(
        &self,
        slot: &str,
        session_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<(String, f64)>>;
    /// The shopper's latest clicked decision whose attribution window covers `ts` (any slot).
    async fn attribute(
        &self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        ts: DateTime<Utc>,
    ) -> Result<Option<Uuid>>;
    /// The decision an order was attributed to.
    async fn decision_for_order(&self, order_id: &str) -> Result<Option<Uuid>>;

    /// Applies a reward signal atomically (see the module docs); `None` when the decision is unknown.
    async fn apply_signal(&self, signal: &Signal) -> Result<Option<Applied>>;
    /// Learns the reward of up to `limit` decisions whose window closed at or before `now`; returns how many.
    async fn expire(&self, now: DateTime<Utc>, limit: usize) -> Result<usize>;
    /// Ledger entries with `seq > after`, in order, at most `limit`.
    async fn ledger_since(&self, after: u64, limit: usize) -> Result<Vec<LedgerEntry>>;

    /// Decisions not yet published to the bus / event log (oldest first).
    async fn unpublished(&self, limit: usize) -> Result<Vec<Decision>>;
    /// Marks decisions as published.
    async fn mark_published(&self, ids: &[Uuid]) -> Result<()>;

    /// Counts per (segment, arm, bucket of `bucket_secs`) for decisions of `slot` made in `[since, until)`.
    async fn aggregate(
        &self,
        slot: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        bucket_secs: i64,
    ) -> Result<Vec<AggRow>>;
    /// Learned decisions of `slot` made in `[since, until)`, oldest first.
    async fn logged(
        &self,
        slot: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Logged>>;

    /// Checks the store is reachable.
    async fn ping(&self) -> Result<()>;
    /// Human description.
    fn describe(&self) -> String;
}

/// Opens PostgreSQL when `database_url` is set (creating the schema), else a new in-memory store.
pub async fn open(database_url: Option<&str>) -> Result<Arc<dyn BanditStore>> {
    match database_url {
        Some(url) => Ok(Arc::new(postgres::PgStore::connect(url).await?)),
        None => Ok(Arc::new(memory::MemoryStore::new(
            memory::MemoryStoreConfig::default(),
        ))),
    }
}

/// Start of the bucket of `ts` (buckets of `secs` seconds from the epoch).
pub(crate) fn bucket_of(ts: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    let s = ts.timestamp();
    DateTime::from_timestamp(s - s.rem_euclid(secs.max(1)), 0).unwrap_or(ts)
}
