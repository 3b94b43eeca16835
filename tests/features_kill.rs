//! `kill -9` of the features consumer in the middle of a stream, against the real Kafka-protocol broker and real
//! Redis: after a restart, every shopper's and product's features equal a from-scratch recomputation over the
//! event log (`features::offline::verify`, the same check as `lusso features verify`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use features::offline::verify;
use features::processor::Processor;
use features::store::redis::RedisStore;
use features::{Context, FeaturesConfig};
use pipelines::bus::Record;
use pipelines::catalog::Catalog;
use pipelines::config::BackendConfig;
use pipelines::log::parquet::ParquetLog;
use pipelines::log::EventLog;
use pipelines::sim::{SimConfig, Simulator};

fn applied(addr: &str) -> u64 {
    http_get(addr, "/metrics")
        .and_then(|(_, body)| {
            body.lines()
                .find_map(|l| l.strip_prefix("lusso_features_events_applied_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_features_consumer_then_restart_matches_a_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let topic_prefix = fresh("kf");
    let key_prefix = format!("{}:", fresh("lusso_kill"));
    let envs = vec![
        ("LUSSO_KAFKA_BROKERS", require_env("LUSSO_KAFKA_BROKERS")),
        ("LUSSO_REDIS_URL", require_env("LUSSO_REDIS_URL")),
        ("LUSSO_TOPIC_PREFIX", topic_prefix.clone()),
        ("LUSSO_FEATURES_KEY_PREFIX", key_prefix.clone()),
        // Exact neighbour counts for the comparison (no product here has 1,000 neighbours).
        ("LUSSO_FEATURES_TOP_K", "1000".to_string()),
        // Small batches: many commits, so the kill lands between two of them.
        ("LUSSO_FEATURES_BATCH_MAX", "1000".to_string()),
        ("LUSSO_FEATURES_SEGMENTS_REFRESH_MINUTES", "0".to_string()),
        ("LUSSO_DATA_DIR", dir.path().display().to_string()),
    ];

    // 30 days of 2,500 simulated shoppers, all on the bus before the consumer starts.
    let now = chrono::Utc::now();
    let catalog = Arc::new(Catalog::generate(pipelines::config::DEFAULT_CATALOG_SEED));
    let mut sim = Simulator::new(
        SimConfig::new(3, 2_500, now - chrono::Duration::days(30)),
        catalog.clone(),
    );
    let mut events = Vec::new();
    loop {
        let batch = sim.next_events_until(now, 10_000);
        if batch.is_empty() {
            break;
        }
        events.extend(
            batch
                .iter()
                .map(|v| pipelines::validate::validate_event(v, now).unwrap()),
        );
    }
    let total = events.len() as u64;
    assert!(total > 30_000, "{total} events");
    let config = BackendConfig {
        kafka_brokers: Some(envs[0].1.clone()),
        topic_prefix,
        ..BackendConfig::embedded(dir.path())
    };
    let bus = pipelines::bus::connect(&config).unwrap();
    let topic = config.topic(pipelines::topics::EVENTS);
    bus.ensure_topic(&topic, 4).await.unwrap();
    for chunk in events.chunks(5_000) {
        let records = chunk
            .iter()
            .map(|e| Record::new(e.key().to_string(), e.to_json_bytes()))
            .collect();
        bus.produce(&topic, records).await.unwrap();
    }

    let addr = format!("127.0.0.1:{}", free_port());
    let serve = || {
        let mut cmd = lusso(&envs);
        cmd.args(["serve", "--role", "features", "--addr", &addr]);
        cmd
    };
    let mut consumer = Proc::spawn(serve());
    wait_until(
        Duration::from_secs(180),
        "the consumer to apply a third of the stream",
        || applied(&addr) >= total / 3,
    );
    consumer.kill9();
    let at_kill = applied(&addr).max(total / 3);
    assert!(at_kill < total, "the kill came too late to prove anything");
    println!("killed the consumer after ≥ {at_kill} of {total} events");
    let _consumer = Proc::spawn(serve());

    // The recomputation: the same events in an event log, replayed from scratch.
    let log = ParquetLog::open(dir.path().join("recompute"))
        .await
        .unwrap();
    log.append(&events).await.unwrap();
    let fcfg = FeaturesConfig {
        key_prefix,
        top_k_neighbours: 1000,
        redis_url: Some(envs[1].1.clone()),
        ..FeaturesConfig::default()
    };
    let store = RedisStore::connect(&envs[1].1).await.unwrap();
    let online = Processor::new(Arc::new(Context::new(catalog, fcfg)), Arc::new(store));
    let start = Instant::now();
    loop {
        let report = verify(&online, &log, now, |_| {}).await.unwrap();
        if report.mismatch_count == 0 {
            assert_eq!(report.events, total);
            assert!(
                report.users_checked > 1_000 && report.products_checked > 1_000,
                "{report:?}"
            );
            println!(
                "after restart: {} shoppers and {} products equal the recomputation",
                report.users_checked, report.products_checked
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "online features never matched the recomputation: {} differences, e.g. {:?}",
            report.mismatch_count,
            report.mismatches
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
