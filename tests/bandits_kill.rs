//! `kill -9` of the bandit service while it joins rewards from the real Kafka-protocol broker into real
//! PostgreSQL: after a restart every click is learned exactly once, the decisions were published to
//! `lusso.decisions.v1` and to the ClickHouse event log, and a fresh replica rebuilds the same state.

mod common;

use std::time::Duration;

use bandits::metrics::BanditMetrics;
use bandits::service::{Bandits, BanditsConfig, SystemClock};
use bandits::store::BanditStore;
use common::*;
use pipelines::bus::Record;
use pipelines::config::BackendConfig;
use serde_json::{json, Value};

fn clicks_learned(addr: &str) -> u64 {
    http_get(addr, "/metrics")
        .and_then(|(_, body)| {
            body.lines()
                .filter(|l| l.starts_with("lusso_bandits_signals_total{"))
                .filter(|l| l.contains("kind=\"click\"") && l.contains("result=\"learned\""))
                .find_map(|l| l.rsplit(' ').next()?.trim().parse::<f64>().ok())
        })
        .map_or(0, |v| v as u64)
}

fn serve(envs: &[(&str, String)], addr: &str) -> Proc {
    let mut cmd = lusso(envs);
    cmd.args(["serve", "--role", "bandits", "--addr", addr]);
    let p = Proc::spawn(cmd);
    wait_until(
        Duration::from_secs(60),
        "the bandits role to answer",
        || http_get(addr, "/healthz").is_some_and(|(s, _)| s == 200),
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_reward_joining_loses_no_reward_and_counts_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = bandits::store::postgres::fresh_database(
        &require_env("LUSSO_DATABASE_URL"),
        "lusso_test_bkill",
    )
    .await
    .unwrap();
    let prefix = fresh("bk");
    let table = fresh("decisions_");
    let envs = vec![
        ("LUSSO_KAFKA_BROKERS", require_env("LUSSO_KAFKA_BROKERS")),
        ("LUSSO_CLICKHOUSE_URL", require_env("LUSSO_CLICKHOUSE_URL")),
        ("LUSSO_CLICKHOUSE_DATABASE", "lusso_test".to_string()),
        ("LUSSO_CLICKHOUSE_TABLE", table.clone()),
        ("LUSSO_DATABASE_URL", db.clone()),
        ("LUSSO_REDIS_URL", require_env("LUSSO_REDIS_URL")),
        ("LUSSO_FEATURES_KEY_PREFIX", format!("{prefix}:")),
        ("LUSSO_TOPIC_PREFIX", prefix.clone()),
        ("LUSSO_DATA_DIR", dir.path().display().to_string()),
    ];
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let http = client_with(&admin_key(&envs));
    let mut proc = serve(&envs, &addr);

    let slot = json!({"slot": "home_hero", "arms": [
        {"arm_id": "a"}, {"arm_id": "b"}, {"arm_id": "c"}]});
    let r = http
        .post(format!("{base}/v1/slots"))
        .json(&slot)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // 3,000 decisions, 8 at a time.
    let n = 3_000;
    let mut decisions: Vec<(String, String, String)> = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let futs = chunk.iter().map(|i| {
            let (http, base) = (http.clone(), base.clone());
            let user = format!("shopper-{i}");
            async move {
                let segment = ["New", "At Risk", "Lapsed"][i % 3];
                let body = json!({"slot": "home_hero", "user_id": user,
                    "context": {"segment": segment}});
                let v: Value = http
                    .post(format!("{base}/v1/decisions"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (
                    user,
                    v["decision_id"].as_str().unwrap().to_string(),
                    v["arm_id"].as_str().unwrap().to_string(),
                )
            }
        });
        decisions.extend(futures_join(futs).await);
    }

    // Every other decision is clicked; the clicks and unrelated page views go on the bus.
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    let mut clicked = 0u64;
    for (i, (user, decision, arm)) in decisions.iter().enumerate() {
        events.push(
            json!({"event_id": uuid::Uuid::new_v4(), "type": "page_view",
            "ts": now.to_rfc3339(), "user_id": user, "properties": {"path": "/it"}}),
        );
        if i % 2 == 0 {
            clicked += 1;
            events.push(
                json!({"event_id": uuid::Uuid::new_v4(), "type": "banner_click",
                "ts": now.to_rfc3339(), "user_id": user,
                "properties": {"decision_id": decision, "arm_id": arm}}),
            );
        }
    }
    let config = BackendConfig {
        kafka_brokers: Some(require_env("LUSSO_KAFKA_BROKERS")),
        topic_prefix: prefix.clone(),
        ..BackendConfig::embedded(dir.path())
    };
    let bus = pipelines::bus::connect(&config).unwrap();
    let topic = config.topic(pipelines::topics::EVENTS);
    bus.ensure_topic(&topic, 4).await.unwrap();
    let events: Vec<pipelines::event::Event> = events
        .iter()
        .map(|v| pipelines::validate::validate_event(v, now).unwrap())
        .collect();
    for chunk in events.chunks(500) {
        let records = chunk
            .iter()
            .map(|e| Record::new(e.key().to_string(), e.to_json_bytes()))
            .collect();
        bus.produce(&topic, records).await.unwrap();
    }

    // Kill -9 while the joiner is part-way through, then restart.
    let mut seen = 0;
    let started = std::time::Instant::now();
    for _ in 0..2_400 {
        seen = clicks_learned(&addr);
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    proc.kill9();
    eprintln!(
        "killed after {seen} of {clicked} clicks were learned ({:?} after the events were on the bus)",
        started.elapsed()
    );
    assert!(
        seen < clicked,
        "the kill must land before the joiner finished"
    );
    let _proc = serve(&envs, &addr);

    // Every click is learned exactly once: the ledger's rewards add up to the clicks.
    let store: std::sync::Arc<dyn BanditStore> = bandits::store::open(Some(&db)).await.unwrap();
    let replica = Bandits::new(
        store.clone(),
        None,
        std::sync::Arc::new(SystemClock),
        BanditMetrics::new(&prometheus::Registry::new()),
        BanditsConfig::default(),
    );
    let learned = |r: &Bandits| {
        let m = r.model("home_hero").unwrap();
        let mut total = 0.0;
        for s in 0..bandits::context::SEGMENTS.len() {
            for a in ["a", "b", "c"] {
                total += m.posterior(s, a).rewards;
            }
        }
        total
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        replica.sync().await.unwrap();
        let total = learned(&replica);
        assert!(
            total <= clicked as f64,
            "counted twice: {total} > {clicked}"
        );
        if total == clicked as f64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {total} of {clicked} clicks learned after restart"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The report agrees.
    let report: Value = http
        .get(format!("{base}/v1/bandits/home_hero/report"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all = &report["segments"][0];
    assert_eq!(all["segment"], "All");
    assert_eq!(all["decisions"], n as u64);
    let clicks: u64 = all["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["clicks"].as_u64().unwrap())
        .sum();
    assert_eq!(clicks, clicked);

    // The outbox published every decision to the event log (ClickHouse), once per decision.
    wait_until(
        Duration::from_secs(60),
        "decisions in the ClickHouse event log",
        || {
            query_count(
                &envs,
                &format!(
                    "SELECT count() FROM lusso_test.{table} FINAL WHERE type = 'banner_impression'"
                ),
            ) == Some(n as i64)
        },
    );
    assert!(store.unpublished(10).await.unwrap().is_empty());
    // And to lusso.decisions.v1: at least once per decision, every decision present.
    let mut sub = bus
        .subscribe(&config.topic(pipelines::topics::DECISIONS), &fresh("check"))
        .await
        .unwrap();
    let mut ids = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ids.len() < n && std::time::Instant::now() < deadline {
        for m in sub.poll(1_000, Duration::from_millis(500)).await.unwrap() {
            let d: bandits::reward::Decision = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(d.features.len(), bandits::context::DIM);
            ids.insert(d.decision_id);
        }
    }
    assert_eq!(ids.len(), n);
}

/// Runs futures concurrently and collects their results in order.
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    futures::future::join_all(futs).await
}
