//! The event log: every accepted event, once per `event_id`, queryable with SQL.
//!
//! Two implementations behind [`EventLog`], chosen by [`open`]: ClickHouse ([`clickhouse`],
//! `ReplacingMergeTree` keyed by `event_id`; read with `FINAL` for one row per id) and an embedded Parquet
//! store ([`parquet`], files partitioned by date, deduplicated on write, queried through DataFusion).
//! Both expose the same columns ([`COLUMNS`]) under the table name `events`.
//!
//! Besides SQL, [`EventLog::scan`] pages through the typed events in `(ts, event_id)` order for offline
//! replays (feature backfills).

pub mod clickhouse;
pub mod parquet;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::config::BackendConfig;
use crate::event::{Device, Event, EventType, Properties};
use crate::{Error, Result};

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

/// Position in a replay scan: events are scanned in `(ts, event_id)` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanCursor {
    /// The event's `ts` in milliseconds since the epoch.
    pub ts_ms: i64,
    pub event_id: Uuid,
}

impl ScanCursor {
    /// The cursor just at `e`: a scan continued from it starts with the event after `e`.
    pub fn of(e: &Event) -> ScanCursor {
        ScanCursor {
            ts_ms: e.ts.timestamp_millis(),
            event_id: e.event_id,
        }
    }
}

/// A durable, idempotent, SQL-queryable store of events.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Stores the events; on `Ok` they are durable. Appending an `event_id` again changes nothing
    /// visible (one row per id).
    async fn append(&self, events: &[Event]) -> Result<()>;
    /// Runs SQL over the log (table `events`).
    async fn query(&self, sql: &str) -> Result<QueryResult>;
    /// Up to `limit` distinct events with `ts <= until`, strictly after `after` in `(ts, event_id)` order
    /// (ts at millisecond precision, then event_id compared as its canonical lowercase hyphenated string),
    /// each reconstructed as the full typed `Event` (envelope + typed properties + received_at) that was
    /// appended. Callers page by passing the last returned event's cursor ([`ScanCursor::of`]); a page
    /// shorter than `limit` is the last. Used by offline feature replays.
    ///
    /// What the stored row cannot carry comes back normalised:
    /// - `ts` and `received_at` at millisecond precision; ClickHouse keeps `received_at` in whole
    ///   seconds (its `DateTime` column), so there it comes back truncated to the second;
    /// - an event appended without `received_at` comes back with `received_at == ts` (what is stored);
    /// - an empty `anonymous_id` / `session_id` comes back as `None` (both are stored as `""`).
    ///
    /// One row per `event_id` is read: `FINAL` in ClickHouse (the last inserted copy); in Parquet, rows
    /// repeating a `(ts, event_id)` collapse to the earliest `received_at`. A stored row that cannot be
    /// rebuilt is an [`Error::Internal`].
    async fn scan(
        &self,
        until: DateTime<Utc>,
        after: Option<ScanCursor>,
        limit: usize,
    ) -> Result<Vec<Event>>;
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

/// The stored columns an [`Event`] is rebuilt from by [`EventLog::scan`] (the envelope columns of
/// [`COLUMNS`] plus the `properties` JSON; the derived columns are not needed).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredEvent {
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    /// Milliseconds since the epoch.
    pub(crate) ts_ms: i64,
    /// Milliseconds since the epoch.
    pub(crate) received_at_ms: i64,
    pub(crate) user_id: Option<String>,
    pub(crate) anonymous_id: String,
    pub(crate) session_id: String,
    pub(crate) market: String,
    pub(crate) device: String,
    pub(crate) properties: String,
}

impl StoredEvent {
    /// Rebuilds the typed event (the inverse of [`EventRow::from_event`] on the envelope columns).
    pub(crate) fn into_event(self) -> Result<Event> {
        let bad = |what: &str| {
            Error::Internal(format!(
                "stored event {}: {what}",
                self.event_id.chars().take(64).collect::<String>()
            ))
        };
        let event_id =
            Uuid::parse_str(&self.event_id).map_err(|e| bad(&format!("event_id: {e}")))?;
        let ty = EventType::parse(&self.event_type)
            .ok_or_else(|| bad(&format!("unknown type `{}`", self.event_type)))?;
        let ts =
            DateTime::from_timestamp_millis(self.ts_ms).ok_or_else(|| bad("ts out of range"))?;
        let received_at = DateTime::from_timestamp_millis(self.received_at_ms)
            .ok_or_else(|| bad("received_at out of range"))?;
        let device = match self.device.as_str() {
            "" => None,
            d => Some(Device::parse(d).ok_or_else(|| bad(&format!("unknown device `{d}`")))?),
        };
        let properties = serde_json::from_str::<Value>(&self.properties)
            .map_err(|e| e.to_string())
            .and_then(|v| Properties::from_value(ty, v).map_err(|e| e.to_string()))
            .map_err(|e| bad(&format!("properties: {e}")))?;
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        Ok(Event {
            event_id,
            ts,
            user_id: self.user_id,
            anonymous_id: non_empty(self.anonymous_id),
            session_id: non_empty(self.session_id),
            market: non_empty(self.market),
            device,
            received_at: Some(received_at),
            properties,
        })
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

    #[test]
    fn stored_event_rebuilds_the_appended_event() {
        let raw = serde_json::json!({
            "event_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "type": "purchase",
            "ts": "2026-03-01T10:00:00.123Z",
            "user_id": null,
            "anonymous_id": "anon-1",
            "market": "IT",
            "device": "mobile",
            "properties": {"order_id": "O1", "currency": "EUR", "total": 259.8, "gift": true,
                "lines": [{"product_id": "P1", "variant_id": "P1-42", "quantity": 2, "unit_price": 129.9}]}
        });
        let now = DateTime::from_timestamp_millis(1_772_400_000_456).unwrap();
        let mut event = crate::validate::validate_event(&raw, now).unwrap();
        event.received_at = Some(now);
        let row = EventRow::from_event(&event);
        let stored = StoredEvent {
            event_id: row.event_id,
            event_type: row.event_type.to_string(),
            ts_ms: row.ts_ms,
            received_at_ms: row.received_at_ms,
            user_id: row.user_id,
            anonymous_id: row.anonymous_id,
            session_id: row.session_id,
            market: row.market,
            device: row.device,
            properties: row.properties,
        };
        assert_eq!(stored.clone().into_event().unwrap(), event);
        let broken = StoredEvent {
            properties: "{}".into(),
            ..stored
        };
        assert!(matches!(broken.into_event(), Err(Error::Internal(_))));
        let cursor = ScanCursor::of(&event);
        assert_eq!(
            (cursor.ts_ms, cursor.event_id),
            (event.ts.timestamp_millis(), event.event_id)
        );
    }

    #[test]
    fn computed_floats_round_trip_exactly() {
        // Without serde_json's `float_roundtrip` feature (enabled in the workspace) these read one ULP off.
        let floats = [1211.4560000000001, 1846.7040000000002, 1355.8139999999999];
        let value = serde_json::json!({"total": floats[0], "lines": [{"unit_price": floats[1]}, {"unit_price": floats[2]}]});
        let back: Value = serde_json::from_str(&serde_json::to_string(&value).unwrap()).unwrap();
        assert_eq!(back, value);
    }
}
