//! Checkout benchmark (results in BENCHMARKS.md): orders/s and latency through `POST /v1/checkouts` over
//! loopback HTTP, PostgreSQL store (and the in-memory store for comparison), the fake payment provider, the
//! serving price book. Each client loops: create a cart of 1–2 random SKUs, check it out with a fresh
//! `Idempotency-Key`; only the checkout is timed.
//!
//! Each run also relays the outbox to an in-process bus, as the `lusso` binary does, so the outbox stays
//! bounded and its cost (read, produce, delete) is part of the figure.
//!
//! Same-run baseline: the floor of a durable order on the same PostgreSQL and concurrency — one
//! transaction that decrements one stock row and inserts one order row (no HTTP, no validation, no tax, no
//! outbox). `checkout orders/s ÷ floor transactions/s` says what the whole checkout costs over that floor.
//!
//! `cargo run --release -p lusso-benches --bin checkout_bench -- [--seconds 10] [--concurrency 32]`
//! (PostgreSQL from `LUSSO_DATABASE_URL`; a fresh database is created next to it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use commerce::payments::Providers;
use commerce::service::{SetInventory, SystemClock};
use commerce::{Commerce, CommerceConfig, CommerceParts};
use hdrhistogram::Histogram;
use pipelines::catalog::Catalog;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Seconds of load per run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// SKUs the carts draw from (each stocked with 1,000,000 units online).
    #[arg(long, default_value_t = 2_000)]
    skus: usize,
    /// PostgreSQL base URL (a fresh database is created next to it).
    #[arg(long, env = "LUSSO_DATABASE_URL")]
    database_url: String,
}

struct Run {
    orders: u64,
    errors: u64,
    /// One failed request, for the report (status and body, or the transport error).
    first_error: Option<String>,
    hist: Histogram<u64>,
    seconds: f64,
}

async fn service(
    store: Arc<dyn commerce::store::CommerceStore>,
    catalog: Arc<Catalog>,
    skus: &[String],
    relay_stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Arc<Commerce>> {
    let book = serving::pricing::PriceBook::new(
        catalog.clone(),
        serving::pricing::PriceBook::default_markets(),
    )?;
    let c = Commerce::new(CommerceParts {
        config: CommerceConfig::default(),
        store,
        catalog,
        prices: Arc::new(serving::checkout_prices::BookPrices(Arc::new(book))),
        providers: Providers::fake_only(),
        clock: Arc::new(SystemClock),
    })
    .await?;
    for sku in skus {
        let mut locations = std::collections::BTreeMap::new();
        locations.insert("online".to_string(), 1_000_000);
        c.set_inventory(sku, SetInventory { locations }).await?;
    }
    let c = Arc::new(c);
    let bus: Arc<dyn pipelines::bus::EventBus> = Arc::new(pipelines::bus::memory::MemoryBus::new(
        pipelines::bus::memory::MemoryBusConfig::default(),
    ));
    tokio::spawn(commerce::outbox::run_relay(
        c.clone(),
        bus,
        "lusso.commerce.v1".to_string(),
        relay_stop.clone(),
    ));
    Ok(c)
}

async fn load(args: &Args, commerce: Arc<Commerce>, skus: Arc<Vec<String>>) -> anyhow::Result<Run> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server =
        tokio::spawn(async move { axum::serve(listener, commerce::api::app(commerce)).await });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for c in 0..args.concurrency {
        let (http, skus) = (http.clone(), skus.clone());
        let base = format!("http://{addr}");
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(c as u64);
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            let (mut ok, mut err) = (0u64, 0u64);
            let mut first_error: Option<String> = None;
            let address = json!({"name": "Giulia Rossi", "street": "Via Montenapoleone 8", "city": "Milano",
                "postal_code": "20121", "province": "MI", "country": "IT"});
            while Instant::now() < until {
                let n = rng.random_range(1..=2);
                let lines: Vec<_> = (0..n)
                    .map(|_| json!({"sku": skus[rng.random_range(0..skus.len())], "quantity": 1}))
                    .collect();
                let cart: serde_json::Value = match http
                    .post(format!("{base}/v1/carts"))
                    .json(&json!({"market": "IT", "lines": lines}))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
                    other => {
                        err += 1;
                        if first_error.is_none() {
                            first_error = Some(describe("POST /v1/carts", other).await);
                        }
                        continue;
                    }
                };
                let body = json!({"cart_id": cart["id"], "email": "bench@example.com", "shipping": address,
                    "payment": {"provider": "fake"}});
                let t = Instant::now();
                match http
                    .post(format!("{base}/v1/checkouts"))
                    .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        let _ = h.record(t.elapsed().as_micros() as u64);
                        ok += 1;
                    }
                    other => {
                        err += 1;
                        if first_error.is_none() {
                            first_error = Some(describe("POST /v1/checkouts", other).await);
                        }
                    }
                }
            }
            (ok, err, h, first_error)
        }));
    }
    let run = gather(tasks, started).await?;
    server.abort();
    Ok(run)
}

/// What a failed request was: its status and body, or the transport error.
async fn describe(what: &str, r: reqwest::Result<reqwest::Response>) -> String {
    match r {
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            format!(
                "{what}: {status} {}",
                body.chars().take(200).collect::<String>()
            )
        }
        Err(e) => format!("{what}: {e}"),
    }
}

