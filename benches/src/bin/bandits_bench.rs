//! Bandit benchmarks (results in BENCHMARKS.md):
//! 1. in-process decide latency per policy with 50 arms and 64 context features, against a same-run
//!    textbook LinUCB that solves `A θ = b` by Cholesky on every request (baseline);
//! 2. the whole in-process `Bandits::decide` (validation, context, policy, durable log write) on the
//!    in-memory store;
//! 3. HTTP decisions/s over loopback against the same server's trivial JSON endpoint (baseline);
//! 4. OPE over the 10,000-round Open Bandit sample, point estimates and 10,000-resample intervals.
//!
//! `cargo run --release -p lusso-benches --bin bandits_bench -- [--obd PATH]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bandits::context::{ContextInput, CATEGORIES, DEVICES, DIM, MARKETS, SEGMENTS};
use bandits::metrics::BanditMetrics;
use bandits::policy::{LedgerEntry, SlotModel};
use bandits::service::{Bandits, BanditsConfig, DecideRequest, SystemClock};
use bandits::slot::{Arm, PolicyKind, PolicySpec, RewardSpec, Slot};
use clap::Parser;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Parser)]
struct Args {
    /// Decisions timed per policy.
    #[arg(long, default_value_t = 20_000)]
    decisions: usize,
    /// Ledger entries learned before timing.
    #[arg(long, default_value_t = 50_000)]
    train: usize,
    /// Seconds of HTTP load per endpoint.
    #[arg(long, default_value_t = 8)]
    http_seconds: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Open Bandit Dataset log for the OPE timing.
    #[arg(
        long,
        default_value = "../shared/data/open_bandit_dataset/bts/all/all.csv"
    )]
    obd: std::path::PathBuf,
    /// Evaluation policy CSV for the OPE timing.
    #[arg(long, default_value = "tools/obp/policies/greedy_all.csv")]
    obd_policy: std::path::PathBuf,
    /// Also load the HTTP endpoint with PostgreSQL as the store (a fresh database next to this URL's).
    #[arg(long, env = "LUSSO_DATABASE_URL")]
    database_url: Option<String>,
}

const ARMS: usize = 50;

fn slot(kind: PolicyKind) -> Slot {
    Slot {
        slot: "bench".into(),
        version: 1,
        policy: PolicySpec {
            kind,
            ..PolicySpec::default()
        },
        reward: RewardSpec::default(),
        traffic_floor: 0.0,
        sticky: false,
        forced: Default::default(),
        arms: (0..ARMS).map(|i| Arm::new(format!("arm{i:02}"))).collect(),
    }
}

fn random_context(rng: &mut ChaCha8Rng) -> ContextInput {
    let mut aff = std::collections::BTreeMap::new();
    for _ in 0..4 {
        aff.insert(
            CATEGORIES[rng.random_range(0..CATEGORIES.len())].to_string(),
            rng.random::<f64>(),
        );
    }
    ContextInput {
        segment: Some(SEGMENTS[rng.random_range(0..SEGMENTS.len())].to_string()),
        cluster: Some(rng.random_range(0..8)),
        device: Some(DEVICES[rng.random_range(0..DEVICES.len())].to_string()),
        market: Some(MARKETS[rng.random_range(0..MARKETS.len())].to_string()),
        hour: Some(rng.random_range(0..24)),
        weekday: Some(rng.random_range(1..=7)),
        session_id: None,
        category_affinity: Some(aff),
        orders: Some(rng.random_range(0..10)),
    }
}

fn trained(kind: PolicyKind, n: usize, rng: &mut ChaCha8Rng) -> anyhow::Result<SlotModel> {
    let mut m = SlotModel::new(slot(kind));
    let now = chrono::Utc::now();
    for seq in 1..=n as u64 {
        let c = random_context(rng).resolve(None, true, now);
        m.apply(&LedgerEntry {
            seq,
            slot: "bench".into(),
            decision_id: uuid::Uuid::nil(),
            arm_id: format!("arm{:02}", rng.random_range(0..ARMS)),
            segment: c.segment.clone(),
            features: c.features(),
            delta: if rng.random_bool(0.04) { 1.0 } else { 0.0 },
            first: true,
        })?;
    }
    // As the service does after applying rewards (Thompson's cached P(best) per segment).
    m.refresh(now);
    Ok(m)
}

fn report(name: &str, h: &Histogram<u64>) -> f64 {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0
    );
    us(0.99)
}

/// The textbook LinUCB decide: per arm, Cholesky of `A` (kept as `A`, not its inverse), θ by two
/// triangular solves, `xᵀA⁻¹x` by one more.
struct NaiveLinUcb {
    a: Vec<Vec<f64>>,
    b: Vec<Vec<f64>>,
}

