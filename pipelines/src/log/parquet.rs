//! The embedded event log: Parquet files partitioned by event date, queried through DataFusion.
//!
//! Layout: `DIR/date=YYYY-MM-DD/part-<unix ms>-<seq>.parquet`, one file per date per appended batch,
//! written to a temporary name, fsynced and renamed, so a file is either whole or absent and `append`
//! returns only once the data is durable (the sink commits offsets after that).
//!
//! Idempotence: ids already stored are skipped on write. The id index holds every stored `event_id`
//! in memory (16 bytes each plus hash-set overhead, ~40 MB per million events): the embedded mode is for
//! development and demos up to a few million events; production uses ClickHouse. Two processes writing
//! the same directory do not share the index, so [`EventLog::scan`] also collapses rows that repeat a
//! `(ts, event_id)`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, Int64Array, RecordBatch, StringArray, StringBuilder,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{col, lit, Expr, ParquetReadOptions, SessionContext};
use datafusion::scalar::ScalarValue;
use serde_json::Value;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{EventLog, EventRow, QueryResult, ScanCursor, StoredEvent};
use crate::event::Event;
use crate::{Error, Result};

/// Table name in SQL.
pub const TABLE: &str = "events";

/// The Arrow schema of the stored rows (the partition column `date` is added by the directory layout).
pub fn schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("ts", ts(), false),
        Field::new("received_at", ts(), false),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("anonymous_id", DataType::Utf8, false),
        Field::new("session_id", DataType::Utf8, false),
        Field::new("market", DataType::Utf8, false),
        Field::new("device", DataType::Utf8, false),
        Field::new("product_id", DataType::Utf8, false),
        Field::new("order_id", DataType::Utf8, false),
        Field::new("revenue", DataType::Float64, true),
        Field::new("currency", DataType::Utf8, false),
        Field::new("properties", DataType::Utf8, false),
    ]))
}

/// Parquet files under one directory.
pub struct ParquetLog {
    dir: PathBuf,
    /// Every stored id; held across a write and extended in the writing task (see [`EventLog::append`]).
    ids: Arc<Mutex<HashSet<u128>>>,
    seq: AtomicU64,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{what} {}: {e}", path.display()))
}

fn df_err(e: impl std::fmt::Display) -> Error {
    Error::BadInput(format!("query failed: {e}"))
}

impl ParquetLog {
    /// Opens (creating) the directory and loads the id index from the files already there.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_err("create", &dir, e))?;
        let log = ParquetLog {
            dir,
            ids: Arc::new(Mutex::new(HashSet::new())),
            seq: AtomicU64::new(0),
        };
        let stored = log.query_raw("SELECT event_id FROM events").await?;
        let mut ids = log.ids.lock().await;
        for batch in stored {
            if let Some(col) = batch.column(0).as_any().downcast_ref::<StringArray>() {
                for id in col.iter().flatten() {
                    if let Ok(u) = Uuid::parse_str(id) {
                        ids.insert(u.as_u128());
                    }
                }
            }
        }
        drop(ids);
        Ok(log)
    }

    /// The directory holding the partitions.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn context(&self) -> Result<SessionContext> {
        let ctx = SessionContext::new();
        let schema = schema();
        let path = format!("{}/", self.dir.display());
        ctx.register_parquet(
            TABLE,
            &path,
            ParquetReadOptions::default()
                .schema(&schema)
                .table_partition_cols(vec![("date".to_string(), DataType::Utf8)]),
        )
        .await
        .map_err(df_err)?;
        Ok(ctx)
    }

    async fn query_raw(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let ctx = self.context().await?;
        let df = ctx.sql(sql).await.map_err(df_err)?;
        df.collect().await.map_err(df_err)
    }

    /// Up to `fetch` stored rows with `ts <= until_ms` strictly after `after`, in
    /// `(ts, event_id, received_at)` order, duplicates included (see [`EventLog::scan`]).
    async fn scan_rows(
        &self,
        until_ms: i64,
        after: Option<ScanCursor>,
        fetch: usize,
    ) -> Result<Vec<StoredEvent>> {
        let mut filter = col("ts").lt_eq(ts_lit(until_ms));
        if let Some(date) = date_lit(until_ms) {
            filter = filter.and(col("date").lt_eq(date));
        }
        if let Some(c) = after {
            // (ts, event_id) > (c.ts, c.id), with `ts >= c.ts` on its own so row groups can be pruned.
            filter = filter.and(col("ts").gt_eq(ts_lit(c.ts_ms))).and(
                col("ts")
                    .gt(ts_lit(c.ts_ms))
                    .or(col("event_id").gt(lit(c.event_id.to_string()))),
            );
            if let Some(date) = date_lit(c.ts_ms) {
                filter = filter.and(col("date").gt_eq(date));
            }
        }
        let batches = self
            .context()
            .await?
            .table(TABLE)
            .await
            .map_err(df_err)?
            .filter(filter)
            .and_then(|df| {
                df.sort(vec![
                    col("ts").sort(true, false),
                    col("event_id").sort(true, false),
                    col("received_at").sort(true, false),
                ])
            })
            .and_then(|df| df.limit(0, Some(fetch)))
            .and_then(|df| df.select_columns(&SCAN_COLUMNS))
            .map_err(df_err)?
            .collect()
            .await
            .map_err(df_err)?;
        let mut rows = Vec::new();
        for batch in &batches {
            let text = |name: &str| -> Result<StringArray> {
                Ok(scan_column(batch, name, &DataType::Utf8)?
                    .as_string::<i32>()
                    .clone())
            };
            let millis = |name: &str| -> Result<Int64Array> {
                Ok(scan_column(batch, name, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone())
            };
            let (event_id, ty, ts, received_at) = (
                text("event_id")?,
                text("type")?,
                millis("ts")?,
                millis("received_at")?,
            );
            let (user_id, anonymous_id, session_id) =
                (text("user_id")?, text("anonymous_id")?, text("session_id")?);
            let (market, device, properties) =
                (text("market")?, text("device")?, text("properties")?);
            for i in 0..batch.num_rows() {
                rows.push(StoredEvent {
                    event_id: event_id.value(i).to_string(),
                    event_type: ty.value(i).to_string(),
                    ts_ms: ts.value(i),
                    received_at_ms: received_at.value(i),
                    user_id: (!user_id.is_null(i)).then(|| user_id.value(i).to_string()),
                    anonymous_id: anonymous_id.value(i).to_string(),
                    session_id: session_id.value(i).to_string(),
                    market: market.value(i).to_string(),
                    device: device.value(i).to_string(),
                    properties: properties.value(i).to_string(),
                });
            }
        }
        Ok(rows)
    }
}

