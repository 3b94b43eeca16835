//! Serving benchmark (results in BENCHMARKS.md): a 50,000-product × 64-factor model with 100,000 trained
//! shoppers, 10,000 feature-store shoppers the model never saw (fold-in), 5,000 anonymous sessions, 20
//! merchandising rules, a running A/B experiment, and filters on (purchases, `exclude`, sizes in stock for a
//! fifth of the requests, per-category diversity).
//!
//! The server runs in a child process (this binary with `--serve`), so its resident memory is its own; the
//! parent is the load generator (our own: open-loop at a fixed rate paced from an OS thread, latency measured
//! from each request's *scheduled* start so a stall is not hidden by coordinated omission; then closed-loop for
//! the maximum rate). The baseline is a bare axum handler (`GET /bare`, a constant small JSON) on the same
//! server, measured in the same run. Server and load generator share the machine's 2 cores.
//!
//! With `--redis-url` the load generator seeds the shoppers under a fresh key prefix and drops the keys at the
//! end; with `--kafka-brokers` the server produces impressions to the broker, as a deployed serving role does.
//!
//! With `--edge` the server also serves the same router behind the HTTP edge (request ids, deadline, key check,
//! the key's rate bucket) on a second port, and the load generator alternates open-loop runs on both.
//!
//! `cargo run --release -p lusso-benches --bin serving_bench -- [--rate 1000] [--seconds 10]
//! [--redis-url redis://127.0.0.1:6379] [--kafka-brokers 127.0.0.1:9092] [--edge]`

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use features::processor::{Incoming, Item, Processor};
use features::state::stream_id;
use features::store::FeatureStore;
use features::{Context, FeaturesConfig};
use hdrhistogram::Histogram;
use pipelines::bus::EventBus as _;
use pipelines::catalog::Catalog;
use pipelines::event::{Event, OrderLine, ProductView, Properties, Purchase};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serving::impressions::{self, Impressions};
use serving::lookups::Lookups;
use serving::metrics::ServingMetrics;
use serving::models::{LoadedModel, Models};
use serving::pricing::PriceBook;
use serving::{Serving, ServingConfig, ServingParts, Stores};
use tokio_util::sync::CancellationToken;
use training::linalg::Factors;
use training::matrix::{Csr, IdIndex};
use training::model::{Algo, Model};

#[derive(Parser, Clone)]
struct Args {
    #[arg(long, default_value_t = 50_000)]
    products: usize,
    #[arg(long, default_value_t = 64)]
    factors: usize,
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Open-loop rate (requests/s) for the latency run.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Seconds of the open-loop run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds per endpoint of the closed-loop (maximum rate) runs.
    #[arg(long, default_value_t = 6)]
    max_seconds: u64,
    /// Concurrent connections of the closed-loop runs.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Use Redis (fresh key prefix) as the feature store instead of memory. The load generator then seeds
    /// the shoppers itself, so the server's RSS holds only what serving keeps.
    #[arg(long)]
    redis_url: Option<String>,
    /// Produce impressions and exposures to this Kafka-protocol broker (a fresh topic), as a deployed
    /// serving role does, instead of to an in-process bus holding the last 10,000 per partition.
    #[arg(long)]
    kafka_brokers: Option<String>,
    /// Also serve the same router behind the HTTP edge (request ids, deadline, API-key check with a
    /// publishable key's rate bucket) on a second port, and compare the two in the same run.
    #[arg(long)]
    edge: bool,
    /// Internal: the feature store's key prefix, already seeded by the load generator.
    #[arg(long, hide = true)]
    seeded_prefix: Option<String>,
    /// Internal: run the server and print its address.
    #[arg(long, hide = true)]
    serve: bool,
}

