//! Collector throughput benchmark (issue: foundation).
//!
//! In one run, against the Kafka-protocol broker at LUSSO_KAFKA_BROKERS and ClickHouse at
//! LUSSO_CLICKHOUSE_URL:
//! 1. **raw**: a bare rdkafka producer (same settings as ours: idempotent, acks=all, linger 5 ms) sends N
//!    pre-serialized events — the ceiling for anything that produces to this broker on this machine;
//! 2. **collector**: the real collector (axum + validation + KafkaBus) on a loopback socket, driven by
//!    C concurrent HTTP/1.1 clients posting batches of 100 events: events/s and per-POST latency;
//! 3. **sink**: the event-log sink reading those N events from the topic into a fresh ClickHouse table:
//!    rows/s until every event is stored.
//!
//! 4. with `--edge`: the collector without and behind the HTTP edge, alternating, events/s of each.
//!
//! Run: `cargo run --release -p lusso-benches --bin collector_throughput -- --events 400000 [--edge]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use ingest::collector::{self, CollectorConfig, CollectorState};
use ingest::metrics::Metrics;
use ingest::sink::{self, SinkConfig};
use pipelines::bus::kafka::{KafkaBus, KafkaConfig};
use pipelines::bus::EventBus;
use pipelines::log::clickhouse::ClickHouseLog;
use pipelines::log::EventLog;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    /// Events per phase.
    #[arg(long, default_value_t = 400_000)]
    events: usize,
    /// Events per POST.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Also compare the collector without and behind the HTTP edge (request ids, deadline, key check, the
    /// key's rate bucket): three alternating rounds of `--edge-events` each, on a topic of their own.
    #[arg(long)]
    edge: bool,
    /// Events per round of the edge comparison.
    #[arg(long, default_value_t = 100_000)]
    edge_events: usize,
}

fn event(i: usize) -> Value {
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "type": if i.is_multiple_of(10) { "add_to_cart" } else { "product_view" },
        "ts": chrono::Utc::now().to_rfc3339(),
        "user_id": if i.is_multiple_of(3) { Value::Null } else { json!(format!("U{:07}", i % 100_000)) },
        "anonymous_id": format!("anon-{}", i % 200_000),
        "session_id": format!("s-{}", i / 20),
        "market": "IT",
        "device": "mobile",
        "properties": if i.is_multiple_of(10) {
            json!({"product_id": format!("P{:06}", i % 2400), "variant_id": format!("P{:06}-NER-42", i % 2400),
                   "size": "42", "quantity": 1, "price": 249.0})
        } else {
            json!({"product_id": format!("P{:06}", i % 2400)})
        }
    })
}

fn fresh(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

async fn raw_producer(brokers: &str, n: usize) -> anyhow::Result<f64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000")
        .create()?;
    let topic = fresh("bench.raw.");
    let bus = KafkaBus::new(KafkaConfig::new(brokers))?;
    bus.ensure_topic(&topic, 4).await?;
    let payloads: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let v = event(i);
            let key = v["anonymous_id"].as_str().unwrap_or_default().to_string();
            (key, serde_json::to_vec(&v).unwrap_or_default())
        })
        .collect();
    let start = Instant::now();
    let mut pending = Vec::with_capacity(n);
    for (k, p) in &payloads {
        let mut rec = FutureRecord::to(&topic)
            .key(k.as_str())
            .payload(p.as_slice());
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((_, back)) => {
                    rec = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for f in pending {
        f.await?.map_err(|(e, _)| e)?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// `n` events in POST bodies of `batch`.
fn batches(n: usize, batch: usize) -> Vec<bytes::Bytes> {
    (0..n / batch)
        .map(|b| {
            let events: Vec<Value> = (0..batch).map(|i| event(b * batch + i)).collect();
            bytes::Bytes::from(serde_json::to_vec(&json!({ "events": events })).unwrap_or_default())
        })
        .collect()
}

/// Posts every body to `url` from `concurrency` clients (with `Authorization: Bearer key` when given) and
/// returns the seconds it took, the per-POST latencies and the events accepted.
async fn drive(
    url: String,
    bodies: Arc<Vec<bytes::Bytes>>,
    concurrency: usize,
    key: Option<String>,
) -> anyhow::Result<(f64, Histogram<u64>, usize)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (bodies, next, url) = (bodies.clone(), next.clone(), url.clone());
        let auth = key.as_ref().map(|k| format!("Bearer {k}"));
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut accepted = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let mut req = client.post(&url).header("content-type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                let resp = req.body(body.clone()).send().await?;
                anyhow::ensure!(
                    resp.status().is_success(),
                    "collector answered {}",
                    resp.status()
                );
                let v: Value = resp.json().await?;
                hist.record(t.elapsed().as_micros() as u64)?;
                accepted += v["accepted"].as_u64().unwrap_or(0);
            }
            anyhow::Ok((hist, accepted))
        }));
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let mut accepted = 0;
    for w in workers {
        let (h, a) = w.await??;
        hist.add(h)?;
        accepted += a;
    }
    Ok((start.elapsed().as_secs_f64(), hist, accepted as usize))
}

