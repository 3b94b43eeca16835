//! Training data from the event log, once per backend (`mod embedded`: Parquet in a tempdir; `mod real`:
//! ClickHouse at `LUSSO_CLICKHOUSE_URL`, fresh table): event weights, returns subtracting, the window and the
//! point-in-time cut, and the same matrix as the simulator's events read straight from memory.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use pipelines::catalog::Catalog;
use pipelines::event::Event;
use pipelines::log::EventLog;
use pipelines::sim::{SimConfig, Simulator};
use serde_json::json;
use training::data::{matrix_hash, EventWeights, Interactions, Window};
use training::job::{self, Source, TrainSpec};
use training::matrix::{Csr, IdIndex};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn event(ty: &str, ts: &str, user: &str, props: serde_json::Value) -> Event {
    let v = json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "type": ty,
        "ts": ts,
        "user_id": user,
        "session_id": "s1",
        "market": "IT",
        "device": "mobile",
        "properties": props,
    });
    pipelines::validate::validate_event(&v, Utc::now()).unwrap()
}

fn line(product: &str) -> serde_json::Value {
    json!({"product_id": product, "variant_id": format!("{product}-M"), "quantity": 1, "unit_price": 100.0})
}

fn cart(product: &str) -> serde_json::Value {
    json!({"product_id": product, "variant_id": format!("{product}-M"), "size": "M", "quantity": 1, "price": 100.0})
}

/// Hand-made events around the cut `2026-03-01T12:00:00Z` with a 30-day window.
fn scenario_events() -> Vec<Event> {
    vec![
        event(
            "product_view",
            "2026-02-20T10:00:00Z",
            "alice",
            json!({"product_id": "P1"}),
        ),
        event("add_to_cart", "2026-02-20T10:01:00Z", "alice", cart("P1")),
        event(
            "purchase",
            "2026-02-20T10:05:00Z",
            "alice",
            json!({"order_id": "o1", "currency": "EUR", "total": 200.0, "lines": [line("P1"), line("P2")]}),
        ),
        // P2 comes back: its purchase is cancelled out.
        event(
            "return",
            "2026-02-25T09:00:00Z",
            "alice",
            json!({"order_id": "o1", "lines": [line("P2")]}),
        ),
        event(
            "product_view",
            "2026-02-21T08:00:00Z",
            "bob",
            json!({"product_id": "P2"}),
        ),
        // Exactly at the cut: included.
        event(
            "product_view",
            "2026-03-01T12:00:00Z",
            "bob",
            json!({"product_id": "P1"}),
        ),
        // After the cut: must not leak.
        event(
            "purchase",
            "2026-03-01T12:00:01Z",
            "bob",
            json!({"order_id": "o2", "currency": "EUR", "total": 100.0, "lines": [line("P3")]}),
        ),
        event(
            "product_view",
            "2026-03-02T08:00:00Z",
            "carol",
            json!({"product_id": "P1"}),
        ),
        // Older than the window (30 days before the cut): excluded.
        event(
            "product_view",
            "2026-01-15T08:00:00Z",
            "dave",
            json!({"product_id": "P4"}),
        ),
        // Not an interaction.
        event(
            "search",
            "2026-02-22T08:00:00Z",
            "erin",
            json!({"query": "borsa"}),
        ),
    ]
}

