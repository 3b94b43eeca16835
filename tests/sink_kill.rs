//! `kill -9` of the sink process in the middle of a stream of 100,000 events, then a restart: ClickHouse
//! holds exactly the accepted events, none twice (read with FINAL, as the contract says).

mod common;

use std::time::Duration;

use common::*;
use pipelines::bus::Record;
use pipelines::config::BackendConfig;

const TOTAL: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_killed_mid_stream_then_restarted_keeps_every_event_once() {
    let prefix = fresh("kill9.");
    let table = fresh("events_kill9_");
    let envs = vec![
        ("LUSSO_KAFKA_BROKERS", require_env("LUSSO_KAFKA_BROKERS")),
        ("LUSSO_CLICKHOUSE_URL", require_env("LUSSO_CLICKHOUSE_URL")),
        ("LUSSO_CLICKHOUSE_DATABASE", "lusso_test".to_string()),
        ("LUSSO_CLICKHOUSE_TABLE", table.clone()),
        ("LUSSO_TOPIC_PREFIX", prefix.clone()),
    ];
    let config = BackendConfig {
        kafka_brokers: Some(envs[0].1.clone()),
        clickhouse_url: Some(envs[1].1.clone()),
        clickhouse_database: "lusso_test".into(),
        clickhouse_table: table.clone(),
        topic_prefix: prefix,
        ..BackendConfig::embedded(std::env::temp_dir())
    };
    let bus = pipelines::bus::connect(&config).unwrap();
    let log = pipelines::log::open(&config).await.unwrap();
    let topic = config.topic(pipelines::topics::EVENTS);
    bus.ensure_topic(&topic, 4).await.unwrap();

    let sink_cmd = || {
        let mut cmd = lusso(&envs);
        cmd.args(["serve", "--role", "sink", "--addr", "127.0.0.1:0"]);
        cmd
    };
    let mut sink = Proc::spawn(sink_cmd());

    // The stream: 100 batches of 1,000 events, produced while the sink runs.
    let producer = {
        let bus = bus.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            let now = chrono::Utc::now();
            for batch in 0..TOTAL / 1000 {
                let records: Vec<Record> = (0..1000)
                    .map(|i| {
                        let v = serde_json::json!({
                            "event_id": uuid::Uuid::new_v4().to_string(),
                            "type": "product_view",
                            "ts": now.to_rfc3339(),
                            "user_id": format!("U{}", (batch * 1000 + i) % 5000),
                            "anonymous_id": "a",
                            "properties": {"product_id": format!("P{i:06}")}
                        });
                        let e = pipelines::validate::validate_event(&v, now).unwrap();
                        Record::new(e.key().as_bytes().to_vec(), e.to_json_bytes())
                    })
                    .collect();
                bus.produce(&topic, records).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let distinct_sql = format!("SELECT uniqExact(event_id) FROM {table}");
    let distinct = || async {
        log.query(&distinct_sql)
            .await
            .ok()
            .and_then(|r| r.scalar_i64())
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    while distinct().await < 20_000 {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "sink made no progress"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sink.kill9();
    let at_kill = distinct().await;
    assert!(
        at_kill < TOTAL as i64,
        "the kill came too late to prove anything"
    );
    let mut sink = Proc::spawn(sink_cmd());
    producer.await.unwrap();

    let start = std::time::Instant::now();
    while distinct().await < TOTAL as i64 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "only {} of {TOTAL} events arrived",
            distinct().await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let r = log
        .query(&format!(
            "SELECT count(), uniqExact(event_id) FROM {table} FINAL"
        ))
        .await
        .unwrap();
    let cells: Vec<String> = r.rows[0]
        .iter()
        .map(|v| v.to_string().replace('"', ""))
        .collect();
    assert_eq!(cells, vec![TOTAL.to_string(), TOTAL.to_string()]);
    let raw = log
        .query(&format!("SELECT count() FROM {table}"))
        .await
        .unwrap()
        .scalar_i64()
        .unwrap();
    eprintln!(
        "killed at {at_kill} distinct events; raw rows before merge {raw}, FINAL rows {TOTAL}"
    );
    sink.kill9();
}