/// The collector on a topic of its own, on two ports: its plain router and the same router behind the edge;
/// three alternating rounds, then the median events/s of each and their ratio.
async fn edge_comparison(args: &Args, bus: &Arc<dyn EventBus>) -> anyhow::Result<()> {
    let topic = fresh("bench.edge.");
    bus.ensure_topic(&topic, 4).await?;
    let config = CollectorConfig {
        events_topic: topic,
        quarantine_topic: fresh("bench.quarantine."),
        ..Default::default()
    };
    let app = collector::app(CollectorState::new(bus.clone(), config, Metrics::new()));
    let dir = std::env::temp_dir().join(format!("lusso-bench-keys-{}", std::process::id()));
    let (edged, key) = lusso_benches::edge::behind(app.clone(), &dir).await?;
    let mut urls = Vec::new();
    for router in [app, edged] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        urls.push(format!("http://{}/v1/events", listener.local_addr()?));
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    let n = args.edge_events / args.batch * args.batch;
    let bodies = Arc::new(batches(n, args.batch));
    println!("\n| round | collector | events/s | POST p99 ms |\n|---:|---|---:|---:|");
    let mut rates = [Vec::new(), Vec::new()];
    for round in 1..=3 {
        for (i, name) in ["plain router", "behind the edge"].into_iter().enumerate() {
            let key = (i == 1).then(|| key.clone());
            let (secs, hist, accepted) =
                drive(urls[i].clone(), bodies.clone(), args.concurrency, key).await?;
            anyhow::ensure!(accepted == n, "{name}: accepted {accepted} of {n}");
            let eps = n as f64 / secs;
            rates[i].push(eps);
            println!(
                "| {round} | {name} | {eps:.0} | {:.1} |",
                hist.value_at_quantile(0.99) as f64 / 1000.0
            );
        }
    }
    let median = lusso_benches::edge::median;
    let (plain, edged) = (median(&mut rates[0]), median(&mut rates[1]));
    println!(
        "\nmedian events/s: plain {plain:.0}, behind the edge {edged:.0}: {:.3}× (goal ≥ 0.95×)",
        edged / plain.max(f64::MIN_POSITIVE)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let brokers = std::env::var("LUSSO_KAFKA_BROKERS")
        .context("LUSSO_KAFKA_BROKERS (scripts/services.sh up)")?;
    let ch_url = std::env::var("LUSSO_CLICKHOUSE_URL").context("LUSSO_CLICKHOUSE_URL")?;
    let n = args.events / args.batch * args.batch;
    println!(
        "machine: {} cores; events per phase: {n}; batch {}; concurrency {}",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(0),
        args.batch,
        args.concurrency
    );

    // 1. Raw producer.
    let raw_eps = raw_producer(&brokers, n).await?;
    println!("raw rdkafka producer: {raw_eps:.0} events/s");

    // 2. Collector over loopback HTTP.
    let topic = fresh("bench.events.");
    let bus: Arc<dyn EventBus> = Arc::new(KafkaBus::new(KafkaConfig::new(&brokers))?);
    bus.ensure_topic(&topic, 4).await?;
    let config = CollectorConfig {
        events_topic: topic.clone(),
        quarantine_topic: fresh("bench.quarantine."),
        ..Default::default()
    };
    let app = collector::app(CollectorState::new(bus.clone(), config, Metrics::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let bodies = Arc::new(batches(n, args.batch));
    let (elapsed, hist, accepted) = drive(
        format!("http://{addr}/v1/events"),
        bodies,
        args.concurrency,
        None,
    )
    .await?;
    anyhow::ensure!(accepted == n, "accepted {accepted} of {n}");
    let eps = n as f64 / elapsed;
    println!(
        "collector POST /v1/events: {eps:.0} events/s ({:.2}x raw); POST latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        eps / raw_eps,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );

    if args.edge {
        edge_comparison(&args, &bus).await?;
    }

    // 3. Sink: the same events from the topic into a fresh ClickHouse table.
    let table = fresh("bench_events_");
    let log: Arc<dyn EventLog> =
        Arc::new(ClickHouseLog::connect(&ch_url, "lusso_bench", &table).await?);
    let token = CancellationToken::new();
    let sink_cfg = SinkConfig {
        group: fresh("bench-sink-"),
        events_topic: topic,
        ..Default::default()
    };
    let metrics = Metrics::new();
    let start = Instant::now();
    let task = tokio::spawn(sink::run(
        bus.clone(),
        log.clone(),
        sink_cfg,
        metrics.clone(),
        token.clone(),
    ));
    while metrics.sink_rows.get() < n as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    token.cancel();
    task.await??;
    let stored = log
        .query(&format!("SELECT count() FROM {table} FINAL"))
        .await?
        .scalar_i64()
        .unwrap_or(0);
    anyhow::ensure!(stored as usize == n, "ClickHouse holds {stored} of {n}");
    println!(
        "sink topic -> ClickHouse: {:.0} rows/s ({n} rows in {elapsed:.2} s)",
        n as f64 / elapsed
    );
    Ok(())
}