async fn scenario(log: Arc<dyn EventLog>) {
    log.append(&scenario_events()).await.unwrap();
    let window = Window {
        as_of: t("2026-03-01T12:00:00Z"),
        days: 30,
    };
    let data = Interactions::from_log(&log, &EventWeights::default(), &window, &mut |_| {})
        .await
        .unwrap()
        .filtered(1, 1);
    assert_eq!(data.users.ids(), ["alice", "bob"]);
    assert_eq!(data.items.ids(), ["P1", "P2"]);
    let m = data.matrix(|_| true);
    // alice: P1 = view 1 + cart 4 + purchase 10; P2 = purchase 10 − return 10 → dropped.
    // bob: P1 = view 1 (at the cut), P2 = view 1.
    let expected = Csr::from_triples(2, 2, &[(0, 0, 15.0), (1, 0, 1.0), (1, 1, 1.0)]);
    assert_eq!(m, expected);
    let ids = |v: &[&str]| IdIndex::new(v.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        matrix_hash(&m, &data.users, &data.items),
        matrix_hash(&expected, &ids(&["alice", "bob"]), &ids(&["P1", "P2"]))
    );

    // The simulator's events through the log give exactly the matrix of the same events read in memory.
    let as_of = Utc::now() - Duration::days(1);
    let days = 7;
    let spec = TrainSpec {
        as_of: Some(as_of),
        window_days: 30,
        threads: 2,
        ..TrainSpec::default()
    };
    let source = Source::Sim {
        users: 300,
        days,
        seed: 9,
    };
    let (mem, _) = job::load(&source, None, 7, &spec, &mut |_| {})
        .await
        .unwrap();
    let mut sim = Simulator::new(
        SimConfig::new(9, 300, as_of - Duration::days(i64::from(days))),
        Arc::new(Catalog::generate(7)),
    );
    let mut events = Vec::new();
    loop {
        let batch = sim.next_events_until(as_of, 5_000);
        if batch.is_empty() {
            break;
        }
        events.extend(
            batch
                .iter()
                .map(|v| pipelines::validate::validate_event(v, as_of).unwrap()),
        );
    }
    assert!(events.len() > 1_000, "{} events", events.len());
    log.append(&events).await.unwrap();
    let (from_log, name) = job::load(&Source::Log, Some(&log), 7, &spec, &mut |_| {})
        .await
        .unwrap();
    assert!(name.starts_with("log:"), "{name}");
    // The log also holds the hand-made events: compare the simulated shoppers only.
    let keep_sim = |d: Interactions| {
        let mut d = d;
        let sim_users: Vec<u32> = (0..d.users.len() as u32)
            .filter(|&u| !["alice", "bob", "carol", "dave", "erin"].contains(&d.users.id(u)))
            .collect();
        d.rows.retain(|r| sim_users.binary_search(&r.user).is_ok());
        d.filtered(1, 1)
    };
    let (a, b) = (keep_sim(mem), keep_sim(from_log));
    assert!(
        a.rows.len() > 1_000,
        "{} vs {} rows; {} users",
        a.rows.len(),
        b.rows.len(),
        a.users.len()
    );
    let (ma, mb) = (a.matrix(|_| true), b.matrix(|_| true));
    assert_eq!(
        matrix_hash(&ma, &a.users, &a.items),
        matrix_hash(&mb, &b.users, &b.items)
    );
    // And a model trains from it.
    let trained = job::train(
        b,
        "log".into(),
        &TrainSpec {
            iterations: Some(3),
            factors: 8,
            ..spec
        },
        &mut |_| {},
    )
    .unwrap();
    let metrics = trained
        .meta
        .metrics
        .expect("leave-last-out gives test users");
    assert!(metrics.test_users > 10, "{metrics:?}");
}

mod embedded {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn training_data_from_the_event_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = pipelines::log::parquet::ParquetLog::open(dir.path().join("events"))
            .await
            .unwrap();
        scenario(Arc::new(log)).await;
    }
}

mod real {
    use super::*;
    use pipelines::log::clickhouse::ClickHouseLog;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn training_data_from_the_event_log() {
        let url = std::env::var("LUSSO_CLICKHOUSE_URL").unwrap_or_else(|_| {
            panic!("LUSSO_CLICKHOUSE_URL is not set: run the suite with scripts/test.sh, which starts ClickHouse")
        });
        let table = format!("train_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let log = ClickHouseLog::connect(&url, "lusso_test", &table)
            .await
            .unwrap();
        scenario(Arc::new(log)).await;
    }
}
