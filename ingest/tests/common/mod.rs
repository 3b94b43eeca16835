//! Test backends: each scenario runs once embedded and once against the real Kafka-protocol broker and
//! ClickHouse started by `scripts/services.sh` (addresses from `LUSSO_KAFKA_BROKERS` /
//! `LUSSO_CLICKHOUSE_URL`), with fresh topic, group and table names per test.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use ingest::collector::{self, CollectorConfig, CollectorState};
use ingest::metrics::Metrics;
use ingest::sink::{self, SinkConfig};
use pipelines::bus::kafka::{KafkaBus, KafkaConfig};
use pipelines::bus::memory::{MemoryBus, MemoryBusConfig};
use pipelines::bus::EventBus;
use pipelines::log::clickhouse::ClickHouseLog;
use pipelines::log::parquet::ParquetLog;
use pipelines::log::EventLog;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub fn fresh(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn require_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with scripts/test.sh, which starts the real services"
        )
    })
}

/// One bus + one event log, with the names this test uses.
pub struct Backends {
    pub bus: Arc<dyn EventBus>,
    pub log: Arc<dyn EventLog>,
    pub events_topic: String,
    pub quarantine_topic: String,
    /// `SELECT <rows>, <distinct event ids>` over the log, one row per id where the engine needs it.
    pub count_sql: String,
    /// `SELECT event_id` over the log, one row per id.
    pub ids_sql: String,
    _dir: Option<tempfile::TempDir>,
}

impl Backends {
    pub async fn embedded() -> Self {
        Self::embedded_with(MemoryBusConfig::default()).await
    }

    pub async fn embedded_with(config: MemoryBusConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = ParquetLog::open(dir.path().join("events")).await.unwrap();
        Backends {
            bus: Arc::new(MemoryBus::new(config)),
            log: Arc::new(log),
            events_topic: fresh("events"),
            quarantine_topic: fresh("quarantine"),
            count_sql: "SELECT count(*), count(DISTINCT event_id) FROM events".into(),
            ids_sql: "SELECT event_id FROM events".into(),
            _dir: Some(dir),
        }
    }

    pub async fn real() -> Self {
        Self::real_with_brokers(&require_env("LUSSO_KAFKA_BROKERS")).await
    }

    pub async fn real_with_brokers(brokers: &str) -> Self {
        let url = require_env("LUSSO_CLICKHOUSE_URL");
        let table = fresh("events");
        let log = ClickHouseLog::connect(&url, "lusso_test", &table)
            .await
            .unwrap();
        Backends {
            bus: Arc::new(KafkaBus::new(KafkaConfig::new(brokers)).unwrap()),
            log: Arc::new(log),
            events_topic: fresh("lusso.events.v1"),
            quarantine_topic: fresh("lusso.events.quarantine"),
            count_sql: format!("SELECT count(), uniqExact(event_id) FROM {table} FINAL"),
            ids_sql: format!("SELECT event_id FROM {table} FINAL"),
            _dir: None,
        }
    }

    pub fn collector_config(&self) -> CollectorConfig {
        CollectorConfig {
            events_topic: self.events_topic.clone(),
            quarantine_topic: self.quarantine_topic.clone(),
            ..Default::default()
        }
    }

    pub fn app(&self) -> Router {
        collector::app(CollectorState::new(
            self.bus.clone(),
            self.collector_config(),
            Metrics::new(),
        ))
    }

    pub fn sink_config(&self) -> SinkConfig {
        SinkConfig {
            group: fresh("sink"),
            events_topic: self.events_topic.clone(),
            quarantine_topic: self.quarantine_topic.clone(),
            batch_max_events: 2_000,
            flush_interval: Duration::from_millis(200),
            ..Default::default()
        }
    }

    /// Starts a sink task; cancel the token to stop it gracefully, or abort the handle to "crash" it.
    pub fn start_sink(
        &self,
        config: SinkConfig,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<pipelines::Result<()>>,
    ) {
        let token = CancellationToken::new();
        let handle = tokio::spawn(sink::run(
            self.bus.clone(),
            self.log.clone(),
            config,
            Metrics::new(),
            token.clone(),
        ));
        (token, handle)
    }

    /// (rows, distinct event ids) in the log.
    pub async fn counts(&self) -> (i64, i64) {
        let r = self.log.query(&self.count_sql).await.unwrap();
        let cell = |i: usize| match &r.rows[0][i] {
            Value::Number(n) => n.as_i64().unwrap(),
            Value::String(s) => s.parse().unwrap(),
            other => panic!("unexpected count cell {other}"),
        };
        (cell(0), cell(1))
    }

    /// Waits until the log holds `n` distinct events (panics after `limit`).
    pub async fn wait_for_count(&self, n: i64, limit: Duration) -> (i64, i64) {
        let start = Instant::now();
        loop {
            let c = self.counts().await;
            if c.1 >= n {
                return c;
            }
            assert!(
                start.elapsed() < limit,
                "log holds {c:?} distinct events, expected {n} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

pub fn valid_event(i: usize) -> Value {
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "type": "product_view",
        "ts": chrono::Utc::now().to_rfc3339(),
        "user_id": format!("U{i}"),
        "anonymous_id": format!("anon-{i}"),
        "session_id": "s-1",
        "market": "IT",
        "device": "desktop",
        "properties": {"product_id": format!("P{:06}", i % 2400)}
    })
}

/// Sends `body` to the app; returns status, headers and JSON body.
pub async fn post(
    app: &Router,
    body: impl Into<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let req = Request::post("/v1/events")
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, v)
}

pub async fn post_events(
    app: &Router,
    events: &[Value],
) -> (StatusCode, axum::http::HeaderMap, Value) {
    post(
        app,
        serde_json::to_vec(&json!({ "events": events })).unwrap(),
    )
    .await
}

pub async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let resp = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
