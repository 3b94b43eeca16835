//! Point-in-time exports: features "as of T" equal a computation over only the events before T (nothing later
//! leaks), against the embedded Parquet log and the real ClickHouse log; snapshots are written to both.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::*;
use features::offline::{export_as_of, write_snapshot, SnapshotSink};
use features::processor::Processor;
use features::state::stream_id;
use features::store::memory::MemoryStore;
use pipelines::event::Event;
use pipelines::log::EventLog;

async fn as_of_export_never_sees_the_future(log: Arc<dyn EventLog>, sink: SnapshotSink) {
    let (events, _, now) = simulate(300, 20, 9);
    log.append(&events).await.unwrap();
    let as_of = now - Duration::days(6);
    let (ctx, _, _keys) = context_and_store(false).await;
    let exported = export_as_of(log.as_ref(), ctx.clone(), as_of, |_| {})
        .await
        .unwrap();

    // Expected: the same features computed from the events up to `as_of` only.
    let before: Vec<Event> = events.iter().filter(|e| e.ts <= as_of).cloned().collect();
    let later = events.len() - before.len();
    assert!(
        later > 1_000 && before.len() > 1_000,
        "{} before, {later} after",
        before.len()
    );
    let p = Processor::new(ctx.clone(), Arc::new(MemoryStore::new(1_000_000)));
    p.process(&incoming(&before, stream_id(0, 0), 0))
        .await
        .unwrap();
    let (expected, _) = snapshot(&p, &before, as_of).await;
    assert_eq!(
        exported.len(),
        expected.len(),
        "shoppers first seen after as_of must not appear"
    );
    for (got, want) in exported.iter().zip(&expected) {
        let got = serde_json::to_value(got).unwrap();
        assert_same(&got, want, &format!("user {}", want["user"]));
        let last_seen: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(got["last_seen"].clone()).unwrap();
        assert!(
            last_seen <= as_of,
            "{} saw an event after as_of",
            got["user"]
        );
    }
    // And the later events do change features: the check above could fail.
    let at_now = export_as_of(log.as_ref(), ctx, now, |_| {}).await.unwrap();
    assert!(at_now.len() > exported.len());

    let at = write_snapshot(&sink, as_of, &exported).await.unwrap();
    match &sink {
        SnapshotSink::ClickHouse { database, .. } => {
            let sql = format!("SELECT count() FROM {database}.user_features FINAL");
            let n = log.query(&sql).await.unwrap().scalar_i64().unwrap();
            assert_eq!(n as usize, exported.len(), "{at}");
        }
        SnapshotSink::Parquet(_) => {
            assert!(std::fs::metadata(&at).unwrap().len() > 1_000, "{at}");
        }
    }
}

mod memory {
    use super::*;
    use pipelines::log::parquet::ParquetLog;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn as_of_export_never_sees_the_future() {
        let dir = tempfile::tempdir().unwrap();
        let log = ParquetLog::open(dir.path().join("events")).await.unwrap();
        let sink = SnapshotSink::Parquet(dir.path().join("features"));
        super::as_of_export_never_sees_the_future(Arc::new(log), sink).await;
    }
}

mod redis {
    use super::*;
    use pipelines::log::clickhouse::ClickHouseLog;

    /// The real event log (ClickHouse); the online store plays no part in an export.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn as_of_export_never_sees_the_future() {
        let url = require_env("LUSSO_CLICKHOUSE_URL");
        let db = fresh("lusso_test");
        let log = ClickHouseLog::connect(&url, &db, "events").await.unwrap();
        let sink = SnapshotSink::ClickHouse { url, database: db };
        super::as_of_export_never_sees_the_future(Arc::new(log), sink).await;
    }
}
