//! `EventLog::scan`, the replay scan used by offline feature builds, run once per backend
//! (`mod embedded`: Parquet in a tempdir; `mod real`: ClickHouse at `LUSSO_CLICKHOUSE_URL`, fresh table).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use pipelines::catalog::Catalog;
use pipelines::event::{Event, Properties};
use pipelines::log::{EventLog, ScanCursor};
use pipelines::sim::{SimConfig, Simulator};

const PAGE: usize = 64;

/// 17-digit floats that a non-exact JSON float parser reads one ULP off.
const AWKWARD_FLOATS: [f64; 3] = [1211.4560000000001, 1846.7040000000002, 1355.8139999999999];

/// `n` simulated events as the collector would log them: validated and stamped with a `received_at`
/// that has sub-millisecond digits (like `Utc::now()`). Events 100..180 share one `ts` so a page
/// boundary falls inside a run of equal timestamps and the `event_id` tie-break is exercised; prices
/// and totals are set to [`AWKWARD_FLOATS`] (like computed order totals) to check they come back exact.
fn simulated_events(n: usize) -> Vec<Event> {
    let start = DateTime::parse_from_rfc3339("2025-06-01T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut sim = Simulator::new(
        SimConfig::new(11, 40, start),
        Arc::new(Catalog::generate(11)),
    );
    let now = Utc::now();
    let mut events: Vec<Event> = sim
        .next_events(n)
        .iter()
        .map(|v| pipelines::validate::validate_event(v, now).unwrap())
        .collect();
    assert_eq!(events.len(), n, "the simulator ran dry");
    let tied = events[100].ts;
    for e in &mut events[100..180] {
        e.ts = tied;
    }
    let mut awkward = AWKWARD_FLOATS.iter().copied().cycle();
    let mut with_floats = 0;
    for (i, e) in events.iter_mut().enumerate() {
        e.received_at = Some(e.ts + Duration::nanoseconds(1_234_567_891 + 1_000 * i as i64));
        match &mut e.properties {
            Properties::AddToCart(c) | Properties::RemoveFromCart(c) => {
                c.price = awkward.next().unwrap()
            }
            Properties::Purchase(p) => {
                p.total = awkward.next().unwrap();
                p.lines[0].unit_price = awkward.next().unwrap();
            }
            Properties::ProductView(v) => {
                v.extra
                    .insert("score".into(), serde_json::json!(awkward.next().unwrap()));
            }
            _ => continue,
        }
        with_floats += 1;
    }
    assert!(with_floats > 20, "{with_floats} events with floats");
    events
}

/// The event as the backend can return it: `received_at` truncated to `unit_ms` (1 for Parquet,
/// 1000 for ClickHouse, whose `received_at` column is a `DateTime` in seconds).
fn as_stored(e: &Event, unit_ms: i64) -> Event {
    let mut e = e.clone();
    e.received_at = e.received_at.map(|t| {
        DateTime::from_timestamp_millis(t.timestamp_millis().div_euclid(unit_ms) * unit_ms).unwrap()
    });
    e
}

fn order_key(e: &Event) -> (i64, String) {
    (e.ts.timestamp_millis(), e.event_id.to_string())
}

/// Pages through `scan(until, …)` with `PAGE`; checks every page is full but the last and strictly after
/// the cursor it was asked for.
async fn scan_all(log: &dyn EventLog, until: DateTime<Utc>) -> Vec<Event> {
    let mut all: Vec<Event> = Vec::new();
    let mut after: Option<ScanCursor> = None;
    let mut short_page_seen = false;
    loop {
        let page = log.scan(until, after, PAGE).await.unwrap();
        if page.is_empty() {
            return all;
        }
        assert!(page.len() <= PAGE, "page of {}", page.len());
        assert!(!short_page_seen, "a page followed a short page");
        short_page_seen = page.len() < PAGE;
        if let Some(c) = after {
            let first = order_key(&page[0]);
            assert!(
                first > (c.ts_ms, c.event_id.to_string()),
                "{first:?} not after cursor {c:?}"
            );
        }
        after = page.last().map(ScanCursor::of);
        all.extend(page);
    }
}