/// The columns [`EventLog::scan`] rebuilds an event from.
const SCAN_COLUMNS: [&str; 10] = [
    "event_id",
    "type",
    "ts",
    "received_at",
    "user_id",
    "anonymous_id",
    "session_id",
    "market",
    "device",
    "properties",
];

/// A timestamp literal of the stored `ts` type.
fn ts_lit(ms: i64) -> Expr {
    lit(ScalarValue::TimestampMillisecond(
        Some(ms),
        Some("UTC".into()),
    ))
}

/// The `date` partition value holding `ms`, when it compares as text (years 0–9999); `None` skips the
/// partition filter (it only prunes).
fn date_lit(ms: i64) -> Option<Expr> {
    let t = DateTime::<Utc>::from_timestamp_millis(ms)?;
    (0..=9999)
        .contains(&t.year())
        .then(|| lit(t.format("%Y-%m-%d").to_string()))
}

/// A scanned column cast to `to` (strings may be read as views; timestamps become epoch millis).
fn scan_column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("scan: no column {name}")))?;
    cast(column, to).map_err(|e| Error::Internal(format!("scan: column {name}: {e}")))
}

/// Writes one partition file durably (blocking I/O: run it off the async runtime).
fn write_file(dir: &Path, seq: u64, date: &str, rows: &[EventRow]) -> Result<()> {
    let part_dir = dir.join(format!("date={date}"));
    std::fs::create_dir_all(&part_dir).map_err(|e| io_err("create", &part_dir, e))?;
    let name = format!(
        "part-{}-{}-{seq}.parquet",
        chrono::Utc::now().timestamp_millis(),
        std::process::id()
    );
    let tmp = part_dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    let batch = to_batch(rows)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))
        .map_err(|e| io_err("write", &tmp, e))?;
    writer.write(&batch).map_err(|e| io_err("write", &tmp, e))?;
    let file = writer.into_inner().map_err(|e| io_err("finish", &tmp, e))?;
    file.sync_all().map_err(|e| io_err("fsync", &tmp, e))?;
    let target = part_dir.join(&name);
    std::fs::rename(&tmp, &target).map_err(|e| io_err("rename", &target, e))?;
    std::fs::File::open(&part_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("fsync", &part_dir, e))?;
    Ok(())
}

