//! The ClickHouse event log.
//!
//! Table `DB.TABLE` (default `lusso.events`): `ReplacingMergeTree` ordered by `(toDate(ts), event_id)`,
//! so a redelivered event collapses into one row on merge and is read once with `FINAL`. Timestamps are
//! `DateTime` seconds plus a `ts_ms` millisecond column, because the supported server (18.16) has no
//! DateTime64. Rows go in as one `RowBinary` insert per batch; `append` returns after ClickHouse has
//! acknowledged the insert, which is when the sink commits its offsets.
//!
//! [`EventLog::scan`] reads with `FINAL` and orders by the millisecond timestamp
//! `toInt64(toUnixTimestamp(ts)) * 1000 + ts_ms`, then `event_id` (a `String` holding the canonical
//! lowercase UUID, so byte order is the scan's string order). `received_at` is stored in whole seconds.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{EventLog, EventRow, QueryResult, ScanCursor, StoredEvent};
use crate::event::Event;
use crate::{Error, Result};

/// ClickHouse over HTTP.
pub struct ClickHouseLog {
    client: Client,
    url: String,
    database: String,
    table: String,
}

#[derive(Row, Serialize)]
struct ChRow<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    ts: u32,
    ts_ms: u16,
    received_at: u32,
    user_id: Option<&'a str>,
    anonymous_id: &'a str,
    session_id: &'a str,
    market: &'a str,
    device: &'a str,
    product_id: &'a str,
    order_id: &'a str,
    revenue: Option<f64>,
    currency: &'a str,
    properties: &'a str,
}

/// One row of a scan, in the scan's column order (RowBinary is positional).
#[derive(Row, Deserialize)]
struct ScanRow {
    event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    at_ms: i64,
    received_at: u32,
    user_id: Option<String>,
    anonymous_id: String,
    session_id: String,
    market: String,
    device: String,
    properties: String,
}

/// The stored `ts` in milliseconds since the epoch.
const AT_MS: &str = "(toInt64(toUnixTimestamp(ts)) * 1000 + ts_ms)";

/// Rejects names that could inject SQL (DDL cannot take bind parameters).
fn identifier(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "ClickHouse {kind} name `{name}` must match [A-Za-z_][A-Za-z0-9_]{{0,63}}"
        )))
    }
}

fn ch_err(what: &str, e: clickhouse::error::Error) -> Error {
    match e {
        clickhouse::error::Error::BadResponse(msg) => {
            Error::BadInput(format!("ClickHouse {what}: {msg}"))
        }
        other => Error::Unavailable(format!("ClickHouse {what}: {other}")),
    }
}

fn secs(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000)).unwrap_or(0)
}

/// Whole seconds of `ms` clamped to the `DateTime` range (for the pruning bounds, which must not
/// exclude anything the millisecond bounds keep).
fn clamped_secs(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000).clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX)
}

impl ClickHouseLog {
    /// Connects and creates the database and table if missing.
    pub async fn connect(url: &str, database: &str, table: &str) -> Result<Self> {
        identifier("database", database)?;
        identifier("table", table)?;
        let base = Client::default().with_url(url).with_validation(false);
        base.query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
            .execute()
            .await
            .map_err(|e| ch_err("create database", e))?;
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {database}.{table} (
                event_id String,
                type String,
                ts DateTime,
                ts_ms UInt16,
                received_at DateTime,
                user_id Nullable(String),
                anonymous_id String,
                session_id String,
                market String,
                device String,
                product_id String,
                order_id String,
                revenue Nullable(Float64),
                currency String,
                properties String
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMM(ts)
            ORDER BY (toDate(ts), event_id)"
        );
        base.query(&ddl)
            .execute()
            .await
            .map_err(|e| ch_err("create table", e))?;
        Ok(ClickHouseLog {
            client: base.with_database(database),
            url: url.to_string(),
            database: database.to_string(),
            table: table.to_string(),
        })
    }

