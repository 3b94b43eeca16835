//! Feature pipeline benchmark (issue: streaming features).
//!
//! In one run, over the embedded bus (so the number is the feature pipeline's, not the broker's) or the Kafka-protocol
//! broker at LUSSO_KAFKA_BROKERS (`--bus kafka`):
//! 1. **baseline**: a consumer that polls and decodes every event and commits, writing nothing — the ceiling;
//! 2. **memory**: the feature consumer with every feature on, into the in-memory store;
//! 3. **redis**: the same into Redis at LUSSO_REDIS_URL (fresh key prefix): events/s, and Redis memory per shopper;
//! 4. **freshness**: events produced at a steady `--steady-rate` for `--steady-secs` into Redis; p50/p99 of
//!    "event received → features visible" from the consumer's histogram (bucket upper bounds).
//!
//! Events come from the shopper simulator: `--users` shoppers over `--days` of history.
//! Run: `cargo run --release -p lusso-benches --bin features_throughput -- --users 100000 --days 30`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use features::consumer::{self, ConsumerConfig};
use features::metrics::FeatureMetrics;
use features::processor::Processor;
use features::store::memory::MemoryStore;
use features::store::redis::RedisStore;
use features::store::FeatureStore;
use features::{Context, FeaturesConfig};
use pipelines::bus::kafka::{KafkaBus, KafkaConfig};
use pipelines::bus::memory::{MemoryBus, MemoryBusConfig};
use pipelines::bus::{EventBus, Offsets, Record};
use pipelines::catalog::Catalog;
use pipelines::event::Event;
use pipelines::sim::{SimConfig, Simulator};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bus {
    Memory,
    Kafka,
}

#[derive(Parser)]
struct Args {
    /// Simulated shoppers.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Days of simulated history.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Stop generating after this many events.
    #[arg(long, default_value_t = 5_000_000)]
    max_events: usize,
    #[arg(long, value_enum, default_value_t = Bus::Memory)]
    bus: Bus,
    /// Skip the in-memory store phase.
    #[arg(long)]
    skip_memory: bool,
    /// Events/s of the freshness phase (0 = skip).
    #[arg(long, default_value_t = 10_000)]
    steady_rate: u64,
    #[arg(long, default_value_t = 30)]
    steady_secs: u64,
}

fn simulate(users: usize, days: i64, max: usize) -> (Vec<Event>, chrono::DateTime<chrono::Utc>) {
    let now = chrono::Utc::now();
    let catalog = Arc::new(Catalog::generate(pipelines::config::DEFAULT_CATALOG_SEED));
    let mut sim = Simulator::new(
        SimConfig::new(1, users, now - chrono::Duration::days(days)),
        catalog,
    );
    let mut out = Vec::new();
    while out.len() < max {
        let batch = sim.next_events_until(now, 50_000);
        if batch.is_empty() {
            break;
        }
        out.extend(
            batch
                .iter()
                .map(|v| pipelines::validate::validate_event(v, now).expect("valid")),
        );
    }
    out.truncate(max);
    (out, now)
}

fn bus(kind: Bus) -> anyhow::Result<Arc<dyn EventBus>> {
    Ok(match kind {
        // Retention above the run's size so nothing is dropped before the phases read it.
        Bus::Memory => Arc::new(MemoryBus::new(MemoryBusConfig {
            max_messages_per_partition: 20_000_000,
            ..Default::default()
        })),
        Bus::Kafka => Arc::new(KafkaBus::new(KafkaConfig::new(
            std::env::var("LUSSO_KAFKA_BROKERS")
                .context("--bus kafka needs LUSSO_KAFKA_BROKERS")?,
        ))?),
    })
}

async fn produce(bus: &dyn EventBus, topic: &str, events: &[Event]) -> anyhow::Result<()> {
    bus.ensure_topic(topic, 4).await?;
    for chunk in events.chunks(10_000) {
        let records = chunk
            .iter()
            .map(|e| Record::new(e.key().to_string(), e.to_json_bytes()))
            .collect();
        bus.produce(topic, records).await?;
    }
    Ok(())
}