fn to_batch(rows: &[EventRow]) -> Result<RecordBatch> {
    let mut ids = StringBuilder::new();
    let mut types = StringBuilder::new();
    let mut ts = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut received = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut users = StringBuilder::new();
    let mut anons = StringBuilder::new();
    let mut sessions = StringBuilder::new();
    let mut markets = StringBuilder::new();
    let mut devices = StringBuilder::new();
    let mut products = StringBuilder::new();
    let mut orders = StringBuilder::new();
    let mut revenue = Float64Builder::new();
    let mut currencies = StringBuilder::new();
    let mut props = StringBuilder::new();
    for r in rows {
        ids.append_value(&r.event_id);
        types.append_value(r.event_type);
        ts.append_value(r.ts_ms);
        received.append_value(r.received_at_ms);
        users.append_option(r.user_id.as_deref());
        anons.append_value(&r.anonymous_id);
        sessions.append_value(&r.session_id);
        markets.append_value(&r.market);
        devices.append_value(&r.device);
        products.append_value(&r.product_id);
        orders.append_value(&r.order_id);
        revenue.append_option(r.revenue);
        currencies.append_value(&r.currency);
        props.append_value(&r.properties);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(types.finish()),
        Arc::new(ts.finish()),
        Arc::new(received.finish()),
        Arc::new(users.finish()),
        Arc::new(anons.finish()),
        Arc::new(sessions.finish()),
        Arc::new(markets.finish()),
        Arc::new(devices.finish()),
        Arc::new(products.finish()),
        Arc::new(orders.finish()),
        Arc::new(revenue.finish()),
        Arc::new(currencies.finish()),
        Arc::new(props.finish()),
    ];
    RecordBatch::try_new(schema(), columns).map_err(|e| Error::Internal(format!("batch: {e}")))
}

/// Converts Arrow batches into text cells.
fn to_result(batches: &[RecordBatch], columns: Vec<String>) -> Result<QueryResult> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(format!("format: {e}")))?;
        for i in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(col, f)| {
                        if col.is_null(i) {
                            Value::Null
                        } else {
                            Value::String(f.value(i).to_string())
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(QueryResult { columns, rows })
}

#[async_trait]
impl EventLog for ParquetLog {
    async fn append(&self, events: &[Event]) -> Result<()> {
        // The index lock moves into the writing task, which records each file's ids right after the file is
        // durable: a caller that gives up mid-append (an aborted sink) cannot leave rows on disk whose ids
        // the index misses, which the next append would write again.
        let mut ids = self.ids.clone().lock_owned().await;
        let mut by_date: BTreeMap<String, (Vec<EventRow>, Vec<u128>)> = BTreeMap::new();
        let mut batch_ids = HashSet::new();
        for e in events {
            let id = e.event_id.as_u128();
            if ids.contains(&id) || !batch_ids.insert(id) {
                continue;
            }
            let day = by_date
                .entry(e.ts.format("%Y-%m-%d").to_string())
                .or_default();
            day.0.push(EventRow::from_event(e));
            day.1.push(id);
        }
        if by_date.is_empty() {
            return Ok(());
        }
        let dir = self.dir.clone();
        let seq = self.seq.fetch_add(by_date.len() as u64, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            for (i, (date, (rows, fresh))) in by_date.into_iter().enumerate() {
                write_file(&dir, seq + i as u64, &date, &rows)?;
                ids.extend(fresh);
            }
            Ok::<_, Error>(())
        })
        .await
        .map_err(|e| Error::Internal(format!("parquet writer task: {e}")))?
    }

    async fn query(&self, sql: &str) -> Result<QueryResult> {
        let ctx = self.context().await?;
        let df = ctx.sql(sql).await.map_err(df_err)?;
        let columns = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let batches = df.collect().await.map_err(df_err)?;
        to_result(&batches, columns)
    }

    async fn scan(
        &self,
        until: DateTime<Utc>,
        after: Option<ScanCursor>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let until_ms = until.timestamp_millis();
        let mut out: Vec<Event> = Vec::new();
        let mut after = after;
        let mut last: Option<(i64, String)> = None;
        while out.len() < limit {
            let want = limit - out.len();
            let rows = self.scan_rows(until_ms, after, want).await?;
            let fetched = rows.len();
            for row in rows {
                // Duplicates sort next to each other; the first (earliest received) is kept.
                if last
                    .as_ref()
                    .is_some_and(|(ts, id)| *ts == row.ts_ms && *id == row.event_id)
                {
                    continue;
                }
                last = Some((row.ts_ms, row.event_id.clone()));
                out.push(row.into_event()?);
            }
            if fetched < want {
                break;
            }
            // A full fetch that held duplicates: fetch the rest after the last row seen.
            after = out.last().map(ScanCursor::of);
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<()> {
        tokio::fs::metadata(&self.dir)
            .await
            .map(|_| ())
            .map_err(|e| io_err("stat", &self.dir, e))
    }

    fn describe(&self) -> String {
        format!("parquet://{}", self.dir.display())
    }
}