impl NaiveLinUcb {
    fn new(model_entries: &[(usize, Vec<f64>, f64)]) -> NaiveLinUcb {
        let mut a = vec![vec![0.0; DIM * DIM]; ARMS];
        let mut b = vec![vec![0.0; DIM]; ARMS];
        for m in &mut a {
            for i in 0..DIM {
                m[i * DIM + i] = 1.0;
            }
        }
        for (arm, x, r) in model_entries {
            for i in 0..DIM {
                b[*arm][i] += r * x[i];
                for j in 0..DIM {
                    a[*arm][i * DIM + j] += x[i] * x[j];
                }
            }
        }
        NaiveLinUcb { a, b }
    }

    fn choose(&self, x: &[f64]) -> usize {
        let mut best = (f64::NEG_INFINITY, 0);
        let mut l = vec![0.0; DIM * DIM];
        for arm in 0..ARMS {
            let a = &self.a[arm];
            l.fill(0.0);
            for i in 0..DIM {
                for j in 0..=i {
                    let mut s = a[i * DIM + j];
                    for k in 0..j {
                        s -= l[i * DIM + k] * l[j * DIM + k];
                    }
                    l[i * DIM + j] = if i == j { s.sqrt() } else { s / l[j * DIM + j] };
                }
            }
            let solve = |rhs: &[f64]| {
                let mut y = rhs.to_vec();
                for i in 0..DIM {
                    for k in 0..i {
                        y[i] -= l[i * DIM + k] * y[k];
                    }
                    y[i] /= l[i * DIM + i];
                }
                for i in (0..DIM).rev() {
                    for k in i + 1..DIM {
                        y[i] -= l[k * DIM + i] * y[k];
                    }
                    y[i] /= l[i * DIM + i];
                }
                y
            };
            let theta = solve(&self.b[arm]);
            let ainv_x = solve(x);
            let mean: f64 = theta.iter().zip(x).map(|(a, b)| a * b).sum();
            let var: f64 = ainv_x.iter().zip(x).map(|(a, b)| a * b).sum();
            let score = mean + var.max(0.0).sqrt();
            if score > best.0 {
                best = (score, arm);
            }
        }
        best.1
    }
}

fn in_process(args: &Args) -> anyhow::Result<()> {
    println!("\n### In-process decide, {ARMS} arms × {DIM} features, {} decisions after {} learned rewards\n", args.decisions, args.train);
    println!("| policy | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---:|---:|---:|---:|");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let now = chrono::Utc::now();
    let contexts: Vec<_> = (0..args.decisions)
        .map(|_| {
            let c = random_context(&mut rng).resolve(None, true, now);
            (c.segment_index(), c.features())
        })
        .collect();
    let mut p99 = std::collections::BTreeMap::new();
    for kind in [
        PolicyKind::Thompson,
        PolicyKind::LinTs,
        PolicyKind::Linucb,
        PolicyKind::EpsilonGreedy,
    ] {
        let model = trained(kind, args.train, &mut rng)?;
        let mut h = Histogram::<u64>::new(3)?;
        let mut thread_rng = rand::rng();
        for (s, x) in &contexts {
            let t = Instant::now();
            let c = model.choose(*s, x, now, &mut thread_rng)?;
            h.record(t.elapsed().as_nanos() as u64)?;
            std::hint::black_box(c);
        }
        p99.insert(kind.name(), report(kind.name(), &h));
    }
    // Baseline: textbook LinUCB on the same data shape.
    let entries: Vec<(usize, Vec<f64>, f64)> = (0..args.train)
        .map(|_| {
            let c = random_context(&mut rng).resolve(None, true, now);
            let x = c.features().iter().map(|v| f64::from(*v)).collect();
            (
                rng.random_range(0..ARMS),
                x,
                f64::from(u8::from(rng.random_bool(0.04))),
            )
        })
        .collect();
    let naive = NaiveLinUcb::new(&entries);
    let mut h = Histogram::<u64>::new(3)?;
    for (_, x) in contexts.iter().take(2_000) {
        let xf: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
        let t = Instant::now();
        std::hint::black_box(naive.choose(&xf));
        h.record(t.elapsed().as_nanos() as u64)?;
    }
    let base = report(
        "baseline: textbook LinUCB (Cholesky per request, 2,000 decisions)",
        &h,
    );
    println!("\nLinUCB p99 / baseline p99 = {:.3}×", p99["linucb"] / base);
    Ok(())
}

/// A service with the bench slot (Thompson, 50 arms) over the in-memory store or a fresh PostgreSQL database.
async fn bench_service(database_url: Option<&str>) -> anyhow::Result<Bandits> {
    let url = match database_url {
        Some(base) => {
            Some(bandits::store::postgres::fresh_database(base, "lusso_bench_bandits").await?)
        }
        None => None,
    };
    let store = bandits::store::open(url.as_deref()).await?;
    let b = Bandits::new(
        store,
        None,
        Arc::new(SystemClock),
        BanditMetrics::new(&prometheus::Registry::new()),
        BanditsConfig::default(),
    );
    let mut s = slot(PolicyKind::Thompson);
    s.version = 0;
    b.create_slot(s, "bench").await?;
    Ok(b)
}