/// The allocator of the `lusso` binary, so the server measured here allocates as a deployed one does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FOLD_IN_SHOPPERS: usize = 10_000;
/// Both processes generate the same catalogue from this seed.
const CATALOGUE_SEED: u64 = 7;
const ANONYMOUS: usize = 5_000;
const MARKETS: [&str; 6] = ["IT", "FR", "DE", "GB", "CH", "US"];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve {
        return serve(args);
    }
    let rt = tokio::runtime::Runtime::new()?;
    let seeded = match &args.redis_url {
        Some(u) => Some(rt.block_on(seed_redis(&args, u))?),
        None => None,
    };
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("--serve")
        .args(["--products", &args.products.to_string()])
        .args(["--factors", &args.factors.to_string()])
        .args(["--users", &args.users.to_string()])
        .stdout(Stdio::piped());
    if let (Some(u), Some(prefix)) = (&args.redis_url, &seeded) {
        cmd.args(["--redis-url", u, "--seeded-prefix", prefix]);
    }
    if let Some(b) = &args.kafka_brokers {
        cmd.args(["--kafka-brokers", b]);
    }
    if args.edge {
        cmd.arg("--edge");
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut edge: Option<Edge> = None;
    let addr = loop {
        let line = lines
            .next()
            .context("the server exited before listening")??;
        if let Some(rest) = line.strip_prefix("edge ") {
            let (addr, key) = rest.split_once(' ').context("edge ADDR KEY")?;
            edge = Some(Edge {
                addr: addr.to_string(),
                key: key.to_string(),
            });
        } else if let Some(a) = line.strip_prefix("listening ") {
            break a.to_string();
        } else {
            println!("{line}");
        }
    };
    let result = rt.block_on(load(&args, &addr, pid, edge.as_ref()));
    let _ = child.kill();
    let _ = child.wait();
    if let (Some(u), Some(prefix)) = (&args.redis_url, &seeded) {
        let dropped = rt.block_on(drop_keys(u, prefix))?;
        println!("dropped the run's {dropped} Redis keys (`{prefix}*`)");
    }
    result
}

/// Deletes every key under `prefix` (SCAN + DEL, a thousand at a time).
async fn drop_keys(url: &str, prefix: &str) -> anyhow::Result<u64> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let (mut cursor, mut dropped) = (0u64, 0u64);
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            dropped += redis::cmd("DEL")
                .arg(&keys)
                .query_async::<u64>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(dropped);
        }
        cursor = next;
    }
}

fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

/// A request mix over the seeded population.
fn urls(addr: &str, n: usize, args: &Args) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    (0..n)
        .map(|_| {
            let market = MARKETS[rng.random_range(0..MARKETS.len())];
            let mut q = match rng.random_range(0..10) {
                0 => format!("user_id=F{}", rng.random_range(0..FOLD_IN_SHOPPERS)),
                1 => format!("anonymous_id=a{}", rng.random_range(0..ANONYMOUS)),
                2 => format!(
                    "placement=pdp&user_id=U{:07}&product_id=P{:06}",
                    rng.random_range(1..=args.users),
                    rng.random_range(1..=args.products)
                ),
                _ => format!("user_id=U{:07}", rng.random_range(1..=args.users)),
            };
            q.push_str(&format!("&market={market}&n=20"));
            if rng.random_range(0..5) == 0 {
                q.push_str(&format!(
                    "&size=M&exclude=P{:06},P{:06}",
                    rng.random_range(1..=args.products),
                    rng.random_range(1..=args.products)
                ));
            }
            format!("http://{addr}/v1/recommendations?{q}")
        })
        .collect()
}