    /// `database.table`.
    pub fn table_name(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }
}

#[async_trait]
impl EventLog for ClickHouseLog {
    async fn append(&self, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let rows: Vec<EventRow> = events.iter().map(EventRow::from_event).collect();
        let mut insert = self
            .client
            .insert::<ChRow<'_>>(&self.table)
            .await
            .map_err(|e| ch_err("insert", e))?;
        for r in &rows {
            let row = ChRow {
                event_id: &r.event_id,
                event_type: r.event_type,
                ts: secs(r.ts_ms),
                ts_ms: r.ts_ms.rem_euclid(1000) as u16,
                received_at: secs(r.received_at_ms),
                user_id: r.user_id.as_deref(),
                anonymous_id: &r.anonymous_id,
                session_id: &r.session_id,
                market: &r.market,
                device: &r.device,
                product_id: &r.product_id,
                order_id: &r.order_id,
                revenue: r.revenue,
                currency: &r.currency,
                properties: &r.properties,
            };
            insert.write(&row).await.map_err(|e| ch_err("insert", e))?;
        }
        insert.end().await.map_err(|e| ch_err("insert", e))
    }

    async fn query(&self, sql: &str) -> Result<QueryResult> {
        let mut cursor = self
            .client
            .query_raw(sql)
            .fetch_bytes("JSONCompact")
            .map_err(|e| ch_err("query", e))?;
        let bytes = cursor.collect().await.map_err(|e| ch_err("query", e))?;
        if bytes.is_empty() {
            return Ok(QueryResult::default());
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("ClickHouse JSONCompact: {e}")))?;
        let columns = v["meta"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|c| c["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let rows = v["data"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        Ok(QueryResult { columns, rows })
    }

    async fn scan(
        &self,
        until: DateTime<Utc>,
        after: Option<ScanCursor>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let until_ms = until.timestamp_millis();
        // Only the validated table name and `?` placeholders go into the text. The `ts` (seconds)
        // bounds repeat the millisecond ones so ClickHouse can prune by partition and primary key.
        let mut sql = format!(
            "SELECT event_id, type, {AT_MS} AS at_ms, received_at, user_id, anonymous_id, \
             session_id, market, device, properties FROM {table} FINAL \
             WHERE ts <= toDateTime(?) AND {AT_MS} <= ?",
            table = self.table
        );
        if after.is_some() {
            sql.push_str(&format!(
                " AND ts >= toDateTime(?) AND ({AT_MS} > ? OR ({AT_MS} = ? AND event_id > ?))"
            ));
        }
        sql.push_str(&format!(" ORDER BY {AT_MS}, event_id LIMIT ?"));
        let mut query = self
            .client
            .query(&sql)
            .bind(clamped_secs(until_ms))
            .bind(until_ms);
        if let Some(c) = after {
            query = query
                .bind(clamped_secs(c.ts_ms))
                .bind(c.ts_ms)
                .bind(c.ts_ms)
                .bind(c.event_id.to_string());
        }
        let rows = query
            .bind(u64::try_from(limit).unwrap_or(u64::MAX))
            .fetch_all::<ScanRow>()
            .await
            .map_err(|e| ch_err("scan", e))?;
        rows.into_iter()
            .map(|r| {
                StoredEvent {
                    event_id: r.event_id,
                    event_type: r.event_type,
                    ts_ms: r.at_ms,
                    received_at_ms: i64::from(r.received_at) * 1000,
                    user_id: r.user_id,
                    anonymous_id: r.anonymous_id,
                    session_id: r.session_id,
                    market: r.market,
                    device: r.device,
                    properties: r.properties,
                }
                .into_event()
            })
            .collect()
    }

    async fn ping(&self) -> Result<()> {
        self.client
            .query("SELECT 1")
            .execute()
            .await
            .map_err(|e| ch_err("ping", e))
    }

    fn describe(&self) -> String {
        format!("clickhouse {} ({})", self.url, self.table_name())
    }
}