async fn service_decide(args: &Args) -> anyhow::Result<Bandits> {
    let b = bench_service(None).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut h = Histogram::<u64>::new(3)?;
    for i in 0..args.decisions {
        let req = DecideRequest {
            slot: "bench".into(),
            user_id: Some(format!("u{i}")),
            anonymous_id: None,
            context: random_context(&mut rng),
        };
        let t = Instant::now();
        let d = b.decide(req).await?;
        h.record(t.elapsed().as_nanos() as u64)?;
        std::hint::black_box(d);
    }
    println!("\n### Whole in-process `Bandits::decide` (Thompson, {ARMS} arms, in-memory store)\n");
    println!("| what | p50 µs | p99 µs | p99.9 µs | max µs |\n|---|---:|---:|---:|---:|");
    report("decide (validate, context, policy, log write)", &h);
    Ok(b)
}

async fn http_load(args: &Args, b: Bandits, store: &str) -> anyhow::Result<()> {
    let router = bandits::api::app(b).route(
        "/echo",
        axum::routing::post(|body: bytes::Bytes| async move {
            axum::Json(serde_json::json!({"len": body.len(), "ok": true}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();
    println!(
        "\n### HTTP over loopback, {store} store, {} clients, {} s per endpoint (server and clients share the 2 cores)\n",
        args.concurrency, args.http_seconds
    );
    println!("| endpoint | requests/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|");
    let mut rates = Vec::new();
    for path in ["/echo", "/v1/decisions"] {
        let until = Instant::now() + Duration::from_secs(args.http_seconds);
        let mut tasks = Vec::new();
        for c in 0..args.concurrency {
            let (http, url) = (http.clone(), format!("http://{addr}{path}"));
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                let (mut ok, mut err, mut i) = (0u64, 0u64, 0u64);
                while Instant::now() < until {
                    i += 1;
                    let body = serde_json::json!({"slot": "bench", "user_id": format!("c{c}-{i}"),
                        "context": {"segment": "New", "device": "mobile", "market": "IT"}});
                    let t = Instant::now();
                    match http.post(&url).json(&body).send().await {
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
        let (mut ok, mut err) = (0, 0);
        let mut h = Histogram::<u64>::new(3)?;
        for t in tasks {
            let (o, e, hh) = t.await?;
            ok += o;
            err += e;
            h.add(hh)?;
        }
        let rate = ok as f64 / args.http_seconds as f64;
        rates.push(rate);
        println!(
            "| POST {path} | {rate:.0} | {:.2} | {:.2} | {err} |",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
    println!(
        "\ndecisions/s ÷ echo requests/s = {:.3}×",
        rates[1] / rates[0]
    );
    Ok(())
}

fn ope_timing(args: &Args) -> anyhow::Result<()> {
    use bandits::ope::{evaluate, Feedback, IntervalSpec, Policy, RewardModel};
    let fb = Feedback::read_obd_csv(&args.obd)
        .with_context(|| format!("reading {}", args.obd.display()))?;
    let policy = Policy::read_csv(&args.obd_policy, fb.n_actions, fb.len_list)?;
    println!(
        "\n### OPE over {} Open Bandit rounds ({} actions × {} positions), median of 3\n",
        fb.rounds.len(),
        fb.n_actions,
        fb.len_list
    );
    println!("| what | seconds |\n|---|---:|");
    for (name, b) in [
        ("IPW, SNIPW, DM, DR point estimates", 1),
        ("… with 10,000-resample bootstrap intervals", 10_000),
    ] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let q = RewardModel::empirical(&fb);
            let r = evaluate(
                &fb,
                &policy,
                &q,
                IntervalSpec {
                    n_bootstrap_samples: b,
                    ..IntervalSpec::default()
                },
            )?;
            times.push(t.elapsed().as_secs_f64());
            std::hint::black_box(r);
        }
        times.sort_by(f64::total_cmp);
        println!("| {name} | {:.3} |", times[1]);
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "bandits_bench: {} decisions per policy, {} learned rewards, {} CPUs",
        args.decisions,
        args.train,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    tokio::task::block_in_place(|| in_process(&args))?;
    let b = service_decide(&args).await?;
    http_load(&args, b, "in-memory").await?;
    if let Some(url) = &args.database_url {
        http_load(&args, bench_service(Some(url)).await?, "PostgreSQL").await?;
    }
    tokio::task::block_in_place(|| ope_timing(&args))?;
    Ok(())
}