async fn load(args: &Args, addr: &str, pid: u32, edge: Option<&Edge>) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let mix = Arc::new(urls(addr, 50_000, args));
    // Warm up (connections, caches).
    for u in mix.iter().take(500) {
        http.get(u).send().await?.bytes().await?;
    }
    println!(
        "\n### Open loop: {} requests/s for {} s (latency from the scheduled start)\n",
        args.rate, args.seconds
    );
    let run = open_loop(&http, mix.clone(), args.rate, args.seconds, None).await?;
    let h = &run.hist;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!("| requests | achieved/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
        h.len(),
        run.achieved,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0,
        run.errors
    );
    println!(
        "\nthe generator sent requests late by p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (included above)",
        run.late.value_at_quantile(0.5) as f64 / 1000.0,
        run.late.value_at_quantile(0.99) as f64 / 1000.0,
        run.late.max() as f64 / 1000.0
    );
    let (rss, hwm) = rss_mb(pid);
    println!("\nserver RSS after the open-loop run: {rss:.0} MB (peak {hwm:.0} MB)");

    println!(
        "\n### Closed loop: {} connections, {} s per endpoint\n",
        args.concurrency, args.max_seconds
    );
    println!("| endpoint | requests/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|");
    let mut rates = Vec::new();
    for (name, bare) in [
        ("bare axum handler `GET /bare`", true),
        ("`GET /v1/recommendations` (mix)", false),
    ] {
        let until = Instant::now() + Duration::from_secs(args.max_seconds);
        let mut workers = Vec::new();
        for c in 0..args.concurrency {
            let (http, mix) = (http.clone(), mix.clone());
            let bare_url = format!("http://{addr}/bare");
            workers.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                let (mut ok, mut err, mut i) = (0u64, 0u64, c * 1_000);
                while Instant::now() < until {
                    i += 1;
                    let url = if bare {
                        bare_url.as_str()
                    } else {
                        mix[i % mix.len()].as_str()
                    };
                    let t = Instant::now();
                    match http.get(url).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            ok += 1;
                            let _ = h.record(t.elapsed().as_micros() as u64);
                        }
                        _ => err += 1,
                    }
                }
                (ok, err, h)
            }));
        }
        let (mut ok, mut err) = (0u64, 0u64);
        let mut h = Histogram::<u64>::new(3)?;
        for w in workers {
            let (o, e, wh) = w.await?;
            ok += o;
            err += e;
            h.add(wh)?;
        }
        let rate = ok as f64 / args.max_seconds as f64;
        rates.push(rate);
        println!(
            "| {name} | {rate:.0} | {:.2} | {:.2} | {err} |",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
    println!(
        "\nrecommendations / bare handler max rate: {:.2}×",
        rates[1] / rates[0].max(1.0)
    );
    let (rss, hwm) = rss_mb(pid);
    println!("server RSS at the end: {rss:.0} MB (peak {hwm:.0} MB)");
    if let Some(e) = edge {
        edge_comparison(args, &http, &mix, e).await?;
    }
    Ok(())
}

/// The same server behind the HTTP edge: its address and the publishable key it accepts.
struct Edge {
    addr: String,
    key: String,
}

/// One open-loop run's latencies (from each request's scheduled start), the generator's lateness, the rate
/// achieved and the failed requests.
struct OpenLoop {
    hist: Histogram<u64>,
    late: Histogram<u64>,
    achieved: f64,
    errors: u64,
}