/// Baseline: poll + decode + commit, no store.
async fn baseline(bus: &dyn EventBus, topic: &str, n: usize) -> anyhow::Result<f64> {
    let mut sub = bus
        .subscribe(topic, &format!("bench-baseline-{}", uuid::Uuid::new_v4()))
        .await?;
    let start = Instant::now();
    let mut seen = 0;
    while seen < n {
        let msgs = sub.poll(20_000, Duration::from_millis(100)).await?;
        for m in &msgs {
            let _: Event = serde_json::from_slice(&m.payload)?;
        }
        seen += msgs.len();
        sub.commit(&Offsets::after(&msgs)).await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The feature consumer over `topic` until `n` events are applied; events/s.
async fn features_phase(
    bus: Arc<dyn EventBus>,
    p: Processor,
    topic: &str,
    n: u64,
) -> anyhow::Result<(f64, FeatureMetrics)> {
    let metrics = FeatureMetrics::new(&prometheus::Registry::new());
    let cfg = ConsumerConfig {
        events_topic: topic.into(),
        commerce_topic: format!("{topic}.commerce"),
        partitions: 4,
    };
    let token = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(consumer::run(bus, p, metrics.clone(), cfg, token.clone()));
    while metrics.applied.get() + metrics.duplicates.get() < n {
        if task.is_finished() {
            bail!("consumer stopped early");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    token.cancel();
    task.await??;
    Ok((rate, metrics))
}

/// Redis memory per shopper, with the product keys (a fixed cost of the catalogue, not of the shoppers) counted
/// apart; then again once the shoppers' recent-event-id keys are gone (their TTL, the dedup horizon, removes
/// them an hour after a shopper's last event: this run's shoppers were all active "now"), which is what a
/// shopper costs for good; and what a shopper blob holds, part by part.
async fn memory_accounting(
    url: &str,
    store: &RedisStore,
    p: &Processor,
    shopper_ids: &[String],
    before: u64,
) -> anyhow::Result<()> {
    let ctx = p.context();
    let shoppers = shopper_ids.len();
    let product_keys: Vec<String> = ctx
        .catalog
        .products()
        .iter()
        .map(|x| ctx.keys.product(&x.id))
        .collect();
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut pipe = redis::pipe();
    for k in &product_keys {
        pipe.cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(0);
    }
    let usage: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
    let products: u64 = usage.iter().flatten().sum();
    let with_state = usage.iter().flatten().count();
    let gib = |b: f64| b / 1_073_741_824.0;
    let per_shopper = |delta: u64| delta.saturating_sub(products) as f64 / shoppers as f64;
    let now_delta = store.memory_bytes().await?.saturating_sub(before);
    let id_keys: Vec<String> = shopper_ids
        .iter()
        .map(|id| ctx.keys.recent_ids(id))
        .collect();
    let mut live_ids = 0u64;
    for chunk in id_keys.chunks(5_000) {
        let n: u64 = redis::cmd("EXISTS")
            .arg(chunk)
            .query_async(&mut conn)
            .await?;
        live_ids += n;
    }
    println!(
        "redis used_memory: +{:.1} MiB = {:.1} MiB for {with_state} product keys (MEMORY USAGE) + {:.0} B per shopper ({shoppers} shoppers, {live_ids} with recent-event-id keys)",
        now_delta as f64 / 1_048_576.0,
        products as f64 / 1_048_576.0,
        per_shopper(now_delta),
    );
    for chunk in id_keys.chunks(5_000) {
        redis::cmd("DEL")
            .arg(chunk)
            .query_async::<()>(&mut conn)
            .await?;
    }
    let kept_delta = store.memory_bytes().await?.saturating_sub(before);
    let kept = per_shopper(kept_delta);
    println!(
        "  after the recent-event-id keys expire (deleted here): +{:.1} MiB → {kept:.0} B per shopper; the keys cost {:.0} B per shopper active within the dedup horizon",
        kept_delta as f64 / 1_048_576.0,
        (now_delta.saturating_sub(kept_delta)) as f64 / live_ids.max(1) as f64,
    );
    println!(
        "  → 1M shoppers: {:.3} GiB of shopper keys + {:.3} GiB of product keys = {:.3} GiB",
        gib(kept * 1e6),
        gib(products as f64),
        gib(kept * 1e6 + products as f64)
    );
    let keys: Vec<String> = shopper_ids.iter().map(|id| ctx.keys.user(id)).collect();
    let blobs = store.get(&keys).await?;
    let dict = p.dict().await?;
    let mut parts: Vec<(&'static str, usize)> = Vec::new();
    let mut total = 0usize;
    for b in blobs.iter().flatten() {
        total += b.len();
        let state = features::state::user::UserState::decode(b, &dict)?;
        for (i, (name, n)) in state.encoded_parts(&dict).into_iter().enumerate() {
            match parts.get_mut(i) {
                Some(e) => e.1 += n,
                None => parts.push((name, n)),
            }
        }
    }
    let n = blobs.iter().flatten().count().max(1) as f64;
    println!(
        "  shopper blob: {:.0} B on average ({} names in the dictionary); by part:",
        total as f64 / n,
        dict.len()
    );
    for (name, bytes) in parts {
        println!("    {name:<40} {:>6.1} B", bytes as f64 / n);
    }
    Ok(())
}

fn quantile(h: &prometheus::Histogram, q: f64) -> f64 {
    use prometheus::core::Metric as _;
    let m = h.metric();
    let hist = m.get_histogram();
    let total = hist.get_sample_count() as f64;
    for b in hist.get_bucket() {
        if b.cumulative_count() as f64 >= q * total {
            return b.upper_bound();
        }
    }
    f64::INFINITY
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let t = Instant::now();
    let (events, now) = simulate(args.users, args.days, args.max_events);
    let n = events.len();
    let shopper_ids: Vec<String> = events
        .iter()
        .map(features::processor::state_id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let shoppers = shopper_ids.len();
    println!(
        "simulated {n} events of {shoppers} shoppers ({} users, {} days) in {:.1}s",
        args.users,
        args.days,
        t.elapsed().as_secs_f64()
    );
    let _ = now;
    let bus = bus(args.bus)?;
    let topic = format!("bench.features.{}", uuid::Uuid::new_v4().simple());
    let t = Instant::now();
    produce(bus.as_ref(), &topic, &events).await?;
    println!(
        "produced to the {} bus in {:.1}s",
        if args.bus == Bus::Memory {
            "embedded"
        } else {
            "kafka"
        },
        t.elapsed().as_secs_f64()
    );
    drop(events);

    let base = baseline(bus.as_ref(), &topic, n).await?;
    println!("baseline (poll + decode + commit, no store): {base:>10.0} events/s");
    let catalog = Arc::new(Catalog::generate(pipelines::config::DEFAULT_CATALOG_SEED));
    let mk = |prefix: String, group: String| {
        let cfg = FeaturesConfig {
            key_prefix: prefix,
            group,
            ..FeaturesConfig::default()
        };
        Arc::new(Context::new(catalog.clone(), cfg))
    };
    if !args.skip_memory {
        let store: Arc<dyn FeatureStore> = Arc::new(MemoryStore::new(usize::MAX));
        let p = Processor::new(
            mk(
                "lusso:".into(),
                format!("bench-mem-{}", uuid::Uuid::new_v4()),
            ),
            store.clone(),
        );
        let (rate, _) = features_phase(bus.clone(), p, &topic, n as u64).await?;
        let bytes = store.memory_bytes().await?;
        println!("memory store, all features:                 {rate:>10.0} events/s ({:.2}× baseline); payload {:.1} B/shopper-or-product key", rate / base, bytes as f64 / shoppers as f64);
    }
    let url = std::env::var("LUSSO_REDIS_URL")
        .context("LUSSO_REDIS_URL (source ~/.local/share/lusso/services/env.sh)")?;
    let store = Arc::new(RedisStore::connect(&url).await?);
    // As long as the production prefix `lusso:` (6 characters), so the keys cost what they cost in production
    // (Redis rounds a key's allocation to a size class: 8 more characters cross one).
    let prefix = format!("b{}:", &uuid::Uuid::new_v4().simple().to_string()[..4]);
    let before = store.memory_bytes().await?;
    let p = Processor::new(
        mk(
            prefix.clone(),
            format!("bench-redis-{}", uuid::Uuid::new_v4()),
        ),
        store.clone(),
    );
    let (rate, metrics) = features_phase(bus.clone(), p.clone(), &topic, n as u64).await?;
    println!("redis store, all features:                  {rate:>10.0} events/s ({:.2}× baseline), {} CAS conflicts", rate / base, metrics.conflicts.get());
    memory_accounting(&url, store.as_ref(), &p, &shopper_ids, before).await?;

    if args.steady_rate > 0 {
        let total = (args.steady_rate * args.steady_secs) as usize;
        let (steady, _) = simulate(args.users, 7, total);
        let topic2 = format!("{topic}.steady");
        bus.ensure_topic(&topic2, 4).await?;
        let metrics = FeatureMetrics::new(&prometheus::Registry::new());
        let cfg = ConsumerConfig {
            events_topic: topic2.clone(),
            commerce_topic: format!("{topic2}.commerce"),
            partitions: 4,
        };
        let token = CancellationToken::new();
        let p = Processor::new(
            mk(
                prefix.clone(),
                format!("bench-steady-{}", uuid::Uuid::new_v4()),
            ),
            store.clone(),
        );
        let task = tokio::spawn(consumer::run(
            bus.clone(),
            p,
            metrics.clone(),
            cfg,
            token.clone(),
        ));
        // Steady producer: every 10 ms, rate/100 events stamped as received now.
        let per_tick = (args.steady_rate / 100).max(1) as usize;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let start = Instant::now();
        for chunk in steady.chunks(per_tick) {
            tick.tick().await;
            let at = chrono::Utc::now();
            let records = chunk
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    e.received_at = Some(at);
                    Record::new(e.key().to_string(), e.to_json_bytes())
                })
                .collect();
            bus.produce(&topic2, records).await?;
        }
        let offered = steady.len() as f64 / start.elapsed().as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(120);
        while metrics.applied.get() + metrics.duplicates.get() + metrics.redelivered.get()
            < steady.len() as u64
        {
            if Instant::now() > deadline {
                bail!(
                    "steady phase: only {} of {} events applied",
                    metrics.applied.get(),
                    steady.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        token.cancel();
        task.await??;
        let h = &metrics.freshness_seconds;
        println!(
            "freshness at {offered:.0} events/s offered for {}s into redis: p50 ≤ {}s, p99 ≤ {}s (histogram bucket bounds), {} events",
            args.steady_secs,
            quantile(h, 0.5),
            quantile(h, 0.99),
            h.get_sample_count()
        );
    }
    println!("(keys left in redis under the prefix {prefix}; delete with: redis-cli --scan --pattern '{prefix}*' | xargs redis-cli del)");
    Ok(())
}