type Client = tokio::task::JoinHandle<(u64, u64, Histogram<u64>, Option<String>)>;

/// Waits for every client and merges what they counted.
async fn gather(tasks: Vec<Client>, started: Instant) -> anyhow::Result<Run> {
    let mut run = Run {
        orders: 0,
        errors: 0,
        first_error: None,
        hist: Histogram::new(3)?,
        seconds: 0.0,
    };
    for t in tasks {
        let (o, e, h, first) = t.await?;
        run.orders += o;
        run.errors += e;
        run.first_error = run.first_error.or(first);
        run.hist.add(h)?;
    }
    run.seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

/// The floor: one transaction per order that decrements a stock row and inserts an order row.
async fn floor(args: &Args, url: &str) -> anyhow::Result<Run> {
    let pool = pipelines::pg::connect(url, commerce::store::postgres::POOL_MAX_CONNECTIONS).await?;
    sqlx::query("CREATE TABLE bench_stock (sku text PRIMARY KEY, on_hand bigint NOT NULL)")
        .execute(&pool)
        .await?;
    sqlx::query("CREATE TABLE bench_orders (id uuid PRIMARY KEY, doc jsonb NOT NULL)")
        .execute(&pool)
        .await?;
    sqlx::query("INSERT INTO bench_stock SELECT 'S' || g, 1000000 FROM generate_series(1, $1) g")
        .bind(args.skus as i64)
        .execute(&pool)
        .await?;
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for c in 0..args.concurrency {
        let (pool, skus) = (pool.clone(), args.skus);
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(1_000 + c as u64);
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            let (mut ok, mut err) = (0u64, 0u64);
            let mut first_error: Option<String> = None;
            while Instant::now() < until {
                let t = Instant::now();
                let r: Result<(), sqlx::Error> = async {
                    let mut tx = pool.begin().await?;
                    sqlx::query("UPDATE bench_stock SET on_hand = on_hand - 1 WHERE sku = $1")
                        .bind(format!("S{}", rng.random_range(1..=skus)))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("INSERT INTO bench_orders (id, doc) VALUES ($1, $2)")
                        .bind(uuid::Uuid::new_v4())
                        .bind(json!({"lines": 1, "total": 100}))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                }
                .await;
                match r {
                    Ok(()) => {
                        ok += 1;
                        let _ = h.record(t.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        err += 1;
                        if first_error.is_none() {
                            first_error = Some(format!("floor transaction: {e}"));
                        }
                    }
                }
            }
            (ok, err, h, first_error)
        }));
    }
    gather(tasks, started).await
}

fn row(name: &str, r: &Run) -> f64 {
    let ms = |q: f64| r.hist.value_at_quantile(q) as f64 / 1000.0;
    let rate = r.orders as f64 / r.seconds;
    println!(
        "| {name} | {rate:.0} | {:.1} | {:.1} | {:.1} | {} |",
        ms(0.5),
        ms(0.99),
        r.hist.max() as f64 / 1000.0,
        r.errors
    );
    if let Some(e) = &r.first_error {
        eprintln!("{name}: first error: {e}");
    }
    rate
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let catalog = Arc::new(Catalog::generate(42));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let all: Vec<String> = catalog
        .products()
        .iter()
        .filter(|p| p.is_listed())
        .flat_map(|p| p.variants.iter().map(|v| v.id.clone()))
        .collect();
    let skus: Vec<String> = (0..args.skus.min(all.len()))
        .map(|_| all[rng.random_range(0..all.len())].clone())
        .collect();
    let skus = Arc::new(skus);
    let url = pipelines::pg::fresh_database(&args.database_url, "lusso_bench_checkout")
        .await
        .context("creating the benchmark database")?;
    println!(
        "### Checkout, {} clients, {} s per run, {} SKUs, fake provider, loopback HTTP (server, clients and PostgreSQL share the 2 cores)\n",
        args.concurrency, args.seconds, skus.len()
    );
    println!(
        "| run | orders/s | p50 ms | p99 ms | max ms | errors |\n|---|---:|---:|---:|---:|---:|"
    );
    let floor_run = floor(&args, &url).await?;
    let floor_rate = row(
        "floor: 1 stock UPDATE + 1 order INSERT per transaction (PostgreSQL, no HTTP)",
        &floor_run,
    );
    // Each run's relay stops with its run, so a backlog left by one run does not load the next.
    let relay_stop = tokio_util::sync::CancellationToken::new();
    let pg = commerce::store::open(&url).await?;
    let pg_run = load(
        &args,
        service(pg, catalog.clone(), &skus, &relay_stop).await?,
        skus.clone(),
    )
    .await?;
    relay_stop.cancel();
    let pg_rate = row("POST /v1/checkouts, PostgreSQL store", &pg_run);
    let relay_stop = tokio_util::sync::CancellationToken::new();
    let mem = commerce::store::open("memory://").await?;
    let mem_run = load(
        &args,
        service(mem, catalog, &skus, &relay_stop).await?,
        skus,
    )
    .await?;
    row("POST /v1/checkouts, in-memory store", &mem_run);
    relay_stop.cancel();
    println!(
        "\ncheckout orders/s (PostgreSQL) ÷ floor transactions/s = {:.3}×",
        pg_rate / floor_rate
    );
    Ok(())
}