/// Sends `rate × seconds` requests over `mix` at a fixed rate, with `Authorization: Bearer auth` when given.
async fn open_loop(
    http: &reqwest::Client,
    mix: Arc<Vec<String>>,
    rate: u64,
    seconds: u64,
    auth: Option<String>,
) -> anyhow::Result<OpenLoop> {
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    // Paced from a thread of its own with the OS's sleep (tens of µs late) rather than tokio's timer, whose
    // millisecond ticks would send each request up to 1 ms after its scheduled start and count the
    // generator's lateness as the server's latency. The lateness left is measured and printed.
    let (runtime, pacer_mix, pacer_http) =
        (tokio::runtime::Handle::current(), mix.clone(), http.clone());
    let (pacer_hist, pacer_errors) = (hist.clone(), errors.clone());
    let auth = auth.map(|k| format!("Bearer {k}"));
    let (tasks, late) = tokio::task::spawn_blocking(move || {
        let mut late = Histogram::<u64>::new(3).expect("histogram");
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let due = start + interval * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            late.record(due.elapsed().as_micros() as u64).ok();
            let mut req = pacer_http.get(&pacer_mix[i as usize % pacer_mix.len()]);
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let (hist, errors) = (pacer_hist.clone(), pacer_errors.clone());
            tasks.push(runtime.spawn(async move {
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        let us = due.elapsed().as_micros() as u64;
                        hist.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record(us.max(1))
                            .ok();
                    }
                    _ => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
        (tasks, late)
    })
    .await?;
    for t in tasks {
        let _ = t.await;
    }
    let achieved = total as f64 / start.elapsed().as_secs_f64();
    let hist = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(OpenLoop {
        hist,
        late,
        achieved,
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Open-loop runs alternating the plain server and the same server behind the edge (three rounds each, so
/// drift on the shared machine hits both), then the medians and their ratio.
async fn edge_comparison(
    args: &Args,
    http: &reqwest::Client,
    mix: &Arc<Vec<String>>,
    edge: &Edge,
) -> anyhow::Result<()> {
    let edge_mix = Arc::new(urls(&edge.addr, 50_000, args));
    let auth = format!("Bearer {}", edge.key);
    for u in edge_mix.iter().take(500) {
        let r = http.get(u).header("authorization", &auth).send().await?;
        anyhow::ensure!(
            r.status().is_success(),
            "the edge refused {u}: {}",
            r.status()
        );
        r.bytes().await?;
    }
    println!(
        "\n### The edge: {} requests/s for {} s, without and with it, three rounds alternating\n",
        args.rate, args.seconds
    );
    println!("| round | server | p50 ms | p99 ms | errors |\n|---:|---|---:|---:|---:|");
    let mut p99 = [Vec::new(), Vec::new()];
    for round in 1..=3 {
        for (i, (name, urls, key)) in [
            ("plain router", mix.clone(), None),
            ("behind the edge", edge_mix.clone(), Some(edge.key.clone())),
        ]
        .into_iter()
        .enumerate()
        {
            let r = open_loop(http, urls, args.rate, args.seconds, key).await?;
            let ms = |q: f64| r.hist.value_at_quantile(q) as f64 / 1000.0;
            p99[i].push(ms(0.99));
            println!(
                "| {round} | {name} | {:.2} | {:.2} | {} |",
                ms(0.5),
                ms(0.99),
                r.errors
            );
        }
    }
    let median = lusso_benches::edge::median;
    let (plain, edged) = (median(&mut p99[0]), median(&mut p99[1]));
    println!(
        "\nmedian p99: plain {plain:.2} ms, behind the edge {edged:.2} ms: {:.3}× (goal ≤ 1.05×)",
        edged / plain.max(f64::MIN_POSITIVE)
    );
    Ok(())
}

/// The model: random factors (values do not change the work per request), popularity from 300,000 random
/// training pairs.
fn model(args: &Args, catalog: &Catalog) -> LoadedModel {
    let items = IdIndex::new(catalog.products().iter().map(|p| p.id.clone()).collect());
    let users = IdIndex::new((1..=args.users).map(|u| format!("U{u:07}")).collect());
    let k = args.factors;
    let item_factors = Factors::random(items.len(), k, 1, 0.2, -0.1);
    let user_factors = Factors::random(users.len(), k, 2, 0.2, -0.1);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let triples: Vec<(u32, u32, f32)> = (0..300_000)
        .map(|_| {
            (
                rng.random_range(0..users.len() as u32),
                rng.random_range(0..items.len() as u32),
                1.0,
            )
        })
        .collect();
    let train = Csr::from_triples(users.len(), items.len(), &triples);
    let m = Model::new(
        Algo::Als,
        users,
        items,
        user_factors,
        item_factors,
        &train,
        0.05,
    );
    let meta: training::registry::ModelMeta = serde_json::from_value(serde_json::json!({
        "version": "bench", "algo": "als", "created_at": chrono::Utc::now(), "code_version": "bench",
        "params": {}, "data": {"source": "bench", "users": args.users, "items": args.products,
            "interactions": 300000, "hash": "0", "from": null, "until": null, "as_of": null},
        "split": "none", "metrics": null, "seconds_per_iteration": 0.0, "history": []
    }))
    .expect("meta");
    LoadedModel::new(meta, m, catalog)
}

fn event(
    user: Option<&str>,
    anon: Option<&str>,
    minutes_ago: i64,
    properties: Properties,
) -> Event {
    let ts = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    Event {
        event_id: uuid::Uuid::new_v4(),
        ts,
        user_id: user.map(str::to_string),
        anonymous_id: anon.map(str::to_string),
        session_id: None,
        market: Some("IT".into()),
        device: None,
        received_at: Some(ts),
        properties,
    }
}

/// A fresh key prefix in Redis, seeded with the shoppers (in the load generator's process).
async fn seed_redis(args: &Args, url: &str) -> anyhow::Result<String> {
    let catalog = Arc::new(Catalog::generate_with(CATALOGUE_SEED, args.products));
    let prefix = format!(
        "lusso_bench_{}:",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let store: Arc<dyn FeatureStore> =
        Arc::new(features::store::redis::RedisStore::connect(url).await?);
    let processor = Processor::new(
        Arc::new(Context::new(catalog.clone(), features_config(&prefix))),
        store,
    );
    let t = Instant::now();
    seed_features(&processor, &catalog, args).await?;
    println!(
        "seeded the feature store (Redis, prefix `{prefix}`) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(prefix)
}

fn features_config(prefix: &str) -> FeaturesConfig {
    FeaturesConfig {
        key_prefix: prefix.to_string(),
        ..FeaturesConfig::default()
    }
}

/// Shoppers in the feature store: `F…` (views and a purchase; unknown to the model), `a…` (anonymous views),
/// and a tenth of the trained `U…` shoppers with purchases (so the purchase filter has work).
async fn seed_features(
    processor: &Processor,
    catalog: &Catalog,
    args: &Args,
) -> anyhow::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let products = catalog.products();
    let mut events = Vec::new();
    let pick = |rng: &mut ChaCha8Rng| products[rng.random_range(0..products.len())].clone();
    let view = |id: &str, p: &str, ago, anon: bool| {
        let props = Properties::ProductView(ProductView {
            product_id: p.into(),
            extra: Default::default(),
        });
        if anon {
            event(None, Some(id), ago, props)
        } else {
            event(Some(id), None, ago, props)
        }
    };
    for f in 0..FOLD_IN_SHOPPERS {
        let id = format!("F{f}");
        for v in 0..5 {
            events.push(view(&id, &pick(&mut rng).id, 100 - v, false));
        }
        let p = pick(&mut rng);
        events.push(event(
            Some(&id),
            None,
            90,
            Properties::Purchase(Purchase {
                order_id: format!("o-{id}"),
                currency: "EUR".into(),
                total: p.price,
                lines: vec![OrderLine {
                    product_id: p.id.clone(),
                    variant_id: p.variants[0].id.clone(),
                    quantity: 1,
                    unit_price: p.price,
                    extra: Default::default(),
                }],
                extra: Default::default(),
            }),
        ));
    }
    for a in 0..ANONYMOUS {
        let id = format!("a{a}");
        for v in 0..4 {
            events.push(view(&id, &pick(&mut rng).id, 50 - v, true));
        }
    }
    for u in (1..=args.users).step_by(10) {
        let id = format!("U{u:07}");
        let p = pick(&mut rng);
        events.push(event(
            Some(&id),
            None,
            200,
            Properties::Purchase(Purchase {
                order_id: format!("o-{id}"),
                currency: "EUR".into(),
                total: p.price,
                lines: vec![OrderLine {
                    product_id: p.id.clone(),
                    variant_id: p.variants[0].id.clone(),
                    quantity: 1,
                    unit_price: p.price,
                    extra: Default::default(),
                }],
                extra: Default::default(),
            }),
        ));
    }
    for (c, chunk) in events.chunks(10_000).enumerate() {
        let batch: Vec<Incoming> = chunk
            .iter()
            .enumerate()
            .map(|(i, e)| Incoming {
                stream: stream_id(features::consumer::EVENTS_STREAM, 0),
                offset: (c * 10_000 + i) as u64,
                item: Item::Event(Box::new(e.clone())),
            })
            .collect();
        processor.process(&batch).await?;
    }
    features::consumer::refresh_popularity(processor).await?;
    Ok(())
}

/// 20 rules over segments, markets and placements: pins, collection pins, boosts, buries, quotas, filters.
async fn seed_rules(serving: &Serving, catalog: &Catalog) -> anyhow::Result<()> {
    let collections: Vec<String> = catalog.collections().iter().map(|c| c.id.clone()).collect();
    let lines: Vec<String> = catalog.lines().iter().map(|l| l.id.clone()).collect();
    let segments = features::segment::RULE_SEGMENTS;
    for i in 0..20usize {
        let action = match i % 6 {
            0 => {
                serde_json::json!({"type": "pin", "product_id": catalog.products()[i * 7].id, "position": 1 + i % 3})
            }
            1 => {
                serde_json::json!({"type": "pin_collection", "collection": collections[i % collections.len()], "above_the_fold": 3})
            }
            2 => {
                serde_json::json!({"type": "boost", "attribute": "line", "value": lines[i % lines.len()], "factor": 1.5})
            }
            3 => {
                serde_json::json!({"type": "bury", "attribute": "on_sale", "value": "true", "factor": 2.0})
            }
            4 => serde_json::json!({"type": "quota", "attribute": "category", "max": 3}),
            _ => {
                serde_json::json!({"type": "filter", "attribute": "colour", "value": catalog.colours()[i % 16].code})
            }
        };
        let rule = serde_json::json!({
            "name": format!("bench rule {i}"), "priority": 100 - i,
            "conditions": {"segment": [segments[i % segments.len()]], "market": [MARKETS[i % 6], MARKETS[(i + 1) % 6]]},
            "actions": [action],
        });
        let input: serving::rules::RuleInput = serde_json::from_value(rule)?;
        input.validate(catalog)?;
        serving.stores().rules.create(input, "bench").await?;
    }
    let exp: serving::experiments::ExperimentInput = serde_json::from_value(serde_json::json!({
        "key": "bench", "name": "bench", "status": "running", "traffic": 1.0, "placements": ["home"],
        "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5, "rule_set": "b"}]
    }))?;
    serving.stores().experiments.create(exp, "bench").await?;
    serving.reload(true).await?;
    Ok(())
}

fn serve(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        // The server's RSS after each setup step (stderr), to tell which part of the process holds what.
        let stage = |what: &str| {
            let (rss, _) = rss_mb(std::process::id());
            eprintln!("server RSS after {what}: {rss:.0} MB");
        };
        stage("start");
        let catalog = Arc::new(Catalog::generate_with(CATALOGUE_SEED, args.products));
        stage("the catalogue");
        let loaded = model(&args, &catalog);
        stage("the model");
        let (store, prefix): (Arc<dyn FeatureStore>, String) =
            match (&args.redis_url, &args.seeded_prefix) {
                (Some(u), Some(prefix)) => (
                    Arc::new(features::store::redis::RedisStore::connect(u).await?),
                    prefix.clone(),
                ),
                _ => (
                    Arc::new(features::store::memory::MemoryStore::new(5_000_000)),
                    "lusso_bench:".to_string(),
                ),
            };
        let seeded = args.seeded_prefix.is_some();
        let processor = Processor::new(
            Arc::new(Context::new(catalog.clone(), features_config(&prefix))),
            store,
        );
        if !seeded {
            seed_features(&processor, &catalog, &args).await?;
            stage("seeding the feature store (in memory, in this process)");
        }
        let config = ServingConfig::default();
        let registry = prometheus::Registry::new();
        let metrics = ServingMetrics::new(&registry);
        let (queue, rx) = Impressions::new(config.impression_queue, metrics.clone());
        let serving = Serving::new(ServingParts {
            lookups: Lookups::new(
                processor,
                config.features_timeout(),
                config.cache_ttl(),
                config.stock_cache_max,
            ),
            prices: PriceBook::new(catalog.clone(), PriceBook::default_markets())?,
            config,
            catalog: catalog.clone(),
            models: Arc::new(Models::fixed(loaded, catalog.clone())),
            stores: Stores::memory(),
            impressions: queue,
            metrics: metrics.clone(),
            log: None,
        });
        stage("the price book");
        seed_rules(&serving, &catalog).await?;
        stage("the rules");
        // Impressions leave the process in a `serve --role serving` deployment: to the broker when one is
        // given, else to an in-process bus standing in for Kafka that keeps only 10,000 per partition (the
        // embedded default of 250,000 would count up to ~1M impressions in the server's RSS).
        let (bus, topic): (Arc<dyn pipelines::bus::EventBus>, String) = match &args.kafka_brokers {
            Some(b) => {
                let bus = pipelines::bus::kafka::KafkaBus::new(
                    pipelines::bus::kafka::KafkaConfig::new(b.clone()),
                )?;
                let topic = format!(
                    "lusso_bench_{}.events",
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                );
                bus.ensure_topic(&topic, 4).await?;
                (Arc::new(bus), topic)
            }
            None => (
                Arc::new(pipelines::bus::memory::MemoryBus::new(
                    pipelines::bus::memory::MemoryBusConfig {
                        max_messages_per_partition: 10_000,
                        ..Default::default()
                    },
                )),
                "lusso.events.v1".into(),
            ),
        };
        eprintln!("impressions go to {} topic `{topic}`", bus.describe());
        let token = CancellationToken::new();
        tokio::spawn(impressions::run(rx, bus, topic, metrics, token.clone()));
        tokio::spawn(serving.clone().run_reloader(token));
        drop(catalog);
        let app = serving::api::app(serving).route(
            "/bare",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({"ok": true, "items": []}))
            }),
        );
        if args.edge {
            let dir = std::env::temp_dir().join(format!("lusso-bench-keys-{}", std::process::id()));
            let (edged, key) = lusso_benches::edge::behind(app.clone(), &dir).await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("edge {} {key}", listener.local_addr()?);
            tokio::spawn(async move { axum::serve(listener, edged).await });
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}
