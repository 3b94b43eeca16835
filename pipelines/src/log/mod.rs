//! The event log: every accepted event, once per `event_id`, queryable with SQL.
//!
//! Two implementations behind [`EventLog`], chosen by [`open`]: ClickHouse ([`clickhouse`],
//! `ReplacingMergeTree` keyed by `event_id`; read with `FINAL` for one row per id) and an embedded Parquet
//! store ([`parquet`], files partitioned by date, deduplicated on write, queried through DataFusion).
//! Both expose the same columns ([`COLUMNS`]) under the table name `events`.

pub mod clickhouse;
pub mod parquet;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::config::BackendConfig;
use crate::event::{Event, Properties};
use crate::Result;

/// The columns of the `events` table in both backends, in order.
pub const COLUMNS: [&str; 14] = [
    "event_id",
    "type",
    "ts",
    "received_at",
    "user_id",
    "anonymous_id",
    "session_id",
    "market",
    "device",
    "product_id",
    "order_id",
    "revenue",
    "currency",
    "properties",
];

/// A durable, idempotent, SQL-queryable store of events.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Stores the events; on `Ok` they are durable. Appending an `event_id` again changes nothing
    /// visible (one row per id).
    async fn append(&self, events: &[Event]) -> Result<()>;
    /// Runs SQL over the log (table `events`).
    async fn query(&self, sql: &str) -> Result<QueryResult>;
    /// Checks the store is reachable.
    async fn ping(&self) -> Result<()>;
    /// Human description.
    fn describe(&self) -> String;
}

/// Opens the log named by the config: ClickHouse when `clickhouse_url` is set, else Parquet files under
/// `data_dir/events`.
pub async fn open(config: &BackendConfig) -> Result<Arc<dyn EventLog>> {
    match &config.clickhouse_url {
        Some(url) => Ok(Arc::new(
            clickhouse::ClickHouseLog::connect(
                url,
                &config.clickhouse_database,
                &config.clickhouse_table,
            )
            .await?,
        )),
        None => Ok(Arc::new(
            parquet::ParquetLog::open(config.data_dir.join("events")).await?,
        )),
    }
}

/// A query's result as text cells (both engines render values the same way for the CLI and tests).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows of cells; `null` for SQL NULL.
    pub rows: Vec<Vec<Value>>,
}

impl QueryResult {
    /// The single cell of a one-row, one-column result as an integer (for `count()` style queries).
    pub fn scalar_i64(&self) -> Option<i64> {
        let cell = self.rows.first()?.first()?;
        match cell {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// Renders an aligned text table.
    pub fn to_table(&self) -> String {
        let cell = |v: &Value| match v {
            Value::Null => "NULL".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(cell).collect())
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &cells {
            for (i, c) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count().min(60));
                }
            }
        }
        let line = |out: &mut String| {
            out.push('+');
            for w in &widths {
                out.push_str(&"-".repeat(w + 2));
                out.push('+');
            }
            out.push('\n');
        };
        let row_text = |out: &mut String, row: &[String]| {
            out.push('|');
            for (i, w) in widths.iter().enumerate() {
                let c: String = row
                    .get(i)
                    .map(|s| s.chars().take(60).collect())
                    .unwrap_or_default();
                let pad = w.saturating_sub(c.chars().count());
                out.push_str(&format!(" {c}{} |", " ".repeat(pad)));
            }
            out.push('\n');
        };
        let mut out = String::new();
        line(&mut out);
        row_text(&mut out, &self.columns);
        line(&mut out);
        for row in &cells {
            row_text(&mut out, row);
        }
        line(&mut out);
        out.push_str(&format!(
            "{} row{}\n",
            cells.len(),
            if cells.len() == 1 { "" } else { "s" }
        ));
        out
    }
}

/// The flattened row both backends store for an event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub event_id: String,
    pub event_type: &'static str,
    /// Milliseconds since the epoch.
    pub ts_ms: i64,
    /// Milliseconds since the epoch (receive time; `ts` when the event was never stamped).
    pub received_at_ms: i64,
    pub user_id: Option<String>,
    pub anonymous_id: String,
    pub session_id: String,
    pub market: String,
    pub device: String,
    pub product_id: String,
    pub order_id: String,
    /// Purchase total (negative for returns: the value of the returned lines).
    pub revenue: Option<f64>,
    pub currency: String,
    /// The `properties` object as JSON text.
    pub properties: String,
}

impl EventRow {
    /// Flattens an event.
    pub fn from_event(e: &Event) -> EventRow {
        let (order_id, revenue, currency) = match &e.properties {
            Properties::Purchase(p) => (p.order_id.clone(), Some(p.total), p.currency.clone()),
            Properties::Return(r) => {
                let value: f64 = r
                    .lines
                    .iter()
                    .map(|l| f64::from(l.quantity) * l.unit_price)
                    .sum();
                let currency = r
                    .extra
                    .get("currency")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                (r.order_id.clone(), Some(-value), currency)
            }
            _ => (String::new(), None, String::new()),
        };
        EventRow {
            event_id: e.event_id.to_string(),
            event_type: e.event_type().as_str(),
            ts_ms: e.ts.timestamp_millis(),
            received_at_ms: e.received_at.unwrap_or(e.ts).timestamp_millis(),
            user_id: e.user_id.clone(),
            anonymous_id: e.anonymous_id.clone().unwrap_or_default(),
            session_id: e.session_id.clone().unwrap_or_default(),
            market: e.market.clone().unwrap_or_default(),
            device: e.device.map(|d| d.as_str()).unwrap_or_default().to_string(),
            product_id: e.product_id().unwrap_or_default().to_string(),
            order_id,
            revenue,
            currency,
            properties: serde_json::to_string(&e.properties).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_renders_aligned_with_nulls() {
        let r = QueryResult {
            columns: vec!["type".into(), "n".into()],
            rows: vec![
                vec![Value::String("purchase".into()), Value::from(12)],
                vec![Value::Null, Value::from(3)],
            ],
        };
        let t = r.to_table();
        assert!(t.contains("| purchase | 12 |"), "{t}");
        assert!(t.contains("| NULL     | 3  |"), "{t}");
        assert!(t.ends_with("2 rows\n"));
        let one = QueryResult {
            columns: vec!["c".into()],
            rows: vec![vec![Value::String("42".into())]],
        };
        assert_eq!(one.scalar_i64(), Some(42));
    }
}