/// Checks a full paged scan against the appended events.
async fn assert_scan_matches(log: &dyn EventLog, appended: &[Event], unit_ms: i64) {
    let mut sorted = appended.to_vec();
    sorted.sort_by_key(order_key);
    let until = sorted[200].ts;
    assert!(
        sorted.iter().any(|e| e.ts > until),
        "until is not mid-range"
    );
    let mut expected: Vec<Event> = sorted
        .iter()
        .filter(|e| e.ts <= until)
        .map(|e| as_stored(e, unit_ms))
        .collect();
    expected.dedup_by_key(|e| e.event_id);
    assert!(expected.len() > 3 * PAGE, "{} events", expected.len());

    let got = scan_all(log, until).await;
    let ids: HashSet<_> = got.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), got.len(), "duplicates in the scan");
    assert!(got.iter().all(|e| e.ts <= until), "an event after until");
    assert!(got.windows(2).all(|w| order_key(&w[0]) < order_key(&w[1])));
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }

    // Edges: `until` before the first event, a zero limit, a cursor at the last event.
    let before_all = sorted[0].ts - Duration::milliseconds(1);
    assert!(log.scan(before_all, None, PAGE).await.unwrap().is_empty());
    assert!(log.scan(until, None, 0).await.unwrap().is_empty());
    let last = ScanCursor::of(expected.last().unwrap());
    assert!(log.scan(until, Some(last), PAGE).await.unwrap().is_empty());
    // `until` far in the future returns everything.
    let everything = scan_all(log, DateTime::<Utc>::MAX_UTC).await;
    assert_eq!(everything.len(), sorted.len());
}

/// ~250 events appended in batches plus a redelivered batch (and an in-batch duplicate); a paged scan
/// up to a mid-range `until` returns exactly the distinct events with `ts <= until`, in
/// `(ts ms, event_id string)` order, equal to what was appended.
async fn scan_pages_in_order_and_stops_at_until(log: Arc<dyn EventLog>, received_at_unit_ms: i64) {
    let events = simulated_events(250);
    assert!(log
        .scan(DateTime::<Utc>::MAX_UTC, None, PAGE)
        .await
        .unwrap()
        .is_empty());
    for chunk in events.chunks(90) {
        log.append(chunk).await.unwrap();
    }
    // The sink redelivers a batch after a crash, one event twice in the same batch.
    let mut redelivered = events[60..150].to_vec();
    redelivered.push(events[70].clone());
    log.append(&redelivered).await.unwrap();
    assert_scan_matches(log.as_ref(), &events, received_at_unit_ms).await;
}

mod embedded {
    use super::*;
    use pipelines::log::parquet::ParquetLog;

    #[tokio::test]
    async fn scan_pages_in_order_and_stops_at_until() {
        let dir = tempfile::tempdir().unwrap();
        let log = ParquetLog::open(dir.path().join("events")).await.unwrap();
        super::scan_pages_in_order_and_stops_at_until(Arc::new(log), 1).await;
    }

    /// Two writers on one directory do not share the id index, so the same events end up stored twice;
    /// the scan still returns each once (and a reopened log sees the ids, so it writes nothing more).
    #[tokio::test]
    async fn scan_collapses_rows_written_twice_by_two_writers() {
        let dir = tempfile::tempdir().unwrap();
        let a = ParquetLog::open(dir.path().join("events")).await.unwrap();
        let b = ParquetLog::open(dir.path().join("events")).await.unwrap();
        let events = simulated_events(250);
        a.append(&events).await.unwrap();
        b.append(&events[40..220]).await.unwrap();
        let rows = a.query("SELECT count(*) FROM events").await.unwrap();
        assert_eq!(rows.scalar_i64(), Some(250 + 180));
        assert_scan_matches(&a, &events, 1).await;

        let reopened = ParquetLog::open(dir.path().join("events")).await.unwrap();
        reopened.append(&events).await.unwrap();
        let rows = reopened.query("SELECT count(*) FROM events").await.unwrap();
        assert_eq!(rows.scalar_i64(), Some(250 + 180));
    }
}

mod real {
    use super::*;
    use pipelines::log::clickhouse::ClickHouseLog;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scan_pages_in_order_and_stops_at_until() {
        let url = std::env::var("LUSSO_CLICKHOUSE_URL").unwrap_or_else(|_| {
            panic!("LUSSO_CLICKHOUSE_URL is not set: run the suite with scripts/test.sh, which starts ClickHouse")
        });
        let table = format!("scan_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let log = ClickHouseLog::connect(&url, "lusso_test", &table)
            .await
            .unwrap();
        super::scan_pages_in_order_and_stops_at_until(Arc::new(log), 1000).await;
    }
}
